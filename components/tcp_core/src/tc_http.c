/*
 * tc_http.c - HTTP/1.1 server, streams and WebSockets on tc_tcp connections.
 *
 * Per connection: a small state record (hconn_t) and an input buffer that exists only while bytes are waiting. A
 * request in flight owns one allocation holding a copy of its head, its decoded path and its parameters, so the
 * input buffer can move freely (pipelining). Nothing here blocks: handlers answer at once or later, streams are
 * producers asked when the socket can take more, and a stop ends everything by its deadline.
 */
#include <stdio.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http.h"
#include "tc_http_parser.h"
#include "tc_internal.h"
#include "tc_ws_codec.h"

#define MAX_PARAMS 4
#define SWEEP_MS 100
#define PIPELINE_SLACK 4096 /* input held beyond max_head while a response is in flight before reading stops */

typedef struct route route_t;
struct route {
    route_t *next;
    unsigned methods;
    tc_http_handler_cb cb;
    tc_ws_cb ws_cb;
    tc_http_body_cb body_cb; /* body in pieces (tc_http_route_body()); NULL: buffered whole */
    uint64_t max_body;       /* this route's body limit; 0: the server's max_body (buffered) or none (pieces) */
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
    tc_http_request_t parsed; /* slices into head */
    tc_http_header_t headers[TC_HTTP_MAX_HEADERS_CAP];
    char *head; /* copy of the request head */
    char *path;
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
    uint8_t mjpeg_chunked; /* HTTP/1.1 MJPEG: parts inside chunks, so the end is delimited without our FIN */
    uint8_t in_stop; /* counted as in flight when the stop began */
    int nparams;
    tc_http_param_t params[MAX_PARAMS];
    char *xh; /* extra response headers, "Name: value\r\n" lines */
    size_t xh_len;
    tc_http_produce_cb produce;
    void *produce_user;
    tc_timer_t stream_timer;
    uint64_t last_write;    /* loop ms of the last part written (SSE heartbeats) */
    uint8_t stream_waiting; /* waiting for TC_EV_DRAINED */
};

/* Per connection, kept small: an idle keep-alive connection costs this plus its tc_conn and nothing else (no
 * buffer, no list links: the server's own connection list is walked instead, and the tc_http_t is the owner's). */
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
};

#define HC_HTTP(hc) ((tc_http_t *)tc__conn_owner_user((hc)->c))
#define HC_BUF_MAX 0x7fffffffu /* input buffer bound whatever the configured limits */

struct tc_http {
    tc_http_config_t cfg;
    tc_loop_t *loop;
    tc_server_t *srv;
    route_t *routes, *routes_tail;
    tc_timer_t sweep;
    uint8_t stopping;
    size_t stop_bytes_before;
    tc_http_stop_report_t report;
    tc_http_stop_cb stop_cb;
    void *stop_user;
    tc_http_handler_cb filter; /* runs before routing (captive portal) */
    void *filter_user;
    tc_http_free_cb filter_free;
};

static void process(hconn_t *hc);
static void req_free(tc_http_req_t *req);
static void req_abandon(hconn_t *hc);
static void ws_input(hconn_t *hc);
static int ws_send_frame(tc_ws_t *ws, int opcode, const void *data, size_t len);
static void stream_kick(tc_http_req_t *req);

/* ---- status texts ---- */

const char *tc_http_status_text(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

/* ---- connection input buffer ---- */

static int buf_append(hconn_t *hc, const void *data, size_t len, size_t limit)
{
    if (limit > HC_BUF_MAX) {
        limit = HC_BUF_MAX;
    }
    if (len > limit || hc->len + len > limit) {
        return TC_ELIMIT;
    }
    size_t need = hc->len + len;
    if (need > hc->cap) {
        size_t cap = hc->cap ? hc->cap : 512;
        while (cap < need) {
            cap *= 2; /* at most 2 x HC_BUF_MAX, which fits 32 bits */
        }
        if (cap > HC_BUF_MAX) {
            cap = need;
        }
        char *b = tc_realloc(hc->buf, cap);
        if (b == NULL) {
            return TC_ENOMEM;
        }
        hc->buf = b;
        hc->cap = (uint32_t)cap;
    }
    memcpy(hc->buf + hc->len, data, len);
    hc->len = (uint32_t)need;
    return TC_OK;
}

static void buf_consume(hconn_t *hc, size_t n)
{
    if (n >= hc->len) {
        /* Nothing waits: an idle connection holds no buffer. */
        tc_free(hc->buf);
        hc->buf = NULL;
        hc->len = hc->cap = 0;
        return;
    }
    memmove(hc->buf, hc->buf + n, hc->len - n);
    hc->len -= (uint32_t)n;
}

/* ---- responses ---- */

static int keep_alive_for(const tc_http_req_t *req)
{
    return req->keep_alive && !req->h->stopping;
}

/* Send a status line and headers; content_length < 0 means none (chunked, stream or 101). */
static int send_head(tc_http_req_t *req, int status, const char *ctype, long long content_length, const char *extra,
                     const void *body, size_t body_len)
{
    char head[1024];
    int ka = keep_alive_for(req);
    int n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n", status, tc_http_status_text(status));
    if (ctype) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Type: %s\r\n", ctype);
    }
    if (content_length >= 0) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %lld\r\n", content_length);
    }
    if (status != 101) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, "Connection: %s\r\n", ka ? "keep-alive" : "close");
    }
    if (extra) {
        n += snprintf(head + n, sizeof(head) - (size_t)n, "%s", extra);
    }
    if ((size_t)n >= sizeof(head) - 2) {
        return TC_ELIMIT;
    }
    size_t total = (size_t)n + (req->xh ? req->xh_len : 0) + 2;
    tc_conn_t *c = req->hc->c;
    /* One send for head and small body: one segment, no Nagle interplay, fewer wake-ups for the client. */
    if (total + body_len <= 4096) {
        char one[4096];
        size_t k = (size_t)n;
        memcpy(one, head, k);
        if (req->xh) {
            memcpy(one + k, req->xh, req->xh_len);
            k += req->xh_len;
        }
        memcpy(one + k, "\r\n", 2);
        k += 2;
        if (body_len) {
            memcpy(one + k, body, body_len);
            k += body_len;
        }
        return tc_conn_send(c, one, k);
    }
    int rc = tc_conn_send(c, head, (size_t)n);
    if (rc == TC_OK && req->xh) {
        rc = tc_conn_send(c, req->xh, req->xh_len);
    }
    if (rc == TC_OK) {
        rc = tc_conn_send(c, "\r\n", 2);
    }
    if (rc == TC_OK && body_len) {
        rc = tc_conn_send(c, body, body_len);
    }
    return rc;
}

/* The request is over: close or go back to reading the next one. */
static void req_finish(tc_http_req_t *req)
{
    hconn_t *hc = req->hc;
    tc_http_t *h = req->h;
    int ka = keep_alive_for(req);
    if (req->in_stop) {
        h->report.requests_finished++;
    }
    hc->req = NULL;
    req_free(req);
    if (!ka) {
        hc->state = HC_DONE;
        tc_conn_close(hc->c, h->cfg.close_policy);
        return;
    }
    hc->state = HC_IDLE;
    tc_conn_set_reading(hc->c, 1);
    if (!hc->processing && hc->len) {
        process(hc);
    }
}

/* An error answer that ends the connection (the client's input can no longer be trusted to be in sync). */
static void fail_conn(hconn_t *hc, int status)
{
    if (hc->state == HC_DONE) {
        return;
    }
    char head[256];
    const char *text = tc_http_status_text(status);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                     status, text, strlen(text) + 1, text);
    tc_conn_send(hc->c, head, (size_t)n);
    hc->state = HC_DONE;
    req_abandon(hc);
    buf_consume(hc, hc->len);
    tc_conn_close(hc->c, HC_HTTP(hc)->cfg.close_policy);
}

