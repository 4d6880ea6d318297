/*
 * tc_dns.c - the pure DNS parser and answer builder of the captive portal (see tc_dns.h for the policy table).
 */
#include "tc_dns.h"

#include <string.h>

#define HEADER_LEN 12
#define FLAG_QR 0x8000u
#define FLAG_AA 0x0400u
#define FLAG_RD 0x0100u
#define OPCODE(flags) (((flags) >> 11) & 0xf)
/* A legitimate name has at most 127 labels and a compressor emits at most one pointer per label, so 127 hops never
 * refuse a valid name (32 did: a 33-label name compressed label by label); each hop goes strictly backwards anyway. */
#define MAX_POINTER_HOPS 127
#define A_LEN 16   /* an A record: pointer, TYPE, CLASS, TTL, RDLENGTH, address */
#define OPT_LEN 11 /* the responder's OPT: root, TYPE, CLASS, TTL, RDLENGTH 0 */
/* 512: what any requester accepts (RFC 1035 4.2.1; RFC 6891 6.2.5 reads a lower OPT payload as 512). The largest
 * answer fits it, so no answer needs TC or a requester's payload size. */
_Static_assert(HEADER_LEN + TC_DNS_MAX_NAME_WIRE + 4 + A_LEN + OPT_LEN <= 512, "the largest answer must fit 512 bytes");

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static int read_name(const uint8_t *msg, size_t len, size_t *off, char *out)
{
    size_t pos = *off;
    size_t end_after = 0; /* where the caller continues: after the first pointer, or after the final zero */
    int jumped = 0, hops = 0;
    size_t wire = 0, text = 0;
    size_t lowest = pos; /* pointers must go strictly below every position read so far */
    for (;;) {
        if (pos >= len) {
            return -1; /* reads past the datagram */
        }
        uint8_t l = msg[pos];
        if ((l & 0xC0) == 0xC0) {
            if (pos + 1 >= len) {
                return -1;
            }
            size_t target = (size_t)(l & 0x3F) << 8 | msg[pos + 1];
            if (target >= lowest || target < HEADER_LEN || ++hops > MAX_POINTER_HOPS) {
                return -1; /* forward or self pointer: a loop, or a read of what is not yet a name */
            }
            if (!jumped) {
                end_after = pos + 2;
                jumped = 1;
            }
            pos = target;
            lowest = target;
            continue;
        }
        if (l & 0xC0) {
            return -1; /* 0x40 / 0x80: extended label types, not used */
        }
        if (l == 0) {
            wire += 1;
            if (wire > TC_DNS_MAX_NAME_WIRE) {
                return -1;
            }
            if (!jumped) {
                end_after = pos + 1;
            }
            break;
        }
        if (pos + 1 + l > len) {
            return -1;
        }
        wire += 1 + (size_t)l;
        if (wire > TC_DNS_MAX_NAME_WIRE - 1) {
            return -1; /* the terminating zero would not fit in 255 */
        }
        if (text && out) {
            out[text] = '.';
        }
        text += text ? 1 : 0;
        for (size_t i = 0; i < l; i++) {
            uint8_t c = msg[pos + 1 + i];
            if (c == 0) {
                /* No host name holds a NUL, and the text form would end there: "evil\0.example" read as "evil"
                 * could match an override it is not. Refused (FORMERR) rather than guessed at. */
                return -1;
            }
            if (out) {
                out[text] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            }
            text++;
        }
        pos += 1 + (size_t)l;
    }
    if (out) {
        out[text] = '\0';
    }
    *off = end_after;
    return (int)text;
}

int tc_dns_read_name(const uint8_t *msg, size_t len, size_t *off, char *out)
{
    int n = read_name(msg, len, off, out);
    if (n < 0) {
        out[0] = '\0'; /* never leave a partial, unterminated name behind */
    }
    return n;
}

/* The records after the question (answer, authority, additional, by the header's counts) read as far as they are
 * whole; the OPT records among the additional ones fill q's EDNS fields (RFC 6891). */
static void read_edns(const uint8_t *msg, size_t len, size_t off, tc_dns_question_t *q)
{
    uint32_t before_ar = (uint32_t)get16(msg + 6) + get16(msg + 8);
    uint32_t total = before_ar + get16(msg + 10);
    for (uint32_t i = 0; i < total; i++) {
        int owner = read_name(msg, len, &off, NULL);
        if (owner < 0 || len - off < 10 || len - off - 10 < get16(msg + off + 8)) {
            return; /* cut short or malformed: the rest is ignored, as a query's other records always were */
        }
        if (i >= before_ar && get16(msg + off) == TC_DNS_TYPE_OPT) {
            if (q->edns != TC_DNS_EDNS_NONE || owner != 0) {
                q->edns = TC_DNS_EDNS_BAD; /* RFC 6891 6.1.1: one OPT at most, owned by the root */
                q->edns_version = 0;
                q->edns_payload = 512;
                return;
            }
            uint16_t payload = get16(msg + off + 2);
            q->edns = TC_DNS_EDNS_OK;
            q->edns_version = msg[off + 5]; /* TTL: extended rcode, VERSION, DO and Z */
            q->edns_payload = payload > 512 ? payload : 512;
        }
        off += 10 + (size_t)get16(msg + off + 8);
    }
}

