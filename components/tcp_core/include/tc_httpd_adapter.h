/*
 * tc_httpd_adapter.h - for applications that keep esp_http_server: its sessions in tcp_core's registry, streaming
 * handlers marked, and a stop with a deadline that returns while a stream handler runs (seed 003, the ESP32-CAM
 * CameraWebServer whose httpd_stop() never returns during an MJPEG stream).
 *
 * Why httpd_stop() hangs. esp_http_server runs every URI handler on its one server task. A stream handler loops
 * "capture, send chunk" for as long as its sends succeed, i.e. as long as the viewer watches. httpd_stop() sends a
 * shutdown message to the server task's control socket and waits for the task to end, but the task only reads that
 * socket between handlers: it never does. httpd_sess_trigger_close() alone cannot help either: it queues a close on
 * the same control socket, behind the blocked handler. And closing the stream's socket from another task is no
 * cure: the server task is inside send() on it, and lwIP asserts (or frees the netconn under the blocked call).
 *
 * What tc_httpd_stop_deadline() does, from the stopping task:
 *  1. marks the server as stopping: tc_httpd_stream_stopping() turns true, tc_httpd_stream_begin() refuses, new
 *     connections are refused in open_fn;
 *  2. shutdown(SHUT_RDWR)s the sockets of the sessions marked streaming: the descriptor stays valid for the server
 *     task, but its blocked send() returns an error at once (lwIP aborts a pending write on SHUT_WR with
 *     LWIP_NETCONN_FULLDUPLEX, which ESP-IDF enables) and every later send() fails;
 *  3. queues a no-op work item (httpd_queue_work()) and waits for it to run: then the server task is back in its
 *     loop, i.e. the handler has returned; at half the deadline it shuts down every other session's socket too;
 *  4. triggers the close of the remaining sessions (httpd_sess_trigger_close(), now served at once), waits for a
 *     second work item queued behind those closes (so httpd_stop()'s own message finds room in the control queue),
 *     and calls httpd_stop(), which closes what is left and returns promptly (it polls its task every 100 ms).
 * If the server task is still busy at the deadline (a handler that ignores the contract below), httpd_stop() would
 * block forever, so it is not called: ESP_ERR_TIMEOUT, and the server keeps running. Leave
 * CONFIG_HTTPD_QUEUE_WORK_BLOCKING off (the default): with it, queueing the work item of step 3 waits for room in
 * the control queue, which a stuck server task never makes.
 *
 * The contract a stream handler must keep:
 *  - call tc_httpd_stream_begin(req) before streaming; when it fails, return ESP_FAIL at once (stopping);
 *  - check the result of every send (httpd_resp_send_chunk(), httpd_send(), httpd_socket_send()) and return at the
 *    first failure: that failure is how the stop reaches the handler;
 *  - end the loop when tc_httpd_stream_stopping(req) is true (between frames: faster than waiting for a send);
 *  - never wait without a bound on anything else (a camera frame: use a time-out);
 *  - call tc_httpd_stream_end(req) before returning.
 *
 * Example:
 *     httpd_config_t hc = HTTPD_DEFAULT_CONFIG();
 *     tc_httpd_adapter_config_t ac = TC_HTTPD_ADAPTER_DEFAULT_CONFIG();
 *     ac.loop = loop;                                   // list the sessions in this loop's registry
 *     ESP_ERROR_CHECK(tc_httpd_start(&server, &hc, &ac));
 *     ...
 *     tc_httpd_stop_report_t rep;
 *     tc_httpd_stop_deadline(server, 2000, &rep);       // from another task than the server's
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_http_server.h"
#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Adapter settings; start from TC_HTTPD_ADAPTER_DEFAULT_CONFIG(). */
typedef struct {
    tc_loop_t *loop;   /**< whose registry lists the sessions (TC_KIND_EXTERNAL); NULL: not listed */
    const char *owner; /**< registry label (not copied: keep it alive) */
} tc_httpd_adapter_config_t;

#define TC_HTTPD_ADAPTER_DEFAULT_CONFIG() \
    {                                     \
        .loop = NULL, .owner = "httpd",   \
    }

/** What tc_httpd_stop_deadline() did. */
typedef struct {
    uint32_t sessions;         /**< sessions open when the stop began */
    uint32_t streams;          /**< of which marked streaming */
    uint32_t streams_shut;     /**< streaming sockets shut down at once (step 2) */
    uint32_t forced;           /**< other sockets shut down at half the deadline: the server task was still busy */
    uint32_t closes_triggered; /**< httpd_sess_trigger_close() calls queued once the server task was free */
    uint32_t left_open;        /**< sessions still open when httpd_stop() was called (it closes them) */
    uint32_t elapsed_ms;       /**< from the call until httpd_stop() returned, or until the deadline */
    bool server_stopped;       /**< httpd_stop() was called and returned: the handle is gone */
} tc_httpd_stop_report_t;

