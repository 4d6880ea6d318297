/*
 * tc_resolve.h - name resolution through the loop (private to the core; see tc_resolve.c for how it works).
 */
#pragma once

#include <stdint.h>

#include "tc_addr.h"
#include "tc_loop.h"

typedef struct tc_resolve tc_resolve_t;

/* The result, from the loop, never inside tc__resolve_start(): rc TC_OK with addr (port filled in), or TC_ENOTFOUND
 * (NXDOMAIN / no address), TC_ETIMEDOUT (no answer), TC_ERESOLVE (server failure, the nameserver's port closed: ICMP
 * port unreachable, no nameserver), TC_ELIMIT (fallback queue full), TC_ENOMEM; addr is NULL then. The request is freed before the call. */
typedef void (*tc_resolve_cb)(void *user, int rc, const tc_addr_t *addr);

/* Resolve host (a name, not a numeric address) for port. nameserver NULL: the platform's first, with the system
 * resolver as the fallback; given: only that one is asked. timeout_ms bounds the UDP path (split into 3 tries).
 * Returns TC_OK (cb will run, *out is the request until then), TC_EBADNAME (not a valid name), TC_ENOMEM. */
int tc__resolve_start(tc_loop_t *loop, const char *host, uint16_t port, const tc_addr_t *nameserver,
                      uint32_t timeout_ms, tc_resolve_cb cb, void *user, tc_resolve_t **out);

/* Forget a request: its callback will not run; sockets and memory are released (a fallback the worker is running
 * is freed when it returns). Loop thread only. */
void tc__resolve_cancel(tc_resolve_t *r);

/* The loop collects the worker's finished requests (called from the loop when woken by the worker). */
void tc__resolver_collect(tc_loop_t *loop);

/* The loop is being freed: the worker's requests for it are dropped (one running is freed by the worker). */
void tc__resolver_loop_gone(tc_loop_t *loop);

/* The worker tells the loop that a request finished (under the worker's mutex; thread-safe). */
void tc__loop_wake_resolved(tc_loop_t *loop);
