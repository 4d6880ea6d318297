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

/* ---- multipart/form-data (RFC 7578) read as it streams ---- */

/** Longest boundary (RFC 2046 5.1.1). */
#define TC_HTTP_MP_BOUNDARY_MAX 70
/** Bytes of one part's header block at most (TC_ELIMIT beyond). */
#define TC_HTTP_MP_HEADER_MAX 1024

/** What tc_http_multipart_feed() found:
 *
 * | event              | meaning                                                  | out                        |
 * |--------------------|----------------------------------------------------------|----------------------------|
 * | TC_HTTP_MP_PART    | a part's headers are complete                            | name, filename, ctype set  |
 * | TC_HTTP_MP_DATA    | the next bytes of the part's content                     | data, len (a slice)        |
 * | TC_HTTP_MP_PART_END| the part's content is complete                           |                            |
 * | TC_HTTP_MP_DONE    | the closing delimiter: the form is complete (rest ignored)|                           |
 */
typedef enum {
    TC_HTTP_MP_PART = 1,
    TC_HTTP_MP_DATA,
    TC_HTTP_MP_PART_END,
    TC_HTTP_MP_DONE,
} tc_http_mp_event_t;

/** The reader's state: no allocation, about 1.3 KB (put it in a request's data, not on a small stack). */
typedef struct {
    char delim[4 + TC_HTTP_MP_BOUNDARY_MAX]; /**< "\r\n--" + boundary */
    size_t dlen;
    size_t match;       /**< delimiter bytes matched, of which carried came from earlier calls */
    size_t carried;
    int state;
    int after;          /**< position in the line after a delimiter */
    size_t hlen;
    char hdr[TC_HTTP_MP_HEADER_MAX];
    char name[64];      /**< the part's form field name ("" when none) */
    char filename[128]; /**< its file name ("" when not a file) */
    char ctype[96];     /**< its Content-Type ("" when none) */
} tc_http_multipart_t;

/**
 * @brief Start a reader from a request's Content-Type ("multipart/form-data; boundary=..."). Pure.
 * @return TC_OK, TC_EINVAL (not multipart/form-data, or no valid boundary)
 */
int tc_http_multipart_init(tc_http_multipart_t *mp, const char *content_type, size_t len);

/**
 * @brief Feed body bytes; stops at the first event. Feed the rest (after *used bytes) again until nothing is left:
 *     while (len) { rc = tc_http_multipart_feed(mp, d, len, &used, &p, &n); d += used; len -= used; ...rc... }
 * Every piece of the body is fed once (bytes that may be the start of a delimiter are held inside mp), and the
 * loop ends: a call consumes a byte, returns an event, or (at most once in a row) releases held bytes. Pure. DATA slices point into data, or into mp (bytes held back while they looked like the
 * start of a delimiter); valid until the next call.
 * @param used  receives the bytes consumed
 * @param data_out, len_out  the DATA slice
 * @return an event (> 0), 0 for none (feed the rest; all consumed: more input needed), TC_ELIMIT (a part's headers beyond
 *         TC_HTTP_MP_HEADER_MAX or a name too long), TC_EPROTO (malformed after a delimiter)
 */
int tc_http_multipart_feed(tc_http_multipart_t *mp, const char *data, size_t len, size_t *used, const char **data_out,
                           size_t *len_out);

/** @brief Whether the closing delimiter was seen (check at the body's end: otherwise the form is cut short). */
int tc_http_multipart_done(const tc_http_multipart_t *mp);

#ifdef __cplusplus
}
#endif
