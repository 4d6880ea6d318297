/*
 * port/os/none/tc_port_os.h - tc_port.h for a device without an OS: one thread, so the mutex and the event do
 * nothing and no thread can start (no system-resolver fallback: a client's host name resolves over UDP through the
 * loop when the client gives a nameserver, and fails with TC_ERESOLVE without one; numeric addresses and
 * "localhost" need none). The board supplies the clock. tools/cross_check.sh compiles the core this way for the
 * ESP8266 (Xtensa lx106) and a RISC-V rv32imc with picolibc, which have no <pthread.h>. Included through tc_port.h
 * only.
 */
#pragma once

#define TC_PORT_THREADS 0
/* Storage class of a per-thread variable (one thread: a plain static). */
#define TC_PORT_THREAD_LOCAL 

typedef struct {
    uint8_t unused;
} tc_port_mutex_t;
/* The formatter would spread this initialiser over four lines. */
/* clang-format off */
#define TC_PORT_MUTEX_INIT {0}
/* clang-format on */

/**
 * @brief Milliseconds since boot from the board's timer; supplied by the application on this platform.
 * @return a count that never goes back
 */
uint64_t tc_port_board_now_ms(void);

static inline int tc_port_mutex_init(tc_port_mutex_t *m)
{
    (void)m;
    return TC_OK;
}

static inline void tc_port_mutex_lock(tc_port_mutex_t *m)
{
    (void)m;
}

static inline void tc_port_mutex_unlock(tc_port_mutex_t *m)
{
    (void)m;
}

static inline void tc_port_mutex_destroy(tc_port_mutex_t *m)
{
    (void)m;
}

typedef struct {
    volatile uint8_t set;
} tc_port_event_t;

static inline int tc_port_event_init(tc_port_event_t *e)
{
    e->set = 0;
    return TC_OK;
}

static inline void tc_port_event_set(tc_port_event_t *e)
{
    e->set = 1;
}

/* Nobody else runs while this thread waits: the event is set already or never will be. */
static inline int tc_port_event_wait(tc_port_event_t *e, uint32_t timeout_ms)
{
    (void)timeout_ms;
    return e->set;
}

static inline void tc_port_event_destroy(tc_port_event_t *e)
{
    (void)e;
}

static inline int tc_port_thread_start(tc_port_thread_fn fn, void *arg)
{
    (void)fn, (void)arg;
    return TC_ENOSYS;
}

static inline uint64_t tc_port_now_ms(void)
{
    return tc_port_board_now_ms();
}

/* No configured nameserver on this platform: a client names its DNS server itself (tc_client_config_t.nameserver). */
static inline int tc_port_nameserver(char *out, size_t cap)
{
    (void)out;
    (void)cap;
    return TC_ENOSYS;
}
