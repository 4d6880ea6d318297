/*
 * esp/tc_esp.c - tc_err_t <-> esp_err_t, the glue's logging helper and the socket budget check (see tc_esp.h).
 */
#include "tc_esp.h"

#include <inttypes.h>
#include <stddef.h>

#include "esp_log.h"
#include "sdkconfig.h"
#include "tc_err.h"

/* Every tcp_core error, from the one list in tc_err.h: its own esp_err_t and its name. */
typedef struct {
    int tc;
    esp_err_t esp;
    const char *name;
} err_entry_t;

static const err_entry_t k_own[] = {
#define TC_ESP_ENTRY_(name, value, msg) {(value), TC_ESP_ERR_BASE - (value), "TC_E" #name},
    TC_ERR_MAP(TC_ESP_ENTRY_)
#undef TC_ESP_ENTRY_
};

/* Codes with a generic ESP-IDF meaning use it instead (first match wins in both directions). */
static const struct {
    int tc;
    esp_err_t esp;
} k_generic[] = {
    {TC_EINVAL, ESP_ERR_INVALID_ARG},   {TC_ENOMEM, ESP_ERR_NO_MEM},          {TC_ETIMEDOUT, ESP_ERR_TIMEOUT},
    {TC_ENOTFOUND, ESP_ERR_NOT_FOUND},  {TC_ENOSYS, ESP_ERR_NOT_SUPPORTED},   {TC_ETOOBIG, ESP_ERR_INVALID_SIZE},
    {TC_EBUSY, ESP_ERR_INVALID_STATE},  {TC_EACCES, ESP_ERR_NOT_ALLOWED},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

esp_err_t tc_esp_err(int err)
{
    if (err >= 0) {
        return ESP_OK;
    }
    for (size_t i = 0; i < COUNT_OF(k_generic); i++) {
        if (k_generic[i].tc == err) {
            return k_generic[i].esp;
        }
    }
    for (size_t i = 0; i < COUNT_OF(k_own); i++) {
        if (k_own[i].tc == err) {
            return k_own[i].esp;
        }
    }
    return ESP_FAIL;
}

int tc_esp_err_to_tc(esp_err_t err)
{
    if (err == ESP_OK) {
        return TC_OK;
    }
    for (size_t i = 0; i < COUNT_OF(k_generic); i++) {
        if (k_generic[i].esp == err) {
            return k_generic[i].tc;
        }
    }
    for (size_t i = 0; i < COUNT_OF(k_own); i++) {
        if (k_own[i].esp == err) {
            return k_own[i].tc;
        }
    }
    return TC_EIO;
}

const char *tc_esp_err_name(esp_err_t err)
{
    for (size_t i = 0; i < COUNT_OF(k_own); i++) {
        if (k_own[i].esp == err) {
            return k_own[i].name;
        }
    }
    return esp_err_to_name(err);
}

esp_err_t tc_esp_check(int rc, const char *tag, const char *what)
{
    if (rc < 0) {
        ESP_LOGE(tag, "%s: %s (%s)", what, tc_strerror(rc), tc_err_name(rc));
    }
    return tc_esp_err(rc);
}

esp_err_t tc_esp_check_socket_budget(uint32_t needed, const char *what)
{
    what = what ? what : "";
#if CONFIG_IDF_TARGET_LINUX
    ESP_LOGI(TC_ESP_TAG, "sockets: %" PRIu32 " at most (%s); host sockets, no lwIP limit", needed, what);
    return ESP_OK;
#else
    if (needed > CONFIG_LWIP_MAX_SOCKETS) {
        ESP_LOGE(TC_ESP_TAG,
                 "sockets: the configured services need up to %" PRIu32 " (%s) but CONFIG_LWIP_MAX_SOCKETS is %d: "
                 "accepts will fail with errno 23 under load. Raise CONFIG_LWIP_MAX_SOCKETS to %" PRIu32
                 " or more, or lower the services' connection limits.",
                 needed, what, CONFIG_LWIP_MAX_SOCKETS, needed);
        return ESP_ERR_NO_MEM;
    }
    ESP_LOGI(TC_ESP_TAG, "sockets: up to %" PRIu32 " of CONFIG_LWIP_MAX_SOCKETS=%d (%s)", needed,
             CONFIG_LWIP_MAX_SOCKETS, what);
    return ESP_OK;
#endif
}
