/*
 * esp/tc_wifi.c - station, soft-AP and AP+STA for tcp_core firmware (see tc_wifi.h).
 *
 * Everything that reacts to the radio runs in one place, the event handler on ESP-IDF's default event-loop task;
 * other tasks only wait on the event group, read the state under a mutex, or ask for a reconnect. Reconnects go
 * through a one-shot esp_timer, so a dead AP costs one attempt per backoff period instead of a busy loop of
 * esp_wifi_connect() calls in the disconnect handler (the usual example code).
 */
#include "tc_wifi.h"

#include <string.h>

#include "esp_event.h"
#include "esp_idf_version.h"
#include "esp_log.h"
#include "esp_random.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/semphr.h"
#include "nvs.h"
#include "tc_esp.h"

#define TAG TC_ESP_TAG_WIFI

#define NVS_NAMESPACE "tcp_core"
#define NVS_KEY_SSID "sta_ssid"
#define NVS_KEY_PASS "sta_pass"

#define BIT_GOT_IP (1u << 0)
#define BIT_GAVE_UP (1u << 1)

/* ESP-IDF 6 renamed the soft-AP client-address event (the old name is deprecated, an error under -Werror). */
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(6, 0, 0)
#define TC_IP_EVENT_AP_CLIENT_IP IP_EVENT_ASSIGNED_IP_TO_CLIENT
typedef ip_event_assigned_ip_to_client_t tc_ap_client_ip_t;
#else
#define TC_IP_EVENT_AP_CLIENT_IP IP_EVENT_AP_STAIPASSIGNED
typedef ip_event_ap_staipassigned_t tc_ap_client_ip_t;
#endif

typedef struct {
    bool started;
    tc_wifi_config_t cfg; /* its strings point at the copies below */
    char sta_ssid[33];
    char sta_pass[65];
    char ap_ssid[33];
    char ap_pass[65];
    char captive_uri[128]; /* DHCP option 114 keeps a pointer to it (esp_netif_dhcps_option): lives with the AP */
    esp_netif_t *sta;
    esp_netif_t *ap;
    EventGroupHandle_t bits;
    SemaphoreHandle_t mu; /* guards the fields below */
    esp_event_handler_instance_t h_wifi;
    esp_event_handler_instance_t h_ip;
    esp_timer_handle_t retry;
    bool stopping;
    bool reconnect_now; /* the next disconnection is ours (new credentials): connect again at once */
    bool sta_connected;
    bool sta_has_ip;
    esp_netif_ip_info_t sta_ip;
    uint32_t attempt;
    uint32_t connects;
    uint8_t ap_clients;
} wifi_state_t;

static wifi_state_t s_wifi;

static void lock(void)
{
    xSemaphoreTake(s_wifi.mu, portMAX_DELAY);
}

static void unlock(void)
{
    xSemaphoreGive(s_wifi.mu);
}

static bool has_sta(tc_wifi_mode_t m)
{
    return m == TC_WIFI_MODE_STA || m == TC_WIFI_MODE_APSTA;
}

static bool has_ap(tc_wifi_mode_t m)
{
    return m == TC_WIFI_MODE_AP || m == TC_WIFI_MODE_APSTA;
}

static bool is_hex(const char *p)
{
    for (; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F'))) {
            return false;
        }
    }
    return true;
}

static bool ssid_ok(const char *ssid)
{
    size_t n = ssid ? strlen(ssid) : 0;
    return n >= 1 && n <= 32;
}

/* IEEE 802.11i: a passphrase has 8..63 printable characters; 64 characters are the raw PSK in hex. */
static bool password_ok(const char *pass, bool allow_hex_psk)
{
    size_t n = pass ? strlen(pass) : 0;
    return n == 0 || (n >= 8 && n <= 63) || (allow_hex_psk && n == 64 && is_hex(pass));
}

static void emit(tc_wifi_event_t ev, const tc_wifi_event_data_t *d)
{
    if (s_wifi.cfg.cb) {
        s_wifi.cfg.cb(ev, d, s_wifi.cfg.user);
    }
}

/* ---- credentials ---- */

