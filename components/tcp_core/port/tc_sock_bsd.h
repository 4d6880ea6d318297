/*
 * port/tc_sock_bsd.h - what every backend with BSD-style sockets shares (Linux, lwIP on the host, ESP-IDF's lwIP):
 * errno to tc_err_t, tc_addr_t to and from struct sockaddr, and tc_pollfd_t flags to and from struct pollfd.
 * Private to port/: a backend includes its own socket and poll headers first, then this one.
 *
 * lwIP's sockaddr has a length byte (sin_len) unless it uses the C library's structures
 * (LWIP_SOCKET_EXTERNAL_HEADERS, the Debian build); TC_BSD_SIN_LEN says to fill it.
 */
#pragma once

#include <errno.h>
#include <string.h>

#include "tc_err.h"
#include "tc_sock.h"

#if !defined(LWIP_IPV6) || LWIP_IPV6
#define TC_BSD_IPV6 1
#else
#define TC_BSD_IPV6 0
#endif

/* errno -> tc_err_t; anything unexpected is TC_EIO rather than a silent success. The lwIP comments name the lwIP
 * error each value stands for there. */
static int tc_bsd_map_errno(int e)
{
    switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        return TC_EAGAIN;
    case EINPROGRESS:
    case EALREADY:
        return TC_EINPROGRESS;
    case EADDRINUSE:
        return TC_EADDRINUSE;
    case EADDRNOTAVAIL:
        return TC_EADDRNOTAVAIL;
    case ECONNREFUSED:
        return TC_ECONNREFUSED;
    case ECONNRESET:
    case ECONNABORTED:
        return TC_ECONNRESET;
    case ETIMEDOUT:
        return TC_ETIMEDOUT;
    case EPIPE:
    case ENOTCONN: /* lwIP's ERR_CLSD: the connection was closed under the socket */
        return TC_EPIPE;
    case ENETUNREACH:
    case EHOSTUNREACH: /* lwIP's ERR_RTE: no netif routes there */
    case ENETDOWN:
        return TC_EUNREACH;
    case EMFILE:
    case ENFILE:
    case ENOBUFS:
        return TC_EMFILE;
    case ENOMEM:
        return TC_ENOMEM;
    case EACCES:
    case EPERM:
        return TC_EACCES;
    case EINVAL:
    case EAFNOSUPPORT:
    case EBADF:
    case EISCONN:
        return TC_EINVAL;
    case ENOPROTOOPT:
    case EOPNOTSUPP:
    case ENOSYS:
        return TC_ENOSYS;
    default:
        return TC_EIO;
    }
}

/* The sockaddr of a tc_addr_t; returns its length, 0 for a family the backend cannot express. */
static socklen_t tc_bsd_to_sa(const tc_addr_t *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (a == NULL) {
        return 0;
    }
    if (a->family == TC_AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
#ifdef TC_BSD_SIN_LEN
        sin->sin_len = sizeof(*sin);
#endif
        sin->sin_family = AF_INET;
        sin->sin_port = htons(a->port);
        memcpy(&sin->sin_addr, a->ip, 4);
        return sizeof(*sin);
    }
#if TC_BSD_IPV6
    if (a->family == TC_AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
#ifdef TC_BSD_SIN_LEN
        sin6->sin6_len = sizeof(*sin6);
#endif
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(a->port);
        memcpy(&sin6->sin6_addr, a->ip, 16);
        sin6->sin6_scope_id = a->scope_id;
        return sizeof(*sin6);
    }
#endif
    return 0;
}

/* The tc_addr_t of a sockaddr (family 0 for anything but IPv4 and IPv6). */
static void tc_bsd_from_sa(const struct sockaddr_storage *ss, tc_addr_t *a)
{
    memset(a, 0, sizeof(*a));
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        a->family = TC_AF_INET;
        a->port = ntohs(sin->sin_port);
        memcpy(a->ip, &sin->sin_addr, 4);
    }
#if TC_BSD_IPV6
    else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        a->family = TC_AF_INET6;
        a->port = ntohs(sin6->sin6_port);
        memcpy(a->ip, &sin6->sin6_addr, 16);
        a->scope_id = sin6->sin6_scope_id;
    }
#endif
}

/* tc_pollfd_t has struct pollfd's layout, so a set is translated in place rather than copied: this turns the
 * TC_POLL* wishes into POLL* ones before the call... */
static struct pollfd *tc_bsd_poll_in(tc_pollfd_t *fds, int n)
{
    _Static_assert(sizeof(tc_pollfd_t) == sizeof(struct pollfd), "tc_pollfd_t must match struct pollfd");
    struct pollfd *p = (struct pollfd *)(void *)fds;
    for (int i = 0; i < n; i++) {
        short ev = fds[i].events;
        p[i].events = (short)(((ev & TC_POLLIN) ? POLLIN : 0) | ((ev & TC_POLLOUT) ? POLLOUT : 0));
        p[i].revents = 0;
    }
    return p;
}

/* ...and this turns both back after it; returns the entries with revents set. */
static int tc_bsd_poll_out(tc_pollfd_t *fds, int n)
{
    struct pollfd *p = (struct pollfd *)(void *)fds;
    int nready = 0;
    for (int i = 0; i < n; i++) {
        short r = p[i].revents, ev = p[i].events;
        fds[i].events = (short)(((ev & POLLIN) ? TC_POLLIN : 0) | ((ev & POLLOUT) ? TC_POLLOUT : 0));
        fds[i].revents = (short)(((r & POLLIN) ? TC_POLLIN : 0) | ((r & POLLOUT) ? TC_POLLOUT : 0) |
                                 ((r & POLLERR) ? TC_POLLERR : 0) | ((r & POLLHUP) ? TC_POLLHUP : 0) |
                                 ((r & POLLNVAL) ? TC_POLLNVAL : 0));
        nready += fds[i].revents != 0;
    }
    return nready;
}

#ifdef TC_BSD_POLL_ONLY
/* For stacks that only poll (lwIP on the device and over TAP): no readiness set, so the loop uses tc_sock_poll(),
 * and accepted pcbs do not take TF_NODELAY from their listener, so options are set per connection. */
int tc_sock_accept_inherits_opts(void)
{
    return 0;
}

int tc_sock_evset_open(void)
{
    return TC_ENOSYS;
}

void tc_sock_evset_close(int set)
{
    (void)set;
}

int tc_sock_evset_add(int set, int fd, int events, uint32_t tag)
{
    (void)set, (void)fd, (void)events, (void)tag;
    return TC_ENOSYS;
}

int tc_sock_evset_mod(int set, int fd, int events, uint32_t tag)
{
    (void)set, (void)fd, (void)events, (void)tag;
    return TC_ENOSYS;
}

int tc_sock_evset_del(int set, int fd)
{
    (void)set, (void)fd;
    return TC_ENOSYS;
}

int tc_sock_evset_wait(int set, tc_evready_t *out, int max, int timeout_ms)
{
    (void)set, (void)out, (void)max, (void)timeout_ms;
    return TC_ENOSYS;
}
#endif
