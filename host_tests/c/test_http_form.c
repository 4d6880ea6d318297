/*
 * test_http_form.c - the pure pieces of issue 13: query/urlencoded values (tc_http_form.h), SHA-256 (tc_sha256.h,
 * FIPS 180-4 / NIST CAVP vectors, fed whole and one byte at a time) and the constant-time compare (tc_http_auth.h).
 */
#include <stdio.h>
#include <string.h>

#include "tc_check.h"
#include "tc_http_auth.h"
#include "tc_http_form.h"
#include "tc_sha256.h"

typedef struct {
    const char *name;
    const char *form;
    const char *key;
    size_t cap;
    int want_rc;          /* length, or an error */
    const char *want_out; /* the decoded value ("" for errors) */
} form_row_t;

static const form_row_t FORM_ROWS[] = {
    {"plain", "a=1&b=2", "b", 16, 1, "2"},
    {"first of two", "a=1&a=2", "a", 16, 1, "1"},
    {"plus is space", "q=hello+world", "q", 32, 11, "hello world"},
    {"percent", "q=%41%62%2b%26", "q", 32, 4, "Ab+&"},
    {"encoded key", "my%20key=v", "my key", 16, 1, "v"},
    {"plus in key", "my+key=v", "my key", 16, 1, "v"},
    {"no equals", "flag&x=1", "flag", 16, 0, ""},
    {"empty value", "x=&y=2", "x", 16, 0, ""},
    {"empty pairs", "&&x=1&&", "x", 16, 1, "1"},
    {"equals in value", "k=a=b", "k", 16, 3, "a=b"},
    {"absent", "a=1", "b", 16, TC_ENOTFOUND, ""},
    {"prefix is not the key", "ab=1", "a", 16, TC_ENOTFOUND, ""},
    {"key longer", "a=1", "ab", 16, TC_ENOTFOUND, ""},
    {"case-sensitive", "A=1", "a", 16, TC_ENOTFOUND, ""},
    {"semicolon is no separator", "a=1;b=2", "a", 16, 5, "1;b=2"},
    {"bad escape", "a=%G1", "a", 16, TC_EINVAL, ""},
    {"escape cut", "a=%4", "a", 16, TC_EINVAL, ""},
    {"escape at end", "a=%", "a", 16, TC_EINVAL, ""},
    {"encoded NUL", "a=x%00y", "a", 16, TC_EINVAL, ""},
    {"exact fit", "a=1234", "a", 5, 4, "1234"},
    {"one short", "a=12345", "a", 5, TC_ELIMIT, ""},
    {"one short, bad later", "a=12345%G", "a", 5, TC_EINVAL, ""},
    {"malformed key skipped", "%G=1&k=2", "k", 16, 1, "2"},
    {"utf-8", "n=%C3%A9t%C3%A9", "n", 16, 5, "\xc3\xa9t\xc3\xa9"},
    {"empty form", "", "a", 16, TC_ENOTFOUND, ""},
};

static int form_row(const form_row_t *r)
{
    char out[64];
    memset(out, 'X', sizeof(out));
    int rc = tc_http_form_value(r->form, strlen(r->form), r->key, out, r->cap);
    ROW_CHECK(rc == r->want_rc, "rc %d, want %d", rc, r->want_rc);
    ROW_CHECK(strcmp(out, r->want_out) == 0, "out \"%s\", want \"%s\"", out, r->want_out);
    /* The same form not NUL-terminated (a slice of a larger buffer): the bytes after it must not count. */
    char padded[96];
    size_t n = strlen(r->form);
    memcpy(padded, r->form, n);
    memcpy(padded + n, "&zz=9%", 7);
    rc = tc_http_form_value(padded, n, r->key, out, r->cap);
    ROW_CHECK(rc == r->want_rc, "as a slice: rc %d, want %d", rc, r->want_rc);
    return 0;
}

