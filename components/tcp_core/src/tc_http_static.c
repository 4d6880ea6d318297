/*
 * tc_http_static.c - a directory served over HTTP (see tc_http_static.h).
 */
#include "tc_http_static.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http_internal.h"
#include "tc_http_parser.h"

#define STATIC_PATH_MAX 256

typedef struct file_stream file_stream_t;

struct tc_http_static {
    tc_http_static_config_t cfg; /* root and index point into strs */
    char *strs;
    size_t prefix_len;           /* the pattern without its '*' */
    file_stream_t *streams;      /* the downloads streaming now (tc_http_static_pause() ends them) */
    uint32_t paused_retry_s;     /* paused: Retry-After of the 503 for a body that would stream; 0 = serving */
};

/* A streamed file: its handle, the bytes left, its place in the route's list, and one part's buffer after it. */
struct file_stream {
    FILE *f;
    uint64_t left;
    uint32_t chunk;
    tc_http_static_t *st;
    tc_http_req_t *req;
    file_stream_t *prev, *next;
    uint8_t buf[];
};

const char *tc_http_static_mime(const char *name)
{
    static const char *const table[][2] = {
        {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},   {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
        {"txt", "text/plain; charset=utf-8"}, {"csv", "text/csv; charset=utf-8"},
        {"xml", "application/xml"},           {"svg", "image/svg+xml"},
        {"png", "image/png"},                 {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},               {"gif", "image/gif"},
        {"webp", "image/webp"},               {"ico", "image/x-icon"},
        {"wasm", "application/wasm"},         {"woff", "font/woff"},
        {"woff2", "font/woff2"},              {"pdf", "application/pdf"},
        {"mp4", "video/mp4"},                 {"bin", "application/octet-stream"},
        {"gz", "application/gzip"},           {"map", "application/json"},
    };
    const char *slash = strrchr(name, '/');
    const char *dot = strrchr(slash ? slash : name, '.');
    if (dot != NULL) {
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
            size_t el = strlen(table[i][0]);
            if (strlen(dot + 1) == el && tc_http_ieq(dot + 1, table[i][0], el)) {
                return table[i][1];
            }
        }
    }
    return "application/octet-stream";
}

int tc_http_static_path_ok(const char *path, size_t len)
{
    if (path == NULL || len == 0 || memchr(path, '\0', len) || memchr(path, '\\', len)) {
        return 0;
    }
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && path[j] != '/') {
            j++;
        }
        size_t seg = j - i;
        /* "." and ".." segments are refused outright: a server that resolved them could be walked out of root. */
        if ((seg == 1 && path[i] == '.') || (seg == 2 && path[i] == '.' && path[i + 1] == '.')) {
            return 0;
        }
        i = j + 1;
    }
    return 1;
}

static int accepts_gzip(tc_http_req_t *req)
{
    size_t len = 0;
    const char *v = tc_http_req_header(req, "Accept-Encoding", &len);
    return v != NULL && tc_http_accepts_coding(v, len, "gzip");
}

/* 1 when the header value equals text (not NUL-terminated value). */
static int header_is(tc_http_req_t *req, const char *name, const char *text)
{
    size_t len = 0;
    const char *v = tc_http_req_header(req, name, &len);
    return v != NULL && len == strlen(text) && memcmp(v, text, len) == 0;
}

