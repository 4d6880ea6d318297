/*
 * tc_internal.h - what the core's modules share with each other and nobody else: the loop's descriptor slots,
 * embedded timers, the after-dispatch work list and the registry entry every tracked socket starts with.
 */
#pragma once

#include <stdint.h>

#include "tc_handle.h"
#include "tc_handle_impl.h"
#include "tc_loop.h"
#include "tc_port.h"
#include "tc_registry.h"
#include "tc_sock.h"
#include "tc_tcp.h"

typedef struct tc_io tc_io_t;
typedef void (*tc_io_cb)(tc_io_t *io, int revents);

/* A descriptor slot of the loop's poll set; embedded in its owner. */
struct tc_io {
    int fd;
    int index; /* position in the loop's poll set, -1 when not in it */
    tc_io_cb cb;
};

/* A timer; public timers are allocated, internal ones are embedded in their owner (no allocation per use). */
struct tc_timer {
    tc_loop_t *loop;
    uint64_t due;
    tc_timer_cb cb;
    void *user;
    int heap_index; /* -1 when not armed */
    uint8_t owned;  /* allocated by tc_timer_start(): freed when it ends */
    uint8_t cancelled;
    uint8_t running;
};

/* Work to do after dispatch (closes, stop completion); embedded in its owner, queued at most once. Queued exactly
 * when next is not NULL: the last entry of the loop's list points at itself (no flag byte and its padding in every
 * connection). Zeroed (calloc) means not queued. */
typedef struct tc_pending tc_pending_t;
struct tc_pending {
    tc_pending_t *next;
    void (*fn)(tc_pending_t *p);
};

/* Registry entry: the first member of every tracked object. */
typedef struct tc_regent tc_regent_t;
struct tc_regent {
    tc_regent_t *prev, *next;
    uint32_t id;
    int fd;
    uint8_t kind;  /* tc_kind_t */
    uint8_t state; /* tc_state_t */
    uint8_t flags; /* TC_REG_FLAG_* */
    uint8_t role;  /* tc_role_t */
    /* Times are the loop's ms in 32 bits (tc__reg_ms() widens them): ages and idle times are exact up to 49.7 days,
     * and the two fill what was padding (8 bytes less in every connection on 32- and 64-bit targets). */
    uint32_t created_ms;
    const char *owner;
    tc_addr_t addr; /* listeners and UDP endpoints: the local address; connections: the peer's */
    uint32_t active_ms;
    uint64_t bytes_in;
    uint64_t bytes_out;
    size_t queued;
};

/* Loop internals used by tc_tcp.c, the registry (tc_loop.c, tc_registry_ext.c) and the services. */
void tc__io_init(tc_io_t *io, int fd, tc_io_cb cb);
int tc__io_start(tc_loop_t *loop, tc_io_t *io, int events);
void tc__io_set(tc_loop_t *loop, tc_io_t *io, int events);
int tc__io_events(const tc_loop_t *loop, const tc_io_t *io);
void tc__io_stop(tc_loop_t *loop, tc_io_t *io);
/* The same when the caller closes the descriptor right after: closing removes it from a readiness set by itself. */
void tc__io_stop_closing(tc_loop_t *loop, tc_io_t *io);

/* Test hook: the loop's clock jumps ms ahead (timers due in that span fire at the next iteration), so a test or the
 * connection fuzzer reaches every timeout without waiting for it. Loop thread only. */
void tc__loop_skew(tc_loop_t *loop, uint64_t ms);

/* A timer embedded in another record. Its callback may free that record when it returns TC_TIMER_STOP (the loop
 * does not touch the timer after such a return); one that returns a delay must leave it alive. */
void tc__timer_init(tc_loop_t *loop, tc_timer_t *t, tc_timer_cb cb, void *user);
int tc__timer_arm(tc_timer_t *t, uint64_t delay_ms);
void tc__timer_disarm(tc_timer_t *t);

void tc__pending_add(tc_loop_t *loop, tc_pending_t *p);
/* 1 while p waits in the loop's after-dispatch list. */
int tc__pending_queued(const tc_pending_t *p);

