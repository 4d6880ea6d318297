/*
 * tc_ota.c - firmware upload route (see tc_ota.h): head checks, the seed-003 prepare step, the image streamed into
 * a sink with its checks, and the reboot step.
 */
#include "tc_ota.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"
#include "tc_http_parser.h"
#include "tc_http_auth.h"
#include "tc_http_form.h"
#include "tc_sha256.h"

#define OTA_REALM "tcp_core OTA"
#define OTA_MSG 120
/* An upload with no byte for this long gives way to a new one: a client whose connection dropped without a FIN
 * (Wi-Fi gone) retries long before the minimum-rate rule ends the old request. */
#define OTA_STALL_MS 2000

typedef struct upload upload_t;

struct tc_ota {
    tc_http_t *http;
    tc_ota_sink_t sink;
    tc_ota_config_t cfg;  /* auth strings point into auth below */
    char *auth;           /* user NUL pass NUL, one block */
    char *reboot_path;
    upload_t *cur;        /* the upload in flight (one at a time) */
    tc_timer_t *restart;  /* pending restart after a reboot answer */
    int paused;           /* prepare ran and nothing resumed the services yet */
    int ready;            /* a finished image waits for the reboot step */
    uint32_t uploads, failures;
    int last_status;      /* HTTP status of the last upload (0: none yet) */
    uint64_t last_bytes;
    char last_msg[OTA_MSG];
    char last_sha[2 * TC_SHA256_LEN + 1];
    char prepare_report[128];
};

struct upload {
    tc_ota_t *ota;
    tc_http_req_t *req;
    void *job;        /* the sink's job once begun */
    tc_sha256_t sha;
    uint8_t want[TC_SHA256_LEN];
    int has_want;
    int preparing;    /* waiting for tc_ota_prepared() */
    uint64_t size;    /* declared image size, 0 = unknown */
    uint64_t received;
    tc_http_multipart_t *mp; /* a form upload (curl -F): the first file part is the image */
    int in_file;             /* 0 before the file part, 1 inside it, 2 after it */
    uint64_t last_byte_ms; /* loop time of the last piece (or of the head) */
    uint64_t write_ms;     /* loop time writing began (after prepare), 0 before */
    uint64_t write_from;   /* bytes received by then (checked while preparing) */
    uint8_t *held;    /* the one piece that arrived while preparing */
    size_t held_len;
    tc_timer_t *prepare_timer;
    /* Messages live with the upload, not on the loop task's stack: what the sink said, and the failure being
     * formatted from it (upload_failf). */
    char sink_msg[OTA_MSG];
    char msg[OTA_MSG];
};

