/*
 * esp/tc_httpd_adapter.c - esp_http_server sessions in the tcp_core registry and a stop that keeps its deadline
 * (see tc_httpd_adapter.h).
 *
 * The session table is shared by the server task (open_fn, close_fn, stream marks) and the stopping task, under
 * one mutex. The stopping task shuts sockets down only under that mutex and only for sessions whose close has not
 * begun: close_fn marks a session closing under the mutex before the descriptor is closed, so a shutdown can never
 * reach a closed descriptor whose number another task's new socket (the tcp_core loop's, say) already reuses.
 */
#include "tc_httpd_adapter.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "esp_log.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "sdkconfig.h"
#include "tc_err.h"
#include "tc_esp.h"
#include "tc_registry.h"
#include "tc_registry_ext.h"
#include "tc_sock.h"

#define TAG TC_ESP_TAG_HTTPD

#define ADAPTER_MAGIC 0x74636861u /* "tcha": a global_user_ctx that is really an adapter */
#define POLL_MS 10

#ifdef CONFIG_TCP_CORE_STOP_DEADLINE_MS
#define DEFAULT_DEADLINE_MS CONFIG_TCP_CORE_STOP_DEADLINE_MS
#else
#define DEFAULT_DEADLINE_MS 3000
#endif

typedef struct {
    int fd;          /* -1: free slot */
    bool streaming;
    bool shut;       /* the stopping task shut it down */
    bool closing;    /* close_fn began: never touch fd again */
    tc_ext_sock_t *ext;
} sess_t;

typedef struct {
    uint32_t magic;
    SemaphoreHandle_t mu;
    sess_t *sess;
    uint16_t cap;
    tc_loop_t *loop;
    const char *owner;
    httpd_open_func_t app_open;
    httpd_close_func_t app_close;
    void *app_ctx;
    httpd_free_ctx_fn_t app_ctx_free;
    TaskHandle_t server_task; /* learnt in open_fn */
    int stopping;             /* atomic: set by the first stop, never cleared */
    int stop_busy;            /* atomic: a tc_httpd_stop_deadline() call is running */
    int ping_done;            /* atomic: the no-op work item ran on the server task */
} adapter_t;

static adapter_t *adapter_of(httpd_handle_t hd)
{
    adapter_t *a = hd ? httpd_get_global_user_ctx(hd) : NULL;
    return a && a->magic == ADAPTER_MAGIC ? a : NULL;
}

static sess_t *find(adapter_t *a, int fd)
{
    for (uint16_t i = 0; i < a->cap; i++) {
        if (a->sess[i].fd == fd && !a->sess[i].closing) {
            return &a->sess[i];
        }
    }
    return NULL;
}

static uint32_t count_open(adapter_t *a)
{
    uint32_t n = 0;
    xSemaphoreTake(a->mu, portMAX_DELAY);
    for (uint16_t i = 0; i < a->cap; i++) {
        n += a->sess[i].fd >= 0;
    }
    xSemaphoreGive(a->mu);
    return n;
}

/* ---- esp_http_server callbacks (server task) ---- */

static esp_err_t adapter_open(httpd_handle_t hd, int fd)
{
    adapter_t *a = adapter_of(hd);
    if (a == NULL) {
        return ESP_FAIL;
    }
    a->server_task = xTaskGetCurrentTaskHandle();
    if (__atomic_load_n(&a->stopping, __ATOMIC_ACQUIRE)) {
        return ESP_FAIL; /* the server deletes the session; close_fn closes the socket */
    }
    xSemaphoreTake(a->mu, portMAX_DELAY);
    sess_t *s = find(a, -1);
    if (s) {
        s->fd = fd;
        s->streaming = s->shut = s->closing = false;
        s->ext = NULL;
    }
    xSemaphoreGive(a->mu);
    if (s == NULL) {
        ESP_LOGE(TAG, "session table full (fd %d)", fd); /* cannot happen: sized by max_open_sockets */
        return ESP_FAIL;
    }
    if (a->loop && tc_ext_sock_open(a->loop, fd, a->owner, &s->ext) != 0) {
        s->ext = NULL; /* out of memory: the session works, it is only not listed */
    }
    return a->app_open ? a->app_open(hd, fd) : ESP_OK;
}

