/*
 * port/linux/tc_sock_linux.c - the host kernel socket backend (Linux): BSD sockets, poll(), an eventfd for wake-ups.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, SOCK_NONBLOCK */
#endif
#include "tc_sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/sockios.h>

#include "tc_err.h"
#include "../tc_sock_bsd.h"

static int fail(void)
{
    return tc_bsd_map_errno(errno);
}

const char *tc_sock_backend(void)
{
    return "linux";
}

int tc_sock_global_init(const tc_sock_env_t *env)
{
    (void)env;
    return TC_OK;
}

int tc_sock_open(int family, int type)
{
    int af = family == TC_AF_INET ? AF_INET : family == TC_AF_INET6 ? AF_INET6 : -1;
    int st = type == TC_SOCK_STREAM ? SOCK_STREAM : type == TC_SOCK_DGRAM ? SOCK_DGRAM : -1;
    if (af < 0 || st < 0) {
        return TC_EINVAL;
    }
    int fd = socket(af, st | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? fail() : fd;
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
            if (rc == 0) {
                rc = setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
            }
            if (rc == 0) {
                rc = setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
            }
        }
        break;
    }
    case TC_OPT_V6ONLY:
        rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, sizeof(value));
        break;
    case TC_OPT_RCVBUF:
        rc = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof(value));
        break;
    case TC_OPT_UNSENT_MAX:
        /* Not SO_SNDBUF: that bounds the bytes in flight too, and a buffer of one segment (16 KB asked, 32 KB
         * given, 65,483-byte segments on loopback) made every write wait for the peer's delayed ACK, 40 ms: a fast
         * viewer of a large-frame stream got about 1.5 MB/s. */
        rc = setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &value, sizeof(value));
        break;
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
    socklen_t len = sizeof(ss);
    int c;
    do {
        c = accept4(fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        /* ECONNABORTED: the peer gave up while queued; try the next one. */
    } while (c < 0 && (errno == EINTR || errno == ECONNABORTED));
    if (c < 0) {
        return fail();
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
    if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
        return TC_OK;
    }
    return errno == EINTR ? TC_EINPROGRESS : fail();
}

int tc_sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        return fail();
    }
    return err == 0 ? TC_OK : tc_bsd_map_errno(err);
}

long tc_sock_send(int fd, const void *buf, size_t len)
{
    ssize_t n;
    do {
        n = send(fd, buf, len, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_sendv(int fd, const tc_sock_iov_t *iov, int n, int last)
{
    struct iovec v[TC_SOCK_IOV_MAX];
    if (n < 1 || n > TC_SOCK_IOV_MAX) {
        return TC_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        v[i].iov_base = (void *)(uintptr_t)iov[i].data; /* sendmsg() only reads it */
        v[i].iov_len = iov[i].len;
    }
    struct msghdr m;
    memset(&m, 0, sizeof(m));
    m.msg_iov = v;
    m.msg_iovlen = (size_t)n;
    /* last: MSG_MORE holds a short tail in the stack; the close that follows sets FIN on that same segment
     * (tcp_send_fin() marks an unsent tail) and pushes it: one segment less to send, for the peer to take and to
     * acknowledge. */
    ssize_t r;
    do {
        r = sendmsg(fd, &m, MSG_NOSIGNAL | (last ? MSG_MORE : 0));
    } while (r < 0 && errno == EINTR);
    return r < 0 ? fail() : (long)r;
}

long tc_sock_recv(int fd, void *buf, size_t len)
{
    ssize_t n;
    do {
        n = recv(fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? fail() : (long)n;
}

long tc_sock_sendto(int fd, const void *buf, size_t len, const tc_addr_t *addr)
{
    struct sockaddr_storage ss;
    socklen_t sl = tc_bsd_to_sa(addr, &ss);
    if (sl == 0) {
        return TC_EINVAL;
    }
    ssize_t n = sendto(fd, buf, len, MSG_NOSIGNAL, (struct sockaddr *)&ss, sl);
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
    /* On Linux SO_LINGER {1, 0} always sends RST and skips TIME-WAIT, whatever the queue holds. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    return close(fd) == 0 ? TC_OK : fail();
}

int tc_sock_close_reap(int fd, const tc_addr_t *peer, uint16_t local_port)
{
    (void)peer;
    (void)local_port;
    /* The kernel keeps TIME-WAIT in its own table and accepts a reused port's new SYN (RFC 6191): nothing to free. */
    return close(fd) == 0 ? 0 : fail();
}

int tc_sock_local_addr(int fd, tc_addr_t *out)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
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
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return fail();
    }
    tc_bsd_from_sa(&ss, out);
    return TC_OK;
}

long tc_sock_unacked(int fd)
{
    int outq = 0;
    if (ioctl(fd, SIOCOUTQ, &outq) != 0) {
        return fail();
    }
    return outq;
}

long tc_sock_in_flight(int fd)
{
    int outq = 0, unsent = 0; /* SIOCOUTQ: write_seq - snd_una, SIOCOUTQNSD: write_seq - snd_nxt */
    if (ioctl(fd, SIOCOUTQ, &outq) != 0 || ioctl(fd, SIOCOUTQNSD, &unsent) != 0) {
        return fail();
    }
    return outq - unsent; /* a closed window's probes resend an old byte: they do not move snd_nxt */
}

int tc_sock_poll(tc_pollfd_t *fds, int n, int timeout_ms)
{
    struct pollfd *p = tc_bsd_poll_in(fds, n);
    int rc = poll(p, (nfds_t)n, timeout_ms);
    if (rc < 0 && errno == EINTR) {
        /* Return "no events" rather than restart the full wait: under steady signals (FreeRTOS's POSIX port ticks
         * at 100 Hz on the linux target) a restarted poll() never times out and the loop's timers starve. */
        for (int i = 0; i < n; i++) {
            p[i].revents = 0;
        }
        rc = 0;
    }
    int err = rc < 0 ? fail() : 0;
    tc_bsd_poll_out(fds, n);
    return rc < 0 ? err : rc;
}

int tc_sock_accept_inherits_opts(void)
{
    return 1; /* the kernel clones the listener: TCP_NODELAY, SO_KEEPALIVE and the TCP_KEEP* timings come along */
}

int tc_sock_time_wait_harmless(void)
{
    return 1; /* the kernel takes a reused port out of TIME-WAIT for a newer SYN (RFC 6191) */
}

/* ---- readiness set: epoll ---- */

static uint32_t to_epoll(int events)
{
    return ((events & TC_POLLIN) ? (uint32_t)EPOLLIN : 0u) | ((events & TC_POLLOUT) ? (uint32_t)EPOLLOUT : 0u);
}

int tc_sock_evset_open(void)
{
    int set = epoll_create1(EPOLL_CLOEXEC);
    return set < 0 ? fail() : set;
}

void tc_sock_evset_close(int set)
{
    if (set >= 0) {
        close(set);
    }
}

static int evset_ctl(int set, int op, int fd, int events, uint32_t tag)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.u32 = tag};
    return epoll_ctl(set, op, fd, &ev) == 0 ? TC_OK : fail();
}

int tc_sock_evset_add(int set, int fd, int events, uint32_t tag)
{
    return evset_ctl(set, EPOLL_CTL_ADD, fd, events, tag);
}

int tc_sock_evset_mod(int set, int fd, int events, uint32_t tag)
{
    return evset_ctl(set, EPOLL_CTL_MOD, fd, events, tag);
}

int tc_sock_evset_del(int set, int fd)
{
    return evset_ctl(set, EPOLL_CTL_DEL, fd, 0, 0);
}

int tc_sock_evset_wait(int set, tc_evready_t *out, int max, int timeout_ms)
{
    struct epoll_event evs[32]; /* 384 bytes of the loop's stack; more ready descriptors come at the next wait */
    if (max > 32) {
        max = 32;
    }
    int rc = epoll_wait(set, evs, max, timeout_ms);
    if (rc < 0) {
        /* As in tc_sock_poll(): a signal means "no events", so the loop's timers run. */
        return errno == EINTR ? 0 : fail();
    }
    for (int i = 0; i < rc; i++) {
        uint32_t e = evs[i].events;
        out[i].tag = evs[i].data.u32;
        out[i].revents = (short)(((e & EPOLLIN) ? TC_POLLIN : 0) | ((e & EPOLLOUT) ? TC_POLLOUT : 0) |
                                 ((e & EPOLLERR) ? TC_POLLERR : 0) | ((e & EPOLLHUP) ? TC_POLLHUP : 0));
    }
    return rc;
}

int tc_sock_wake_open(int *rfd, int *wfd)
{
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0) {
        return fail();
    }
    *rfd = fd;
    *wfd = fd;
    return TC_OK;
}

