/*
 * tc_config.h - every limit and default of tcp_core in one place: Kconfig values on the device, host defaults here.
 */
#pragma once

#if defined(ESP_PLATFORM)
#include "sdkconfig.h"
#endif

/* Each TC_CFG_x takes CONFIG_TCP_CORE_x when the device build defines it (Kconfig), else the host default. */

#ifdef CONFIG_TCP_CORE_READ_BUF_SIZE
#define TC_CFG_READ_BUF_SIZE CONFIG_TCP_CORE_READ_BUF_SIZE
#else
#define TC_CFG_READ_BUF_SIZE (16 * 1024) /* one receive buffer per loop, shared by every connection */
#endif

#ifdef CONFIG_TCP_CORE_SEND_GATHER_SIZE
#define TC_CFG_SEND_GATHER_SIZE CONFIG_TCP_CORE_SEND_GATHER_SIZE
#else
/* one buffer per loop where tc_conn_sendv() joins a message's pieces (an HTTP head and a small body, a WebSocket
 * header and its payload) into one send: one segment, one system call, nothing of it on the loop's stack */
#define TC_CFG_SEND_GATHER_SIZE 4096
#endif
#if TC_CFG_SEND_GATHER_SIZE < 1024
#error "TC_CFG_SEND_GATHER_SIZE below 1024: the DNS server's answers (512 + 16 bytes) are built in that buffer"
#endif

#ifdef CONFIG_TCP_CORE_MAX_CONNS
#define TC_CFG_MAX_CONNS CONFIG_TCP_CORE_MAX_CONNS
#else
#define TC_CFG_MAX_CONNS 1024
#endif

#ifdef CONFIG_TCP_CORE_WRITE_HIGH_WATER
#define TC_CFG_WRITE_HIGH_WATER CONFIG_TCP_CORE_WRITE_HIGH_WATER
#else
#define TC_CFG_WRITE_HIGH_WATER (64 * 1024) /* stop reading a connection whose output queue is above this */
#endif

#ifdef CONFIG_TCP_CORE_WRITE_LOW_WATER
#define TC_CFG_WRITE_LOW_WATER CONFIG_TCP_CORE_WRITE_LOW_WATER
#else
#define TC_CFG_WRITE_LOW_WATER (16 * 1024) /* resume reading (and say DRAINED) at or below this */
#endif

#ifdef CONFIG_TCP_CORE_WRITE_QUEUE_MAX
#define TC_CFG_WRITE_QUEUE_MAX CONFIG_TCP_CORE_WRITE_QUEUE_MAX
#else
#define TC_CFG_WRITE_QUEUE_MAX (1024 * 1024) /* tc_conn_send() refuses (TC_ELIMIT) past this, once bytes are queued */
#endif

#ifdef CONFIG_TCP_CORE_IDLE_TIMEOUT_MS
#define TC_CFG_IDLE_TIMEOUT_MS CONFIG_TCP_CORE_IDLE_TIMEOUT_MS
#else
#define TC_CFG_IDLE_TIMEOUT_MS 0 /* 0: raw TCP connections may stay idle; HTTP sets its own */
#endif

/* 1: the loop uses the backend's readiness set (epoll on Linux) when it has one; 0: always poll(). */
#ifndef TC_CFG_USE_EVSET
#define TC_CFG_USE_EVSET 1
#endif

#ifdef CONFIG_TCP_CORE_LINGER_MS
#define TC_CFG_LINGER_MS CONFIG_TCP_CORE_LINGER_MS
#else
#define TC_CFG_LINGER_MS 2000 /* how long a closing connection may wait for its peer before it is aborted */
#endif

#ifdef CONFIG_TCP_CORE_CLOSE_POLICY
#define TC_CFG_CLOSE_POLICY CONFIG_TCP_CORE_CLOSE_POLICY
#else
#define TC_CFG_CLOSE_POLICY 0 /* tc_close_policy_t: 0 graceful (FIN first, TIME-WAIT freed), 1 peer-first, 2 abort */
#endif

#ifdef CONFIG_TCP_CORE_CONNECT_TIMEOUT_MS
#define TC_CFG_CONNECT_TIMEOUT_MS CONFIG_TCP_CORE_CONNECT_TIMEOUT_MS
#else
#define TC_CFG_CONNECT_TIMEOUT_MS 5000
#endif

#ifdef CONFIG_TCP_CORE_BACKOFF_INITIAL_MS
#define TC_CFG_BACKOFF_INITIAL_MS CONFIG_TCP_CORE_BACKOFF_INITIAL_MS
#else
#define TC_CFG_BACKOFF_INITIAL_MS 100
#endif

#ifdef CONFIG_TCP_CORE_BACKOFF_MAX_MS
#define TC_CFG_BACKOFF_MAX_MS CONFIG_TCP_CORE_BACKOFF_MAX_MS
#else
#define TC_CFG_BACKOFF_MAX_MS 10000
#endif

#ifdef CONFIG_TCP_CORE_CLIENT_STABLE_MS
#define TC_CFG_CLIENT_STABLE_MS CONFIG_TCP_CORE_CLIENT_STABLE_MS
#else
#define TC_CFG_CLIENT_STABLE_MS 5000 /* a client's session shorter than this, ended by its peer, is a failure */
#endif

#ifdef CONFIG_TCP_CORE_CLIENT_KEEPALIVE_S
#define TC_CFG_CLIENT_KEEPALIVE_S CONFIG_TCP_CORE_CLIENT_KEEPALIVE_S
#else
#define TC_CFG_CLIENT_KEEPALIVE_S 60 /* a client's peer gone without a FIN is found by keepalive probes */
#endif

#ifdef CONFIG_TCP_CORE_BACKLOG
#define TC_CFG_BACKLOG CONFIG_TCP_CORE_BACKLOG
#else
#define TC_CFG_BACKLOG 128
#endif
