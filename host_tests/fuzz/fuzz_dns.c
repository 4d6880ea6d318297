/*
 * fuzz_dns.c - the captive portal's DNS parser and answer builder (tc_dns.h) on arbitrary datagrams.
 *
 * Input: the datagram itself (so real captured queries can join the corpus as they are). Checked on every input:
 *   - tc_dns_answer() drops exactly what tc_dns_parse_query() calls TC_DNS_EDROP, never answers more than the query
 *     + 16 bytes nor more than 298, and shapes the answer as the policy table says: FORMERR / NOTIMP header only, the
 *     question echoed byte for byte, BADVERS for an OPT of version > 0, one exact A record (override or device
 *     address) for A and ANY in class IN, NODATA otherwise, and the responder's exact OPT when the query has one
 *     (header-only FORMERR/NOTIMP answers too, when the questions before it can be stepped over);
 *   - what tc_dns_parse_query() reads of the OPT record agrees with an independent reference walk of the records
 *     after the question (decoded with the reference decoder below);
 *   - the header: id, opcode and RD copied, QR and AA set, every other flag clear, NSCOUNT = 0, ARCOUNT = 0 or 1 (the
 *     OPT);
 *   - an answer is dropped when fed back (QR set: two portals never answer each other), and with QR cleared it parses
 *     to the same question;
 *   - one byte less of output capacity gives TC_DNS_ESPACE, exactly the capacity gives the same bytes;
 *   - whether the question parses agrees with an independent reference (a question at offset 12 can hold no
 *     compression pointer: any pointer there points at or after itself, or into the header);
 *   - tc_dns_read_name() at every offset agrees with an independent reference decoder written from the documented
 *     rules (pointers strictly below everything read so far and not into the header, labels <= 63, 255 wire bytes),
 *     in its result, its text and the offset after the name, and on failure leaves the offset and gives "";
 *   - tc_dns_parse_query() leaves no name behind when it read no question.
 * Every buffer is a heap block of exactly its size, so ASan sees any read or write past it.
 * Replay: gcc ... fuzz_dns.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tc_dns.h"

#define MAX_INPUT 2048    /* a DNS datagram on the portal is <= 512 bytes; more only slows the fuzzer down */
#define MAX_NAME_SCAN 600 /* offsets at which tc_dns_read_name() is tried */

static const tc_dns_override_t OVERRIDES[] = {
    {"dns.msftncsi.com", {131, 107, 255, 255}},
    {"a", {10, 0, 0, 1}},
    {"", {10, 0, 0, 2}},
};

static const tc_dns_policy_t POLICY = {
    .ipv4 = {192, 168, 4, 1},
    .ttl_s = 0x01020304,
    .overrides = OVERRIDES,
    .noverrides = sizeof(OVERRIDES) / sizeof(OVERRIDES[0]),
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        abort();
    }
    return p;
}

static uint8_t *dup_exact(const uint8_t *src, size_t n)
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

static void check(int cond)
{
    if (!cond) {
        abort();
    }
}

/* Reference decoder: first gathers the labels (offset, length) following the rules, then writes the text. */
static int ref_read_name(const uint8_t *m, size_t len, size_t *off, char *out)
{
    size_t lab_at[128], lab_len[128], nlab = 0;
    size_t pos = *off, floor = *off, resume = 0, wire = 1; /* wire counts the final zero up front */
    int hops = 0;
    while (1) {
        if (pos >= len) {
            return -1;
        }
        unsigned b = m[pos];
        if (b >= 0xC0) {
            if (len - pos < 2) {
                return -1;
            }
            size_t t = ((size_t)(b - 0xC0) << 8) + m[pos + 1];
            if (t < 12 || t >= floor || hops == 127) {
                return -1;
            }
            hops++;
            if (resume == 0) {
                resume = pos + 2;
            }
            floor = t;
            pos = t;
        } else if (b > 63) {
            return -1;
        } else if (b == 0) {
            if (resume == 0) {
                resume = pos + 1;
            }
            break;
        } else {
            if (len - pos - 1 < b) {
                return -1;
            }
            if (memchr(m + pos + 1, 0, b) != NULL) {
                return -1; /* a NUL inside a label is refused */
            }
            wire += 1 + b;
            if (wire > 255 || nlab == 128) {
                return -1;
            }
            lab_at[nlab] = pos + 1;
            lab_len[nlab++] = b;
            pos += 1 + b;
        }
    }
    size_t t = 0;
    for (size_t i = 0; i < nlab; i++) {
        if (i) {
            out[t++] = '.';
        }
        for (size_t k = 0; k < lab_len[i]; k++) {
            char c = (char)m[lab_at[i] + k];
            out[t++] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
        }
    }
    out[t] = '\0';
    *off = resume;
    return (int)t;
}

