/*
 * test_console.c - the portable console (tc_console.h): each command over a running loop with a real echo server
 * and a real client, as a table of lines with the expected code and text, plus quoting, limits, cut output, a loop
 * that does not answer, and no tcp_core heap byte left behind.
 *
 * Build (from the repository root):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix \
 *         host_tests/c/test_console.c \
 *         $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') $C/src/tc_console.c \
 *         $C/src/tc_registry_ext.c $C/port/linux/tc_sock_linux.c -lpthread -o build/test_console
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tc_alloc.h"
#include "tc_console.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_registry.h"
#include "tc_registry_ext.h"
#include "tc_tcp.h"
#include "tc_check.h"
#include "tc_loop_thread.h"

/* ---- the services the console looks at: the echo server of tc_loop_thread.h ---- */

static void count_fn(void *arg)
{
    *(uint32_t *)arg = tc_registry_count(g_loop);
}

static uint32_t registry_count(void)
{
    uint32_t n = 0;
    on_loop(count_fn, &n);
    return n;
}

/* ---- firmware callbacks ---- */

typedef struct {
    char ssid[64];
    char pass[80];
    int calls;
    int answer;
    uint32_t ota_deadline;
    int ota_calls;
    int stopped;
    tc_stop_report_t report;
    size_t bytes_before;
} fw_t;

static fw_t g_fw;

static int fw_wifi(const char *ssid, const char *password, void *user)
{
    fw_t *fw = user;
    snprintf(fw->ssid, sizeof(fw->ssid), "%s", ssid);
    snprintf(fw->pass, sizeof(fw->pass), "%s", password);
    fw->calls++;
    return fw->answer;
}

static void fw_stopped(tc_handle_t *h, const tc_stop_report_t *r, void *user)
{
    (void)h;
    fw_t *fw = user;
    fw->report = *r;
    __atomic_store_n(&fw->stopped, 1, __ATOMIC_SEQ_CST);
}

static uint32_t g_stop_deadline;

static void fw_stop_fn(void *arg)
{
    fw_t *fw = arg;
    if (g_server == NULL) {
        __atomic_store_n(&fw->stopped, -1, __ATOMIC_SEQ_CST);
        return;
    }
    tc_handle_stop(tc_server_handle(g_server), g_stop_deadline, fw_stopped, fw);
    g_server = NULL;
}

/* What a firmware does: ask the loop to stop the servers with the deadline, wait, report. */
static int fw_ota(uint32_t deadline_ms, tc_console_ota_result_t *res, void *user)
{
    fw_t *fw = user;
    fw->ota_deadline = deadline_ms;
    fw->ota_calls++;
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    size_t before = st.bytes_in_use;
    __atomic_store_n(&fw->stopped, 0, __ATOMIC_SEQ_CST);
    g_stop_deadline = deadline_ms;
    on_loop(fw_stop_fn, fw);
    for (int i = 0; __atomic_load_n(&fw->stopped, __ATOMIC_SEQ_CST) == 0; i++) {
        CHECK(i < 500, "the server did not stop");
        usleep(10000);
    }
    if (__atomic_load_n(&fw->stopped, __ATOMIC_SEQ_CST) < 0) {
        return TC_ECLOSED;
    }
    tc_alloc_stats(&st);
    res->elapsed_ms = fw->report.elapsed_ms;
    res->graceful = fw->report.graceful;
    res->forced = fw->report.forced;
    res->heap_freed = (int64_t)before - (int64_t)st.bytes_in_use;
    return TC_OK;
}

static int fw_info(char *buf, size_t cap, void *user)
{
    (void)user;
    return snprintf(buf, cap, "wifi: test-ap 10.0.0.1\n");
}

/* ---- table of lines ---- */

typedef struct {
    const char *line;
    int rc;           /* expected: TC_OK means "a length >= 0" */
    const char *has;  /* text the output must contain, NULL for none */
    const char *hasnt;
} case_t;

