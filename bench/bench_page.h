/*
 * bench/bench_page.h - the one page every HTTP server of bench/compare.py serves at "/" (tcp_core's
 * bench/tc_http_ws.c and the mongoose peer from memory, nginx as a file written from the bytes fetched from
 * tcp_core), so that each answers with the same body and Content-Type.
 */
#ifndef BENCH_PAGE_H
#define BENCH_PAGE_H

#define BENCH_PAGE_CTYPE "text/html; charset=utf-8"

/* 552 bytes: a small status page, the size of a device's home page without its assets. */
#define BENCH_PAGE                                                                                                 \
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>device</title></head>\n<body>\n"                   \
    "<h1>device status</h1>\n<p>uptime, heap and the connections of a small device would be listed here; the "    \
    "benchmark only needs a fixed body of a realistic size, identical for every server.</p>\n"                   \
    "<ul><li>wifi: connected</li><li>http: serving</li><li>websocket: /ws echoes every message</li>"             \
    "<li>stream: idle</li></ul>\n<p>0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"            \
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123</p>\n</body></html>\n"

#endif
