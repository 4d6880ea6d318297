/*
 * tc_http_auth.c - HTTP Basic authentication (see tc_http_auth.h).
 */
#include "tc_http_auth.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tc_err.h"

/* Credentials longer than this are refused: the decoded form lives on the stack. */
#define TC_AUTH_MAX 192

bool tc_http_const_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    unsigned diff = alen != blen;
    /* Walk the expected length whatever the guess's, so the time tells nothing about the secret's bytes. */
    for (size_t i = 0; i < blen; i++) {
        unsigned char cx = i < alen ? x[i] : 0;
        diff |= (unsigned)(cx ^ y[i]);
    }
    return diff == 0;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode standard base64 (padding optional); -1 when malformed or longer than cap. */
static int b64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
    while (len > 0 && in[len - 1] == '=') {
        len--;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64val(in[i]);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) {
                return -1;
            }
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (int)o;
}

bool tc_http_basic_auth_ok(const tc_http_req_t *req, const char *user, const char *pass)
{
    if (pass == NULL || pass[0] == '\0') {
        return true;
    }
    size_t len = 0;
    const char *h = tc_http_req_header(req, "Authorization", &len);
    /* RFC 7617: the scheme name is case-insensitive, then one space and the token68. */
    if (h == NULL || len < 6 || strncasecmp(h, "Basic ", 6) != 0) {
        return false;
    }
    unsigned char dec[TC_AUTH_MAX];
    int n = b64_decode(h + 6, len - 6, dec, sizeof(dec));
    const unsigned char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
    if (colon == NULL) {
        return false;
    }
    size_t ulen = (size_t)(colon - dec);
    const char *u = user ? user : "";
    bool ok_user = tc_http_const_equal(dec, ulen, u, strlen(u));
    bool ok_pass = tc_http_const_equal(colon + 1, (size_t)n - ulen - 1, pass, strlen(pass));
    return ok_user & ok_pass; /* both compared every time */
}

int tc_http_basic_auth_challenge(tc_http_req_t *req, const char *realm)
{
    char v[128];
    if (realm == NULL || strpbrk(realm, "\"\r\n") != NULL) {
        return TC_EINVAL;
    }
    int n = snprintf(v, sizeof(v), "Basic realm=\"%s\", charset=\"UTF-8\"", realm);
    if (n < 0 || (size_t)n >= sizeof(v)) {
        return TC_EINVAL;
    }
    int rc = tc_http_resp_header(req, "WWW-Authenticate", v);
    if (rc != TC_OK) {
        return rc;
    }
    return tc_http_respond(req, 401, "text/plain", "authentication required\n", 24);
}