static void run_case(const tc_console_config_t *cfg, const case_t *c)
{
    char out[2048];
    memset(out, 'x', sizeof(out));
    int rc = tc_console_exec(cfg, c->line, out, sizeof(out));
    CHECK(memchr(out, '\0', sizeof(out)) != NULL, "[%s] output not terminated", c->line);
    if (c->rc == TC_OK) {
        CHECK(rc >= 0, "[%s] returned %s: %s", c->line, tc_err_name(rc), out);
        CHECK((size_t)rc == strlen(out), "[%s] returned %d for %zu bytes of text", c->line, rc, strlen(out));
    } else {
        CHECK(rc == c->rc, "[%s] returned %s, expected %s: %s", c->line, tc_err_name(rc), tc_err_name(c->rc), out);
        CHECK(out[0] != '\0', "[%s] an error without text", c->line);
    }
    CHECK(c->has == NULL || strstr(out, c->has) != NULL, "[%s] output lacks \"%s\":\n%s", c->line, c->has, out);
    CHECK(c->hasnt == NULL || strstr(out, c->hasnt) == NULL, "[%s] output has \"%s\":\n%s", c->line, c->hasnt, out);
}

static void test_table(const tc_console_config_t *cfg)
{
    char listen_text[64];
    snprintf(listen_text, sizeof(listen_text), "listener listening echo 127.0.0.1:%u", g_port);
    const case_t cases[] = {
        {"", TC_OK, NULL, NULL},
        {"   \t ", TC_OK, NULL, NULL},
        {"help", TC_OK, "ota-prepare", NULL},
        {"help", TC_OK, "wifi", NULL},
        {"status", TC_OK, "sockets: 2 (backend linux)", NULL},
        {"status", TC_OK, listen_text, NULL},
        {"status", TC_OK, "accepted open echo 127.0.0.1:", NULL},
        {"status", TC_OK, "wifi: test-ap 10.0.0.1\nsockets:", NULL},
        {"status\r\n", TC_OK, "sockets: 2", NULL},
        {"status now", TC_EINVAL, "usage: status", NULL},
        {"wifi", TC_EINVAL, "usage", NULL},
        {"wifi a b c", TC_EINVAL, "usage", NULL},
        {"wifi \"\" password1", TC_EINVAL, "SSID", NULL},
        {"wifi 123456789012345678901234567890123 password1", TC_EINVAL, "SSID", NULL},
        {"wifi home short", TC_EINVAL, "password", NULL},
        {"wifi home 1234567890123456789012345678901234567890123456789012345678901234", TC_OK, "stored", NULL},
        {"wifi home 123456789012345678901234567890123456789012345678901234567890123g", TC_EINVAL, "hex", NULL},
        {"wifi home 12345678901234567890123456789012345678901234567890123456789012345", TC_EINVAL, "password", NULL},
        {"wifi \"My Home\" \"s3cret pass\"", TC_OK, "credentials for \"My Home\" stored (with password)",
         "s3cret"},
        {"wifi cafe", TC_OK, "open network", NULL},
        {"wifi \"unterminated", TC_EINVAL, "quote", NULL},
        {"ota-prepare 0", TC_EINVAL, "usage", NULL},
        {"ota-prepare 600001", TC_EINVAL, "usage", NULL},
        {"ota-prepare 12x", TC_EINVAL, "usage", NULL},
        {"ota-prepare 1 2", TC_EINVAL, "usage", NULL},
        {"reboot", TC_ENOTFOUND, "reboot: unknown command", NULL},
        {"a b c d e f g h i", TC_ETOOBIG, "too many", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(cfg, &cases[i]);
    }
}

/* The OTA line: written on the loop thread (tc_console_config_t.ota), first in `status`, alone in `ota`. */
static pthread_t g_loop_tid;

static int fw_ota_line(char *buf, size_t cap, void *user)
{
    CHECK(pthread_equal(pthread_self(), g_loop_tid), "the ota callback ran off the loop thread");
    return snprintf(buf, cap, "ota: receiving %d bytes\n", *(int *)user);
}

static void loop_tid_fn(void *arg)
{
    (void)arg;
    g_loop_tid = pthread_self();
}

static void test_ota_line(const tc_console_config_t *base)
{
    on_loop(loop_tid_fn, NULL);
    tc_console_config_t cfg = *base;
    int bytes = 4096;
    cfg.ota = fw_ota_line;
    cfg.ota_user = &bytes;
    const case_t cases[] = {
        {"ota", TC_OK, "ota: receiving 4096 bytes\n", "sockets:"},
        {"status", TC_OK, "ota: receiving 4096 bytes\nsockets: 2", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cfg, &cases[i]);
    }
}

static void test_wifi_values(const tc_console_config_t *cfg)
{
    char out[256];
    g_fw.calls = 0;
    CHECK(tc_console_exec(cfg, "wifi \"a \\\"quoted\\\" \\\\ net\" \"pa ss word\"", out, sizeof(out)) >= 0, "%s",
          out);
    CHECK(g_fw.calls == 1, "callback calls %d", g_fw.calls);
    CHECK(strcmp(g_fw.ssid, "a \"quoted\" \\ net") == 0, "ssid [%s]", g_fw.ssid);
    CHECK(strcmp(g_fw.pass, "pa ss word") == 0, "password [%s]", g_fw.pass);
    g_fw.answer = TC_EIO;
    CHECK(tc_console_exec(cfg, "wifi net password1", out, sizeof(out)) == TC_EIO, "callback error not returned");
    CHECK(strstr(out, "not stored") != NULL, "%s", out);
    g_fw.answer = TC_OK;
    /* esp_console hands over split arguments. */
    char *argv[] = {"wifi", "split net", "password2", NULL};
    CHECK(tc_console_exec_argv(cfg, 3, argv, out, sizeof(out)) >= 0, "%s", out);
    CHECK(strcmp(g_fw.ssid, "split net") == 0 && strcmp(g_fw.pass, "password2") == 0, "argv form");
}

static void test_limits(const tc_console_config_t *cfg)
{
    char line[TC_CONSOLE_MAX_LINE + 2];
    memset(line, 'a', sizeof(line) - 1);
    line[sizeof(line) - 1] = '\0';
    char out[128];
    CHECK(tc_console_exec(cfg, line, out, sizeof(out)) == TC_ETOOBIG, "a line over the limit");
    line[TC_CONSOLE_MAX_LINE] = '\0';
    CHECK(tc_console_exec(cfg, line, out, sizeof(out)) == TC_ENOTFOUND, "a line at the limit is parsed");

    /* Cut output: always terminated, ends in "...\n", length cap - 1. */
    for (size_t cap = 1; cap < 120; cap++) {
        char small[128];
        int rc = tc_console_exec(cfg, "help", small, cap);
        CHECK(rc >= 0 && (size_t)rc == strlen(small) && (size_t)rc <= cap - 1, "help into %zu bytes: %d", cap, rc);
        if (cap >= 5) {
            CHECK(strcmp(small + rc - 4, "...\n") == 0, "cut help into %zu bytes does not end in ...", cap);
        }
        rc = tc_console_exec(cfg, "status", small, cap);
        CHECK(rc >= 0 && (size_t)rc == strlen(small) && (size_t)rc <= cap - 1, "status into %zu bytes: %d", cap, rc);
    }
    CHECK(tc_console_exec(cfg, "help", NULL, 0) == 0, "no output buffer");
    CHECK(tc_console_exec(NULL, "help", out, sizeof(out)) == TC_EINVAL, "NULL config");
    CHECK(tc_console_exec(cfg, NULL, out, sizeof(out)) == TC_EINVAL, "NULL line");
    CHECK(tc_console_exec_argv(cfg, 0, NULL, out, sizeof(out)) == TC_EINVAL, "argc 0");
    CHECK(tc_console_status(NULL, out, sizeof(out)) == TC_EINVAL, "status of NULL loop");
}

static void test_no_callbacks(void)
{
    tc_console_config_t cfg = TC_CONSOLE_DEFAULT_CONFIG();
    const case_t cases[] = {
        {"wifi net password1", TC_ENOSYS, "no Wi-Fi", NULL},
        {"ota-prepare", TC_ENOSYS, "not available", NULL},
        {"status", TC_OK, "sockets: no loop", NULL},
        {"ota", TC_OK, "ota: no firmware upload route on this build\n", NULL},
        {"ota now", TC_EINVAL, "ota: usage: ota", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        run_case(&cfg, &cases[i]);
    }
    size_t n = 0;
    const tc_console_cmd_t *cmds = tc_console_commands(&n);
    CHECK(n == 5 && strcmp(cmds[0].name, "status") == 0 && strcmp(cmds[3].name, "ota") == 0, "command table");
}

typedef struct {
    char text[512];
    int rc;
} direct_t;

static void direct_fn(void *arg)
{
    direct_t *d = arg;
    d->rc = tc_console_status(g_loop, d->text, sizeof(d->text));
}

static void test_external_listed(const tc_console_config_t *cfg, int fd)
{
    tc_ext_sock_t *s = NULL;
    CHECK(tc_ext_sock_open(g_loop, fd, "httpd", &s) == TC_OK, "tc_ext_sock_open");
    tc_ext_sock_set_flags(s, TC_REG_FLAG_STREAMING, 0);
    char out[1024];
    CHECK(tc_console_exec(cfg, "status", out, sizeof(out)) >= 0, "%s", out);
    CHECK(strstr(out, "external open httpd") != NULL && strstr(out, " streaming\n") != NULL, "%s", out);
    if (getenv("TC_TEST_VERBOSE")) {
        fputs(out, stdout);
    }
    direct_t d;
    on_loop(direct_fn, &d);
    CHECK(d.rc > 0 && strstr(d.text, "external open httpd") != NULL, "tc_console_status on the loop thread");
    tc_ext_sock_close(s);
}

static void test_ota(const tc_console_config_t *cfg)
{
    char out[512];
    int rc = tc_console_exec(cfg, "ota-prepare 1500", out, sizeof(out));
    CHECK(rc >= 0, "ota-prepare: %s", out);
    CHECK(g_fw.ota_deadline == 1500, "deadline %u", g_fw.ota_deadline);
    CHECK(strstr(out, "servers stopped in") && strstr(out, "(deadline 1500 ms)") && strstr(out, "heap freed"), "%s",
          out);
    if (getenv("TC_TEST_VERBOSE")) {
        fputs(out, stdout);
    }
    CHECK(strstr(out, "heap freed -") == NULL, "stopping a server must free heap: %s", out);
    CHECK(strstr(out, "1 closed") || strstr(out, "1 forced"), "the client connection was not counted: %s", out);
    CHECK(registry_count() == 0, "sockets left after ota-prepare");
    rc = tc_console_exec(cfg, "ota-prepare", out, sizeof(out));
    CHECK(rc == TC_ECLOSED && g_fw.ota_deadline == TC_CONSOLE_OTA_DEADLINE_MS, "second ota-prepare: %s", out);
    CHECK(strstr(out, "failed") != NULL, "%s", out);
}

static void test_loop_silent(tc_console_config_t cfg)
{
    loop_join();
    cfg.loop_wait_ms = 150;
    char out[256];
    int rc = tc_console_exec(&cfg, "status", out, sizeof(out));
    CHECK(rc == TC_ETIMEDOUT, "status with a stopped loop returned %s", tc_err_name(rc));
    CHECK(strstr(out, "did not answer within 150 ms") != NULL, "%s", out);
    /* The abandoned request is freed when the loop finally runs it. */
    CHECK(tc_loop_run_once(g_loop, 0) >= 0, "run once");
}

int main(void)
{
    loop_open();
    on_loop(echo_start_fn, NULL);
    int fd = echo_connect();
    for (int i = 0; registry_count() != 2; i++) {
        CHECK(i < 200, "the connection was not accepted");
        usleep(5000);
    }

    tc_console_config_t cfg = TC_CONSOLE_DEFAULT_CONFIG();
    cfg.loop = g_loop;
    cfg.wifi = fw_wifi;
    cfg.ota_prepare = fw_ota;
    cfg.info = fw_info;
    cfg.user = &g_fw;

    test_table(&cfg);
    test_ota_line(&cfg);
    test_wifi_values(&cfg);
    test_limits(&cfg);
    test_no_callbacks();
    test_external_listed(&cfg, fd);
    test_ota(&cfg);
    close(fd);
    test_loop_silent(cfg);

    CHECK_RC(tc_loop_free(g_loop), TC_OK);
    heap_back_to_zero();
    printf("test_console: OK\n");
    return 0;
}
