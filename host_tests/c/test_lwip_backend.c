/*
 * test_lwip_backend.c - the lwIP backend (port/lwip/tc_sock_lwip.c, the chips' too, with the TAP shim tc_lwip_tap.c)
 * with real TCP: lwIP on its TAP address, Linux kernel sockets as peers in the same network namespace (the two
 * socket APIs do not mix: socket() is the kernel's, lwip_* / tc_sock_* are lwIP's).
 *
 * Runs inside a namespace made by tools/lwip_netns.sh, which also exports where lwIP lives:
 *     tools/lwip_netns.sh run tclwip build/test_lwip_backend
 * TC_LWIP_TAP (default tctap0) and TC_LWIP_ADDRESS (default 10.77.0.2/24) say which TAP and address lwIP takes,
 * TC_LWIP_PEER (default 10.77.0.1) is the Linux side of the TAP.
 *
 * One scenario per function; each ends with no lwIP pcb left on its port (unless the scenario is about TIME-WAIT),
 * and the end checks that no lwIP socket and no tcp_core heap byte is left.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lwip/sockets.h" /* lwip_setsockopt(SO_LINGER): measuring lwIP's own abortive close */
#include "tc_addr.h"
#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_sock.h"
#include "tc_tcp.h"
#include "tc_check.h"

/* port/lwip/tc_lwip_shim.h, the TAP shim's test hook: frames from the Linux side wait while on. */
void tc__lwip_tap_hold(int on);

static char g_ip[64] = "10.77.0.2";
static int g_prefix = 24;
static const char *g_tap = "tctap0";
static char g_peer[64] = "10.77.0.1"; /* the Linux side of the TAP */

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Let the loop (if any) run for a moment; lwIP itself runs on its own threads. */
static void pump(tc_loop_t *loop, int ms)
{
    if (loop) {
        int rc = tc_loop_run_once(loop, ms);
        CHECK(rc >= 0, "tc_loop_run_once: %s", tc_err_name(rc));
    } else {
        sleep_ms(ms);
    }
}

/* ---- kernel peers ---- */

