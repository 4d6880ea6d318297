/*
 * tc_ota_esp.c - the OTA sink on esp_ota_* (see tc_ota_esp.h).
 *
 * Written against ESP-IDF's documented esp_ota_ops.h API (v5.x); it has not been compiled in this repository's host
 * runs (chip targets only), so the first chip build is its first compile.
 */
#include "tc_ota_esp.h"

#include <inttypes.h>
#include <stdio.h>

#include "esp_err.h"
#include "esp_log.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "esp_system.h"
#include "tc_alloc.h"
#include "tc_err.h"

static const char *TAG = "tc_ota";

typedef struct {
    esp_ota_handle_t handle;
    const esp_partition_t *part;
} esp_job_t;

static int esp_begin(void *ctx, uint64_t size, void **job, char *msg, size_t cap)
{
    (void)ctx;
    const esp_partition_t *part = esp_ota_get_next_update_partition(NULL);
    if (part == NULL) {
        snprintf(msg, cap, "no OTA app partition (partition table without ota_0/ota_1?)");
        return TC_ENOTFOUND;
    }
    if (size > part->size) {
        snprintf(msg, cap, "image of %llu bytes, partition %s holds %" PRIu32, (unsigned long long)size, part->label,
                 part->size);
        return TC_ETOOBIG;
    }
    esp_job_t *j = tc_calloc(1, sizeof(*j));
    if (j == NULL) {
        return TC_ENOMEM;
    }
    /* OTA_WITH_SEQUENTIAL_WRITES: erase each sector just before it is written, instead of the whole image's size
     * up front (a second or more of flash erase in one call, which would stall the loop and every connection). */
    esp_err_t err = esp_ota_begin(part, OTA_WITH_SEQUENTIAL_WRITES, &j->handle);
    if (err != ESP_OK) {
        snprintf(msg, cap, "esp_ota_begin: %s", esp_err_to_name(err));
        tc_free(j);
        return err == ESP_ERR_NO_MEM ? TC_ENOMEM : TC_EIO;
    }
    j->part = part;
    ESP_LOGI(TAG, "writing an image of %llu bytes to %s at 0x%" PRIx32, (unsigned long long)size, part->label,
             part->address);
    *job = j;
    return TC_OK;
}

static int esp_write(void *job, const void *data, size_t len, char *msg, size_t cap)
{
    esp_job_t *j = job;
    esp_err_t err = esp_ota_write(j->handle, data, len);
    if (err != ESP_OK) {
        /* ESP_ERR_OTA_VALIDATE_FAILED here: the first byte is not the image magic (checked before us anyway). */
        snprintf(msg, cap, "esp_ota_write: %s", esp_err_to_name(err));
        return err == ESP_ERR_OTA_VALIDATE_FAILED ? TC_EPROTO : TC_EIO;
    }
    return TC_OK;
}

static void esp_abort_job(void *job)
{
    esp_job_t *j = job;
    esp_ota_abort(j->handle); /* frees the handle; the partition keeps whatever was written, never booted */
    tc_free(j);
}

static int esp_finish(void *job, char *msg, size_t cap)
{
    esp_job_t *j = job;
    const esp_partition_t *part = j->part;
    /* esp_ota_end() frees the handle whatever it returns, and validates the image (esp_image_verify()). */
    esp_err_t err = esp_ota_end(j->handle);
    tc_free(j);
    if (err == ESP_ERR_OTA_VALIDATE_FAILED) {
        snprintf(msg, cap, "ESP-IDF's image verification failed");
        return TC_EPROTO;
    }
    if (err != ESP_OK) {
        snprintf(msg, cap, "esp_ota_end: %s", esp_err_to_name(err));
        return TC_EIO;
    }
    err = esp_ota_set_boot_partition(part);
    if (err != ESP_OK) {
        snprintf(msg, cap, "esp_ota_set_boot_partition: %s", esp_err_to_name(err));
        return err == ESP_ERR_OTA_VALIDATE_FAILED ? TC_EPROTO : TC_EIO;
    }
    ESP_LOGI(TAG, "image in %s verified and set to boot", part->label);
    return TC_OK;
}

static int esp_reboot(void *ctx, char *msg, size_t cap)
{
    (void)ctx;
    const esp_partition_t *boot = esp_ota_get_boot_partition();
    snprintf(msg, cap, "restarting into %s", boot ? boot->label : "?");
    return TC_OK;
}

static void esp_restart_now(void *ctx)
{
    (void)ctx;
    ESP_LOGI(TAG, "restarting into the new image");
    esp_restart();
}

int tc_ota_esp_sink_init(tc_ota_sink_t *sink)
{
    if (sink == NULL) {
        return TC_EINVAL;
    }
    tc_ota_sink_t s = {.begin = esp_begin,
                       .write = esp_write,
                       .finish = esp_finish,
                       .abort = esp_abort_job,
                       .reboot = esp_reboot,
                       .restart = esp_restart_now,
                       .ctx = NULL};
    *sink = s;
    return TC_OK;
}

int tc_ota_esp_mark_valid(void)
{
    const esp_partition_t *running = esp_ota_get_running_partition();
    esp_ota_img_states_t state;
    if (running == NULL || esp_ota_get_state_partition(running, &state) != ESP_OK ||
        state != ESP_OTA_IMG_PENDING_VERIFY) {
        return TC_OK; /* factory app, rollback off, or already valid */
    }
    if (esp_ota_mark_app_valid_cancel_rollback() != ESP_OK) {
        return TC_EIO;
    }
    ESP_LOGI(TAG, "new firmware marked valid (rollback cancelled)");
    return TC_OK;
}
