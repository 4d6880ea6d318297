/* C-level run of the core for the sanitizers (ASan/UBSan) and -m32: loop, timers, posts from another thread, an echo
 * server and a client on one loop exchanging 4 MiB (single writes and messages in pieces, checked byte for byte),
 * stop with a deadline, and 0 bytes left in the allocation hook. */
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
#include "tc_tcp.h"
#include "tc_check.h"

#define TOTAL (4u * 1024u * 1024u)

typedef struct {
    size_t sent, received;
    unsigned msgs;
    int opened, closed, reason, mismatch;
    tc_loop_t *loop;
} peer_t;

static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 2654435761u) >> 13);
}

/* The shapes of the tc_conn_sendv() messages. Short: six pieces that fit the gather buffer (one send). Long (105 KiB):
 * more than TC_SOCK_IOV_MAX vectors, small pieces (joined in the gather buffer) between large ones (sent as they are),
 * an empty one; its first 8 vectors hold more than Linux takes at once on loopback with a full send buffer (one
 * 64 KiB segment), so the write is cut in the middle of a piece. */
static const size_t short_len[] = {1, 7, 2100, 13, 0, 40};
static const size_t long_len[] = {30000, 1,  7, 45000, 13,  0,  40,   3000, 5, 5, 5,  900,
                                  2049,  64, 1, 4096,  300, 17, 2500, 9,    1, 3, 11, 20000};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static size_t sum_of(const size_t *len, size_t count)
{
    size_t sum = 0;
    for (size_t i = 0; i < count; i++) {
        sum += len[i];
    }
    return sum;
}

/* Send the next n bytes of the pattern from buf as one message: one piece (len NULL), or cut at len[0..count). */
static int send_msg(tc_conn_t *conn, const uint8_t *buf, size_t n, const size_t *len, size_t count)
{
    if (len == NULL) {
        return tc_conn_send(conn, buf, n);
    }
    tc_buf_t v[COUNT(long_len) + 1];
    size_t k = 0, off = 0;
    for (size_t i = 0; i < count && off < n; i++) {
        size_t piece = len[i] < n - off ? len[i] : n - off;
        v[k++] = (tc_buf_t){buf + off, piece};
        off += piece;
    }
    if (off < n) {
        v[k++] = (tc_buf_t){buf + off, n - off};
    }
    return tc_conn_sendv(conn, v, k);
}

/* Send while the queue is below its cap, every message a different shape: one tc_conn_send() of 16 KiB, a short
 * tc_conn_sendv() and a long one, in turn. The cap alternates every 64 KiB sent: up to 64 KiB queued (the pieces
 * of later messages are copied onto the queue), or none (each stretch ends in a write the small socket buffer cuts,
 * in the middle of a message's pieces). */
static void pump(tc_conn_t *conn, peer_t *p)
{
    static uint8_t buf[128 * 1024];
    while (p->sent < TOTAL && tc_conn_queued(conn) < ((p->sent / 65536) % 2 ? 1u : 64u * 1024u)) {
        unsigned shape = p->msgs % 3;
        const size_t *len = shape == 0 ? NULL : shape == 1 ? short_len : long_len;
        size_t count = shape == 0 ? 0 : shape == 1 ? COUNT(short_len) : COUNT(long_len);
        size_t want = shape == 0 ? 16384 : sum_of(len, count);
        size_t n = TOTAL - p->sent < want ? TOTAL - p->sent : want;
        for (size_t i = 0; i < n; i++) {
            buf[i] = pattern(p->sent + i);
        }
        if (send_msg(conn, buf, n, len, count) != TC_OK) {
            return;
        }
        p->sent += n;
        p->msgs++;
    }
}

static void client_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    peer_t *p = user;
    const uint8_t *b = data;
    switch (ev) {
    case TC_EV_OPEN:
        p->opened++;
        /* A send buffer far below the messages' size: the kernel takes part of a write. */
        setsockopt(tc_conn_fd(conn), SOL_SOCKET, SO_SNDBUF, &(int){4096}, sizeof(int));
        pump(conn, p);
        break;
    case TC_EV_DATA:
        for (size_t i = 0; i < len; i++) {
            p->mismatch += b[i] != pattern(p->received + i);
        }
        p->received += len;
        pump(conn, p);
        if (p->received == TOTAL) {
            tc_loop_stop(p->loop);
        }
        break;
    case TC_EV_DRAINED:
        pump(conn, p);
        break;
    case TC_EV_CLOSE:
        p->closed++;
        p->reason = (int)len;
        break;
    default:
        break;
    }
}

