/*
 * tc_sock.h - the socket backend contract: the small function set every backend implements. Private to the
 * component (the core, port/ and the ESP glue); applications see the backend through tc_backend.h only.
 *
 * Backends (port/backends.txt): port/linux/tc_sock_linux.c (host kernel sockets) and port/lwip/tc_sock_lwip.c, one
 * source for every lwIP stack with a shim per stack (tc_lwip_tap.c: upstream lwIP over a TAP device on the host;
 * tc_lwip_esp.c: ESP-IDF's lwIP on chips). The build links exactly one backend. The core never includes a
 * system socket header: addresses cross this boundary as tc_addr_t and readiness as tc_pollfd_t, because lwIP's
 * struct sockaddr and poll constants need not match the C library's when both live in one process (the lwip TAP
 * backend). Descriptors are the backend's own (lwIP socket numbers on lwIP), and the wake-up pair is made by the
 * backend so that lwIP's poll can watch it too.
 *
 * All functions return >= 0 on success and a negative tc_err_t on failure. Sockets are non-blocking from creation.
 * Thread-safety: the loop thread calls everything; only tc_sock_wake_signal() may be called from any thread (not
 * from a signal handler: on lwIP it is a UDP send), and tc_sock_global_init() and the counters from any thread.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_addr.h"
#include "tc_backend.h"
#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Socket types. */
typedef enum {
    TC_SOCK_STREAM = 1,
    TC_SOCK_DGRAM = 2,
} tc_socktype_t;

/** Socket options the core sets; a backend that cannot honour one returns TC_ENOSYS. */
typedef enum {
    TC_OPT_REUSEADDR = 1,  /**< int: allow binding while old connections linger */
    TC_OPT_NODELAY,        /**< int: disable Nagle (small writes leave at once) */
    TC_OPT_KEEPALIVE,      /**< int: seconds of idle before keepalive probes, 0 = off */
    TC_OPT_V6ONLY,         /**< int: IPv6 listener does not take IPv4-mapped peers */
    TC_OPT_RCVBUF,         /**< int: receive buffer bytes */
    TC_OPT_UNSENT_MAX,     /**< int: bytes the stack holds not yet sent before a write would block (Linux:
                                TCP_NOTSENT_LOWAT; bytes in flight are not counted) */
    TC_OPT_FREE_TIME_WAIT, /**< int: 1 = a TIME-WAIT this side enters after tc_sock_shutdown_write() is freed by
                                the stack as soon as it starts (lwIP, where it stalls reused ports: seed 001), and
                                tc_sock_close_reap() counts it; TC_ENOSYS where the stack copes (Linux) */
} tc_sockopt_t;

/** One entry of a tc_sock_poll() set. */
typedef struct {
    int fd;
    short events;  /**< TC_POLLIN | TC_POLLOUT wanted */
    short revents; /**< set by tc_sock_poll() */
} tc_pollfd_t;

/** What the lwIP-over-TAP backend needs before the first socket; other backends ignore it. */
typedef struct {
    const char *tap_name; /**< TAP device to attach to, e.g. "tctap0" (lwip backend only) */
    tc_addr_t address;    /**< the stack's own IPv4 address (lwip backend only) */
    uint8_t prefix_len;   /**< netmask length of address */
    tc_addr_t gateway;    /**< default gateway, family 0 for none */
} tc_sock_env_t;

/**
 * @brief Bring the backend up once per process (the lwip backend starts its stack and its TAP netif here).
 *
 * Idempotent and thread-safe: later calls return TC_OK without doing anything when env is NULL or the one the
 * backend runs with; the lwip backend runs once per process, so a later env with another TAP, address, prefix or
 * gateway is refused with TC_EBUSY (it would otherwise be silently ignored).
 * @param env  backend environment; may be NULL for backends that need none
 * @return TC_OK, TC_EINVAL (lwip backend without a TAP name), TC_EIO (TAP device could not be opened),
 *         TC_ENOMEM (lwip backend: the stack could not allocate its netif), TC_EBUSY (lwip backend: already up with
 *         another env)
 */