static void adapter_close(httpd_handle_t hd, int fd)
{
    adapter_t *a = adapter_of(hd);
    sess_t *s = NULL;
    if (a) {
        xSemaphoreTake(a->mu, portMAX_DELAY);
        s = find(a, fd);
        if (s) {
            s->closing = true; /* from here on the stopping task leaves this descriptor alone */
        }
        xSemaphoreGive(a->mu);
        if (s && s->ext) {
            tc_ext_sock_close(s->ext); /* before the socket is closed, as tc_registry_ext.h asks */
            s->ext = NULL;
        }
    }
    /* esp_http_server closes the socket only when no close_fn is set: with ours set, one of us must. */
    if (a && a->app_close) {
        a->app_close(hd, fd);
    } else {
        close(fd);
    }
    if (s) {
        xSemaphoreTake(a->mu, portMAX_DELAY);
        s->fd = -1;
        s->closing = false;
        xSemaphoreGive(a->mu);
    }
}

static void adapter_free(void *ctx)
{
    adapter_t *a = ctx;
    if (a->app_ctx) {
        if (a->app_ctx_free) {
            a->app_ctx_free(a->app_ctx);
        } else {
            free(a->app_ctx); /* what esp_http_server does with a context that has no free function */
        }
    }
    a->magic = 0;
    vSemaphoreDelete(a->mu);
    free(a->sess);
    free(a);
}

static void ping_work(void *arg)
{
    adapter_t *a = arg;
    __atomic_store_n(&a->ping_done, 1, __ATOMIC_RELEASE);
}

/* ---- public ---- */

esp_err_t tc_httpd_start(httpd_handle_t *handle, const httpd_config_t *config, const tc_httpd_adapter_config_t *acfg)
{
    if (handle == NULL || config == NULL || config->max_open_sockets == 0) {
        return ESP_ERR_INVALID_ARG;
    }
    tc_httpd_adapter_config_t defaults = TC_HTTPD_ADAPTER_DEFAULT_CONFIG();
    if (acfg == NULL) {
        acfg = &defaults;
    }
    adapter_t *a = calloc(1, sizeof(*a));
    sess_t *sess = calloc(config->max_open_sockets, sizeof(*sess));
    SemaphoreHandle_t mu = xSemaphoreCreateMutex();
    if (a == NULL || sess == NULL || mu == NULL) {
        free(a);
        free(sess);
        if (mu) {
            vSemaphoreDelete(mu);
        }
        return ESP_ERR_NO_MEM;
    }
    for (uint16_t i = 0; i < config->max_open_sockets; i++) {
        sess[i].fd = -1;
    }
    a->magic = ADAPTER_MAGIC;
    a->mu = mu;
    a->sess = sess;
    a->cap = config->max_open_sockets;
    a->loop = acfg->loop;
    a->owner = acfg->owner ? acfg->owner : "httpd";
    a->app_open = config->open_fn;
    a->app_close = config->close_fn;
    a->app_ctx = config->global_user_ctx;
    a->app_ctx_free = config->global_user_ctx_free_fn;

    httpd_config_t hc = *config;
    hc.open_fn = adapter_open;
    hc.close_fn = adapter_close;
    hc.global_user_ctx = a;
    hc.global_user_ctx_free_fn = adapter_free;
    esp_err_t err = httpd_start(handle, &hc);
    if (err != ESP_OK) {
        /* httpd_start() frees nothing of the context on failure: the application keeps its own. */
        a->app_ctx = NULL;
        adapter_free(a);
    }
    return err;
}

void *tc_httpd_user_ctx(httpd_handle_t handle)
{
    adapter_t *a = adapter_of(handle);
    return a ? a->app_ctx : NULL;
}

esp_err_t tc_httpd_stream_begin(httpd_req_t *req)
{
    adapter_t *a = req ? adapter_of(req->handle) : NULL;
    if (a == NULL) {
        return ESP_ERR_NOT_FOUND;
    }
    if (__atomic_load_n(&a->stopping, __ATOMIC_ACQUIRE)) {
        return ESP_ERR_INVALID_STATE;
    }
    int fd = httpd_req_to_sockfd(req);
    xSemaphoreTake(a->mu, portMAX_DELAY);
    sess_t *s = find(a, fd);
    if (s) {
        s->streaming = true;
    }
    xSemaphoreGive(a->mu);
    if (s == NULL) {
        return ESP_ERR_NOT_FOUND;
    }
    tc_ext_sock_set_flags(s->ext, TC_REG_FLAG_STREAMING, 0);
    /* A stop that began between the check above and the mark has already passed this session by. */
    return __atomic_load_n(&a->stopping, __ATOMIC_ACQUIRE) ? ESP_ERR_INVALID_STATE : ESP_OK;
}

