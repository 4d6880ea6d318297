/*
 * main.c - the tcp_core demo firmware, all four seeds on one tcp_core loop:
 *  - seed 000: the TCP echo server and, optionally, a reconnecting TCP client that echoes;
 *  - seed 001: a tcp_core close frees the device's TIME-WAIT pcb once the peer's FIN is in (lwIP), so TIME-WAIT
 *    stays off the device;
 *  - seed 002: Wi-Fi station or soft-AP, or Ethernet (Kconfig "Network"); on the soft-AP a captive portal (DHCP DNS
 *    option and option 114, the OS probe answers, optionally the DNS responder); on Ethernet the same portal and
 *    responder when turned on, on the interface's address (how Espressif's QEMU tests them);
 *  - seed 003: "OTA prepare" (POST /api/ota-prepare and the console command) stops every server within a deadline
 *    and logs the heap it freed, including an esp_http_server with a running stream through the tcp_core adapter.
 * The HTTP service has the status page, /api/status (the registry), /ws (WebSocket echo), /stream (MJPEG) and
 * /events (SSE), the same on every network. On the linux target they run over the host's sockets, without Wi-Fi.
 *
 * Tasks: "tc_loop" owns the loop and every tcp_core handle; the console REPL and the "tc_ota" task reach it only
 * through tc_loop_post(); network events arrive on ESP-IDF's event task and are only logged.
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "esp_event.h"
#include "esp_log.h"
#include "esp_system.h"
#include "esp_task.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "tc_alloc.h"
#include "tc_app.h"
#include "tc_console.h"
#include "tc_err.h"
#include "tc_esp.h"
#include "tc_esp_console.h"
#include "tc_loop.h"
#include "tc_ota_esp.h"
#include "tc_config.h"

#if CONFIG_IDF_TARGET_LINUX
#include <signal.h>
#endif
#if CONFIG_DEMO_WIFI
#include "nvs_flash.h"
#include "tc_wifi.h"
#endif
#if CONFIG_DEMO_ETH
#include "demo_eth.h"
#endif
#if CONFIG_DEMO_CAPTIVE_PORTAL
#include "esp_idf_version.h"
#include "tc_captive.h"
#endif
#if CONFIG_DEMO_DNS_SERVER
#include "tc_dns_server.h"
#endif
#if CONFIG_DEMO_HTTPD_ADAPTER
#include "esp_http_server.h"
#include "tc_demo_frames.h"
#include "tc_httpd_adapter.h"
#endif

static const char *TAG = "demo";

/* esp_netif's default soft-AP address: the portal URL handed out by DHCP must be known before the AP starts. On
 * Ethernet the portal and the DNS responder use the address DHCP gave the interface instead. */
#define DEMO_AP_IP "192.168.4.1"

/* Priority of the tasks that wait in socket calls (the loop, esp_http_server, the console). On a chip they block
 * in lwIP on FreeRTOS semaphores, so any priority works. On the linux target they block in host system calls that
 * FreeRTOS's POSIX simulator cannot see: such a task looks always ready, and every task of lower priority starves
 * (app_main included). There they all share app_main's priority and take turns by time slicing. */
#if CONFIG_IDF_TARGET_LINUX
#define DEMO_IO_TASK_PRIO ESP_TASK_MAIN_PRIO
#else
#define DEMO_IO_TASK_PRIO 5
#endif

/* The loop task's stack, bytes (ESP-IDF counts FreeRTOS stacks in bytes). */
#define DEMO_LOOP_STACK 8192

typedef struct {
    tc_loop_t *loop;
    tc_app_t *app;                /* loop thread only */
    SemaphoreHandle_t ready;      /* the loop task has started the services (or failed to) */
    TaskHandle_t loop_task;       /* its stack's high-water mark is in the console's status */
    int start_rc;
    int prepared;                 /* atomic: OTA prepare ran (it stops for good) */
    char portal_url[48];
    char device_ip[16];           /* the portal's and the DNS responder's address; "" = none (captive portal off) */
#if CONFIG_DEMO_HTTPD_ADAPTER
    httpd_handle_t httpd;
#endif
#if CONFIG_DEMO_DNS_SERVER
    tc_dns_server_t *dns;
#endif
} demo_t;

static demo_t s_demo;

/* ---- heap figures: the whole heap on a chip, tcp_core's own bytes everywhere (esp_get_free_heap_size() is a
 * constant on the linux target) ---- */

static size_t tc_bytes(void)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    return st.bytes_in_use;
}

