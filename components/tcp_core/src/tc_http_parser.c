/*
 * tc_http_parser.c - the pure HTTP/1.1 request parser (see tc_http_parser.h).
 */
#include "tc_http_parser.h"

#include <string.h>

static const char ROOT_PATH[] = "/";

/* The punctuation of two character classes, looked up for every byte of every field name and Host value: a table
 * rather than strchr() over a string (a call and a scan per byte). Letters and digits are in both classes.
 * RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
 * / DIGIT / ALPHA.
 * RFC 3986 2.3 and 2.2: unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"; sub-delims = "!" / "$" / "&" / "'" / "("
 * / ")" / "*" / "+" / "," / ";" / "=". Together, what a reg-name, an IPv4 address and an IPvFuture are made of. */
enum { TCHAR = 1, HOSTCHAR = 2 };
static const unsigned char PUNCT[128] = {
    ['!'] = TCHAR | HOSTCHAR,
    ['#'] = TCHAR,
    ['$'] = TCHAR | HOSTCHAR,
    ['%'] = TCHAR,
    ['&'] = TCHAR | HOSTCHAR,
    ['\''] = TCHAR | HOSTCHAR,
    ['('] = HOSTCHAR,
    [')'] = HOSTCHAR,
    ['*'] = TCHAR | HOSTCHAR,
    ['+'] = TCHAR | HOSTCHAR,
    [','] = HOSTCHAR,
    ['-'] = TCHAR | HOSTCHAR,
    ['.'] = TCHAR | HOSTCHAR,
    [';'] = HOSTCHAR,
    ['='] = HOSTCHAR,
    ['^'] = TCHAR,
    ['_'] = TCHAR | HOSTCHAR,
    ['`'] = TCHAR,
    ['|'] = TCHAR,
    ['~'] = TCHAR | HOSTCHAR,
};

static int in_class(unsigned char c, unsigned char cls)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c < sizeof(PUNCT) && (PUNCT[c] & cls) != 0;
}

static int is_tchar(unsigned char c)
{
    return in_class(c, TCHAR);
}

/* Field values: VCHAR, obs-text, SP, HTAB. Every other control byte (CR, LF, NUL, DEL...) is refused. */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (unsigned char)lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int is_host_char(unsigned char c)
{
    return in_class(c, HOSTCHAR);
}

/* RFC 9112 3.2 and RFC 3986 3.2.2-3.2.3: Host = uri-host [ ":" port ], uri-host = IP-literal / IPv4address / reg-name,
 * port = *DIGIT; empty is allowed (a target without an authority). A server must answer 400 to anything else: a
 * space, "@", "/", a second colon outside brackets, an unclosed "[", letters in the port. */
static int host_valid(tc_http_slice_t v)
{
    const unsigned char *p = (const unsigned char *)v.ptr;
    size_t i = 0, n = v.len;
    if (n > 0 && p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++) {
            if (!is_host_char(p[i]) && p[i] != ':') {
                return 0; /* IPv6address and IPvFuture: hex digits, ":", ".", "v", unreserved, sub-delims */
            }
        }
        if (i == n || i == 1) {
            return 0;
        }
        i++;
    } else {
        for (; i < n && p[i] != ':'; i++) {
            if (p[i] == '%') {
                if (i + 2 >= n || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0) {
                    return 0;
                }
                i += 2;
            } else if (!is_host_char(p[i])) {
                return 0;
            }
        }
    }
    if (i < n) {
        if (p[i++] != ':') {
            return 0;
        }
        for (; i < n; i++) {
            if (p[i] < '0' || p[i] > '9') {
                return 0;
            }
        }
    }
    return 1;
}

int tc_http_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) {
            return 0;
        }
    }
    return 1;
}

static int slice_ieq(tc_http_slice_t s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && tc_http_ieq(s.ptr, lit, n);
}

/* slice_ieq() with a string literal: its length is known at compile time, so a name of another length costs one
 * comparison (the header names of every request are tried against several). */
#define SLICE_IS(s, lit) ((s).len == sizeof(lit) - 1 && tc_http_ieq((s).ptr, (lit), sizeof(lit) - 1))

