/*
 * tc_app.c - the device's services (see tc_app.h). Shared by the firmware (main/) and `tcp-core serve`; built on
 * tcp_core's public headers only (it is the demo's, not the component's).
 */
#include "tc_app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_addr.h"
#include "tc_alloc.h"
#include "tc_dashboard.h"
#include "tc_demo_frames.h"
#include "tc_err.h"
#include "tc_handle_impl.h"
#include "tc_http_auth.h"
#include "tc_http_parser.h"
#include "tc_registry.h"
#include "tc_version.h"

struct tc_app {
    tc_handle_t h; /* first: tc_handle.h */
    tc_loop_t *loop;
    tc_app_config_t cfg;
    tc_server_t *echo;
    tc_client_t *client;
    tc_http_t *http;
    tc_dns_server_t *dns;
    tc_ota_t *ota;
    tc_http_static_t *files; /* static_dir's route */
    tc_http_cors_t *cors;    /* cors_origins' policy */
    char *ota_dir;           /* the file sink's directory (copied) */
    int streams_paused;      /* an OTA upload freed the streams' memory: producers end, new viewers get 503 */
    uint32_t live_viewers;   /* /api/live streams: the status feed stays through an upload (it shows its progress) */
    tc_timer_t *ota_wait;    /* polls for the services to be paused after an OTA prepare */
    uint16_t echo_paused_port; /* the echo server an OTA upload stopped, restarted on this port if it fails */
    int echo_pausing;        /* its stop is under way (echo_paused() still to come) */
    int echo_resume_due;     /* the upload failed before that stop finished: restart when it has */
    int echo_resume_rc;      /* the last restart's result */
    tc_stop_report_t ota_echo; /* what the echo server's pause closed */
    int extra_pausing;       /* the app's own extras (ota_hooks) were asked to pause and have not reported yet */
    int extra_paused;        /* they were asked to pause and not resumed yet */
    int extra_resume_due;    /* resume them once they have reported paused */
    char extra_report[48];
    uint64_t ota_deadline;
    uint64_t ota_started;
    tc_demo_frame_t frames[TC_DEMO_FRAME_COUNT]; /* what /stream sends: the demo frames, or padded copies */
    uint8_t *frames_buf;                         /* the padded copies (one block), NULL when not padded */
    uint8_t client_reason; /* close reason of the client's last connection */
    int pending; /* services still stopping */
    tc_stop_report_t parts[TC_APP_PART_COUNT]; /* the services' stop reports (tc_app.h) */
    uint64_t started;       /* loop clock at start, for the uptime */
    char *admin;            /* the one admin credential: user NUL password NUL (one block), NULL: none */
    const char *admin_pass; /* into admin; checked by tc_http_auth for /api/stop (the OTA routes hold a copy) */
    tc_timer_t *stop_timer; /* runs stop_request outside the handler, until it fires or the app stops */
};

/* POST /api/stop is served when the owner handles it and an admin password is set. */
static int stop_enabled(const tc_app_t *app)
{
    return app->admin != NULL && app->cfg.stop_request != NULL;
}

/* ---- status ---- */

typedef struct {
    char *buf;
    size_t cap, len;
    int first;
    int overflow;
} json_t;

static void jput(json_t *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void jput(json_t *j, const char *fmt, ...)
{
    if (j->overflow) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= j->cap - j->len) {
        j->overflow = 1;
        return;
    }
    j->len += (size_t)n;
}

static int status_visit(const tc_sock_info_t *s, void *user)
{
    json_t *j = user;
    char local[TC_ADDR_STRLEN] = "", peer[TC_ADDR_STRLEN] = "";
    if (s->local.family) {
        tc_addr_format(&s->local, 1, local, sizeof(local));
    }
    if (s->peer.family) {
        tc_addr_format(&s->peer, 1, peer, sizeof(peer));
    }
    jput(j,
         "%s{\"id\":%u,\"kind\":\"%s\",\"state\":\"%s\",\"owner\":\"%s\",\"local\":\"%s\",\"peer\":\"%s\","
         "\"role\":\"%s\",\"age_ms\":%llu,\"idle_ms\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,\"queued\":%zu,"
         "\"streaming\":%s}",
         j->first ? "" : ",", (unsigned)s->id, tc_kind_name(s->kind), tc_state_name(s->state),
         s->owner ? s->owner : "",
         local, peer, tc_role_name(s->role), (unsigned long long)s->age_ms, (unsigned long long)s->idle_ms,
         (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out, s->queued,
         (s->flags & TC_REG_FLAG_STREAMING) ? "true" : "false");
    j->first = 0;
    return j->overflow;
}

/* The loop's part of the status document, without its closing brace. */
static void status_loop(json_t *j, const tc_loop_t *loop)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    jput(j, "{\"backend\":\"%s\",\"heap\":{\"bytes_in_use\":%zu,\"bytes_peak\":%zu,\"blocks\":%zu},\"sockets\":[",
         tc_sock_backend(), st.bytes_in_use, st.bytes_peak, st.blocks_in_use);
    tc_registry_foreach(loop, status_visit, j);
    jput(j, "],\"count\":%u", (unsigned)tc_registry_count(loop));
}

int tc_app_status_json(const tc_loop_t *loop, char *buf, size_t cap)
{
    json_t j = {.buf = buf, .cap = cap, .first = 1};
    status_loop(&j, loop);
    jput(&j, "}");
    return j.overflow ? TC_ELIMIT : (int)j.len;
}

static const char *captive_name(tc_captive_mode_t mode)
{
    return mode == TC_CAPTIVE_PORTAL ? "portal" : mode == TC_CAPTIVE_ONLINE ? "online" : "off";
}

