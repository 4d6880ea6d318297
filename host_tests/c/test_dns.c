/*
 * test_dns.c - tables for the captive portal's pure DNS parser and answer builder (tc_dns.h), then the UDP responder
 * (tc_dns_server.h) live on a tc_loop over loopback, answering a kernel UDP socket.
 *
 * Answer rows: a crafted query -> tc_dns_answer()'s result (length, 0 = drop, TC_DNS_ESPACE), tc_dns_parse_query()'s
 * result and name, and the response's rcode (extended rcodes included), counts, A address and OPT record. Checked for
 * every row besides:
 *   - no amplification: response length <= query length + 16 (RFC 5358 spirit; the table in tc_dns.h), and <= 512;
 *   - the header: id and RD copied, QR and AA set, opcode echoed, TC/Z/AD/CD clear, NSCOUNT = 0, ARCOUNT = the row's
 *     OPT (0 or 1);
 *   - the question echoed byte for byte, the A record exact (pointer to 12, A, IN, TTL, length 4, address), the OPT
 *     exact (root, OPT, payload 512, the extended rcode, version 0, flags 0, no options);
 *   - nothing written past the returned length; every output capacity below it gives TC_DNS_ESPACE and writes
 *     nothing past the capacity (the output buffer is a heap block of exactly that size, so ASan sees overruns);
 *   - datagrams are parsed whole, never incrementally: the stand-in for byte-at-a-time feeding is every prefix of the
 *     query, copied into a heap block of exactly its size, which must never be read past and never answered larger
 *     than the prefix + 16 (a prefix shorter than the header is dropped).
 * EDNS rows: what tc_dns_parse_query() reads of a query's OPT record (state, version, payload size).
 * Name rows call tc_dns_read_name() directly: text, length and the offset after the name (after the first pointer).
 * The live part checks answers, silence for garbage and responses (200 ms), counters, start errors, and that the
 * loop frees and tcp_core holds no byte afterwards.
 *
 * Packets are written in a small assembler (see asm_pkt()): "#1234" a 16-bit word, "%0a0b" raw hex bytes,
 * ".www.example.com" labels and the terminating zero ("." alone: the root), "+www" labels without the zero,
 * "=63" one label of 63 'x' (its length byte written even when > 63), "^12" a compression pointer to offset 12.
 *
 * Build (from the repository root):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix \
 *         host_tests/c/test_dns.c \
 *         $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') $C/port/linux/tc_sock_linux.c -lpthread \
 *         -o build/test_dns
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_dns.h"
#include "tc_dns_server.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_registry.h"
#include "tc_check.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))
#define PKT_MAX 1024

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static uint8_t *dup_exact(const void *src, size_t n)
{
    uint8_t *p = xmalloc(n);
    if (n) {
        memcpy(p, src, n);
    }
    return p;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void asm_die(const char *src, const char *why)
{
    fprintf(stderr, "test bug: packet \"%s\": %s\n", src, why);
    exit(2);
}

static void asm_put(uint8_t *buf, size_t *n, const char *src, unsigned v)
{
    if (*n >= PKT_MAX) {
        asm_die(src, "longer than PKT_MAX");
    }
    buf[(*n)++] = (uint8_t)v;
}

/* Labels of a dotted name from s up to the end of the token (no terminating zero). */
static void asm_labels(uint8_t *buf, size_t *n, const char *src, const char *s, size_t tlen)
{
    size_t i = 0;
    while (i < tlen) {
        size_t j = i;
        while (j < tlen && s[j] != '.') {
            j++;
        }
        if (j == i) {
            asm_die(src, "empty label");
        }
        asm_put(buf, n, src, (unsigned)(j - i));
        for (size_t k = i; k < j; k++) {
            asm_put(buf, n, src, (uint8_t)s[k]);
        }
        i = j + 1;
    }
}

/* Assemble the notation described at the top of this file into buf; returns the length. */
static size_t asm_pkt(const char *src, uint8_t *buf)
{
    size_t n = 0;
    const char *s = src;
    for (;;) {
        while (*s == ' ') {
            s++;
        }
        if (*s == '\0') {
            return n;
        }
        size_t tlen = strcspn(s, " ");
        const char *a = s + 1;
        size_t alen = tlen - 1;
        switch (s[0]) {
        case '#':
        case '%': {
            if (alen == 0 || alen % 2 || (s[0] == '#' && alen != 4)) {
                asm_die(src, "bad hex token");
            }
            for (size_t i = 0; i < alen; i += 2) {
                int hi = hexval(a[i]), lo = hexval(a[i + 1]);
                if (hi < 0 || lo < 0) {
                    asm_die(src, "bad hex digit");
                }
                asm_put(buf, &n, src, (unsigned)(hi << 4 | lo));
            }
            break;
        }
        case '.':
            if (alen > 0) {
                asm_labels(buf, &n, src, a, alen);
            }
            asm_put(buf, &n, src, 0);
            break;
        case '+':
            asm_labels(buf, &n, src, a, alen);
            break;
        case '=':
        case '^': {
            unsigned v = (unsigned)strtoul(a, NULL, 10);
            if (s[0] == '=') {
                asm_put(buf, &n, src, v);
                for (unsigned i = 0; i < v; i++) {
                    asm_put(buf, &n, src, 'x');
                }
            } else {
                asm_put(buf, &n, src, 0xC0 | (v >> 8));
                asm_put(buf, &n, src, v & 0xff);
            }
            break;
        }
        default:
            asm_die(src, "unknown token");
        }
        s += tlen;
    }
}

/* ---- tc_dns_answer() rows ---- */

#define TTL_S 70000u /* above 65535: both halves of the TTL field are checked */

static const tc_dns_override_t OVERRIDES[] = {
    {"dns.msftncsi.com", {131, 107, 255, 255}},
    {"", {10, 9, 8, 7}}, /* the root: proves the match is on the whole name, not a prefix of it */
    {"captive.example", {10, 0, 0, 42}},
};

static const tc_dns_policy_t POLICY = {
    .ipv4 = {192, 168, 4, 1},
    .ttl_s = TTL_S,
    .overrides = OVERRIDES,
    .noverrides = COUNT(OVERRIDES),
};

/* A query header: id 0x1234, RD, one question; and the A/IN trailer of a question. */
#define HDR "#1234 #0100 #0001 #0000 #0000 #0000 "
#define A_IN " #0001 #0001"
#define DEV "192.168.4.1"
/* 52 one-byte labels (104 wire bytes), no terminating zero. */
#define LABELS52                                                                                                       \
    "+a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z.a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z "

typedef struct {
    const char *why;
    const char *pkt;
    int ret;          /* tc_dns_answer(): the length, 0 (drop) or TC_DNS_ESPACE */
    int parse;        /* tc_dns_parse_query() */
    int rcode;        /* when ret > 0 */
    int qd, an;       /* when ret > 0 */
    const char *addr; /* the A record's address when an == 1 */
    const char *name; /* tc_dns_parse_query()'s name; NULL: not checked */
    int nlen;         /* strlen of that name when > 0 (names too long to write out) */
    size_t cap;       /* output capacity; 0: 600 */
} ans_row_t;

#define FORMERR_ROW(why_, pkt_)                                                                                        \
    {                                                                                                                  \
        why_, pkt_, 12, TC_DNS_EFORMAT, TC_DNS_RCODE_FORMERR, 0, 0, NULL, NULL, 0, 0                                   \
    }
/* A query with ARCOUNT 1 and 2, and OPT records (root owner): version 0 with payload 1232, version 1. */
#define HDR_AR1 "#1234 #0100 #0001 #0000 #0000 #0001 "
#define HDR_AR2 "#1234 #0100 #0001 #0000 #0000 #0002 "
#define OPT0 " %00 #0029 #04d0 #0000 #0000 #0000"
#define OPT1 " %00 #0029 #04d0 #0001 #0000 #0000"
#define EDNS_FORMERR_ROW(why_, pkt_, parse_)                                                                           \
    {                                                                                                                  \
        why_, pkt_, 12, parse_, TC_DNS_RCODE_FORMERR, 0, 0, NULL, NULL, 0, 0                                           \
    }

