/*
 * test_resolve.c - name resolution through the loop under the sanitizers: a client given a name and a nameserver asks
 * it over UDP (the core's own captive DNS responder on loopback answers every name with 127.0.0.1), connects to an
 * echo server, reconnects after the server's restart (asking again), a stop while a question is unanswered (a
 * silent UDP socket) frees everything, and a closed nameserver port fails at once. No thread is started; the loop is
 * freed each time and 0 bytes stay in use. The stop reports of the one handle model are checked against the heap: bytes_freed is its exact decrease.
 *
 * Build: like test_port.c (every file of sources.txt and the Linux backend, -lpthread).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_dns_server.h"
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_loop.h"
#include "tc_tcp.h"
#include "tc_check.h"

typedef struct {
    int opened;
    int closed;
} seen_t;

static void client_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    (void)data, (void)len;
    seen_t *s = user;
    if (ev == TC_EV_OPEN) {
        s->opened++;
        tc_conn_send(conn, "hi", 2);
    }
    s->closed += ev == TC_EV_CLOSE;
}

typedef struct {
    int done;
    tc_stop_report_t report;
} stopped_t;

static void stopped(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    stopped_t *s = user;
    s->report = *r;
    s->done = 1;
}

static void run_until(tc_loop_t *loop, const int *flag, int want)
{
    for (int i = 0; i < 1000 && *flag < want; i++) { /* bounded: 1000 turns of at most 10 ms */
        CHECK(tc_loop_run_once(loop, 10) >= 0, "loop failed");
    }
}

static tc_server_t *echo_on(tc_loop_t *loop, uint16_t port)
{
    tc_server_config_t cfg = TC_SERVER_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.port = port;
    cfg.cb = tc_echo_cb;
    tc_server_t *srv = NULL;
    CHECK_RC(tc_server_start(loop, &cfg, &srv), TC_OK);
    return srv;
}

/* A client of host:port that asks the loopback nameserver on ns_port, reporting to seen (the rest: defaults). */
static tc_client_config_t asking(const char *host, uint16_t port, uint16_t ns_port, seen_t *seen)
{
    tc_client_config_t ccfg = TC_CLIENT_DEFAULT_CONFIG();
    ccfg.host = host;
    ccfg.port = port;
    ccfg.nameserver = "127.0.0.1";
    ccfg.nameserver_port = ns_port;
    ccfg.cb = client_cb;
    ccfg.user = seen;
    return ccfg;
}

/* Run the loop until the client's first failed attempt, at most turns x 10 ms; its stats then. */
static tc_client_stats_t first_failure(tc_loop_t *loop, tc_client_t *cl, int turns)
{
    tc_client_stats_t st = {0};
    for (int i = 0; i < turns && st.failures == 0; i++) {
        tc_loop_run_once(loop, 10);
        tc_client_stats(cl, &st);
    }
    return st;
}

static void test_name_connects_and_reconnects_without_a_thread(void)
{
    tc_resolver_stats_t rs0, rs1;
    tc_resolver_stats(&rs0);
    tc_loop_t *loop = NULL;
    CHECK_RC(tc_loop_new(&loop), TC_OK);
    tc_dns_server_config_t dcfg = TC_DNS_SERVER_DEFAULT_CONFIG();
    dcfg.port = 0;
    tc_dns_server_t *dns = NULL;
    CHECK_RC(tc_dns_server_start(loop, &dcfg, &dns), TC_OK);
    tc_server_t *srv = echo_on(loop, 0);
    uint16_t port = tc_server_port(srv);

    seen_t seen = {0};
    tc_client_config_t ccfg = asking("device.example.test", port, tc_dns_server_port(dns), &seen);
    ccfg.backoff_initial_ms = 20;
    ccfg.backoff_max_ms = 100;
    tc_client_t *cl = NULL;
    CHECK_RC(tc_client_start(loop, &ccfg, &cl), TC_OK);
    run_until(loop, &seen.opened, 1);
    CHECK(seen.opened == 1, "the client never connected through the name");

    /* The server goes away and comes back on the same port: the client asks the name again and reconnects. */
    stopped_t s1 = {0};
    CHECK_RC(tc_handle_stop(tc_server_handle(srv), 100, stopped, &s1), TC_OK);
    run_until(loop, &s1.done, 1);
    CHECK(s1.done && s1.report.kind == TC_HANDLE_SERVER && s1.report.graceful + s1.report.forced == 1,
          "server stop report: done %d, %u graceful, %u forced", s1.done, s1.report.graceful, s1.report.forced);
    tc_dns_server_stats_t q0;
    tc_dns_server_stats(dns, &q0);
    srv = echo_on(loop, port);
    run_until(loop, &seen.opened, 2);
    CHECK(seen.opened == 2, "no reconnect after the server came back");
    tc_dns_server_stats_t q1;
    tc_dns_server_stats(dns, &q1);
    CHECK(q1.answered > q0.answered, "the reconnect did not ask the name again");

    /* The client's stop through the one entry: its open connection closes gracefully. */
    stopped_t s2 = {0};
    CHECK_RC(tc_handle_stop(tc_client_handle(cl), 500, stopped, &s2), TC_OK);
    CHECK_RC(tc_handle_stop(tc_client_handle(cl), 500, stopped, &s2), TC_ECLOSED);
    run_until(loop, &s2.done, 1);
    CHECK(s2.done && s2.report.kind == TC_HANDLE_CLIENT && s2.report.graceful == 1 && s2.report.bytes_freed > 0,
          "client stop report: done %d, %u graceful, %zu bytes", s2.done, s2.report.graceful, s2.report.bytes_freed);

    /* The server's stop_wait: its bytes_freed is exactly the heap's decrease over the stop. */
    tc_alloc_stats_t before, after;
    tc_alloc_stats(&before);
    tc_stop_report_t r;
    CHECK_RC(tc_handle_stop_wait(tc_server_handle(srv), 200, &r), TC_OK);
    tc_alloc_stats(&after);
    CHECK(r.bytes_freed == before.bytes_in_use - after.bytes_in_use, "server: reported %zu, heap fell by %zu",
          r.bytes_freed, before.bytes_in_use - after.bytes_in_use);
    tc_alloc_stats(&before);
    CHECK_RC(tc_handle_stop_wait(tc_dns_server_handle(dns), 0, &r), TC_OK);
    tc_alloc_stats(&after);
    CHECK(r.kind == TC_HANDLE_DNS && r.bytes_freed == before.bytes_in_use - after.bytes_in_use && r.bytes_freed > 0,
          "dns: reported %zu, heap fell by %zu", r.bytes_freed, before.bytes_in_use - after.bytes_in_use);
    CHECK_RC(tc_loop_free(loop), TC_OK);
    tc_resolver_stats(&rs1);
    CHECK(rs1.threads_started == rs0.threads_started && rs1.fallbacks == rs0.fallbacks, "a thread was used");
    CHECK(rs1.udp_answers >= rs0.udp_answers + 2, "%llu answers", (unsigned long long)rs1.udp_answers);
    printf("ok   resolve: a name via the loop's UDP question, reconnect asks again, no thread; exact stop reports\n");
}