/* If-None-Match: "*" or a list containing the ETag (weak comparison, RFC 9110 13.1.2). */
static int etag_matches(tc_http_req_t *req, const char *etag)
{
    size_t len = 0;
    const char *v = tc_http_req_header(req, "If-None-Match", &len);
    if (v == NULL) {
        return -1;
    }
    if (len == 1 && v[0] == '*') {
        return 1;
    }
    size_t el = strlen(etag);
    for (size_t i = 0; i + el <= len; i++) {
        if (memcmp(v + i, etag, el) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The decimal digits at v[*i] on (*i moves past them): their value, UINT64_MAX for one that does not fit. Saturated,
 * never wrapped: a last-pos past the end means the end and a first-pos past it is unsatisfiable (RFC 9110 14.1.2),
 * however many digits they have. */
static uint64_t range_number(const char *v, size_t len, size_t *i)
{
    uint64_t x = 0;
    for (; *i < len && v[*i] >= '0' && v[*i] <= '9'; (*i)++) {
        unsigned d = (unsigned)(v[*i] - '0');
        x = x > (UINT64_MAX - d) / 10 ? UINT64_MAX : x * 10 + d;
    }
    return x;
}

/* Whether the digits a (al of them) name a smaller number than the digits b, at any length. */
static int digits_less(const char *a, size_t al, const char *b, size_t bl)
{
    while (al > 1 && *a == '0') {
        a++, al--;
    }
    while (bl > 1 && *b == '0') {
        b++, bl--;
    }
    return al != bl ? al < bl : memcmp(a, b, al) < 0;
}

/* Range: bytes=a-b | a- | -n, one range. 1 with [*from, *to], 0 no (or an ignored) Range, -1 unsatisfiable. */
static int parse_range(tc_http_req_t *req, uint64_t size, uint64_t *from, uint64_t *to)
{
    size_t len = 0;
    const char *v = tc_http_req_header(req, "Range", &len);
    if (v == NULL || len < 7 || !tc_http_ieq(v, "bytes=", 6) || memchr(v, ',', len)) {
        return 0; /* absent, another unit, or several ranges: the whole file (RFC 9110 14.2 lets a server ignore) */
    }
    size_t i = 6, as = i;
    uint64_t a = range_number(v, len, &i);
    size_t al = i - as;
    if (i >= len || v[i] != '-') {
        return 0;
    }
    size_t bs = ++i;
    uint64_t b = range_number(v, len, &i);
    size_t bl = i - bs;
    if (i != len || (al == 0 && bl == 0)) {
        return 0;
    }
    if (al == 0) { /* the last b bytes */
        if (b == 0 || size == 0) {
            return -1;
        }
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (bl > 0 && digits_less(v + bs, bl, v + as, al)) {
        return 0; /* last-pos before first-pos: invalid, so ignored (RFC 9110 14.1.1) */
    }
    if (a >= size) {
        return -1;
    }
    *from = a;
    *to = bl == 0 || b >= size ? size - 1 : b;
    return 1;
}

/* Read len bytes at off into a new buffer, or NULL. */
static uint8_t *read_span(const char *file, uint64_t off, size_t len)
{
    FILE *f = fopen(file, "rb");
    uint8_t *buf = tc_malloc(len ? len : 1);
    int ok = f != NULL && buf != NULL && fseek(f, (long)off, SEEK_SET) == 0 && fread(buf, 1, len, f) == len;
    if (f) {
        fclose(f);
    }
    if (!ok) {
        tc_free(buf);
        return NULL;
    }
    return buf;
}

static void stream_free(void *data)
{
    file_stream_t *fs = data;
    if (fs) {
        if (fs->prev) {
            fs->prev->next = fs->next;
        } else {
            fs->st->streams = fs->next;
        }
        if (fs->next) {
            fs->next->prev = fs->prev;
        }
        fclose(fs->f);
        tc_free(fs);
    }
}

/* One part per call, read only when the socket can take it: a slow client holds one part, never the file. */
static int64_t file_produce(tc_http_req_t *req, void *user)
{
    (void)user;
    file_stream_t *fs = tc_http_req_data(req);
    if (fs == NULL || fs->left == 0) {
        return TC_HTTP_STREAM_END;
    }
    if (fs->st->paused_retry_s) {
        return -2; /* paused (tc_http_static_pause()): cut, never ended as if complete */
    }
    if (!tc_http_stream_ready(req)) {
        return 0;
    }
    size_t want = fs->left < fs->chunk ? (size_t)fs->left : fs->chunk;
    size_t n = fread(fs->buf, 1, want, fs->f);
    if (n == 0) {
        return -2; /* the file shrank or failed under us: abort rather than send a short body as complete */
    }
    int rc = tc_http_stream_write(req, fs->buf, n);
    if (rc == TC_ELIMIT) {
        fseek(fs->f, -(long)n, SEEK_CUR);
        return 0;
    }
    if (rc != TC_OK) {
        return -2;
    }
    fs->left -= n;
    return fs->left == 0 ? TC_HTTP_STREAM_END : 0;
}

static int not_found(tc_http_req_t *req)
{
    return tc_http_respond(req, 404, "text/plain", "not found\n", 10);
}

/* One request's names and header values: on the heap for the call, not on the loop task's stack (8 KB on a chip;
 * together they are about 1 KB). Headers and bodies given to the server are copied, so this goes at the return. */
typedef struct {
    char file[STATIC_PATH_MAX + 8];
    char loc[3 * STATIC_PATH_MAX + 2];
    char etag[64], lastmod[40], cc[40], cr[80];
    struct stat sb, gb;
} serve_scratch_t;

/* The redirect "dir" -> "dir/" from the decoded path: percent-encoded again (a decoded '?', '#', '%' or space would
 * change what the Location means, or be no URI at all), and with one leading slash (a Location "//name/" points at
 * another host). out holds 3 * strlen(path) + 2 bytes. */
static void dir_location(char *out, const char *path)
{
    static const char hex[] = "0123456789ABCDEF";
    while (path[0] == '/' && path[1] == '/') {
        path++;
    }
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~!$&'()*+,;=:@", *p) != NULL) {
            out[k++] = (char)*p;
        } else {
            out[k++] = '%';
            out[k++] = hex[*p >> 4];
            out[k++] = hex[*p & 15];
        }
    }
    out[k++] = '/';
    out[k] = '\0';
}

static int serve_file(tc_http_req_t *req, tc_http_static_t *st, serve_scratch_t *sc)
{
    const char *path = tc_http_req_path(req);
    size_t plen = strlen(path);
    const char *rel = plen >= st->prefix_len ? path + st->prefix_len : "";
    size_t rlen = strlen(rel);
    if (rlen > 0 && !tc_http_static_path_ok(rel, rlen)) {
        return not_found(req);
    }
    char *file = sc->file;
    int n = snprintf(file, STATIC_PATH_MAX, "%s/%s%s", st->cfg.root, rel,
                     rlen == 0 || rel[rlen - 1] == '/' ? st->cfg.index : "");
    if (n < 0 || n >= STATIC_PATH_MAX) {
        return not_found(req);
    }
    if (stat(file, &sc->sb) != 0) {
        return not_found(req);
    }
    if (S_ISDIR(sc->sb.st_mode)) {
        /* "dir" -> "dir/": relative links in its index then resolve inside it. */
        if (plen > STATIC_PATH_MAX) {
            return not_found(req);
        }
        dir_location(sc->loc, path);
        tc_http_resp_header(req, "Location", sc->loc);
        return tc_http_respond(req, 301, "text/plain", "moved\n", 6);
    }
    if (!S_ISREG(sc->sb.st_mode)) {
        return not_found(req);
    }
    const char *mime = tc_http_static_mime(file);
    int gz = 0;
    if (accepts_gzip(req)) {
        memcpy(file + n, ".gz", 4);
        if (stat(file, &sc->gb) == 0 && S_ISREG(sc->gb.st_mode)) {
            gz = 1;
            sc->sb = sc->gb;
        } else {
            file[n] = '\0';
        }
    }
    uint64_t size = (uint64_t)sc->sb.st_size;
    char *etag = sc->etag, *lastmod = sc->lastmod, *cc = sc->cc, *cr = sc->cr;
    snprintf(etag, sizeof(sc->etag), "\"%llx-%llx%s\"", (unsigned long long)size, (unsigned long long)sc->sb.st_mtime,
             gz ? "-gz" : "");
    time_t mt = sc->sb.st_mtime;
    struct tm tm;
    gmtime_r(&mt, &tm);
    strftime(lastmod, sizeof(sc->lastmod), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (st->cfg.max_age) {
        snprintf(cc, sizeof(sc->cc), "max-age=%u", (unsigned)st->cfg.max_age);
    } else {
        snprintf(cc, sizeof(sc->cc), "no-cache");
    }
    tc_http_resp_header(req, "ETag", etag);
    tc_http_resp_header(req, "Last-Modified", lastmod);
    tc_http_resp_header(req, "Vary", "Accept-Encoding");
    int inm = etag_matches(req, etag);
    if (inm == 1 || (inm < 0 && header_is(req, "If-Modified-Since", lastmod))) {
        tc_http_resp_header(req, "Cache-Control", cc);
        return tc_http_respond(req, 304, NULL, NULL, 0);
    }
    if (gz) {
        tc_http_resp_header(req, "Content-Encoding", "gzip");
    }
    tc_http_resp_header(req, "Accept-Ranges", "bytes");
    uint64_t from = 0, to = 0;
    /* If-Range with another validator: the file changed since the client's first part, so the whole file. */
    size_t irl = 0;
    int range = tc_http_req_header(req, "If-Range", &irl) && !header_is(req, "If-Range", etag)
                    ? 0
                    : parse_range(req, size, &from, &to);
    if (range < 0) {
        snprintf(cr, sizeof(sc->cr), "bytes */%llu", (unsigned long long)size);
        tc_http_resp_header(req, "Content-Range", cr);
        return tc_http_respond(req, 416, "text/plain", "range not satisfiable\n", 22);
    }
    uint64_t len = size;
    int status = 200;
    if (range > 0) {
        len = to - from + 1;
        if (st->cfg.range_max && len > st->cfg.range_max) {
            len = st->cfg.range_max;
        }
        status = 206;
        snprintf(cr, sizeof(sc->cr), "bytes %llu-%llu/%llu", (unsigned long long)from,
                 (unsigned long long)(from + len - 1), (unsigned long long)size);
        tc_http_resp_header(req, "Content-Range", cr);
    }
    tc_http_resp_header(req, "Cache-Control", cc);
    if (len <= st->cfg.whole_max) {
        uint8_t *buf = read_span(file, from, (size_t)len);
        if (buf == NULL) {
            return tc_http_respond(req, 503, "text/plain", "cannot read the file now\n", 25);
        }
        int rc = tc_http_respond(req, status, mime, buf, (size_t)len);
        tc_free(buf);
        return rc;
    }
    if (st->paused_retry_s) {
        /* A body that would stream holds a part and a socket's queue for as long as the client takes: not now. */
        snprintf(cr, sizeof(sc->cr), "%u", (unsigned)st->paused_retry_s);
        tc_http_resp_header(req, "Retry-After", cr);
        return tc_http_respond(req, 503, "text/plain", "large downloads are paused; retry later\n", 40);
    }
    /* Larger: streamed under its Content-Length, one part read per drain of the socket (never the whole file). */
    file_stream_t *fs = tc_malloc(sizeof(*fs) + st->cfg.chunk);
    FILE *f = fs ? fopen(file, "rb") : NULL;
    if (f == NULL || fseek(f, (long)from, SEEK_SET) != 0) {
        if (f) {
            fclose(f);
        }
        tc_free(fs);
        return tc_http_respond(req, 503, "text/plain", "cannot read the file now\n", 25);
    }
    fs->f = f;
    fs->left = len;
    fs->chunk = st->cfg.chunk;
    fs->st = st;
    fs->req = req;
    fs->prev = NULL;
    fs->next = st->streams;
    if (st->streams) {
        st->streams->prev = fs;
    }
    st->streams = fs;
    tc_http_req_set_data(req, fs);
    tc_http_req_set_data_free(req, stream_free); /* freed with the request, whether the client stays or goes */
    /* A range or the whole file alike: the client knows the size (a download's progress, HEAD), and a file that
     * shrinks under us ends short of it, which the client sees, rather than with a last chunk, which it would not. */
    return tc_http_stream_sized(req, status, mime, len, file_produce, st);
}

static int serve(tc_http_req_t *req, void *user)
{
    serve_scratch_t *sc = tc_malloc(sizeof(*sc));
    if (sc == NULL) {
        return tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
    }
    int rc = serve_file(req, user, sc);
    tc_free(sc);
    return rc;
}

int tc_http_static_attach(tc_http_t *http, const char *pattern, const tc_http_static_config_t *cfg,
                          tc_http_static_t **out)
{
    size_t pl = pattern ? strlen(pattern) : 0;
    if (http == NULL || cfg == NULL || out == NULL || pl < 2 || pattern[0] != '/' || pattern[pl - 1] != '*' ||
        pattern[pl - 2] != '/' || cfg->root == NULL || cfg->chunk == 0) {
        return TC_EINVAL;
    }
    const char *index = cfg->index ? cfg->index : "index.html";
    size_t rl = strlen(cfg->root), il = strlen(index);
    if (rl + il > STATIC_PATH_MAX / 2) {
        return TC_EINVAL;
    }
    tc_http_static_t *st = tc_calloc(1, sizeof(*st));
    char *strs = tc_malloc(rl + il + 2);
    if (st == NULL || strs == NULL) {
        tc_free(st);
        tc_free(strs);
        return TC_ENOMEM;
    }
    memcpy(strs, cfg->root, rl + 1);
    memcpy(strs + rl + 1, index, il + 1);
    st->cfg = *cfg;
    st->cfg.root = strs;
    st->cfg.index = strs + rl + 1;
    st->strs = strs;
    st->prefix_len = pl - 1;
    int rc = tc_http_route(http, TC_HTTP_GET, pattern, serve, st);
    if (rc != TC_OK) {
        tc_free(strs);
        tc_free(st);
        return rc;
    }
    tc__http_route_fallback(http);
    *out = st;
    return TC_OK;
}

uint32_t tc_http_static_pause(tc_http_static_t *st, int paused, uint32_t retry_after_s)
{
    if (st == NULL) {
        return 0;
    }
    st->paused_retry_s = paused ? (retry_after_s ? retry_after_s : 1) : 0;
    uint32_t n = 0;
    if (paused) {
        /* Cut now rather than at the next part: a client that stopped reading is never asked for one, and its queue
         * is the memory the pause is for. The close is a request: each stream is freed (and unlinked) later. */
        for (file_stream_t *fs = st->streams; fs != NULL; fs = fs->next) {
            if (tc_conn_close(tc_http_req_conn(fs->req), TC_CLOSE_ABORT) == TC_OK) {
                n++;
            }
        }
    }
    return n;
}

void tc_http_static_free(tc_http_static_t *st)
{
    if (st) {
        tc_free(st->strs);
        tc_free(st);
    }
}