int tc_http_resp_header(tc_http_req_t *req, const char *name, const char *value)
{
    if (req == NULL || name == NULL || value == NULL || req->answered) {
        return TC_EINVAL;
    }
    /* CR or LF in a name or value would let the caller's data start a new header (response splitting). */
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n") || name[0] == '\0') {
        return TC_EINVAL;
    }
    size_t add = strlen(name) + 2 + strlen(value) + 2;
    if (req->xh_len + add > 512) {
        return TC_ELIMIT;
    }
    char *x = tc_realloc(req->xh, req->xh_len + add + 1);
    if (x == NULL) {
        return TC_ENOMEM;
    }
    req->xh = x;
    snprintf(req->xh + req->xh_len, add + 1, "%s: %s\r\n", name, value);
    req->xh_len += add;
    return TC_OK;
}

int tc_http_respond(tc_http_req_t *req, int status, const char *ctype, const void *body, size_t len)
{
    if (req == NULL || req->answered || status < 100 || status > 999) {
        return TC_EINVAL;
    }
    if (req->aborting) {
        return TC_ECLOSED; /* inside TC_HTTP_BODY_ABORT: freed when the callback returns */
    }
    req->answered = 1;
    if (req->hc == NULL) {
        req_free(req); /* the connection went away while the handler was working */
        return TC_ECLOSED;
    }
    if (req->body_pending) {
        /* Answered before the whole body came (a refused upload): the rest is not read, so the connection cannot
         * carry another request. */
        req->keep_alive = 0;
    }
    /* RFC 9110 8.6: no Content-Length in a 204; a 304's would describe the 200 it stands for, so none either. */
    int no_body = status == 204 || status == 304;
    int rc = send_head(req, status, ctype, no_body ? -1 : (long long)len, NULL,
                       req->head_only || no_body ? NULL : body, req->head_only || no_body ? 0 : len);
    if (rc != TC_OK) {
        fail_conn(req->hc, 500);
        return rc;
    }
    req_finish(req);
    return TC_OK;
}

/* ---- streams ---- */

static const char MJPEG_BOUNDARY[] = "tcpcoreframe";

static void stream_end(tc_http_req_t *req, int clean)
{
    hconn_t *hc = req->hc;
    tc__timer_disarm(&req->stream_timer);
    if (clean) {
        if (req->stream_kind == TC_HTTP_STREAM_MJPEG && req->mjpeg_chunked) {
            tc_conn_send(hc->c, "12\r\n--tcpcoreframe--\r\n\r\n0\r\n\r\n", 29);
        } else if (req->stream_kind == TC_HTTP_STREAM_MJPEG) {
            tc_conn_send(hc->c, "--tcpcoreframe--\r\n", 18);
        } else {
            tc_conn_send(hc->c, "0\r\n\r\n", 5);
        }
        if (req->h->stopping) {
            req->h->report.streams_ended++;
        }
    }
    /* MJPEG is close-delimited; a chunked or SSE stream that ended cleanly is a finished response, and the
     * connection goes back to keep-alive like any other. */
    if ((req->stream_kind == TC_HTTP_STREAM_MJPEG && !req->mjpeg_chunked) || !clean) {
        req->keep_alive = 0;
    } else {
        tc__conn_reg_flags(hc->c, 0, TC_REG_FLAG_STREAMING);
        tc_conn_set_role(hc->c, TC_ROLE_HTTP);
        req_finish(req);
        return;
    }
    tc_conn_t *c = hc->c;
    int graceful = clean && req->stream_kind == TC_HTTP_STREAM_MJPEG;
    hc->state = HC_DONE;
    hc->req = NULL;
    req_free(req);
    /* A close-delimited stream must end with our FIN, or the viewer cannot tell the end from a stall. */
    tc_conn_close(c, clean ? (graceful ? TC_CLOSE_GRACEFUL : HC_HTTP(hc)->cfg.close_policy) : TC_CLOSE_ABORT);
}

static void stream_call(tc_http_req_t *req)
{
    hconn_t *hc = req->hc;
    req->stream_waiting = 0;
    if (HC_HTTP(hc)->stopping) {
        stream_end(req, 1);
        return;
    }
    if (!tc_http_stream_ready(req)) {
        /* Asked only when a part fits (TC_EV_DRAINED brings it back): a producer whose first write would be refused
         * (pipelined answers queued ahead of the stream) is not made to fail, nor polled in a loop. */
        req->stream_waiting = 1;
        return;
    }
    int64_t next = req->produce(req, req->produce_user);
    if (next == TC_HTTP_STREAM_END) {
        stream_end(req, 1);
        return;
    }
    if (next < 0) {
        stream_end(req, 0);
        return;
    }
    if (next > 0) {
        tc__timer_arm(&req->stream_timer, (uint64_t)next);
    } else if (!tc_http_stream_ready(req)) {
        req->stream_waiting = 1; /* TC_EV_DRAINED brings us back */
    } else {
        tc__timer_arm(&req->stream_timer, 0); /* next iteration: never spin inside one */
    }
}

static int64_t stream_timer_cb(tc_timer_t *t, void *user)
{
    (void)t;
    stream_call(user);
    return TC_TIMER_STOP;
}

static void stream_kick(tc_http_req_t *req)
{
    tc__timer_arm(&req->stream_timer, 0);
}

int tc_http_stream(tc_http_req_t *req, tc_http_stream_kind_t kind, const char *ctype, tc_http_produce_cb produce,
                   void *user)
{
    if (req == NULL || produce == NULL || req->answered || req->body_pending || kind < TC_HTTP_STREAM_CHUNKED ||
        kind > TC_HTTP_STREAM_SSE) {
        return TC_EINVAL;
    }
    if (req->hc == NULL) {
        return TC_ECLOSED;
    }
    char ct[128];
    const char *extra = "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n";
    if (kind == TC_HTTP_STREAM_MJPEG) {
        snprintf(ct, sizeof(ct), "multipart/x-mixed-replace;boundary=%s", MJPEG_BOUNDARY);
        ctype = ct;
        /* HTTP/1.1 viewers get the multipart body in chunks: its end is then delimited (the last chunk), so the
         * server need not close first to end it, and TIME-WAIT stays with the viewer. HTTP/1.0 has no chunks:
         * the body ends with the connection. */
        req->mjpeg_chunked = req->parsed.minor == 1;
        if (!req->mjpeg_chunked) {
            extra = "Cache-Control: no-cache\r\n";
            req->keep_alive = 0;
        }
    } else if (kind == TC_HTTP_STREAM_SSE) {
        ctype = "text/event-stream";
    } else if (ctype == NULL) {
        ctype = "application/octet-stream";
    }
    req->answered = 1;
    req->streaming = 1;
    req->stream_kind = (uint8_t)kind;
    req->produce = produce;
    req->produce_user = user;
    int rc = send_head(req, 200, ctype, -1, extra, NULL, 0);
    if (rc != TC_OK) {
        return rc;
    }
    if (req->head_only) {
        req_finish(req);
        return TC_OK;
    }
    req->hc->state = HC_STREAM;
    tc__conn_reg_flags(req->hc->c, TC_REG_FLAG_STREAMING, 0);
    tc_conn_set_role(req->hc->c, kind == TC_HTTP_STREAM_SSE ? TC_ROLE_SSE : TC_ROLE_STREAM);
    tc_conn_set_reading(req->hc->c, 1); /* to see the viewer leave */
    tc__timer_init(req->h->loop, &req->stream_timer, stream_timer_cb, req);
    req->last_write = tc_loop_now(req->h->loop);
    stream_kick(req);
    return TC_OK;
}

int tc_http_stream_ready(const tc_http_req_t *req)
{
    return req && req->hc && tc_conn_queued(req->hc->c) <= TC_CFG_WRITE_LOW_WATER;
}

