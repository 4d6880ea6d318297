/*
 * tc_http.h - an HTTP/1.1 server with WebSocket and streaming responses on the tcp_core loop, whose stop always
 * returns by its deadline.
 *
 * esp_http_server runs each handler to completion on its one task, so a streaming handler that loops until its send
 * fails keeps httpd_stop() waiting forever (seed 003). Here nothing blocks: a handler answers at once or starts a
 * stream whose producer the loop calls when the socket can take more; every socket is in the registry; and
 * its stop (tc_handle_stop(tc_http_handle(http), ...)) ends streams, closes WebSockets with 1001 and aborts what is
 * left at the deadline.
 *
 * Example:
 *     tc_http_config_t cfg = TC_HTTP_DEFAULT_CONFIG();
 *     tc_http_start(loop, &cfg, &http);
 *     tc_http_route(http, TC_HTTP_GET, "/hello", hello_cb, NULL);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tc_tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_http tc_http_t;           /**< opaque HTTP server */
typedef struct tc_http_req tc_http_req_t;   /**< opaque request (valid until answered, or until its stream ends) */
typedef struct tc_ws tc_ws_t;               /**< opaque WebSocket connection */
typedef struct tc_http_cors tc_http_cors_t; /**< a CORS policy (tc_http_auth.h) */

/** Methods, as a bit set for routes. */
enum {
    TC_HTTP_GET = 0x01,
    TC_HTTP_HEAD = 0x02,
    TC_HTTP_POST = 0x04,
    TC_HTTP_PUT = 0x08,
    TC_HTTP_DELETE = 0x10,
    TC_HTTP_OPTIONS = 0x20,
    TC_HTTP_PATCH = 0x40,
    TC_HTTP_ANY = 0x7f,
};

