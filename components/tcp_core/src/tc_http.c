/*
 * tc_http.c - HTTP/1.1 server on tc_tcp connections: the connection, the request path (head, body), dispatch,
 * responses, the sweep of timeouts, start and stop. Routes, streams and WebSocket sessions have their own files
 * (tc_http_internal.h lists them).
 *
 * Per connection: a small state record (hconn_t) and an input buffer that exists only while bytes are waiting. A head
 * is parsed in that buffer as it arrives, each segment's parse resuming where the last one stopped; the request
 * record (allocated at the head's first byte, its header array sized by max_headers) carries that progress. When the
 * head is complete the request takes the buffer: the head is never copied, its slices stay valid until the answer,
 * and the path is decoded in place. Nothing here blocks: handlers answer at once or later, streams are producers
 * asked when the socket can take more, and a stop ends everything by its deadline.
 */
#include <stdio.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http_auth.h"
#include "tc_http_internal.h"

#define SWEEP_MS 100
#define HEAD_SLACK 1024 /* input buffer bytes past a complete head that the request gives back (realloc) */
#define HEAD_MAX 1022 /* response head bytes before the handler's own fields (tc_http_resp_header(), 512 at most) */
#define PIPELINE_SLACK 4096 /* input held beyond max_head while a response is in flight before reading stops */

static void process(hconn_t *hc);
static void req_abandon(hconn_t *hc);
static void eof_check(hconn_t *hc);

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

int tc__hconn_append(hconn_t *hc, const void *data, size_t len, size_t limit)
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

void tc__hconn_consume(hconn_t *hc, size_t n)
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
    return req->keep_alive && !req->h->h.stopping;
}