int tc_http_stream_write(tc_http_req_t *req, const void *data, size_t len)
{
    if (req == NULL || !req->streaming || (data == NULL && len > 0)) {
        return TC_EINVAL;
    }
    if (req->hc == NULL) {
        return TC_ECLOSED;
    }
    tc_conn_t *c = req->hc->c;
    if (tc_conn_queued(c) > TC_CFG_WRITE_HIGH_WATER) {
        return TC_ELIMIT; /* a viewer that does not read gets no more than this queued */
    }
    /* One part is one message: its framing and data are queued whole or not at all (tc_conn_sendv()). A chunk header
     * sent without its data (the queue limit refusing the frame) corrupted every later frame of a slow viewer. */
    char size[24], pre[128];
    tc_buf_t m[4];
    size_t k = 0;
    if (req->stream_kind == TC_HTTP_STREAM_MJPEG) {
        int n = snprintf(pre, sizeof(pre), "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\n\r\n",
                         MJPEG_BOUNDARY, len);
        if (req->mjpeg_chunked) {
            int sn = snprintf(size, sizeof(size), "%zx\r\n", (size_t)n + len + 2);
            m[k++] = (tc_buf_t){size, (size_t)sn};
        }
        m[k++] = (tc_buf_t){pre, (size_t)n};
        m[k++] = (tc_buf_t){data, len};
        m[k++] = (tc_buf_t){req->mjpeg_chunked ? "\r\n\r\n" : "\r\n", req->mjpeg_chunked ? 4u : 2u};
    } else if (req->stream_kind == TC_HTTP_STREAM_SSE) {
        /* One event: "data: ...\n\n" inside one chunk; the data must not hold newlines (each would end a field). */
        if (memchr(data, '\n', len) || memchr(data, '\r', len)) {
            return TC_EINVAL;
        }
        int n = snprintf(pre, sizeof(pre), "%zx\r\ndata: ", len + 8);
        m[k++] = (tc_buf_t){pre, (size_t)n};
        m[k++] = (tc_buf_t){data, len};
        m[k++] = (tc_buf_t){"\n\n\r\n", 4};
    } else {
        if (len == 0) {
            return TC_OK; /* an empty chunk would end the body */
        }
        int n = snprintf(pre, sizeof(pre), "%zx\r\n", len);
        m[k++] = (tc_buf_t){pre, (size_t)n};
        m[k++] = (tc_buf_t){data, len};
        m[k++] = (tc_buf_t){"\r\n", 2};
    }
    int rc = tc_conn_sendv(c, m, k);
    if (rc == TC_OK) {
        req->last_write = tc_loop_now(req->h->loop); /* SSE heartbeats count from the last part sent */
    }
    return rc;
}

/* ---- requests ---- */

static void req_free(tc_http_req_t *req)
{
    if (req == NULL) {
        return;
    }
    if (req->streaming && req->stream_timer.loop) {
        tc__timer_disarm(&req->stream_timer);
    }
    if (req->body_timer.loop) {
        tc__timer_disarm(&req->body_timer);
    }
    if (req->hc != NULL) {
        tc__conn_reg_flags(req->hc->c, 0, TC_REG_FLAG_BUSY);
    }
    if (req->data_free != NULL) {
        req->data_free(req->data); /* e.g. a streamed file whose viewer left: the producer is not asked again */
    }
    tc_free(req->head);
    tc_free(req->path);
    tc_free(req->body);
    tc_free(req->xh);
    tc_free(req);
}

const char *tc_http_req_method(const tc_http_req_t *req, size_t *len)
{
    if (len) {
        *len = req->parsed.method.len;
    }
    return req->parsed.method.ptr;
}

const char *tc_http_req_path(const tc_http_req_t *req)
{
    return req->path;
}

const char *tc_http_req_query(const tc_http_req_t *req)
{
    return req->query;
}

const char *tc_http_req_header(const tc_http_req_t *req, const char *name, size_t *len)
{
    tc_http_slice_t v;
    if (tc_http_header_find(&req->parsed, name, &v) != 0) {
        return NULL;
    }
    if (len) {
        *len = v.len;
    }
    return v.ptr;
}

const char *tc_http_req_host(const tc_http_req_t *req, size_t *len)
{
    /* RFC 9112 3.2.2: with an absolute-form target ("GET http://example.com/ HTTP/1.1", what proxies and some
     * captive-portal probes send) the authority of the target wins over the Host field. */
    tc_http_slice_t t = req->parsed.target;
    const char *sep = t.len > 3 && t.ptr[0] != '/' ? memchr(t.ptr, ':', t.len) : NULL;
    if (sep != NULL && (size_t)(t.ptr + t.len - sep) >= 3 && sep[1] == '/' && sep[2] == '/') {
        const char *a = sep + 3, *end = t.ptr + t.len;
        size_t n = 0;
        while (a + n < end && a[n] != '/' && a[n] != '?' && a[n] != '#') {
            n++;
        }
        const char *at = memchr(a, '@', n); /* userinfo is not part of the host */
        if (at != NULL) {
            n -= (size_t)(at + 1 - a);
            a = at + 1;
        }
        if (len) {
            *len = n;
        }
        return a;
    }
    return tc_http_req_header(req, "host", len);
}

const char *tc_http_req_param(const tc_http_req_t *req, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (int i = 0; i < req->nparams; i++) {
        if (req->params[i].name.len == nl && memcmp(req->params[i].name.ptr, name, nl) == 0) {
            if (len) {
                *len = req->params[i].value.len;
            }
            return req->params[i].value.ptr;
        }
    }
    return NULL;
}

const void *tc_http_req_body(const tc_http_req_t *req, size_t *len)
{
    if (len) {
        *len = req->body_len;
    }
    return req->body ? req->body : "";
}

int64_t tc_http_req_content_length(const tc_http_req_t *req)
{
    return req->parsed.chunked ? -1 : (int64_t)req->parsed.content_length;
}

uint64_t tc_http_req_body_received(const tc_http_req_t *req)
{
    return req->body_total;
}

void tc_http_req_set_data_free(tc_http_req_t *req, tc_http_free_cb free_data)
{
    req->data_free = free_data;
}

void tc_http_req_set_data(tc_http_req_t *req, void *data)
{
    req->data = data;
}

void *tc_http_req_data(const tc_http_req_t *req)
{
    return req->data;
}

tc_conn_t *tc_http_req_conn(const tc_http_req_t *req)
{
    return req->hc ? req->hc->c : NULL;
}

tc_http_t *tc_http_req_server(const tc_http_req_t *req)
{
    return req->h;
}

static unsigned method_bit(tc_http_slice_t m)
{
    static const struct {
        const char *name;
        unsigned bit;
    } table[] = {
        {"GET", TC_HTTP_GET},         {"HEAD", TC_HTTP_HEAD},   {"POST", TC_HTTP_POST},   {"PUT", TC_HTTP_PUT},
        {"DELETE", TC_HTTP_DELETE}, {"OPTIONS", TC_HTTP_OPTIONS}, {"PATCH", TC_HTTP_PATCH},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strlen(table[i].name) == m.len && memcmp(table[i].name, m.ptr, m.len) == 0) {
            return table[i].bit;
        }
    }
    return 0;
}

static void dispatch(hconn_t *hc, tc_http_req_t *req);