/* tc_http_form_next over "a=1&&b&c=": the pairs, as slices. */
static int iterate_row(void)
{
    const char *f = "a=1&&b&c=";
    size_t pos = 0;
    tc_http_form_pair_t p;
    const char *want[][2] = {{"a", "1"}, {"b", ""}, {"c", ""}};
    for (int i = 0; i < 3; i++) {
        ROW_CHECK(tc_http_form_next(f, strlen(f), &pos, &p) == 1, "pair %d missing", i);
        ROW_CHECK(p.key_len == strlen(want[i][0]) && memcmp(p.key, want[i][0], p.key_len) == 0, "key %d", i);
        ROW_CHECK(p.value_len == strlen(want[i][1]) && memcmp(p.value, want[i][1], p.value_len) == 0, "value %d", i);
        ROW_CHECK(p.key >= f && p.value + p.value_len <= f + strlen(f), "slice %d outside the input", i);
    }
    ROW_CHECK(tc_http_form_next(f, strlen(f), &pos, &p) == 0, "a fourth pair");
    return 0;
}

typedef struct {
    const char *name;
    const char *msg;
    size_t repeat; /* the message repeated this many times */
    const char *hex;
} sha_row_t;

/* FIPS 180-4 examples (NIST "SHA256.pdf") and the CAVP long-message vector. */
static const sha_row_t SHA_ROWS[] = {
    {"empty", "", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abc", "abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"448 bits", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {"896 bits",
     "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
     1, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    {"a million a", "a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
    {"55 bytes (padding fits one block; from sha256sum)", "0123456789012345678901234567890123456789012345678901234", 1,
     "f34d5a0f80c0cbf84c8c0b90218c22637abd199965249da736a20143c8c9c9d9"},
};

static int sha_row(const sha_row_t *r)
{
    uint8_t d[TC_SHA256_LEN], want[TC_SHA256_LEN];
    char hex[2 * TC_SHA256_LEN + 1];
    ROW_CHECK(tc_sha256_from_hex(r->hex, strlen(r->hex), want) == TC_OK, "bad vector");
    size_t n = strlen(r->msg);
    for (int mode = 0; mode < 3; mode++) {
        tc_sha256_t s;
        tc_sha256_init(&s);
        for (size_t k = 0; k < r->repeat; k++) {
            if (mode == 0) {
                tc_sha256_update(&s, r->msg, n); /* whole */
            } else if (mode == 1) {
                for (size_t i = 0; i < n; i++) {
                    tc_sha256_update(&s, r->msg + i, 1); /* one byte at a time */
                }
            } else {
                size_t cut = n / 3; /* uneven pieces, and an empty one */
                tc_sha256_update(&s, r->msg, cut);
                tc_sha256_update(&s, NULL, 0);
                tc_sha256_update(&s, r->msg + cut, n - cut);
            }
        }
        tc_sha256_final(&s, d);
        tc_sha256_to_hex(d, hex);
        ROW_CHECK(memcmp(d, want, sizeof(d)) == 0, "mode %d: %s", mode, hex);
        ROW_CHECK(strcmp(hex, r->hex) == 0, "hex %s", hex);
        if (r->repeat > 1000) {
            break; /* the long vector once, whole */
        }
    }
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < sizeof(FORM_ROWS) / sizeof(FORM_ROWS[0]); i++) {
        tc_check_row = FORM_ROWS[i].name;
        tc_check_tally(form_row(&FORM_ROWS[i]));
    }
    tc_check_row = "form_next";
    tc_check_tally(iterate_row());
    for (size_t i = 0; i < sizeof(SHA_ROWS) / sizeof(SHA_ROWS[0]); i++) {
        tc_check_row = SHA_ROWS[i].name;
        tc_check_tally(sha_row(&SHA_ROWS[i]));
    }
    tc_check_row = "hex";
    uint8_t d[TC_SHA256_LEN];
    EXPECT(tc_sha256_from_hex("zz", 2, d) == TC_EINVAL);
    EXPECT(tc_sha256_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", 63, d) == TC_EINVAL);
    EXPECT(tc_sha256_from_hex("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B85G", 64, d) == TC_EINVAL);
    tc_check_row = "const_equal";
    EXPECT(tc_http_const_equal("secret", 6, "secret", 6));
    EXPECT(!tc_http_const_equal("secreT", 6, "secret", 6));
    EXPECT(!tc_http_const_equal("secret!", 7, "secret", 6));
    EXPECT(!tc_http_const_equal("secre", 5, "secret", 6));
    EXPECT(!tc_http_const_equal("", 0, "x", 1));
    EXPECT(tc_http_const_equal("", 0, "", 0));
    tc_check_row = NULL;
    return tc_check_summary();
}
