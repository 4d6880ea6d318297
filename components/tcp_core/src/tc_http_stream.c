/*
 * tc_http_stream.c - streamed responses: chunked bodies, MJPEG (multipart/x-mixed-replace) and server-sent events.
 * A stream is a producer the loop asks for the next part when the socket can take it (TC_EV_DRAINED or its own
 * timer), so a camera that never stops never blocks the loop or a stop.
 */
#include <stdio.h>
#include <string.h>

#include "tc_err.h"
#include "tc_http_internal.h"

static const char MJPEG_BOUNDARY[] = "tcpcoreframe";

void tc__stream_end(tc_http_req_t *req, int clean)
{
    hconn_t *hc = req->hc;
    tc__timer_disarm(&req->stream_timer);
    /* A sized body ended before its Content-Length (the server stops, the producer gave up): no terminator can make
     * it whole, so the connection ends with our FIN after what was written, and the client sees it short. */
    int short_body = req->stream_kind == TC__STREAM_SIZED && req->stream_left > 0;
    if (clean && req->stream_kind == TC__STREAM_SIZED) {
        if (req->h->h.stopping) {
            req->h->h.report.streams_ended++;
        }
    } else if (clean) {
        if (req->stream_kind == TC_HTTP_STREAM_MJPEG && req->out_chunked) {
            tc_conn_send(hc->c, "12\r\n--tcpcoreframe--\r\n\r\n0\r\n\r\n", 29);
        } else if (req->stream_kind == TC_HTTP_STREAM_MJPEG) {
            tc_conn_send(hc->c, "--tcpcoreframe--\r\n", 18);
        } else if (req->out_chunked) {
            tc_conn_send(hc->c, "0\r\n\r\n", 5);
        } /* else HTTP/1.0: the body ends with our FIN */
        if (req->h->h.stopping) {
            req->h->h.report.streams_ended++;
        }
    }
    /* A chunked stream that ended cleanly is a finished response, and the connection goes back to keep-alive like any
     * other; an HTTP/1.0 one (no chunks) is close-delimited. */
    if ((req->stream_kind != TC__STREAM_SIZED && !req->out_chunked) || !clean || short_body) {
        req->keep_alive = 0;
    } else {
        tc__conn_reg_flags(hc->c, 0, TC_REG_FLAG_STREAMING);
        tc_conn_set_role(hc->c, TC_ROLE_HTTP);
        tc__http_req_finish(req);
        return;
    }
    tc_conn_t *c = hc->c;
    int graceful = clean && (!req->out_chunked || short_body);
    hc->state = HC_DONE;
    hc->req = NULL;
    tc__http_req_free(req);
    /* A close-delimited stream must end with our FIN, or the viewer cannot tell the end from a stall. */
    tc_conn_close(c, clean ? (graceful ? TC_CLOSE_GRACEFUL : HC_HTTP(hc)->cfg.close_policy) : TC_CLOSE_ABORT);
}