/* The next non-empty item of a comma-separated list from *i, trimmed; 0 when there is none left. */
static int list_next(tc_http_slice_t v, size_t *i, tc_http_slice_t *item)
{
    while (*i < v.len) {
        while (*i < v.len && (v.ptr[*i] == ' ' || v.ptr[*i] == '\t' || v.ptr[*i] == ',')) {
            (*i)++;
        }
        size_t start = *i;
        while (*i < v.len && v.ptr[*i] != ',') {
            (*i)++;
        }
        size_t end = *i;
        while (end > start && (v.ptr[end - 1] == ' ' || v.ptr[end - 1] == '\t')) {
            end--;
        }
        if (end > start) {
            item->ptr = v.ptr + start;
            item->len = end - start;
            return 1;
        }
    }
    return 0;
}

int tc_http_list_has(tc_http_slice_t v, const char *token)
{
    size_t i = 0, n = strlen(token);
    tc_http_slice_t item;
    while (list_next(v, &i, &item)) {
        if (item.len == n && tc_http_ieq(item.ptr, token, n)) {
            return 1;
        }
    }
    return 0;
}

void tc_http_request_init(tc_http_request_t *r, tc_http_header_t *headers, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->headers = headers;
    r->cap = cap;
}

int tc_http_error_status(int err)
{
    switch (err) {
    case TC_HTTP_EURI_TOO_LONG:
        return 414;
    case TC_HTTP_EHEADERS_TOO_LARGE:
    case TC_HTTP_ETOO_MANY_HEADERS:
        return 431;
    case TC_HTTP_EBAD_VERSION:
        return 505;
    case TC_HTTP_EBODY_TOO_LARGE:
        return 413;
    case TC_HTTP_ENOT_IMPLEMENTED:
        return 501;
    default:
        return 400;
    }
}

/* Find the end of the line starting at p: returns the index of its CR (CRLF required), -1 when incomplete, or
 * TC_HTTP_EBAD for a lone LF or a CR not followed by LF. */
static long line_end(const char *buf, size_t len, size_t p)
{
    for (size_t i = p; i < len; i++) {
        if (buf[i] == '\n') {
            return TC_HTTP_EBAD; /* LF without CR */
        }
        if (buf[i] == '\r') {
            if (i + 1 == len) {
                return -1;
            }
            return buf[i + 1] == '\n' ? (long)i : TC_HTTP_EBAD;
        }
    }
    return -1;
}

/* Length of a leading "http://" or "https://" (the scheme is case-insensitive, RFC 3986 3.1), or 0. */
static size_t scheme_len(tc_http_slice_t t)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
        tc_http_slice_t head = {t.ptr, strlen(schemes[k])};
        if (t.len >= head.len && slice_ieq(head, schemes[k])) {
            return head.len;
        }
    }
    return 0;
}

static int parse_request_line(const char *buf, size_t len, const tc_http_limits_t *lim, tc_http_request_t *r,
                              size_t *next)
{
    size_t i = 0;
    while (i < len && is_tchar((unsigned char)buf[i])) {
        i++;
    }
    if (i == len) {
        return i > 32 ? TC_HTTP_EBAD : TC_HTTP_INCOMPLETE; /* no method is that long */
    }
    if (i == 0 || buf[i] != ' ' || i > 32) {
        return TC_HTTP_EBAD;
    }
    r->method.ptr = buf;
    r->method.len = i;
    size_t t = ++i;
    while (i < len && buf[i] != ' ') {
        unsigned char c = (unsigned char)buf[i];
        if (c <= 0x20 || c >= 0x7f || c == '#') {
            return TC_HTTP_EBAD; /* visible ASCII (CR, LF, NUL and TAB refused here), and no fragment (RFC 9112 3.2) */
        }
        if (i - t >= lim->max_uri) {
            return TC_HTTP_EURI_TOO_LONG;
        }
        i++;
    }
    if (i == len) {
        return TC_HTTP_INCOMPLETE;
    }
    if (i == t) {
        return TC_HTTP_EBAD;
    }
    r->target.ptr = buf + t;
    r->target.len = i - t;
    size_t v = ++i;
    long eol = line_end(buf, len, v);
    if (eol == -1) {
        return len - v > 16 ? TC_HTTP_EBAD : TC_HTTP_INCOMPLETE;
    }
    if (eol < 0) {
        return (int)eol;
    }
    size_t vlen = (size_t)eol - v;
    const char *ver = buf + v;
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' || ver[6] != '.' || ver[7] < '0' ||
        ver[7] > '9') {
        return TC_HTTP_EBAD;
    }
    if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1')) {
        return TC_HTTP_EBAD_VERSION;
    }
    r->minor = ver[7] - '0';
    /* Target forms (RFC 9112 3.2): origin-form "/path?q", asterisk-form "*", absolute-form "http://host/path". */
    tc_http_slice_t path = r->target;
    if (path.ptr[0] != '/') {
        size_t a = scheme_len(path);
        if (path.len == 1 && path.ptr[0] == '*') {
            if (r->method.len != 7 || memcmp(r->method.ptr, "OPTIONS", 7) != 0) {
                return TC_HTTP_EBAD; /* the asterisk-form is OPTIONS's alone (RFC 9112 3.2.4) */
            }
        } else if (a > 0) {
            /* The authority ends at the first '/' or '?' (RFC 3986 3.2): a '/' inside the query is not the path. */
            size_t s = a;
            while (s < path.len && path.ptr[s] != '/' && path.ptr[s] != '?') {
                s++;
            }
            if (s == a) {
                return TC_HTTP_EBAD; /* no host (RFC 9110 4.2.1) */
            }
            if (s < path.len && path.ptr[s] == '/') {
                path.ptr += s;
                path.len -= s;
            } else {
                if (s < path.len) { /* "http://host?q": the path is "/", the query stays in the buffer */
                    r->query.ptr = path.ptr + s + 1;
                    r->query.len = path.len - s - 1;
                }
                path.ptr = ROOT_PATH;
                path.len = 1;
            }
        } else {
            return TC_HTTP_EBAD;
        }
    }
    const char *q = memchr(path.ptr, '?', path.len);
    if (q) {
        r->query.ptr = q + 1;
        r->query.len = path.len - (size_t)(q + 1 - path.ptr);
        path.len = (size_t)(q - path.ptr);
    }
    r->path = path;
    *next = (size_t)eol + 2;
    return 0;
}

