/*
 * tc_esp_console.h - the tcp_core console commands (tc_console.h) on the device's serial port, through esp_console's
 * REPL (UART, USB CDC or USB Serial/JTAG, whichever ESP_CONSOLE_* the project selects; stdin/stdout on the linux
 * target). `tcp-core console --port PORT` drives it from a PC.
 *
 * Example:
 *     tc_console_config_t cc = TC_CONSOLE_DEFAULT_CONFIG();
 *     cc.loop = loop; cc.wifi = store_wifi; cc.ota_prepare = ota_prepare;
 *     ESP_ERROR_CHECK(tc_esp_console_start(&cc));
 */
#pragma once

#include "esp_err.h"
#include "tc_console.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Register the console commands (status, wifi, ota-prepare, help) with esp_console, for an application
 * that runs its own REPL. esp_console must be initialised (esp_console_init() or esp_console_new_repl_*()).
 *
 * Call once, from one task; cfg is copied. The commands run on the REPL's task, which must not be the tcp_core
 * loop's (see tc_console.h).
 * @param cfg  the console settings
 * @return ESP_OK, ESP_ERR_INVALID_ARG (NULL), ESP_ERR_INVALID_STATE (already registered), or
 *         esp_console_cmd_register()'s error
 */
esp_err_t tc_esp_console_register(const tc_console_config_t *cfg);

/**
 * @brief Create esp_console's REPL on the configured console device with the prompt TC_CONSOLE_PROMPT, register
 * the commands and start it (its own task).
 *
 * Call once; cfg is copied.
 * @param cfg  the console settings
 * @return ESP_OK, ESP_ERR_INVALID_ARG, ESP_ERR_INVALID_STATE (already started), ESP_ERR_NOT_SUPPORTED (no console
 *         device configured), or esp_console's error
 */
esp_err_t tc_esp_console_start(const tc_console_config_t *cfg);

#ifdef __cplusplus
}
#endif
