/*
 * tc_tcp.c - TCP servers, reconnecting clients and their connections.
 *
 * A connection is one allocation: registry entry, descriptor slot and write queue head (a server finds its
 * connections in the loop's registry: no list links of their own); a close or connect deadline is a timer allocated
 * only while one is armed. Received bytes land in the loop's shared buffer, so an idle connection holds no buffer at
 * all. Closes are requests: tc_conn_close() records the policy and queues the connection on the loop's after-dispatch
 * list, where close_step() does all the work; the TC_EV_CLOSE callback comes once, from there. Servers and clients
 * are handles (tc_handle.h); a client's names are resolved through the loop (tc_resolve.c).
 */
#include <stdio.h>
#include <string.h>

#include "tc_addr.h"
#include "tc_alloc.h"
#include "tc_dns.h"
#include "tc_err.h"
#include "tc_internal.h"
#include "tc_resolve.h"
#include "tc_tcp.h"

/* The server or client around an owner (the owner follows their handle header). */
#define OWNER_OF(o, type) ((type *)((char *)(o) - offsetof(type, owner)))

/* The part a server and a client share as owner of connections. */
typedef struct tc_owner tc_owner_t;
struct tc_owner {
    tc_conn_config_t cfg;
    tc_conn_cb cb;
    void *user;
    const char *name;
    tc_loop_t *loop;
    uint32_t count;                 /* live connections (closing ones included) */
    uint32_t closing;               /* of those, how many are closing */
    void (*gone)(tc_owner_t *owner, tc_conn_t *conn); /* after a connection's TC_EV_CLOSE */
};

typedef struct tc_chunk tc_chunk_t;
struct tc_chunk {
    tc_chunk_t *next;
    tc_chunk_t *last; /* in the queue's first chunk: its last one (a connection holds no tail pointer) */
    size_t off, len, cap;
    char data[];
};

enum {
    CF_OPENED = 0x01,     /* TC_EV_OPEN was delivered */
    CF_CLOSING = 0x02,    /* a close was requested */
    CF_EOF = 0x04,        /* the peer's FIN arrived */
    CF_BP_PAUSED = 0x08,  /* reading paused by backpressure */
    CF_USER_PAUSED = 0x10, /* reading paused by tc_conn_set_reading(0) */
    CF_ABOVE_LOW = 0x20,  /* queue went above low water since the last TC_EV_DRAINED */
    CF_DEADLINE = 0x40,   /* the close deadline passed */
    CF_FINAL = 0x80,      /* finalized: only waiting to be freed */
};
enum {
    CF2_HOLD = 0x01, /* the handler keeps the connection open through a stop (tc_conn_hold()) */
    CF2_WR_SHUT = 0x02, /* graceful close: our FIN is sent, input is discarded until the peer's */
    CF2_GONE = 0x04,    /* the peer reset the connection (or it broke): the stack has nothing left to reset */
    CF2_RST = 0x08,     /* it ended with an RST (ours or the peer's): a stop counts it as forced */
    CF2_ACK_MARK = 0x10, /* acked_mark holds a value */
    CF2_PEER_DONE = 0x20, /* the peer announced it sends nothing more (tc__conn_peer_done()) and nothing came since */
    CF2_HALF_OPEN = 0x40, /* the peer's FIN goes to the owner first (tc__conn_half_open()) */
    CF2_SELF_TIMED = 0x80, /* its owner times its quiet itself: the idle timeout passes it by (tc__conn_self_timed()) */
};

/* How conn_finalize() lets go of the socket. END_AT_ONCE: a graceful close that need not linger, a plain close
 * whose TIME-WAIT stays with the stack (tc_sock_time_wait_harmless()). */
enum { END_CLOSE = 0, END_ABORT, END_REAP, END_AT_ONCE };

struct tc_conn {
    tc_regent_t reg; /* first: the registry walks these */
    tc_io_t io;
    tc_owner_t *owner;
    tc_chunk_t *wq_head; /* write queue, oldest first; wq_head->last is its tail */
    void *data;
    tc_timer_t *deadline; /* close or connect deadline, allocated only while one is armed */
    tc_pending_t pending;
    uint8_t flags;
    uint8_t close_how;    /* tc_close_policy_t */
    uint8_t close_reason; /* tc_close_reason_t */
    uint8_t flags2;
    uint32_t acked_mark; /* the peer's acknowledged bytes (low 32 bits) when last looked: by the close deadline, or
                          * by the liveness rule (tc__conn_quiet()) */
};

struct tc_server {
    tc_handle_t h; /* first: tc_handle.h */
    tc_owner_t owner;
    tc_regent_t reg; /* the listener */
    tc_io_t io;
    tc_timer_t timer; /* idle sweep, accept back-off, stop deadline */
    tc_pending_t pending;
    uint16_t port;
    uint32_t max_conns;
    tc_full_policy_t when_full;
    uint32_t overflow_max;
    uint8_t listening;
    uint8_t opts_inherited; /* the listener carries the connection options (tc_sock_accept_inherits_opts()) */
};

struct tc_client {
    tc_handle_t h; /* first: tc_handle.h */
    tc_owner_t owner;
    tc_timer_t retry;
    tc_pending_t pending;
    char *host;
    uint16_t port;
    tc_addr_t addr;
    uint8_t numeric;
    uint8_t gave_up;
    uint8_t has_ns; /* ns is the client's own nameserver */
    tc_addr_t ns;
    tc_conn_t *conn;
    tc_resolve_t *resolving; /* a name resolution in flight */
    uint32_t connect_timeout_ms;
    uint8_t reconnect;
    uint32_t backoff_initial_ms, backoff_max_ms, next_delay_ms;
    uint8_t jitter_pct;
    uint32_t max_attempts;
    uint32_t stable_ms;
    uint64_t opened_ms; /* loop time the current session opened */
    tc_client_stats_t stats;
};

static void conn_close_req(tc_conn_t *c, tc_close_policy_t how, tc_close_reason_t reason);
static void conn_update_events(tc_conn_t *c);

/* A send or receive failed: the connection is dead. After the peer's RST (or a broken pipe) there is nothing to
 * reset, so the close skips tc_sock_abort()'s extra work; any other error still aborts. */
static void conn_broken(tc_conn_t *c, int err)
{
    if (err == TC_ECONNRESET || err == TC_EPIPE) {
        c->flags2 |= CF2_GONE;
    }
    conn_close_req(c, TC_CLOSE_ABORT, TC_REASON_RESET);
}

/* A graceful close that need not linger (tc__conn_peer_done()): the peer sends nothing more, nothing came, the queue
 * is handed to the stack, and the stack's TIME-WAIT is harmless. close_step() then closes at once. */
static int closes_at_once(const tc_conn_t *c)
{
    return c->close_how == TC_CLOSE_GRACEFUL && (c->flags2 & (CF2_PEER_DONE | CF2_WR_SHUT)) == CF2_PEER_DONE &&
           c->wq_head == NULL && tc_sock_time_wait_harmless();
}

/* ---- the owner's connections ----
 *
 * No list of their own: a server's connections are the loop's registry entries it accepted, in the order they came
 * (the registry appends, and a connection enters and leaves it with its life), which saves two links in every
 * connection. Least-recently-active eviction scans them for the oldest reg.active_ms when the server is full, instead
 * of moving a connection to the tail of an LRU list on every read and write: I/O only stamps the time, and walks
 * (stop, broadcast) never see the order change under them. */

/* The first connection that server owner o accepted at or after registry entry e, or NULL. */
static tc_conn_t *accepted_from(const tc_owner_t *o, tc_regent_t *e)
{
    for (; e; e = e->next) {
        if (e->kind == TC_KIND_ACCEPTED && ((tc_conn_t *)e)->owner == o) {
            return (tc_conn_t *)e; /* reg is a connection's first member */
        }
    }
    return NULL;
}

static void touch(tc_conn_t *c)
{
    c->reg.active_ms = (uint32_t)tc_loop_now(c->owner->loop);
}

/* The peer's acknowledged bytes (what we handed the stack less what it still holds, unacked) against the mark of the
 * last look, which this look replaces: 1 moved, 0 not, -1 there was no mark. */
static int ack_look(tc_conn_t *c, long unacked)
{
    uint32_t acked = (uint32_t)(c->reg.bytes_out - (uint64_t)unacked);
    int moved = (c->flags2 & CF2_ACK_MARK) ? acked != c->acked_mark : -1;
    c->flags2 |= CF2_ACK_MARK;
    c->acked_mark = acked;
    return moved;
}

/* The close or connect deadline: the timer exists only while armed, so an idle connection does not carry one. */
static int64_t conn_deadline_cb(tc_timer_t *t, void *user);