int tc_sock_global_init(const tc_sock_env_t *env);

/**
 * @brief Create a non-blocking socket (close-on-exec where the OS has it).
 * @param family  TC_AF_INET or TC_AF_INET6
 * @param type    TC_SOCK_STREAM or TC_SOCK_DGRAM
 * @return the descriptor (>= 0), TC_EMFILE, TC_ENOMEM, TC_EINVAL
 */
int tc_sock_open(int family, int type);

/** @brief Set an option; @return TC_OK, TC_ENOSYS, TC_EINVAL. */
int tc_sock_setopt(int fd, tc_sockopt_t opt, int value);

/** @brief Bind to addr; @return TC_OK, TC_EADDRINUSE, TC_EADDRNOTAVAIL, TC_EACCES, TC_EINVAL. */
int tc_sock_bind(int fd, const tc_addr_t *addr);

/** @brief Listen with the given backlog; @return TC_OK or an error. */
int tc_sock_listen(int fd, int backlog);

/**
 * @brief Accept one pending connection; the new socket is non-blocking.
 * @param fd    a listening socket
 * @param peer  receives the peer address; may be NULL
 * @return the new descriptor, TC_EAGAIN when none is pending, TC_EMFILE when out of descriptors, or an error
 */
int tc_sock_accept(int fd, tc_addr_t *peer);

/**
 * @brief Start a non-blocking connect.
 * @return TC_OK (connected at once), TC_EINPROGRESS (wait for TC_POLLOUT, then tc_sock_error()), or an error
 *         (TC_ECONNREFUSED, TC_EUNREACH, TC_EADDRNOTAVAIL, ...)
 */
int tc_sock_connect(int fd, const tc_addr_t *addr);

/** @brief Pending socket error (SO_ERROR) as a tc_err_t, TC_OK when none; clears it. */
int tc_sock_error(int fd);

/** @brief Send up to len bytes; @return bytes sent (may be fewer), TC_EAGAIN, TC_EPIPE, TC_ECONNRESET, ... */
long tc_sock_send(int fd, const void *buf, size_t len);

/** The most pieces one tc_sock_sendv() takes. */
#define TC_SOCK_IOV_MAX 8

/** One piece of a tc_sock_sendv() write. */
typedef struct {
    const void *data; /**< bytes */
    size_t len;       /**< byte count, > 0 */
} tc_sock_iov_t;

/**
 * @brief Send n pieces (1..TC_SOCK_IOV_MAX) in order in one call (writev): the stack packs them into as few segments
 *        as it can, where separate sends would each push a segment of their own.
 * @param last the bytes end the connection: the caller closes it or shuts down its sending side right after
 *        (tc_sock_close(), tc_sock_shutdown_write()), and the stack may hold a short tail to leave in one segment
 *        with the FIN (Linux: MSG_MORE; lwIP sends at once, see port/lwip/README.md)
 * @return bytes sent (may be fewer than the total, ending inside any piece), or as tc_sock_send()
 */
long tc_sock_sendv(int fd, const tc_sock_iov_t *iov, int n, int last);

/** @brief Receive up to len bytes; @return bytes received, 0 at the peer's FIN, TC_EAGAIN, TC_ECONNRESET, ... */
long tc_sock_recv(int fd, void *buf, size_t len);

/** @brief Send one datagram to addr; @return bytes sent or an error. */
long tc_sock_sendto(int fd, const void *buf, size_t len, const tc_addr_t *addr);

/** @brief Receive one datagram; from may be NULL; @return bytes received (the rest of a longer one is lost). */
long tc_sock_recvfrom(int fd, void *buf, size_t len, tc_addr_t *from);

/** @brief Shut down the sending side (FIN after queued data); @return TC_OK or an error. */
int tc_sock_shutdown_write(int fd);

/**
 * @brief Shut down both directions without closing the descriptor.
 *
 * Used from a thread that does not own the socket to make the owner's blocked send/recv fail (the esp_http_server
 * adapter); closing under the owner would be a use-after-close (lwIP asserts).
 * @return TC_OK or an error
 */
