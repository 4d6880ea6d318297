/*
 * lwipopts.h of tools/cross_check.sh: an lwIP configured like ESP-IDF's default esp-lwip (sockets with lwIP's own
 * sockaddr, lwip_poll, DNS, IPv6, loopback, descriptors after the VFS's own, a tcpip thread without core locking,
 * full-duplex netconns), so that port/lwip compiles for a 32-bit chip as it will in an ESP-IDF build. Compile only:
 * nothing is linked. The script also compiles with -DTC_XCHECK_HOSTLIKE (core locking, no DNS, no full duplex as on
 * Debian, and IPv4 only), the other branch of every option port/lwip reads.
 */
#pragma once

#define NO_SYS 0
#define LWIP_SOCKET 1
#define LWIP_NETCONN 1
#define LWIP_SOCKET_POLL 1
#define LWIP_COMPAT_SOCKETS 0
#define LWIP_POSIX_SOCKETS_IO_NAMES 0
#define LWIP_SOCKET_OFFSET 54 /* ESP-IDF: FD_SETSIZE - CONFIG_LWIP_MAX_SOCKETS */
#define MEMP_NUM_NETCONN 10
#define LWIP_IPV4 1
#define LWIP_TCP 1
#define LWIP_UDP 1
#define LWIP_TCP_KEEPALIVE 1
#define SO_REUSE 1
#define LWIP_SO_RCVBUF 1
#define LWIP_NETIF_LOOPBACK 1
#define LWIP_TIMEVAL_PRIVATE 0 /* picolibc has struct timeval */

#ifdef TC_XCHECK_HOSTLIKE
#define LWIP_IPV6 0 /* not Debian's, but ESP-IDF's CONFIG_LWIP_IPV6=n: the IPv4-only branches compile too */
#define LWIP_TCPIP_CORE_LOCKING 1
#define LWIP_NETCONN_FULLDUPLEX 0
#define LWIP_DNS 0
#else
#define LWIP_IPV6 1
#define LWIP_TCPIP_CORE_LOCKING 0
#define LWIP_NETCONN_FULLDUPLEX 1
#define LWIP_NETCONN_SEM_PER_THREAD 1
#define LWIP_DNS 1
#endif