static const ans_row_t ANS_ROWS[] = {
    /* 12 + 17 (www.example.com) + 4 = 33 bytes of query; + 16 for the A record. */
    {"A IN: the device's address", HDR ".www.example.com" A_IN, 49, 0, 0, 1, 1, DEV, "www.example.com", 0, 0},
    {"AAAA: NOERROR, no record (no IPv6 to offer)", HDR ".www.example.com #001c #0001", 33, 0, 0, 1, 0, NULL,
     "www.example.com", 0, 0},
    {"TXT: NODATA", HDR ".www.example.com #0010 #0001", 33, 0, 0, 1, 0, NULL, NULL, 0, 0},
    {"MX: NODATA", HDR ".example.com #000f #0001", 29, 0, 0, 1, 0, NULL, "example.com", 0, 0},
    {"ANY: one A record (RFC 8482)", HDR ".www.example.com #00ff #0001", 49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"CNAME-type query: NODATA, no CNAME invented", HDR ".www.example.com #0005 #0001", 33, 0, 0, 1, 0, NULL, NULL, 0,
     0},
    {"type 0: NODATA", HDR ".www.example.com #0000 #0001", 33, 0, 0, 1, 0, NULL, NULL, 0, 0},
    {"class CH (version.bind TXT): NOTIMP, question echoed", HDR ".version.bind #0010 #0003", 30, 0,
     TC_DNS_RCODE_NOTIMP, 1, 0, NULL, "version.bind", 0, 0},
    {"class ANY with type A: NOTIMP", HDR ".www.example.com #0001 #00ff", 33, 0, TC_DNS_RCODE_NOTIMP, 1, 0, NULL, NULL,
     0, 0},
    {"class 0: NOTIMP", HDR ".www.example.com #0001 #0000", 33, 0, TC_DNS_RCODE_NOTIMP, 1, 0, NULL, NULL, 0, 0},
    {"upper-case name answered, read back lower-case", HDR ".WWW.Example.COM" A_IN, 49, 0, 0, 1, 1, DEV,
     "www.example.com", 0, 0},
    {"root name: override \"\" (10.9.8.7)", HDR "." A_IN, 33, 0, 0, 1, 1, "10.9.8.7", "", 0, 0},
    /* 64 + 64 + 64 + 62 + 1 = 255 wire bytes, 63 * 3 + 61 + 3 dots = 253 characters. */
    {"255-byte wire name accepted", HDR "=63 =63 =63 =61 %00" A_IN, 287, 0, 0, 1, 1, DEV, NULL, 253, 0},
    FORMERR_ROW("256-byte wire name: FORMERR", HDR "=63 =63 =63 =62 %00" A_IN),
    {"127 one-byte labels = 255 wire bytes: accepted",
     HDR LABELS52 LABELS52 ".a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w" A_IN, 12 + 255 + 4 + 16, 0, 0, 1, 1, DEV,
     NULL, 253, 0},
    FORMERR_ROW("128 one-byte labels = 257 wire bytes: FORMERR",
                HDR LABELS52 LABELS52 ".a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x" A_IN),
    {"63-byte label accepted", HDR "=63 .com" A_IN, 12 + 69 + 4 + 16, 0, 0, 1, 1, DEV, NULL, 67, 0},
    FORMERR_ROW("64-byte label (0x40: extended label type): FORMERR", HDR "=64 .com" A_IN),
    /* "evil\0" + ".example.com": read as text it would stop at the NUL and could match what it is not. */
    FORMERR_ROW("NUL inside a label: FORMERR", HDR "%0565766900 .example.com" A_IN),
    FORMERR_ROW("label of one NUL: FORMERR", HDR "%0100 .com" A_IN),
    FORMERR_ROW("label type 0x80: FORMERR", HDR "%8003 .com" A_IN),
    FORMERR_ROW("compression pointer to itself: FORMERR", HDR "^12" A_IN),
    FORMERR_ROW("two-step loop (12 -> 14 -> 12): FORMERR", HDR "^14 ^12" A_IN),
    FORMERR_ROW("label then pointer back to the name's start: FORMERR", HDR "+www ^12" A_IN),
    FORMERR_ROW("forward pointer to a valid name: FORMERR", HDR "^14 .com" A_IN),
    FORMERR_ROW("pointer into the header: FORMERR", HDR "^4" A_IN),
    FORMERR_ROW("pointer past the end: FORMERR", HDR "^1000" A_IN),
    FORMERR_ROW("pointer cut after its first byte: FORMERR", HDR "%c0"),
    FORMERR_ROW("truncated question: class missing", HDR ".www.example.com #0001"),
    FORMERR_ROW("truncated question: type cut in half", HDR ".www.example.com %00"),
    FORMERR_ROW("truncated question: label runs past the end", HDR "%07 %6578616d"),
    FORMERR_ROW("truncated question: no terminating zero", HDR "+www.example.com"),
    FORMERR_ROW("header only, QDCOUNT 1", HDR),
    {"truncated header (11 bytes): dropped", "#1234 #0100 #0001 #0000 #0000 %00", 0, TC_DNS_EDROP, 0, 0, 0, NULL, NULL,
     0, 0},
    {"empty datagram: dropped", "", 0, TC_DNS_EDROP, 0, 0, 0, NULL, NULL, 0, 0},
    {"QR set (a response, maybe another portal's): dropped",
     "#1234 #8180 #0001 #0001 #0000 #0000 .www.example.com" A_IN " ^12" A_IN " #0000 #003c #0004 %c0a80401", 0,
     TC_DNS_EDROP, 0, 0, 0, NULL, NULL, 0, 0},
    {"QR set with a malformed question: dropped, not FORMERR", "#1234 #8000 #0001 #0000 #0000 #0000 ^12", 0,
     TC_DNS_EDROP, 0, 0, 0, NULL, NULL, 0, 0},
    {"opcode 2 STATUS: NOTIMP, question echoed", "#1234 #1100 #0001 #0000 #0000 #0000 .www.example.com" A_IN, 33,
     TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP, 1, 0, NULL, "www.example.com", 0, 0},
    {"opcode 1 IQUERY with no question: NOTIMP, header only", "#1234 #0800 #0000 #0000 #0000 #0000", 12, TC_DNS_ENOTIMP,
     TC_DNS_RCODE_NOTIMP, 0, 0, NULL, NULL, 0, 0},
    {"opcode 4 NOTIFY with a malformed question: NOTIMP, header only", "#1234 #2000 #0001 #0000 #0000 #0000 ^12", 12,
     TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP, 0, 0, NULL, NULL, 0, 0},
    {"opcode 5 UPDATE with a truncated zone: NOTIMP, header only", "#1234 #2800 #0001 #0000 #0000 #0000 .example.com",
     12, TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP, 0, 0, NULL, NULL, 0, 0},
    {"opcode 15 with two questions: NOTIMP, header only", "#1234 #7800 #0002 #0000 #0000 #0000 .a" A_IN " .b" A_IN, 12,
     TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP, 0, 0, NULL, NULL, 0, 0},
    FORMERR_ROW("QDCOUNT 0: FORMERR", "#1234 #0100 #0000 #0000 #0000 #0000"),
    FORMERR_ROW("QDCOUNT 0 with a question present anyway: FORMERR",
                "#1234 #0100 #0000 #0000 #0000 #0000 .www.example.com" A_IN),
    FORMERR_ROW("QDCOUNT 2: FORMERR (RFC 9619)",
                "#1234 #0100 #0002 #0000 #0000 #0000 .a.example" A_IN " .b.example" A_IN),
    FORMERR_ROW("QDCOUNT 65535: FORMERR", "#1234 #0100 #ffff #0000 #0000 #0000 .a" A_IN),
    EDNS_FORMERR_ROW("two OPT records: FORMERR, header only (RFC 6891 6.1.1)",
                     HDR_AR2 ".www.example.com" A_IN OPT0 OPT0, 0),
    EDNS_FORMERR_ROW("two OPT records, the second version 1: FORMERR", HDR_AR2 ".www.example.com" A_IN OPT0 OPT1, 0),
    EDNS_FORMERR_ROW("two OPT records with opcode STATUS: FORMERR before NOTIMP",
                     "#1234 #1100 #0001 #0000 #0000 #0002 .www.example.com" A_IN OPT0 OPT0, TC_DNS_ENOTIMP),
    EDNS_FORMERR_ROW("OPT owned by example.com: FORMERR",
                     HDR_AR1 ".www.example.com" A_IN " ^16 #0029 #04d0 #0000 #0000 #0000", 0),
    EDNS_FORMERR_ROW("OPT owned by x.: FORMERR", HDR_AR1 ".www.example.com" A_IN " .x #0029 #04d0 #0000 #0000 #0000",
                     0),
    {"OPT with its options cut short: not read, no OPT",
     HDR_AR1 ".www.example.com" A_IN " %00 #0029 #04d0 #0000 #0000 #0008 %000a", 49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"OPT with a malformed owner (label type 0x80): not read, no OPT",
     HDR_AR1 ".www.example.com" A_IN " %8000 #0029 #04d0 #0000 #0000 #0000", 49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"OPT in the answer section: ignored, no OPT", "#1234 #0100 #0001 #0001 #0000 #0000 .www.example.com" A_IN OPT0, 49,
     0, 0, 1, 1, DEV, NULL, 0, 0},
    {"OPT in the authority section: ignored, no OPT", "#1234 #0100 #0001 #0000 #0001 #0000 .www.example.com" A_IN OPT0,
     49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"OPT after the counted records: ignored, no OPT", HDR ".www.example.com" A_IN OPT0, 49, 0, 0, 1, 1, DEV, NULL, 0,
     0},
    {"ANCOUNT 1 whose record hides the OPT: no OPT", "#1234 #0100 #0001 #0001 #0000 #0001 .www.example.com" A_IN OPT0,
     49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"malformed question with an OPT: FORMERR, header only (the OPT cannot be found)", HDR_AR1 "^12" A_IN OPT0, 12,
     TC_DNS_EFORMAT, TC_DNS_RCODE_FORMERR, 0, 0, NULL, NULL, 0, 0},
    {"QDCOUNT 2, the second question's name malformed, with an OPT: FORMERR, header only (the OPT cannot be found)",
     "#1234 #0100 #0002 #0000 #0000 #0001 .a" A_IN " %8003" A_IN OPT0, 12, TC_DNS_EFORMAT, TC_DNS_RCODE_FORMERR, 0, 0,
     NULL, NULL, 0, 0},
    {"output buffer one byte short of the OPT: ESPACE", HDR_AR1 ".www.example.com" A_IN OPT0, TC_DNS_ESPACE, 0, 0, 0, 0,
     NULL, NULL, 0, 59},
    {"RD clear stays clear", "#1234 #0000 #0001 #0000 #0000 #0000 .www.example.com" A_IN, 49, 0, 0, 1, 1, DEV, NULL, 0,
     0},
    {"TC, AD and CD bits of the query are not echoed", "#1234 #0330 #0001 #0000 #0000 #0000 .www.example.com" A_IN, 49,
     0, 0, 1, 1, DEV, NULL, 0, 0},
    {"id 0xbeef copied", "#beef #0100 #0001 #0000 #0000 #0000 .www.example.com" A_IN, 49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"id 0 copied", "#0000 #0100 #0001 #0000 #0000 #0000 .x" A_IN, 12 + 3 + 4 + 16, 0, 0, 1, 1, DEV, "x", 0, 0},
    {"answer and authority counts of a query are ignored", "#1234 #0100 #0001 #0005 #0007 #0000 .x" A_IN, 35, 0, 0, 1,
     1, DEV, NULL, 0, 0},
    {"trailing bytes after the question: ignored", HDR ".www.example.com" A_IN " %deadbeef00", 49, 0, 0, 1, 1, DEV,
     NULL, 0, 0},
    {"override dns.msftncsi.com -> 131.107.255.255", HDR ".dns.msftncsi.com" A_IN, 12 + 18 + 4 + 16, 0, 0, 1, 1,
     "131.107.255.255", "dns.msftncsi.com", 0, 0},
    {"override matched case-insensitively", HDR ".DNS.MsftNCSI.Com" A_IN, 50, 0, 0, 1, 1, "131.107.255.255",
     "dns.msftncsi.com", 0, 0},
    {"override for ANY too", HDR ".captive.example #00ff #0001", 12 + 17 + 4 + 16, 0, 0, 1, 1, "10.0.0.42", NULL, 0, 0},
    {"override AAAA: still NODATA", HDR ".dns.msftncsi.com #001c #0001", 34, 0, 0, 1, 0, NULL, NULL, 0, 0},
    {"a subdomain of an override is not the override", HDR ".x.dns.msftncsi.com" A_IN, 52, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"a prefix of an override is not the override", HDR ".dns.msftncsi.co" A_IN, 49, 0, 0, 1, 1, DEV, NULL, 0, 0},
    {"output buffer too small for the A record: ESPACE", HDR ".www.example.com" A_IN, TC_DNS_ESPACE, 0, 0, 0, 0, NULL,
     NULL, 0, 48},
    {"output buffer exactly the A answer: answered", HDR ".www.example.com" A_IN, 49, 0, 0, 1, 1, DEV, NULL, 0, 49},
    {"output buffer too small for NODATA: ESPACE", HDR ".www.example.com #001c #0001", TC_DNS_ESPACE, 0, 0, 0, 0, NULL,
     NULL, 0, 32},
    {"output buffer too small for FORMERR: ESPACE", "#1234 #0100 #0000 #0000 #0000 #0000", TC_DNS_ESPACE,
     TC_DNS_EFORMAT, 0, 0, 0, NULL, NULL, 0, 11},
    {"no output buffer, a response: drop wins over ESPACE", "#1234 #8000 #0000 #0000 #0000 #0000", 0, TC_DNS_EDROP, 0,
     0, 0, NULL, NULL, 0, 1},
};

