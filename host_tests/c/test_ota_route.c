/*
 * test_ota_route.c - the OTA route (tc_ota.h) on a server of its own, at the longest path tc_ota_attach() takes
 * (200 bytes), over real loopback sockets. Every answer is whole: its Content-Length is the length of the JSON that
 * follows (the success answer names the 207-byte reboot path; a fixed 300-byte buffer used to cut it and send bytes
 * from past its end). A busy route says when to come back: 409 with Retry-After: 2 while another upload holds it,
 * 503 with Retry-After (the prepare deadline in seconds, plus 1) when its prepare or its sink cannot make room. The
 * heap is back to 0 after the loop.
 *
 *     C=components/tcp_core; gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src \
 *       -I$C/port/os/posix host_tests/c/test_ota_route.c <core and linux backend sources> -lpthread
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
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_http.h"
#include "tc_loop.h"
#include "tc_ota.h"
#include "tc_check.h"
#include "tc_loop_thread.h"

#define DEADLINE_MS 4000 /* prepare's deadline: 503s say Retry-After: 5 */

static tc_http_t *g_http;
static tc_ota_t *g_ota;
static uint16_t g_port;
static char g_dir[64];
static char g_path[201];
static tc_ota_sink_t g_file; /* the host file sink the test's sink wraps */

/* Loop thread: what prepare and begin do in the current case. */
static int g_hold;       /* prepare does not report (the upload stays "preparing") */
static int g_prepare_rc; /* prepare's return code */
static int g_begin_rc;   /* TC_OK: the file sink begins; else begin refuses with it */

static int prepare(tc_ota_t *ota, uint32_t deadline_ms, void *user)
{
    (void)deadline_ms;
    (void)user;
    if (g_prepare_rc != TC_OK) {
        return g_prepare_rc;
    }
    if (!g_hold) {
        tc_ota_prepared(ota, TC_OK, "nothing to stop");
    }
    return TC_OK;
}

static int begin(void *ctx, uint64_t size, void **job, char *msg, size_t cap)
{
    if (g_begin_rc != TC_OK) {
        snprintf(msg, cap, "no room for the image now");
        return g_begin_rc;
    }
    return g_file.begin(ctx, size, job, msg, cap);
}

static void start_fn(void *arg)
{
    (void)arg;
    tc_http_config_t hc = TC_HTTP_DEFAULT_CONFIG();
    hc.host = "127.0.0.1";
    hc.port = 0;
    CHECK_RC(tc_http_start(g_loop, &hc, &g_http), TC_OK);
    CHECK_RC(tc_ota_file_sink_init(&g_file, g_dir), TC_OK);
    tc_ota_sink_t sink = g_file;
    sink.begin = begin;
    tc_ota_config_t oc = TC_OTA_DEFAULT_CONFIG();
    oc.prepare = prepare;
    oc.prepare_deadline_ms = DEADLINE_MS;
    CHECK_RC(tc_ota_attach(g_http, g_path, &sink, &oc, &g_ota), TC_OK);
    g_port = tc_http_port(g_http);
}

static void set_int(int *p, int v)
{
    *p = v;
}

static void hold_fn(void *arg)
{
    set_int(&g_hold, *(int *)arg);
}

static void prepare_rc_fn(void *arg)
{
    set_int(&g_prepare_rc, *(int *)arg);
}

static void begin_rc_fn(void *arg)
{
    set_int(&g_begin_rc, *(int *)arg);
}

typedef struct {
    char json[1024];
} status_t;

static void status_fn(void *arg)
{
    status_t *s = arg;
    CHECK(tc_ota_status_json(g_ota, s->json, sizeof(s->json)) > 0, "status");
}

/* Wait (bounded: 10 s) until the OTA status holds text. */
static int wait_status(const char *text)
{
    status_t s;
    for (int i = 0; i < 1000; i++) {
        on_loop(status_fn, &s);
        if (strstr(s.json, text)) {
            return 1;
        }
        usleep(10000);
    }
    return 0;
}

static int open_conn(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    CHECK(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n, "send %zu bytes", n);
}

/* An answer read up to its Content-Length: the head (NUL-terminated, with its blank line) and the body after it. */
typedef struct {
    char buf[8192];
    size_t len;
    const char *body;
    size_t body_len;
    long content_length;
} answer_t;

static void read_answer(int fd, answer_t *a)
{
    a->len = 0;
    a->body = NULL;
    a->content_length = -1;
    for (;;) {
        ssize_t k = recv(fd, a->buf + a->len, sizeof(a->buf) - 1 - a->len, 0);
        CHECK(k > 0, "the connection ended before the whole answer (%zu bytes read)", a->len);
        a->len += (size_t)k;
        a->buf[a->len] = '\0';
        char *end = strstr(a->buf, "\r\n\r\n");
        if (end == NULL) {
            continue;
        }
        const char *cl = strstr(a->buf, "Content-Length: ");
        CHECK(cl != NULL && cl < end, "no Content-Length: %s", a->buf);
        a->content_length = strtol(cl + 16, NULL, 10);
        a->body = end + 4;
        a->body_len = a->len - (size_t)(a->body - a->buf);
        if ((long)a->body_len >= a->content_length) {
            return;
        }
    }
}

