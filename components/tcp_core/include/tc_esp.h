/*
 * tc_esp.h - the ESP-IDF face of tcp_core's errors and logging: tc_err_t codes as esp_err_t and back, their names,
 * the log tags of the ESP glue, and the start-up check of lwIP's socket budget. ESP-IDF only (include/tc_err.h is
 * the portable side).
 *
 * Mapping. Codes with a generic ESP-IDF meaning map to it, so ESP_ERROR_CHECK() output and existing checks read
 * naturally; the others get codes of their own, TC_ESP_ERR_BASE + |code|, which lie outside every range ESP-IDF
 * assigns (0x100..0xffff), so they never alias another component's error:
 *
 * | tc_err_t       | esp_err_t             |   | tc_err_t     | esp_err_t             |
 * |----------------|-----------------------|---|--------------|-----------------------|
 * | TC_OK, >= 0    | ESP_OK                |   | TC_ENOSYS    | ESP_ERR_NOT_SUPPORTED |
 * | TC_EINVAL      | ESP_ERR_INVALID_ARG   |   | TC_ETOOBIG   | ESP_ERR_INVALID_SIZE  |
 * | TC_ENOMEM      | ESP_ERR_NO_MEM        |   | TC_EBUSY     | ESP_ERR_INVALID_STATE |
 * | TC_ETIMEDOUT   | ESP_ERR_TIMEOUT       |   | TC_EACCES    | ESP_ERR_NOT_ALLOWED   |
 * | TC_ENOTFOUND   | ESP_ERR_NOT_FOUND     |   | the others   | TC_ESP_ERR_BASE + |c| |
 *
 * Example:
 *     esp_err_t err = tc_esp_err(tc_server_start(loop, &cfg, &srv));
 *     if (err != ESP_OK) ESP_LOGE(TC_ESP_TAG, "echo: %s", tc_esp_err_name(err));
 */
#pragma once

#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Log tags of the ESP glue (filter with esp_log_level_set()). */
#define TC_ESP_TAG "tcp_core"
#define TC_ESP_TAG_WIFI "tc_wifi"
#define TC_ESP_TAG_HTTPD "tc_httpd"
#define TC_ESP_TAG_CONSOLE "tc_console"

/** First esp_err_t of tcp_core's own codes: TC_ESP_ERR_BASE + 3 is TC_EADDRINUSE. */
#define TC_ESP_ERR_BASE 0x1c000

/**
 * @brief Convert a tcp_core return value to esp_err_t (see the table above).
 *
 * Thread-safe, pure.
 * @param err  a tc_err_t, or any non-negative count (success)
 * @return ESP_OK for err >= 0, the mapped code for a known error, ESP_FAIL for an unknown negative value
 */
esp_err_t tc_esp_err(int err);

/**
 * @brief Convert an esp_err_t back to a tc_err_t (for callbacks that report to portable code, e.g. the console).
 *
 * Thread-safe, pure. The inverse of tc_esp_err() on its range; other ESP-IDF errors become TC_EIO.
 * @param err  an esp_err_t
 * @return TC_OK for ESP_OK, else a negative tc_err_t
 */
int tc_esp_err_to_tc(esp_err_t err);

/**
 * @brief Name of an esp_err_t that may be one of tcp_core's ("TC_EADDRINUSE"); others go to esp_err_to_name().
 *
 * Thread-safe; the string is static.
 * @param err  an esp_err_t
 * @return a static NUL-terminated string, never NULL
 */
const char *tc_esp_err_name(esp_err_t err);

/**
 * @brief Log a failed tcp_core call (its code's name and message) at error level and convert it.
 *
 * Nothing is logged for rc >= 0. Thread-safe.
 * @param rc    the tcp_core return value
 * @param tag   log tag, e.g. TC_ESP_TAG
 * @param what  what was attempted, e.g. "echo server"
 * @return tc_esp_err(rc)
 */
esp_err_t tc_esp_check(int rc, const char *tag, const char *what);

/**
 * @brief Check at start-up that lwIP has sockets enough for what the application will open, and say so in the log.
 *
 * lwIP has CONFIG_LWIP_MAX_SOCKETS sockets in all (10 by default) and refuses more: accept() then fails with
 * ENFILE ("error in accept (23)") and the servers look dead to new clients. When @p needed is above the limit this
 * logs one error line with both numbers, @p what, and the two ways out; otherwise one info line. On the linux target
 * (host sockets, no such limit) it only logs the count. Thread-safe.
 *
 * Example:
 *     tc_esp_check_socket_budget(2 + 17 + 10 + 2, "2 listeners, echo 16+1, HTTP 8+2, wake-up pair 2");
 *
 * @param needed  sockets the application may hold at once (listeners, connections plus one being accepted at a
 *                full server or up to overflow_max with TC_FULL_EVICT_IDLE, the loop's wake-up pair, DNS, clients,
 *                esp_http_server's max_open_sockets + 3, ...)
 * @param what    how @p needed adds up, for the log line; NULL for none
 * @return ESP_OK when it fits (always on the linux target), ESP_ERR_NO_MEM when CONFIG_LWIP_MAX_SOCKETS is too low
 */
esp_err_t tc_esp_check_socket_budget(uint32_t needed, const char *what);

#ifdef __cplusplus
}
#endif