static int conn_deadline_arm(tc_conn_t *c, uint64_t ms)
{
    if (c->deadline) {
        return tc__timer_arm(c->deadline, ms);
    }
    return tc_timer_start(c->owner->loop, ms, conn_deadline_cb, c, &c->deadline);
}

static void conn_deadline_cancel(tc_conn_t *c)
{
    if (c->deadline) {
        tc_timer_cancel(c->deadline); /* safe from inside its own callback: freed when that returns */
        c->deadline = NULL;
    }
}

/* ---- events ---- */

static void emit(tc_conn_t *c, tc_event_t ev, const void *data, size_t len)
{
    c->owner->cb(c, ev, data, len, c->owner->user);
}

static void apply_sockopts(int fd, const tc_conn_config_t *cfg)
{
    /* Best effort: a backend without an option still serves. */
    if (cfg->nodelay) {
        tc_sock_setopt(fd, TC_OPT_NODELAY, 1);
    }
    if (cfg->keepalive_s > 0) {
        tc_sock_setopt(fd, TC_OPT_KEEPALIVE, cfg->keepalive_s);
    }
}

/* ---- write queue ---- */

static void wq_free(tc_conn_t *c)
{
    tc_chunk_t *k = c->wq_head;
    while (k) {
        tc_chunk_t *next = k->next;
        tc_free(k);
        k = next;
    }
    c->wq_head = NULL;
    c->reg.queued = 0;
}

/* Write as much of the queue as the socket takes. Returns 0, or a negative error (the connection is dead). */
static int wq_flush(tc_conn_t *c)
{
    while (c->wq_head) {
        tc_chunk_t *k = c->wq_head;
        long n = tc_sock_send(c->io.fd, k->data + k->off, k->len - k->off);
        if (n == TC_EAGAIN) {
            return 0;
        }
        if (n < 0) {
            return (int)n;
        }
        k->off += (size_t)n;
        c->reg.queued -= (size_t)n;
        c->reg.bytes_out += (uint64_t)n;
        if (k->off < k->len) {
            return 0;
        }
        c->wq_head = k->next;
        if (c->wq_head) {
            c->wq_head->last = k->last;
        }
        tc_free(k);
    }
    return 0;
}

static int wq_append(tc_conn_t *c, const char *p, size_t len)
{
    tc_chunk_t *t = c->wq_head ? c->wq_head->last : NULL;
    if (t && t->cap - t->len >= len) {
        memcpy(t->data + t->len, p, len);
        t->len += len;
    } else {
        /* Small writes share a chunk (HTTP heads come in pieces); big ones get their own. */
        size_t cap = len < 2048 ? 2048 : len;
        tc_chunk_t *k = tc_malloc(sizeof(*k) + cap);
        if (k == NULL) {
            return TC_ENOMEM;
        }
        k->next = NULL;
        k->off = 0;
        k->len = len;
        k->cap = cap;
        memcpy(k->data, p, len);
        if (t) {
            t->next = k;
        } else {
            c->wq_head = k;
        }
        c->wq_head->last = k;
    }
    c->reg.queued += len;
    return TC_OK;
}

/* Bytes were left over and queued: mark the queue's levels and ask for POLLOUT. */
static void conn_queued(tc_conn_t *c)
{
    const tc_conn_config_t *cfg = &c->owner->cfg;
    if (c->reg.queued > cfg->low_water) {
        c->flags |= CF_ABOVE_LOW;
    }
    if (c->reg.queued > cfg->high_water) {
        c->flags |= CF_BP_PAUSED;
        c->reg.flags |= TC_REG_FLAG_PAUSED;
    }
    conn_update_events(c);
}

/* Write one piece at once where the socket takes it (nothing waits), copy the rest to the queue. The caller checked
 * the limit. handed: the bytes of the same message handed over before this piece. A failure once any byte of the
 * message is handed over ends the connection, so that the peer never sees the rest missing in a stream that goes on. */
static int conn_write(tc_conn_t *c, const char *p, size_t len, size_t handed)
{
    if (c->wq_head == NULL) {
        long n = tc_sock_send(c->io.fd, p, len);
        if (n > 0) {
            c->reg.bytes_out += (uint64_t)n;
            touch(c);
            handed += (size_t)n;
            if ((size_t)n == len) {
                return TC_OK;
            }
            p += n;
            len -= (size_t)n;
        } else if (n != TC_EAGAIN) {
            conn_broken(c, (int)n);
            return (int)n;
        }
    }
    int rc = wq_append(c, p, len);
    if (rc != TC_OK) {
        if (handed > 0) {
            conn_broken(c, rc);
        }
        return rc;
    }
    conn_queued(c);
    return TC_OK;
}

/* conn_write() of v[0..k) (total bytes) in one write (tc_sock_sendv()). last: the caller closes gracefully right
 * after (tc__conn_sendv_last()). *done: the message's bytes handed over so far, sent or queued. */
static int conn_writev(tc_conn_t *c, const tc_sock_iov_t *v, int k, size_t total, int last, size_t *done)
{
    if (k == 1 && !last) {
        int rc = conn_write(c, v[0].data, v[0].len, *done);
        *done += rc == TC_OK ? total : 0;
        return rc;
    }
    size_t skip = 0;
    if (c->wq_head == NULL) {
        long w = tc_sock_sendv(c->io.fd, v, k, last);
        if (w > 0) {
            c->reg.bytes_out += (uint64_t)w;
            touch(c);
            *done += (size_t)w;
            if ((size_t)w == total) {
                return TC_OK;
            }
            skip = (size_t)w;
        } else if (w != TC_EAGAIN) {
            conn_broken(c, (int)w);
            return (int)w;
        }
    }
    for (int i = 0; i < k; i++) {
        if (skip >= v[i].len) {
            skip -= v[i].len;
            continue;
        }
        int rc = wq_append(c, (const char *)v[i].data + skip, v[i].len - skip);
        if (rc != TC_OK) {
            if (*done > 0) {
                conn_broken(c, rc);
            }
            return rc;
        }
        *done += v[i].len - skip;
        skip = 0;
    }
    conn_queued(c);
    return TC_OK;
}

int tc_conn_send(tc_conn_t *c, const void *data, size_t len)
{
    if (c == NULL || (data == NULL && len > 0)) {
        return TC_EINVAL;
    }
    if (c->flags & (CF_CLOSING | CF_FINAL) || c->reg.state != TC_STATE_OPEN) {
        return TC_ECLOSED;
    }
    if (len == 0) {
        return TC_OK;
    }
    const tc_conn_config_t *cfg = &c->owner->cfg;
    if (c->reg.queued + len > cfg->queue_max && c->reg.queued + len > len) {
        return TC_ELIMIT;
    }
    return conn_write(c, data, len, 0);
}

static int conn_sendv(tc_conn_t *c, const tc_buf_t *bufs, size_t n, int last)
{
    if (c == NULL || (bufs == NULL && n > 0)) {
        return TC_EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if ((bufs[i].data == NULL && bufs[i].len > 0) || total + bufs[i].len < total) {
            return TC_EINVAL;
        }
        total += bufs[i].len;
    }
    if (c->flags & (CF_CLOSING | CF_FINAL) || c->reg.state != TC_STATE_OPEN) {
        return TC_ECLOSED;
    }
    const tc_conn_config_t *cfg = &c->owner->cfg;
    /* A message larger than the queue limit still goes, once the queue has drained to low water: memory stays
     * bounded by low_water + one message, and the message is never split by the limit. */
    if ((c->reg.queued + total > cfg->queue_max || c->reg.queued + total < total) && c->reg.queued > cfg->low_water) {
        return TC_ELIMIT;
    }
    /* Nothing queued: one write for the whole message (tc_sock_sendv()), the stack packing it into as few segments as
     * it can; small pieces (a head comes in a dozen) are joined in the loop's gather buffer on the way, large ones go
     * as they are. What the socket does not take is copied onto the queue. With a queue, each piece is copied onto
     * it as it is: the socket takes nothing before the queue, and joining first would copy twice. */
    size_t gcap = 0, g = 0, done = 0, vtotal = 0;
    char *gb = tc__gbuf(c->owner->loop, &gcap);
    if (c->wq_head == NULL && total <= gcap) { /* the common case, a head and a small body: one piece */
        for (size_t i = 0; i < n; i++) {
            if (bufs[i].len > 0) {
                memcpy(gb + g, bufs[i].data, bufs[i].len);
                g += bufs[i].len;
            }
        }
        tc_sock_iov_t one = {gb, g};
        return g > 0 ? conn_writev(c, &one, 1, g, last, &done) : TC_OK;
    }
    int joining = c->wq_head == NULL, run = 0; /* run: v[k - 1] is the gather buffer's run that ends at g */
    tc_sock_iov_t v[TC_SOCK_IOV_MAX];
    int k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *p = bufs[i].data;
        size_t len = bufs[i].len;
        if (len == 0) {
            continue;
        }
        int join = joining && len <= gcap / 2 && g + len <= gcap;
        if (k == TC_SOCK_IOV_MAX && !(join && run)) {
            int rc = conn_writev(c, v, k, vtotal, last, &done);
            if (rc != TC_OK) {
                return rc;
            }
            k = 0;
            g = vtotal = 0; /* all of it is sent or copied onto the queue: the gather buffer is free again */
            joining = c->wq_head == NULL;
            join = joining && len <= gcap / 2;
            run = 0;
        }
        vtotal += len;
        if (!join) {
            v[k++] = (tc_sock_iov_t){p, len};
            run = 0;
            continue;
        }
        memcpy(gb + g, p, len);
        if (run) {
            v[k - 1].len += len;
        } else {
            v[k++] = (tc_sock_iov_t){gb + g, len};
            run = 1;
        }
        g += len;
    }
    return k > 0 ? conn_writev(c, v, k, vtotal, last, &done) : TC_OK;
}

