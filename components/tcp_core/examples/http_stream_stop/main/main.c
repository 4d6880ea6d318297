/*
 * tcp_core example: an HTTP server with a page, an MJPEG stream and a stop that keeps its deadline while viewers
 * watch the stream (the esp_http_server failure of seed 003). `curl -X POST http://DEVICE/stop` ends every stream,
 * closes the connections (aborting what is left at the deadline) and logs what the stop did.
 */
#include <inttypes.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "tcp_core.h"
#if CONFIG_TCP_CORE_WIFI
#include "esp_event.h"
#include "nvs_flash.h"
#endif

static const char *TAG = "example";
static tc_loop_t *s_loop;
static tc_http_t *s_http;

/* The smallest valid JPEG (a 1x1 grey pixel), sent as every frame: a camera driver would give its frame here. */
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

static int page_index(tc_http_req_t *req, void *user)
{
    (void)user;
    static const char html[] = "<!doctype html><title>tcp_core</title><img src=\"/stream\">"
                               "<form method=\"post\" action=\"/stop\"><button>Stop</button></form>";
    return tc_http_respond(req, 200, "text/html", html, sizeof(html) - 1);
}

/* Called by the loop whenever the viewer's socket can take more: never blocks, never loops. */
static int64_t produce_frame(tc_http_req_t *req, void *user)
{
    (void)user;
    if (tc_http_stream_ready(req)) { /* a viewer that does not read skips frames instead of queueing them */
        int rc = tc_http_stream_write(req, FRAME, sizeof(FRAME));
        if (rc != TC_OK && rc != TC_ELIMIT) {
            return -2; /* the viewer is gone: abort this connection */
        }
    }
    return 100; /* 10 frames per second */
}

static int page_stream(tc_http_req_t *req, void *user)
{
    return tc_http_stream(req, TC_HTTP_STREAM_MJPEG, NULL, produce_frame, user);
}

static void stopped(tc_handle_t *http, const tc_stop_report_t *r, void *user)
{
    (void)http;
    (void)user;
    s_http = NULL;
    ESP_LOGI(TAG, "HTTP stopped in %" PRIu32 " ms: %" PRIu32 " streams ended, %" PRIu32 " closed, %" PRIu32
             " forced, %u bytes freed", r->elapsed_ms, r->streams_ended, r->graceful, r->forced, (unsigned)r->bytes_freed);
}

/* The stop runs from a timer, after the handler has answered: a handler does not stop its own server. */
static int64_t stop_now(tc_timer_t *timer, void *user)
{
    (void)timer;
    (void)user;
    if (s_http) {
        tc_handle_stop(tc_http_handle(s_http), 2000, stopped, NULL);
    }
    return TC_TIMER_STOP;
}

static int page_stop(tc_http_req_t *req, void *user)
{
    (void)user;
    int rc = tc_timer_start(s_loop, 0, stop_now, NULL, NULL);
    return rc == TC_OK ? tc_http_respond(req, 202, "text/plain", "stopping within 2000 ms\n", 24)
                       : tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
}

static void loop_task(void *arg)
{
    (void)arg;
    ESP_ERROR_CHECK(tc_esp_err(tc_loop_new(&s_loop)));
    tc_http_config_t hc = TC_HTTP_DEFAULT_CONFIG();
    hc.port = 80;
    hc.max_conns = 8;
    if (tc_esp_check(tc_http_start(s_loop, &hc, &s_http), TAG, "HTTP server") == ESP_OK) {
        tc_http_route(s_http, TC_HTTP_GET, "/", page_index, NULL);
        tc_http_route(s_http, TC_HTTP_GET, "/stream", page_stream, NULL);
        tc_http_route(s_http, TC_HTTP_POST, "/stop", page_stop, NULL);
        ESP_LOGI(TAG, "HTTP on port %u: /, /stream, POST /stop", tc_http_port(s_http));
    }
    tc_loop_run(s_loop);
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
        ESP_LOGI(TAG, "open http://" IPSTR "/", IP2STR(&ip.ip));
    }
#else
    /* The linux target (idf.py --preview set-target linux) has no Wi-Fi: the host's own network is used. */
    ESP_LOGI(TAG, "no Wi-Fi glue on this target: listening on the host's addresses");
#endif
    xTaskCreate(loop_task, "tc_loop", 6144, NULL, 5, NULL);
}
