/*
 * tc_http_parser.h - a pure HTTP/1.1 request-head parser and chunked-body decoder:
 * no allocation, outputs are slices of the caller's input, and every function says "consumed, incomplete or error".
 *
 * The parser is strict where leniency has been a vulnerability: lone CR or LF, NUL and other control bytes, obs-fold,
 * whitespace before a colon, a missing Host in HTTP/1.1, Content-Length that is not plain digits, that overflows 64
 * bits or that disagrees with another one, and Content-Length together with Transfer-Encoding (request smuggling,
 * RFC 9112 6.1 and 6.3) are errors. Lengths are parsed as 64-bit; the server compares them with its limits before
 * narrowing anything (a 4 GiB + 1 length is not 1 on a 32-bit device). The server, not the parser, turns an error
 * into a status (tc_http_error_status()).
 *
 * Example:
 *     tc_http_header_t hs[TC_HTTP_MAX_HEADERS_CAP];
 *     tc_http_request_t r; tc_http_request_init(&r, hs, TC_HTTP_MAX_HEADERS_CAP);
 *     int n = tc_http_parse_request(buf, len, &limits, &r);   // > 0: head of n bytes parsed
 *     // TC_HTTP_INCOMPLETE: append the next segment to buf and call again with the same r
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A slice of the caller's input (not NUL-terminated). */
typedef struct {
    const char *ptr;
    size_t len;
} tc_http_slice_t;

/** One header field. */
typedef struct {
    tc_http_slice_t name;
    tc_http_slice_t value; /**< without surrounding whitespace */
} tc_http_header_t;

/** Most header fields a request may carry in any configuration (the array size callers provide). */
#define TC_HTTP_MAX_HEADERS_CAP 64

/** Limits checked while parsing, so an endless head is refused before it is complete (slowloris). */
typedef struct {
    uint32_t max_uri;     /**< request-target bytes (TC_HTTP_EURI_TOO_LONG beyond) */
    uint32_t max_head;    /**< whole head bytes, request line to the empty line (TC_HTTP_EHEADERS_TOO_LARGE) */
    uint32_t max_headers; /**< header fields (TC_HTTP_ETOO_MANY_HEADERS beyond) */
} tc_http_limits_t;

/** A parsed request head. Slices point into the parsed buffer. */
typedef struct {
    tc_http_slice_t method;    /**< e.g. "GET" (a token; the server decides what it supports) */
    tc_http_slice_t target;    /**< the request-target as sent */
    tc_http_slice_t path;      /**< its path, still percent-encoded, without the query */
    tc_http_slice_t query;     /**< after '?', ptr NULL when there is none */
    int minor;                 /**< HTTP/1.minor: 0 or 1 */
    tc_http_header_t *headers; /**< the caller's array */
    size_t nheaders;           /**< fields stored */
    size_t cap;                /**< size of the caller's array */
    uint64_t content_length;   /**< 0 when absent */
    bool has_content_length;
    bool chunked;    /**< Transfer-Encoding: chunked */
    bool keep_alive; /**< 1.1 unless "Connection: close"; 1.0 only with "Connection: keep-alive" */
    bool upgrade;    /**< the Connection header lists "upgrade" */
    bool conn_close; /**< a Connection field lists "close" (it then wins over any "keep-alive") */
    /* Progress, so a parse resumes where the last one stopped (zeroed by tc_http_request_init()). */
    const char *base; /**< the buffer the slices point into at the last call */
    size_t done;      /**< bytes of complete lines parsed (the whole head once it is complete) */
    size_t scan;      /**< bytes from done on already seen to hold no line end */
    uint16_t hosts;   /**< Host fields so far */
    uint8_t stage;    /**< 0: request line, 1: header fields, 2: complete */
} tc_http_request_t;

/** Return values. Errors are negative and distinct from TC_HTTP_INCOMPLETE. */
enum {
    TC_HTTP_INCOMPLETE = -1,          /**< valid so far; more input needed */
    TC_HTTP_EBAD = -2,                /**< malformed (400) */
    TC_HTTP_EURI_TOO_LONG = -3,       /**< 414 */
    TC_HTTP_EHEADERS_TOO_LARGE = -4,  /**< 431 */
    TC_HTTP_ETOO_MANY_HEADERS = -5,   /**< 431 */
    TC_HTTP_EBAD_VERSION = -6,        /**< an HTTP version other than 1.0 / 1.1 (505) */
    TC_HTTP_EBODY_TOO_LARGE = -7,     /**< chunked body beyond its limit (413) */
    TC_HTTP_ENOT_IMPLEMENTED = -8,    /**< a transfer coding other than chunked (501) */
    TC_HTTP_CHUNKED_DONE = 1,         /**< tc_http_chunked_decode(): the last chunk and trailers were read */
};

/**
 * @brief Prepare r to receive a parse; headers is the caller's array of cap entries.
 */
