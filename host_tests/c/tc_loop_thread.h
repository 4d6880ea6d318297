/*
 * tc_loop_thread.h - a tcp_core loop running on its own thread, for the C tests that drive it from outside the way
 * an application's other tasks do (tc_loop_post()), and an echo server on it with a kernel client socket as its
 * peer. Include after tc_check.h, in one test file.
 *
 *     loop_open();           // tc_loop_new(&g_loop) and loop_start()
 *     on_loop(fn, arg);      // runs fn(arg) on the loop thread and waits for it
 *     on_loop(echo_start_fn, NULL); int fd = echo_connect();   // g_server, g_port
 *     stop_on_loop(h, 500, 2000);   // tc_handle_stop(h, 500, ...) on the loop thread, then wait for its callback
 *     loop_close();          // loop_join() (tc_loop_stop() and join) and tc_loop_free(g_loop), checked
 *     heap_back_to_zero();   // no block of the counted heap is left
 * Everything here is static inline: a test includes it whole and uses what it needs.
 */
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_loop.h"
#include "tc_tcp.h"

static tc_loop_t *g_loop;
static pthread_t g_thread;

static inline void *loop_main(void *arg)
{
    (void)arg;
    int rc = tc_loop_run(g_loop);
    CHECK(rc == TC_OK, "tc_loop_run: %s", tc_err_name(rc));
    return NULL;
}

static inline void loop_start(void)
{
    CHECK(pthread_create(&g_thread, NULL, loop_main, NULL) == 0, "pthread_create");
}

static inline void loop_join(void)
{
    tc_loop_stop(g_loop);
    pthread_join(g_thread, NULL);
}

/* A new loop, g_loop, running on its own thread. */
static inline void loop_open(void)
{
    CHECK_RC(tc_loop_new(&g_loop), TC_OK);
    loop_start();
}

/* End the loop's thread and free the loop: everything on it must be gone (tc_loop_free() refuses otherwise). */
static inline void loop_close(void)
{
    loop_join();
    CHECK_RC(tc_loop_free(g_loop), TC_OK);
}

/* The counted heap is empty: every path the test took freed what it allocated. */
static inline void heap_back_to_zero(void)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    CHECK(st.blocks_in_use == 0 && st.bytes_in_use == 0, "leaked %zu bytes in %zu blocks", st.bytes_in_use,
          st.blocks_in_use);
}

typedef struct {
    void (*fn)(void *arg);
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} call_t;

static inline void call_cb(tc_loop_t *loop, void *user)
{
    (void)loop;
    call_t *c = user;
    c->fn(c->arg);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Posts are FIFO: when fn runs, every post made before this call has run too. */
static inline void on_loop(void (*fn)(void *), void *arg)
{
    call_t c = {.fn = fn, .arg = arg, .done = 0};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    CHECK(tc_loop_post(g_loop, call_cb, &c) == TC_OK, "tc_loop_post");
    pthread_mutex_lock(&c.mu);
    while (!c.done) {
        pthread_cond_wait(&c.cv, &c.mu);
    }
    pthread_mutex_unlock(&c.mu);
    pthread_cond_destroy(&c.cv);
    pthread_mutex_destroy(&c.mu);
}

/* An echo server on 127.0.0.1 (a free port), started on the loop thread: on_loop(echo_start_fn, NULL). */
static tc_server_t *g_server;
static uint16_t g_port;

static inline void echo_start_fn(void *arg)
{
    (void)arg;
    tc_server_config_t cfg = TC_SERVER_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.cb = tc_echo_cb;
    cfg.name = "echo";
    int rc = tc_server_start(g_loop, &cfg, &g_server);
    CHECK(rc == TC_OK, "tc_server_start: %s", tc_err_name(rc));
    g_port = tc_server_port(g_server);
}

/* A blocking kernel socket connected to the echo server. */
static inline int echo_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect to the echo server");
    return fd;
}

/* ---- stopping a handle from the test thread ---- */

static tc_handle_t *g_stop_handle; /* written by the test thread before on_loop(), then read on the loop thread */
static uint32_t g_stop_deadline_ms;
static int g_stop_done; /* loop thread */

static inline void stop_done_cb(tc_handle_t *h, const tc_stop_report_t *report, void *user)
{
    (void)h;
    (void)report;
    (void)user;
    g_stop_done = 1;
}

static inline void stop_start_fn(void *arg)
{
    (void)arg;
    g_stop_done = 0;
    int rc = tc_handle_stop(g_stop_handle, g_stop_deadline_ms, stop_done_cb, NULL);
    CHECK(rc == TC_OK, "tc_handle_stop: %s", tc_err_name(rc));
}

static inline void stop_read_fn(void *arg)
{
    *(int *)arg = g_stop_done;
}

/* Stop handle h (deadline deadline_ms) on the running loop thread and wait, at most wait_ms, for its stop callback.
 * Checks that it came; the loop thread keeps running (loop_join() ends it). */
static inline void stop_on_loop(tc_handle_t *h, uint32_t deadline_ms, int wait_ms)
{
    g_stop_handle = h;
    g_stop_deadline_ms = deadline_ms;
    on_loop(stop_start_fn, NULL);
    int done = 0;
    for (int i = 0; i < wait_ms / 10 && !done; i++) { /* bounded */
        usleep(10000);
        on_loop(stop_read_fn, &done);
    }
    CHECK(done, "the handle did not report its stop within %d ms", wait_ms);
}