static int k_connect(uint16_t port, int rcvbuf)
{
    int k = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(k >= 0, "kernel socket: %s", strerror(errno));
    if (rcvbuf > 0) {
        setsockopt(k, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, g_ip, &sin.sin_addr);
    int rc = connect(k, (struct sockaddr *)&sin, sizeof(sin));
    CHECK(rc == 0 || errno == EINPROGRESS, "kernel connect: %s", strerror(errno));
    struct pollfd p = {.fd = k, .events = POLLOUT};
    CHECK(poll(&p, 1, 5000) == 1, "kernel connect to %s:%u did not complete in 5 s", g_ip, port);
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(k, SOL_SOCKET, SO_ERROR, &err, &len);
    CHECK(err == 0, "kernel connect to %s:%u: %s", g_ip, port, strerror(err));
    return k;
}

/* What the kernel peer reads next, waiting up to ms while the loop runs: bytes (> 0), 0 for FIN, -errno for an
 * error (-ECONNRESET for RST), -EAGAIN when nothing came. Data before a FIN or an error is skipped over. */
static long k_outcome(int k, tc_loop_t *loop, int ms, size_t *skipped)
{
    char buf[16384];
    uint64_t end = tc_now_ms() + (uint64_t)ms;
    if (skipped) {
        *skipped = 0;
    }
    for (;;) {
        ssize_t n = recv(k, buf, sizeof(buf), 0);
        if (n == 0) {
            return 0;
        }
        if (n < 0 && errno != EAGAIN) {
            return -errno;
        }
        if (n > 0 && skipped) {
            *skipped += (size_t)n;
        }
        if (n > 0 && !skipped) {
            return n;
        }
        if (tc_now_ms() >= end) {
            return -EAGAIN;
        }
        pump(loop, 2);
    }
}

static void k_send_all(int k, const void *data, size_t len)
{
    const char *p = data;
    uint64_t end = tc_now_ms() + 5000;
    while (len > 0) {
        ssize_t n = send(k, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else {
            CHECK(n < 0 && errno == EAGAIN, "kernel send: %s", strerror(errno));
            CHECK(tc_now_ms() < end, "kernel send stalled");
            sleep_ms(1);
        }
    }
}

/* ---- tc_sock level helpers (no loop) ---- */

static int lw_wait(int fd, short events, int ms)
{
    tc_pollfd_t p = {.fd = fd, .events = events};
    int rc = tc_sock_poll(&p, 1, ms);
    CHECK(rc >= 0, "tc_sock_poll: %s", tc_err_name(rc));
    return rc ? p.revents : 0;
}

static int lw_listener(uint16_t *port)
{
    int ls = tc_sock_open(TC_AF_INET, TC_SOCK_STREAM);
    CHECK(ls >= 0, "tc_sock_open: %s", tc_err_name(ls));
    CHECK_RC(tc_sock_setopt(ls, TC_OPT_REUSEADDR, 1), TC_OK);
    tc_addr_t a;
    CHECK_RC(tc_addr_from_ip(g_ip, 0, &a), TC_OK);
    CHECK_RC(tc_sock_bind(ls, &a), TC_OK);
    CHECK_RC(tc_sock_listen(ls, 4), TC_OK);
    CHECK_RC(tc_sock_local_addr(ls, &a), TC_OK);
    CHECK(a.port != 0, "listener has no port");
    *port = a.port;
    return ls;
}

static int lw_accept(int ls)
{
    uint64_t end = tc_now_ms() + 5000;
    for (;;) {
        tc_addr_t peer;
        int c = tc_sock_accept(ls, &peer);
        if (c >= 0) {
            CHECK(peer.family != TC_AF_UNSPEC && peer.port != 0, "accept gave no peer address");
            return c;
        }
        CHECK(c == TC_EAGAIN, "tc_sock_accept: %s", tc_err_name(c));
        CHECK(tc_now_ms() < end, "nothing to accept in 5 s");
        lw_wait(ls, TC_POLLIN, 50);
    }
}

/* A connected pair: kernel k, lwIP a, with "ping" in and "pong" out and everything acknowledged. */
static void lw_pair(int ls, uint16_t port, int *k, int *a)
{
    *k = k_connect(port, 0);
    *a = lw_accept(ls);
    k_send_all(*k, "ping", 4);
    char buf[8];
    CHECK(lw_wait(*a, TC_POLLIN, 5000) & TC_POLLIN, "lwIP socket not readable after the peer's ping");
    CHECK(tc_sock_recv(*a, buf, sizeof(buf)) == 4 && memcmp(buf, "ping", 4) == 0, "lwIP did not read ping");
    CHECK(tc_sock_send(*a, "pong", 4) == 4, "lwIP could not send pong");
    CHECK(k_outcome(*k, NULL, 5000, NULL) == 4, "kernel peer did not read pong");
    uint64_t end = tc_now_ms() + 5000;
    long u;
    while ((u = tc_sock_unacked(*a)) != 0) {
        CHECK(u > 0, "tc_sock_unacked: %s", tc_err_name((int)u));
        CHECK(tc_now_ms() < end, "pong never acknowledged (unacked %ld)", u);
        sleep_ms(5);
    }
}

static void wait_counts(uint16_t port, int active, int tw, int ms, const char *what)
{
    uint64_t end = tc_now_ms() + (uint64_t)ms;
    int a, t;
    while ((a = tc_sock_active_count(port)) != active || (t = tc_sock_time_wait_count(port)) != tw) {
        if (tc_now_ms() >= end) {
            FATAL("%s: port %u has %d active and %d TIME-WAIT pcbs, want %d and %d", what, port, a,
                  tc_sock_time_wait_count(port), active, tw);
        }
        sleep_ms(5);
    }
}

/* ---- scenarios ---- */

static void test_global_init(void)
{
    CHECK(strcmp(tc_sock_backend(), "lwip") == 0, "backend is %s", tc_sock_backend());
    CHECK_RC(tc_sock_open(TC_AF_INET, TC_SOCK_STREAM), TC_EINVAL); /* before init: refused, not a crash */
    CHECK_RC(tc_sock_global_init(NULL), TC_EINVAL);
    tc_sock_env_t env = {.tap_name = "tcnosuchtap9", .prefix_len = (uint8_t)g_prefix};
    CHECK_RC(tc_addr_from_ip(g_ip, 0, &env.address), TC_OK);
    CHECK_RC(tc_sock_global_init(&env), TC_EIO); /* contrib's tapif would exit(1): the backend checks first */
    env.tap_name = g_tap;
    env.prefix_len = 0;
    CHECK_RC(tc_sock_global_init(&env), TC_EINVAL);
    env.prefix_len = (uint8_t)g_prefix;
    CHECK_RC(tc_sock_global_init(&env), TC_OK);
    CHECK_RC(tc_sock_global_init(NULL), TC_OK); /* idempotent: NULL asks for whatever runs */
    CHECK_RC(tc_sock_global_init(&env), TC_OK);  /* and the same env again is the same stack */
    tc_sock_env_t other = env;
    other.address.ip[3] ^= 1;
    CHECK_RC(tc_sock_global_init(&other), TC_EBUSY); /* once per process: another address is refused, not lost */
    other = env;
    other.prefix_len = (uint8_t)(g_prefix == 24 ? 16 : 24);
    CHECK_RC(tc_sock_global_init(&other), TC_EBUSY);
    tc_pollfd_t bad = {.fd = 4000, .events = TC_POLLIN};
    CHECK(tc_sock_poll(&bad, 1, 0) == 1 && bad.revents == TC_POLLNVAL, "poll on a non-socket: revents %d",
          bad.revents); /* lwip_poll() fails the call; the backend reports POLLNVAL like POSIX poll() */
    tc_addr_t a;
    CHECK_RC(tc_sock_resolve("10.1.2.3", 80, &a), TC_OK);
    CHECK(a.family == TC_AF_INET && a.port == 80 && a.ip[0] == 10 && a.ip[3] == 3, "resolve 10.1.2.3");
    CHECK_RC(tc_sock_resolve("no.such.name.invalid", 80, &a), TC_ERESOLVE); /* no LWIP_DNS in this build */
    printf("ok   global init (bad env, missing TAP, idempotent, another env refused), resolve, POLLNVAL\n");
}

static void on_post(tc_loop_t *loop, void *user)
{
    (void)loop;
    __atomic_store_n((int *)user, 1, __ATOMIC_SEQ_CST);
}

typedef struct {
    tc_loop_t *loop;
    int flag;
} poster_t;

static void *poster(void *arg)
{
    poster_t *p = arg;
    sleep_ms(100);
    tc_loop_post(p->loop, on_post, &p->flag);
    return NULL;
}

static void test_wake_from_other_thread(tc_loop_t *loop)
{
    /* The loop blocks in lwip_poll(); only the wake-up pair (UDP on lwIP's loopback) can end that wait early. */
    poster_t p = {.loop = loop, .flag = 0};
    pthread_t th;
    CHECK(pthread_create(&th, NULL, poster, &p) == 0, "pthread_create");
    uint64_t t0 = tc_now_ms();
    while (!__atomic_load_n(&p.flag, __ATOMIC_SEQ_CST) && tc_now_ms() - t0 < 3000) {
        pump(loop, 5000);
    }
    uint64_t took = tc_now_ms() - t0;
    pthread_join(th, NULL);
    CHECK(p.flag, "the post never ran");
    CHECK(took < 2000, "a post from another thread took %llu ms to wake the loop", (unsigned long long)took);
    printf("ok   wake-up from another thread (%llu ms)\n", (unsigned long long)took);
}

typedef struct {
    tc_conn_t *conn;
    int opens, closes, last_reason;
    size_t received;
} srv_t;

static void srv_cb(tc_conn_t *c, tc_event_t ev, const void *data, size_t len, void *user)
{
    srv_t *s = user;
    switch (ev) {
    case TC_EV_OPEN:
        s->conn = c;
        s->opens++;
        break;
    case TC_EV_DATA:
        s->received += len;
        tc_echo_cb(c, ev, data, len, NULL);
        break;
    case TC_EV_CLOSE:
        if (s->conn == c) {
            s->conn = NULL;
        }
        s->closes++;
        s->last_reason = (int)len;
        break;
    default:
        break;
    }
}

static int srv_connect(tc_loop_t *loop, srv_t *s, uint16_t port)
{
    int opens = s->opens;
    int k = k_connect(port, 0);
    uint64_t end = tc_now_ms() + 5000;
    while (s->opens == opens) {
        CHECK(tc_now_ms() < end, "the server never accepted");
        pump(loop, 5);
    }
    return k;
}

static void wait_close(tc_loop_t *loop, srv_t *s, int closes, int ms, const char *what)
{
    uint64_t end = tc_now_ms() + (uint64_t)ms;
    while (s->closes == closes) {
        CHECK(tc_now_ms() < end, "%s: no TC_EV_CLOSE in %d ms", what, ms);
        pump(loop, 5);
    }
}

static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 131u + (i >> 9));
}