void tc_http_request_init(tc_http_request_t *r, tc_http_header_t *headers, size_t cap);

/**
 * @brief Parse a request head from the start of buf, resuming where the previous call on r stopped: call again with
 * the same r when more bytes have arrived (the same bytes first; buf may have moved, e.g. by realloc, and r's slices
 * move with it). Complete lines are parsed once; only an incomplete line is looked at again, and only its new bytes.
 * Limits are checked on incomplete input too. Pure: no allocation, r is the only state. tc_http_request_init() starts
 * over; after an error r must be initialised again before another parse.
 * @param buf     the received bytes
 * @param len     their count (not less than at the previous call on r)
 * @param limits  the limits to enforce
 * @param r       receives the result and the progress (initialised with tc_http_request_init())
 * @return the head's length including its empty line (> 0), TC_HTTP_INCOMPLETE, or a negative TC_HTTP_E* error
 */
int tc_http_parse_request(const char *buf, size_t len, const tc_http_limits_t *limits, tc_http_request_t *r);

/**
 * @brief Move every slice of r from old_base to new_base (the head was copied) and its headers into new_headers
 * (an array of at least r->nheaders entries).
 */
void tc_http_request_rebase(tc_http_request_t *r, const char *old_base, const char *new_base,
                            tc_http_header_t *new_headers);

/**
 * @brief Find a header by case-insensitive name.
 * @param out  receives the value
 * @return 0 when found, -1 when absent
 */
int tc_http_header_find(const tc_http_request_t *r, const char *name, tc_http_slice_t *out);

/**
 * @brief How many fields of this case-insensitive name the head has (a field that must be single, such as
 * Sec-WebSocket-Key, is refused when repeated: RFC 6455 11.3.1).
 * @return the count, 0 when absent
 */
size_t tc_http_header_count(const tc_http_request_t *r, const char *name);

/**
 * @brief Whether any field of this case-insensitive name lists token (RFC 9110 5.3: "Connection: keep-alive" and
 * "Connection: Upgrade" on two lines mean "Connection: keep-alive, Upgrade").
 * @return 1 or 0
 */
int tc_http_header_lists(const tc_http_request_t *r, const char *name, const char *token);

/**
 * @brief Compare n bytes ignoring ASCII case, as HTTP compares field names and tokens (the C library's strncasecmp
 * is POSIX, not standard C: picolibc on the chips does not declare it where the core includes it). Pure; any thread.
 * @param a  n bytes (need not be NUL-terminated)
 * @param b  n bytes (need not be NUL-terminated)
 * @param n  how many bytes to compare
 * @return 1 when equal ignoring ASCII case, else 0
 */
int tc_http_ieq(const char *a, const char *b, size_t n);

/**
 * @brief Whether a comma-separated header value lists token, case-insensitively ("keep-alive, Upgrade").
 * @return 1 or 0
 */
int tc_http_list_has(tc_http_slice_t list, const char *token);

/**
 * @brief Whether an Accept-Encoding value accepts a content coding (RFC 9110 12.5.3): the coding listed with a
 * weight above 0 ("gzip", "gzip;q=0.001"), or not listed and "*" listed with a weight above 0. A weight of 0
 * ("gzip; q=0", "gzip;Q=0.000") refuses. Pure; any thread.
 * @param value  the field's value (tc_http_req_header()); need not be NUL-terminated
 * @param len    its length
 * @param coding the coding's name, e.g. "gzip" (compared ignoring ASCII case)
 * @return 1 accepted, 0 not
 */
int tc_http_accepts_coding(const char *value, size_t len, const char *coding);

/** @brief The HTTP status a parser error stands for (400 for unknown codes). */
int tc_http_error_status(int err);

/** Incremental chunked-body decoder state (RFC 9112 7.1). */
typedef struct {
    uint8_t state;
    uint8_t digits;      /* hex digits of the current size */
    uint16_t line;       /* bytes of the current size/extension or trailer line */
    uint32_t trailers;   /* trailer bytes so far */
    uint64_t remaining;  /* data bytes left in the current chunk */
    uint64_t total;      /* data bytes so far */
    uint64_t max;        /* body limit */
} tc_http_chunked_t;

/** @brief Start decoding a chunked body of at most max data bytes. */
void tc_http_chunked_init(tc_http_chunked_t *c, uint64_t max);

/**
 * @brief Decode from buf: at most one data slice per call (pointing into buf). Call again from buf + *used.
 * @param used  receives the bytes consumed
 * @param data  receives the data found (len 0 if none)
 * @return 0 (more to come), TC_HTTP_CHUNKED_DONE, TC_HTTP_EBAD (syntax, size overflow) or TC_HTTP_EBODY_TOO_LARGE
 */
int tc_http_chunked_decode(tc_http_chunked_t *c, const char *buf, size_t len, size_t *used, tc_http_slice_t *data);

#ifdef __cplusplus
}
#endif