static void set_msg(char *dst, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int upload_failf(upload_t *u, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int form_bytes(upload_t *u, const uint8_t *p, size_t len);
static void set_msg(char *dst, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, OTA_MSG, fmt, ap);
    va_end(ap);
}

/* Every upload ends here exactly once: drop the sink's job (no partial image), free the upload, record the result,
 * bring the paused services back on failure. The caller answers afterwards (the answer may free req). */
static void upload_end(upload_t *u, int status, const char *msg)
{
    tc_ota_t *ota = u->ota;
    if (u->job) {
        ota->sink.abort(u->job);
    }
    if (u->prepare_timer) {
        tc_timer_cancel(u->prepare_timer);
    }
    tc_free(u->held);
    tc_free(u->mp);
    tc_http_req_set_data(u->req, NULL);
    ota->cur = NULL;
    ota->last_status = status;
    ota->last_bytes = u->received;
    snprintf(ota->last_msg, sizeof(ota->last_msg), "%s", msg);
    if (status != 200) {
        ota->failures++;
        if (ota->paused && !ota->ready) {
            ota->paused = 0;
            if (ota->cfg.resume) {
                ota->cfg.resume(ota, ota->cfg.user);
            }
        }
    }
    tc_free(u);
}

/* A JSON answer formatted to its exact length on the heap (a reboot path of 200 bytes makes it 350; not on the loop
 * task's stack). Out of memory: the same status with a body that says only that. */
static int answer_json(tc_http_req_t *req, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int answer_json(tc_http_req_t *req, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *out = n >= 0 ? tc_malloc((size_t)n + 1) : NULL;
    if (out == NULL) {
        const char *oom = status < 300 ? "{\"ok\":true}\n" : "{\"ok\":false,\"error\":\"out of memory\"}\n";
        return tc_http_respond(req, status, "application/json", oom, strlen(oom));
    }
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    int rc = tc_http_respond(req, status, "application/json", out, (size_t)n);
    tc_free(out);
    return rc;
}

/* Retry-After on a refusal that a later attempt may not get: 409 (another upload: it gives way once it stalls) and
 * 503 (memory: the services are still stopping, or coming back). */
static void retry_after(tc_http_req_t *req, uint32_t s)
{
    char v[12];
    snprintf(v, sizeof(v), "%u", (unsigned)s);
    tc_http_resp_header(req, "Retry-After", v);
}

/* A 503's Retry-After: long enough for the services to finish stopping (the prepare deadline) and then some. */
static uint32_t busy_retry_s(const tc_ota_t *ota)
{
    return (ota->cfg.prepare_deadline_ms + 999) / 1000 + 1;
}

/* A refusal {"ok":false,"status":...,"error":...}. */
static int refuse(tc_http_req_t *req, int status, const char *msg)
{
    return answer_json(req, status, "{\"ok\":false,\"status\":%d,\"error\":\"%s\"}\n", status, msg);
}

/* Fail the upload with a JSON answer {"ok":false,"error":...} (a 503 with Retry-After); the connection closes after
 * it when the body is not all read (tc_http.h). */
static int upload_fail(upload_t *u, int status, const char *msg)
{
    tc_http_req_t *req = u->req;
    tc_ota_t *ota = u->ota;
    upload_end(u, status, msg); /* msg may be u's own: answer with the copy it leaves in last_msg */
    if (status == 503) {
        retry_after(req, busy_retry_s(ota));
    }
    return refuse(req, status, ota->last_msg);
}

/* upload_fail() with a message formatted into the upload's own buffer. */
static int upload_failf(upload_t *u, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->msg, sizeof(u->msg), fmt, ap);
    va_end(ap);
    return upload_fail(u, status, u->msg);
}

/* What the sink said after a failed call, or the code's text. */
static const char *sink_said(upload_t *u, int rc)
{
    return u->sink_msg[0] ? u->sink_msg : tc_strerror(rc);
}

static int sink_write(upload_t *u, const void *data, size_t len)
{
    u->sink_msg[0] = '\0';
    int rc = u->ota->sink.write(u->job, data, len, u->sink_msg, sizeof(u->sink_msg));
    if (rc != TC_OK) {
        upload_failf(u, 500, "sink write failed: %s", sink_said(u, rc));
        return rc;
    }
    return TC_OK;
}

/* Memory is free: begin the sink's job and write the piece held meanwhile. TC_OK, or the upload failed (answered). */
static int start_writing(upload_t *u)
{
    u->preparing = 0;
    u->write_ms = tc_loop_now(tc_http_loop(u->ota->http));
    u->write_from = u->received;
    u->sink_msg[0] = '\0';
    int rc = u->ota->sink.begin(u->ota->sink.ctx, u->size, &u->job, u->sink_msg, sizeof(u->sink_msg));
    if (rc != TC_OK) {
        u->job = NULL;
        upload_failf(u, rc == TC_ENOMEM ? 503 : 500, "sink refused the image: %s", sink_said(u, rc));
        return rc;
    }
    if (u->held) {
        uint8_t *held = u->held;
        size_t n = u->held_len;
        u->held = NULL; /* freed here whatever happens: a failure below frees u */
        rc = u->mp ? (form_bytes(u, held, n) < 0 ? TC_EPROTO : TC_OK) : sink_write(u, held, n);
        tc_free(held);
        return rc;
    }
    return TC_OK;
}

void tc_ota_prepared(tc_ota_t *ota, int rc, const char *report)
{
    if (ota == NULL) {
        return;
    }
    upload_t *u = ota->cur;
    if (report) {
        snprintf(ota->prepare_report, sizeof(ota->prepare_report), "%s", report);
    }
    if (u == NULL || !u->preparing) {
        return;
    }
    if (u->prepare_timer) {
        tc_timer_cancel(u->prepare_timer);
        u->prepare_timer = NULL;
    }
    if (rc != TC_OK) {
        upload_fail(u, 503, "could not free memory for the update");
        return;
    }
    tc_http_req_t *req = u->req;
    if (start_writing(u) == TC_OK) {
        tc_http_req_body_resume(req); /* the pieces come from the loop afterwards */
    }
}

/* The app's prepare did not report within its deadline plus a second: write anyway (its stop forces by then). */
static int64_t prepare_overdue(tc_timer_t *t, void *user)
{
    (void)t;
    upload_t *u = user;
    u->prepare_timer = NULL;
    tc_ota_prepared(u->ota, TC_OK, "prepare overran its deadline");
    return TC_TIMER_STOP;
}

/* A size from X-OTA-Size or ?size=: 1 with *out, 0 when absent, -1 when malformed. */
static int declared_size(tc_http_req_t *req, uint64_t *out)
{
    char v[24];
    size_t hl = 0;
    const char *h = tc_http_req_header(req, "X-OTA-Size", &hl);
    if (h) {
        if (hl == 0 || hl >= sizeof(v)) {
            return -1;
        }
        memcpy(v, h, hl);
        v[hl] = '\0';
    } else {
        int n = tc_http_req_query_value(req, "size", v, sizeof(v));
        if (n == TC_ENOTFOUND) {
            return 0;
        }
        if (n <= 0) {
            return -1;
        }
    }
    uint64_t s = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9' || s > (UINT64_MAX - 9) / 10) {
            return -1;
        }
        s = s * 10 + (uint64_t)(*p - '0');
    }
    *out = s;
    return 1;
}