/** HTTP server settings; start from TC_HTTP_DEFAULT_CONFIG(). */
typedef struct {
    const char *host;            /**< numeric listen address */
    uint16_t port;               /**< 0 picks a free port */
    uint32_t max_conns;          /**< connections at most; when_full says who makes room for a newcomer */
    tc_full_policy_t when_full;  /**< TC_FULL_EVICT_IDLE (default): a newcomer evicts the least recently active idle
                                      keep-alive connection or unfinished head, never a WebSocket, SSE or stream nor
                                      a request in flight; when only those remain it is answered 503 with
                                      Retry-After (overflow_max at once, the next ones wait in the backlog).
                                      TC_FULL_EVICT_LRU: evict whatever was least recently active. TC_FULL_REFUSE:
                                      RST the newcomer */
    uint32_t overflow_max;       /**< newcomers being answered 503 at once, at most (0: RST) */
    uint32_t retry_after_s;      /**< Retry-After of that 503 */
    uint32_t idle_timeout_ms;    /**< keep-alive connections with no request close after this. WebSockets, SSE and
                                      streams are exempt: pings with a pong deadline keep WebSockets, heartbeats SSE,
                                      and a stream with bytes queued is ended once neither our queue moved nor the
                                      viewer's TCP stack acknowledged anything for this long (a slow reader behind
                                      a large send buffer still acknowledges); with nothing queued, once the bytes
                                      the stack holds for it were not acknowledged for this long */
    uint32_t head_timeout_ms;    /**< a request head must be complete this long after its first byte (408).
                                      Heads, bodies, sessions and streams are checked every 100 ms while any
                                      exists; a server with none (only idle keep-alives, or no client) does not
                                      wake its loop */
    uint32_t max_uri;            /**< request-target bytes (414 beyond) */
    uint32_t max_head;           /**< request head bytes (431 beyond) */
    uint32_t max_headers;        /**< header fields (431 beyond) */
    uint64_t max_body;           /**< request body bytes of buffered routes (413 beyond); per route:
                                      tc_http_route_body() */
    uint32_t body_min_rate;      /**< a body must arrive at this many bytes/s at least, measured over windows of
                                      body_grace_ms after the first one (408 and close below); 0 = no rule. A body
                                      with no byte for idle_timeout_ms gets 408 whatever this says */
    uint32_t body_grace_ms;      /**< the first window (no rule) and the length of every later one */
    uint32_t ws_max_message;     /**< WebSocket message bytes (close 1009 beyond) */
    uint32_t ws_ping_ms;         /**< WebSocket liveness: a ping after this long without one outstanding, 0 = none */
    uint32_t ws_pong_timeout_ms; /**< a WebSocket that answers nothing this long after a ping, or after a close
                                      frame this side sent, is dead: closed without a (further) close frame (its
                                      callback sees 1006). While its TCP stack still acknowledges our bytes (a slow
                                      reader behind a large send buffer: the answer is queued behind them) the wait
                                      starts over. 0 = no bound */
    uint32_t sse_heartbeat_ms;   /**< an SSE stream silent this long gets a comment line (":\n\n"), 0 = none */
    uint32_t stream_sndbuf;      /**< live streams (MJPEG, SSE): the bytes the TCP stack may hold not yet sent
                                      (Linux: TCP_NOTSENT_LOWAT, bytes in flight not counted; lwIP's send buffer is
                                      TCP_SND_BUF, fixed at build time, and this is ignored). Frames then wait in
                                      our queue, where the
                                      producer is not asked while a viewer is behind (tc_http_stream_ready()),
                                      instead of in a buffer Linux grows to MBs: a slow viewer sees the stream live
                                      at its own rate, not seconds old. 0 = the stack's own */
    tc_close_policy_t close_policy; /**< how the server closes after a "close" response: graceful (FIN at once,
                                         lingering drain, TIME-WAIT freed on lwIP; closed at once on Linux when the
                                         client announced its close and sent nothing more, tc_tcp.h) */
    uint32_t linger_ms;          /**< wait for the peer's FIN at most this long before RST */
    const char *name;            /**< registry label (not copied) */
    const tc_http_cors_t *cors;  /**< server-wide CORS policy (tc_http_cors_new(); not copied: it must outlive the
                                      server), NULL = none. A request with an allowed Origin gets its headers on
                                      every answer (404 and 405 included, WebSocket upgrades excepted); every
                                      answer says Vary: Origin when the policy's depends on the Origin (a list,
                                      credentials); a preflight (OPTIONS with Origin and
                                      Access-Control-Request-Method) for a path that has routes is answered by it
                                      (204, or 403 when not allowed). Routes added with tc_http_cors_route() keep
                                      their own policy instead (the override; a policy with origins "" gives a route
                                      no CORS at all) */
} tc_http_config_t;

#define TC_HTTP_DEFAULT_CONFIG()                                                                           \
    {                                                                                                      \
        .host = "0.0.0.0", .port = 80, .max_conns = 16, .when_full = TC_FULL_EVICT_IDLE, .overflow_max = 2,        \
        .retry_after_s = 2, .idle_timeout_ms = 10000, .head_timeout_ms = 5000, .max_uri = 512, .max_head = 4096,   \
        .max_headers = 32, .max_body = 64 * 1024, .body_min_rate = 1024, .body_grace_ms = 10000,                   \
        .ws_max_message = 16384, .ws_ping_ms = 20000, .ws_pong_timeout_ms = 10000, .sse_heartbeat_ms = 15000,      \
        .stream_sndbuf = 16384, .close_policy = TC_CLOSE_GRACEFUL, .linger_ms = 2000, .name = "http", .cors = NULL, \
    }

/**
 * @brief Request handler: answer with tc_http_respond() (or start a stream / WebSocket) before returning, or keep
 * the request to answer later from the loop. Owner (request) first, user last.
 * @return 0, or a negative code: the server answers 500 if nothing was sent yet
 */
typedef int (*tc_http_handler_cb)(tc_http_req_t *req, void *user);

/** Return values of a stream producer beyond "ms until asking again". */
#define TC_HTTP_STREAM_END (-1)