/* Answers that end with the responder's OPT record (ARCOUNT 1): the query carries one. 12 + 17 + 4 = 33 bytes of
 * question (www.example.com), + 16 for the A record, + 11 for the OPT. */
#define OPT_ROW(why_, pkt_, ret_, parse_, rcode_, an_, addr_)                                                          \
    {                                                                                                                  \
        why_, pkt_, ret_, parse_, rcode_, 1, an_, addr_, NULL, 0, 0                                                    \
    }

static const ans_row_t OPT_ANS_ROWS[] = {
    OPT_ROW("OPT (DO set): the A record and the responder's OPT, DO clear",
            HDR_AR1 ".www.example.com" A_IN " %00 #0029 #04d0 #0000 #8000 #0000", 60, 0, 0, 1, DEV),
    OPT_ROW("OPT with a cookie option: the option not echoed",
            HDR_AR1 ".a.b" A_IN " %00 #0029 #1000 #0000 #0000 #000c #000a #0008 %0102030405060708",
            12 + 5 + 4 + 16 + 11, 0, 0, 1, DEV),
    OPT_ROW("OPT with payload 100 (read as 512): answered",
            HDR_AR1 ".www.example.com" A_IN " %00 #0029 #0064 #0000 #0000 #0000", 60, 0, 0, 1, DEV),
    OPT_ROW("OPT with extended rcode bits set in the query: ignored",
            HDR_AR1 ".www.example.com" A_IN " %00 #0029 #04d0 #7f00 #0000 #0000", 60, 0, 0, 1, DEV),
    OPT_ROW("AAAA with OPT: NODATA and the OPT", HDR_AR1 ".www.example.com #001c #0001" OPT0, 44, 0, 0, 0, NULL),
    OPT_ROW("class CH with OPT: NOTIMP and the OPT", HDR_AR1 ".version.bind #0010 #0003" OPT0, 30 + 11, 0,
            TC_DNS_RCODE_NOTIMP, 0, NULL),
    OPT_ROW("opcode STATUS with OPT: NOTIMP, question echoed, and the OPT",
            "#1234 #1100 #0001 #0000 #0000 #0001 .www.example.com" A_IN OPT0, 44, TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP,
            0, NULL),
    OPT_ROW("EDNS version 1: BADVERS (header rcode 0, extended 1), no record", HDR_AR1 ".www.example.com" A_IN OPT1, 44,
            0, TC_DNS_RCODE_BADVERS, 0, NULL),
    OPT_ROW("EDNS version 255: BADVERS", HDR_AR1 ".www.example.com" A_IN " %00 #0029 #04d0 #00ff #0000 #0000", 44, 0,
            TC_DNS_RCODE_BADVERS, 0, NULL),
    OPT_ROW("EDNS version 1 in class CH: BADVERS before NOTIMP", HDR_AR1 ".version.bind #0010 #0003" OPT1, 41, 0,
            TC_DNS_RCODE_BADVERS, 0, NULL),
    OPT_ROW("EDNS version 1 with opcode STATUS: BADVERS before NOTIMP",
            "#1234 #1100 #0001 #0000 #0000 #0001 .www.example.com" A_IN OPT1, 44, TC_DNS_ENOTIMP, TC_DNS_RCODE_BADVERS,
            0, NULL),
    OPT_ROW("OPT owned by a pointer to the root question: the root",
            HDR_AR1 "." A_IN " ^12 #0029 #0200 #0000 #0000 #0000", 12 + 1 + 4 + 16 + 11, 0, 0, 1, "10.9.8.7"),
    OPT_ROW("OPT after an answer record and an authority record",
            "#1234 #0100 #0001 #0001 #0001 #0001 .x" A_IN " ^12" A_IN
            " #0000 #003c #0004 %01020304 ^12 #0002 #0001 #0000 #003c #0003 %017800" OPT0,
            12 + 3 + 4 + 16 + 11, 0, 0, 1, DEV),
    OPT_ROW("an A record, then the OPT, in the additional section",
            HDR_AR2 ".x" A_IN " ^12" A_IN " #0000 #003c #0004 %01020304" OPT0, 12 + 3 + 4 + 16 + 11, 0, 0, 1, DEV),
    OPT_ROW("OPT then a record cut short: the OPT counts", HDR_AR2 ".x" A_IN OPT0 " %00 #0029 #04d0", 46, 0, 0, 1, DEV),
    OPT_ROW("OPT then a malformed owner name: the OPT counts",
            HDR_AR2 ".x" A_IN OPT0 " %8001 #0001 #0001 #0000 #0000 #0000", 46, 0, 0, 1, DEV),
    OPT_ROW("OPT with ARCOUNT 65535: the records stop where the datagram does",
            "#1234 #0100 #0001 #0000 #0000 #ffff .x" A_IN OPT0, 46, 0, 0, 1, DEV),
    OPT_ROW("the longest answer: 255-byte name, A record and OPT (298 bytes)", HDR_AR1 "=63 =63 =63 =61 %00" A_IN OPT0,
            298, 0, 0, 1, DEV),
    /* Header-only answers to a query whose OPT can be found (RFC 6891 7): 12 + 11 bytes, no more than the query. */
    {"QDCOUNT 0 with an OPT: FORMERR and the OPT", "#1234 #0100 #0000 #0000 #0000 #0001" OPT0, 23, TC_DNS_EFORMAT,
     TC_DNS_RCODE_FORMERR, 0, 0, NULL, NULL, 0, 0},
    {"QDCOUNT 0 with an OPT of version 1: FORMERR and the OPT (the question's fault comes first)",
     "#1234 #0100 #0000 #0000 #0000 #0001" OPT1, 23, TC_DNS_EFORMAT, TC_DNS_RCODE_FORMERR, 0, 0, NULL, NULL, 0, 0},
    {"QDCOUNT 2 with an OPT: FORMERR and the OPT (RFC 9619)",
     "#1234 #0100 #0002 #0000 #0000 #0001 .a.example" A_IN " ^12" A_IN OPT0, 23, TC_DNS_EFORMAT, TC_DNS_RCODE_FORMERR,
     0, 0, NULL, NULL, 0, 0},
    {"opcode NOTIFY, QDCOUNT 2, with an OPT: NOTIMP and the OPT",
     "#1234 #2000 #0002 #0000 #0000 #0001 .a" A_IN " .b" A_IN OPT0, 23, TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP, 0, 0, NULL,
     NULL, 0, 0},
    {"opcode IQUERY, QDCOUNT 0, with an OPT: NOTIMP and the OPT", "#1234 #0800 #0000 #0000 #0000 #0001" OPT0, 23,
     TC_DNS_ENOTIMP, TC_DNS_RCODE_NOTIMP, 0, 0, NULL, NULL, 0, 0},
};

