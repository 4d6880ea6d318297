/*
 * test_app_stop_wait.c - tc_handle_stop_wait() on the demo services (main/app/tc_app.c, a handle built on tcp_core's
 * public API, tc_handle_impl.h): it refuses inside a loop callback without stopping anything (TC_EBUSY), it stops
 * every service and reports when called on the loop's thread outside callbacks, and nothing is left behind (the
 * loop frees, no tcp_core heap byte remains), including the status document's OTA part.
 *
 * Build (from the repository root; tools/ctest.sh does this under ASan+UBSan and -m32):
 *     C=components/tcp_core
 *     gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src -I$C/port/os/posix -Imain/app \
 *         host_tests/c/test_app_stop_wait.c $(grep -v '^\s*#' $C/sources.txt | sed '/^\s*$/d; s|^|'$C'/|') \
 *         $(grep -v '^\s*#' main/sources.txt | sed '/^\s*$/d; s|^|main/|') $C/port/linux/tc_sock_linux.c \
 *         -lpthread -o build/test_app_stop_wait
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tc_alloc.h"
#include "tc_app.h"
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_loop.h"
#include "tc_check.h"

typedef struct {
    tc_app_t *app;
    int rc;
    int fired;
} inside_t;

static int64_t call_inside(tc_timer_t *t, void *user)
{
    (void)t;
    inside_t *in = user;
    in->rc = tc_handle_stop_wait(tc_app_handle(in->app), 100, NULL);
    in->fired = 1;
    return TC_TIMER_STOP;
}

int main(void)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    size_t before = st.bytes_in_use;
    tc_loop_t *loop;
    CHECK_RC(tc_loop_new(&loop), TC_OK);
    char dir[] = "/tmp/tc_app_stop_wait_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    tc_app_config_t cfg = TC_APP_DEFAULT_CONFIG();
    cfg.host = "127.0.0.1";
    cfg.echo_port = 0;
    cfg.http_port = 0;
    cfg.ota_dir = dir;
    cfg.admin_pass = "pw";
    tc_app_t *app;
    CHECK_RC(tc_app_start(loop, &cfg, &app), TC_OK);
    CHECK(tc_app_echo_port(app) != 0 && tc_app_http_port(app) != 0, "ports bound");

    /* The status document carries the OTA state at its top level. */
    char buf[8192];
    int n = tc_app_status_json_app(app, buf, sizeof(buf));
    CHECK(n > 0 && (size_t)n < sizeof(buf), "status: %d", n);
    CHECK(strstr(buf, ",\"ota\":{\"state\":\"idle\"") != NULL && buf[n - 1] == '}' && buf[n - 2] == '}',
          "status: %s", buf);
    CHECK_RC(tc_app_status_json_app(app, buf, (size_t)n), TC_ELIMIT); /* one byte short (no room for the NUL) */

    /* Inside a callback: refused, and nothing was stopped. */
    inside_t in = {.app = app, .rc = 1};
    CHECK_RC(tc_timer_start(loop, 0, call_inside, &in, NULL), TC_OK);
    for (int i = 0; i < 100 && !in.fired; i++) {
        CHECK(tc_loop_run_once(loop, 10) >= 0, "run_once");
    }
    CHECK(in.fired, "the timer ran");
    CHECK_RC(in.rc, TC_EBUSY);
    CHECK(tc_app_echo_port(app) != 0, "still running after the refused call");

    /* Outside callbacks: every service stops, the report comes back. */
    tc_stop_report_t rep;
    memset(&rep, 0xAA, sizeof(rep));
    CHECK_RC(tc_handle_stop_wait(tc_app_handle(app), 500, &rep), TC_OK);
    CHECK(rep.elapsed_ms < 1500 && rep.bytes_freed > 0, "report: %u ms, %zu bytes freed", (unsigned)rep.elapsed_ms,
          rep.bytes_freed);
    CHECK_RC(tc_loop_free(loop), TC_OK);
    tc_alloc_stats(&st);
    CHECK(st.bytes_in_use == before, "%zu tcp_core heap bytes left", st.bytes_in_use - before);
    CHECK(remove(dir) == 0, "rmdir %s", dir);
    printf("test_app_stop_wait: OK\n");
    return 0;
}
