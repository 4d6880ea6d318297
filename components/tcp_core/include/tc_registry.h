/*
 * tc_registry.h - socket tracking: every listener, accepted, client and UDP socket of a loop, with its kind, peer,
 * age, idle time and traffic; iterable from C and Python.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_addr.h"
#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Kinds of tracked sockets. */
typedef enum {
    TC_KIND_LISTENER = 1, /**< a listening TCP socket */
    TC_KIND_ACCEPTED,     /**< a connection accepted by a server */
    TC_KIND_CLIENT,       /**< a connection made by a client */
    TC_KIND_UDP,          /**< a UDP endpoint (the DNS responder) */
    TC_KIND_EXTERNAL,     /**< a socket owned by someone else, tracked by hand (esp_http_server sessions) */
} tc_kind_t;

/** States of tracked sockets. */
typedef enum {
    TC_STATE_LISTENING = 1,
    TC_STATE_CONNECTING,
    TC_STATE_OPEN,
    TC_STATE_CLOSING, /**< flushing, or waiting for the peer's FIN */
} tc_state_t;

/**
 * What a tracked socket is for, set by its owner (the TCP server, the HTTP layer, the DNS responder) and changed as
 * the connection changes (an HTTP connection becomes a WebSocket, a stream, and back). Long-lived sessions (WebSocket,
 * SSE, streams) are kept alive by their own liveness checks rather than the idle timeout, and an admission policy can
 * spare them; tc_role_is_long_lived() tells which.
 */
typedef enum {
    TC_ROLE_TCP = 0,  /**< a connection of a server with its own handler (no role set) */
    TC_ROLE_LISTENER, /**< a listening socket */
    TC_ROLE_CLIENT,   /**< a connection made by a TCP client */
    TC_ROLE_ECHO,     /**< a connection of the echo service (tc_echo_cb) */
    TC_ROLE_HTTP,     /**< an HTTP connection: between requests, or answering one */
    TC_ROLE_WS,       /**< an upgraded WebSocket */
    TC_ROLE_SSE,      /**< a Server-Sent Events stream */
    TC_ROLE_STREAM,   /**< a streamed response (chunked, MJPEG) */
    TC_ROLE_DNS,      /**< the DNS responder's UDP socket */
    TC_ROLE_EXTERNAL, /**< a socket someone else owns (tc_registry_ext.h) */
    TC_ROLE_COUNT
} tc_role_t;

/** One tracked socket, as seen now. */
typedef struct {
    uint32_t id;         /**< unique per loop */
    int fd;              /**< backend descriptor */
    uint8_t kind;        /**< tc_kind_t */
    uint8_t state;       /**< tc_state_t */
    uint8_t flags;       /**< TC_REG_FLAG_* */
    uint8_t role;        /**< tc_role_t */
    const char *owner;   /**< label of the server or client ("echo", "http", ...), static */
    tc_addr_t local;     /**< local address (listeners and UDP), else zeroed */
    tc_addr_t peer;      /**< peer address (connections, external sessions), else zeroed */
    uint64_t age_ms;     /**< since it was opened */
    uint64_t idle_ms;    /**< since the last byte in or out */
    uint64_t bytes_in;   /**< received */
    uint64_t bytes_out;  /**< sent */
    size_t queued;       /**< bytes in its write queue */
} tc_sock_info_t;

/** Flags of tc_sock_info_t. */
enum {
    TC_REG_FLAG_STREAMING = 0x1, /**< serving a long-lived stream (MJPEG, SSE, WebSocket) */
    TC_REG_FLAG_PAUSED = 0x2,    /**< reading paused by backpressure */
    TC_REG_FLAG_BUSY = 0x4,      /**< a request is in flight (head complete, not yet answered): not evicted by
                                      TC_FULL_EVICT_IDLE */
};

/**
 * @brief The name of a role: "tcp", "listener", "client", "echo", "http", "ws", "sse", "stream", "dns", "external".
 * Thread-safe.
 * @param role  a tc_role_t
 * @return a static string ("?" for an unknown value)
 */
const char *tc_role_name(unsigned role);

/**
 * @brief The name of a kind: "listener", "accepted", "client", "udp", "external". Thread-safe.
 * @param kind  a tc_kind_t
 * @return a static string ("?" for an unknown value)
 */
const char *tc_kind_name(unsigned kind);

/**
 * @brief The name of a state: "listening", "connecting", "open", "closing". Thread-safe.
 * @param state  a tc_state_t
 * @return a static string ("?" for an unknown value)
 */
const char *tc_state_name(unsigned state);

/**
 * @brief Whether a role is a long-lived session (WebSocket, SSE, stream): exempt from the keep-alive idle timeout
 * (each has its own liveness check) and to be spared by admission policies. Thread-safe.
 * @return 1 or 0
 */
int tc_role_is_long_lived(unsigned role);

/**
 * How the loop's TCP connections ended, since the loop was made. Server-initiated closes send FIN at once and drain
 * the peer until its FIN (RFC 9112 9.6), or close at once where the peer announced its own close and TIME-WAIT is
 * harmless (tc_tcp.h); the TIME-WAIT this leaves is freed where it harms (lwIP, seed 001).
 */
typedef struct {
    uint32_t fin_first;        /**< closes this side began with its FIN (graceful, after flushing) */
    uint32_t peer_first;       /**< connections whose peer sent its FIN first (no TIME-WAIT on this side) */
    uint32_t reset_sent;       /**< connections ended with an RST from this side (abort, deadline, eviction, and
                                    newcomers refused when full or out of memory) */
    uint32_t reset_received;   /**< connections the peer reset (or that broke) */
    uint32_t time_wait_reaped; /**< of fin_first: TIME-WAIT pcbs freed once both FINs were exchanged (lwIP) */
    uint32_t time_wait_kept;   /**< of fin_first: TIME-WAIT left to the stack (Linux handles port reuse; lwIP only
                                    when asked to keep it, or our FIN stayed unacknowledged) */
} tc_close_stats_t;

/** @brief Copy the loop's close counters. Loop thread only. */
void tc_registry_close_stats(const tc_loop_t *loop, tc_close_stats_t *out);

/** @brief Visitor for tc_registry_foreach(); return nonzero to stop early. */
typedef int (*tc_registry_cb)(const tc_sock_info_t *info, void *user);

/** @brief Number of tracked sockets of the loop. Loop thread only. */
uint32_t tc_registry_count(const tc_loop_t *loop);

/**
 * @brief Visit every tracked socket, oldest first. Loop thread only; cb must not open or close sockets.
 * @return the number visited
 */
uint32_t tc_registry_foreach(const tc_loop_t *loop, tc_registry_cb cb, void *user);

/**
 * @brief Copy up to cap entries into out (oldest first).
 * @return the number of tracked sockets (may exceed cap: call again with a bigger array)
 */
uint32_t tc_registry_snapshot(const tc_loop_t *loop, tc_sock_info_t *out, uint32_t cap);

#ifdef __cplusplus
}
#endif