static int64_t count_timer(tc_timer_t *t, void *user)
{
    (void)t;
    int *n = user;
    return ++*n < 5 ? 1 : TC_TIMER_STOP;
}

static void posted(tc_loop_t *loop, void *user)
{
    int *n = user;
    __atomic_add_fetch(n, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(n, __ATOMIC_SEQ_CST) == 100) {
        tc_loop_stop(loop);
    }
}

static void *poster(void *arg)
{
    void **a = arg;
    for (int i = 0; i < 100; i++) {
        tc_loop_post(a[0], posted, a[1]);
    }
    return NULL;
}

static void stopped(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    *(tc_stop_report_t *)user = *r;
}

static void client_freed(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    (void)r;
    *(int *)user = 1;
}

/* ---- descriptor slots: a watch removed during a dispatch gets no event from it, one added gets only its own ---- */

typedef struct {
    int fds[3][2]; /* three socketpairs: [i][0] watched, [i][1] written */
    tc_watch_t *w[3];
    int calls[3];
    int wrong_fd;
    int after_removal; /* events delivered to watch 1 after it was removed */
    int removed;
    tc_loop_t *loop;
} slots_t;

static void slot_cb(tc_watch_t *watch, int fd, int revents, void *user);

static int slot_index(slots_t *s, tc_watch_t *watch)
{
    for (int i = 0; i < 3; i++) {
        if (s->w[i] == watch) {
            return i;
        }
    }
    return -1;
}

static void slot_cb(tc_watch_t *watch, int fd, int revents, void *user)
{
    slots_t *s = user;
    (void)revents;
    int i = slot_index(s, watch);
    if (i < 0) {
        s->after_removal++; /* a watch nobody holds any more: only a stale event could reach it */
        return;
    }
    s->calls[i]++;
    if (fd != s->fds[i][0]) {
        s->wrong_fd++;
    }
    char buf[16];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    if (i == 0 && !s->removed) {
        /* Inside the dispatch: drop watch 1 (its event may be in this very batch) and add watch 2, which may not
         * inherit watch 1's slot before this dispatch is over. */
        s->removed = 1;
        tc_watch_remove(s->w[1]);
        s->w[1] = NULL;
        EXPECT(tc_watch_add(s->loop, s->fds[2][0], TC_POLLIN, slot_cb, s, &s->w[2]) == TC_OK);
    }
}

static void test_watch_slots(void)
{
    tc_loop_t *loop = NULL;
    EXPECT(tc_loop_new(&loop) == TC_OK);
    slots_t s;
    memset(&s, 0, sizeof(s));
    s.loop = loop;
    for (int i = 0; i < 3; i++) {
        EXPECT(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s.fds[i]) == 0);
    }
    EXPECT(tc_watch_add(loop, s.fds[0][0], TC_POLLIN, slot_cb, &s, &s.w[0]) == TC_OK);
    EXPECT(tc_watch_add(loop, s.fds[1][0], TC_POLLIN, slot_cb, &s, &s.w[1]) == TC_OK);
    /* Both readable before the one wait that returns them together (epoll: in that order). Watch 2's descriptor
     * stays silent for now, so any call it gets in this dispatch would be watch 1's stale event in a reused slot. */
    EXPECT(write(s.fds[0][1], "x", 1) == 1);
    EXPECT(write(s.fds[1][1], "x", 1) == 1);
    EXPECT(tc_loop_run_once(loop, 1000) >= 1);
    EXPECT(s.removed == 1 && s.calls[0] == 1);
    EXPECT(s.calls[1] <= 1); /* it may have run before watch 0 in the batch, never after its removal */
    EXPECT(s.calls[2] == 0);
    EXPECT(write(s.fds[2][1], "x", 1) == 1);
    for (int i = 0; i < 5 && s.calls[2] == 0; i++) {
        tc_loop_run_once(loop, 100);
    }
    EXPECT(s.calls[2] >= 1 && s.wrong_fd == 0 && s.after_removal == 0);
    /* A slot freed in a dispatch is reused by a later add: the set does not grow with churn. */
    for (int round = 0; round < 50; round++) {
        tc_watch_t *w = NULL;
        EXPECT(tc_watch_add(loop, s.fds[1][0], TC_POLLIN, slot_cb, &s, &w) == TC_OK);
        tc_watch_remove(w);
        tc_loop_run_once(loop, 0);
    }
    tc_watch_remove(s.w[0]);
    tc_watch_remove(s.w[2]);
    EXPECT(tc_loop_free(loop) == TC_OK);
    for (int i = 0; i < 3; i++) {
        close(s.fds[i][0]);
        close(s.fds[i][1]);
    }
}

