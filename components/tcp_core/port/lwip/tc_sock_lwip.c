/*
 * port/lwip/tc_sock_lwip.c - the lwIP backend, one source for every lwIP stack: upstream lwIP over a TAP device on
 * the host (with tc_lwip_tap.c) and ESP-IDF's esp-lwip on chips (with tc_lwip_esp.c). lwIP's socket API spelled
 * lwip_*() (no POSIX names: Debian's build keeps them for the kernel, ESP-IDF's routes them through its VFS),
 * lwip_poll() for readiness, a loopback UDP pair for wake-ups, and tcp_abort() in the tcpip thread for a real RST.
 *
 * What differs between the stacks is settled by lwIP's own options, not by the platform:
 *  - raw-API work (tcp_abort, the pcb lists) goes through tcpip_api_call(), which takes the core lock where the stack
 *    has one (LWIP_TCPIP_CORE_LOCKING: Debian's build, ESP-IDF's Kconfig option) and runs in the tcpip thread
 *    otherwise (ESP-IDF's default): the same code, tested on the host, runs on the chip.
 *  - struct sockaddr and POLL*: the C library's where lwIP uses external socket headers (Debian), lwIP's own with a
 *    length byte otherwise (ESP-IDF, whose lwipopts.h includes <sys/poll.h>: there is no <poll.h> on the chip).
 *  - descriptors start at LWIP_SOCKET_OFFSET (0 on Debian, after the VFS's own on ESP-IDF).
 *  - LWIP_DNS: getaddrinfo where the stack resolves names (ESP-IDF), literals and "localhost" where not (Debian).
 *  - LWIP_NETCONN_FULLDUPLEX: without it (Debian) one thread at a time may use a socket, so wake-ups take a mutex.
 */
#include "tc_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>

#include "lwip/api.h"
#include "lwip/netif.h"
#include "lwip/priv/sockets_priv.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/priv/tcpip_priv.h"
#include "lwip/sockets.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"

#if LWIP_DNS
#include "lwip/netdb.h"
#endif

#include "tc_err.h"
#include "tc_lwip_shim.h"
#include "tc_port.h"
#if !LWIP_SOCKET_EXTERNAL_HEADERS
#define TC_BSD_SIN_LEN 1 /* lwIP's own sockaddr, with a length byte */
#endif
#define TC_BSD_POLL_ONLY 1 /* lwIP offers poll() only: tc_sock_bsd.h supplies the readiness-set stubs */
#include "../tc_sock_bsd.h"

#if !LWIP_SOCKET || !LWIP_SOCKET_POLL || !LWIP_TCP || NO_SYS
#error "port/lwip needs an lwIP with sockets, lwip_poll() and TCP, running its tcpip thread (NO_SYS 0)"
#endif

static int fail(void)
{
    return tc_bsd_map_errno(errno);
}

/* ---- a connect in flight, per descriptor ---- */

/* lwIP reports a refused connect as ECONNRESET (the RST arrives in SYN_SENT: ERR_RST). Sockets with a connect in
 * flight are marked so tc_sock_error() can tell a refusal from a reset, as the kernel does. Debian's lwIP has no
 * socket limit (its LWIP_SOCKET_OPEN_COUNT patch): 4096 marks there, one per possible socket elsewhere. */
#if defined(LWIP_SOCKET_OPEN_COUNT) && LWIP_SOCKET_OPEN_COUNT
#define CONNECTING_MAX 4096
#else
#define CONNECTING_MAX MEMP_NUM_NETCONN
#endif
static uint8_t g_connecting[CONNECTING_MAX];

static void set_connecting(int fd, uint8_t on)
{
    int i = fd - LWIP_SOCKET_OFFSET;
    if (i >= 0 && i < CONNECTING_MAX) {
        __atomic_store_n(&g_connecting[i], on, __ATOMIC_RELAXED);
    }
}

static int is_connecting(int fd)
{
    int i = fd - LWIP_SOCKET_OFFSET;
    return i >= 0 && i < CONNECTING_MAX && __atomic_load_n(&g_connecting[i], __ATOMIC_RELAXED);
}

/* ---- raw-API work in the tcpip thread (or under the core lock) ---- */

typedef enum {
    OP_ABORT = 1,
    OP_NOTE_TW,
    OP_REAP_TW,
    OP_REAP_PEER,
    OP_UNACKED,
    OP_IN_FLIGHT,
    OP_COUNT_TW,
    OP_COUNT_ACTIVE,
    OP_IS_LOCAL,
    OP_AFTER_FIN,
} raw_op_t;

/* A TCP connection's address tuple: how a TIME-WAIT pcb is found again once its socket is closed. */
typedef struct {
    uint16_t local_port, remote_port;
    ip_addr_t local_ip, remote_ip;
} tuple_t;

typedef struct {
    struct tcpip_api_call_data call; /* first: tcpip_api_call() hands this pointer back */
    raw_op_t op;
    int fd;
    uint16_t port; /* the counters and OP_REAP_PEER: a local port, 0 for any */
    long result;
    int tw;                /* OP_ABORT, OP_NOTE_TW: the socket's pcb was in TIME-WAIT, its tuple is in t */
    int freed;             /* OP_NOTE_TW, OP_REAP_TW: the stack timer had freed the socket's TIME-WAIT pcb */
    tuple_t t;             /* OP_REAP_TW frees the TIME-WAIT pcb of this tuple */
    const tc_addr_t *peer; /* OP_REAP_PEER: the peer of a pcb the stack detached */
    uint32_t ip4;          /* OP_IS_LOCAL: the address asked about, network byte order */
} raw_call_t;

