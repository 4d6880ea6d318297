/*
 * fuzz_http.c - the request-head parser (tc_http_parse_request()) with bytes as a client sends them, plus the path
 * decoder and the route matcher on whatever path it returns.
 *
 * Input: bytes 0-2 choose the limits (max_uri, max_head, max_headers; max_headers may exceed the caller's array),
 * the rest is the received buffer, copied to an allocation of exactly its size. Checked on every input:
 *   - the result is a length within the buffer and within max_head, TC_HTTP_INCOMPLETE or a known error;
 *   - on a length: every slice lies in the buffer (the path may be the constant "/"), the target fits max_uri,
 *     fields never exceed the array or max_headers, minor is 0 or 1, chunked and Content-Length never come together,
 *     the head alone parses to the same result, every shorter prefix is incomplete, and rebasing into a copy gives
 *     the same strings;
 *   - prefixes agree with the whole: a prefix that gives a length gives the same as the whole input; a refused
 *     prefix means the whole input is refused, for the same reason unless the prefix already exceeds max_head;
 *     an error is never followed by TC_HTTP_INCOMPLETE on a longer prefix;
 *   - tc_http_path_decode() writes within its capacity and returns a NUL-free string of the returned length;
 *     tc_http_route_match() parameters are slices of the pattern and the decoded path.
 * Replay: gcc ... fuzz_http.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tc_http_parser.h"
#include "tc_http_route.h"

static int in_buf(tc_http_slice_t s, const char *buf, size_t len)
{
    return s.ptr == NULL || (s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len);
}

static int slice_eq(tc_http_slice_t a, tc_http_slice_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0) && (a.ptr == NULL) == (b.ptr == NULL);
}

static int parse(const char *buf, size_t len, const tc_http_limits_t *lim, tc_http_request_t *r,
                 tc_http_header_t *hs)
{
    tc_http_request_init(r, hs, TC_HTTP_MAX_HEADERS_CAP);
    return tc_http_parse_request(buf, len, lim, r);
}

static void check_result(const char *buf, size_t len, const tc_http_limits_t *lim, int rc,
                         const tc_http_request_t *r)
{
    switch (rc) {
    case TC_HTTP_INCOMPLETE:
    case TC_HTTP_EBAD:
    case TC_HTTP_EURI_TOO_LONG:
    case TC_HTTP_EHEADERS_TOO_LARGE:
    case TC_HTTP_ETOO_MANY_HEADERS:
    case TC_HTTP_EBAD_VERSION:
    case TC_HTTP_ENOT_IMPLEMENTED:
        return;
    default:
        break;
    }
    if (rc <= 0 || (size_t)rc > len || (uint32_t)rc > lim->max_head) {
        abort();
    }
    size_t n = (size_t)rc;
    if (!in_buf(r->method, buf, n) || !in_buf(r->target, buf, n) || !in_buf(r->query, buf, n) ||
        r->method.len == 0 || r->target.len == 0 || r->target.len > lim->max_uri) {
        abort();
    }
    if (!in_buf(r->path, buf, n) && !(r->path.len == 1 && r->path.ptr[0] == '/')) {
        abort();
    }
    if (r->nheaders > TC_HTTP_MAX_HEADERS_CAP || r->nheaders > lim->max_headers || (r->minor != 0 && r->minor != 1)) {
        abort();
    }
    if (r->chunked && r->has_content_length) {
        abort(); /* request smuggling */
    }
    if (!r->has_content_length && r->content_length != 0) {
        abort();
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        const tc_http_header_t *h = &r->headers[i];
        if (!in_buf(h->name, buf, n) || !in_buf(h->value, buf, n) || h->name.len == 0) {
            abort();
        }
        for (size_t k = 0; k < h->value.len; k++) {
            unsigned char c = (unsigned char)h->value.ptr[k];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                abort(); /* CR, LF, NUL: header injection */
            }
        }
        if (h->value.len && (h->value.ptr[0] == ' ' || h->value.ptr[h->value.len - 1] == ' ')) {
            abort(); /* values are trimmed */
        }
    }
}