static void test_echo_1mib(tc_loop_t *loop, srv_t *s, uint16_t port, int *k_out)
{
    enum { N = 1024 * 1024 };
    static uint8_t tx[N];
    for (size_t i = 0; i < N; i++) {
        tx[i] = pattern(i);
    }
    int k = srv_connect(loop, s, port);
    size_t sent = 0, got = 0;
    uint8_t buf[32768];
    uint64_t t0 = tc_now_ms(), end = t0 + 60000;
    while (got < N) {
        CHECK(tc_now_ms() < end, "echo stalled: sent %zu, got back %zu of %d", sent, got, N);
        pump(loop, 1);
        if (sent < N) {
            size_t want = N - sent > 65536 ? 65536 : N - sent;
            ssize_t n = send(k, tx + sent, want, MSG_NOSIGNAL);
            if (n > 0) {
                sent += (size_t)n;
            } else {
                CHECK(errno == EAGAIN, "kernel send: %s", strerror(errno));
            }
        }
        for (;;) {
            ssize_t n = recv(k, buf, sizeof(buf), 0);
            if (n < 0) {
                CHECK(errno == EAGAIN, "echo: kernel recv: %s", strerror(errno));
                break;
            }
            CHECK(n > 0, "echo: FIN after %zu bytes", got);
            CHECK(got + (size_t)n <= N, "echo: more bytes than sent");
            for (ssize_t i = 0; i < n; i++) {
                CHECK(buf[i] == pattern(got + (size_t)i), "echo: byte %zu differs", got + (size_t)i);
            }
            got += (size_t)n;
        }
    }
    CHECK(s->received == N, "server received %zu bytes", s->received);
    uint64_t ms = tc_now_ms() - t0;
    printf("ok   echo 1 MiB through lwIP (%llu ms)\n", (unsigned long long)ms);
    *k_out = k;
}

static void test_core_abort_after_all_acked(tc_loop_t *loop, srv_t *s, uint16_t port, int k)
{
    /* The connection from the echo test: every byte was echoed and read, so once lwIP has the last ACK its send queue
     * is empty - the case where SO_LINGER {1, 0} would send FIN. tc_sock_abort() must still send RST. */
    CHECK(s->conn != NULL, "no open connection");
    int fd = tc_conn_fd(s->conn);
    uint64_t end = tc_now_ms() + 5000;
    while (tc_sock_unacked(fd) != 0) {
        CHECK(tc_now_ms() < end, "the echo was never fully acknowledged (unacked %ld)", tc_sock_unacked(fd));
        pump(loop, 5);
    }
    CHECK(tc_sock_active_count(port) == 1, "want 1 active pcb on port %u", port);
    int closes = s->closes;
    CHECK_RC(tc_conn_close(s->conn, TC_CLOSE_ABORT), TC_OK);
    wait_close(loop, s, closes, 2000, "abort");
    CHECK(s->last_reason == TC_REASON_LOCAL, "close reason %d", s->last_reason);
    long r = k_outcome(k, loop, 3000, NULL);
    CHECK(r == -ECONNRESET, "after tc_sock_abort the kernel peer saw %s, want ECONNRESET",
          r == 0 ? "FIN" : r == -EAGAIN ? "nothing" : strerror((int)-r));
    close(k);
    wait_counts(port, 0, 0, 1000, "after abort");
    printf("ok   TC_CLOSE_ABORT with everything acknowledged: the peer gets RST, no pcb left\n");
}