int tc_app_status_json_app(const tc_app_t *app, char *buf, size_t cap)
{
    json_t j = {.buf = buf, .cap = cap, .first = 1};
    status_loop(&j, app->loop);
    uint32_t fps = app->cfg.stream_fps == 0 ? 10 : app->cfg.stream_fps > 1000 ? 1000 : app->cfg.stream_fps;
    jput(&j,
         ",\"app\":{\"version\":\"%s\",\"uptime_ms\":%llu,\"echo_port\":%u,\"http_port\":%u,\"dns_port\":%u,"
         "\"captive\":\"%s\",\"stream_fps\":%u,\"stop\":%s",
         TC_VERSION, (unsigned long long)(tc_loop_now(app->loop) - app->started), (unsigned)tc_app_echo_port(app),
         (unsigned)tc_app_http_port(app), (unsigned)tc_app_dns_port(app), captive_name(app->cfg.captive),
         (unsigned)fps, stop_enabled(app) ? "true" : "false");
    if (app->http && app->cfg.captive != TC_CAPTIVE_OFF) {
        tc_captive_stats_t cs;
        tc_captive_stats(app->http, &cs);
        jput(&j, ",\"probes\":{\"android\":%u,\"apple\":%u,\"windows\":%u,\"firefox\":%u,\"foreign\":%u}",
             (unsigned)cs.android, (unsigned)cs.apple, (unsigned)cs.windows, (unsigned)cs.firefox,
             (unsigned)cs.foreign);
    }
    if (app->client) {
        /* connect_host was checked to be an address or a name when the client started: no quote or backslash
         * can reach the JSON from a numeric address, and a name is printed only up to one. */
        const char *h = app->cfg.connect_host;
        int hl = (int)strcspn(h, "\"\\");
        jput(&j, ",\"client\":\"%.*s:%u %s\"", hl, h, (unsigned)app->cfg.connect_port,
             tc_client_conn(app->client) ? "connected" : "connecting");
    }
    jput(&j, "}");
    if (app->ota) {
        /* The upload's state next to the sockets, in /api/status and every /api/live event: a dashboard sees the
         * progress where it sees the streams stop. */
        jput(&j, ",\"ota\":");
        int m = j.overflow ? TC_ELIMIT : tc_ota_status_json(app->ota, j.buf + j.len, j.cap - j.len);
        if (m < 0) {
            j.overflow = 1;
        } else {
            j.len += (size_t)m;
        }
    }
    jput(&j, "}");
    return j.overflow ? TC_ELIMIT : (int)j.len;
}

/* Room for the status document: a fixed part (the OTA state's 640 bytes included) and one registry entry per socket. */
static size_t status_cap(const tc_app_t *app)
{
    return 2048 + (app->ota ? 640 : 0) + 320 * (size_t)tc_registry_count(app->loop) +
           (app->cfg.connect_host ? strlen(app->cfg.connect_host) : 0);
}

static int api_status(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    size_t cap = status_cap(app);
    char *buf = tc_malloc(cap);
    if (buf == NULL) {
        return tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
    }
    int n = tc_app_status_json_app(app, buf, cap);
    int rc = n < 0 ? tc_http_respond(req, 500, "text/plain", "status too large\n", 17)
                   : tc_http_respond(req, 200, "application/json", buf, (size_t)n);
    tc_free(buf);
    return rc;
}


