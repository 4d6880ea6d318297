/*
 * tc_resolve.c - name resolution through the loop, for the TCP client (tc_tcp.h).
 *
 * A name is asked of a nameserver over UDP with the project's DNS codec (tc_dns.h): one socket per resolution,
 * connected to the nameserver (a closed port fails at once instead of after every try), watched by the loop,
 * retries and the timeout on an embedded loop timer; A first, AAAA when the name has no A record. Numeric addresses
 * never come here and "localhost" is loopback (RFC 6761 6.3). The nameserver is the client's own or the platform's
 * first (tc_port_nameserver()).
 *
 * The system resolver (getaddrinfo: /etc/hosts, mDNS, search domains) is only a fallback, for names the UDP path
 * cannot answer when the client named no nameserver of its own: at most ONE worker thread in the process, fed from
 * a bounded queue, started when work arrives and gone when the queue is empty. It never posts back through an
 * allocation that could fail: it links the finished request to its loop under the worker's mutex and wakes the loop,
 * and a loop being freed first detaches its requests under the same mutex, so a loop can always be freed. A
 * platform without threads (TC_PORT_THREADS 0) has no fallback: the UDP path's error stands.
 */
#include <string.h>

#include "tc_alloc.h"
#include "tc_dns.h"
#include "tc_err.h"
#include "tc_internal.h"
#include "tc_resolve.h"
#include "tc_tcp.h"

#define RESOLVE_TRIES 3     /* datagrams per question type before giving up on the nameserver */
#define FALLBACK_QUEUE_MAX 16 /* resolutions waiting for the worker at most */

typedef struct tc_fallback tc_fallback_t;

struct tc_resolve {
    tc_regent_t reg; /* first: the registry shows the socket while it asks */
    tc_loop_t *loop;
    tc_io_t io;
    tc_timer_t timer;
    tc_pending_t pending; /* delivers results known at once (localhost, a failed start) from the loop */
    tc_resolve_cb cb;
    void *user;
    tc_addr_t ns;
    uint16_t port;
    uint16_t id;
    uint16_t qtype;
    uint8_t tries;
    uint8_t may_fallback;
    uint32_t try_ms;
    int rc; /* the result when delivered from pending */
    tc_addr_t addr;
    tc_fallback_t *fb; /* with the worker */
    char name[TC_DNS_MAX_NAME_TEXT + 1];
};

/* ---- statistics ---- */

static uint64_t s_udp_queries, s_udp_answers, s_fallbacks, s_threads_started;
static uint32_t s_worker_running;

void tc_resolver_stats(tc_resolver_stats_t *out)
{
    out->udp_queries = __atomic_load_n(&s_udp_queries, __ATOMIC_SEQ_CST);
    out->udp_answers = __atomic_load_n(&s_udp_answers, __ATOMIC_SEQ_CST);
    out->fallbacks = __atomic_load_n(&s_fallbacks, __ATOMIC_SEQ_CST);
    out->threads_started = __atomic_load_n(&s_threads_started, __ATOMIC_SEQ_CST);
    out->worker_running = __atomic_load_n(&s_worker_running, __ATOMIC_SEQ_CST);
}

/* ---- the fallback worker ---- */

struct tc_fallback {
    tc_fallback_t *next;
    tc_loop_t *loop;  /* NULL: the loop was freed; the worker frees this when done */
    tc_resolve_t *r;  /* NULL: cancelled; the loop frees this when it collects it */
    uint8_t state;    /* FB_QUEUED, FB_RUNNING, FB_DONE */
    char host[TC_DNS_MAX_NAME_TEXT + 1];
    uint16_t port;
    int rc;
    tc_addr_t addr;
};
enum { FB_QUEUED = 0, FB_RUNNING, FB_DONE };

static tc_port_mutex_t s_mu = TC_PORT_MUTEX_INIT;
static tc_fallback_t *s_queue; /* FIFO, head first */
static uint32_t s_queued;
static tc_fallback_t *s_done; /* finished, for their loops to collect */
static tc_fallback_t *s_running; /* the one the worker is resolving now */

static void resolve_finish(tc_resolve_t *r, int rc, const tc_addr_t *addr);

#if TC_PORT_THREADS
static void list_remove(tc_fallback_t **head, tc_fallback_t *fb)
{
    for (tc_fallback_t **p = head; *p; p = &(*p)->next) {
        if (*p == fb) {
            *p = fb->next;
            fb->next = NULL;
            return;
        }
    }
}