/* The expected digest from X-OTA-SHA256 or ?sha256=: 1, 0 when absent, -1 when malformed. */
static int declared_sha(tc_http_req_t *req, uint8_t out[TC_SHA256_LEN])
{
    size_t hl = 0;
    const char *h = tc_http_req_header(req, "X-OTA-SHA256", &hl);
    char v[2 * TC_SHA256_LEN + 2];
    if (h == NULL) {
        int n = tc_http_req_query_value(req, "sha256", v, sizeof(v));
        if (n == TC_ENOTFOUND) {
            return 0;
        }
        if (n < 0) {
            return -1;
        }
        h = v;
        hl = (size_t)n;
    }
    return tc_sha256_from_hex(h, hl, out) == TC_OK ? 1 : -1;
}

/* The head: authentication, one upload at a time, sizes and digest, then prepare. */
static int upload_head(tc_http_req_t *req, void *user)
{
    tc_ota_t *ota = user;
    if (!tc_http_basic_auth_ok(req, ota->cfg.auth_user, ota->cfg.auth_pass)) {
        return tc_http_basic_auth_challenge(req, OTA_REALM);
    }
    tc_loop_t *loop = tc_http_loop(ota->http);
    if (ota->cur) {
        if (ota->cur->preparing || tc_loop_now(loop) - ota->cur->last_byte_ms < OTA_STALL_MS) {
            retry_after(req, OTA_STALL_MS / 1000);
            return refuse(req, 409, "another upload is in progress");
        }
        upload_fail(ota->cur, 409, "superseded by a newer upload after a stall");
    }
    uint64_t size = 0;
    int ds = declared_size(req, &size);
    int64_t cl = tc_http_req_content_length(req);
    if (ds < 0) {
        return refuse(req, 400, "malformed X-OTA-Size");
    }
    size_t ctl = 0;
    const char *ct = tc_http_req_header(req, "Content-Type", &ctl);
    int form = ct != NULL && ctl >= 10 && tc_http_ieq(ct, "multipart/", 10);
    if (ds == 0 && cl > 0 && !form) {
        size = (uint64_t)cl; /* a form's length counts its framing too: its image size is known at the end */
    }
    if (cl == 0 || (ds > 0 && size == 0)) {
        return refuse(req, 400, "empty image");
    }
    if (ota->cfg.max_size && size > ota->cfg.max_size) {
        return refuse(req, 413, "image too large for the update slot");
    }
    upload_t *u = tc_calloc(1, sizeof(*u));
    if (u == NULL) {
        retry_after(req, busy_retry_s(ota));
        return refuse(req, 503, "out of memory");
    }
    u->ota = ota;
    u->req = req;
    u->size = size;
    u->last_byte_ms = tc_loop_now(loop);
    u->has_want = declared_sha(req, u->want);
    if (u->has_want < 0) {
        tc_free(u);
        return refuse(req, 400, "malformed X-OTA-SHA256 (64 hex digits)");
    }
    if (form) {
        u->mp = tc_malloc(sizeof(*u->mp));
        int mrc = u->mp ? tc_http_multipart_init(u->mp, ct, ctl) : TC_ENOMEM;
        if (mrc != TC_OK) {
            tc_free(u->mp);
            tc_free(u);
            if (mrc == TC_ENOMEM) {
                retry_after(req, busy_retry_s(ota));
                return refuse(req, 503, "out of memory");
            }
            return refuse(req, 400, "multipart/form-data without a valid boundary");
        }
    }
    tc_sha256_init(&u->sha);
    ota->cur = u;
    ota->uploads++;
    ota->ready = 0; /* a new image replaces the one that waited for its reboot */
    ota->last_status = 0;
    ota->last_sha[0] = '\0';
    set_msg(ota->last_msg, "receiving");
    ota->prepare_report[0] = '\0'; /* this upload's own, once its prepare reports */
    tc_http_req_set_data(req, u);
    if (ota->cfg.prepare == NULL || ota->paused) {
        start_writing(u); /* answered on failure */
        return TC_OK;
    }
    u->preparing = 1;
    ota->paused = 1;
    tc_timer_start(loop, (uint64_t)ota->cfg.prepare_deadline_ms + 1000, prepare_overdue, u, &u->prepare_timer);
    int rc = ota->cfg.prepare(ota, ota->cfg.prepare_deadline_ms, ota->cfg.user);
    if (rc != TC_OK && ota->cur == u) {
        upload_fail(u, 503, "could not free memory for the update");
    }
    return TC_OK;
}