/* Step *off over n questions (a name, TYPE and CLASS each); 0 when one is malformed or cut short. Each takes at
 * least 5 bytes, so a large QDCOUNT ends with the datagram. */
static int skip_questions(const uint8_t *msg, size_t len, uint16_t n, size_t *off)
{
    for (uint16_t i = 0; i < n; i++) {
        if (read_name(msg, len, off, NULL) < 0 || len - *off < 4) {
            return 0;
        }
        *off += 4;
    }
    return 1;
}

int tc_dns_parse_query(const uint8_t *msg, size_t len, tc_dns_question_t *q)
{
    memset(q, 0, sizeof(*q));
    q->edns_payload = 512;
    if (msg == NULL || len < HEADER_LEN) {
        return TC_DNS_EDROP;
    }
    q->id = get16(msg);
    q->flags = get16(msg + 2);
    if (q->flags & FLAG_QR) {
        return TC_DNS_EDROP; /* a response: answering it could start an endless exchange between two portals */
    }
    /* Another opcode still has its question read, to echo it in the NOTIMP answer when there is exactly one. */
    int rc = OPCODE(q->flags) != 0 ? TC_DNS_ENOTIMP : 0;
    uint16_t qdcount = get16(msg + 4);
    size_t off = HEADER_LEN;
    if (qdcount != 1) {
        /* 0 questions: nothing to answer; several: no server supports it (RFC 9619). Their OPT is still read when
         * every question can be stepped over: the header-only answer then carries one too (RFC 6891 7). */
        if (skip_questions(msg, len, qdcount, &off)) {
            read_edns(msg, len, off, q);
        }
        return rc ? rc : TC_DNS_EFORMAT;
    }
    if (tc_dns_read_name(msg, len, &off, q->name) < 0 || off + 4 > len) {
        q->name[0] = '\0';
        return rc ? rc : TC_DNS_EFORMAT; /* where the records begin is unknown: no OPT can be found */
    }
    q->qtype = get16(msg + off);
    q->qclass = get16(msg + off + 2);
    q->question_end = off + 4;
    read_edns(msg, len, q->question_end, q);
    return rc;
}

static int name_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a - 'A' + 'a') : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b - 'A' + 'a') : *b;
        if (x != y) {
            return 0;
        }
        if (x == '\0') {
            return 1;
        }
    }
}

/* Header of an answer: the query's id and RD, QR and AA set, the rcode's low 4 bits, the given counts. */
static void put_header(uint8_t *out, const tc_dns_question_t *q, int rcode, uint16_t qd, uint16_t an, uint16_t ar)
{
    put16(out, q->id);
    put16(out + 2, (uint16_t)(FLAG_QR | FLAG_AA | (q->flags & FLAG_RD) | (OPCODE(q->flags) << 11) | (rcode & 0xf)));
    put16(out + 4, qd);
    put16(out + 6, an);
    put16(out + 8, 0);
    put16(out + 10, ar);
}

/* The A record of an answer at w (A_LEN bytes): the first override naming the question, else the device. */
static void put_a(uint8_t *w, const tc_dns_policy_t *policy, const char *name)
{
    const uint8_t *ip = policy->ipv4;
    for (size_t i = 0; policy->overrides && i < policy->noverrides; i++) {
        if (policy->overrides[i].name && name_ieq(policy->overrides[i].name, name)) {
            ip = policy->overrides[i].ipv4;
            break;
        }
    }
    put16(w, 0xC000 | HEADER_LEN); /* the name: a pointer to the question's */
    put16(w + 2, TC_DNS_TYPE_A);
    put16(w + 4, TC_DNS_CLASS_IN);
    put16(w + 6, (uint16_t)(policy->ttl_s >> 16));
    put16(w + 8, (uint16_t)policy->ttl_s);
    put16(w + 10, 4);
    memcpy(w + 12, ip, 4);
}

