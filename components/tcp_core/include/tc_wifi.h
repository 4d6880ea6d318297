/*
 * tc_wifi.h - Wi-Fi for tcp_core firmware (ESP-IDF chips only): a station that connects, reports its address
 * through an event group with a time-out and reconnects with exponential backoff; a soft-AP with its SSID, password,
 * channel and client limit whose DHCP server names the device as DNS server (and, on ESP-IDF >= 5.4, hands out a
 * captive-portal URI, DHCP option 114, RFC 8910); both at once (AP+STA); credentials from Kconfig or NVS.
 *
 * The seed's "flag_sta_conip" polled in a loop becomes tc_wifi_wait_ip() (an event-group wait with a deadline) and
 * TC_WIFI_EV_* callbacks. Wi-Fi is one per chip, so this module is a singleton.
 *
 * | event                       | meaning                                            | data fields set              |
 * |-----------------------------|----------------------------------------------------|------------------------------|
 * | TC_WIFI_EV_STA_CONNECTED    | associated with the AP (no address yet)            | -                            |
 * | TC_WIFI_EV_STA_GOT_IP       | the station has an address: serve and dial now     | ip, netmask, gw              |
 * | TC_WIFI_EV_STA_LOST_IP      | the address is gone (sockets on it are dead)       | -                            |
 * | TC_WIFI_EV_STA_DISCONNECTED | association lost or failed; a retry is scheduled   | reason, retry_ms, attempt    |
 * | TC_WIFI_EV_STA_GAVE_UP      | max_retries consecutive failures: no more retries  | reason, attempt              |
 * | TC_WIFI_EV_AP_STARTED       | the soft-AP is up                                  | ip (the device's AP address) |
 * | TC_WIFI_EV_AP_CLIENT_JOINED | a client associated with the soft-AP               | mac                          |
 * | TC_WIFI_EV_AP_CLIENT_IP     | the DHCP server gave a client an address           | mac, ip                      |
 * | TC_WIFI_EV_AP_CLIENT_LEFT   | a client left the soft-AP                          | mac                          |
 *
 * Captive portal (seed 002): the DNS option makes clients ask the device's own DNS responder (tc_dns_server.h),
 * which answers every name with the device's address, and the OS probes then land on the device's HTTP server
 * (tc_captive.h). DHCP option 114 tells the client the portal URI directly. Android honours option 114 only for an
 * https:// URI served with a certificate the phone trusts, which a device on a private network rarely has: with an
 * http:// URI Android ignores the option and relies on its probes (DNS + HTTP), so keep both.
 *
 * Call nvs_flash_init() before tc_wifi_start() (the Wi-Fi driver keeps calibration data in NVS, and this module
 * keeps credentials there).
 *
 * Example:
 *     tc_wifi_config_t wc = TC_WIFI_DEFAULT_CONFIG();
 *     wc.mode = TC_WIFI_MODE_STA;
 *     ESP_ERROR_CHECK(tc_wifi_start(&wc));
 *     if (tc_wifi_wait_ip(15000, NULL) == ESP_OK) start_services();
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_netif.h"
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Radio roles. */
typedef enum {
    TC_WIFI_MODE_STA = 1, /**< station: join an access point */
    TC_WIFI_MODE_AP,      /**< soft-AP: the device is the access point */
    TC_WIFI_MODE_APSTA,   /**< both; the AP follows the station's channel once it connects */
} tc_wifi_mode_t;

/** Wi-Fi events (see the table at the top of this header). */
typedef enum {
    TC_WIFI_EV_STA_CONNECTED = 1,
    TC_WIFI_EV_STA_GOT_IP,
    TC_WIFI_EV_STA_LOST_IP,
    TC_WIFI_EV_STA_DISCONNECTED,
    TC_WIFI_EV_STA_GAVE_UP,
    TC_WIFI_EV_AP_STARTED,
    TC_WIFI_EV_AP_CLIENT_JOINED,
    TC_WIFI_EV_AP_CLIENT_IP,
    TC_WIFI_EV_AP_CLIENT_LEFT,
} tc_wifi_event_t;