void tc__reg_add(tc_loop_t *loop, tc_regent_t *e, int fd, tc_kind_t kind, const char *owner);
/* The loop ms (64-bit) of a registry time stamp: the latest time at or before now with those low 32 bits. */
uint64_t tc__reg_ms(const tc_loop_t *loop, uint32_t stamp);
void tc__reg_remove(tc_loop_t *loop, tc_regent_t *e);
/* The registry's first entry (the oldest), or NULL; entries follow through next in the order they were added. */
tc_regent_t *tc__reg_head(const tc_loop_t *loop);

/* The loop's close counters, updated by the TCP layer as connections end. */
tc_close_stats_t *tc__close_stats(tc_loop_t *loop);

/* Handles (servers, clients, UDP endpoints, watches, timers) alive on the loop: tc_loop_free() refuses while > 0. */
void tc__handles_add(tc_loop_t *loop, int delta);

/* The loop's shared receive buffer: valid until the next receive. */
char *tc__rbuf(tc_loop_t *loop, size_t *size);

/* The loop's send gather buffer (TC_CFG_SEND_GATHER_SIZE bytes, apart from the receive buffer, so data received can
 * be sent back from it): valid until the next send. */
char *tc__gbuf(tc_loop_t *loop, size_t *size);

/* A pseudo-random 32-bit number for jitter (not for security). */
uint32_t tc__rand(tc_loop_t *loop);

/* Outstanding external work (tc_registry_ext.h entries) that tc_loop_free() must wait for. */
void tc__bg_add(tc_loop_t *loop, int delta);

/* ---- allocation accounting per loop (tc_alloc.c) ---- */

/* Bytes allocated and freed by a thread while the account was its current one (see tc_alloc.c). */
typedef struct {
    uint64_t allocated;
    uint64_t freed;
} tc_alloc_acct_t;

/* Make acct the calling thread's current account; returns the previous one for tc__alloc_acct_leave(). */
tc_alloc_acct_t *tc__alloc_acct_enter(tc_alloc_acct_t *acct);
void tc__alloc_acct_leave(tc_alloc_acct_t *prev);

/* The loop's account. */
tc_alloc_acct_t *tc__loop_acct(tc_loop_t *loop);

/* ---- handles (tc_handle.c) ---- */

/* The handle record and its init/finish: tc_handle_impl.h (public, for services built on the core). */

/* Set registry flags (TC_REG_FLAG_*) on a connection, e.g. to mark it as a long-lived stream. */
struct tc_conn;
void tc__conn_reg_flags(struct tc_conn *conn, uint8_t set, uint8_t clear);

/* The peer announced that it sends nothing more on this connection (an HTTP request that said Connection: close, read
 * whole, with nothing after it). A graceful close may then end at once, without lingering for the peer's FIN, where
 * this side's TIME-WAIT is harmless (tc_sock_time_wait_harmless(); tc_tcp.h, "Close policies and TIME-WAIT"). Any byte
 * that arrives afterwards, or a read that filled the buffer, takes it back. */
void tc__conn_peer_done(struct tc_conn *conn);

/* tc_conn_sendv() of a connection's last bytes: the caller closes it with TC_CLOSE_GRACEFUL right after (no other
 * policy: an abort would drop them, a peer-first close would wait for the peer with them still held). The stack may
 * then send them in one segment with the FIN (tc_sock_sendv(), last). */
int tc__conn_sendv_last(struct tc_conn *conn, const tc_buf_t *bufs, size_t n);

/* A server's connections, oldest first (closing ones included): first, then next until NULL. The order does not
 * change while handlers write, and closes are deferred, so a walk may send, close and broadcast as it goes. They are
 * found in the loop's registry (no list of their own): a walk also steps over the loop's other entries. */
struct tc_server;
struct tc_conn *tc__server_conns(struct tc_server *srv);
struct tc_conn *tc__conn_next(const struct tc_conn *conn);