/* The TCP pcb behind an lwIP socket, or NULL (not TCP, or the pcb is gone: reset, aborted, closed). Runs in the
 * tcpip thread or under the core lock, where pcbs cannot change under us. lwip_socket_dbg_get_socket() is lwIP's
 * exported accessor of its socket table (lwip/priv/sockets_priv.h); the socket stays valid because only its owner
 * thread, the caller of the raw call, may close it. */
static struct tcp_pcb *tcp_pcb_of(int fd, int *is_tcp)
{
    struct lwip_sock *sock = lwip_socket_dbg_get_socket(fd);
    *is_tcp = 0;
    if (sock == NULL || sock->conn == NULL || NETCONNTYPE_GROUP(netconn_type(sock->conn)) != NETCONN_TCP) {
        return NULL;
    }
    *is_tcp = 1;
    return sock->conn->pcb.tcp;
}

static long count_pcbs(struct tcp_pcb *list, uint16_t port)
{
    long n = 0;
    for (struct tcp_pcb *p = list; p != NULL; p = p->next) {
        n += port == 0 || p->local_port == port;
    }
    return n;
}

/*
 * Why not SO_LINGER {1, 0}: lwIP's lwip_netconn_do_close_internal() only aborts when the pcb still holds unsent or
 * unacknowledged data; with everything acknowledged it calls tcp_close(), which sends FIN and leaves this side in
 * FIN-WAIT and then TIME-WAIT - the very state the caller wanted to avoid (RFC 1337: lwIP then ignores the peer's RST
 * for 2 x MSL).
 *
 * What OP_ABORT does instead: find the socket's pcb and call tcp_abort() on it. tcp_abort() sends RST and frees the
 * pcb, then calls the netconn's error callback (api_msg.c err_tcp) with ERR_ABRT, which clears conn->pcb.tcp and
 * marks the netconn failed - exactly what an RST from the peer does. The lwip_close() that follows then finds no pcb
 * and only frees the netconn and the socket. Two states are left out: LISTEN (tcp_abort() asserts on listen pcbs;
 * closing a listener sends nothing anyway) and TIME-WAIT, where tcp_abandon() frees the pcb without calling the error
 * callback, which would leave the netconn pointing at freed memory. A socket whose pcb is in TIME-WAIT (possible after
 * tc_sock_shutdown_write() and the peer's FIN) is closed first - closing detaches the pcb, which stays in TIME-WAIT -
 * and OP_REAP_TW then finds the detached pcb by its address tuple and frees it with tcp_abort() (no RST for a
 * TIME-WAIT pcb: the peer has closed already).
 */
/* Note the tuple of a socket's pcb in TIME-WAIT (c->tw = 1). Returns the pcb, NULL when the socket has none. */
static struct tcp_pcb *note_tw(raw_call_t *c)
{
    int is_tcp;
    struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
    c->tw = pcb != NULL && pcb->state == TIME_WAIT;
    if (c->tw) {
        c->t.local_port = pcb->local_port;
        c->t.remote_port = pcb->remote_port;
        ip_addr_copy(c->t.local_ip, pcb->local_ip);
        ip_addr_copy(c->t.remote_ip, pcb->remote_ip);
    }
    return pcb;
}

static void raw_abort(raw_call_t *c)
{
    struct tcp_pcb *pcb = note_tw(c);
    if (pcb != NULL && !c->tw && pcb->state != LISTEN && pcb->state != CLOSED) {
        tcp_abort(pcb);
    }
}

/* The detached TIME-WAIT pcb of c->t, freed by tcp_abort(), which sends nothing in that state. 1 when found. */
static long raw_reap_tw(const raw_call_t *c)
{
    const tuple_t *t = &c->t;
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
        if (p->local_port == t->local_port && p->remote_port == t->remote_port &&
            ip_addr_cmp(&p->local_ip, &t->local_ip) && ip_addr_cmp(&p->remote_ip, &t->remote_ip)) {
            tcp_abort(p);
            return 1;
        }
    }
    return 0;
}

/*
 * A pcb the stack detached itself (FINs crossed: lwip_recv() closes the pcb when it reads the FIN in CLOSING) is
 * found by peer and local port among the pcbs nobody owns any more (callback_arg NULL); still in CLOSING, it is
 * queued and a stack timer frees it once the ACK of our FIN has put it in TIME-WAIT (bounded in time: REAP_GIVE_UP_MS
 * of the stack's clock, however often the timer runs - the TIME-WAIT watch below runs it at 0 ms - and long enough
 * for an ACK that a loaded machine delivers late: at 100 ms, one loaded seed-001 soak left 21 TIME-WAIT pcbs).
 * All of it runs in the tcpip thread (or under the core lock), like the stack's own timers.
 */
#define REAP_SLOTS 16
#define REAP_RETRY_MS 5
#define REAP_GIVE_UP_MS 2000

typedef struct {
    tuple_t t;
    uint8_t used;      /* 0: free slot */
    u32_t until;       /* sys_now() after which it is given up: a bound in time, however often the timer runs */
    uint8_t any_local; /* the local port was not known: match the peer only */
} reap_slot_t;

static reap_slot_t g_reap[REAP_SLOTS]; /* tcpip thread */

/* 1 once lwIP's clock (ms, wrapping) has passed t. */
static int expired(u32_t t)
{
    return (s32_t)(sys_now() - t) > 0;
}

static int g_reap_timer; /* tcpip thread: the stack timer is armed */