static void worker_main(void *arg)
{
    (void)arg;
    tc_port_mutex_lock(&s_mu);
    for (;;) {
        tc_fallback_t *fb = s_queue;
        if (fb == NULL) {
            break;
        }
        s_queue = fb->next;
        s_queued--;
        fb->next = NULL;
        fb->state = FB_RUNNING;
        s_running = fb;
        char host[sizeof(fb->host)];
        memcpy(host, fb->host, sizeof(host));
        uint16_t port = fb->port;
        tc_port_mutex_unlock(&s_mu);
        tc_addr_t addr;
        int rc = tc_sock_resolve(host, port, &addr); /* blocks: that is why it is here */
        tc_port_mutex_lock(&s_mu);
        fb->rc = rc;
        fb->addr = addr;
        fb->state = FB_DONE;
        s_running = NULL;
        if (fb->loop == NULL) {
            tc_free(fb); /* its loop is gone */
        } else {
            fb->next = s_done;
            s_done = fb;
            tc__loop_wake_resolved(fb->loop); /* under the mutex: the loop cannot be freed meanwhile */
        }
    }
    __atomic_store_n(&s_worker_running, 0, __ATOMIC_SEQ_CST);
    tc_port_mutex_unlock(&s_mu);
}

static int fallback_start(tc_resolve_t *r)
{
    tc_fallback_t *fb = tc_calloc(1, sizeof(*fb));
    if (fb == NULL) {
        return TC_ENOMEM;
    }
    fb->loop = r->loop;
    fb->r = r;
    memcpy(fb->host, r->name, sizeof(fb->host));
    fb->port = r->port;
    tc_port_mutex_lock(&s_mu);
    if (s_queued >= FALLBACK_QUEUE_MAX) {
        tc_port_mutex_unlock(&s_mu);
        tc_free(fb);
        return TC_ELIMIT;
    }
    tc_fallback_t **tail = &s_queue;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = fb;
    s_queued++;
    int rc = TC_OK;
    if (!__atomic_load_n(&s_worker_running, __ATOMIC_SEQ_CST)) {
        rc = tc_port_thread_start(worker_main, NULL);
        if (rc == TC_OK) {
            __atomic_store_n(&s_worker_running, 1, __ATOMIC_SEQ_CST);
            __atomic_add_fetch(&s_threads_started, 1, __ATOMIC_SEQ_CST);
        } else {
            list_remove(&s_queue, fb);
            s_queued--;
        }
    }
    tc_port_mutex_unlock(&s_mu);
    if (rc != TC_OK) {
        tc_free(fb);
        return rc;
    }
    __atomic_add_fetch(&s_fallbacks, 1, __ATOMIC_SEQ_CST);
    r->fb = fb;
    return TC_OK;
}

/* The loop's side of a fallback that is no longer wanted (the client stopped). */
static void fallback_cancel(tc_fallback_t *fb)
{
    tc_port_mutex_lock(&s_mu);
    if (fb->state == FB_QUEUED) {
        list_remove(&s_queue, fb);
        s_queued--;
        tc_port_mutex_unlock(&s_mu);
        tc_free(fb);
        return;
    }
    fb->r = NULL; /* running or done: freed when its loop collects it */
    tc_port_mutex_unlock(&s_mu);
}
#else
static int fallback_start(tc_resolve_t *r)
{
    (void)r;
    return TC_ENOSYS;
}

static void fallback_cancel(tc_fallback_t *fb)
{
    (void)fb;
}
#endif

void tc__resolver_collect(tc_loop_t *loop)
{
    tc_fallback_t *mine = NULL;
    tc_port_mutex_lock(&s_mu);
    for (tc_fallback_t **p = &s_done; *p;) {
        tc_fallback_t *fb = *p;
        if (fb->loop == loop) {
            *p = fb->next;
            fb->next = mine;
            mine = fb;
        } else {
            p = &fb->next;
        }
    }
    tc_port_mutex_unlock(&s_mu);
    while (mine) {
        tc_fallback_t *fb = mine;
        mine = fb->next;
        tc_resolve_t *r = fb->r;
        int rc = fb->rc;
        tc_addr_t addr = fb->addr;
        tc_free(fb);
        if (r) {
            r->fb = NULL;
            resolve_finish(r, rc, &addr);
        }
    }
}

void tc__resolver_loop_gone(tc_loop_t *loop)
{
    tc_port_mutex_lock(&s_mu);
    for (tc_fallback_t **head = &s_queue;; head = &s_done) {
        for (tc_fallback_t **p = head; *p;) {
            tc_fallback_t *fb = *p;
            if (fb->loop == loop) {
                *p = fb->next;
                s_queued -= head == &s_queue;
                tc_free(fb);
            } else {
                p = &fb->next;
            }
        }
        if (head == &s_done) {
            break;
        }
    }
    if (s_running && s_running->loop == loop) {
        s_running->loop = NULL; /* the worker frees it when getaddrinfo returns, and wakes no one */
    }
    tc_port_mutex_unlock(&s_mu);
}

/* ---- the UDP path ---- */

