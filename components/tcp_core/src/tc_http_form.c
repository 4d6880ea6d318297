/*
 * tc_http_form.c - query strings and urlencoded bodies as key/value pairs (see tc_http_form.h).
 */
#include "tc_http_form.h"

#include <string.h>

#include "tc_err.h"

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