static void ip_from_tc(const tc_addr_t *a, ip_addr_t *out)
{
    uint32_t w[4];
    memcpy(w, a->ip, sizeof(w)); /* both network byte order */
#if LWIP_IPV6
    if (a->family == TC_AF_INET6) {
        IP_ADDR6(out, w[0], w[1], w[2], w[3]);
        return;
    }
#endif
    ip_addr_set_ip4_u32_val(*out, w[0]);
}

/* Zones aside: a link-local peer's pcb carries its netif's zone, the registry's address a scope id. */
static int same_ip(const ip_addr_t *a, const ip_addr_t *b)
{
#if LWIP_IPV6
    if (IP_IS_V6(a) != IP_IS_V6(b)) {
        return 0;
    }
    if (IP_IS_V6(a)) {
        return ip6_addr_cmp_zoneless(ip_2_ip6(a), ip_2_ip6(b));
    }
#endif
    return ip4_addr_cmp(ip_2_ip4(a), ip_2_ip4(b));
}

static int reap_match(const struct tcp_pcb *p, const reap_slot_t *r)
{
    return p->callback_arg == NULL && p->remote_port == r->t.remote_port &&
           (r->any_local || p->local_port == r->t.local_port) && same_ip(&p->remote_ip, &r->t.remote_ip);
}

/* 1: a detached TIME-WAIT pcb was freed, 0: one is still closing (keep trying), -1: none left. */
static int reap_detached(const reap_slot_t *r)
{
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
        if (reap_match(p, r)) {
            tcp_abort(p);
            return 1;
        }
    }
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        if (reap_match(p, r) && (p->state == CLOSING || p->state == FIN_WAIT_1 || p->state == FIN_WAIT_2)) {
            return 0;
        }
    }
    return -1;
}

static int eager_run(void);

/* The one stack timer of this file (detached pcbs below, TIME-WAIT watches after our FIN): at most one armed. */
static void reap_timer_cb(void *arg)
{
    (void)arg;
    g_reap_timer = 0;
    int pending = eager_run();
    for (int i = 0; i < REAP_SLOTS; i++) {
        reap_slot_t *r = &g_reap[i];
        if (!r->used) {
            continue;
        }
        if (reap_detached(r) != 0 || expired(r->until)) {
            r->used = 0;
        } else {
            pending = 1;
        }
    }
    if (pending && !g_reap_timer) {
        g_reap_timer = 1;
        sys_timeout(REAP_RETRY_MS, reap_timer_cb, NULL);
    }
}

/* Run reap_timer_cb in ms (0: right after the stack's current work); an earlier run already armed is kept. */
static void reap_timer_arm(uint32_t ms)
{
    if (g_reap_timer && ms == 0) {
        sys_untimeout(reap_timer_cb, NULL);
        g_reap_timer = 0;
    }
    if (!g_reap_timer) {
        g_reap_timer = 1;
        sys_timeout(ms, reap_timer_cb, NULL);
    }
}

/* 1 when the peer's detached pcb was freed or is queued to be, 0 when there is none (or no slot is free). */
static long raw_reap_peer(const raw_call_t *c)
{
    reap_slot_t r = {.t.remote_port = c->peer->port, .t.local_port = c->port, .any_local = c->port == 0};
    ip_from_tc(c->peer, &r.t.remote_ip);
    int found = reap_detached(&r);
    for (int i = 0; found == 0 && i < REAP_SLOTS; i++) {
        if (!g_reap[i].used) {
            r.used = 1;
            r.until = sys_now() + REAP_GIVE_UP_MS;
            g_reap[i] = r;
            reap_timer_arm(REAP_RETRY_MS);
            found = 1;
        }
    }
    return found == 1;
}

/* Let go of a pcb the way lwIP's own close does, and tell its socket as lwIP does on the final ACK. */
static void orphan(struct tcp_pcb *pcb)
{
    tcp_err_fn errf = pcb->errf;
    void *arg = pcb->callback_arg;
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_sent(pcb, NULL);
    tcp_poll(pcb, NULL, 0);
    tcp_err(pcb, NULL);
    if (errf != NULL && arg != NULL) {
        errf(arg, ERR_CLSD); /* api_msg.c err_tcp(): conn->pcb.tcp = NULL, the pending error read as EOF */
    }
}

/*
 * Our FIN first, then the peer's: the pcb enters TIME-WAIT inside the stack as the peer's FIN arrives, and the loop
 * frees it only once it has read that FIN and closed the socket (tc_sock_close_reap()). A client that reuses its
 * port sooner (a browser, 10 ms later, on a loaded machine) meets the TIME-WAIT pcb and is refused (RST: its SYN is
 * in the window) or stalled (lwIP's ACK). So the socket's receive callback is wrapped after our FIN: when the peer's
 * FIN has been delivered to the socket and the pcb is in TIME-WAIT, the pcb is queued, and a stack timer that runs
 * right after this input (0 ms; the ACK of the FIN has gone out by then) lets it go (orphan(): the socket reads its
 * data, then EOF) and frees it. Crossed FINs (CLOSING) are retried every REAP_RETRY_MS until TIME-WAIT. Bounded: a
 * full queue leaves the pcb to the loop's reap, as before. The socket learns it through g_tw_freed (close_reap
 * counts it as reaped).
 */
#define EAGER_SLOTS 16

typedef struct {
    struct tcp_pcb *pcb; /* NULL: free slot; compared, never followed, before it is found in a pcb list */
    tuple_t t;
    int fd;
    u32_t until; /* given up after this sys_now() (crossed FINs waiting for TIME-WAIT) */
} eager_slot_t;

