/*
 * test_http_parser.c - tables for the pure HTTP parser (tc_http_parser.h): request heads, chunked bodies, path
 * decoding and route matching. Every row names the rule it checks and, where there is one, the bug elsewhere that
 * the rule guards against.
 *
 * Incremental rule asserted for every request row (the parser is restarted from the same start with more bytes, as
 * the server calls it; each prefix is copied into a buffer of exactly its size so ASan sees any read past it):
 *   - the whole input gives the row's result;
 *   - a valid head is never refused early: every prefix shorter than the head gives TC_HTTP_INCOMPLETE, and every
 *     prefix that holds the whole head gives the same length and the same fields (pipelined bytes are not looked at);
 *   - for an invalid input, a prefix gives TC_HTTP_INCOMPLETE or the final error; a different error is allowed only
 *     where the row names it (`early`): a prefix that is itself already invalid because it exceeds a limit
 *     (max_head, max_uri) may be refused for that before the byte that makes the whole input bad arrives;
 *   - an error is final: once a prefix gives an error, no longer prefix gives TC_HTTP_INCOMPLETE or a length.
 * Chunked rows are fed whole (calling again from buf + used) and one byte per call, and must give the same result,
 * the same data and the same consumed count both ways.
 *
 * Build (from the repository root):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix \
 *         host_tests/c/test_http_parser.c \
 *         $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') $C/port/linux/tc_sock_linux.c -lpthread \
 *         -o build/test_http_parser
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_http_parser.h"
#include "tc_http_route.h"
#include "tc_check.h"

static int slice_is(tc_http_slice_t s, const char *want)
{
    if (want == NULL) {
        return s.ptr == NULL;
    }
    return s.ptr != NULL && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static const char *show(tc_http_slice_t s)
{
    static char buf[4][128];
    static int k;
    char *o = buf[k++ & 3];
    if (s.ptr == NULL) {
        return "(none)";
    }
    size_t n = s.len < sizeof(buf[0]) - 1 ? s.len : sizeof(buf[0]) - 1;
    memcpy(o, s.ptr, n);
    o[n] = '\0';
    return o;
}

/* ---- request heads ---- */

#define WHOLE 0 /* rc: the whole input is the head */

typedef struct {
    const char *why;    /* the rule, and the bug it guards against */
    const char *in;
    size_t in_len;      /* 0: strlen(in); rows with a NUL give it */
    int rc;             /* WHOLE, a head length, or a negative TC_HTTP_* */
    int early;          /* 0, or another error a prefix that already exceeds a limit may give */
    const char *method; /* the fields below are checked when rc is a length */
    const char *path;
    const char *query;  /* NULL: no '?' */
    int minor;
    int keep_alive;
    int has_cl;
    uint64_t content_length;
    int chunked;
    int upgrade;
    int nheaders;
    const char *hname;  /* when set: tc_http_header_find(hname) gives hvalue */
    const char *hvalue;
    tc_http_limits_t lim; /* all zero: DEFAULT_LIMITS */
    size_t cap;           /* 0: TC_HTTP_MAX_HEADERS_CAP */
} http_row_t;

static const tc_http_limits_t DEFAULT_LIMITS = {.max_uri = 256, .max_head = 1024, .max_headers = 16};

#define RL11 "GET / HTTP/1.1\r\n"
#define HOST "Host: h\r\n"
#define GET11(extra) RL11 HOST extra "\r\n"
#define POST11(extra) "POST /p HTTP/1.1\r\n" HOST extra "\r\n"
#define OK11 .rc = WHOLE, .method = "GET", .path = "/", .minor = 1, .keep_alive = 1
#define POSTOK .rc = WHOLE, .method = "POST", .path = "/p", .minor = 1, .keep_alive = 1

/* Limits small enough to reach with short rows. */
#define SMALL .lim = {.max_uri = 8, .max_head = 40, .max_headers = 3}
#define FEW .lim = {.max_uri = 64, .max_head = 1024, .max_headers = 3}

/* An input with a NUL inside: the literal and its length. */
#define NUL_IN(s) s, sizeof(s) - 1