static void udp_close(tc_resolve_t *r)
{
    if (r->io.fd >= 0) {
        tc__timer_disarm(&r->timer);
        tc__io_stop_closing(r->loop, &r->io);
        tc_sock_close(r->io.fd);
        tc__reg_remove(r->loop, &r->reg);
        r->io.fd = -1;
    }
}

static void resolve_finish(tc_resolve_t *r, int rc, const tc_addr_t *addr)
{
    tc_resolve_cb cb = r->cb;
    void *user = r->user;
    tc_addr_t a;
    memset(&a, 0, sizeof(a));
    if (rc == TC_OK) {
        a = *addr;
        a.port = r->port;
    }
    udp_close(r);
    tc_free(r);
    if (cb) { /* NULL: cancelled while its result was queued */
        cb(user, rc, rc == TC_OK ? &a : NULL);
    }
}

/* The UDP path could not answer: the worker may (names only the system knows), or the error stands. */
static void udp_failed(tc_resolve_t *r, int rc)
{
    udp_close(r);
    if (r->may_fallback && fallback_start(r) == TC_OK) {
        return;
    }
    resolve_finish(r, rc, NULL);
}

static int udp_send(tc_resolve_t *r)
{
    uint8_t q[12 + TC_DNS_MAX_NAME_TEXT + 6];
    int n = tc_dns_build_query(r->id, r->name, r->qtype, q, sizeof(q));
    if (n < 0) {
        return TC_EBADNAME;
    }
    long s = tc_sock_send(r->io.fd, q, (size_t)n);
    if (s == TC_ECONNREFUSED) {
        return TC_ERESOLVE; /* an earlier question's ICMP port unreachable, reported on this send */
    }
    if (s < 0 && s != TC_EAGAIN) {
        return (int)s;
    }
    __atomic_add_fetch(&s_udp_queries, 1, __ATOMIC_SEQ_CST);
    r->reg.bytes_out += (uint64_t)n;
    return tc__timer_arm(&r->timer, r->try_ms);
}

static void udp_ask(tc_resolve_t *r, uint16_t qtype)
{
    r->qtype = qtype;
    r->tries = 1;
    r->id = (uint16_t)tc__rand(r->loop);
    int rc = udp_send(r);
    if (rc != TC_OK) {
        udp_failed(r, rc);
    }
}

static int64_t udp_timeout(tc_timer_t *t, void *user)
{
    (void)t;
    tc_resolve_t *r = user;
    if (r->tries >= RESOLVE_TRIES) {
        udp_failed(r, TC_ETIMEDOUT); /* may free r: the timer is not touched after TC_TIMER_STOP */
        return TC_TIMER_STOP;
    }
    r->tries++;
    int rc = udp_send(r);
    if (rc != TC_OK) {
        udp_failed(r, rc);
    }
    return TC_TIMER_STOP;
}

static int same_addr(const tc_addr_t *a, const tc_addr_t *b)
{
    size_t n = a->family == TC_AF_INET ? 4 : 16;
    return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}

static void udp_readable(tc_io_t *io, int revents)
{
    (void)revents;
    tc_resolve_t *r = (tc_resolve_t *)((char *)io - offsetof(tc_resolve_t, io));
    size_t cap;
    uint8_t *buf = (uint8_t *)tc__rbuf(r->loop, &cap);
    for (int i = 0; i < 8; i++) {
        tc_addr_t from;
        long n = tc_sock_recvfrom(io->fd, buf, cap, &from);
        if (n == TC_ECONNREFUSED) {
            /* The socket is connected to the nameserver, so the kernel reports its ICMP port unreachable here: no
             * server listens there and waiting out the tries would only delay the same failure (or the fallback). */
            udp_failed(r, TC_ERESOLVE);
            return;
        }
        if (n < 0) {
            return; /* drained (other errors: the timer retries) */
        }
        r->reg.bytes_in += (uint64_t)n;
        r->reg.active_ms = (uint32_t)tc_loop_now(r->loop);
        tc_dns_result_t res;
        if (!same_addr(&from, &r->ns) ||
            tc_dns_parse_response(buf, (size_t)n, r->id, r->name, r->qtype, &res) == TC_DNS_EDROP) {
            continue; /* not the answer to this question: keep waiting */
        }
        __atomic_add_fetch(&s_udp_answers, 1, __ATOMIC_SEQ_CST);
        tc__timer_disarm(&r->timer);
        if (res.found) {
            tc_addr_t a;
            memset(&a, 0, sizeof(a));
            a.family = r->qtype == TC_DNS_TYPE_A ? TC_AF_INET : TC_AF_INET6;
            memcpy(a.ip, res.addr, a.family == TC_AF_INET ? 4 : 16);
            resolve_finish(r, TC_OK, &a);
        } else if (res.rcode == TC_DNS_RCODE_NOERROR && !res.truncated && r->qtype == TC_DNS_TYPE_A) {
            udp_ask(r, TC_DNS_TYPE_AAAA); /* the name exists without an IPv4 address: ask for IPv6 */
        } else if (res.rcode == TC_DNS_RCODE_NOERROR || res.rcode == TC_DNS_RCODE_NXDOMAIN) {
            udp_failed(r, TC_ENOTFOUND); /* NXDOMAIN, or no address of either type */
        } else {
            udp_failed(r, TC_ERESOLVE); /* SERVFAIL, REFUSED, a truncated or malformed answer */
        }
        return;
    }
}

