/*
 * tc_port.h - everything the portable core needs from its platform besides sockets: a mutex, a one-shot event
 * another thread can wait on, a detached thread (name resolution only), and a monotonic clock.
 *
 * Each platform provides these in a header named tc_port_os.h, all static inline, found through the include path
 * the build adds (the model is esp_http_server's port/<os>/osal.h):
 *   port/os/posix/     Linux hosts and ESP-IDF's linux target (pthreads, CLOCK_MONOTONIC)
 *   port/os/freertos/  ESP-IDF chip targets (FreeRTOS mutexes, semaphores and tasks, esp_timer)
 *   port/os/none/      a single-threaded device without an OS (tools/cross_check.sh builds the core this way): no
 *                      threads, so no system-resolver fallback: a client's host name resolves only over UDP
 *                      through the loop, from the nameserver the client gives (without one, TC_ERESOLVE)
 * Nothing else in the core may include an OS header (<pthread.h>, FreeRTOS.h, <time.h> clocks).
 *
 * The contract, checked below against each platform's definitions:
 *   tc_port_mutex_t, TC_PORT_MUTEX_INIT       a mutex, statically initialisable; never held across a blocking call
 *   tc_port_mutex_init/lock/unlock/destroy    init returns TC_OK or TC_ENOMEM
 *   tc_port_event_t                           one-shot: set once by any thread, waited on by one thread
 *   tc_port_event_init/set/wait/destroy       wait returns 1 once set, 0 after timeout_ms without it
 *   TC_PORT_THREADS                           1 where tc_port_thread_start() can start threads, 0 where it cannot
 *   TC_PORT_THREAD_LOCAL                      storage class of a per-thread variable (empty without threads)
 *   tc_port_thread_start(fn, arg)             runs fn(arg) on a new detached thread: TC_OK, TC_ENOMEM, TC_ENOSYS
 *   tc_port_now_ms()                          milliseconds of a clock that never steps back
 *   tc_port_nameserver(out, cap)              the system's first DNS server as numeric text: TC_OK, TC_ENOTFOUND,
 *                                             TC_ENOSYS (posix: /etc/resolv.conf; chips: lwIP's dns_getserver(0))
 * Thread-safety: every function may be called from any thread (mutex and event functions on their own objects).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_err.h"

/** Body of a thread started by tc_port_thread_start(). */
typedef void (*tc_port_thread_fn)(void *arg);

#if !defined(__has_include)
#error "tcp_core: the compiler lacks __has_include (gcc >= 5 or clang needed)"
#elif !__has_include("tc_port_os.h")
/* One port/os/<os> folder of components/tcp_core on the include path: posix (Linux host, ESP-IDF linux target),
 * freertos (ESP-IDF chips) or none (no OS, no threads). */
#error "tcp_core: no platform port: add components/tcp_core/port/os/posix (or freertos, or none) to the include path"
#endif
#include "tc_port_os.h"

#if !defined(TC_PORT_THREAD_LOCAL)
#error "tcp_core: the platform's tc_port_os.h must define TC_PORT_THREAD_LOCAL (empty without threads)"
#endif

#if !defined(TC_PORT_THREADS) || (TC_PORT_THREADS != 0 && TC_PORT_THREADS != 1)
#error "tcp_core: the platform's tc_port_os.h must define TC_PORT_THREADS as 0 or 1"
#endif

/* The contract again as declarations: a platform whose definitions differ fails to compile here. */
static inline int tc_port_mutex_init(tc_port_mutex_t *m);
static inline void tc_port_mutex_lock(tc_port_mutex_t *m);
static inline void tc_port_mutex_unlock(tc_port_mutex_t *m);
static inline void tc_port_mutex_destroy(tc_port_mutex_t *m);
static inline int tc_port_event_init(tc_port_event_t *e);
static inline void tc_port_event_set(tc_port_event_t *e);
static inline int tc_port_event_wait(tc_port_event_t *e, uint32_t timeout_ms);
static inline void tc_port_event_destroy(tc_port_event_t *e);
static inline int tc_port_thread_start(tc_port_thread_fn fn, void *arg);
static inline uint64_t tc_port_now_ms(void);
static inline int tc_port_nameserver(char *out, size_t cap);