/* The decimal digits of v, written so that they end just before end; returns where they start. */
static char *dec_before(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

/* Send a status line and headers, and a body when it is whole; content_length < 0 means none (chunked, stream or 101).
 * last: the answer ends the connection, whose graceful close follows at once (tc__conn_sendv_last()). */
static int send_answer(tc_http_req_t *req, int status, const char *ctype, long long content_length, const char *extra,
                       const void *body, size_t body_len, int last)
{
    /* The head is a list of pieces, most of them constants, handed to tc_conn_sendv(): it joins them with a small
     * body into one send (one segment, no Nagle interplay) without a copy of the head on the loop's stack. The
     * numbers are written by hand, not by snprintf(): on the keep-alive path the formatter cost about a third of the
     * user-space instructions of a request (callgrind, bench/compare.py). */
    char line[16], clen[48];
    tc_buf_t m[12];
    size_t k = 0;
    char *p = dec_before(line + sizeof(line) - 1, (unsigned long long)(status < 0 ? 0 : status));
    line[sizeof(line) - 1] = ' ';
    m[k++] = (tc_buf_t){"HTTP/1.1 ", 9};
    m[k++] = (tc_buf_t){p, (size_t)(line + sizeof(line) - p)};
    const char *text = tc_http_status_text(status);
    m[k++] = (tc_buf_t){text, strlen(text)};
    if (ctype) {
        m[k++] = (tc_buf_t){"\r\nContent-Type: ", 16};
        m[k++] = (tc_buf_t){ctype, strlen(ctype)};
    }
    if (content_length >= 0) {
        p = dec_before(clen + sizeof(clen), (unsigned long long)content_length);
        p -= 18;
        memcpy(p, "\r\nContent-Length: ", 18);
        m[k++] = (tc_buf_t){p, (size_t)(clen + sizeof(clen) - p)};
    }
    if (status == 426) { /* RFC 9110 7.8: a sender of Upgrade lists "upgrade" in Connection too */
        int ka = keep_alive_for(req);
        m[k++] = ka ? (tc_buf_t){"\r\nConnection: upgrade, keep-alive\r\n", 35}
                    : (tc_buf_t){"\r\nConnection: upgrade, close\r\n", 30};
    } else if (status != 101) {
        int ka = keep_alive_for(req);
        m[k++] = ka ? (tc_buf_t){"\r\nConnection: keep-alive\r\n", 26} : (tc_buf_t){"\r\nConnection: close\r\n", 21};
    } else {
        m[k++] = (tc_buf_t){"\r\n", 2};
    }
    if (extra) {
        m[k++] = (tc_buf_t){extra, strlen(extra)};
    }
    size_t head = 0;
    for (size_t i = 0; i < k; i++) {
        head += m[i].len;
    }
    if (head >= HEAD_MAX) {
        return TC_ELIMIT; /* a content type or extra fields beyond any sensible size */
    }
    if (req->xh) {
        m[k++] = (tc_buf_t){req->xh, req->xh_len};
    }
    m[k++] = (tc_buf_t){"\r\n", 2};
    if (body_len) {
        m[k++] = (tc_buf_t){body, body_len};
    }
    return last ? tc__conn_sendv_last(req->hc->c, m, k) : tc_conn_sendv(req->hc->c, m, k);
}

/* Send a status line and headers; content_length < 0 means none (chunked, stream or 101). */
int tc__http_send_head(tc_http_req_t *req, int status, const char *ctype, long long content_length, const char *extra,
                     const void *body, size_t body_len)
{
    return send_answer(req, status, ctype, content_length, extra, body, body_len, 0);
}

/* A body being received is timed by the sweep (408 when it stalls, body_check()), not by the server's idle timeout,
 * which would end it without a word. A body its handler paused is not timed at all: the client is not the one
 * keeping it (the handler resumes it, or answers). */
static void body_clock(hconn_t *hc)
{
    tc__conn_self_timed(hc->c, hc->state == HC_BODY && hc->req != NULL);
}

/* The request is over: close or go back to reading the next one. */
void tc__http_req_finish(tc_http_req_t *req)
{
    hconn_t *hc = req->hc;
    tc_http_t *h = req->h;
    int ka = keep_alive_for(req);
    if (req->in_stop) {
        h->h.report.requests_finished++;
    }
    /* The client itself ended the connection (Connection: close, or HTTP/1.0 without keep-alive), its request was
     * read whole and nothing followed it: no input is left that a close could answer with RST. */
    int peer_done = !req->parsed.keep_alive && !req->body_pending && hc->len == 0;
    hc->req = NULL;
    tc__http_req_free(req);
    if (!ka) {
        hc->state = HC_DONE;
        if (peer_done) {
            tc__conn_peer_done(hc->c);
        }
        tc_conn_close(hc->c, h->cfg.close_policy);
        return;
    }
    hc->state = HC_IDLE;
    body_clock(hc);
    tc_conn_set_reading(hc->c, 1);
    if (!hc->processing) {
        if (hc->len) {
            process(hc);
        } else {
            eof_check(hc);
        }
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
    /* RFC 9110 9.3.2: no content in an answer to HEAD, a refusal included (once its request line was read). */
    const tc_http_request_t *p = hc->req ? &hc->req->parsed : NULL;
    int head_only = p && p->stage > 0 && tc__http_method_bit(p->method) == TC_HTTP_HEAD;
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s%s",
                     status, text, strlen(text) + 1, head_only ? "" : text, head_only ? "" : "\n");
    tc_buf_t answer = {head, (size_t)n};
    if (HC_HTTP(hc)->cfg.close_policy == TC_CLOSE_GRACEFUL) {
        tc__conn_sendv_last(hc->c, &answer, 1); /* with the FIN of the close below */
    } else {
        tc_conn_sendv(hc->c, &answer, 1);
    }
    hc->state = HC_DONE;
    req_abandon(hc);
    tc__hconn_consume(hc, hc->len);
    tc_conn_close(hc->c, HC_HTTP(hc)->cfg.close_policy);
}

/* Vary is one list (RFC 9110 12.5.5): a value for a response that has a Vary line already joins it, once, so the
 * server's CORS policy and a handler (a file's gzip sibling) make one field. 1 when joined, 0 when no line yet. */
static int vary_join(tc_http_req_t *req, const char *value)
{
    for (char *line = req->xh; line != NULL && line < req->xh + req->xh_len;) {
        char *eol = strstr(line, "\r\n");
        if (tc_http_ieq(line, "Vary: ", 6)) {
            if (tc_http_list_has((tc_http_slice_t){line + 6, (size_t)(eol - line - 6)}, value)) {
                return 1;
            }
            size_t at = (size_t)(eol - req->xh), add = 2 + strlen(value);
            if (req->xh_len + add > 512) {
                return TC_ELIMIT;
            }
            char *x = tc_realloc(req->xh, req->xh_len + add + 1);
            if (x == NULL) {
                return TC_ENOMEM;
            }
            memmove(x + at + add, x + at, req->xh_len - at + 1);
            memcpy(x + at, ", ", 2);
            memcpy(x + at + 2, value, add - 2);
            req->xh = x;
            req->xh_len += add;
            return 1;
        }
        line = eol + 2;
    }
    return 0;
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
    int joined = strlen(name) == 4 && tc_http_ieq(name, "Vary", 4) ? vary_join(req, value) : 0;
    if (joined != 0) {
        return joined < 0 ? joined : TC_OK;
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
        tc__http_req_free(req); /* the connection went away while the handler was working */
        return TC_ECLOSED;
    }
    if (req->body_pending) {
        /* Answered before the whole body came (a refused upload): the rest is not read, so the connection cannot
         * carry another request. */
        req->keep_alive = 0;
    }
    /* RFC 9110 8.6: no Content-Length in a 204; a 304's would describe the 200 it stands for, so none either. */
    int no_body = status == 204 || status == 304;
    /* The whole answer: when the connection ends with it (tc__http_req_finish() closes it at once), it may leave with
     * the FIN in one segment. */
    int last = !keep_alive_for(req) && req->h->cfg.close_policy == TC_CLOSE_GRACEFUL;
    int rc = send_answer(req, status, ctype, no_body ? -1 : (long long)len, NULL,
                         req->head_only || no_body ? NULL : body, req->head_only || no_body ? 0 : len, last);
    if (rc != TC_OK) {
        fail_conn(req->hc, 500);
        return rc;
    }
    tc__http_req_finish(req);
    return TC_OK;
}

/* ---- requests ---- */

void tc__http_req_free(tc_http_req_t *req)
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

static void dispatch(hconn_t *hc, tc_http_req_t *req)
{
    tc_http_t *h = HC_HTTP(hc);
    req->handed = 1;
    hc->state = req->body_pending ? HC_BODY : HC_HANDLER;
    body_clock(hc);
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
    size_t olen = 0;
    if (h->cfg.cors && !(r && (r->own_cors || r->ws_cb))) {
        /* The server-wide policy: a preflight for a path that has routes is answered here (no route takes
         * OPTIONS), every other answer carries the headers when the origin is allowed, and Vary: Origin with or
         * without one when the policy's answer depends on it. */
        size_t ml = 0;
        if (r == NULL && req->allowed && tc__http_method_bit(req->parsed.method) == TC_HTTP_OPTIONS &&
            tc_http_req_header(req, "Origin", &olen) && tc_http_req_header(req, "Access-Control-Request-Method", &ml)) {
            tc__http_cors_preflight(req, h->cfg.cors);
            return;
        }
        if (tc_http_cors_headers(req, h->cfg.cors) < 0) {
            tc_http_respond(req, 500, "text/plain", "response headers too long\n", 26);
            return;
        }
    }
    if (r != NULL) {
        if (r->ws_cb) {
            tc__ws_upgrade(hc, req);
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
    if (tc__http_method_bit(req->parsed.method) == 0) {
        /* RFC 9110 15.6.2: a method this server recognizes for no resource (BREW, CONNECT, "get"), not one that this
         * path lacks (405). */
        tc_http_respond(req, 501, "text/plain", "method not implemented\n", 23);
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
    body_clock(hc);
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
        /* As from process(): an answer given from END does not start the next request inside body_complete(),
         * whose look at hc->req after the callback would take that request's record (it may reuse the freed one's
         * address) for this one, unanswered, and stop reading. The next request starts here, after it. */
        hc->processing = 1;
        body_complete(hc);
        hc->processing = 0;
        process(hc);
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
    tc__conn_touch(req->hc->c); /* the client's quiet counts from here: it could not send while we did not read */
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
        tc__http_req_free(req); /* answered, or still in its head or buffered body: nobody else has it */
        return;
    }
    req->hc = NULL;
    if (r != NULL && r->body_cb != NULL) {
        req->aborting = 1;
        r->body_cb(req, TC_HTTP_BODY_ABORT, NULL, (size_t)req->body_total, r->user);
        tc__http_req_free(req);
    }
}

/* A request record for a head that starts arriving: it carries the parser's progress between segments, and its
 * header array is sized by the server's max_headers. */
static tc_http_req_t *req_new(hconn_t *hc)
{
    tc_http_t *h = HC_HTTP(hc);
    tc_http_req_t *req = tc_calloc(1, sizeof(*req) + h->cfg.max_headers * sizeof(tc_http_header_t));
    if (req == NULL) {
        fail_conn(hc, 503);
        return NULL;
    }
    tc_http_request_init(&req->parsed, req->headers, h->cfg.max_headers);
    req->h = h;
    req->hc = hc;
    hc->req = req;
    return req;
}

/* The head is complete: the first n bytes of the input buffer. The request takes that buffer, so the head stays
 * where it arrived and the parser's slices stay valid for the request's life; only bytes that came after the head
 * (a body, a pipelined request) move to a new input buffer. The path is decoded and NUL-terminated in place. */
static int take_head(hconn_t *hc, tc_http_req_t *req, size_t n)
{
    char *head = hc->buf;
    size_t cap = hc->cap, rest = hc->len - n;
    hc->buf = NULL;
    hc->len = hc->cap = 0;
    req->head = head;
    if (rest > 0 && tc__hconn_append(hc, head + n, rest, HC_BUF_MAX) != TC_OK) {
        fail_conn(hc, 503);
        return -1;
    }
    if (cap - n > HEAD_SLACK) {
        /* A segment that brought a body along grew the buffer: keep only the head while the request lives. */
        char *smaller = tc_realloc(head, n);
        if (smaller != NULL && smaller != head) {
            tc_http_request_rebase(&req->parsed, head, smaller, req->headers);
        }
        req->head = smaller != NULL ? smaller : head;
    }
    tc_http_request_t *p = &req->parsed;
    /* "http://host" without a path: the parser's path is a constant "/", nothing to decode. */
    if (p->path.len == 1 && p->path.ptr[0] == '/') {
        req->path = "/";
    } else {
        /* Decoding never lengthens, and the byte after the path ('?' or ' ') is the head's: room for the NUL. */
        char *path = (char *)p->path.ptr;
        if (tc_http_path_decode(path, p->path.len, path, p->path.len + 1) < 0) {
            fail_conn(hc, 400);
            return -1;
        }
        req->path = path;
    }
    if (p->query.ptr != NULL) {
        ((char *)p->query.ptr)[p->query.len] = '\0'; /* over the ' ' before "HTTP/1.x" */
        req->query = p->query.ptr;
    } else {
        req->query = "";
    }
    return 0;
}

/* Start a request from a complete head of n bytes at the front of the buffer. */
static int begin_request(hconn_t *hc, size_t n)
{
    tc_http_t *h = HC_HTTP(hc);
    tc_http_req_t *req = hc->req;
    const tc_http_request_t *parsed = &req->parsed;
    req->in_stop = h->h.stopping;
    tc__conn_reg_flags(hc->c, TC_REG_FLAG_BUSY, 0); /* a request in flight is not evicted (TC_FULL_EVICT_IDLE) */
    if (take_head(hc, req, n) != 0) {
        return -1;
    }
    req->keep_alive = parsed->keep_alive;
    req->head_only = tc__http_method_bit(parsed->method) == TC_HTTP_HEAD;
    tc__http_route_lookup(h, req);
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
    body_clock(hc);
    if (pieces) {
        tc__timer_init(h->loop, &req->body_timer, body_timer_cb, req);
        dispatch(hc, req); /* the handler sees the head first, and may refuse before any body byte */
        if (hc->req != req || req->answered) {
            return 0;
        }
    }
    if (req->body_pending && hc->len == 0 && parsed->minor == 1 &&
        tc_http_header_lists(parsed, "expect", "100-continue")) {
        /* RFC 9110 10.1.1: the client waits for this before its body (curl: up to 1 s). Not sent once the body has
         * started to come, nor for a request already answered (a refusal goes out instead). */
        static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
        tc_conn_send(hc->c, go_on, sizeof(go_on) - 1);
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
        tc__hconn_consume(hc, take);
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
            tc__hconn_consume(hc, consumed);
            fail_conn(hc, tc_http_error_status(rc));
            return -1;
        }
        if (data.len && body_piece(hc, req, data.ptr, data.len) < 0) {
            tc__hconn_consume(hc, consumed);
            return -1;
        }
        if (rc == TC_HTTP_CHUNKED_DONE) {
            tc__hconn_consume(hc, consumed);
            req->body_ended = 1;
            return req->body_paused ? 0 : 1;
        }
        if (used == 0) {
            break;
        }
    }
    tc__hconn_consume(hc, consumed);
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
            tc_http_limits_t lim = {
                .max_uri = h->cfg.max_uri, .max_head = h->cfg.max_head, .max_headers = h->cfg.max_headers};
            if (hc->req == NULL && req_new(hc) == NULL) {
                break;
            }
            /* Resumes where the last segment's parse stopped: complete lines are not parsed again. */
            int n = tc_http_parse_request(hc->buf, hc->len, &lim, &hc->req->parsed);
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
            if (begin_request(hc, (size_t)n) != 0) {
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
    eof_check(hc);
}

/* A client that half-closed (shutdown(SHUT_WR) after its requests, `printf 'GET ...' | nc`) gets every answer it
 * asked for, then our FIN; once nothing is in flight and no whole request waits, the connection closes. */
static void eof_check(hconn_t *hc)
{
    if (hc->peer_eof && (hc->state == HC_IDLE || hc->state == HC_HEAD) && !hc->wait_drain) {
        hc->state = HC_DONE;
        req_abandon(hc); /* an incomplete head: the FIN ended it */
        tc__hconn_consume(hc, hc->len);
        tc__conn_close_peer(hc->c);
    }
}

/* The client's FIN. A request still being answered with a finite answer (or whole ones waiting behind it) keeps the
 * connection open for writing; anything else closes as before: idle, a head or body that will never complete, a
 * WebSocket, and an endless stream (MJPEG, SSE: a viewer's FIN means it left, and a stream with nothing to send
 * would not notice for a long time). */
static void peer_eof(tc_conn_t *c, hconn_t *hc)
{
    int finite = hc != NULL && hc->state == HC_STREAM && hc->req != NULL &&
                 hc->req->stream_kind != TC_HTTP_STREAM_MJPEG && hc->req->stream_kind != TC_HTTP_STREAM_SSE;
    if (hc != NULL && (hc->state == HC_HANDLER || finite ||
                       (hc->state == HC_BODY && hc->req->body_paused) || (hc->state == HC_IDLE && hc->wait_drain))) {
        hc->peer_eof = 1;
        return;
    }
    if (hc != NULL && hc->state != HC_WS && hc->state != HC_DONE) {
        hc->state = HC_DONE;
    }
    tc__conn_half_open(c, 0);
}

/* ---- connection events ---- */

static void hconn_free(hconn_t *hc)
{
    /* A request cut in its head or body was never handed to a handler: it is freed here (it leaked before). */
    req_abandon(hc);
    if (hc->ws) {
        tc__ws_free(hc);
    }
    tc_free(hc->buf);
    tc_free(hc);
}

/* Only live sessions and requests in flight hold the slots (TC_FULL_EVICT_IDLE): rather than evict one of them, tell
 * the newcomer to come back. Sent before its request is read; the close drains it. */
static void over_limit(tc_http_t *h, tc_conn_t *c)
{
    char msg[192];
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 503 Service Unavailable\r\nRetry-After: %u\r\nContent-Type: text/plain\r\n"
                     "Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n",
                     (unsigned)h->cfg.retry_after_s);
    tc_conn_send(c, msg, (size_t)n);
    tc_conn_close(c, h->cfg.close_policy); /* a closing connection gets no TC_EV_DATA: its request is never read */
}

/* The connection's record exists only while something is in flight (a head, a body, a request, a stream, a
 * WebSocket): an idle keep-alive connection costs its tc_conn and nothing else. */
static hconn_t *hconn_new(tc_conn_t *c)
{
    hconn_t *hc = tc_calloc(1, sizeof(*hc));
    if (hc == NULL) {
        tc_conn_close(c, TC_CLOSE_ABORT);
        return NULL;
    }
    hc->c = c;
    tc_conn_set_data(c, hc);
    return hc;
}

/* From the sweep only, never from inside the connection's own callbacks or its handlers' calls, which may still
 * hold hc: an idle record is given back. */
static void hconn_release_idle(hconn_t *hc)
{
    if (hc->state == HC_IDLE && hc->len == 0 && hc->req == NULL && hc->ws == NULL && !hc->wait_drain &&
        !hc->processing) {
        tc_conn_set_data(hc->c, NULL);
        tc_free(hc);
    }
}

static void sweep_wake(tc_http_t *h);

static void http_conn_cb(tc_conn_t *c, tc_event_t ev, const void *data, size_t len, void *user)
{
    tc_http_t *h = user;
    hconn_t *hc = tc_conn_data(c);
    switch (ev) {
    case TC_EV_OPEN:
        tc_conn_set_role(c, TC_ROLE_HTTP);
        tc__conn_half_open(c, 1); /* a FIN after a request does not cancel its answer (peer_eof()) */
        if (len == TC_OPEN_OVER_LIMIT) {
            over_limit(h, c);
        }
        break;
    case TC_EV_DATA:
        if (len == 0) {
            peer_eof(c, hc);
            return;
        }
        if (hc == NULL && (hc = hconn_new(c)) == NULL) {
            return;
        }
        sweep_wake(h);
        if (hc->state == HC_DONE) {
            return;
        }
        if (hc->state == HC_WS) {
            tc__ws_data(hc, data, len);
            return;
        }
        if (hc->state == HC_STREAM || hc->state == HC_HANDLER || (hc->state == HC_BODY && hc->req->body_paused)) {
            /* Pipelined requests (or the rest of a paused body) wait their turn. Past a bound the connection stops
             * reading: TCP's window pushes back on the client, and nothing it sent is refused or lost. */
            if (tc__hconn_append(hc, data, len, HC_BUF_MAX) != TC_OK) {
                tc_conn_close(c, TC_CLOSE_ABORT); /* out of memory: nothing sensible can be answered mid-response */
                return;
            }
            if (hc->len >= (size_t)h->cfg.max_head + PIPELINE_SLACK) {
                tc_conn_set_reading(c, 0);
            }
            return;
        }
        if (tc__hconn_append(hc, data, len, (size_t)h->cfg.max_head + 64 * 1024) != TC_OK) {
            fail_conn(hc, hc->state == HC_BODY ? 413 : 431);
            return;
        }
        process(hc);
        break;
    case TC_EV_DRAINED:
        if (hc && hc->state == HC_STREAM && hc->req && hc->req->stream_waiting) {
            tc__stream_kick(hc->req);
        } else if (hc && hc->wait_drain && hc->state == HC_IDLE) {
            hc->wait_drain = 0;
            process(hc);
        }
        break;
    case TC_EV_SHUTDOWN:
        if (hc == NULL) {
            /* Idle (no record): as HC_IDLE below. */
            if (!tc_conn_is_closing(c)) {
                tc_conn_close(c, TC_CLOSE_GRACEFUL);
            }
            return;
        }
        switch (hc->state) {
        case HC_HANDLER:
            tc_conn_hold(c); /* let the request finish; its answer says Connection: close */
            break;
        case HC_STREAM:
            tc_conn_hold(c);
            tc__stream_end(hc->req, 1);
            break;
        case HC_WS:
            tc_conn_hold(c);
            h->h.report.websockets_closed++;
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

/* A body that stalls (no byte for idle_timeout_ms) is told 408, as one below the minimum rate is. That rule exists
 * because every byte restarts the quiet clock: without it 1 byte every few seconds would hold a body (and its memory)
 * open forever; each window of body_grace_ms after the first must bring body_min_rate bytes/s. A body paused by its
 * handler is not the client's fault: neither rule runs, and the window restarts when it resumes. */
static void body_check(tc_http_t *h, hconn_t *hc, uint64_t now)
{
    tc_http_req_t *req = hc->req;
    if (req == NULL || req->body_paused) {
        return;
    }
    if (h->cfg.idle_timeout_ms && now - tc__conn_active_ms(hc->c) >= h->cfg.idle_timeout_ms) {
        fail_conn(hc, 408);
        return;
    }
    if (h->cfg.body_min_rate == 0 || now - req->win_start < h->cfg.body_grace_ms) {
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

/* The sweep runs while some connection has something to time (a head, a body, a WebSocket, a stream, a handler, an
 * idle record to release); otherwise it sleeps until the next input (sweep_wake), so an idle server and one holding
 * only idle keep-alives do not wake the loop (a device can sleep; 10k idle connections cost no CPU). */
static int64_t sweep_cb(tc_timer_t *t, void *user)
{
    (void)t;
    tc_http_t *h = user;
    uint64_t now = tc_loop_now(h->loop);
    unsigned busy = 0;
    for (tc_conn_t *c = h->srv ? tc__server_conns(h->srv) : NULL; c; c = tc__conn_next(c)) {
        hconn_t *hc = tc_conn_data(c);
        if (hc == NULL || tc_conn_is_closing(c)) {
            continue;
        }
        if (hc->state == HC_IDLE) {
            hconn_release_idle(hc);
        } else if (hc->state == HC_HEAD && (uint32_t)now - hc->head_started >= h->cfg.head_timeout_ms) {
            fail_conn(hc, 408);
        } else if (hc->state == HC_BODY) {
            body_check(h, hc, now);
        } else if (hc->state == HC_WS) {
            tc__ws_liveness(h, hc, now);
        } else if (hc->state == HC_STREAM) {
            tc__stream_liveness(h, hc, now);
        }
        busy += tc_conn_data(c) != NULL && !tc_conn_is_closing(c);
    }
    return busy > 0 || h->h.stopping ? SWEEP_MS : TC_TIMER_STOP;
}

static void sweep_wake(tc_http_t *h)
{
    if (h->sweep.heap_index < 0) {
        tc__timer_arm(&h->sweep, SWEEP_MS); /* out of memory: tried again at the next input */
    }
}

/* ---- server ---- */

static void http_stop(tc_handle_t *hd, uint32_t deadline_ms);
static void http_stop_sooner(tc_handle_t *hd, uint32_t deadline_ms);
static const tc_handle_ops_t http_ops = {TC_HANDLE_HTTP, http_stop, http_stop_sooner};

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
    tc__handle_init(&h->h, &http_ops, loop);
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

static void http_release(tc_handle_t *hd)
{
    tc_http_t *h = (tc_http_t *)hd;
    tc_loop_t *loop = h->loop;
    tc__timer_disarm(&h->sweep);
    tc__http_routes_free(h);
    if (h->filter_free) {
        h->filter_free(h->filter_user);
    }
    tc_free(h);
    tc__handles_add(loop, -1);
}

/* The TCP server under the HTTP server has stopped (every connection is gone): the HTTP stop is complete. */
static void http_core_stopped(tc_handle_t *srv, const tc_stop_report_t *r, void *user)
{
    (void)srv;
    tc_http_t *h = user;
    h->h.report.graceful = r->graceful;
    h->h.report.forced = r->forced;
    tc__handle_finish(&h->h, http_release);
}

/* tc_handle_stop() of an HTTP server: its TCP server stops; the connection callbacks see h.stopping and answer
 * in-flight requests, end streams and close WebSockets with 1001 (counted in h.report) while it does. */
static void http_stop(tc_handle_t *hd, uint32_t deadline_ms)
{
    tc_http_t *h = (tc_http_t *)hd;
    tc_handle_stop(tc_server_handle(h->srv), deadline_ms, http_core_stopped, h);
}

/* Its TCP server holds the deadline (it finishes first, and this handle with it, so it is still there). */
static void http_stop_sooner(tc_handle_t *hd, uint32_t deadline_ms)
{
    tc_http_t *h = (tc_http_t *)hd;
    tc_handle_stop_sooner(tc_server_handle(h->srv), deadline_ms);
}

tc_handle_t *tc_http_handle(tc_http_t *http)
{
    return http ? &http->h : NULL;
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
