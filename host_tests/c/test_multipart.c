/*
 * test_multipart.c - the multipart/form-data reader (tc_http_multipart_*, tc_http_form.h): a table of forms fed
 * whole, one byte at a time and in every two-piece split; the parts (name, filename, content) must come out the
 * same each way, and the content must equal what was framed (including bytes that look like a delimiter's start).
 */
#include <stdio.h>
#include <string.h>

#include "tc_check.h"
#include "tc_http_form.h"

typedef struct {
    const char *name;
    const char *ctype;
    const char *body;
    int want_rc;          /* 0: complete form; else the error */
    const char *want;     /* "name|filename|content;" per part */
} mp_row_t;

#define CT "multipart/form-data; boundary=XyZ"
static const mp_row_t ROWS[] = {
    {"two fields", CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ\r\n"
                       "Content-Disposition: form-data; name=\"b\"\r\n\r\nhello\r\n--XyZ--\r\n", 0, "a||1;b||hello;"},
    {"file with type", CT, "--XyZ\r\nContent-Disposition: form-data; name=\"fw\"; filename=\"app.bin\"\r\n"
                           "Content-Type: application/octet-stream\r\n\r\n\xe9\x01\x02\r\n--XyZ--", 0, "fw|app.bin|\xe9\x01\x02;"},
    {"preamble and epilogue", CT, "junk\r\n--XyZ\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n--XyZ--\r\n"
                                  "epilogue --XyZ\r\n", 0, "x||v;"},
    {"near-delimiters in content", CT, "--XyZ\r\nContent-Disposition: form-data; name=\"d\"\r\n\r\n\r\n--XyQ \r\n-\r\r\n--X"
                                       "\r\n--XyZ--", 0, "d||\r\n--XyQ \r\n-\r\r\n--X;"},
    {"empty part", CT, "--XyZ\r\nContent-Disposition: form-data; name=\"e\"\r\n\r\n\r\n--XyZ--", 0, "e||;"},
    {"no headers", CT, "--XyZ\r\n\r\nbare\r\n--XyZ--", 0, "||bare;"},
    {"padding after delimiter", CT, "--XyZ  \r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nq\r\n--XyZ--", 0,
     "p||q;"},
    {"quoted boundary", "multipart/form-data; boundary=\"a b\"", "--a b\r\n\r\nz\r\n--a b--", 0, "||z;"},
    {"escaped quote in name", CT, "--XyZ\r\nContent-Disposition: form-data; name=\"q\\\"x\"\r\n\r\n1\r\n--XyZ--", 0,
     "q\"x||1;"},
    {"cut short", CT, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n12", 1, "a||12"},
    {"garbage after delimiter", CT, "--XyZ?\r\n", TC_EPROTO, ""},
};

typedef struct {
    char log[512];
    size_t n;
    int rc;
    int done;
} result_t;

static void put(result_t *r, const char *s, size_t n)
{
    if (r->n + n < sizeof(r->log)) {
        memcpy(r->log + r->n, s, n);
        r->n += n;
        r->log[r->n] = '\0';
    }
}

/* Feed body in pieces split at cut1 (and one byte at a time when bytewise). */
static void run(const mp_row_t *row, size_t cut1, int bytewise, result_t *r)
{
    memset(r, 0, sizeof(*r));
    tc_http_multipart_t mp;
    if (tc_http_multipart_init(&mp, row->ctype, strlen(row->ctype)) != TC_OK) {
        r->rc = -100;
        return;
    }
    size_t total = strlen(row->body);
    size_t pos = 0;
    while (pos < total && r->rc == 0) {
        size_t piece = bytewise ? 1 : (pos < cut1 ? cut1 - pos : total - pos);
        char buf[600]; /* a copy of exactly the piece: slices must not reach past it */
        memcpy(buf, row->body + pos, piece);
        const char *d = buf;
        size_t len = piece;
        int guard = 0;
        while (len > 0 && r->rc == 0) {
            size_t used;
            const char *p;
            size_t n;
            int rc = tc_http_multipart_feed(&mp, d, len, &used, &p, &n);
            if (used > len || ++guard > 10000) {
                r->rc = -101;
                return;
            }
            d += used;
            len -= used;
            if (rc < 0) {
                r->rc = rc;
            } else if (rc == TC_HTTP_MP_PART) {
                put(r, mp.name, strlen(mp.name));
                put(r, "|", 1);
                put(r, mp.filename, strlen(mp.filename));
                put(r, "|", 1);
            } else if (rc == TC_HTTP_MP_DATA) {
                put(r, p, n);
            } else if (rc == TC_HTTP_MP_PART_END) {
                put(r, ";", 1);
            }
        }
        pos += piece;
    }
    r->done = tc_http_multipart_done(&mp);
}

static int row_check(const mp_row_t *row)
{
    size_t total = strlen(row->body);
    for (size_t cut = 0; cut <= total + 1; cut++) {
        result_t r;
        run(row, cut, cut == total + 1, &r);
        int want_rc = row->want_rc == 1 ? 0 : row->want_rc;
        ROW_CHECK(r.rc == want_rc, "split at %zu: rc %d, want %d", cut, r.rc, want_rc);
        if (want_rc == 0) {
            ROW_CHECK(strcmp(r.log, row->want) == 0, "split at %zu: got \"%s\"", cut, r.log);
            ROW_CHECK(r.done == (row->want_rc == 0), "split at %zu: done %d", cut, r.done);
        }
    }
    return 0;
}

int main(void)
{
    for (size_t i = 0; i < sizeof(ROWS) / sizeof(ROWS[0]); i++) {
        tc_check_row = ROWS[i].name;
        tc_check_tally(row_check(&ROWS[i]));
    }
    tc_check_row = "init";
    tc_http_multipart_t mp;
    EXPECT(tc_http_multipart_init(&mp, "text/plain", 10) == TC_EINVAL);
    EXPECT(tc_http_multipart_init(&mp, "multipart/form-data", 19) == TC_EINVAL);
    EXPECT(tc_http_multipart_init(&mp, "multipart/form-data; boundary=", 30) == TC_EINVAL);
    const char *okb = "multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890"
                      "123456789"; /* 70: the longest allowed */
    EXPECT(tc_http_multipart_init(&mp, okb, strlen(okb)) == TC_OK);
    const char *longb = "multipart/form-data; boundary=0123456789012345678901234567890123456789012345678901234567890"
                        "1234567890"; /* 71 characters: one beyond RFC 2046 */
    EXPECT(tc_http_multipart_init(&mp, longb, strlen(longb)) == TC_EINVAL);
    tc_check_row = NULL;
    return tc_check_summary();
}
