/*
 * test_port.c - the core's platform port (src/tc_port.h, here port/os/posix): a statically initialised mutex shared by
 * threads the port starts, the one-shot event (set from another thread, and a wait that times out), and a TCP client
 * given the name "localhost", which resolves on the loop without a thread (the core's only thread is the resolver's
 * fallback worker, see test_resolve.c and host_tests/test_resolve.py). Ends with the loop freed and 0 bytes of the
 * core's heap in use.
 *
 * Build (from the repository root):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix \
 *         host_tests/c/test_port.c \
 *         $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') $C/port/linux/tc_sock_linux.c -lpthread \
 *         -o build/test_port
 */
#include <stdio.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_port.h"
#include "tc_tcp.h"
#include "tc_check.h"

#define THREADS 4
#define ROUNDS 10000

static tc_port_mutex_t g_mu = TC_PORT_MUTEX_INIT;
static long g_count; /* under g_mu */
static tc_port_event_t g_done[THREADS];

static void count_thread(void *arg)
{
    tc_port_event_t *done = arg;
    for (int i = 0; i < ROUNDS; i++) {
        tc_port_mutex_lock(&g_mu);
        g_count++;
        tc_port_mutex_unlock(&g_mu);
    }
    tc_port_event_set(done);
}

static void test_mutex_event_threads(void)
{
    CHECK(TC_PORT_THREADS == 1, "the POSIX port has threads");
    for (int i = 0; i < THREADS; i++) {
        CHECK_RC(tc_port_event_init(&g_done[i]), TC_OK);
        CHECK_RC(tc_port_thread_start(count_thread, &g_done[i]), TC_OK);
    }
    for (int i = 0; i < THREADS; i++) {
        /* generous: only a stalled thread takes this long, and a wait that returns early fails the count below */
        CHECK(tc_port_event_wait(&g_done[i], 60000) == 1, "thread %d never finished", i);
        tc_port_event_destroy(&g_done[i]);
    }
    tc_port_mutex_lock(&g_mu);
    long n = g_count;
    tc_port_mutex_unlock(&g_mu);
    CHECK(n == (long)THREADS * ROUNDS, "count %ld, want %ld: the mutex let increments through", n,
          (long)THREADS * ROUNDS);

    tc_port_event_t never;
    CHECK_RC(tc_port_event_init(&never), TC_OK);
    uint64_t t0 = tc_port_now_ms();
    CHECK(tc_port_event_wait(&never, 30) == 0, "an event nobody set was seen as set");
    CHECK(tc_port_now_ms() >= t0 + 30, "the wait ended before its 30 ms"); /* the clock is monotonic: no upper bound */
    tc_port_event_set(&never);
    CHECK(tc_port_event_wait(&never, 0) == 1, "a set event was not seen");
    tc_port_event_destroy(&never);
    printf("ok   port: mutex over %d port threads x %d, event set and timed out, monotonic clock\n", THREADS, ROUNDS);
}

typedef struct {
    int opened;
    int closed;
    int freed;
} client_seen_t;

static void client_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    (void)conn, (void)data, (void)len;
    client_seen_t *s = user;
    s->opened += ev == TC_EV_OPEN;
    s->closed += ev == TC_EV_CLOSE;
}

static void client_freed(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h, (void)r;
    ((client_seen_t *)user)->freed = 1;
}

/* "localhost" is not numeric: the client resolves it on the loop (RFC 6761: loopback) without a thread. */
static void test_client_resolves_localhost_on_the_loop(void)
{
    tc_resolver_stats_t rs0, rs1;
    tc_resolver_stats(&rs0);
    tc_loop_t *loop = NULL;
    CHECK_RC(tc_loop_new(&loop), TC_OK);
    tc_server_config_t scfg = TC_SERVER_DEFAULT_CONFIG();
    scfg.host = "127.0.0.1";
    scfg.port = 0;
    scfg.cb = tc_echo_cb;
    tc_server_t *srv = NULL;
    CHECK_RC(tc_server_start(loop, &scfg, &srv), TC_OK);

    client_seen_t seen = {0};
    tc_client_config_t ccfg = TC_CLIENT_DEFAULT_CONFIG();
    ccfg.host = "localhost";
    ccfg.port = tc_server_port(srv);
    ccfg.reconnect = false;
    ccfg.cb = client_cb;
    ccfg.user = &seen;
    tc_client_t *cl = NULL;
    CHECK_RC(tc_client_start(loop, &ccfg, &cl), TC_OK);
    for (int i = 0; i < 6000 && seen.opened == 0; i++) { /* bounded: 6000 turns of at most 10 ms */
        CHECK(tc_loop_run_once(loop, 10) >= 0, "loop failed");
    }
    CHECK(seen.opened == 1, "the client never connected to localhost");
    tc_client_stats_t st;
    tc_client_stats(cl, &st);
    CHECK(st.connects == 1 && st.last_error == 0, "connects %u, last error %s", st.connects,
          tc_err_name(st.last_error));

    CHECK_RC(tc_handle_stop(tc_client_handle(cl), 500, client_freed, &seen), TC_OK);
    for (int i = 0; i < 6000 && !seen.freed; i++) {
        CHECK(tc_loop_run_once(loop, 10) >= 0, "loop failed");
    }
    CHECK(seen.freed == 1 && seen.closed == 1, "the client was not freed (freed %d, closed %d)", seen.freed,
          seen.closed);
    CHECK_RC(tc_handle_stop_wait(tc_server_handle(srv), 500, NULL), TC_OK);
    CHECK_RC(tc_loop_free(loop), TC_OK);
    tc_resolver_stats(&rs1);
    CHECK(rs1.threads_started == rs0.threads_started && rs1.fallbacks == rs0.fallbacks,
          "localhost went to a thread (%llu threads, %llu fallbacks)", (unsigned long long)rs1.threads_started,
          (unsigned long long)rs1.fallbacks);
    tc_alloc_stats_t a;
    tc_alloc_stats(&a);
    CHECK(a.bytes_in_use == 0 && a.blocks_in_use == 0, "%zu bytes in %zu blocks left", a.bytes_in_use, a.blocks_in_use);
    printf("ok   client: localhost resolved on the loop (no thread), connected, stopped; loop freed, 0 bytes left\n");
}

int main(void)
{
    test_mutex_event_threads();
    test_client_resolves_localhost_on_the_loop();
    return 0;
}
