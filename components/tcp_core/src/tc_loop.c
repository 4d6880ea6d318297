/*
 * tc_loop.c - the event loop: readiness from the backend's readiness set (epoll on Linux) or from poll() over a dense
 * slot array with deferred removal, a binary heap of timers, a wake-up pair for posts from other threads and the
 * resolver's worker, the after-dispatch work list where closes are carried out, the registry of tracked sockets, and
 * the loop's allocation account (what stop reports measure).
 */
#include <stdlib.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_config.h"
#include "tc_err.h"
#include "tc_internal.h"
#include "tc_resolve.h"

#define TIMER_HEAP_INITIAL 16 /* armed timers before the heap grows: a few per server, one per closing connection */

typedef struct tc_post tc_post_t;
struct tc_post {
    tc_post_t *next;
    tc_post_cb cb;
    void *user;
};

struct tc_watch {
    tc_io_t io;
    tc_loop_t *loop;
    tc_watch_cb cb;
    void *user;
};

/* The watched descriptors live in slots: pfds[i] (descriptor and events) and ios[i] (its io). With poll() the slots
 * are the poll set itself, kept dense (a slot emptied during dispatch becomes a hole, compacted afterwards). With a
 * readiness set (epoll) a slot's index is the tag the set hands back, so slots never move: an emptied slot goes on a
 * free list and is reused, but not during the dispatch that emptied it - a ready event already taken for it must
 * find it empty, not given to someone else. */
struct tc_loop {
    tc_pollfd_t *pfds;
    tc_io_t **ios;
    int n, cap;
    int holes; /* poll: slots whose io left during dispatch, compacted afterwards */

    int evset; /* the backend's readiness set, or < 0: poll() */
    /* evset: two lists of empty slots, linked through the slots themselves (pfds[i].fd = FREE_LINK(next)): free_old
     * reusable at once, free_new emptied during this dispatch and reusable after it. -1: empty list. */
    int free_old, free_new, free_new_tail;
    tc_evready_t ready[64];

    tc_timer_t **heap;
    int nheap, capheap;

    uint64_t now;
    uint64_t skew; /* added to the monotonic clock (tc__loop_skew(): the connection fuzzer's time jumps) */
    uint32_t rng;
    int dispatching;
    int stop_flag; /* atomic */

    int wake_r, wake_w;
    tc_io_t wake_io;
    tc_port_mutex_t post_mu;
    tc_post_t *post_head, *post_tail;

    tc_pending_t *pending_head, *pending_tail;

    tc_regent_t *reg_head, *reg_tail;
    uint32_t reg_count;
    tc_close_stats_t close_stats;
    uint32_t next_id;

    int handles;
    int bg;       /* atomic: outstanding tc_registry_ext entries */
    int resolved; /* atomic: the resolver's worker finished a request of this loop */
    tc_alloc_acct_t acct;

    char *rbuf;
    size_t rbuf_size;
};

uint64_t tc_now_ms(void)
{
    return tc_port_now_ms();
}

uint64_t tc_loop_now(const tc_loop_t *loop)
{
    return loop->now;
}

void tc__loop_skew(tc_loop_t *loop, uint64_t ms)
{
    loop->skew += ms;
    loop->now += ms;
}

/* ---- poll set ---- */

void tc__io_init(tc_io_t *io, int fd, tc_io_cb cb)
{
    io->fd = fd;
    io->index = -1;
    io->cb = cb;
}

static int slots_grow(tc_loop_t *loop)
{
    int cap = loop->cap ? loop->cap * 2 : 16;
    tc_pollfd_t *p = tc_realloc(loop->pfds, (size_t)cap * sizeof(*p));
    if (p == NULL) {
        return TC_ENOMEM;
    }
    loop->pfds = p;
    tc_io_t **ios = tc_realloc(loop->ios, (size_t)cap * sizeof(*ios));
    if (ios == NULL) {
        return TC_ENOMEM;
    }
    loop->ios = ios;
    loop->cap = cap;
    return TC_OK;
}

