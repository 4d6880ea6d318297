/*
 * port/esp/tc_sock.c - the ESP-IDF backend (chip targets): ESP-IDF's lwIP through its POSIX socket names, poll()
 * through ESP-IDF's VFS (which serves lwIP sockets), a loopback UDP pair for wake-ups, and tcp_abort() run in the
 * tcpip thread for a real RST.
 *
 * The upstream-lwIP backend (port/lwip) is tested on the host against the same lwIP 2.1 TCP code; this file differs
 * where ESP-IDF differs: esp_netif owns the interfaces (nothing to bring up here), descriptors are VFS numbers
 * (LWIP_SOCKET_OFFSET), name resolution has LWIP_DNS, and core locking is a Kconfig choice
 * (CONFIG_LWIP_TCPIP_CORE_LOCKING, off by default), so raw-API work goes through tcpip_api_call(), which runs it in
 * the tcpip thread in both modes.
 */
#define TC_BSD_SIN_LEN 1 /* ESP-IDF's lwIP has its own sockaddr, with a length byte */
#include "tc_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lwip/api.h"
#include "lwip/priv/sockets_priv.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/priv/tcpip_priv.h"
#include "lwip/sockets.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "lwip/timeouts.h"

#include "tc_err.h"
#define TC_BSD_POLL_ONLY 1 /* lwIP offers poll() only: tc_sock_bsd.h supplies the readiness-set stubs */
#include "../tc_sock_bsd.h"

static int fail(void)
{
    return tc_bsd_map_errno(errno);
}

/* ---- raw-API work in the tcpip thread ---- */

/* A TCP connection's address tuple: how a TIME-WAIT pcb is found again once its socket is closed. */
typedef struct {
    uint16_t local_port, remote_port;
    ip_addr_t local_ip, remote_ip;
} tuple_t;

typedef struct {
    struct tcpip_api_call_data call; /* first: tcpip_api_call() hands this pointer back */
    int fd;
    int op;
    long result;
    uint16_t port;
    tuple_t tuple;           /* OP_TW_TUPLE fills it, OP_REAP_TUPLE reads it */
    const tc_addr_t *peer;   /* OP_REAP_PEER: the peer of a pcb the stack detached (port: the local port, 0 any) */
} raw_call_t;

enum { OP_ABORT = 1, OP_UNACKED, OP_COUNT_TW, OP_COUNT_ACTIVE, OP_TW_TUPLE, OP_REAP_TUPLE, OP_REAP_PEER };

/* Detached pcbs still closing, freed by a stack timer once in TIME-WAIT: the same as port/lwip (tcpip thread only). */
#define REAP_SLOTS 16
#define REAP_RETRY_MS 5
#define REAP_TRIES 20

typedef struct {
    tuple_t t;
    uint8_t tries;     /* 0: free slot */
    uint8_t any_local; /* the local port was not known: match the peer only */
} reap_slot_t;

static reap_slot_t g_reap[REAP_SLOTS];
static int g_reap_timer;

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

static void reap_timer_cb(void *arg)
{
    (void)arg;
    int pending = 0;
    for (int i = 0; i < REAP_SLOTS; i++) {
        reap_slot_t *r = &g_reap[i];
        if (r->tries == 0) {
            continue;
        }
        if (reap_detached(r) != 0 || --r->tries == 0) {
            r->tries = 0;
        } else {
            pending = 1;
        }
    }
    g_reap_timer = pending;
    if (pending) {
        sys_timeout(REAP_RETRY_MS, reap_timer_cb, NULL);
    }
}

static long reap_peer(const tc_addr_t *peer, uint16_t local_port)
{
    reap_slot_t r = {.t.remote_port = peer->port, .t.local_port = local_port, .any_local = local_port == 0};
    ip_from_tc(peer, &r.t.remote_ip);
    int found = reap_detached(&r);
    for (int i = 0; found == 0 && i < REAP_SLOTS; i++) {
        if (g_reap[i].tries == 0) {
            r.tries = REAP_TRIES;
            g_reap[i] = r;
            if (!g_reap_timer) {
                g_reap_timer = 1;
                sys_timeout(REAP_RETRY_MS, reap_timer_cb, NULL);
            }
            found = 1;
        }
    }
    return found == 1;
}

