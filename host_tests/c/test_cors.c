/*
 * test_cors.c - the server-wide CORS policy (tc_http_config_t.cors) and its per-route override
 * (tc_http_cors_route()), over real loopback sockets: which answers carry which Access-Control headers and
 * Vary: Origin, who answers a preflight, and which route answers beside a static-files fallback. A table of
 * requests; each row names the route, the Origin and what the answer must hold.
 *
 *     C=components/tcp_core; gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -I$C/include -I$C/src \
 *       -I$C/port/os/posix host_tests/c/test_cors.c <core and linux backend sources> -lpthread
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
#include "tc_err.h"
#include "tc_handle.h"
#include "tc_http.h"
#include "tc_http_auth.h"
#include "tc_http_static.h"
#include "tc_loop.h"
#include "tc_check.h"
#include "tc_loop_thread.h"

static tc_http_t *g_http;
static tc_http_cors_t *g_default, *g_own, *g_none, *g_any, *g_any_cred;
static tc_http_static_t *g_files;
static uint16_t g_http_port;

static int hello(tc_http_req_t *req, void *user)
{
    (void)user;
    return tc_http_respond(req, 200, "text/plain", "hello\n", 6);
}

/* A handler with a Vary of its own (a file's gzip sibling), and one the policy already gave (any case). */
static int varied(tc_http_req_t *req, void *user)
{
    (void)user;
    CHECK_RC(tc_http_resp_header(req, "Vary", "Accept-Encoding"), TC_OK);
    CHECK_RC(tc_http_resp_header(req, "vary", "origin"), TC_OK);
    return tc_http_respond(req, 200, "text/plain", "hello\n", 6);
}

static void start_fn(void *arg)
{
    (void)arg;
    tc_http_cors_config_t dc = TC_HTTP_CORS_DEFAULT_CONFIG();
    dc.origins = "http://a.lan";
    dc.methods = "GET, POST";
    CHECK_RC(tc_http_cors_new(&dc, &g_default), TC_OK);
    tc_http_cors_config_t oc = TC_HTTP_CORS_DEFAULT_CONFIG();
    oc.origins = "http://b.lan";
    oc.methods = "PUT";
    oc.credentials = true;
    CHECK_RC(tc_http_cors_new(&oc, &g_own), TC_OK);
    tc_http_cors_config_t nc = TC_HTTP_CORS_DEFAULT_CONFIG();
    nc.origins = ""; /* no origin at all: this route opts out of the server's policy */
    CHECK_RC(tc_http_cors_new(&nc, &g_none), TC_OK);
    tc_http_cors_config_t ac = TC_HTTP_CORS_DEFAULT_CONFIG(); /* "*": the same answer for every origin */
    CHECK_RC(tc_http_cors_new(&ac, &g_any), TC_OK);
    ac.credentials = true; /* "*" with credentials: the origin echoed, so the answer depends on it */
    CHECK_RC(tc_http_cors_new(&ac, &g_any_cred), TC_OK);
    tc_http_config_t hc = TC_HTTP_DEFAULT_CONFIG();
    hc.host = "127.0.0.1";
    hc.port = 0;
    hc.cors = g_default;
    CHECK_RC(tc_http_start(g_loop, &hc, &g_http), TC_OK);
    CHECK_RC(tc_http_route(g_http, TC_HTTP_GET | TC_HTTP_POST, "/plain", hello, NULL), TC_OK);
    CHECK_RC(tc_http_cors_route(g_http, g_own, TC_HTTP_GET | TC_HTTP_PUT, "/own", hello, NULL), TC_OK);
    CHECK_RC(tc_http_cors_route(g_http, g_none, TC_HTTP_GET, "/none", hello, NULL), TC_OK);
    CHECK_RC(tc_http_cors_route(g_http, g_any, TC_HTTP_GET, "/any", hello, NULL), TC_OK);
    CHECK_RC(tc_http_cors_route(g_http, g_any_cred, TC_HTTP_GET, "/anycred", hello, NULL), TC_OK);
    CHECK_RC(tc_http_route(g_http, TC_HTTP_GET, "/varied", varied, NULL), TC_OK);
    tc_http_static_config_t sc = TC_HTTP_STATIC_DEFAULT_CONFIG();
    sc.root = "/nonexistent/tc_test_cors"; /* every file a 404: what matters is who answers */
    CHECK_RC(tc_http_static_attach(g_http, "/files/*", &sc, &g_files), TC_OK);
    CHECK_RC(tc_http_route(g_http, TC_HTTP_POST, "/files/late", hello, NULL), TC_OK); /* after the fallback */
    g_http_port = tc_http_port(g_http);
}

