/*
 * fuzz_chunked.c - the chunked-body decoder (tc_http_chunked_decode()) fed as TCP delivers: whole, in random splits
 * and one byte per call.
 *
 * Input: byte 0 chooses the body limit, byte 1 seeds the split points, the rest is the body. Every piece handed to
 * the decoder is copied to an allocation of exactly its size. Checked on every input:
 *   - every call consumes at most its input, returns data slices inside it, and makes progress (0 with nothing
 *     consumed and no data would make the server spin);
 *   - the result is 0, TC_HTTP_CHUNKED_DONE, TC_HTTP_EBAD or TC_HTTP_EBODY_TOO_LARGE, the data never exceeds the
 *     limit, and once done the decoder stays done and consumes nothing;
 *   - whole, split and byte-by-byte feeding agree on the result, the data and the bytes consumed;
 *   - for bodies without extensions, size-line whitespace or trailers, all three agree with a plain one-pass
 *     reference decoder written here (sizes, the 16-digit bound, the limit, the CRLFs).
 * Replay: gcc ... fuzz_chunked.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tc_http_parser.h"

typedef struct {
    int rc;
    size_t used;
    size_t out_len;
    uint8_t *out; /* the data, concatenated */
} run_t;

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* mode 0: whole; 1: one byte per call; 2: random pieces from seed. */
static void feed(const uint8_t *in, size_t len, uint64_t max, int mode, uint32_t seed, run_t *run)
{
    tc_http_chunked_t c;
    tc_http_chunked_init(&c, max);
    run->rc = 0;
    run->out_len = 0;
    size_t off = 0, have = 0;
    uint32_t s = seed | 1;
    for (;;) {
        if (off == have) {
            if (have == len) {
                break;
            }
            size_t step = mode == 0 ? len : mode == 1 ? 1 : 1 + next_rand(&s) % 24;
            have = step > len - have ? len : have + step;
        }
        size_t n = have - off;
        char *piece = malloc(n);
        if (piece == NULL) {
            abort();
        }
        memcpy(piece, in + off, n);
        size_t used = (size_t)-1;
        tc_http_slice_t data;
        int rc = tc_http_chunked_decode(&c, piece, n, &used, &data);
        if (used > n || (data.len && (data.ptr < piece || data.len > n || data.ptr + data.len > piece + n))) {
            abort();
        }
        if (rc != 0 && rc != TC_HTTP_CHUNKED_DONE && rc != TC_HTTP_EBAD && rc != TC_HTTP_EBODY_TOO_LARGE) {
            abort();
        }
        if (rc == 0 && used == 0 && data.len == 0) {
            abort(); /* no progress on a non-empty input */
        }
        memcpy(run->out + run->out_len, data.ptr ? data.ptr : piece, data.len);
        run->out_len += data.len;
        free(piece);
        off += used;
        if (rc != 0) {
            run->rc = rc;
            break;
        }
    }
    run->used = off;
    if ((uint64_t)run->out_len > max) {
        abort();
    }
    if (run->rc == TC_HTTP_CHUNKED_DONE) {
        size_t used = 1;
        tc_http_slice_t data;
        char more = 'x';
        if (tc_http_chunked_decode(&c, &more, 1, &used, &data) != TC_HTTP_CHUNKED_DONE || used != 0 || data.len) {
            abort(); /* done stays done: bytes after the body belong to the next request */
        }
    }
}

static int hexdigit(uint8_t c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c |= 0x20; /* ASCII lower case */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

#define REF_END(code, at)  \
    do {                   \
        run->rc = (code);  \
        run->used = (at);  \
        return 1;          \
    } while (0)

/* One pass over the whole body, for the grammar subset it models; 0 when the body uses anything else. */
static int reference(const uint8_t *in, size_t len, uint64_t max, run_t *run)
{
    size_t i = 0;
    uint64_t total = 0;
    run->out_len = 0;
    for (;;) {
        size_t s = i;
        uint64_t size = 0;
        for (; i < len && hexdigit(in[i]) >= 0; i++) {
            if (i - s == 16) {
                REF_END(TC_HTTP_EBAD, i); /* a 17th digit: beyond 64 bits, even as leading zeros */
            }
            size = size << 4 | (uint64_t)hexdigit(in[i]);
        }
        if (i == len) {
            REF_END(0, len);
        }
        if (i == s) {
            REF_END(TC_HTTP_EBAD, i);
        }
        if (in[i] == ';' || in[i] == ' ' || in[i] == '\t') {
            return 0;
        }
        for (int k = 0; k < 2; k++, i++) { /* CRLF after the size */
            if (i == len) {
                REF_END(0, len);
            }
            if (in[i] != (k ? '\n' : '\r')) {
                REF_END(TC_HTTP_EBAD, i);
            }
        }
        if (size == 0) {
            for (int k = 0; k < 2; k++, i++) { /* the empty line that ends a body without trailers */
                if (i == len) {
                    REF_END(0, len);
                }
                if (k == 0 && in[i] != '\r') {
                    if (in[i] == '\n' || in[i] == 0) {
                        REF_END(TC_HTTP_EBAD, i);
                    }
                    return 0;
                }
                if (k == 1 && in[i] != '\n') {
                    REF_END(TC_HTTP_EBAD, i);
                }
            }
            REF_END(TC_HTTP_CHUNKED_DONE, i);
        }
        if (size > max - total) {
            REF_END(TC_HTTP_EBODY_TOO_LARGE, i);
        }
        total += size;
        size_t take = size < len - i ? (size_t)size : len - i;
        memcpy(run->out + run->out_len, in + i, take);
        run->out_len += take;
        i += take;
        for (int k = 0; k < 2; k++, i++) { /* CRLF after the data */
            if (i == len) {
                REF_END(0, len);
            }
            if (in[i] != (k ? '\n' : '\r')) {
                REF_END(TC_HTTP_EBAD, i);
            }
        }
    }
}

static int same(const run_t *a, const run_t *b)
{
    return a->rc == b->rc && a->used == b->used && a->out_len == b->out_len &&
           memcmp(a->out, b->out, a->out_len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    static const uint64_t limits[8] = {0, 1, 7, 64, 4096, 0x100000000ull, UINT64_MAX - 1, UINT64_MAX};
    uint64_t max = limits[data[0] & 7];
    uint32_t seed = (uint32_t)data[1] * 2654435761u;
    const uint8_t *in = data + 2;
    size_t len = size - 2;

    run_t runs[4];
    for (int m = 0; m < 4; m++) {
        runs[m].out = malloc(len ? len : 1);
        if (runs[m].out == NULL) {
            abort();
        }
    }
    feed(in, len, max, 0, seed, &runs[0]);
    feed(in, len, max, 2, seed, &runs[1]);
    if (!same(&runs[0], &runs[1])) {
        abort();
    }
    if (len <= 4096) {
        feed(in, len, max, 1, seed, &runs[2]);
        if (!same(&runs[0], &runs[2])) {
            abort();
        }
    }
    if (reference(in, len, max, &runs[3]) && !same(&runs[0], &runs[3])) {
        abort();
    }
    for (int m = 0; m < 4; m++) {
        free(runs[m].out);
    }
    return 0;
}