bool tc_httpd_stream_stopping(httpd_req_t *req)
{
    adapter_t *a = req ? adapter_of(req->handle) : NULL;
    return a && __atomic_load_n(&a->stopping, __ATOMIC_ACQUIRE);
}

void tc_httpd_stream_end(httpd_req_t *req)
{
    adapter_t *a = req ? adapter_of(req->handle) : NULL;
    if (a == NULL) {
        return;
    }
    int fd = httpd_req_to_sockfd(req);
    xSemaphoreTake(a->mu, portMAX_DELAY);
    sess_t *s = find(a, fd);
    if (s) {
        s->streaming = false;
    }
    xSemaphoreGive(a->mu);
    if (s) {
        tc_ext_sock_set_flags(s->ext, 0, TC_REG_FLAG_STREAMING);
    }
}

/* Shut down the sockets of open sessions (only streaming ones, or all), under the mutex: see the file comment. */
static uint32_t shut_sessions(adapter_t *a, bool streaming_only)
{
    uint32_t n = 0;
    xSemaphoreTake(a->mu, portMAX_DELAY);
    for (uint16_t i = 0; i < a->cap; i++) {
        sess_t *s = &a->sess[i];
        if (s->fd < 0 || s->closing || s->shut || (streaming_only && !s->streaming)) {
            continue;
        }
        int rc = tc_sock_shutdown_both(s->fd);
        s->shut = true;
        n++;
        if (rc < 0) {
            ESP_LOGW(TAG, "shutdown fd %d: %s", s->fd, tc_err_name(rc)); /* e.g. the peer already reset it */
        }
    }
    xSemaphoreGive(a->mu);
    return n;
}

static void sleep_ms(uint32_t ms)
{
    TickType_t t = pdMS_TO_TICKS(ms);
    vTaskDelay(t ? t : 1);
}

/* Queue a no-op work item and wait until the server task has run it, or until end; at `half`, shut down every
 * session's socket (a handler blocked on a socket that is not a marked stream). @return true when it ran. */
static bool ping_wait(adapter_t *a, httpd_handle_t handle, uint64_t end, uint64_t half, tc_httpd_stop_report_t *rep)
{
    __atomic_store_n(&a->ping_done, 0, __ATOMIC_RELEASE);
    bool queued = false;
    for (;;) {
        if (!queued) {
            /* Fails while the control queue is full (the task is busy): retried every POLL_MS. With
             * CONFIG_HTTPD_QUEUE_WORK_BLOCKING it would wait for room instead, which a stuck task never makes: leave
             * that option off with this adapter. */
            queued = httpd_queue_work(handle, ping_work, a) == ESP_OK;
        }
        if (queued && __atomic_load_n(&a->ping_done, __ATOMIC_ACQUIRE)) {
            return true;
        }
        uint64_t now = tc_now_ms();
        if (now >= end) {
            return false;
        }
        if (now >= half) {
            half = UINT64_MAX;
            rep->forced += shut_sessions(a, false);
        }
        sleep_ms(POLL_MS);
    }
}

