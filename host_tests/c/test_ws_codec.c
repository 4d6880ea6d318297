/*
 * test_ws_codec.c - tables for the pure WebSocket codec (tc_ws_codec.h): the handshake's accept key, frame headers
 * encoded and decoded (round trips up to 2^63 - 1, every protocol error), unmasking in pieces, the fragmentation
 * rules, the incremental UTF-8 validator and close payloads. Rows name the bug elsewhere they guard against.
 *
 * Incremental rule asserted for every header row: each prefix (copied into a buffer of exactly its size, so ASan
 * sees a read past it) decodes to TC_WS_INCOMPLETE or to the whole input's result; a valid header is never refused
 * before its last byte. UTF-8 rows are fed whole, split in two at every position and one byte per call, and must
 * give the same verdict each way, failing at the same byte.
 *
 * Build (from the repository root):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix \
 *         host_tests/c/test_ws_codec.c \
 *         $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') $C/port/linux/tc_sock_linux.c -lpthread \
 *         -o build/test_ws_codec
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_ws_codec.h"
#include "tc_check.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static uint8_t *dup_exact(const void *src, size_t n)
{
    uint8_t *p = malloc(n ? n : 1);
    if (p == NULL) {
        abort();
    }
    if (n) {
        memcpy(p, src, n);
    }
    return p;
}

/* ---- accept key (RFC 6455 4.2.2) ---- */

typedef struct {
    const char *why;
    const char *key;
    size_t key_len;     /* 0: strlen(key) */
    const char *accept; /* NULL: refused */
} accept_row_t;