int tc_conn_sendv(tc_conn_t *c, const tc_buf_t *bufs, size_t n)
{
    return conn_sendv(c, bufs, n, 0);
}

int tc__conn_sendv_last(tc_conn_t *c, const tc_buf_t *bufs, size_t n)
{
    return conn_sendv(c, bufs, n, 1);
}

size_t tc_conn_queued(const tc_conn_t *c)
{
    return c->reg.queued;
}

/* ---- connection I/O ---- */

static void conn_update_events(tc_conn_t *c)
{
    if (c->flags & CF_FINAL) {
        return;
    }
    int ev = 0;
    if (c->reg.state == TC_STATE_CONNECTING) {
        ev = TC_POLLOUT;
    } else {
        int reading = !(c->flags & (CF_EOF | CF_BP_PAUSED | CF_USER_PAUSED));
        if (c->flags & CF_CLOSING) {
            /* While closing, read only to see the peer's FIN (and discard what comes before it). */
            reading = !(c->flags & CF_EOF);
        }
        if (reading) {
            ev |= TC_POLLIN;
        }
        if (c->wq_head) {
            ev |= TC_POLLOUT;
        }
    }
    tc__io_set(c->owner->loop, &c->io, ev);
}

static void conn_after_flush(tc_conn_t *c)
{
    const tc_conn_config_t *cfg = &c->owner->cfg;
    if (c->reg.queued <= cfg->low_water) {
        if (c->flags & CF_BP_PAUSED) {
            c->flags &= (uint8_t)~CF_BP_PAUSED;
            c->reg.flags &= (uint8_t)~TC_REG_FLAG_PAUSED;
        }
        if ((c->flags & CF_ABOVE_LOW) && !(c->flags & CF_CLOSING)) {
            c->flags &= (uint8_t)~CF_ABOVE_LOW;
            emit(c, TC_EV_DRAINED, NULL, c->reg.queued);
        }
    }
}

static void client_connected(tc_conn_t *c);
static void client_connect_failed(tc_conn_t *c, int err);

static void conn_io(tc_io_t *io, int revents)
{
    tc_conn_t *c = (tc_conn_t *)((char *)io - offsetof(tc_conn_t, io));
    if (c->flags & CF_FINAL) {
        return;
    }
    if (c->reg.state == TC_STATE_CONNECTING) {
        int err = tc_sock_error(io->fd);
        if (err == TC_OK && (revents & (TC_POLLERR | TC_POLLHUP))) {
            err = TC_ECONNREFUSED;
        }
        if (err == TC_OK) {
            client_connected(c);
        } else {
            client_connect_failed(c, err);
        }
        return;
    }
    if (revents & TC_POLLOUT) {
        uint64_t out_before = c->reg.bytes_out;
        int rc = wq_flush(c);
        if (rc < 0) {
            conn_broken(c, rc);
            return;
        }
        if (c->reg.bytes_out != out_before) {
            /* Bytes the peer takes are activity: a slow reader of a long answer or stream is not idle, and a close
             * still flushing to a reader that keeps reading gets its deadline counted from the last progress, so
             * the end of a large answer is not reset away (the stop's own deadline still bounds a stop). */
            touch(c);
            if ((c->flags & CF_CLOSING) && c->deadline && !(c->flags & CF_DEADLINE) &&
                c->close_how != TC_CLOSE_ABORT) {
                conn_deadline_arm(c, c->owner->cfg.linger_ms);
            }
        }
        conn_after_flush(c);
        if (c->flags & CF_CLOSING) {
            tc__pending_add(c->owner->loop, &c->pending);
        }
    }
    if (revents & (TC_POLLIN | TC_POLLHUP | TC_POLLERR)) {
        if (c->flags & (CF_EOF | CF_FINAL)) {
            return;
        }
        size_t cap;
        char *buf = tc__rbuf(c->owner->loop, &cap);
        long n;
        /* A read that fills the buffer means more is waiting: read again now rather than after another poll()
         * (bounded, so one fast sender cannot starve the others), unless the handler paused or closed. */
        for (int reads = 0;; reads++) {
            n = tc_sock_recv(io->fd, buf, cap);
            if (n <= 0) {
                break;
            }
            c->reg.bytes_in += (uint64_t)n;
            touch(c);
            if (!(c->flags & CF_CLOSING)) {
                emit(c, TC_EV_DATA, buf, (size_t)n);
            } else {
                c->flags2 &= (uint8_t)~CF2_PEER_DONE; /* input after all: a close now would answer it with RST */
            }
            if ((size_t)n == cap) {
                c->flags2 &= (uint8_t)~CF2_PEER_DONE; /* a full read: more may wait in the stack */
            }
            if ((size_t)n < cap || reads == 15 ||
                (c->flags & (CF_CLOSING | CF_FINAL | CF_EOF | CF_BP_PAUSED | CF_USER_PAUSED))) {
                break;
            }
        }
        if (n == 0) {
            c->flags |= CF_EOF;
            if (c->flags & CF_CLOSING) {
                tc__pending_add(c->owner->loop, &c->pending);
            } else {
                if (c->flags2 & CF2_HALF_OPEN) {
                    /* The owner may still owe answers to what came before the FIN (a client that half-closes after
                     * its request): it keeps the connection open for writing unless it lets go here. */
                    emit(c, TC_EV_DATA, NULL, 0);
                }
                if (!(c->flags & (CF_CLOSING | CF_FINAL)) && !(c->flags2 & CF2_HALF_OPEN)) {
                    /* The peer closed first: we are the passive closer, so no TIME-WAIT here. Flush, then close. */
                    conn_close_req(c, TC_CLOSE_GRACEFUL, TC_REASON_PEER);
                }
            }
        } else if (n < 0 && n != TC_EAGAIN) {
            c->flags |= CF_EOF;
            conn_broken(c, (int)n);
        }
    }
    if (!(c->flags & CF_FINAL)) {
        conn_update_events(c);
    }
}

/* ---- closing ---- */

/* Let go of the socket (END_CLOSE, END_ABORT: RST, END_REAP: close and free our TIME-WAIT) and count how it ended. */
static void conn_release(tc_conn_t *c, int how)
{
    tc_close_stats_t *st = tc__close_stats(c->owner->loop);
    if (how == END_ABORT) {
        tc_sock_abort(c->io.fd);
        st->reset_sent++;
        c->flags2 |= CF2_RST;
    } else if (how == END_REAP && !c->owner->cfg.keep_time_wait) {
        uint16_t local_port = c->reg.kind == TC_KIND_ACCEPTED ? OWNER_OF(c->owner, tc_server_t)->port : 0;
        if (tc_sock_close_reap(c->io.fd, &c->reg.addr, local_port) == 1) {
            st->time_wait_reaped++;
        } else {
            st->time_wait_kept++;
        }
    } else {
        tc_sock_close(c->io.fd);
        st->time_wait_kept += how == END_REAP || how == END_AT_ONCE;
    }
    if (c->flags2 & CF2_GONE) {
        st->reset_received++;
        c->flags2 |= CF2_RST;
    } else if (how == END_AT_ONCE || (how != END_ABORT && (c->flags2 & CF2_WR_SHUT))) {
        st->fin_first++;
    } else if (how != END_ABORT && (c->flags & CF_EOF)) {
        st->peer_first++;
    }
}