/* The checks every successful answer must pass, whatever the row; opt: the answer ends with the responder's OPT. */
static int check_response(const uint8_t *q, size_t qlen, const uint8_t *r, int n, const ans_row_t *row, int opt)
{
    ROW_CHECK(n >= 12, "response of %d bytes, shorter than a header", n);
    ROW_CHECK((size_t)n <= qlen + 16, "amplification: %d-byte response to a %zu-byte query", n, qlen);
    ROW_CHECK(n <= 512, "a %d-byte response: more than any requester accepts", n);
    uint16_t qf = rd16(q + 2), rf = rd16(r + 2);
    ROW_CHECK(rd16(r) == rd16(q), "id 0x%04x, query's 0x%04x", rd16(r), rd16(q));
    ROW_CHECK(rf & 0x8000, "QR clear in the response");
    ROW_CHECK(rf & 0x0400, "AA clear in the response");
    ROW_CHECK((rf & 0x7800) == (qf & 0x7800), "opcode %d, query's %d", (rf >> 11) & 15, (qf >> 11) & 15);
    ROW_CHECK((rf & 0x0100) == (qf & 0x0100), "RD 0x%04x, query's 0x%04x", rf & 0x0100, qf & 0x0100);
    ROW_CHECK((rf & 0x02f0) == 0, "TC/RA/Z/AD/CD bits set: flags 0x%04x", rf);
    ROW_CHECK(rd16(r + 4) == row->qd, "QDCOUNT %u, expected %d", rd16(r + 4), row->qd);
    ROW_CHECK(rd16(r + 6) == row->an, "ANCOUNT %u, expected %d", rd16(r + 6), row->an);
    ROW_CHECK(rd16(r + 8) == 0 && rd16(r + 10) == opt, "NSCOUNT %u ARCOUNT %u, expected 0 and %d", rd16(r + 8),
              rd16(r + 10), opt);
    int rcode = rf & 15;
    if (opt) {
        /* Root, OPT, payload 512, the extended rcode, version 0, DO and Z clear, RDLENGTH 0. */
        const uint8_t *o = r + n - 11;
        static const uint8_t want[] = {0, 0, 41, 512 >> 8, 512 & 0xff};
        ROW_CHECK(n >= 12 + 11 && memcmp(o, want, sizeof(want)) == 0, "no OPT record with payload 512 at the end");
        ROW_CHECK(o[6] == 0 && rd16(o + 7) == 0 && rd16(o + 9) == 0, "OPT version %u, flags %04x, RDLENGTH %u", o[6],
                  rd16(o + 7), rd16(o + 9));
        rcode |= o[5] << 4;
    }
    ROW_CHECK(rcode == row->rcode, "rcode %d, expected %d", rcode, row->rcode);
    size_t echoed = (size_t)n - 12 - 16u * (size_t)row->an - 11u * (size_t)opt;
    ROW_CHECK(row->qd || echoed == 0, "%zu bytes after a header-only response", echoed);
    ROW_CHECK(echoed <= qlen - 12 && memcmp(r + 12, q + 12, echoed) == 0, "question not echoed byte for byte");
    if (row->an) {
        const uint8_t *a = r + 12 + echoed;
        struct in_addr want;
        ROW_CHECK(row->addr && inet_pton(AF_INET, row->addr, &want) == 1, "test bug: bad address");
        static const uint8_t head[] = {
            0xc0, 0x0c, 0, 1, 0, 1, TTL_S >> 24, (TTL_S >> 16) & 0xff, (TTL_S >> 8) & 0xff, TTL_S & 0xff, 0, 4};
        ROW_CHECK(memcmp(a, head, sizeof(head)) == 0, "A record header %02x%02x %02x%02x %02x%02x ...", a[0], a[1],
                  a[2], a[3], a[4], a[5]);
        ROW_CHECK(memcmp(a + 12, &want, 4) == 0, "A record %u.%u.%u.%u, expected %s", a[12], a[13], a[14], a[15],
                  row->addr);
        /* The answer's name is a pointer to the question's: it must read back as the same name. */
        char n1[TC_DNS_MAX_NAME_TEXT + 1], n2[TC_DNS_MAX_NAME_TEXT + 1];
        size_t o1 = 12, o2 = 12 + echoed;
        ROW_CHECK(tc_dns_read_name(r, (size_t)n, &o1, n1) >= 0 && tc_dns_read_name(r, (size_t)n, &o2, n2) >= 0 &&
                      strcmp(n1, n2) == 0 && o2 == 12 + echoed + 2,
                  "the answer's name does not read back as the question's");
    }
    return 0;
}

static int check_ans_row(const ans_row_t *row, int opt)
{
    uint8_t buf[PKT_MAX];
    size_t len = asm_pkt(row->pkt, buf);
    uint8_t *q = dup_exact(buf, len);
    int bad = 0;

    tc_dns_question_t qq;
    int pr = tc_dns_parse_query(q, len, &qq);
    if (pr != row->parse) {
        ROW_FAIL("tc_dns_parse_query gave %d, expected %d", pr, row->parse);
        bad = 1;
    } else if (pr != 0 && qq.question_end == 0 && qq.name[0] != '\0') {
        ROW_FAIL("a parse without a question left the name \"%s\" behind", qq.name);
        bad = 1;
    } else if ((pr == 0 || qq.question_end) && row->name && strcmp(qq.name, row->name) != 0) {
        ROW_FAIL("name \"%s\", expected \"%s\"", qq.name, row->name);
        bad = 1;
    } else if (pr == 0 && row->nlen && strlen(qq.name) != (size_t)row->nlen) {
        ROW_FAIL("name of %zu characters, expected %d", strlen(qq.name), row->nlen);
        bad = 1;
    } else if (pr == 0 &&
               (qq.id != rd16(q) || qq.flags != rd16(q + 2) || qq.question_end > len || qq.question_end < 12 + 1 + 4)) {
        ROW_FAIL("parsed id/flags/question_end inconsistent");
        bad = 1;
    }

    size_t cap = row->cap ? row->cap : 600;
    uint8_t *out = xmalloc(cap + 64);
    memset(out, 0xA5, cap + 64);
    int n = tc_dns_answer(q, len, &POLICY, out, cap);
    if (!bad && n != row->ret) {
        ROW_FAIL("tc_dns_answer gave %d, expected %d", n, row->ret);
        bad = 1;
    }
    if (!bad && n > 0) {
        bad = check_response(q, len, out, n, row, opt);
        for (size_t i = (size_t)n; !bad && i < cap + 64; i++) {
            if (out[i] != 0xA5) {
                ROW_FAIL("byte %zu written past the %d-byte response", i, n);
                bad = 1;
            }
        }
    }
    if (!bad && n <= 0) {
        for (size_t i = 0; !bad && i < cap + 64; i++) {
            if (i >= cap && out[i] != 0xA5) {
                ROW_FAIL("byte %zu written past the %zu-byte capacity with result %d", i, cap, n);
                bad = 1;
            }
        }
    }
    /* Every smaller capacity: ESPACE, in a block of exactly that size. */
    for (int c = 0; !bad && n > 0 && c < n; c++) {
        uint8_t *small = xmalloc((size_t)c);
        int m = tc_dns_answer(q, len, &POLICY, small, (size_t)c);
        if (m != TC_DNS_ESPACE) {
            ROW_FAIL("capacity %d below the %d-byte answer gave %d, not ESPACE", c, n, m);
            bad = 1;
        }
        free(small);
    }
    if (!bad && n > 0) {
        uint8_t *exact = xmalloc((size_t)n);
        int m = tc_dns_answer(q, len, &POLICY, exact, (size_t)n);
        if (m != n || memcmp(exact, out, (size_t)n) != 0) {
            ROW_FAIL("an exact-size buffer gave %d or other bytes", m);
            bad = 1;
        }
        free(exact);
    }
    /* Every prefix of the query, in a block of exactly its size. */
    for (size_t p = 0; !bad && p < len; p++) {
        uint8_t *pre = dup_exact(buf, p);
        uint8_t pout[600 + 16];
        int m = tc_dns_answer(pre, p, &POLICY, pout, sizeof(pout));
        if (m < 0 || (p < 12 && m != 0) || (m > 0 && (size_t)m > p + 16)) {
            ROW_FAIL("the %zu-byte prefix gave %d", p, m);
            bad = 1;
        }
        free(pre);
    }
    free(out);
    free(q);
    return bad;
}