static int respond_text(tc_http_req_t *req, int status, const char *text)
{
    return tc_http_respond(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

static int page_index(tc_http_req_t *req, void *user)
{
    (void)user;
    size_t alen = 0;
    const char *ae = tc_http_req_header(req, "Accept-Encoding", &alen);
    int rc = tc_http_resp_header(req, "Vary", "Accept-Encoding");
    if (rc == TC_OK && ae != NULL && tc_http_accepts_coding(ae, alen, "gzip")) {
        rc = tc_http_resp_header(req, "Content-Encoding", "gzip");
        return rc == TC_OK ? tc_http_respond(req, 200, "text/html; charset=utf-8", tc__dashboard_gz,
                                             tc__dashboard_gz_len)
                           : rc;
    }
    return rc == TC_OK ? tc_http_respond(req, 200, "text/html; charset=utf-8", tc__dashboard_html,
                                         tc__dashboard_html_len)
                       : rc;
}

/* /api/live: the status document as one SSE event per events_ms; a viewer whose queue is full skips a tick. */
static int64_t live_produce(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    if (tc_http_stream_ready(req)) {
        size_t cap = status_cap(app);
        char *buf = tc_malloc(cap);
        int n = buf ? tc_app_status_json_app(app, buf, cap) : TC_ENOMEM;
        int rc = n > 0 ? tc_http_stream_write(req, buf, (size_t)n) : TC_OK;
        tc_free(buf);
        if (rc == TC_ECLOSED) {
            return -2;
        }
    }
    return app->cfg.events_ms ? app->cfg.events_ms : 1000;
}

static void live_gone(void *data)
{
    ((tc_app_t *)data)->live_viewers--;
}

static int page_live(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    /* Counted until the request is freed, however it ends: the OTA prepare leaves these out of the streams it waits
     * for, since it does not end them (one status document each, and the dashboard's view of the upload). */
    app->live_viewers++;
    tc_http_req_set_data(req, app);
    tc_http_req_set_data_free(req, live_gone);
    return tc_http_stream(req, TC_HTTP_STREAM_SSE, NULL, live_produce, user);
}

/* ---- POST /api/stop ---- */

static int64_t stop_request_fire(tc_timer_t *t, void *user)
{
    (void)t;
    tc_app_t *app = user;
    app->stop_timer = NULL;
    app->cfg.stop_request(app, app->cfg.stop_request_user);
    return TC_TIMER_STOP;
}

static int api_stop(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    if (!stop_enabled(app)) {
        return respond_text(req, 403, "stop is not enabled: start the services with an admin password\n");
    }
    size_t len = 0;
    if (tc_http_req_header(req, "Authorization", &len) == NULL) {
        return tc_http_basic_auth_challenge(req, "tcp_core");
    }
    /* Wrong credentials get 403 (RFC 9110 15.5.4: "credentials were provided ... insufficient"), not a second
     * challenge: a 401 to the dashboard's fetch() would open the browser's own password dialog over the page. */
    if (!tc_http_basic_auth_ok(req, app->admin, app->admin_pass)) {
        return respond_text(req, 403, "wrong credentials: the admin user and password\n");
    }
    if (app->h.stopping || app->stop_timer) {
        return respond_text(req, 409, "already stopping\n");
    }
    /* The answer goes first; the owner hears of it from a timer, outside this handler of the server it may stop. */
    int rc = tc_timer_start(app->loop, 0, stop_request_fire, app, &app->stop_timer);
    if (rc != TC_OK) {
        return respond_text(req, 503, "out of memory\n");
    }
    return respond_text(req, 202, "stopping\n");
}

/* The demo MJPEG stream: frame k is due at ceil(k * 1000 / fps) ms of the loop's clock, the same instants for every
 * viewer; a viewer that is not ready at an instant skips that frame instead of queueing it. Rearming for the next
 * instant (rather than "period ms from now") keeps the rate at exactly fps with no drift, and lets a viewer tell
 * when each frame was due. */
static int64_t stream_produce(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    uint64_t fps = app->cfg.stream_fps == 0 ? 10 : app->cfg.stream_fps > 1000 ? 1000 : app->cfg.stream_fps;
    if (app->streams_paused) {
        return TC_HTTP_STREAM_END;
    }
    uint64_t now = tc_loop_now(app->loop);
    uint64_t tick = now * fps / 1000; /* the last instant at or before now: ceil(tick * 1000 / fps) <= now */
    if (tc_http_stream_ready(req)) {
        /* The frame shown follows the clock, so every viewer sees the same "camera" without per-viewer state. */
        const tc_demo_frame_t *f = &app->frames[tick % TC_DEMO_FRAME_COUNT];
        int rc = tc_http_stream_write(req, f->data, f->len);
        if (rc != TC_OK && rc != TC_ELIMIT) {
            return -2;
        }
    }
    uint64_t next = ((tick + 1) * 1000 + fps - 1) / fps; /* > now, so at least 1 ms ahead */
    return (int64_t)(next - now);
}

/* Retry-After of what is refused while an upload has the memory (streams, large static downloads). */
#define OTA_RETRY_AFTER_S 30

static int paused_answer(tc_http_req_t *req)
{
    char ra[12];
    snprintf(ra, sizeof(ra), "%u", (unsigned)OTA_RETRY_AFTER_S);
    tc_http_resp_header(req, "Retry-After", ra);
    return tc_http_respond(req, 503, "text/plain", "paused for a firmware update\n", 29);
}

static int page_stream(tc_http_req_t *req, void *user)
{
    if (((tc_app_t *)user)->streams_paused) {
        return paused_answer(req);
    }
    return tc_http_stream(req, TC_HTTP_STREAM_MJPEG, NULL, stream_produce, user);
}

static int64_t events_produce(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    if (app->streams_paused) {
        return TC_HTTP_STREAM_END;
    }
    char ev[64];
    int n = snprintf(ev, sizeof(ev), "{\"uptime_ms\":%llu}", (unsigned long long)tc_loop_now(app->loop));
    if (tc_http_stream_ready(req)) {
        tc_http_stream_write(req, ev, (size_t)n);
    }
    return app->cfg.events_ms ? app->cfg.events_ms : 1000; /* as /api/live: 0 would ask again at once, forever */
}

/* A chunked response written in several small pieces: with Nagle on, the second piece would wait for the client's
 * delayed ACK (40 ms on Linux, 200 ms on some stacks); the test of this route guards TCP_NODELAY. */
static int64_t chunks_produce(tc_http_req_t *req, void *user)
{
    (void)user;
    static const char *const pieces[] = {"{\"pieces\":[", "1,", "2,", "3]}\n"};
    for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        if (tc_http_stream_write(req, pieces[i], strlen(pieces[i])) != TC_OK) {
            return -2;
        }
    }
    return TC_HTTP_STREAM_END;
}

static int page_chunks(tc_http_req_t *req, void *user)
{
    return tc_http_stream(req, TC_HTTP_STREAM_CHUNKED, "application/json", chunks_produce, user);
}

static int page_events(tc_http_req_t *req, void *user)
{
    if (((tc_app_t *)user)->streams_paused) {
        return paused_answer(req);
    }
    return tc_http_stream(req, TC_HTTP_STREAM_SSE, NULL, events_produce, user);
}

/* ---- /api/upload: a request body taken in pieces ----
 *
 * The shape of an OTA sink without the flash: every piece goes into a running CRC-32 and a byte count, and the answer
 * reports both (a client checks them against what it sent). "?slow=MS" pauses after each piece for MS ms, as a flash
 * write would: the body then waits in the client's socket (TCP's window), not in the device's heap. */

typedef struct {
    tc_http_req_t *req;
    tc_timer_t *resume;
    uint32_t crc;
    uint32_t slow_ms;
} upload_t;

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static int64_t upload_resume(tc_timer_t *t, void *user)
{
    (void)t;
    upload_t *u = user;
    u->resume = NULL;
    tc_http_req_body_resume(u->req);
    return TC_TIMER_STOP;
}

static void upload_free(upload_t *u)
{
    if (u->resume) {
        tc_timer_cancel(u->resume);
    }
    tc_free(u);
}

static int upload_head(tc_http_req_t *req, void *user)
{
    tc_app_t *app = user;
    upload_t *u = tc_calloc(1, sizeof(*u));
    if (u == NULL) {
        return tc_http_respond(req, 503, "text/plain", "out of memory\n", 14);
    }
    u->req = req;
    const char *q = tc_http_req_query(req);
    const char *slow = strstr(q, "slow=");
    if (slow) {
        u->slow_ms = (uint32_t)strtoul(slow + 5, NULL, 10);
        if (u->slow_ms > 1000) {
            u->slow_ms = 1000;
        }
    }
    (void)app;
    tc_http_req_set_data(req, u);
    return TC_OK;
}

static int upload_body(tc_http_req_t *req, tc_http_body_event_t ev, const void *data, size_t len, void *user)
{
    tc_app_t *app = user;
    upload_t *u = tc_http_req_data(req);
    if (ev == TC_HTTP_BODY_DATA) {
        u->crc = crc32_update(u->crc, data, len);
        if (u->slow_ms && tc_timer_start(app->loop, u->slow_ms, upload_resume, u, &u->resume) == TC_OK) {
            return TC_HTTP_BODY_PAUSE;
        }
        return 0;
    }
    tc_http_req_set_data(req, NULL);
    if (ev == TC_HTTP_BODY_END) {
        char out[96];
        int n = snprintf(out, sizeof(out), "{\"bytes\":%llu,\"crc32\":%lu}\n", (unsigned long long)len,
                         (unsigned long)u->crc);
        upload_free(u);
        return tc_http_respond(req, 200, "application/json", out, (size_t)n);
    }
    upload_free(u); /* TC_HTTP_BODY_ABORT: the request is gone */
    return 0;
}

/* /api/echo: a buffered body (the route's own limit), answered with its length and CRC-32. */
static int echo_body(tc_http_req_t *req, void *user)
{
    (void)user;
    size_t len;
    const void *body = tc_http_req_body(req, &len);
    char out[96];
    int n = snprintf(out, sizeof(out), "{\"bytes\":%zu,\"crc32\":%lu}\n", len,
                     (unsigned long)crc32_update(0, body, len));
    return tc_http_respond(req, 200, "application/json", out, (size_t)n);
}

static void ws_echo(tc_ws_t *ws, tc_ws_event_t ev, const void *data, size_t len, void *user)
{
    (void)user;
    if (ev == TC_WS_EV_TEXT || ev == TC_WS_EV_BINARY) {
        tc_ws_send(ws, ev == TC_WS_EV_TEXT ? 1 : 2, data, len);
    }
}

/* The client echoes (tc_echo_cb) and the app remembers how its connection ended, for the stop report. */
static void app_client_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    tc_app_t *app = user;
    if (ev == TC_EV_CLOSE) {
        app->client_reason = (uint8_t)len;
    }
    tc_echo_cb(conn, ev, data, len, NULL);
}