/* The responder's OPT record at w (OPT_LEN bytes), for an answer with this (possibly extended) rcode. */
static void put_opt(uint8_t *w, int rcode)
{
    w[0] = 0; /* the root */
    put16(w + 1, TC_DNS_TYPE_OPT);
    put16(w + 3, TC_DNS_EDNS_PAYLOAD);
    w[5] = (uint8_t)(rcode >> 4); /* the extended rcode's upper 8 bits */
    w[6] = 0;                     /* version 0 */
    put16(w + 7, 0);              /* DO clear: no DNSSEC here (RFC 3225) */
    put16(w + 9, 0);              /* no options: the query's are not echoed */
}

int tc_dns_answer(const uint8_t *query, size_t len, const tc_dns_policy_t *policy, uint8_t *out, size_t cap)
{
    tc_dns_question_t q;
    int rc = tc_dns_parse_query(query, len, &q);
    if (rc == TC_DNS_EDROP) {
        return 0;
    }
    if (cap < HEADER_LEN) {
        return TC_DNS_ESPACE;
    }
    if (q.question_end == 0 || q.edns == TC_DNS_EDNS_BAD) {
        int notimp = q.question_end == 0 && rc == TC_DNS_ENOTIMP; /* a bad OPT is FORMERR whatever the opcode */
        int rcode = notimp ? TC_DNS_RCODE_NOTIMP : TC_DNS_RCODE_FORMERR;
        /* RFC 6891 7: a readable OPT in the request, one in the response, header-only ones too. No amplification:
         * the query held at least a header and an OPT, as many bytes as this answer. */
        int opt = q.edns == TC_DNS_EDNS_OK;
        if (opt && cap < HEADER_LEN + OPT_LEN) {
            return TC_DNS_ESPACE;
        }
        if (opt) {
            put_opt(out + HEADER_LEN, rcode);
        }
        put_header(out, &q, rcode, 0, 0, (uint16_t)opt);
        return HEADER_LEN + (opt ? OPT_LEN : 0);
    }
    int rcode = TC_DNS_RCODE_NOERROR, an = 0;
    if (q.edns == TC_DNS_EDNS_OK && q.edns_version > 0) {
        rcode = TC_DNS_RCODE_BADVERS; /* RFC 6891 6.1.3: only version 0 is implemented */
    } else if (rc == TC_DNS_ENOTIMP || q.qclass != TC_DNS_CLASS_IN) {
        rcode = TC_DNS_RCODE_NOTIMP;
    } else {
        an = q.qtype == TC_DNS_TYPE_A || q.qtype == TC_DNS_TYPE_ANY; /* else NODATA: the name exists, the type not */
    }
    int opt = q.edns == TC_DNS_EDNS_OK; /* RFC 6891 7: an OPT in the request, one in the response */
    /* The question is copied as it came (its name may use a pointer only if it points into the header, which
     * read_name refuses, so the copy is self-contained). */
    size_t qlen = q.question_end - HEADER_LEN;
    size_t n = HEADER_LEN + qlen + (an ? A_LEN : 0) + (opt ? OPT_LEN : 0);
    if (cap < n) {
        return TC_DNS_ESPACE;
    }
    memcpy(out + HEADER_LEN, query + HEADER_LEN, qlen);
    uint8_t *w = out + HEADER_LEN + qlen;
    if (an) {
        put_a(w, policy, q.name);
        w += A_LEN;
    }
    if (opt) {
        put_opt(w, rcode);
    }
    put_header(out, &q, rcode, 1, (uint16_t)an, (uint16_t)opt);
    return (int)n;
}

/* ---- the client side: one question out, its answer in (name resolution through the loop, tc_resolve.c) ---- */

int tc_dns_build_query(uint16_t id, const char *name, uint16_t qtype, uint8_t *out, size_t cap)
{
    if (name == NULL || out == NULL) {
        return TC_DNS_EFORMAT;
    }
    size_t n = strlen(name);
    if (n > 0 && name[n - 1] == '.') {
        n--; /* a fully qualified "example.com." is the same name */
    }
    if (n == 0 || n > TC_DNS_MAX_NAME_TEXT - 1) {
        return TC_DNS_EFORMAT;
    }
    size_t need = HEADER_LEN + n + 2 + 4;
    if (cap < need) {
        return TC_DNS_ESPACE;
    }
    memset(out, 0, HEADER_LEN);
    put16(out, id);
    put16(out + 2, FLAG_RD); /* a standard query asking for recursion */
    put16(out + 4, 1);
    size_t w = HEADER_LEN;
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && name[i] != '.') {
            continue;
        }
        size_t l = i - start;
        if (l == 0 || l > 63) {
            return TC_DNS_EFORMAT; /* an empty label ("a..b") or one over 63 bytes */
        }
        out[w++] = (uint8_t)l;
        for (size_t k = start; k < i; k++) {
            char c = name[k];
            out[w++] = (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        start = i + 1;
    }
    out[w++] = 0;
    put16(out + w, qtype);
    put16(out + w + 2, TC_DNS_CLASS_IN);
    return (int)(w + 4);
}

