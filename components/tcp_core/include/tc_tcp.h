/*
 * tc_tcp.h - TCP servers, clients and their connections on a tc_loop: bounded write queues with backpressure, idle
 * timeouts, close policies that keep TIME-WAIT off the device, and a stop with a deadline.
 *
 * Events reach one callback per server or client, owner (the connection) first and user last:
 *
 * | event            | meaning                                                  | data, len                         |
 * |------------------|----------------------------------------------------------|-----------------------------------|
 * | TC_EV_OPEN       | connection established (accepted, or client connected)  | NULL, 0 or TC_OPEN_OVER_LIMIT     |
 * | TC_EV_DATA       | bytes arrived                                            | the bytes (valid during the call) |
 * | TC_EV_DRAINED    | write queue fell from above low water to at/below it     | NULL, queued bytes left           |
 * | TC_EV_SHUTDOWN   | the server is stopping: say goodbye, close or be closed  | NULL, ms left to the deadline     |
 * | TC_EV_CLOSE      | connection is gone; the last event, exactly once         | NULL, tc_close_reason_t           |
 *
 * Close is a request: tc_conn_close() sets a state and the loop does the work after dispatch, in one place.
 *
 * Close policies and TIME-WAIT. The side that sends the first FIN keeps the TIME-WAIT state for 2 x MSL. On lwIP a
 * TIME-WAIT pcb ignores the RST of a client that reuses its source port (RFC 1337), so a server that closes first and
 * keeps TIME-WAIT stalls browsers ("stops answering after a minute", seed 001). TC_CLOSE_GRACEFUL (the default) is the
 * lingering close of RFC 9112 9.6: flush, send FIN at once (a client reading to EOF has its answer), read and discard
 * until the peer's FIN (closing with unread input would answer RST and could destroy the answer), then free this side's
 * TIME-WAIT pcb (the backend's reaping close: lwIP frees a TIME-WAIT pcb without sending anything); a peer that has not
 * closed by linger_ms is reset. A graceful close needs no lingering when the peer itself announced that it sends
 * nothing more (an HTTP request that said Connection: close, or HTTP/1.0 without keep-alive, read whole, with no byte
 * after it and no body left unread) and the stack keeps a harmless TIME-WAIT (the backend says so: Linux answers a
 * SYN on a port in TIME-WAIT, RFC 6191; lwIP does not, RFC 1337): the socket is then closed at once once the queue
 * is handed to the stack (FIN after the answer), as nginx does, and its TIME-WAIT stays with the kernel. On lwIP
 * these closes linger like every other, so that no TIME-WAIT pcb stays on the device. Any byte that arrives after
 * such a request, a read that filled the buffer, or another close policy keeps the lingering close.
 * TC_CLOSE_PEER_FIRST waits for the peer's FIN before sending anything. TC_CLOSE_ABORT
 * sends RST at once (the backend's abort: a real RST on every backend, not lwIP's SO_LINGER {1, 0}, which sends FIN
 * when everything was acknowledged). tc_registry_close_stats() counts how connections ended.
 *
 * Example:
 *     tc_server_config_t cfg = TC_SERVER_DEFAULT_CONFIG();
 *     cfg.port = 3333; cfg.cb = tc_echo_cb;
 *     tc_server_start(loop, &cfg, &srv);
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tc_config.h"
#include "tc_addr.h"
#include "tc_loop.h"
#include "tc_backend.h"
#include "tc_handle.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_conn tc_conn_t;     /**< opaque connection */
typedef struct tc_server tc_server_t; /**< opaque TCP server; a handle (tc_server_handle()) */
typedef struct tc_client tc_client_t; /**< opaque reconnecting TCP client; a handle (tc_client_handle()) */

/** Connection events (see the table at the top of this header). */
typedef enum {
    TC_EV_OPEN = 1,
    TC_EV_DATA,
    TC_EV_DRAINED,
    TC_EV_SHUTDOWN,
    TC_EV_CLOSE,
} tc_event_t;

