/*
 * bench/ws_echo_tc.c - tcp_core's WebSocket echo server for measuring the CPU one echo costs, independently of load:
 * run it under `valgrind --tool=callgrind` (instructions) or `strace -c` (system calls) while bench/ws_echo_cost.py
 * sends messages one at a time, and compare two runs that differ only in the number of echoes.
 *
 * Protocol: "ready PORT" on stdout once listening on 127.0.0.1 (port 0 picks a free one); every message received on
 * /ws is sent back with the same opcode; after --echoes N messages the server stops and the process exits 0 (1 on a
 * start or loop error, 2 on bad usage, 3 when tcp_core still held memory after the loop was freed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_http.h"
#include "tc_loop.h"
#include "tc_ws_codec.h"

static long g_left;

static void echo_ws(tc_ws_t *ws, tc_ws_event_t ev, const void *data, size_t len, void *user)
{
    tc_loop_t *loop = user;
    if (ev != TC_WS_EV_TEXT && ev != TC_WS_EV_BINARY) {
        return;
    }
    tc_ws_send(ws, ev == TC_WS_EV_TEXT ? TC_WS_OP_TEXT : TC_WS_OP_BINARY, data, len);
    if (--g_left == 0) {
        tc_loop_stop(loop);
    }
}

int main(int argc, char **argv)
{
    tc_http_config_t cfg = TC_HTTP_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.port = 0;
    g_left = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) {
            cfg.port = (uint16_t)atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "--echoes") == 0) {
            g_left = atol(argv[i + 1]);
        } else {
            fprintf(stderr, "usage: ws_echo_tc [--port 0] [--echoes N]\n");
            return 2;
        }
    }
    tc_loop_t *loop = NULL;
    tc_http_t *http = NULL;
    if (tc_loop_new(&loop) != TC_OK || tc_http_start(loop, &cfg, &http) != TC_OK ||
        tc_http_ws_route(http, "/ws", echo_ws, loop) != TC_OK) {
        fprintf(stderr, "ws_echo_tc: cannot start\n");
        return 1;
    }
    printf("ready %u\n", (unsigned)tc_http_port(http));
    fflush(stdout);
    int rc = tc_loop_run(loop);
    tc_handle_stop_wait(tc_http_handle(http), 1000, NULL);
    tc_loop_free(loop);
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    if (st.bytes_in_use != 0) {
        fprintf(stderr, "ws_echo_tc: %zu bytes still held\n", st.bytes_in_use);
        return 3;
    }
    return rc == TC_OK ? 0 : 1;
}