static eager_slot_t g_eager[EAGER_SLOTS];  /* tcpip thread */
static tcp_recv_fn g_netconn_recv;         /* tcpip thread: api_msg.c's recv_tcp, seen on the first socket wrapped */
static uint8_t g_tw_freed[CONNECTING_MAX]; /* atomic: the socket's TIME-WAIT pcb was freed by the stack timer */
static uint8_t g_free_tw[CONNECTING_MAX];  /* atomic: TC_OPT_FREE_TIME_WAIT is set on the socket */

static void tuple_of(const struct tcp_pcb *pcb, tuple_t *t)
{
    t->local_port = pcb->local_port;
    t->remote_port = pcb->remote_port;
    ip_addr_copy(t->local_ip, pcb->local_ip);
    ip_addr_copy(t->remote_ip, pcb->remote_ip);
}

static int same_tuple(const struct tcp_pcb *p, const tuple_t *t)
{
    return p->local_port == t->local_port && p->remote_port == t->remote_port &&
           ip_addr_cmp(&p->local_ip, &t->local_ip) && ip_addr_cmp(&p->remote_ip, &t->remote_ip);
}

static void tw_freed_set(int fd, uint8_t on)
{
    int i = fd - LWIP_SOCKET_OFFSET;
    if (i >= 0 && i < CONNECTING_MAX) {
        __atomic_store_n(&g_tw_freed[i], on, __ATOMIC_RELAXED);
    }
}

static void free_tw_set(int fd, uint8_t on)
{
    int i = fd - LWIP_SOCKET_OFFSET;
    if (i >= 0 && i < CONNECTING_MAX) {
        __atomic_store_n(&g_free_tw[i], on, __ATOMIC_RELAXED);
    }
}

static int free_tw_wanted(int fd)
{
    int i = fd - LWIP_SOCKET_OFFSET;
    return i >= 0 && i < CONNECTING_MAX && __atomic_load_n(&g_free_tw[i], __ATOMIC_RELAXED);
}

static int tw_freed_take(int fd)
{
    int i = fd - LWIP_SOCKET_OFFSET;
    return i >= 0 && i < CONNECTING_MAX && __atomic_exchange_n(&g_tw_freed[i], 0, __ATOMIC_RELAXED);
}

/* 1: freed (or gone), 0: still closing, keep trying. Runs in the tcpip thread. */
static int eager_step(eager_slot_t *e)
{
    struct lwip_sock *sock = lwip_socket_dbg_get_socket(e->fd);
    void *conn = sock != NULL ? sock->conn : NULL;
    for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
        if (p == e->pcb && same_tuple(p, &e->t)) {
            if (conn == NULL || p->callback_arg != conn) {
                return 1; /* the socket let go of it already: the loop's reap frees it (by tuple) */
            }
            orphan(p);
            tcp_abort(p); /* TIME-WAIT: freed, nothing sent */
            tw_freed_set(e->fd, 1);
            return 1;
        }
    }
    for (struct tcp_pcb *p = tcp_active_pcbs; p != NULL; p = p->next) {
        if (p == e->pcb && same_tuple(p, &e->t)) {
            return p->state != CLOSING || p->callback_arg != conn; /* crossed FINs: TIME-WAIT once ours is acked */
        }
    }
    return 1;
}

static int eager_run(void)
{
    int pending = 0;
    for (int i = 0; i < EAGER_SLOTS; i++) {
        eager_slot_t *e = &g_eager[i];
        if (e->pcb == NULL) {
            continue;
        }
        if (eager_step(e) || expired(e->until)) {
            e->pcb = NULL;
        } else {
            pending = 1;
        }
    }
    return pending;
}

/* The socket's receive callback after our FIN: the netconn's own, then the TIME-WAIT watch. */
static err_t recv_after_fin(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    err_t r = g_netconn_recv(arg, pcb, p, err);
    if (p != NULL || r != ERR_OK || arg == NULL || (pcb->state != TIME_WAIT && pcb->state != CLOSING)) {
        return r; /* data, or the FIN not taken yet (lwIP offers it again), or no TIME-WAIT coming */
    }
    for (int i = 0; i < EAGER_SLOTS; i++) {
        eager_slot_t *e = &g_eager[i];
        if (e->pcb == NULL) {
            e->pcb = pcb;
            tuple_of(pcb, &e->t);
            e->fd = ((struct netconn *)arg)->socket; /* lwIP's socket number, offset included */
            e->until = sys_now() + REAP_GIVE_UP_MS;
            reap_timer_arm(pcb->state == TIME_WAIT ? 0 : REAP_RETRY_MS);
            break;
        }
    }
    return r; /* a full queue leaves the pcb to the loop's reap */
}

/*
 * After our FIN (tc_sock_shutdown_write()). The peer's FIN came first (LAST-ACK): the socket must not keep its pcb.
 * Reading that FIN afterwards makes lwIP shut the socket's receive side (lwip_netconn_do_close_internal: shut_rx in
 * LAST-ACK is no full close, only tcp_shutdown(), which sets TF_RXCLOSED), and tcp_input frees a LAST-ACK pcb on the
 * final ACK without calling the error callback when TF_RXCLOSED is set: the socket then points at freed memory until
 * it is closed, the next close, abort or tc_sock_unacked() touches it, and once the memory holds a new pcb (a client
 * reusing its port a few ms later) lwIP closes the wrong connection (issue 10: "pbuf_free: p->ref > 0", SIGABRT).
 * So a LAST-ACK pcb is let go at once (orphan(): what lwIP does on the final ACK with the receive side open): the
 * socket still reads what was received and then EOF, and the pcb delivers the rest of our data and FIN, takes the
 * final ACK and is freed by the stack. Nothing changes on the wire. Otherwise (FIN-WAIT) the TIME-WAIT watch above.
 */
