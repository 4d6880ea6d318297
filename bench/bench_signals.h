/*
 * bench_signals.h - how the tcp_core benchmark servers (tc_echo.c, tc_http_ws.c) take their signals: SIGTERM and
 * SIGINT stop the loop, SIGUSR1 prints the stats. The signals are blocked and read from a signalfd that the loop
 * watches like any descriptor (tc_watch_add()), so the handling runs on the loop and the process keeps one thread,
 * as libuv's uv_signal_t keeps uv_echo's. (A second thread, even an idle one, makes glibc wrap every recv() and
 * send() in its cancellation bookkeeping: about 100 user-space instructions per TCP echo, one recv() and one send(),
 * that the single-threaded peers do not pay.)
 */
#pragma once

#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "tc_err.h"
#include "tc_loop.h"

typedef struct {
    tc_loop_t *loop;   /* the server's loop */
    tc_post_cb stats;  /* runs on the loop for SIGUSR1 */
    const char *name;  /* the program's name, for its error messages */
    int fd;            /* the signalfd, -1 before bench_signals_start() */
    tc_watch_t *watch; /* the loop's watch on it */
} bench_signals_t;

static void bench_signal_ready(tc_watch_t *watch, int fd, int revents, void *user)
{
    (void)watch;
    (void)revents;
    bench_signals_t *bs = user;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGUSR1) {
            bs->stats(bs->loop, NULL);
        } else {
            tc_loop_stop(bs->loop);
        }
    }
}

/* Block SIGTERM, SIGINT and SIGUSR1 and watch them on bs->loop. Returns 0, or -1 after printing why. */
static int bench_signals_start(bench_signals_t *bs)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    bs->watch = NULL;
    bs->fd = -1;
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0) {
        perror(bs->name);
        return -1;
    }
    bs->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (bs->fd < 0) {
        perror(bs->name);
        return -1;
    }
    int rc = tc_watch_add(bs->loop, bs->fd, TC_POLLIN, bench_signal_ready, bs, &bs->watch);
    if (rc != TC_OK) {
        fprintf(stderr, "%s: cannot watch the signals: %s\n", bs->name, tc_strerror(rc));
        close(bs->fd);
        bs->fd = -1;
        return -1;
    }
    return 0;
}

/* Remove the watch and close the signalfd (before tc_loop_free()). */
static void bench_signals_stop(bench_signals_t *bs)
{
    if (bs->watch != NULL) {
        tc_watch_remove(bs->watch);
        bs->watch = NULL;
    }
    if (bs->fd >= 0) {
        close(bs->fd);
        bs->fd = -1;
    }
}