static void conn_finalize(tc_conn_t *c, int how)
{
    tc_owner_t *o = c->owner;
    tc_loop_t *loop = o->loop;
    c->flags |= CF_FINAL;
    conn_deadline_cancel(c);
    tc__io_stop_closing(loop, &c->io);
    if (c->io.fd >= 0) {
        conn_release(c, how);
        c->io.fd = -1;
    }
    tc__reg_remove(loop, &c->reg);
    wq_free(c);
    o->count--;
    if (c->flags & CF_CLOSING) {
        o->closing--;
    }
    emit(c, TC_EV_CLOSE, NULL, c->close_reason);
    o->gone(o, c);
    tc_free(c);
}

/* The one place where closes happen. Runs after dispatch, on the loop's work list. */
static void close_step(tc_pending_t *p)
{
    tc_conn_t *c = (tc_conn_t *)((char *)p - offsetof(tc_conn_t, pending));
    if (c->flags & CF_FINAL) {
        return;
    }
    if (c->close_how == TC_CLOSE_ABORT || (c->flags & CF_DEADLINE)) {
        /* a reset connection needs no RST of ours: plain close */
        conn_finalize(c, (c->flags2 & CF2_GONE) ? END_CLOSE : END_ABORT);
        return;
    }
    if (c->wq_head) {
        conn_update_events(c); /* still flushing: POLLOUT brings us back */
        return;
    }
    if ((c->flags & CF_EOF) && (c->flags2 & CF2_WR_SHUT)) {
        /* Both FINs are in. Our active close leaves TIME-WAIT here, and on lwIP a TIME-WAIT pcb ignores the RST of a
         * client reusing its port (RFC 1337, seed 001): free it (tc_sock_close_reap()). Close at once: lwIP frees a
         * pcb in LAST-ACK by itself once acknowledged, and a socket still holding it then would point at freed
         * memory. */
        conn_finalize(c, END_REAP);
        return;
    }
    if (c->flags & CF_EOF) {
        conn_finalize(c, END_CLOSE); /* the peer closed first: passive close, no TIME-WAIT on this side */
        return;
    }
    if (closes_at_once(c)) {
        /* Nothing to linger for: the peer said it sends nothing more, nothing came, and everything is handed to the
         * stack. Close at once (FIN after the queued bytes), as nginx does; the stack keeps a harmless TIME-WAIT. */
        conn_finalize(c, END_AT_ONCE);
        return;
    }
    if (c->deadline == NULL && !(c->flags & CF_DEADLINE) && conn_deadline_arm(c, c->owner->cfg.linger_ms) != TC_OK) {
        conn_finalize(c, END_ABORT); /* the close that was to be at once must wait after all, and cannot */
        return;
    }
    if (c->close_how == TC_CLOSE_GRACEFUL && !(c->flags2 & CF2_WR_SHUT)) {
        /* Lingering close: send our FIN now, then read and discard until the peer's FIN (or the deadline). Closing
         * with unread input would make the stack answer RST, and an RST can destroy the last answer (a 1009 close
         * frame, an error page) before the peer has read it. */
        c->flags2 |= CF2_WR_SHUT;
        if (!c->owner->cfg.keep_time_wait) {
            /* lwIP: our TIME-WAIT is freed the moment the peer's FIN starts it, not a loop turn later when a client
             * reusing its port may already be there (TC_ENOSYS on Linux, which needs nothing) */
            (void)tc_sock_setopt(c->io.fd, TC_OPT_FREE_TIME_WAIT, 1);
        }
        if (tc_sock_shutdown_write(c->io.fd) != TC_OK) {
            conn_finalize(c, END_CLOSE); /* the peer is gone already */
            return;
        }
    }
    /* Wait for the peer's FIN (POLLIN) or the deadline; peer-first has sent nothing yet, graceful its FIN. */
    conn_update_events(c);
}

/* How many linger_ms a lingering close may wait, counted from the peer's last sign of life, while the stack has
 * bytes in flight towards it. */
#define LINGER_BACKOFF_FACTOR 8

/* No acknowledgement came since the last look, but the stack has sent bytes it awaits an acknowledgement for: it is
 * retransmitting them, and its backoff can leave a live peer behind a lossy link nothing to acknowledge for longer
 * than linger_ms (lwIP's first timeout on a fresh connection is 3 s, then 6, 12). A reset would destroy an answer
 * that a retransmission is still carrying. Bounded: a peer that has vanished holds the socket LINGER_BACKOFF_FACTOR x
 * linger_ms from its last input or acknowledgement, instead of 2 x linger_ms. A reader whose window is closed has
 * nothing in flight (the stack probes it) and is reset as before. */
static int linger_in_backoff(tc_conn_t *c)
{
    uint64_t silent = tc_loop_now(c->owner->loop) - tc__conn_active_ms(c);
    return silent < (uint64_t)LINGER_BACKOFF_FACTOR * c->owner->cfg.linger_ms && tc_sock_in_flight(c->io.fd) > 0;
}

static int64_t conn_deadline_cb(tc_timer_t *t, void *user)
{
    tc_conn_t *c = user;
    c->deadline = NULL; /* it stops now unless rescheduled below: the loop frees it when this returns */
    if (c->reg.state == TC_STATE_CONNECTING) {
        client_connect_failed(c, TC_ETIMEDOUT);
        return TC_TIMER_STOP;
    }
    /* Bytes still in the stack's send buffer that the peer keeps taking are a slow reader, not a dead one: a large
     * answer sent just before a close must not be reset away. The deadline then counts from the last progress (the
     * first time it fires with bytes outstanding it only takes the mark). A stop's deadline is separate and final. */
    long unacked = c->close_how == TC_CLOSE_ABORT ? 0 : tc_sock_unacked(c->io.fd);
    if (unacked > 0) {
        int moved = ack_look(c, unacked);
        if (moved == 1) {
            touch(c); /* the peer's last sign of life, which linger_in_backoff() counts from */
        }
        if (moved != 0 || linger_in_backoff(c)) {
            c->deadline = t; /* runs again: the loop keeps it */
            return c->owner->cfg.linger_ms;
        }
    }
    /* The flush or the peer's FIN did not come in time: RST leaves no TIME-WAIT on either side. */
    c->flags |= CF_DEADLINE;
    if (c->close_reason != TC_REASON_FORCED) {
        c->close_reason = c->close_how == TC_CLOSE_PEER_FIRST && !c->wq_head ? TC_REASON_LINGER : c->close_reason;
    }
    tc__pending_add(c->owner->loop, &c->pending);
    return TC_TIMER_STOP;
}

static void conn_close_req(tc_conn_t *c, tc_close_policy_t how, tc_close_reason_t reason)
{
    if (c->flags & CF_FINAL) {
        return;
    }
    if (c->flags & CF_CLOSING) {
        /* A harder close may override a softer one (abort beats graceful beats peer-first). */
        if (how == TC_CLOSE_ABORT && c->close_how != TC_CLOSE_ABORT) {
            c->close_how = TC_CLOSE_ABORT;
            c->close_reason = (uint8_t)reason;
        } else if (how == TC_CLOSE_GRACEFUL && c->close_how == TC_CLOSE_PEER_FIRST && reason == TC_REASON_PEER) {
            c->close_how = TC_CLOSE_GRACEFUL;
        }
        tc__pending_add(c->owner->loop, &c->pending);
        return;
    }
    c->flags |= CF_CLOSING;
    c->owner->closing++;
    c->reg.state = TC_STATE_CLOSING;
    c->close_how = (uint8_t)how;
    c->close_reason = (uint8_t)reason;
    /* A close that will complete at once (close_step()) needs no deadline: it is armed there if it must wait. */
    if (how != TC_CLOSE_ABORT && !closes_at_once(c) && conn_deadline_arm(c, c->owner->cfg.linger_ms) != TC_OK) {
        c->close_how = TC_CLOSE_ABORT; /* no memory for a deadline: a close that cannot wait must not wait */
    }
    tc__pending_add(c->owner->loop, &c->pending);
}

int tc_conn_close(tc_conn_t *c, tc_close_policy_t how)
{
    if (c == NULL || how > TC_CLOSE_ABORT) {
        return TC_EINVAL;
    }
    if (c->flags & CF_FINAL) {
        return TC_ECLOSED;
    }
    conn_close_req(c, how, TC_REASON_LOCAL);
    return TC_OK;
}

int tc_conn_close_default(tc_conn_t *c)
{
    return c ? tc_conn_close(c, c->owner->cfg.close_policy) : TC_EINVAL;
}

void tc__conn_peer_done(tc_conn_t *c)
{
    c->flags2 |= CF2_PEER_DONE;
}

void tc__conn_reg_flags(tc_conn_t *c, uint8_t set, uint8_t clear)
{
    c->reg.flags = (uint8_t)((c->reg.flags | set) & ~clear);
}