/** How a connection is closed. */
typedef enum {
    TC_CLOSE_GRACEFUL = 0, /**< the default: flush, FIN at once, discard input until the peer's FIN (linger_ms,
                                then RST), then free this side's TIME-WAIT where it harms (lwIP) */
    TC_CLOSE_PEER_FIRST,   /**< flush, wait for the peer's FIN up to linger_ms, then close; RST at the deadline. Only
                                for peers known to close by themselves: one reading to EOF gets an RST instead */
    TC_CLOSE_ABORT,        /**< RST now, drop the queue */
} tc_close_policy_t;

/** What a full server (max_conns reached) does with a new connection. */
typedef enum {
    TC_FULL_EVICT_LRU = 0, /**< abort the least recently active connection and accept (esp_http_server's LRU purge) */
    TC_FULL_REFUSE,        /**< accept and abort the new one at once (the client sees RST, not a hang) */
    TC_FULL_EVICT_IDLE,    /**< protect live sessions: abort the least recently active connection that is neither a
                                long-lived session (tc_role_is_long_lived(): WebSocket, SSE, stream) nor busy
                                (TC_REG_FLAG_BUSY: a request in flight, e.g. an upload), i.e. idle keep-alive
                                connections and ones that have not completed a request head. When there is none the
                                newcomer is refused with RST, or, within overflow_max, accepted with TC_EV_OPEN's len
                                TC_OPEN_OVER_LIMIT so the owner tells it to come back (HTTP: 503 + Retry-After); with
                                every overflow slot taken, newcomers wait in the stack's backlog until one is free */
} tc_full_policy_t;

/** TC_EV_OPEN's len for a newcomer accepted over max_conns (TC_FULL_EVICT_IDLE with overflow_max): answer briefly
 * and close it; it holds no slot. 0 for every other connection. */
#define TC_OPEN_OVER_LIMIT 1

/** Why a connection closed (len of TC_EV_CLOSE). */
typedef enum {
    TC_REASON_LOCAL = 1,  /**< this side asked (tc_conn_close()) and the close completed */
    TC_REASON_PEER,       /**< the peer closed (FIN) */
    TC_REASON_RESET,      /**< the peer reset the connection, or a send failed */
    TC_REASON_IDLE,       /**< idle timeout */
    TC_REASON_EVICTED,    /**< evicted to make room (TC_FULL_EVICT_LRU, TC_FULL_EVICT_IDLE) */
    TC_REASON_REFUSED,    /**< refused because the server was full (TC_FULL_REFUSE) */
    TC_REASON_STOP,       /**< closed gracefully during a stop */
    TC_REASON_FORCED,     /**< aborted at a stop's deadline */
    TC_REASON_LINGER,     /**< the peer did not close by the linger deadline: aborted (no TIME-WAIT) */
    TC_REASON_CONNECT,    /**< client: connect failed or timed out (never opened) */
    TC_REASON_NOMEM,      /**< out of memory or write queue limit */
} tc_close_reason_t;

/**
 * @brief The name of a close reason: "local", "peer", "reset", "idle", "evicted", "refused", "stop", "forced",
 * "linger", "connect", "nomem". Thread-safe.
 * @param reason  a tc_close_reason_t
 * @return a static string ("?" for an unknown value)
 */
const char *tc_close_reason_name(unsigned reason);

/**
 * @brief The one callback of a server or client. Owner (connection) first, user last.
 * @param conn  the connection
 * @param ev    the event
 * @param data  event data (bytes for TC_EV_DATA, valid only during the call), else NULL
 * @param len   byte count, or the number the table above gives
 * @param user  the config's user pointer
 */
typedef void (*tc_conn_cb)(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user);

