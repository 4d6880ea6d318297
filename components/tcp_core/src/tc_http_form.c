/*
 * tc_http_form.c - query strings and urlencoded bodies as key/value pairs (see tc_http_form.h).
 */
#include "tc_http_form.h"

#include <string.h>

#include "tc_err.h"
#include "tc_http_parser.h"

int tc_http_form_next(const char *form, size_t len, size_t *pos, tc_http_form_pair_t *out)
{
    size_t i = *pos;
    while (i < len && form[i] == '&') {
        i++; /* empty pairs */
    }
    if (i >= len) {
        *pos = len;
        return 0;
    }
    size_t start = i;
    while (i < len && form[i] != '&') {
        i++;
    }
    const char *eq = memchr(form + start, '=', i - start);
    out->key = form + start;
    out->key_len = eq ? (size_t)(eq - (form + start)) : i - start;
    out->value = eq ? eq + 1 : form + i;
    out->value_len = eq ? (size_t)(form + i - (eq + 1)) : 0;
    *pos = i;
    return 1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The decoded byte at in[*i], advancing *i past it; -1 for a malformed escape or %00. */
static int next_byte(const char *in, size_t len, size_t *i)
{
    char c = in[*i];
    if (c == '+') {
        (*i)++;
        return ' ';
    }
    if (c != '%') {
        (*i)++;
        return c == '\0' ? -1 : (unsigned char)c; /* a raw NUL (a body is not a C string) is refused like %00 */
    }
    if (len - *i < 3) {
        return -1;
    }
    int hi = hexval(in[*i + 1]), lo = hexval(in[*i + 2]);
    if (hi < 0 || lo < 0 || (hi | lo) == 0) {
        return -1;
    }
    *i += 3;
    return hi << 4 | lo;
}

int tc_http_form_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    int too_small = cap == 0;
    for (size_t i = 0; i < len;) {
        int b = next_byte(in, len, &i);
        if (b < 0) {
            if (cap) {
                out[0] = '\0';
            }
            return TC_EINVAL;
        }
        if (o + 1 >= cap) {
            too_small = 1; /* keep going: a malformed escape later is still TC_EINVAL */
        } else {
            out[o] = (char)b;
        }
        o++;
    }
    if (too_small) {
        if (cap) {
            out[0] = '\0';
        }
        return TC_ELIMIT;
    }
    out[o] = '\0';
    return (int)o;
}

/* 1 when the encoded key decodes to exactly want, 0 otherwise (a malformed key matches nothing). */
static int key_equals(const char *key, size_t len, const char *want)
{
    size_t w = 0;
    for (size_t i = 0; i < len;) {
        int b = next_byte(key, len, &i);
        if (b < 0 || want[w] == '\0' || (unsigned char)want[w] != b) {
            return 0;
        }
        w++;
    }
    return want[w] == '\0';
}

int tc_http_form_value(const char *form, size_t len, const char *key, char *out, size_t cap)
{
    if (form == NULL || key == NULL || (out == NULL && cap)) {
        return TC_EINVAL;
    }
    size_t pos = 0;
    tc_http_form_pair_t p;
    while (tc_http_form_next(form, len, &pos, &p)) {
        if (key_equals(p.key, p.key_len, key)) {
            return tc_http_form_decode(p.value, p.value_len, out, cap);
        }
    }
    if (cap) {
        out[0] = '\0';
    }
    return TC_ENOTFOUND;
}

int tc_http_req_query_value(const tc_http_req_t *req, const char *key, char *out, size_t cap)
{
    const char *q = tc_http_req_query(req);
    return tc_http_form_value(q, strlen(q), key, out, cap);
}

