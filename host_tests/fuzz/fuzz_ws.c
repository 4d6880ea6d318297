/*
 * fuzz_ws.c - the WebSocket codec on a client's byte stream: frame headers (tc_ws_decode_header()), the
 * fragmentation rules (tc_ws_frame_check()), unmasking, the UTF-8 validator and close payloads
 * (tc_ws_parse_close()), plus the accept key.
 *
 * Input: byte 0 chooses the data-frame limit, byte 1 a split point, the rest is the stream. Checked on every input:
 *   - a header decodes to 6, 8 or 14 bytes or a known error; a decoded header re-encodes to the same bytes (lengths
 *     are minimal, the mask present, RSV clear), every shorter prefix is incomplete, a prefix of a refused header is
 *     incomplete or refused the same way, control frames are final and <= 125 bytes, data frames within the limit;
 *   - tc_ws_frame_check() gives 0 or 1002 and tracks the open message like an independent model;
 *   - unmasking in two pieces (the second at its payload offset) equals unmasking whole;
 *   - the UTF-8 validator agrees with an independent reference (the code-point range a prefix can still reach) on
 *     the whole stream, split at any point, and on each text message's payload across its fragments;
 *   - close payloads give 0 with a sendable code and a valid reason, 1002 or 1007, consistently with the reference.
 * Replay: gcc ... fuzz_ws.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tc_ws_codec.h"

static uint8_t *dup_exact(const uint8_t *src, size_t n)
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

/* A code point being read can still be valid: [lo, hi] reaches a scalar value of at least min. */
static int viable(uint32_t lo, uint32_t hi, uint32_t min)
{
    return hi >= min && lo <= 0x10FFFF && !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* Reference UTF-8 check, written apart from the codec's table: the index of the first byte that no valid text can
 * have at its place (len when there is none); *complete tells whether the text ends on a code point boundary. */
static size_t ref_utf8(const uint8_t *s, size_t len, int *complete)
{
    size_t i = 0;
    *complete = 0;
    while (i < len) {
        uint8_t b = s[i];
        int n;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xE0) == 0xC0) {
            n = 1, cp = b & 0x1Fu, min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            n = 2, cp = b & 0x0Fu, min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            n = 3, cp = b & 0x07u, min = 0x10000;
        } else {
            return i;
        }
        for (int k = 0; k <= n; k++) {
            if (k > 0) {
                if (i + (size_t)k >= len) {
                    return len; /* cut inside a code point that can still be valid */
                }
                uint8_t c = s[i + (size_t)k];
                if ((c & 0xC0) != 0x80) {
                    return i + (size_t)k;
                }
                cp = cp << 6 | (c & 0x3Fu);
            }
            int rest = 6 * (n - k);
            if (!viable(cp << rest, cp << rest | ((1u << rest) - 1), min)) {
                return i + (size_t)k;
            }
        }
        i += (size_t)n + 1;
    }
    *complete = 1;
    return len;
}

/* The codec's verdict on s fed in two pieces (cut at split): -1 invalid, 0 incomplete, 1 complete. */
static int codec_utf8(const uint8_t *s, size_t len, size_t split)
{
    tc_ws_utf8_t u;
    tc_ws_utf8_reset(&u);
    uint8_t *a = dup_exact(s, split), *b = dup_exact(s + split, len - split);
    int rc = tc_ws_utf8_feed(&u, a, split);
    if (rc == 0) {
        rc = tc_ws_utf8_feed(&u, b, len - split);
    }
    free(a);
    free(b);
    return rc != 0 ? -1 : tc_ws_utf8_complete(&u);
}

static void check_utf8(const uint8_t *s, size_t len, size_t split)
{
    int complete;
    size_t bad = ref_utf8(s, len, &complete);
    int want = bad < len ? -1 : complete;
    if (codec_utf8(s, len, split) != want || codec_utf8(s, len, 0) != want) {
        abort();
    }
    if (bad < len) { /* fed one byte at a time, the codec refuses exactly the reference's byte */
        tc_ws_utf8_t u;
        tc_ws_utf8_reset(&u);
        for (size_t i = 0; i <= bad; i++) {
            if ((tc_ws_utf8_feed(&u, s + i, 1) != 0) != (i == bad)) {
                abort();
            }
        }
    }
}

static void check_close(const uint8_t *p, size_t len)
{
    uint16_t code = 0;
    int rc = tc_ws_parse_close(p, len, &code);
    if (len == 0) {
        if (rc != 0 || code != 1005) {
            abort();
        }
        return;
    }
    if (len == 1) {
        if (rc != 1002) {
            abort();
        }
        return;
    }
    uint16_t c = (uint16_t)(p[0] << 8 | p[1]);
    int sendable = c >= 1000 && c <= 4999 && !(c >= 1004 && c <= 1006) && !(c >= 1015 && c <= 2999);
    int complete;
    int utf8_ok = ref_utf8(p + 2, len - 2, &complete) == len - 2 && complete;
    int want = !sendable ? 1002 : !utf8_ok ? 1007 : 0;
    if (rc != want || (rc == 0 && code != c)) {
        abort();
    }
}