/* Plain decimal digits into 64 bits, refusing overflow, signs, spaces inside and empty values. */
static int parse_length(tc_http_slice_t v, uint64_t *out)
{
    if (v.len == 0 || v.len > 20) {
        return -1;
    }
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (c < '0' || c > '9') {
            return -1;
        }
        unsigned d = c - '0';
        if (n > (UINT64_MAX - d) / 10) {
            return -1;
        }
        n = n * 10 + d;
    }
    *out = n;
    return 0;
}

/* Transfer-Encoding, over one or several fields (RFC 9112 6.1, 6.3): chunked must be the final coding and appear
 * once, else the body's length cannot be known (400); a coding this server does not decode is 501. */
static int transfer_coding(tc_http_request_t *r, tc_http_slice_t v)
{
    size_t i = 0;
    int items = 0, others = 0;
    tc_http_slice_t item;
    while (list_next(v, &i, &item)) {
        if (r->chunked) {
            return TC_HTTP_EBAD; /* a coding (chunked again, or another) applied after chunked */
        }
        items++;
        if (SLICE_IS(item, "chunked")) {
            r->chunked = true;
        } else {
            others++;
        }
    }
    if (items == 0) {
        return TC_HTTP_EBAD;
    }
    return others ? TC_HTTP_ENOT_IMPLEMENTED : 0; /* "gzip, chunked" is framed, but gzip is not decoded here */
}

static int apply_header(tc_http_request_t *r, const tc_http_header_t *h, int *hosts)
{
    if (SLICE_IS(h->name, "content-length")) {
        uint64_t n;
        if (parse_length(h->value, &n) != 0) {
            return TC_HTTP_EBAD; /* negative, "+5", "5, 5", "0x10", overflow: all refused (mongoose looped) */
        }
        if (r->has_content_length && n != r->content_length) {
            return TC_HTTP_EBAD; /* two different lengths: which one a proxy used is unknowable (smuggling) */
        }
        r->has_content_length = true;
        r->content_length = n;
    } else if (SLICE_IS(h->name, "transfer-encoding")) {
        return transfer_coding(r, h->value);
    } else if (SLICE_IS(h->name, "host")) {
        (*hosts)++;
        if (!host_valid(h->value)) {
            return TC_HTTP_EBAD; /* RFC 9112 3.2: a Host field with an invalid value gets 400 */
        }
    } else if (SLICE_IS(h->name, "connection")) {
        /* RFC 9112 9.6: "close" ends the connection whichever field lists it, so a later "keep-alive" field
         * must not bring it back. */
        if (tc_http_list_has(h->value, "close")) {
            r->keep_alive = false;
            r->conn_close = true;
        } else if (!r->conn_close && tc_http_list_has(h->value, "keep-alive")) {
            r->keep_alive = true;
        }
        if (tc_http_list_has(h->value, "upgrade")) {
            r->upgrade = true;
        }
    }
    return 0;
}