void tc_conn_set_role(tc_conn_t *c, unsigned role)
{
    if (c != NULL && role < TC_ROLE_COUNT) {
        c->reg.role = (uint8_t)role;
    }
}

unsigned tc_conn_role(const tc_conn_t *c)
{
    return c->reg.role;
}

tc_conn_t *tc__server_conns(tc_server_t *s)
{
    return accepted_from(&s->owner, tc__reg_head(s->owner.loop));
}

tc_conn_t *tc__conn_next(const tc_conn_t *c)
{
    return accepted_from(c->owner, c->reg.next);
}

int tc__conn_quiet(tc_conn_t *c, uint64_t quiet, uint64_t limit)
{
    if (limit == 0 || quiet < limit / 4) {
        return TC_QUIET_WAIT;
    }
    /* Alive: the peer took bytes since the last look and some are still on their way (a reader still reading).
     * Bytes all taken long ago, in an earlier quiet spell, are no sign: the look still moves the mark. */
    long unacked = tc_sock_unacked(c->io.fd);
    if (unacked >= 0 && ack_look(c, unacked) == 1 && unacked > 0) {
        return TC_QUIET_ALIVE;
    }
    return quiet >= limit ? TC_QUIET_GONE : TC_QUIET_WAIT;
}

int tc__conn_held_quiet(tc_conn_t *c, uint64_t quiet, uint64_t limit)
{
    if (limit == 0 || quiet < limit / 4) {
        return TC_QUIET_WAIT;
    }
    long unacked = tc_sock_unacked(c->io.fd);
    if (unacked <= 0 || ack_look(c, unacked) == 1) {
        return TC_QUIET_ALIVE;
    }
    return quiet >= limit ? TC_QUIET_GONE : TC_QUIET_WAIT;
}

uint64_t tc__quiet_next(uint64_t quiet, uint64_t limit)
{
    return quiet < limit / 4 ? limit / 4 - quiet : limit - quiet;
}

void tc__conn_touch(tc_conn_t *c)
{
    touch(c);
}

uint64_t tc__conn_active_ms(const tc_conn_t *c)
{
    return tc__reg_ms(c->owner->loop, c->reg.active_ms);
}

void *tc__conn_owner_user(const tc_conn_t *c)
{
    return c->owner->user;
}

static void flag2_set(tc_conn_t *c, uint8_t bit, int on)
{
    c->flags2 = on ? (uint8_t)(c->flags2 | bit) : (uint8_t)(c->flags2 & ~bit);
}

void tc__conn_half_open(tc_conn_t *c, int on)
{
    flag2_set(c, CF2_HALF_OPEN, on);
}

void tc__conn_self_timed(tc_conn_t *c, int on)
{
    flag2_set(c, CF2_SELF_TIMED, on);
}

void tc__conn_sndbuf(tc_conn_t *c, uint32_t bytes)
{
    (void)tc_sock_setopt(c->io.fd, TC_OPT_UNSENT_MAX, bytes > INT32_MAX ? INT32_MAX : (int)bytes);
}

void tc__conn_close_peer(tc_conn_t *c)
{
    conn_close_req(c, TC_CLOSE_GRACEFUL, TC_REASON_PEER);
}

void tc_conn_hold(tc_conn_t *c)
{
    c->flags2 |= CF2_HOLD;
}

void tc_conn_set_reading(tc_conn_t *c, int on)
{
    if (on) {
        c->flags &= (uint8_t)~CF_USER_PAUSED;
    } else {
        c->flags |= CF_USER_PAUSED;
    }
    conn_update_events(c);
}

void *tc_conn_data(const tc_conn_t *c)
{
    return c->data;
}

void tc_conn_set_data(tc_conn_t *c, void *data)
{
    c->data = data;
}

uint32_t tc_conn_id(const tc_conn_t *c)
{
    return c->reg.id;
}

int tc_conn_fd(const tc_conn_t *c)
{
    return c->io.fd;
}

const tc_addr_t *tc_conn_peer(const tc_conn_t *c)
{
    return &c->reg.addr;
}

tc_loop_t *tc_conn_loop(const tc_conn_t *c)
{
    return c->owner->loop;
}

int tc_conn_is_closing(const tc_conn_t *c)
{
    return (c->flags & (CF_CLOSING | CF_FINAL)) != 0;
}

/* events: the interest the connection starts with (accepted: readable, connecting: writable), the one
 * conn_update_events() is about to ask for, so that the readiness set is told once (epoll: one ADD, no MOD). */
static tc_conn_t *conn_new(tc_owner_t *o, int fd, tc_kind_t kind, const tc_addr_t *peer, int events)
{
    tc_conn_t *c = tc_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->owner = o;
    tc__io_init(&c->io, fd, conn_io);
    c->pending.fn = close_step;
    if (tc__io_start(o->loop, &c->io, events) != TC_OK) {
        tc_free(c);
        return NULL;
    }
    tc__reg_add(o->loop, &c->reg, fd, kind, o->name);
    if (peer) {
        c->reg.addr = *peer;
    }
    o->count++;
    return c;
}

/* ---- servers ---- */

static void server_maybe_done(tc_server_t *s);
static void server_stop(tc_handle_t *h, uint32_t deadline_ms);
static void server_stop_sooner(tc_handle_t *h, uint32_t deadline_ms);
static const tc_handle_ops_t server_ops = {TC_HANDLE_SERVER, server_stop, server_stop_sooner};

/* How a connection that ended during its owner's stop counts in the report. */
static void stop_count(tc_handle_t *h, const tc_conn_t *c)
{
    /* An RST (ours at the deadline, or the peer's) may have cost the peer data: never count it as graceful. */
    if (c->close_reason == TC_REASON_FORCED || (c->flags2 & CF2_RST)) {
        h->report.forced++;
    } else {
        h->report.graceful++;
    }
}

static void server_conn_gone(tc_owner_t *o, tc_conn_t *c)
{
    tc_server_t *s = (tc_server_t *)((char *)o - offsetof(tc_server_t, owner));
    if (s->h.stopping) {
        stop_count(&s->h, c);
        if (o->count == 0) {
            tc__pending_add(o->loop, &s->pending);
        }
    } else if (s->listening && tc__io_events(o->loop, &s->io) == 0) {
        tc__io_set(o->loop, &s->io, TC_POLLIN); /* an accept pause (full, or out of descriptors) ends: one has gone */
    }
}

static void server_accept(tc_io_t *io, int revents);

static int64_t server_timer_cb(tc_timer_t *t, void *user)
{
    (void)t;
    tc_server_t *s = user;
    tc_loop_t *loop = s->owner.loop;
    if (s->h.stopping) {
        /* Stop deadline: abort whatever is left. */
        for (tc_conn_t *c = tc__server_conns(s); c; c = tc__conn_next(c)) {
            if (!(c->flags & CF_FINAL)) {
                if (!(c->flags & CF_CLOSING)) {
                    s->owner.closing++;
                }
                c->flags |= CF_CLOSING | CF_DEADLINE;
                c->close_how = TC_CLOSE_ABORT;
                c->close_reason = TC_REASON_FORCED;
                c->reg.state = TC_STATE_CLOSING;
                tc__pending_add(loop, &c->pending);
            }
        }
        return TC_TIMER_STOP;
    }
    if (s->listening && tc__io_events(loop, &s->io) == 0) {
        tc__io_set(loop, &s->io, TC_POLLIN); /* back from an accept pause (out of descriptors) */
    }
    uint32_t idle = s->owner.cfg.idle_timeout_ms;
    if (idle && s->owner.count > 0) {
        uint64_t now = tc_loop_now(loop);
        uint64_t wait = UINT64_MAX; /* until the next connection can have been idle for idle_timeout_ms */
        for (tc_conn_t *c = tc__server_conns(s); c; c = tc__conn_next(c)) {
            /* Long-lived sessions (WebSocket, SSE, streams) are quiet by nature: their owner checks liveness, as it
             * times a connection it marked self-timed. */
            if ((c->flags & CF_CLOSING) || (c->flags2 & CF2_SELF_TIMED) || tc_role_is_long_lived(c->reg.role)) {
                continue;
            }
            uint64_t quiet = now - tc__conn_active_ms(c);
            int q = tc__conn_quiet(c, quiet, idle);
            if (q == TC_QUIET_ALIVE) {
                touch(c); /* quiet for us, but a slow reader is still taking a long answer: not idle */
                quiet = 0;
            }
            if (q != TC_QUIET_GONE) {
                uint64_t next = tc__quiet_next(quiet, idle);
                wait = next < wait ? next : wait;
                continue;
            }
            /* An idle peer will not send the FIN that peer-first waits for (it does not know it should), and our
             * own FIN would leave TIME-WAIT here: an idle connection is reset, which leaves TIME-WAIT nowhere. */
            tc_close_policy_t how = s->owner.cfg.close_policy;
            conn_close_req(c, how == TC_CLOSE_PEER_FIRST ? TC_CLOSE_ABORT : how, TC_REASON_IDLE);
        }
        /* Only sessions or closing connections left: look again in a second (a role can change). */
        return wait == UINT64_MAX ? 1000 : wait < 10 ? 10 : (int64_t)wait;
    }
    /* Nothing to time: the sweep sleeps until the next accept (an idle device does not wake for it). */
    return TC_TIMER_STOP;
}