static int64_t free_heap(void)
{
#if CONFIG_IDF_TARGET_LINUX
    return -(int64_t)tc_bytes();
#else
    return (int64_t)esp_get_free_heap_size();
#endif
}

/* ---- running code on the loop thread and waiting for it ---- */

typedef struct {
    void (*fn)(void *arg);
    void *arg;
    SemaphoreHandle_t done;
} loop_call_t;

static void loop_call_cb(tc_loop_t *loop, void *user)
{
    (void)loop;
    loop_call_t *c = user;
    if (c->fn) {
        c->fn(c->arg);
    }
    xSemaphoreGive(c->done);
}

/* Run fn(arg) on the loop thread and wait up to wait_ms. A call that times out still runs later, so fn and arg
 * must stay valid: the callers use static data. @return TC_OK, TC_ETIMEDOUT, TC_ENOMEM. */
static int on_loop(void (*fn)(void *), void *arg, uint32_t wait_ms)
{
    static loop_call_t call;
    if (call.done == NULL && (call.done = xSemaphoreCreateBinary()) == NULL) {
        return TC_ENOMEM;
    }
    call.fn = fn;
    call.arg = arg;
    int rc = tc_loop_post(s_demo.loop, loop_call_cb, &call);
    if (rc == TC_ENOMEM) {
        return rc;
    }
    return xSemaphoreTake(call.done, pdMS_TO_TICKS(wait_ms)) == pdTRUE ? TC_OK : TC_ETIMEDOUT;
}

/* ---- OTA prepare (seed 003): stop every server within one deadline ---- */

typedef struct {
    uint32_t deadline_ms;
    int rc;
    tc_stop_report_t report; /* the app's: sums of its services' */
    SemaphoreHandle_t done;
} app_stop_t;

static app_stop_t s_stop;

static void app_stopped(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    app_stop_t *st = user;
    st->report = *r;
    xSemaphoreGive(st->done);
}

static void app_stop_on_loop(tc_loop_t *loop, void *user)
{
    (void)loop;
    app_stop_t *st = user;
    tc_app_t *app = s_demo.app;
    s_demo.app = NULL;
    st->rc = app ? tc_handle_stop(tc_app_handle(app), st->deadline_ms, app_stopped, st) : TC_ECLOSED;
    if (st->rc != TC_OK) {
        xSemaphoreGive(st->done);
    }
#if CONFIG_DEMO_DNS_SERVER
    if (s_demo.dns) {
        tc_dns_server_stop(s_demo.dns);
        s_demo.dns = NULL;
    }
#endif
}

/* Any task but the loop's (the console's, or "tc_ota"). The tcp_core services and esp_http_server stop at the same
 * time: the loop carries out the app's stop while this task runs tc_httpd_stop_deadline(). */
static int ota_prepare(uint32_t deadline_ms, tc_console_ota_result_t *res, void *user)
{
    (void)user;
    if (__atomic_exchange_n(&s_demo.prepared, 1, __ATOMIC_SEQ_CST)) {
        return TC_ECLOSED;
    }
    uint64_t t0 = tc_now_ms();
    int64_t heap_before = free_heap();
    size_t tc_before = tc_bytes();
    if (s_stop.done == NULL && (s_stop.done = xSemaphoreCreateBinary()) == NULL) {
        return TC_ENOMEM;
    }
    s_stop.deadline_ms = deadline_ms;
    s_stop.rc = TC_OK;
    int rc = tc_loop_post(s_demo.loop, app_stop_on_loop, &s_stop);
    if (rc == TC_ENOMEM) {
        __atomic_store_n(&s_demo.prepared, 0, __ATOMIC_SEQ_CST);
        return rc;
    }
    uint32_t graceful = 0, forced = 0;
    esp_err_t herr = ESP_OK;
#if CONFIG_DEMO_HTTPD_ADAPTER
    /* Taken, so that an OTA upload's pause (httpd_pause()) never stops the same server at the same time. */
    httpd_handle_t hd = __atomic_exchange_n(&s_demo.httpd, NULL, __ATOMIC_ACQ_REL);
    if (hd) {
        tc_httpd_stop_report_t hr;
        herr = tc_httpd_stop_deadline(hd, deadline_ms, &hr);
        if (!hr.server_stopped) {
            __atomic_store_n(&s_demo.httpd, hd, __ATOMIC_RELEASE); /* still running: a later stop may retry */
        }
        forced += hr.streams_shut + hr.forced;
        graceful += hr.sessions > hr.streams_shut + hr.forced ? hr.sessions - hr.streams_shut - hr.forced : 0;
    }
#endif
    /* The app's stop reports by its deadline; a second more covers the loop's own latency. */
    bool stopped = xSemaphoreTake(s_stop.done, pdMS_TO_TICKS(deadline_ms + 1000)) == pdTRUE;
    res->elapsed_ms = (uint32_t)(tc_now_ms() - t0); /* every server is stopped here; what follows only measures */
    /* The stop callback runs inside a loop iteration; one more round trip makes sure it has returned and the
     * services are freed, and a short pause lets FreeRTOS's idle task free the stacks of deleted tasks. */
    on_loop(NULL, NULL, 500);
    vTaskDelay(pdMS_TO_TICKS(50));
    const tc_stop_report_t *r = &s_stop.report;
    if (stopped && s_stop.rc == TC_OK) {
        graceful += r->graceful; /* echo, HTTP and the client's connection together */
        forced += r->forced;
    }
    res->graceful = graceful;
    res->forced = forced;
    res->heap_freed = free_heap() - heap_before;
    size_t tc_after = tc_bytes();
    ESP_LOGI(TAG, "OTA prepare: every server stopped in %" PRIu32 " ms (deadline %" PRIu32 " ms), %" PRIu32
             " closed, %" PRIu32 " forced; heap freed %" PRId64 " bytes (tcp_core's own: %zu)",
             res->elapsed_ms, deadline_ms, graceful, forced, res->heap_freed,
             tc_before > tc_after ? tc_before - tc_after : 0);
    if (!stopped) {
        return TC_ETIMEDOUT;
    }
    if (s_stop.rc != TC_OK && s_stop.rc != TC_ECLOSED) {
        return s_stop.rc;
    }
    return herr == ESP_OK ? TC_OK : tc_esp_err_to_tc(herr);
}