/* ---- what tc_dns_parse_query() reads of the OPT record ---- */

typedef struct {
    const char *why;
    const char *pkt;
    int edns;         /* TC_DNS_EDNS_* */
    int version;      /* edns_version */
    unsigned payload; /* edns_payload */
} edns_row_t;

static const edns_row_t EDNS_ROWS[] = {
    {"no OPT", HDR ".x" A_IN, TC_DNS_EDNS_NONE, 0, 512},
    {"OPT, payload 1232", HDR_AR1 ".x" A_IN OPT0, TC_DNS_EDNS_OK, 0, 1232},
    {"OPT, payload 65535, version 7", HDR_AR1 ".x" A_IN " %00 #0029 #ffff #0007 #8000 #0000", TC_DNS_EDNS_OK, 7, 65535},
    {"OPT, payload 511: read as 512", HDR_AR1 ".x" A_IN " %00 #0029 #01ff #0000 #0000 #0000", TC_DNS_EDNS_OK, 0, 512},
    {"OPT, payload 0: read as 512", HDR_AR1 ".x" A_IN " %00 #0029 #0000 #0000 #0000 #0000", TC_DNS_EDNS_OK, 0, 512},
    {"OPT, payload 513", HDR_AR1 ".x" A_IN " %00 #0029 #0201 #0000 #0000 #0000", TC_DNS_EDNS_OK, 0, 513},
    {"two OPT records", HDR_AR2 ".x" A_IN OPT0 OPT1, TC_DNS_EDNS_BAD, 0, 512},
    {"OPT owned by x", HDR_AR1 ".x" A_IN " ^12 #0029 #04d0 #0000 #0000 #0000", TC_DNS_EDNS_BAD, 0, 512},
    {"OPT with options", HDR_AR1 ".x" A_IN " %00 #0029 #0400 #0000 #0000 #0004 #000a #0000", TC_DNS_EDNS_OK, 0, 1024},
    {"OPT of a STATUS query", "#1234 #1100 #0001 #0000 #0000 #0001 .x" A_IN OPT1, TC_DNS_EDNS_OK, 1, 1232},
    {"OPT of a query with no question: read", "#1234 #0100 #0000 #0000 #0000 #0001" OPT1, TC_DNS_EDNS_OK, 1, 1232},
    {"OPT of a query with two questions: read", "#1234 #0100 #0002 #0000 #0000 #0001 .x" A_IN " .y" A_IN OPT0,
     TC_DNS_EDNS_OK, 0, 1232},
    {"OPT after a malformed question: not found", HDR_AR1 "^12" A_IN OPT0, TC_DNS_EDNS_NONE, 0, 512},
};

static int check_edns_row(const edns_row_t *row)
{
    uint8_t buf[PKT_MAX];
    size_t len = asm_pkt(row->pkt, buf);
    uint8_t *q = dup_exact(buf, len);
    tc_dns_question_t qq;
    tc_dns_parse_query(q, len, &qq);
    free(q);
    ROW_CHECK(qq.edns == row->edns && qq.edns_version == row->version && qq.edns_payload == row->payload,
              "edns %d version %u payload %u, expected %d %d %u", qq.edns, qq.edns_version, qq.edns_payload, row->edns,
              row->version, row->payload);
    return 0;
}

/* ---- tc_dns_read_name() rows ---- */

#define Z12 "#0000 #0000 #0000 #0000 #0000 #0000 "

typedef struct {
    const char *why;
    const char *pkt;
    size_t off;       /* where reading starts */
    int ret;          /* text length or -1 */
    const char *text; /* expected text when ret >= 0 (NULL: only its length is checked) */
    size_t after;     /* expected *off afterwards when ret >= 0 */
} name_row_t;

static const name_row_t NAME_ROWS[] = {
    {"plain name at 12", Z12 ".www.example.com", 12, 15, "www.example.com", 29},
    {"root", Z12 ".", 12, 0, "", 13},
    {"upper case folded, digits and '-' kept", Z12 ".WwW-1.EXAMPLE.com", 12, 17, "www-1.example.com", 31},
    {"labels then a pointer: offset after the pointer", Z12 ".example.com +www ^12", 25, 15, "www.example.com", 31},
    {"a pointer alone", Z12 ".example.com ^12", 25, 11, "example.com", 27},
    {"a pointer into the middle of a name", Z12 ".www.example.com ^16", 29, 11, "example.com", 31},
    {"two chained pointers: offset after the first", Z12 ".com +example ^12 +www ^17", 27, 15, "www.example.com", 33},
    {"a pointer to a pointer", Z12 ".com ^12 ^17", 19, 3, "com", 21},
    {"reading the chain's middle", Z12 ".com +example ^12 +www ^17", 17, 11, "example.com", 27},
    {"pointer to itself", Z12 "^12", 12, -1, NULL, 0},
    {"pointer to itself after a label", Z12 ".a +b ^15", 15, -1, NULL, 0},
    {"two-step loop: 17 -> 15 -> 17", Z12 "%000000 ^17 ^15", 17, -1, NULL, 0},
    {"loop through a label: 12 -> 12", Z12 "+a ^12", 12, -1, NULL, 0},
    {"loop back to the start after a hop: 21 -> 17 -> 21", Z12 ".com +a ^21 +c ^17", 21, -1, NULL, 0},
    {"forward pointer to a valid name", Z12 "^14 .com", 12, -1, NULL, 0},
    {"pointer into the header (0)", Z12 ".com ^0", 17, -1, NULL, 0},
    {"pointer into the header (11)", Z12 ".com ^11", 17, -1, NULL, 0},
    {"pointer past the end", Z12 ".com ^16383", 17, -1, NULL, 0},
    {"pointer cut after one byte", Z12 ".com %c0", 17, -1, NULL, 0},
    {"start at the end", Z12 ".com", 17, -1, NULL, 0},
    {"start past the end", Z12 ".com", 400, -1, NULL, 0},
    {"label runs past the end", Z12 "%05 %616263", 12, -1, NULL, 0},
    {"no terminating zero", Z12 "+www.example", 12, -1, NULL, 0},
    {"label type 0x40", Z12 "%4001 .com", 12, -1, NULL, 0},
    {"label type 0x80", Z12 "%8001 .com", 12, -1, NULL, 0},
    {"63-byte label", Z12 "=63 .", 12, 63, NULL, 77},
    {"64-byte label", Z12 "=64 .", 12, -1, NULL, 0},
    /* 193 wire bytes at 12..204, then 62 more at 205 + a pointer: 255 in all. */
    {"255 wire bytes across a pointer", Z12 "=63 =63 =63 . =61 ^12", 205, 253, NULL, 269},
    {"256 wire bytes across a pointer", Z12 "=63 =63 =63 . =62 ^12", 205, -1, NULL, 0},
    {"255 wire bytes in one piece", Z12 "=63 =63 =63 =61 .", 12, 253, NULL, 267},
    {"256 wire bytes in one piece", Z12 "=63 =63 =63 =62 .", 12, -1, NULL, 0},
};

static int check_name_row(const name_row_t *row)
{
    uint8_t buf[PKT_MAX];
    size_t len = asm_pkt(row->pkt, buf);
    uint8_t *m = dup_exact(buf, len);
    char *out = xmalloc(TC_DNS_MAX_NAME_TEXT + 1);
    memset(out, 'Q', TC_DNS_MAX_NAME_TEXT + 1);
    size_t off = row->off;
    int r = tc_dns_read_name(m, len, &off, out);
    int bad = 0;
    if (r != row->ret) {
        ROW_FAIL("gave %d, expected %d", r, row->ret);
        bad = 1;
    } else if (r >= 0 && strlen(out) != (size_t)r) {
        ROW_FAIL("returned %d for a %zu-character text", r, strlen(out));
        bad = 1;
    } else if (r >= 0 && row->text && strcmp(out, row->text) != 0) {
        ROW_FAIL("text \"%s\", expected \"%s\"", out, row->text);
        bad = 1;
    } else if (r >= 0 && off != row->after) {
        ROW_FAIL("offset after the name %zu, expected %zu", off, row->after);
        bad = 1;
    } else if (r < 0 && off != row->off) {
        ROW_FAIL("a failed read moved the offset from %zu to %zu", row->off, off);
        bad = 1;
    } else if (r < 0 && out[0] != '\0') {
        ROW_FAIL("a failed read left text behind instead of \"\"");
        bad = 1;
    }
    free(out);
    free(m);
    return bad;
}

/* A name compressed label by label: "a" at 12, then n times a label "a" and a pointer to the previous name, so the
 * last name has n + 1 labels and takes n pointer hops (legitimate: 127 labels fit in 255 bytes). */