/* /ws/all: every message goes to every client of the route (a chat, or one sensor feed to many dashboards). A
 * client whose queue is full misses the message rather than slowing the others. */
static void ws_all(tc_ws_t *ws, tc_ws_event_t ev, const void *data, size_t len, void *user)
{
    (void)ws;
    tc_app_t *app = user;
    if (ev == TC_WS_EV_TEXT || ev == TC_WS_EV_BINARY) {
        tc_ws_broadcast(app->http, "/ws/all", ev == TC_WS_EV_TEXT ? 1 : 2, data, len);
    }
}

/* ---- OTA (seed 003): the streams and the other servers make room for the image ----
 *
 * An upload's prepare ends the demo streams (producers end at their next call, new viewers get 503) and the large
 * static downloads (cut at once: each holds a file part and a socket queue like a viewer, and counts as a stream in
 * the prepare's report; new ones get 503, small files are still served); the status feed /api/live stays and is not
 * counted (it is how the dashboard shows the upload). It stops the echo server with the prepare deadline (its
 * listener closes: newcomers are refused; its sessions close, forced at the deadline) and asks the application's own
 * extra services to pause (tc_app_ota_hooks_t: esp_http_server on the chip). Writing starts when all of that is
 * done, or at the deadline. A failed upload brings everything back: the streams at once, the echo server on the same
 * port as soon as its stop has finished, the extras once they have reported paused. An app stop in the middle waits
 * for a pause in flight (its callback holds the app). */

static void app_part_done(tc_app_t *app);

static int count_streams(const tc_sock_info_t *s, void *user)
{
    if (s->role == TC_ROLE_STREAM || s->role == TC_ROLE_SSE) {
        (*(uint32_t *)user)++;
    }
    return 0;
}

static int echo_start(tc_app_t *app, uint16_t port)
{
    tc_server_config_t s = TC_SERVER_DEFAULT_CONFIG();
    s.host = app->cfg.host;
    s.port = port;
    s.cb = tc_echo_cb;
    s.name = "echo";
    /* Every echo connection is a live session (a device that echoes and reconnects): a newcomer over the limit is
     * refused, it never evicts one. */
    s.when_full = TC_FULL_REFUSE;
    if (app->cfg.echo_max_conns) {
        s.max_conns = app->cfg.echo_max_conns;
    }
    /* A quiet echo peer sends nothing, so nothing would ever find one that vanished: its slot would stay taken. */
    s.conn.keepalive_s = app->cfg.echo_keepalive_s ? (int)app->cfg.echo_keepalive_s : 60;
    return tc_server_start(app->loop, &s, &app->echo);
}

/* The echo server came back after a failed upload (or could not: its port was taken meanwhile). */
static void echo_resume(tc_app_t *app)
{
    app->echo_resume_rc = echo_start(app, app->echo_paused_port);
    if (app->echo_resume_rc != TC_OK) {
        app->echo = NULL;
    }
}

static void echo_paused(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    tc_app_t *app = user;
    app->echo_pausing = 0;
    app->ota_echo = *r;
    if (app->h.stopping) {
        app->parts[TC_APP_PART_ECHO] = *r; /* the app stopped meanwhile: this pause was its echo server's stop */
        app_part_done(app);
        return;
    }
    if (app->echo_resume_due) {
        app->echo_resume_due = 0;
        echo_resume(app);
    }
}