/* Image bytes (the raw body, or the file part of a form): the checks, the digest, and the sink when writing.
 * 0, or -1 when the upload failed (answered). */
static int image_bytes(upload_t *u, const uint8_t *p, size_t len, int write)
{
    tc_ota_t *ota = u->ota;
    if (u->received == 0 && len > 0 && p[0] != TC_OTA_IMAGE_MAGIC) {
        upload_failf(u, 400, "bad image magic 0x%02X (an ESP image starts with 0xE9)", p[0]);
        return -1;
    }
    u->received += len;
    if (u->size && u->received > u->size) {
        upload_fail(u, 400, "size mismatch: more bytes than declared");
        return -1;
    }
    if (ota->cfg.max_size && u->received > ota->cfg.max_size) {
        upload_fail(u, 413, "image too large for the update slot");
        return -1;
    }
    tc_sha256_update(&u->sha, p, len);
    return write ? (sink_write(u, p, len) == TC_OK ? 0 : -1) : 0;
}

/* A multipart/form-data body: the first part with a filename is the image; other fields are skipped. */
static int form_bytes(upload_t *u, const uint8_t *p, size_t len)
{
    const char *d = (const char *)p;
    while (len > 0) {
        size_t used;
        const char *part;
        size_t n;
        int rc = tc_http_multipart_feed(u->mp, d, len, &used, &part, &n);
        d += used;
        len -= used;
        if (rc < 0) {
            upload_fail(u, 400, "malformed multipart/form-data body");
            return -1;
        }
        if (rc == TC_HTTP_MP_PART && u->in_file == 0 && u->mp->filename[0]) {
            u->in_file = 1;
        } else if (rc == TC_HTTP_MP_DATA && u->in_file == 1 && image_bytes(u, (const uint8_t *)part, n, 1) < 0) {
            return -1;
        } else if (rc == TC_HTTP_MP_PART_END && u->in_file == 1) {
            u->in_file = 2;
        }
    }
    return 0;
}