static int ws_upgrade(hconn_t *hc, tc_http_req_t *req)
{
    tc_http_slice_t up, conn, ver, key;
    if (tc_http_header_find(&req->parsed, "upgrade", &up) != 0 || !tc_http_list_has(up, "websocket") ||
        tc_http_header_find(&req->parsed, "connection", &conn) != 0 || !tc_http_list_has(conn, "upgrade")) {
        tc_http_resp_header(req, "Upgrade", "websocket");
        tc_http_resp_header(req, "Sec-WebSocket-Version", "13");
        return tc_http_respond(req, 426, "text/plain", "websocket upgrade required\n", 27);
    }
    if (tc_http_header_find(&req->parsed, "sec-websocket-version", &ver) != 0 || ver.len != 2 ||
        memcmp(ver.ptr, "13", 2) != 0) {
        tc_http_resp_header(req, "Sec-WebSocket-Version", "13");
        return tc_http_respond(req, 426, "text/plain", "unsupported websocket version\n", 30);
    }
    char accept[TC_WS_ACCEPT_LEN + 1];
    /* RFC 6455 11.3.1: Sec-WebSocket-Key must not appear more than once in a request. */
    if (tc_http_header_count(&req->parsed, "sec-websocket-key") != 1 ||
        tc_http_header_find(&req->parsed, "sec-websocket-key", &key) != 0 ||
        tc_ws_accept_key(key.ptr, key.len, accept) != 0) {
        return tc_http_respond(req, 400, "text/plain", "bad Sec-WebSocket-Key\n", 22);
    }
    tc_ws_t *ws = tc_calloc(1, sizeof(*ws));
    if (ws == NULL) {
        return tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
    }
    char extra[96];
    snprintf(extra, sizeof(extra), "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n", accept);
    req->answered = 1;
    int rc = send_head(req, 101, NULL, -1, extra, NULL, 0);
    if (rc != TC_OK) {
        tc_free(ws);
        return rc;
    }
    ws->hc = hc;
    ws->route = req->route;
    ws->last_ping = tc_loop_now(HC_HTTP(hc)->loop);
    hc->ws = ws;
    hc->state = HC_WS;
    hc->req = NULL;
    route_t *route = req->route;
    req_free(req);
    tc_conn_set_reading(hc->c, 1);
    tc__conn_reg_flags(hc->c, TC_REG_FLAG_STREAMING, 0);
    tc_conn_set_role(hc->c, TC_ROLE_WS);
    ws->opened = 1;
    route->ws_cb(ws, TC_WS_EV_OPEN, NULL, 0, route->user);
    return TC_OK;
}

/* The route of a request: req->route and its parameters, or NULL with the methods the path allows (405) or none
 * (404) in req->allowed. Done once, when the head is complete: the body's limit and mode depend on it. */
static void route_lookup(tc_http_t *h, tc_http_req_t *req)
{
    unsigned mbit = method_bit(req->parsed.method);
    for (route_t *r = h->routes; r; r = r->next) {
        int n = tc_http_route_match(r->pattern, req->path, req->params, MAX_PARAMS);
        if (n < 0) {
            continue;
        }
        unsigned m = r->methods | ((r->methods & TC_HTTP_GET) ? TC_HTTP_HEAD : 0);
        if (!(m & mbit)) {
            req->allowed |= m;
            continue;
        }
        req->nparams = n;
        req->route = r;
        return;
    }
}

/* Hand the request to the filter and its route: when the body is complete, or as soon as the head is for a route
 * that takes its body in pieces (then the connection stays in HC_BODY and keeps reading). */
static void dispatch(hconn_t *hc, tc_http_req_t *req)
{
    tc_http_t *h = HC_HTTP(hc);
    req->handed = 1;
    hc->state = req->body_pending ? HC_BODY : HC_HANDLER;
    if (h->filter) {
        int frc = h->filter(req, h->filter_user);
        if (frc == TC_HTTP_FILTER_DONE || hc->req != req || req->answered) {
            return; /* answered (the request may already be freed: check hc->req before touching req) */
        }
        if (frc < 0) {
            tc_http_respond(req, 500, "text/plain", "filter failed\n", 14);
            return;
        }
    }
    route_t *r = req->route;
    if (r != NULL) {
        if (r->ws_cb) {
            ws_upgrade(hc, req);
            return;
        }
        int rc = r->cb(req, r->user);
        if (hc->req == req && !req->answered) {
            if (rc < 0) {
                tc_http_respond(req, 500, "text/plain", "handler failed\n", 15);
            } else if (r->body_cb == NULL) {
                /* Answered later from the loop: stop reading so pipelined requests wait their turn. */
                tc_conn_set_reading(hc->c, 0);
            }
        }
        return;
    }
    if (req->allowed) {
        char allow[96];
        size_t k = 0;
        static const char *names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
        for (unsigned i = 0; i < 7; i++) {
            if (req->allowed & (1u << i)) {
                k += (size_t)snprintf(allow + k, sizeof(allow) - k, "%s%s", k ? ", " : "", names[i]);
            }
        }
        tc_http_resp_header(req, "Allow", allow);
        tc_http_respond(req, 405, "text/plain", "method not allowed\n", 19);
        return;
    }
    tc_http_respond(req, 404, "text/plain", "not found\n", 10);
}

/* The whole body is in: a route taking pieces gets END, a buffered one its handler. */
static void body_complete(hconn_t *hc)
{
    tc_http_req_t *req = hc->req;
    route_t *r = req->route;
    req->body_pending = 0;
    req->body_ended = 1;
    hc->state = HC_HANDLER;
    if (r == NULL || r->body_cb == NULL || !req->handed) {
        dispatch(hc, req);
        return;
    }
    r->body_cb(req, TC_HTTP_BODY_END, NULL, (size_t)req->body_total, r->user);
    if (hc->req == req && !req->answered) {
        tc_conn_set_reading(hc->c, 0); /* answered later: pipelined requests wait their turn */
    }
}

/* Delivery resumes from the loop after tc_http_req_body_resume(), never inside the handler's call. */
static int64_t body_timer_cb(tc_timer_t *t, void *user)
{
    (void)t;
    tc_http_req_t *req = user;
    hconn_t *hc = req->hc;
    if (hc == NULL || hc->req != req || hc->state != HC_BODY || req->body_paused) {
        return TC_TIMER_STOP;
    }
    if (req->body_ended) {
        body_complete(hc);
    } else if (hc->len) {
        process(hc);
    }
    return TC_TIMER_STOP;
}

int tc_http_req_body_resume(tc_http_req_t *req)
{
    if (req == NULL || req->route == NULL || req->route->body_cb == NULL) {
        return TC_EINVAL;
    }
    if (req->hc == NULL || req->aborting) {
        return TC_ECLOSED;
    }
    if (!req->body_paused) {
        return TC_OK;
    }
    req->body_paused = 0;
    req->win_start = tc_loop_now(req->h->loop);
    req->win_base = req->body_total;
    tc_conn_set_reading(req->hc->c, 1);
    tc__timer_arm(&req->body_timer, 0);
    return TC_OK;
}

/* The connection no longer carries its request (closed, failed, timed out): free it, unless a handler holds it to
 * answer later (tc_http_respond() frees it then). A route taking pieces is told with TC_HTTP_BODY_ABORT, so the
 * request is freed here whatever stage it reached: head, body, or waiting for its answer. */
static void req_abandon(hconn_t *hc)
{
    tc_http_req_t *req = hc->req;
    if (req == NULL) {
        return;
    }
    hc->req = NULL;
    route_t *r = req->route;
    if (req->answered || req->streaming || !req->handed) {
        req_free(req); /* answered, or still in its head or buffered body: nobody else has it */
        return;
    }
    req->hc = NULL;
    if (r != NULL && r->body_cb != NULL) {
        req->aborting = 1;
        r->body_cb(req, TC_HTTP_BODY_ABORT, NULL, (size_t)req->body_total, r->user);
        req_free(req);
    }
}

