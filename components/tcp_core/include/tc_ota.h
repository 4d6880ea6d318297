/*
 * tc_ota.h - firmware upload over HTTP: an image POSTed to a route is checked as it streams (size, ESP image magic,
 * SHA-256) into a sink (the next OTA slot on the chip, a file on the host), with the seed-003 sequence built in.
 *
 * Routes added by tc_ota_attach(http, "/api/ota", ...):
 *
 * | request                  | answer                                                                          |
 * |--------------------------|---------------------------------------------------------------------------------|
 * | POST /api/ota            | the image as the body (Content-Length or chunked). Optional: X-OTA-Size (or      |
 * |                          | ?size=N) the image's size, X-OTA-SHA256 (or ?sha256=HEX) its digest. 200 + JSON  |
 * |                          | when written and valid; 400 size mismatch / bad magic / bad SHA-256, 401, 409   |
 * |                          | (another upload runs; one that got no byte for 2 s gives way instead;           |
 * |                          | Retry-After: 2), 413 too large, 500 sink failures, 503 memory failures (the     |
 * |                          | services could not make room, out of memory; Retry-After: the prepare deadline  |
 * |                          | in seconds, rounded up, plus 1)                                                 |
 * | GET /api/ota             | progress (bytes, rate in B/s, eta_ms) and the last result as JSON               |
 * | POST /api/ota/reboot     | boot the new image: the chip restarts after the answer; the host file sink only  |
 * |                          | reports (no-op) and the paused services come back. 409 when no image is ready   |
 *
 * Seed 003 (stop the camera stream to free memory for the update): before the first byte is written, the
 * prepare callback stops whatever the application wants stopped (streams, other servers) within a deadline; the
 * body waits in TCP's window meanwhile (one piece is held). If the upload fails for any reason (bad image, cut-off
 * connection, server stop), resume brings them back. Every path frees what the upload took and leaves no partial
 * image: the sink's abort drops it (the file sink writes a temporary file, renamed only when complete and valid).
 *
 * Example:
 *     tc_ota_sink_t sink; tc_ota_file_sink_init(&sink, "/tmp/fw");
 *     tc_ota_config_t oc = TC_OTA_DEFAULT_CONFIG();
 *     tc_ota_attach(http, "/api/ota", &sink, &oc, &ota);   ... after the server stopped: tc_ota_free(ota);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_ota tc_ota_t; /**< opaque OTA route state */

/** First byte of every ESP application image (esp_image_header_t.magic, ESP_IMAGE_HEADER_MAGIC). */
#define TC_OTA_IMAGE_MAGIC 0xE9

/** tc_ota_sink_t.reboot's value for a sink that cannot boot the image (the host file sink): a report, no restart. */
#define TC_OTA_NO_REBOOT 1

/**
 * Where an image goes. Every function runs on the loop thread; a call may take as long as one write to flash (the
 * loop waits meanwhile: esp_http_server's OTA examples block the same way, and a piece is at most a few KB).
 * A job is begun, written in order, then either finished (complete and valid: make it the one to boot) or aborted
 * (drop everything written). Exactly one of finish/abort ends a job, whatever happened.
 */
typedef struct {
    /** Start a job for an image of size bytes (0: unknown). *job receives the sink's state. 0 or a negative code;
     * msg (cap bytes) may receive a reason. */
    int (*begin)(void *ctx, uint64_t size, void **job, char *msg, size_t cap);
    /** Write the next bytes. 0 or a negative code (the upload fails with 500 and the job is aborted). */
    int (*write)(void *job, const void *data, size_t len, char *msg, size_t cap);
    /** Complete: validate and keep (the file sink renames, the chip sink esp_ota_end + set boot partition). Frees
     * the job. 0, or a negative code with a reason in msg (TC_EPROTO: the image is invalid -> 400). */
    int (*finish)(void *job, char *msg, size_t cap);
    /** Drop the job and everything it wrote. Frees the job. */
    void (*abort)(void *job);
    /** About to boot the last finished image: TC_OK (then restart is called once the answer is out) or
     * TC_OTA_NO_REBOOT (a report only), with a message in msg. */
    int (*reboot)(void *ctx, char *msg, size_t cap);
    /** Restart the device now (chip: esp_restart()); NULL when reboot never returns TC_OK. */
    void (*restart)(void *ctx);
    void *ctx; /**< the sink's own state, handed to begin/reboot/restart */
} tc_ota_sink_t;

