/*
 * tc_http_internal.h - what the HTTP server's files share and nobody else: the connection, request, WebSocket and
 * route records, and the few functions one file calls in another.
 *
 *   tc_http.c         connections, the request path (head, body), dispatch, responses, the sweep, start and stop
 *   tc_http_route.c   the route table, route matching and path decoding
 *   tc_http_stream.c  streamed responses: chunked, MJPEG, SSE producers
 *   tc_ws.c           WebSocket sessions (tc_ws_codec.c is their pure frame codec)
 *
 * Loop thread only, like everything they are called from.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_http.h"
#include "tc_http_parser.h"
#include "tc_http_route.h"
#include "tc_internal.h"
#include "tc_ws_codec.h"

#define MAX_PARAMS 4

typedef struct route route_t;
struct route {
    route_t *next;
    unsigned methods;
    tc_http_handler_cb cb;
    tc_ws_cb ws_cb;
    tc_http_body_cb body_cb; /* body in pieces (tc_http_route_body()); NULL: buffered whole */
    uint64_t max_body;       /* this route's body limit; 0: the server's max_body (buffered) or none (pieces) */
    uint8_t own_cors;        /* added by tc_http_cors_route(): its policy, not the server's default */
    uint8_t fallback;        /* static files: only for a path no other route has, for any method */
    void *user;
    char pattern[];
};

typedef enum {
    HC_IDLE = 0, /* between requests */
    HC_HEAD,     /* receiving a request head */
    HC_BODY,     /* receiving a request body */
    HC_HANDLER,  /* a handler has the request and has not answered yet */
    HC_STREAM,   /* a streamed response is running */
    HC_WS,       /* WebSocket */
    HC_DONE,     /* closing: input is ignored */
} hc_state_t;

typedef struct hconn hconn_t;

struct tc_ws {
    hconn_t *hc;
    route_t *route;
    char *msg; /* message being assembled (fragments) */
    size_t msg_len, msg_cap;
    uint8_t msg_opcode; /* 0: no message open */
    uint8_t close_sent;
    uint8_t close_received;
    uint8_t opened;
    tc_ws_utf8_t utf8;
    uint64_t last_ping; /* loop ms of the last ping sent */
    uint8_t awaiting_pong; /* a ping is outstanding: any frame from the peer answers it */
    uint16_t close_code;
};

struct tc_http_req {
    tc_http_t *h;
    hconn_t *hc;
    route_t *route;
    tc_http_request_t parsed; /* slices into the input buffer, then into head; the parser's progress between them */
    char *head;               /* the input buffer the head arrived in, the request's from its end on */
    const char *path;         /* decoded in place in head (or the constant "/") */
    const char *query;
    char *body; /* buffered routes: grows with the bytes received, never with a declared length */
    size_t body_len, body_cap;
    uint64_t body_left;       /* Content-Length bytes still to come */
    uint64_t body_total;      /* body bytes received so far */
    uint64_t win_start;       /* minimum-rate window: loop ms when it began */
    uint64_t win_base;        /* body_total when it began */
    tc_timer_t body_timer;    /* pieces: resumes delivery after tc_http_req_body_resume() */
    uint8_t body_pending;     /* a body is announced and not completely received */
    uint8_t body_paused;      /* pieces: the handler asked for a pause (TC_HTTP_BODY_PAUSE) */
    uint8_t handed;           /* the handler has seen the request */
    uint8_t aborting;         /* TC_HTTP_BODY_ABORT is being delivered: the request is freed after it */
    uint8_t body_ended;       /* every body byte arrived; END waits for the end of a pause */
    unsigned allowed;         /* no route matched the method: the methods the path allows (405) */
    void *data;               /* the handler's (tc_http_req_set_data()) */
    tc_http_free_cb data_free; /* frees data with the request (tc_http_req_set_data_free()) */
    tc_http_chunked_t chunked; /* chunked body decoder */
    uint8_t is_chunked;
    uint8_t head_only;
    uint8_t keep_alive;
    uint8_t answered;
    uint8_t streaming;
    uint8_t stream_kind;
    uint8_t out_chunked; /* HTTP/1.1 streams: parts inside chunks (the end is delimited without our FIN); 1.0: raw */
    uint8_t in_stop; /* counted as in flight when the stop began */
    int nparams;
    tc_http_param_t params[MAX_PARAMS];
    char *xh; /* extra response headers, "Name: value\r\n" lines */
    size_t xh_len;
    tc_http_produce_cb produce;
    void *produce_user;
    tc_timer_t stream_timer;
    uint64_t last_write;    /* loop ms of the last part written (SSE heartbeats) */
    uint64_t taken_ms;      /* loop ms when the viewer was last seen taking what we sent (tc__stream_liveness()) */
    uint8_t stream_waiting; /* waiting for TC_EV_DRAINED */
    uint64_t stream_left;   /* TC__STREAM_SIZED: body bytes still to write (Content-Length minus written) */
    tc_http_header_t headers[]; /* the server's max_headers of them */
};