static void raw_after_fin(const raw_call_t *c)
{
    int is_tcp;
    struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
    if (pcb == NULL) {
        return; /* freed already: the error callback told the socket */
    }
    if (pcb->state == LAST_ACK) {
        orphan(pcb);
        return;
    }
    /* ESTABLISHED: called before our FIN too, as a peer that answers at once (QEMU's slirp: FIN and a new SYN in the
     * same burst) may be heard by the stack's thread before a call made after the FIN could wrap anything. */
    if ((pcb->state == ESTABLISHED || pcb->state == FIN_WAIT_1 || pcb->state == FIN_WAIT_2) && free_tw_wanted(c->fd) &&
        pcb->recv != NULL && pcb->recv != recv_after_fin) {
        if (g_netconn_recv == NULL) {
            g_netconn_recv = pcb->recv;
        }
        if (pcb->recv == g_netconn_recv) {
            tcp_recv(pcb, recv_after_fin);
        }
    }
}

/* lwIP binds to any address, local or not, and such a socket then never sees a packet; the kernel refuses with
 * EADDRNOTAVAIL. The contract follows the kernel: an IPv4 address must be the wildcard, loopback, or a netif's. */
static long raw_is_local(const raw_call_t *c)
{
    struct netif *nif;
    NETIF_FOREACH(nif)
    {
        if (ip4_addr_get_u32(netif_ip4_addr(nif)) == c->ip4) {
            return 1;
        }
    }
    return 0;
}

static err_t raw_call(struct tcpip_api_call_data *data)
{
    raw_call_t *c = (raw_call_t *)data;
    int is_tcp;
    switch (c->op) {
    case OP_ABORT:
        raw_abort(c);
        c->result = TC_OK;
        break;
    case OP_NOTE_TW:
        /* the reaping close, before closing: 1 the socket's pcb is in TIME-WAIT, 2 the stack detached it, 0 other */
        c->result = note_tw(c) == NULL ? 2 : c->tw;
        c->freed = tw_freed_take(c->fd); /* under the lock, like the timer that sets it */
        break;
    case OP_REAP_TW:
        c->result = raw_reap_tw(c);
        c->freed |= tw_freed_take(c->fd); /* freed by the timer between the note and the close */
        break;
    case OP_REAP_PEER:
        c->result = raw_reap_peer(c);
        break;
    case OP_UNACKED: {
        /* snd_lbb is the sequence number after the last byte handed to the pcb, lastack the peer's last ACK: the
         * difference is what was sent and not acknowledged plus what still waits to be sent, our FIN included (it
         * takes a sequence number) - the same quantity as Linux's SIOCOUTQ. A socket without a pcb (reset,
         * aborted) has nothing left to send. */
        struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
        c->result = !is_tcp                ? TC_EINVAL
                    : pcb == NULL          ? 0
                    : pcb->state == LISTEN ? TC_EINVAL
                                           : (long)(uint32_t)(pcb->snd_lbb - pcb->lastack);
        break;
    }
    case OP_IN_FLIGHT: {
        /* snd_nxt - lastack: sent and not acknowledged. A zero-window probe moves snd_nxt by the byte it carries,
         * so a pcb probing a closed window (persist_backoff set) has nothing in flight in the contract's sense. */
        struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
        c->result = !is_tcp                      ? TC_EINVAL
                    : pcb == NULL                ? 0
                    : pcb->state == LISTEN       ? TC_EINVAL
                    : pcb->persist_backoff != 0 ? 0
                                                 : (long)(uint32_t)(pcb->snd_nxt - pcb->lastack);
        break;
    }
    case OP_COUNT_TW:
        c->result = count_pcbs(tcp_tw_pcbs, c->port);
        break;
    case OP_COUNT_ACTIVE:
        c->result = count_pcbs(tcp_active_pcbs, c->port);
        break;
    case OP_IS_LOCAL:
        c->result = raw_is_local(c);
        break;
    case OP_AFTER_FIN:
        raw_after_fin(c);
        c->result = TC_OK;
        break;
    default:
        c->result = TC_EINVAL;
        break;
    }
    return ERR_OK;
}

/* Run one raw operation: under the core lock where the stack has one, in the tcpip thread otherwise. */
static long run_raw(raw_call_t *c)
{
    c->result = TC_EIO;
    return tcpip_api_call(raw_call, &c->call) == ERR_OK ? c->result : TC_EIO;
}

/* ---- the contract ---- */

const char *tc_sock_backend(void)
{
    return tc__lwip_name();
}

int tc_sock_global_init(const tc_sock_env_t *env)
{
    return tc__lwip_init(env);
}

static int set_nonblocking(int fd)
{
    return lwip_fcntl(fd, F_SETFL, O_NONBLOCK) == 0 ? TC_OK : fail();
}

int tc_sock_open(int family, int type)
{
    int af = family == TC_AF_INET ? AF_INET : family == TC_AF_INET6 ? AF_INET6 : -1;
    int st = type == TC_SOCK_STREAM ? SOCK_STREAM : type == TC_SOCK_DGRAM ? SOCK_DGRAM : -1;
    if (af < 0 || st < 0 || !tc__lwip_ready()) {
        return TC_EINVAL; /* before the stack is up lwIP has no core lock to take: it would crash */
    }
    /* lwIP's socket() takes no SOCK_NONBLOCK flag: set O_NONBLOCK right after. */
    int fd = lwip_socket(af, st, 0);
    if (fd < 0) {
        return fail();
    }
    int rc = set_nonblocking(fd);
    if (rc != TC_OK) {
        lwip_close(fd);
        return rc;
    }
    set_connecting(fd, 0);
    tw_freed_set(fd, 0);
    free_tw_set(fd, 0);
    return fd;
}