/* The head copied elsewhere and rebased must read the same. */
static void check_rebase(const char *buf, size_t n, const tc_http_request_t *r)
{
    char *copy = malloc(n);
    tc_http_header_t *moved = malloc(sizeof(tc_http_header_t) * (r->nheaders ? r->nheaders : 1));
    if (copy == NULL || moved == NULL) {
        abort();
    }
    memcpy(copy, buf, n);
    tc_http_request_t m = *r;
    tc_http_request_rebase(&m, buf, copy, moved);
    if (!in_buf(m.method, copy, n) || !slice_eq(m.method, r->method) || !slice_eq(m.target, r->target) ||
        !slice_eq(m.path, r->path) || !slice_eq(m.query, r->query) || m.nheaders != r->nheaders) {
        abort();
    }
    for (size_t i = 0; i < m.nheaders; i++) {
        if (!in_buf(m.headers[i].name, copy, n) || !slice_eq(m.headers[i].name, r->headers[i].name) ||
            !slice_eq(m.headers[i].value, r->headers[i].value)) {
            abort();
        }
    }
    free(moved);
    free(copy);
}

static void check_path(tc_http_slice_t path, size_t cap)
{
    char *dst = malloc(cap ? cap : 1); /* exact size: ASan sees a write past the capacity */
    if (dst == NULL) {
        abort();
    }
    int n = tc_http_path_decode(path.ptr, path.len, cap ? dst : NULL, cap);
    if (n < -1 || (n >= 0 && ((size_t)n >= cap || (size_t)n > path.len || strlen(dst) != (size_t)n))) {
        abort();
    }
    if (n >= 0) {
        static const char *const patterns[] = {"/", "*", "/:a", "/:a/:b", "/x/*", "/:a/*", "/api/:id/x"};
        for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++) {
            tc_http_param_t params[2];
            int k = tc_http_route_match(patterns[p], dst, params, 2);
            if (k < -1 || k > 2) {
                abort();
            }
            size_t plen = strlen(patterns[p]);
            for (int i = 0; i < k; i++) {
                tc_http_slice_t nm = params[i].name, v = params[i].value;
                if (nm.ptr < patterns[p] || nm.ptr + nm.len > patterns[p] + plen || nm.len == 0 || v.ptr < dst ||
                    v.ptr + v.len > dst + n || v.len == 0 || memchr(v.ptr, '/', v.len) != NULL) {
                    abort();
                }
            }
        }
    }
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3) {
        return 0;
    }
    tc_http_limits_t lim = {
        .max_uri = 1u + data[0] * 4u,
        .max_head = 8u + data[1] * 16u,
        .max_headers = data[2] % (TC_HTTP_MAX_HEADERS_CAP + 8),
    };
    size_t len = size - 3;
    char *buf = malloc(len ? len : 1); /* exact size: ASan sees a read past the buffer */
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data + 3, len);

    tc_http_header_t hs[TC_HTTP_MAX_HEADERS_CAP];
    tc_http_request_t r;
    int rc = parse(buf, len, &lim, &r, hs);
    check_result(buf, len, &lim, rc, &r);
    if (tc_http_error_status(rc) < 400 || tc_http_error_status(rc) > 505) {
        abort();
    }
    if (rc > 0) {
        check_rebase(buf, (size_t)rc, &r);
        check_path(r.path, 1 + (size_t)data[0] % 96);
        check_path(r.path, r.path.len + 1);
        tc_http_slice_t v;
        if ((tc_http_header_find(&r, "content-length", &v) == 0) != r.has_content_length ||
            (tc_http_header_find(&r, "transfer-encoding", &v) == 0) != r.chunked) {
            abort(); /* any other transfer coding is refused */
        }
    }

    /* Prefixes, as the server sees them while bytes arrive: all of them for short inputs, a sample otherwise. */
    size_t stride = len <= 300 ? 1 : len / 97 + 1;
    int err_seen = 0;
    for (size_t k = 0; k < len; k += stride) {
        char *pre = malloc(k ? k : 1);
        if (pre == NULL) {
            abort();
        }
        memcpy(pre, buf, k);
        tc_http_request_t pr;
        tc_http_header_t phs[TC_HTTP_MAX_HEADERS_CAP];
        int g = parse(pre, k, &lim, &pr, phs);
        check_result(pre, k, &lim, g, &pr);
        if (g == TC_HTTP_INCOMPLETE) {
            if (err_seen) {
                abort(); /* an error must be final */
            }
        } else if (g > 0) {
            if (g != rc || k < (size_t)g) {
                abort(); /* a complete head does not change with bytes after it */
            }
        } else {
            /* Refused early: only if the whole input is refused too, for the same reason unless the prefix already
             * exceeds max_head (the whole may then be refused for a byte that came later). */
            if (rc > 0 || rc == TC_HTTP_INCOMPLETE || (g != rc && g != TC_HTTP_EHEADERS_TOO_LARGE)) {
                abort();
            }
            err_seen = 1;
        }
        free(pre);
    }
    if (err_seen && rc == TC_HTTP_INCOMPLETE) {
        abort();
    }
    free(buf);
    return 0;
}
