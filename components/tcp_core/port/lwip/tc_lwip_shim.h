/*
 * port/lwip/tc_lwip_shim.h - what differs between the lwIP stacks tc_sock_lwip.c runs on, one small file each:
 *   tc_lwip_tap.c  upstream lwIP on a Linux host (Debian's liblwip-dev): starts the tcpip thread and a TAP netif
 *   tc_lwip_esp.c  ESP-IDF's esp-lwip on chips: esp_netif owns the stack and its interfaces, nothing to start
 * Everything else (sockets, poll, wake-ups, the raw-API work in the tcpip thread, TIME-WAIT reaping) is shared.
 * Private to port/lwip.
 */
#pragma once

#include "tc_sock.h"

/** @brief tc_sock_backend()'s answer: "lwip" (TAP) or "esp-lwip". @return a static string */
const char *tc__lwip_name(void);

/**
 * @brief Bring the stack up once per process (tc_sock_global_init()); thread-safe and idempotent.
 * @return TC_OK, or the tc_sock_global_init() error codes
 */
int tc__lwip_init(const tc_sock_env_t *env);

/** @brief 1 once the stack is up and sockets may be made, 0 before (lwIP has no core lock to take yet). */
int tc__lwip_ready(void);

/**
 * @brief TAP shim only, for tests: while on, frames from the Linux side are held (queued by the kernel) and reach
 * lwIP once it is off, so a test can make a packet arrive after a step of its own. Thread-safe.
 * @param on  1 to hold, 0 to deliver again
 */
void tc__lwip_tap_hold(int on);