static void check_accept(const uint8_t *data, size_t len)
{
    char out[TC_WS_ACCEPT_LEN + 1];
    uint8_t *key = dup_exact(data, len);
    int rc = tc_ws_accept_key((const char *)key, len, out);
    free(key);
    if (rc != 0 && rc != -1) {
        abort();
    }
    if (rc == 0 && (len != 24 || strlen(out) != TC_WS_ACCEPT_LEN || out[27] != '=' || out[26] == '=')) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) {
        return 0;
    }
    static const uint64_t limits[8] = {0, 1, 125, 126, 65535, 65536, 0x100000000ull, UINT64_MAX};
    uint64_t max = limits[data[0] & 7];
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    size_t split = len ? data[1] % (len + 1) : 0;

    check_utf8(in, len, split);
    size_t key_len = 24 + (data[1] & 1); /* 24 (a key's length) or 25 */
    check_accept(in, len < key_len ? len : key_len);

    uint8_t open = 0;       /* the codec's fragmentation state */
    uint8_t model_open = 0; /* this harness's own */
    uint8_t *msg = malloc(len ? len : 1); /* the open text message's payload so far */
    if (msg == NULL) {
        abort();
    }
    size_t msg_len = 0;
    int msg_text = 0;
    size_t off = 0;
    while (off < len) {
        size_t avail = len - off;
        uint8_t *hb = dup_exact(in + off, avail);
        tc_ws_frame_t f;
        int rc = tc_ws_decode_header(hb, avail, max, &f);
        free(hb);
        if (rc != TC_WS_INCOMPLETE && rc != TC_WS_EPROTO && rc != TC_WS_ETOO_BIG && rc != 6 && rc != 8 &&
            rc != 14) {
            abort();
        }
        /* Prefixes of the header (at most 14 bytes matter). */
        for (size_t k = 0; k < avail && k < TC_WS_MAX_HEADER; k++) {
            uint8_t *pre = dup_exact(in + off, k);
            tc_ws_frame_t pf;
            int g = tc_ws_decode_header(pre, k, max, &pf);
            free(pre);
            if (rc > 0 ? (k < (size_t)rc ? g != TC_WS_INCOMPLETE : g != rc)
                       : (g != TC_WS_INCOMPLETE && g != rc)) {
                abort();
            }
        }
        if (tc_ws_error_close_code(rc) != (rc == TC_WS_ETOO_BIG ? 1009 : 1002)) {
            abort();
        }
        if (rc < 0) {
            break;
        }
        uint8_t hdr[TC_WS_MAX_HEADER];
        size_t hl = tc_ws_encode_header(hdr, f.fin, f.opcode, f.payload_len, f.mask);
        if (hl != (size_t)rc || memcmp(hdr, in + off, hl) != 0 || f.rsv != 0 || !f.masked) {
            abort(); /* only the canonical encoding decodes */
        }
        int control = f.opcode >= 0x8;
        if ((control && (!f.fin || f.payload_len > 125)) || (!control && f.payload_len > max)) {
            abort();
        }
        int want = 0;
        if (!control) {
            if (f.opcode == TC_WS_OP_CONT ? model_open == 0 : model_open != 0) {
                want = 1002;
            } else if (f.opcode != TC_WS_OP_CONT) {
                model_open = f.fin ? 0 : f.opcode;
            } else if (f.fin) {
                model_open = 0;
            }
        }
        if (tc_ws_frame_check(&open, &f) != want || open != model_open) {
            abort();
        }
        if (want) {
            break;
        }
        off += (size_t)rc;
        size_t take = f.payload_len < len - off ? (size_t)f.payload_len : len - off;
        uint8_t *whole = dup_exact(in + off, take), *pieces = dup_exact(in + off, take);
        tc_ws_unmask(whole, take, f.mask, 0);
        size_t cut = take ? split % (take + 1) : 0;
        tc_ws_unmask(pieces, cut, f.mask, 0);
        uint8_t *second = dup_exact(pieces + cut, take - cut);
        tc_ws_unmask(second, take - cut, f.mask, cut);
        memcpy(pieces + cut, second, take - cut);
        free(second);
        if (memcmp(whole, pieces, take) != 0) {
            abort();
        }
        if (f.opcode == TC_WS_OP_TEXT || f.opcode == TC_WS_OP_BINARY) {
            msg_text = f.opcode == TC_WS_OP_TEXT;
            msg_len = 0;
        }
        if (!control && msg_text) {
            memcpy(msg + msg_len, whole, take);
            msg_len += take;
            check_utf8(msg, msg_len, msg_len ? split % (msg_len + 1) : 0);
        }
        if (f.opcode == TC_WS_OP_CLOSE && take == f.payload_len) {
            check_close(whole, take);
        }
        free(pieces);
        free(whole);
        off += take;
    }
    free(msg);
    return 0;
}