/* The request line, after at most two empty lines (RFC 9112 2.2: a server SHOULD ignore at least one). It is parsed
 * whole once complete; until then each call looks at it again, bounded by max_uri and the version's length. */
static int parse_start(const char *buf, size_t len, const tc_http_limits_t *limits, tc_http_request_t *r)
{
    size_t start = 0;
    while (start + 1 < len && buf[start] == '\r' && buf[start + 1] == '\n' && start < 4) {
        start += 2;
    }
    if (start < 4 && start + 1 == len && buf[start] == '\r') {
        return TC_HTTP_INCOMPLETE; /* the CR of an empty line whose LF has not arrived: not an error yet */
    }
    size_t p = 0;
    int rc = parse_request_line(buf + start, len - start, limits, r, &p);
    if (rc != 0) {
        if (rc == TC_HTTP_INCOMPLETE && len > limits->max_head) {
            return TC_HTTP_EHEADERS_TOO_LARGE;
        }
        return rc;
    }
    r->keep_alive = r->minor == 1;
    r->done = r->scan = p + start;
    r->stage = 1;
    return 0;
}

/* One complete header field line [p, e): stored and applied. */
static int parse_field(const char *buf, size_t p, size_t e, const tc_http_limits_t *limits, tc_http_request_t *r)
{
    if (buf[p] == ' ' || buf[p] == '\t') {
        return TC_HTTP_EBAD; /* obs-fold (RFC 9112 5.2): refused rather than unfolded */
    }
    size_t i = p;
    while (i < e && is_tchar((unsigned char)buf[i])) {
        i++;
    }
    if (i == p || i == e || buf[i] != ':') {
        return TC_HTTP_EBAD; /* no name, no colon, or whitespace before the colon (RFC 9112 5.1) */
    }
    tc_http_header_t h;
    h.name.ptr = buf + p;
    h.name.len = i - p;
    size_t vs = i + 1, ve = e;
    for (size_t k = vs; k < ve; k++) {
        if (!is_value_char((unsigned char)buf[k])) {
            return TC_HTTP_EBAD; /* NUL, lone CR, DEL, other controls: header injection and truncation */
        }
    }
    while (vs < ve && (buf[vs] == ' ' || buf[vs] == '\t')) {
        vs++;
    }
    while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t')) {
        ve--;
    }
    h.value.ptr = buf + vs;
    h.value.len = ve - vs;
    if (r->nheaders >= limits->max_headers || r->nheaders >= r->cap) {
        return TC_HTTP_ETOO_MANY_HEADERS;
    }
    r->headers[r->nheaders++] = h;
    int hosts = r->hosts;
    int rc = apply_header(r, &h, &hosts);
    r->hosts = (uint16_t)(hosts > 2 ? 2 : hosts); /* more than one is all the end check needs to know */
    return rc;
}

/* The whole head is in: the checks that need every field. */
static int parse_end(tc_http_request_t *r)
{
    if (r->chunked && r->has_content_length) {
        return TC_HTTP_EBAD; /* RFC 9112 6.1: both framings at once is how requests are smuggled */
    }
    if (r->chunked && r->minor == 0) {
        return TC_HTTP_EBAD; /* HTTP/1.0 has no chunked coding */
    }
    if (r->hosts > 1 || (r->minor == 1 && r->hosts == 0)) {
        return TC_HTTP_EBAD; /* RFC 9112 3.2: exactly one Host in HTTP/1.1 */
    }
    r->stage = 2;
    return (int)r->done;
}

static void move_slices(tc_http_request_t *r, const char *old_base, const char *new_base);