/** Data of a Wi-Fi event; fields the table does not list are zero. */
typedef struct {
    esp_ip4_addr_t ip;      /**< address (network order, as esp_netif keeps it) */
    esp_ip4_addr_t netmask; /**< station netmask */
    esp_ip4_addr_t gw;      /**< station gateway */
    uint8_t mac[6];         /**< soft-AP client MAC */
    uint16_t reason;        /**< wifi_err_reason_t of a station disconnection */
    uint32_t retry_ms;      /**< delay before the next association attempt */
    uint32_t attempt;       /**< consecutive failed attempts so far */
} tc_wifi_event_data_t;

/**
 * @brief Wi-Fi event callback. Runs on ESP-IDF's default event-loop task: do not block (post to the tcp_core loop).
 * @param ev    the event
 * @param data  its data, valid during the call
 * @param user  the config's user pointer
 */
typedef void (*tc_wifi_cb)(tc_wifi_event_t ev, const tc_wifi_event_data_t *data, void *user);

/** Wi-Fi settings; start from TC_WIFI_DEFAULT_CONFIG() (Kconfig "tcp_core > Wi-Fi glue"). Strings are copied. */
typedef struct {
    tc_wifi_mode_t mode;
    const char *sta_ssid;        /**< station SSID (1..32 bytes); "" = none unless NVS has credentials */
    const char *sta_password;    /**< "" for an open network, else 8..63 characters or 64 hex digits */
    bool sta_prefer_nvs;         /**< credentials stored in NVS (tc_wifi_set_credentials()) win over sta_ssid */
    uint32_t sta_backoff_initial_ms; /**< first reconnect delay; doubles per failure (with up to 25% jitter) */
    uint32_t sta_backoff_max_ms; /**< longest reconnect delay */
    uint32_t sta_max_retries;    /**< consecutive failures before TC_WIFI_EV_STA_GAVE_UP, 0 = retry forever */
    const char *ap_ssid;         /**< soft-AP SSID (1..32 bytes) */
    const char *ap_password;     /**< "" = open network, else 8..63 characters (WPA2-PSK) */
    uint8_t ap_channel;          /**< 1..13 */
    uint8_t ap_max_clients;      /**< 1..10 (the chip's limit) */
    bool ap_dns_is_device;       /**< DHCP tells clients to use the device as DNS server (captive portal) */
    const char *ap_captive_uri;  /**< DHCP option 114 URI, e.g. "http://192.168.4.1/"; NULL = none (copied) */
    tc_wifi_cb cb;               /**< events; may be NULL */
    void *user;                  /**< passed to cb */
} tc_wifi_config_t;

#if defined(CONFIG_TCP_CORE_WIFI_STA_SSID)
#define TC_WIFI_DEFAULT_CONFIG()                                                                                \
    {                                                                                                           \
        .mode = TC_WIFI_MODE_STA, .sta_ssid = CONFIG_TCP_CORE_WIFI_STA_SSID,                                    \
        .sta_password = CONFIG_TCP_CORE_WIFI_STA_PASSWORD, .sta_prefer_nvs = true,                              \
        .sta_backoff_initial_ms = CONFIG_TCP_CORE_WIFI_BACKOFF_INITIAL_MS,                                      \
        .sta_backoff_max_ms = CONFIG_TCP_CORE_WIFI_BACKOFF_MAX_MS, .sta_max_retries = 0,                        \
        .ap_ssid = CONFIG_TCP_CORE_WIFI_AP_SSID, .ap_password = CONFIG_TCP_CORE_WIFI_AP_PASSWORD,               \
        .ap_channel = CONFIG_TCP_CORE_WIFI_AP_CHANNEL, .ap_max_clients = CONFIG_TCP_CORE_WIFI_AP_MAX_CLIENTS,   \
        .ap_dns_is_device = false, .ap_captive_uri = NULL, .cb = NULL, .user = NULL,                            \
    }
#endif

