/*
 * tc_backend.h - what an application may ask of the socket backend linked into this build: its name, and how many
 * TCP connections its stack holds in TIME-WAIT or open (the status page, tests of the close policies).
 */
#pragma once

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Name of the backend linked into this build: "linux", "lwip" or "esp-lwip".
 * @return a static string
 */
const char *tc_sock_backend(void);

/**
 * @brief Count the stack's TCP connections in TIME-WAIT whose local port is local_port (0: every port).
 *
 * For tests and the status page: a server whose close policy works leaves none (seed 001). Linux reads
 * /proc/net/tcp{,6} of the caller's network namespace; lwIP walks its TIME-WAIT pcb list in its tcpip thread.
 * @return the count, or TC_ENOSYS where the stack cannot tell
 */
int tc_sock_time_wait_count(uint16_t local_port);

/**
 * @brief Count the stack's TCP connections that are neither listening nor in TIME-WAIT, by local port (0: all).
 * @return the count, or TC_ENOSYS where the stack cannot tell
 */
int tc_sock_active_count(uint16_t local_port);

#ifdef __cplusplus
}
#endif