/* Start a request from a complete head of n bytes at the front of the buffer. */
static int begin_request(hconn_t *hc, const tc_http_request_t *parsed, size_t n)
{
    tc_http_t *h = HC_HTTP(hc);
    tc_http_req_t *req = tc_calloc(1, sizeof(*req));
    char *head = tc_malloc(n);
    /* One allocation for the decoded path and a NUL-terminated copy of the query after it: the query's slice in
     * the head is followed by " HTTP/1.1", not by a NUL, and tc_http_req_query() promises a C string. */
    size_t path_cap = parsed->path.len + 1;
    char *path = tc_malloc(path_cap + parsed->query.len + 1);
    if (req == NULL || head == NULL || path == NULL) {
        tc_free(req);
        tc_free(head);
        tc_free(path);
        fail_conn(hc, 503);
        return -1;
    }
    memcpy(head, hc->buf, n);
    /* Rebase the parser's slices from the input buffer onto the copy. */
    req->parsed = *parsed;
    tc_http_request_rebase(&req->parsed, hc->buf, head, req->headers);
    req->head = head;
    req->h = h;
    req->hc = hc;
    req->in_stop = h->stopping;
    hc->req = req;
    tc__conn_reg_flags(hc->c, TC_REG_FLAG_BUSY, 0); /* a request in flight is not evicted (TC_FULL_EVICT_IDLE) */
    int dl = tc_http_path_decode(req->parsed.path.ptr, req->parsed.path.len, path, path_cap);
    if (dl < 0) {
        tc_free(path);
        fail_conn(hc, 400);
        return -1;
    }
    req->path = path;
    char *query = path + path_cap;
    if (parsed->query.len > 0) {
        memcpy(query, parsed->query.ptr, parsed->query.len);
    }
    query[parsed->query.len] = '\0';
    req->query = query;
    req->keep_alive = parsed->keep_alive;
    req->head_only = method_bit(parsed->method) == TC_HTTP_HEAD;
    buf_consume(hc, n);
    route_lookup(h, req);
    route_t *r = req->route;
    int pieces = r != NULL && r->body_cb != NULL;
    uint64_t limit = r != NULL && r->max_body ? r->max_body : pieces ? UINT64_MAX : h->cfg.max_body;
    if (parsed->chunked) {
        req->is_chunked = 1;
        tc_http_chunked_init(&req->chunked, limit);
        req->body_pending = 1;
    } else if (parsed->content_length > 0) {
        /* Compared as 64-bit before anything is narrowed: a 5 GiB length is no 1 GiB length on a 32-bit device.
         * Nothing is allocated for the declared length: the body grows with the bytes that actually come. */
        if (parsed->content_length > limit) {
            fail_conn(hc, 413);
            return -1;
        }
        req->body_left = parsed->content_length;
        req->body_pending = 1;
    }
    req->win_start = tc_loop_now(h->loop);
    hc->state = req->body_pending ? HC_BODY : HC_HANDLER;
    if (pieces) {
        tc__timer_init(h->loop, &req->body_timer, body_timer_cb, req);
        dispatch(hc, req); /* the handler sees the head first, and may refuse before any body byte */
        if (hc->req != req || req->answered) {
            return 0;
        }
    }
    if (!req->body_pending) {
        body_complete(hc);
    }
    return 0;
}

/* One piece of body: buffered, or handed to the route's body callback. 0: go on, 1: paused, -1: request gone. */
static int body_piece(hconn_t *hc, tc_http_req_t *req, const char *p, size_t n)
{
    route_t *r = req->route;
    req->body_total += n;
    if (r != NULL && r->body_cb != NULL && req->handed) {
        int rc = r->body_cb(req, TC_HTTP_BODY_DATA, p, n, r->user);
        if (hc->req != req) {
            return -1; /* answered (and freed) from the callback */
        }
        if (rc < 0) {
            fail_conn(hc, 500);
            return -1;
        }
        if (rc == TC_HTTP_BODY_PAUSE) {
            req->body_paused = 1;
            tc_conn_set_reading(hc->c, 0); /* TCP's receive window now pushes back on the client */
            return 1;
        }
        return 0;
    }
    if (req->body_len + n > req->body_cap) {
        size_t need = req->body_len + n;
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < need) {
            cap *= 2;
        }
        if (!req->is_chunked && cap > need + req->body_left) {
            cap = need + (size_t)req->body_left; /* the declared length bounds the last step, it never starts one */
        }
        char *b = tc_realloc(req->body, cap);
        if (b == NULL) {
            fail_conn(hc, 503);
            return -1;
        }
        req->body = b;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, p, n);
    req->body_len += n;
    return 0;
}

/* Move body bytes from the input buffer into the request or its handler. Returns 1 when the body is complete, 0 for
 * more (or paused), -1 when the request is gone. */
static int take_body(hconn_t *hc)
{
    tc_http_req_t *req = hc->req;
    if (!req->is_chunked) {
        size_t take = hc->len < req->body_left ? hc->len : (size_t)req->body_left;
        req->body_left -= take;
        int rc = body_piece(hc, req, hc->buf, take);
        buf_consume(hc, take);
        if (rc < 0) {
            return -1;
        }
        if (req->body_left == 0) {
            req->body_ended = 1;
            return req->body_paused ? 0 : 1;
        }
        return 0;
    }
    size_t consumed = 0;
    while (consumed < hc->len && !req->body_paused) {
        tc_http_slice_t data;
        size_t used = 0;
        int rc = tc_http_chunked_decode(&req->chunked, hc->buf + consumed, hc->len - consumed, &used, &data);
        consumed += used;
        if (rc < 0) {
            buf_consume(hc, consumed);
            fail_conn(hc, tc_http_error_status(rc));
            return -1;
        }
        if (data.len && body_piece(hc, req, data.ptr, data.len) < 0) {
            buf_consume(hc, consumed);
            return -1;
        }
        if (rc == TC_HTTP_CHUNKED_DONE) {
            buf_consume(hc, consumed);
            req->body_ended = 1;
            return req->body_paused ? 0 : 1;
        }
        if (used == 0) {
            break;
        }
    }
    buf_consume(hc, consumed);
    return 0;
}

static void process(hconn_t *hc)
{
    tc_http_t *h = HC_HTTP(hc);
    hc->processing = 1;
    /* Bounded by the buffer: each pass consumes bytes or returns. */
    while (hc->len > 0 && (hc->state == HC_IDLE || hc->state == HC_HEAD || hc->state == HC_BODY)) {
        if (hc->state == HC_IDLE && tc_conn_queued(hc->c) > TC_CFG_WRITE_HIGH_WATER) {
            /* Pipelined requests wait while the client is not reading the answers: the next one starts at
             * TC_EV_DRAINED, so answers never pile up past the write queue's limit. */
            hc->wait_drain = 1;
            break;
        }
        if (hc->state != HC_BODY) {
            tc_http_request_t parsed;
            tc_http_header_t headers[TC_HTTP_MAX_HEADERS_CAP];
            tc_http_limits_t lim = {
                .max_uri = h->cfg.max_uri, .max_head = h->cfg.max_head, .max_headers = h->cfg.max_headers};
            tc_http_request_init(&parsed, headers, TC_HTTP_MAX_HEADERS_CAP);
            int n = tc_http_parse_request(hc->buf, hc->len, &lim, &parsed);
            if (n == TC_HTTP_INCOMPLETE) {
                if (hc->state == HC_IDLE) {
                    hc->state = HC_HEAD;
                    hc->head_started = (uint32_t)tc_loop_now(h->loop);
                }
                break;
            }
            if (n < 0) {
                fail_conn(hc, tc_http_error_status(n));
                break;
            }
            if (begin_request(hc, &parsed, (size_t)n) != 0) {
                break;
            }
            continue; /* dispatched, or now in HC_BODY */
        }
        if (hc->req->body_paused || take_body(hc) <= 0) {
            break;
        }
        body_complete(hc);
    }
    hc->processing = 0;
}

/* ---- WebSockets ---- */