int tc_sock_wake_signal(int wfd)
{
    uint64_t one = 1;
    ssize_t n = write(wfd, &one, sizeof(one));
    /* EAGAIN means the counter is saturated: already readable, which is all a wake-up needs. */
    return (n == (ssize_t)sizeof(one) || errno == EAGAIN) ? TC_OK : fail();
}

void tc_sock_wake_drain(int rfd)
{
    uint64_t v;
    while (read(rfd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
}

void tc_sock_wake_close(int rfd, int wfd)
{
    close(rfd);
    if (wfd != rfd) {
        close(wfd);
    }
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

/* /proc/net/tcp{,6} lines: "sl local_address rem_address st ..." with addresses as HEXIP:HEXPORT and st in hex
 * (0x06 TIME_WAIT, 0x0A LISTEN). Counted for the caller's network namespace. */
static int count_proc_tcp(uint16_t local_port, int time_wait)
{
    static const char *const files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    int n = 0, opened = 0;
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        FILE *fp = fopen(files[f], "r");
        if (fp == NULL) {
            continue;
        }
        opened++;
        char line[256]; /* a tcp6 line is about 170 bytes */
        if (fgets(line, sizeof(line), fp) == NULL) { /* header */
            fclose(fp);
            continue;
        }
        int rest = 0; /* inside a line longer than the buffer (none expected): its pieces are skipped */
        while (fgets(line, sizeof(line), fp) != NULL) {
            char local[64], remote[64]; /* IPv6 "HEX32:HEX4" is 37 bytes */
            unsigned st = 0;
            int skip = rest || strchr(line, '\n') == NULL;
            rest = strchr(line, '\n') == NULL;
            if (skip || sscanf(line, "%*s %63s %63s %x", local, remote, &st) != 3) {
                continue;
            }
            const char *colon = strrchr(local, ':');
            unsigned port = colon ? (unsigned)strtoul(colon + 1, NULL, 16) : 0;
            int match = local_port == 0 || port == local_port;
            int is_tw = st == 0x06, is_listen = st == 0x0A;
            n += match && (time_wait ? is_tw : (!is_tw && !is_listen));
        }
        fclose(fp);
    }
    return opened ? n : TC_ENOSYS;
}

int tc_sock_time_wait_count(uint16_t local_port)
{
    return count_proc_tcp(local_port, 1);
}

int tc_sock_active_count(uint16_t local_port)
{
    return count_proc_tcp(local_port, 0);
}