static void ota_task(void *arg)
{
    tc_console_ota_result_t res;
    memset(&res, 0, sizeof(res));
    int rc = ota_prepare((uint32_t)(uintptr_t)arg, &res, NULL);
    if (rc != TC_OK) {
        ESP_LOGW(TAG, "OTA prepare: %s", tc_strerror(rc));
    }
    vTaskDelete(NULL);
}

/* POST /api/ota-prepare[?deadline_ms=N]: answers at once (202), then the "tc_ota" task stops everything, this
 * server included; the answer is flushed by the stop itself. */
static int route_ota_prepare(tc_http_req_t *req, void *user)
{
    (void)user;
    uint32_t deadline = CONFIG_TCP_CORE_STOP_DEADLINE_MS;
    const char *q = strstr(tc_http_req_query(req), "deadline_ms=");
    if (q) {
        unsigned long v = strtoul(q + 12, NULL, 10);
        if (v < 1 || v > TC_CONSOLE_OTA_DEADLINE_MAX_MS) {
            return tc_http_respond(req, 400, "text/plain", "deadline_ms: 1 to 600000\n", 25);
        }
        deadline = (uint32_t)v;
    }
    if (__atomic_load_n(&s_demo.prepared, __ATOMIC_SEQ_CST)) {
        return tc_http_respond(req, 409, "text/plain", "already prepared\n", 17);
    }
    if (xTaskCreate(ota_task, "tc_ota", 4096, (void *)(uintptr_t)deadline, 5, NULL) != pdPASS) {
        return tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
    }
    char body[96];
    int n = snprintf(body, sizeof(body), "stopping every server within %" PRIu32 " ms; the log shows the heap freed\n",
                     deadline);
    return tc_http_respond(req, 202, "text/plain", body, (size_t)n);
}

/* ---- an OTA upload pauses esp_http_server with the tcp_core services (seed 003, tc_app_ota_hooks_t) ---- */

#if CONFIG_DEMO_OTA_ENABLE && CONFIG_DEMO_HTTPD_ADAPTER
static void start_httpd(void);

static char s_httpd_pause_report[48]; /* one pause at a time (tc_app runs at most one) */

static void httpd_paused_on_loop(tc_loop_t *loop, void *user)
{
    (void)loop;
    tc_app_ota_paused(user, s_httpd_pause_report);
}

/* The stopping task: hand the result to the loop (the app waits for it, even when it is stopping itself). */
static void httpd_paused(esp_err_t err, const tc_httpd_stop_report_t *r, void *user)
{
    if (err == ESP_OK) {
        snprintf(s_httpd_pause_report, sizeof(s_httpd_pause_report), "httpd stopped in %" PRIu32 " ms (%" PRIu32
                 " sessions)", r->elapsed_ms, r->sessions);
    } else {
        snprintf(s_httpd_pause_report, sizeof(s_httpd_pause_report), "httpd not stopped: %s", esp_err_to_name(err));
    }
    while (tc_loop_post(s_demo.loop, httpd_paused_on_loop, user) == TC_ENOMEM) {
        vTaskDelay(pdMS_TO_TICKS(10));
    }
}