/** A snapshot of the Wi-Fi state (tc_wifi_status()). */
typedef struct {
    tc_wifi_mode_t mode;     /**< 0 when not started */
    bool sta_connected;      /**< associated */
    bool sta_has_ip;         /**< has an address */
    esp_ip4_addr_t sta_ip;   /**< the station's address (0 without) */
    char sta_ssid[33];       /**< the SSID in use */
    int8_t sta_rssi;         /**< signal of the AP in dBm (0 when not associated) */
    uint32_t sta_attempt;    /**< consecutive failed attempts */
    uint32_t sta_reconnects; /**< successful connections since start, minus the first */
    esp_ip4_addr_t ap_ip;    /**< the soft-AP's address (0 without) */
    uint8_t ap_clients;      /**< clients associated now */
} tc_wifi_status_t;

/**
 * @brief Bring Wi-Fi up in the configured mode and return without waiting (see tc_wifi_wait_ip()).
 *
 * Creates the default event loop and esp_netif if the application has not (their "already created" answers are
 * accepted), the netifs of the mode, registers the event handlers and starts the driver. The station starts
 * connecting at once if it has credentials. Not thread-safe against tc_wifi_stop(); call from one task.
 * @param cfg  the settings (copied)
 * @return ESP_OK; ESP_ERR_INVALID_ARG (bad mode, SSID or password length, channel, client count);
 *         ESP_ERR_INVALID_STATE (already started); ESP_ERR_NO_MEM; ESP_ERR_NOT_SUPPORTED (a captive URI on
 *         ESP-IDF < 5.4); or the error of the esp_wifi / esp_netif call that failed (logged)
 */
esp_err_t tc_wifi_start(const tc_wifi_config_t *cfg);

/**
 * @brief Wait until the station has an address, at most timeout_ms. Any task; several may wait.
 * @param timeout_ms  the deadline
 * @param out         receives the address, netmask and gateway; may be NULL
 * @return ESP_OK, ESP_ERR_TIMEOUT, ESP_ERR_INVALID_STATE (not started, or no station in this mode),
 *         ESP_FAIL (the station gave up after max_retries)
 */
esp_err_t tc_wifi_wait_ip(uint32_t timeout_ms, esp_netif_ip_info_t *out);

/**
 * @brief Store station credentials in NVS (namespace "tcp_core") and, when Wi-Fi runs with a station, reconnect
 * with them at once (the backoff restarts). Any task.
 * @param ssid      1..32 bytes
 * @param password  "" (open), 8..63 characters or 64 hex digits
 * @return ESP_OK, ESP_ERR_INVALID_ARG, or the nvs_* / esp_wifi_* error that stopped it (logged)
 */
esp_err_t tc_wifi_set_credentials(const char *ssid, const char *password);

/**
 * @brief Read the station credentials stored in NVS. Any task.
 * @param ssid      receives the SSID (33 bytes suffice)
 * @param ssid_cap  its size
 * @param pass      receives the password (65 bytes suffice)
 * @param pass_cap  its size
 * @return ESP_OK, ESP_ERR_NOT_FOUND (none stored), ESP_ERR_INVALID_SIZE (buffers too small), or an nvs_* error
 */
esp_err_t tc_wifi_load_credentials(char *ssid, size_t ssid_cap, char *pass, size_t pass_cap);

/** @brief Forget the stored credentials. @return ESP_OK (also when none were stored) or an nvs_* error. */
esp_err_t tc_wifi_erase_credentials(void);

/**
 * @brief Copy the current state. Any task.
 * @param out  receives the snapshot
 * @return ESP_OK, ESP_ERR_INVALID_ARG (NULL)
 */
esp_err_t tc_wifi_status(tc_wifi_status_t *out);

/** @brief The station's netif (NULL when there is none). */
esp_netif_t *tc_wifi_sta_netif(void);

/** @brief The soft-AP's netif (NULL when there is none). */
esp_netif_t *tc_wifi_ap_netif(void);

/**
 * @brief Stop Wi-Fi: no more retries, driver stopped and deinitialised, handlers unregistered, netifs destroyed.
 * Stop every server bound to a Wi-Fi address first. Not thread-safe against tc_wifi_start().
 * @return ESP_OK, ESP_ERR_INVALID_STATE (not started)
 */
esp_err_t tc_wifi_stop(void);

#ifdef __cplusplus
}
#endif