static int check_hops(void)
{
    static const struct {
        int n, ret;
    } cases[] = {{0, 1}, {32, 65}, {33, 67}, {100, 201}, {126, 253}, {127, -1}};
    for (size_t k = 0; k < COUNT(cases); k++) {
        uint8_t *m = xmalloc(12 + 3 + 4 * (size_t)cases[k].n);
        memset(m, 0, 12);
        size_t len = 12, prev = 12, last = 12;
        m[len++] = 1, m[len++] = 'a', m[len++] = 0;
        for (int i = 0; i < cases[k].n; i++) {
            last = len;
            m[len++] = 1, m[len++] = 'a', m[len++] = (uint8_t)(0xC0 | prev >> 8), m[len++] = (uint8_t)prev;
            prev = last;
        }
        char out[TC_DNS_MAX_NAME_TEXT + 1];
        size_t off = last;
        int r = tc_dns_read_name(m, len, &off, out);
        free(m);
        ROW_CHECK(r == cases[k].ret, "%d labels of one byte via %d pointers: %d, expected %d", cases[k].n + 1,
                  cases[k].n, r, cases[k].ret);
        ROW_CHECK(r < 0 || off == (cases[k].n ? last + 4 : 15u), "offset after the name %zu", off);
    }
    return 0;
}

/* The policy's edges not tied to a packet shape: no overrides at all, and a NULL override name skipped. */
static int check_policy_edges(void)
{
    uint8_t q[PKT_MAX], out[600];
    size_t len = asm_pkt(HDR ".dns.msftncsi.com" A_IN, q);
    tc_dns_policy_t p = {.ipv4 = {1, 2, 3, 4}, .ttl_s = 0, .overrides = NULL, .noverrides = 5};
    int n = tc_dns_answer(q, len, &p, out, sizeof(out));
    ROW_CHECK(n == (int)len + 16 && memcmp(out + n - 4, p.ipv4, 4) == 0, "overrides NULL with a count: %d", n);
    ROW_CHECK(memcmp(out + n - 10, "\0\0\0\0", 4) == 0, "TTL 0 not written as 0");
    const tc_dns_override_t ov[] = {{NULL, {9, 9, 9, 9}}, {"DNS.MSFTNCSI.COM", {5, 6, 7, 8}}};
    p.overrides = ov;
    p.noverrides = 2;
    n = tc_dns_answer(q, len, &p, out, sizeof(out));
    ROW_CHECK(n == (int)len + 16 && memcmp(out + n - 4, ov[1].ipv4, 4) == 0, "NULL name not skipped, or upper-case "
                                                                             "override not matched");
    p.noverrides = 0;
    n = tc_dns_answer(q, len, &p, out, sizeof(out));
    ROW_CHECK(n == (int)len + 16 && memcmp(out + n - 4, p.ipv4, 4) == 0, "noverrides 0 still consulted the table");
    tc_dns_question_t qq;
    ROW_CHECK(tc_dns_parse_query(NULL, 0, &qq) == TC_DNS_EDROP, "NULL message not dropped");
    ROW_CHECK(tc_dns_answer(NULL, 0, &p, out, sizeof(out)) == 0, "NULL query not dropped");
    return 0;
}

/* ---- the responder, live ---- */

typedef struct {
    tc_loop_t *loop;
    int fd; /* the kernel UDP socket that plays the phone */
    struct sockaddr_in to;
} live_t;

/* Send a query and run the loop until an answer arrives (>= 0: its length) or timeout_ms passes (-1). */
static int exchange(live_t *lv, const void *q, size_t qlen, uint8_t *resp, size_t cap, int timeout_ms)
{
    if (sendto(lv->fd, q, qlen, 0, (struct sockaddr *)&lv->to, sizeof(lv->to)) != (ssize_t)qlen) {
        return -2;
    }
    uint64_t end = tc_now_ms() + (uint64_t)timeout_ms;
    for (int i = 0; i < 10000 && tc_now_ms() < end; i++) {
        if (tc_loop_run_once(lv->loop, 5) < 0) {
            return -3;
        }
        ssize_t n = recv(lv->fd, resp, cap, MSG_DONTWAIT);
        if (n >= 0) {
            return (int)n;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            return -4;
        }
    }
    return -1;
}

/* Send a datagram that must get no answer: the loop runs 200 ms, then nothing may be waiting. */
static int silent(live_t *lv, const void *q, size_t qlen)
{
    if (sendto(lv->fd, q, qlen, 0, (struct sockaddr *)&lv->to, sizeof(lv->to)) != (ssize_t)qlen) {
        return 0;
    }
    if (tc_loop_run_for(lv->loop, 200) != TC_OK) {
        return 0;
    }
    uint8_t junk[600];
    return recv(lv->fd, junk, sizeof(junk), MSG_DONTWAIT) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static int check_live_answers(live_t *lv, tc_dns_server_t *dns)
{
    uint8_t q[PKT_MAX], r[600];
    size_t len;
    int n;
    uint32_t queries = 0, answered = 0, dropped = 0, formerr = 0;

    len = asm_pkt("#a001 #0100 #0001 #0000 #0000 #0000 .connectivitycheck.gstatic.com" A_IN, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len + 16, "A query: answer of %d bytes, expected %zu", n, len + 16);
    ROW_CHECK(rd16(r) == 0xa001 && rd16(r + 2) == 0x8500 && rd16(r + 6) == 1, "A query: header %04x %04x an %u",
              rd16(r), rd16(r + 2), rd16(r + 6));
    ROW_CHECK(memcmp(r + n - 4, "\x0a\x01\x02\x03", 4) == 0,
              "A query: address %u.%u.%u.%u, expected answer_ip 10.1.2.3", r[n - 4], r[n - 3], r[n - 2], r[n - 1]);
    ROW_CHECK(rd16(r + n - 10) == 0 && rd16(r + n - 8) == 30, "A query: TTL not the configured 30 s");

    len = asm_pkt("#a002 #0100 #0001 #0000 #0000 #0000 .DNS.MSFTNCSI.COM" A_IN, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len + 16 && memcmp(r + n - 4, "\x83\x6b\xff\xff", 4) == 0,
              "override: %d bytes or wrong address", n);

    len = asm_pkt("#a003 #0100 #0001 #0000 #0000 #0000 .mutable.example" A_IN, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len + 16 && memcmp(r + n - 4, "\x07\x07\x07\x07", 4) == 0,
              "an override whose caller's string changed after start: %d bytes or wrong address (names not copied?)",
              n);

    len = asm_pkt("#a004 #0000 #0001 #0000 #0000 #0000 .www.example.com #001c #0001", q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len && rd16(r + 2) == 0x8400 && rd16(r + 6) == 0, "AAAA: %d bytes, flags %04x", n, rd16(r + 2));

    len = asm_pkt("#a005 #0100 #0001 #0000 #0000 #0000 ^12 %00000000", q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++, formerr++;
    ROW_CHECK(n == 12 && (r[3] & 15) == TC_DNS_RCODE_FORMERR, "malformed question: %d bytes, rcode %d", n, r[3] & 15);

    len = asm_pkt("#a006 #1100 #0001 #0000 #0000 #0000 .x" A_IN, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len && (r[3] & 15) == TC_DNS_RCODE_NOTIMP, "STATUS: %d bytes, rcode %d", n, r[3] & 15);

    /* EDNS: the responder's OPT (payload 512); BADVERS for version 1; FORMERR for two OPT records. */
    len = asm_pkt("#a00a #0100 #0001 #0000 #0000 #0001 .edns.example" A_IN OPT0, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len + 16 && rd16(r + 6) == 1 && rd16(r + 10) == 1 &&
                  memcmp(r + n - 11, "\0\0\x29\x02\0\0\0\0\0\0\0", 11) == 0,
              "EDNS query: %d bytes, not the A record and the responder's OPT", n);
    len = asm_pkt("#a00b #0100 #0001 #0000 #0000 #0001 .edns.example" A_IN OPT1, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len && (r[3] & 15) == 0 && rd16(r + 6) == 0 && rd16(r + 10) == 1 && r[n - 6] == 1 &&
                  r[n - 5] == 0,
              "EDNS version 1: %d bytes, not BADVERS with version 0", n);
    len = asm_pkt("#a00c #0100 #0001 #0000 #0000 #0002 .edns.example" A_IN OPT0 OPT0, q);
    n = exchange(lv, q, len, r, sizeof(r), 2000);
    queries++, answered++, formerr++;
    ROW_CHECK(n == 12 && (r[3] & 15) == TC_DNS_RCODE_FORMERR, "two OPT records: %d bytes, rcode %d", n, r[3] & 15);

    /* Longer than the responder's 512-byte buffer: the kernel truncates it, the question is still answered, and the
     * answer is far smaller than the query. */
    len = asm_pkt("#a007 #0100 #0001 #0000 #0000 #0000 .big.example" A_IN, q);
    memset(q + len, 0, 700 - len);
    n = exchange(lv, q, 700, r, sizeof(r), 2000);
    queries++, answered++;
    ROW_CHECK(n == (int)len + 16, "a 700-byte query: %d bytes", n);

    ROW_CHECK(silent(lv, "\x12\x34\x01\x00\x00", 5), "5 bytes of garbage were answered");
    queries++, dropped++;
    ROW_CHECK(silent(lv, "", 0), "an empty datagram was answered");
    queries++, dropped++;
    len = asm_pkt(
        "#a008 #8180 #0001 #0001 #0000 #0000 .www.example.com" A_IN " ^12" A_IN " #0000 #003c #0004 %0a010203", q);
    ROW_CHECK(silent(lv, q, len), "a response packet (QR set) was answered");
    queries++, dropped++;
    len = asm_pkt("#a009 #8000 #0000 #0000 #0000 #0000", q);
    ROW_CHECK(silent(lv, q, len), "a bare response header was answered");
    queries++, dropped++;

    /* A burst larger than one wake-up's share (32): all answered, none lost. */
    len = asm_pkt("#0000 #0100 #0001 #0000 #0000 #0000 .burst.example" A_IN, q);
    uint8_t seen[40] = {0};
    for (int i = 0; i < 40; i++) {
        q[0] = 0xb0, q[1] = (uint8_t)i;
        ROW_CHECK(sendto(lv->fd, q, len, 0, (struct sockaddr *)&lv->to, sizeof(lv->to)) == (ssize_t)len, "burst send");
    }
    queries += 40, answered += 40;
    int got = 0;
    uint64_t end = tc_now_ms() + 3000;
    while (got < 40 && tc_now_ms() < end) {
        ROW_CHECK(tc_loop_run_once(lv->loop, 5) >= 0, "loop error in the burst");
        ssize_t m;
        while ((m = recv(lv->fd, r, sizeof(r), MSG_DONTWAIT)) >= 0) {
            ROW_CHECK(m == (ssize_t)len + 16 && r[0] == 0xb0 && r[1] < 40 && !seen[r[1]],
                      "burst: bad or duplicate answer");
            seen[r[1]] = 1;
            got++;
        }
    }
    ROW_CHECK(got == 40, "burst: %d of 40 answered", got);

    tc_dns_server_stats_t st;
    tc_dns_server_stats(dns, &st);
    ROW_CHECK(st.queries == queries && st.answered == answered && st.dropped == dropped && st.formerr == formerr,
              "stats queries %u answered %u dropped %u formerr %u, expected %u %u %u %u", st.queries, st.answered,
              st.dropped, st.formerr, queries, answered, dropped, formerr);
    return 0;
}

static int check_start_errors(tc_loop_t *loop, uint16_t busy_port)
{
    tc_dns_server_t *d = NULL;
    tc_dns_server_config_t cfg = TC_DNS_SERVER_DEFAULT_CONFIG();
    cfg.port = 0;
    cfg.bind_ip = "localhost";
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EBADADDR, "a host name as bind_ip accepted");
    cfg.bind_ip = "::1";
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EBADADDR, "an IPv6 bind_ip accepted");
    cfg.bind_ip = "127.0.0.1";
    cfg.answer_ip = "0.0.0.0";
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EBADADDR, "answer_ip 0.0.0.0 accepted");
    cfg.answer_ip = "fe80::1";
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EBADADDR, "an IPv6 answer_ip accepted");
    cfg.answer_ip = NULL;
    tc_dns_override_t bad_ov[] = {{"ok.example", {1, 1, 1, 1}}, {NULL, {2, 2, 2, 2}}};
    cfg.overrides = bad_ov;
    cfg.noverrides = 2;
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EINVAL, "an override without a name accepted");
    cfg.overrides = NULL;
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EINVAL, "noverrides 2 with no table accepted");
    cfg.noverrides = 0;
    ROW_CHECK(tc_dns_server_start(NULL, &cfg, &d) == TC_EINVAL, "NULL loop accepted");
    ROW_CHECK(tc_dns_server_start(loop, NULL, &d) == TC_EINVAL, "NULL config accepted");
    cfg.port = busy_port;
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EADDRINUSE, "a second responder on port %u", busy_port);
    cfg.port = 0;
    cfg.bind_ip = "192.0.2.1"; /* TEST-NET-1: never a local address */
    ROW_CHECK(tc_dns_server_start(loop, &cfg, &d) == TC_EADDRNOTAVAIL, "bound to a foreign address");
    cfg.bind_ip = "127.0.0.1";
    /* Out of memory at each allocation of start: TC_ENOMEM and nothing kept. */
    tc_dns_override_t ov[] = {{"a.example", {1, 1, 1, 1}}};
    cfg.overrides = ov;
    cfg.noverrides = 1;
    tc_alloc_stats_t before, after;
    tc_alloc_stats(&before);
    for (size_t budget = 0; budget < 4096; budget += 8) {
        tc_alloc_set_limit(before.bytes_in_use + budget);
        int rc = tc_dns_server_start(loop, &cfg, &d);
        tc_alloc_set_limit(0);
        if (rc == TC_OK) {
            tc_dns_server_stop(d);
            break;
        }
        ROW_CHECK(rc == TC_ENOMEM, "budget %zu: %s", budget, tc_err_name(rc));
        tc_alloc_stats(&after);
        ROW_CHECK(after.bytes_in_use == before.bytes_in_use, "budget %zu: %zu bytes kept after TC_ENOMEM", budget,
                  after.bytes_in_use - before.bytes_in_use);
    }
    tc_alloc_stats(&after);
    ROW_CHECK(after.bytes_in_use == before.bytes_in_use, "%zu bytes kept by a started and stopped responder",
              after.bytes_in_use - before.bytes_in_use);
    ROW_CHECK(d != NULL, "no budget below 4 KiB let the responder start");
    return 0;
}