/* Whom a full server evicts for a newcomer, or NULL to refuse it. LRU: the least recently active open connection
 * (the oldest of equals), whatever it is. EVICT_IDLE: the same among connections that are neither long-lived
 * sessions nor busy with a request, so a flood of newcomers only ever evicts newcomers and idle keep-alives. */
static tc_conn_t *full_victim(tc_server_t *s)
{
    if (s->when_full == TC_FULL_REFUSE) {
        return NULL;
    }
    tc_conn_t *victim = NULL;
    for (tc_conn_t *c = tc__server_conns(s); c; c = tc__conn_next(c)) {
        if (c->flags & CF_CLOSING) {
            continue;
        }
        if (s->when_full == TC_FULL_EVICT_IDLE &&
            (tc_role_is_long_lived(c->reg.role) || (c->reg.flags & TC_REG_FLAG_BUSY))) {
            continue;
        }
        if (victim == NULL || tc__conn_active_ms(c) < tc__conn_active_ms(victim)) {
            victim = c;
        }
    }
    return victim;
}

static int server_full(const tc_server_t *s)
{
    return s->owner.count - s->owner.closing >= s->max_conns;
}

/* Whom a full server evicts for a newcomer (full_victim()), once a victim that has sent nothing so far has been given
 * its read: a connection accepted a moment ago may hold a whole request the loop has not read yet (a burst of ready
 * requests accepted in one go evicted its own members, their requests unread). One that had nothing is as idle as
 * it looks; one that had a request is busy now, or answered and closing. NULL when nobody is left to evict, or when
 * those reads freed a slot. At most 8 reads per newcomer. */
static tc_conn_t *evict_pick(tc_server_t *s)
{
    tc_conn_t *victim = full_victim(s);
    for (int reads = 0; victim != NULL && victim->reg.bytes_in == 0 && reads < 8; reads++) {
        conn_io(&victim->io, TC_POLLIN);
        if (victim->reg.bytes_in == 0 && !(victim->flags & CF_CLOSING)) {
            return victim;
        }
        if (!server_full(s)) {
            return NULL;
        }
        victim = full_victim(s);
    }
    return victim;
}

/* EVICT_IDLE with overflow slots, all of them taken, and nobody to evict. */
static int overflow_full(tc_server_t *s)
{
    return s->when_full == TC_FULL_EVICT_IDLE && s->overflow_max > 0 &&
           s->owner.count >= s->max_conns + s->overflow_max && server_full(s) &&
           full_victim(s) == NULL;
}

/* A newcomer finds no descriptor: reset the server's closes that wait only for the stack's retransmission backoff
 * (linger_in_backoff()), which the plain rule would have reset at 2 x linger_ms. Their last look saw no progress, so
 * the peer has been silent that long: such a close is past it. Slow readers that progress are stamped at each look
 * and are not touched. */
static void reset_backoff_lingerers(tc_server_t *s)
{
    uint64_t now = tc_loop_now(s->owner.loop);
    for (tc_conn_t *c = tc__server_conns(s); c; c = tc__conn_next(c)) {
        if ((c->flags & (CF_CLOSING | CF_FINAL)) == CF_CLOSING && c->deadline != NULL &&
            c->close_how != TC_CLOSE_ABORT && now - tc__conn_active_ms(c) >= 2 * (uint64_t)c->owner->cfg.linger_ms) {
            conn_close_req(c, TC_CLOSE_ABORT, TC_REASON_LINGER);
        }
    }
}

static void server_accept(tc_io_t *io, int revents)
{
    (void)revents;
    tc_server_t *s = (tc_server_t *)((char *)io - offsetof(tc_server_t, io));
    tc_loop_t *loop = s->owner.loop;
    /* Bounded per wake-up so a connection storm cannot starve established connections. */
    for (int i = 0; i < 64 && !s->h.stopping; i++) {
        if (overflow_full(s)) {
            /* Full of live sessions and of newcomers still being told to come back (each gone within linger_ms):
             * the next one waits in the stack's backlog, not reset, and is told once one of those has gone (a
             * sequential client must not be refused because the loop has not yet read its previous FIN). */
            tc__io_set(loop, io, 0);
            if (s->timer.heap_index < 0 || s->timer.due > tc_loop_now(loop) + 10) {
                tc__timer_arm(&s->timer, 10);
            }
            return;
        }
        tc_addr_t peer;
        int fd = tc_sock_accept(io->fd, &peer);
        if (fd == TC_EAGAIN) {
            return;
        }
        if (fd < 0) {
            if (fd == TC_EMFILE) {
                /* Out of descriptors (lwIP: of sockets): closes kept only for the stack's backoff give theirs back,
                 * and the listener is not polled for a moment instead of spun on. */
                reset_backoff_lingerers(s);
                tc__io_set(loop, io, 0);
                if (s->timer.heap_index < 0 || s->timer.due > tc_loop_now(loop) + 100) {
                    tc__timer_arm(&s->timer, 100);
                }
            }
            return;
        }
        size_t over = 0;
        tc_conn_t *victim = server_full(s) ? evict_pick(s) : NULL;
        if (s->h.stopping) {
            /* A request evict_pick() read stopped the server (a stop route): no newcomer joins a stopping server. */
            tc_sock_abort(fd);
            tc__close_stats(loop)->reset_sent++;
            return;
        }
        if (victim != NULL) {
            conn_close_req(victim, TC_CLOSE_ABORT, TC_REASON_EVICTED);
        } else if (server_full(s)) {
            if (s->when_full == TC_FULL_EVICT_IDLE && s->owner.count < s->max_conns + s->overflow_max) {
                over = TC_OPEN_OVER_LIMIT; /* only live sessions are left: the owner tells the newcomer why */
            } else {
                tc_sock_abort(fd); /* refuse with RST: the client learns at once, it does not hang */
                tc__close_stats(loop)->reset_sent++;
                continue;
            }
        }
        tc_conn_t *c = conn_new(&s->owner, fd, TC_KIND_ACCEPTED, &peer, TC_POLLIN);
        if (c == NULL) {
            tc_sock_abort(fd);
            tc__close_stats(loop)->reset_sent++;
            continue;
        }
        if (!s->opts_inherited) {
            apply_sockopts(fd, &s->owner.cfg);
        }
        c->reg.state = TC_STATE_OPEN;
        c->flags |= CF_OPENED;
        conn_update_events(c);
        if (s->owner.cfg.idle_timeout_ms && s->timer.heap_index < 0) {
            tc__timer_arm(&s->timer, s->owner.cfg.idle_timeout_ms); /* the idle sweep wakes with the first */
        }
        emit(c, TC_EV_OPEN, NULL, over);
    }
}

static void server_release(tc_handle_t *h)
{
    tc_server_t *s = (tc_server_t *)h;
    tc__handles_add(s->owner.loop, -1);
    tc_free(s);
}

static void server_pending(tc_pending_t *p)
{
    tc_server_t *s = (tc_server_t *)((char *)p - offsetof(tc_server_t, pending));
    server_maybe_done(s);
}

static void server_close_listener(tc_server_t *s)
{
    if (s->listening) {
        tc_loop_t *loop = s->owner.loop;
        tc__io_stop_closing(loop, &s->io);
        tc_sock_close(s->io.fd);
        tc__reg_remove(loop, &s->reg);
        s->listening = 0;
    }
}

