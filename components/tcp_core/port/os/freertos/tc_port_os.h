/*
 * port/os/freertos/tc_port_os.h - tc_port.h on ESP-IDF's FreeRTOS (chip targets): static FreeRTOS mutexes and
 * binary semaphores, a task per thread, esp_timer for the clock. Included through tc_port.h only.
 */
#pragma once

#include <stddef.h>
#include <stdlib.h>

#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "lwip/dns.h"
#include "lwip/ip_addr.h"

#define TC_PORT_THREADS 1
/* Storage class of a per-thread variable (ESP-IDF supports C11 thread-local storage on FreeRTOS tasks). */
#define TC_PORT_THREAD_LOCAL _Thread_local

/* The core starts one thread at most, the fallback worker of name resolution (lwIP's getaddrinfo): 4 KB of stack,
 * as ESP-IDF's examples give a task that resolves names, at the default priority of ESP-IDF's pthreads. */
#define TC_PORT_THREAD_STACK 4096
#define TC_PORT_THREAD_PRIO 5

/* A FreeRTOS mutex needs creating, so a statically initialised one is created on first use, under its own spinlock
 * (an ESP-IDF critical section) that makes two first users agree on one. The storage is in the object: creating
 * never allocates or fails. */
typedef struct {
    SemaphoreHandle_t h;
    StaticSemaphore_t mem;
    portMUX_TYPE once;
} tc_port_mutex_t;
/* The formatter would spread this initialiser over four lines. */
/* clang-format off */
#define TC_PORT_MUTEX_INIT {.h = NULL, .once = portMUX_INITIALIZER_UNLOCKED}
/* clang-format on */

static inline SemaphoreHandle_t tc_port_mutex_handle(tc_port_mutex_t *m)
{
    SemaphoreHandle_t h = __atomic_load_n(&m->h, __ATOMIC_ACQUIRE);
    if (h == NULL) {
        taskENTER_CRITICAL(&m->once);
        h = m->h;
        if (h == NULL) {
            h = xSemaphoreCreateMutexStatic(&m->mem);
            __atomic_store_n(&m->h, h, __ATOMIC_RELEASE);
        }
        taskEXIT_CRITICAL(&m->once);
    }
    return h;
}

static inline int tc_port_mutex_init(tc_port_mutex_t *m)
{
    m->h = NULL;
    portMUX_INITIALIZE(&m->once);
    return tc_port_mutex_handle(m) != NULL ? TC_OK : TC_ENOMEM;
}

static inline void tc_port_mutex_lock(tc_port_mutex_t *m)
{
    xSemaphoreTake(tc_port_mutex_handle(m), portMAX_DELAY);
}

static inline void tc_port_mutex_unlock(tc_port_mutex_t *m)
{
    xSemaphoreGive(m->h);
}

static inline void tc_port_mutex_destroy(tc_port_mutex_t *m)
{
    if (m->h != NULL) {
        vSemaphoreDelete(m->h);
        m->h = NULL;
    }
}

typedef struct {
    SemaphoreHandle_t h;
    StaticSemaphore_t mem;
} tc_port_event_t;

static inline int tc_port_event_init(tc_port_event_t *e)
{
    e->h = xSemaphoreCreateBinaryStatic(&e->mem);
    return e->h != NULL ? TC_OK : TC_ENOMEM;
}

static inline void tc_port_event_set(tc_port_event_t *e)
{
    xSemaphoreGive(e->h);
}

static inline int tc_port_event_wait(tc_port_event_t *e, uint32_t timeout_ms)
{
    /* Rounded up to whole ticks: never shorter than asked. */
    TickType_t ticks = (TickType_t)(((uint64_t)timeout_ms * configTICK_RATE_HZ + 999u) / 1000u);
    return xSemaphoreTake(e->h, ticks) == pdTRUE;
}

static inline void tc_port_event_destroy(tc_port_event_t *e)
{
    vSemaphoreDelete(e->h);
}

typedef struct {
    tc_port_thread_fn fn;
    void *arg;
} tc_port_start_t;

static inline void tc_port_task_main(void *p)
{
    tc_port_start_t s = *(tc_port_start_t *)p;
    free(p);
    s.fn(s.arg);
    vTaskDelete(NULL); /* a FreeRTOS task must not return */
}

static inline int tc_port_thread_start(tc_port_thread_fn fn, void *arg)
{
    tc_port_start_t *s = malloc(sizeof(*s));
    if (s == NULL) {
        return TC_ENOMEM;
    }
    s->fn = fn;
    s->arg = arg;
    if (xTaskCreate(tc_port_task_main, "tc_thread", TC_PORT_THREAD_STACK, s, TC_PORT_THREAD_PRIO, NULL) != pdPASS) {
        free(s);
        return TC_ENOMEM;
    }
    return TC_OK;
}

static inline uint64_t tc_port_now_ms(void)
{
    return (uint64_t)esp_timer_get_time() / 1000u;
}

/* lwIP's first configured DNS server (DHCP's, or the one the application set), as numeric text. */
static inline int tc_port_nameserver(char *out, size_t cap)
{
    const ip_addr_t *ns = dns_getserver(0);
    if (ns == NULL || ip_addr_isany(ns)) {
        return TC_ENOTFOUND;
    }
    return ipaddr_ntoa_r(ns, out, (int)cap) != NULL ? TC_OK : TC_ENOTFOUND;
}