static void test_core_default_close(tc_loop_t *loop, srv_t *s, uint16_t port)
{
    /* TC_CLOSE_GRACEFUL (the default): the kernel peer sees the server's FIN at once (a client reading to EOF has its
     * answer); when it closes in turn, the server frees its own TIME-WAIT pcb: nothing is left in lwIP. */
    int k = srv_connect(loop, s, port);
    k_send_all(k, "hello", 5);
    long n = k_outcome(k, loop, 3000, NULL);
    CHECK(n == 5, "echo of hello: %ld", n);
    int closes = s->closes;
    CHECK_RC(tc_conn_close_default(s->conn), TC_OK);
    n = k_outcome(k, loop, 3000, NULL);
    CHECK(n == 0, "after the default close the kernel peer saw %s, want FIN",
          n == -EAGAIN ? "nothing" : strerror((int)-n));
    CHECK(shutdown(k, SHUT_WR) == 0, "shutdown");
    wait_close(loop, s, closes, 2000, "graceful");
    CHECK(s->last_reason == TC_REASON_LOCAL, "close reason %d", s->last_reason);
    wait_counts(port, 0, 0, 2000, "after the graceful close (TIME-WAIT freed)");
    close(k);
    printf("ok   default close (graceful): FIN at once, the TIME-WAIT pcb freed once the peer's FIN came\n");
}

static void test_core_peer_first_close(tc_loop_t *loop, srv_t *s, uint16_t port)
{
    /* TC_CLOSE_PEER_FIRST: nothing is sent until the peer's FIN; then lwIP closes passively (LAST-ACK), so TIME-WAIT
     * lands on the kernel peer and none is left in lwIP. */
    int k = srv_connect(loop, s, port);
    k_send_all(k, "hello", 5);
    long n = k_outcome(k, loop, 3000, NULL);
    CHECK(n == 5, "echo of hello: %ld", n);
    int closes = s->closes;
    CHECK_RC(tc_conn_close(s->conn, TC_CLOSE_PEER_FIRST), TC_OK);
    n = k_outcome(k, loop, 150, NULL);
    CHECK(n == -EAGAIN, "peer-first sent something before the peer closed: %ld", n);
    CHECK(s->closes == closes, "peer-first closed before the peer did");
    CHECK(shutdown(k, SHUT_WR) == 0, "shutdown");
    wait_close(loop, s, closes, 2000, "peer-first");
    CHECK(s->last_reason == TC_REASON_LOCAL, "close reason %d", s->last_reason);
    n = k_outcome(k, loop, 3000, NULL);
    CHECK(n == 0, "after peer-first the kernel peer saw %s, want FIN",
          n == -EAGAIN ? "nothing" : strerror((int)-n));
    wait_counts(port, 0, 0, 2000, "after peer-first close");
    close(k);
    printf("ok   peer-first close: FIN only after the peer's, no TIME-WAIT pcb on lwIP\n");
}

static void test_core_linger_deadline(tc_loop_t *loop, srv_t *s, uint16_t port, uint32_t linger_ms)
{
    /* The peer never closes: at the linger deadline the connection is aborted - RST, TIME-WAIT nowhere. */
    int k = srv_connect(loop, s, port);
    int closes = s->closes;
    uint64_t t0 = tc_now_ms();
    CHECK_RC(tc_conn_close(s->conn, TC_CLOSE_PEER_FIRST), TC_OK);
    wait_close(loop, s, closes, (int)linger_ms + 2000, "linger deadline");
    uint64_t took = tc_now_ms() - t0;
    CHECK(s->last_reason == TC_REASON_LINGER, "close reason %d, want TC_REASON_LINGER", s->last_reason);
    CHECK(took + 50 >= linger_ms, "aborted after %llu ms, before the %u ms deadline", (unsigned long long)took,
          linger_ms);
    long r = k_outcome(k, loop, 3000, NULL);
    CHECK(r == -ECONNRESET, "at the linger deadline the kernel peer saw %s, want ECONNRESET",
          r == 0 ? "FIN" : r == -EAGAIN ? "nothing" : strerror((int)-r));
    close(k);
    wait_counts(port, 0, 0, 1000, "after linger deadline");
    printf("ok   peer-first linger deadline (%u ms): RST, no pcb left\n", linger_ms);
}

static void test_sock_unacked_and_abort_with_queue(void)
{
    /* A kernel peer with a tiny receive buffer that does not read: lwIP's send queue fills and stays full. */
    uint16_t port;
    int ls = lw_listener(&port);
    int k = k_connect(port, 2048);
    int a = lw_accept(ls);
    static char chunk[16384];
    memset(chunk, 'x', sizeof(chunk));
    size_t queued = 0;
    for (int i = 0; i < 64; i++) {
        long n = tc_sock_send(a, chunk, sizeof(chunk));
        if (n == TC_EAGAIN) {
            break;
        }
        CHECK(n > 0, "tc_sock_send: %s", tc_err_name((int)n));
        queued += (size_t)n;
    }
    sleep_ms(200);
    long u = tc_sock_unacked(a);
    CHECK(u > 0 && (size_t)u <= queued, "tc_sock_unacked = %ld with %zu bytes queued to a peer that does not read",
          u, queued);
    CHECK(tc_sock_unacked(ls) == TC_EINVAL, "tc_sock_unacked on a listener");
    CHECK_RC(tc_sock_abort(a), TC_OK);
    size_t skipped;
    long r = k_outcome(k, NULL, 5000, &skipped);
    CHECK(r == -ECONNRESET, "abort with a full queue: the kernel peer saw %s, want ECONNRESET",
          r == 0 ? "FIN" : r == -EAGAIN ? "nothing" : strerror((int)-r));
    close(k);
    wait_counts(port, 0, 0, 1000, "after abort with a full queue");
    CHECK_RC(tc_sock_close(ls), TC_OK);
    printf("ok   tc_sock_unacked (%ld of %zu bytes outstanding), abort with a full queue: RST (after %zu bytes)\n", u,
           queued, skipped);
}