/** Settings shared by servers and clients for their connections. */
typedef struct {
    size_t high_water;       /**< stop reading above this many queued output bytes */
    size_t low_water;        /**< resume reading (TC_EV_DRAINED) at or below this */
    size_t queue_max;        /**< tc_conn_send() refuses past this (TC_ELIMIT); tc_conn_sendv() lets one larger
                                  message through when the queue is at or below low_water */
    uint32_t idle_timeout_ms; /**< close after this long without traffic (0 = never); RST under peer-first. A
                                   server's check runs when its next connection can time out, never while it has
                                   none: an idle server does not wake its loop */
    tc_close_policy_t close_policy; /**< policy for closes this side starts (idle, stop, tc_conn_close default) */
    uint32_t linger_ms;      /**< flush / wait-for-peer deadline of graceful and peer-first closes; it starts over
                              *   while the peer acknowledges bytes, and a close whose bytes the stack is still
                              *   retransmitting waits up to 8 x linger_ms from the peer's last sign of life */
    bool nodelay;            /**< TCP_NODELAY (true: small writes leave at once) */
    int keepalive_s;         /**< TCP keepalive idle seconds, 0 = off */
    bool keep_time_wait;     /**< true: leave the TIME-WAIT of a close this side began to the stack (the naive
                                  server of seed 001, for tests and benchmarks); false (default): free it on lwIP */
} tc_conn_config_t;

/* The connection settings with a given keepalive: servers' connections have none by default (an idle timeout finds
 * their vanished peers), a client's has TC_CFG_CLIENT_KEEPALIVE_S. */
#define TC__CONN_CONFIG(keepalive)                                                                            \
    {                                                                                                         \
        .high_water = TC_CFG_WRITE_HIGH_WATER, .low_water = TC_CFG_WRITE_LOW_WATER,                             \
        .queue_max = TC_CFG_WRITE_QUEUE_MAX, .idle_timeout_ms = TC_CFG_IDLE_TIMEOUT_MS,                         \
        .close_policy = (tc_close_policy_t)TC_CFG_CLOSE_POLICY, .linger_ms = TC_CFG_LINGER_MS, .nodelay = true, \
        .keepalive_s = (keepalive),                                                                           \
        .keep_time_wait = false,                                                                              \
    }

/** Default connection settings of a server (keepalive off). */
#define TC_CONN_DEFAULT_CONFIG() TC__CONN_CONFIG(0)

/** TCP server settings; start from TC_SERVER_DEFAULT_CONFIG(). */
typedef struct {
    const char *host;             /**< numeric listen address: "0.0.0.0", "::", "127.0.0.1" */
    uint16_t port;                /**< 0 picks a free port (tc_server_port() tells which) */
    int backlog;                  /**< listen backlog */
    bool v6only;                  /**< for "::": refuse IPv4-mapped peers */
    uint32_t max_conns;           /**< open connections at most */
    tc_full_policy_t when_full;   /**< evict or refuse at max_conns */
    uint32_t overflow_max;        /**< TC_FULL_EVICT_IDLE: connections accepted beyond max_conns only to be told to
                                       come back later (TC_OPEN_OVER_LIMIT), those still closing included; 0 = RST */
    tc_conn_config_t conn;        /**< per-connection settings */
    const char *name;             /**< label shown by the registry, e.g. "echo" (not copied: keep it alive) */
    tc_conn_cb cb;                /**< event callback (required) */
    void *user;                   /**< passed to cb */
} tc_server_config_t;

#define TC_SERVER_DEFAULT_CONFIG()                                                                   \
    {                                                                                                \
        .host = "0.0.0.0", .port = 0, .backlog = TC_CFG_BACKLOG, .v6only = false,                    \
        .max_conns = TC_CFG_MAX_CONNS, .when_full = TC_FULL_EVICT_LRU, .overflow_max = 0,               \
        .conn = TC_CONN_DEFAULT_CONFIG(), .name = "tcp", .cb = NULL, .user = NULL,                   \
    }