/* Loop thread: must not block, so the stop runs on a task of its own. */
static int httpd_pause(tc_app_t *app, uint32_t deadline_ms, void *user)
{
    (void)user;
    httpd_handle_t hd = __atomic_exchange_n(&s_demo.httpd, NULL, __ATOMIC_ACQ_REL);
    if (hd == NULL) {
        return TC_ECLOSED; /* not running (or the console's ota-prepare is stopping it) */
    }
    esp_err_t err = tc_httpd_stop_deadline_async(hd, deadline_ms, httpd_paused, app);
    if (err != ESP_OK) {
        __atomic_store_n(&s_demo.httpd, hd, __ATOMIC_RELEASE);
        return tc_esp_err_to_tc(err);
    }
    return TC_OK;
}

/* Loop thread: the upload failed; esp_http_server serves again (unless the console stopped everything for good). */
static void httpd_resume(tc_app_t *app, void *user)
{
    (void)app;
    (void)user;
    bool gone = __atomic_load_n(&s_demo.httpd, __ATOMIC_ACQUIRE) == NULL;
    if (gone && !__atomic_load_n(&s_demo.prepared, __ATOMIC_SEQ_CST)) {
        start_httpd();
    }
}
#endif

/* ---- the services, on the loop thread ---- */

#if CONFIG_DEMO_DNS_SERVER
static void start_dns(void)
{
    tc_dns_server_config_t dc = TC_DNS_SERVER_DEFAULT_CONFIG();
    /* Answer on the device's address only: the soft-AP's (never on the station side), or the Ethernet interface's. */
    dc.bind_ip = s_demo.device_ip;
    dc.port = 53;
    dc.answer_ip = s_demo.device_ip;
#if CONFIG_DEMO_CAPTIVE_MODE_ONLINE
    /* Windows' online check also resolves this name and compares the address. */
    static const tc_dns_override_t ncsi[] = {{.name = "dns.msftncsi.com", .ipv4 = {131, 107, 255, 255}}};
    dc.overrides = ncsi;
    dc.noverrides = 1;
#endif
    int rc = tc_dns_server_start(s_demo.loop, &dc, &s_demo.dns);
    if (tc_esp_check(rc, TAG, "DNS responder") == ESP_OK) {
        ESP_LOGI(TAG, "DNS responder on %s:53: every name is %s", s_demo.device_ip, s_demo.device_ip);
    }
}
#endif

