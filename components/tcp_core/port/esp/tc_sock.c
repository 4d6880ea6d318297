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
#include <sys/poll.h> /* ESP-IDF has no <poll.h> */
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

#include "tc_err.h"
#define TC_BSD_POLL_ONLY 1 /* lwIP offers poll() only: tc_sock_bsd.h supplies the readiness-set stubs */
#include "../tc_sock_bsd.h"

static int fail(void)
{
    return tc_bsd_map_errno(errno);
}

/* ---- raw-API work in the tcpip thread ---- */

typedef struct {
    struct tcpip_api_call_data call; /* first: tcpip_api_call() hands this pointer back */
    int fd;
    int op;
    long result;
    uint16_t port;
} raw_call_t;

enum { OP_ABORT = 1, OP_UNACKED, OP_COUNT_TW, OP_COUNT_ACTIVE };

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
