/*
 * test_registry_ext.c - external sockets in the registry (tc_registry_ext.h): tracked from other threads over a
 * running loop, with their addresses and flags, removed on close, parked under memory exhaustion, and nothing left
 * behind (tc_loop_free() refuses while an entry is outstanding, no tcp_core heap byte remains).
 *
 * Build (from the repository root):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix \
 *         host_tests/c/test_registry_ext.c \
 *         $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') $C/src/tc_registry_ext.c \
 *         $C/port/linux/tc_sock_linux.c -lpthread -o build/test_registry_ext
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_registry.h"
#include "tc_registry_ext.h"
#include "tc_tcp.h"
#include "tc_check.h"
#include "tc_loop_thread.h"

/* ---- registry views taken on the loop thread ---- */

#define SNAP_MAX 64

typedef struct {
    tc_sock_info_t s[SNAP_MAX];
    uint32_t n;
} snap_t;

static void snap_fn(void *arg)
{
    snap_t *sn = arg;
    sn->n = tc_registry_snapshot(g_loop, sn->s, SNAP_MAX);
}

static void snap(snap_t *sn)
{
    on_loop(snap_fn, sn);
    CHECK(sn->n <= SNAP_MAX, "registry holds %u entries, more than the test expects", sn->n);
}

static int count_external(const snap_t *sn, const char *owner)
{
    int n = 0;
    for (uint32_t i = 0; i < sn->n; i++) {
        if (sn->s[i].kind == TC_KIND_EXTERNAL && (owner == NULL || strcmp(sn->s[i].owner, owner) == 0)) {
            n++;
        }
    }
    return n;
}

static const tc_sock_info_t *find_external(const snap_t *sn, const char *owner)
{
    for (uint32_t i = 0; i < sn->n; i++) {
        if (sn->s[i].kind == TC_KIND_EXTERNAL && strcmp(sn->s[i].owner, owner) == 0) {
            return &sn->s[i];
        }
    }
    return NULL;
}

/* ---- a real TCP connection: tc_loop_thread.h's echo server, its kernel client socket as the "external" one ---- */

/* ---- scenarios ---- */

static void test_open_flags_close(int fd)
{
    tc_ext_sock_t *s = NULL;
    CHECK(tc_ext_sock_open(g_loop, fd, "ext-a", &s) == TC_OK && s != NULL, "tc_ext_sock_open");
    snap_t sn;
    snap(&sn);
    const tc_sock_info_t *e = find_external(&sn, "ext-a");
    CHECK(e != NULL, "the external socket is not in the registry");
    CHECK(e->fd == fd, "fd %d, expected %d", e->fd, fd);
    CHECK(e->state == TC_STATE_OPEN, "state %d", e->state);
    CHECK(e->flags == 0, "flags %d", e->flags);
    CHECK(e->peer.family == TC_AF_INET && e->peer.port == g_port, "peer port %u, expected %u", e->peer.port, g_port);
    CHECK(e->local.family == 0, "an external entry reports its peer only, local family %d", e->local.family);

    tc_ext_sock_set_flags(s, TC_REG_FLAG_STREAMING, 0);
    CHECK(tc_ext_sock_flags(s) == TC_REG_FLAG_STREAMING, "tc_ext_sock_flags after set");
    snap(&sn);
    e = find_external(&sn, "ext-a");
    CHECK(e && e->flags == TC_REG_FLAG_STREAMING, "streaming flag not shown");
    tc_ext_sock_set_flags(s, 0, TC_REG_FLAG_STREAMING);
    snap(&sn);
    e = find_external(&sn, "ext-a");
    CHECK(e && e->flags == 0, "streaming flag not cleared");

    tc_ext_sock_close(s);
    snap(&sn);
    CHECK(count_external(&sn, NULL) == 0, "entry left after close");
}

static void test_invalid(void)
{
    tc_ext_sock_t *s = NULL;
    CHECK(tc_ext_sock_open(NULL, 3, "x", &s) == TC_EINVAL, "NULL loop");
    CHECK(tc_ext_sock_open(g_loop, -1, "x", &s) == TC_EINVAL, "negative fd");
    CHECK(tc_ext_sock_open(g_loop, 3, NULL, &s) == TC_EINVAL, "NULL owner");
    CHECK(tc_ext_sock_open(g_loop, 3, "x", NULL) == TC_EINVAL, "NULL out");
    tc_ext_sock_set_flags(NULL, 1, 0);
    tc_ext_sock_close(NULL);
    CHECK(tc_ext_sock_flags(NULL) == 0, "flags of NULL");
}