esp_err_t tc_wifi_load_credentials(char *ssid, size_t ssid_cap, char *pass, size_t pass_cap)
{
    if (ssid == NULL || pass == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    nvs_handle_t h;
    esp_err_t err = nvs_open(NVS_NAMESPACE, NVS_READONLY, &h);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        return ESP_ERR_NOT_FOUND; /* the namespace does not exist until something is stored */
    }
    if (err != ESP_OK) {
        return err;
    }
    size_t n = ssid_cap;
    err = nvs_get_str(h, NVS_KEY_SSID, ssid, &n);
    if (err == ESP_OK) {
        n = pass_cap;
        err = nvs_get_str(h, NVS_KEY_PASS, pass, &n);
    }
    nvs_close(h);
    if (err == ESP_ERR_NVS_NOT_FOUND) {
        return ESP_ERR_NOT_FOUND;
    }
    if (err == ESP_ERR_NVS_INVALID_LENGTH) {
        return ESP_ERR_INVALID_SIZE;
    }
    return err;
}

esp_err_t tc_wifi_erase_credentials(void)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NVS_NAMESPACE, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_erase_key(h, NVS_KEY_SSID);
    if (err == ESP_OK || err == ESP_ERR_NVS_NOT_FOUND) {
        err = nvs_erase_key(h, NVS_KEY_PASS);
    }
    if (err == ESP_OK || err == ESP_ERR_NVS_NOT_FOUND) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    return err;
}

static esp_err_t save_credentials(const char *ssid, const char *pass)
{
    nvs_handle_t h;
    esp_err_t err = nvs_open(NVS_NAMESPACE, NVS_READWRITE, &h);
    if (err != ESP_OK) {
        return err;
    }
    err = nvs_set_str(h, NVS_KEY_SSID, ssid);
    if (err == ESP_OK) {
        err = nvs_set_str(h, NVS_KEY_PASS, pass);
    }
    if (err == ESP_OK) {
        err = nvs_commit(h);
    }
    nvs_close(h);
    return err;
}

static esp_err_t apply_sta_config(void)
{
    wifi_config_t wc;
    memset(&wc, 0, sizeof(wc));
    memcpy(wc.sta.ssid, s_wifi.sta_ssid, strlen(s_wifi.sta_ssid));
    memcpy(wc.sta.password, s_wifi.sta_pass, strlen(s_wifi.sta_pass));
    /* Without a threshold the driver would also join a WEP/WPA network of the same name; with a password, ask for
     * WPA2 at least (WPA3 APs in transition mode qualify). */
    wc.sta.threshold.authmode = s_wifi.sta_pass[0] ? WIFI_AUTH_WPA2_PSK : WIFI_AUTH_OPEN;
    wc.sta.pmf_cfg.capable = true;
    wc.sta.pmf_cfg.required = false;
    return esp_wifi_set_config(WIFI_IF_STA, &wc);
}

esp_err_t tc_wifi_set_credentials(const char *ssid, const char *password)
{
    if (!ssid_ok(ssid) || !password_ok(password, true)) {
        return ESP_ERR_INVALID_ARG;
    }
    esp_err_t err = save_credentials(ssid, password);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "storing credentials: %s", esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "credentials for \"%s\" stored", ssid);
    if (!s_wifi.started || !has_sta(s_wifi.cfg.mode)) {
        return ESP_OK; /* used at the next start with a station */
    }
    lock();
    strlcpy(s_wifi.sta_ssid, ssid, sizeof(s_wifi.sta_ssid));
    strlcpy(s_wifi.sta_pass, password, sizeof(s_wifi.sta_pass));
    bool connected = s_wifi.sta_connected;
    s_wifi.attempt = 0;
    s_wifi.reconnect_now = connected;
    unlock();
    esp_timer_stop(s_wifi.retry); /* ESP_ERR_INVALID_STATE when not armed: fine */
    xEventGroupClearBits(s_wifi.bits, BIT_GAVE_UP);
    err = apply_sta_config();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_wifi_set_config: %s", esp_err_to_name(err));
        return err;
    }
    /* Connected: disconnect, and the handler connects again at once. Otherwise connect now. */
    err = connected ? esp_wifi_disconnect() : esp_wifi_connect();
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "%s: %s", connected ? "esp_wifi_disconnect" : "esp_wifi_connect", esp_err_to_name(err));
    }
    return ESP_OK;
}