int tc_http_parse_request(const char *buf, size_t len, const tc_http_limits_t *limits, tc_http_request_t *r)
{
    if (r->base != NULL && r->base != buf) {
        move_slices(r, r->base, buf); /* the caller's buffer moved (grown): same bytes, new place */
    }
    r->base = buf;
    if (r->stage == 2) {
        return (int)r->done;
    }
    if (r->stage == 0) {
        int rc = parse_start(buf, len, limits, r);
        if (rc != 0) {
            return rc;
        }
    }
    for (;;) {
        size_t p = r->done;
        if (p > limits->max_head) {
            return TC_HTTP_EHEADERS_TOO_LARGE;
        }
        /* Bytes before r->scan were seen already and hold no CR or LF: the search goes on from there. */
        long eol = line_end(buf, len, r->scan > p ? r->scan : p);
        if (eol == -1) {
            /* A CR last may be the start of CRLF: looked at again with the next bytes. */
            r->scan = len > p && buf[len - 1] == '\r' ? len - 1 : len;
            /* No empty line yet, so every byte received belongs to the head: refuse as soon as they exceed it. */
            return len > limits->max_head ? TC_HTTP_EHEADERS_TOO_LARGE : TC_HTTP_INCOMPLETE;
        }
        if (eol < 0) {
            return (int)eol;
        }
        size_t e = (size_t)eol;
        if (e + 2 > limits->max_head) {
            return TC_HTTP_EHEADERS_TOO_LARGE;
        }
        if (e == p) { /* the empty line: end of the head */
            r->done = e + 2;
            return parse_end(r);
        }
        int rc = parse_field(buf, p, e, limits, r);
        if (rc != 0) {
            return rc;
        }
        r->done = r->scan = e + 2;
    }
}

static void rebase_slice(tc_http_slice_t *s, const char *old_base, const char *new_base)
{
    if (s->ptr) {
        s->ptr = new_base + (s->ptr - old_base);
    }
}

static void move_slices(tc_http_request_t *r, const char *old_base, const char *new_base)
{
    rebase_slice(&r->method, old_base, new_base);
    rebase_slice(&r->target, old_base, new_base);
    if (r->path.ptr != ROOT_PATH) { /* "http://host" without a slash: the path is a constant, not in the buffer */
        rebase_slice(&r->path, old_base, new_base);
    }
    rebase_slice(&r->query, old_base, new_base);
    for (size_t i = 0; i < r->nheaders; i++) {
        rebase_slice(&r->headers[i].name, old_base, new_base);
        rebase_slice(&r->headers[i].value, old_base, new_base);
    }
    if (r->base != NULL) {
        r->base = new_base;
    }
}

void tc_http_request_rebase(tc_http_request_t *r, const char *old_base, const char *new_base,
                            tc_http_header_t *new_headers)
{
    if (new_headers != r->headers && r->nheaders > 0) {
        memcpy(new_headers, r->headers, r->nheaders * sizeof(*new_headers));
    }
    r->headers = new_headers;
    r->cap = r->nheaders;
    move_slices(r, old_base, new_base);
}

int tc_http_header_find(const tc_http_request_t *r, const char *name, tc_http_slice_t *out)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (slice_ieq(r->headers[i].name, name)) {
            *out = r->headers[i].value;
            return 0;
        }
    }
    return -1;
}

size_t tc_http_header_count(const tc_http_request_t *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nheaders; i++) {
        n += slice_ieq(r->headers[i].name, name) ? 1 : 0;
    }
    return n;
}

int tc_http_header_lists(const tc_http_request_t *r, const char *name, const char *token)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (slice_ieq(r->headers[i].name, name) && tc_http_list_has(r->headers[i].value, token)) {
            return 1;
        }
    }
    return 0;
}

int tc_http_accepts_coding(const char *v, size_t len, const char *coding)
{
    size_t clen = strlen(coding);
    int named = -1, star = -1; /* -1 not listed, else 1 with a weight above 0, 0 with q=0 */
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
            i++;
        }
        size_t tok = i;
        while (i < len && v[i] != ',' && v[i] != ';' && v[i] != ' ' && v[i] != '\t') {
            i++;
        }
        size_t tlen = i - tok;
        int zero = 0;
        while (i < len && v[i] != ',') { /* parameters: codings = token *( OWS ";" OWS "q=" qvalue ) */
            while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ';')) {
                i++;
            }
            if (i + 2 <= len && (v[i] == 'q' || v[i] == 'Q') && v[i + 1] == '=') {
                i += 2;
                zero = i < len && v[i] == '0';
                for (i += zero; i < len && v[i] != ',' && v[i] != ';' && v[i] != ' ' && v[i] != '\t'; i++) {
                    zero = zero && (v[i] == '.' || v[i] == '0');
                }
            } else {
                while (i < len && v[i] != ',' && v[i] != ';') {
                    i++;
                }
            }
        }
        if (tlen == clen && tlen > 0 && tc_http_ieq(v + tok, coding, clen)) {
            named = !zero;
        } else if (tlen == 1 && v[tok] == '*') {
            star = !zero;
        }
    }
    return named >= 0 ? named : star == 1;
}

