/*
 * tc_captive.c - connectivity-probe answers for a soft-AP (see tc_captive.h for the table and its limits).
 */
#include "tc_captive.h"

#include <string.h>

#include "tc_alloc.h"
#include "tc_err.h"

enum { OS_NONE = 0, OS_ANDROID, OS_APPLE, OS_WINDOWS, OS_FIREFOX };

typedef struct {
    tc_captive_mode_t mode;
    char *portal_url;
    char *device_host;
    tc_captive_stats_t stats;
} captive_t;

/* The answers the real services give (what each OS compares against). */
static const char APPLE_SUCCESS[] = "<HTML><HEAD><TITLE>Success</TITLE></HEAD><BODY>Success</BODY></HTML>";
static const char WINDOWS_CONNECTTEST[] = "Microsoft Connect Test";
static const char WINDOWS_NCSI[] = "Microsoft NCSI";
static const char FIREFOX_CANONICAL[] =
    "<meta http-equiv=\"refresh\" content=\"0;url=https://support.mozilla.org/kb/captive-portal\"/>";
static const char FIREFOX_SUCCESS[] = "success\n";

/* Host without its port, compared case-insensitively (RFC 9110 4.2.3: host names are case-insensitive). */
static int host_is(const char *host, size_t len, const char *name)
{
    if (host == NULL) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (host[i] == ':') {
            len = i;
            break;
        }
    }
    size_t n = strlen(name);
    if (len != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char a = host[i], b = name[i];
        if (a >= 'A' && a <= 'Z') {
            a = (char)(a - 'A' + 'a');
        }
        if (a != b) {
            return 0;
        }
    }
    return 1;
}

int tc_captive_classify(const char *host, size_t host_len, const char *path)
{
    if (path == NULL) {
        return OS_NONE;
    }
    /* Android's generate_204 family is matched on the path alone: the host list differs between vendors and
     * versions (gstatic, google, android.com, vendor mirrors), and nothing else asks for these paths. */
    if (strcmp(path, "/generate_204") == 0 || strcmp(path, "/gen_204") == 0) {
        return OS_ANDROID;
    }
    if (strcmp(path, "/hotspot-detect.html") == 0 || strcmp(path, "/library/test/success.html") == 0) {
        return OS_APPLE;
    }
    if (strcmp(path, "/connecttest.txt") == 0 || strcmp(path, "/ncsi.txt") == 0 || strcmp(path, "/redirect") == 0) {
        return (strcmp(path, "/redirect") != 0 || host_is(host, host_len, "www.msftconnecttest.com")) ? OS_WINDOWS
                                                                                                        : OS_NONE;
    }
    if ((strcmp(path, "/canonical.html") == 0 || strcmp(path, "/success.txt") == 0) &&
        host_is(host, host_len, "detectportal.firefox.com")) {
        return OS_FIREFOX;
    }
    return OS_NONE;
}

static int redirect(tc_http_req_t *req, const captive_t *c)
{
    /* 302 with a Location: what every OS treats as "a portal is here", and what opens the sign-in sheet. */
    int rc = tc_http_resp_header(req, "Location", c->portal_url);
    rc = rc == TC_OK ? tc_http_resp_header(req, "Cache-Control", "no-store") : rc;
    return rc == TC_OK ? tc_http_respond(req, 302, "text/plain", "captive portal\n", 15) : rc;
}

