/*
 * bench/tc_echo.c - tcp_core's echo server for the benchmarks: tc_echo_cb with TC_SERVER_DEFAULT_CONFIG() on
 * 127.0.0.1, linked straight with the portable sources and the Linux backend.
 *
 * Protocol shared by every benchmark server: "ready PORT" on stdout once listening (port 0 picks a free one);
 * SIGUSR1 prints one line "stats {json}" (open connections and tcp_core's allocation counters, from tc_alloc_stats());
 * SIGTERM or SIGINT stops. The signals are read from a signalfd on the loop (bench_signals.h): one thread, no tcp_core
 * call in a signal handler.
 *
 * Exit status: 0 after a clean stop with every tcp_core byte freed, 1 on a start or loop error, 2 on bad usage,
 * 3 when tcp_core still held memory after the loop was freed (a leak).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_signals.h"
#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_tcp.h"

static tc_loop_t *g_loop;
static tc_server_t *g_server;

/* Runs on the loop thread: the connection count is only readable there. */
static void print_stats(tc_loop_t *loop, void *user)
{
    (void)loop;
    (void)user;
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    printf("stats {\"conns\": %u, \"bytes_in_use\": %zu, \"blocks_in_use\": %zu, \"bytes_peak\": %zu, "
           "\"allocs\": %llu, \"failures\": %llu}\n",
           g_server ? tc_server_conn_count(g_server) : 0u, st.bytes_in_use, st.blocks_in_use, st.bytes_peak,
           (unsigned long long)st.allocs, (unsigned long long)st.failures);
    fflush(stdout);
}

static int usage(void)
{
    fprintf(stderr, "usage: tc_echo [--host 127.0.0.1] [--port 0] [--max-conns N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    tc_server_config_t cfg = TC_SERVER_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.cb = tc_echo_cb;
    cfg.name = "bench-echo";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) {
            cfg.host = argv[i + 1];
        } else if (strcmp(argv[i], "--port") == 0) {
            cfg.port = (uint16_t)atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--max-conns") == 0) {
            cfg.max_conns = (uint32_t)atol(argv[i + 1]);
        } else {
            return usage();
        }
    }
    if (argc % 2 == 0) {
        return usage();
    }

    int rc = tc_loop_new(&g_loop);
    if (rc != TC_OK) {
        fprintf(stderr, "tc_echo: tc_loop_new: %s\n", tc_strerror(rc));
        return 1;
    }
    rc = tc_server_start(g_loop, &cfg, &g_server);
    if (rc != TC_OK) {
        fprintf(stderr, "tc_echo: tc_server_start %s:%u: %s\n", cfg.host, cfg.port, tc_strerror(rc));
        tc_loop_free(g_loop);
        return 1;
    }
    bench_signals_t signals = {g_loop, print_stats, "tc_echo", -1, NULL};
    if (bench_signals_start(&signals) != 0) {
        bench_signals_stop(&signals);
        tc_handle_stop_wait(tc_server_handle(g_server), 0, NULL);
        tc_loop_free(g_loop);
        return 1;
    }
    printf("ready %u\n", tc_server_port(g_server));
    fflush(stdout);

    int run_rc = tc_loop_run(g_loop);
    bench_signals_stop(&signals);
    if (run_rc != TC_OK) {
        fprintf(stderr, "tc_echo: tc_loop_run: %s\n", tc_strerror(run_rc));
    }
    tc_stop_report_t report;
    rc = tc_handle_stop_wait(tc_server_handle(g_server), 0, &report);
    g_server = NULL;
    if (rc != TC_OK) {
        fprintf(stderr, "tc_echo: tc_handle_stop_wait: %s\n", tc_strerror(rc));
    }
    rc = tc_loop_free(g_loop);
    if (rc != TC_OK) {
        fprintf(stderr, "tc_echo: tc_loop_free: %s\n", tc_strerror(rc));
        return 1;
    }
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    if (st.bytes_in_use != 0 || st.blocks_in_use != 0) {
        fprintf(stderr, "tc_echo: leak: %zu bytes in %zu blocks still allocated\n", st.bytes_in_use, st.blocks_in_use);
        return 3;
    }
    return run_rc == TC_OK ? 0 : 1;
}