/**
 * @brief Stream producer: called when the socket can take more (tc_http_stream_ready(): a part of any size fits), at
 * the time it asked for, or later if the viewer is slower. Write a part (tc_http_stream_write()).
 * @return ms until it should be asked again (0: as soon as the socket can take more), TC_HTTP_STREAM_END to finish
 *         the response, or another negative value to abort the connection
 */
typedef int64_t (*tc_http_produce_cb)(tc_http_req_t *req, void *user);

/** Kinds of streamed responses. */
typedef enum {
    TC_HTTP_STREAM_CHUNKED = 1, /**< Transfer-Encoding: chunked; each write is one chunk */
    TC_HTTP_STREAM_MJPEG,       /**< multipart/x-mixed-replace; each write is one JPEG part (with X-Timestamp: when it
                                     was queued, seconds.milliseconds of the loop's clock) */
    TC_HTTP_STREAM_SSE,         /**< text/event-stream; each write is one event's data */
} tc_http_stream_kind_t;

/** WebSocket events:
 *
 * | event            | meaning                                | data, len                              |
 * |------------------|----------------------------------------|----------------------------------------|
 * | TC_WS_EV_OPEN    | upgrade done                           | NULL, 0                                |
 * | TC_WS_EV_TEXT    | a whole text message (UTF-8 checked)   | the message                            |
 * | TC_WS_EV_BINARY  | a whole binary message                 | the message                            |
 * | TC_WS_EV_CLOSE   | gone; the last event                   | NULL, the close code (1006: no close)  |
 */
typedef enum {
    TC_WS_EV_OPEN = 1,
    TC_WS_EV_TEXT,
    TC_WS_EV_BINARY,
    TC_WS_EV_CLOSE,
} tc_ws_event_t;

/** @brief WebSocket callback. Owner first, user last; data is valid during the call. */
typedef void (*tc_ws_cb)(tc_ws_t *ws, tc_ws_event_t ev, const void *data, size_t len, void *user);

/**
 * @brief Start an HTTP server on the loop. Loop thread only.
 * @return TC_OK, TC_EINVAL (NULL loop, cfg or out; max_headers 0 or above TC_HTTP_MAX_HEADERS_CAP), TC_ENOMEM, or
 *         tc_server_start()'s errors (TC_EADDRINUSE, TC_EBADADDR, ...)
 */
int tc_http_start(tc_loop_t *loop, const tc_http_config_t *cfg, tc_http_t **out);

/** @brief The bound port. */
uint16_t tc_http_port(const tc_http_t *http);

/** @brief The loop the server runs on. */
tc_loop_t *tc_http_loop(const tc_http_t *http);

/**
 * @brief Add a route. Patterns: exact "/api/status", parameters "/led/:id", prefix "/static/ *" (no space).
 * Routes match in the order added; a path that matches with another method gives 405 with Allow, none gives 404.
 * A static-files route (tc_http_static_attach()) is a fallback: it takes only paths no other route has.
 * @param methods  TC_HTTP_* bits (HEAD is implied by GET)
 * @param pattern  copied
 * @return TC_OK, TC_EINVAL (bad pattern), TC_ENOMEM
 */
int tc_http_route(tc_http_t *http, unsigned methods, const char *pattern, tc_http_handler_cb cb, void *user);

/**
 * @brief Add a WebSocket route: a GET with a valid upgrade becomes a WebSocket (others get 426 / 400).
 * @return TC_OK, TC_EINVAL, TC_ENOMEM
 */
int tc_http_ws_route(tc_http_t *http, const char *pattern, tc_ws_cb cb, void *user);

/** Events of a request body taken in pieces (tc_http_route_body()):
 *
 * | event              | meaning                                                   | data, len           |
 * |--------------------|-----------------------------------------------------------|---------------------|
 * | TC_HTTP_BODY_DATA  | the next piece of the body (chunked framing removed)      | the piece           |
 * | TC_HTTP_BODY_END   | the body is complete: answer now or later                 | NULL, total bytes   |
 * | TC_HTTP_BODY_ABORT | the request is gone before an answer (peer FIN/RST,       | NULL, bytes so far  |
 * |                    | 408 by the minimum-rate rule, bad chunked framing, stop); |                     |
 * |                    | the last event: req is freed when the callback returns    |                     |
 */