static int start_services(void)
{
    tc_app_config_t ac = TC_APP_DEFAULT_CONFIG();
    ac.host = "0.0.0.0";
    ac.echo_port = CONFIG_DEMO_ECHO_PORT;
    ac.http_port = CONFIG_DEMO_HTTP_PORT;
    ac.http_max_conns = CONFIG_TCP_CORE_HTTP_MAX_CONNS;
    ac.http_idle_timeout_ms = CONFIG_TCP_CORE_HTTP_IDLE_TIMEOUT_MS;
    ac.http_head_timeout_ms = CONFIG_TCP_CORE_HTTP_HEAD_TIMEOUT_MS;
    ac.stream_fps = CONFIG_DEMO_STREAM_FPS;
#if CONFIG_DEMO_CLIENT_ENABLE
    ac.connect_host = CONFIG_DEMO_CLIENT_HOST;
    ac.connect_port = CONFIG_DEMO_CLIENT_PORT;
#endif
#if CONFIG_DEMO_OTA_ENABLE
    /* No password, no upload route: a default firmware that anyone on the network could flash is not a default. */
    tc_ota_sink_t ota_sink; /* copied by tc_app_start() */
    if (CONFIG_DEMO_OTA_PASSWORD[0] != '\0') {
        tc_ota_esp_sink_init(&ota_sink);
        ac.ota_sink = &ota_sink;
        ac.admin_user = "admin";
        ac.admin_pass = CONFIG_DEMO_OTA_PASSWORD;
    } else {
        ESP_LOGW(TAG, "firmware upload off: set an admin password (DEMO_OTA_PASSWORD) to turn on POST /api/ota");
    }
#if CONFIG_DEMO_HTTPD_ADAPTER
    ac.ota_hooks.pause = httpd_pause;
    ac.ota_hooks.resume = httpd_resume;
#endif
#endif
    int rc = tc_app_start(s_demo.loop, &ac, &s_demo.app);
    if (tc_esp_check(rc, TAG, "services") != ESP_OK) {
        return rc;
    }
#if CONFIG_DEMO_OTA_ENABLE
    /* The services run: a new image that got this far keeps its slot (no rollback at the next reset). */
    tc_esp_check(tc_ota_esp_mark_valid(), TAG, "marking the firmware valid");
#endif
    ESP_LOGI(TAG, "echo on port %u, HTTP on port %u (backend %s)", tc_app_echo_port(s_demo.app),
             tc_app_http_port(s_demo.app), tc_sock_backend());
    tc_http_t *http = tc_app_http(s_demo.app);
    tc_esp_check(tc_http_route(http, TC_HTTP_POST, "/api/ota-prepare", route_ota_prepare, NULL), TAG,
                 "route /api/ota-prepare");
#if CONFIG_DEMO_CAPTIVE_PORTAL
    if (s_demo.device_ip[0] == '\0') {
        /* Ethernet without an address yet (DHCP went on past start_eth()'s wait): nothing to point clients at. */
        ESP_LOGW(TAG, "no address for the captive portal: portal and DNS responder off");
        return TC_OK;
    }
    tc_captive_config_t cc = TC_CAPTIVE_DEFAULT_CONFIG();
#if CONFIG_DEMO_CAPTIVE_MODE_ONLINE
    cc.mode = TC_CAPTIVE_ONLINE;
#else
    cc.mode = TC_CAPTIVE_PORTAL;
#endif
    cc.portal_url = s_demo.portal_url;
    cc.device_host = s_demo.device_ip;
#if CONFIG_DEMO_ETH
    if (CONFIG_DEMO_CAPTIVE_DEVICE_HOST[0] != '\0') {
        cc.device_host = CONFIG_DEMO_CAPTIVE_DEVICE_HOST; /* behind a port forward: the address the clients use */
    }
#endif
    if (tc_esp_check(tc_captive_attach(http, &cc), TAG, "captive portal") == ESP_OK) {
        ESP_LOGI(TAG, "captive portal (%s mode) at %s, own Host %s",
                 cc.mode == TC_CAPTIVE_ONLINE ? "online" : "portal", cc.portal_url, cc.device_host);
    }
#if CONFIG_DEMO_DNS_SERVER
    start_dns();
#endif
#endif
    return TC_OK;
}

static void loop_task(void *arg)
{
    (void)arg;
    int rc = tc_loop_new(&s_demo.loop);
    if (rc == TC_OK) {
        rc = start_services();
    }
    s_demo.start_rc = rc;
    xSemaphoreGive(s_demo.ready);
    if (s_demo.loop == NULL) {
        vTaskDelete(NULL);
        return;
    }
    /* The loop outlives an OTA prepare: the console's `status` still reads its (then empty) registry. */
    rc = tc_loop_run(s_demo.loop);
    ESP_LOGE(TAG, "loop ended: %s", tc_strerror(rc));
    vTaskDelete(NULL);
}

/* ---- esp_http_server with the adapter (seed 003) ---- */

#if CONFIG_DEMO_HTTPD_ADAPTER
static esp_err_t httpd_index(httpd_req_t *req)
{
    return httpd_resp_sendstr(req, "esp_http_server with the tcp_core adapter: GET /stream\n");
}

/* The CameraWebServer loop, keeping the adapter's contract: begin, check every send, watch the stop, end. */
static esp_err_t httpd_stream(httpd_req_t *req)
{
    if (tc_httpd_stream_begin(req) != ESP_OK) {
        return ESP_FAIL; /* stopping */
    }
    esp_err_t err = httpd_resp_set_type(req, "multipart/x-mixed-replace;boundary=tcframe");
    for (uint32_t i = 0; err == ESP_OK && !tc_httpd_stream_stopping(req); i++) {
        const tc_demo_frame_t *f = &tc_demo_frames[i % TC_DEMO_FRAME_COUNT];
        char head[96];
        int n = snprintf(head, sizeof(head), "\r\n--tcframe\r\nContent-Type: image/jpeg\r\nContent-Length: %u\r\n\r\n",
                         (unsigned)f->len);
        err = httpd_resp_send_chunk(req, head, n);
        if (err == ESP_OK) {
            err = httpd_resp_send_chunk(req, (const char *)f->data, (ssize_t)f->len);
        }
        if (err == ESP_OK) {
            vTaskDelay(pdMS_TO_TICKS(1000 / CONFIG_DEMO_STREAM_FPS));
        }
    }
    tc_httpd_stream_end(req);
    if (err == ESP_OK) {
        err = httpd_resp_send_chunk(req, NULL, 0); /* ended by the stop flag: finish the chunked body */
    }
    return err == ESP_OK ? ESP_OK : ESP_FAIL; /* a failed send: the session is closed by the server */
}