/* Exactly one piece can arrive before the pause takes hold: keep it until the memory is free. */
static int hold_piece(upload_t *u, const void *p, size_t len)
{
    u->held = tc_malloc(len ? len : 1);
    if (u->held == NULL) {
        upload_fail(u, 503, "out of memory");
        return -1;
    }
    memcpy(u->held, p, len);
    u->held_len = len;
    return TC_HTTP_BODY_PAUSE;
}

static int upload_piece(upload_t *u, const uint8_t *p, size_t len)
{
    u->last_byte_ms = tc_loop_now(tc_http_loop(u->ota->http));
    if (u->mp) {
        return u->preparing ? hold_piece(u, p, len) : form_bytes(u, p, len);
    }
    /* A raw image is checked before the pause, so a bad one is refused without stopping anything. */
    if (image_bytes(u, p, len, !u->preparing) < 0) {
        return -1;
    }
    return u->preparing ? hold_piece(u, p, len) : 0;
}

static int upload_complete(upload_t *u)
{
    tc_ota_t *ota = u->ota;
    if (u->mp && !tc_http_multipart_done(u->mp)) {
        return upload_fail(u, 400, "multipart/form-data body cut short (no closing boundary)");
    }
    if (u->received == 0) {
        return upload_fail(u, 400, u->mp ? "no file part in the form (or an empty one)" : "empty image");
    }
    if (u->size && u->received != u->size) {
        return upload_failf(u, 400, "size mismatch: %llu bytes declared, %llu received", (unsigned long long)u->size,
                            (unsigned long long)u->received);
    }
    uint8_t got[TC_SHA256_LEN];
    tc_sha256_final(&u->sha, got);
    char hex[2 * TC_SHA256_LEN + 1];
    tc_sha256_to_hex(got, hex);
    if (u->has_want && !tc_http_const_equal(got, sizeof(got), u->want, sizeof(u->want))) {
        return upload_failf(u, 400, "bad SHA-256: received %.64s", hex);
    }
    void *job = u->job;
    u->job = NULL; /* finish ends the job, whatever it answers */
    u->sink_msg[0] = '\0';
    int rc = ota->sink.finish(job, u->sink_msg, sizeof(u->sink_msg));
    if (rc != TC_OK) {
        return upload_failf(u, rc == TC_EPROTO ? 400 : 500, "image rejected: %s", sink_said(u, rc));
    }
    tc_http_req_t *req = u->req;
    uint64_t bytes = u->received;
    int verified = u->has_want;
    memcpy(ota->last_sha, hex, sizeof(hex));
    ota->ready = 1;
    upload_end(u, 200, "image written; POST the reboot route to boot it");
    return answer_json(req, 200,
                       "{\"ok\":true,\"bytes\":%llu,\"sha256\":\"%s\",\"verified\":%s,\"reboot\":\"POST %s\"}\n",
                       (unsigned long long)bytes, hex, verified ? "true" : "false", ota->reboot_path);
}

static int upload_body(tc_http_req_t *req, tc_http_body_event_t ev, const void *data, size_t len, void *user)
{
    (void)user;
    upload_t *u = tc_http_req_data(req);
    if (u == NULL) {
        return 0; /* refused at the head */
    }
    if (ev == TC_HTTP_BODY_DATA) {
        return upload_piece(u, data, len);
    }
    if (ev == TC_HTTP_BODY_END) {
        upload_complete(u);
        return 0;
    }
    snprintf(u->msg, sizeof(u->msg), "upload cut off after %llu bytes", (unsigned long long)u->received);
    upload_end(u, 499, u->msg); /* TC_HTTP_BODY_ABORT: nobody to answer */
    return 0;
}