static void test_sock_abort_vs_linger(void)
{
    uint16_t port;
    int ls = lw_listener(&port);
    int k, a;

    /* 1. tc_sock_abort() with everything acknowledged. */
    lw_pair(ls, port, &k, &a);
    CHECK_RC(tc_sock_abort(a), TC_OK);
    long r = k_outcome(k, NULL, 3000, NULL);
    CHECK(r == -ECONNRESET, "tc_sock_abort, all acked: the kernel peer saw %s, want ECONNRESET",
          r == 0 ? "FIN" : r == -EAGAIN ? "nothing" : strerror((int)-r));
    close(k);
    wait_counts(port, 0, 0, 1000, "after tc_sock_abort");
    printf("measured: tc_sock_abort() with everything acknowledged -> peer sees RST (ECONNRESET), no pcb left\n");

    /* 2. tc_sock_abort() on a socket whose pcb is in TIME-WAIT (we sent FIN first, then the peer did). */
    lw_pair(ls, port, &k, &a);
    CHECK_RC(tc_sock_shutdown_write(a), TC_OK);
    r = k_outcome(k, NULL, 3000, NULL);
    CHECK(r == 0, "after tc_sock_shutdown_write the kernel peer saw %ld, want FIN", r);
    close(k);
    wait_counts(port, 0, 1, 3000, "our FIN first, then the peer's");
    CHECK_RC(tc_sock_abort(a), TC_OK);
    wait_counts(port, 0, 0, 1000, "tc_sock_abort on a TIME-WAIT socket");
    printf("ok   tc_sock_abort on a socket in TIME-WAIT frees the TIME-WAIT pcb\n");

    /* 3. lwIP's own abortive close, SO_LINGER {1, 0}, with everything acknowledged (the quirk tc_sock_abort avoids). */
    lw_pair(ls, port, &k, &a);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(lwip_setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) == 0, "SO_LINGER: %s", strerror(errno));
    CHECK_RC(tc_sock_close(a), TC_OK);
    r = k_outcome(k, NULL, 3000, NULL);
    CHECK(r == 0 || r == -ECONNRESET, "SO_LINGER {1, 0} close: the kernel peer saw %ld", r);
    printf("measured: lwIP SO_LINGER {1, 0} + close with everything acknowledged -> peer sees %s\n",
           r == 0 ? "FIN (no RST)" : "RST");
    CHECK(r == 0, "lwIP's SO_LINGER {1, 0} sent RST: the quirk documented in tc_sock_lwip.c is gone in this lwIP");
    close(k);
    wait_counts(port, 0, 1, 3000, "SO_LINGER {1, 0} close, then the peer's FIN");
    printf("measured: ... and lwIP keeps a TIME-WAIT pcb on port %u (tc_sock_time_wait_count = %d)\n", port,
           tc_sock_time_wait_count(port));
    CHECK_RC(tc_sock_close(ls), TC_OK);
}

/*
 * TC_OPT_FREE_TIME_WAIT: our FIN first, then the peer's. The TIME-WAIT pcb is freed by the stack as it starts, before
 * this side has read the peer's FIN, so a client reusing its port at once is answered whatever the loop is doing. The
 * loop's read is held back here (nothing reads until the pcb is gone) to show it does not depend on it; the socket
 * still reads the peer's last bytes and then EOF, and tc_sock_close_reap() counts the pcb as reaped.
 */
