/*
 * tc_ws.c - WebSocket sessions of the HTTP server (RFC 6455): the upgrade handshake, frames in (reassembly, UTF-8
 * checks, ping/pong, the close handshake), frames out, broadcast and liveness. The frame format itself is the pure
 * codec's (tc_ws_codec.c).
 */
#include <stdio.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http_internal.h"

static int ws_send_frame(tc_ws_t *ws, int opcode, const void *data, size_t len);
static size_t ws_frames(hconn_t *hc, uint8_t *buf, size_t len);

int tc__ws_upgrade(hconn_t *hc, tc_http_req_t *req)
{
    tc_http_slice_t ver, key;
    /* RFC 6455 4.2.1: an HTTP/1.1 GET (routes take HEAD as a GET; a HEAD has no answer body to carry frames). */
    if (req->parsed.method.len != 3 || memcmp(req->parsed.method.ptr, "GET", 3) != 0) {
        tc_http_resp_header(req, "Allow", "GET");
        return tc_http_respond(req, 405, "text/plain", "a websocket opens with GET\n", 27);
    }
    if (req->parsed.minor < 1) {
        return tc_http_respond(req, 400, "text/plain", "a websocket needs HTTP/1.1\n", 27);
    }
    if (!tc_http_header_lists(&req->parsed, "upgrade", "websocket") ||
        !tc_http_header_lists(&req->parsed, "connection", "upgrade")) {
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
    int rc = tc__http_send_head(req, 101, NULL, -1, extra, NULL, 0);
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
    tc__http_req_free(req);
    tc_conn_set_reading(hc->c, 1);
    tc__conn_reg_flags(hc->c, TC_REG_FLAG_STREAMING, 0);
    tc_conn_set_role(hc->c, TC_ROLE_WS);
    ws->opened = 1;
    route->ws_cb(ws, TC_WS_EV_OPEN, NULL, 0, route->user);
    if (hc->state == HC_WS && hc->len > 0) {
        /* Frames that came with the handshake (a client should wait for the 101, RFC 6455 4.1; some do not): handle
         * them now rather than when the next bytes happen to arrive. */
        tc__hconn_consume(hc, ws_frames(hc, (uint8_t *)hc->buf, hc->len));
    }
    return TC_OK;
}

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
    tc__hconn_consume(hc, hc->len);
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
    ws->last_ping = tc_loop_now(HC_HTTP(ws->hc)->loop); /* the peer's close is awaited from now (tc__ws_liveness) */
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

static size_t ws_frames(hconn_t *hc, uint8_t *buf, size_t len)
{
    tc_ws_t *ws = hc->ws;
    tc_http_t *h = HC_HTTP(hc);
    size_t off = 0;
    while (hc->state == HC_WS && off < len) {
        tc_ws_frame_t f;
        int n = tc_ws_decode_header(buf + off, len - off, h->cfg.ws_max_message, &f);
        if (n == TC_WS_INCOMPLETE) {
            break;
        }
        if (n < 0) {
            ws_fail(ws, tc_ws_error_close_code(n));
            break;
        }
        /* The frame length was checked against ws_max_message as 64-bit by the decoder: narrowing is safe. */
        size_t plen = (size_t)f.payload_len;
        if (len - off - (size_t)n < plen) {
            break; /* wait for the rest; the buffer is bounded by the message limit */
        }
        uint8_t *payload = buf + off + n;
        tc_ws_unmask(payload, plen, f.mask, 0);
        uint8_t open_opcode = ws->msg_opcode; /* before the check updates it */
        ws->awaiting_pong = 0;                 /* the peer is alive */
        int code = tc_ws_frame_check(&ws->msg_opcode, &f);
        if (code) {
            ws_fail(ws, (uint16_t)code);
            return off;
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
            off += (size_t)n + plen;
            if (cc != 0) {
                ws_fail(ws, (uint16_t)cc);
                break;
            }
            ws->close_code = rcode;
            if (!ws->close_sent) {
                tc_ws_close(ws, rcode == 1005 ? 1000 : rcode, NULL);
            } else {
                ws_tcp_close(hc);
            }
            break;
        } else {
            /* Data frame (first or continuation): append, validate text as it comes. */
            int op = f.opcode == TC_WS_OP_CONT ? open_opcode : f.opcode;
            if (ws->msg_len + plen > h->cfg.ws_max_message) {
                ws_fail(ws, 1009);
                return off;
            }
            if (op == TC_WS_OP_TEXT && tc_ws_utf8_feed(&ws->utf8, payload, plen) != 0) {
                ws_fail(ws, 1007);
                return off;
            }
            if (f.fin && ws->msg_len == 0) {
                if (op == TC_WS_OP_TEXT && !tc_ws_utf8_complete(&ws->utf8)) {
                    ws_fail(ws, 1007);
                    return off;
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
                        return off;
                    }
                    ws->msg = m;
                    ws->msg_cap = cap;
                }
                memcpy(ws->msg + ws->msg_len, payload, plen);
                ws->msg_len += plen;
                if (f.fin) {
                    if (op == TC_WS_OP_TEXT && !tc_ws_utf8_complete(&ws->utf8)) {
                        ws_fail(ws, 1007);
                        return off;
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
        off += (size_t)n + plen;
    }
    return off;
}

/* Liveness of a WebSocket: a ping when none is outstanding and ws_ping_ms passed since the last; a peer that
 * answers nothing within ws_pong_timeout_ms of a ping is gone (a phone that left the Wi-Fi sends no FIN): closed
 * without a close frame, which its callback reports as 1006. A quiet peer that answers pings lives forever. */
void tc__ws_liveness(tc_http_t *h, hconn_t *hc, uint64_t now)
{
    tc_ws_t *ws = hc->ws;
    uint32_t wait_max = h->cfg.ws_pong_timeout_ms;
    if (ws->awaiting_pong || (ws->close_sent && !ws->close_received)) {
        /* Waiting for a pong, or for the answer to our close (last_ping: when the close was sent). A peer whose
         * stack still acknowledges our bytes is alive, its answer queued behind them (a slow reader behind a large
         * send buffer): the wait starts over. One whose stack took nothing for wait_max is gone. */
        int q = tc__conn_quiet(hc->c, now - ws->last_ping, wait_max);
        if (q == TC_QUIET_ALIVE) {
            ws->last_ping = now;
        } else if (q == TC_QUIET_GONE) {
            hc->state = HC_DONE;
            tc_conn_close(hc->c, TC_CLOSE_ABORT);
        }
        return;
    }
    if (h->cfg.ws_ping_ms == 0 || ws->close_sent) {
        return;
    }
    if (now - ws->last_ping >= h->cfg.ws_ping_ms) {
        ws->last_ping = now;
        ws->awaiting_pong = 1;
        ws_send_frame(ws, TC_WS_OP_PING, "tc", 2);
    }
}

void tc__ws_data(hconn_t *hc, const void *data, size_t len)
{
    tc_http_t *h = HC_HTTP(hc);
    size_t rsize;
    char *rbuf = tc__rbuf(h->loop, &rsize);
    const char *p = data;
    /* Every frame the decoder accepts (at most ws_max_message of payload) fits the bound whole: a buffered partial
     * frame takes at most that much more, so the bound limits the frame, not the read that completes it. */
    size_t limit = h->cfg.ws_max_message + TC_WS_MAX_HEADER + 4096;
    while (len > 0 && hc->state == HC_WS) {
        size_t used;
        if (hc->len == 0 && p >= rbuf && p < rbuf + rsize) {
            /* Nothing buffered: whole frames are handled where they were received, the loop's receive buffer (the
             * core's own, writable until the next receive: payloads are unmasked in place), with no copy and no
             * allocation; only an incomplete frame at the end is kept. */
            used = ws_frames(hc, (uint8_t *)rbuf + (p - rbuf), len);
            if (used == len || hc->state != HC_WS) {
                return;
            }
            p += used;
            len -= used;
        }
        /* An incomplete frame waits in the connection's buffer: add what it lacks (up to the bound), handle it,
         * then go on with the rest of the read. */
        size_t take = limit > hc->len ? limit - hc->len : 0;
        if (take > len) {
            take = len;
        }
        if (take == 0 || tc__hconn_append(hc, p, take, limit) != TC_OK) {
            ws_fail(hc->ws, take == 0 ? 1009 : 1011);
            return;
        }
        p += take;
        len -= take;
        tc__hconn_consume(hc, ws_frames(hc, (uint8_t *)hc->buf, hc->len));
    }
}

void tc__ws_free(hconn_t *hc)
{
    tc_ws_t *ws = hc->ws;
    if (ws->opened) {
        ws->route->ws_cb(ws, TC_WS_EV_CLOSE, NULL, ws->close_received ? ws->close_code : 1006, ws->route->user);
    }
    tc_free(ws->msg);
    tc_free(ws);
    hc->ws = NULL;
}