static int is_localhost(const char *name)
{
    static const char want[] = "localhost";
    size_t i = 0;
    for (; want[i]; i++) {
        char c = name[i];
        if ((c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) != want[i]) {
            return 0;
        }
    }
    return name[i] == 0;
}

static void resolve_pending(tc_pending_t *p)
{
    tc_resolve_t *r = (tc_resolve_t *)((char *)p - offsetof(tc_resolve_t, pending));
    resolve_finish(r, r->rc, &r->addr);
}

int tc__resolve_start(tc_loop_t *loop, const char *host, uint16_t port, const tc_addr_t *nameserver,
                      uint32_t timeout_ms, tc_resolve_cb cb, void *user, tc_resolve_t **out)
{
    size_t hl = strlen(host);
    if (hl > 0 && host[hl - 1] == '.') {
        hl--;
    }
    if (hl == 0 || hl > TC_DNS_MAX_NAME_TEXT - 1) {
        return TC_EBADNAME;
    }
    tc_resolve_t *r = tc_calloc(1, sizeof(*r));
    if (r == NULL) {
        return TC_ENOMEM;
    }
    r->loop = loop;
    r->cb = cb;
    r->user = user;
    r->port = port;
    memcpy(r->name, host, hl);
    r->io.fd = -1;
    r->pending.fn = resolve_pending;
    tc__timer_init(loop, &r->timer, udp_timeout, r);
    uint32_t try_ms = timeout_ms / RESOLVE_TRIES;
    r->try_ms = try_ms < 50 ? 50 : try_ms;
    *out = r;
    if (is_localhost(r->name)) {
        r->rc = tc_addr_from_ip("127.0.0.1", port, &r->addr); /* RFC 6761 6.3: never asked of a nameserver */
        tc__pending_add(loop, &r->pending);
        return TC_OK;
    }
    int rc = TC_OK;
    if (nameserver) {
        r->ns = *nameserver;
    } else {
        char text[TC_ADDR_STRLEN];
        r->may_fallback = TC_PORT_THREADS;
        rc = tc_port_nameserver(text, sizeof(text));
        if (rc == TC_OK) {
            rc = tc_addr_from_ip(text, 53, &r->ns);
        }
    }
    int fd = rc == TC_OK ? tc_sock_open(r->ns.family, TC_SOCK_DGRAM) : rc;
    /* Connected to the nameserver: only its datagrams arrive, and an ICMP port unreachable from it becomes
     * TC_ECONNREFUSED on the next receive or send (Linux; lwIP drops ICMP errors, so there the tries time out). */
    if (fd >= 0 && (rc = tc_sock_connect(fd, &r->ns)) != TC_OK) {
        tc_sock_close(fd);
        fd = rc;
    }
    if (fd >= 0) {
        tc__io_init(&r->io, fd, udp_readable);
        rc = tc__io_start(loop, &r->io, TC_POLLIN);
        if (rc != TC_OK) {
            tc_sock_close(fd);
            r->io.fd = -1;
        } else {
            tc__reg_add(loop, &r->reg, fd, TC_KIND_UDP, "resolve");
            r->reg.role = TC_ROLE_DNS;
            r->reg.state = TC_STATE_CONNECTING;
            r->reg.addr = r->ns;
        }
    } else {
        rc = fd;
    }
    if (rc == TC_OK) {
        r->qtype = TC_DNS_TYPE_A;
        r->tries = 1;
        r->id = (uint16_t)tc__rand(loop);
        rc = udp_send(r);
    }
    if (rc != TC_OK) {
        udp_close(r);
        if (r->may_fallback && fallback_start(r) == TC_OK) {
            return TC_OK;
        }
        r->rc = rc == TC_ENOTFOUND || rc == TC_ENOSYS ? TC_ERESOLVE : rc; /* no nameserver to ask */
        tc__pending_add(loop, &r->pending);
    }
    return TC_OK;
}

void tc__resolve_cancel(tc_resolve_t *r)
{
    if (r == NULL) {
        return;
    }
    if (r->fb) {
        fallback_cancel(r->fb);
    }
    udp_close(r);
    if (tc__pending_queued(&r->pending)) {
        /* Queued for delivery: let it run, silenced, and free then. */
        r->cb = NULL;
        return;
    }
    tc_free(r);
}
