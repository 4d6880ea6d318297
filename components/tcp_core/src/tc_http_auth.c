/*
 * tc_http_auth.c - HTTP Basic authentication (see tc_http_auth.h).
 */
#include "tc_http_auth.h"

#include <stdio.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http_internal.h"
#include "tc_http_parser.h"

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
    if (h == NULL || len < 6 || !tc_http_ieq(h, "Basic ", 6)) {
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

/* ---- CORS ---- */

typedef struct cors_route {
    struct cors_route *next;
    tc_http_cors_t *cors;
    tc_http_handler_cb cb;
    void *user;
} cors_route_t;

struct tc_http_cors {
    tc_http_cors_config_t cfg; /* strings point into strs */
    char *strs;
    cors_route_t *routes;
};

int tc_http_cors_new(const tc_http_cors_config_t *cfg, tc_http_cors_t **out)
{
    if (cfg == NULL || out == NULL || cfg->origins == NULL || cfg->methods == NULL) {
        return TC_EINVAL;
    }
    const char *hdrs = cfg->headers ? cfg->headers : "";
    const char *parts[3] = {cfg->origins, cfg->methods, hdrs};
    size_t total = 0;
    for (int i = 0; i < 3; i++) {
        if (strpbrk(parts[i], "\r\n")) {
            return TC_EINVAL;
        }
        total += strlen(parts[i]) + 1;
    }
    tc_http_cors_t *c = tc_calloc(1, sizeof(*c));
    char *strs = tc_malloc(total);
    if (c == NULL || strs == NULL) {
        tc_free(c);
        tc_free(strs);
        return TC_ENOMEM;
    }
    char *p = strs;
    const char *copies[3];
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(parts[i]) + 1;
        memcpy(p, parts[i], n);
        copies[i] = p;
        p += n;
    }
    c->cfg = *cfg;
    c->cfg.origins = copies[0];
    c->cfg.methods = copies[1];
    c->cfg.headers = copies[2];
    c->strs = strs;
    *out = c;
    return TC_OK;
}

void tc_http_cors_free(tc_http_cors_t *cors)
{
    if (cors == NULL) {
        return;
    }
    while (cors->routes) {
        cors_route_t *r = cors->routes;
        cors->routes = r->next;
        tc_free(r);
    }
    tc_free(cors->strs);
    tc_free(cors);
}

/* Whether item (len bytes) is in a comma-separated list, compared exactly after trimming spaces; case-insensitive
 * for header names and methods when icase. */
static bool in_list(const char *list, const char *item, size_t len, bool icase)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        const char *e = p;
        while (*e && *e != ',') {
            e++;
        }
        const char *t = e;
        while (t > p && t[-1] == ' ') {
            t--;
        }
        size_t n = (size_t)(t - p);
        if (n > 0 && n == len && (icase ? tc_http_ieq(p, item, len) : memcmp(p, item, len) == 0)) {
            return true;
        }
        p = e;
    }
    return false;
}

/* The request's Origin when the policy allows it (copied to buf), else NULL. */
static const char *allowed_origin(const tc_http_req_t *req, const tc_http_cors_t *cors, char *buf, size_t cap)
{
    size_t len = 0;
    const char *o = tc_http_req_header(req, "Origin", &len);
    if (o == NULL || len == 0 || len >= cap) {
        return NULL;
    }
    bool any = strcmp(cors->cfg.origins, "*") == 0;
    if (!any && !in_list(cors->cfg.origins, o, len, false)) {
        return NULL;
    }
    memcpy(buf, o, len);
    buf[len] = '\0';
    return buf;
}

/* Whether the policy's answer depends on the request's Origin: a list of origins, or "*" echoed for credentials. Then
 * every answer says Vary: Origin, whether the Origin was allowed, another or absent: a shared cache must not give
 * one origin's answer to another (Fetch standard, "CORS protocol and HTTP caches"). A literal "*", or a list with no
 * origin (a route taken out), is the same answer for everyone. */
static bool varies(const tc_http_cors_t *cors)
{
    const char *o = cors->cfg.origins;
    return strcmp(o, "*") == 0 ? cors->cfg.credentials : o[strspn(o, " ,")] != '\0';
}