/** @brief Called by the OTA route to free memory before writing (seed 003): stop what should stop within
 * deadline_ms, then call tc_ota_prepared() (from the loop, now or later). Return TC_OK, or a negative code to refuse
 * the upload (503). */
typedef int (*tc_ota_prepare_cb)(tc_ota_t *ota, uint32_t deadline_ms, void *user);

/** @brief Called when an upload that ran prepare failed or was cut off, or after a host (no-op) reboot: bring back
 * what prepare stopped. */
typedef void (*tc_ota_resume_cb)(tc_ota_t *ota, void *user);

/** OTA route settings; start from TC_OTA_DEFAULT_CONFIG(). */
typedef struct {
    uint64_t max_size;            /**< largest image (413 beyond, before any byte is read); 0 = no limit */
    uint32_t prepare_deadline_ms; /**< deadline handed to prepare; writing starts at the latest 1 s after it */
    tc_ota_prepare_cb prepare;    /**< NULL: nothing to stop */
    tc_ota_resume_cb resume;      /**< NULL: nothing to resume */
    void *user;                   /**< for prepare and resume */
    const char *auth_user;        /**< Basic auth user of the upload and reboot routes (copied) */
    const char *auth_pass;        /**< its password (copied); NULL or "" = no authentication */
} tc_ota_config_t;

#define TC_OTA_DEFAULT_CONFIG()                                                                        \
    {                                                                                                  \
        .max_size = 0, .prepare_deadline_ms = 2000, .prepare = NULL, .resume = NULL, .user = NULL,     \
        .auth_user = "admin", .auth_pass = NULL,                                                       \
    }

/**
 * @brief Add the OTA routes (upload and status at path, reboot at path + "/reboot") to a server. Loop thread.
 * @param path  e.g. "/api/ota" (copied)
 * @param sink  copied; its ctx must outlive the OTA state
 * @param out   receives the state, freed with tc_ota_free() after the server has stopped
 * @return TC_OK, TC_EINVAL (bad path, incomplete sink), TC_ENOMEM
 */
int tc_ota_attach(tc_http_t *http, const char *path, const tc_ota_sink_t *sink, const tc_ota_config_t *cfg,
                  tc_ota_t **out);

/**
 * @brief Tell the upload that prepare finished (rc 0: memory freed, write now; negative: refuse with 503). Loop
 * thread; may be called from inside prepare. Ignored when no upload waits for it.
 * @param report  a short text for the status (copied, may be NULL), e.g. "2 streams ended in 12 ms"
 */
void tc_ota_prepared(tc_ota_t *ota, int rc, const char *report);

/**
 * @brief The OTA state as JSON (what GET <path> serves): state, bytes received, declared size, the last result.
 * Loop thread.
 * @return the length written (without NUL), or TC_ELIMIT when cap is too small
 */
int tc_ota_status_json(const tc_ota_t *ota, char *buf, size_t cap);

/**
 * @brief One line of progress for a console (`status`, `ota`), ending in "\n": "ota: receiving 524288 bytes of
 * 1048576 (50 %) at 87.3 KB/s, 6.0s left; streams ended in 3 ms, 0 left; echo stopped (1 closed, 0 forced)", or
 * the preparing, ready and idle states with the last result. The rate counts from when writing began. Loop thread.
 * @return snprintf's length (>= cap: cut), TC_EINVAL
 */
int tc_ota_progress_line(const tc_ota_t *ota, char *buf, size_t cap);

/** @brief Free the OTA state. Call after the HTTP server has stopped (no upload can be in flight then). */
void tc_ota_free(tc_ota_t *ota);

/**
 * @brief A sink that writes the image to dir/firmware.bin: into dir/firmware.bin.part first, renamed when complete
 * and valid, removed on abort. Uses stdio only (any VFS mount on the chip). Its reboot is a report (no restart).
 * @param dir  existing directory; not copied (must outlive the sink)
 * @return TC_OK, TC_EINVAL (NULL or too long a path)
 */
int tc_ota_file_sink_init(tc_ota_sink_t *sink, const char *dir);

#ifdef __cplusplus
}
#endif