/* An empty slot's pfds[].fd holds the next empty slot of its list: -2 - next (so -1, the end, stays -1). */
#define FREE_LINK(next) (-2 - (next))

/* evset: slot i (emptied) onto a free list: at once, or after the dispatch that emptied it. */
static void slot_free(tc_loop_t *loop, int i)
{
    loop->ios[i] = NULL;
    loop->pfds[i].events = 0;
    loop->pfds[i].revents = 0;
    if (loop->dispatching) {
        loop->pfds[i].fd = FREE_LINK(loop->free_new);
        if (loop->free_new < 0) {
            loop->free_new_tail = i;
        }
        loop->free_new = i;
    } else {
        loop->pfds[i].fd = FREE_LINK(loop->free_old);
        loop->free_old = i;
    }
}

int tc__io_start(tc_loop_t *loop, tc_io_t *io, int events)
{
    int i;
    if (loop->evset >= 0 && loop->free_old >= 0) {
        i = loop->free_old;
        loop->free_old = FREE_LINK(loop->pfds[i].fd);
    } else {
        if (loop->n == loop->cap && slots_grow(loop) != TC_OK) {
            return TC_ENOMEM;
        }
        i = loop->n++;
    }
    if (loop->evset >= 0) {
        /* evset: pfds[i].revents (unused by a readiness set) holds the interest the set was last told. */
        int rc = tc_sock_evset_add(loop->evset, io->fd, events, (uint32_t)i);
        if (rc != TC_OK) {
            int saved = loop->dispatching;
            loop->dispatching = 0; /* never handed out: reusable at once */
            slot_free(loop, i);
            loop->dispatching = saved;
            return rc;
        }
    }
    io->index = i;
    loop->pfds[i] = (tc_pollfd_t){.fd = io->fd, .events = (short)events, .revents = 0};
    if (loop->evset >= 0) {
        loop->pfds[i].revents = (short)events;
    }
    loop->ios[i] = io;
    return TC_OK;
}

void tc__io_set(tc_loop_t *loop, tc_io_t *io, int events)
{
    if (io->index < 0 || loop->pfds[io->index].events == (short)events) {
        return;
    }
    tc_pollfd_t *p = &loop->pfds[io->index];
    p->events = (short)events;
    /* evset: interest dropped to nothing is not told to the set at once (lazy): most often the descriptor is
     * closed before the next wait (a connection that saw its peer's FIN), which removes it from the set anyway.
     * If it is still open and the set reports something unwanted, the dispatch narrows the set then. */
    if (loop->evset >= 0 && events != 0 && p->revents != (short)events) {
        tc_sock_evset_mod(loop->evset, io->fd, events, (uint32_t)io->index);
        p->revents = (short)events;
    }
}

int tc__io_events(const tc_loop_t *loop, const tc_io_t *io)
{
    return io->index >= 0 ? loop->pfds[io->index].events : 0;
}

static void compact(tc_loop_t *loop)
{
    int w = 0;
    for (int r = 0; r < loop->n; r++) {
        if (loop->ios[r] == NULL) {
            continue;
        }
        loop->pfds[w] = loop->pfds[r];
        loop->ios[w] = loop->ios[r];
        loop->ios[w]->index = w;
        w++;
    }
    loop->n = w;
    loop->holes = 0;
}

static void io_stop(tc_loop_t *loop, tc_io_t *io, int closing)
{
    int i = io->index;
    if (i < 0) {
        return;
    }
    io->index = -1;
    if (loop->evset >= 0) {
        if (!closing) {
            tc_sock_evset_del(loop->evset, io->fd);
        }
        slot_free(loop, i);
        return;
    }
    if (loop->dispatching) {
        /* The dispatch walk is indexing the set: leave a hole and compact after it. */
        loop->ios[i] = NULL;
        loop->pfds[i].fd = -1;
        loop->pfds[i].events = 0;
        loop->pfds[i].revents = 0;
        loop->holes++;
        return;
    }
    int last = loop->n - 1;
    if (i != last) {
        loop->pfds[i] = loop->pfds[last];
        loop->ios[i] = loop->ios[last];
        if (loop->ios[i]) {
            loop->ios[i]->index = i;
        }
    }
    loop->n--;
}