int tc_server_start(tc_loop_t *loop, const tc_server_config_t *cfg, tc_server_t **out)
{
    if (loop == NULL || cfg == NULL || out == NULL || cfg->cb == NULL || cfg->max_conns == 0 ||
        cfg->conn.low_water > cfg->conn.high_water || cfg->conn.high_water > cfg->conn.queue_max) {
        return TC_EINVAL;
    }
    tc_addr_t addr;
    int rc = tc_addr_from_ip(cfg->host ? cfg->host : "0.0.0.0", cfg->port, &addr);
    if (rc != TC_OK) {
        return rc;
    }
    int fd = tc_sock_open(addr.family, TC_SOCK_STREAM);
    if (fd < 0) {
        return fd;
    }
    /* REUSEADDR lets a restarted device bind while old connections are in TIME-WAIT; it never shares a port. */
    tc_sock_setopt(fd, TC_OPT_REUSEADDR, 1);
    if (addr.family == TC_AF_INET6) {
        tc_sock_setopt(fd, TC_OPT_V6ONLY, cfg->v6only ? 1 : 0);
    }
    rc = tc_sock_bind(fd, &addr);
    if (rc == TC_OK) {
        rc = tc_sock_listen(fd, cfg->backlog > 0 ? cfg->backlog : TC_CFG_BACKLOG);
    }
    tc_server_t *s = rc == TC_OK ? tc_calloc(1, sizeof(*s)) : NULL;
    if (rc == TC_OK && s == NULL) {
        rc = TC_ENOMEM;
    }
    if (rc != TC_OK) {
        tc_sock_close(fd);
        return rc;
    }
    tc__handle_init(&s->h, &server_ops, loop);
    s->owner.cfg = cfg->conn;
    s->owner.cb = cfg->cb;
    s->owner.user = cfg->user;
    s->owner.name = cfg->name ? cfg->name : "tcp";
    if (tc_sock_accept_inherits_opts()) {
        apply_sockopts(fd, &cfg->conn); /* once here instead of a system call per accepted connection */
        s->opts_inherited = 1;
    }
    s->owner.loop = loop;
    s->owner.gone = server_conn_gone;
    s->max_conns = cfg->max_conns;
    s->when_full = cfg->when_full;
    s->overflow_max = cfg->overflow_max;
    s->pending.fn = server_pending;
    tc__io_init(&s->io, fd, server_accept);
    tc__timer_init(loop, &s->timer, server_timer_cb, s);
    rc = tc__io_start(loop, &s->io, TC_POLLIN);
    if (rc != TC_OK) {
        tc_sock_close(fd);
        tc_free(s);
        return rc;
    }
    tc__reg_add(loop, &s->reg, fd, TC_KIND_LISTENER, s->owner.name);
    s->reg.state = TC_STATE_LISTENING;
    tc_sock_local_addr(fd, &s->reg.addr);
    s->port = s->reg.addr.port;
    s->listening = 1;
    tc__handles_add(loop, 1);
    *out = s;
    return TC_OK;
}

uint16_t tc_server_port(const tc_server_t *s)
{
    return s->port;
}

uint32_t tc_server_conn_count(const tc_server_t *s)
{
    return s->owner.count;
}

static void server_maybe_done(tc_server_t *s)
{
    if (!s->h.stopping || s->owner.count > 0) {
        return;
    }
    tc__timer_disarm(&s->timer);
    server_close_listener(s);
    tc__handle_finish(&s->h, server_release);
}

/* tc_handle_stop() of a server: close the listener, tell each connection, close what the handlers leave open. */
static void server_stop(tc_handle_t *h, uint32_t deadline_ms)
{
    tc_server_t *s = (tc_server_t *)h;
    server_close_listener(s);
    /* One pass tells each connection once: closes are deferred, so nothing is freed during the walk, no connection is
     * added (the listener is closed), and what handlers write in answer does not change the list's order. */
    for (tc_conn_t *c = tc__server_conns(s); c; c = tc__conn_next(c)) {
        if (!(c->flags & CF_CLOSING)) {
            emit(c, TC_EV_SHUTDOWN, NULL, deadline_ms);
        }
        if (!(c->flags & CF_CLOSING) && !(c->flags2 & CF2_HOLD)) {
            conn_close_req(c, deadline_ms ? s->owner.cfg.close_policy : TC_CLOSE_ABORT,
                           deadline_ms ? TC_REASON_STOP : TC_REASON_FORCED);
        }
    }
    tc__timer_arm(&s->timer, deadline_ms);
    tc__pending_add(s->owner.loop, &s->pending);
}

/* While a server stops, its timer is the stop's deadline: it fires sooner. */
static void server_stop_sooner(tc_handle_t *h, uint32_t deadline_ms)
{
    tc_server_t *s = (tc_server_t *)h;
    tc__timer_arm(&s->timer, deadline_ms);
}

tc_handle_t *tc_server_handle(tc_server_t *s)
{
    return s ? &s->h : NULL;
}

/* ---- clients ---- */

static void client_attempt(tc_client_t *cl);
static void client_schedule(tc_client_t *cl);
static void client_stop(tc_handle_t *h, uint32_t deadline_ms);
static void client_stop_sooner(tc_handle_t *h, uint32_t deadline_ms);
static const tc_handle_ops_t client_ops = {TC_HANDLE_CLIENT, client_stop, client_stop_sooner};

static void client_release(tc_handle_t *h)
{
    tc_client_t *cl = (tc_client_t *)h;
    tc__timer_disarm(&cl->retry);
    tc__handles_add(cl->owner.loop, -1);
    tc_free(cl->host);
    tc_free(cl);
}

static void client_conn_gone(tc_owner_t *o, tc_conn_t *c)
{
    tc_client_t *cl = (tc_client_t *)((char *)o - offsetof(tc_client_t, owner));
    int opened = (c->flags & CF_OPENED) != 0;
    if (cl->conn == c) {
        cl->conn = NULL;
    }
    if (cl->h.stopping) {
        if (opened) {
            stop_count(&cl->h, c);
        }
        tc__pending_add(o->loop, &cl->pending);
        return;
    }
    if (opened) {
        int by_peer = c->close_reason == TC_REASON_PEER || c->close_reason == TC_REASON_RESET;
        if (by_peer && cl->stable_ms && tc_loop_now(o->loop) - cl->opened_ms < cl->stable_ms) {
            /* Accepted and dropped at once (a full or broken server, a proxy without its upstream): a failure, so
             * that the next attempts back off instead of reconnecting at the first delay forever. */
            cl->stats.failures++;
            cl->stats.last_error = c->close_reason == TC_REASON_RESET ? TC_ECONNRESET : TC_ECLOSED;
        } else {
            cl->stats.failures = 0;
            cl->next_delay_ms = cl->backoff_initial_ms;
        }
    }
    client_schedule(cl);
}

static void client_schedule(tc_client_t *cl)
{
    if (!cl->reconnect || cl->h.stopping) {
        return;
    }
    if (cl->max_attempts && cl->stats.failures >= cl->max_attempts) {
        cl->gave_up = 1;
        return;
    }
    uint32_t d = cl->next_delay_ms;
    if (cl->jitter_pct && d > 0) {
        /* Reduce by up to jitter_pct percent so devices restarted together do not reconnect in lockstep. */
        uint64_t cut = (uint64_t)d * (tc__rand(cl->owner.loop) % (cl->jitter_pct + 1u)) / 100u;
        d -= (uint32_t)cut;
    }
    cl->stats.last_delay_ms = d;
    uint64_t next = (uint64_t)cl->next_delay_ms * 2;
    cl->next_delay_ms = next > cl->backoff_max_ms ? cl->backoff_max_ms : (uint32_t)next;
    tc__timer_arm(&cl->retry, d);
}

static int64_t client_retry_cb(tc_timer_t *t, void *user)
{
    tc_client_t *stopping = user;
    if (stopping->h.stopping) {
        /* A stop's deadline: the connection has not closed by itself - reset it. */
        if (stopping->conn && !(stopping->conn->flags & CF_FINAL)) {
            conn_close_req(stopping->conn, TC_CLOSE_ABORT, TC_REASON_FORCED);
        }
        return TC_TIMER_STOP;
    }
    (void)t;
    client_attempt(user);
    return TC_TIMER_STOP;
}

static void client_fail(tc_client_t *cl, int err)
{
    cl->stats.failures++;
    cl->stats.last_error = err;
    client_schedule(cl);
}

static void client_connect_to(tc_client_t *cl, const tc_addr_t *addr)
{
    tc_loop_t *loop = cl->owner.loop;
    cl->stats.attempts++;
    int fd = tc_sock_open(addr->family, TC_SOCK_STREAM);
    if (fd < 0) {
        client_fail(cl, fd);
        return;
    }
    int rc = tc_sock_connect(fd, addr);
    if (rc != TC_OK && rc != TC_EINPROGRESS) {
        tc_sock_close(fd);
        client_fail(cl, rc);
        return;
    }
    tc_conn_t *c = conn_new(&cl->owner, fd, TC_KIND_CLIENT, addr, TC_POLLOUT);
    if (c == NULL) {
        tc_sock_close(fd);
        client_fail(cl, TC_ENOMEM);
        return;
    }
    cl->conn = c;
    c->reg.state = TC_STATE_CONNECTING;
    if (conn_deadline_arm(c, cl->connect_timeout_ms) != TC_OK) {
        client_connect_failed(c, TC_ENOMEM);
        return;
    }
    conn_update_events(c);
    (void)loop;
}