/* ---- reconnection ---- */

static uint32_t backoff_ms(uint32_t attempt)
{
    uint64_t d = s_wifi.cfg.sta_backoff_initial_ms;
    for (uint32_t i = 1; i < attempt && d < s_wifi.cfg.sta_backoff_max_ms; i++) {
        d *= 2;
    }
    if (d > s_wifi.cfg.sta_backoff_max_ms) {
        d = s_wifi.cfg.sta_backoff_max_ms;
    }
    /* Up to 25% less, at random: devices that lost the same AP do not all come back in the same instant. */
    return (uint32_t)(d - d * (esp_random() % 26u) / 100u);
}

static void retry_cb(void *arg)
{
    (void)arg;
    if (s_wifi.stopping) {
        return;
    }
    esp_err_t err = esp_wifi_connect();
    if (err != ESP_OK) {
        ESP_LOGW(TAG, "esp_wifi_connect: %s", esp_err_to_name(err));
    }
}

/* ---- soft-AP DHCP options (captive portal) ---- */

static void ap_dhcp_options(void)
{
    esp_netif_t *ap = s_wifi.ap;
    bool dns = s_wifi.cfg.ap_dns_is_device;
    bool uri = s_wifi.captive_uri[0] != '\0';
    if (!dns && !uri) {
        return;
    }
    esp_netif_ip_info_t ip;
    if (esp_netif_get_ip_info(ap, &ip) != ESP_OK) {
        ESP_LOGE(TAG, "soft-AP address unknown: DHCP options not set");
        return;
    }
    /* Options can only be changed while the DHCP server is stopped; clients that got a lease before keep theirs. */
    esp_err_t err = esp_netif_dhcps_stop(ap);
    if (err != ESP_OK && err != ESP_ERR_ESP_NETIF_DHCP_ALREADY_STOPPED) {
        ESP_LOGE(TAG, "esp_netif_dhcps_stop: %s", esp_err_to_name(err));
        return;
    }
    if (dns) {
        uint8_t offer = 1;
        esp_netif_dns_info_t di;
        memset(&di, 0, sizeof(di));
        di.ip.type = ESP_IPADDR_TYPE_V4;
        di.ip.u_addr.ip4 = ip.ip;
        err = esp_netif_dhcps_option(ap, ESP_NETIF_OP_SET, ESP_NETIF_DOMAIN_NAME_SERVER, &offer, sizeof(offer));
        if (err == ESP_OK) {
            err = esp_netif_set_dns_info(ap, ESP_NETIF_DNS_MAIN, &di);
        }
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "DHCP DNS option: %s", esp_err_to_name(err));
        }
    }
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 4, 0)
    if (uri) {
        err = esp_netif_dhcps_option(ap, ESP_NETIF_OP_SET, ESP_NETIF_CAPTIVEPORTAL_URI, s_wifi.captive_uri,
                                     strlen(s_wifi.captive_uri));
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "DHCP option 114: %s", esp_err_to_name(err));
        }
    }
#endif
    err = esp_netif_dhcps_start(ap);
    if (err != ESP_OK && err != ESP_ERR_ESP_NETIF_DHCP_ALREADY_STARTED) {
        ESP_LOGE(TAG, "esp_netif_dhcps_start: %s", esp_err_to_name(err));
    }
    ESP_LOGI(TAG, "soft-AP DHCP: DNS server " IPSTR "%s%s", IP2STR(&ip.ip), uri ? ", portal " : "",
             uri ? s_wifi.captive_uri : "");
}

/* ---- events ---- */

