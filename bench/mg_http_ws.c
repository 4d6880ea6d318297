/*
 * bench/mg_http_ws.c - the mongoose peer of bench/compare.py, written here against mongoose's public API (its
 * source is NOT part of this repository: compare.py compiles this file with mongoose.c from --mongoose-src DIR).
 * The same service as bench/tc_http_ws.c: "/" answers the fixed page of bench_page.h, "/ws" is a WebSocket that
 * echoes every message. Prints "ready PORT" once listening on 127.0.0.1 (port 0 picks a free one); SIGTERM or
 * SIGINT stops. Mongoose's defaults otherwise (epoll on Linux, its I/O buffer size, no idle timeout).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_page.h"
#include "mongoose.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void handler(struct mg_connection *c, int ev, void *ev_data)
{
    if (ev == MG_EV_HTTP_MSG) {
        struct mg_http_message *hm = (struct mg_http_message *)ev_data;
        if (mg_match(hm->uri, mg_str("/ws"), NULL)) {
            mg_ws_upgrade(c, hm, NULL);
        } else if (mg_match(hm->uri, mg_str("/"), NULL)) {
            mg_printf(c, "HTTP/1.1 200 OK\r\nContent-Type: " BENCH_PAGE_CTYPE "\r\nContent-Length: %d\r\n\r\n",
                      (int)(sizeof(BENCH_PAGE) - 1));
            mg_send(c, BENCH_PAGE, sizeof(BENCH_PAGE) - 1);
        } else {
            mg_http_reply(c, 404, "", "not found\n");
        }
    } else if (ev == MG_EV_WS_MSG) {
        struct mg_ws_message *wm = (struct mg_ws_message *)ev_data;
        mg_ws_send(c, wm->data.buf, wm->data.len, wm->flags & 0x0f);
    }
}

int main(int argc, char **argv)
{
    const char *port = argc > 2 && strcmp(argv[1], "--port") == 0 ? argv[2] : "0";
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%s", port);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    mg_log_set(MG_LL_ERROR);
    struct mg_mgr mgr;
    mg_mgr_init(&mgr);
    struct mg_connection *lc = mg_http_listen(&mgr, url, handler, NULL);
    if (lc == NULL) {
        fprintf(stderr, "mg_http_ws: cannot listen on %s\n", url);
        return 1;
    }
    printf("ready %u\n", (unsigned)mg_ntohs(lc->loc.port));
    fflush(stdout);
    while (!g_stop) {
        mg_mgr_poll(&mgr, 100);
    }
    mg_mgr_free(&mgr);
    return 0;
}