static const accept_row_t ACCEPT_ROWS[] = {
    {"RFC 6455 1.3's example", "dGhlIHNhbXBsZSBub25jZQ==", 0, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="},
    {"16 zero bytes", "AAAAAAAAAAAAAAAAAAAAAA==", 0, "ICX+Yqv66kxgM0FcWaLWlFLwTAI="},
    {"16 0xff bytes: '+' and '/' symbols", "/////////////////////w==", 0, "XXpj4jYzLM2yUE0C7TIgMwTQh2g="},
    {"a browser's key", "x3JJHMbDL1EzLkh9GBhXDw==", 0, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
    {"empty", "", 0, NULL},
    {"23 symbols", "dGhlIHNhbXBsZSBub25jZQ=", 0, NULL},
    {"25 symbols", "dGhlIHNhbXBsZSBub25jZQ===", 0, NULL},
    {"no padding (22 symbols)", "dGhlIHNhbXBsZSBub25jZQ", 0, NULL},
    {"24 symbols, no padding: 18 bytes, not 16", "dGhlIHNhbXBsZSBub25jZQAA", 0, NULL},
    {"one '=' only: 17 bytes", "dGhlIHNhbXBsZSBub25jZQA=", 0, NULL},
    {"'=' inside", "dGhlIHNhbXBsZ=Bub25jZQ==", 0, NULL},
    {"URL-safe alphabet '-'", "dGhlIHNhbXBsZSBub25jZ-==", 0, NULL},
    {"URL-safe alphabet '_'", "_GhlIHNhbXBsZSBub25jZQ==", 0, NULL},
    {"a space inside", "dGhlIHNhbXBs ZSBub25jZQ==", 0, NULL},
    {"NUL inside", "dGhlIHNhbXBs\0SBub25jZQ==", 24, NULL},
    {"non-canonical last symbol: bits beyond 16 bytes", "dGhlIHNhbXBsZSBub25jZR==", 0, NULL},
    {"non-canonical last symbol '/'", "AAAAAAAAAAAAAAAAAAAAA/==", 0, NULL},
    {"surrounding whitespace is the caller's to trim", " dGhlIHNhbXBsZSBub25jZQ==", 0, NULL},
};

static int check_accept_row(const accept_row_t *row)
{
    size_t n = row->key_len ? row->key_len : strlen(row->key);
    char *key = (char *)dup_exact(row->key, n);
    char out[TC_WS_ACCEPT_LEN + 1];
    memset(out, 'Z', sizeof(out));
    int rc = tc_ws_accept_key(key, n, out);
    free(key);
    if (row->accept == NULL) {
        ROW_CHECK(rc == -1, "accepted");
    } else {
        ROW_CHECK(rc == 0, "refused");
        ROW_CHECK(strlen(out) == TC_WS_ACCEPT_LEN && strcmp(out, row->accept) == 0, "%s, want %s", out, row->accept);
    }
    return 0;
}

/* ---- frame headers: round trips ---- */

static int check_round_trips(void)
{
    tc_check_row = "encode/decode round trips";
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 0xffffffffu, 0x100000001ull, INT64_MAX};
    static const int ops[] = {TC_WS_OP_CONT, TC_WS_OP_TEXT, TC_WS_OP_BINARY};
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t l = 0; l < COUNT(lens); l++) {
        for (size_t o = 0; o < COUNT(ops); o++) {
            for (int fin = 0; fin <= 1; fin++) {
                uint8_t hdr[TC_WS_MAX_HEADER + 2];
                memset(hdr, 0xee, sizeof(hdr));
                size_t want_unmasked = lens[l] < 126 ? 2 : lens[l] <= 0xffff ? 4 : 10;
                size_t n = tc_ws_encode_header(hdr, fin, ops[o], lens[l], NULL);
                ROW_CHECK(n == want_unmasked, "unmasked header of %" PRIu64 ": %zu bytes", lens[l], n);
                n = tc_ws_encode_header(hdr, fin, ops[o], lens[l], mask);
                ROW_CHECK(n == want_unmasked + 4 && hdr[n] == 0xee, "masked header of %" PRIu64 ": %zu bytes", lens[l],
                          n);
                uint8_t *exact = dup_exact(hdr, n);
                tc_ws_frame_t f;
                memset(&f, 0xaa, sizeof(f));
                int rc = tc_ws_decode_header(exact, n, UINT64_MAX, &f);
                int bad = rc != (int)n || f.fin != fin || f.opcode != ops[o] || f.rsv != 0 || !f.masked ||
                          memcmp(f.mask, mask, 4) != 0 || f.payload_len != lens[l];
                for (size_t k = 0; k < n && !bad; k++) { /* every prefix, the 2-byte masked one included */
                    bad = tc_ws_decode_header(exact, k, UINT64_MAX, &f) != TC_WS_INCOMPLETE;
                }
                /* The same frame just over, and exactly at, a data limit. */
                if (!bad && lens[l] > 0) {
                    bad = tc_ws_decode_header(exact, n, lens[l] - 1, &f) != TC_WS_ETOO_BIG ||
                          tc_ws_decode_header(exact, n, lens[l], &f) != (int)n;
                }
                free(exact);
                ROW_CHECK(!bad, "length %" PRIu64 " opcode %d fin %d: rc %d len %" PRIu64, lens[l], ops[o], fin, rc,
                          f.payload_len);
            }
        }
    }
    /* Control frames, 0 and 125 bytes: a data limit of 0 does not apply to them. */
    static const int ctl[] = {TC_WS_OP_CLOSE, TC_WS_OP_PING, TC_WS_OP_PONG};
    for (size_t o = 0; o < COUNT(ctl); o++) {
        for (uint64_t len = 0; len <= 125; len += 125) {
            uint8_t hdr[TC_WS_MAX_HEADER];
            size_t n = tc_ws_encode_header(hdr, 1, ctl[o], len, mask);
            tc_ws_frame_t f;
            ROW_CHECK(n == 6 && tc_ws_decode_header(hdr, n, 0, &f) == 6 && f.opcode == ctl[o] && f.payload_len == len,
                      "control opcode %d length %" PRIu64, ctl[o], len);
        }
    }
    /* A server's own frames are unmasked: the codec writes them, and refuses them from a client. */
    uint8_t hdr[TC_WS_MAX_HEADER];
    tc_ws_frame_t f;
    size_t n = tc_ws_encode_header(hdr, 1, TC_WS_OP_TEXT, 5, NULL);
    ROW_CHECK(n == 2 && hdr[0] == 0x81 && hdr[1] == 0x05, "unmasked text header %02x %02x", hdr[0], hdr[1]);
    ROW_CHECK(tc_ws_decode_header(hdr, n, 100, &f) == TC_WS_EPROTO, "an unmasked frame decoded");
    return 0;
}

/* ---- frame headers: decode table ---- */

typedef struct {
    const char *why;
    uint8_t in[16];
    size_t len;
    uint64_t max;   /* the data limit (0 means 0 here) */
    int rc;         /* header length, or TC_WS_* */
    uint8_t opcode; /* checked on success */
    uint64_t plen;
} ws_row_t;

#define M4 0x11, 0x22, 0x33, 0x44 /* a mask key */
#define BIG UINT64_MAX