static void stream_call(tc_http_req_t *req)
{
    hconn_t *hc = req->hc;
    req->stream_waiting = 0;
    if (HC_HTTP(hc)->h.stopping) {
        tc__stream_end(req, 1);
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
        tc__stream_end(req, 1);
        return;
    }
    if (next < 0) {
        tc__stream_end(req, 0);
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

void tc__stream_kick(tc_http_req_t *req)
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
    /* HTTP/1.1 clients get the body in chunks: its end is then delimited (the last chunk), so the server need not
     * close first to end it, and TIME-WAIT stays with the client. HTTP/1.0 has no chunks (RFC 9112 6.1: no
     * Transfer-Encoding to a 1.0 request): the body ends with the connection. */
    req->out_chunked = req->parsed.minor == 1;
    if (!req->out_chunked) {
        extra = "Cache-Control: no-cache\r\n";
        req->keep_alive = 0;
    }
    /* A live stream gets a small send buffer (below) that stays with the socket (Linux no longer tunes it), so the
     * connection is not kept for a download after it: its head says so (RFC 9112 9.6). A HEAD keeps it. */
    int live = kind != TC_HTTP_STREAM_CHUNKED && req->h->cfg.stream_sndbuf && !req->head_only;
    if (live) {
        req->keep_alive = 0;
    }
    if (kind == TC_HTTP_STREAM_MJPEG) {
        snprintf(ct, sizeof(ct), "multipart/x-mixed-replace;boundary=%s", MJPEG_BOUNDARY);
        ctype = ct;
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
    int rc = tc__http_send_head(req, 200, ctype, -1, extra, NULL, 0);
    if (rc != TC_OK) {
        return rc;
    }
    if (req->head_only) {
        tc__http_req_finish(req);
        return TC_OK;
    }
    req->hc->state = HC_STREAM;
    tc__conn_reg_flags(req->hc->c, TC_REG_FLAG_STREAMING, 0);
    tc_conn_set_role(req->hc->c, kind == TC_HTTP_STREAM_SSE ? TC_ROLE_SSE : TC_ROLE_STREAM);
    if (live) {
        tc__conn_sndbuf(req->hc->c, req->h->cfg.stream_sndbuf); /* live: frames wait where they can be skipped */
    }
    tc_conn_set_reading(req->hc->c, 1); /* to see the viewer leave */
    tc__timer_init(req->h->loop, &req->stream_timer, stream_timer_cb, req);
    req->last_write = req->taken_ms = tc_loop_now(req->h->loop);
    tc__stream_kick(req);
    return TC_OK;
}

int tc_http_stream_sized(tc_http_req_t *req, int status, const char *ctype, uint64_t length,
                         tc_http_produce_cb produce, void *user)
{
    if (req == NULL || produce == NULL || req->answered || req->body_pending || status < 200 || status > 599 ||
        status == 204 || status == 304 || length > (uint64_t)INT64_MAX) {
        return TC_EINVAL;
    }
    if (req->hc == NULL) {
        return TC_ECLOSED;
    }
    req->answered = 1;
    req->streaming = 1;
    req->stream_kind = TC__STREAM_SIZED;
    req->stream_left = length;
    req->produce = produce;
    req->produce_user = user;
    int rc = tc__http_send_head(req, status, ctype ? ctype : "application/octet-stream", (long long)length, NULL,
                                NULL, 0);
    if (rc != TC_OK) {
        return rc;
    }
    if (req->head_only || length == 0) {
        req->stream_left = 0;
        tc__http_req_finish(req);
        return TC_OK;
    }
    req->hc->state = HC_STREAM;
    tc__conn_reg_flags(req->hc->c, TC_REG_FLAG_STREAMING, 0);
    tc_conn_set_role(req->hc->c, TC_ROLE_STREAM);
    tc_conn_set_reading(req->hc->c, 1); /* to see the client leave */
    tc__timer_init(req->h->loop, &req->stream_timer, stream_timer_cb, req);
    req->last_write = req->taken_ms = tc_loop_now(req->h->loop);
    tc__stream_kick(req);
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
    char size[24], pre[160];
    tc_buf_t m[4];
    size_t k = 0;
    if (req->stream_kind == TC__STREAM_SIZED) {
        if (len > req->stream_left) {
            return TC_EINVAL; /* beyond the Content-Length announced */
        }
        if (len == 0) {
            return TC_OK;
        }
        m[k++] = (tc_buf_t){data, len};
    } else if (req->stream_kind == TC_HTTP_STREAM_MJPEG) {
        /* X-Timestamp (the header mjpg-streamer sends, there wall time): when the part was queued, in seconds of the
         * loop's monotonic clock. A viewer compares its steps with its own clock to see how far behind it is. */
        uint64_t ms = tc_loop_now(req->h->loop);
        int n = snprintf(pre, sizeof(pre),
                         "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %zu\r\nX-Timestamp: %llu.%03u\r\n\r\n",
                         MJPEG_BOUNDARY, len, (unsigned long long)(ms / 1000), (unsigned)(ms % 1000));
        if (req->out_chunked) {
            int sn = snprintf(size, sizeof(size), "%zx\r\n", (size_t)n + len + 2);
            m[k++] = (tc_buf_t){size, (size_t)sn};
        }
        m[k++] = (tc_buf_t){pre, (size_t)n};
        m[k++] = (tc_buf_t){data, len};
        m[k++] = (tc_buf_t){req->out_chunked ? "\r\n\r\n" : "\r\n", req->out_chunked ? 4u : 2u};
    } else if (req->stream_kind == TC_HTTP_STREAM_SSE) {
        /* One event: "data: ...\n\n" inside one chunk; the data must not hold newlines (each would end a field). */
        if (memchr(data, '\n', len) || memchr(data, '\r', len)) {
            return TC_EINVAL;
        }
        int n = req->out_chunked ? snprintf(pre, sizeof(pre), "%zx\r\ndata: ", len + 8)
                             : snprintf(pre, sizeof(pre), "data: ");
        m[k++] = (tc_buf_t){pre, (size_t)n};
        m[k++] = (tc_buf_t){data, len};
        m[k++] = (tc_buf_t){"\n\n\r\n", req->out_chunked ? 4u : 2u};
    } else {
        if (len == 0) {
            return TC_OK; /* an empty chunk would end the body */
        }
        if (req->out_chunked) {
            int n = snprintf(pre, sizeof(pre), "%zx\r\n", len);
            m[k++] = (tc_buf_t){pre, (size_t)n};
        }
        m[k++] = (tc_buf_t){data, len};
        if (req->out_chunked) {
            m[k++] = (tc_buf_t){"\r\n", 2};
        }
    }
    int rc = tc_conn_sendv(c, m, k);
    if (rc == TC_OK) {
        req->last_write = tc_loop_now(req->h->loop); /* SSE heartbeats count from the last part sent */
        if (req->stream_kind == TC__STREAM_SIZED) {
            req->stream_left -= len;
        }
    }
    return rc;
}


/* Liveness of a stream: its own progress. A viewer whose queued bytes have not moved for idle_timeout_ms has stopped
 * reading (or vanished): ended with an RST, as what is queued cannot be delivered anyway. A stream that says little
 * queues nothing (its bytes fit the stack's buffer), so there the stack's own progress is judged: a viewer whose stack
 * acknowledged none of what it holds for idle_timeout_ms is ended the same way. An SSE stream that has had nothing
 * to say for sse_heartbeat_ms sends a comment line, so proxies and the browser see it alive. */
void tc__stream_liveness(tc_http_t *h, hconn_t *hc, uint64_t now)
{
    tc_http_req_t *req = hc->req;
    if (req == NULL) {
        return;
    }
    int q;
    if (tc_conn_queued(hc->c) > 0) {
        /* Our queue has not moved for a while: a viewer that reads slowly behind a large send buffer is not dead
         * while its stack still acknowledges; one whose stack took nothing for the idle timeout is ended. */
        q = tc__conn_quiet(hc->c, now - tc__conn_active_ms(hc->c), h->cfg.idle_timeout_ms);
        if (q == TC_QUIET_ALIVE) {
            tc__conn_touch(hc->c);
        }
        req->taken_ms = now; /* judged by the queue while there is one */
    } else {
        q = tc__conn_held_quiet(hc->c, now - req->taken_ms, h->cfg.idle_timeout_ms);
        if (q == TC_QUIET_ALIVE) {
            req->taken_ms = now;
        }
    }
    if (q == TC_QUIET_GONE) {
        tc__stream_end(req, 0);
        return;
    }
    if (req->stream_kind == TC_HTTP_STREAM_SSE && h->cfg.sse_heartbeat_ms &&
        now - req->last_write >= h->cfg.sse_heartbeat_ms && tc_http_stream_ready(req)) {
        req->last_write = now;
        static const char beat[] = "3\r\n:\n\n\r\n"; /* one chunk holding the comment ":\n\n" */
        /* 8 bytes (a count of 10 sent a NUL and a stray byte after it); HTTP/1.0: the comment alone */
        tc_conn_send(hc->c, req->out_chunked ? beat : beat + 3, req->out_chunked ? sizeof(beat) - 1 : 3);
    }
}

/* Every SWEEP_MS: request heads that take too long (slowloris: 408), bodies below the minimum rate (408), liveness of WebSockets and streams (they are
 * exempt from the idle timeout, tc_role_is_long_lived()). */