static void test_sock_time_wait_freed_by_the_stack(void)
{
    uint16_t port;
    int ls = lw_listener(&port);
    int k, a;
    lw_pair(ls, port, &k, &a);
    tc_addr_t peer;
    CHECK_RC(tc_sock_peer_addr(a, &peer), TC_OK);
    CHECK_RC(tc_sock_setopt(a, TC_OPT_FREE_TIME_WAIT, 1), TC_OK);
    CHECK_RC(tc_sock_shutdown_write(a), TC_OK);
    CHECK(k_outcome(k, NULL, 3000, NULL) == 0, "the kernel peer did not see our FIN");
    k_send_all(k, "bye", 3);
    close(k); /* the peer's FIN: our pcb goes TIME-WAIT, and the stack frees it */
    wait_counts(port, 0, 0, 3000, "TIME-WAIT with TC_OPT_FREE_TIME_WAIT, before the socket read anything");
    char buf[8];
    long n = tc_sock_recv(a, buf, sizeof(buf));
    CHECK(n == 3 && memcmp(buf, "bye", 3) == 0, "the peer's last bytes: %ld", n);
    n = tc_sock_recv(a, buf, sizeof(buf));
    CHECK(n == 0, "after the peer's last bytes: %ld, want 0 (EOF)", n);
    int rc = tc_sock_close_reap(a, &peer, port);
    CHECK(rc == 1, "tc_sock_close_reap of a TIME-WAIT the stack freed: %s, want 1", tc_err_name(rc));

    /* Without the option the TIME-WAIT stays until tc_sock_close_reap() (the naive server of seed 001 keeps it). */
    lw_pair(ls, port, &k, &a);
    CHECK_RC(tc_sock_peer_addr(a, &peer), TC_OK);
    CHECK_RC(tc_sock_shutdown_write(a), TC_OK);
    CHECK(k_outcome(k, NULL, 3000, NULL) == 0, "the kernel peer did not see our FIN");
    close(k);
    wait_counts(port, 0, 1, 3000, "TIME-WAIT without TC_OPT_FREE_TIME_WAIT");
    CHECK(tc_sock_recv(a, buf, sizeof(buf)) == 0, "EOF after the peer's FIN");
    rc = tc_sock_close_reap(a, &peer, port);
    CHECK(rc == 1, "tc_sock_close_reap of our TIME-WAIT: %s, want 1", tc_err_name(rc));
    wait_counts(port, 0, 0, 1000, "after tc_sock_close_reap");
    CHECK_RC(tc_sock_close(ls), TC_OK);
    printf("ok   TC_OPT_FREE_TIME_WAIT: the stack frees our TIME-WAIT as it starts (the socket still reads to EOF)\n");
}

/*
 * The peer closes first and we answer with our FIN before reading its FIN (the lingering close of a response sent
 * just as the client closed): our pcb goes CLOSE-WAIT -> LAST-ACK. Reading the FIN then makes lwIP shut the socket's
 * receive side (TF_RXCLOSED), and a LAST-ACK pcb in that state is freed on the final ACK WITHOUT the error callback
 * that tells the socket: the socket keeps a pointer to freed memory until it is closed (issue 10's SIGABRT, "pbuf_free:
 * p->ref > 0" in the loop thread). The final ACK is held back here until the FIN has been read, so the window that is
 * microseconds wide in the soak is certain; closing (and aborting, and asking for the unacknowledged bytes) must then
 * touch nothing freed: AddressSanitizer checks that.
 */
static void test_sock_last_ack_after_reading_eof(void)
{
    uint16_t port;
    int ls = lw_listener(&port);
    for (int round = 0; round < 3; round++) { /* closed by tc_sock_close_reap, tc_sock_abort, tc_sock_close */
        int k, a;
        lw_pair(ls, port, &k, &a);
        tc_addr_t peer;
        CHECK_RC(tc_sock_peer_addr(a, &peer), TC_OK);
        CHECK(shutdown(k, SHUT_WR) == 0, "kernel shutdown: %s", strerror(errno));
        CHECK(lw_wait(a, TC_POLLIN, 5000) & TC_POLLIN, "the peer's FIN did not reach the lwIP socket");
        tc__lwip_tap_hold(1); /* the peer's ACK of our FIN waits */
        CHECK_RC(tc_sock_shutdown_write(a), TC_OK);
        char buf[8];
        long n = tc_sock_recv(a, buf, sizeof(buf));
        CHECK(n == 0, "reading the peer's FIN after our own: %ld, want 0 (EOF)", n);
        CHECK(k_outcome(k, NULL, 3000, NULL) == 0, "the kernel peer did not see our FIN");
        tc__lwip_tap_hold(0); /* the final ACK arrives: lwIP frees the LAST-ACK pcb */
        wait_counts(port, 0, 0, 3000, "LAST-ACK pcb after the final ACK");
        long u = tc_sock_unacked(a);
        CHECK(u == 0, "tc_sock_unacked after the final ACK: %ld, want 0", u);
        if (round == 0) {
            int rc = tc_sock_close_reap(a, &peer, port);
            CHECK(rc == 0, "tc_sock_close_reap after LAST-ACK: %s, want 0 (nothing to reap)", tc_err_name(rc));
        } else if (round == 1) {
            CHECK_RC(tc_sock_abort(a), TC_OK);
        } else {
            CHECK_RC(tc_sock_close(a), TC_OK);
        }
        CHECK(k_outcome(k, NULL, 200, NULL) == 0, "the kernel peer saw more than our FIN after it");
        close(k);
        wait_counts(port, 0, 0, 1000, "after the LAST-ACK close");
    }
    CHECK_RC(tc_sock_close(ls), TC_OK);
    printf("ok   LAST-ACK freed by the stack after the FIN was read: close_reap, abort and close touch nothing freed\n");
}

