/*
 * tc_handle_impl.h - for code that builds a stoppable service of its own on tcp_core (the demo app in main/app is one):
 * the handle record to embed first in the object, the table of what a stop does, and the two calls that begin and
 * end a handle's life. Users who only stop handles need tc_handle.h alone.
 *
 * A service embeds a tc_handle_t as its first member, calls tc__handle_init() when it starts, and in its ops.stop
 * winds down (stopping, stop_started, done are already set); when nothing is left it fills report's counters and
 * calls tc__handle_finish() with a release function that frees the object.
 */
#pragma once

#include <stdint.h>

#include "tc_handle.h"
#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a kind of handle does when it is asked to stop. */
typedef struct {
    tc_handle_kind_t kind;                             /**< what the handle is */
    void (*stop)(tc_handle_t *h, uint32_t deadline_ms); /**< begin winding down; finish now or later from the loop */
    /** A stop in progress must end sooner: abort what is left deadline_ms from now (tc_handle_stop_sooner(); only
     * called with a deadline earlier than the running one). NULL for a kind whose stop completes at once. */
    void (*sooner)(tc_handle_t *h, uint32_t deadline_ms);
} tc_handle_ops_t;

/** The handle record (first member of every stoppable object). */
struct tc_handle {
    const tc_handle_ops_t *ops; /**< the kind's stop */
    tc_loop_t *loop;            /**< the loop it runs on */
    uint8_t stopping;           /**< 1 once a stop was requested */
    uint64_t stop_started;      /**< loop clock of the request */
    uint64_t stop_deadline;     /**< loop clock at which what is left is aborted */
    uint64_t freed_mark;        /**< the loop's heap account at the request (bytes_freed rule, tc_handle.h) */
    tc_handle_stop_cb done;     /**< completion callback */
    void *done_user;            /**< its user pointer */
    tc_stop_report_t report;    /**< the kind's counters, filled while it winds down */
};

/**
 * @brief Initialise a handle embedded in a new object.
 * @param h     the handle (first member of the object)
 * @param ops   what a stop does for this kind; must outlive the object
 * @param loop  the loop the object runs on
 */
void tc__handle_init(tc_handle_t *h, const tc_handle_ops_t *ops, tc_loop_t *loop);

/**
 * @brief The stop is complete: release(h) frees the object; then bytes_freed and elapsed_ms are measured and the
 * stop's callback runs with the report. Loop thread only; call once per stop.
 * @param h        the handle
 * @param release  frees the object that holds h
 */
void tc__handle_finish(tc_handle_t *h, void (*release)(tc_handle_t *h));

#ifdef __cplusplus
}
#endif
