/*
 * tcp_core example: a soft-AP captive portal. Phones that join "tcp_core" (menuconfig: tcp_core -> Wi-Fi glue)
 * resolve every name to the device (DHCP hands out the device as DNS server, the DNS responder answers), their
 * connectivity probes are redirected to the device's page, and the OS opens that page in its sign-in sheet.
 * TC_CAPTIVE_ONLINE instead answers the probes as the real services would, so the phone keeps the Wi-Fi as a usable
 * network (see the component README for Android's HTTPS probe limit).
 */
#include "esp_event.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs_flash.h"
#include "tcp_core.h"

#define AP_IP "192.168.4.1" /* esp_netif's default soft-AP address */

static const char *TAG = "example";

static int page_index(tc_http_req_t *req, void *user)
{
    (void)user;
    static const char html[] = "<!doctype html><meta name=\"viewport\" content=\"width=device-width\">"
                               "<title>Device setup</title><h1>Hello from the device</h1>";
    return tc_http_respond(req, 200, "text/html", html, sizeof(html) - 1);
}

static void loop_task(void *arg)
{
    (void)arg;
    tc_loop_t *loop = NULL;
    tc_http_t *http = NULL;
    tc_dns_server_t *dns = NULL;
    ESP_ERROR_CHECK(tc_esp_err(tc_loop_new(&loop)));

    tc_http_config_t hc = TC_HTTP_DEFAULT_CONFIG();
    hc.port = 80; /* probes are plain http://host/path: port 80 */
    hc.max_conns = 8;
    if (tc_esp_check(tc_http_start(loop, &hc, &http), TAG, "HTTP server") == ESP_OK) {
        tc_http_route(http, TC_HTTP_GET, "/", page_index, NULL);
        tc_captive_config_t cc = TC_CAPTIVE_DEFAULT_CONFIG();
        cc.mode = TC_CAPTIVE_PORTAL;
        cc.portal_url = "http://" AP_IP "/";
        cc.device_host = AP_IP;
        tc_esp_check(tc_captive_attach(http, &cc), TAG, "captive portal");
    }
    tc_dns_server_config_t dc = TC_DNS_SERVER_DEFAULT_CONFIG();
    dc.bind_ip = AP_IP; /* the soft-AP side only */
    dc.port = 53;
    dc.answer_ip = AP_IP;
    tc_esp_check(tc_dns_server_start(loop, &dc, &dns), TAG, "DNS responder");
    ESP_LOGI(TAG, "captive portal on http://" AP_IP "/ (every name resolves to " AP_IP ")");
    tc_loop_run(loop);
    vTaskDelete(NULL);
}

void app_main(void)
{
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    err = esp_event_loop_create_default();
    if (err != ESP_ERR_INVALID_STATE) {
        ESP_ERROR_CHECK(err);
    }
    tc_wifi_config_t wc = TC_WIFI_DEFAULT_CONFIG();
    wc.mode = TC_WIFI_MODE_AP;
    wc.ap_dns_is_device = true; /* DHCP tells clients to ask the device for names */
    ESP_ERROR_CHECK(tc_wifi_start(&wc));
    /* The DNS responder binds the soft-AP address, which exists once the AP has started. */
    xTaskCreate(loop_task, "tc_loop", 6144, NULL, 5, NULL);
}