static int answer_online(tc_http_req_t *req, int os)
{
    const char *path = tc_http_req_path(req);
    tc_http_resp_header(req, "Cache-Control", "no-store");
    switch (os) {
    case OS_ANDROID:
        return tc_http_respond(req, 204, NULL, NULL, 0);
    case OS_APPLE:
        return tc_http_respond(req, 200, "text/html", APPLE_SUCCESS, sizeof(APPLE_SUCCESS) - 1);
    case OS_WINDOWS:
        if (strcmp(path, "/ncsi.txt") == 0) {
            return tc_http_respond(req, 200, "text/plain", WINDOWS_NCSI, sizeof(WINDOWS_NCSI) - 1);
        }
        if (strcmp(path, "/redirect") == 0) {
            return tc_http_respond(req, 204, NULL, NULL, 0);
        }
        return tc_http_respond(req, 200, "text/plain", WINDOWS_CONNECTTEST, sizeof(WINDOWS_CONNECTTEST) - 1);
    case OS_FIREFOX:
        if (strcmp(path, "/success.txt") == 0) {
            return tc_http_respond(req, 200, "text/plain", FIREFOX_SUCCESS, sizeof(FIREFOX_SUCCESS) - 1);
        }
        return tc_http_respond(req, 200, "text/html", FIREFOX_CANONICAL, sizeof(FIREFOX_CANONICAL) - 1);
    default:
        return TC_EINVAL;
    }
}

static void count(captive_t *c, int os)
{
    switch (os) {
    case OS_ANDROID:
        c->stats.android++;
        break;
    case OS_APPLE:
        c->stats.apple++;
        break;
    case OS_WINDOWS:
        c->stats.windows++;
        break;
    case OS_FIREFOX:
        c->stats.firefox++;
        break;
    default:
        c->stats.foreign++;
        break;
    }
}

/* The server's filter: runs before routing; TC_HTTP_FILTER_DONE when it answered. */
static int captive_filter(tc_http_req_t *req, void *user)
{
    captive_t *c = user;
    size_t host_len = 0;
    const char *host = tc_http_req_host(req, &host_len); /* a full-URL request line names the host it is for */
    int os = tc_captive_classify(host, host_len, tc_http_req_path(req));
    if (os != OS_NONE) {
        count(c, os);
        int rc = c->mode == TC_CAPTIVE_ONLINE ? answer_online(req, os) : redirect(req, c);
        return rc == TC_OK ? TC_HTTP_FILTER_DONE : rc;
    }
    /* Portal mode: a request for any other site lands on the portal (the browser's "sign in" tab). The device's
     * own host and a missing Host (HTTP/1.0 tools) go to the normal routes. */
    if (c->mode == TC_CAPTIVE_PORTAL && host && !host_is(host, host_len, c->device_host)) {
        count(c, OS_NONE);
        int rc = redirect(req, c);
        return rc == TC_OK ? TC_HTTP_FILTER_DONE : rc;
    }
    return 0;
}

static void captive_free(void *user)
{
    captive_t *c = user;
    tc_free(c->portal_url);
    tc_free(c->device_host);
    tc_free(c);
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

int tc_captive_attach(tc_http_t *http, const tc_captive_config_t *cfg)
{
    if (http == NULL || cfg == NULL || cfg->mode == TC_CAPTIVE_OFF || cfg->mode > TC_CAPTIVE_ONLINE ||
        cfg->portal_url == NULL || cfg->device_host == NULL || cfg->portal_url[0] == '\0') {
        return TC_EINVAL;
    }
    /* The URL goes into a Location header: CR or LF would split the response (header injection). */
    if (strpbrk(cfg->portal_url, "\r\n") != NULL) {
        return TC_EINVAL;
    }
    if (tc_http_filter_user(http) != NULL) {
        return TC_EBUSY;
    }
    captive_t *c = tc_calloc(1, sizeof(*c));
    if (c == NULL) {
        return TC_ENOMEM;
    }
    c->mode = cfg->mode;
    c->portal_url = dup_str(cfg->portal_url);
    c->device_host = dup_str(cfg->device_host);
    if (c->portal_url == NULL || c->device_host == NULL) {
        captive_free(c);
        return TC_ENOMEM;
    }
    int rc = tc_http_set_filter(http, captive_filter, c, captive_free);
    if (rc != TC_OK) {
        captive_free(c);
    }
    return rc;
}

void tc_captive_stats(const tc_http_t *http, tc_captive_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    const captive_t *c = http ? tc_http_filter_user(http) : NULL;
    if (c) {
        *out = c->stats;
    }
}
