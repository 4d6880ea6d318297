/*
 * arch/cc.h of tools/cross_check.sh: lwIP's compiler and C library facts for a 32-bit chip with picolibc.
 */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h> /* struct timeval (LWIP_TIMEVAL_PRIVATE 0) */

#define LWIP_ERRNO_STDINCLUDE 1 /* errno values from the C library's <errno.h>, as ESP-IDF does */
#define BYTE_ORDER LITTLE_ENDIAN
#define LWIP_RAND() ((u32_t)rand())
#define LWIP_PLATFORM_DIAG(x) \
    do {                      \
        printf x;             \
    } while (0)
#define LWIP_PLATFORM_ASSERT(x) abort()