void tc_app_ota_paused(tc_app_t *app, const char *report)
{
    if (app == NULL || !app->extra_pausing) {
        return;
    }
    app->extra_pausing = 0;
    snprintf(app->extra_report, sizeof(app->extra_report), "%s", report ? report : "paused");
    if (app->h.stopping) {
        app_part_done(app);
        return;
    }
    if (app->extra_resume_due) {
        app->extra_resume_due = 0;
        app->cfg.ota_hooks.resume(app, app->cfg.ota_hooks.user);
    }
}

/* After the deadline, how long the wait still gives the echo server's stop and the extras' pause to report: they got
 * the same deadline and end at it by themselves, but their own deadline timers may run after this one's last tick. */
#define OTA_REPORT_GRACE_MS 1000

/* Every 10 ms until the streams are gone, the echo server stopped and the extras paused, or the deadline passed. The
 * streams waited for are the ones the prepare ends: the status feed (/api/live) is not among them. */
static int64_t ota_wait_services(tc_timer_t *t, void *user)
{
    (void)t;
    tc_app_t *app = user;
    uint32_t n = 0;
    tc_registry_foreach(app->loop, count_streams, &n);
    n = n > app->live_viewers ? n - app->live_viewers : 0;
    uint64_t now = tc_loop_now(app->loop);
    if (n > 0 && now < app->ota_deadline) {
        return 10;
    }
    if ((app->echo_pausing || app->extra_pausing) && now < app->ota_deadline + OTA_REPORT_GRACE_MS) {
        return 10;
    }
    app->ota_wait = NULL;
    char report[96];
    int len = snprintf(report, sizeof(report), "streams ended in %llu ms, %u left",
                       (unsigned long long)(now - app->ota_started), (unsigned)n);
    if (app->echo_paused_port && len > 0 && (size_t)len < sizeof(report)) {
        len += snprintf(report + len, sizeof(report) - (size_t)len, "; echo %s (%u closed, %u forced)",
                        app->echo_pausing ? "stopping" : "stopped", (unsigned)app->ota_echo.graceful,
                        (unsigned)app->ota_echo.forced);
    }
    if (app->cfg.ota_hooks.pause && len > 0 && (size_t)len < sizeof(report)) {
        snprintf(report + len, sizeof(report) - (size_t)len, "; %s", app->extra_pausing ? "extras still pausing"
                                                                                           : app->extra_report);
    }
    tc_ota_prepared(app->ota, TC_OK, report);
    return TC_TIMER_STOP;
}

static int app_ota_prepare(tc_ota_t *ota, uint32_t deadline_ms, void *user)
{
    (void)ota;
    tc_app_t *app = user;
    app->streams_paused = 1;
    tc_http_static_pause(app->files, 1, OTA_RETRY_AFTER_S);
    app->ota_started = tc_loop_now(app->loop);
    app->ota_deadline = app->ota_started + deadline_ms;
    memset(&app->ota_echo, 0, sizeof(app->ota_echo));
    app->echo_resume_due = 0;
    app->extra_resume_due = 0;
    if (app->echo && !app->echo_pausing) {
        tc_server_t *echo = app->echo;
        app->echo_paused_port = tc_server_port(echo);
        app->echo = NULL;
        app->echo_pausing = 1;
        if (tc_handle_stop(tc_server_handle(echo), deadline_ms, echo_paused, app) != TC_OK) {
            app->echo_pausing = 0; /* already stopping: nothing of ours to wait for */
        }
    }
    if (app->cfg.ota_hooks.pause && !app->extra_pausing && !app->extra_paused) {
        app->extra_pausing = 1;
        app->extra_paused = 1;
        app->extra_report[0] = '\0';
        if (app->cfg.ota_hooks.pause(app, deadline_ms, app->cfg.ota_hooks.user) != TC_OK) {
            app->extra_pausing = 0;
            app->extra_paused = 0;
            snprintf(app->extra_report, sizeof(app->extra_report), "extras could not pause");
        }
    }
    if (app->ota_wait == NULL) {
        return tc_timer_start(app->loop, 0, ota_wait_services, app, &app->ota_wait);
    }
    return TC_OK;
}

static void app_ota_resume(tc_ota_t *ota, void *user)
{
    (void)ota;
    tc_app_t *app = user;
    app->streams_paused = 0;
    tc_http_static_pause(app->files, 0, 0);
    if (app->ota_wait) {
        tc_timer_cancel(app->ota_wait);
        app->ota_wait = NULL;
    }
    if (app->h.stopping) {
        return; /* the upload failed because the app is stopping: nothing comes back */
    }
    if (app->echo_paused_port && app->echo == NULL) {
        if (app->echo_pausing) {
            app->echo_resume_due = 1; /* its stop is still under way: back once it has finished */
        } else {
            echo_resume(app);
        }
    }
    if (app->extra_paused) {
        app->extra_paused = 0;
        if (app->extra_pausing) {
            app->extra_resume_due = 1;
        } else {
            app->cfg.ota_hooks.resume(app, app->cfg.ota_hooks.user);
        }
    }
}

static int app_ota_attach(tc_app_t *app, const tc_app_config_t *cfg)
{
    tc_ota_sink_t sink;
    if (cfg->ota_sink) {
        sink = *cfg->ota_sink;
    } else if (cfg->ota_dir) {
        size_t n = strlen(cfg->ota_dir) + 1;
        app->ota_dir = tc_malloc(n);
        if (app->ota_dir == NULL) {
            return TC_ENOMEM;
        }
        memcpy(app->ota_dir, cfg->ota_dir, n);
        int rc = tc_ota_file_sink_init(&sink, app->ota_dir);
        if (rc != TC_OK) {
            return rc;
        }
    } else {
        return TC_OK;
    }
    tc_ota_config_t oc = TC_OTA_DEFAULT_CONFIG();
    oc.max_size = cfg->ota_max;
    oc.prepare = app_ota_prepare;
    oc.resume = app_ota_resume;
    oc.user = app;
    oc.auth_user = app->admin; /* the one admin credential (tc_ota copies it) */
    oc.auth_pass = app->admin_pass;
    return tc_ota_attach(app->http, "/api/ota", &sink, &oc, &app->ota);
}