/** Reconnecting TCP client settings; start from TC_CLIENT_DEFAULT_CONFIG(). */
typedef struct {
    const char *host;             /**< name or numeric address (copied) */
    uint16_t port;                /**< destination port; 0 is refused (TC_EBADPORT) */
    uint32_t connect_timeout_ms;  /**< per attempt */
    bool reconnect;               /**< reconnect after a close or a failed attempt */
    uint32_t backoff_initial_ms;  /**< first retry delay; doubles each failure */
    uint32_t backoff_max_ms;      /**< cap of the delay */
    uint8_t jitter_pct;           /**< each delay is reduced by a random 0..jitter_pct percent */
    uint32_t max_attempts;        /**< consecutive failed attempts before giving up, 0 = never */
    uint32_t stable_ms;           /**< a session that the peer ends (FIN or RST) sooner than this after it opened
                                       is a failed attempt too: the backoff keeps growing and max_attempts counts
                                       it, so a peer that accepts and drops at once is not hammered; a longer
                                       session, or one this side closes, starts the backoff over. 0: every session
                                       that opened starts it over */
    const char *nameserver;       /**< numeric address of the DNS server that resolves host (copied), NULL: the
                                       platform's (host: /etc/resolv.conf, chip: lwIP's), with the system resolver
                                       as a fallback; given: only it is asked, over UDP through the loop */
    uint16_t nameserver_port;     /**< its UDP port, 0 = 53 */
    tc_conn_config_t conn;        /**< per-connection settings; keepalive is on by default (TC_CFG_CLIENT_KEEPALIVE_S,
                                       60 s): a peer gone without a FIN is found and the client reconnects, even
                                       when it sends nothing of its own */
    const char *name;             /**< registry label (not copied) */
    tc_conn_cb cb;                /**< event callback (required) */
    void *user;                   /**< passed to cb */
} tc_client_config_t;

#define TC_CLIENT_DEFAULT_CONFIG()                                                                       \
    {                                                                                                    \
        .host = NULL, .port = 0, .connect_timeout_ms = TC_CFG_CONNECT_TIMEOUT_MS, .reconnect = true,     \
        .backoff_initial_ms = TC_CFG_BACKOFF_INITIAL_MS, .backoff_max_ms = TC_CFG_BACKOFF_MAX_MS,        \
        .jitter_pct = 20, .max_attempts = 0, .stable_ms = TC_CFG_CLIENT_STABLE_MS, .nameserver = NULL,    \
        .nameserver_port = 0,                                                                            \
        .conn = TC__CONN_CONFIG(TC_CFG_CLIENT_KEEPALIVE_S), .name = "client", .cb = NULL, .user = NULL,  \
    }

/* ---- servers ---- */

/**
 * @brief Bind, listen and start accepting. Loop thread only.
 * @param loop  the loop
 * @param cfg   settings (copied; name and user are kept as pointers)
 * @param out   receives the server
 * @return TC_OK, TC_EINVAL (NULL cb, bad config), TC_EBADADDR (host not numeric), TC_EADDRINUSE, TC_EACCES
 *         (privileged port), TC_EADDRNOTAVAIL (address not on this host), TC_ENOMEM, TC_EMFILE
 */
int tc_server_start(tc_loop_t *loop, const tc_server_config_t *cfg, tc_server_t **out);

/** @brief The bound port (useful with port 0). */
uint16_t tc_server_port(const tc_server_t *server);

/** @brief Open connections of the server. */
uint32_t tc_server_conn_count(const tc_server_t *server);

/**
 * @brief The server as a handle, to stop it: tc_handle_stop() closes the listener, sends TC_EV_SHUTDOWN to each
 * connection, closes those the handler left open with the server's close policy (tc_conn_hold() keeps one open to
 * finish its work) and aborts what is left at the deadline; the report counts connections closed gracefully and
 * forced. The server is freed before the stop's callback runs.
 * @param server  the server (NULL gives NULL)
 * @return its handle, valid until the stop completes
 */
tc_handle_t *tc_server_handle(tc_server_t *server);

/* ---- clients ---- */

