/*
 * tc_loop.h - the event loop of tcp_core: descriptor watches, monotonic timers and a wake-up pair (an eventfd on
 * Linux, two loopback UDP sockets on lwIP), over the backend's readiness set where it has one (epoll on Linux: a
 * wake-up costs what is ready) and its poll() otherwise (lwIP on the device and over TAP). TC_CFG_USE_EVSET=0 forces
 * poll().
 *
 * One thread owns a loop and makes every call on it and its handles; other threads reach it only through
 * tc_loop_post() and tc_loop_stop(), which use the wake-up pair. No callback may block: the loop serves every
 * connection of the device.
 *
 * Example:
 *     tc_loop_t *loop;
 *     tc_loop_new(&loop);
 *     tc_timer_start(loop, 1000, tick_cb, NULL, NULL);
 *     tc_loop_run(loop);           // until tc_loop_stop()
 *     tc_loop_free(loop);
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Readiness bits of a watch (tc_watch_add()); each backend translates them to its own poll constants. */
enum {
    TC_POLLIN = 0x1,
    TC_POLLOUT = 0x2,
    TC_POLLERR = 0x4,
    TC_POLLHUP = 0x8,
    TC_POLLNVAL = 0x10,
};

typedef struct tc_loop tc_loop_t;   /**< opaque event loop */
typedef struct tc_watch tc_watch_t; /**< opaque descriptor watch */
typedef struct tc_timer tc_timer_t; /**< opaque timer */

/** Return value of a timer callback that ends the timer (any value >= 0 reschedules it that many ms later). */
#define TC_TIMER_STOP (-1)

/**
 * @brief Timer callback. Owner first, user last.
 * @return the delay in ms until the next run, or TC_TIMER_STOP to end (the timer is freed after it returns)
 */
typedef int64_t (*tc_timer_cb)(tc_timer_t *timer, void *user);

/** @brief Watch callback: revents holds TC_POLLIN/TC_POLLOUT/TC_POLLERR/TC_POLLHUP bits. */
typedef void (*tc_watch_cb)(tc_watch_t *watch, int fd, int revents, void *user);

/** @brief Work posted from another thread; runs on the loop thread. */
typedef void (*tc_post_cb)(tc_loop_t *loop, void *user);

/**
 * @brief Create a loop (with its wake-up pair and its shared receive buffer).
 *
 * Thread-safety: any thread; the creating thread should be the one that runs it.
 * @param out  receives the loop
 * @return TC_OK, TC_EINVAL (NULL out), TC_ENOMEM, or the backend's error creating the wake-up pair or watching it
 */
int tc_loop_new(tc_loop_t **out);

/**
 * @brief Free a loop that has no handles left (servers, clients, watches, timers, UDP endpoints).
 *
 * Posted work that never ran is dropped (its callbacks are not called).
 * @param loop  the loop, may be NULL
 * @return TC_OK, or TC_EBUSY (nothing freed) when handles remain: stop them first
 */
int tc_loop_free(tc_loop_t *loop);

/**
 * @brief Run until tc_loop_stop() is called.
 * @return TC_OK when stopped, TC_EBUSY when called from inside a callback of this loop, or a poll error
 */
int tc_loop_run(tc_loop_t *loop);

/**
 * @brief Run for at most ms milliseconds (or until tc_loop_stop()); lets a caller interleave its own checks.
 * @return TC_OK, TC_EBUSY inside a callback, or a poll error
 */
int tc_loop_run_for(tc_loop_t *loop, uint32_t ms);

/**
 * @brief Wait at most timeout_ms for events, dispatch what is ready, run due timers and pending closes, once.
 * @param timeout_ms  -1 to wait until something happens, 0 not to wait
 * @return the number of descriptors dispatched, TC_EBUSY inside a callback, or a poll error
 */
int tc_loop_run_once(tc_loop_t *loop, int timeout_ms);

/**
 * @brief Make tc_loop_run() return after the current iteration. Thread-safe (uses the wake-up pair).
 */
void tc_loop_stop(tc_loop_t *loop);

/**
 * @brief Run cb(loop, user) on the loop thread soon. Thread-safe; the only way for other threads to act on handles.
 * @return TC_OK, TC_EINVAL (NULL loop or cb), TC_ENOMEM (nothing queued), or the backend's error signalling the
 *         wake-up pair (cb is queued all the same and runs when the loop next wakes)
 */
int tc_loop_post(tc_loop_t *loop, tc_post_cb cb, void *user);

/** @brief The loop's cached monotonic clock in ms (updated each iteration). Loop thread only. */
uint64_t tc_loop_now(const tc_loop_t *loop);

/** @brief A fresh reading of the monotonic clock in ms. Thread-safe. */
uint64_t tc_now_ms(void);

/**
 * @brief Watch a backend descriptor for TC_POLLIN and/or TC_POLLOUT.
 *
 * The loop does not own fd: tc_watch_remove() leaves it open. Remove the watch before closing fd (with epoll, a
 * descriptor number closed and reused while still watched would take the old watch's registration with it).
 * @param loop    the loop
 * @param fd      a backend descriptor (a kernel descriptor on Linux, an lwIP socket on lwIP)
 * @param events  TC_POLLIN | TC_POLLOUT
 * @param cb      called with the ready bits
 * @param user    passed to cb
 * @param out     receives the watch; may be NULL if it is never changed or removed before tc_loop_free()
 * @return TC_OK, TC_EINVAL, TC_ENOMEM
 */
int tc_watch_add(tc_loop_t *loop, int fd, int events, tc_watch_cb cb, void *user, tc_watch_t **out);

/** @brief Change the events a watch waits for. @return TC_OK, TC_EINVAL. */
int tc_watch_set(tc_watch_t *watch, int events);

/** @brief Stop watching and free the watch (safe inside its own callback). */
void tc_watch_remove(tc_watch_t *watch);

/**
 * @brief Start a timer that first fires delay_ms from now; its return value reschedules or ends it.
 * @param out  receives the timer (for tc_timer_cancel()); may be NULL
 * @return TC_OK, TC_EINVAL, TC_ENOMEM
 */
int tc_timer_start(tc_loop_t *loop, uint64_t delay_ms, tc_timer_cb cb, void *user, tc_timer_t **out);

/** @brief Cancel and free a timer (safe inside its own callback; then its return value is ignored). */
void tc_timer_cancel(tc_timer_t *timer);

#ifdef __cplusplus
}
#endif
