/*
 * bench/tc_http_ws.c - tcp_core's HTTP + WebSocket server for bench/compare.py: "/" answers the fixed page of
 * bench_page.h, "/ws" is a WebSocket that echoes every message; the public tc_http.h API with
 * TC_HTTP_DEFAULT_CONFIG() on 127.0.0.1 (or --host), linked straight with the portable sources and the Linux
 * backend.
 *
 * Protocol shared by every benchmark server (bench/tc_echo.c): "ready PORT" on stdout once listening (port 0
 * picks a free one); SIGUSR1 prints "stats {json}" (tcp_core's allocation counters); SIGTERM or SIGINT stops.
 * Signals are read from a signalfd on the loop (bench_signals.h): one thread, no tcp_core call in a signal handler.
 *
 * Options: --host ADDRESS (compare.py --veth: the server's side of a veth pair), --port N, --max-conns N (default 20000: the 10k idle connections of the memory figure fit),
 * --idle-ms N (keep-alive idle timeout, default 60000, the same as the peers' in compare.py).
 *
 * Exit status: 0 after a clean stop with every tcp_core byte freed, 1 on a start or loop error, 2 on bad usage,
 * 3 when tcp_core still held memory after the loop was freed (a leak).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_page.h"
#include "bench_signals.h"
#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_http.h"
#include "tc_loop.h"

static tc_loop_t *g_loop;

static void print_stats(tc_loop_t *loop, void *user)
{
    (void)loop;
    (void)user;
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    printf("stats {\"bytes_in_use\": %zu, \"blocks_in_use\": %zu, \"bytes_peak\": %zu}\n", st.bytes_in_use,
           st.blocks_in_use, st.bytes_peak);
    fflush(stdout);
}

static int page(tc_http_req_t *req, void *user)
{
    (void)user;
    return tc_http_respond(req, 200, BENCH_PAGE_CTYPE, BENCH_PAGE, sizeof(BENCH_PAGE) - 1);
}

static void ws_echo(tc_ws_t *ws, tc_ws_event_t ev, const void *data, size_t len, void *user)
{
    (void)user;
    if (ev == TC_WS_EV_TEXT || ev == TC_WS_EV_BINARY) {
        tc_ws_send(ws, ev == TC_WS_EV_TEXT ? 1 : 2, data, len);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: tc_http_ws [--host 127.0.0.1] [--port 0] [--max-conns 20000] [--idle-ms 60000]\n");
    return 2;
}

int main(int argc, char **argv)
{
    tc_http_config_t cfg = TC_HTTP_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    cfg.max_conns = 20000;
    cfg.idle_timeout_ms = 60000;
    cfg.name = "bench-http";
    if (argc % 2 == 0) {
        return usage();
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) {
            cfg.host = argv[i + 1];
        } else if (strcmp(argv[i], "--port") == 0) {
            cfg.port = (uint16_t)atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--max-conns") == 0) {
            cfg.max_conns = (uint32_t)atol(argv[i + 1]);
        } else if (strcmp(argv[i], "--idle-ms") == 0) {
            cfg.idle_timeout_ms = (uint32_t)atol(argv[i + 1]);
        } else {
            return usage();
        }
    }

    int rc = tc_loop_new(&g_loop);
    if (rc != TC_OK) {
        fprintf(stderr, "tc_http_ws: tc_loop_new: %s\n", tc_strerror(rc));
        return 1;
    }
    tc_http_t *http = NULL;
    rc = tc_http_start(g_loop, &cfg, &http);
    if (rc == TC_OK) {
        rc = tc_http_route(http, TC_HTTP_GET, "/", page, NULL);
    }
    if (rc == TC_OK) {
        rc = tc_http_ws_route(http, "/ws", ws_echo, NULL);
    }
    if (rc != TC_OK) {
        fprintf(stderr, "tc_http_ws: start on port %u: %s\n", cfg.port, tc_strerror(rc));
        if (http != NULL) {
            tc_handle_stop_wait(tc_http_handle(http), 0, NULL);
        }
        tc_loop_free(g_loop);
        return 1;
    }
    bench_signals_t signals = {g_loop, print_stats, "tc_http_ws", -1, NULL};
    if (bench_signals_start(&signals) != 0) {
        bench_signals_stop(&signals);
        tc_handle_stop_wait(tc_http_handle(http), 0, NULL);
        tc_loop_free(g_loop);
        return 1;
    }
    printf("ready %u\n", tc_http_port(http));
    fflush(stdout);

    int run_rc = tc_loop_run(g_loop);
    bench_signals_stop(&signals);
    if (run_rc != TC_OK) {
        fprintf(stderr, "tc_http_ws: tc_loop_run: %s\n", tc_strerror(run_rc));
    }
    rc = tc_handle_stop_wait(tc_http_handle(http), 0, NULL);
    if (rc != TC_OK) {
        fprintf(stderr, "tc_http_ws: tc_handle_stop_wait: %s\n", tc_strerror(rc));
    }
    rc = tc_loop_free(g_loop);
    if (rc != TC_OK) {
        fprintf(stderr, "tc_http_ws: tc_loop_free: %s\n", tc_strerror(rc));
        return 1;
    }
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    if (st.bytes_in_use != 0 || st.blocks_in_use != 0) {
        fprintf(stderr, "tc_http_ws: leak: %zu bytes in %zu blocks still allocated\n", st.bytes_in_use,
                st.blocks_in_use);
        return 3;
    }
    return run_rc == TC_OK ? 0 : 1;
}