void tc__io_stop(tc_loop_t *loop, tc_io_t *io)
{
    io_stop(loop, io, 0);
}

void tc__io_stop_closing(tc_loop_t *loop, tc_io_t *io)
{
    io_stop(loop, io, 1);
}

/* ---- timers ---- */

static void heap_swap(tc_loop_t *loop, int a, int b)
{
    tc_timer_t *t = loop->heap[a];
    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_index = a;
    loop->heap[b]->heap_index = b;
}

static void heap_up(tc_loop_t *loop, int i)
{
    while (i > 0) {
        int p = (i - 1) / 2;
        if (loop->heap[p]->due <= loop->heap[i]->due) {
            break;
        }
        heap_swap(loop, i, p);
        i = p;
    }
}

static void heap_down(tc_loop_t *loop, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->nheap && loop->heap[l]->due < loop->heap[m]->due) {
            m = l;
        }
        if (r < loop->nheap && loop->heap[r]->due < loop->heap[m]->due) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(loop, i, m);
        i = m;
    }
}

void tc__timer_init(tc_loop_t *loop, tc_timer_t *t, tc_timer_cb cb, void *user)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->cb = cb;
    t->user = user;
    t->heap_index = -1;
}

void tc__timer_disarm(tc_timer_t *t)
{
    tc_loop_t *loop = t->loop;
    int i = t->heap_index;
    if (i < 0) {
        return;
    }
    t->heap_index = -1;
    loop->nheap--;
    if (i != loop->nheap) {
        loop->heap[i] = loop->heap[loop->nheap];
        loop->heap[i]->heap_index = i;
        heap_down(loop, i);
        heap_up(loop, i);
    }
}

int tc__timer_arm(tc_timer_t *t, uint64_t delay_ms)
{
    tc_loop_t *loop = t->loop;
    tc__timer_disarm(t);
    if (loop->nheap == loop->capheap) {
        int cap = loop->capheap * 2;
        tc_timer_t **h = tc_realloc(loop->heap, (size_t)cap * sizeof(*h));
        if (h == NULL) {
            return TC_ENOMEM;
        }
        loop->heap = h;
        loop->capheap = cap;
    }
    t->due = loop->now + delay_ms;
    t->heap_index = loop->nheap;
    loop->heap[loop->nheap++] = t;
    heap_up(loop, t->heap_index);
    return TC_OK;
}

int tc_timer_start(tc_loop_t *loop, uint64_t delay_ms, tc_timer_cb cb, void *user, tc_timer_t **out)
{
    if (loop == NULL || cb == NULL) {
        return TC_EINVAL;
    }
    tc_timer_t *t = tc_malloc(sizeof(*t));
    if (t == NULL) {
        return TC_ENOMEM;
    }
    tc__timer_init(loop, t, cb, user);
    t->owned = 1;
    int rc = tc__timer_arm(t, delay_ms);
    if (rc != TC_OK) {
        tc_free(t);
        return rc;
    }
    loop->handles++;
    if (out) {
        *out = t;
    }
    return TC_OK;
}

static void timer_release(tc_timer_t *t)
{
    if (t->owned) {
        t->loop->handles--;
        tc_free(t);
    }
}

void tc_timer_cancel(tc_timer_t *timer)
{
    if (timer == NULL) {
        return;
    }
    tc__timer_disarm(timer);
    if (timer->running) {
        timer->cancelled = 1; /* freed when its callback returns */
        return;
    }
    timer_release(timer);
}

