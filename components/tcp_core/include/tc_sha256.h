/*
 * tc_sha256.h - SHA-256 (FIPS 180-4) over data that arrives in pieces, for checking OTA images as they stream in.
 *
 * Small and portable (no allocation, no tables beyond the 64 round constants); the chip could use mbedtls, but the
 * same code on the host and the device keeps the check that is tested the check that ships.
 *
 * Example:
 *     tc_sha256_t s; uint8_t d[TC_SHA256_LEN];
 *     tc_sha256_init(&s); tc_sha256_update(&s, piece, n); ... tc_sha256_final(&s, d);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Digest length in bytes. */
#define TC_SHA256_LEN 32

/** A running SHA-256; the caller owns it (stack or inside its own state). */
typedef struct {
    uint32_t h[8];     /**< chaining value */
    uint64_t bits;     /**< message length so far, in bits */
    uint8_t block[64]; /**< the partial block */
    size_t used;       /**< bytes in block */
} tc_sha256_t;

/** @brief Start a digest. Any thread; no allocation. */
void tc_sha256_init(tc_sha256_t *s);

/** @brief Add len bytes (any split gives the same digest). data may be NULL when len is 0. */
void tc_sha256_update(tc_sha256_t *s, const void *data, size_t len);

/** @brief Finish: write the 32-byte digest to out. s must be initialised again before reuse. */
void tc_sha256_final(tc_sha256_t *s, uint8_t out[TC_SHA256_LEN]);

/**
 * @brief Parse 64 hex digits (either case) into a digest.
 * @return 0, or TC_EINVAL when hex is not exactly 64 hex digits (len bytes)
 */
int tc_sha256_from_hex(const char *hex, size_t len, uint8_t out[TC_SHA256_LEN]);

/** @brief Write the digest as 64 lower-case hex digits and a NUL (out has room for 65 bytes). */
void tc_sha256_to_hex(const uint8_t digest[TC_SHA256_LEN], char out[2 * TC_SHA256_LEN + 1]);

#ifdef __cplusplus
}
#endif
