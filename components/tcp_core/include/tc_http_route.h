/*
 * tc_http_route.h - the pure pieces of HTTP routing: percent-decoding a request path and matching it against a route
 * pattern. No allocation; outputs are slices of the caller's strings. The server's route table (tc_http_route(),
 * tc_http_ws_route() in tc_http.h) is built on them.
 *
 * Example:
 *     char path[64]; tc_http_param_t ps[4];
 *     if (tc_http_path_decode(raw, raw_len, path, sizeof(path)) >= 0 &&
 *         tc_http_route_match("/users/:id", path, ps, 4) == 1) { ... ps[0].value is the id ... }
 */
#pragma once

#include <stddef.h>

#include "tc_http_parser.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Percent-decode a path into dst (NUL-terminated). "%00" and malformed escapes are refused; '+' is kept.
 * @return the decoded length, or -1 (malformed, or dst smaller than the result + 1)
 */
int tc_http_path_decode(const char *src, size_t len, char *dst, size_t cap);

/** A route parameter: ":id" in the pattern gives name "id" and the matching segment as value. */
typedef struct {
    tc_http_slice_t name;
    tc_http_slice_t value;
} tc_http_param_t;

/**
 * @brief Match a decoded path against a pattern: literal segments, ":name" (one non-empty segment) and a final "*"
 * segment (any rest, including nothing: "/static/ *" without the space matches "/static/" and "/static/a/b").
 * @param params  receives up to max parameters (slices of pattern and path)
 * @return the number of parameters (>= 0) on a match, -1 otherwise (also when more than max parameters)
 */
int tc_http_route_match(const char *pattern, const char *path, tc_http_param_t *params, int max);

#ifdef __cplusplus
}
#endif