/* ---- padded stream frames ---- */

/* Write len (>= 4) bytes of COM segments (FF FE, length incl. itself, at most 65535) at out. */
static void put_com_segments(uint8_t *out, size_t len)
{
    const size_t seg_max = 65535 + 2; /* marker + the largest length field */
    while (len > 0) {
        size_t seg = len > seg_max ? seg_max : len;
        if (len > seg_max && len - seg < 4) {
            seg = len - 4; /* leave at least a whole empty segment (4 bytes) for the last one */
        }
        size_t field = seg - 2;
        out[0] = 0xFF;
        out[1] = 0xFE;
        out[2] = (uint8_t)(field >> 8);
        out[3] = (uint8_t)(field & 0xFF);
        memset(out + 4, 0, seg - 4);
        out += seg;
        len -= seg;
    }
}

/* TC_OK when every demo frame can be padded to size (0: no padding asked), TC_EINVAL otherwise. */
static int frame_size_check(uint32_t size)
{
    if (size > TC_APP_STREAM_FRAME_MAX) {
        return TC_EINVAL;
    }
    for (size_t i = 0; size != 0 && i < TC_DEMO_FRAME_COUNT; i++) {
        const tc_demo_frame_t *f = &tc_demo_frames[i];
        if (f->len < 4 || f->len > size || f->data[0] != 0xFF || f->data[1] != 0xD8) {
            return TC_EINVAL;
        }
    }
    return TC_OK;
}

/* The stream's frames: the demo frames as they are, or (size set, checked by frame_size_check()) padded copies of
 * exactly that size that stay valid JPEGs (SOI, the padding, the original after its SOI, EOI last). */
static int frames_build(tc_app_t *app, uint32_t size)
{
    for (size_t i = 0; i < TC_DEMO_FRAME_COUNT; i++) {
        app->frames[i] = tc_demo_frames[i];
    }
    if (size == 0) {
        return TC_OK;
    }
    app->frames_buf = tc_malloc((size_t)TC_DEMO_FRAME_COUNT * size);
    if (app->frames_buf == NULL) {
        return TC_ENOMEM;
    }
    for (size_t i = 0; i < TC_DEMO_FRAME_COUNT; i++) {
        const tc_demo_frame_t *src = &tc_demo_frames[i];
        uint8_t *dst = app->frames_buf + i * (size_t)size;
        size_t pad = (size_t)size - src->len;
        dst[0] = 0xFF; /* SOI */
        dst[1] = 0xD8;
        if (pad >= 4) {
            put_com_segments(dst + 2, pad);
        } else {
            memset(dst + 2, 0xFF, pad); /* fill bytes before the next marker's FF: too few for a COM segment */
        }
        memcpy(dst + 2 + pad, src->data + 2, src->len - 2);
        app->frames[i].data = dst;
        app->frames[i].len = size;
    }
    return TC_OK;
}

/* ---- lifetime ---- */

static void app_stop(tc_handle_t *h, uint32_t deadline_ms);
static void app_stop_sooner(tc_handle_t *h, uint32_t deadline_ms);
static const tc_handle_ops_t app_ops = {TC_HANDLE_APP, app_stop, app_stop_sooner};

static void app_free(tc_app_t *app)
{
    if (app->ota_wait) {
        tc_timer_cancel(app->ota_wait);
    }
    tc_ota_free(app->ota); /* after the HTTP server: no upload is in flight */
    tc_http_static_free(app->files);
    tc_http_cors_free(app->cors);
    tc_free(app->ota_dir);
    tc_free((char *)app->cfg.connect_host);
    tc_free((char *)app->cfg.host);
    if (app->admin) {
        /* the password does not linger in freed heap */
        memset(app->admin, 0, strlen(app->admin) + 1 + strlen(app->admin_pass) + 1);
        tc_free(app->admin);
    }
    tc_free(app->frames_buf);
    tc_free(app);
}

