/*
 * tc_console.c - the console commands (see tc_console.h): a tokenizer, four commands and a bounded text writer.
 */
#include "tc_console.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tc_addr.h"
#include "tc_alloc.h"
#include "tc_backend.h"
#include "tc_err.h"
#include "tc_port.h"
#include "tc_registry.h"

/* ---- bounded text writer: keeps what fits, marks a cut with "...\n" ---- */

typedef struct {
    char *buf;
    size_t cap, len;
    int cut;
} out_t;

static void out_init(out_t *o, char *buf, size_t cap)
{
    o->buf = buf;
    o->cap = cap;
    o->len = 0;
    o->cut = 0;
    if (cap > 0) {
        buf[0] = '\0';
    }
}

static void oput(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void oput(out_t *o, const char *fmt, ...)
{
    if (o->cut || o->cap == 0) {
        o->cut = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        o->len = o->cap - 1; /* vsnprintf kept what fitted */
        o->cut = 1;
        return;
    }
    o->len += (size_t)n;
}

/* Append text some other writer produced (snprintf-style length n) into the free space already written. */
static void out_took(out_t *o, int n)
{
    if (n < 0 || o->cap == 0) {
        return;
    }
    size_t room = o->cap - o->len;
    if ((size_t)n >= room) {
        o->len = o->cap - 1;
        o->cut = 1;
        o->buf[o->len] = '\0';
    } else {
        o->len += (size_t)n;
    }
}

static int out_end(out_t *o)
{
    if (o->cut && o->cap >= 5) {
        memcpy(o->buf + o->cap - 5, "...\n", 5);
        o->len = o->cap - 1;
    }
    return (int)o->len;
}

/* ---- status (loop thread) ---- */

static int status_line(const tc_sock_info_t *s, void *user)
{
    out_t *o = user;
    char local[TC_ADDR_STRLEN] = "", peer[TC_ADDR_STRLEN] = "";
    if (s->local.family) {
        tc_addr_format(&s->local, 1, local, sizeof(local));
    }
    if (s->peer.family) {
        tc_addr_format(&s->peer, 1, peer, sizeof(peer));
    }
    oput(o, "  #%" PRIu32 " %s %s %s", s->id, tc_kind_name(s->kind), tc_state_name(s->state),
         s->owner ? s->owner : "-");
    if (local[0]) {
        oput(o, " %s", local);
    }
    if (peer[0]) {
        oput(o, "%s%s", local[0] ? " <- " : " ", peer);
    }
    if (s->kind != TC_KIND_LISTENER) {
        oput(o, " age %" PRIu64 ".%" PRIu64 "s idle %" PRIu64 ".%" PRIu64 "s in %" PRIu64 " out %" PRIu64 " queued %zu",
             s->age_ms / 1000, s->age_ms % 1000 / 100, s->idle_ms / 1000, s->idle_ms % 1000 / 100, s->bytes_in,
             s->bytes_out, s->queued);
    }
    oput(o, "%s%s\n", (s->flags & TC_REG_FLAG_STREAMING) ? " streaming" : "",
         (s->flags & TC_REG_FLAG_PAUSED) ? " paused" : "");
    return o->cut; /* stop visiting once the text is full */
}

static void status_into(const tc_loop_t *loop, out_t *o)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    oput(o, "sockets: %" PRIu32 " (backend %s), tcp_core heap: %zu bytes in %zu blocks, peak %zu\n",
         tc_registry_count(loop), tc_sock_backend(), st.bytes_in_use, st.blocks_in_use, st.bytes_peak);
    tc_registry_foreach(loop, status_line, o);
}

int tc_console_status(const tc_loop_t *loop, char *out, size_t cap)
{
    if (loop == NULL || out == NULL) {
        return TC_EINVAL;
    }
    out_t o;
    out_init(&o, out, cap);
    status_into(loop, &o);
    return out_end(&o);
}

/* `status` from another thread: the loop writes into the request's own buffer and sets its event, the caller
 * waits for the event. Both hold a reference and whoever lets go last frees the request, so a caller that gave up
 * (the loop was busy or stopped) leaves nothing dangling and a late answer writes into memory still owned. */
typedef struct {
    tc_port_event_t done;
    int refs; /* atomic */
    int len;
    int sockets;                /* `status`: the registry after the OTA line; `ota`: the OTA line only */
    tc_console_loop_info_cb ota; /* copied from the config: the caller may be gone when the loop runs this */
    void *ota_user;
    size_t cap;
    char buf[];
} status_req_t;

