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

int tc_dns_parse_query(const uint8_t *msg, size_t len, tc_dns_question_t *q)
{
    memset(q, 0, sizeof(*q));
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
    if (get16(msg + 4) != 1) {
        /* 0 questions: nothing to answer; several: no server supports it (RFC 9619). */
        return rc ? rc : TC_DNS_EFORMAT;
    }
    size_t off = HEADER_LEN;
    if (tc_dns_read_name(msg, len, &off, q->name) < 0 || off + 4 > len) {
        q->name[0] = '\0';
        return rc ? rc : TC_DNS_EFORMAT;
    }
    q->qtype = get16(msg + off);
    q->qclass = get16(msg + off + 2);
    q->question_end = off + 4;
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

/* Header of an answer: the query's id and RD, QR and AA set, the rcode, the given counts. */
static void put_header(uint8_t *out, const tc_dns_question_t *q, int rcode, uint16_t qd, uint16_t an)
{
    put16(out, q->id);
    put16(out + 2, (uint16_t)(FLAG_QR | FLAG_AA | (q->flags & FLAG_RD) | (OPCODE(q->flags) << 11) | (rcode & 0xf)));
    put16(out + 4, qd);
    put16(out + 6, an);
    put16(out + 8, 0);
    put16(out + 10, 0);
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
    if (rc == TC_DNS_EFORMAT || (rc == TC_DNS_ENOTIMP && q.question_end == 0)) {
        put_header(out, &q, rc == TC_DNS_EFORMAT ? TC_DNS_RCODE_FORMERR : TC_DNS_RCODE_NOTIMP, 0, 0);
        return HEADER_LEN;
    }
    /* The question is copied as it came (its name may use a pointer only if it points into the header, which
     * read_name refuses, so the copy is self-contained). */
    size_t qlen = q.question_end - HEADER_LEN;
    if (cap < HEADER_LEN + qlen) {
        return TC_DNS_ESPACE;
    }
    memcpy(out + HEADER_LEN, query + HEADER_LEN, qlen);
    if (rc == TC_DNS_ENOTIMP || q.qclass != TC_DNS_CLASS_IN) {
        put_header(out, &q, TC_DNS_RCODE_NOTIMP, 1, 0);
        return (int)(HEADER_LEN + qlen);
    }
    if (q.qtype != TC_DNS_TYPE_A && q.qtype != TC_DNS_TYPE_ANY) {
        put_header(out, &q, TC_DNS_RCODE_NOERROR, 1, 0); /* NODATA: the name exists, this type does not */
        return (int)(HEADER_LEN + qlen);
    }
    const uint8_t *ip = policy->ipv4;
    for (size_t i = 0; policy->overrides && i < policy->noverrides; i++) {
        if (policy->overrides[i].name && name_ieq(policy->overrides[i].name, q.name)) {
            ip = policy->overrides[i].ipv4;
            break;
        }
    }
    size_t n = HEADER_LEN + qlen;
    if (cap < n + 16) {
        return TC_DNS_ESPACE;
    }
    uint8_t *a = out + n;
    put16(a, 0xC000 | HEADER_LEN); /* the name: a pointer to the question's */
    put16(a + 2, TC_DNS_TYPE_A);
    put16(a + 4, TC_DNS_CLASS_IN);
    put16(a + 6, (uint16_t)(policy->ttl_s >> 16));
    put16(a + 8, (uint16_t)policy->ttl_s);
    put16(a + 10, 4);
    memcpy(a + 12, ip, 4);
    put_header(out, &q, TC_DNS_RCODE_NOERROR, 1, 1);
    return (int)(n + 16);
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