static int ws_send_frame(tc_ws_t *ws, int opcode, const void *data, size_t len)
{
    uint8_t hdr[TC_WS_MAX_HEADER];
    size_t hl = tc_ws_encode_header(hdr, 1, opcode, len, NULL);
    /* Header and payload whole or not at all: a header without its payload would desynchronise the peer. */
    tc_buf_t m[2] = {{hdr, hl}, {data, len}};
    return tc_conn_sendv(ws->hc->c, m, 2);
}

/* The TCP close after a WebSocket close. RFC 6455 7.1.1 has the server close the TCP connection first, and clients
 * (and Autobahn) wait for that FIN: send it at once, drain until the client's FIN, then free the TIME-WAIT this
 * leaves (the graceful close does that on lwIP). The same during a stop: an RST would be counted as forced. */
static void ws_tcp_close(hconn_t *hc)
{
    hc->state = HC_DONE;
    tc_conn_close(hc->c, TC_CLOSE_GRACEFUL);
}

static void ws_fail(tc_ws_t *ws, uint16_t code)
{
    tc_ws_close(ws, code, NULL);
    hconn_t *hc = ws->hc;
    hc->state = HC_DONE;
    buf_consume(hc, hc->len);
    /* After a protocol error the peer may never answer the close: do not wait for it. */
    ws_tcp_close(hc);
}

int tc_ws_send(tc_ws_t *ws, int opcode, const void *data, size_t len)
{
    if (ws == NULL || (opcode != TC_WS_OP_TEXT && opcode != TC_WS_OP_BINARY)) {
        return TC_EINVAL;
    }
    if (ws->hc == NULL || ws->close_sent) {
        return TC_ECLOSED;
    }
    return ws_send_frame(ws, opcode, data, len);
}

int tc_ws_close(tc_ws_t *ws, uint16_t code, const char *reason)
{
    if (ws == NULL || ws->hc == NULL || ws->close_sent) {
        return TC_ECLOSED;
    }
    uint8_t p[125];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > 123) {
        rl = 123;
    }
    p[0] = (uint8_t)(code >> 8);
    p[1] = (uint8_t)code;
    if (rl) {
        memcpy(p + 2, reason, rl);
    }
    ws->close_sent = 1;
    ws->close_code = code;
    int rc = ws_send_frame(ws, TC_WS_OP_CLOSE, p, 2 + rl);
    if (ws->close_received) {
        ws_tcp_close(ws->hc); /* handshake complete */
    }
    return rc;
}

tc_conn_t *tc_ws_conn(const tc_ws_t *ws)
{
    return ws->hc ? ws->hc->c : NULL;
}

int tc_ws_broadcast(tc_http_t *http, const char *pattern, int opcode, const void *data, size_t len)
{
    route_t *route = NULL;
    for (route_t *r = http->routes; r; r = r->next) {
        if (r->ws_cb && strcmp(r->pattern, pattern) == 0) {
            route = r;
            break;
        }
    }
    if (route == NULL) {
        return TC_ENOTFOUND;
    }
    int n = 0;
    for (tc_conn_t *c = http->srv ? tc__server_conns(http->srv) : NULL; c; c = tc__conn_next(c)) {
        hconn_t *hc = tc_conn_data(c);
        tc_ws_t *ws = hc ? hc->ws : NULL;
        if (ws && ws->route == route && hc->state == HC_WS && !ws->close_sent &&
            tc_conn_queued(hc->c) <= TC_CFG_WRITE_HIGH_WATER && ws_send_frame(ws, opcode, data, len) == TC_OK) {
            n++;
        }
    }
    return n;
}

static void ws_deliver(tc_ws_t *ws, int opcode, const char *data, size_t len)
{
    route_t *r = ws->route;
    r->ws_cb(ws, opcode == TC_WS_OP_TEXT ? TC_WS_EV_TEXT : TC_WS_EV_BINARY, data, len, r->user);
}

static void ws_input(hconn_t *hc)
{
    tc_ws_t *ws = hc->ws;
    tc_http_t *h = HC_HTTP(hc);
    while (hc->state == HC_WS && hc->len > 0) {
        tc_ws_frame_t f;
        int n = tc_ws_decode_header((const uint8_t *)hc->buf, hc->len, h->cfg.ws_max_message, &f);
        if (n == TC_WS_INCOMPLETE) {
            return;
        }
        if (n < 0) {
            ws_fail(ws, tc_ws_error_close_code(n));
            return;
        }
        /* The frame length was checked against ws_max_message as 64-bit by the decoder: narrowing is safe. */
        size_t plen = (size_t)f.payload_len;
        if (hc->len - (size_t)n < plen) {
            return; /* wait for the rest; the buffer is bounded by the message limit */
        }
        uint8_t *payload = (uint8_t *)hc->buf + n;
        tc_ws_unmask(payload, plen, f.mask, 0);
        uint8_t open_opcode = ws->msg_opcode; /* before the check updates it */
        ws->awaiting_pong = 0;                 /* the peer is alive */
        int code = tc_ws_frame_check(&ws->msg_opcode, &f);
        if (code) {
            ws_fail(ws, (uint16_t)code);
            return;
        }
        if (f.opcode == TC_WS_OP_PING) {
            if (!ws->close_sent) {
                ws_send_frame(ws, TC_WS_OP_PONG, payload, plen);
            }
        } else if (f.opcode == TC_WS_OP_PONG) {
            /* liveness answered (any frame does, below) */
        } else if (f.opcode == TC_WS_OP_CLOSE) {
            uint16_t rcode = 1005;
            int cc = tc_ws_parse_close(payload, plen, &rcode);
            ws->close_received = 1;
            buf_consume(hc, (size_t)n + plen);
            if (cc != 0) {
                ws_fail(ws, (uint16_t)cc);
                return;
            }
            ws->close_code = rcode;
            if (!ws->close_sent) {
                tc_ws_close(ws, rcode == 1005 ? 1000 : rcode, NULL);
            } else {
                ws_tcp_close(hc);
            }
            return;
        } else {
            /* Data frame (first or continuation): append, validate text as it comes. */
            int op = f.opcode == TC_WS_OP_CONT ? open_opcode : f.opcode;
            if (ws->msg_len + plen > h->cfg.ws_max_message) {
                ws_fail(ws, 1009);
                return;
            }
            if (op == TC_WS_OP_TEXT && tc_ws_utf8_feed(&ws->utf8, payload, plen) != 0) {
                ws_fail(ws, 1007);
                return;
            }
            if (f.fin && ws->msg_len == 0) {
                if (op == TC_WS_OP_TEXT && !tc_ws_utf8_complete(&ws->utf8)) {
                    ws_fail(ws, 1007);
                    return;
                }
                tc_ws_utf8_reset(&ws->utf8);
                if (!ws->close_sent) {
                    ws_deliver(ws, op, (const char *)payload, plen);
                }
            } else {
                if (ws->msg_len + plen > ws->msg_cap) {
                    size_t cap = ws->msg_cap ? ws->msg_cap : 256;
                    while (cap < ws->msg_len + plen) {
                        cap *= 2;
                    }
                    char *m = tc_realloc(ws->msg, cap);
                    if (m == NULL) {
                        ws_fail(ws, 1011);
                        return;
                    }
                    ws->msg = m;
                    ws->msg_cap = cap;
                }
                memcpy(ws->msg + ws->msg_len, payload, plen);
                ws->msg_len += plen;
                if (f.fin) {
                    if (op == TC_WS_OP_TEXT && !tc_ws_utf8_complete(&ws->utf8)) {
                        ws_fail(ws, 1007);
                        return;
                    }
                    tc_ws_utf8_reset(&ws->utf8);
                    if (!ws->close_sent) {
                        ws_deliver(ws, op, ws->msg, ws->msg_len);
                    }
                    tc_free(ws->msg);
                    ws->msg = NULL;
                    ws->msg_len = ws->msg_cap = 0;
                }
            }
        }
        buf_consume(hc, (size_t)n + plen);
    }
}

