/*
 * test_app_ota.c - the app's OTA pause of services it does not own (tc_app_ota_hooks_t: esp_http_server on the
 * chip), driven over a real loopback socket: the upload waits for the hook's report, a failure before the report
 * resumes only after it, an app stop waits for a pause in flight, a hook that cannot pause does not block the
 * upload; the heap is back to its baseline after each case.
 *
 *     C=components/tcp_core; gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src \
 *       -I$C/port/os/posix host_tests/c/test_app_ota.c <core and linux backend sources> -lpthread
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_app.h"
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_loop.h"
#include "tc_ota.h"
#include "tc_check.h"
#include "tc_loop_thread.h"

static tc_app_t *g_app;
static uint16_t g_http;
static char g_dir[64];

/* The hooks' record: written on the loop thread, read by the test through on_loop(). */
static int g_pauses, g_resumes, g_pause_rc;
static int g_stopped;

static int hook_pause(tc_app_t *app, uint32_t deadline_ms, void *user)
{
    (void)app;
    (void)deadline_ms;
    (void)user;
    g_pauses++;
    return g_pause_rc; /* the report comes later, from the test (as from the chip's stopping task) */
}

static void hook_resume(tc_app_t *app, void *user)
{
    (void)app;
    (void)user;
    g_resumes++;
}

static void app_start_fn(void *arg)
{
    (void)arg;
    tc_app_config_t ac = TC_APP_DEFAULT_CONFIG();
    ac.host = "127.0.0.1";
    ac.echo_port = TC_APP_OFF;
    ac.http_port = 0;
    ac.ota_dir = g_dir;
    ac.ota_hooks.pause = hook_pause;
    ac.ota_hooks.resume = hook_resume;
    int rc = tc_app_start(g_loop, &ac, &g_app);
    CHECK(rc == TC_OK, "tc_app_start: %s", tc_err_name(rc));
    g_http = tc_app_http_port(g_app);
}

static void report_paused_fn(void *arg)
{
    tc_app_ota_paused(g_app, arg);
}

static void app_done(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    (void)r;
    (void)user;
    g_stopped = 1;
}

static void app_stop_fn(void *arg)
{
    (void)arg;
    CHECK(tc_handle_stop(tc_app_handle(g_app), 500, app_done, NULL) == TC_OK, "tc_handle_stop");
}

typedef struct {
    char json[1024];
    int pauses, resumes, stopped;
    size_t heap;
} snap_t;

static void snap_fn(void *arg)
{
    snap_t *s = arg;
    s->json[0] = '\0';
    if (!g_stopped && tc_app_ota(g_app)) {
        tc_ota_status_json(tc_app_ota(g_app), s->json, sizeof(s->json));
    }
    s->pauses = g_pauses;
    s->resumes = g_resumes;
    s->stopped = g_stopped;
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    s->heap = st.bytes_in_use;
}

static snap_t snap(void)
{
    snap_t s;
    on_loop(snap_fn, &s);
    return s;
}

