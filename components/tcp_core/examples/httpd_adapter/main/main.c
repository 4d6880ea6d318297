/*
 * tcp_core example: esp_http_server with the tcp_core adapter. A classic camera-style stream handler loops,
 * sending frames, while viewers watch; plain httpd_stop() would wait for it forever. Started with tc_httpd_start()
 * and keeping the adapter's contract (tc_httpd_stream_begin, check every send, tc_httpd_stream_stopping each frame,
 * tc_httpd_stream_end), the server is stopped by tc_httpd_stop_deadline() within its deadline: here 30 s after
 * start, from a task of its own.
 */
#include <inttypes.h>
#include <stdio.h>

#include "esp_http_server.h"
#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "tcp_core.h"
#if CONFIG_TCP_CORE_WIFI
#include "esp_event.h"
#include "nvs_flash.h"
#endif

static const char *TAG = "example";

/* The smallest valid JPEG (a 1x1 grey pixel); a camera driver would give its frame here. */
static const uint8_t FRAME[] = {
    0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x43, 0x00, 0x08, 0x06, 0x06, 0x07, 0x06, 0x05, 0x08, 0x07, 0x07, 0x07, 0x09, 0x09,
    0x08, 0x0A, 0x0C, 0x14, 0x0D, 0x0C, 0x0B, 0x0B, 0x0C, 0x19, 0x12, 0x13, 0x0F, 0x14, 0x1D, 0x1A, 0x1F, 0x1E, 0x1D,
    0x1A, 0x1C, 0x1C, 0x20, 0x24, 0x2E, 0x27, 0x20, 0x22, 0x2C, 0x23, 0x1C, 0x1C, 0x28, 0x37, 0x29, 0x2C, 0x30, 0x31,
    0x34, 0x34, 0x34, 0x1F, 0x27, 0x39, 0x3D, 0x38, 0x32, 0x3C, 0x2E, 0x33, 0x34, 0x32, 0xFF, 0xC0, 0x00, 0x0B, 0x08,
    0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00, 0xFF, 0xC4, 0x00, 0x14, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0xFF, 0xC4, 0x00, 0x14, 0x10, 0x01,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF,
    0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00, 0x2A, 0x9F, 0xFF, 0xD9,
};

static esp_err_t stream_handler(httpd_req_t *req)
{
    if (tc_httpd_stream_begin(req) != ESP_OK) {
        return ESP_FAIL; /* the server is stopping: no new streams */
    }
    esp_err_t err = httpd_resp_set_type(req, "multipart/x-mixed-replace;boundary=frame");
    while (err == ESP_OK && !tc_httpd_stream_stopping(req)) {
        char head[96];
        int n = snprintf(head, sizeof(head), "\r\n--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %u\r\n\r\n",
                         (unsigned)sizeof(FRAME));
        err = httpd_resp_send_chunk(req, head, n);
        if (err == ESP_OK) {
            err = httpd_resp_send_chunk(req, (const char *)FRAME, sizeof(FRAME));
        }
        if (err == ESP_OK) {
            vTaskDelay(pdMS_TO_TICKS(100));
        }
    }
    tc_httpd_stream_end(req);
    if (err == ESP_OK) {
        err = httpd_resp_send_chunk(req, NULL, 0); /* ended by the stop: finish the chunked body */
    }
    return err == ESP_OK ? ESP_OK : ESP_FAIL;
}

/* Stops the server from a task of its own: tc_httpd_stop_deadline() must not run on the server's task. */
static void stopper_task(void *arg)
{
    httpd_handle_t server = arg;
    vTaskDelay(pdMS_TO_TICKS(30000));
    tc_httpd_stop_report_t r;
    esp_err_t err = tc_httpd_stop_deadline(server, 2000, &r);
    ESP_LOGI(TAG, "httpd stop: %s in %" PRIu32 " ms; %" PRIu32 " sessions, %" PRIu32 " streams shut, %" PRIu32
             " forced", esp_err_to_name(err), r.elapsed_ms, r.sessions, r.streams_shut, r.forced);
    vTaskDelete(NULL);
}

void app_main(void)
{
#if CONFIG_TCP_CORE_WIFI
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
    wc.mode = TC_WIFI_MODE_STA;
    ESP_ERROR_CHECK(tc_wifi_start(&wc));
    esp_netif_ip_info_t ip;
    if (tc_wifi_wait_ip(CONFIG_TCP_CORE_WIFI_STA_TIMEOUT_MS, &ip) == ESP_OK) {
        ESP_LOGI(TAG, "stream on http://" IPSTR "/stream", IP2STR(&ip.ip));
    }
#else
    /* The linux target (idf.py --preview set-target linux) has no Wi-Fi: the host's own network is used. */
    ESP_LOGI(TAG, "no Wi-Fi glue on this target: listening on the host's addresses");
#endif

    httpd_handle_t server = NULL;
    httpd_config_t hc = HTTPD_DEFAULT_CONFIG();
    hc.lru_purge_enable = true;
    tc_httpd_adapter_config_t acfg = TC_HTTPD_ADAPTER_DEFAULT_CONFIG(); /* .loop = NULL: sessions not listed */
    ESP_ERROR_CHECK(tc_httpd_start(&server, &hc, &acfg));
    const httpd_uri_t stream = {.uri = "/stream", .method = HTTP_GET, .handler = stream_handler};
    ESP_ERROR_CHECK(httpd_register_uri_handler(server, &stream));
    xTaskCreate(stopper_task, "stopper", 4096, server, 5, NULL);
}
