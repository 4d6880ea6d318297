/*
 * tc_handle.c - the one stop of every stoppable object (see tc_handle.h): request, wind down by kind, finish with one
 * report measured one way.
 */
#include <string.h>

#include "tc_err.h"
#include "tc_internal.h"

void tc__handle_init(tc_handle_t *h, const tc_handle_ops_t *ops, tc_loop_t *loop)
{
    memset(h, 0, sizeof(*h));
    h->ops = ops;
    h->loop = loop;
}

int tc_handle_stop(tc_handle_t *h, uint32_t deadline_ms, tc_handle_stop_cb done, void *user)
{
    if (h == NULL) {
        return TC_EINVAL;
    }
    if (h->stopping) {
        return TC_ECLOSED;
    }
    tc_alloc_acct_t *acct = tc__loop_acct(h->loop);
    h->stopping = 1;
    h->stop_started = tc__loop_clock(h->loop);
    h->stop_deadline = h->stop_started + deadline_ms;
    h->freed_mark = acct->freed - acct->allocated; /* unsigned: differences of this wrap correctly */
    h->done = done;
    h->done_user = user;
    memset(&h->report, 0, sizeof(h->report));
    /* What the kind frees right here (a DNS responder: everything) counts for this loop too. */
    tc_alloc_acct_t *prev = tc__alloc_acct_enter(acct);
    h->ops->stop(h, deadline_ms); /* h may be gone after this */
    tc__alloc_acct_leave(prev);
    return TC_OK;
}

int tc_handle_stop_sooner(tc_handle_t *h, uint32_t deadline_ms)
{
    if (h == NULL || !h->stopping) {
        return TC_EINVAL;
    }
    uint64_t at = tc__loop_clock(h->loop) + deadline_ms;
    if (at < h->stop_deadline) {
        h->stop_deadline = at;
        if (h->ops->sooner) {
            h->ops->sooner(h, deadline_ms);
        }
    }
    return TC_OK;
}

void tc__handle_finish(tc_handle_t *h, void (*release)(tc_handle_t *h))
{
    tc_loop_t *loop = h->loop;
    tc_alloc_acct_t *acct = tc__loop_acct(loop);
    tc_stop_report_t rep = h->report;
    tc_stop_report_t parts[TC_STOP_PARTS_MAX];
    if (rep.nparts > TC_STOP_PARTS_MAX) {
        rep.nparts = TC_STOP_PARTS_MAX;
    }
    if (rep.nparts > 0) {
        memcpy(parts, rep.parts, rep.nparts * sizeof(parts[0])); /* they live in the object freed below */
        rep.parts = parts;
    } else {
        rep.parts = NULL;
    }
    rep.kind = (uint32_t)h->ops->kind;
    tc_handle_stop_cb done = h->done;
    void *user = h->done_user;
    uint64_t mark = h->freed_mark;
    uint64_t started = h->stop_started;
    tc_alloc_acct_t *prev = tc__alloc_acct_enter(acct);
    release(h);
    tc__alloc_acct_leave(prev);
    uint64_t net = acct->freed - acct->allocated - mark;
    rep.bytes_freed = (int64_t)net > 0 ? (size_t)net : 0; /* other handles of the loop may have grown meanwhile */
    uint64_t now = tc__loop_clock(loop);
    rep.elapsed_ms = now > started ? (uint32_t)(now - started) : 0;
    if (done) {
        done(h, &rep, user);
    }
}

typedef struct {
    int done;
    tc_stop_report_t report;
} stop_wait_t;

static void stop_wait_cb(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    stop_wait_t *w = user;
    w->report = *r;
    w->report.nparts = 0;
    w->report.parts = NULL;
    w->done = 1;
}

int tc_handle_stop_wait(tc_handle_t *h, uint32_t deadline_ms, tc_stop_report_t *report)
{
    if (h == NULL) {
        return TC_EINVAL;
    }
    tc_loop_t *loop = h->loop;
    if (tc__in_dispatch(loop)) {
        return TC_EBUSY;
    }
    stop_wait_t w = {0};
    int rc = tc_handle_stop(h, deadline_ms, stop_wait_cb, &w);
    if (rc != TC_OK) {
        return rc;
    }
    rc = tc__loop_wait_done(loop, &w.done, deadline_ms);
    if (!w.done) {
        h->done = NULL; /* still alive (not finished): it must not write to this stack frame later */
    }
    if (report) {
        *report = w.report;
    }
    return rc;
}

tc_handle_kind_t tc_handle_kind(const tc_handle_t *h)
{
    return h->ops->kind;
}

tc_loop_t *tc_handle_loop(const tc_handle_t *h)
{
    return h->loop;
}

int tc_handle_is_stopping(const tc_handle_t *h)
{
    return h->stopping;
}