static void run_timers(tc_loop_t *loop)
{
    /* Bounded: a timer that reschedules itself with 0 ms runs again next iteration, not in this one. */
    int budget = loop->nheap;
    while (loop->nheap > 0 && budget-- > 0 && loop->heap[0]->due <= loop->now) {
        tc_timer_t *t = loop->heap[0];
        tc__timer_disarm(t);
        uint8_t owned = t->owned;
        t->running = 1;
        int64_t next = t->cb(t, t->user);
        if (!owned && next < 0) {
            /* An embedded timer that stopped is not touched again: its callback may have freed the record holding
             * it (a stream's last write ends its request, which is freed with its timer). */
            continue;
        }
        t->running = 0;
        if (t->cancelled) {
            timer_release(t);
        } else if (next >= 0) {
            if (t->heap_index < 0) {
                tc__timer_arm(t, (uint64_t)next);
            }
        } else if (t->heap_index < 0) {
            timer_release(t);
        }
    }
}

/* ---- after-dispatch work ---- */

void tc__pending_add(tc_loop_t *loop, tc_pending_t *p)
{
    if (p->next != NULL) {
        return;
    }
    p->next = p; /* the last entry points at itself */
    if (loop->pending_tail) {
        loop->pending_tail->next = p;
    } else {
        loop->pending_head = p;
    }
    loop->pending_tail = p;
}

int tc__pending_queued(const tc_pending_t *p)
{
    return p->next != NULL;
}

static void run_pending(tc_loop_t *loop)
{
    /* Each entry runs once per pass; work it queues again waits for the next pass (no unbounded spinning). */
    tc_pending_t *list = loop->pending_head;
    loop->pending_head = loop->pending_tail = NULL;
    while (list) {
        tc_pending_t *p = list;
        list = p->next == p ? NULL : p->next;
        p->next = NULL;
        p->fn(p);
    }
}

/* ---- posts and wake-ups ---- */

static void run_posts(tc_loop_t *loop)
{
    tc_port_mutex_lock(&loop->post_mu);
    tc_post_t *list = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    tc_port_mutex_unlock(&loop->post_mu);
    while (list) {
        tc_post_t *p = list;
        list = p->next;
        p->cb(loop, p->user);
        tc_free(p);
    }
}

static void wake_cb(tc_io_t *io, int revents)
{
    (void)revents;
    tc_sock_wake_drain(io->fd);
}

int tc_loop_post(tc_loop_t *loop, tc_post_cb cb, void *user)
{
    if (loop == NULL || cb == NULL) {
        return TC_EINVAL;
    }
    tc_post_t *p = tc_malloc(sizeof(*p));
    if (p == NULL) {
        return TC_ENOMEM;
    }
    p->next = NULL;
    p->cb = cb;
    p->user = user;
    tc_port_mutex_lock(&loop->post_mu);
    if (loop->post_tail) {
        loop->post_tail->next = p;
    } else {
        loop->post_head = p;
    }
    loop->post_tail = p;
    tc_port_mutex_unlock(&loop->post_mu);
    return tc_sock_wake_signal(loop->wake_w);
}

void tc_loop_stop(tc_loop_t *loop)
{
    __atomic_store_n(&loop->stop_flag, 1, __ATOMIC_SEQ_CST);
    tc_sock_wake_signal(loop->wake_w);
}

/* ---- lifetime ---- */