static void start_httpd(void)
{
    httpd_config_t hc = HTTPD_DEFAULT_CONFIG();
    hc.server_port = CONFIG_DEMO_HTTPD_PORT;
    hc.max_open_sockets = CONFIG_DEMO_HTTPD_MAX_SOCKETS;
    hc.lru_purge_enable = true;
    hc.task_priority = DEMO_IO_TASK_PRIO;
    tc_httpd_adapter_config_t acfg = TC_HTTPD_ADAPTER_DEFAULT_CONFIG();
    acfg.loop = s_demo.loop;
    httpd_handle_t hd = NULL;
    esp_err_t err = tc_httpd_start(&hd, &hc, &acfg);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "esp_http_server: %s", esp_err_to_name(err));
        return;
    }
    const httpd_uri_t index = {.uri = "/", .method = HTTP_GET, .handler = httpd_index};
    const httpd_uri_t stream = {.uri = "/stream", .method = HTTP_GET, .handler = httpd_stream};
    httpd_register_uri_handler(hd, &index);
    httpd_register_uri_handler(hd, &stream);
    __atomic_store_n(&s_demo.httpd, hd, __ATOMIC_RELEASE); /* published with its handlers */
    ESP_LOGI(TAG, "esp_http_server (tcp_core adapter) on port %d: /, /stream", CONFIG_DEMO_HTTPD_PORT);
}
#endif

/* ---- console ---- */

#if CONFIG_DEMO_CONSOLE
#if CONFIG_DEMO_WIFI
static int console_wifi(const char *ssid, const char *password, void *user)
{
    (void)user;
    return tc_esp_err_to_tc(tc_wifi_set_credentials(ssid, password));
}
#endif

#if !CONFIG_IDF_TARGET_LINUX
/* The loop task's stack: the least it has had free since it started (uxTaskGetStackHighWaterMark, bytes on ESP-IDF). */
static int stack_line(char *buf, size_t cap)
{
    unsigned never = s_demo.loop_task ? (unsigned)uxTaskGetStackHighWaterMark(s_demo.loop_task) : 0;
    return snprintf(buf, cap, "loop task stack: %u of %u bytes never used\n", never, (unsigned)DEMO_LOOP_STACK);
}
#endif

static int console_info(char *buf, size_t cap, void *user)
{
    (void)user;
#if CONFIG_IDF_TARGET_LINUX
    return snprintf(buf, cap, "wifi: none (linux target)\n%s", s_demo.prepared ? "ota: prepared\n" : "");
#elif CONFIG_DEMO_ETH
    int n = demo_eth_describe(buf, cap);
    if (n < 0 || (size_t)n >= cap) {
        return n;
    }
    n += snprintf(buf + n, cap - (size_t)n, "heap: %" PRIu32 " bytes free, %" PRIu32 " at least\n%s",
                  esp_get_free_heap_size(), esp_get_minimum_free_heap_size(), s_demo.prepared ? "ota: prepared\n" : "");
    return (size_t)n >= cap ? n : n + stack_line(buf + n, cap - (size_t)n);
#else
    tc_wifi_status_t ws;
    tc_wifi_status(&ws);
    char sta[32], ap[32];
    snprintf(sta, sizeof(sta), IPSTR, IP2STR(&ws.sta_ip));
    snprintf(ap, sizeof(ap), IPSTR, IP2STR(&ws.ap_ip));
    int n = snprintf(buf, cap,
                     "wifi: station \"%s\" %s %s rssi %d dBm, failed attempts %" PRIu32 ", reconnects %" PRIu32
                     "; soft-AP %s with %u clients\nheap: %" PRIu32 " bytes free, %" PRIu32 " at least\n%s",
                     ws.sta_ssid, ws.sta_connected ? "connected" : "not connected", ws.sta_has_ip ? sta : "-",
                     ws.sta_rssi, ws.sta_attempt, ws.sta_reconnects, ws.ap_ip.addr ? ap : "off",
                     (unsigned)ws.ap_clients, esp_get_free_heap_size(), esp_get_minimum_free_heap_size(),
                     s_demo.prepared ? "ota: prepared\n" : "");
    return n < 0 || (size_t)n >= cap ? n : n + stack_line(buf + n, cap - (size_t)n);
#endif
}

/* Loop thread: the upload's progress line (s_demo.app is the loop's). */
static int console_ota(char *buf, size_t cap, void *user)
{
    (void)user;
    if (s_demo.app == NULL) {
        return snprintf(buf, cap, "ota: the services are stopped (ota-prepare)\n");
    }
    return tc_app_console_ota(buf, cap, s_demo.app);
}