/* ---- connection events ---- */

static void hconn_free(hconn_t *hc)
{
    /* A request cut in its head or body was never handed to a handler: it is freed here (it leaked before). */
    req_abandon(hc);
    if (hc->ws) {
        tc_ws_t *ws = hc->ws;
        if (ws->opened) {
            ws->route->ws_cb(ws, TC_WS_EV_CLOSE, NULL, ws->close_received ? ws->close_code : 1006, ws->route->user);
        }
        tc_free(ws->msg);
        tc_free(ws);
    }
    tc_free(hc->buf);
    tc_free(hc);
}

/* Only live sessions and requests in flight hold the slots (TC_FULL_EVICT_IDLE): rather than evict one of them, tell
 * the newcomer to come back. Sent before its request is read; the close drains it. */
static void over_limit(tc_http_t *h, hconn_t *hc)
{
    char msg[192];
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %u\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n",
                     (unsigned)h->cfg.retry_after_s);
    tc_conn_send(hc->c, msg, (size_t)n);
    hc->state = HC_DONE;
    tc_conn_close(hc->c, h->cfg.close_policy);
}

static void http_conn_cb(tc_conn_t *c, tc_event_t ev, const void *data, size_t len, void *user)
{
    tc_http_t *h = user;
    hconn_t *hc = tc_conn_data(c);
    switch (ev) {
    case TC_EV_OPEN:
        hc = tc_calloc(1, sizeof(*hc));
        if (hc == NULL) {
            tc_conn_close(c, TC_CLOSE_ABORT);
            return;
        }
        hc->c = c;
        tc_conn_set_data(c, hc);
        tc_conn_set_role(c, TC_ROLE_HTTP);
        if (len == TC_OPEN_OVER_LIMIT) {
            over_limit(h, hc);
        }
        break;
    case TC_EV_DATA:
        if (hc == NULL || hc->state == HC_DONE) {
            return;
        }
        if (hc->state == HC_WS) {
            size_t limit = h->cfg.ws_max_message + TC_WS_MAX_HEADER + 4096;
            if (buf_append(hc, data, len, limit) != TC_OK) {
                ws_fail(hc->ws, 1009);
                return;
            }
            ws_input(hc);
            return;
        }
        if (hc->state == HC_STREAM || hc->state == HC_HANDLER || (hc->state == HC_BODY && hc->req->body_paused)) {
            /* Pipelined requests (or the rest of a paused body) wait their turn. Past a bound the connection stops
             * reading: TCP's window pushes back on the client, and nothing it sent is refused or lost. */
            if (buf_append(hc, data, len, HC_BUF_MAX) != TC_OK) {
                tc_conn_close(c, TC_CLOSE_ABORT); /* out of memory: nothing sensible can be answered mid-response */
                return;
            }
            if (hc->len >= (size_t)h->cfg.max_head + PIPELINE_SLACK) {
                tc_conn_set_reading(c, 0);
            }
            return;
        }
        if (buf_append(hc, data, len, (size_t)h->cfg.max_head + 64 * 1024) != TC_OK) {
            fail_conn(hc, hc->state == HC_BODY ? 413 : 431);
            return;
        }
        process(hc);
        break;
    case TC_EV_DRAINED:
        if (hc && hc->state == HC_STREAM && hc->req && hc->req->stream_waiting) {
            stream_kick(hc->req);
        } else if (hc && hc->wait_drain && hc->state == HC_IDLE) {
            hc->wait_drain = 0;
            process(hc);
        }
        break;
    case TC_EV_SHUTDOWN:
        if (hc == NULL) {
            return;
        }
        switch (hc->state) {
        case HC_HANDLER:
            tc_conn_hold(c); /* let the request finish; its answer says Connection: close */
            break;
        case HC_STREAM:
            tc_conn_hold(c);
            stream_end(hc->req, 1);
            break;
        case HC_WS:
            tc_conn_hold(c);
            h->report.websockets_closed++;
            tc_ws_close(hc->ws, 1001, "going away");
            break;
        case HC_IDLE:
            /* Idle keep-alive: nothing in flight. Our FIN tells the client at once; the lingering close waits for
             * its FIN (bounded by the stop's deadline) and frees the TIME-WAIT. */
            hc->state = HC_DONE;
            tc_conn_close(c, TC_CLOSE_GRACEFUL);
            break;
        default:
            /* A partial head or body (slowloris): a request that will never be answered. Reset at once; the stop
             * counts it as forced. */
            hc->state = HC_DONE;
            tc_conn_close(c, TC_CLOSE_ABORT);
            break;
        }
        break;
    case TC_EV_CLOSE:
        if (hc) {
            hconn_free(hc);
        }
        break;
    }
    (void)len;
}

/* The minimum-rate rule: every byte resets the idle timer, so without it 1 byte every few seconds would hold a body
 * (and its memory) open forever. Each window of body_grace_ms after the first must bring body_min_rate bytes/s. A
 * body paused by its handler is not the client's fault: the window restarts when it resumes. */
static void body_rate_check(tc_http_t *h, hconn_t *hc, uint64_t now)
{
    tc_http_req_t *req = hc->req;
    if (req == NULL || h->cfg.body_min_rate == 0 || req->body_paused || now - req->win_start < h->cfg.body_grace_ms) {
        return;
    }
    uint64_t need = (uint64_t)h->cfg.body_min_rate * (now - req->win_start) / 1000;
    if (req->body_total - req->win_base < need) {
        fail_conn(hc, 408);
        return;
    }
    req->win_start = now;
    req->win_base = req->body_total;
}

/* Liveness of a WebSocket: a ping when none is outstanding and ws_ping_ms passed since the last; a peer that
 * answers nothing within ws_pong_timeout_ms of a ping is gone (a phone that left the Wi-Fi sends no FIN): closed
 * without a close frame, which its callback reports as 1006. A quiet peer that answers pings lives forever. */
static void ws_liveness(tc_http_t *h, hconn_t *hc, uint64_t now)
{
    tc_ws_t *ws = hc->ws;
    if (h->cfg.ws_ping_ms == 0 || ws->close_sent) {
        return;
    }
    if (ws->awaiting_pong) {
        if (now - ws->last_ping >= h->cfg.ws_pong_timeout_ms) {
            hc->state = HC_DONE;
            tc_conn_close(hc->c, TC_CLOSE_ABORT);
        }
    } else if (now - ws->last_ping >= h->cfg.ws_ping_ms) {
        ws->last_ping = now;
        ws->awaiting_pong = 1;
        ws_send_frame(ws, TC_WS_OP_PING, "tc", 2);
    }
}

/* Liveness of a stream: its own progress. A viewer whose queued bytes have not moved for idle_timeout_ms has stopped
 * reading (or vanished): ended with an RST, as what is queued cannot be delivered anyway. An SSE stream that has had
 * nothing to say for sse_heartbeat_ms sends a comment line, so proxies and the browser see it alive. */
static void stream_liveness(tc_http_t *h, hconn_t *hc, uint64_t now)
{
    tc_http_req_t *req = hc->req;
    if (req == NULL) {
        return;
    }
    if (h->cfg.idle_timeout_ms && tc_conn_queued(hc->c) > 0 &&
        now - tc__conn_active_ms(hc->c) >= h->cfg.idle_timeout_ms) {
        stream_end(req, 0);
        return;
    }
    if (req->stream_kind == TC_HTTP_STREAM_SSE && h->cfg.sse_heartbeat_ms &&
        now - req->last_write >= h->cfg.sse_heartbeat_ms && tc_http_stream_ready(req)) {
        req->last_write = now;
        tc_conn_send(hc->c, "3\r\n:\n\n\r\n", 10); /* one chunk holding the comment ":\n\n" */
    }
}