static int setopt_int(int fd, int level, int name, int value)
{
    return lwip_setsockopt(fd, level, name, &value, sizeof(value));
}

int tc_sock_setopt(int fd, tc_sockopt_t opt, int value)
{
    int rc;
    switch (opt) {
    case TC_OPT_REUSEADDR:
        rc = setopt_int(fd, SOL_SOCKET, SO_REUSEADDR, value);
        break;
    case TC_OPT_NODELAY:
        rc = setopt_int(fd, IPPROTO_TCP, TCP_NODELAY, value);
        break;
    case TC_OPT_KEEPALIVE: {
        /* TCP_KEEPIDLE and TCP_KEEPINTVL are in seconds, as on Linux (LWIP_TCP_KEEPALIVE, on in both builds). */
        int on = value > 0;
        rc = setopt_int(fd, SOL_SOCKET, SO_KEEPALIVE, on);
        if (rc == 0 && on) {
            rc = setopt_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, value);
            rc = rc == 0 ? setopt_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, value > 3 ? value / 3 : 1) : rc;
            rc = rc == 0 ? setopt_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 3) : rc;
        }
        break;
    }
#if LWIP_IPV6
    case TC_OPT_V6ONLY:
        rc = setopt_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, value);
        break;
#endif
    case TC_OPT_RCVBUF:
        rc = setopt_int(fd, SOL_SOCKET, SO_RCVBUF, value);
        break;
    case TC_OPT_FREE_TIME_WAIT: /* tc_sock_shutdown_write() installs the watch (raw_after_fin()) */
        free_tw_set(fd, value != 0);
        return TC_OK;
    case TC_OPT_UNSENT_MAX: /* lwIP's send buffer is TCP_SND_BUF, fixed at build time (and small) */
    default:
        return TC_ENOSYS;
    }
    return rc == 0 ? TC_OK : fail();
}

static int ipv4_is_local(const tc_addr_t *addr)
{
    raw_call_t c = {.op = OP_IS_LOCAL};
    memcpy(&c.ip4, addr->ip, 4); /* both are network byte order */
    return c.ip4 == 0 || addr->ip[0] == 127 || run_raw(&c) == 1;
}

int tc_sock_bind(int fd, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = tc_bsd_to_sa(addr, &ss);
    if (len == 0) {
        return TC_EINVAL;
    }
    if (addr->family == TC_AF_INET && !ipv4_is_local(addr)) {
        return TC_EADDRNOTAVAIL;
    }
    return lwip_bind(fd, (struct sockaddr *)&ss, len) == 0 ? TC_OK : fail();
}

int tc_sock_listen(int fd, int backlog)
{
#if TCP_LISTEN_BACKLOG && DEFAULT_ACCEPTMBOX_SIZE > 0
    /* lwIP counts a connection against the backlog from its SYN until lwip_accept() takes it, and queues it in the
     * listener's accept mailbox (DEFAULT_ACCEPTMBOX_SIZE; ESP-IDF: CONFIG_LWIP_TCP_ACCEPTMBOX_SIZE, 6 by default) when
     * its handshake completes, resetting it when that mailbox is full. With a backlog above the mailbox the 7th
     * connection of a burst the loop had not yet accepted was reset (esp32c3 under QEMU, packet capture); within it,
     * a SYN beyond the backlog is dropped and the client's retransmission finds room. */
    if (backlog > DEFAULT_ACCEPTMBOX_SIZE) {
        backlog = DEFAULT_ACCEPTMBOX_SIZE;
    }
#endif
    return lwip_listen(fd, backlog) == 0 ? TC_OK : fail();
}

int tc_sock_accept(int fd, tc_addr_t *peer)
{
    struct sockaddr_storage ss;
    int c = -1;
    /* ECONNABORTED: a queued connection died before it was taken; try the next one (bounded). */
    for (int i = 0; i < 16; i++) {
        socklen_t len = sizeof(ss);
        c = lwip_accept(fd, (struct sockaddr *)&ss, &len);
        if (c >= 0 || errno != ECONNABORTED) {
            break;
        }
    }
    if (c < 0) {
        return fail();
    }
    /* lwIP's accepted sockets do not inherit O_NONBLOCK from the listener. */
    int rc = set_nonblocking(c);
    if (rc != TC_OK) {
        lwip_close(c);
        return rc;
    }
    set_connecting(c, 0);
    tw_freed_set(c, 0);
    free_tw_set(c, 0);
    if (peer) {
        tc_bsd_from_sa(&ss, peer);
    }
    return c;
}

int tc_sock_connect(int fd, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = tc_bsd_to_sa(addr, &ss);
    if (len == 0) {
        return TC_EINVAL;
    }
    if (lwip_connect(fd, (struct sockaddr *)&ss, len) == 0) {
        return TC_OK;
    }
    int rc = fail();
    if (rc == TC_EINPROGRESS) {
        set_connecting(fd, 1);
    }
    return rc;
}

int tc_sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    int connecting = is_connecting(fd);
    set_connecting(fd, 0);
    if (lwip_getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return fail();
    }
    if (err == 0) {
        return TC_OK;
    }
    if (connecting && (err == ECONNRESET || err == ECONNABORTED)) {
        return TC_ECONNREFUSED; /* RST in answer to our SYN */
    }
    return tc_bsd_map_errno(err);
}

