/*
 * bench/uv_echo.c - the libuv peer of tcp_core's echo benchmark, doing the same work the same way: one shared read
 * buffer of tcp_core's size, write at once and copy only the unsent rest, stop reading above 64 KiB queued and resume
 * at 16 KiB (tcp_core's default water marks), TCP_NODELAY, close after the peer's FIN once the queue is flushed.
 *
 * Protocol shared by every benchmark server: "ready PORT" on stdout once listening (port 0 picks a free one);
 * SIGUSR1 prints "stats {json}" with the open connection count; SIGTERM or SIGINT stops (libuv's uv_signal_t, which
 * runs the handler on the loop through libuv's own self-pipe).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define READ_BUF_SIZE (16 * 1024) /* TC_CFG_READ_BUF_SIZE: one buffer per loop, shared by every connection */
#define HIGH_WATER (64 * 1024)
#define LOW_WATER (16 * 1024)
#define BACKLOG 128

typedef struct {
    uv_tcp_t tcp; /* first: the handle pointer is the connection pointer */
    unsigned pending_writes;
    int paused;
    int eof;
} echo_conn_t;

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
} echo_write_t;

static uv_loop_t *g_loop;
static uv_tcp_t g_server;
static uv_signal_t g_sig_term, g_sig_int, g_sig_usr1;
static unsigned g_conns;
static char g_rbuf[READ_BUF_SIZE];

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_closed(uv_handle_t *h)
{
    free(h);
    g_conns--;
}

static void conn_close(echo_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* Safe to share: on_read copies whatever it cannot write at once. */
    *buf = uv_buf_init(g_rbuf, sizeof(g_rbuf));
}

static void on_write(uv_write_t *req, int status)
{
    echo_conn_t *c = (echo_conn_t *)req->handle;
    free(req);
    c->pending_writes--;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->eof && c->pending_writes == 0) {
        conn_close(c);
        return;
    }
    if (c->paused && !c->eof && c->tcp.write_queue_size <= LOW_WATER && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        c->paused = 0;
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    echo_conn_t *c = (echo_conn_t *)s;
    if (n < 0) {
        if (n == UV_EOF && c->pending_writes > 0) {
            c->eof = 1; /* the peer closed first: flush, then close (on_write) */
            uv_read_stop(s);
            return;
        }
        conn_close(c);
        return;
    }
    if (n == 0) {
        return;
    }
    size_t done = 0;
    if (c->pending_writes == 0) {
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        int w = uv_try_write(s, &b, 1);
        if (w < 0 && w != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        done = w > 0 ? (size_t)w : 0;
    }
    if (done == (size_t)n) {
        return;
    }
    size_t rest = (size_t)n - done;
    echo_write_t *wr = malloc(sizeof(*wr) + rest);
    if (wr == NULL) {
        conn_close(c);
        return;
    }
    memcpy(wr->data, buf->base + done, rest);
    wr->buf = uv_buf_init(wr->data, (unsigned)rest);
    if (uv_write(&wr->req, s, &wr->buf, 1, on_write) != 0) {
        free(wr);
        conn_close(c);
        return;
    }
    c->pending_writes++;
    if (s->write_queue_size > HIGH_WATER) {
        c->paused = 1;
        uv_read_stop(s);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) {
        return;
    }
    echo_conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    uv_tcp_init(g_loop, &c->tcp);
    g_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h)) {
        return;
    }
    if (h->type == UV_TCP && h != (uv_handle_t *)&g_server) {
        uv_close(h, on_closed);
    } else {
        uv_close(h, NULL);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    (void)h;
    if (signum == SIGUSR1) {
        printf("stats {\"conns\": %u}\n", g_conns);
        fflush(stdout);
        return;
    }
    uv_walk(g_loop, close_walk, NULL);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--host") == 0) {
            host = argv[i + 1];
        } else if (strcmp(argv[i], "--port") == 0) {
            port = atoi(argv[i + 1]);
        } else {
            argc = 0;
        }
    }
    if (argc % 2 == 0) {
        fprintf(stderr, "usage: uv_echo [--host 127.0.0.1] [--port 0]\n");
        return 2;
    }
    /* libuv writes with write(2), not send(MSG_NOSIGNAL): a peer that resets must not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    g_loop = uv_default_loop();
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(host, port, &addr);
    if (rc == 0) {
        uv_tcp_init(g_loop, &g_server);
        rc = uv_tcp_bind(&g_server, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&g_server, BACKLOG, on_connection);
    }
    if (rc != 0) {
        fprintf(stderr, "uv_echo: listen %s:%d: %s\n", host, port, uv_strerror(rc));
        return 1;
    }
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    uv_tcp_getsockname(&g_server, (struct sockaddr *)&bound, &len);
    uv_signal_init(g_loop, &g_sig_term);
    uv_signal_init(g_loop, &g_sig_int);
    uv_signal_init(g_loop, &g_sig_usr1);
    uv_signal_start(&g_sig_term, on_signal, SIGTERM);
    uv_signal_start(&g_sig_int, on_signal, SIGINT);
    uv_signal_start(&g_sig_usr1, on_signal, SIGUSR1);
    printf("ready %u\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
    fflush(stdout);
    uv_run(g_loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(g_loop);
    if (rc != 0) {
        fprintf(stderr, "uv_echo: uv_loop_close: %s\n", uv_strerror(rc));
        return 1;
    }
    return 0;
}