/* Loop ms of the connection's last byte in or out (what the idle timeout and stream progress are measured from). */
uint64_t tc__conn_active_ms(const struct tc_conn *conn);

/* on: the peer's FIN does not close the connection at once. Reading stops and the owner's callback gets TC_EV_DATA
 * with (NULL, 0); it keeps the connection open for writing (answers still owed for what came before the FIN) unless
 * it calls this with on = 0 during that call, which closes it as usual (graceful, reason "peer"). Later it closes it
 * itself, with tc__conn_close_peer() when nothing more is owed. */
void tc__conn_half_open(struct tc_conn *conn, int on);

/* While on, the connection's owner times its quiet itself and the server's idle timeout passes it by (HTTP: a
 * request body arriving, which ends in 408 when it stalls). */
void tc__conn_self_timed(struct tc_conn *conn, int on);

/* Ask the stack for a send buffer of `bytes` for the connection (best effort: a stack with a fixed one ignores it). */
void tc__conn_sndbuf(struct tc_conn *conn, uint32_t bytes);

/* Close a connection whose peer sent its FIN first (graceful: flush, then close; reason "peer"). */
void tc__conn_close_peer(struct tc_conn *conn);

/* The one liveness rule for a connection that looks stalled to its owner (a stream whose queue does not move, a
 * keep-alive with no request, a WebSocket that owes a pong): quiet for `quiet` ms of the owner's `limit` ms.
 * TC_QUIET_ALIVE: the peer's TCP stack acknowledged bytes of ours since the last look and more are still
 * unacknowledged (a reader still reading); the owner restarts its clock
 * (a slow reader behind a large send buffer, which Linux grows to MBs, shows no progress in our own queue for a
 * long time, but its stack keeps acknowledging). TC_QUIET_GONE: quiet for the whole limit and nothing acknowledged.
 * TC_QUIET_WAIT: neither yet (always, with limit 0). Looks start at a quarter of the limit, so that the look at the
 * limit has a mark to compare with; each costs one call into the stack (SIOCOUTQ; lwIP: the tcpip thread). */
enum { TC_QUIET_WAIT = 0, TC_QUIET_ALIVE, TC_QUIET_GONE };
int tc__conn_quiet(struct tc_conn *conn, uint64_t quiet, uint64_t limit);

/* The same rule for bytes the stack holds when the owner's queue is empty (a stream that says little: SSE heartbeats,
 * a status feed): `quiet` counts from when the owner last saw the stack taking them. TC_QUIET_ALIVE also when nothing
 * is outstanding (all delivered) or when the backend cannot tell; TC_QUIET_GONE when the limit passed with bytes
 * outstanding and none acknowledged since the last look (a viewer whose window stays shut, or gone without a FIN,
 * which the stack would retransmit to for many minutes). */
int tc__conn_held_quiet(struct tc_conn *conn, uint64_t quiet, uint64_t limit);

/* How long after `quiet` ms (of `limit`, not yet reached) tc__conn_quiet() next has something to decide. */
uint64_t tc__quiet_next(uint64_t quiet, uint64_t limit);

/* Count now as the connection's last activity (what tc__conn_active_ms() returns). */
void tc__conn_touch(struct tc_conn *conn);

/* The user pointer of the server or client that owns the connection (the one its callback receives). */
void *tc__conn_owner_user(const struct tc_conn *conn);

/* The loop's clock for measuring handle work: the iteration's cached time inside a dispatch (what its timers are
 * armed against, so a stop's elapsed time is measured like its deadline), a fresh reading outside. */
uint64_t tc__loop_clock(const tc_loop_t *loop);

/* 1 while the loop is dispatching callbacks. */
int tc__in_dispatch(const tc_loop_t *loop);

/* The "_wait" forms of the stops: run the loop until *done is set by the stop's callback. The stop's own deadline
 * timer ends it; the 1 s allowance past deadline_ms only covers aborting what is left. Returns TC_OK once done,
 * TC_ETIMEDOUT past the allowance, or the loop's error. */
int tc__loop_wait_done(tc_loop_t *loop, const int *done, uint32_t deadline_ms);