/**
 * @brief Start a client: resolve, connect with a timeout and reconnect with exponential backoff and jitter.
 *
 * Numeric addresses are used directly; "localhost" is 127.0.0.1. Other names are asked of a nameserver over UDP
 * through the loop at each attempt (the DNS codec of tc_dns.h; connect_timeout_ms bounds the question, three tries,
 * A then AAAA), so the loop never blocks and no thread is started; without cfg->nameserver a name the UDP path cannot
 * answer goes to the system resolver on the process's one fallback worker (tc_resolver_stats()). A failed resolution
 * is a failed attempt: tc_client_stats() last_error TC_ENOTFOUND (NXDOMAIN, no address), TC_ETIMEDOUT (no answer),
 * TC_ERESOLVE (server failure, no nameserver known, or its port is closed: ICMP port unreachable, at once on Linux;
 * lwIP drops ICMP errors, so there TC_ETIMEDOUT), TC_ELIMIT (fallback queue full). Connection failures arrive as
 * TC_EV_CLOSE with TC_REASON_CONNECT on a connection that never opened. Loop thread only.
 * @return TC_OK, TC_EINVAL (NULL host or cb), TC_EBADPORT (port 0: never dial port 0), TC_EBADNAME (host neither a
 *         numeric address nor a name a question can carry: empty, over 253 bytes, a label empty or over 63 bytes),
 *         TC_EBADADDR (a nameserver that is not a numeric address), TC_ENOMEM
 */
int tc_client_start(tc_loop_t *loop, const tc_client_config_t *cfg, tc_client_t **out);

/** @brief The client's open connection, or NULL while connecting or waiting to retry. */
tc_conn_t *tc_client_conn(const tc_client_t *client);

/** Client counters. */
typedef struct {
    uint32_t attempts;          /**< connect attempts */
    uint32_t connects;          /**< successful connects */
    uint32_t failures;          /**< consecutive failed attempts now */
    int last_error;             /**< tc_err_t of the last failure, 0 if none */
    uint32_t last_delay_ms;     /**< the last backoff delay chosen */
} tc_client_stats_t;

/** @brief Copy the client's counters. */
void tc_client_stats(const tc_client_t *client, tc_client_stats_t *out);

/**
 * @brief The client as a handle, to stop it: tc_handle_stop() ends reconnects and any resolution in flight, closes
 * the connection with the client's close policy and resets it if it is still there at the deadline (at once with
 * deadline 0); the report's graceful or forced is 1 when a connection was open. Freed before the stop's callback.
 * @param client  the client (NULL gives NULL)
 * @return its handle, valid until the stop completes
 */
tc_handle_t *tc_client_handle(tc_client_t *client);

/**
 * @brief Shorthand of tc_handle_stop(tc_client_handle(client), linger_ms, NULL, NULL): close with the client's policy,
 * bounded by its linger time, no callback.
 * @return TC_OK, TC_EINVAL (NULL), TC_ECLOSED when already stopping
 */
int tc_client_stop(tc_client_t *client);

/** Name resolution counters of the process (every loop). */
typedef struct {
    uint64_t udp_queries;     /**< DNS questions sent over UDP (retries included) */
    uint64_t udp_answers;     /**< answers to them received */
    uint64_t fallbacks;       /**< names handed to the system resolver */
    uint64_t threads_started; /**< fallback worker threads started (one runs at a time, while it has work) */
    uint32_t worker_running;  /**< 1 while the fallback worker is alive */
} tc_resolver_stats_t;

/**
 * @brief Copy the name resolution counters. Thread-safe.
 * @param out  receives the counters; must not be NULL
 */
void tc_resolver_stats(tc_resolver_stats_t *out);

/* ---- connections ---- */

/**
 * @brief Send bytes: written at once if the socket takes them, the rest is copied to the bounded write queue.
 *
 * Above high_water the connection stops reading until the queue falls to low_water (TC_EV_DRAINED). The limit
 * applies once something is queued: with an empty queue a write of any size is taken (memory is then bounded by
 * that one write), so a message larger than queue_max is never refused for good.
 * @return TC_OK, TC_ELIMIT (the queue holds bytes and queue_max would be exceeded; nothing queued), TC_ECLOSED
 *         (closing), TC_EINVAL (NULL conn, or NULL data with a length), TC_ENOMEM
 */
int tc_conn_send(tc_conn_t *conn, const void *data, size_t len);

