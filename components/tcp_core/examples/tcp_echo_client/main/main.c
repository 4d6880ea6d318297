/*
 * tcp_core example: a TCP echo server and a reconnecting TCP client on one loop (the device is server and client
 * at once). Join a network in station mode (menuconfig: tcp_core -> Wi-Fi glue), then `nc DEVICE 3333`; the client
 * dials CONFIG_EXAMPLE_PEER_HOST:CONFIG_EXAMPLE_PEER_PORT (`nc -lk 3334` on a PC) and echoes what it receives.
 */
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "tcp_core.h"
#if CONFIG_TCP_CORE_WIFI
#include "esp_event.h"
#include "nvs_flash.h"
#endif

static const char *TAG = "example";

static void loop_task(void *arg)
{
    (void)arg;
    tc_loop_t *loop = NULL;
    tc_server_t *echo = NULL;
    tc_client_t *client = NULL;
    ESP_ERROR_CHECK(tc_esp_err(tc_loop_new(&loop)));

    tc_server_config_t sc = TC_SERVER_DEFAULT_CONFIG();
    sc.port = CONFIG_EXAMPLE_ECHO_PORT;
    sc.cb = tc_echo_cb; /* echoes in C; the default close (graceful) frees this side's TIME-WAIT pcb on lwIP */
    sc.name = "echo";
    tc_esp_check(tc_server_start(loop, &sc, &echo), TAG, "echo server");

    tc_client_config_t cc = TC_CLIENT_DEFAULT_CONFIG();
    cc.host = CONFIG_EXAMPLE_PEER_HOST; /* a name is resolved through the loop, which it does not block */
    cc.port = CONFIG_EXAMPLE_PEER_PORT;
    cc.cb = tc_echo_cb;
    cc.name = "client";
    tc_esp_check(tc_client_start(loop, &cc, &client), TAG, "client");

    ESP_LOGI(TAG, "echo on port %u; client to %s:%d", tc_server_port(echo), cc.host, cc.port);
    tc_loop_run(loop); /* runs until tc_loop_stop() */
    vTaskDelete(NULL);
}

void app_main(void)
{
#if CONFIG_TCP_CORE_WIFI
    esp_err_t err = nvs_flash_init(); /* the Wi-Fi driver keeps its calibration and the glue its credentials there */
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
    err = esp_event_loop_create_default(); /* the Wi-Fi glue posts its events there; another part may have made it */
    if (err != ESP_ERR_INVALID_STATE) {
        ESP_ERROR_CHECK(err);
    }

    tc_wifi_config_t wc = TC_WIFI_DEFAULT_CONFIG();
    wc.mode = TC_WIFI_MODE_STA;
    ESP_ERROR_CHECK(tc_wifi_start(&wc));
    esp_netif_ip_info_t ip;
    if (tc_wifi_wait_ip(CONFIG_TCP_CORE_WIFI_STA_TIMEOUT_MS, &ip) == ESP_OK) {
        ESP_LOGI(TAG, "station address " IPSTR, IP2STR(&ip.ip));
    }
#else
    /* The linux target (idf.py --preview set-target linux) has no Wi-Fi: the host's own network is used. */
    ESP_LOGI(TAG, "no Wi-Fi glue on this target: listening on the host's addresses");
#endif
    xTaskCreate(loop_task, "tc_loop", 6144, NULL, 5, NULL);
}