int tc_app_start(tc_loop_t *loop, const tc_app_config_t *cfg, tc_app_t **out)
{
    if (loop == NULL || cfg == NULL || out == NULL) {
        return TC_EINVAL;
    }
    if (cfg->connect_host && cfg->connect_port == 0) {
        return TC_EBADPORT;
    }
    tc_app_t *app = tc_calloc(1, sizeof(*app));
    if (app == NULL) {
        return TC_ENOMEM;
    }
    app->loop = loop;
    tc__handle_init(&app->h, &app_ops, loop);
    app->cfg = *cfg;
    app->cfg.connect_host = NULL;
    app->cfg.admin_user = NULL; /* kept in app->admin */
    app->cfg.admin_pass = NULL;
    app->started = tc_loop_now(loop);
    int rc = TC_OK;
    if (cfg->admin_pass && cfg->admin_pass[0]) {
        const char *user = cfg->admin_user ? cfg->admin_user : "admin";
        size_t ul = strlen(user), pl = strlen(cfg->admin_pass);
        app->admin = tc_malloc(ul + pl + 2);
        if (app->admin == NULL) {
            app_free(app);
            return TC_ENOMEM;
        }
        memcpy(app->admin, user, ul + 1);
        memcpy(app->admin + ul + 1, cfg->admin_pass, pl + 1);
        app->admin_pass = app->admin + ul + 1;
    }
    app->cfg.host = NULL;
    if (cfg->host) { /* kept: the echo server restarts on it after an OTA pause */
        size_t hl = strlen(cfg->host);
        char *h = tc_malloc(hl + 1);
        if (h == NULL) {
            app_free(app);
            return TC_ENOMEM;
        }
        memcpy(h, cfg->host, hl + 1);
        app->cfg.host = h;
    }
    if (cfg->connect_host) {
        size_t hl = strlen(cfg->connect_host);
        char *h = tc_malloc(hl + 1);
        if (h == NULL) {
            app_free(app);
            return TC_ENOMEM;
        }
        memcpy(h, cfg->connect_host, hl + 1);
        app->cfg.connect_host = h;
    }
    if (cfg->echo_port > 65535 || cfg->http_port > 65535) {
        app_free(app);
        return TC_EINVAL;
    }
    /* Checked even without the HTTP service; the padded frames are only built for it. */
    rc = frame_size_check(cfg->stream_frame_bytes);
    if (rc == TC_OK) {
        rc = frames_build(app, cfg->http_port >= 0 ? cfg->stream_frame_bytes : 0);
    }
    if (rc != TC_OK) {
        app_free(app);
        return rc;
    }
    if (cfg->echo_port >= 0) {
        rc = echo_start(app, (uint16_t)cfg->echo_port);
    }
    if (rc == TC_OK && cfg->http_port >= 0 && cfg->cors_origins) {
        tc_http_cors_config_t cc = TC_HTTP_CORS_DEFAULT_CONFIG();
        cc.origins = cfg->cors_origins;
        cc.methods = "GET";
        cc.headers = "Content-Type, Authorization";
        rc = tc_http_cors_new(&cc, &app->cors);
    }
    if (rc == TC_OK && cfg->http_port >= 0) {
        tc_http_config_t h = TC_HTTP_DEFAULT_CONFIG();
        h.host = cfg->host;
        h.port = (uint16_t)cfg->http_port;
        h.max_conns = cfg->http_max_conns ? cfg->http_max_conns : 16;
        if (cfg->http_idle_timeout_ms) {
            h.idle_timeout_ms = cfg->http_idle_timeout_ms;
        }
        if (cfg->http_head_timeout_ms) {
            h.head_timeout_ms = cfg->http_head_timeout_ms;
        }
        if (cfg->ws_max_message) {
            h.ws_max_message = cfg->ws_max_message;
        }
        if (cfg->http_body_min_rate) {
            h.body_min_rate = cfg->http_body_min_rate == TC_APP_NO_RATE ? 0 : cfg->http_body_min_rate;
        }
        if (cfg->http_body_grace_ms) {
            h.body_grace_ms = cfg->http_body_grace_ms;
        }
        h.ws_ping_ms = cfg->ws_ping_ms ? cfg->ws_ping_ms : h.ws_ping_ms;
        h.ws_pong_timeout_ms = cfg->ws_pong_timeout_ms ? cfg->ws_pong_timeout_ms : h.ws_pong_timeout_ms;
        h.sse_heartbeat_ms = cfg->sse_heartbeat_ms ? cfg->sse_heartbeat_ms : h.sse_heartbeat_ms;
        if (cfg->stream_sndbuf) {
            h.stream_sndbuf = cfg->stream_sndbuf == TC_APP_STACK_SNDBUF ? 0 : cfg->stream_sndbuf;
        }
        h.cors = app->cors; /* server-wide: every route of the service, preflights answered */
        rc = tc_http_start(loop, &h, &app->http);
        if (rc == TC_OK) {
            tc_http_route(app->http, TC_HTTP_GET, "/", page_index, app);
            tc_http_route(app->http, TC_HTTP_GET, "/api/status", api_status, app); /* CORS: the server's */
            tc_http_route(app->http, TC_HTTP_GET, "/api/live", page_live, app);
            tc_http_route(app->http, TC_HTTP_POST, "/api/stop", api_stop, app);
            tc_http_route(app->http, TC_HTTP_GET, "/stream", page_stream, app);
            tc_http_route(app->http, TC_HTTP_GET, "/events", page_events, app);
            tc_http_route(app->http, TC_HTTP_GET, "/api/chunks", page_chunks, app);
            tc_http_route_body(app->http, TC_HTTP_POST | TC_HTTP_PUT, "/api/upload", cfg->upload_max, upload_head,
                               upload_body, app);
            tc_http_route_body(app->http, TC_HTTP_POST | TC_HTTP_PUT, "/api/echo", 0, echo_body, NULL, app);
            rc = tc_http_ws_route(app->http, "/ws", ws_echo, app);
            rc = rc == TC_OK ? tc_http_ws_route(app->http, "/ws/all", ws_all, app) : rc;
            rc = rc == TC_OK ? app_ota_attach(app, cfg) : rc;
            if (rc == TC_OK && cfg->static_dir) {
                tc_http_static_config_t sc = TC_HTTP_STATIC_DEFAULT_CONFIG();
                sc.root = cfg->static_dir;
                rc = tc_http_static_attach(app->http, "/*", &sc, &app->files); /* last: the service's routes win */
            }
        }
    }
    const char *answer = cfg->dns_answer ? cfg->dns_answer : cfg->host;
    if (rc == TC_OK && app->http && cfg->captive != TC_CAPTIVE_OFF) {
        char url[96];
        const char *ph = cfg->portal_host ? cfg->portal_host : answer;
        if (cfg->http_port == 80 || cfg->http_port < 0) {
            snprintf(url, sizeof(url), "http://%s/", ph);
        } else {
            snprintf(url, sizeof(url), "http://%s:%u/", ph, (unsigned)tc_http_port(app->http));
        }
        tc_captive_config_t cc = TC_CAPTIVE_DEFAULT_CONFIG();
        cc.mode = cfg->captive;
        cc.portal_url = url;
        cc.device_host = ph;
        rc = tc_captive_attach(app->http, &cc);
    }
    if (rc == TC_OK && cfg->dns_port >= 0) {
        /* Windows checks dns.msftncsi.com's address in online mode; every other name is the device. */
        static const tc_dns_override_t online[] = {{.name = "dns.msftncsi.com", .ipv4 = {131, 107, 255, 255}}};
        tc_dns_server_config_t d = TC_DNS_SERVER_DEFAULT_CONFIG();
        d.bind_ip = cfg->host;
        d.port = (uint16_t)cfg->dns_port;
        d.answer_ip = answer;
        if (cfg->captive == TC_CAPTIVE_ONLINE) {
            d.overrides = online;
            d.noverrides = 1;
        }
        rc = cfg->dns_port > 65535 ? TC_EINVAL : tc_dns_server_start(loop, &d, &app->dns);
    }
    if (rc == TC_OK && app->cfg.connect_host) {
        tc_client_config_t c = TC_CLIENT_DEFAULT_CONFIG();
        c.host = app->cfg.connect_host;
        c.port = cfg->connect_port;
        c.cb = app_client_cb;
        c.user = app;
        c.name = "client";
        /* It echoes and sends nothing of its own: only the keepalive probes (on by default for a client) find a
         * peer gone without a FIN; echo_keepalive_s times them like the echo server's. */
        if (app->cfg.echo_keepalive_s) {
            c.conn.keepalive_s = (int)app->cfg.echo_keepalive_s;
        }
        rc = tc_client_start(loop, &c, &app->client);
    }
    if (rc != TC_OK) {
        /* Undo what started: nothing is left running after an error. */
        tc_handle_stop(tc_server_handle(app->echo), 0, NULL, NULL);
        tc_handle_stop(tc_http_handle(app->http), 0, NULL, NULL);
        tc_dns_server_stop(app->dns);
        app_free(app);
        return rc;
    }
    *out = app;
    return TC_OK;
}

