/*
 * bench_signals.h - how the tcp_core benchmark servers (tc_echo.c, tc_http_ws.c) take their signals: SIGTERM and
 * SIGINT stop the loop, SIGUSR1 posts a stats print to it. The signals are blocked in every thread
 * (bench_signal_set() + pthread_sigmask() in main) and taken by one watcher thread with sigwait(), which reaches the
 * loop only through tc_loop_post() / tc_loop_stop(); main cancels the watcher at exit.
 */
#pragma once

#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include "tc_err.h"
#include "tc_loop.h"

typedef struct {
    tc_loop_t *loop;    /* the server's loop */
    tc_post_cb stats;   /* runs on the loop for SIGUSR1 */
    const char *name;   /* the program's name, for its one error message */
} bench_signals_t;

/* The signals the watcher takes. */
static void bench_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGUSR1);
}

/* The watcher: arg is a bench_signals_t that outlives it. */
static void *bench_signal_thread(void *arg)
{
    const bench_signals_t *bs = arg;
    sigset_t set;
    bench_signal_set(&set);
    for (;;) {
        int sig = 0;
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        int rc = sigwait(&set, &sig);
        /* The loop calls below take the post mutex: no cancellation while inside them. */
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        if (rc != 0) {
            continue;
        }
        if (sig == SIGUSR1) {
            if (tc_loop_post(bs->loop, bs->stats, NULL) != TC_OK) {
                fprintf(stderr, "%s: cannot post the stats request\n", bs->name);
            }
        } else {
            tc_loop_stop(bs->loop);
        }
    }
    return NULL;
}