int tc_sock_shutdown_both(int fd);

/** @brief Close normally (FIN after queued data); the descriptor is gone afterwards. @return TC_OK or an error. */
int tc_sock_close(int fd);

/**
 * @brief Close abortively: the peer gets RST, queued data is dropped, and no TIME-WAIT state is left here.
 *
 * Each backend must really send RST whatever the state of the send queue (lwIP's SO_LINGER {1, 0} alone does not:
 * it sends FIN when everything was acknowledged). The descriptor is gone afterwards.
 * @return TC_OK or an error
 */
int tc_sock_abort(int fd);

/**
 * @brief Close a connection after both FINs (ours sent by tc_sock_shutdown_write(), the peer's seen as a receive of
 * 0), leaving no TIME-WAIT state here on stacks where it harms. Never sends RST. The descriptor is gone afterwards.
 *
 * lwIP keeps the active closer's pcb in TIME-WAIT for 2 x MSL and ignores the RST of a client that reuses its source
 * port meanwhile (RFC 1337): the new connection stalls (seed 001). With both FINs exchanged nothing is left to
 * deliver, and tcp_abort() of a TIME-WAIT pcb frees it without sending anything, so the lwIP backends free it. When
 * the FINs crossed (simultaneous close), lwIP detaches the pcb from the socket by itself as the FIN is read, and it
 * reaches TIME-WAIT only when the ACK of ours arrives: it is then found by peer and local_port and freed from the
 * stack's own thread once it gets there (bounded: a few retries over ~100 ms). Linux answers a reused port in
 * TIME-WAIT correctly (RFC 6191): a plain close there.
 * @param fd          the connection
 * @param peer        its peer's address (finds a pcb the stack detached); may be NULL
 * @param local_port  its local port, 0 when unknown
 * @return 1 when a TIME-WAIT pcb was freed or will be shortly, 0 when closed plainly (the stack keeps whatever state
 *         it has), or an error
 */
int tc_sock_close_reap(int fd, const tc_addr_t *peer, uint16_t local_port);

/** @brief Local address of a socket; @return TC_OK or an error. */
int tc_sock_local_addr(int fd, tc_addr_t *out);

/** @brief Peer address of a connected socket; @return TC_OK or an error. */
int tc_sock_peer_addr(int fd, tc_addr_t *out);

/**
 * @brief Bytes sent but not yet acknowledged by the peer, plus bytes not yet sent, if the backend can tell.
 * @return the count, or TC_ENOSYS
 */
long tc_sock_unacked(int fd);

/**
 * @brief Bytes the stack has sent on a connection and still awaits the peer's acknowledgement of: what its
 * retransmission timer guards. Bytes not yet sent do not count, nor does a probe of the peer's closed window.
 * @return the count (0: nothing in flight), or TC_ENOSYS / another error if the backend cannot tell
 */
long tc_sock_in_flight(int fd);

/**
 * @brief Wait for readiness on n descriptors.
 * @param fds         the set; revents are written
 * @param n           number of entries
 * @param timeout_ms  -1 waits forever, 0 polls
 * @return number of entries with revents != 0, 0 on time-out or when a signal interrupted the wait (the loop
 *         then runs its timers and polls again: restarting the full wait would starve them under steady
 *         signals), or an error
 */
int tc_sock_poll(tc_pollfd_t *fds, int n, int timeout_ms);

/**
 * @brief Whether a socket from tc_sock_accept() inherits TC_OPT_NODELAY and TC_OPT_KEEPALIVE (with its timings) from
 *        its listener, so a server sets them once on the listener instead of once per connection.
 * @return 1 (Linux: the accepted socket is a clone of the listener), 0 (lwIP: set them on each connection)
 */
int tc_sock_accept_inherits_opts(void);

