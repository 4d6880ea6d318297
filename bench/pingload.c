/*
 * bench/pingload.c - request/response load for bench/compare.py: N clients, each with one request in flight.
 *
 * Modes (--mode):
 *   ws          connect, upgrade GET PATH (expects "HTTP/1.1 101"), then send a masked text message of SIZE bytes
 *               (SIZE < 126) and wait for its whole unmasked echo, again and again
 *   echo        raw TCP: send SIZE bytes, wait for the same SIZE bytes back, again and again
 *   http        keep-alive: send "GET PATH", wait for exactly REPLY bytes (--reply-len, the server's whole response,
 *               which compare.py measures first), again and again
 *   http-close  the same with "Connection: close" and a new connection for every request (the client closes after
 *               the last byte of the response)
 * Every reply is compared byte for byte with the expected one (http: the status line and the length; the page is
 * fixed). One thread, epoll; connects are blocking (loopback).
 *
 * Stops after --duration seconds or, with --count N, after exactly N replies in all (the instruction counts of
 * compare.py run a fixed number of operations; --duration is then the time limit, an error when reached). Replies during the first --warmup seconds are not counted.
 * Prints one line of JSON: {"ops": N, "seconds": S, "errors": E, "conns": C}. Exit status 1 when errors > 0 or
 * nothing was counted, 2 on bad usage.
 *
 * Usage: pingload --mode ws|echo|http|http-close --port P [--conns 1] [--duration 3 | --count N] [--warmup 0]
 *                 [--size 64] [--path /ws or /] [--reply-len L]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SIZE 125
#define MAX_REPLY 8192

enum { M_WS, M_ECHO, M_HTTP, M_HTTP_CLOSE };

typedef struct {
    int fd;
    size_t got; /* bytes of the current reply received */
} client_t;

static int g_mode;
static unsigned g_port;
static const char *g_path; /* default: "/ws" for ws, "/" for http */
static int g_ep;
static unsigned char g_req[512], g_expect[MAX_REPLY];
static size_t g_req_len, g_expect_len;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int open_conn(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    if (g_mode != M_WS) {
        return fd;
    }
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                     g_path, g_port);
    if (write_all(fd, req, (size_t)n) != 0) {
        close(fd);
        return -1;
    }
    /* The response head byte by byte: nothing after it may be consumed. */
    char head[1024];
    size_t len = 0;
    while (len + 1 < sizeof(head)) {
        ssize_t r = recv(fd, head + len, 1, 0);
        if (r <= 0) {
            close(fd);
            return -1;
        }
        len++;
        if (len >= 4 && memcmp(head + len - 4, "\r\n\r\n", 4) == 0) {
            break;
        }
    }
    head[len] = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "pingload: upgrade refused: %.60s\n", head);
        close(fd);
        return -1;
    }
    return fd;
}

