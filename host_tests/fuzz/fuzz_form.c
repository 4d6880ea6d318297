/*
 * fuzz_form.c - query/urlencoded parsing (tc_http_form.h) on arbitrary bytes.
 *
 * Input: byte 0 chooses the output capacity (0..63), the rest is the form; the key looked up is the first pair's
 * key, decoded (so lookups that hit are exercised, not only misses). The form is copied to an allocation of exactly
 * its size (ASan sees any read past it). Checked on every input:
 *   - tc_http_form_next() returns slices inside the input, makes progress, and ends;
 *   - tc_http_form_decode() returns a length <= the input's, TC_EINVAL or TC_ELIMIT; on success the output is
 *     NUL-terminated at that length and holds no NUL; on error the output is "" (when cap > 0);
 *   - it agrees with a reference decoder written here ('+' space, %HH with both digits hex and not 00, no raw NUL);
 *   - tc_http_form_value() for the first key returns what decoding that pair's value returns.
 * Replay: gcc ... fuzz_form.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tc_err.h"
#include "tc_http_form.h"

static int hexv(uint8_t c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Reference: the decoded length, or -1 for a malformed escape or %00. */
static int ref_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)in[i];
        if (c == '%') {
            if (len - i < 3) {
                return -1;
            }
            int h = hexv((uint8_t)in[i + 1]), l = hexv((uint8_t)in[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                return -1;
            }
            c = (uint8_t)(h * 16 + l);
            i += 2;
        } else if (c == '+') {
            c = ' ';
        } else if (c == 0) {
            return -1;
        }
        out[o++] = (char)c;
    }
    return (int)o;
}

static void check_decode(const char *in, size_t len, size_t cap)
{
    char *out = malloc(cap ? cap : 1);
    char *ref = malloc(len + 1);
    int rc = tc_http_form_decode(in, len, out, cap);
    int want = ref_decode(in, len, ref);
    if (want < 0) {
        if (rc != TC_EINVAL || (cap && out[0] != '\0')) {
            abort();
        }
    } else if ((size_t)want + 1 > cap) {
        if (rc != TC_ELIMIT || (cap && out[0] != '\0')) {
            abort();
        }
    } else if (rc != want || out[rc] != '\0' || memcmp(out, ref, (size_t)want) != 0 || (size_t)rc > len ||
               memchr(out, '\0', (size_t)rc) != NULL) {
        abort();
    }
    free(out);
    free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t cap = data[0] & 63;
    size_t len = size - 1;
    char *form = malloc(len ? len : 1);
    memcpy(form, data + 1, len);
    size_t pos = 0, steps = 0;
    tc_http_form_pair_t p, first = {0};
    int have_first = 0;
    while (tc_http_form_next(form, len, &pos, &p)) {
        if (p.key < form || p.key + p.key_len > form + len || p.value < form || p.value + p.value_len > form + len ||
            pos > len || ++steps > len) {
            abort();
        }
        if (!have_first) {
            first = p;
            have_first = 1;
        }
        check_decode(p.key, p.key_len, cap);
        check_decode(p.value, p.value_len, cap);
    }
    if (pos != len) {
        abort();
    }
    if (have_first) {
        char key[256];
        int kl = first.key_len < sizeof(key) ? tc_http_form_decode(first.key, first.key_len, key, sizeof(key)) : -1;
        if (kl >= 0) {
            char a[64], b[64];
            int rc = tc_http_form_value(form, len, key, a, cap);
            int want = tc_http_form_decode(first.value, first.value_len, b, cap);
            if (rc != want || (rc >= 0 && strcmp(a, b) != 0)) {
                abort();
            }
        }
    }
    free(form);
    return 0;
}