int tc_loop_new(tc_loop_t **out)
{
    if (out == NULL) {
        return TC_EINVAL;
    }
    tc_loop_t *loop = tc_calloc(1, sizeof(*loop));
    if (loop == NULL) {
        return TC_ENOMEM;
    }
    loop->rbuf_size = TC_CFG_READ_BUF_SIZE;
    loop->rbuf = tc_malloc(loop->rbuf_size + TC_CFG_SEND_GATHER_SIZE); /* the send gather buffer follows it */
    /* The timer heap from the start: servers arm their sweeps only while they have something to time, and a sweep
     * that wakes must not need memory (nor make the loop's heap figure move when it does). */
    loop->capheap = TIMER_HEAP_INITIAL;
    loop->heap = tc_malloc((size_t)loop->capheap * sizeof(*loop->heap));
    int rc = loop->rbuf && loop->heap ? tc_sock_wake_open(&loop->wake_r, &loop->wake_w) : TC_ENOMEM;
    if (rc != TC_OK) {
        tc_free(loop->heap);
        tc_free(loop->rbuf);
        tc_free(loop);
        return rc;
    }
    /* A readiness set where the backend has one; poll() otherwise (and if it cannot be opened). */
    loop->evset = TC_CFG_USE_EVSET ? tc_sock_evset_open() : TC_ENOSYS;
    loop->free_old = loop->free_new = -1;
    tc_port_mutex_init(&loop->post_mu); /* cannot fail: no platform allocates for a mutex */
    loop->now = tc_now_ms() + loop->skew;
    loop->rng = (uint32_t)(loop->now * 2654435761u) | 1u;
    loop->next_id = 1;
    tc__io_init(&loop->wake_io, loop->wake_r, wake_cb);
    rc = tc__io_start(loop, &loop->wake_io, TC_POLLIN);
    if (rc != TC_OK) {
        tc_sock_wake_close(loop->wake_r, loop->wake_w);
        tc_port_mutex_destroy(&loop->post_mu);
        tc_sock_evset_close(loop->evset);
        tc_free(loop->pfds);
        tc_free(loop->ios);
        tc_free(loop->heap);
        tc_free(loop->rbuf);
        tc_free(loop);
        return rc;
    }
    *out = loop;
    return TC_OK;
}

int tc_loop_free(tc_loop_t *loop)
{
    if (loop == NULL) {
        return TC_OK;
    }
    if (loop->handles > 0 || loop->reg_count > 0 || __atomic_load_n(&loop->bg, __ATOMIC_SEQ_CST) > 0 ||
        loop->dispatching) {
        return TC_EBUSY;
    }
    tc__resolver_loop_gone(loop); /* before the wake-up pair closes: the worker signals it under its mutex */
    tc_post_t *p = loop->post_head;
    while (p) {
        tc_post_t *next = p->next;
        tc_free(p);
        p = next;
    }
    tc__io_stop_closing(loop, &loop->wake_io);
    tc_sock_wake_close(loop->wake_r, loop->wake_w);
    tc_port_mutex_destroy(&loop->post_mu);
    tc_sock_evset_close(loop->evset);
    tc_free(loop->pfds);
    tc_free(loop->ios);
    tc_free(loop->heap);
    tc_free(loop->rbuf);
    tc_free(loop);
    return TC_OK;
}

/* ---- running ---- */

static int run_once(tc_loop_t *loop, int timeout_ms);

int tc_loop_run_once(tc_loop_t *loop, int timeout_ms)
{
    if (loop->dispatching) {
        return TC_EBUSY;
    }
    /* Whatever this thread frees while it runs the loop is the loop's (tc_handle.h: bytes_freed). */
    tc_alloc_acct_t *prev = tc__alloc_acct_enter(&loop->acct);
    int rc = run_once(loop, timeout_ms);
    tc__alloc_acct_leave(prev);
    return rc;
}