static int check_live(void)
{
    tc_check_row = "live responder";
    live_t lv = {.loop = NULL, .fd = -1};
    ROW_CHECK(tc_loop_new(&lv.loop) == TC_OK, "tc_loop_new");
    char mutable_name[] = "mutable.example";
    tc_dns_override_t ov[] = {{"dns.msftncsi.com", {131, 107, 255, 255}}, {mutable_name, {7, 7, 7, 7}}};
    tc_dns_server_config_t cfg = TC_DNS_SERVER_DEFAULT_CONFIG();
    cfg.bind_ip = "127.0.0.1";
    cfg.port = 0;
    cfg.answer_ip = "10.1.2.3";
    cfg.ttl_s = 30;
    cfg.overrides = ov;
    cfg.noverrides = COUNT(ov);
    tc_dns_server_t *dns = NULL;
    int rc = tc_dns_server_start(lv.loop, &cfg, &dns);
    ROW_CHECK(rc == TC_OK && dns, "tc_dns_server_start: %s", tc_err_name(rc));
    memset(mutable_name, 'z', sizeof(mutable_name) - 1); /* the responder must have its own copy */
    uint16_t port = tc_dns_server_port(dns);
    ROW_CHECK(port != 0, "port 0 after binding port 0");

    lv.fd = socket(AF_INET, SOCK_DGRAM, 0);
    ROW_CHECK(lv.fd >= 0, "socket: %s", strerror(errno));
    lv.to.sin_family = AF_INET;
    lv.to.sin_port = htons(port);
    lv.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int bad = check_live_answers(&lv, dns);
    tc_check_tally(bad);
    tc_check_row = "start errors";
    tc_check_tally(check_start_errors(lv.loop, port));
    tc_check_row = "live responder teardown";
    close(lv.fd);
    ROW_CHECK(tc_loop_free(lv.loop) == TC_EBUSY, "tc_loop_free with a running responder did not say TC_EBUSY");
    tc_dns_server_stop(dns);
    tc_dns_server_stop(NULL);
    ROW_CHECK(tc_loop_free(lv.loop) == TC_OK, "tc_loop_free after stop");
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    ROW_CHECK(st.bytes_in_use == 0 && st.blocks_in_use == 0, "%zu bytes in %zu blocks left allocated", st.bytes_in_use,
              st.blocks_in_use);
    return 0;
}

/* ---- the responder on its own loop thread ---- */

/* Shared between the test thread and the loop thread; every field after the lock is written under it by jobs posted
 * with tc_loop_post() (the only way another thread may act on the loop) and read under it by the test. */
typedef struct {
    tc_loop_t *loop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;   /* jobs finished */
    int run_rc; /* tc_loop_run()'s result */
    int start_rc;
    tc_dns_server_t *dns;
    uint16_t port;
    tc_sock_info_t reg; /* the responder's registry entry */
    uint32_t nudp;      /* TC_KIND_UDP entries seen */
    tc_dns_server_stats_t stats;
} lt_t;

static void lt_finish(lt_t *t)
{
    pthread_mutex_lock(&t->mu);
    t->done++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

/* Wait (at most 5 s) until n jobs have finished. */
static int lt_wait(lt_t *t, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&t->mu);
    int rc = 0;
    while (t->done < n && rc == 0) {
        rc = pthread_cond_timedwait(&t->cv, &t->mu, &until);
    }
    int ok = t->done >= n;
    pthread_mutex_unlock(&t->mu);
    return ok;
}

static int lt_find_udp(const tc_sock_info_t *info, void *user)
{
    lt_t *t = user;
    if (info->kind == TC_KIND_UDP) {
        t->reg = *info;
        t->nudp++;
    }
    return 0;
}

static void lt_start(tc_loop_t *loop, void *user)
{
    lt_t *t = user;
    tc_dns_server_config_t cfg = TC_DNS_SERVER_DEFAULT_CONFIG(); /* answer_ip NULL: answers with 127.0.0.1 */
    cfg.port = 0;
    pthread_mutex_lock(&t->mu);
    t->start_rc = tc_dns_server_start(loop, &cfg, &t->dns);
    if (t->start_rc == TC_OK) {
        t->port = tc_dns_server_port(t->dns);
    }
    pthread_mutex_unlock(&t->mu);
    lt_finish(t);
}