static const char *state_name(const tc_ota_t *ota)
{
    if (ota->cur) {
        return ota->cur->preparing ? "preparing" : "receiving";
    }
    return ota->ready ? "ready" : "idle";
}

/* Bytes per second since writing began, and ms left when the size is known (-1: unknown). */
static void upload_rate(const tc_ota_t *ota, const upload_t *u, uint64_t *rate, int64_t *eta_ms)
{
    *rate = 0;
    *eta_ms = -1;
    if (u == NULL || u->write_ms == 0) {
        return;
    }
    uint64_t ms = tc_loop_now(tc_http_loop(ota->http)) - u->write_ms;
    uint64_t bytes = u->received - u->write_from;
    if (ms > 0) {
        *rate = bytes * 1000 / ms;
    }
    if (u->size && *rate > 0) {
        *eta_ms = (int64_t)((u->size - u->received) * 1000 / *rate);
    }
}

int tc_ota_status_json(const tc_ota_t *ota, char *buf, size_t cap)
{
    const upload_t *u = ota->cur;
    uint64_t rate;
    int64_t eta;
    upload_rate(ota, u, &rate, &eta);
    int n = snprintf(buf, cap,
                     "{\"state\":\"%s\",\"received\":%llu,\"size\":%llu,\"rate\":%llu,\"eta_ms\":%lld,"
                     "\"uploads\":%u,\"failures\":%u,"
                     "\"services_paused\":%s,\"prepare\":\"%s\",\"last\":{\"status\":%d,\"bytes\":%llu,"
                     "\"message\":\"%s\",\"sha256\":\"%s\"}}",
                     state_name(ota), (unsigned long long)(u ? u->received : 0), (unsigned long long)(u ? u->size : 0),
                     (unsigned long long)rate, (long long)eta, (unsigned)ota->uploads, (unsigned)ota->failures,
                     ota->paused ? "true" : "false", ota->prepare_report, ota->last_status,
                     (unsigned long long)ota->last_bytes, ota->last_msg, ota->last_sha);
    return n < 0 || (size_t)n >= cap ? TC_ELIMIT : n;
}

int tc_ota_progress_line(const tc_ota_t *ota, char *buf, size_t cap)
{
    if (ota == NULL || buf == NULL) {
        return TC_EINVAL;
    }
    const upload_t *u = ota->cur;
    int n;
    if (u && u->preparing) {
        n = snprintf(buf, cap, "ota: preparing: pausing the services (deadline %u ms), %llu bytes checked\n",
                     (unsigned)ota->cfg.prepare_deadline_ms, (unsigned long long)u->received);
    } else if (u) {
        uint64_t rate;
        int64_t eta;
        upload_rate(ota, u, &rate, &eta);
        char of[48] = "", left[40] = "";
        if (u->size) {
            snprintf(of, sizeof(of), " of %llu (%u %%)", (unsigned long long)u->size,
                     (unsigned)(u->received * 100 / u->size));
        }
        if (eta >= 0) {
            snprintf(left, sizeof(left), ", %lld.%llds left", (long long)(eta / 1000), (long long)(eta % 1000 / 100));
        }
        n = snprintf(buf, cap, "ota: receiving %llu bytes%s at %llu.%llu KB/s%s; %s\n",
                     (unsigned long long)u->received, of, (unsigned long long)(rate / 1000),
                     (unsigned long long)(rate % 1000 / 100), left, ota->prepare_report[0] ? ota->prepare_report : "");
    } else if (ota->ready) {
        n = snprintf(buf, cap, "ota: image ready (%llu bytes, sha256 %.16s...): POST %s to boot it\n",
                     (unsigned long long)ota->last_bytes, ota->last_sha, ota->reboot_path);
    } else if (ota->last_status) {
        n = snprintf(buf, cap, "ota: idle; last upload %d after %llu bytes: %s\n", ota->last_status,
                     (unsigned long long)ota->last_bytes, ota->last_msg);
    } else {
        n = snprintf(buf, cap, "ota: idle, no upload yet\n");
    }
    return n;
}