/* A removal whose post cannot be allocated is parked and carried out by the next external post of the loop. */
static void test_parked_close(int fd)
{
    tc_ext_sock_t *a = NULL, *b = NULL;
    CHECK(tc_ext_sock_open(g_loop, fd, "ext-park", &a) == TC_OK, "open a");
    snap_t sn;
    snap(&sn);
    CHECK(count_external(&sn, "ext-park") == 1, "a not tracked");

    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    tc_alloc_set_limit(st.bytes_in_use); /* every allocation fails: the removal post cannot be made */
    tc_ext_sock_t *refused = NULL;
    CHECK(tc_ext_sock_open(g_loop, fd, "ext-refused", &refused) == TC_ENOMEM, "open under exhaustion");
    tc_ext_sock_close(a);
    tc_alloc_set_limit(0);

    snap(&sn);
    CHECK(count_external(&sn, "ext-park") == 1, "a parked entry must stay listed until a later post");
    CHECK(count_external(&sn, "ext-refused") == 0, "a refused open must not be tracked");
    CHECK(tc_ext_sock_open(g_loop, fd, "ext-later", &b) == TC_OK, "open b");
    snap(&sn);
    CHECK(count_external(&sn, "ext-park") == 0, "the parked removal was not carried out by the next post");
    CHECK(count_external(&sn, "ext-later") == 1, "b not tracked");
    tc_ext_sock_close(b);
    snap(&sn);
    CHECK(count_external(&sn, NULL) == 0, "entries left");
}

/* Parked before its own add ran: the add is still queued, so the add carries out the removal. */
static void test_parked_before_add(int fd)
{
    loop_join(); /* the loop is not running: the add stays queued */
    tc_ext_sock_t *a = NULL;
    CHECK(tc_ext_sock_open(g_loop, fd, "ext-early", &a) == TC_OK, "open");
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    tc_alloc_set_limit(st.bytes_in_use);
    tc_ext_sock_close(a);
    tc_alloc_set_limit(0);
    CHECK(tc_loop_free(g_loop) == TC_EBUSY, "tc_loop_free must refuse while an entry is outstanding");
    loop_start();
    snap_t sn;
    snap(&sn);
    CHECK(count_external(&sn, NULL) == 0, "an entry parked before its add was left in the registry");
}

typedef struct {
    int fd;
    int rounds;
} worker_t;

static void *worker(void *arg)
{
    worker_t *w = arg;
    for (int i = 0; i < w->rounds; i++) {
        tc_ext_sock_t *s = NULL;
        CHECK(tc_ext_sock_open(g_loop, w->fd, "ext-race", &s) == TC_OK, "open in worker");
        tc_ext_sock_set_flags(s, TC_REG_FLAG_STREAMING, 0);
        if (i % 3 == 0) {
            tc_ext_sock_set_flags(s, 0, TC_REG_FLAG_STREAMING);
        }
        tc_ext_sock_close(s);
    }
    return NULL;
}

static void test_threads(int fd)
{
    enum { N = 4 };
    pthread_t th[N];
    worker_t w = {.fd = fd, .rounds = 300};
    for (int i = 0; i < N; i++) {
        CHECK(pthread_create(&th[i], NULL, worker, &w) == 0, "pthread_create");
    }
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
    }
    snap_t sn;
    snap(&sn);
    CHECK(count_external(&sn, NULL) == 0, "%d entries left after the threads", count_external(&sn, NULL));
}

int main(void)
{
    loop_open();
    on_loop(echo_start_fn, NULL);
    int fd = echo_connect();

    test_invalid();
    test_open_flags_close(fd);
    test_parked_close(fd);
    test_parked_before_add(fd);
    test_threads(fd);

    /* An outstanding entry keeps tc_loop_free() from freeing the loop. */
    tc_ext_sock_t *last = NULL;
    CHECK(tc_ext_sock_open(g_loop, fd, "ext-last", &last) == TC_OK, "open last");
    close(fd);
    stop_on_loop(tc_server_handle(g_server), 500, 2000);
    loop_join();
    CHECK(tc_loop_free(g_loop) == TC_EBUSY, "tc_loop_free must refuse while an external socket is tracked");
    tc_ext_sock_close(last);
    CHECK(tc_loop_run_once(g_loop, 0) >= 0, "run the removal");
    CHECK(tc_loop_free(g_loop) == TC_OK, "tc_loop_free after the last close");
    heap_back_to_zero();
    printf("test_registry_ext: OK\n");
    return 0;
}
