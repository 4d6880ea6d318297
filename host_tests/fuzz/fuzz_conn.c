/*
 * fuzz_conn.c - the whole server under arbitrary clients: the demo services (HTTP with uploads in pieces, buffered
 * bodies, WebSockets, MJPEG, SSE, chunked streams; the TCP echo server) on a fresh loop per input, driven over real
 * loopback sockets of the Linux backend by a program read from the input.
 *
 * Each input byte is an operation on up to MAX_CLIENTS client sockets: open one (HTTP or echo), send raw input
 * bytes, send a canned request that reaches a deep state at once (an upload head, a WebSocket upgrade and frames,
 * a stream), half-close (FIN), reset (RST), read or not read, run the loop, jump the loop's clock (every timeout:
 * head, body minimum rate, idle, linger, WebSocket ping, stream ticks), or stop the services with a deadline.
 * After the program every client is reset and the clock jumps far ahead. Checked on every input:
 *   - no crash, no sanitizer report (the harness runs under ASan + UBSan);
 *   - no stuck connection: once the clients are gone, the services hold no connection within a bounded number of
 *     loop iterations;
 *   - the stop completes, and after it the heap of tcp_core is back to exactly its value before the input, and no
 *     descriptor is left open.
 * Replay: gcc ... fuzz_conn.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_app.h"
#include "tc_err.h"
#include "tc_internal.h"
#include "tc_loop.h"
#include "tc_registry.h"

#define MAX_CLIENTS 6
#define MAX_OPS 256

static const char *const CANNED[] = {
    "GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 300\r\n\r\n",
    "POST /api/upload?slow=50 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    "POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n",
    "PUT /api/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n",
    ("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    "\x81\x85\x01\x02\x03\x04\x69\x67\x6f\x68\x6e",  /* masked text "hello" */
    "\x88\x82\x01\x02\x03\x04\x02\xea",             /* masked close 1000 */
    "\x89\x80\x01\x02\x03\x04",                     /* masked empty ping */
    "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /events HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /api/chunks HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /stream HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "a\r\n0123456789\r\n0\r\n\r\n",
};
#define NCANNED (sizeof(CANNED) / sizeof(CANNED[0]))

typedef struct {
    tc_loop_t *loop;
    tc_app_t *app;
    int stopping, stopped;
    int fds[MAX_CLIENTS];
    int n;
} world_t;

static void stopped_cb(tc_handle_t *h, const tc_stop_report_t *report, void *user)
{
    (void)h;
    (void)report;
    ((world_t *)user)->stopped = 1;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    while (readdir(d) != NULL) {
        n++;
    }
    closedir(d);
    return n;
}

static int accepted_visit(const tc_sock_info_t *s, void *user)
{
    if (s->kind == TC_KIND_ACCEPTED) {
        (*(int *)user)++;
    }
    return 0;
}

static int accepted(tc_loop_t *loop)
{
    int n = 0;
    tc_registry_foreach(loop, accepted_visit, &n);
    return n;
}

static void client_open(world_t *w, int echo)
{
    if (w->n == MAX_CLIENTS || w->stopping) {
        return;
    }
    uint16_t port = echo ? tc_app_echo_port(w->app) : tc_app_http_port(w->app);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return;
    }
    w->fds[w->n++] = fd;
}

static void client_reset(world_t *w, int i)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    setsockopt(w->fds[i], SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    close(w->fds[i]);
    w->fds[i] = w->fds[--w->n];
}

static void client_drain(int fd)
{
    char buf[16384];
    for (int k = 0; k < 64 && recv(fd, buf, sizeof(buf), 0) > 0; k++) {
    }
}

