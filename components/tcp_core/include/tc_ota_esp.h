/*
 * tc_ota_esp.h - the chip's OTA sink for tc_ota.h: images go into the next OTA app partition through ESP-IDF's
 * esp_ota_* API, which also validates them (esp_ota_end(): segments, checksum, SHA-256 appended by the build, secure
 * boot signature when enabled) before they are made the boot partition. Chip targets only.
 *
 * Example:
 *     tc_ota_sink_t sink; tc_ota_esp_sink_init(&sink);
 *     tc_ota_attach(http, "/api/ota", &sink, &cfg, &ota);
 *     ... at boot, once the new firmware works: tc_ota_esp_mark_valid();   (rollback, CONFIG_BOOTLOADER_APP_ROLLBACK)
 */
#pragma once

#include "tc_ota.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Fill a sink that writes to esp_ota_get_next_update_partition(NULL) (erasing sector by sector as it writes,
 * so no call blocks the loop for a whole-partition erase); finish = esp_ota_end + esp_ota_set_boot_partition; reboot
 * = esp_restart() after the answer. Any task; the sink's functions run on the loop's task.
 * @return TC_OK, TC_EINVAL (NULL)
 */
int tc_ota_esp_sink_init(tc_ota_sink_t *sink);

/**
 * @brief After booting a new image: when it waits for verification (ESP_OTA_IMG_PENDING_VERIFY, with app rollback
 * enabled in the bootloader), mark it valid so the bootloader keeps it. Call once the app has shown it works (e.g.
 * its servers started). Any task.
 * @return TC_OK (marked, or nothing to mark), TC_EIO (esp_ota_mark_app_valid_cancel_rollback() failed)
 */
int tc_ota_esp_mark_valid(void);

#ifdef __cplusplus
}
#endif