int main(void)
{
    test_watch_slots();

    tc_loop_t *loop = NULL;
    EXPECT(tc_loop_new(&loop) == TC_OK);

    int ticks = 0;
    tc_timer_t *timer = NULL;
    EXPECT(tc_timer_start(loop, 1, count_timer, &ticks, &timer) == TC_OK);
    EXPECT(tc_loop_run_for(loop, 200) == TC_OK);
    EXPECT(ticks == 5);

    int posts = 0;
    void *args[2] = {loop, &posts};
    pthread_t th;
    pthread_create(&th, NULL, poster, args);
    EXPECT(tc_loop_run_for(loop, 5000) == TC_OK);
    pthread_join(th, NULL);
    EXPECT(posts == 100);

    tc_server_config_t scfg = TC_SERVER_DEFAULT_CONFIG();
    scfg.host = "127.0.0.1";
    scfg.cb = tc_echo_cb;
    scfg.name = "echo";
    tc_server_t *srv = NULL;
    EXPECT(tc_server_start(loop, &scfg, &srv) == TC_OK);
    EXPECT(tc_server_port(srv) != 0);

    peer_t p = {.loop = loop};
    tc_client_config_t ccfg = TC_CLIENT_DEFAULT_CONFIG();
    ccfg.host = "127.0.0.1";
    ccfg.port = tc_server_port(srv);
    ccfg.reconnect = false;
    ccfg.cb = client_cb;
    ccfg.user = &p;
    tc_client_t *cl = NULL;
    EXPECT(tc_client_start(loop, &ccfg, &cl) == TC_OK);
    EXPECT(tc_loop_run_for(loop, 20000) == TC_OK);
    EXPECT(p.opened == 1);
    EXPECT(p.received == TOTAL);
    EXPECT(p.mismatch == 0);
    EXPECT(tc_registry_count(loop) == 3);

    /* Bad input: port 0 and a malformed address are refused with their codes, nothing is left allocated. */
    tc_client_config_t bad = ccfg;
    bad.port = 0;
    tc_client_t *none = NULL;
    EXPECT(tc_client_start(loop, &bad, &none) == TC_EBADPORT && none == NULL);
    tc_server_config_t bads = scfg;
    bads.host = "300.1.1.1";
    tc_server_t *nos = NULL;
    EXPECT(tc_server_start(loop, &bads, &nos) == TC_EBADADDR && nos == NULL);

    /* The stop's graceful close sends the server's FIN at once; the client's core answers it with its own FIN (a
     * peer's FIN closes a connection), so the connection ends gracefully long before the deadline. Under the old
     * peer-first default the server waited for a FIN the client had no reason to send and forced it at the deadline. */
    tc_stop_report_t rep;
    memset(&rep, 0xff, sizeof(rep));
    uint64_t t0 = tc_now_ms();
    EXPECT(tc_handle_stop(tc_server_handle(srv), 100, stopped, &rep) == TC_OK);
    while (rep.graceful == 0xffffffffu && tc_now_ms() - t0 < 2000) {
        tc_loop_run_once(loop, 10);
    }
    EXPECT(rep.forced == 0 && rep.graceful == 1);
    EXPECT(rep.elapsed_ms <= 150);
    int client_done = 0;
    EXPECT(tc_handle_stop(tc_client_handle(cl), 1000, client_freed, &client_done) == TC_OK);
    for (int i = 0; i < 100 && !client_done; i++) {
        tc_loop_run_once(loop, 10);
    }
    EXPECT(client_done == 1);
    EXPECT(p.closed == 1);
    EXPECT(tc_registry_count(loop) == 0);
    EXPECT(tc_loop_free(loop) == TC_OK);

    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    EXPECT(st.bytes_in_use == 0 && st.blocks_in_use == 0);
    if (tc_check_failed) {
        return tc_check_summary();
    }
    printf("test_tcp_core: ok (%zu bytes echoed, peak heap %zu bytes)\n", p.received, st.bytes_peak);
    return 0;
}