static const ws_row_t WS_ROWS[] = {
    {"RFC 6455 5.7: a masked \"Hello\"", {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}, 6, BIG, 6, TC_WS_OP_TEXT, 5},
    {"ESPAsyncWebServer: a 2-byte masked header is incomplete, not a mask read past the buffer", {0x81, 0x85}, 2, BIG,
     TC_WS_INCOMPLETE, 0, 0},
    {"a masked header missing the mask's last byte", {0x81, 0x85, 1, 2, 3}, 5, BIG, TC_WS_INCOMPLETE, 0, 0},
    {"a 16-bit length missing a byte", {0x82, 0xfe, 0x01}, 3, BIG, TC_WS_INCOMPLETE, 0, 0},
    {"a 64-bit length missing a byte", {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0}, 9, BIG, TC_WS_INCOMPLETE, 0, 0},
    {"one byte", {0x81}, 1, BIG, TC_WS_INCOMPLETE, 0, 0},
    {"nothing", {0}, 0, BIG, TC_WS_INCOMPLETE, 0, 0},
    {"RFC 6455 5.1: an unmasked client frame", {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'}, 7, BIG, TC_WS_EPROTO, 0, 0},
    {"an unmasked ping", {0x89, 0x00}, 2, BIG, TC_WS_EPROTO, 0, 0},
    {"RSV1 without an extension", {0xc1, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"RSV2", {0xa1, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"RSV3", {0x91, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"reserved data opcode 3", {0x83, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"reserved data opcode 7", {0x87, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"reserved control opcode 0xB", {0x8b, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"reserved control opcode 0xF", {0x8f, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"RFC 6455 5.5: a fragmented ping", {0x09, 0x80, M4}, 6, BIG, TC_WS_EPROTO, 0, 0},
    {"a fragmented close", {0x08, 0x82, M4, 0x03, 0xe8}, 8, BIG, TC_WS_EPROTO, 0, 0},
    {"a ping of 126 bytes (16-bit length)", {0x89, 0xfe, 0x00, 0x7e, M4}, 8, BIG, TC_WS_EPROTO, 0, 0},
    {"a close with a 64-bit length", {0x88, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x05, M4}, 14, BIG, TC_WS_EPROTO, 0, 0},
    {"a ping of 125 bytes is fine", {0x89, 0xfd, M4}, 6, 0, 6, TC_WS_OP_PING, 125},
    {"RFC 6455 5.2: a 64-bit length with its MSB set", {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, M4}, 14, BIG,
     TC_WS_EPROTO, 0, 0},
    {"a 64-bit length of 2^64 - 1", {0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, M4}, 14, BIG,
     TC_WS_EPROTO, 0, 0},
    {"the MSB is refused before the mask arrives", {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1}, 10, BIG, TC_WS_EPROTO, 0,
     0},
    {"2^63 - 1 is the largest length", {0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, M4}, 14, BIG, 14,
     TC_WS_OP_BINARY, INT64_MAX},
    {"non-minimal 16-bit length (125)", {0x82, 0xfe, 0x00, 0x7d, M4}, 8, BIG, TC_WS_EPROTO, 0, 0},
    {"non-minimal 16-bit length (0)", {0x82, 0xfe, 0x00, 0x00, M4}, 8, BIG, TC_WS_EPROTO, 0, 0},
    {"minimal 16-bit length (126)", {0x82, 0xfe, 0x00, 0x7e, M4}, 8, BIG, 8, TC_WS_OP_BINARY, 126},
    {"non-minimal 64-bit length (65535)", {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0xff, 0xff, M4}, 14, BIG, TC_WS_EPROTO, 0, 0},
    {"non-minimal 64-bit length (5)", {0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 5, M4}, 14, BIG, TC_WS_EPROTO, 0, 0},
    {"minimal 64-bit length (65536)", {0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, M4}, 14, BIG, 14, TC_WS_OP_BINARY, 65536},
    {"over the limit: 1009", {0x82, 0xfe, 0x03, 0xe9, M4}, 8, 1000, TC_WS_ETOO_BIG, 0, 0},
    {"at the limit", {0x82, 0xfe, 0x03, 0xe8, M4}, 8, 1000, 8, TC_WS_OP_BINARY, 1000},
    {"4 GiB + 1 over a 4 GiB limit (not 1 on 32-bit)", {0x82, 0xff, 0, 0, 0, 1, 0, 0, 0, 1, M4}, 14, 0x100000000ull,
     TC_WS_ETOO_BIG, 0, 0},
    {"a continuation counts against the limit too", {0x00, 0x8a, M4}, 6, 9, TC_WS_ETOO_BIG, 0, 0},
    {"payload bytes after the header are not the header's", {0x82, 0x81, M4, 0xaa, 0xbb}, 8, BIG, 6, TC_WS_OP_BINARY,
     1},
};

static int check_ws_row(const ws_row_t *row)
{
    tc_ws_frame_t f;
    uint8_t *exact = dup_exact(row->in, row->len);
    int rc = tc_ws_decode_header(exact, row->len, row->max, &f);
    free(exact);
    ROW_CHECK(rc == row->rc, "whole: %d, want %d", rc, row->rc);
    if (rc > 0) {
        ROW_CHECK(f.opcode == row->opcode && f.payload_len == row->plen && f.masked && f.rsv == 0 &&
                      memcmp(f.mask, row->in + rc - 4, 4) == 0,
                  "opcode %u length %" PRIu64, f.opcode, f.payload_len);
    }
    for (size_t k = 0; k < row->len; k++) {
        exact = dup_exact(row->in, k);
        int g = tc_ws_decode_header(exact, k, row->max, &f);
        free(exact);
        if (rc > 0 && (size_t)rc <= k) {
            ROW_CHECK(g == rc, "prefix %zu: %d, want %d", k, g, rc);
        } else {
            ROW_CHECK(g == TC_WS_INCOMPLETE || (g == rc && rc < 0), "prefix %zu: %d (whole %d)", k, g, rc);
        }
    }
    return 0;
}

static int check_close_codes(void)
{
    tc_check_row = "decoder error -> close code";
    static const int map[][2] = {
        {TC_WS_EPROTO, 1002}, {TC_WS_ETOO_BIG, 1009}, {TC_WS_INCOMPLETE, 1002}, {-99, 1002}, {0, 1002},
    };
    for (size_t i = 0; i < COUNT(map); i++) {
        ROW_CHECK(tc_ws_error_close_code(map[i][0]) == map[i][1], "%d -> %u, want %d", map[i][0],
                  tc_ws_error_close_code(map[i][0]), map[i][1]);
    }
    return 0;
}

/* ---- unmasking ---- */

static int check_unmask(void)
{
    tc_check_row = "unmask in pieces equals unmask whole";
    enum { N = 1031 };
    static const uint8_t mask[4] = {0xde, 0xad, 0xbe, 0xef};
    uint8_t plain[N], whole[N], pieces[N];
    uint32_t x = 12345;
    for (size_t i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        plain[i] = (uint8_t)(x >> 16);
    }
    memcpy(whole, plain, N);
    tc_ws_unmask(whole, N, mask, 0);
    for (size_t i = 0; i < N; i++) {
        ROW_CHECK(whole[i] == (plain[i] ^ mask[i & 3]), "byte %zu", i);
    }
    static const size_t steps[] = {1, 2, 3, 5, 7, 64, 1000};
    /* Offsets are 64-bit: a piece at 4 GiB + k uses mask[k & 3], also on 32-bit. */
    static const uint64_t bases[] = {0, 0x100000000ull, 0xfffffffffffffff0ull};
    for (size_t b = 0; b < COUNT(bases); b++) {
        for (size_t s = 0; s < COUNT(steps); s++) {
            memcpy(pieces, plain, N);
            for (size_t off = 0; off < N; off += steps[s]) {
                size_t n = steps[s] < N - off ? steps[s] : N - off;
                uint8_t *piece = dup_exact(pieces + off, n);
                tc_ws_unmask(piece, n, mask, bases[b] + off);
                memcpy(pieces + off, piece, n);
                free(piece);
            }
            ROW_CHECK(memcmp(pieces, whole, N) == 0, "pieces of %zu from offset %" PRIu64 " differ", steps[s],
                      bases[b]);
        }
    }
    tc_ws_unmask(whole, N, mask, 0);
    ROW_CHECK(memcmp(whole, plain, N) == 0, "unmasking twice is not the identity");
    tc_ws_unmask(NULL, 0, mask, 7); /* nothing to do, nothing touched */
    /* RFC 6455 5.7's masked "Hello". */
    uint8_t hello[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t hmask[4] = {0x37, 0xfa, 0x21, 0x3d};
    tc_ws_unmask(hello, 2, hmask, 0);
    tc_ws_unmask(hello + 2, 3, hmask, 2);
    ROW_CHECK(memcmp(hello, "Hello", 5) == 0, "RFC 6455 5.7 example: %.5s", (const char *)hello);
    return 0;
}

/* ---- fragmentation (RFC 6455 5.4) ---- */

typedef struct {
    uint8_t fin, opcode;
    int want; /* tc_ws_frame_check(): 0 or 1002 */
} frag_step_t;

typedef struct {
    const char *why;
    frag_step_t steps[6];
    int n;
    uint8_t open_after; /* msg_opcode after the last step */
} frag_row_t;

static const frag_row_t FRAG_ROWS[] = {
    {"a single text frame", {{1, TC_WS_OP_TEXT, 0}}, 1, 0},
    {"text in three fragments", {{0, TC_WS_OP_TEXT, 0}, {0, TC_WS_OP_CONT, 0}, {1, TC_WS_OP_CONT, 0}}, 3, 0},
    {"binary, open", {{0, TC_WS_OP_BINARY, 0}, {0, TC_WS_OP_CONT, 0}}, 2, TC_WS_OP_BINARY},
    {"mongoose: a lone final continuation is 1002", {{1, TC_WS_OP_CONT, 1002}}, 1, 0},
    {"a lone non-final continuation", {{0, TC_WS_OP_CONT, 1002}}, 1, 0},
    {"a continuation after the message ended", {{1, TC_WS_OP_TEXT, 0}, {1, TC_WS_OP_CONT, 1002}}, 2, 0},
    {"a continuation after a fragmented message ended",
     {{0, TC_WS_OP_BINARY, 0}, {1, TC_WS_OP_CONT, 0}, {1, TC_WS_OP_CONT, 1002}},
     3,
     0},
    {"a data frame inside a fragmented message is 1002", {{0, TC_WS_OP_TEXT, 0}, {1, TC_WS_OP_TEXT, 1002}}, 2,
     TC_WS_OP_TEXT},
    {"binary inside fragmented text", {{0, TC_WS_OP_TEXT, 0}, {0, TC_WS_OP_BINARY, 1002}}, 2, TC_WS_OP_TEXT},
    {"ping and pong between fragments are fine",
     {{0, TC_WS_OP_TEXT, 0}, {1, TC_WS_OP_PING, 0}, {0, TC_WS_OP_CONT, 0}, {1, TC_WS_OP_PONG, 0},
      {1, TC_WS_OP_CONT, 0}},
     5,
     0},
    {"a close between fragments is fine", {{0, TC_WS_OP_BINARY, 0}, {1, TC_WS_OP_CLOSE, 0}}, 2, TC_WS_OP_BINARY},
    {"control frames alone", {{1, TC_WS_OP_PING, 0}, {1, TC_WS_OP_PONG, 0}, {1, TC_WS_OP_CLOSE, 0}}, 3, 0},
    {"two messages back to back",
     {{0, TC_WS_OP_TEXT, 0}, {1, TC_WS_OP_CONT, 0}, {0, TC_WS_OP_BINARY, 0}, {1, TC_WS_OP_CONT, 0},
      {1, TC_WS_OP_TEXT, 0}},
     5,
     0},
};

static int check_frag_row(const frag_row_t *row)
{
    uint8_t open = 0;
    for (int i = 0; i < row->n; i++) {
        tc_ws_frame_t f = {.fin = row->steps[i].fin, .opcode = row->steps[i].opcode, .masked = 1};
        int got = tc_ws_frame_check(&open, &f);
        ROW_CHECK(got == row->steps[i].want, "frame %d (fin %u opcode %u): %d, want %d", i, f.fin, f.opcode, got,
                  row->steps[i].want);
    }
    ROW_CHECK(open == row->open_after, "open message %u, want %u", open, row->open_after);
    return 0;
}

/* ---- UTF-8 (RFC 3629) ---- */

enum { U_OK, U_PARTIAL, U_BAD }; /* valid and complete; valid so far but cut inside a code point; invalid */

typedef struct {
    const char *why;
    const char *in;
    size_t len;  /* 0: strlen(in) */
    int verdict;
    int bad_at;  /* U_BAD: index of the first byte that makes it invalid */
} utf8_row_t;

static const utf8_row_t UTF8_ROWS[] = {
    {"empty", "", 0, U_OK, 0},
    {"ASCII", "Hello-World", 0, U_OK, 0},
    {"NUL is a valid code point", "a\0b", 3, U_OK, 0},
    {"Autobahn 6.2: kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 0, U_OK, 0},
    {"U+0080, the first 2-byte", "\xc2\x80", 0, U_OK, 0},
    {"U+07FF, the last 2-byte", "\xdf\xbf", 0, U_OK, 0},
    {"U+0800, the first 3-byte", "\xe0\xa0\x80", 0, U_OK, 0},
    {"U+D7FF, below the surrogates", "\xed\x9f\xbf", 0, U_OK, 0},
    {"U+E000, above the surrogates", "\xee\x80\x80", 0, U_OK, 0},
    {"U+FFFE, a noncharacter, is valid UTF-8", "\xef\xbf\xbe", 0, U_OK, 0},
    {"U+FFFF", "\xef\xbf\xbf", 0, U_OK, 0},
    {"U+10000, the first 4-byte", "\xf0\x90\x80\x80", 0, U_OK, 0},
    {"U+10FFFF, the last code point", "\xf4\x8f\xbf\xbf", 0, U_OK, 0},
    {"a BOM", "\xef\xbb\xbf" "x", 0, U_OK, 0},
    {"overlong '/' in 2 bytes (C0 AF)", "\xc0\xaf", 0, U_BAD, 0},
    {"overlong NUL in 2 bytes (C0 80)", "\xc0\x80", 0, U_BAD, 0},
    {"overlong U+007F (C1 BF)", "\xc1\xbf", 0, U_BAD, 0},
    {"overlong in 3 bytes (E0 80 80)", "\xe0\x80\x80", 0, U_BAD, 1},
    {"overlong U+07FF in 3 bytes (E0 9F BF)", "\xe0\x9f\xbf", 0, U_BAD, 1},
    {"overlong in 4 bytes (F0 80 80 80)", "\xf0\x80\x80\x80", 0, U_BAD, 1},
    {"overlong U+FFFF in 4 bytes (F0 8F BF BF)", "\xf0\x8f\xbf\xbf", 0, U_BAD, 1},
    {"surrogate U+D800", "\xed\xa0\x80", 0, U_BAD, 1},
    {"surrogate U+DFFF", "\xed\xbf\xbf", 0, U_BAD, 1},
    {"a surrogate pair in CESU-8", "\xed\xa0\x80\xed\xb0\x80", 0, U_BAD, 1},
    {"U+110000, above U+10FFFF", "\xf4\x90\x80\x80", 0, U_BAD, 1},
    {"lead F5", "\xf5\x80\x80\x80", 0, U_BAD, 0},
    {"lead F7 (U+1FFFFF)", "\xf7\xbf\xbf\xbf", 0, U_BAD, 0},
    {"5-byte form", "\xf8\x88\x80\x80\x80", 0, U_BAD, 0},
    {"6-byte form", "\xfc\x84\x80\x80\x80\x80", 0, U_BAD, 0},
    {"FE", "\xfe", 0, U_BAD, 0},
    {"FF", "a\xff", 0, U_BAD, 1},
    {"a lone continuation byte", "\x80", 0, U_BAD, 0},
    {"a continuation after ASCII", "ab\xbf", 0, U_BAD, 2},
    {"one continuation too many", "\xc2\x80\x80", 0, U_BAD, 2},
    {"truncated 2-byte", "\xc2", 0, U_PARTIAL, 0},
    {"truncated 3-byte", "\xe0\xa0", 0, U_PARTIAL, 0},
    {"truncated 4-byte", "abc\xf0\x90\x80", 0, U_PARTIAL, 0},
    {"truncated U+10FFFF", "\xf4\x8f\xbf", 0, U_PARTIAL, 0},
    {"truncated, then ASCII", "\xc2" "A", 0, U_BAD, 1},
    {"3-byte cut by ASCII", "\xe1\x80" "A", 0, U_BAD, 2},
    {"4-byte cut by ASCII", "\xf1\x80\x80" "A", 0, U_BAD, 3},
    {"a new lead inside a sequence", "\xe1\x80\xc2\x80", 0, U_BAD, 2},
    {"Autobahn 6.3.1: a surrogate after valid text",
     "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 0, U_BAD, 12},
};

/* Feeds in[0..len) as the given pieces; returns U_OK/U_PARTIAL/U_BAD and, for U_BAD, the failing byte as found
 * when feeding one byte at a time (*bad_at). cuts: the piece boundaries, ncuts of them. */
static int utf8_verdict(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts, tc_ws_utf8_t *u)
{
    size_t from = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : len;
        uint8_t *piece = dup_exact(in + from, to - from);
        int rc = tc_ws_utf8_feed(u, piece, to - from);
        free(piece);
        if (rc != 0) {
            return U_BAD;
        }
        from = to;
    }
    return tc_ws_utf8_complete(u) ? U_OK : U_PARTIAL;
}

static int check_utf8_row(const utf8_row_t *row)
{
    size_t len = row->len ? row->len : strlen(row->in);
    const uint8_t *in = (const uint8_t *)row->in;
    tc_ws_utf8_t u;
    tc_ws_utf8_reset(&u);
    int v = utf8_verdict(in, len, NULL, 0, &u);
    ROW_CHECK(v == row->verdict, "whole: verdict %d, want %d", v, row->verdict);
    /* A zero-initialised state works like a reset one. */
    tc_ws_utf8_t z;
    memset(&z, 0, sizeof(z));
    ROW_CHECK(utf8_verdict(in, len, NULL, 0, &z) == row->verdict, "zero-initialised state: another verdict");
    /* Split in two at every position (a code point split across frames or reads). */
    for (size_t s = 0; s <= len; s++) {
        tc_ws_utf8_reset(&u);
        ROW_CHECK(utf8_verdict(in, len, &s, 1, &u) == row->verdict, "split at %zu: another verdict", s);
    }
    /* One byte at a time: the first failing byte is the expected one. */
    tc_ws_utf8_reset(&u);
    for (size_t i = 0; i < len; i++) {
        int rc = tc_ws_utf8_feed(&u, in + i, 1);
        if (rc != 0) {
            ROW_CHECK(row->verdict == U_BAD && (int)i == row->bad_at, "byte %zu refused (want %s %d)", i,
                      row->verdict == U_BAD ? "refusal at" : "no refusal", row->bad_at);
            return 0;
        }
    }
    ROW_CHECK(row->verdict != U_BAD, "never refused (want byte %d)", row->bad_at);
    ROW_CHECK(tc_ws_utf8_complete(&u) == (row->verdict == U_OK), "complete %d at the end", tc_ws_utf8_complete(&u));
    return 0;
}

static int check_utf8_reset(void)
{
    tc_check_row = "UTF-8: reset starts a new message";
    tc_ws_utf8_t u;
    tc_ws_utf8_reset(&u);
    ROW_CHECK(tc_ws_utf8_feed(&u, (const uint8_t *)"\xe2\x82", 2) == 0 && !tc_ws_utf8_complete(&u), "partial");
    tc_ws_utf8_reset(&u);
    ROW_CHECK(tc_ws_utf8_complete(&u) && tc_ws_utf8_feed(&u, (const uint8_t *)"\x41", 1) == 0, "after reset");
    return 0;
}

/* ---- close payloads (RFC 6455 5.5.1, 7.4) ---- */

#define CODE(c) (char)((c) >> 8), (char)((c)&0xff)
#define CLOSE_CODE(c) {CODE(c), 0}, 2

/* Payloads are arrays: a code's bytes are not text. */
typedef struct {
    const char *why;
    char payload[128];
    size_t len;
    int rc;        /* 0, 1002 or 1007 */
    uint16_t code; /* when rc is 0 */
} close_bin_row_t;

static const close_bin_row_t CLOSE_ROWS[] = {
    {"an empty payload: 1005, no status", {0}, 0, 0, 1005},
    {"one byte: 1002", {0x03}, 1, 1002, 0},
    {"Autobahn 7.9.1: code 0", CLOSE_CODE(0), 1002, 0},
    {"Autobahn 7.9.2: code 999", CLOSE_CODE(999), 1002, 0},
    {"Autobahn 7.9.3: code 1004, reserved", CLOSE_CODE(1004), 1002, 0},
    {"Autobahn 7.9.4: code 1005, never on the wire", CLOSE_CODE(1005), 1002, 0},
    {"Autobahn 7.9.5: code 1006, never on the wire", CLOSE_CODE(1006), 1002, 0},
    {"code 1015 (TLS), never on the wire", CLOSE_CODE(1015), 1002, 0},
    {"Autobahn 7.9.6: code 1016", CLOSE_CODE(1016), 1002, 0},
    {"Autobahn 7.9.7: code 1100", CLOSE_CODE(1100), 1002, 0},
    {"Autobahn 7.9.8: code 2000", CLOSE_CODE(2000), 1002, 0},
    {"Autobahn 7.9.9: code 2999", CLOSE_CODE(2999), 1002, 0},
    {"code 5000", CLOSE_CODE(5000), 1002, 0},
    {"code 65535", CLOSE_CODE(65535), 1002, 0},
    {"Autobahn 7.7.1: 1000", CLOSE_CODE(1000), 0, 1000},
    {"Autobahn 7.7.2: 1001", CLOSE_CODE(1001), 0, 1001},
    {"Autobahn 7.7.3: 1002", CLOSE_CODE(1002), 0, 1002},
    {"Autobahn 7.7.4: 1003", CLOSE_CODE(1003), 0, 1003},
    {"Autobahn 7.7.5: 1007", CLOSE_CODE(1007), 0, 1007},
    {"Autobahn 7.7.6: 1008", CLOSE_CODE(1008), 0, 1008},
    {"Autobahn 7.7.7: 1009", CLOSE_CODE(1009), 0, 1009},
    {"Autobahn 7.7.8: 1010", CLOSE_CODE(1010), 0, 1010},
    {"Autobahn 7.7.9: 1011", CLOSE_CODE(1011), 0, 1011},
    {"1012-1014 are registered (IANA): 1012", CLOSE_CODE(1012), 0, 1012},
    {"1014", CLOSE_CODE(1014), 0, 1014},
    {"Autobahn 7.7.10: 3000", CLOSE_CODE(3000), 0, 3000},
    {"Autobahn 7.7.11: 3999", CLOSE_CODE(3999), 0, 3999},
    {"Autobahn 7.7.12: 4000", CLOSE_CODE(4000), 0, 4000},
    {"Autobahn 7.7.13: 4999", CLOSE_CODE(4999), 0, 4999},
    {"a reason", {CODE(1000), 'b', 'y', 'e'}, 5, 0, 1000},
    {"a multi-byte reason", {CODE(1001), '\xce', '\xba', '\xe1', '\xbd', '\xb9'}, 7, 0, 1001},
    {"Autobahn 7.5.1: a reason that is not UTF-8: 1007", {CODE(1000), '\xce', '\xba', '\xe1', '\xbd', '\xb9', '\xcf',
                                                          '\x83', '\xce', '\xbc', '\xce', '\xb5', '\xed', '\xa0',
                                                          '\x80', 'e', 'd', 'i', 't', 'e', 'd'},
     22, 1007, 0},
    {"a reason cut inside a code point: 1007", {CODE(1000), 'a', '\xc2'}, 4, 1007, 0},
    {"an overlong in the reason: 1007", {CODE(1000), '\xc0', '\xaf'}, 4, 1007, 0},
    {"a bad code is reported before a bad reason", {CODE(999), '\xff'}, 3, 1002, 0},
    {"the longest reason (123 bytes)", {CODE(1000), 'x', 'x', 'x'}, 125, 0, 1000}, /* padded below */
};

static int check_close_row(const close_bin_row_t *row)
{
    uint8_t buf[128];
    memcpy(buf, row->payload, sizeof(buf));
    if (row->len == 125) {
        memset(buf + 2, 'x', 123);
    }
    uint8_t *exact = dup_exact(buf, row->len);
    uint16_t code = 0xbeef;
    int rc = tc_ws_parse_close(exact, row->len, &code);
    free(exact);
    ROW_CHECK(rc == row->rc, "rc %d, want %d", rc, row->rc);
    if (rc == 0) {
        ROW_CHECK(code == row->code, "code %u, want %u", code, row->code);
    }
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < COUNT(ACCEPT_ROWS); i++) {
        tc_check_row = ACCEPT_ROWS[i].why;
        tc_check_tally(check_accept_row(&ACCEPT_ROWS[i]));
    }
    printf("accept keys: %zu rows\n", COUNT(ACCEPT_ROWS));
    tc_check_tally(check_round_trips());
    for (size_t i = 0; i < COUNT(WS_ROWS); i++) {
        tc_check_row = WS_ROWS[i].why;
        tc_check_tally(check_ws_row(&WS_ROWS[i]));
    }
    printf("frame headers: %zu rows, whole and every prefix; round trips of 10 lengths x 3 opcodes x fin\n",
           COUNT(WS_ROWS));
    tc_check_tally(check_close_codes());
    tc_check_tally(check_unmask());
    for (size_t i = 0; i < COUNT(FRAG_ROWS); i++) {
        tc_check_row = FRAG_ROWS[i].why;
        tc_check_tally(check_frag_row(&FRAG_ROWS[i]));
    }
    printf("fragmentation: %zu sequences\n", COUNT(FRAG_ROWS));
    for (size_t i = 0; i < COUNT(UTF8_ROWS); i++) {
        tc_check_row = UTF8_ROWS[i].why;
        tc_check_tally(check_utf8_row(&UTF8_ROWS[i]));
    }
    tc_check_tally(check_utf8_reset());
    printf("UTF-8: %zu rows, whole, split at every position, byte by byte\n", COUNT(UTF8_ROWS));
    for (size_t i = 0; i < COUNT(CLOSE_ROWS); i++) {
        tc_check_row = CLOSE_ROWS[i].why;
        tc_check_tally(check_close_row(&CLOSE_ROWS[i]));
    }
    printf("close payloads: %zu rows\n", COUNT(CLOSE_ROWS));
    return tc_check_summary();
}
