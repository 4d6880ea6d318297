/*
 * tc_alloc.c - the one allocation path of tcp_core.
 *
 * Each block carries a small header with its size so that frees can be counted without asking the allocator; the
 * header is as large as max_align_t's alignment, to keep the payload aligned for any type on 32- and 64-bit targets.
 * Not sizeof(max_align_t), which is twice that or more (x86-64 and RV32: 32 bytes for an alignment of 16; i386: 48
 * for 16; Xtensa lx106: 16 for 8): every block, each connection's included, carried 8-32 bytes it did not need.
 *
 * Per-loop accounting: a thread that runs a loop (tc_loop_run_once() and the stops) names that loop's account as the
 * thread's current one (tc__alloc_acct_enter()); every byte allocated or freed while an account is current is added,
 * at its exact block size, to that account's allocated or freed count. A stop's bytes_freed is the loop's net release
 * across the stop (freed minus allocated), so another loop in the same process, run by its own thread, never shows
 * in the figure, and memory a stop allocates and frees again (close deadlines) does not count as released.
 */
#include "tc_alloc.h"

#include <stdlib.h>
#include <string.h>

#include "tc_err.h"
#include "tc_internal.h"

typedef struct {
    _Alignas(max_align_t) size_t size;
} tc_block_hdr_t;
_Static_assert(sizeof(tc_block_hdr_t) == _Alignof(max_align_t), "the block header is one alignment unit");

static tc_alloc_cb s_hook;
static void *s_hook_user;
static size_t s_limit;
static size_t s_in_use;
static size_t s_peak;
static size_t s_blocks;
static uint64_t s_allocs;
static uint64_t s_failures;
static TC_PORT_THREAD_LOCAL tc_alloc_acct_t *s_acct; /* the account of the loop this thread is running, or NULL */

tc_alloc_acct_t *tc__alloc_acct_enter(tc_alloc_acct_t *acct)
{
    tc_alloc_acct_t *prev = s_acct;
    s_acct = acct;
    return prev;
}

void tc__alloc_acct_leave(tc_alloc_acct_t *prev)
{
    s_acct = prev;
}

static void *default_hook(void *ptr, size_t size, void *user)
{
    (void)user;
    if (size == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, size);
}

static void *raw(void *ptr, size_t size)
{
    return s_hook ? s_hook(ptr, size, s_hook_user) : default_hook(ptr, size, NULL);
}

int tc_alloc_set_hook(tc_alloc_cb cb, void *user)
{
    if (__atomic_load_n(&s_blocks, __ATOMIC_SEQ_CST) != 0) {
        return TC_EBUSY;
    }
    s_hook = cb;
    s_hook_user = user;
    return TC_OK;
}

void tc_alloc_set_limit(size_t max_bytes)
{
    __atomic_store_n(&s_limit, max_bytes, __ATOMIC_SEQ_CST);
}

void tc_alloc_stats(tc_alloc_stats_t *out)
{
    out->bytes_in_use = __atomic_load_n(&s_in_use, __ATOMIC_SEQ_CST);
    out->bytes_peak = __atomic_load_n(&s_peak, __ATOMIC_SEQ_CST);
    out->blocks_in_use = __atomic_load_n(&s_blocks, __ATOMIC_SEQ_CST);
    out->allocs = __atomic_load_n(&s_allocs, __ATOMIC_SEQ_CST);
    out->failures = __atomic_load_n(&s_failures, __ATOMIC_SEQ_CST);
}

void tc_alloc_reset_peak(void)
{
    __atomic_store_n(&s_peak, __atomic_load_n(&s_in_use, __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
}

/* Account for a change of delta bytes; refuses growth past the budget. */
static int account(size_t grow, size_t shrink)
{
    size_t limit = __atomic_load_n(&s_limit, __ATOMIC_SEQ_CST);
    size_t now = __atomic_add_fetch(&s_in_use, grow, __ATOMIC_SEQ_CST);
    if (limit != 0 && grow > shrink && now - shrink > limit) {
        __atomic_sub_fetch(&s_in_use, grow, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&s_failures, 1, __ATOMIC_SEQ_CST);
        return -1;
    }
    size_t peak = __atomic_load_n(&s_peak, __ATOMIC_SEQ_CST);
    while (now > peak && !__atomic_compare_exchange_n(&s_peak, &peak, now, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    return 0;
}

void *tc_realloc(void *ptr, size_t size)
{
    if (size == 0) {
        tc_free(ptr);
        return NULL;
    }
    if (size > (size_t)-1 - sizeof(tc_block_hdr_t)) {
        __atomic_add_fetch(&s_failures, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    tc_block_hdr_t *old = ptr ? (tc_block_hdr_t *)ptr - 1 : NULL;
    size_t old_size = old ? old->size : 0;
    if (account(size, old_size) != 0) {
        return NULL;
    }
    tc_block_hdr_t *blk = raw(old, size + sizeof(tc_block_hdr_t));
    if (blk == NULL) {
        __atomic_sub_fetch(&s_in_use, size, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&s_failures, 1, __ATOMIC_SEQ_CST);
        return NULL;
    }
    __atomic_sub_fetch(&s_in_use, old_size, __ATOMIC_SEQ_CST);
    if (s_acct) {
        if (size > old_size) {
            s_acct->allocated += size - old_size;
        } else {
            s_acct->freed += old_size - size; /* a shrink releases bytes too */
        }
    }
    if (old == NULL) {
        __atomic_add_fetch(&s_blocks, 1, __ATOMIC_SEQ_CST);
    }
    __atomic_add_fetch(&s_allocs, 1, __ATOMIC_SEQ_CST);
    blk->size = size;
    return blk + 1;
}

void *tc_malloc(size_t size)
{
    return size == 0 ? NULL : tc_realloc(NULL, size);
}

void *tc_calloc(size_t n, size_t size)
{
    if (n != 0 && size > (size_t)-1 / n) {
        return NULL;
    }
    void *p = tc_malloc(n * size);
    if (p) {
        memset(p, 0, n * size);
    }
    return p;
}

void tc_free(void *ptr)
{
    if (ptr == NULL) {
        return;
    }
    tc_block_hdr_t *blk = (tc_block_hdr_t *)ptr - 1;
    if (s_acct) {
        s_acct->freed += blk->size; /* only this thread touches its current account */
    }
    __atomic_sub_fetch(&s_in_use, blk->size, __ATOMIC_SEQ_CST);
    __atomic_sub_fetch(&s_blocks, 1, __ATOMIC_SEQ_CST);
    raw(blk, 0);
}