/* Wait (bounded: 10 s) until the OTA status holds text. */
static int wait_status(const char *text)
{
    for (int i = 0; i < 1000; i++) {
        if (strstr(snap().json, text)) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

/* An upload of a 100,000-byte image of which the head and the first 2,000 bytes are sent. */
static int upload_open(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_http)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to the HTTP service");
    const char head[] = "POST /api/ota HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n";
    CHECK(send(fd, head, sizeof(head) - 1, 0) == (ssize_t)(sizeof(head) - 1), "send head");
    static char body[2000];
    memset(body, 0x5A, sizeof(body));
    body[0] = (char)TC_OTA_IMAGE_MAGIC;
    CHECK(send(fd, body, sizeof(body), 0) == (ssize_t)sizeof(body), "send body");
    return fd;
}

/* The heap once the cut connection has been freed (it may linger for the client's FIN a moment). */
static int heap_back_to(size_t base)
{
    for (int i = 0; i < 1000; i++) {
        if (snap().heap == base) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/tc_app_ota_XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp");
    loop_open();
    on_loop(app_start_fn, NULL);
    /* Warm-up: one upload through every stage, so the loop's arrays have grown before the baseline. */
    int fd = upload_open();
    CHECK(wait_status("\"state\":\"preparing\""), "warm-up: not preparing: %s", snap().json);
    on_loop(report_paused_fn, "warm");
    CHECK(wait_status("\"state\":\"receiving\""), "warm-up: not receiving");
    close(fd);
    CHECK(wait_status("\"state\":\"idle\""), "warm-up: not idle");
    size_t base = snap().heap;
    int resumes = snap().resumes;

    /* 1. The upload waits for the hook's report; then it writes, and the report shows in the status. */
    fd = upload_open();
    CHECK(wait_status("\"state\":\"preparing\""), "1: not preparing");
    usleep(100000);
    CHECK(strstr(snap().json, "\"state\":\"preparing\"") != NULL, "1: wrote before the hook reported: %s",
          snap().json);
    on_loop(report_paused_fn, "httpd stopped in 7 ms");
    CHECK(wait_status("\"state\":\"receiving\""), "1: not receiving after the report");
    CHECK(strstr(snap().json, "httpd stopped in 7 ms") != NULL, "1: report missing: %s", snap().json);
    close(fd);
    CHECK(wait_status("\"state\":\"idle\""), "1: not idle after the cut");
    CHECK(snap().resumes == resumes + 1, "1: resumed %d times, want 1", snap().resumes - resumes);
    CHECK(heap_back_to(base), "1: heap %zu, baseline %zu", snap().heap, base);
    resumes = snap().resumes;

    /* 2. The upload fails before the hook reported: resume only once it has. */
    fd = upload_open();
    CHECK(wait_status("\"state\":\"preparing\""), "2: not preparing");
    close(fd);
    CHECK(wait_status("\"state\":\"idle\""), "2: not idle after the cut");
    usleep(50000);
    CHECK(snap().resumes == resumes, "2: resumed before the pause was reported");
    on_loop(report_paused_fn, "late");
    CHECK(snap().resumes == resumes + 1, "2: not resumed after the report");
    CHECK(heap_back_to(base), "2: heap %zu, baseline %zu", snap().heap, base);
    resumes = snap().resumes;

    /* 3. A hook that cannot pause does not hold the upload. */
    g_pause_rc = TC_ECLOSED;
    int pauses = snap().pauses;
    fd = upload_open();
    CHECK(wait_status("\"state\":\"receiving\""), "3: not receiving: %s", snap().json);
    CHECK(strstr(snap().json, "extras could not pause") != NULL, "3: %s", snap().json);
    CHECK(snap().pauses == pauses + 1, "3: pause not asked");
    close(fd);
    CHECK(wait_status("\"state\":\"idle\""), "3: not idle");
    CHECK(snap().resumes == resumes, "3: resumed a hook that never paused");
    CHECK(heap_back_to(base), "3: heap %zu, baseline %zu", snap().heap, base);
    g_pause_rc = TC_OK;

    /* 4. The app stops while the hook is still pausing: the stop finishes only after the report. */
    fd = upload_open();
    CHECK(wait_status("\"state\":\"preparing\""), "4: not preparing");
    on_loop(app_stop_fn, NULL);
    usleep(700000); /* past the stop's 500 ms deadline: the HTTP side is done, the hook's part is not */
    CHECK(snap().stopped == 0, "4: the stop finished while the hook was still pausing");
    on_loop(report_paused_fn, "stopped late");
    CHECK(snap().stopped == 1, "4: the stop did not finish after the report");
    CHECK(snap().resumes == resumes, "4: resumed during the app's stop");
    close(fd);

    loop_close();
    heap_back_to_zero();
    CHECK(rmdir(g_dir) == 0, "the OTA directory is not empty (a partial image left?)");
    printf("test_app_ota: OK (4 cases, heap back to %zu bytes after each)\n", base);
    return 0;
}