/* RFC 9110 8.3.1: the media type is case-insensitive and may carry parameters ("; charset=utf-8"). */
static int is_urlencoded(const char *ct, size_t len)
{
    static const char want[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(want) - 1;
    if (ct == NULL || len < n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = ct[i];
        if (c >= 'A' && c <= 'Z') {
            c = (char)(c - 'A' + 'a');
        }
        if (c != want[i]) {
            return 0;
        }
    }
    return len == n || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t';
}

int tc_http_req_form_value(const tc_http_req_t *req, const char *key, char *out, size_t cap)
{
    size_t ctl = 0, blen = 0;
    const char *ct = tc_http_req_header(req, "Content-Type", &ctl);
    if (!is_urlencoded(ct, ctl)) {
        if (cap) {
            out[0] = '\0';
        }
        return TC_EINVAL;
    }
    const char *body = tc_http_req_body(req, &blen);
    return tc_http_form_value(body ? body : "", blen, key, out, cap);
}

/* ---- multipart/form-data ---- */

enum { MP_PREAMBLE = 0, MP_AFTER_DELIM, MP_HEADERS, MP_BODY, MP_DONE };

/* A parameter of a header value (boundary=..., name="...") copied to out; 1 found, 0 absent, -1 too long. */
static int header_param(const char *v, size_t len, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i + kl + 1 <= len; i++) {
        /* The key starts the value or follows ';' and spaces, and is followed by '='. */
        if (!tc_http_ieq(v + i, key, kl) || v[i + kl] != '=') {
            continue;
        }
        size_t b = i;
        while (b > 0 && (v[b - 1] == ' ' || v[b - 1] == '\t')) {
            b--;
        }
        if (b != 0 && v[b - 1] != ';') {
            continue;
        }
        size_t p = i + kl + 1, o = 0;
        if (p < len && v[p] == '"') {
            for (p++; p < len && v[p] != '"'; p++) {
                if (v[p] == '\\' && p + 1 < len) {
                    p++;
                }
                if (o + 1 >= cap) {
                    return -1;
                }
                out[o++] = v[p];
            }
        } else {
            for (; p < len && v[p] != ';' && v[p] != ' ' && v[p] != '\t'; p++) {
                if (o + 1 >= cap) {
                    return -1;
                }
                out[o++] = v[p];
            }
        }
        out[o] = '\0';
        return 1;
    }
    return 0;
}

int tc_http_multipart_init(tc_http_multipart_t *mp, const char *ct, size_t len)
{
    static const char type[] = "multipart/form-data";
    if (mp == NULL || ct == NULL || len < sizeof(type) - 1 || !tc_http_ieq(ct, type, sizeof(type) - 1)) {
        return TC_EINVAL;
    }
    memset(mp, 0, sizeof(*mp));
    char b[TC_HTTP_MP_BOUNDARY_MAX + 2];
    if (header_param(ct, len, "boundary", b, sizeof(b)) != 1 || b[0] == '\0' || strlen(b) > TC_HTTP_MP_BOUNDARY_MAX ||
        strchr(b, '\r') || strchr(b, '\n')) {
        return TC_EINVAL;
    }
    memcpy(mp->delim, "\r\n--", 4);
    memcpy(mp->delim + 4, b, strlen(b));
    mp->dlen = 4 + strlen(b);
    /* The body may open with the delimiter without a CRLF before it: start as if the CRLF had been seen. */
    mp->match = 2;
    mp->carried = 2;
    mp->state = MP_PREAMBLE;
    return TC_OK;
}

int tc_http_multipart_done(const tc_http_multipart_t *mp)
{
    return mp->state == MP_DONE;
}

/* Parse the finished header block into name, filename and ctype. */
static int parse_part_headers(tc_http_multipart_t *mp)
{
    mp->name[0] = mp->filename[0] = mp->ctype[0] = '\0';
    size_t i = 0;
    while (i < mp->hlen) {
        const char *line = mp->hdr + i;
        const char *end = memchr(line, '\n', mp->hlen - i);
        size_t ll = end ? (size_t)(end - line) : mp->hlen - i;
        i += ll + 1;
        if (ll > 0 && line[ll - 1] == '\r') {
            ll--;
        }
        const char *colon = memchr(line, ':', ll);
        if (colon == NULL) {
            continue;
        }
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 1;
        size_t vl = ll - nl - 1;
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        if (nl == 19 && tc_http_ieq(line, "Content-Disposition", 19)) {
            if (header_param(v, vl, "name", mp->name, sizeof(mp->name)) < 0 ||
                header_param(v, vl, "filename", mp->filename, sizeof(mp->filename)) < 0) {
                return TC_ELIMIT;
            }
        } else if (nl == 12 && tc_http_ieq(line, "Content-Type", 12)) {
            if (vl >= sizeof(mp->ctype)) {
                return TC_ELIMIT;
            }
            memcpy(mp->ctype, v, vl);
            mp->ctype[vl] = '\0';
        }
    }
    return TC_OK;
}