/* The position of the next label of a name that read_name() has accepted: compression pointers followed (they only
 * go backwards, so this ends). */
static size_t label_at(const uint8_t *msg, size_t pos)
{
    while ((msg[pos] & 0xC0) == 0xC0) {
        pos = (size_t)(msg[pos] & 0x3F) << 8 | msg[pos + 1];
    }
    return pos;
}

static uint8_t lower(uint8_t c)
{
    return (uint8_t)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
}

/* Two names of one message, both accepted by read_name(), compared in wire form, ASCII case ignored. */
static int wire_ieq(const uint8_t *msg, size_t a, size_t b)
{
    for (;;) {
        a = label_at(msg, a);
        b = label_at(msg, b);
        uint8_t l = msg[a];
        if (l != msg[b]) {
            return 0;
        }
        if (l == 0) {
            return 1;
        }
        for (size_t i = 1; i <= l; i++) {
            if (lower(msg[a + i]) != lower(msg[b + i])) {
                return 0;
            }
        }
        a += 1 + (size_t)l;
        b += 1 + (size_t)l;
    }
}

/* A name of the message (accepted by read_name()) against a dotted text name, ASCII case ignored. */
static int wire_ieq_text(const uint8_t *msg, size_t pos, const char *text)
{
    for (;;) {
        pos = label_at(msg, pos);
        uint8_t l = msg[pos];
        if (l == 0) {
            return *text == '\0' || (text[0] == '.' && text[1] == '\0');
        }
        for (size_t i = 1; i <= l; i++, text++) {
            if (*text == '\0' || lower(msg[pos + i]) != lower((uint8_t)*text)) {
                return 0;
            }
        }
        if (*text == '.') {
            text++;
        } else if (*text != '\0') {
            return 0;
        }
        pos += 1 + (size_t)l;
        if (*text == '\0' && msg[label_at(msg, pos)] != 0) {
            return 0;
        }
    }
}

int tc_dns_parse_response(const uint8_t *msg, size_t len, uint16_t id, const char *name, uint16_t qtype,
                          tc_dns_result_t *out)
{
    memset(out, 0, sizeof(*out));
    if (msg == NULL || len < HEADER_LEN) {
        return TC_DNS_EDROP;
    }
    uint16_t flags = get16(msg + 2);
    if (get16(msg) != id || !(flags & FLAG_QR) || OPCODE(flags) != 0 || get16(msg + 4) != 1) {
        return TC_DNS_EDROP; /* not the answer to our question (a late one, a spoof, another socket's) */
    }
    /* Names are compared in place, in wire form: no 256-byte text copies on the loop's stack. */
    size_t want = HEADER_LEN; /* the name the chain is at: the question's, then each CNAME target */
    size_t off = HEADER_LEN;
    if (read_name(msg, len, &off, NULL) < 0 || off + 4 > len || get16(msg + off) != qtype ||
        get16(msg + off + 2) != TC_DNS_CLASS_IN || !wire_ieq_text(msg, want, name)) {
        return TC_DNS_EDROP;
    }
    off += 4;
    out->rcode = flags & 0xf;
    out->truncated = (flags & 0x0200u) != 0;
    /* Follow the CNAME chain from the question's name: answers for other owners are ignored. */
    uint16_t an = get16(msg + 6);
    for (uint16_t i = 0; i < an; i++) {
        size_t owner = off;
        if (read_name(msg, len, &off, NULL) < 0 || off + 10 > len) {
            return TC_DNS_EFORMAT;
        }
        uint16_t type = get16(msg + off), cls = get16(msg + off + 2), rdlen = get16(msg + off + 8);
        size_t rdata = off + 10;
        if (rdata + rdlen > len) {
            return TC_DNS_EFORMAT;
        }
        off = rdata + rdlen;
        if (cls != TC_DNS_CLASS_IN || !wire_ieq(msg, owner, want)) {
            continue;
        }
        if (type == 5) { /* CNAME: the chain goes on at its target */
            size_t t = rdata;
            if (read_name(msg, len, &t, NULL) < 0 || t > rdata + rdlen) {
                return TC_DNS_EFORMAT;
            }
            want = rdata;
            continue;
        }
        size_t alen = qtype == TC_DNS_TYPE_A ? 4 : qtype == TC_DNS_TYPE_AAAA ? 16 : 0;
        if (type == qtype && alen != 0 && rdlen == alen && out->found == 0) {
            memcpy(out->addr, msg + rdata, alen);
            out->found = 1;
        }
    }
    return 0;
}