esp_err_t tc_httpd_stop_deadline(httpd_handle_t handle, uint32_t deadline_ms, tc_httpd_stop_report_t *report)
{
    tc_httpd_stop_report_t rep;
    memset(&rep, 0, sizeof(rep));
    if (report) {
        *report = rep;
    }
    adapter_t *a = adapter_of(handle);
    if (a == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (a->server_task != NULL && a->server_task == xTaskGetCurrentTaskHandle()) {
        ESP_LOGE(TAG, "tc_httpd_stop_deadline() on the server's own task: a handler cannot wait for itself");
        return ESP_ERR_INVALID_STATE;
    }
    int expected = 0;
    if (!__atomic_compare_exchange_n(&a->stop_busy, &expected, 1, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return ESP_ERR_INVALID_STATE;
    }
    __atomic_store_n(&a->stopping, 1, __ATOMIC_RELEASE);
    if (deadline_ms == 0) {
        deadline_ms = DEFAULT_DEADLINE_MS;
    }
    uint64_t t0 = tc_now_ms();
    uint64_t end = t0 + deadline_ms;
    uint64_t half = t0 + deadline_ms / 2;

    /* Step 2: the streams first; their handlers see their next send fail. */
    xSemaphoreTake(a->mu, portMAX_DELAY);
    for (uint16_t i = 0; i < a->cap; i++) {
        rep.sessions += a->sess[i].fd >= 0;
        rep.streams += a->sess[i].fd >= 0 && a->sess[i].streaming;
    }
    xSemaphoreGive(a->mu);
    rep.streams_shut = shut_sessions(a, true);

    /* Step 3: wait for proof that the server task is back in its loop. */
    if (!ping_wait(a, handle, end, half, &rep)) {
        rep.elapsed_ms = (uint32_t)(tc_now_ms() - t0);
        rep.left_open = count_open(a);
        ESP_LOGE(TAG, "stop: a handler still runs after %u ms (%u of %u sessions open): httpd_stop() not called; "
                 "see the stream handler contract in tc_httpd_adapter.h",
                 (unsigned)rep.elapsed_ms, (unsigned)rep.left_open, (unsigned)rep.sessions);
        if (report) {
            *report = rep;
        }
        __atomic_store_n(&a->stop_busy, 0, __ATOMIC_RELEASE); /* the caller may try again, or reboot */
        return ESP_ERR_TIMEOUT;
    }

    /* Step 4: the task is free, so queued closes are served at once (a trigger fails with ESP_FAIL while the
     * control queue is full, ESP_ERR_NOT_FOUND if the session just closed; httpd_stop() closes what is left).
     * Descriptors are copied out in small batches: the mutex is never held across esp_http_server calls, since the
     * server task takes it in close_fn. */
    for (uint16_t i = 0; i < a->cap;) {
        int fds[8];
        uint32_t n = 0;
        xSemaphoreTake(a->mu, portMAX_DELAY);
        for (; i < a->cap && n < sizeof(fds) / sizeof(fds[0]); i++) {
            if (a->sess[i].fd >= 0 && !a->sess[i].closing) {
                fds[n++] = a->sess[i].fd;
            }
        }
        xSemaphoreGive(a->mu);
        for (uint32_t k = 0; k < n; k++) {
            rep.closes_triggered += httpd_sess_trigger_close(handle, fds[k]) == ESP_OK;
        }
    }
    /* A second work item runs after every close queued before it: the control queue is then empty, so
     * httpd_stop()'s own message cannot be lost to a full queue (ESP-IDF releases without the queue semaphore drop
     * it silently, and httpd_stop() would wait forever). Past the deadline, stop anyway: the task is free. */
    if (rep.closes_triggered > 0) {
        (void)ping_wait(a, handle, end, UINT64_MAX, &rep);
    }
    rep.left_open = count_open(a);
    esp_err_t err = httpd_stop(handle); /* frees the adapter (global_user_ctx_free_fn): a is gone after this */
    rep.elapsed_ms = (uint32_t)(tc_now_ms() - t0);
    rep.server_stopped = err == ESP_OK;
    ESP_LOGI(TAG, "stopped in %u ms: %u sessions, %u streams (%u shut down), %u forced, %u closes triggered, %u "
             "left to httpd_stop()",
             (unsigned)rep.elapsed_ms, (unsigned)rep.sessions, (unsigned)rep.streams, (unsigned)rep.streams_shut,
             (unsigned)rep.forced, (unsigned)rep.closes_triggered, (unsigned)rep.left_open);
    if (report) {
        *report = rep;
    }
    return err;
}

/* ---- the same stop from a task of its own (for the tcp_core loop, which must not block) ---- */

typedef struct {
    httpd_handle_t handle;
    uint32_t deadline_ms;
    tc_httpd_stopped_cb done;
    void *user;
} async_stop_t;

static void async_stop_task(void *arg)
{
    async_stop_t *s = arg;
    tc_httpd_stop_report_t rep;
    esp_err_t err = tc_httpd_stop_deadline(s->handle, s->deadline_ms, &rep);
    s->done(err, &rep, s->user);
    free(s);
    vTaskDelete(NULL);
}

esp_err_t tc_httpd_stop_deadline_async(httpd_handle_t handle, uint32_t deadline_ms, tc_httpd_stopped_cb done,
                                       void *user)
{
    if (adapter_of(handle) == NULL || done == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    async_stop_t *s = malloc(sizeof(*s));
    if (s == NULL) {
        return ESP_ERR_NO_MEM;
    }
    s->handle = handle;
    s->deadline_ms = deadline_ms;
    s->done = done;
    s->user = user;
    /* The stopping task waits in semaphores and vTaskDelay; the server task's priority lets it be served promptly. */
    if (xTaskCreate(async_stop_task, "tc_httpd_stop", 3072, s, tskIDLE_PRIORITY + 5, NULL) != pdPASS) {
        free(s);
        return ESP_ERR_NO_MEM;
    }
    return ESP_OK;
}
