/*
 * tc_addr.h - socket addresses (tc_addr_t) and their parsing and printing, without any socket header.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Address family of a tc_addr_t. */
typedef enum {
    TC_AF_UNSPEC = 0,
    TC_AF_INET = 4,
    TC_AF_INET6 = 6,
} tc_af_t;

/** A socket address, independent of any socket header. */
typedef struct {
    uint8_t family;    /**< tc_af_t */
    uint8_t ip[16];    /**< IPv4 in ip[0..3], IPv6 in ip[0..15], network byte order */
    uint16_t port;     /**< host byte order */
    uint32_t scope_id; /**< IPv6 scope (interface index), 0 otherwise */
} tc_addr_t;

/** Longest text tc_addr_format() writes, with its NUL: "[ffff:...:ffff%4294967295]:65535". */
#define TC_ADDR_STRLEN 64

/**
 * @brief Parse a numeric IPv4 or IPv6 address (no brackets, no port) into out with the given port.
 *
 * Pure, thread-safe. Names are not resolved here (the TCP client resolves them).
 * @param ip    "192.168.4.1", "::1", "fe80::1%2" (numeric scope only)
 * @param port  port in host order
 * @param out   receives the address
 * @return TC_OK, TC_EBADADDR when ip is not a numeric address, TC_EINVAL on NULL arguments
 */
int tc_addr_from_ip(const char *ip, uint16_t port, tc_addr_t *out);

/**
 * @brief Split "host:port", "[v6]:port" or "host" into a host string and a port.
 *
 * Pure, thread-safe. A port of 0, a missing port without a default, or a port above 65535 is an error: a client
 * must never dial port 0 (the seed's `uri = http://...:0` bug).
 * @param text          input
 * @param default_port  port to use when text has none, 0 for "a port is required"
 * @param host          receives the host, NUL-terminated, brackets removed
 * @param host_cap      size of host
 * @param port          receives the port
 * @return TC_OK, TC_EBADPORT (0, missing, non-numeric or too large), TC_EBADADDR (empty host, bad brackets),
 *         TC_ELIMIT (host longer than host_cap - 1), TC_EINVAL (NULL text, host or port, or host_cap 0)
 */
int tc_addr_split(const char *text, uint16_t default_port, char *host, size_t host_cap, uint16_t *port);

/**
 * @brief Print an address as "1.2.3.4:80" or "[::1]:80" (port omitted when with_port is 0).
 * @param addr       the address
 * @param with_port  nonzero to append the port
 * @param buf        output buffer, TC_ADDR_STRLEN bytes suffice
 * @param cap        its size
 * @return the length written (without NUL), or TC_ELIMIT when cap is too small, TC_EINVAL for a bad family
 */
int tc_addr_format(const tc_addr_t *addr, int with_port, char *buf, size_t cap);

/** @brief 1 when the address is the unspecified address (0.0.0.0 or ::), else 0. */
int tc_addr_is_any(const tc_addr_t *addr);

#ifdef __cplusplus
}
#endif