static void spin(world_t *w, int times)
{
    for (int k = 0; k < times; k++) {
        tc_loop_run_once(w->loop, 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    size_t heap_before = st.bytes_in_use;
    int fds_before = count_fds();

    world_t w = {0};
    if (tc_loop_new(&w.loop) != TC_OK) {
        abort();
    }
    tc_app_config_t cfg = TC_APP_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.echo_port = 0;
    cfg.http_port = 0;
    cfg.http_max_conns = 4; /* small, so admission (eviction, 503) is reached */
    cfg.echo_max_conns = 2;
    cfg.stream_fps = 50;
    cfg.events_ms = 50;
    cfg.upload_max = 4096;
    cfg.http_body_min_rate = 100;
    cfg.http_body_grace_ms = 500;
    if (tc_app_start(w.loop, &cfg, &w.app) != TC_OK) {
        abort();
    }

    size_t i = 0;
    for (int ops = 0; i < size && ops < MAX_OPS; ops++) {
        uint8_t op = data[i++];
        uint8_t arg = i < size ? data[i] : 0;
        int c = w.n ? arg % w.n : -1;
        switch (op % 10) {
        case 0:
            client_open(&w, (op >> 4) & 1);
            break;
        case 1: /* raw bytes from the input */
            if (c >= 0 && i < size) {
                size_t len = arg % 64 + 1;
                i++;
                if (len > size - i) {
                    len = size - i;
                }
                send(w.fds[c], data + i, len, MSG_NOSIGNAL);
                i += len;
            }
            break;
        case 2: /* a canned request or frame, whole or cut */
            if (c >= 0 && i + 1 < size) {
                const char *m = CANNED[data[i + 1] % NCANNED];
                size_t len = strlen(m);
                if ((op >> 4) & 1) {
                    len = len * ((op >> 5) + 1) / 9; /* a prefix */
                }
                send(w.fds[c], m, len, MSG_NOSIGNAL);
                i += 2;
            }
            break;
        case 3:
            if (c >= 0) {
                shutdown(w.fds[c], SHUT_WR);
                i++;
            }
            break;
        case 4:
            if (c >= 0) {
                client_reset(&w, c);
                i++;
            }
            break;
        case 5:
            if (c >= 0) {
                client_drain(w.fds[c]);
                i++;
            }
            break;
        case 6:
            tc__loop_skew(w.loop, (uint64_t)arg * 100);
            i++;
            spin(&w, 2);
            break;
        case 7:
            if (!w.stopping) {
                w.stopping = 1;
                tc_handle_stop(tc_app_handle(w.app), (uint32_t)arg * 10, stopped_cb, &w);
            }
            i++;
            break;
        default:
            spin(&w, 1 + op % 4);
            break;
        }
        spin(&w, 1);
    }

    /* Every client goes away; then no connection may be left, whatever the program did. */
    while (w.n) {
        client_reset(&w, 0);
    }
    for (int k = 0; k < 200 && !w.stopped && accepted(w.loop) > 0; k++) {
        tc__loop_skew(w.loop, 1000);
        tc_loop_run_once(w.loop, 1);
    }
    if (!w.stopped && accepted(w.loop) != 0) {
        fprintf(stderr, "fuzz_conn: %d connections stuck after every client left\n", accepted(w.loop));
        abort();
    }
    if (!w.stopping) {
        w.stopping = 1;
        tc_handle_stop(tc_app_handle(w.app), 100, stopped_cb, &w);
    }
    for (int k = 0; k < 2000 && !w.stopped; k++) {
        tc__loop_skew(w.loop, 100);
        tc_loop_run_once(w.loop, 1);
    }
    if (!w.stopped) {
        fprintf(stderr, "fuzz_conn: the stop did not complete\n");
        abort();
    }
    if (tc_loop_free(w.loop) != TC_OK) {
        fprintf(stderr, "fuzz_conn: the loop still has handles after the stop\n");
        abort();
    }
    tc_alloc_stats(&st);
    if (st.bytes_in_use != heap_before) {
        fprintf(stderr, "fuzz_conn: %lld bytes of heap left behind\n", (long long)st.bytes_in_use - (long long)heap_before);
        abort();
    }
    if (count_fds() != fds_before) {
        fprintf(stderr, "fuzz_conn: %d descriptors left open\n", count_fds() - fds_before);
        abort();
    }
    return 0;
}