/**
 * @brief Whether a TIME-WAIT this side keeps is harmless, so that a server may close first with a plain close and
 *        leave it to the stack: the stack answers a SYN that reuses the ports of a connection it holds in TIME-WAIT
 *        by opening the new connection (RFC 6191, with timestamps), and holds TIME-WAIT in little memory of its own.
 *        The core's close policy reads it (tc_tcp.h, "Close policies and TIME-WAIT").
 * @return 1 (Linux kernel sockets), 0 (lwIP: a TIME-WAIT pcb ignores the RST of a client that reuses its port, RFC
 *         1337, and stalls it: seed 001; each pcb also holds the device's scarce memory)
 */
int tc_sock_time_wait_harmless(void);

/** One ready descriptor from tc_sock_evset_wait(). */
typedef struct {
    uint32_t tag;  /**< the tag given when the descriptor was added */
    short revents; /**< TC_POLL* bits */
} tc_evready_t;

/**
 * @brief Open a readiness set that hands back only the ready descriptors (epoll on Linux), so a wait costs what is
 *        ready rather than what is open. Optional: a backend without one (lwIP's poll is all there is on the device)
 *        returns TC_ENOSYS and the loop uses tc_sock_poll(). Level-triggered, like poll(): TC_POLLERR and
 *        TC_POLLHUP are reported whatever the events asked.
 * @return the set's descriptor, or an error (TC_ENOSYS: not offered)
 */
int tc_sock_evset_open(void);

/** @brief Close a set from tc_sock_evset_open(). */
void tc_sock_evset_close(int set);

/**
 * @brief Add fd to the set with the events wanted (TC_POLLIN | TC_POLLOUT, or 0) and a tag returned with its
 *        readiness. Closing fd (tc_sock_close(), tc_sock_abort()) removes it from the set: the core never
 *        duplicates a descriptor, so a set must behave like epoll there. @return TC_OK or an error
 */
int tc_sock_evset_add(int set, int fd, int events, uint32_t tag);

/** @brief Change the events (and tag) of a descriptor in the set. @return TC_OK or an error */
int tc_sock_evset_mod(int set, int fd, int events, uint32_t tag);

/** @brief Remove a descriptor from the set. @return TC_OK or an error */
int tc_sock_evset_del(int set, int fd);

/**
 * @brief Wait for readiness in the set, like tc_sock_poll().
 * @param out, max  where the ready descriptors go, at most max (the rest stay ready for the next wait)
 * @return how many were written, 0 on time-out or when a signal interrupted the wait, or an error
 */
int tc_sock_evset_wait(int set, tc_evready_t *out, int max, int timeout_ms);

/**
 * @brief Make a wake-up pair: rfd is watched by the loop, tc_sock_wake_signal(wfd) makes it readable.
 *
 * On lwIP both ends are lwIP sockets (two UDP sockets on loopback), since lwIP's poll only sees lwIP sockets; on
 * Linux rfd and wfd are one eventfd.
 * @return TC_OK or an error
 */
int tc_sock_wake_open(int *rfd, int *wfd);

/** @brief Make rfd readable; safe from any thread and from signal handlers on Linux. @return TC_OK or an error. */
int tc_sock_wake_signal(int wfd);

/** @brief Drain every pending wake-up on rfd (non-blocking). */
void tc_sock_wake_drain(int rfd);

/** @brief Close both ends of a wake-up pair. */
void tc_sock_wake_close(int rfd, int wfd);

/**
 * @brief Resolve a host name (or numeric address) to one address, IPv4 preferred.
 *
 * The system resolver, blocking (getaddrinfo, or lwip_getaddrinfo where lwIP has LWIP_DNS; an lwIP without it knows
 * literals and "localhost" only). Only the fallback worker thread of tc_resolve.c calls it: the TCP client resolves
 * through the loop (tc_resolve.c). Numeric addresses never block.
 * @param host    name or literal
 * @param port    port in host order, copied into out
 * @param out     receives the address
 * @return TC_OK, TC_ERESOLVE, TC_EINVAL
 */
int tc_sock_resolve(const char *host, uint16_t port, tc_addr_t *out);

#ifdef __cplusplus
}
#endif