typedef enum {
    TC_HTTP_BODY_DATA = 1,
    TC_HTTP_BODY_END,
    TC_HTTP_BODY_ABORT,
} tc_http_body_event_t;

/** Return value of a body callback for TC_HTTP_BODY_DATA: take no more pieces until tc_http_req_body_resume(). */
#define TC_HTTP_BODY_PAUSE 1

/**
 * @brief Body callback of a route that takes the body in pieces. Runs on the loop thread; never blocks. The handler
 * may answer at any event but ABORT (an answer before END closes the connection after it: the rest of the body is
 * not read). data is valid during the call only.
 * @return 0 for more, TC_HTTP_BODY_PAUSE (DATA only) to stop reading until tc_http_req_body_resume() (the socket's
 *         receive window then pushes back on the client), or a negative code: 500 and close unless answered, then
 *         TC_HTTP_BODY_ABORT. The return value of END and ABORT is ignored.
 */
typedef int (*tc_http_body_cb)(tc_http_req_t *req, tc_http_body_event_t ev, const void *data, size_t len, void *user);

/**
 * @brief Add a route with its own body limit, optionally taking the body in pieces as it arrives (an upload, an OTA
 * image): memory then grows with nothing but the pieces in flight. Loop thread only.
 *
 * With body_cb NULL the body is buffered whole, growing with the bytes received, up to max_body (0: the server's
 * max_body), and cb runs when it is complete, as for tc_http_route(). With body_cb, cb runs as soon as the head is
 * complete (it may refuse at once, e.g. 401/413, which closes the connection after the answer), then body_cb gets
 * the pieces, END, and ABORT if the request goes away before it is answered. Either way a declared Content-Length
 * above the limit is refused with 413 before any byte of the body is read, and nothing is allocated on a promise.
 *
 * Example (an upload sink with backpressure):
 *     static int on_piece(tc_http_req_t *r, tc_http_body_event_t ev, const void *d, size_t n, void *u)
 *     { if (ev == TC_HTTP_BODY_DATA) return sink_write(u, d, n); if (ev == TC_HTTP_BODY_END) ... respond; return 0; }
 *     tc_http_route_body(http, TC_HTTP_POST | TC_HTTP_PUT, "/upload", 4 << 20, on_head, on_piece, sink);
 * @param max_body  bytes at most (413 beyond); 0 = the server's max_body when buffered, no limit in pieces
 * @param cb        request handler (required)
 * @param body_cb   body in pieces, or NULL for a buffered body
 * @return TC_OK, TC_EINVAL (bad pattern, no cb), TC_ENOMEM
 */
int tc_http_route_body(tc_http_t *http, unsigned methods, const char *pattern, uint64_t max_body,
                       tc_http_handler_cb cb, tc_http_body_cb body_cb, void *user);

/**
 * @brief Take pieces again after a body callback returned TC_HTTP_BODY_PAUSE. Loop thread only; the pieces come
 * from the loop afterwards, never from inside this call. The minimum-rate window restarts.
 * @return TC_OK (also when not paused), TC_EINVAL (not a body in pieces), TC_ECLOSED (the request is gone)
 */
int tc_http_req_body_resume(tc_http_req_t *req);

/** Return value of a filter that answered the request: routing is skipped. */
#define TC_HTTP_FILTER_DONE 1

/** @brief Frees a filter's user data when the server is freed. */
typedef void (*tc_http_free_cb)(void *user);

/**
 * @brief Install a filter that sees every request before routing (one per server; the captive portal uses it).
 * The filter answers and returns TC_HTTP_FILTER_DONE, returns 0 to let routing go on, or a negative code (500).
 * @param free_user  called with user when the server is freed, may be NULL
 * @return TC_OK, TC_EINVAL, TC_EBUSY (a filter is already installed)
 */