static void start_console(void)
{
    tc_console_config_t cc = TC_CONSOLE_DEFAULT_CONFIG();
    cc.loop = s_demo.loop;
#if CONFIG_DEMO_WIFI
    cc.wifi = console_wifi;
#endif
    cc.ota_prepare = ota_prepare;
    cc.info = console_info;
    cc.ota = console_ota;
    esp_err_t err = tc_esp_console_start(&cc);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "console: %s", esp_err_to_name(err));
    }
}
#endif /* CONFIG_DEMO_CONSOLE */

/* ---- the network: Wi-Fi or Ethernet (chips) ---- */

#if CONFIG_DEMO_WIFI
static void wifi_event(tc_wifi_event_t ev, const tc_wifi_event_data_t *d, void *user)
{
    (void)user;
    switch (ev) {
    case TC_WIFI_EV_STA_GOT_IP:
        ESP_LOGI(TAG, "station up: http://" IPSTR ":%d/", IP2STR(&d->ip), CONFIG_DEMO_HTTP_PORT);
        break;
    case TC_WIFI_EV_STA_GAVE_UP:
        ESP_LOGW(TAG, "station gave up after %" PRIu32 " attempts; `wifi <ssid> <password>` to retry", d->attempt);
        break;
    case TC_WIFI_EV_AP_CLIENT_IP:
        ESP_LOGI(TAG, "soft-AP client " IPSTR " joined", IP2STR(&d->ip));
        break;
    default:
        break;
    }
}

static void start_wifi(void)
{
    tc_wifi_config_t wc = TC_WIFI_DEFAULT_CONFIG();
#if CONFIG_DEMO_WIFI_STA
    wc.mode = TC_WIFI_MODE_STA;
#elif CONFIG_DEMO_WIFI_AP
    wc.mode = TC_WIFI_MODE_AP;
#else
    wc.mode = TC_WIFI_MODE_APSTA;
#endif
#if CONFIG_DEMO_CAPTIVE_PORTAL
    wc.ap_dns_is_device = true;
#if CONFIG_DEMO_DHCP_CAPTIVE_URI && ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 4, 0)
    wc.ap_captive_uri = s_demo.portal_url;
#endif
#endif
    wc.cb = wifi_event;
    esp_err_t err = tc_wifi_start(&wc);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Wi-Fi: %s", esp_err_to_name(err));
        return;
    }
    esp_netif_t *ap = tc_wifi_ap_netif();
    esp_netif_ip_info_t ip;
    if (ap && esp_netif_get_ip_info(ap, &ip) == ESP_OK) {
        char have[16];
        snprintf(have, sizeof(have), IPSTR, IP2STR(&ip.ip));
        if (strcmp(have, DEMO_AP_IP) != 0) {
            ESP_LOGW(TAG, "soft-AP address %s is not %s: the portal URL and probe answers point elsewhere", have,
                     DEMO_AP_IP);
        }
    }
    if (wc.mode != TC_WIFI_MODE_AP) {
        /* The services listen on 0.0.0.0 and serve any address that comes later: waiting only tells the user. */
        err = tc_wifi_wait_ip(CONFIG_TCP_CORE_WIFI_STA_TIMEOUT_MS, NULL);
        if (err != ESP_OK) {
            ESP_LOGW(TAG, "no station address after %d ms (%s); still trying in the background",
                     CONFIG_TCP_CORE_WIFI_STA_TIMEOUT_MS, esp_err_to_name(err));
        }
    }
}
#endif

#if CONFIG_DEMO_ETH
static void start_eth(void)
{
    if (demo_eth_start() != ESP_OK) {
        return;
    }
    /* As on Wi-Fi, the services serve any address that comes later: waiting only tells the user. */
    if (demo_eth_wait_ip(10000) != ESP_OK) {
        ESP_LOGW(TAG, "no Ethernet address after 10 s; DHCP goes on in the background");
    }
}
#endif

#if CONFIG_DEMO_CAPTIVE_PORTAL
/* The captive portal's address: its URL, the device's own Host, the DNS responder's address and answer. */
static void set_device_ip(const char *ip)
{
    snprintf(s_demo.device_ip, sizeof(s_demo.device_ip), "%s", ip);
    if (CONFIG_DEMO_HTTP_PORT == 80) {
        snprintf(s_demo.portal_url, sizeof(s_demo.portal_url), "http://%s/", ip);
    } else {
        snprintf(s_demo.portal_url, sizeof(s_demo.portal_url), "http://%s:%d/", ip, CONFIG_DEMO_HTTP_PORT);
    }
}
#endif