/* ---- chunked bodies ---- */

enum { CH_SIZE, CH_SIZE_WS, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF, CH_DONE };

#define CH_MAX_LINE 256      /* a chunk-size line with its extensions */
#define CH_MAX_TRAILERS 4096 /* trailer section */

void tc_http_chunked_init(tc_http_chunked_t *c, uint64_t max)
{
    memset(c, 0, sizeof(*c));
    c->state = CH_SIZE;
    c->max = max;
}

int tc_http_chunked_decode(tc_http_chunked_t *c, const char *buf, size_t len, size_t *used, tc_http_slice_t *data)
{
    size_t i = 0;
    data->ptr = NULL;
    data->len = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)buf[i];
        switch (c->state) {
        case CH_SIZE: {
            int h = hexval(ch);
            if (h >= 0) {
                if (c->digits >= 16 || (c->remaining >> 60) != 0) {
                    *used = i;
                    return TC_HTTP_EBAD; /* more than 64 bits of size */
                }
                c->remaining = (c->remaining << 4) | (uint64_t)h;
                c->digits++;
            } else if (c->digits == 0) {
                *used = i;
                return TC_HTTP_EBAD;
            } else if (ch == ';') {
                c->state = CH_EXT;
            } else if (ch == ' ' || ch == '\t') {
                c->state = CH_SIZE_WS;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else {
                *used = i;
                return TC_HTTP_EBAD;
            }
            if (++c->line > CH_MAX_LINE) {
                *used = i;
                return TC_HTTP_EBAD;
            }
            i++;
            break;
        }
        case CH_SIZE_WS:
            /* BWS before ';' (RFC 9112 7.1.1). Anything else is refused: "5 6" must not be read as 5 here when
             * another parser on the path reads it otherwise. */
            if (ch == ';') {
                c->state = CH_EXT;
            } else if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if ((ch != ' ' && ch != '\t') || ++c->line > CH_MAX_LINE) {
                *used = i;
                return TC_HTTP_EBAD;
            }
            i++;
            break;
        case CH_EXT:
            /* Extensions are ignored (RFC 9112 7.1.1), but bounded and free of control bytes. */
            if (ch == '\r') {
                c->state = CH_SIZE_LF;
            } else if (ch == '\n' || (ch < 0x20 && ch != '\t') || ++c->line > CH_MAX_LINE) {
                *used = i;
                return TC_HTTP_EBAD;
            }
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') {
                *used = i;
                return TC_HTTP_EBAD;
            }
            i++;
            c->line = 0;
            c->digits = 0;
            if (c->remaining == 0) {
                c->state = CH_TRAILER;
                break;
            }
            if (c->remaining > c->max - c->total) {
                *used = i;
                return TC_HTTP_EBODY_TOO_LARGE; /* compared in 64 bits, before any narrowing */
            }
            c->total += c->remaining;
            c->state = CH_DATA;
            break;
        case CH_DATA: {
            size_t avail = len - i;
            size_t take = c->remaining < avail ? (size_t)c->remaining : avail;
            data->ptr = buf + i;
            data->len = take;
            c->remaining -= take;
            i += take;
            if (c->remaining == 0) {
                c->state = CH_DATA_CR;
            }
            *used = i;
            return 0; /* one data slice per call */
        }
        case CH_DATA_CR:
            if (ch != '\r') {
                *used = i;
                return TC_HTTP_EBAD;
            }
            c->state = CH_DATA_LF;
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n') {
                *used = i;
                return TC_HTTP_EBAD;
            }
            c->state = CH_SIZE;
            i++;
            break;
        case CH_TRAILER:
            /* Trailer fields are read and dropped; an empty line ends the body. */
            if (ch == '\r') {
                c->state = CH_TRAILER_LF;
            } else if (ch == '\n' || ch == 0 || ++c->trailers > CH_MAX_TRAILERS) {
                *used = i;
                return TC_HTTP_EBAD;
            } else {
                c->line++;
            }
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') {
                *used = i;
                return TC_HTTP_EBAD;
            }
            i++;
            if (c->line == 0) {
                c->state = CH_DONE;
                *used = i;
                return TC_HTTP_CHUNKED_DONE;
            }
            c->line = 0;
            c->state = CH_TRAILER;
            break;
        default:
            *used = i;
            return TC_HTTP_CHUNKED_DONE;
        }
    }
    *used = i;
    return c->state == CH_DONE ? TC_HTTP_CHUNKED_DONE : 0;
}