/* A question nobody answers, then the client stops: its socket and memory are released, the loop frees. */
static void test_stop_during_an_unanswered_question(void)
{
    tc_loop_t *loop = NULL;
    CHECK_RC(tc_loop_new(&loop), TC_OK);
    /* A bound UDP socket that never reads: the questions arrive and nothing answers. (A closed port would not do:
     * its ICMP port unreachable ends the question at once, test_closed_nameserver_port().) */
    int quiet = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    CHECK(quiet >= 0 && bind(quiet, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
              getsockname(quiet, (struct sockaddr *)&sin, &slen) == 0,
          "a silent UDP socket on loopback");
    uint16_t silent = ntohs(sin.sin_port);

    for (int deadline = 0; deadline <= 300; deadline += 300) {
        seen_t seen = {0};
        tc_client_config_t ccfg = asking("quiet.example.test", 9, silent, &seen);
        ccfg.connect_timeout_ms = 150;
        ccfg.reconnect = deadline != 0;
        tc_client_t *cl = NULL;
        CHECK_RC(tc_client_start(loop, &ccfg, &cl), TC_OK);
        tc_client_stats_t st = first_failure(loop, cl, 100);
        CHECK(st.failures >= 1 && st.last_error == TC_ETIMEDOUT, "failures %u, last error %s", st.failures,
              tc_err_name(st.last_error));
        stopped_t s = {0};
        CHECK_RC(tc_handle_stop(tc_client_handle(cl), (uint32_t)deadline, stopped, &s), TC_OK);
        run_until(loop, &s.done, 1);
        CHECK(s.done && s.report.graceful == 0 && s.report.forced == 0, "stop of a client that never connected");
        CHECK(seen.opened == 0, "opened without an answer");
    }
    CHECK_RC(tc_loop_free(loop), TC_OK);
    close(quiet);
    printf("ok   resolve: unanswered questions time out (TC_ETIMEDOUT) and a stop mid-question frees everything\n");
}

/* A nameserver port nobody listens on: the kernel's ICMP port unreachable reaches the connected question socket,
 * and the attempt fails with TC_ERESOLVE at once, long before its timeout (60 s here). */
static void test_closed_nameserver_port(void)
{
    tc_loop_t *loop = NULL;
    CHECK_RC(tc_loop_new(&loop), TC_OK);
    tc_dns_server_config_t dcfg = TC_DNS_SERVER_DEFAULT_CONFIG(); /* bound, then stopped: its port is closed */
    dcfg.port = 0;
    tc_dns_server_t *dns = NULL;
    CHECK_RC(tc_dns_server_start(loop, &dcfg, &dns), TC_OK);
    uint16_t closed = tc_dns_server_port(dns);
    tc_dns_server_stop(dns);
    seen_t seen = {0};
    tc_client_config_t ccfg = asking("dead.example.test", 9, closed, &seen);
    ccfg.connect_timeout_ms = 60000;
    ccfg.reconnect = false;
    tc_client_t *cl = NULL;
    CHECK_RC(tc_client_start(loop, &ccfg, &cl), TC_OK);
    tc_client_stats_t st = first_failure(loop, cl, 1000); /* 10 s at most: a generous "did not wait 60 s" */
    CHECK(st.failures == 1 && st.last_error == TC_ERESOLVE, "failures %u, last error %s", st.failures,
          tc_err_name(st.last_error));
    stopped_t s = {0};
    CHECK_RC(tc_handle_stop(tc_client_handle(cl), 0, stopped, &s), TC_OK);
    run_until(loop, &s.done, 1);
    CHECK_RC(tc_loop_free(loop), TC_OK);
    printf("ok   resolve: a closed nameserver port fails the attempt at once (TC_ERESOLVE)\n");
}

int main(void)
{
    test_name_connects_and_reconnects_without_a_thread();
    test_stop_during_an_unanswered_question();
    test_closed_nameserver_port();
    tc_alloc_stats_t a;
    tc_alloc_stats(&a);
    CHECK(a.bytes_in_use == 0 && a.blocks_in_use == 0, "%zu bytes in %zu blocks left", a.bytes_in_use, a.blocks_in_use);
    printf("ok   0 bytes of the core's heap left\n");
    return 0;
}