static void lt_look(tc_loop_t *loop, void *user)
{
    lt_t *t = user;
    pthread_mutex_lock(&t->mu);
    t->nudp = 0;
    tc_registry_foreach(loop, lt_find_udp, t);
    tc_dns_server_stats(t->dns, &t->stats);
    pthread_mutex_unlock(&t->mu);
    lt_finish(t);
}

static void lt_stop(tc_loop_t *loop, void *user)
{
    lt_t *t = user;
    pthread_mutex_lock(&t->mu);
    tc_dns_server_stop(t->dns);
    t->dns = NULL;
    t->nudp = 0;
    tc_registry_foreach(loop, lt_find_udp, t);
    pthread_mutex_unlock(&t->mu);
    tc_loop_stop(loop);
    lt_finish(t);
}

static void *lt_run(void *arg)
{
    lt_t *t = arg;
    t->run_rc = tc_loop_run(t->loop);
    return NULL;
}

/* One query over a blocking kernel socket (2 s receive timeout); returns the answer's length or -1. */
static int lt_ask(int fd, const struct sockaddr_in *to, const uint8_t *q, size_t qlen, uint8_t *r, size_t cap)
{
    if (sendto(fd, q, qlen, 0, (const struct sockaddr *)to, sizeof(*to)) != (ssize_t)qlen) {
        return -1;
    }
    ssize_t n = recv(fd, r, cap, 0);
    return n < 0 ? -1 : (int)n;
}

static int lt_exchange(lt_t *t, int fd)
{
    pthread_mutex_lock(&t->mu);
    uint16_t port = t->port;
    pthread_mutex_unlock(&t->mu);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    ROW_CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "SO_RCVTIMEO: %s", strerror(errno));

    uint8_t q[PKT_MAX], r[600];
    size_t in = 0, out = 0;
    size_t len = asm_pkt("#c001 #0100 #0001 #0000 #0000 #0000 .WWW.Example.org" A_IN, q);
    int n = lt_ask(fd, &to, q, len, r, sizeof(r));
    ROW_CHECK(n == (int)len + 16, "A over the loop thread: %d bytes, expected %zu", n, len + 16);
    ROW_CHECK(rd16(r) == 0xc001 && rd16(r + 2) == 0x8500 && rd16(r + 4) == 1 && rd16(r + 6) == 1 && rd16(r + 10) == 0,
              "A over the loop thread: header %04x %04x", rd16(r), rd16(r + 2));
    ROW_CHECK(memcmp(r + 12, q + 12, len - 12) == 0, "question not echoed in its original case");
    static const uint8_t rec[] = {0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1};
    ROW_CHECK(memcmp(r + len, rec, sizeof(rec)) == 0, "default config: not an A record for 127.0.0.1 with TTL 60");
    in += len, out += (size_t)n;

    len = asm_pkt("#c002 #0100 #0001 #0000 #0000 #0001 .www.example.org #001c #0001 %00 #0029 #04d0 #0000 #0000 #0000",
                  q);
    n = lt_ask(fd, &to, q, len, r, sizeof(r));
    ROW_CHECK(n == (int)len && rd16(r) == 0xc002 && rd16(r + 2) == 0x8500 && rd16(r + 6) == 0 && rd16(r + 10) == 1 &&
                  memcmp(r + n - 11, "\0\0\x29\x02\0\0\0\0\0\0\0", 11) == 0,
              "AAAA with EDNS over the loop thread: %d bytes, flags %04x, not the responder's OPT", n,
              n >= 4 ? rd16(r + 2) : 0);
    in += len, out += (size_t)n;

    len = asm_pkt("#c003 #0100 #0002 #0000 #0000 #0000 .a" A_IN " .b" A_IN, q);
    n = lt_ask(fd, &to, q, len, r, sizeof(r));
    ROW_CHECK(n == 12 && rd16(r) == 0xc003 && (r[3] & 15) == TC_DNS_RCODE_FORMERR, "QDCOUNT 2 over the loop thread: %d",
              n);
    in += len, out += (size_t)n;

    ROW_CHECK(tc_loop_post(t->loop, lt_look, t) == TC_OK && lt_wait(t, 2), "the registry job did not run");
    pthread_mutex_lock(&t->mu);
    tc_sock_info_t e = t->reg;
    uint32_t nudp = t->nudp;
    tc_dns_server_stats_t st = t->stats;
    pthread_mutex_unlock(&t->mu);
    ROW_CHECK(nudp == 1, "%u UDP entries in the registry, expected 1", nudp);
    ROW_CHECK(e.state == TC_STATE_LISTENING && e.owner && strcmp(e.owner, "dns") == 0,
              "registry entry: state %u owner %s", e.state, e.owner ? e.owner : "(null)");
    ROW_CHECK(e.local.family == TC_AF_INET && e.local.port == port && memcmp(e.local.ip, "\x7f\0\0\x01", 4) == 0,
              "registry entry: local address is not 127.0.0.1:%u", port);
    ROW_CHECK(e.bytes_in == in && e.bytes_out == out, "registry entry: %llu bytes in, %llu out; expected %zu, %zu",
              (unsigned long long)e.bytes_in, (unsigned long long)e.bytes_out, in, out);
    ROW_CHECK(st.queries == 3 && st.answered == 3 && st.dropped == 0 && st.formerr == 1,
              "stats queries %u answered %u dropped %u formerr %u", st.queries, st.answered, st.dropped, st.formerr);
    return 0;
}

static int check_loop_thread(void)
{
    tc_check_row = "responder on a loop thread";
    tc_alloc_stats_t as;
    tc_alloc_stats(&as);
    ROW_CHECK(as.bytes_in_use == 0, "%zu bytes in use before the test", as.bytes_in_use);
    lt_t t;
    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.mu, NULL);
    pthread_cond_init(&t.cv, NULL);
    ROW_CHECK(tc_loop_new(&t.loop) == TC_OK, "tc_loop_new");
    pthread_t th;
    ROW_CHECK(pthread_create(&th, NULL, lt_run, &t) == 0, "pthread_create");
    int bad = 1;
    int fd = -1;
    if (tc_loop_post(t.loop, lt_start, &t) != TC_OK || !lt_wait(&t, 1)) {
        ROW_FAIL("the start job did not run");
    } else if (t.start_rc != TC_OK) {
        ROW_FAIL("tc_dns_server_start on the loop thread: %s", tc_err_name(t.start_rc));
    } else if ((fd = socket(AF_INET, SOCK_DGRAM, 0)) < 0) {
        ROW_FAIL("socket: %s", strerror(errno));
    } else {
        bad = lt_exchange(&t, fd);
    }
    if (fd >= 0) {
        close(fd);
    }
    /* Stop whatever happened, so the loop thread always ends. */
    pthread_mutex_lock(&t.mu);
    int before = t.done;
    pthread_mutex_unlock(&t.mu);
    if (tc_loop_post(t.loop, lt_stop, &t) != TC_OK || !lt_wait(&t, before + 1)) {
        ROW_FAIL("the stop job did not run");
        tc_loop_stop(t.loop);
        bad = 1;
    }
    pthread_join(th, NULL);
    pthread_mutex_destroy(&t.mu);
    pthread_cond_destroy(&t.cv);
    if (bad) {
        return 1; /* reported above; the loop may still hold the responder */
    }
    ROW_CHECK(t.run_rc == TC_OK, "tc_loop_run: %s", tc_err_name(t.run_rc));
    ROW_CHECK(t.nudp == 0, "the UDP entry is still in the registry after stop");
    ROW_CHECK(tc_loop_free(t.loop) == TC_OK, "tc_loop_free after stop");
    tc_alloc_stats(&as);
    ROW_CHECK(as.bytes_in_use == 0 && as.blocks_in_use == 0, "%zu bytes in %zu blocks left allocated", as.bytes_in_use,
              as.blocks_in_use);
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < COUNT(ANS_ROWS); i++) {
        tc_check_row = ANS_ROWS[i].why;
        tc_check_tally(check_ans_row(&ANS_ROWS[i], 0));
    }
    for (size_t i = 0; i < COUNT(OPT_ANS_ROWS); i++) {
        tc_check_row = OPT_ANS_ROWS[i].why;
        tc_check_tally(check_ans_row(&OPT_ANS_ROWS[i], 1));
    }
    printf("answers: %zu rows and %zu with an OPT record, with every smaller capacity and every prefix\n",
           COUNT(ANS_ROWS), COUNT(OPT_ANS_ROWS));
    for (size_t i = 0; i < COUNT(EDNS_ROWS); i++) {
        tc_check_row = EDNS_ROWS[i].why;
        tc_check_tally(check_edns_row(&EDNS_ROWS[i]));
    }
    printf("edns: %zu rows\n", COUNT(EDNS_ROWS));
    for (size_t i = 0; i < COUNT(NAME_ROWS); i++) {
        tc_check_row = NAME_ROWS[i].why;
        tc_check_tally(check_name_row(&NAME_ROWS[i]));
    }
    printf("names: %zu rows\n", COUNT(NAME_ROWS));
    tc_check_row = "pointer hops";
    tc_check_tally(check_hops());
    tc_check_row = "policy edges";
    tc_check_tally(check_policy_edges());
    tc_check_tally(check_live());
    printf("live responder on 127.0.0.1 over a tc_loop\n");
    int bad = check_loop_thread();
    tc_check_tally(bad);
    printf("responder on a loop thread, queried from the test thread\n");
    return tc_check_summary();
}
