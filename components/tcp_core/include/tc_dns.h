/*
 * tc_dns.h - a pure DNS message codec: the parser and answer builder of the captive portal (seed 002), where every
 * name resolves to the device, and the query builder and response reader with which clients resolve names through
 * the loop (tc_tcp.h). No allocation; reads are bounds-checked against the datagram and names are decoded with
 * loop-proof compression handling (RFC 1035 4.1.4).
 *
 * Policy of tc_dns_answer(), the first matching row wins; "echoed": the question is copied byte for byte, QDCOUNT 1:
 *
 * | query                                   | answer                                                               |
 * |-----------------------------------------|----------------------------------------------------------------------|
 * | shorter than 12 bytes, or QR set        | dropped: nothing sent (two portals must not answer each other)       |
 * | opcode not QUERY, no readable question  | NOTIMP, header only (+ OPT, see EDNS)                                |
 * | QDCOUNT 0 (nothing to answer)           | FORMERR, header only (+ OPT, see EDNS)                               |
 * | QDCOUNT > 1 (RFC 9619)                  | FORMERR, header only (+ OPT, see EDNS)                               |
 * | malformed or truncated question         | FORMERR, header only                                                 |
 * | OPT records > 1 (RFC 6891 6.1.1)        | FORMERR, header only                                                 |
 * | an OPT owned by a name other than root  | FORMERR, header only                                                 |
 * | OPT VERSION > 0 (RFC 6891 6.1.3)        | BADVERS, echoed, no record (extended rcode 1 in the OPT, version 0)  |
 * | opcode not QUERY                        | NOTIMP, echoed                                                       |
 * | class other than IN (CH, HS, ANY...)    | NOTIMP, echoed, whatever the type                                    |
 * | A, class IN                             | NOERROR, echoed + one A record: the override's address or device's   |
 * | ANY, class IN                           | NOERROR, echoed + the same A record (RFC 8482: one representative)   |
 * | AAAA, class IN                          | NOERROR, echoed, no record (NODATA: the device has no IPv6)          |
 * | any other type (TXT, MX, CNAME...), IN  | NOERROR, echoed, no record (NODATA)                                  |
 *
 * Every answer: the query's id; flags QR=1, the query's opcode, AA=1, the query's RD, TC=RA=Z=AD=CD=0, the rcode;
 * ANCOUNT 0 or 1; NSCOUNT 0. The A record is 16 bytes: name C0 0C (a pointer to the question's name), TYPE A, CLASS
 * IN, the policy's TTL, RDLENGTH 4, the address.
 *
 * EDNS (RFC 6891): after the question, the query's answer, authority and additional records are read as far as they
 * are whole (a record cut short, or a malformed owner name, ends the reading; what follows is ignored); with QDCOUNT
 * 0 or above 1 they are read too when every question can be stepped over (a name, TYPE and CLASS each), so only a
 * malformed or cut-short question hides them. An OPT record (TYPE 41) among the additional ones makes every answer
 * end with the responder's own OPT, ARCOUNT 1 (RFC 6891 7: an OPT in the request, one in the response; header-only
 * NOTIMP and FORMERR answers too, then 23 bytes): owner root, CLASS = TC_DNS_EDNS_PAYLOAD, TTL = extended rcode (1
 * for BADVERS, else 0), version 0, flags 0 (DO clear: no DNSSEC here), RDLENGTH 0 (the query's options are skipped,
 * never echoed). Otherwise ARCOUNT is 0; the FORMERR for a bad OPT (two, or not the root's) carries none. Other
 * records of the query are ignored. The largest answer, 12 + 259 (question) + 16 +
 * 11 = 298 bytes, fits the 512 bytes any requester accepts (its OPT's payload size, read as 512 when lower), so
 * nothing is ever truncated; and a response is never larger than the query plus 16 bytes (an OPT only answers an
 * OPT): no amplification. Names match overrides ASCII case-insensitively, the question is echoed in its original
 * case (0x20 randomisation survives).
 *
 * Example:
 *     uint8_t out[512];                                                // every answer fits (298 bytes at most)
 *     int n = tc_dns_answer(query, qlen, &policy, out, sizeof(out));   // > 0: send n bytes; 0: drop
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Longest name on the wire (RFC 1035 2.3.4), and longest in dotted text with its NUL. */
#define TC_DNS_MAX_NAME_WIRE 255
#define TC_DNS_MAX_NAME_TEXT 254

/** Record types and classes used here. */
enum {
    TC_DNS_TYPE_A = 1,
    TC_DNS_TYPE_AAAA = 28,
    TC_DNS_TYPE_OPT = 41, /**< the EDNS pseudo-record (RFC 6891) */
    TC_DNS_TYPE_ANY = 255,
    TC_DNS_CLASS_IN = 1,
};

