/*
 * tc_registry_ext.c - external sockets in a loop's registry (see tc_registry_ext.h).
 *
 * Every change reaches the registry through tc_loop_post(), whose queue is FIFO: an entry's add runs before any
 * change or removal posted after it, so no lock guards the registry itself. Posts allocate; a removal whose post
 * cannot be allocated is parked on a process-wide list and carried out by the next external-socket post of its loop.
 * Outstanding entries count as background work (tc__bg_add()), so tc_loop_free() refuses until they are gone.
 */
#include "tc_registry_ext.h"

#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_internal.h"

struct tc_ext_sock {
    tc_regent_t reg;         /* first member, like every tracked object; loop thread only once posted */
    tc_loop_t *loop;
    uint8_t want;            /* atomic: flags asked for by any thread, copied into reg.flags by the loop */
    uint8_t added;           /* loop thread: reg is linked */
    tc_ext_sock_t *park_next; /* under g_park_mu: on the parked list */
};

/* Entries whose removal could not be posted (out of memory). */
static tc_port_mutex_t g_park_mu = TC_PORT_MUTEX_INIT;
static tc_ext_sock_t *g_parked;

static void ext_free(tc_ext_sock_t *s)
{
    tc_loop_t *loop = s->loop;
    if (s->added) {
        tc__reg_remove(loop, &s->reg);
    }
    tc_free(s);
    tc__bg_add(loop, -1);
}

/* Loop thread: carry out the parked removals of this loop whose entries are linked. An entry parked before its own
 * add ran stays parked: its add is still queued and flushes it. */
static void flush_parked(tc_loop_t *loop)
{
    tc_ext_sock_t *done = NULL;
    tc_port_mutex_lock(&g_park_mu);
    tc_ext_sock_t **pp = &g_parked;
    while (*pp) {
        tc_ext_sock_t *s = *pp;
        if (s->loop == loop && s->added) {
            *pp = s->park_next;
            s->park_next = done;
            done = s;
        } else {
            pp = &s->park_next;
        }
    }
    tc_port_mutex_unlock(&g_park_mu);
    while (done) {
        tc_ext_sock_t *s = done;
        done = s->park_next;
        ext_free(s);
    }
}

static void sync_flags(tc_ext_sock_t *s)
{
    s->reg.flags = __atomic_load_n(&s->want, __ATOMIC_ACQUIRE);
    s->reg.active_ms = (uint32_t)tc_loop_now(s->loop);
}

static void add_cb(tc_loop_t *loop, void *user)
{
    tc_ext_sock_t *s = user;
    /* tc__reg_add() fills id, fd, kind, owner and times; the addresses were read at open and are kept. */
    tc__reg_add(loop, &s->reg, s->reg.fd, TC_KIND_EXTERNAL, s->reg.owner);
    s->reg.state = TC_STATE_OPEN;
    s->added = 1;
    sync_flags(s);
    flush_parked(loop);
}

static void flags_cb(tc_loop_t *loop, void *user)
{
    sync_flags(user);
    flush_parked(loop);
}

static void remove_cb(tc_loop_t *loop, void *user)
{
    ext_free(user);
    flush_parked(loop);
}

int tc_ext_sock_open(tc_loop_t *loop, int fd, const char *owner, tc_ext_sock_t **out)
{
    if (loop == NULL || fd < 0 || owner == NULL || out == NULL) {
        return TC_EINVAL;
    }
    tc_ext_sock_t *s = tc_calloc(1, sizeof(*s));
    if (s == NULL) {
        return TC_ENOMEM;
    }
    s->loop = loop;
    s->reg.fd = fd;
    s->reg.owner = owner;
    /* Best effort: a socket that is not connected (or not a socket the backend knows) keeps a zeroed peer. */
    if (tc_sock_peer_addr(fd, &s->reg.addr) != TC_OK) {
        memset(&s->reg.addr, 0, sizeof(s->reg.addr));
    }
    tc__bg_add(loop, 1);
    /* tc_loop_post() fails with TC_ENOMEM before queueing; any other error means queued but not woken yet. */
    if (tc_loop_post(loop, add_cb, s) == TC_ENOMEM) {
        tc_free(s);
        tc__bg_add(loop, -1);
        return TC_ENOMEM;
    }
    *out = s;
    return TC_OK;
}

void tc_ext_sock_set_flags(tc_ext_sock_t *s, uint8_t set, uint8_t clear)
{
    if (s == NULL) {
        return;
    }
    uint8_t old = __atomic_load_n(&s->want, __ATOMIC_RELAXED);
    uint8_t want;
    do {
        want = (uint8_t)((old & (uint8_t)~clear) | set);
    } while (!__atomic_compare_exchange_n(&s->want, &old, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
    if (want != old) {
        (void)tc_loop_post(s->loop, flags_cb, s); /* TC_ENOMEM: the registry lags until the next change (header) */
    }
}

uint8_t tc_ext_sock_flags(const tc_ext_sock_t *s)
{
    return s ? __atomic_load_n(&s->want, __ATOMIC_ACQUIRE) : 0;
}

void tc_ext_sock_close(tc_ext_sock_t *s)
{
    if (s == NULL) {
        return;
    }
    if (tc_loop_post(s->loop, remove_cb, s) != TC_ENOMEM) {
        return;
    }
    tc_port_mutex_lock(&g_park_mu);
    s->park_next = g_parked;
    g_parked = s;
    tc_port_mutex_unlock(&g_park_mu);
}