static int run_once(tc_loop_t *loop, int timeout_ms)
{
    loop->now = tc_now_ms() + loop->skew;
    int timeout = timeout_ms;
    /* Posts are not looked at here (post_head belongs to post_mu): a poster appends, then signals the wake-up
     * socket, so poll() returns at once for any post not yet taken. */
    if (loop->pending_head) {
        timeout = 0;
    } else if (loop->nheap > 0) {
        uint64_t due = loop->heap[0]->due;
        int until = due <= loop->now ? 0 : (int)(due - loop->now > 0x7fffffff ? 0x7fffffff : due - loop->now);
        if (timeout < 0 || until < timeout) {
            timeout = until;
        }
    }
    int dispatched = 0;
    if (loop->evset >= 0) {
        int rc = tc_sock_evset_wait(loop->evset, loop->ready, (int)(sizeof(loop->ready) / sizeof(loop->ready[0])),
                                    timeout);
        if (rc < 0) {
            return rc;
        }
        loop->now = tc_now_ms() + loop->skew;
        loop->dispatching = 1;
        for (int k = 0; k < rc; k++) {
            uint32_t i = loop->ready[k].tag;
            tc_io_t *io = i < (uint32_t)loop->n ? loop->ios[i] : NULL;
            if (io == NULL) { /* its io left during this dispatch */
                continue;
            }
            int re = loop->ready[k].revents;
            tc_pollfd_t *p = &loop->pfds[i];
            if (p->revents != p->events) {
                /* The set still holds interest given up lazily (tc__io_set): narrow it now, and pass on only
                 * what a set told the current interest would report (errors and hang-ups always). */
                tc_sock_evset_mod(loop->evset, io->fd, p->events, i);
                p->revents = p->events;
                re &= p->events | TC_POLLERR | TC_POLLHUP;
                if (re == 0) {
                    continue;
                }
            }
            dispatched++;
            io->cb(io, re);
        }
    } else {
        int n = loop->n;
        int rc = tc_sock_poll(loop->pfds, n, timeout);
        if (rc < 0) {
            return rc;
        }
        loop->now = tc_now_ms() + loop->skew;
        loop->dispatching = 1;
        for (int i = 0; i < n && dispatched < rc; i++) {
            short re = loop->pfds[i].revents;
            if (re == 0) {
                continue;
            }
            loop->pfds[i].revents = 0;
            dispatched++;
            tc_io_t *io = loop->ios[i];
            if (io) {
                io->cb(io, re);
            }
        }
    }
    run_timers(loop);
    run_posts(loop);
    if (__atomic_exchange_n(&loop->resolved, 0, __ATOMIC_SEQ_CST)) {
        tc__resolver_collect(loop);
    }
    run_pending(loop);
    loop->dispatching = 0;
    if (loop->holes) {
        compact(loop);
    }
    if (loop->free_new >= 0) {
        loop->pfds[loop->free_new_tail].fd = FREE_LINK(loop->free_old);
        loop->free_old = loop->free_new;
        loop->free_new = -1;
    }
    return dispatched;
}

int tc__loop_wait_done(tc_loop_t *loop, const int *done, uint32_t deadline_ms)
{
    uint64_t give_up = tc_now_ms() + deadline_ms + 1000;
    while (!*done && tc_now_ms() < give_up) {
        int rc = tc_loop_run_once(loop, 20);
        if (rc < 0) {
            return rc;
        }
    }
    return *done ? TC_OK : TC_ETIMEDOUT;
}

int tc_loop_run_for(tc_loop_t *loop, uint32_t ms)
{
    if (loop->dispatching) {
        return TC_EBUSY;
    }
    uint64_t end = tc_now_ms() + ms;
    for (;;) {
        if (__atomic_exchange_n(&loop->stop_flag, 0, __ATOMIC_SEQ_CST)) {
            return TC_OK;
        }
        uint64_t now = tc_now_ms();
        if (now >= end) {
            return TC_OK;
        }
        int rc = tc_loop_run_once(loop, (int)(end - now));
        if (rc < 0) {
            return rc;
        }
    }
}

int tc_loop_run(tc_loop_t *loop)
{
    if (loop->dispatching) {
        return TC_EBUSY;
    }
    for (;;) {
        if (__atomic_exchange_n(&loop->stop_flag, 0, __ATOMIC_SEQ_CST)) {
            return TC_OK;
        }
        int rc = tc_loop_run_once(loop, -1);
        if (rc < 0) {
            return rc;
        }
    }
}