/* The TCP pcb of a socket, or NULL. Runs in the tcpip thread, where pcbs cannot change under us.
 * lwip_socket_dbg_get_socket() is lwIP's exported accessor of its socket table (lwip/priv/sockets_priv.h). */
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

static err_t raw_call(struct tcpip_api_call_data *data)
{
    raw_call_t *c = (raw_call_t *)data;
    int is_tcp;
    switch (c->op) {
    case OP_ABORT: {
        struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
        /* tcp_abort(): RST, pcb freed, the netconn's error callback clears conn->pcb (as a peer RST would), so the
         * close that follows only frees the socket. LISTEN pcbs must not be aborted (and send nothing anyway). */
        if (pcb != NULL && pcb->state != LISTEN && pcb->state != CLOSED && pcb->state != TIME_WAIT) {
            tcp_abort(pcb);
        }
        c->result = TC_OK;
        break;
    }
    case OP_UNACKED: {
        struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
        c->result = !is_tcp ? TC_EINVAL : pcb == NULL ? 0 : (long)(uint32_t)(pcb->snd_lbb - pcb->lastack);
        break;
    }
    case OP_COUNT_TW:
    case OP_COUNT_ACTIVE: {
        long n = 0;
        for (struct tcp_pcb *p = c->op == OP_COUNT_TW ? tcp_tw_pcbs : tcp_active_pcbs; p != NULL; p = p->next) {
            n += c->port == 0 || p->local_port == c->port;
        }
        c->result = n;
        break;
    }
    case OP_TW_TUPLE: {
        /* tc_sock_close_reap(), before the close: is the socket's pcb in TIME-WAIT (1), detached by the stack (2)? */
        struct tcp_pcb *pcb = tcp_pcb_of(c->fd, &is_tcp);
        c->result = pcb == NULL ? 2 : pcb->state == TIME_WAIT;
        if (c->result == 1) {
            c->tuple.local_port = pcb->local_port;
            c->tuple.remote_port = pcb->remote_port;
            ip_addr_copy(c->tuple.local_ip, pcb->local_ip);
            ip_addr_copy(c->tuple.remote_ip, pcb->remote_ip);
        }
        break;
    }
    case OP_REAP_TUPLE: {
        /* After the close: the detached TIME-WAIT pcb, freed by tcp_abort(), which sends nothing in that state. */
        const tuple_t *t = &c->tuple;
        c->result = 0;
        for (struct tcp_pcb *p = tcp_tw_pcbs; p != NULL; p = p->next) {
            if (p->local_port == t->local_port && p->remote_port == t->remote_port &&
                ip_addr_cmp(&p->local_ip, &t->local_ip) && ip_addr_cmp(&p->remote_ip, &t->remote_ip)) {
                tcp_abort(p);
                c->result = 1;
                break;
            }
        }
        break;
    }
    case OP_REAP_PEER:
        c->result = reap_peer(c->peer, c->port);
        break;
    default:
        c->result = TC_EINVAL;
        break;
    }
    return ERR_OK;
}

static long run_raw(int op, int fd, uint16_t port)
{
    raw_call_t c = {.fd = fd, .op = op, .result = TC_EIO, .port = port};
    return tcpip_api_call(raw_call, &c.call) == ERR_OK ? c.result : TC_EIO;
}

/* ---- the contract ---- */

const char *tc_sock_backend(void)
{
    return "esp-lwip";
}

int tc_sock_global_init(const tc_sock_env_t *env)
{
    (void)env; /* esp_netif_init() and the Wi-Fi glue bring the stack and its interfaces up */
    return TC_OK;
}

int tc_sock_open(int family, int type)
{
    int af = family == TC_AF_INET ? AF_INET : family == TC_AF_INET6 ? AF_INET6 : -1;
    int st = type == TC_SOCK_STREAM ? SOCK_STREAM : type == TC_SOCK_DGRAM ? SOCK_DGRAM : -1;
    if (af < 0 || st < 0) {
        return TC_EINVAL;
    }
    int fd = socket(af, st, 0);
    if (fd < 0) {
        return fail();
    }
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        int rc = fail();
        close(fd);
        return rc;
    }
    return fd;
}