static void test_sock_connect_out(void)
{
    /* lwIP as the client: a kernel listener on the Linux side of the TAP, then a port where nothing listens. */
    int kl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(kl >= 0, "kernel socket");
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, g_peer, &sin.sin_addr);
    CHECK(bind(kl, (struct sockaddr *)&sin, sizeof(sin)) == 0, "kernel bind %s: %s", g_peer, strerror(errno));
    CHECK(listen(kl, 4) == 0, "kernel listen");
    socklen_t sl = sizeof(sin);
    getsockname(kl, (struct sockaddr *)&sin, &sl);
    uint16_t kport = ntohs(sin.sin_port);

    tc_addr_t to;
    CHECK_RC(tc_addr_from_ip(g_peer, kport, &to), TC_OK);
    int c = tc_sock_open(TC_AF_INET, TC_SOCK_STREAM);
    CHECK(c >= 0, "tc_sock_open: %s", tc_err_name(c));
    int rc = tc_sock_connect(c, &to);
    CHECK(rc == TC_OK || rc == TC_EINPROGRESS, "tc_sock_connect: %s", tc_err_name(rc));
    CHECK(lw_wait(c, TC_POLLOUT, 5000) & TC_POLLOUT, "connect to the kernel listener never completed");
    CHECK_RC(tc_sock_error(c), TC_OK);
    tc_addr_t peer;
    CHECK_RC(tc_sock_peer_addr(c, &peer), TC_OK);
    CHECK(peer.port == kport && memcmp(peer.ip, to.ip, 4) == 0, "tc_sock_peer_addr is not the kernel listener");
    int ka = accept(kl, NULL, NULL);
    CHECK(ka >= 0, "kernel accept: %s", strerror(errno));
    CHECK(tc_sock_send(c, "up", 2) == 2, "tc_sock_send");
    char buf[4];
    CHECK(recv(ka, buf, sizeof(buf), 0) == 2 && memcmp(buf, "up", 2) == 0, "kernel did not get the bytes");
    close(ka);
    CHECK_RC(tc_sock_close(c), TC_OK);
    close(kl); /* nothing listens on kport any more */

    c = tc_sock_open(TC_AF_INET, TC_SOCK_STREAM);
    CHECK(c >= 0, "tc_sock_open: %s", tc_err_name(c));
    rc = tc_sock_connect(c, &to);
    CHECK(rc == TC_EINPROGRESS, "connect to a closed port: %s", tc_err_name(rc));
    int re = lw_wait(c, TC_POLLOUT, 5000);
    CHECK(re & (TC_POLLERR | TC_POLLOUT), "a refused connect gave no readiness");
    rc = tc_sock_error(c);
    CHECK(rc == TC_ECONNREFUSED, "a refused connect reports %s, want ECONNREFUSED", tc_err_name(rc));
    CHECK_RC(tc_sock_close(c), TC_OK);
    printf("ok   outgoing connect to a kernel listener; a refused one reports TC_ECONNREFUSED\n");
}

static void test_sock_udp(void)
{
    int u = tc_sock_open(TC_AF_INET, TC_SOCK_DGRAM);
    CHECK(u >= 0, "tc_sock_open udp: %s", tc_err_name(u));
    tc_addr_t a;
    CHECK_RC(tc_addr_from_ip(g_ip, 0, &a), TC_OK);
    CHECK_RC(tc_sock_bind(u, &a), TC_OK);
    CHECK_RC(tc_sock_local_addr(u, &a), TC_OK);
    int k = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(a.port)};
    inet_pton(AF_INET, g_ip, &sin.sin_addr);
    CHECK(sendto(k, "dgram", 5, 0, (struct sockaddr *)&sin, sizeof(sin)) == 5, "kernel sendto");
    CHECK(lw_wait(u, TC_POLLIN, 5000) & TC_POLLIN, "the datagram never arrived");
    char buf[16];
    tc_addr_t from;
    long n = tc_sock_recvfrom(u, buf, sizeof(buf), &from);
    CHECK(n == 5 && memcmp(buf, "dgram", 5) == 0, "tc_sock_recvfrom: %ld", n);
    char ip[64];
    tc_addr_format(&from, 0, ip, sizeof(ip));
    CHECK(strcmp(ip, g_peer) == 0 && from.port != 0, "datagram from %s, want %s", ip, g_peer);
    CHECK(tc_sock_sendto(u, "back", 4, &from) == 4, "tc_sock_sendto");
    struct pollfd p = {.fd = k, .events = POLLIN};
    CHECK(poll(&p, 1, 5000) == 1 && recv(k, buf, sizeof(buf), 0) == 4, "the reply never arrived");
    close(k);
    CHECK_RC(tc_sock_close(u), TC_OK);
    printf("ok   UDP both ways\n");
}