/* ---- watches ---- */

static void watch_io_cb(tc_io_t *io, int revents)
{
    tc_watch_t *w = (tc_watch_t *)io;
    w->cb(w, io->fd, revents, w->user);
}

int tc_watch_add(tc_loop_t *loop, int fd, int events, tc_watch_cb cb, void *user, tc_watch_t **out)
{
    if (loop == NULL || fd < 0 || cb == NULL) {
        return TC_EINVAL;
    }
    tc_watch_t *w = tc_calloc(1, sizeof(*w));
    if (w == NULL) {
        return TC_ENOMEM;
    }
    tc__io_init(&w->io, fd, watch_io_cb);
    w->loop = loop;
    w->cb = cb;
    w->user = user;
    int rc = tc__io_start(loop, &w->io, events);
    if (rc != TC_OK) {
        tc_free(w);
        return rc;
    }
    loop->handles++;
    if (out) {
        *out = w;
    }
    return TC_OK;
}

int tc_watch_set(tc_watch_t *watch, int events)
{
    if (watch == NULL) {
        return TC_EINVAL;
    }
    tc__io_set(watch->loop, &watch->io, events);
    return TC_OK;
}

void tc_watch_remove(tc_watch_t *watch)
{
    if (watch == NULL) {
        return;
    }
    /* Freed at once: the dispatch walk reads the slot, which tc__io_stop() has emptied, never the watch. */
    tc__io_stop(watch->loop, &watch->io);
    watch->loop->handles--;
    tc_free(watch);
}

/* ---- registry and shared services ---- */

void tc__reg_add(tc_loop_t *loop, tc_regent_t *e, int fd, tc_kind_t kind, const char *owner)
{
    e->id = loop->next_id++;
    if (loop->next_id == 0) {
        loop->next_id = 1;
    }
    e->fd = fd;
    e->kind = (uint8_t)kind;
    e->role = kind == TC_KIND_LISTENER ? TC_ROLE_LISTENER
              : kind == TC_KIND_CLIENT ? TC_ROLE_CLIENT
              : kind == TC_KIND_EXTERNAL ? TC_ROLE_EXTERNAL
                                         : TC_ROLE_TCP;
    e->owner = owner;
    e->created_ms = (uint32_t)loop->now;
    e->active_ms = (uint32_t)loop->now;
    e->prev = loop->reg_tail;
    e->next = NULL;
    if (loop->reg_tail) {
        loop->reg_tail->next = e;
    } else {
        loop->reg_head = e;
    }
    loop->reg_tail = e;
    loop->reg_count++;
}

tc_regent_t *tc__reg_head(const tc_loop_t *loop)
{
    return loop->reg_head;
}

uint64_t tc__reg_ms(const tc_loop_t *loop, uint32_t stamp)
{
    return loop->now - (uint32_t)((uint32_t)loop->now - stamp);
}

void tc__reg_remove(tc_loop_t *loop, tc_regent_t *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        loop->reg_head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    } else {
        loop->reg_tail = e->prev;
    }
    e->prev = e->next = NULL;
    loop->reg_count--;
}

static void fill_info(const tc_loop_t *loop, const tc_regent_t *e, tc_sock_info_t *info)
{
    info->id = e->id;
    info->fd = e->fd;
    info->kind = e->kind;
    info->state = e->state;
    info->flags = e->flags;
    info->role = e->role;
    info->owner = e->owner;
    if (e->kind == TC_KIND_LISTENER || e->kind == TC_KIND_UDP) {
        info->local = e->addr;
        memset(&info->peer, 0, sizeof(info->peer));
    } else {
        memset(&info->local, 0, sizeof(info->local));
        info->peer = e->addr;
    }
    info->age_ms = loop->now - tc__reg_ms(loop, e->created_ms);
    info->idle_ms = loop->now - tc__reg_ms(loop, e->active_ms);
    info->bytes_in = e->bytes_in;
    info->bytes_out = e->bytes_out;
    info->queued = e->queued;
}