/** One piece of a tc_conn_sendv() message. */
typedef struct {
    const void *data; /**< bytes (may be NULL when len is 0) */
    size_t len;       /**< byte count */
} tc_buf_t;

/**
 * @brief Send a message made of pieces (a chunk header, a frame, its trailer) whole or not at all: a stream is never
 * left with half a frame on the wire. Loop thread only; the pieces are copied as needed before it returns.
 *
 * The queue limit applies to the whole message, with one exception that lets large messages through: a message
 * beyond queue_max is accepted when the queue holds at most low_water bytes (memory is then bounded by
 * low_water + one message). Wait for TC_EV_DRAINED after TC_ELIMIT, and send it again.
 * @return TC_OK, TC_ELIMIT (nothing queued), TC_ECLOSED (closing), TC_EINVAL (NULL data with a length, or a total
 *         that overflows size_t), TC_ENOMEM (nothing queued; or, when part of the message was already written, the
 *         connection is aborted so the peer never sees a gap), or a send error (the connection is closing)
 */
int tc_conn_sendv(tc_conn_t *conn, const tc_buf_t *bufs, size_t n);

/** @brief Bytes waiting in the write queue. */
size_t tc_conn_queued(const tc_conn_t *conn);

/**
 * @brief Ask to close (see "Close is a request" above); safe more than once and inside any callback.
 * @param how  policy; the connection's configured policy is in tc_conn_config_t.close_policy
 * @return TC_OK, TC_ECLOSED when already closed, TC_EINVAL (NULL conn, or how not a tc_close_policy_t)
 */
int tc_conn_close(tc_conn_t *conn, tc_close_policy_t how);

/**
 * @brief Close with the connection's configured policy.
 * @return TC_OK, TC_ECLOSED when already closed, TC_EINVAL (NULL conn)
 */
int tc_conn_close_default(tc_conn_t *conn);

/**
 * @brief During TC_EV_SHUTDOWN: keep this connection open to finish in-flight work (an HTTP request being answered,
 * a WebSocket close handshake). The holder closes it later; the stop's deadline aborts it if it does not.
 */
void tc_conn_hold(tc_conn_t *conn);

/** @brief Stop (0) or resume (1) reading from the peer, e.g. while a handler waits for its own output to drain. */
void tc_conn_set_reading(tc_conn_t *conn, int on);

/** @brief The connection's per-connection pointer (NULL until set). */
void *tc_conn_data(const tc_conn_t *conn);

/** @brief Set the per-connection pointer (the owner frees what it points to, at TC_EV_CLOSE). */
void tc_conn_set_data(tc_conn_t *conn, void *data);

/**
 * @brief Set the connection's registry role (tc_role_t, tc_registry.h): what it is for now. Loop thread only. The
 * server's idle timeout skips long-lived roles (tc_role_is_long_lived()), whose owner checks liveness itself.
 * @param conn  the connection (NULL is ignored)
 * @param role  a tc_role_t; out-of-range values are ignored
 */
void tc_conn_set_role(tc_conn_t *conn, unsigned role);

/** @brief The connection's registry role (tc_role_t). */
unsigned tc_conn_role(const tc_conn_t *conn);

/** @brief The connection's registry id (unique per loop). */
uint32_t tc_conn_id(const tc_conn_t *conn);

/** @brief The backend descriptor (for diagnostics). */
int tc_conn_fd(const tc_conn_t *conn);

/** @brief The peer's address. */
const tc_addr_t *tc_conn_peer(const tc_conn_t *conn);

/** @brief The loop the connection belongs to. */
tc_loop_t *tc_conn_loop(const tc_conn_t *conn);

/** @brief 1 while the connection is closing or closed, else 0. */
int tc_conn_is_closing(const tc_conn_t *conn);

/**
 * @brief A C handler that echoes every byte back, with backpressure (usable as cfg.cb; user is ignored). It is
 * the device's echo service and keeps Python out of the data path.
 */
void tc_echo_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user);

#ifdef __cplusplus
}
#endif
