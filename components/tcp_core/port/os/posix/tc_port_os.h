/*
 * port/os/posix/tc_port_os.h - tc_port.h on POSIX (Linux hosts, ESP-IDF's linux target): pthreads and
 * CLOCK_MONOTONIC. Included through tc_port.h only.
 */
#pragma once

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TC_PORT_THREADS 1
/* Storage class of a per-thread variable (C11 thread-local storage). */
#define TC_PORT_THREAD_LOCAL _Thread_local

typedef pthread_mutex_t tc_port_mutex_t;
#define TC_PORT_MUTEX_INIT PTHREAD_MUTEX_INITIALIZER

static inline int tc_port_mutex_init(tc_port_mutex_t *m)
{
    return pthread_mutex_init(m, NULL) == 0 ? TC_OK : TC_ENOMEM;
}

static inline void tc_port_mutex_lock(tc_port_mutex_t *m)
{
    pthread_mutex_lock(m);
}

static inline void tc_port_mutex_unlock(tc_port_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

static inline void tc_port_mutex_destroy(tc_port_mutex_t *m)
{
    pthread_mutex_destroy(m);
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: a wall-clock step neither ends nor stretches a wait */
    int set;
} tc_port_event_t;

static inline int tc_port_event_init(tc_port_event_t *e)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        return TC_ENOMEM;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        return TC_ENOMEM;
    }
    if (pthread_mutex_init(&e->mu, NULL) != 0) {
        pthread_cond_destroy(&e->cv);
        return TC_ENOMEM;
    }
    e->set = 0;
    return TC_OK;
}

static inline void tc_port_event_set(tc_port_event_t *e)
{
    pthread_mutex_lock(&e->mu);
    e->set = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

static inline int tc_port_event_wait(tc_port_event_t *e, uint32_t timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)(timeout_ms % 1000u) * 1000000u;
    until.tv_sec += (time_t)(timeout_ms / 1000u + ns / 1000000000u);
    until.tv_nsec = (long)(ns % 1000000000u);
    pthread_mutex_lock(&e->mu);
    while (!e->set && pthread_cond_timedwait(&e->cv, &e->mu, &until) == 0) {
    }
    int set = e->set;
    pthread_mutex_unlock(&e->mu);
    return set;
}

static inline void tc_port_event_destroy(tc_port_event_t *e)
{
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
}

typedef struct {
    tc_port_thread_fn fn;
    void *arg;
} tc_port_start_t;

static inline void *tc_port_thread_main(void *p)
{
    tc_port_start_t s = *(tc_port_start_t *)p;
    free(p);
    s.fn(s.arg);
    return NULL;
}

static inline int tc_port_thread_start(tc_port_thread_fn fn, void *arg)
{
    /* plain malloc: this block is the platform's, not the core's, and must not show in tc_alloc's accounting */
    tc_port_start_t *s = malloc(sizeof(*s));
    if (s == NULL) {
        return TC_ENOMEM;
    }
    s->fn = fn;
    s->arg = arg;
    pthread_attr_t attr;
    pthread_t th;
    int rc = pthread_attr_init(&attr);
    if (rc == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        rc = pthread_create(&th, &attr, tc_port_thread_main, s);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        free(s);
        return TC_ENOMEM;
    }
    return TC_OK;
}

static inline uint64_t tc_port_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The first "nameserver" line of /etc/resolv.conf, as numeric text (what the system resolver would ask first).
 * TC_RESOLV_CONF names another file (tests point it at loopback: they never ask the host's real nameserver). */
static inline int tc_port_nameserver(char *out, size_t cap)
{
    const char *path = getenv("TC_RESOLV_CONF");
    FILE *f = fopen(path && path[0] ? path : "/etc/resolv.conf", "r");
    if (f == NULL) {
        return TC_ENOTFOUND;
    }
    char line[256];
    int rc = TC_ENOTFOUND;
    while (rc != TC_OK && fgets(line, sizeof(line), f)) {
        char *p = line;
        if (strncmp(p, "nameserver", 10) != 0 || (p[10] != ' ' && p[10] != '\t')) {
            continue;
        }
        p += 10;
        p += strspn(p, " \t");
        size_t n = strcspn(p, " \t\r\n%"); /* "%eth0" scope suffixes are not part of the address */
        if (n > 0 && n < cap) {
            memcpy(out, p, n);
            out[n] = 0;
            rc = TC_OK;
        }
    }
    fclose(f);
    return rc;
}