uint16_t tc_app_echo_port(const tc_app_t *app)
{
    return app->echo ? tc_server_port(app->echo) : 0;
}

uint16_t tc_app_dns_port(const tc_app_t *app)
{
    return app->dns ? tc_dns_server_port(app->dns) : 0;
}

uint16_t tc_app_http_port(const tc_app_t *app)
{
    return app->http ? tc_http_port(app->http) : 0;
}

tc_http_t *tc_app_http(const tc_app_t *app)
{
    return app->http;
}

tc_ota_t *tc_app_ota(const tc_app_t *app)
{
    return app->ota;
}

int tc_app_console_ota(char *buf, size_t cap, void *app)
{
    const tc_app_t *a = app;
    if (a == NULL || a->ota == NULL) {
        return snprintf(buf, cap, "ota: no firmware upload route (no sink configured)\n");
    }
    return tc_ota_progress_line(a->ota, buf, cap);
}

tc_client_t *tc_app_client(const tc_app_t *app)
{
    return app->client;
}

static void app_release(tc_handle_t *h)
{
    app_free((tc_app_t *)h);
}

/* One service has stopped; the last one completes the app's stop with the sum of theirs. */
static void app_part_done(tc_app_t *app)
{
    if (--app->pending > 0) {
        return;
    }
    tc_stop_report_t *r = &app->h.report;
    for (int i = 0; i < TC_APP_PART_COUNT; i++) {
        const tc_stop_report_t *p = &app->parts[i];
        r->graceful += p->graceful;
        r->forced += p->forced;
        r->requests_finished += p->requests_finished;
        r->streams_ended += p->streams_ended;
        r->websockets_closed += p->websockets_closed;
    }
    r->nparts = TC_APP_PART_COUNT;
    r->parts = app->parts;
    tc__handle_finish(&app->h, app_release);
}

static void part_stopped(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    tc_app_t *app = user;
    int i = r->kind == TC_HANDLE_SERVER   ? TC_APP_PART_ECHO
            : r->kind == TC_HANDLE_HTTP   ? TC_APP_PART_HTTP
            : r->kind == TC_HANDLE_CLIENT ? TC_APP_PART_CLIENT
                                          : TC_APP_PART_DNS;
    app->parts[i] = *r;
    if (i == TC_APP_PART_CLIENT) {
        app->client = NULL;
    }
    app_part_done(app);
}

/* tc_handle_stop() of the app: every service with the one deadline. */
static void app_stop(tc_handle_t *h, uint32_t deadline_ms)
{
    tc_app_t *app = (tc_app_t *)h;
    memset(app->parts, 0, sizeof(app->parts));
    if (app->stop_timer) {
        tc_timer_cancel(app->stop_timer); /* the app is freed at the end of the stop */
        app->stop_timer = NULL;
    }
    app->pending = 1; /* held until every service is asked, so none can finish the stop early */
    if (app->echo) {
        app->pending++;
        tc_handle_stop(tc_server_handle(app->echo), deadline_ms, part_stopped, app);
    }
    /* An OTA pause in flight ends as this stop's part (echo_paused(), tc_app_ota_paused()). */
    app->pending += (app->echo_pausing ? 1 : 0) + (app->extra_pausing ? 1 : 0);
    if (app->http) {
        app->pending++;
        tc_handle_stop(tc_http_handle(app->http), deadline_ms, part_stopped, app);
    }
    if (app->dns) {
        app->pending++;
        tc_handle_stop(tc_dns_server_handle(app->dns), deadline_ms, part_stopped, app); /* UDP: done at once */
        app->dns = NULL;
    }
    if (app->client) {
        app->pending++;
        /* Peer-first waits for a FIN that a raw TCP remote has no reason to send: reset at the deadline. */
        tc_handle_stop(tc_client_handle(app->client), deadline_ms, part_stopped, app);
    }
    app_part_done(app);
}

/* Each service still stopping gets the sooner deadline (a part's report is filled when it has finished). */
static void app_stop_sooner(tc_handle_t *h, uint32_t deadline_ms)
{
    tc_app_t *app = (tc_app_t *)h;
    if (app->echo && app->parts[TC_APP_PART_ECHO].kind == 0) {
        tc_handle_stop_sooner(tc_server_handle(app->echo), deadline_ms);
    }
    if (app->http && app->parts[TC_APP_PART_HTTP].kind == 0) {
        tc_handle_stop_sooner(tc_http_handle(app->http), deadline_ms);
    }
    if (app->client) {
        tc_handle_stop_sooner(tc_client_handle(app->client), deadline_ms);
    }
}

tc_handle_t *tc_app_handle(tc_app_t *app)
{
    return app ? &app->h : NULL;
}