/* Reference for the question at 12: plain labels only; returns the offset past QTYPE/QCLASS or 0. */
static size_t ref_question_end(const uint8_t *m, size_t len)
{
    size_t pos = 12, wire = 0;
    while (pos < len && m[pos] != 0) {
        if (m[pos] > 63 || len - pos - 1 < m[pos] || memchr(m + pos + 1, 0, m[pos]) != NULL) {
            return 0; /* a NUL inside a label is refused */
        }
        wire += 1u + m[pos];
        pos += 1u + m[pos];
    }
    if (pos >= len || wire + 1 > 255 || len - pos - 1 < 4) {
        return 0;
    }
    return pos + 1 + 4;
}

/* Reference for QDCOUNT other than 1: the offset past all the questions (a name, TYPE and CLASS each), where the
 * records begin, or 0 when one of them is malformed or cut short (then no OPT can be found). */
static size_t ref_skip_questions(const uint8_t *m, size_t len)
{
    char name[TC_DNS_MAX_NAME_TEXT + 1];
    size_t pos = 12;
    for (unsigned i = 0; i < rd16(m + 4); i++) {
        if (ref_read_name(m, len, &pos, name) < 0 || len - pos < 4) {
            return 0;
        }
        pos += 4;
    }
    return pos;
}

/* Reference for the records after the question at qend: the answer, authority and additional ones by the header's
 * counts, read while whole; returns TC_DNS_EDNS_* and, for one root OPT, its version and payload (at least 512). */
static int ref_edns(const uint8_t *m, size_t len, size_t qend, unsigned *version, unsigned *payload)
{
    unsigned long before_ar = (unsigned long)rd16(m + 6) + rd16(m + 8), all = before_ar + rd16(m + 10);
    char name[TC_DNS_MAX_NAME_TEXT + 1];
    size_t pos = qend;
    int found = 0;
    *version = 0;
    *payload = 512;
    for (unsigned long i = 0; i < all; i++) {
        int nl = ref_read_name(m, len, &pos, name);
        if (nl < 0 || len - pos < 10 || len - pos - 10 < rd16(m + pos + 8)) {
            break;
        }
        if (i >= before_ar && rd16(m + pos) == 41) {
            if (found || nl != 0) {
                *version = 0;
                *payload = 512;
                return TC_DNS_EDNS_BAD;
            }
            found = 1;
            *version = m[pos + 5];
            *payload = rd16(m + pos + 2) > 512 ? rd16(m + pos + 2) : 512;
        }
        pos += 10u + rd16(m + pos + 8);
    }
    return found ? TC_DNS_EDNS_OK : TC_DNS_EDNS_NONE;
}

static int name_ieq(const char *a, const char *b)
{
    for (; *a || *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y) {
            return 0;
        }
    }
    return 1;
}

static void check_names(const uint8_t *m, size_t len)
{
    char *out = xmalloc(TC_DNS_MAX_NAME_TEXT + 1);
    char ref[TC_DNS_MAX_NAME_TEXT + 1];
    size_t last = len < MAX_NAME_SCAN ? len : MAX_NAME_SCAN;
    for (size_t start = 0; start <= last; start++) {
        size_t off = start, roff = start;
        int r = tc_dns_read_name(m, len, &off, out);
        int rr = ref_read_name(m, len, &roff, ref);
        check(r == rr);
        if (r < 0) {
            check(off == start && out[0] == '\0');
            continue;
        }
        check(r <= 253 && off == roff && off > start && off <= len && memcmp(out, ref, (size_t)r + 1) == 0);
        for (int i = 0; i < r; i++) {
            check(!(out[i] >= 'A' && out[i] <= 'Z'));
        }
    }
    free(out);
}