static void status_req_release(status_req_t *r)
{
    if (__atomic_sub_fetch(&r->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        tc_port_event_destroy(&r->done);
        tc_free(r);
    }
}

static void status_post_cb(tc_loop_t *loop, void *user)
{
    status_req_t *r = user;
    out_t o;
    out_init(&o, r->buf, r->cap);
    if (r->ota) {
        int n = r->ota(o.buf, o.cap, r->ota_user);
        if (n < 0) {
            oput(&o, "ota: %s\n", tc_strerror(n));
        } else {
            out_took(&o, n);
        }
    } else if (!r->sockets) {
        oput(&o, "ota: no firmware upload route on this build\n");
    }
    if (r->sockets) {
        status_into(loop, &o);
    }
    r->len = out_end(&o);
    tc_port_event_set(&r->done); /* publishes len and buf to a waiter that sees the event */
    status_req_release(r);
}

static int status_from_thread(const tc_console_config_t *cfg, out_t *o, int sockets)
{
    size_t cap = o->cap - o->len;
    if (cap < 2) {
        o->cut = 1;
        return TC_OK;
    }
    status_req_t *r = tc_malloc(sizeof(*r) + cap);
    if (r == NULL || tc_port_event_init(&r->done) != TC_OK) {
        tc_free(r);
        oput(o, "status: %s\n", tc_strerror(TC_ENOMEM));
        return TC_ENOMEM;
    }
    r->refs = 2;
    r->len = 0;
    r->cap = cap;
    r->sockets = sockets;
    r->ota = cfg->ota;
    r->ota_user = cfg->ota_user;
    int rc = tc_loop_post(cfg->loop, status_post_cb, r);
    if (rc == TC_ENOMEM) {
        r->refs = 1; /* never posted: the loop holds no reference */
        status_req_release(r);
        oput(o, "status: %s\n", tc_strerror(rc));
        return rc;
    }
    if (!tc_port_event_wait(&r->done, cfg->loop_wait_ms)) {
        status_req_release(r); /* the loop frees it when it finally runs the post */
        oput(o, "status: the loop did not answer within %" PRIu32 " ms (is it running? not on its own thread?)\n",
             cfg->loop_wait_ms);
        return TC_ETIMEDOUT;
    }
    if (r->len < 0) {
        int err = r->len;
        status_req_release(r);
        oput(o, "status: %s\n", tc_strerror(err));
        return err;
    }
    memcpy(o->buf + o->len, r->buf, (size_t)r->len + 1);
    out_took(o, r->len);
    if (r->len >= 4 && (size_t)r->len + 1 >= cap && memcmp(r->buf + r->len - 4, "...\n", 4) == 0) {
        o->cut = 1;
    }
    status_req_release(r);
    return TC_OK;
}

/* ---- commands ---- */

static const tc_console_cmd_t k_cmds[] = {
    {"status", "", "List the device's sockets (the tcp_core registry) and its state."},
    {"wifi", "<ssid> [password]", "Store Wi-Fi station credentials and reconnect with them."},
    {"ota-prepare", "[deadline_ms]", "Stop every server within the deadline (3000 ms) and report the heap freed."},
    {"ota", "", "Show the firmware upload's progress (bytes, percent, rate, time left) or its last result."},
    {"help", "", "List the commands."},
};

const tc_console_cmd_t *tc_console_commands(size_t *count)
{
    *count = sizeof(k_cmds) / sizeof(k_cmds[0]);
    return k_cmds;
}

static int fail(out_t *o, int rc, const char *cmd, const char *why)
{
    oput(o, "%s: %s\n", cmd, why ? why : tc_strerror(rc));
    return rc;
}

static int cmd_help(out_t *o)
{
    for (size_t i = 0; i < sizeof(k_cmds) / sizeof(k_cmds[0]); i++) {
        oput(o, "%-12s %-20s %s\n", k_cmds[i].name, k_cmds[i].args, k_cmds[i].help);
    }
    return TC_OK;
}

static int cmd_status(const tc_console_config_t *cfg, out_t *o)
{
    if (cfg->info) {
        size_t room = o->cap - o->len;
        if (room > 1) {
            int n = cfg->info(o->buf + o->len, room, cfg->user);
            out_took(o, n);
        } else {
            o->cut = 1;
        }
    }
    if (cfg->loop == NULL) {
        oput(o, "sockets: no loop\n");
        return TC_OK;
    }
    return status_from_thread(cfg, o, 1);
}

static int cmd_ota_progress(const tc_console_config_t *cfg, out_t *o)
{
    if (cfg->loop == NULL || cfg->ota == NULL) {
        oput(o, "ota: no firmware upload route on this build\n");
        return TC_OK;
    }
    return status_from_thread(cfg, o, 0);
}

static int is_hex(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static int cmd_wifi(const tc_console_config_t *cfg, int argc, char *const argv[], out_t *o)
{
    if (argc < 2 || argc > 3) {
        return fail(o, TC_EINVAL, "wifi", "usage: wifi <ssid> [password]");
    }
    const char *ssid = argv[1];
    const char *pass = argc == 3 ? argv[2] : "";
    size_t sl = strlen(ssid), pl = strlen(pass);
    if (sl == 0 || sl > 32) {
        return fail(o, TC_EINVAL, "wifi", "the SSID must be 1 to 32 bytes");
    }
    /* IEEE 802.11i: a WPA2 passphrase has 8 to 63 characters; 64 characters are the raw PSK in hex. */
    if (pl != 0 && (pl < 8 || pl > 64 || (pl == 64 && !is_hex(pass)))) {
        return fail(o, TC_EINVAL, "wifi", "the password must be empty, 8 to 63 characters, or 64 hex digits");
    }
    if (cfg->wifi == NULL) {
        return fail(o, TC_ENOSYS, "wifi", "no Wi-Fi on this build");
    }
    int rc = cfg->wifi(ssid, pass, cfg->user);
    if (rc < 0) {
        oput(o, "wifi: not stored: %s\n", tc_strerror(rc));
        return rc;
    }
    oput(o, "wifi: credentials for \"%s\" stored (%s), connecting\n", ssid, pl ? "with password" : "open network");
    return TC_OK;
}

static int parse_ms(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    if (*s == '\0') {
        return TC_EINVAL;
    }
    for (; *s; s++) {
        if (*s < '0' || *s > '9') {
            return TC_EINVAL;
        }
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > TC_CONSOLE_OTA_DEADLINE_MAX_MS) {
            return TC_EINVAL;
        }
    }
    if (v == 0) {
        return TC_EINVAL;
    }
    *out = (uint32_t)v;
    return TC_OK;
}

static int cmd_ota(const tc_console_config_t *cfg, int argc, char *const argv[], out_t *o)
{
    uint32_t deadline = TC_CONSOLE_OTA_DEADLINE_MS;
    if (argc > 2 || (argc == 2 && parse_ms(argv[1], &deadline) != TC_OK)) {
        return fail(o, TC_EINVAL, "ota-prepare", "usage: ota-prepare [deadline_ms], 1 to 600000");
    }
    if (cfg->ota_prepare == NULL) {
        return fail(o, TC_ENOSYS, "ota-prepare", "not available on this build");
    }
    tc_console_ota_result_t res;
    memset(&res, 0, sizeof(res));
    int rc = cfg->ota_prepare(deadline, &res, cfg->user);
    if (rc < 0) {
        oput(o, "ota-prepare: failed: %s\n", tc_strerror(rc));
        return rc;
    }
    oput(o,
         "ota-prepare: servers stopped in %" PRIu32 " ms (deadline %" PRIu32 " ms): %" PRIu32 " closed, %" PRIu32
         " forced; heap freed %" PRId64 " bytes\n",
         res.elapsed_ms, deadline, res.graceful, res.forced, res.heap_freed);
    return TC_OK;
}

int tc_console_exec_argv(const tc_console_config_t *cfg, int argc, char *const argv[], char *out, size_t cap)
{
    if (out == NULL && cap > 0) {
        return TC_EINVAL;
    }
    out_t o;
    out_init(&o, out, cap);
    if (cfg == NULL || argc < 1 || argv == NULL || argv[0] == NULL) {
        oput(&o, "console: %s\n", tc_strerror(TC_EINVAL));
        out_end(&o);
        return TC_EINVAL;
    }
    int rc;
    const char *cmd = argv[0];
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "?") == 0) {
        rc = cmd_help(&o);
    } else if (strcmp(cmd, "status") == 0) {
        rc = argc == 1 ? cmd_status(cfg, &o) : fail(&o, TC_EINVAL, "status", "usage: status");
    } else if (strcmp(cmd, "wifi") == 0) {
        rc = cmd_wifi(cfg, argc, argv, &o);
    } else if (strcmp(cmd, "ota") == 0) {
        rc = argc == 1 ? cmd_ota_progress(cfg, &o) : fail(&o, TC_EINVAL, "ota", "usage: ota");
    } else if (strcmp(cmd, "ota-prepare") == 0) {
        rc = cmd_ota(cfg, argc, argv, &o);
    } else {
        oput(&o, "%s: unknown command (try help)\n", cmd);
        rc = TC_ENOTFOUND;
    }
    int len = out_end(&o);
    return rc < 0 ? rc : len;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int tc_console_quote(const char *arg, char *out, size_t cap)
{
    if (!arg || (!out && cap > 0)) {
        return TC_EINVAL;
    }
    int plain = arg[0] != '\0';
    for (const char *c = arg; *c && plain; c++) {
        plain = !is_blank(*c) && *c != '"' && *c != '\\';
    }
    size_t n = 0;
#define PUT(ch)             \
    do {                    \
        if (n + 1 < cap) {  \
            out[n] = (ch);  \
        }                   \
        n++;                \
    } while (0)
    if (!plain) {
        PUT('"');
    }
    for (const char *c = arg; *c; c++) {
        if (!plain && (*c == '"' || *c == '\\')) {
            PUT('\\');
        }
        PUT(*c);
    }
    if (!plain) {
        PUT('"');
    }
#undef PUT
    if (cap > 0) {
        out[n < cap ? n : cap - 1] = '\0';
    }
    return n > INT32_MAX ? TC_ETOOBIG : (int)n;
}