int tc_sock_setopt(int fd, tc_sockopt_t opt, int value)
{
    int rc;
    switch (opt) {
    case TC_OPT_REUSEADDR:
        rc = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &value, sizeof(value));
        break;
    case TC_OPT_NODELAY:
        rc = setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof(value));
        break;
    case TC_OPT_KEEPALIVE: {
        int on = value > 0;
        rc = setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
        if (rc == 0 && on) {
            int intvl = value > 3 ? value / 3 : 1, cnt = 3;
            rc = setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &value, sizeof(value));
            rc = rc == 0 ? setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) : rc;
            rc = rc == 0 ? setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) : rc;
        }
        break;
    }
    case TC_OPT_V6ONLY:
        rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, sizeof(value));
        break;
    case TC_OPT_RCVBUF:
        rc = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
        break;
    case TC_OPT_SNDBUF:
        return TC_ENOSYS; /* lwIP's send buffer is TCP_SND_BUF, fixed at build time */
    default:
        return TC_ENOSYS;
    }
    return rc == 0 ? TC_OK : fail();
}

int tc_sock_bind(int fd, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = tc_bsd_to_sa(addr, &ss);
    if (len == 0) {
        return TC_EINVAL;
    }
    return bind(fd, (struct sockaddr *)&ss, len) == 0 ? TC_OK : fail();
}

int tc_sock_listen(int fd, int backlog)
{
    return listen(fd, backlog) == 0 ? TC_OK : fail();
}

int tc_sock_accept(int fd, tc_addr_t *peer)
{
    struct sockaddr_storage ss;
    int c = -1;
    for (int i = 0; i < 16; i++) {
        socklen_t len = sizeof(ss);
        c = accept(fd, (struct sockaddr *)&ss, &len);
        if (c >= 0 || errno != ECONNABORTED) {
            break;
        }
    }
    if (c < 0) {
        return fail();
    }
    if (fcntl(c, F_SETFL, O_NONBLOCK) != 0) {
        int rc = fail();
        close(c);
        return rc;
    }
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
    return connect(fd, (struct sockaddr *)&ss, len) == 0 ? TC_OK : fail();
}

int tc_sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return fail();
    }
    /* lwIP reports an RST answering our SYN as ECONNRESET; in connect's SO_ERROR that means refused. */
    return err == 0 ? TC_OK : (err == ECONNRESET ? TC_ECONNREFUSED : tc_bsd_map_errno(err));
}

long tc_sock_send(int fd, const void *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, 0);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_recv(int fd, void *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, 0);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_sendto(int fd, const void *buf, size_t len, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl = tc_bsd_to_sa(addr, &ss);
    if (sl == 0) {
        return TC_EINVAL;
    }
    ssize_t n = sendto(fd, buf, len, 0, (struct sockaddr *)&ss, sl);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_recvfrom(int fd, void *buf, size_t len, tc_addr_t *from)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    ssize_t n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&ss, &sl);
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
    return shutdown(fd, SHUT_WR) == 0 ? TC_OK : fail();
}

int tc_sock_shutdown_both(int fd)
{
    return shutdown(fd, SHUT_RDWR) == 0 ? TC_OK : fail();
}

int tc_sock_close(int fd)
{
    return close(fd) == 0 ? TC_OK : fail();
}

int tc_sock_abort(int fd)
{
    /* SO_LINGER {1, 0} is not enough on lwIP: with everything acknowledged it still closes with FIN and keeps
     * TIME-WAIT (measured on the host with lwIP 2.1.3, see port/lwip). tcp_abort() in the tcpip thread sends RST. */
    run_raw(OP_ABORT, fd, 0);
    return close(fd) == 0 ? TC_OK : fail();
}

