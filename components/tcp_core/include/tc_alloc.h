/*
 * tc_alloc.h - every byte tcp_core allocates goes through one hook, so tests can prove nothing leaked and benchmarks
 * can report bytes per connection.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Allocator hook: realloc semantics (ptr NULL allocates, size 0 frees and returns NULL).
 * @param ptr   block to resize or free, or NULL
 * @param size  new size in bytes, 0 to free
 * @param user  the pointer given to tc_alloc_set_hook()
 * @return the new block, or NULL (allocation failure when size > 0)
 */
typedef void *(*tc_alloc_cb)(void *ptr, size_t size, void *user);

/** Counters kept by the allocation layer (all tcp_core allocations, whatever hook is installed). */
typedef struct {
    size_t bytes_in_use;  /**< bytes currently allocated by tcp_core */
    size_t bytes_peak;    /**< highest bytes_in_use seen since start or tc_alloc_reset_peak() */
    size_t blocks_in_use; /**< live blocks */
    uint64_t allocs;      /**< successful allocations since start */
    uint64_t failures;    /**< refused allocations since start */
} tc_alloc_stats_t;

/**
 * @brief Install the allocator hook (NULL restores the C library's realloc/free).
 *
 * Not thread-safe: call before any loop exists. Blocks allocated under one hook must not be freed under another,
 * so only change the hook while tc_alloc_stats().blocks_in_use is 0.
 * @param cb    hook, or NULL for the default
 * @param user  passed to every call of cb
 * @return TC_OK, or TC_EBUSY when blocks are still allocated
 */
int tc_alloc_set_hook(tc_alloc_cb cb, void *user);

/**
 * @brief Set a byte budget: allocations that would raise bytes_in_use above it fail (0 = no budget).
 *
 * Lets a test prove that running out of memory gives TC_ENOMEM and loses nothing else.
 * @param max_bytes  the budget, or 0 for none
 */
void tc_alloc_set_limit(size_t max_bytes);

/**
 * @brief Copy the current allocation counters. Thread-safe (counters are updated atomically).
 * @param out  receives the counters; must not be NULL
 */
void tc_alloc_stats(tc_alloc_stats_t *out);

/** @brief Reset bytes_peak to the current bytes_in_use. */
void tc_alloc_reset_peak(void);

/**
 * @brief Allocate size bytes through the hook (internal use by every tcp_core module; also public for handlers that
 * want their memory counted). @return the block or NULL.
 */
void *tc_malloc(size_t size);

/** @brief Allocate n*size zeroed bytes through the hook; NULL on overflow or failure. */
void *tc_calloc(size_t n, size_t size);

/** @brief Resize a block from tc_malloc()/tc_calloc(); NULL on failure (the old block is then untouched). */
void *tc_realloc(void *ptr, size_t size);

/** @brief Free a block from tc_malloc()/tc_calloc()/tc_realloc(); NULL is ignored. */
void tc_free(void *ptr);

#ifdef __cplusplus
}
#endif