/* Split a line in place: blanks separate, "..." groups, \" and \\ escape inside quotes (tc_console_quote()). */
static int split(char *line, char *argv[], int max, int *argc)
{
    int n = 0;
    char *r = line, *w = line;
    for (;;) {
        while (is_blank(*r)) {
            r++;
        }
        if (*r == '\0') {
            break;
        }
        if (n == max) {
            return TC_ETOOBIG;
        }
        argv[n++] = w;
        int quoted = 0;
        while (*r != '\0') {
            if (quoted) {
                if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
                    r++;
                } else if (*r == '"') {
                    quoted = 0;
                    r++;
                    continue;
                }
            } else if (*r == '"') {
                quoted = 1;
                r++;
                continue;
            } else if (is_blank(*r)) {
                break;
            }
            *w++ = *r++;
        }
        if (quoted) {
            return TC_EINVAL;
        }
        /* w <= r here (text only moves left), and r is at a blank or at the input's NUL: the terminator never
         * lands past the input, and a blank it overwrites has already been read. */
        int more = *r != '\0';
        *w++ = '\0';
        if (more) {
            r++;
        }
    }
    *argc = n;
    return TC_OK;
}

int tc_console_exec(const tc_console_config_t *cfg, const char *line, char *out, size_t cap)
{
    if (out == NULL && cap > 0) {
        return TC_EINVAL;
    }
    out_t o;
    out_init(&o, out, cap);
    if (cfg == NULL || line == NULL) {
        oput(&o, "console: %s\n", tc_strerror(TC_EINVAL));
        out_end(&o);
        return TC_EINVAL;
    }
    size_t len = strlen(line);
    if (len > TC_CONSOLE_MAX_LINE) {
        oput(&o, "console: line longer than %d bytes\n", TC_CONSOLE_MAX_LINE);
        out_end(&o);
        return TC_ETOOBIG;
    }
    char buf[TC_CONSOLE_MAX_LINE + 1];
    memcpy(buf, line, len + 1);
    char *argv[TC_CONSOLE_MAX_ARGS];
    int argc = 0;
    int rc = split(buf, argv, TC_CONSOLE_MAX_ARGS, &argc);
    if (rc != TC_OK) {
        oput(&o, "console: %s\n", rc == TC_ETOOBIG ? "too many arguments" : "unterminated quote");
        out_end(&o);
        return rc;
    }
    if (argc == 0) {
        return 0;
    }
    return tc_console_exec_argv(cfg, argc, argv, out, cap);
}