static void on_wifi(int32_t id, void *data)
{
    tc_wifi_event_data_t d;
    memset(&d, 0, sizeof(d));
    switch (id) {
    case WIFI_EVENT_STA_START: {
        lock();
        bool have = s_wifi.sta_ssid[0] != '\0';
        unlock();
        if (have) {
            esp_wifi_connect();
        } else {
            ESP_LOGW(TAG, "no station credentials: set them with the console command `wifi <ssid> [password]`");
        }
        break;
    }
    case WIFI_EVENT_STA_CONNECTED:
        lock();
        s_wifi.sta_connected = true;
        unlock();
        emit(TC_WIFI_EV_STA_CONNECTED, &d);
        break;
    case WIFI_EVENT_STA_DISCONNECTED: {
        const wifi_event_sta_disconnected_t *e = data;
        d.reason = e->reason;
        lock();
        bool had_ip = s_wifi.sta_has_ip;
        s_wifi.sta_connected = false;
        s_wifi.sta_has_ip = false;
        bool now = s_wifi.reconnect_now;
        s_wifi.reconnect_now = false;
        if (!now) {
            s_wifi.attempt++;
        }
        d.attempt = s_wifi.attempt;
        unlock();
        xEventGroupClearBits(s_wifi.bits, BIT_GOT_IP);
        if (had_ip) {
            emit(TC_WIFI_EV_STA_LOST_IP, &d);
        }
        if (s_wifi.stopping) {
            break;
        }
        if (now) {
            esp_wifi_connect();
            break;
        }
        if (s_wifi.cfg.sta_max_retries && d.attempt >= s_wifi.cfg.sta_max_retries) {
            ESP_LOGW(TAG, "gave up after %u attempts (reason %u)", (unsigned)d.attempt, (unsigned)d.reason);
            xEventGroupSetBits(s_wifi.bits, BIT_GAVE_UP);
            emit(TC_WIFI_EV_STA_GAVE_UP, &d);
            break;
        }
        d.retry_ms = backoff_ms(d.attempt);
        ESP_LOGI(TAG, "disconnected (reason %u), attempt %u, retry in %u ms", (unsigned)d.reason,
                 (unsigned)d.attempt, (unsigned)d.retry_ms);
        esp_timer_stop(s_wifi.retry);
        esp_timer_start_once(s_wifi.retry, (uint64_t)d.retry_ms * 1000u);
        emit(TC_WIFI_EV_STA_DISCONNECTED, &d);
        break;
    }
    case WIFI_EVENT_AP_START: {
        ap_dhcp_options();
        esp_netif_ip_info_t ip;
        if (esp_netif_get_ip_info(s_wifi.ap, &ip) == ESP_OK) {
            d.ip = ip.ip;
        }
        ESP_LOGI(TAG, "soft-AP \"%s\" up on channel %u at " IPSTR, s_wifi.ap_ssid, (unsigned)s_wifi.cfg.ap_channel,
                 IP2STR(&d.ip));
        emit(TC_WIFI_EV_AP_STARTED, &d);
        break;
    }
    case WIFI_EVENT_AP_STACONNECTED: {
        const wifi_event_ap_staconnected_t *e = data;
        memcpy(d.mac, e->mac, sizeof(d.mac));
        lock();
        s_wifi.ap_clients++;
        unlock();
        emit(TC_WIFI_EV_AP_CLIENT_JOINED, &d);
        break;
    }
    case WIFI_EVENT_AP_STADISCONNECTED: {
        const wifi_event_ap_stadisconnected_t *e = data;
        memcpy(d.mac, e->mac, sizeof(d.mac)); /* no reason: ESP-IDF 5.1.0 lacks the field */
        lock();
        if (s_wifi.ap_clients > 0) {
            s_wifi.ap_clients--;
        }
        unlock();
        emit(TC_WIFI_EV_AP_CLIENT_LEFT, &d);
        break;
    }
    default:
        break;
    }
}

static void on_ip(int32_t id, void *data)
{
    tc_wifi_event_data_t d;
    memset(&d, 0, sizeof(d));
    if (id == IP_EVENT_STA_GOT_IP) {
        const ip_event_got_ip_t *e = data;
        d.ip = e->ip_info.ip;
        d.netmask = e->ip_info.netmask;
        d.gw = e->ip_info.gw;
        lock();
        s_wifi.sta_has_ip = true;
        s_wifi.sta_ip = e->ip_info;
        s_wifi.attempt = 0;
        s_wifi.connects++;
        unlock();
        xEventGroupClearBits(s_wifi.bits, BIT_GAVE_UP);
        xEventGroupSetBits(s_wifi.bits, BIT_GOT_IP);
        ESP_LOGI(TAG, "station address " IPSTR, IP2STR(&d.ip));
        emit(TC_WIFI_EV_STA_GOT_IP, &d);
    } else if (id == IP_EVENT_STA_LOST_IP) {
        lock();
        bool had = s_wifi.sta_has_ip;
        s_wifi.sta_has_ip = false;
        unlock();
        xEventGroupClearBits(s_wifi.bits, BIT_GOT_IP);
        if (had) {
            emit(TC_WIFI_EV_STA_LOST_IP, &d);
        }
    } else if (id == TC_IP_EVENT_AP_CLIENT_IP) {
        const tc_ap_client_ip_t *e = data;
        d.ip = e->ip;
        memcpy(d.mac, e->mac, sizeof(d.mac));
        emit(TC_WIFI_EV_AP_CLIENT_IP, &d);
    }
}

