/*
 * tc_dns_server.h - the captive portal's DNS responder: a UDP socket on the tcp_core loop that answers every name
 * with the device's address (policy in tc_dns.h), so a phone on the soft-AP reaches the device whatever it asks for.
 *
 * Behaviour on the wire (what a dnspython test can rely on):
 *   - It is bound to cfg.bind_ip:cfg.port only (not the wildcard unless bind_ip is "0.0.0.0"), so it answers only
 *     datagrams sent to that address; each answer goes back to the query's source address and port (from the bound
 *     address; on 0.0.0.0 the kernel picks the source). UDP only, no TCP port: answers always fit, TC is never set.
 *   - Answers follow the table in tc_dns.h: A and ANY in class IN get one A record with cfg.answer_ip (or an
 *     override's address) and TTL cfg.ttl_s; AAAA and every other type get NOERROR with no record; another class or
 *     opcode gets NOTIMP; QDCOUNT other than 1 or a malformed question gets FORMERR; datagrams shorter than 12 bytes
 *     and responses (QR set) get nothing at all. AA is set, RA is not.
 *   - EDNS (RFC 6891): a query with one OPT record gets the responder's OPT back (payload size 512, version 0, DO
 *     clear, no options); EDNS version 1 or later gets BADVERS, two OPT records or one not owned by the root FORMERR.
 *   - A datagram longer than 512 bytes is read as its first 512 (RFC 1035 4.2.1); its question is still answered.
 *   - At most 32 datagrams are handled per loop iteration, so a flood cannot starve the TCP connections.
 *   - It shows in the registry (tc_registry.h) as one TC_KIND_UDP entry, state TC_STATE_LISTENING, owner "dns",
 *     local = the bound address, with bytes_in / bytes_out / idle time.
 *
 * Example:
 *     tc_dns_server_config_t cfg = TC_DNS_SERVER_DEFAULT_CONFIG();
 *     cfg.bind_ip = "192.168.4.1"; cfg.port = 53;      // answer_ip NULL: answer with bind_ip
 *     tc_dns_server_start(loop, &cfg, &dns);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_dns.h"
#include "tc_handle.h"
#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_dns_server tc_dns_server_t; /**< opaque responder */

/** Responder settings; start from TC_DNS_SERVER_DEFAULT_CONFIG(). Read only during tc_dns_server_start(). */
typedef struct {
    const char *bind_ip;                /**< numeric IPv4 address to listen on (the device's, or 127.0.0.1) */
    uint16_t port;                      /**< 53 on the device; 0 picks a free port (see tc_dns_server_port()) */
    const char *answer_ip;              /**< numeric IPv4 every A query resolves to; NULL = bind_ip */
    uint32_t ttl_s;                     /**< TTL of the A records, seconds */
    const tc_dns_override_t *overrides; /**< names that resolve elsewhere, consulted first (copied); may be NULL */
    size_t noverrides;                  /**< entries in overrides */
} tc_dns_server_config_t;

/** Defaults: 127.0.0.1:5353 (a host test needs no privilege), answers with the bind address, TTL 60 s. */
#define TC_DNS_SERVER_DEFAULT_CONFIG()                                                                                 \
    {                                                                                                                  \
        .bind_ip = "127.0.0.1", .port = 5353, .answer_ip = NULL, .ttl_s = 60, .overrides = NULL, .noverrides = 0,      \
    }

/** Counters since start; every received datagram is counted in queries and in exactly one of answered / dropped. */
typedef struct {
    uint32_t queries;  /**< datagrams received */
    uint32_t answered; /**< answers sent (NOERROR, NOTIMP and FORMERR alike) */
    uint32_t dropped;  /**< not answered: shorter than a header, responses (QR set), or the send failed */
    uint32_t formerr;  /**< of the answered ones, those with rcode FORMERR */
} tc_dns_server_stats_t;

/**
 * @brief Bind a UDP socket and start answering on the loop.
 *
 * Loop thread only (from another thread: tc_loop_post()). The responder is a handle of the loop: tc_loop_free()
 * says TC_EBUSY until tc_dns_server_stop(). Its memory (the responder, the copied overrides) comes from tc_alloc.h.
 * @param loop  the loop that will run it
 * @param cfg   settings, copied (override names included): the caller may free them after the call
 * @param out   receives the responder on success; untouched on failure
 * @return TC_OK;
 *         TC_EINVAL (loop, cfg, out or bind_ip NULL, or an override with a NULL name or noverrides with no table);
 *         TC_EBADADDR (bind_ip or answer_ip not a numeric IPv4 address, or an answer address of 0.0.0.0);
 *         TC_EADDRINUSE, TC_EACCES (port below 1024 without privilege), TC_EADDRNOTAVAIL (not a local address);
 *         TC_ENOMEM, TC_EMFILE (no socket left)
 */
int tc_dns_server_start(tc_loop_t *loop, const tc_dns_server_config_t *cfg, tc_dns_server_t **out);

/**
 * @brief The bound port (the one picked when cfg.port was 0). Loop thread, or any thread while the loop is idle.
 * @param dns  a started responder
 * @return the port, host order
 */
uint16_t tc_dns_server_port(const tc_dns_server_t *dns);

/**
 * @brief Copy the counters. Loop thread only (they are updated by the loop without locks).
 * @param dns  a started responder
 * @param out  receives the counters
 */
void tc_dns_server_stats(const tc_dns_server_t *dns, tc_dns_server_stats_t *out);

/**
 * @brief The responder as a handle (tc_handle.h). Its stop is synchronous whatever the deadline: it stops answering,
 * closes the socket, frees the responder and calls the stop's callback inside tc_handle_stop() (UDP has nothing to
 * drain: a query not yet read is simply never answered). Not from inside the responder's own processing.
 * @param dns  the responder (NULL gives NULL)
 * @return its handle, valid until the stop
 */
tc_handle_t *tc_dns_server_handle(tc_dns_server_t *dns);

/**
 * @brief Shorthand of tc_handle_stop(tc_dns_server_handle(dns), 0, NULL, NULL). Loop thread only.
 * @param dns  the responder, may be NULL (nothing done); invalid afterwards
 */
void tc_dns_server_stop(tc_dns_server_t *dns);

#ifdef __cplusplus
}
#endif