int tc_http_set_filter(tc_http_t *http, tc_http_handler_cb filter, void *user, tc_http_free_cb free_user);

/** @brief The user data of the installed filter, or NULL. */
void *tc_http_filter_user(const tc_http_t *http);

/* ---- requests ---- */

/** @brief The method name ("GET"); *len receives its length. Not NUL-terminated. */
const char *tc_http_req_method(const tc_http_req_t *req, size_t *len);

/** @brief The decoded path (NUL-terminated, without the query). */
const char *tc_http_req_path(const tc_http_req_t *req);

/** @brief The raw query string after '?' (NUL-terminated, "" when none). */
const char *tc_http_req_query(const tc_http_req_t *req);

/**
 * @brief A header value by case-insensitive name; NULL when absent. Not NUL-terminated.
 * @param len  receives the value's length
 */
const char *tc_http_req_header(const tc_http_req_t *req, const char *name, size_t *len);

/**
 * @brief The host the request is for: the authority of an absolute-form target ("GET http://host/ HTTP/1.1",
 * RFC 9112 3.2.2: it wins over the Host field), else the Host field; NULL when neither. Not NUL-terminated; may
 * include a port.
 * @param len  receives the length
 */
const char *tc_http_req_host(const tc_http_req_t *req, size_t *len);

/** @brief A path parameter of the matched route (":id" → "id"); NULL when absent. Not NUL-terminated. */
const char *tc_http_req_param(const tc_http_req_t *req, const char *name, size_t *len);

/** @brief The request body of a buffered route (complete when the handler runs; bounded by the route's limit).
 * Routes that take the body in pieces (tc_http_route_body() with a body_cb) get "" here. */
const void *tc_http_req_body(const tc_http_req_t *req, size_t *len);

/** @brief The declared Content-Length, or -1 for a chunked body (length unknown until its end). 0: no body. */
int64_t tc_http_req_content_length(const tc_http_req_t *req);

/** @brief Body bytes received so far (pieces delivered, or bytes buffered). */
uint64_t tc_http_req_body_received(const tc_http_req_t *req);

/** @brief Attach the handler's own state to the request (e.g. an upload's sink); the handler frees it (at END after
 * answering, or at TC_HTTP_BODY_ABORT). Loop thread only. */
void tc_http_req_set_data(tc_http_req_t *req, void *data);

/** @brief Have the request's data (tc_http_req_set_data()) freed with the request, however it ends: answered, its
 * stream ended or its client gone (a producer is not told when a viewer leaves). free_data gets the data pointer
 * current at that moment (possibly NULL). Loop thread only. */
void tc_http_req_set_data_free(tc_http_req_t *req, tc_http_free_cb free_data);

/** @brief The state attached with tc_http_req_set_data(), or NULL. */
void *tc_http_req_data(const tc_http_req_t *req);

/** @brief The connection that carries the request. */
tc_conn_t *tc_http_req_conn(const tc_http_req_t *req);

/** @brief The server of the request. */
tc_http_t *tc_http_req_server(const tc_http_req_t *req);

/* ---- responses ---- */

/**
 * @brief Add a response header (before the response starts). Values with CR or LF are refused (header injection).
 * A Vary value joins the Vary field already there (one list, each token once: "Vary: Origin, Accept-Encoding").
 * @return TC_OK, TC_EINVAL (CR/LF or a started response), TC_ELIMIT (too many extra headers), TC_ENOMEM
 */
int tc_http_resp_header(tc_http_req_t *req, const char *name, const char *value);

/**
 * @brief Answer with a whole body (Content-Length). For HEAD the body is not sent. Ends the request.
 * @param ctype  Content-Type, or NULL for none
 * @return TC_OK, TC_EINVAL (already answered), TC_ECLOSED (connection gone), TC_ELIMIT / TC_ENOMEM
 */
int tc_http_respond(tc_http_req_t *req, int status, const char *ctype, const void *body, size_t len);