int tc_sock_close_reap(int fd, const tc_addr_t *peer, uint16_t local_port)
{
    /* The same steps as port/lwip: note the TIME-WAIT pcb's tuple, close (which only detaches such a pcb), free it;
     * or, for a pcb the stack detached itself (FINs crossed), find it by peer and free it once in TIME-WAIT. Each
     * step runs in the tcpip thread (tcpip_api_call()), as core locking is off by default on ESP-IDF. */
    raw_call_t c = {.fd = fd, .op = OP_TW_TUPLE, .result = 0};
    long state = tcpip_api_call(raw_call, &c.call) == ERR_OK ? c.result : 0;
    int rc = close(fd) == 0 ? TC_OK : fail();
    long reaped = 0;
    if (state == 1) {
        c.op = OP_REAP_TUPLE;
    } else if (state == 2 && peer != NULL && (peer->family == TC_AF_INET || peer->family == TC_AF_INET6)) {
        c.op = OP_REAP_PEER;
        c.peer = peer;
        c.port = local_port;
    }
    if (state == 1 || c.op == OP_REAP_PEER) {
        c.fd = -1;
        c.result = 0;
        reaped = tcpip_api_call(raw_call, &c.call) == ERR_OK ? c.result : 0;
    }
    return rc == TC_OK ? (int)reaped : rc;
}

int tc_sock_local_addr(int fd, tc_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
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
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return fail();
    }
    tc_bsd_from_sa(&ss, out);
    return TC_OK;
}

long tc_sock_unacked(int fd)
{
    return run_raw(OP_UNACKED, fd, 0);
}

int tc_sock_time_wait_count(uint16_t local_port)
{
    return (int)run_raw(OP_COUNT_TW, -1, local_port);
}

int tc_sock_active_count(uint16_t local_port)
{
    return (int)run_raw(OP_COUNT_ACTIVE, -1, local_port);
}

int tc_sock_poll(tc_pollfd_t *fds, int n, int timeout_ms)
{
    struct pollfd *p = tc_bsd_poll_in(fds, n);
    int rc = poll(p, (nfds_t)n, timeout_ms); /* ESP-IDF's VFS poll, which serves lwIP sockets */
    int err = rc < 0 ? fail() : 0;
    tc_bsd_poll_out(fds, n);
    return rc < 0 ? err : rc;
}

int tc_sock_wake_open(int *rfd, int *wfd)
{
    /* Two UDP sockets on lwIP's loopback (CONFIG_LWIP_NETIF_LOOPBACK, on by default): the reader bound to
     * 127.0.0.1, the writer connected to it. An eventfd would need esp_vfs_eventfd_register() by the application. */
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
            close(w);
        }
        close(r);
        return rc;
    }
    *rfd = r;
    *wfd = w;
    return TC_OK;
}

int tc_sock_wake_signal(int wfd)
{
    /* A full mailbox drops the datagram and the reader is readable anyway: all a wake-up needs. LWIP_NETCONN_
     * FULLDUPLEX is on in ESP-IDF, so several threads may send on wfd. */
    static const char one = 1;
    ssize_t n = send(wfd, &one, 1, 0);
    int rc = n == 1 ? TC_OK : n < 0 ? fail() : TC_EIO;
    return rc == TC_EAGAIN ? TC_OK : rc;
}

void tc_sock_wake_drain(int rfd)
{
    char buf[64];
    for (int i = 0; i < 1024 && recv(rfd, buf, sizeof(buf), 0) > 0; i++) {
    }
}

void tc_sock_wake_close(int rfd, int wfd)
{
    if (wfd != rfd) {
        close(wfd);
    }
    close(rfd);
}

int tc_sock_resolve(const char *host, uint16_t port, tc_addr_t *out)
{
    if (host == NULL || out == NULL) {
        return TC_EINVAL;
    }
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) {
        return TC_ERESOLVE;
    }
    const struct addrinfo *pick = res;
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET) {
            pick = ai;
            break;
        }
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, pick->ai_addr, pick->ai_addrlen);
    freeaddrinfo(res);
    tc_bsd_from_sa(&ss, out);
    out->port = port;
    return out->family ? TC_OK : TC_ERESOLVE;
}