/* Opens (if needed) and sends the next request of client i; 0, or -1 with the client closed. */
static int start_request(client_t *c, unsigned i)
{
    if (c->fd < 0) {
        c->fd = open_conn();
        if (c->fd < 0) {
            return -1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(g_ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    c->got = 0;
    return write_all(c->fd, g_req, g_req_len);
}

static void drop(client_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(g_ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: pingload --mode ws|echo|http|http-close --port P [--conns 1] [--duration 3 | --count N]"
                    " [--warmup 0] [--size 64] [--path /ws] [--reply-len L]\n");
    return 2;
}

static void setup_messages(size_t size, size_t reply_len)
{
    static const unsigned char mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (g_mode == M_WS) {
        g_req[0] = g_expect[0] = 0x81;
        g_req[1] = (unsigned char)(0x80 | size);
        g_expect[1] = (unsigned char)size;
        memcpy(g_req + 2, mask, 4);
        for (size_t i = 0; i < size; i++) {
            unsigned char ch = (unsigned char)('a' + i % 26);
            g_expect[2 + i] = ch;
            g_req[6 + i] = ch ^ mask[i % 4];
        }
        g_req_len = 6 + size;
        g_expect_len = 2 + size;
    } else if (g_mode == M_ECHO) {
        for (size_t i = 0; i < size; i++) {
            g_req[i] = g_expect[i] = (unsigned char)('a' + i % 26);
        }
        g_req_len = g_expect_len = size;
    } else {
        int n = snprintf((char *)g_req, sizeof(g_req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n%s\r\n", g_path,
                         g_port, g_mode == M_HTTP_CLOSE ? "Connection: close\r\n" : "");
        g_req_len = (size_t)n;
        memcpy(g_expect, "HTTP/1.1 200", 12);
        g_expect_len = reply_len;
    }
}

/* Compares what arrived with the expected reply (http: only its status line is known byte for byte). */
static int reply_ok(const client_t *c, const unsigned char *buf, size_t n)
{
    if (c->got + n > g_expect_len) {
        return 0;
    }
    if (g_mode == M_WS || g_mode == M_ECHO) {
        return memcmp(buf, g_expect + c->got, n) == 0;
    }
    for (size_t i = 0; i < n && c->got + i < 12; i++) {
        if (buf[i] != g_expect[c->got + i]) {
            return 0;
        }
    }
    return 1;
}

int main(int argc, char **argv)
{
    unsigned conns = 1;
    unsigned long long count = 0;
    double duration = 3.0, warmup = 0.0;
    size_t size = 64, reply_len = 0;
    g_mode = -1;
    if (argc % 2 == 0) {
        return usage();
    }
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (strcmp(k, "--mode") == 0) {
            g_mode = strcmp(v, "ws") == 0           ? M_WS
                     : strcmp(v, "echo") == 0       ? M_ECHO
                     : strcmp(v, "http") == 0       ? M_HTTP
                     : strcmp(v, "http-close") == 0 ? M_HTTP_CLOSE
                                                    : -1;
        } else if (strcmp(k, "--port") == 0) {
            g_port = (unsigned)atoi(v);
        } else if (strcmp(k, "--conns") == 0) {
            conns = (unsigned)atoi(v);
        } else if (strcmp(k, "--duration") == 0) {
            duration = atof(v);
        } else if (strcmp(k, "--count") == 0) {
            count = strtoull(v, NULL, 10);
        } else if (strcmp(k, "--warmup") == 0) {
            warmup = atof(v);
        } else if (strcmp(k, "--size") == 0) {
            size = (size_t)atoi(v);
        } else if (strcmp(k, "--path") == 0) {
            g_path = v;
        } else if (strcmp(k, "--reply-len") == 0) {
            reply_len = (size_t)atoi(v);
        } else {
            return usage();
        }
    }
    int http = g_mode == M_HTTP || g_mode == M_HTTP_CLOSE;
    if (g_mode < 0 || g_port == 0 || g_port > 65535 || conns == 0 || conns > 10000 || size == 0 || size > MAX_SIZE ||
        (http && (reply_len < 12 || reply_len > MAX_REPLY))) {
        return usage();
    }
    if (g_path == NULL) {
        g_path = g_mode == M_WS ? "/ws" : "/";
    }
    setup_messages(size, reply_len);

    g_ep = epoll_create1(0);
    client_t *cl = calloc(conns, sizeof(*cl));
    if (g_ep < 0 || cl == NULL) {
        perror("pingload");
        return 1;
    }
    unsigned long long ops = 0, errors = 0, started = 0;
    unsigned active = 0;
    double t0 = now_s(), start = t0 + warmup, end = start + duration;
    int counting = warmup <= 0.0;
    for (unsigned i = 0; i < conns; i++) {
        cl[i].fd = -1;
        if (count > 0 && started >= count) {
            break;
        }
        if (start_request(&cl[i], i) != 0) {
            errors++;
            drop(&cl[i]);
            continue;
        }
        started++;
        active++;
    }
    struct epoll_event evs[256];
    unsigned char buf[MAX_REPLY];
    while (active > 0) {
        double t = now_s();
        if (t >= end) { /* with --count, --duration is the time limit */
            if (count > 0) {
                fprintf(stderr, "pingload: %llu of %llu replies after %.1f s\n", ops, count, t - t0);
                errors++;
            }
            break;
        }
        if (!counting && t >= start) {
            counting = 1;
            ops = 0;
        }
        int n = epoll_wait(g_ep, evs, 256, 50);
        for (int k = 0; k < n; k++) {
            unsigned i = evs[k].data.u32;
            client_t *c = &cl[i];
            if (c->fd < 0) {
                continue;
            }
            ssize_t r = recv(c->fd, buf, g_expect_len - c->got, MSG_DONTWAIT);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
                continue;
            }
            if (r <= 0 || !reply_ok(c, buf, (size_t)r)) {
                errors++;
                drop(c);
                active--;
                continue;
            }
            c->got += (size_t)r;
            if (c->got < g_expect_len) {
                continue;
            }
            ops++;
            if (g_mode == M_HTTP_CLOSE) {
                drop(c);
            }
            if (count > 0 && started >= count) {
                drop(c);
                active--;
                continue;
            }
            if (start_request(c, i) != 0) {
                errors++;
                drop(c);
                active--;
                continue;
            }
            started++;
        }
    }
    double secs = now_s() - (warmup > 0.0 ? start : t0);
    unsigned open = 0;
    for (unsigned i = 0; i < conns; i++) {
        open += cl[i].fd >= 0;
        drop(&cl[i]);
    }
    free(cl);
    close(g_ep);
    printf("{\"ops\": %llu, \"seconds\": %.6f, \"errors\": %llu, \"conns\": %u}\n", ops, secs, errors, open);
    return errors > 0 || ops == 0 ? 1 : 0;
}