/** Response codes. */
enum {
    TC_DNS_RCODE_NOERROR = 0,
    TC_DNS_RCODE_FORMERR = 1,
    TC_DNS_RCODE_NOTIMP = 4,
    TC_DNS_RCODE_BADVERS = 16, /**< extended (RFC 6891 6.1.3): 0 in the header, 1 in the OPT's extended rcode */
};

/** The UDP payload size the responder's OPT announces: what it reads of a datagram (the first 512 bytes, RFC 1035
 * 4.2.1; its answers are at most 298 bytes, so a larger value would only promise to read queries it cuts). */
#define TC_DNS_EDNS_PAYLOAD 512

/** What the query's OPT record says (tc_dns_question_t.edns). */
enum {
    TC_DNS_EDNS_NONE = 0, /**< no OPT record (plain RFC 1035) */
    TC_DNS_EDNS_OK = 1,   /**< one OPT record, owned by the root */
    TC_DNS_EDNS_BAD = 2,  /**< two or more, or one with another owner (FORMERR) */
};

/** Parse results. */
enum {
    TC_DNS_EDROP = -1,   /**< not a query to answer at all: too short, or a response (QR set) */
    TC_DNS_EFORMAT = -2, /**< a query with a malformed or unsupported question section (FORMERR) */
    TC_DNS_ENOTIMP = -3, /**< an opcode other than QUERY (NOTIMP) */
    TC_DNS_ESPACE = -4,  /**< the output buffer is too small */
};

/** The question of a query, as tc_dns_parse_query() read it. */
typedef struct {
    uint16_t id;    /**< the query's id, copied into the answer */
    uint16_t flags; /**< the query's flags word (opcode and RD are copied into the answer) */
    /** Dotted, ASCII lower-cased, no trailing dot; "" for the root. Label bytes are copied unescaped (a label that
     * holds '.' reads ambiguously: good enough to match overrides, not to print; a NUL is refused). Valid when the
     * parse gave 0, or TC_DNS_ENOTIMP with question_end != 0; "" otherwise. */
    char name[TC_DNS_MAX_NAME_TEXT + 1];
    uint16_t qtype;      /**< QTYPE (TC_DNS_TYPE_*) */
    uint16_t qclass;     /**< QCLASS (TC_DNS_CLASS_IN) */
    size_t question_end; /**< offset just past the question in the query; 0 when no question was read */
    /** The records after the question, read as the policy above says, when the question was read or QDCOUNT is not
     * 1 and every question can be stepped over (else TC_DNS_EDNS_NONE, version 0, payload 512): */
    int edns;              /**< TC_DNS_EDNS_NONE, TC_DNS_EDNS_OK or TC_DNS_EDNS_BAD */
    uint8_t edns_version;  /**< the OPT's VERSION when edns is TC_DNS_EDNS_OK, else 0 */
    uint16_t edns_payload; /**< the requester's UDP payload size: the CLASS of its OPT when edns is TC_DNS_EDNS_OK and
                            * that is above 512, else 512 (RFC 6891 6.2.5) */
} tc_dns_question_t;

/** One name that resolves elsewhere (Windows online mode: dns.msftncsi.com -> 131.107.255.255). */
typedef struct {
    const char *name; /**< dotted, matched whole and ASCII case-insensitively, no trailing dot ("" = the root) */
    uint8_t ipv4[4];  /**< the address, network order */
} tc_dns_override_t;

/** What the answers say. */
typedef struct {
    uint8_t ipv4[4];                    /**< the device's address, network order: every other name resolves to it */
    uint32_t ttl_s;                     /**< TTL of A records (short, 60 s by default: the portal is not forever) */
    const tc_dns_override_t *overrides; /**< consulted first, in order (the first match wins); may be NULL */
    size_t noverrides;                  /**< entries in overrides (ignored when overrides is NULL) */
} tc_dns_policy_t;

/**
 * @brief Parse a query's header, its single question and its OPT record (EDNS, see the policy above).
 *
 * Pure: no allocation, no state; any thread. Reads only msg[0..len).
 * @param msg  the datagram; may be NULL (dropped)
 * @param len  its length
 * @param q    receives the header fields and the question (see tc_dns_question_t for what is valid when)
 * @return 0 (a QUERY with one well-formed question; an OPT record's problems are told in q->edns, not here),
 *         TC_DNS_EDROP (shorter than 12 bytes, NULL, or QR set: answer nothing),
 *         TC_DNS_ENOTIMP (opcode other than QUERY; the question is read too when QDCOUNT is 1, to be echoed),
 *         TC_DNS_EFORMAT (QDCOUNT not 1, a malformed or over-long name, or a question cut short)
 */
