/*
 * test_app_main.c - tcp_core's own test app: on the device's own stack (lwIP's loopback on a chip, the host's on the
 * linux target), an echo server and a reconnecting client on one loop exchange ROUNDS messages, both stop through
 * tc_handle_stop_wait(), the loop is freed, and tcp_core's heap must be back to where it started. The last line says
 * PASS or FAIL with the reason; pytest_tcp_core_app.py waits for it.
 */
#include <stdio.h>
#include <string.h>

#include "tcp_core.h"

#define ROUNDS 100
#define MSG "ping"
#define MSG_LEN 4

typedef struct {
    int echoes;       /* messages that came back whole */
    size_t have;      /* bytes of the current answer */
    char got[MSG_LEN];
    int bad;          /* an answer that was not our message */
} client_state_t;

static void client_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    client_state_t *st = user;
    if (ev == TC_EV_OPEN) {
        tc_conn_send(conn, MSG, MSG_LEN);
        return;
    }
    if (ev != TC_EV_DATA) {
        return;
    }
    const char *p = data;
    for (size_t i = 0; i < len; i++) {
        st->got[st->have++] = p[i];
        if (st->have < MSG_LEN) {
            continue;
        }
        st->have = 0;
        if (memcmp(st->got, MSG, MSG_LEN) != 0) {
            st->bad = 1;
            return;
        }
        if (++st->echoes < ROUNDS) {
            tc_conn_send(conn, MSG, MSG_LEN);
        }
    }
}

static const char *run(void)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    size_t before = st.bytes_in_use;
    tc_loop_t *loop;
    if (tc_loop_new(&loop) != TC_OK) {
        return "tc_loop_new";
    }
    tc_server_config_t scfg = TC_SERVER_DEFAULT_CONFIG();
    scfg.host = "127.0.0.1";
    scfg.port = 0;
    scfg.cb = tc_echo_cb;
    tc_server_t *srv;
    if (tc_server_start(loop, &scfg, &srv) != TC_OK) {
        tc_loop_free(loop);
        return "tc_server_start";
    }
    client_state_t cs = {0};
    tc_client_config_t ccfg = TC_CLIENT_DEFAULT_CONFIG();
    ccfg.host = "127.0.0.1";
    ccfg.port = tc_server_port(srv);
    ccfg.cb = client_cb;
    ccfg.user = &cs;
    tc_client_t *cli;
    if (tc_client_start(loop, &ccfg, &cli) != TC_OK) {
        tc_handle_stop_wait(tc_server_handle(srv), 0, NULL);
        tc_loop_free(loop);
        return "tc_client_start";
    }
    for (int turn = 0; turn < 500 && cs.echoes < ROUNDS && !cs.bad; turn++) { /* at most ~5 s */
        tc_loop_run_once(loop, 10);
    }
    tc_stop_report_t rep;
    int crc = tc_handle_stop_wait(tc_client_handle(cli), 500, &rep);
    int src = tc_handle_stop_wait(tc_server_handle(srv), 500, &rep);
    int lrc = tc_loop_free(loop);
    tc_alloc_stats(&st);
    printf("tcp_core test app: %d of %d echoes, heap %zu -> %zu bytes\n", cs.echoes, ROUNDS, before, st.bytes_in_use);
    if (cs.bad) {
        return "an echo came back wrong";
    }
    if (cs.echoes != ROUNDS) {
        return "not every message came back";
    }
    if (crc != TC_OK || src != TC_OK || lrc != TC_OK) {
        return "a stop or the loop's free failed";
    }
    return st.bytes_in_use == before ? NULL : "tcp_core heap not back to its start";
}

void app_main(void)
{
    const char *why = run();
    if (why == NULL) {
        printf("tcp_core test app: PASS\n");
    } else {
        printf("tcp_core test app: FAIL (%s)\n", why);
    }
    fflush(stdout);
}