/* A POST of len image bytes (of which send_len are sent) to the route; the connection. */
static int post_image(size_t len, size_t send_len)
{
    static unsigned char img[200000];
    CHECK(len <= sizeof(img) && send_len <= len, "image size");
    memset(img, 0x5A, len);
    img[0] = TC_OTA_IMAGE_MAGIC;
    int fd = open_conn();
    char head[512];
    int n = snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %zu\r\n\r\n", g_path, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, img, send_len);
    return fd;
}

/* The answer's JSON body is exactly its Content-Length long and ends the way it should. */
static void check_whole(const answer_t *a, const char *status_line, const char *tail, const char *what)
{
    CHECK(strncmp(a->buf, status_line, strlen(status_line)) == 0, "%s: %s", what, a->buf);
    CHECK(a->content_length == (long)a->body_len, "%s: Content-Length %ld, %zu bytes after the head", what,
          a->content_length, a->body_len);
    size_t tl = strlen(tail);
    CHECK(a->body_len >= tl && memcmp(a->body + a->body_len - tl, tail, tl) == 0, "%s: body does not end in %s: %s",
          what, tail, a->body);
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/tc_ota_route_XXXXXX");
    CHECK(mkdtemp(g_dir) != NULL, "mkdtemp");
    g_path[0] = '/';
    memset(g_path + 1, 'p', sizeof(g_path) - 2);
    g_path[sizeof(g_path) - 1] = '\0';
    CHECK(strlen(g_path) == 200, "path length");
    loop_open();
    on_loop(start_fn, NULL);
    answer_t a;

    /* 1. One upload holds the route (its prepare has not reported): the next gets 409 with Retry-After: 2. */
    int one = 1, zero = 0;
    on_loop(hold_fn, &one);
    int holder = post_image(100000, 1000);
    CHECK(wait_status("\"state\":\"preparing\""), "1: not preparing");
    int fd = post_image(3000, 3000);
    read_answer(fd, &a);
    close(fd);
    check_whole(&a, "HTTP/1.1 409", "\"error\":\"another upload is in progress\"}\n", "1");
    CHECK(strstr(a.buf, "\r\nRetry-After: 2\r\n") != NULL, "1: no Retry-After: 2: %s", a.buf);
    close(holder); /* cut off: the route is free again */
    CHECK(wait_status("\"state\":\"idle\""), "1: not idle after the cut");
    on_loop(hold_fn, &zero);

    /* 2. Prepare cannot make room: 503 with Retry-After: the deadline (4 s) plus 1. */
    int bad = TC_ENOMEM;
    on_loop(prepare_rc_fn, &bad);
    fd = post_image(3000, 3000);
    read_answer(fd, &a);
    close(fd);
    check_whole(&a, "HTTP/1.1 503", "\"error\":\"could not free memory for the update\"}\n", "2");
    CHECK(strstr(a.buf, "\r\nRetry-After: 5\r\n") != NULL, "2: no Retry-After: 5: %s", a.buf);
    on_loop(prepare_rc_fn, &zero);

    /* 3. The sink has no room: 503 with the same Retry-After, the sink's message in the answer. */
    on_loop(begin_rc_fn, &bad);
    fd = post_image(3000, 3000);
    read_answer(fd, &a);
    close(fd);
    check_whole(&a, "HTTP/1.1 503", "\"error\":\"sink refused the image: no room for the image now\"}\n", "3");
    CHECK(strstr(a.buf, "\r\nRetry-After: 5\r\n") != NULL, "3: no Retry-After: 5: %s", a.buf);
    on_loop(begin_rc_fn, &zero);

    /* 4. A good image: the whole answer, with the 207-byte reboot path at its end (358 bytes in all). */
    fd = post_image(3000, 3000);
    read_answer(fd, &a);
    close(fd);
    char tail[300];
    snprintf(tail, sizeof(tail), "\"reboot\":\"POST %s/reboot\"}\n", g_path);
    check_whole(&a, "HTTP/1.1 200", tail, "4");
    CHECK(strncmp(a.body, "{\"ok\":true,\"bytes\":3000,\"sha256\":\"", 34) == 0, "4: %s", a.body);
    CHECK(a.body_len > 300, "4: the answer is %zu bytes: the case no longer covers a long one", a.body_len);

    /* 5. The status route (its document built on the heap) and the reboot route (a report on the host). */
    fd = open_conn();
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", g_path);
    send_all(fd, req, (size_t)n);
    read_answer(fd, &a);
    close(fd);
    check_whole(&a, "HTTP/1.1 200", "}}", "5 status");
    CHECK(strstr(a.body, "\"state\":\"ready\"") != NULL && strstr(a.body, "\"bytes\":3000") != NULL, "5: %s", a.body);
    fd = open_conn();
    n = snprintf(req, sizeof(req), "POST %s/reboot HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", g_path);
    send_all(fd, req, (size_t)n);
    read_answer(fd, &a);
    close(fd);
    check_whole(&a, "HTTP/1.1 200", "/firmware.bin\"}\n", "5 reboot");

    stop_on_loop(tc_http_handle(g_http), 0, 5000);
    loop_join();
    tc_ota_free(g_ota);
    CHECK_RC(tc_loop_free(g_loop), TC_OK);
    heap_back_to_zero();
    char file[128];
    snprintf(file, sizeof(file), "%s/firmware.bin", g_dir);
    CHECK(remove(file) == 0, "no firmware.bin written");
    CHECK(rmdir(g_dir) == 0, "the OTA directory holds more than the image (a partial image left?)");
    printf("test_ota_route: OK (409 and 503 with Retry-After, answers whole at a 200-byte path)\n");
    return 0;
}