int tc_dns_parse_query(const uint8_t *msg, size_t len, tc_dns_question_t *q);

/**
 * @brief Read a possibly compressed name at *off into dotted lower-case text.
 *
 * Pure; any thread. A pointer must point strictly below every offset this name has read so far (so no loop and no
 * forward jump can exist) and not into the 12-byte header; at most 127 pointers are followed. Labels are at most 63
 * bytes (0x40 and 0x80 label types are refused) and the name at most 255 bytes on the wire (RFC 1035 2.3.4, 4.1.4).
 * @param msg  the whole message (pointers are offsets from its start)
 * @param len  its length: no byte at or past it is read
 * @param off  in: where the name starts; out on success: just past the name where it sits (after its first
 *             pointer, or after its terminating zero); unchanged on failure
 * @param out  at least TC_DNS_MAX_NAME_TEXT + 1 bytes; receives the NUL-terminated text, "" on failure
 * @return the text length (0..253), or -1 (runs past len, pointer loop / forward / into the header, too many hops,
 *         label > 63, name > 255 wire bytes, a NUL byte in a label)
 */
int tc_dns_read_name(const uint8_t *msg, size_t len, size_t *off, char *out);

/**
 * @brief Build the answer to a query according to the policy table above.
 *
 * Pure: writes only out[0..cap), allocates nothing; any thread. The answer is at most len + 16 bytes and at most 298
 * bytes, so an output buffer of min(len + 16, 298) bytes is always enough.
 * @param query   the received datagram
 * @param len     its length
 * @param policy  the device's address, the TTL and the overrides
 * @param out     receives the response
 * @param cap     bytes available at out
 * @return the response length (> 0) to send back to the query's source, 0 when the query must be dropped (nothing
 *         is written), or TC_DNS_ESPACE when cap is too small (out's content is then unspecified)
 */
int tc_dns_answer(const uint8_t *query, size_t len, const tc_dns_policy_t *policy, uint8_t *out, size_t cap);

/* ---- the client side (name resolution through the loop) ---- */

/** Response codes a resolver tells apart. */
enum {
    TC_DNS_RCODE_SERVFAIL = 2,
    TC_DNS_RCODE_NXDOMAIN = 3,
    TC_DNS_RCODE_REFUSED = 5,
};

/** What tc_dns_parse_response() found. */
typedef struct {
    int rcode;        /**< the response code (TC_DNS_RCODE_*) */
    int truncated;    /**< TC was set (the answer did not fit in the datagram) */
    int found;        /**< 1: addr holds the first address of the asked type on the CNAME chain */
    uint8_t addr[16]; /**< 4 bytes for A, 16 for AAAA, network order */
} tc_dns_result_t;

/**
 * @brief Build a standard recursive query (RD set) with one question, the name lower-cased.
 *
 * Pure: no allocation; any thread.
 * @param id     the query id (random: the answer must echo it)
 * @param name   dotted name, an optional trailing dot; labels of 1..63 bytes, at most 253 bytes in all
 * @param qtype  TC_DNS_TYPE_A or TC_DNS_TYPE_AAAA (any type is written as given)
 * @param out    receives the datagram
 * @param cap    bytes at out (12 + strlen(name) + 6 always suffice)
 * @return the datagram length, TC_DNS_EFORMAT (not a valid name), TC_DNS_ESPACE (cap too small)
 */
int tc_dns_build_query(uint16_t id, const char *name, uint16_t qtype, uint8_t *out, size_t cap);

/**
 * @brief Read the answer to a query built by tc_dns_build_query().
 *
 * Pure: reads only msg[0..len); any thread. A datagram that is not a response to this id, name and type (a late or
 * spoofed one) is reported as TC_DNS_EDROP so the caller keeps waiting. The answer section is followed along CNAME
 * records from the question's name; records of other owners are ignored.
 * @param msg    the datagram
 * @param len    its length
 * @param id     the query's id
 * @param name   the name asked (compared ASCII case-insensitively, no trailing dot)
 * @param qtype  the type asked
 * @param out    receives the rcode, the TC bit and the first address found
 * @return 0 (out is valid; found may be 0: NODATA or an error rcode), TC_DNS_EDROP (not our answer),
 *         TC_DNS_EFORMAT (our answer, but its answer section is malformed)
 */
int tc_dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
                          tc_dns_result_t *out);

#ifdef __cplusplus
}
#endif