static void client_resolved(void *user, int rc, const tc_addr_t *addr)
{
    tc_client_t *cl = user;
    cl->resolving = NULL;
    if (rc == TC_OK) {
        client_connect_to(cl, addr);
    } else {
        cl->stats.attempts++;
        client_fail(cl, rc);
    }
}

static void client_attempt(tc_client_t *cl)
{
    if (cl->h.stopping) {
        return;
    }
    if (cl->numeric) {
        client_connect_to(cl, &cl->addr);
        return;
    }
    /* Each attempt asks again (an address may move between attempts), through the loop: no thread (tc_resolve.c). */
    int rc = tc__resolve_start(cl->owner.loop, cl->host, cl->port, cl->has_ns ? &cl->ns : NULL, cl->connect_timeout_ms,
                               client_resolved, cl, &cl->resolving);
    if (rc != TC_OK) {
        cl->resolving = NULL;
        cl->stats.attempts++;
        client_fail(cl, rc);
    }
}

static void client_connected(tc_conn_t *c)
{
    tc_client_t *cl = OWNER_OF(c->owner, tc_client_t);
    conn_deadline_cancel(c);
    c->reg.state = TC_STATE_OPEN;
    c->flags |= CF_OPENED;
    cl->stats.connects++;
    cl->stats.last_error = 0;
    cl->opened_ms = tc_loop_now(c->owner->loop);
    apply_sockopts(c->io.fd, &cl->owner.cfg);
    touch(c);
    conn_update_events(c);
    emit(c, TC_EV_OPEN, NULL, 0);
}

static void client_connect_failed(tc_conn_t *c, int err)
{
    tc_client_t *cl = OWNER_OF(c->owner, tc_client_t);
    cl->stats.failures++;
    cl->stats.last_error = err;
    conn_close_req(c, TC_CLOSE_ABORT, TC_REASON_CONNECT);
}

static void client_pending(tc_pending_t *p)
{
    tc_client_t *cl = (tc_client_t *)((char *)p - offsetof(tc_client_t, pending));
    if (cl->h.stopping && cl->owner.count == 0) {
        tc__handle_finish(&cl->h, client_release);
    }
}

/* Whether a question can carry host (RFC 1035 2.3.4: at most 253 bytes of text, labels of 1..63): the query builder
 * is the one judge, so the client refuses exactly the names its resolver could never ask. */
static int host_name_valid(const char *host)
{
    uint8_t q[12 + TC_DNS_MAX_NAME_TEXT + 6];
    return tc_dns_build_query(0, host, TC_DNS_TYPE_A, q, sizeof(q)) > 0;
}

int tc_client_start(tc_loop_t *loop, const tc_client_config_t *cfg, tc_client_t **out)
{
    if (loop == NULL || cfg == NULL || out == NULL || cfg->cb == NULL || cfg->host == NULL ||
        cfg->conn.low_water > cfg->conn.high_water || cfg->conn.high_water > cfg->conn.queue_max) {
        return TC_EINVAL;
    }
    if (cfg->port == 0) {
        return TC_EBADPORT;
    }
    size_t hl = strlen(cfg->host);
    tc_addr_t probe;
    if (tc_addr_from_ip(cfg->host, cfg->port, &probe) != TC_OK && !host_name_valid(cfg->host)) {
        return TC_EBADNAME; /* refused now, not at every attempt: no question could carry it */
    }
    tc_addr_t ns;
    uint16_t ns_port = cfg->nameserver_port ? cfg->nameserver_port : 53;
    if (cfg->nameserver && tc_addr_from_ip(cfg->nameserver, ns_port, &ns) != TC_OK) {
        return TC_EBADADDR; /* the nameserver must be a numeric address */
    }
    tc_client_t *cl = tc_calloc(1, sizeof(*cl));
    char *host = tc_malloc(hl + 1);
    if (cl == NULL || host == NULL) {
        tc_free(cl);
        tc_free(host);
        return TC_ENOMEM;
    }
    memcpy(host, cfg->host, hl + 1);
    tc__handle_init(&cl->h, &client_ops, loop);
    cl->host = host;
    if (cfg->nameserver) {
        cl->ns = ns;
        cl->has_ns = 1;
    }
    cl->port = cfg->port;
    cl->numeric = tc_addr_from_ip(host, cfg->port, &cl->addr) == TC_OK;
    cl->owner.cfg = cfg->conn;
    cl->owner.cb = cfg->cb;
    cl->owner.user = cfg->user;
    cl->owner.name = cfg->name ? cfg->name : "client";
    cl->owner.loop = loop;
    cl->owner.gone = client_conn_gone;
    cl->pending.fn = client_pending;
    cl->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : TC_CFG_CONNECT_TIMEOUT_MS;
    cl->reconnect = cfg->reconnect;
    cl->backoff_initial_ms = cfg->backoff_initial_ms ? cfg->backoff_initial_ms : 1;
    cl->backoff_max_ms = cfg->backoff_max_ms < cl->backoff_initial_ms ? cl->backoff_initial_ms : cfg->backoff_max_ms;
    cl->next_delay_ms = cl->backoff_initial_ms;
    cl->jitter_pct = cfg->jitter_pct > 100 ? 100 : cfg->jitter_pct;
    cl->max_attempts = cfg->max_attempts;
    cl->stable_ms = cfg->stable_ms;
    tc__timer_init(loop, &cl->retry, client_retry_cb, cl);
    tc__handles_add(loop, 1);
    *out = cl;
    /* The first attempt runs from the loop, so callbacks never fire inside tc_client_start(). */
    tc__timer_arm(&cl->retry, 0);
    return TC_OK;
}

tc_conn_t *tc_client_conn(const tc_client_t *cl)
{
    return cl->conn && cl->conn->reg.state == TC_STATE_OPEN ? cl->conn : NULL;
}

void tc_client_stats(const tc_client_t *cl, tc_client_stats_t *out)
{
    *out = cl->stats;
}

/* tc_handle_stop() of a client: no more attempts, the connection closes with the client's policy (reset at the
 * deadline; at once with deadline 0), a resolution in flight is dropped. */
static void client_stop(tc_handle_t *h, uint32_t deadline_ms)
{
    tc_client_t *cl = (tc_client_t *)h;
    tc__timer_disarm(&cl->retry);
    if (cl->resolving) {
        tc__resolve_cancel(cl->resolving);
        cl->resolving = NULL;
    }
    if (cl->conn) {
        tc_conn_t *c = cl->conn;
        int open = c->reg.state == TC_STATE_OPEN;
        if (deadline_ms == 0 || !open) {
            conn_close_req(c, TC_CLOSE_ABORT, open ? TC_REASON_FORCED : TC_REASON_CONNECT);
        } else {
            conn_close_req(c, cl->owner.cfg.close_policy, TC_REASON_LOCAL);
            tc__timer_arm(&cl->retry, deadline_ms); /* the retry timer is free now: it becomes the deadline */
        }
    }
    tc__pending_add(cl->owner.loop, &cl->pending);
}

/* The retry timer is the stop's deadline while the connection closes (client_stop()): it fires sooner. */
static void client_stop_sooner(tc_handle_t *h, uint32_t deadline_ms)
{
    tc_client_t *cl = (tc_client_t *)h;
    if (cl->conn && !(cl->conn->flags & CF_FINAL)) {
        tc__timer_arm(&cl->retry, deadline_ms);
    }
}

int tc_client_stop(tc_client_t *cl)
{
    return cl ? tc_handle_stop(&cl->h, cl->owner.cfg.linger_ms, NULL, NULL) : TC_EINVAL;
}

tc_handle_t *tc_client_handle(tc_client_t *cl)
{
    return cl ? &cl->h : NULL;
}

/* ---- the echo service ---- */

void tc_echo_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    (void)user;
    if (ev == TC_EV_OPEN) {
        tc_conn_set_role(conn, TC_ROLE_ECHO);
    }
    if (ev == TC_EV_DATA && tc_conn_send(conn, data, len) == TC_ELIMIT) {
        /* Reading pauses at high water, so this only happens with a queue_max below one read: give up. */
        tc_conn_close(conn, TC_CLOSE_ABORT);
    }
}

const char *tc_close_reason_name(unsigned reason)
{
    static const char *const names[] = {"?",    "local",  "peer",   "reset",   "idle",  "evicted",
                                        "refused", "stop", "forced", "linger", "connect", "nomem"};
    return reason >= TC_REASON_LOCAL && reason <= TC_REASON_NOMEM ? names[reason] : names[0];
}