/* One request on its own connection; the answer's head (up to the blank line) into out. */
static void ask(const char *request, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(g_http_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect");
    CHECK(send(fd, request, strlen(request), 0) == (ssize_t)strlen(request), "send");
    size_t n = 0;
    out[0] = '\0';
    while (n + 1 < cap && strstr(out, "\r\n\r\n") == NULL) {
        ssize_t k = recv(fd, out + n, cap - 1 - n, 0);
        if (k <= 0) {
            break;
        }
        n += (size_t)k;
        out[n] = '\0';
    }
    close(fd);
}

typedef struct {
    const char *name;
    const char *request;
    const char *status;   /* the status line's start */
    const char *has;      /* a header line the answer must hold, NULL: none */
    const char *has_not;  /* text the answer must not hold, NULL: none */
} row_t;

static const row_t k_rows[] = {
    {"default on a plain route", "GET /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n\r\n", "HTTP/1.1 200",
     "Access-Control-Allow-Origin: http://a.lan\r\n", NULL},
    {"default: other origin", "GET /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://b.lan\r\n\r\n", "HTTP/1.1 200", NULL,
     "Access-Control"},
    {"default on a 404", "GET /nothing HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n\r\n", "HTTP/1.1 404",
     "Access-Control-Allow-Origin: http://a.lan\r\n", NULL},
    {"default preflight", "OPTIONS /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: POST\r\n\r\n", "HTTP/1.1 204", "Access-Control-Allow-Methods: GET, POST\r\n",
     NULL},
    {"default preflight refused", "OPTIONS /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: DELETE\r\n\r\n", "HTTP/1.1 403", NULL, NULL},
    {"no preflight without a route", "OPTIONS /nothing HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: GET\r\n\r\n", "HTTP/1.1 404", NULL, NULL},
    {"override: its origin", "GET /own HTTP/1.1\r\nHost: x\r\nOrigin: http://b.lan\r\n\r\n", "HTTP/1.1 200",
     "Access-Control-Allow-Credentials: true\r\n", NULL},
    {"override: not the default's origin", "GET /own HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n\r\n",
     "HTTP/1.1 200", NULL, "Access-Control"},
    {"override preflight", "OPTIONS /own HTTP/1.1\r\nHost: x\r\nOrigin: http://b.lan\r\n"
     "Access-Control-Request-Method: PUT\r\n\r\n", "HTTP/1.1 204", "Access-Control-Allow-Methods: PUT\r\n", NULL},
    {"opt-out route", "GET /none HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n\r\n", "HTTP/1.1 200", NULL,
     "Access-Control"},
    {"opt-out preflight", "OPTIONS /none HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: GET\r\n\r\n", "HTTP/1.1 403", NULL, "Access-Control"},
    /* Fetch standard, "CORS protocol and HTTP caches": an answer that depends on the Origin says so, whatever the
     * Origin was; one that does not (a literal "*", no origin at all) does not. */
    {"default: allowed origin varies", "GET /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n\r\n", "HTTP/1.1 200",
     "\r\nVary: Origin\r\n", NULL},
    {"default: other origin varies", "GET /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://b.lan\r\n\r\n", "HTTP/1.1 200",
     "\r\nVary: Origin\r\n", NULL},
    {"default: no origin varies", "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200", "\r\nVary: Origin\r\n",
     "Access-Control"},
    {"default: 404 without origin varies", "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404",
     "\r\nVary: Origin\r\n", NULL},
    {"default: 405 without origin varies", "PUT /plain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     "HTTP/1.1 405", "\r\nVary: Origin\r\n", NULL},
    {"default preflight varies",
     "OPTIONS /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: POST\r\n\r\n",
     "HTTP/1.1 204", "\r\nVary: Origin\r\n", NULL},
    {"default preflight refused varies",
     "OPTIONS /plain HTTP/1.1\r\nHost: x\r\nOrigin: http://b.lan\r\n"
     "Access-Control-Request-Method: POST\r\n\r\n",
     "HTTP/1.1 403", "\r\nVary: Origin\r\n", "Access-Control"},
    {"override: no origin varies", "GET /own HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200", "\r\nVary: Origin\r\n",
     "Access-Control"},
    {"override preflight refused varies",
     "OPTIONS /own HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: PUT\r\n\r\n",
     "HTTP/1.1 403", "\r\nVary: Origin\r\n", NULL},
    {"opt-out: no vary", "GET /none HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200", NULL, "Vary"},
    {"any: no vary", "GET /any HTTP/1.1\r\nHost: x\r\nOrigin: http://c.lan\r\n\r\n", "HTTP/1.1 200",
     "Access-Control-Allow-Origin: *\r\n", "Vary"},
    {"any: no origin, no vary", "GET /any HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200", NULL, "Vary"},
    {"any with credentials: echoed", "GET /anycred HTTP/1.1\r\nHost: x\r\nOrigin: http://c.lan\r\n\r\n", "HTTP/1.1 200",
     "Access-Control-Allow-Origin: http://c.lan\r\n", NULL},
    {"any with credentials: no origin varies", "GET /anycred HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200",
     "\r\nVary: Origin\r\n", "Access-Control"},
    /* Static files are a fallback: a path another route has, added before or after, is that route's (RFC 9110
     * 15.5.6: its other methods get 405 with its Allow), and a preflight for either is the policy's. */
    {"fallback: a file", "GET /files/a.txt HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404", NULL, NULL},
    {"fallback: a route added after it", "POST /files/late HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     "HTTP/1.1 200", NULL, NULL},
    {"fallback: the route's other method", "GET /files/late HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405",
     "\r\nAllow: POST\r\n", NULL},
    {"fallback: its own other method", "PUT /files/a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
     "HTTP/1.1 405", "\r\nAllow: GET, HEAD\r\n", NULL},
    {"fallback: preflight",
     "OPTIONS /files/a.txt HTTP/1.1\r\nHost: x\r\nOrigin: http://a.lan\r\n"
     "Access-Control-Request-Method: GET\r\n\r\n",
     "HTTP/1.1 204", "Access-Control-Allow-Origin: http://a.lan\r\n", NULL},
    {"one vary field", "GET /varied HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 200",
     "\r\nVary: Origin, Accept-Encoding\r\n", "\r\nvary:"},
};

static int check_row(const row_t *r)
{
    char out[2048];
    ask(r->request, out, sizeof(out));
    ROW_CHECK(strncmp(out, r->status, strlen(r->status)) == 0, "answer: %s", out);
    ROW_CHECK(r->has == NULL || strstr(out, r->has) != NULL, "no \"%s\" in: %s", r->has, out);
    ROW_CHECK(r->has_not == NULL || strstr(out, r->has_not) == NULL, "\"%s\" in: %s", r->has_not, out);
    return 0;
}

int main(void)
{
    loop_open();
    on_loop(start_fn, NULL);
    for (size_t i = 0; i < sizeof(k_rows) / sizeof(k_rows[0]); i++) {
        tc_check_row = k_rows[i].name;
        tc_check_tally(check_row(&k_rows[i]));
    }
    tc_check_row = NULL;
    stop_on_loop(tc_http_handle(g_http), 0, 5000);
    loop_close();
    tc_http_cors_free(g_default);
    tc_http_cors_free(g_own);
    tc_http_cors_free(g_none);
    tc_http_cors_free(g_any);
    tc_http_cors_free(g_any_cred);
    tc_http_static_free(g_files);
    heap_back_to_zero();
    return tc_check_summary();
}