static void event_handler(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    if (base == WIFI_EVENT) {
        on_wifi(id, data);
    } else if (base == IP_EVENT) {
        on_ip(id, data);
    }
}

/* ---- start / stop ---- */

static esp_err_t check_config(const tc_wifi_config_t *cfg)
{
    if (cfg == NULL || cfg->mode < TC_WIFI_MODE_STA || cfg->mode > TC_WIFI_MODE_APSTA) {
        return ESP_ERR_INVALID_ARG;
    }
    if (has_sta(cfg->mode)) {
        if ((cfg->sta_ssid && cfg->sta_ssid[0] && !ssid_ok(cfg->sta_ssid)) || !password_ok(cfg->sta_password, true) ||
            cfg->sta_backoff_initial_ms == 0 || cfg->sta_backoff_max_ms < cfg->sta_backoff_initial_ms) {
            return ESP_ERR_INVALID_ARG;
        }
    }
    if (has_ap(cfg->mode)) {
        if (!ssid_ok(cfg->ap_ssid) || !password_ok(cfg->ap_password, false) || cfg->ap_channel < 1 ||
            cfg->ap_channel > 13 || cfg->ap_max_clients < 1 || cfg->ap_max_clients > 10) {
            return ESP_ERR_INVALID_ARG;
        }
        if (cfg->ap_captive_uri) {
#if ESP_IDF_VERSION < ESP_IDF_VERSION_VAL(5, 4, 0)
            return ESP_ERR_NOT_SUPPORTED;
#else
            if (strlen(cfg->ap_captive_uri) >= sizeof(s_wifi.captive_uri)) {
                return ESP_ERR_INVALID_ARG;
            }
#endif
        }
    }
    return ESP_OK;
}

static void copy_config(const tc_wifi_config_t *cfg)
{
    s_wifi.cfg = *cfg;
    strlcpy(s_wifi.sta_ssid, cfg->sta_ssid ? cfg->sta_ssid : "", sizeof(s_wifi.sta_ssid));
    strlcpy(s_wifi.sta_pass, cfg->sta_password ? cfg->sta_password : "", sizeof(s_wifi.sta_pass));
    strlcpy(s_wifi.ap_ssid, cfg->ap_ssid ? cfg->ap_ssid : "", sizeof(s_wifi.ap_ssid));
    strlcpy(s_wifi.ap_pass, cfg->ap_password ? cfg->ap_password : "", sizeof(s_wifi.ap_pass));
    strlcpy(s_wifi.captive_uri, cfg->ap_captive_uri ? cfg->ap_captive_uri : "", sizeof(s_wifi.captive_uri));
    s_wifi.cfg.sta_ssid = s_wifi.sta_ssid;
    s_wifi.cfg.sta_password = s_wifi.sta_pass;
    s_wifi.cfg.ap_ssid = s_wifi.ap_ssid;
    s_wifi.cfg.ap_password = s_wifi.ap_pass;
    s_wifi.cfg.ap_captive_uri = s_wifi.captive_uri[0] ? s_wifi.captive_uri : NULL;
    if (has_sta(cfg->mode) && cfg->sta_prefer_nvs) {
        char ssid[33], pass[65];
        if (tc_wifi_load_credentials(ssid, sizeof(ssid), pass, sizeof(pass)) == ESP_OK && ssid_ok(ssid)) {
            strlcpy(s_wifi.sta_ssid, ssid, sizeof(s_wifi.sta_ssid));
            strlcpy(s_wifi.sta_pass, pass, sizeof(s_wifi.sta_pass));
            ESP_LOGI(TAG, "station credentials from NVS (\"%s\")", ssid);
        }
    }
}