#define OTA_STATUS_MAX 768

static int status_route(tc_http_req_t *req, void *user)
{
    /* On the heap for the answer's duration: 768 bytes are a tenth of a chip's loop task stack. */
    char *buf = tc_malloc(OTA_STATUS_MAX);
    if (buf == NULL) {
        return tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
    }
    int n = tc_ota_status_json(user, buf, OTA_STATUS_MAX);
    int rc = n < 0 ? tc_http_respond(req, 500, "text/plain", "status too large\n", 17)
                   : tc_http_respond(req, 200, "application/json", buf, (size_t)n);
    tc_free(buf);
    return rc;
}

static int64_t restart_now(tc_timer_t *t, void *user)
{
    (void)t;
    tc_ota_t *ota = user;
    ota->restart = NULL;
    ota->sink.restart(ota->sink.ctx);
    return TC_TIMER_STOP;
}

static int reboot_route(tc_http_req_t *req, void *user)
{
    tc_ota_t *ota = user;
    if (!tc_http_basic_auth_ok(req, ota->cfg.auth_user, ota->cfg.auth_pass)) {
        return tc_http_basic_auth_challenge(req, OTA_REALM);
    }
    if (ota->cur) {
        return refuse(req, 409, "an upload is in progress");
    }
    if (!ota->ready) {
        return refuse(req, 409, "no image is ready to boot: upload one first");
    }
    char msg[OTA_MSG] = "";
    int rc = ota->sink.reboot(ota->sink.ctx, msg, sizeof(msg));
    if (rc < 0) {
        return refuse(req, 500, msg[0] ? msg : tc_strerror(rc));
    }
    int rebooting = rc == TC_OK && ota->sink.restart != NULL;
    if (rebooting) {
        /* Half a second for the answer to leave before the restart cuts every connection. */
        tc_timer_start(tc_http_loop(ota->http), 500, restart_now, ota, &ota->restart);
    } else {
        ota->ready = 0; /* the host "booted" it: back to serving, services resumed */
        if (ota->paused) {
            ota->paused = 0;
            if (ota->cfg.resume) {
                ota->cfg.resume(ota, ota->cfg.user);
            }
        }
    }
    return answer_json(req, 200, "{\"ok\":true,\"rebooting\":%s,\"message\":\"%s\"}\n", rebooting ? "true" : "false",
                       msg);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = tc_malloc(n);
    if (d) {
        memcpy(d, s, n);
    }
    return d;
}

int tc_ota_attach(tc_http_t *http, const char *path, const tc_ota_sink_t *sink, const tc_ota_config_t *cfg,
                  tc_ota_t **out)
{
    if (http == NULL || path == NULL || path[0] != '/' || sink == NULL || cfg == NULL || out == NULL ||
        sink->begin == NULL || sink->write == NULL || sink->finish == NULL || sink->abort == NULL ||
        sink->reboot == NULL || strlen(path) > 200) {
        return TC_EINVAL;
    }
    tc_ota_t *ota = tc_calloc(1, sizeof(*ota));
    char rp[224];
    snprintf(rp, sizeof(rp), "%s/reboot", path);
    const char *au = cfg->auth_user ? cfg->auth_user : "";
    const char *ap = cfg->auth_pass ? cfg->auth_pass : "";
    size_t ul = strlen(au), pl = strlen(ap);
    char *auth = tc_malloc(ul + pl + 2);
    char *reboot = dup_str(rp);
    if (ota == NULL || auth == NULL || reboot == NULL) {
        tc_free(ota);
        tc_free(auth);
        tc_free(reboot);
        return TC_ENOMEM;
    }
    memcpy(auth, au, ul + 1);
    memcpy(auth + ul + 1, ap, pl + 1);
    ota->http = http;
    ota->sink = *sink;
    ota->cfg = *cfg;
    ota->cfg.auth_user = auth;
    ota->cfg.auth_pass = auth + ul + 1;
    ota->auth = auth;
    ota->reboot_path = reboot;
    int rc = tc_http_route_body(http, TC_HTTP_POST | TC_HTTP_PUT, path, cfg->max_size, upload_head, upload_body, ota);
    rc = rc == TC_OK ? tc_http_route(http, TC_HTTP_GET, path, status_route, ota) : rc;
    rc = rc == TC_OK ? tc_http_route(http, TC_HTTP_POST, reboot, reboot_route, ota) : rc;
    if (rc != TC_OK) {
        /* Routes already added keep pointing at ota: it stays allocated until tc_ota_free(). */
        *out = ota;
        return rc;
    }
    *out = ota;
    return TC_OK;
}