long tc_sock_send(int fd, const void *buf, size_t len)
{
    ssize_t n = lwip_send(fd, buf, len, 0); /* lwIP raises no SIGPIPE: MSG_NOSIGNAL is not needed */
    return n < 0 ? fail() : (long)n;
}

long tc_sock_sendv(int fd, const tc_sock_iov_t *iov, int n, int last)
{
    /* last is not used: the netconn layer calls tcp_output() after every write, MSG_MORE or not, so the close's FIN
     * leaves in a segment of its own (tcp_send_fin() would join it to an unsent tail, but none is left by then). */
    (void)last;
    struct iovec v[TC_SOCK_IOV_MAX];
    if (n < 1 || n > TC_SOCK_IOV_MAX) {
        return TC_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        v[i].iov_base = (void *)(uintptr_t)iov[i].data; /* lwip_sendmsg() only reads it (NETCONN_COPY) */
        v[i].iov_len = iov[i].len;
    }
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = v;
    m.msg_iovlen = n;
    ssize_t r = lwip_sendmsg(fd, &m, 0); /* one tcp_write() per piece, one tcp_output() for them all */
    return r < 0 ? fail() : (long)r;
}

long tc_sock_recv(int fd, void *buf, size_t len)
{
    ssize_t n = lwip_recv(fd, buf, len, 0);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_sendto(int fd, const void *buf, size_t len, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl = tc_bsd_to_sa(addr, &ss);
    if (sl == 0) {
        return TC_EINVAL;
    }
    ssize_t n = lwip_sendto(fd, buf, len, 0, (struct sockaddr *)&ss, sl);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_recvfrom(int fd, void *buf, size_t len, tc_addr_t *from)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    ssize_t n = lwip_recvfrom(fd, buf, len, 0, (struct sockaddr *)&ss, &sl);
    if (n < 0) {
        return fail();
    }
    if (from) {
        tc_bsd_from_sa(&ss, from);
    }
    return (long)n;
}

int tc_sock_shutdown_write(int fd)
{
    raw_call_t c = {.op = OP_AFTER_FIN, .fd = fd}; /* LAST-ACK let go, or TIME-WAIT freed as it starts */
    if (free_tw_wanted(fd)) {
        run_raw(&c); /* the TIME-WAIT watch goes on before our FIN can be answered */
    }
    if (lwip_shutdown(fd, SHUT_WR) != 0) {
        return fail();
    }
    run_raw(&c);
    return TC_OK;
}

int tc_sock_shutdown_both(int fd)
{
    return lwip_shutdown(fd, SHUT_RDWR) == 0 ? TC_OK : fail();
}

int tc_sock_close(int fd)
{
    set_connecting(fd, 0);
    tw_freed_set(fd, 0);
    free_tw_set(fd, 0);
    return lwip_close(fd) == 0 ? TC_OK : fail();
}

int tc_sock_abort(int fd)
{
    raw_call_t c = {.op = OP_ABORT, .fd = fd};
    set_connecting(fd, 0);
    tw_freed_set(fd, 0);
    free_tw_set(fd, 0);
    run_raw(&c);
    int rc = lwip_close(fd) == 0 ? TC_OK : fail();
    if (c.tw) {
        c.op = OP_REAP_TW; /* closing detached the TIME-WAIT pcb from the socket: now it can be freed */
        run_raw(&c);
    }
    return rc;
}

int tc_sock_time_wait_harmless(void)
{
    return 0; /* a TIME-WAIT pcb ignores the RST of a client reusing its port (RFC 1337, seed 001) */
}

/* Note the socket's TIME-WAIT pcb, close (which only detaches such a pcb), free it; or, for a pcb the stack detached
 * itself (FINs crossed), find it by peer and free it once in TIME-WAIT. */
int tc_sock_close_reap(int fd, const tc_addr_t *peer, uint16_t local_port)
{
    raw_call_t c = {.op = OP_NOTE_TW, .fd = fd};
    set_connecting(fd, 0);
    free_tw_set(fd, 0);
    long state = run_raw(&c);
    int rc = lwip_close(fd) == 0 ? TC_OK : fail();
    long reaped = 0;
    if (state == 1) {
        c.op = OP_REAP_TW;
        reaped = run_raw(&c);
    }
    if (c.freed) {
        reaped = 1; /* the stack timer freed it as it entered TIME-WAIT (recv_after_fin()) */
    } else if (state == 2 && peer != NULL && (peer->family == TC_AF_INET || peer->family == TC_AF_INET6)) {
        c.op = OP_REAP_PEER;
        c.peer = peer;
        c.port = local_port;
        reaped = run_raw(&c);
    }
    return rc == TC_OK ? (int)(reaped == 1) : rc;
}

int tc_sock_local_addr(int fd, tc_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (lwip_getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return fail();
    }
    tc_bsd_from_sa(&ss, out);
    return TC_OK;
}

int tc_sock_peer_addr(int fd, tc_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (lwip_getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return fail();
    }
    tc_bsd_from_sa(&ss, out);
    return TC_OK;
}

long tc_sock_unacked(int fd)
{
    raw_call_t c = {.op = OP_UNACKED, .fd = fd};
    return run_raw(&c);
}

long tc_sock_in_flight(int fd)
{
    raw_call_t c = {.op = OP_IN_FLIGHT, .fd = fd};
    return run_raw(&c);
}

int tc_sock_time_wait_count(uint16_t local_port)
{
    raw_call_t c = {.op = OP_COUNT_TW, .port = local_port};
    return tc__lwip_ready() ? (int)run_raw(&c) : 0;
}

int tc_sock_active_count(uint16_t local_port)
{
    raw_call_t c = {.op = OP_COUNT_ACTIVE, .port = local_port};
    return tc__lwip_ready() ? (int)run_raw(&c) : 0;
}

int tc_sock_poll(tc_pollfd_t *fds, int n, int timeout_ms)
{
    if (n < 0 || (n > 0 && fds == NULL)) {
        return TC_EINVAL;
    }
    struct pollfd *p = tc_bsd_poll_in(fds, n);
    /* lwip_poll() rejects a non-NULL set of 0 entries; NULL with 0 just sleeps. */
    int rc = lwip_poll(n > 0 ? p : NULL, (nfds_t)n, timeout_ms);
    int err = rc < 0 ? fail() : 0;
    int nready = tc_bsd_poll_out(fds, n);
    if (rc < 0) {
        /* lwip_pollscan() stops at the first descriptor that is not a socket and fails the whole call; POSIX poll
         * reports POLLNVAL on that entry instead, which is what the loop expects. */
        return nready > 0 ? nready : err;
    }
    return rc;
}

int tc_sock_wake_open(int *rfd, int *wfd)
{
    /* lwip_poll() sees only lwIP sockets, so the pair is two UDP sockets: the reader bound to 127.0.0.1, the writer
     * connected to it. The datagrams never leave the stack: ip4_output_if() queues packets for 127/8 on the
     * outgoing netif's loopback queue (LWIP_NETIF_LOOPBACK, on in both builds) and the tcpip thread delivers them.
     * The writer stays unbound: udp_sendto_if() refuses (ERR_RTE) a pcb bound to an address other than the outgoing
     * netif's, and 127.0.0.1 is not the TAP netif's address. */
    if (rfd == NULL || wfd == NULL) {
        return TC_EINVAL;
    }
    tc_addr_t ra = {.family = TC_AF_INET, .ip = {127, 0, 0, 1}, .port = 0};
    int r = tc_sock_open(TC_AF_INET, TC_SOCK_DGRAM);
    if (r < 0) {
        return r;
    }
    int w = -1;
    int rc = tc_sock_bind(r, &ra);
    rc = rc == TC_OK ? tc_sock_local_addr(r, &ra) : rc;
    if (rc == TC_OK) {
        w = tc_sock_open(TC_AF_INET, TC_SOCK_DGRAM);
        rc = w < 0 ? w : tc_sock_connect(w, &ra);
    }
    if (rc != TC_OK) {
        if (w >= 0) {
            lwip_close(w);
        }
        lwip_close(r);
        return rc;
    }
    *rfd = r;
    *wfd = w;
    return TC_OK;
}

#if !LWIP_NETCONN_FULLDUPLEX
/* Serialises the writers of a wake-up socket: this lwIP wants one thread per socket at a time. */
static tc_port_mutex_t g_wake_mu = TC_PORT_MUTEX_INIT;
#define WAKE_LOCK() tc_port_mutex_lock(&g_wake_mu)
#define WAKE_UNLOCK() tc_port_mutex_unlock(&g_wake_mu)
#else
#define WAKE_LOCK() ((void)0)
#define WAKE_UNLOCK() ((void)0)
#endif

int tc_sock_wake_signal(int wfd)
{
    /* A full receive mailbox drops the datagram inside lwIP and send still succeeds: the reader is readable then,
     * which is all a wake-up needs. Not async-signal-safe (lwIP takes mutexes). */
    static const char one = 1;
    WAKE_LOCK();
    ssize_t n = lwip_send(wfd, &one, 1, 0);
    int rc = n == 1 ? TC_OK : n < 0 ? fail() : TC_EIO;
    WAKE_UNLOCK();
    return rc == TC_EAGAIN ? TC_OK : rc;
}

void tc_sock_wake_drain(int rfd)
{
    char buf[64];
    for (int i = 0; i < 1024 && lwip_recv(rfd, buf, sizeof(buf), 0) > 0; i++) {
    }
}

void tc_sock_wake_close(int rfd, int wfd)
{
    WAKE_LOCK(); /* no signal is half-way through wfd while it closes */
    if (wfd != rfd) {
        lwip_close(wfd);
    }
    WAKE_UNLOCK();
    lwip_close(rfd);
}

#if LWIP_DNS
/* The first IPv4 answer, else the first answer. */
static int resolve_name(const char *host, tc_addr_t *out)
{
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo *res = NULL;
    if (lwip_getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return TC_ERESOLVE;
    }
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, pick->ai_addr, pick->ai_addrlen < sizeof(ss) ? pick->ai_addrlen : sizeof(ss));
    lwip_freeaddrinfo(res);
    tc_bsd_from_sa(&ss, out);
    return out->family != TC_AF_UNSPEC ? TC_OK : TC_ERESOLVE;
}
#endif

int tc_sock_resolve(const char *host, uint16_t port, tc_addr_t *out)
{
    if (host == NULL || out == NULL) {
        return TC_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (strcmp(host, "localhost") == 0) {
        host = "127.0.0.1"; /* lwIP loops 127/8 back itself; its resolver may not know the name */
    }
    if (lwip_inet_pton(AF_INET, host, out->ip) == 1) {
        out->family = TC_AF_INET;
    } else if (lwip_inet_pton(AF_INET6, host, out->ip) == 1) {
        out->family = TC_AF_INET6;
    } else {
#if LWIP_DNS
        int rc = resolve_name(host, out);
        if (rc != TC_OK) {
            return rc;
        }
#else
        return TC_ERESOLVE; /* no LWIP_DNS in this stack (Debian's): literals and "localhost" only */
#endif
    }
    out->port = port;
    return TC_OK;
}
