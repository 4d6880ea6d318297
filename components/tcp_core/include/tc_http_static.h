/*
 * tc_http_static.h - files of a directory served over HTTP (a host path, or any VFS mount on the chip: SPIFFS,
 * LittleFS, FAT), without blocking the loop for a large file.
 *
 * What a GET gets: Content-Type by extension; ETag (size and mtime) with If-None-Match -> 304; Last-Modified with
 * If-Modified-Since -> 304; "name.gz" served with Content-Encoding: gzip when it exists and the client accepts gzip
 * (Vary: Accept-Encoding); "dir/" -> "dir/index.html"; one byte range (Range: bytes=a-b, a-, -n; If-Range) -> 206
 * with Content-Range, 416 with "Content-Range: bytes * /size" (no space) when unsatisfiable; several ranges get
 * the whole file (RFC 9110 14.2 lets a server ignore Range); positions of any length, never wrapped: a last-pos
 * past the end means the end, a first-pos past it is unsatisfiable (RFC 9110 14.1.2). Bodies (the file or the
 * range) up to whole_max are answered in one piece; larger ones stream in chunk-sized parts read from the file as
 * the socket drains, under their Content-Length (tc_http_stream_sized(): a HEAD and a download's progress know the
 * size, and a file that shrinks meanwhile ends the answer short of it, visibly), so a slow client costs one part of
 * memory whatever the size. Cache-Control (max_age) is the same for every size.
 * range_max, when not 0, caps a range: a longer one is answered with its first range_max bytes (Content-Range says
 * which: clients ask again for the rest).
 *
 * Paths: the route's decoded path after its prefix; any ".." or "." segment, a backslash, or a path too long is
 * refused with 404 before the file system is asked, so nothing outside root is served (encoded "%2e%2e", "%5c" and
 * "%00" included: the server decodes before this check, and refuses %00 itself).
 *
 * Example:
 *     tc_http_static_config_t sc = TC_HTTP_STATIC_DEFAULT_CONFIG();
 *     sc.root = "/spiffs/www";
 *     tc_http_static_attach(http, "/ *", &sc, &st);   (no space)  ... after the server stopped: tc_http_static_free(st);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_http_static tc_http_static_t; /**< opaque static-files route state */

/** Static-files settings; start from TC_HTTP_STATIC_DEFAULT_CONFIG(). */
typedef struct {
    const char *root;      /**< directory (copied) */
    const char *index;     /**< file served for a path ending in '/' (copied) */
    uint32_t max_age;      /**< Cache-Control: max-age seconds; 0 = "no-cache" (revalidate with the ETag) */
    uint32_t chunk;        /**< bytes read per streamed part */
    uint32_t whole_max;    /**< files up to this size are answered in one piece with Content-Length */
    uint32_t range_max;    /**< longest range answered (206), see above; 0 = no cap */
} tc_http_static_config_t;

#define TC_HTTP_STATIC_DEFAULT_CONFIG()                                                                     \
    {                                                                                                       \
        .root = ".", .index = "index.html", .max_age = 0, .chunk = 4096, .whole_max = 16384,                \
        .range_max = 0,                                                                                     \
    }

/**
 * @brief Serve root under a route pattern ending in "/ *" (no space), e.g. "/static/ *" or "/ *", for GET and HEAD.
 * The route is a fallback, added before or after the others: a path another route has, for any method, stays that
 * route's (its other methods get 405 with Allow, RFC 9110 15.5.6, not a file). Loop thread.
 * @param out  receives the state, freed with tc_http_static_free() after the server has stopped
 * @return TC_OK, TC_EINVAL (pattern without the trailing wildcard, no root, chunk 0), TC_ENOMEM
 */
int tc_http_static_attach(tc_http_t *http, const char *pattern, const tc_http_static_config_t *cfg,
                          tc_http_static_t **out);

/**
 * @brief Pause or resume large downloads, e.g. while an OTA upload needs the memory (the demo app pauses them with
 * its streams). A streamed download holds one part and its socket's queue for as long as its client takes, like a
 * stream viewer. While paused: every download streaming now is cut at once (its connection aborted, so the client
 * sees the body short, never complete; it can resume with Range and If-Range after), whether or not its client is
 * reading; a new request whose body would stream (over whole_max) gets 503 with Retry-After; bodies up to
 * whole_max, 304s and 404s are answered as usual. Loop thread.
 * @param st             the route's state (NULL: nothing, 0)
 * @param paused         1 to pause, 0 to serve again
 * @param retry_after_s  the 503's Retry-After in seconds while paused (0 counts as 1)
 * @return the downloads cut now (their connections close after this call returns)
 */
uint32_t tc_http_static_pause(tc_http_static_t *st, int paused, uint32_t retry_after_s);

/** @brief Free the state. After the server has stopped (its streams are gone then). */
void tc_http_static_free(tc_http_static_t *st);

/**
 * @brief The Content-Type for a file name by its extension (case-insensitive), "application/octet-stream" when
 * unknown. Pure; the string is static.
 */
const char *tc_http_static_mime(const char *name);

/**
 * @brief Whether a decoded relative path is safe to join to a root: no "." or ".." segment, no backslash, no NUL
 * within len, no empty path. Pure.
 * @return 1 when safe
 */
int tc_http_static_path_ok(const char *path, size_t len);

#ifdef __cplusplus
}
#endif