void tc_ota_free(tc_ota_t *ota)
{
    if (ota == NULL) {
        return;
    }
    if (ota->cur) {
        upload_end(ota->cur, 499, "server stopped"); /* not reached when the server stopped first */
    }
    if (ota->restart) {
        tc_timer_cancel(ota->restart);
    }
    tc_free(ota->auth);
    tc_free(ota->reboot_path);
    tc_free(ota);
}

/* ---- the host's file sink ---- */

typedef struct {
    FILE *f;
    char tmp[256];
    char final[256];
} file_job_t;

static int file_begin(void *ctx, uint64_t size, void **job, char *msg, size_t cap)
{
    (void)size;
    const char *dir = ctx;
    file_job_t *j = tc_calloc(1, sizeof(*j));
    if (j == NULL) {
        return TC_ENOMEM;
    }
    snprintf(j->tmp, sizeof(j->tmp), "%s/firmware.bin.part", dir);
    snprintf(j->final, sizeof(j->final), "%s/firmware.bin", dir);
    j->f = fopen(j->tmp, "wb");
    if (j->f == NULL) {
        snprintf(msg, cap, "cannot create %s", j->tmp);
        tc_free(j);
        return TC_EIO;
    }
    *job = j;
    return TC_OK;
}

static int file_write(void *job, const void *data, size_t len, char *msg, size_t cap)
{
    file_job_t *j = job;
    if (fwrite(data, 1, len, j->f) != len) {
        snprintf(msg, cap, "write to %s failed", j->tmp);
        return TC_EIO;
    }
    return TC_OK;
}

static void file_abort(void *job)
{
    file_job_t *j = job;
    fclose(j->f);
    remove(j->tmp);
    tc_free(j);
}

static int file_finish(void *job, char *msg, size_t cap)
{
    file_job_t *j = job;
    int bad = fflush(j->f) != 0;
    bad |= fclose(j->f) != 0;
    j->f = NULL;
    if (bad || rename(j->tmp, j->final) != 0) {
        snprintf(msg, cap, "could not complete %s", j->final);
        remove(j->tmp);
        tc_free(j);
        return TC_EIO;
    }
    tc_free(j);
    return TC_OK;
}

static int file_reboot(void *ctx, char *msg, size_t cap)
{
    snprintf(msg, cap, "host: no reboot; the image is %s/firmware.bin", (const char *)ctx);
    return TC_OTA_NO_REBOOT;
}

int tc_ota_file_sink_init(tc_ota_sink_t *sink, const char *dir)
{
    if (sink == NULL || dir == NULL || dir[0] == '\0' || strlen(dir) > 200) {
        return TC_EINVAL;
    }
    tc_ota_sink_t s = {.begin = file_begin,
                       .write = file_write,
                       .finish = file_finish,
                       .abort = file_abort,
                       .reboot = file_reboot,
                       .restart = NULL,
                       .ctx = (void *)(uintptr_t)dir};
    *sink = s;
    return TC_OK;
}