/* Scan for the delimiter in PREAMBLE (data dropped) or BODY (data returned). */
static int scan_body(tc_http_multipart_t *mp, const char *d, size_t len, size_t *used, const char **out, size_t *olen)
{
    int body = mp->state == MP_BODY;
    size_t start = 0; /* where the current candidate match began in d (valid when match > carried) */
    for (size_t i = 0; i < len; i++) {
        if (d[i] == mp->delim[mp->match]) {
            if (mp->match == mp->carried) {
                start = i;
            }
            if (++mp->match < mp->dlen) {
                continue;
            }
            /* A whole delimiter. Data before it first (its bytes are scanned again next call: cheap, and simple). */
            if (mp->carried == 0 && start > 0) {
                mp->match = 0;
                *used = start;
                if (body) {
                    *out = d;
                    *olen = start;
                    return TC_HTTP_MP_DATA;
                }
                return 0; /* preamble: dropped; the delimiter is found again at the front next call */
            }
            *used = i + 1;
            mp->match = mp->carried = 0;
            int was_body = body;
            mp->state = MP_AFTER_DELIM;
            mp->after = 0;
            return was_body ? TC_HTTP_MP_PART_END : 0;
        }
        if (mp->carried > 0) {
            /* The bytes held from earlier calls were not a delimiter after all: they are data (a prefix of the
             * delimiter, so they are returned from mp->delim), then this input is scanned again from its start.
             * Only delim[0] is a CR, so no delimiter can start inside the held bytes. */
            size_t held = mp->carried;
            mp->match = mp->carried = 0;
            *used = 0;
            if (body) {
                *out = mp->delim;
                *olen = held;
                return TC_HTTP_MP_DATA;
            }
            return 0; /* preamble: dropped */
        }
        if (mp->match > 0) {
            mp->match = 0;
            if (d[i] == mp->delim[0]) {
                mp->match = 1;
                start = i;
            }
        }
    }
    /* End of input: a candidate match at the end is held (consumed now, returned later if it was not one). */
    size_t pending = mp->match - mp->carried;
    size_t data_end = len - pending;
    if (pending > 0 && data_end > 0) {
        mp->match = mp->carried; /* rescanned from data_end on the next call */
        *used = data_end;
        if (body) {
            *out = d;
            *olen = data_end;
            return TC_HTTP_MP_DATA;
        }
        return 0;
    }
    mp->carried = mp->match;
    *used = len;
    if (body && data_end > 0) {
        *out = d;
        *olen = data_end;
        return TC_HTTP_MP_DATA;
    }
    return 0;
}

int tc_http_multipart_feed(tc_http_multipart_t *mp, const char *d, size_t len, size_t *used, const char **out,
                           size_t *olen)
{
    *used = 0;
    *out = NULL;
    *olen = 0;
    size_t i = 0;
    switch (mp->state) {
    case MP_PREAMBLE:
    case MP_BODY:
        return scan_body(mp, d, len, used, out, olen);
    case MP_AFTER_DELIM:
        /* "--" closes the form; otherwise optional whitespace (transport padding, RFC 2046) and CRLF. */
        for (; i < len; i++) {
            char c = d[i];
            if (mp->after == 0 && c == '-') {
                mp->after = 1;
            } else if (mp->after == 1) {
                if (c != '-') {
                    return TC_EPROTO;
                }
                mp->state = MP_DONE;
                *used = len; /* the epilogue is ignored */
                return TC_HTTP_MP_DONE;
            } else if (mp->after == 0 && (c == ' ' || c == '\t')) {
                continue;
            } else if (mp->after == 0 && c == '\r') {
                mp->after = 2;
            } else if (mp->after == 2 && c == '\n') {
                mp->state = MP_HEADERS;
                mp->hlen = 0;
                *used = i + 1;
                return 0;
            } else {
                return TC_EPROTO;
            }
        }
        *used = len;
        return 0;
    case MP_HEADERS:
        for (; i < len; i++) {
            if (mp->hlen >= sizeof(mp->hdr)) {
                return TC_ELIMIT;
            }
            mp->hdr[mp->hlen++] = d[i];
            if (mp->hlen < 4 || memcmp(mp->hdr + mp->hlen - 4, "\r\n\r\n", 4) != 0) {
                if (mp->hlen == 2 && memcmp(mp->hdr, "\r\n", 2) == 0) {
                    mp->hlen = 0; /* a part with no headers at all */
                } else {
                    continue;
                }
            }
            *used = i + 1;
            int rc = parse_part_headers(mp);
            if (rc != TC_OK) {
                return rc;
            }
            mp->state = MP_BODY;
            return TC_HTTP_MP_PART;
        }
        *used = len;
        return 0;
    default:
        *used = len;
        return 0;
    }
}