static esp_err_t set_ap_config(void)
{
    wifi_config_t wc;
    memset(&wc, 0, sizeof(wc));
    size_t n = strlen(s_wifi.ap_ssid);
    memcpy(wc.ap.ssid, s_wifi.ap_ssid, n);
    wc.ap.ssid_len = (uint8_t)n;
    memcpy(wc.ap.password, s_wifi.ap_pass, strlen(s_wifi.ap_pass));
    wc.ap.channel = s_wifi.cfg.ap_channel;
    wc.ap.max_connection = s_wifi.cfg.ap_max_clients;
    wc.ap.authmode = s_wifi.ap_pass[0] ? WIFI_AUTH_WPA2_PSK : WIFI_AUTH_OPEN;
    wc.ap.pmf_cfg.required = false;
    return esp_wifi_set_config(WIFI_IF_AP, &wc);
}

static void teardown(void)
{
    s_wifi.stopping = true;
    if (s_wifi.retry) {
        esp_timer_stop(s_wifi.retry);
    }
    esp_wifi_stop();
    if (s_wifi.h_wifi) {
        esp_event_handler_instance_unregister(WIFI_EVENT, ESP_EVENT_ANY_ID, s_wifi.h_wifi);
    }
    if (s_wifi.h_ip) {
        esp_event_handler_instance_unregister(IP_EVENT, ESP_EVENT_ANY_ID, s_wifi.h_ip);
    }
    esp_wifi_deinit();
    if (s_wifi.retry) {
        esp_timer_delete(s_wifi.retry);
    }
    if (s_wifi.sta) {
        esp_netif_destroy_default_wifi(s_wifi.sta);
    }
    if (s_wifi.ap) {
        esp_netif_destroy_default_wifi(s_wifi.ap);
    }
    if (s_wifi.bits) {
        vEventGroupDelete(s_wifi.bits);
    }
    if (s_wifi.mu) {
        vSemaphoreDelete(s_wifi.mu);
    }
    memset(&s_wifi, 0, sizeof(s_wifi));
}

#define TRY(expr, what)                                                         \
    do {                                                                        \
        err = (expr);                                                           \
        if (err != ESP_OK) {                                                    \
            ESP_LOGE(TAG, "%s: %s", what, esp_err_to_name(err));                \
            teardown();                                                         \
            return err;                                                         \
        }                                                                       \
    } while (0)