static void test_sock_dual_stack(void)
{
    /* A listener on "::" takes IPv4 peers (V6ONLY off) and IPv6 ones on the TAP's link-local address, which lwIP
     * can use once duplicate address detection is over (about a second after tc_sock_global_init()). */
    int ls = tc_sock_open(TC_AF_INET6, TC_SOCK_STREAM);
    CHECK(ls >= 0, "tc_sock_open AF_INET6: %s", tc_err_name(ls));
    CHECK_RC(tc_sock_setopt(ls, TC_OPT_V6ONLY, 0), TC_OK);
    tc_addr_t a;
    CHECK_RC(tc_addr_from_ip("::", 0, &a), TC_OK);
    CHECK_RC(tc_sock_bind(ls, &a), TC_OK);
    CHECK_RC(tc_sock_listen(ls, 4), TC_OK);
    CHECK_RC(tc_sock_local_addr(ls, &a), TC_OK);
    int k4 = k_connect(a.port, 0);
    int a4 = lw_accept(ls);
    tc_addr_t peer;
    CHECK_RC(tc_sock_peer_addr(a4, &peer), TC_OK);
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}; /* ::ffff:a.b.c.d, as on Linux */
    CHECK(peer.family == TC_AF_INET6 && memcmp(peer.ip, mapped, 12) == 0, "IPv4 peer of \"::\" is not v4-mapped");
    CHECK_RC(tc_sock_abort(a4), TC_OK); /* a close would leave TIME-WAIT here: this side would close first */
    close(k4);

    /* fe80:: + EUI-64 of lwIP's MAC 02:74:63:00:00:02 */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(a.port)};
    inet_pton(AF_INET6, "fe80::74:63ff:fe00:2", &s6.sin6_addr);
    s6.sin6_scope_id = if_nametoindex(g_tap);
    int k6 = -1;
    uint64_t end = tc_now_ms() + 8000;
    for (;;) {
        k6 = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        /* EADDRNOTAVAIL: the Linux side's own link-local address is still tentative (its DAD runs too). */
        int rc = connect(k6, (struct sockaddr *)&s6, sizeof(s6));
        CHECK(rc == 0 || errno == EINPROGRESS || errno == EADDRNOTAVAIL, "kernel connect6: %s", strerror(errno));
        struct pollfd p = {.fd = k6, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        if ((rc == 0 || errno == EINPROGRESS) && poll(&p, 1, 1000) == 1 &&
            getsockopt(k6, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
            break;
        }
        close(k6);
        CHECK(tc_now_ms() < end, "no IPv6 connection to lwIP's link-local address in 8 s");
        sleep_ms(100);
    }
    int a6 = lw_accept(ls);
    CHECK_RC(tc_sock_peer_addr(a6, &peer), TC_OK);
    CHECK(peer.family == TC_AF_INET6 && peer.ip[0] == 0xfe && peer.ip[1] == 0x80, "IPv6 peer is not link-local");
    CHECK_RC(tc_sock_abort(a6), TC_OK);
    long r = k_outcome(k6, NULL, 3000, NULL);
    CHECK(r == -ECONNRESET, "IPv6 abort: the kernel peer saw %ld", r);
    close(k6);
    wait_counts(a.port, 0, 0, 2000, "dual-stack listener");
    CHECK_RC(tc_sock_close(ls), TC_OK);
    printf("ok   dual-stack listener on \"::\": IPv4 peer, IPv6 link-local peer, abort over IPv6\n");
}

static void test_no_socket_left(void)
{
    /* Debian's lwIP (LWIP_SOCKET_OPEN_COUNT) hands out the lowest free number: 1 means no socket was leaked. */
    int fd = tc_sock_open(TC_AF_INET, TC_SOCK_STREAM);
    CHECK(fd == 1, "a new lwIP socket got number %d: some socket was not closed", fd);
    CHECK_RC(tc_sock_close(fd), TC_OK);
    printf("ok   no lwIP socket left\n");
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *tap = getenv("TC_LWIP_TAP");
    const char *addr = getenv("TC_LWIP_ADDRESS");
    const char *peer = getenv("TC_LWIP_PEER");
    if (peer && peer[0]) {
        snprintf(g_peer, sizeof(g_peer), "%s", peer);
    }
    if (tap && tap[0]) {
        g_tap = tap;
    }
    if (addr && addr[0]) {
        snprintf(g_ip, sizeof(g_ip), "%s", addr);
        char *slash = strchr(g_ip, '/');
        if (slash) {
            *slash = 0;
            g_prefix = atoi(slash + 1);
        }
    }
    if (if_nametoindex(g_tap) == 0) {
        FATAL("no TAP device %s here: run inside its namespace, e.g. tools/lwip_netns.sh run tclwip %s", g_tap,
              "build/test_lwip_backend");
    }
    test_global_init();

    tc_loop_t *loop;
    CHECK_RC(tc_loop_new(&loop), TC_OK);
    test_wake_from_other_thread(loop);

    srv_t s;
    memset(&s, 0, sizeof(s));
    tc_server_config_t cfg = TC_SERVER_DEFAULT_CONFIG();
    cfg.host = g_ip;
    cfg.name = "lwip-echo";
    cfg.cb = srv_cb;
    cfg.user = &s;
    cfg.conn.linger_ms = 400;
    tc_server_t *srv;
    CHECK_RC(tc_server_start(loop, &cfg, &srv), TC_OK);
    uint16_t port = tc_server_port(srv);
    CHECK(port != 0, "server has no port");

    int k;
    test_echo_1mib(loop, &s, port, &k);
    test_core_abort_after_all_acked(loop, &s, port, k);
    test_core_default_close(loop, &s, port);
    test_core_peer_first_close(loop, &s, port);
    test_core_linger_deadline(loop, &s, port, cfg.conn.linger_ms);

    tc_stop_report_t rep;
    CHECK_RC(tc_handle_stop_wait(tc_server_handle(srv), 1000, &rep), TC_OK);
    CHECK(rep.forced == 0 && rep.graceful == 0, "stop with no connection: %u forced, %u graceful", rep.forced,
          rep.graceful);
    wait_counts(port, 0, 0, 1000, "after the server stopped");
    CHECK_RC(tc_loop_free(loop), TC_OK);
    printf("ok   server stopped, no TIME-WAIT pcb for its port %u\n", port);

    test_sock_unacked_and_abort_with_queue();
    test_sock_abort_vs_linger();
    test_sock_last_ack_after_reading_eof();
    test_sock_time_wait_freed_by_the_stack();
    test_sock_connect_out();
    test_sock_udp();
    test_sock_dual_stack();
    test_no_socket_left();

    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    CHECK(st.bytes_in_use == 0 && st.blocks_in_use == 0, "tcp_core heap left: %zu bytes in %zu blocks",
          st.bytes_in_use, st.blocks_in_use);
    printf("ok   tcp_core heap: 0 bytes in use\n");
    printf("PASS test_lwip_backend\n");
    return 0;
}