/* Every SWEEP_MS: request heads that take too long (slowloris: 408), bodies below the minimum rate (408), liveness of WebSockets and streams (they are
 * exempt from the idle timeout, tc_role_is_long_lived()). */
static int64_t sweep_cb(tc_timer_t *t, void *user)
{
    (void)t;
    tc_http_t *h = user;
    uint64_t now = tc_loop_now(h->loop);
    for (tc_conn_t *c = h->srv ? tc__server_conns(h->srv) : NULL; c; c = tc__conn_next(c)) {
        hconn_t *hc = tc_conn_data(c);
        if (hc == NULL || tc_conn_is_closing(c)) {
            continue;
        }
        if (hc->state == HC_HEAD && (uint32_t)now - hc->head_started >= h->cfg.head_timeout_ms) {
            fail_conn(hc, 408);
        } else if (hc->state == HC_BODY) {
            body_rate_check(h, hc, now);
        } else if (hc->state == HC_WS) {
            ws_liveness(h, hc, now);
        } else if (hc->state == HC_STREAM) {
            stream_liveness(h, hc, now);
        }
    }
    return SWEEP_MS;
}

/* ---- server ---- */

int tc_http_start(tc_loop_t *loop, const tc_http_config_t *cfg, tc_http_t **out)
{
    if (loop == NULL || cfg == NULL || out == NULL || cfg->max_headers == 0 ||
        cfg->max_headers > TC_HTTP_MAX_HEADERS_CAP) {
        return TC_EINVAL;
    }
    tc_http_t *h = tc_calloc(1, sizeof(*h));
    if (h == NULL) {
        return TC_ENOMEM;
    }
    h->cfg = *cfg;
    h->loop = loop;
    tc_server_config_t scfg = TC_SERVER_DEFAULT_CONFIG();
    scfg.host = cfg->host;
    scfg.port = cfg->port;
    scfg.max_conns = cfg->max_conns;
    scfg.when_full = cfg->when_full;
    scfg.overflow_max = cfg->overflow_max;
    scfg.conn.idle_timeout_ms = cfg->idle_timeout_ms;
    scfg.conn.close_policy = cfg->close_policy;
    scfg.conn.linger_ms = cfg->linger_ms;
    scfg.conn.nodelay = true;
    scfg.name = cfg->name ? cfg->name : "http";
    scfg.cb = http_conn_cb;
    scfg.user = h;
    int rc = tc_server_start(loop, &scfg, &h->srv);
    if (rc != TC_OK) {
        tc_free(h);
        return rc;
    }
    tc__timer_init(loop, &h->sweep, sweep_cb, h);
    tc__timer_arm(&h->sweep, SWEEP_MS);
    tc__handles_add(loop, 1);
    *out = h;
    return TC_OK;
}

uint16_t tc_http_port(const tc_http_t *http)
{
    return tc_server_port(http->srv);
}

tc_loop_t *tc_http_loop(const tc_http_t *http)
{
    return http->loop;
}

static int add_route(tc_http_t *h, unsigned methods, const char *pattern, tc_http_handler_cb cb, tc_ws_cb ws_cb,
                     void *user)
{
    if (h == NULL || pattern == NULL || pattern[0] != '/' || (cb == NULL && ws_cb == NULL) || methods == 0) {
        return TC_EINVAL;
    }
    size_t pl = strlen(pattern);
    route_t *r = tc_calloc(1, sizeof(*r) + pl + 1);
    if (r == NULL) {
        return TC_ENOMEM;
    }
    memcpy(r->pattern, pattern, pl + 1);
    r->methods = methods;
    r->cb = cb;
    r->ws_cb = ws_cb;
    r->user = user;
    if (h->routes_tail) {
        h->routes_tail->next = r;
    } else {
        h->routes = r;
    }
    h->routes_tail = r;
    return TC_OK;
}

int tc_http_route(tc_http_t *http, unsigned methods, const char *pattern, tc_http_handler_cb cb, void *user)
{
    return cb ? add_route(http, methods & TC_HTTP_ANY, pattern, cb, NULL, user) : TC_EINVAL;
}

int tc_http_route_body(tc_http_t *http, unsigned methods, const char *pattern, uint64_t max_body,
                       tc_http_handler_cb cb, tc_http_body_cb body_cb, void *user)
{
    if (cb == NULL) {
        return TC_EINVAL;
    }
    int rc = add_route(http, methods & TC_HTTP_ANY, pattern, cb, NULL, user);
    if (rc == TC_OK) {
        http->routes_tail->body_cb = body_cb;
        http->routes_tail->max_body = max_body;
    }
    return rc;
}

int tc_http_ws_route(tc_http_t *http, const char *pattern, tc_ws_cb cb, void *user)
{
    return cb ? add_route(http, TC_HTTP_GET, pattern, NULL, cb, user) : TC_EINVAL;
}

static void http_core_stopped(tc_server_t *srv, const tc_stop_report_t *r, void *user)
{
    (void)srv;
    tc_http_t *h = user;
    tc_loop_t *loop = h->loop;
    h->report.graceful = r->graceful;
    h->report.forced = r->forced;
    tc__timer_disarm(&h->sweep);
    route_t *rt = h->routes;
    while (rt) {
        route_t *next = rt->next;
        tc_free(rt);
        rt = next;
    }
    if (h->filter_free) {
        h->filter_free(h->filter_user);
    }
    tc_http_stop_report_t rep = h->report;
    tc_http_stop_cb cb = h->stop_cb;
    void *cb_user = h->stop_user;
    size_t before = h->stop_bytes_before;
    uint64_t started = tc_now_ms() - r->elapsed_ms;
    tc_free(h);
    tc__handles_add(loop, -1);
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    rep.bytes_freed = before > st.bytes_in_use ? before - st.bytes_in_use : 0;
    rep.elapsed_ms = (uint32_t)(tc_now_ms() - started);
    if (cb) {
        cb(NULL, &rep, cb_user);
    }
}

int tc_http_set_filter(tc_http_t *http, tc_http_handler_cb filter, void *user, tc_http_free_cb free_user)
{
    if (http == NULL || filter == NULL) {
        return TC_EINVAL;
    }
    if (http->filter) {
        return TC_EBUSY;
    }
    http->filter = filter;
    http->filter_user = user;
    http->filter_free = free_user;
    return TC_OK;
}

void *tc_http_filter_user(const tc_http_t *http)
{
    return http ? http->filter_user : NULL;
}

int tc_http_stop(tc_http_t *http, uint32_t deadline_ms, tc_http_stop_cb done, void *user)
{
    if (http == NULL) {
        return TC_EINVAL;
    }
    if (http->stopping) {
        return TC_ECLOSED;
    }
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    http->stopping = 1;
    http->stop_bytes_before = st.bytes_in_use;
    http->stop_cb = done;
    http->stop_user = user;
    return tc_server_stop(http->srv, deadline_ms, http_core_stopped, http);
}

typedef struct {
    int done;
    tc_http_stop_report_t report;
} http_wait_t;

static void http_wait_cb(tc_http_t *h, const tc_http_stop_report_t *r, void *user)
{
    (void)h;
    http_wait_t *w = user;
    w->report = *r;
    w->done = 1;
}

int tc_http_stop_wait(tc_http_t *http, uint32_t deadline_ms, tc_http_stop_report_t *report)
{
    if (http == NULL) {
        return TC_EINVAL;
    }
    tc_loop_t *loop = http->loop;
    if (tc__in_dispatch(loop)) {
        return TC_EBUSY;
    }
    http_wait_t w = {0};
    int rc = tc_http_stop(http, deadline_ms, http_wait_cb, &w);
    if (rc != TC_OK) {
        return rc;
    }
    rc = tc__loop_wait_done(loop, &w.done, deadline_ms);
    if (report) {
        *report = w.report;
    }
    return rc;
}
