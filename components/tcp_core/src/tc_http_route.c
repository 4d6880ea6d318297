/*
 * tc_http_route.c - the HTTP server's route table: registering routes, finding the one a request names (method,
 * decoded path, ":name" parameters, a final "*"), and the pure path decoder and matcher under it (tc_http_route.h).
 */
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http_internal.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int tc_http_path_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3) {
                return -1; /* "%" or "%a" at the end */
            }
            int hi = hexval((unsigned char)src[i + 1]), lo = hexval((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                return -1; /* malformed, or %00: a NUL would cut the path short in C code downstream */
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap) {
            return -1;
        }
        dst[o++] = c;
    }
    if (o >= cap) {
        return -1;
    }
    dst[o] = '\0';
    return (int)o;
}

int tc_http_route_match(const char *pattern, const char *path, tc_http_param_t *params, int max)
{
    int n = 0;
    const char *p = pattern, *s = path;
    for (;;) {
        if (*p == '\0') {
            return *s == '\0' ? n : -1;
        }
        if (p[0] == '*' && p[1] == '\0' && (p == pattern || p[-1] == '/')) {
            return n; /* the rest, whatever it is; "/files*" is a literal, not a prefix of "/files-secret" */
        }
        if (*p == ':') {
            const char *name = ++p;
            while (*p && *p != '/') {
                p++;
            }
            const char *value = s;
            while (*s && *s != '/') {
                s++;
            }
            if (s == value || p == name) {
                return -1; /* empty segment, or ":" without a name */
            }
            if (n >= max) {
                return -1;
            }
            params[n].name.ptr = name;
            params[n].name.len = (size_t)(p - name);
            params[n].value.ptr = value;
            params[n].value.len = (size_t)(s - value);
            n++;
            continue;
        }
        if (*p != *s) {
            return -1;
        }
        p++;
        s++;
    }
}

unsigned tc__http_method_bit(tc_http_slice_t m)
{
    static const struct {
        const char *name;
        unsigned bit;
    } table[] = {
        {"GET", TC_HTTP_GET},         {"HEAD", TC_HTTP_HEAD},   {"POST", TC_HTTP_POST},   {"PUT", TC_HTTP_PUT},
        {"DELETE", TC_HTTP_DELETE}, {"OPTIONS", TC_HTTP_OPTIONS}, {"PATCH", TC_HTTP_PATCH},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strlen(table[i].name) == m.len && memcmp(table[i].name, m.ptr, m.len) == 0) {
            return table[i].bit;
        }
    }
    return 0;
}

/* The route of a request: req->route and its parameters, or NULL with the methods the path allows (405) or none
 * (404) in req->allowed. Done once, when the head is complete: the body's limit and mode depend on it. A fallback
 * route (static files) is taken only when no other route has the path for any method: RFC 9110 15.5.6, a resource
 * that exists without the method is a 405 with its Allow, not a file lookup that ends in 404. */
void tc__http_route_lookup(tc_http_t *h, tc_http_req_t *req)
{
    unsigned mbit = tc__http_method_bit(req->parsed.method);
    route_t *fallback = NULL;
    unsigned fallback_allowed = 0;
    for (route_t *r = h->routes; r; r = r->next) {
        int n = tc_http_route_match(r->pattern, req->path, req->params, MAX_PARAMS);
        if (n < 0) {
            continue;
        }
        unsigned m = r->methods | ((r->methods & TC_HTTP_GET) ? TC_HTTP_HEAD : 0);
        if (r->fallback) {
            fallback = fallback == NULL && (m & mbit) ? r : fallback;
            fallback_allowed |= m;
            continue;
        }
        if (!(m & mbit)) {
            req->allowed |= m;
            continue;
        }
        req->nparams = n;
        req->route = r;
        return;
    }
    if (req->allowed) {
        return;
    }
    if (fallback != NULL) {
        req->nparams = tc_http_route_match(fallback->pattern, req->path, req->params, MAX_PARAMS);
        req->route = fallback;
        return;
    }
    req->allowed = fallback_allowed;
}

/* Hand the request to the filter and its route: when the body is complete, or as soon as the head is for a route
 * that takes its body in pieces (then the connection stays in HC_BODY and keeps reading). */
static int add_route(tc_http_t *h, unsigned methods, const char *pattern, tc_http_handler_cb cb, tc_ws_cb ws_cb,
                     void *user)
{
    if (h == NULL || pattern == NULL || pattern[0] != '/' || (cb == NULL && ws_cb == NULL) || methods == 0) {
        return TC_EINVAL;
    }
    size_t pl = strlen(pattern);
    route_t *r = tc_calloc(1, sizeof(*r) + pl + 1);
    if (r == NULL) {
        return TC_ENOMEM;
    }
    memcpy(r->pattern, pattern, pl + 1);
    r->methods = methods;
    r->cb = cb;
    r->ws_cb = ws_cb;
    r->user = user;
    if (h->routes_tail) {
        h->routes_tail->next = r;
    } else {
        h->routes = r;
    }
    h->routes_tail = r;
    return TC_OK;
}

int tc_http_route(tc_http_t *http, unsigned methods, const char *pattern, tc_http_handler_cb cb, void *user)
{
    return cb ? add_route(http, methods & TC_HTTP_ANY, pattern, cb, NULL, user) : TC_EINVAL;
}

int tc_http_route_body(tc_http_t *http, unsigned methods, const char *pattern, uint64_t max_body,
                       tc_http_handler_cb cb, tc_http_body_cb body_cb, void *user)
{
    if (cb == NULL) {
        return TC_EINVAL;
    }
    int rc = add_route(http, methods & TC_HTTP_ANY, pattern, cb, NULL, user);
    if (rc == TC_OK) {
        http->routes_tail->body_cb = body_cb;
        http->routes_tail->max_body = max_body;
    }
    return rc;
}

int tc_http_ws_route(tc_http_t *http, const char *pattern, tc_ws_cb cb, void *user)
{
    return cb ? add_route(http, TC_HTTP_GET, pattern, NULL, cb, user) : TC_EINVAL;
}

void tc__http_route_fallback(tc_http_t *h)
{
    if (h && h->routes_tail) {
        h->routes_tail->fallback = 1;
    }
}

void tc__http_route_own_cors(tc_http_t *h)
{
    if (h && h->routes_tail) {
        h->routes_tail->own_cors = 1;
    }
}

void tc__http_routes_free(tc_http_t *h)
{
    route_t *rt = h->routes;
    while (rt) {
        route_t *next = rt->next;
        tc_free(rt);
        rt = next;
    }
    h->routes = h->routes_tail = NULL;
}
