/*
 * tc_http_form.h - key/value pairs of a query string or an application/x-www-form-urlencoded body, decoded into
 * the caller's buffer: a pure parser (no allocation, slices of the input, bounded by the caller's sizes).
 *
 * The pairs are "k=v" separated by '&' (';' is not a separator, WHATWG URL "application/x-www-form-urlencoded");
 * '+' is a space and "%HH" a byte in keys and values. A malformed escape ("%G1", "%4" at the end) is an error, not
 * passed through, so a value is either exactly what the client encoded or refused. Decoded values are
 * NUL-terminated; a value with a NUL (raw, or encoded as "%00") is refused (TC_EINVAL) because C code downstream would cut it.
 *
 * Example:
 *     char v[32];
 *     int n = tc_http_req_query_value(req, "led", v, sizeof(v));   // "?led=on" -> 2, v = "on"
 */
#pragma once

#include <stddef.h>

#include "tc_http.h"

#ifdef __cplusplus
extern "C" {
#endif

/** One raw pair of a form: slices of the input, still encoded. */
typedef struct {
    const char *key;   /**< the key as sent */
    size_t key_len;
    const char *value; /**< the value as sent ("" for "k" or "k=") */
    size_t value_len;
} tc_http_form_pair_t;

/**
 * @brief The next pair of a form starting at *pos; empty pairs ("a=1&&b=2") are skipped. Pure; any thread.
 * @param form  the query or body (not necessarily NUL-terminated)
 * @param pos   in: where to start (0 for the first pair); out: where the next call starts
 * @return 1 with *out filled, 0 when there are no more pairs
 */
int tc_http_form_next(const char *form, size_t len, size_t *pos, tc_http_form_pair_t *out);

/**
 * @brief Decode one encoded key or value ('+' -> space, %HH -> byte) into out, NUL-terminated. Pure; any thread.
 * @return the decoded length, TC_EINVAL (malformed escape, %00 or a raw NUL), TC_ELIMIT (out has fewer than length + 1 bytes)
 */
int tc_http_form_decode(const char *in, size_t len, char *out, size_t cap);

/**
 * @brief The first value of key in a form, decoded into out (NUL-terminated). Keys compare after decoding, exactly
 * (case-sensitive). Pure; any thread.
 * @return the decoded length (0 for "k" or "k="), TC_ENOTFOUND, TC_EINVAL (malformed escape), TC_ELIMIT (out too
 *         small; out then holds "")
 */
int tc_http_form_value(const char *form, size_t len, const char *key, char *out, size_t cap);

/**
 * @brief A value of the request's query string ("?a=1&b=x+y"), decoded. Loop thread (the request's lifetime).
 * @return as tc_http_form_value()
 */
int tc_http_req_query_value(const tc_http_req_t *req, const char *key, char *out, size_t cap);

/**
 * @brief A value of a buffered application/x-www-form-urlencoded body (a route added with tc_http_route() or
 * tc_http_route_body() without body_cb), decoded. Loop thread.
 * @return as tc_http_form_value(), or TC_EINVAL when the Content-Type is not application/x-www-form-urlencoded
 */
int tc_http_req_form_value(const tc_http_req_t *req, const char *key, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