int tc_http_cors_headers(tc_http_req_t *req, const tc_http_cors_t *cors)
{
    int rc = varies(cors) ? tc_http_resp_header(req, "Vary", "Origin") : TC_OK;
    char origin[256];
    if (rc != TC_OK || allowed_origin(req, cors, origin, sizeof(origin)) == NULL) {
        return rc;
    }
    /* "*" cannot carry credentials (Fetch standard): with credentials, or a list, echo the origin. */
    bool star = strcmp(cors->cfg.origins, "*") == 0 && !cors->cfg.credentials;
    rc = tc_http_resp_header(req, "Access-Control-Allow-Origin", star ? "*" : origin);
    if (rc == TC_OK && cors->cfg.credentials) {
        rc = tc_http_resp_header(req, "Access-Control-Allow-Credentials", "true");
    }
    return rc == TC_OK ? 1 : rc;
}

static int cors_wrap(tc_http_req_t *req, void *user)
{
    cors_route_t *r = user;
    int rc = tc_http_cors_headers(req, r->cors);
    if (rc < 0) {
        return rc;
    }
    return r->cb(req, r->user);
}

/* Every requested header must be allowed; the list is comma-separated names. */
static bool headers_allowed(const char *list, const char *req, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (req[i] == ' ' || req[i] == ',')) {
            i++;
        }
        size_t j = i;
        while (j < len && req[j] != ',') {
            j++;
        }
        size_t t = j;
        while (t > i && req[t - 1] == ' ') {
            t--;
        }
        if (t > i && !in_list(list, req + i, t - i, true)) {
            return false;
        }
        i = j;
    }
    return true;
}

int tc__http_cors_preflight(tc_http_req_t *req, const tc_http_cors_t *cors)
{
    size_t ml = 0, hl = 0;
    const char *m = tc_http_req_header(req, "Access-Control-Request-Method", &ml);
    const char *h = tc_http_req_header(req, "Access-Control-Request-Headers", &hl);
    char origin[256];
    if (allowed_origin(req, cors, origin, sizeof(origin)) == NULL || m == NULL ||
        !in_list(cors->cfg.methods, m, ml, false) || (h != NULL && !headers_allowed(cors->cfg.headers, h, hl))) {
        if (varies(cors)) {
            tc_http_resp_header(req, "Vary", "Origin"); /* refused for this origin, maybe not for another */
        }
        return tc_http_respond(req, 403, "text/plain", "CORS preflight refused\n", 23);
    }
    char age[16];
    snprintf(age, sizeof(age), "%u", (unsigned)cors->cfg.max_age);
    int rc = tc_http_cors_headers(req, cors);
    rc = rc >= 0 ? tc_http_resp_header(req, "Access-Control-Allow-Methods", cors->cfg.methods) : rc;
    if (rc == TC_OK && cors->cfg.headers[0]) {
        rc = tc_http_resp_header(req, "Access-Control-Allow-Headers", cors->cfg.headers);
    }
    rc = rc == TC_OK ? tc_http_resp_header(req, "Access-Control-Max-Age", age) : rc;
    if (rc != TC_OK) {
        return rc;
    }
    return tc_http_respond(req, 204, NULL, NULL, 0);
}

static int cors_preflight(tc_http_req_t *req, void *user)
{
    return tc__http_cors_preflight(req, user);
}

int tc_http_cors_route(tc_http_t *http, tc_http_cors_t *cors, unsigned methods, const char *pattern,
                       tc_http_handler_cb cb, void *user)
{
    if (http == NULL || cors == NULL || cb == NULL || pattern == NULL) {
        return TC_EINVAL;
    }
    cors_route_t *r = tc_calloc(1, sizeof(*r));
    if (r == NULL) {
        return TC_ENOMEM;
    }
    r->cors = cors;
    r->cb = cb;
    r->user = user;
    r->next = cors->routes;
    cors->routes = r; /* owned by the policy from here, whatever happens below */
    int rc = tc_http_route(http, methods & ~(unsigned)TC_HTTP_OPTIONS, pattern, cors_wrap, r);
    if (rc == TC_OK) {
        tc__http_route_own_cors(http);
        rc = tc_http_route(http, TC_HTTP_OPTIONS, pattern, cors_preflight, cors);
    }
    if (rc == TC_OK) {
        tc__http_route_own_cors(http);
    }
    return rc;
}