const char *tc_role_name(unsigned role)
{
    static const char *names[TC_ROLE_COUNT] = {"tcp", "listener", "client", "echo",   "http",
                                               "ws",  "sse",      "stream", "dns",    "external"};
    return role < TC_ROLE_COUNT ? names[role] : "?";
}

const char *tc_kind_name(unsigned kind)
{
    static const char *const names[] = {"?", "listener", "accepted", "client", "udp", "external"};
    return kind >= TC_KIND_LISTENER && kind <= TC_KIND_EXTERNAL ? names[kind] : names[0];
}

const char *tc_state_name(unsigned state)
{
    static const char *const names[] = {"?", "listening", "connecting", "open", "closing"};
    return state >= TC_STATE_LISTENING && state <= TC_STATE_CLOSING ? names[state] : names[0];
}

int tc_role_is_long_lived(unsigned role)
{
    return role == TC_ROLE_WS || role == TC_ROLE_SSE || role == TC_ROLE_STREAM;
}

tc_close_stats_t *tc__close_stats(tc_loop_t *loop)
{
    return &loop->close_stats;
}

void tc_registry_close_stats(const tc_loop_t *loop, tc_close_stats_t *out)
{
    *out = loop->close_stats;
}

uint32_t tc_registry_count(const tc_loop_t *loop)
{
    return loop->reg_count;
}

uint32_t tc_registry_foreach(const tc_loop_t *loop, tc_registry_cb cb, void *user)
{
    uint32_t n = 0;
    for (const tc_regent_t *e = loop->reg_head; e; e = e->next) {
        tc_sock_info_t info;
        fill_info(loop, e, &info);
        n++;
        if (cb(&info, user)) {
            break;
        }
    }
    return n;
}

uint32_t tc_registry_snapshot(const tc_loop_t *loop, tc_sock_info_t *out, uint32_t cap)
{
    uint32_t i = 0;
    for (const tc_regent_t *e = loop->reg_head; e && i < cap; e = e->next, i++) {
        fill_info(loop, e, &out[i]);
    }
    return loop->reg_count;
}

void tc__handles_add(tc_loop_t *loop, int delta)
{
    loop->handles += delta;
}

char *tc__rbuf(tc_loop_t *loop, size_t *size)
{
    *size = loop->rbuf_size;
    return loop->rbuf;
}

char *tc__gbuf(tc_loop_t *loop, size_t *size)
{
    *size = TC_CFG_SEND_GATHER_SIZE;
    return loop->rbuf + loop->rbuf_size;
}

uint32_t tc__rand(tc_loop_t *loop)
{
    /* xorshift32 */
    uint32_t x = loop->rng;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    loop->rng = x;
    return x;
}

void tc__bg_add(tc_loop_t *loop, int delta)
{
    __atomic_add_fetch(&loop->bg, delta, __ATOMIC_SEQ_CST);
}

void tc__loop_wake_resolved(tc_loop_t *loop)
{
    __atomic_store_n(&loop->resolved, 1, __ATOMIC_SEQ_CST);
    tc_sock_wake_signal(loop->wake_w);
}

tc_alloc_acct_t *tc__loop_acct(tc_loop_t *loop)
{
    return &loop->acct;
}

uint64_t tc_loop_bytes_freed(const tc_loop_t *loop)
{
    return loop->acct.freed;
}

uint64_t tc_loop_bytes_allocated(const tc_loop_t *loop)
{
    return loop->acct.allocated;
}

uint64_t tc__loop_clock(const tc_loop_t *loop)
{
    return loop->dispatching ? loop->now : tc_now_ms() + loop->skew;
}

int tc__in_dispatch(const tc_loop_t *loop)
{
    return loop->dispatching;
}