static void check_answer(const uint8_t *q, size_t len)
{
    tc_dns_question_t qq;
    int pr = tc_dns_parse_query(q, len, &qq);
    check(qq.question_end != 0 || qq.name[0] == '\0');
    uint8_t *out = xmalloc(600);
    int n = tc_dns_answer(q, len, &POLICY, out, 600);
    check(n >= 0 && (size_t)n <= len + 16 && n <= 298);
    check((n == 0) == (pr == TC_DNS_EDROP));
    if (len < 12 || (q[2] & 0x80)) {
        check(n == 0);
    }
    if (n == 0) {
        free(out);
        return;
    }

    /* Independent verdict on the question. */
    unsigned opcode = (q[2] >> 3) & 15;
    size_t ref_end = rd16(q + 4) == 1 ? ref_question_end(q, len) : 0;
    if (opcode != 0) {
        check(pr == TC_DNS_ENOTIMP && qq.question_end == ref_end);
    } else if (ref_end == 0) {
        check(pr == TC_DNS_EFORMAT);
    } else {
        check(pr == 0 && qq.question_end == ref_end);
    }
    unsigned version = 0, payload = 512;
    size_t records = rd16(q + 4) == 1 ? ref_end : ref_skip_questions(q, len);
    int edns = records ? ref_edns(q, len, records, &version, &payload) : TC_DNS_EDNS_NONE;
    check(qq.edns == edns && qq.edns_version == version && qq.edns_payload == payload);

    uint16_t qf = rd16(q + 2), rf = rd16(out + 2);
    check(rd16(out) == rd16(q) && (rf & 0x8000) && (rf & 0x0400));
    check((rf & 0x7800) == (qf & 0x7800) && (rf & 0x0100) == (qf & 0x0100) && (rf & 0x02f0) == 0);
    unsigned rcode = rf & 15, qd = rd16(out + 4), an = rd16(out + 6), ar = rd16(out + 10);
    check(rd16(out + 8) == 0);
    size_t expect;
    if (pr == TC_DNS_EFORMAT || (pr == TC_DNS_ENOTIMP && qq.question_end == 0)) {
        check(rcode == (pr == TC_DNS_EFORMAT ? TC_DNS_RCODE_FORMERR : TC_DNS_RCODE_NOTIMP) && qd == 0 && an == 0);
        /* RFC 6891 7: the query's OPT, when one could be found, is answered by the responder's own (rcode in the
         * header, extended rcode 0). */
        int opt = edns == TC_DNS_EDNS_OK;
        const uint8_t want[] = {0, 0, 41, 2, 0, 0, 0, 0, 0, 0, 0};
        check(ar == (unsigned)opt && (!opt || ((size_t)n == 23 && memcmp(out + 12, want, sizeof(want)) == 0)));
        expect = opt ? 23 : 12;
    } else if (edns == TC_DNS_EDNS_BAD) {
        check(rcode == TC_DNS_RCODE_FORMERR && qd == 0 && an == 0 && ar == 0);
        expect = 12;
    } else {
        check(qd == 1 && memcmp(out + 12, q + 12, qq.question_end - 12) == 0);
        check(qq.qtype == rd16(q + qq.question_end - 4) && qq.qclass == rd16(q + qq.question_end - 2));
        int opt = edns == TC_DNS_EDNS_OK, badvers = opt && version > 0;
        int notimp = !badvers && (pr == TC_DNS_ENOTIMP || qq.qclass != TC_DNS_CLASS_IN);
        int a = !badvers && !notimp && (qq.qtype == TC_DNS_TYPE_A || qq.qtype == TC_DNS_TYPE_ANY);
        check(rcode == (notimp ? TC_DNS_RCODE_NOTIMP : TC_DNS_RCODE_NOERROR) && an == (unsigned)a);
        check(ar == (unsigned)opt);
        expect = qq.question_end + (a ? 16 : 0) + (opt ? 11 : 0);
        if (opt) {
            /* Root, OPT, payload 512, extended rcode 1 for BADVERS, version 0, flags 0, no options. */
            const uint8_t want[] = {0, 0, 41, 2, 0, (uint8_t)badvers, 0, 0, 0, 0, 0};
            check((size_t)n == expect && memcmp(out + n - 11, want, sizeof(want)) == 0);
        }
        if (a) {
            const uint8_t *r = out + qq.question_end;
            const uint8_t *ip = POLICY.ipv4;
            for (size_t i = 0; i < POLICY.noverrides; i++) {
                if (name_ieq(OVERRIDES[i].name, qq.name)) {
                    ip = OVERRIDES[i].ipv4;
                    break;
                }
            }
            static const uint8_t head[] = {0xc0, 12, 0, 1, 0, 1, 1, 2, 3, 4, 0, 4};
            check(memcmp(r, head, sizeof(head)) == 0 && memcmp(r + 12, ip, 4) == 0);
        }
    }
    check((size_t)n == expect);

    /* Fed back, the answer is dropped; with QR cleared, it asks the same question. */
    uint8_t *back = dup_exact(out, (size_t)n);
    check(tc_dns_answer(back, (size_t)n, &POLICY, out + 300, 300) == 0);
    if (qd == 1) {
        tc_dns_question_t bq;
        back[2] &= 0x7f;
        int bp = tc_dns_parse_query(back, (size_t)n, &bq);
        check(bp == pr && strcmp(bq.name, qq.name) == 0 && bq.qtype == qq.qtype && bq.qclass == qq.qclass &&
              bq.question_end == qq.question_end);
        check(bq.edns == (ar ? TC_DNS_EDNS_OK : TC_DNS_EDNS_NONE) && bq.edns_version == 0 && bq.edns_payload == 512);
    }
    free(back);

    /* Capacity edges, in blocks of exactly that size. */
    uint8_t *small = xmalloc((size_t)n - 1);
    check(tc_dns_answer(q, len, &POLICY, small, (size_t)n - 1) == TC_DNS_ESPACE);
    free(small);
    uint8_t *exact = xmalloc((size_t)n);
    check(tc_dns_answer(q, len, &POLICY, exact, (size_t)n) == n && memcmp(exact, out, (size_t)n) == 0);
    free(exact);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) {
        return 0;
    }
    uint8_t *q = dup_exact(data, size);
    check_answer(q, size);
    check_names(q, size);
    free(q);
    return 0;
}
