/*
 * tc_err.h - the error codes of tcp_core, defined once: one X-macro gives the enum, the names and the messages.
 *
 * Every tcp_core function that can fail returns 0 (or a non-negative count) on success and a negative tc_err_t on
 * failure. The ESP glue turns these into esp_err_t (tc_esp_err()); Python raises typed exceptions named after them.
 */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, value, message). Values are negative and stable: Python and the ESP glue map them by value. */
#define TC_ERR_MAP(X)                                                                      \
    X(INVAL, -1, "invalid argument")                                                       \
    X(NOMEM, -2, "out of memory (tcp_core allocation hook refused)")                       \
    X(ADDRINUSE, -3, "address already in use")                                             \
    X(ADDRNOTAVAIL, -4, "address not available on this host")                              \
    X(BADADDR, -5, "malformed address (a numeric IPv4/IPv6 address is needed; names are not resolved here)") \
    X(BADPORT, -6, "port 0 is not a destination port (a URI without an explicit port?)") \
    X(RESOLVE, -7, "name resolution failed")                                               \
    X(CONNREFUSED, -8, "connection refused: nothing listens there")                        \
    X(CONNRESET, -9, "connection reset by peer")                                           \
    X(TIMEDOUT, -10, "timed out")                                                          \
    X(AGAIN, -11, "operation would block")                                                 \
    X(INPROGRESS, -12, "operation in progress")                                            \
    X(LIMIT, -13, "limit reached")                                                         \
    X(CLOSED, -14, "handle is closing or closed")                                          \
    X(BUSY, -15, "resource busy")                                                          \
    X(NOTFOUND, -16, "not found")                                                          \
    X(UNREACH, -17, "network unreachable")                                                 \
    X(PIPE, -18, "broken pipe: the peer is gone")                                          \
    X(NOSYS, -19, "not supported by this backend")                                         \
    X(PROTO, -20, "protocol error")                                                        \
    X(TOOBIG, -21, "message too big")                                                      \
    X(IO, -22, "I/O error")                                                                \
    X(MFILE, -23, "too many open sockets")                                                 \
    X(ACCES, -24, "permission denied")                                                     \
    X(BADNAME, -25, "not a host name (empty, over 253 bytes, or a label empty or over 63 bytes)")

/** Error codes: TC_OK is 0, every error is negative. */
typedef enum {
    TC_OK = 0,
#define TC_ERR_ENUM_(name, value, msg) TC_E##name = (value),
    TC_ERR_MAP(TC_ERR_ENUM_)
#undef TC_ERR_ENUM_
} tc_err_t;

/**
 * @brief Short upper-case name of an error code, e.g. "ADDRINUSE"; "OK" for 0.
 *
 * Thread-safe; the string is static. An unknown code gives "UNKNOWN".
 * @param err  a tc_err_t value (or any int)
 * @return a static NUL-terminated string, never NULL
 */
const char *tc_err_name(int err);

/**
 * @brief Human-readable message of an error code, e.g. "address already in use".
 *
 * Thread-safe; the string is static. An unknown code gives "unknown error".
 * @param err  a tc_err_t value (or any int)
 * @return a static NUL-terminated string, never NULL
 */
const char *tc_strerror(int err);

#ifdef __cplusplus
}
#endif