/**
 * @brief Start a streamed response; produce is called whenever the socket can take more, until it returns
 * TC_HTTP_STREAM_END, the client goes, or the server stops (then the stream ends cleanly, last chunk sent).
 * @return TC_OK, TC_EINVAL, TC_ECLOSED
 */
int tc_http_stream(tc_http_req_t *req, tc_http_stream_kind_t kind, const char *ctype, tc_http_produce_cb produce,
                   void *user);

/**
 * @brief Write one part of a stream (a chunk, a JPEG frame with its part headers, or an SSE event's data).
 * Call from the producer. A part is queued whole (framing and data) or not at all, so a stream is never corrupted.
 * A viewer that does not read costs at most one queued part: when tc_http_stream_ready() is 1 the part is always
 * taken, whatever its size (a part larger than the queue limit, e.g. a 2 MB frame with a 1 MiB queue, goes in once
 * the queue has drained to low water). After TC_ELIMIT, return 0 from the producer: it is asked again only when the
 * stream is ready again (TC_EV_DRAINED), never in a busy loop.
 * @return TC_OK, TC_ELIMIT (not ready: nothing queued, try when asked again), TC_ECLOSED, TC_EINVAL (SSE data with a
 *         CR or LF), TC_ENOMEM (nothing queued, or the connection is aborted when part of the part was already out)
 */
int tc_http_stream_write(tc_http_req_t *req, const void *data, size_t len);

/**
 * @brief Start a streamed response of known length (a large file, a byte range): status with Content-Length: length;
 * produce is called as the socket drains and writes the body raw with tc_http_stream_write(), exactly length bytes
 * in all (a write past them: TC_EINVAL), then returns TC_HTTP_STREAM_END; the connection then serves its next
 * request. A body ended short (the producer gave up, the server stopped) closes the connection after the bytes
 * written, so the client sees it truncated, never complete. HEAD and length 0: the head only. Extra headers
 * (Content-Range, ETag) are set before with tc_http_resp_header(). Loop thread.
 * @param status  200, 206, ... (not 1xx, 204 or 304: they have no body)
 * @return TC_OK, TC_EINVAL, TC_ECLOSED, or a send error
 */
int tc_http_stream_sized(tc_http_req_t *req, int status, const char *ctype, uint64_t length,
                         tc_http_produce_cb produce, void *user);

/** @brief 1 when the stream's socket can take another part now. */
int tc_http_stream_ready(const tc_http_req_t *req);

/* ---- WebSockets ---- */

/** @brief Send a text (opcode 1) or binary (opcode 2) message. @return TC_OK, TC_EINVAL, TC_ECLOSED, TC_ELIMIT. */
int tc_ws_send(tc_ws_t *ws, int opcode, const void *data, size_t len);

/** @brief Start the close handshake with a code and a short reason. @return TC_OK, TC_ECLOSED. */
int tc_ws_close(tc_ws_t *ws, uint16_t code, const char *reason);

/** @brief The connection under the WebSocket. */
tc_conn_t *tc_ws_conn(const tc_ws_t *ws);

/**
 * @brief Send a message to every open WebSocket of the route with this pattern (slow clients whose queue is full
 * are skipped, never waited for).
 * @return the number of clients it was queued to, or TC_ENOTFOUND for an unknown pattern
 */
int tc_ws_broadcast(tc_http_t *http, const char *pattern, int opcode, const void *data, size_t len);

/* ---- stop ---- */

/**
 * @brief The HTTP server as a handle (tc_handle.h). Its stop refuses new connections, lets in-flight requests finish,
 * ends streams (last chunk sent), closes WebSockets with 1001 and aborts what is left at the deadline; the report
 * counts requests_finished, streams_ended, websockets_closed and the connections closed gracefully or forced. The
 * server is freed before the stop's callback runs.
 * @param http  the server (NULL gives NULL)
 * @return its handle, valid until the stop completes
 */
tc_handle_t *tc_http_handle(tc_http_t *http);

/** @brief Reason phrase of a status code ("Not Found"); "Unknown" for others. */
const char *tc_http_status_text(int status);

#ifdef __cplusplus
}
#endif