static const http_row_t HTTP_ROWS[] = {
    /* -- well-formed heads -- */
    {"plain GET, HTTP/1.1 keeps the connection by default", GET11(""), OK11, .nheaders = 1, .hname = "host",
     .hvalue = "h"},
    {"path and query split at the first '?'", "GET /a/b?x=1&y=?2 HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE,
     .method = "GET", .path = "/a/b", .query = "x=1&y=?2", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"an empty query is present, not absent", "GET /a? HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE, .method = "GET",
     .path = "/a", .query = "", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"percent-encoding is left to tc_http_path_decode", "GET /a%20b HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE,
     .method = "GET", .path = "/a%20b", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"HTTP/1.0 needs no Host and closes by default", "GET / HTTP/1.0\r\n\r\n", .rc = WHOLE, .method = "GET",
     .path = "/", .minor = 0, .keep_alive = 0, .nheaders = 0},
    {"HTTP/1.0 keep-alive: only with Connection: keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     .rc = WHOLE, .method = "GET", .path = "/", .minor = 0, .keep_alive = 1, .nheaders = 1},
    {"HTTP/1.1 Connection: close", GET11("Connection: close\r\n"), .rc = WHOLE, .method = "GET", .path = "/",
     .minor = 1, .keep_alive = 0, .nheaders = 2},
    {"close wins over keep-alive in one list", GET11("Connection: keep-alive, CLOSE\r\n"), .rc = WHOLE,
     .method = "GET", .path = "/", .minor = 1, .keep_alive = 0, .nheaders = 2},
    {"close in one Connection field wins over keep-alive in a later one (RFC 9112 9.6)",
     GET11("Connection: close\r\nConnection: keep-alive\r\n"), .rc = WHOLE, .method = "GET", .path = "/",
     .minor = 1, .keep_alive = 0, .nheaders = 3},
    {"WebSocket upgrade: the Connection list names upgrade", GET11("Connection: keep-alive, Upgrade\r\nUpgrade: "
                                                                   "websocket\r\n"),
     OK11, .upgrade = 1, .nheaders = 3, .hname = "UPGRADE", .hvalue = "websocket"},
    {"a value is trimmed of SP and HTAB on both sides", GET11("X-T: \t a  b \t \r\n"), OK11, .nheaders = 2,
     .hname = "x-t", .hvalue = "a  b"},
    {"an empty value is allowed", GET11("X-Empty:\r\n"), OK11, .nheaders = 2, .hname = "x-empty", .hvalue = ""},
    {"an empty Host is allowed (RFC 9112 3.2: no authority)", "GET / HTTP/1.1\r\nHost:\r\n\r\n", OK11,
     .nheaders = 1, .hname = "host", .hvalue = ""},
    {"a Host with a port", RL11 "Host: device.local:8080\r\n\r\n", OK11, .nheaders = 1, .hname = "host",
     .hvalue = "device.local:8080"},
    {"a Host with an IPv6 literal", RL11 "Host: [::ffff:10.0.0.1]:8080\r\n\r\n", OK11, .nheaders = 1},
    {"a Host with a trailing dot, an empty port, percent-encoding and sub-delims",
     RL11 "Host: a-b_c~.%41!$&'()*+,;=.:\r\n\r\n", OK11, .nheaders = 1},
    {"obs-text (bytes >= 0x80) in a value is allowed", GET11("X: caf\xc3\xa9\xff\r\n"), OK11, .nheaders = 2,
     .hname = "x", .hvalue = "caf\xc3\xa9\xff"},
    {"any tchar may make up a name", GET11("X-a_b!#$%&'*+.^`|~9: v\r\n"), OK11, .nheaders = 2,
     .hname = "x-A_B!#$%&'*+.^`|~9", .hvalue = "v"},
    {"the method is any token; the server decides what it supports", "get / HTTP/1.1\r\n" HOST "\r\n",
     .rc = WHOLE, .method = "get", .path = "/", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"Content-Length", POST11("Content-Length: 5\r\n"), POSTOK, .has_cl = 1, .content_length = 5, .nheaders = 2},
    {"Content-Length 0", POST11("Content-Length: 0\r\n"), POSTOK, .has_cl = 1, .content_length = 0, .nheaders = 2},
    {"esp_http_server: Content-Length above 4 GiB is 64-bit (4294967297 is not 1 on 32-bit)",
     POST11("Content-Length: 4294967297\r\n"), POSTOK, .has_cl = 1, .content_length = 4294967297u, .nheaders = 2},
    {"Content-Length UINT64_MAX fits", POST11("Content-Length: 18446744073709551615\r\n"), POSTOK, .has_cl = 1,
     .content_length = UINT64_MAX, .nheaders = 2},
    {"two equal Content-Lengths are one length", POST11("Content-Length: 7\r\nContent-length: 7\r\n"), POSTOK,
     .has_cl = 1, .content_length = 7, .nheaders = 3},
    {"Transfer-Encoding: chunked", POST11("Transfer-Encoding: chunked\r\n"), POSTOK, .chunked = 1, .nheaders = 2},
    {"coding names are case-insensitive", POST11("transfer-encoding: Chunked\r\n"), POSTOK, .chunked = 1,
     .nheaders = 2},
    {"absolute-form target: the path is after the authority", "GET http://example.com/a/b?c=d HTTP/1.1\r\n" HOST
                                                              "\r\n",
     .rc = WHOLE, .method = "GET", .path = "/a/b", .query = "c=d", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"absolute-form without a path: the path is /", "GET http://example.com HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE,
     .method = "GET", .path = "/", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"absolute-form: a '/' inside the query is not the path", "GET http://h?u=/admin HTTP/1.1\r\n" HOST "\r\n",
     .rc = WHOLE, .method = "GET", .path = "/", .query = "u=/admin", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"absolute-form: the scheme is case-insensitive, https too (RFC 9112 3.2.2: MUST accept)",
     "GET hTTpS://h:8443/x HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE, .method = "GET", .path = "/x", .minor = 1,
     .keep_alive = 1, .nheaders = 1},
    {"asterisk-form: OPTIONS *", "OPTIONS * HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE, .method = "OPTIONS",
     .path = "*", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"asterisk-form is OPTIONS's alone (RFC 9112 3.2.4)", "GET * HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"a fragment is not part of a request-target", "GET /a#b HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"a fragment in the query neither", "GET /a?x=1#b HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"RFC 9112 2.2: empty lines before the request line are skipped (and counted)", "\r\n\r\n" GET11(""), OK11,
     .nheaders = 1},
    {"pipelined: the length is the first head only", GET11("") "GET /2 HTTP/1.1\r\n" HOST "\r\n", .rc = 27,
     .method = "GET", .path = "/", .minor = 1, .keep_alive = 1, .nheaders = 1},
    {"pipelined: body bytes after the head are not parsed", POST11("Content-Length: 4\r\n") "\r\n\r\n", .rc = 48,
     .method = "POST", .path = "/p", .minor = 1, .keep_alive = 1, .has_cl = 1, .content_length = 4,
     .nheaders = 2},
    {"garbage after the head is not parsed", GET11("") "\n\x01\r", .rc = 27, .method = "GET", .path = "/",
     .minor = 1, .keep_alive = 1, .nheaders = 1},

    /* -- Content-Length abuse -- */
    {"mongoose: a negative Content-Length looped; refused", POST11("Content-Length: -1\r\n"), .rc = TC_HTTP_EBAD},
    {"Content-Length with a sign", POST11("Content-Length: +5\r\n"), .rc = TC_HTTP_EBAD},
    {"Content-Length as a list", POST11("Content-Length: 5, 5\r\n"), .rc = TC_HTTP_EBAD},
    {"Content-Length in hex", POST11("Content-Length: 0x10\r\n"), .rc = TC_HTTP_EBAD},
    {"Content-Length with a space inside", POST11("Content-Length: 1 2\r\n"), .rc = TC_HTTP_EBAD},
    {"Content-Length empty", POST11("Content-Length:\r\n"), .rc = TC_HTTP_EBAD},
    {"Content-Length UINT64_MAX + 1 overflows", POST11("Content-Length: 18446744073709551616\r\n"),
     .rc = TC_HTTP_EBAD},
    {"Content-Length of 20 nines overflows", POST11("Content-Length: 99999999999999999999\r\n"), .rc = TC_HTTP_EBAD},

    /* -- request smuggling (RFC 9112 6.1, 6.3) -- */
    {"smuggling: two different Content-Lengths", POST11("Content-Length: 5\r\nContent-Length: 6\r\n"),
     .rc = TC_HTTP_EBAD},
    {"smuggling CL.TE: Content-Length then Transfer-Encoding", POST11("Content-Length: 5\r\nTransfer-Encoding: "
                                                                      "chunked\r\n"),
     .rc = TC_HTTP_EBAD},
    {"smuggling TE.CL: Transfer-Encoding then Content-Length", POST11("Transfer-Encoding: chunked\r\nContent-Length: "
                                                                      "5\r\n"),
     .rc = TC_HTTP_EBAD},
    {"a coding other than chunked: 501", POST11("Transfer-Encoding: gzip\r\n"), .rc = TC_HTTP_ENOT_IMPLEMENTED},
    {"identity is not a transfer coding this server decodes: 501", POST11("Transfer-Encoding: identity\r\n"),
     .rc = TC_HTTP_ENOT_IMPLEMENTED},
    {"gzip then chunked: framed, but gzip is not implemented: 501", POST11("Transfer-Encoding: gzip, chunked\r\n"),
     .rc = TC_HTTP_ENOT_IMPLEMENTED},
    {"chunked not last: the length cannot be known (RFC 9112 6.3: 400)", POST11("Transfer-Encoding: chunked, "
                                                                                "gzip\r\n"),
     .rc = TC_HTTP_EBAD},
    {"chunked twice in one list (RFC 9112 6.1)", POST11("Transfer-Encoding: chunked, chunked\r\n"),
     .rc = TC_HTTP_EBAD},
    {"chunked twice in two fields", POST11("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
     .rc = TC_HTTP_EBAD},
    {"a coding after chunked in a second field: chunked is not last", POST11("Transfer-Encoding: chunked\r\n"
                                                                             "Transfer-Encoding: gzip\r\n"),
     .rc = TC_HTTP_EBAD},
    {"an empty Transfer-Encoding", POST11("Transfer-Encoding:\r\n"), .rc = TC_HTTP_EBAD},
    {"HTTP/1.0 has no chunked coding", "POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
     .rc = TC_HTTP_EBAD},

    /* -- header injection and bad bytes -- */
    {"ESPAsyncWebServer: lone CR in a value (header injection)", GET11("X: a\rSet-Cookie: b\r\n"),
     .rc = TC_HTTP_EBAD},
    {"ESPAsyncWebServer: lone LF in a value (header injection)", GET11("X: a\nSet-Cookie: b\r\n"),
     .rc = TC_HTTP_EBAD},
    {"bare LF line endings", "GET / HTTP/1.1\nHost: h\n\n", .rc = TC_HTTP_EBAD},
    {"LF as the empty line", RL11 HOST "\n", .rc = TC_HTTP_EBAD},
    {"CR CR LF", RL11 "Host: h\r\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"NUL in a value (truncation in C code downstream)", NUL_IN(GET11("X: a\0b\r\n")), .rc = TC_HTTP_EBAD},
    {"NUL in a name", NUL_IN(GET11("X\0: b\r\n")), .rc = TC_HTTP_EBAD},
    {"NUL in the target", NUL_IN("GET /a\0b HTTP/1.1\r\n" HOST "\r\n"), .rc = TC_HTTP_EBAD},
    {"NUL in the method", NUL_IN("G\0T / HTTP/1.1\r\n" HOST "\r\n"), .rc = TC_HTTP_EBAD},
    {"DEL in a value", GET11("X: a\x7f\r\n"), .rc = TC_HTTP_EBAD},
    {"other controls in a value", GET11("X: a\x1b[2J\r\n"), .rc = TC_HTTP_EBAD},
    {"obs-fold is refused, not unfolded (RFC 9112 5.2)", GET11("X: a\r\n b\r\n"), .rc = TC_HTTP_EBAD},
    {"obs-fold with HTAB", GET11("X: a\r\n\tb\r\n"), .rc = TC_HTTP_EBAD},
    {"whitespace before the first header (RFC 9112 2.2)", RL11 " Host: h\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"space before the colon (RFC 9112 5.1)", RL11 "Host : h\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"HTAB before the colon", RL11 "Host\t: h\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"no colon", RL11 "Host h\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"an empty name", RL11 HOST ": v\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a separator in a name", RL11 HOST "X(y): v\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"missing Host in HTTP/1.1 (RFC 9112 3.2)", "GET / HTTP/1.1\r\nX: y\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"two Hosts", GET11("Host: other\r\n"), .rc = TC_HTTP_EBAD},
    {"a Host with a space inside (RFC 9112 3.2: invalid value, 400)", RL11 "Host: 127.0.0.1 evil\r\n\r\n",
     .rc = TC_HTTP_EBAD},
    {"a Host with userinfo", RL11 "Host: user@127.0.0.1\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with a path", RL11 "Host: a/b\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with letters in its port", RL11 "Host: 127.0.0.1:abc\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with two colons outside brackets", RL11 "Host: ::1\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with an unclosed IP literal", RL11 "Host: [::1\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with an empty IP literal", RL11 "Host: []\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with text after the IP literal", RL11 "Host: [::1]x\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"a Host with a cut percent-encoding", RL11 "Host: a%4\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"an HTTP/1.0 Host is checked too", "GET / HTTP/1.0\r\nHost: a b\r\n\r\n", .rc = TC_HTTP_EBAD},

    /* -- request line -- */
    {"HTTP/2.0 in an HTTP/1 request line: 505", "GET / HTTP/2.0\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD_VERSION},
    {"HTTP/1.2: 505", "GET / HTTP/1.2\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD_VERSION},
    {"HTTP/0.9: 505", "GET / HTTP/0.9\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD_VERSION},
    {"a two-digit minor version", "GET / HTTP/1.10\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"the protocol name is case-sensitive", "GET / http/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"no version (HTTP/0.9 style)", "GET /\r\n\r\n", .rc = TC_HTTP_EBAD},
    {"space after the version", "GET / HTTP/1.1 \r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"two spaces after the method", "GET  / HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"a space inside the target", "GET /a b HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"HTAB after the method", "GET\t/ HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"a separator in the method", "GE(T / HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"no method is 33 bytes long", "ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFG / HTTP/1.1\r\n" HOST "\r\n",
     .rc = TC_HTTP_EBAD},
    {"a relative target", "GET a/b HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"a scheme other than http(s)", "GET ftp://h/x HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"absolute-form with no authority", "GET http:// HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"absolute-form with an empty host (RFC 9110 4.2.1)", "GET http:///x HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EBAD},
    {"a version that never ends", "GET / HTTP/1.1xxxxxxxxxxxxxxxxxxxxxxx", .rc = TC_HTTP_EBAD},
    {"RFC 9112 2.2: at most two empty lines are skipped", "\r\n\r\n\r\n" GET11(""), .rc = TC_HTTP_EBAD},
    {"an LF-only empty line before the request line", "\n" GET11(""), .rc = TC_HTTP_EBAD},
    {"still incomplete: no empty line yet", RL11 HOST, .rc = TC_HTTP_INCOMPLETE},
    {"still incomplete: an empty line alone", "\r\n", .rc = TC_HTTP_INCOMPLETE},

    /* -- limits, checked on incomplete input too (slowloris) -- */
    {"a target of exactly max_uri", "GET /1234567 HTTP/1.1\r\n" HOST "\r\n", .rc = WHOLE, .method = "GET",
     .path = "/1234567", .minor = 1, .keep_alive = 1, .nheaders = 1, SMALL},
    {"a target of max_uri + 1: 414", "GET /12345678 HTTP/1.1\r\n" HOST "\r\n", .rc = TC_HTTP_EURI_TOO_LONG, SMALL},
    {"414 while the target is still arriving", "GET /123456789012345678", .rc = TC_HTTP_EURI_TOO_LONG, SMALL},
    {"a head of exactly max_head", RL11 HOST "X: 12345678\r\n\r\n", .rc = WHOLE, .method = "GET", .path = "/",
     .minor = 1, .keep_alive = 1, .nheaders = 2, SMALL},
    {"a head of max_head + 1: 431", RL11 HOST "X: 123456789\r\n\r\n", .rc = TC_HTTP_EHEADERS_TOO_LARGE, SMALL},
    {"431 while a header line is still arriving", RL11 HOST "X: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     .rc = TC_HTTP_EHEADERS_TOO_LARGE, SMALL},
    {"431 while the request line is still arriving", "GET / HTTP/1.1", .rc = TC_HTTP_EHEADERS_TOO_LARGE,
     .lim = {.max_uri = 64, .max_head = 10, .max_headers = 3}},
    {"431 before a bad byte beyond max_head arrives", RL11 HOST "X: aaaaaaaaaaaaaaaaaaaaa\nb\r\n\r\n",
     .rc = TC_HTTP_EBAD, .early = TC_HTTP_EHEADERS_TOO_LARGE, SMALL},
    {"exactly max_headers fields", RL11 HOST "A: 1\r\nB: 2\r\n\r\n", .rc = WHOLE, .method = "GET", .path = "/",
     .minor = 1, .keep_alive = 1, .nheaders = 3, .hname = "b", .hvalue = "2", SMALL},
    {"max_headers + 1 fields: 431", RL11 HOST "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", .rc = TC_HTTP_ETOO_MANY_HEADERS,
     FEW},
    {"more fields than the caller's array", RL11 HOST "A: 1\r\nB: 2\r\n\r\n", .rc = TC_HTTP_ETOO_MANY_HEADERS,
     .cap = 2},
};

static int parse_prefix(const http_row_t *row, const char *in, size_t k, tc_http_request_t *r,
                        tc_http_header_t *hs, char **copy)
{
    const tc_http_limits_t *lim = row->lim.max_head ? &row->lim : &DEFAULT_LIMITS;
    size_t cap = row->cap ? row->cap : TC_HTTP_MAX_HEADERS_CAP;
    *copy = malloc(k ? k : 1); /* exactly k bytes: a read past the prefix is an ASan error */
    if (*copy == NULL) {
        abort();
    }
    memcpy(*copy, in, k);
    tc_http_request_init(r, hs, cap);
    return tc_http_parse_request(*copy, k, lim, r);
}

static int in_buf(tc_http_slice_t s, const char *buf, size_t len)
{
    return s.ptr == NULL || (s.ptr >= buf && s.len <= len && (size_t)(s.ptr - buf) <= len - s.len);
}

static int check_fields(const http_row_t *row, const tc_http_request_t *r, const char *buf, size_t n)
{
    ROW_CHECK(slice_is(r->method, row->method), "method %s, want %s", show(r->method), row->method);
    ROW_CHECK(slice_is(r->path, row->path), "path %s, want %s", show(r->path), row->path);
    ROW_CHECK(slice_is(r->query, row->query), "query %s, want %s", show(r->query), row->query ? row->query : "(none)");
    ROW_CHECK(r->minor == row->minor, "minor %d, want %d", r->minor, row->minor);
    ROW_CHECK(r->keep_alive == !!row->keep_alive, "keep_alive %d, want %d", r->keep_alive, row->keep_alive);
    ROW_CHECK(r->has_content_length == !!row->has_cl, "has_content_length %d", r->has_content_length);
    ROW_CHECK(r->content_length == row->content_length, "content_length %" PRIu64 ", want %" PRIu64, r->content_length,
              row->content_length);
    ROW_CHECK(r->chunked == !!row->chunked, "chunked %d, want %d", r->chunked, row->chunked);
    ROW_CHECK(r->upgrade == !!row->upgrade, "upgrade %d, want %d", r->upgrade, row->upgrade);
    ROW_CHECK(r->nheaders == (size_t)row->nheaders, "nheaders %zu, want %d", r->nheaders, row->nheaders);
    ROW_CHECK(in_buf(r->method, buf, n) && in_buf(r->target, buf, n) && in_buf(r->query, buf, n),
              "a slice points outside the head");
    ROW_CHECK(in_buf(r->path, buf, n) || slice_is(r->path, "/"), "the path points outside the head");
    for (size_t i = 0; i < r->nheaders; i++) {
        ROW_CHECK(in_buf(r->headers[i].name, buf, n) && in_buf(r->headers[i].value, buf, n),
                  "header %zu points outside the head", i);
    }
    if (row->hname) {
        tc_http_slice_t v;
        ROW_CHECK(tc_http_header_find(r, row->hname, &v) == 0, "header %s not found", row->hname);
        ROW_CHECK(slice_is(v, row->hvalue), "header %s = \"%s\", want \"%s\"", row->hname, show(v), row->hvalue);
    }
    return 0;
}

static int check_http_row(const http_row_t *row)
{
    size_t len = row->in_len ? row->in_len : strlen(row->in);
    int want = row->rc == WHOLE ? (int)len : row->rc;
    tc_http_header_t hs[TC_HTTP_MAX_HEADERS_CAP];
    tc_http_request_t r;
    char *copy;

    int got = parse_prefix(row, row->in, len, &r, hs, &copy);
    int bad = got != want;
    if (bad) {
        ROW_FAIL("whole input: %d, want %d", got, want);
    } else if (got > 0) {
        bad = check_fields(row, &r, copy, len);
    }
    free(copy);
    if (bad) {
        return 1;
    }

    /* One byte at a time: prefixes of 0 .. len - 1 bytes. */
    int err_at = -1; /* the first prefix that gave an error */
    int ok_at = -1;  /* the first prefix that gave a length */
    for (size_t k = 0; k < len; k++) {
        int g = parse_prefix(row, row->in, k, &r, hs, &copy);
        if (g == TC_HTTP_INCOMPLETE) {
            bad = err_at >= 0 || ok_at >= 0;
            if (bad) {
                ROW_FAIL("prefix %zu: incomplete after prefix %d gave a result", k, err_at >= 0 ? err_at : ok_at);
            }
        } else if (g > 0) {
            bad = g != want || (size_t)g > k || err_at >= 0;
            if (bad) {
                ROW_FAIL("prefix %zu gave %d (whole input %d)", k, g, want);
            } else {
                bad = check_fields(row, &r, copy, k);
                ok_at = ok_at < 0 ? (int)k : ok_at;
            }
        } else {
            bad = want > 0 || (g != want && g != row->early) || ok_at >= 0;
            if (bad) {
                ROW_FAIL("prefix %zu gave error %d (whole input %d, early %d)", k, g, want, row->early);
            }
            err_at = err_at < 0 ? (int)k : err_at;
        }
        free(copy);
        if (bad) {
            return 1;
        }
    }
    return 0;
}

/* Rebase: the server copies a head into its own buffer and moves the slices. */
static int check_rebase(void)
{
    tc_check_row = "rebase: slices follow the copied head";
    static const char *const heads[] = {
        "GET /a/b?q=1 HTTP/1.1\r\nHost: h\r\nX-Y: z\r\n\r\n",
        "GET http://example.com HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    for (size_t t = 0; t < sizeof(heads) / sizeof(heads[0]); t++) {
        const char *src = heads[t];
        size_t n = strlen(src);
        tc_http_header_t hs[8], moved[8];
        tc_http_request_t r;
        tc_http_request_init(&r, hs, 8);
        ROW_CHECK(tc_http_parse_request(src, n, &DEFAULT_LIMITS, &r) == (int)n, "parse");
        char *copy = malloc(n);
        if (copy == NULL) {
            abort();
        }
        memcpy(copy, src, n);
        tc_http_request_rebase(&r, src, copy, moved);
        size_t last = t == 0 ? 1 : 0;
        int bad = !in_buf(r.method, copy, n) || !in_buf(r.target, copy, n) || !in_buf(r.query, copy, n) ||
                  r.headers != moved || r.nheaders != last + 1 || !in_buf(r.headers[last].name, copy, n) ||
                  !in_buf(r.headers[last].value, copy, n) || !slice_is(r.headers[last].value, t == 0 ? "z" : "h") ||
                  !slice_is(r.path, t == 0 ? "/a/b" : "/") || !slice_is(r.query, t == 0 ? "q=1" : NULL);
        bad = bad || (t == 0 && !in_buf(r.path, copy, n));
        free(copy);
        ROW_CHECK(!bad, "head %zu: a slice was not moved into the copy", t);
    }
    return 0;
}

static int check_helpers(void)
{
    tc_check_row = "tc_http_list_has";
    static const struct {
        const char *list, *token;
        int want;
    } lists[] = {
        {"keep-alive, Upgrade", "upgrade", 1}, {"keep-alive,upgrade", "KEEP-ALIVE", 1}, {" ,, close ,", "close", 1},
        {"closed", "close", 0},                 {"upgrades", "upgrade", 0},             {"", "close", 0},
        {"a, b\t, c", "b", 1},                  {"x close", "close", 0},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        tc_http_slice_t s = {lists[i].list, strlen(lists[i].list)};
        ROW_CHECK(tc_http_list_has(s, lists[i].token) == lists[i].want, "\"%s\" has \"%s\": want %d", lists[i].list,
                  lists[i].token, lists[i].want);
    }
    tc_check_row = "tc_http_accepts_coding";
    static const struct {
        const char *value;
        int want;
    } codings[] = {
        {"gzip", 1},           {"GZIP, deflate", 1},  {"br;q=1.0, gzip;q=0.5", 1}, {"gzip;q=0.001", 1},
        {"gzip; q=1.0", 1},    {"gzip; q=0", 0},      {"gzip ;q=0.000", 0},       {"gzip;Q=0", 0},
        {"gzipx", 0},          {"x-gzip", 0},         {"", 0},                    {"identity", 0},
        {"*", 1},              {"*;q=0", 0},          {"gzip;q=0, *", 0},         {"*, gzip;q=0", 0},
        {"br, *;q=0.1", 1},    {"deflate;level=9, gzip", 1},
    };
    for (size_t i = 0; i < sizeof(codings) / sizeof(codings[0]); i++) {
        const char *v = codings[i].value;
        ROW_CHECK(tc_http_accepts_coding(v, strlen(v), "gzip") == codings[i].want, "\"%s\" accepts gzip: want %d", v,
                  codings[i].want);
    }
    tc_check_row = "tc_http_error_status";
    static const int status[][2] = {
        {TC_HTTP_EBAD, 400},          {TC_HTTP_EURI_TOO_LONG, 414},   {TC_HTTP_EHEADERS_TOO_LARGE, 431},
        {TC_HTTP_ETOO_MANY_HEADERS, 431}, {TC_HTTP_EBAD_VERSION, 505}, {TC_HTTP_EBODY_TOO_LARGE, 413},
        {TC_HTTP_ENOT_IMPLEMENTED, 501}, {-100, 400},                   {TC_HTTP_INCOMPLETE, 400},
    };
    for (size_t i = 0; i < sizeof(status) / sizeof(status[0]); i++) {
        ROW_CHECK(tc_http_error_status(status[i][0]) == status[i][1], "%d -> %d, want %d", status[i][0],
                  tc_http_error_status(status[i][0]), status[i][1]);
    }
    tc_check_row = "tc_http_header_find: absent";
    tc_http_header_t hs[4];
    tc_http_request_t r;
    tc_http_request_init(&r, hs, 4);
    const char *h = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    ROW_CHECK(tc_http_parse_request(h, strlen(h), &DEFAULT_LIMITS, &r) > 0, "parse");
    tc_http_slice_t v;
    ROW_CHECK(tc_http_header_find(&r, "hos", &v) == -1 && tc_http_header_find(&r, "hostx", &v) == -1, "found a prefix");
    return 0;
}

/* ---- chunked bodies ---- */

typedef struct {
    const char *why;
    const char *in;
    size_t in_len;     /* 0: strlen(in) */
    uint64_t max;      /* 0: 1 MiB */
    int rc;            /* final: TC_HTTP_CHUNKED_DONE, 0 (all input used, more needed) or an error */
    const char *data;  /* the data slices, concatenated */
    size_t used;       /* bytes consumed when rc != 0 (0: the whole input) */
} chunk_row_t;

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const chunk_row_t CHUNK_ROWS[] = {
    {"one chunk and the last chunk", "5\r\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE, .data = "hello"},
    {"several chunks", "3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE,
     .data = "abcdefgh"},
    {"hex sizes in either case", "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE,
     .data = "0123456789abcdefghijk"},
    {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE, .data = "hello"},
    {"an empty body", "0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE, .data = ""},
    {"extensions are ignored (RFC 9112 7.1.1)", "5;name=value;x\r\nhello\r\n0;last\r\n\r\n",
     .rc = TC_HTTP_CHUNKED_DONE, .data = "hello"},
    {"a quoted extension value", "5;n=\"a b;c\"\r\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE, .data = "hello"},
    {"whitespace before ';' (BWS)", "5 \t;x\r\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE, .data = "hello"},
    {"whitespace after the size", "5 \r\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE, .data = "hello"},
    {"trailers are read and dropped", "5\r\nhello\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", .rc = TC_HTTP_CHUNKED_DONE,
     .data = "hello"},
    {"bytes after the body are not consumed (pipelining)", "2\r\nhi\r\n0\r\n\r\nGET / HTTP/1.1\r\n",
     .rc = TC_HTTP_CHUNKED_DONE, .data = "hi", .used = 12},
    {"a body exactly at the limit", "5\r\nhello\r\n0\r\n\r\n", .max = 5, .rc = TC_HTTP_CHUNKED_DONE,
     .data = "hello"},
    {"incomplete inside the data", "5\r\nhel", .rc = 0, .data = "hel"},
    {"incomplete inside the size line", "5;ext", .rc = 0, .data = ""},
    {"incomplete before the last CRLF", "0\r\n\r", .rc = 0, .data = ""},
    {"incomplete: nothing yet", "", .rc = 0, .data = ""},
    {"a 64-bit size within a 64-bit limit", "FFFFFFFFFFFFFFFF\r\nab", .max = UINT64_MAX, .rc = 0, .data = "ab"},
    {"hex overflow: 17 digits", "10000000000000000\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 16},
    {"hex overflow: 17 digits even with leading zeros", "00000000000000001\r\n", .rc = TC_HTTP_EBAD, .data = "",
     .used = 16},
    {"size beyond the limit: 413", "6\r\nhello!\r\n0\r\n\r\n", .max = 5, .rc = TC_HTTP_EBODY_TOO_LARGE, .data = "",
     .used = 3},
    {"sizes adding up beyond the limit", "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n", .max = 6,
     .rc = TC_HTTP_EBODY_TOO_LARGE, .data = "abc", .used = 11},
    {"4 GiB + 1 is not 1 on 32-bit: 413", "100000001\r\nx", .rc = TC_HTTP_EBODY_TOO_LARGE, .data = "", .used = 11},
    {"the largest size against a 1 MiB limit", "FFFFFFFFFFFFFFFF\r\n", .rc = TC_HTTP_EBODY_TOO_LARGE, .data = "",
     .used = 18},
    {"missing CRLF after the data", "5\r\nhelloX\r\n0\r\n\r\n", .rc = TC_HTTP_EBAD, .data = "hello", .used = 8},
    {"LF alone after the data", "5\r\nhello\n0\r\n\r\n", .rc = TC_HTTP_EBAD, .data = "hello", .used = 8},
    {"CR and no LF after the data", "5\r\nhello\rX", .rc = TC_HTTP_EBAD, .data = "hello", .used = 9},
    {"a data chunk longer than its size", "3\r\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_EBAD, .data = "hel", .used = 6},
    {"no size", "\r\nhello\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 0},
    {"a size that is not hex", "g\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 0},
    {"a negative size", "-1\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 0},
    {"a 0x prefix", "0x5\r\nhello\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 1},
    {"a space inside the size (\"5 6\" is not 5)", "5 6\r\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_EBAD, .data = "",
     .used = 2},
    {"whitespace then a bare name: extensions start with ';'", "5 x=1\r\nhello\r\n", .rc = TC_HTTP_EBAD,
     .data = "", .used = 2},
    {"LF alone after the size", "5\nhello\r\n0\r\n\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 1},
    {"CR and no LF after the size", "5\rhello", .rc = TC_HTTP_EBAD, .data = "", .used = 2},
    {"LF inside an extension (chunk-extension smuggling)", "5;a\nb\r\nhello\r\n", .rc = TC_HTTP_EBAD, .data = "",
     .used = 3},
    {"NUL inside an extension", NUL_IN("5;a\0b\r\nhello\r\n"), .rc = TC_HTTP_EBAD, .data = "", .used = 3},
    {"an endless extension", "1;" A64 A64 A64 A64 "\r\nx\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 256},
    {"NUL in a trailer", NUL_IN("0\r\nX: \0\r\n\r\n"), .rc = TC_HTTP_EBAD, .data = "", .used = 6},
    {"LF alone in the trailers", "0\r\nX: 1\n\r\n", .rc = TC_HTTP_EBAD, .data = "", .used = 7},
    {"LF alone as the last line", "0\r\n\n", .rc = TC_HTTP_EBAD, .data = "", .used = 3},
};

#define CHUNK_STEP_WHOLE ((size_t)-1)

/* Feeds in steps of `step` bytes (each piece in an exact-size copy), calling again from buf + used, and collects
 * the data. Returns the final code; *used_total receives the bytes consumed. */
static int chunk_feed(const chunk_row_t *row, size_t len, size_t step, char *out, size_t *out_len,
                      size_t *used_total, int *progress_bug)
{
    tc_http_chunked_t c;
    tc_http_chunked_init(&c, row->max ? row->max : 1024 * 1024);
    size_t off = 0, have = 0; /* have: bytes handed to the decoder so far (a step at a time) */
    *out_len = 0;
    *progress_bug = 0;
    for (int guard = 0; guard < 100000; guard++) {
        if (off == have) {
            if (have == len) {
                break;
            }
            have = step > len - have ? len : have + step;
        }
        size_t n = have - off;
        char *piece = malloc(n ? n : 1);
        if (piece == NULL) {
            abort();
        }
        memcpy(piece, row->in + off, n);
        size_t used = (size_t)-1;
        tc_http_slice_t data;
        int rc = tc_http_chunked_decode(&c, piece, n, &used, &data);
        if (used > n || (data.len && (data.ptr < piece || data.ptr + data.len > piece + n))) {
            free(piece);
            *progress_bug = 1;
            return -100;
        }
        memcpy(out + *out_len, data.ptr ? data.ptr : "", data.len);
        *out_len += data.len;
        free(piece);
        if (rc != 0) {
            *used_total = off + used;
            return rc;
        }
        if (used == 0 && data.len == 0) {
            *progress_bug = 1; /* 0 with nothing consumed and nothing produced would loop forever */
            return -100;
        }
        off += used;
    }
    *used_total = off;
    return 0;
}

static int check_chunk_row(const chunk_row_t *row)
{
    size_t len = row->in_len ? row->in_len : strlen(row->in);
    size_t want_used = row->rc != 0 && row->used ? row->used : len;
    if (row->rc != 0 && row->used == 0 && row->rc != TC_HTTP_CHUNKED_DONE) {
        want_used = 0; /* an error row with used 0: refused at the first byte */
    }
    static const size_t steps[] = {CHUNK_STEP_WHOLE, 1, 2, 3, 7};
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        char out[512];
        size_t out_len, used;
        int progress_bug;
        int rc = chunk_feed(row, len, steps[s], out, &out_len, &used, &progress_bug);
        const char *how = steps[s] == CHUNK_STEP_WHOLE ? "whole" : "in pieces";
        ROW_CHECK(!progress_bug, "%s (step %zu): used beyond the input, a slice outside it, or no progress", how,
                  steps[s]);
        ROW_CHECK(rc == row->rc, "%s (step %zu): rc %d, want %d", how, steps[s], rc, row->rc);
        ROW_CHECK(out_len == strlen(row->data) && memcmp(out, row->data, out_len) == 0, "%s (step %zu): data \"%.*s\"",
                  how, steps[s], (int)out_len, out);
        ROW_CHECK(used == want_used, "%s (step %zu): consumed %zu, want %zu", how, steps[s], used, want_used);
    }
    return 0;
}

static int check_chunk_done_is_sticky(void)
{
    tc_check_row = "chunked: after the end, calls return DONE and consume nothing";
    tc_http_chunked_t c;
    tc_http_chunked_init(&c, 100);
    size_t used;
    tc_http_slice_t data;
    const char *in = "0\r\n\r\nmore";
    ROW_CHECK(tc_http_chunked_decode(&c, in, strlen(in), &used, &data) == TC_HTTP_CHUNKED_DONE && used == 5, "end");
    ROW_CHECK(tc_http_chunked_decode(&c, in + 5, 4, &used, &data) == TC_HTTP_CHUNKED_DONE && used == 0 &&
                  data.len == 0,
              "after the end");
    return 0;
}

/* ---- path decoding ---- */

typedef struct {
    const char *src;
    size_t cap;       /* 0: 64 */
    int rc;           /* the decoded length, or -1 */
    const char *want; /* the decoded bytes */
} path_row_t;

static const path_row_t PATH_ROWS[] = {
    {"/a/b", 0, 4, "/a/b"},
    {"/a%20b", 0, 4, "/a b"},
    {"%2F", 0, 1, "/"},
    {"%2f%2E%2e", 0, 3, "/.."},
    {"a+b", 0, 3, "a+b"}, /* '+' is a space only in form bodies */
    {"%E2%82%AC", 0, 3, "\xe2\x82\xac"},
    {"%ff", 0, 1, "\xff"},
    {"%01", 0, 1, "\x01"},
    {"", 0, 0, ""},
    {"%00", 0, -1, NULL}, /* a NUL would cut the path short downstream */
    {"/a%00.html", 0, -1, NULL},
    {"%", 0, -1, NULL},   /* truncated escapes */
    {"%4", 0, -1, NULL},
    {"/x%", 0, -1, NULL},
    {"/x%6", 0, -1, NULL},
    {"%G1", 0, -1, NULL}, /* bad escapes */
    {"%1G", 0, -1, NULL},
    {"%%41", 0, -1, NULL},
    {"% 41", 0, -1, NULL},
    {"%-1", 0, -1, NULL},
    {"/abc", 5, 4, "/abc"}, /* exactly room for the NUL */
    {"/abc", 4, -1, NULL},  /* buffer too small */
    {"/a%20", 3, -1, NULL},
    {"/a%20", 4, 3, "/a "},
    {"", 1, 0, ""},
    {"x", 1, -1, NULL},
};

static int check_path_row(const path_row_t *row)
{
    size_t cap = row->cap ? row->cap : 64;
    char *dst = malloc(cap);
    if (dst == NULL) {
        abort();
    }
    memset(dst, 'Z', cap);
    int rc = tc_http_path_decode(row->src, strlen(row->src), dst, cap);
    int bad = rc != row->rc || (rc >= 0 && (memcmp(dst, row->want, (size_t)rc) != 0 || dst[rc] != '\0'));
    free(dst);
    ROW_CHECK(!bad, "\"%s\" (cap %zu): %d, want %d", row->src, cap, rc, row->rc);
    return 0;
}

static int check_path_cap0(void)
{
    tc_check_row = "path decode: no room at all";
    char d;
    ROW_CHECK(tc_http_path_decode("", 0, &d, 0) == -1 && tc_http_path_decode("/", 1, &d, 0) == -1, "cap 0 accepted");
    return 0;
}

/* ---- route matching ---- */

typedef struct {
    const char *pattern;
    const char *path;
    int max;          /* parameters the caller has room for */
    int rc;
    const char *p[2][2]; /* expected {name, value} */
} route_row_t;

static const route_row_t ROUTE_ROWS[] = {
    {"/", "/", 4, 0, {{0}}},
    {"/a", "/a", 4, 0, {{0}}},
    {"/a", "/a/", 4, -1, {{0}}},
    {"/a", "/ab", 4, -1, {{0}}},
    {"/ab", "/a", 4, -1, {{0}}},
    {"/a/", "/a", 4, -1, {{0}}},
    {"/A", "/a", 4, -1, {{0}}}, /* paths are case-sensitive */
    {"/a", "", 4, -1, {{0}}},
    {"/user/:id", "/user/42", 4, 1, {{"id", "42"}}},
    {"/user/:id", "/user/", 4, -1, {{0}}}, /* a parameter is one non-empty segment */
    {"/user/:id", "/user", 4, -1, {{0}}},
    {"/user/:id", "/user/42/x", 4, -1, {{0}}},
    {"/user/:id/", "/user/42/", 4, 1, {{"id", "42"}}},
    {"/u/:a/p/:b", "/u/1/p/two", 4, 2, {{"a", "1"}, {"b", "two"}}},
    {"/u/:a/p/:b", "/u/1/q/2", 4, -1, {{0}}},
    {"/u/:a/:b", "/u/1/2", 1, -1, {{0}}}, /* more parameters than the caller's array */
    {"/u/:a", "/u/1", 0, -1, {{0}}},
    {"/u/:", "/u/1", 4, -1, {{0}}},       /* a parameter without a name */
    {"/static/*", "/static/", 4, 0, {{0}}},
    {"/static/*", "/static/a/b.css", 4, 0, {{0}}},
    {"/static/*", "/static", 4, -1, {{0}}},
    {"/static/*", "/staticx/a", 4, -1, {{0}}},
    {"*", "/anything/at/all", 4, 0, {{0}}},
    {"*", "", 4, 0, {{0}}},
    {"/:dir/*", "/img/a/b", 4, 1, {{"dir", "img"}}},
    {"/files*", "/files-secret/x", 4, -1, {{0}}}, /* '*' is a whole final segment, not a glob inside one */
    {"/files*", "/files*", 4, 0, {{0}}},
    {"/a/*/b", "/a/*/b", 4, 0, {{0}}},            /* not final: a literal */
    {"/a/*/b", "/a/x/b", 4, -1, {{0}}},
};

static int check_route_row(const route_row_t *row)
{
    tc_http_param_t params[4];
    memset(params, 0, sizeof(params));
    int rc = tc_http_route_match(row->pattern, row->path, params, row->max);
    ROW_CHECK(rc == row->rc, "\"%s\" vs \"%s\" (max %d): %d, want %d", row->pattern, row->path, row->max, rc, row->rc);
    for (int i = 0; i < rc; i++) {
        ROW_CHECK(slice_is(params[i].name, row->p[i][0]) && slice_is(params[i].value, row->p[i][1]),
                  "\"%s\" vs \"%s\": parameter %d is %s=%s", row->pattern, row->path, i, show(params[i].name),
                  show(params[i].value));
    }
    return 0;
}

/* ---- main ---- */

int main(void)
{
    int rows = 0;
    for (size_t i = 0; i < sizeof(HTTP_ROWS) / sizeof(HTTP_ROWS[0]); i++, rows++) {
        tc_check_row = HTTP_ROWS[i].why;
        tc_check_tally(check_http_row(&HTTP_ROWS[i]));
    }
    printf("request heads: %zu rows, each whole and one byte at a time\n", sizeof(HTTP_ROWS) / sizeof(HTTP_ROWS[0]));
    tc_check_tally(check_rebase());
    tc_check_tally(check_helpers());
    for (size_t i = 0; i < sizeof(CHUNK_ROWS) / sizeof(CHUNK_ROWS[0]); i++, rows++) {
        tc_check_row = CHUNK_ROWS[i].why;
        tc_check_tally(check_chunk_row(&CHUNK_ROWS[i]));
    }
    tc_check_tally(check_chunk_done_is_sticky());
    printf("chunked bodies: %zu rows, whole and in pieces of 1, 2, 3 and 7 bytes\n",
           sizeof(CHUNK_ROWS) / sizeof(CHUNK_ROWS[0]));
    tc_check_row = "path decode";
    for (size_t i = 0; i < sizeof(PATH_ROWS) / sizeof(PATH_ROWS[0]); i++, rows++) {
        tc_check_tally(check_path_row(&PATH_ROWS[i]));
    }
    tc_check_tally(check_path_cap0());
    printf("path decoding: %zu rows\n", sizeof(PATH_ROWS) / sizeof(PATH_ROWS[0]));
    tc_check_row = "route match";
    for (size_t i = 0; i < sizeof(ROUTE_ROWS) / sizeof(ROUTE_ROWS[0]); i++, rows++) {
        tc_check_tally(check_route_row(&ROUTE_ROWS[i]));
    }
    printf("route matching: %zu rows\n", sizeof(ROUTE_ROWS) / sizeof(ROUTE_ROWS[0]));
    return tc_check_summary();
}
