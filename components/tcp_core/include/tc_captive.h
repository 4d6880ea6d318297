/*
 * tc_captive.h - answers the connectivity probes of phones and desktops on the device's HTTP server, so a soft-AP
 * without internet either opens the OS's sign-in sheet on the device's page (portal mode) or satisfies the OS that
 * the network works (online mode) so that it keeps the app's traffic on it (seed 002).
 *
 * | OS       | probe (Host, path)                                           | online answer                   | portal answer   |
 * |----------|--------------------------------------------------------------|---------------------------------|-----------------|
 * | Android  | connectivitycheck.gstatic.com /generate_204, /gen_204 (any)  | 204, empty                      | 302 to the page |
 * | Apple    | captive.apple.com /hotspot-detect.html                       | 200 "Success" page              | 302 to the page |
 * | Apple    | www.apple.com /library/test/success.html                     | 200 "Success" page              | 302 to the page |
 * | Windows  | www.msftconnecttest.com /connecttest.txt                     | 200 "Microsoft Connect Test"    | 302 to the page |
 * | Windows  | www.msftncsi.com /ncsi.txt                                   | 200 "Microsoft NCSI"            | 302 to the page |
 * | Firefox  | detectportal.firefox.com /canonical.html, /success.txt      | the canonical page, "success\n" | 302 to the page |
 * | any      | another Host than the device's (catch-all)                   | not handled (normal routes)     | 302 to the page |
 *
 * Limits, honestly: Android also probes https://www.google.com/generate_204, which an offline device cannot answer,
 * so the best an offline AP gets is "connected, no internet" / partial connectivity: Android then routes only apps
 * that bind their sockets to the Wi-Fi network (ConnectivityManager.bindProcessToNetwork or Network.openConnection)
 * over it. Windows online mode also needs the DNS answer dns.msftncsi.com -> 131.107.255.255 (see tc_dns_server.h).
 *
 * Example:
 *     tc_captive_config_t cc = TC_CAPTIVE_DEFAULT_CONFIG();
 *     cc.mode = TC_CAPTIVE_PORTAL; cc.portal_url = "http://192.168.4.1/";
 *     tc_captive_attach(http, &cc);
 */
#pragma once

#include "tc_http.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How probes are answered. */
typedef enum {
    TC_CAPTIVE_OFF = 0, /**< probes are ordinary requests */
    TC_CAPTIVE_PORTAL,  /**< every probe and foreign Host is redirected to the portal page: the OS's sign-in sheet */
    TC_CAPTIVE_ONLINE,  /**< every probe is answered as the real service answers it: the OS sees a usable network */
} tc_captive_mode_t;

/** Probe handling settings; start from TC_CAPTIVE_DEFAULT_CONFIG(). */
typedef struct {
    tc_captive_mode_t mode;  /**< portal or online */
    const char *portal_url;  /**< where portal mode redirects, e.g. "http://192.168.4.1/" (copied) */
    const char *device_host; /**< the Host the device's own pages use (IP or name); others are foreign (copied) */
} tc_captive_config_t;

#define TC_CAPTIVE_DEFAULT_CONFIG()                                                                                   \
    {                                                                                                                  \
        .mode = TC_CAPTIVE_PORTAL, .portal_url = "http://192.168.4.1/", .device_host = "192.168.4.1",                \
    }

/** @brief Counters of answered probes, by OS family (for the status page and the tests). */
typedef struct {
    uint32_t android;
    uint32_t apple;
    uint32_t windows;
    uint32_t firefox;
    uint32_t foreign; /**< requests for other hosts redirected in portal mode */
} tc_captive_stats_t;

/**
 * @brief Install the probe handling on an HTTP server (before its other routes are matched). Loop thread only.
 * The handling lives as long as the server and is freed with it.
 * @return TC_OK, TC_EINVAL (no server, bad mode, missing URL or host), TC_EBUSY (already attached), TC_ENOMEM
 */
int tc_captive_attach(tc_http_t *http, const tc_captive_config_t *cfg);

/** @brief The probe counters of a server with captive handling attached (zeros otherwise). Loop thread only. */
void tc_captive_stats(const tc_http_t *http, tc_captive_stats_t *out);

/**
 * @brief Classify a request as a known connectivity probe. Pure; exposed for tests and the status page.
 * @param host  the Host header value (port allowed), may be NULL
 * @param path  the decoded path
 * @return the OS family: 1 Android, 2 Apple, 3 Windows, 4 Firefox; 0 when it is not a probe
 */
int tc_captive_classify(const char *host, size_t host_len, const char *path);

#ifdef __cplusplus
}
#endif