/* ---- lwIP's socket budget ---- */

/* The most sockets the demo's services hold at once: every listener, every connection up to its server's limit
 * plus the newcomers a full server is still turning away (the echo server's one RST, the HTTP server's overflow_max
 * of TC_HTTP_DEFAULT_CONFIG(), 2, answered 503), the loop's wake-up pair (two UDP sockets), the
 * DNS responder, the client, and esp_http_server's max_open_sockets + 3. Connections that are closing (lingering
 * for the peer's FIN, at most CONFIG_TCP_CORE_LINGER_MS) come on top under churn: leave some room. */
static void check_sockets(void)
{
    uint32_t n = 2 + (TC_CFG_MAX_CONNS + 1) + (CONFIG_TCP_CORE_HTTP_MAX_CONNS + 2) + 2;
    char what[160];
    int len = snprintf(what, sizeof(what), "2 listeners, echo %d+1, HTTP %d+2, wake-up pair 2", TC_CFG_MAX_CONNS,
                       CONFIG_TCP_CORE_HTTP_MAX_CONNS);
#if CONFIG_DEMO_DNS_SERVER
    n += 1;
    len += snprintf(what + len, sizeof(what) - (size_t)len, ", DNS 1");
#endif
#if CONFIG_DEMO_CLIENT_ENABLE
    n += 1;
    len += snprintf(what + len, sizeof(what) - (size_t)len, ", client 1");
#endif
#if CONFIG_DEMO_HTTPD_ADAPTER
    n += CONFIG_DEMO_HTTPD_MAX_SOCKETS + 3;
    len += snprintf(what + len, sizeof(what) - (size_t)len, ", esp_http_server %d+3", CONFIG_DEMO_HTTPD_MAX_SOCKETS);
#endif
    (void)len;
    tc_esp_check_socket_budget(n, what);
}

void app_main(void)
{
#if CONFIG_IDF_TARGET_LINUX
    /* esp_http_server sends without MSG_NOSIGNAL: on the host a peer that left would kill the process. */
    signal(SIGPIPE, SIG_IGN);
#endif
#if CONFIG_DEMO_WIFI
    /* Wi-Fi keeps its calibration and the console's station credentials in NVS. */
    esp_err_t err = nvs_flash_init();
    if (err == ESP_ERR_NVS_NO_FREE_PAGES || err == ESP_ERR_NVS_NEW_VERSION_FOUND) {
        /* A demo may start over: the partition was written by another layout or firmware. */
        ESP_ERROR_CHECK(nvs_flash_erase());
        err = nvs_flash_init();
    }
    ESP_ERROR_CHECK(err);
#endif
    /* esp_http_server posts its events to the default loop (and complains without one); tc_wifi needs it too. */
    esp_err_t ev = esp_event_loop_create_default();
    if (ev != ESP_OK && ev != ESP_ERR_INVALID_STATE) {
        ESP_LOGE(TAG, "default event loop: %s", esp_err_to_name(ev));
    }
#if CONFIG_DEMO_CAPTIVE_PORTAL && CONFIG_DEMO_WIFI
    set_device_ip(DEMO_AP_IP); /* before the soft-AP starts: its DHCP server announces the portal URL */
#endif
    check_sockets();
#if CONFIG_DEMO_WIFI
    start_wifi();
#elif CONFIG_DEMO_ETH
    start_eth();
#if CONFIG_DEMO_CAPTIVE_PORTAL
    char eth_ip[16];
    if (demo_eth_ip(eth_ip, sizeof(eth_ip))) {
        set_device_ip(eth_ip);
    }
#endif
#endif
    s_demo.ready = xSemaphoreCreateBinary();
    if (s_demo.ready == NULL ||
        xTaskCreate(loop_task, "tc_loop", DEMO_LOOP_STACK, NULL, DEMO_IO_TASK_PRIO, &s_demo.loop_task) != pdPASS) {
        ESP_LOGE(TAG, "cannot start the loop task");
        return;
    }
    xSemaphoreTake(s_demo.ready, portMAX_DELAY);
    if (s_demo.start_rc != TC_OK) {
        ESP_LOGE(TAG, "services failed: %s", tc_strerror(s_demo.start_rc));
        if (s_demo.loop == NULL) {
            return;
        }
    }
#if CONFIG_DEMO_HTTPD_ADAPTER
    start_httpd();
#endif
#if CONFIG_DEMO_CONSOLE
    start_console();
#endif
}