/* tc_http_stream_sized()'s kind, after the public tc_http_stream_kind_t values: raw writes under a Content-Length. */
#define TC__STREAM_SIZED 4

/* Per connection, kept small: an idle keep-alive connection costs this plus its tc_conn and nothing else (no
 * buffer, no list links: the server's connections are walked instead, and the tc_http_t is the owner's). */
struct hconn {
    tc_conn_t *c;
    char *buf; /* unparsed input; NULL when nothing waits */
    tc_http_req_t *req;
    tc_ws_t *ws;
    uint32_t len, cap;
    uint32_t head_started; /* in HC_HEAD: loop ms (low 32 bits) when the head's first byte came */
    uint8_t state;
    uint8_t processing;
    uint8_t wait_drain; /* pipelined input waits for the answers to drain (TC_EV_DRAINED) */
    uint8_t peer_eof;   /* the client half-closed after requests still being answered: close once they are */
};

#define HC_HTTP(hc) ((tc_http_t *)tc__conn_owner_user((hc)->c))
#define HC_BUF_MAX 0x7fffffffu /* input buffer bound whatever the configured limits */

struct tc_http {
    tc_handle_t h; /* first: tc_handle.h (h.stopping, h.report: what the stop counts) */
    tc_http_config_t cfg;
    tc_loop_t *loop;
    tc_server_t *srv;
    route_t *routes, *routes_tail;
    tc_timer_t sweep;
    tc_http_handler_cb filter; /* runs before routing (captive portal) */
    void *filter_user;
    tc_http_free_cb filter_free;
};

/* tc_http.c */
/* Append received bytes to the connection's input, refusing to grow it past limit (TC_ELIMIT) or memory (TC_ENOMEM). */
int tc__hconn_append(hconn_t *hc, const void *data, size_t len, size_t limit);
/* Drop the first n bytes of the connection's input; an empty buffer is freed (an idle connection holds none). */
void tc__hconn_consume(hconn_t *hc, size_t n);
/* Queue a status line and headers (and a small body in the same send); content_length < 0: none (chunked, stream,
 * 101). Returns TC_OK or the send's error. */
int tc__http_send_head(tc_http_req_t *req, int status, const char *ctype, long long content_length,
                       const char *extra, const void *body, size_t body_len);
/* The request is answered: free it and close the connection or go back to reading the next one. */
void tc__http_req_finish(tc_http_req_t *req);
/* Free a request and everything it holds (NULL is allowed). */
void tc__http_req_free(tc_http_req_t *req);

/* tc_http_route.c */
/* The TC_HTTP_* bit of a method token, 0 for a method no route can name. */
unsigned tc__http_method_bit(tc_http_slice_t m);
/* Set req->route and its parameters, or leave it NULL with the methods the path allows in req->allowed. */
void tc__http_route_lookup(tc_http_t *h, tc_http_req_t *req);
/* Free the route table (the server is stopping). */
void tc__http_routes_free(tc_http_t *h);
/* Mark the route added last as a fallback (tc_http_static_attach()): a path that another route has, for any method,
 * is that route's (its 405 stays a 405), whichever was added first. */
void tc__http_route_fallback(tc_http_t *h);

/* tc_http_auth.c: the server-wide CORS policy's part of dispatch */
/* Mark the route added last as carrying its own CORS policy (tc_http_cors_route()). */
void tc__http_route_own_cors(tc_http_t *h);
/* Answer a preflight with the policy: 204 with its methods and headers, or 403. */
int tc__http_cors_preflight(tc_http_req_t *req, const tc_http_cors_t *cors);

/* tc_http_stream.c */
/* End the stream: cleanly (its terminator is sent) or not (reset); frees the request. */
void tc__stream_end(tc_http_req_t *req, int clean);
/* Ask the producer again at the next loop iteration. */
void tc__stream_kick(tc_http_req_t *req);
/* The sweep's look at a stream: a viewer that stopped reading is dropped, a quiet SSE stream gets a heartbeat. */
void tc__stream_liveness(tc_http_t *h, hconn_t *hc, uint64_t now);

/* tc_ws.c */
/* Answer a request for a WebSocket route: 101 and a session, or the error the handshake deserves. */
int tc__ws_upgrade(hconn_t *hc, tc_http_req_t *req);
/* Bytes received on a WebSocket connection: buffered and decoded into frames. */
void tc__ws_data(hconn_t *hc, const void *data, size_t len);
/* The sweep's look at a WebSocket: pings and the pong timeout. */
void tc__ws_liveness(tc_http_t *h, hconn_t *hc, uint64_t now);
/* The connection is gone: the session's CLOSE event, then its memory. */
void tc__ws_free(hconn_t *hc);