esp_err_t tc_wifi_start(const tc_wifi_config_t *cfg)
{
    if (s_wifi.started) {
        return ESP_ERR_INVALID_STATE;
    }
    esp_err_t err = check_config(cfg);
    if (err != ESP_OK) {
        return err;
    }
    memset(&s_wifi, 0, sizeof(s_wifi));
    s_wifi.mu = xSemaphoreCreateMutex();
    s_wifi.bits = xEventGroupCreate();
    if (s_wifi.mu == NULL || s_wifi.bits == NULL) {
        teardown();
        return ESP_ERR_NO_MEM;
    }
    copy_config(cfg);

    err = esp_netif_init();
    if (err != ESP_OK && err != ESP_ERR_INVALID_STATE) {
        ESP_LOGE(TAG, "esp_netif_init: %s", esp_err_to_name(err));
        teardown();
        return err;
    }
    err = esp_event_loop_create_default();
    if (err != ESP_OK && err != ESP_ERR_INVALID_STATE) {
        ESP_LOGE(TAG, "esp_event_loop_create_default: %s", esp_err_to_name(err));
        teardown();
        return err;
    }
    /* The netifs first: their default handlers are registered before ours, so on WIFI_EVENT_AP_START the DHCP
     * server has already been started when ap_dhcp_options() stops it to set the options. */
    if (has_sta(cfg->mode) && (s_wifi.sta = esp_netif_create_default_wifi_sta()) == NULL) {
        teardown();
        return ESP_ERR_NO_MEM;
    }
    if (has_ap(cfg->mode) && (s_wifi.ap = esp_netif_create_default_wifi_ap()) == NULL) {
        teardown();
        return ESP_ERR_NO_MEM;
    }
    const esp_timer_create_args_t targs = {.callback = retry_cb, .name = "tc_wifi_retry"};
    TRY(esp_timer_create(&targs, &s_wifi.retry), "esp_timer_create");
    wifi_init_config_t wic = WIFI_INIT_CONFIG_DEFAULT();
    TRY(esp_wifi_init(&wic), "esp_wifi_init");
    TRY(esp_event_handler_instance_register(WIFI_EVENT, ESP_EVENT_ANY_ID, event_handler, NULL, &s_wifi.h_wifi),
        "register WIFI_EVENT");
    TRY(esp_event_handler_instance_register(IP_EVENT, ESP_EVENT_ANY_ID, event_handler, NULL, &s_wifi.h_ip),
        "register IP_EVENT");
    wifi_mode_t mode = cfg->mode == TC_WIFI_MODE_STA ? WIFI_MODE_STA
                       : cfg->mode == TC_WIFI_MODE_AP ? WIFI_MODE_AP
                                                      : WIFI_MODE_APSTA;
    TRY(esp_wifi_set_mode(mode), "esp_wifi_set_mode");
    if (has_sta(cfg->mode)) {
        TRY(apply_sta_config(), "station config");
    }
    if (has_ap(cfg->mode)) {
        TRY(set_ap_config(), "soft-AP config");
    }
    s_wifi.started = true;
    TRY(esp_wifi_start(), "esp_wifi_start");
    ESP_LOGI(TAG, "started: %s%s%s", has_sta(cfg->mode) ? "station" : "", cfg->mode == TC_WIFI_MODE_APSTA ? "+" : "",
             has_ap(cfg->mode) ? "soft-AP" : "");
    return ESP_OK;
}

esp_err_t tc_wifi_wait_ip(uint32_t timeout_ms, esp_netif_ip_info_t *out)
{
    if (!s_wifi.started || !has_sta(s_wifi.cfg.mode)) {
        return ESP_ERR_INVALID_STATE;
    }
    EventBits_t b = xEventGroupWaitBits(s_wifi.bits, BIT_GOT_IP | BIT_GAVE_UP, pdFALSE, pdFALSE,
                                        pdMS_TO_TICKS(timeout_ms));
    if (b & BIT_GOT_IP) {
        if (out) {
            lock();
            *out = s_wifi.sta_ip;
            unlock();
        }
        return ESP_OK;
    }
    return (b & BIT_GAVE_UP) ? ESP_FAIL : ESP_ERR_TIMEOUT;
}

esp_err_t tc_wifi_status(tc_wifi_status_t *out)
{
    if (out == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    if (!s_wifi.started) {
        return ESP_OK;
    }
    out->mode = s_wifi.cfg.mode;
    lock();
    out->sta_connected = s_wifi.sta_connected;
    out->sta_has_ip = s_wifi.sta_has_ip;
    out->sta_ip = s_wifi.sta_has_ip ? s_wifi.sta_ip.ip : (esp_ip4_addr_t){0};
    strlcpy(out->sta_ssid, s_wifi.sta_ssid, sizeof(out->sta_ssid));
    out->sta_attempt = s_wifi.attempt;
    out->sta_reconnects = s_wifi.connects > 0 ? s_wifi.connects - 1 : 0;
    out->ap_clients = s_wifi.ap_clients;
    unlock();
    wifi_ap_record_t rec;
    if (out->sta_connected && esp_wifi_sta_get_ap_info(&rec) == ESP_OK) {
        out->sta_rssi = rec.rssi;
    }
    esp_netif_ip_info_t ip;
    if (s_wifi.ap && esp_netif_get_ip_info(s_wifi.ap, &ip) == ESP_OK) {
        out->ap_ip = ip.ip;
    }
    return ESP_OK;
}

esp_netif_t *tc_wifi_sta_netif(void)
{
    return s_wifi.sta;
}

esp_netif_t *tc_wifi_ap_netif(void)
{
    return s_wifi.ap;
}

esp_err_t tc_wifi_stop(void)
{
    if (!s_wifi.started) {
        return ESP_ERR_INVALID_STATE;
    }
    teardown();
    return ESP_OK;
}
