/*
 * tc_handle.h - the one stop model of tcp_core's long-lived objects: TCP servers, reconnecting clients, HTTP servers,
 * the captive DNS responder and the app all begin with a tc_handle_t, stop through tc_handle_stop() (a deadline and
 * one completion callback) or tc_handle_stop_wait(), and report in one shape, tc_stop_report_t.
 *
 * Stop is a request: it returns at once, the object winds down on the loop (in-flight work finishes, the rest is
 * aborted at the deadline), and done runs once from the loop after the object has been freed. A handle with nothing
 * in flight (the DNS responder) finishes inside the call.
 *
 * bytes_freed, one rule for every handle: the exact net number of tcp_core heap bytes (tc_alloc.h block sizes, the
 * handle's own block included) released on the handle's loop between the stop request and its completion: bytes
 * freed minus bytes allocated by the loop's thread while it ran that loop (tc_loop_bytes_freed(),
 * tc_loop_bytes_allocated()). Each loop keeps its own counts, so other loops in the same process never show in the
 * figure, and what a stop allocates and frees again (close deadlines) nets out; other handles of the same loop that
 * allocate or free during the stop do show (the figure is 0 rather than negative).
 *
 * Example:
 *     tc_stop_report_t r;
 *     tc_handle_stop_wait(tc_server_handle(srv), 500, &r);   // srv is freed
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_handle tc_handle_t; /**< the first member of every stoppable object (opaque) */

/** What a handle is. */
typedef enum {
    TC_HANDLE_SERVER = 1, /**< TCP server (tc_server_t) */
    TC_HANDLE_CLIENT,     /**< reconnecting TCP client (tc_client_t) */
    TC_HANDLE_HTTP,       /**< HTTP server (tc_http_t) */
    TC_HANDLE_DNS,        /**< captive-portal DNS responder (tc_dns_server_t) */
    TC_HANDLE_APP,        /**< the device's services (tc_app_t) */
} tc_handle_kind_t;

/** Most parts a composite handle reports (the app: echo server, HTTP server, client, DNS responder). */
#define TC_STOP_PARTS_MAX 4

/** What a stop did; one shape for every kind of handle (counters a kind does not have stay 0). */
typedef struct tc_stop_report {
    uint32_t kind;              /**< tc_handle_kind_t of the handle that stopped */
    uint32_t graceful;          /**< connections that closed before the deadline (a client: 1 if its connection did) */
    uint32_t forced;            /**< connections aborted at the deadline or ended by an RST */
    uint32_t elapsed_ms;        /**< from the stop request to completion */
    size_t bytes_freed;         /**< see "bytes_freed" above */
    uint32_t requests_finished; /**< HTTP: in-flight requests answered during the stop */
    uint32_t streams_ended;     /**< HTTP: streams ended cleanly */
    uint32_t websockets_closed; /**< HTTP: WebSockets sent 1001 */
    uint32_t nparts;            /**< composite handles (the app): reports of the parts, in parts[0..nparts) */
    struct tc_stop_report *parts; /**< valid during the callback only; NULL when nparts is 0 */
} tc_stop_report_t;

/**
 * @brief Called once when a stop has finished, from the loop, after the handle was freed.
 * @param handle  the handle that stopped: already freed, an identity to compare only, never to dereference
 * @param report  what the stop did (valid during the call)
 * @param user    the user pointer given to tc_handle_stop()
 */
typedef void (*tc_handle_stop_cb)(tc_handle_t *handle, const tc_stop_report_t *report, void *user);

/**
 * @brief Stop a handle: no new work, in-flight work finishes (HTTP requests are answered, streams end, WebSockets
 * close with 1001, connections close with their policy), what is left at deadline_ms is aborted; then the handle is
 * freed and done runs. Loop thread only; safe inside callbacks.
 * @param handle       the handle; NULL gives TC_EINVAL
 * @param deadline_ms  time allowed for graceful closes (0: abort everything now)
 * @param done         completion callback, may be NULL
 * @param user         passed to done
 * @return TC_OK, TC_EINVAL, TC_ECLOSED (already stopping: done will not be called for this request)
 */
int tc_handle_stop(tc_handle_t *handle, uint32_t deadline_ms, tc_handle_stop_cb done, void *user);

/**
 * @brief Bring a stop in progress to an end sooner: what is still open deadline_ms from now is aborted then, as at the
 * deadline given to tc_handle_stop() (Ctrl-C during a long stop, e.g. an OTA prepare's). A deadline later than the one
 * running changes nothing. The stop's callback still runs once, with its one report. Loop thread only; safe inside
 * callbacks; the handle must not have finished its stop yet (it is freed then).
 * @param handle       the handle, stopping
 * @param deadline_ms  from now (0: abort everything now)
 * @return TC_OK (the earlier deadline applies), TC_EINVAL (NULL, or no stop in progress: see tc_handle_stop())
 *
 * Example:
 *     tc_handle_stop(tc_app_handle(app), 600000, prepared, ctx);  // an OTA prepare with a long deadline
 *     tc_handle_stop_sooner(tc_app_handle(app), 1000);             // later, on Ctrl-C: done within a second
 */
int tc_handle_stop_sooner(tc_handle_t *handle, uint32_t deadline_ms);

/**
 * @brief tc_handle_stop(), then run the loop until the stop is done. For the loop's thread outside any callback;
 * never blocks past the deadline plus one second (the time to abort what is left).
 * @param handle       the handle
 * @param deadline_ms  as for tc_handle_stop()
 * @param report       receives the report (parts are not kept: nparts 0, parts NULL); may be NULL
 * @return TC_OK, TC_EINVAL, TC_EBUSY (called inside a callback: use tc_handle_stop()), TC_ECLOSED, TC_ETIMEDOUT
 */
int tc_handle_stop_wait(tc_handle_t *handle, uint32_t deadline_ms, tc_stop_report_t *report);

/** @brief The handle's kind (tc_handle_kind_t). Any time before it is freed. */
tc_handle_kind_t tc_handle_kind(const tc_handle_t *handle);

/** @brief The loop the handle runs on. */
tc_loop_t *tc_handle_loop(const tc_handle_t *handle);

/** @brief 1 once a stop was requested (until the handle is freed), else 0. */
int tc_handle_is_stopping(const tc_handle_t *handle);

/**
 * @brief Bytes of tcp_core heap freed so far by the thread running this loop, while it ran it (tc_loop_run_once(),
 * tc_handle_stop()): the count stop reports take differences of. Loop thread only.
 * @param loop  the loop
 * @return the running total (block sizes, tc_alloc.h)
 */
uint64_t tc_loop_bytes_freed(const tc_loop_t *loop);

/**
 * @brief Bytes of tcp_core heap allocated so far by the thread running this loop, while it ran it. Loop thread only.
 * @param loop  the loop
 * @return the running total (block sizes, tc_alloc.h)
 */
uint64_t tc_loop_bytes_allocated(const tc_loop_t *loop);

#ifdef __cplusplus
}
#endif
