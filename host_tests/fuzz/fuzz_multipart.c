/*
 * fuzz_multipart.c - the multipart/form-data reader (tc_http_multipart_*, tc_http_form.h) on arbitrary bodies.
 *
 * Input: byte 0 is the boundary length (1..8, the boundary is "b0".."b7" cut to it), byte 1 seeds the split points,
 * the rest is the body. Fed whole, one byte per piece and in random pieces, each piece copied to an allocation of
 * exactly its size. Checked on every input: *used never exceeds the piece, DATA slices lie inside the piece or the
 * reader, the feed loop ends (bounded calls), and the three feedings agree on the result and, for complete forms
 * and errors, on the parts (names, file names) and the content bytes.
 * Replay: gcc ... fuzz_multipart.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_http_form.h"

typedef struct {
    int rc;
    int done;
    int in_data; /* a data run is tagged once: the log is the same however the data was split */
    size_t n;
    uint8_t log[1 << 16];
} out_t;

static void put(out_t *o, const void *p, size_t n)
{
    if (o->n + n <= sizeof(o->log)) {
        memcpy(o->log + o->n, p, n);
        o->n += n;
    }
}

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static void feed_all(const char *ct, const uint8_t *body, size_t len, int mode, uint32_t seed, out_t *o)
{
    tc_http_multipart_t mp;
    memset(o, 0, sizeof(*o));
    if (tc_http_multipart_init(&mp, ct, strlen(ct)) != 0) {
        abort();
    }
    size_t pos = 0;
    while (pos < len && o->rc == 0) {
        size_t piece = mode == 0 ? len : mode == 1 ? 1 : 1 + next_rand(&seed) % (len - pos);
        if (piece > len - pos) {
            piece = len - pos;
        }
        uint8_t *copy = malloc(piece);
        memcpy(copy, body + pos, piece);
        const char *d = (const char *)copy;
        size_t left = piece;
        size_t calls = 0;
        while (left > 0 && o->rc == 0) {
            size_t used;
            const char *p;
            size_t n;
            int rc = tc_http_multipart_feed(&mp, d, left, &used, &p, &n);
            if (used > left || ++calls > 4 * piece + 8) {
                abort();
            }
            if (rc == TC_HTTP_MP_DATA) {
                int in_piece = p >= d && p + n <= d + left;
                int in_reader = p >= (const char *)&mp && p + n <= (const char *)(&mp + 1);
                if (!in_piece && !in_reader) {
                    abort();
                }
                if (!o->in_data) {
                    put(o, "D", 1);
                }
                o->in_data = 1;
                put(o, p, n);
            } else if (rc == TC_HTTP_MP_PART) {
                o->in_data = 0;
                put(o, "P", 1);
                put(o, mp.name, strlen(mp.name) + 1);
                put(o, mp.filename, strlen(mp.filename) + 1);
            } else if (rc > 0) {
                o->in_data = 0;
                put(o, rc == TC_HTTP_MP_PART_END ? "E" : "F", 1);
            } else if (rc < 0) {
                o->rc = rc;
            }
            d += used;
            left -= used;
        }
        free(copy);
        pos += piece;
    }
    o->done = tc_http_multipart_done(&mp);
}

static out_t A, B, C;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    char ct[64];
    size_t bl = 1 + data[0] % 8;
    snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%.*s", (int)bl, "b0b1b2b3");
    const uint8_t *body = data + 2;
    size_t len = size - 2;
    feed_all(ct, body, len, 0, 0, &A);
    feed_all(ct, body, len, 1, 0, &B);
    feed_all(ct, body, len, 2, data[1] | 1u, &C);
    if (A.rc != B.rc || A.rc != C.rc || A.done != B.done || A.done != C.done) {
        abort();
    }
    /* Data held back at the end of a body that stops inside a candidate delimiter is never released: compare the
     * logs only for bodies whose reader is not left holding bytes, i.e. complete forms and errors. */
    if (A.done || A.rc != 0) {
        if (A.n != B.n || A.n != C.n || memcmp(A.log, B.log, A.n) != 0 || memcmp(A.log, C.log, A.n) != 0) {
            abort();
        }
    }
    return 0;
}