/**
 * @brief httpd_start() with the adapter installed.
 *
 * The adapter takes config's open_fn, close_fn, global_user_ctx and global_user_ctx_free_fn and chains them: the
 * application's open_fn and close_fn still run (its close_fn must still close the socket), and its context is
 * freed the way esp_http_server would; read it with tc_httpd_user_ctx(), not httpd_get_global_user_ctx().
 * Any task; config is not modified.
 * @param handle  receives the server handle
 * @param config  the esp_http_server settings
 * @param acfg    the adapter settings; NULL for TC_HTTPD_ADAPTER_DEFAULT_CONFIG()
 * @return ESP_OK, ESP_ERR_INVALID_ARG (NULL handle or config, max_open_sockets 0), ESP_ERR_NO_MEM, or
 *         httpd_start()'s error (then nothing is left allocated, and the application still owns its context)
 */
esp_err_t tc_httpd_start(httpd_handle_t *handle, const httpd_config_t *config, const tc_httpd_adapter_config_t *acfg);

/**
 * @brief The application's global_user_ctx of a server started with tc_httpd_start(). Any task.
 * @param handle  the server
 * @return the context, NULL when none was given
 */
void *tc_httpd_user_ctx(httpd_handle_t handle);

/**
 * @brief Mark the request's session as streaming (the registry shows it; a stop shuts its socket down first).
 *
 * Server task (inside the handler).
 * @param req  the request of the stream handler
 * @return ESP_OK; ESP_ERR_INVALID_STATE when the server is stopping (return from the handler at once);
 *         ESP_ERR_NOT_FOUND when the session is not tracked (a server not started with tc_httpd_start())
 */
esp_err_t tc_httpd_stream_begin(httpd_req_t *req);

/**
 * @brief True once a stop has begun: end the stream. Any task; cheap enough to call once per frame.
 * @param req  the request of the stream handler
 * @return true when the server is stopping
 */
bool tc_httpd_stream_stopping(httpd_req_t *req);

/**
 * @brief Clear the streaming mark (the session may serve more requests afterwards). Server task.
 * @param req  the request of the stream handler
 */
void tc_httpd_stream_end(httpd_req_t *req);

/**
 * @brief Stop a server started with tc_httpd_start() within deadline_ms, even while stream handlers run (see the
 * header comment for the steps and for the contract a handler must keep).
 *
 * Thread-safety: any task except the server's own (a handler cannot wait for itself to return). Returns within
 * deadline_ms plus up to 100 ms (httpd_stop() polls its task every 100 ms).
 * @param handle       the server
 * @param deadline_ms  the deadline; 0 takes CONFIG_TCP_CORE_STOP_DEADLINE_MS
 * @param report       receives what was done; may be NULL
 * @return ESP_OK (stopped; the handle is gone); ESP_ERR_TIMEOUT (a handler still ran at the deadline: httpd_stop()
 *         was not called, the server still runs and keeps refusing streams and connections; the call may be
 *         repeated, or the device rebooted); ESP_ERR_INVALID_ARG (NULL or not an adapter server);
 *         ESP_ERR_INVALID_STATE (called on the server task, or another stop is running); or httpd_stop()'s error
 */
esp_err_t tc_httpd_stop_deadline(httpd_handle_t handle, uint32_t deadline_ms, tc_httpd_stop_report_t *report);

/**
 * @brief Called once when tc_httpd_stop_deadline_async() has finished, on the task that did the stop (hand the
 * result to the tcp_core loop with tc_loop_post()).
 * @param err     tc_httpd_stop_deadline()'s result (ESP_OK: stopped, the handle is gone)
 * @param report  what was done (valid during the call)
 * @param user    as given
 */
typedef void (*tc_httpd_stopped_cb)(esp_err_t err, const tc_httpd_stop_report_t *report, void *user);

/**
 * @brief tc_httpd_stop_deadline() on a task of its own, for callers that must not block (the tcp_core loop pausing
 * esp_http_server for an OTA upload, tc_app_ota_hooks_t). Any task but the server's.
 * @param handle       the server
 * @param deadline_ms  as for tc_httpd_stop_deadline()
 * @param done         called once from the stopping task when the stop has finished (never from this call)
 * @param user         for done
 * @return ESP_OK (done will be called), ESP_ERR_INVALID_ARG (NULL done, not an adapter server), ESP_ERR_NO_MEM (no
 *         task: done is not called)
 */
esp_err_t tc_httpd_stop_deadline_async(httpd_handle_t handle, uint32_t deadline_ms, tc_httpd_stopped_cb done,
                                       void *user);

#ifdef __cplusplus
}
#endif
