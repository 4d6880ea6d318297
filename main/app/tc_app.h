/*
 * tc_app.h - the device's services on one loop, the same on the device and on the host: the TCP echo server, a
 * reconnecting TCP client that echoes (seed 000), and the HTTP service with its live dashboard, status JSON, WebSocket
 * echo, demo MJPEG stream and Server-Sent Events, and two body routes: POST/PUT /api/upload takes its body in pieces
 * (tc_http_route_body(), answered {"bytes","crc32"}; "?slow=MS" pauses after each piece) and /api/echo buffers it.
 *
 * HTTP routes: / the dashboard (from flash, gzip'd when the client accepts it), /api/status the registry, heap and
 * services as JSON (with the OTA route: its state under "ota"), /api/live the same document as one Server-Sent Event
 * every events_ms, POST /api/stop (HTTP Basic auth with the admin credential) to ask the owner to stop, /ws
 * WebSocket echo, /ws/all broadcast, /stream MJPEG, /events SSE ticks, and with an OTA sink /api/ota (tc_ota.h).
 *
 * Example:
 *     tc_app_config_t cfg = TC_APP_DEFAULT_CONFIG();
 *     tc_app_start(loop, &cfg, &app);
 *     ... tc_handle_stop_wait(tc_app_handle(app), 2000, &report);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_captive.h"
#include "tc_dns_server.h"
#include "tc_http.h"
#include "tc_http_auth.h"
#include "tc_http_static.h"
#include "tc_ota.h"
#include "tc_tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_app tc_app_t; /**< opaque set of running services */

/**
 * @brief Called on the loop thread (outside any HTTP handler) after an authorised POST /api/stop was answered 202.
 * The owner decides what stopping means (tc_handle_stop(tc_app_handle(app), ...), a reboot into OTA, ...). Owner first, user last.
 */
typedef void (*tc_app_stop_request_cb)(tc_app_t *app, void *user);

/**
 * Services of the application's own beside the app's (esp_http_server on the chip) that an OTA upload pauses
 * with the app's (seed 003), and resumes when the upload fails. Both run on the loop thread and must not block.
 */
typedef struct {
    /** Begin pausing within deadline_ms; report with tc_app_ota_paused() on the loop thread (now or later, e.g.
     * through tc_loop_post() from a task that did the blocking part). The upload writes once every service has
     * paused, or at the deadline. Return TC_OK, or a negative code (nothing to wait for; the upload goes on). */
    int (*pause)(tc_app_t *app, uint32_t deadline_ms, void *user);
    /** Bring them back: the upload failed (or the host's no-op reboot). Called only after the pause reported. */
    void (*resume)(tc_app_t *app, void *user);
    void *user; /**< for pause and resume */
} tc_app_ota_hooks_t;

/** A service port value meaning "do not run this service". */
#define TC_APP_OFF (-1)

/** tc_app_config_t.http_body_min_rate value turning the minimum-rate rule off. */
#define TC_APP_NO_RATE 0xffffffffu

/** tc_app_config_t.stream_sndbuf value leaving the TCP stack's own send buffer to live streams. */
#define TC_APP_STACK_SNDBUF 0xffffffffu

/** Which services run, and where; start from TC_APP_DEFAULT_CONFIG(). */
typedef struct {
    const char *host;          /**< numeric address the servers listen on */
    int32_t echo_port;         /**< TCP echo server port, 0 = any free port, TC_APP_OFF = no echo server */
    uint32_t echo_max_conns;   /**< echo connections at most (newcomers beyond are refused with RST, none is
                                    evicted), 0 = TC_CFG_MAX_CONNS */
    uint32_t echo_keepalive_s; /**< TCP keepalive of echo connections, served and dialled (the client), idle seconds
                                    before the first probe (3 probes, a third of it apart): a peer that vanished
                                    without a FIN (a phone that left the Wi-Fi) is found and its slot freed, where
                                    refusing newcomers would otherwise lock the service out for good, and the
                                    client dials again instead of staying connected to nobody. 0 = 60 */
    const char *connect_host;  /**< remote of the echoing TCP client, NULL = no client (copied) */
    uint16_t connect_port;     /**< its port; 0 is refused (TC_EBADPORT) when connect_host is set */
    int32_t http_port;         /**< HTTP service port, 0 = any free port, TC_APP_OFF = no HTTP service */
    uint32_t http_max_conns;   /**< HTTP connections at most */
    uint32_t http_idle_timeout_ms; /**< keep-alive idle timeout, 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint32_t http_head_timeout_ms; /**< request-head deadline (408), 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint32_t ws_max_message;   /**< WebSocket message limit (1009 beyond), 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint32_t http_body_min_rate; /**< request bodies' minimum rate in bytes/s (tc_http_config_t.body_min_rate),
                                      0 = TC_HTTP_DEFAULT_CONFIG()'s, TC_APP_NO_RATE = no rule */
    uint32_t http_body_grace_ms; /**< its grace period and window, 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint64_t upload_max;       /**< body limit of POST/PUT /api/upload (taken in pieces, answered with its byte count
                                    and CRC-32; "?slow=MS" pauses MS ms after each piece), 0 = no limit */
    uint32_t ws_ping_ms;       /**< WebSocket ping interval, 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint32_t ws_pong_timeout_ms; /**< WebSocket pong deadline, 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint32_t sse_heartbeat_ms; /**< SSE heartbeat interval, 0 = TC_HTTP_DEFAULT_CONFIG()'s */
    uint32_t stream_sndbuf;    /**< send buffer of live streams (tc_http_config_t.stream_sndbuf), 0 =
                                    TC_HTTP_DEFAULT_CONFIG()'s, TC_APP_STACK_SNDBUF = the stack's own */
    uint32_t stream_fps;       /**< frames per second of the demo MJPEG stream (0 = 10, at most 1000): frame k is
                                    due at ceil(k * 1000 / stream_fps) ms of the loop's clock (tc_loop_now(), the
                                    monotonic clock), the same instants for every viewer; a viewer that is not
                                    ready at an instant (tc_http_stream_ready()) skips that frame, none is queued */
    uint32_t stream_frame_bytes; /**< 0: stream the demo frames as they are (1.1-1.2 KB, tc_demo_frames.h).
                                      Otherwise every frame of /stream is exactly this many bytes: tc_app_start()
                                      allocates padded copies of the demo frames (TC_DEMO_FRAME_COUNT x this, through
                                      tc_alloc, freed when the app is stopped) that stay valid JPEGs: SOI first, then
                                      COM segments (FF FE, at most 65537 bytes each) or, for 1-3 bytes of padding,
                                      fill bytes (FF, ITU T.81 B.1.1.2), then the original frame after its SOI, EOI
                                      last. Below the largest demo frame or above TC_APP_STREAM_FRAME_MAX: TC_EINVAL.
                                      For load tests (a camera's frame size without a camera): on a device the
                                      copies take TC_DEMO_FRAME_COUNT x this of heap */
    uint32_t events_ms;        /**< interval of the SSE ticks (0: 1000) */
    tc_captive_mode_t captive; /**< connectivity-probe answers (tc_captive.h); TC_CAPTIVE_OFF: none */
    int32_t dns_port;          /**< captive DNS responder port on host (53 on the device), TC_APP_OFF = none */
    const char *dns_answer;    /**< the address every name resolves to; NULL = host (which must then be specific) */
    const char *portal_host;   /**< the device's own Host for its pages; NULL = dns_answer or host */
    tc_app_stop_request_cb stop_request; /**< what an authorised POST /api/stop calls (admin_pass set); NULL: the
                                              route answers 403 */
    void *stop_request_user;   /**< user of stop_request */
    const tc_ota_sink_t *ota_sink; /**< firmware upload at /api/ota into this sink (the chip's: tc_ota_esp.h;
                                        copied), NULL = ota_dir's file sink or no OTA route */
    const char *ota_dir;       /**< host: POST /api/ota writes ota_dir/firmware.bin (tc_ota_file_sink_init(); copied)
                                    when ota_sink is NULL; NULL = no OTA route */
    uint64_t ota_max;          /**< largest image (413 beyond), 0 = no limit */
    const char *admin_user;    /**< the one admin credential, HTTP Basic auth (tc_http_auth.h) of every admin route:
                                    POST /api/stop, /api/ota, /api/ota/reboot; NULL = "admin"; copied */
    const char *admin_pass;    /**< its password; copied. NULL or "": /api/stop answers 403 and the OTA routes
                                    take no authentication. Basic auth sends it in clear text: on an open soft-AP
                                    anyone in range can read it */
    const char *cors_origins;  /**< "*" or a comma-separated list of origins whose scripts may read the service's
                                    answers (/api/status, /api/ota, static files...): a server-wide CORS policy
                                    (tc_http_config_t.cors) allowing GET (and HEAD) with Content-Type and
                                    Authorization, preflights answered; NULL = none */
    const char *static_dir;    /**< files served under "/" after the service's own routes (tc_http_static.h; a host
                                    path or a VFS mount; copied), NULL = none */
    tc_app_ota_hooks_t ota_hooks; /**< extra services an OTA upload pauses (both NULL: none); copied */
} tc_app_config_t;

/** Largest tc_app_config_t.stream_frame_bytes (16 MiB): the padded frames take TC_DEMO_FRAME_COUNT times it. */
#define TC_APP_STREAM_FRAME_MAX (16u * 1024u * 1024u)

/** Defaults: echo on 3333, HTTP on 8080 (16 connections), the demo stream at 10 fps with the demo frames as they
 * are, SSE ticks every second, no client, no captive portal, no DNS. */
#define TC_APP_DEFAULT_CONFIG()                                                                                \
    {                                                                                                          \
        .host = "0.0.0.0", .echo_port = 3333, .connect_host = NULL, .connect_port = 0, .http_port = 8080,     \
        .http_max_conns = 16, .stream_fps = 10, .stream_frame_bytes = 0, .events_ms = 1000,                    \
        .captive = TC_CAPTIVE_OFF, .dns_port = TC_APP_OFF, .dns_answer = NULL, .portal_host = NULL,            \
    }

/** Where each service's report sits in the app's stop report (tc_stop_report_t.parts, nparts 4); a service that was
 * not running has kind 0 and zero counters. The app's own counters are the sums of its parts'. */
enum {
    TC_APP_PART_ECHO = 0, /**< the echo server */
    TC_APP_PART_HTTP,     /**< the HTTP service */
    TC_APP_PART_CLIENT,   /**< the client: graceful 1 when its connection closed, forced 1 when it was reset */
    TC_APP_PART_DNS,      /**< the captive DNS responder */
    TC_APP_PART_COUNT,
};

/**
 * @brief Start the configured services. Loop thread only. On error nothing is left running.
 * @return TC_OK, TC_EBADPORT (client port 0), TC_EINVAL (a port above 65535, stream_frame_bytes out of range),
 *         TC_EADDRINUSE, TC_EBADADDR, TC_ENOMEM, ...
 */
int tc_app_start(tc_loop_t *loop, const tc_app_config_t *cfg, tc_app_t **out);

/** @brief The echo server's bound port (0 when not running). */
uint16_t tc_app_echo_port(const tc_app_t *app);

/** @brief The HTTP service's bound port (0 when not running). */
uint16_t tc_app_http_port(const tc_app_t *app);

/** @brief The bound DNS responder port, 0 when there is none. */
uint16_t tc_app_dns_port(const tc_app_t *app);

/** @brief The HTTP server, to add routes (NULL when not running). */
tc_http_t *tc_app_http(const tc_app_t *app);

/** @brief The OTA route's state (NULL when there is no OTA route). Before writing an image it ends the demo
 * streams (/stream, /events; new viewers get 503 meanwhile), stops the echo server (newcomers refused, its sessions
 * closed) and pauses ota_hooks' services, all within tc_ota_config_t.prepare_deadline_ms; when the upload fails, or
 * after a host (no-op) reboot, viewers are let in again, the echo server listens again on the same port and the
 * hooks' resume runs. */
tc_ota_t *tc_app_ota(const tc_app_t *app);

/**
 * @brief Report that the extra services (tc_app_config_t.ota_hooks.pause) have paused. Loop thread. Must be called
 * once for every pause that returned TC_OK, even after the app's stop (tc_handle_stop) began (the stop waits for it).
 * @param report  a few words for the OTA status (copied, may be NULL), e.g. "httpd stopped in 12 ms"
 */
void tc_app_ota_paused(tc_app_t *app, const char *report);

/**
 * @brief The OTA progress line of the app's upload route for the console (tc_console_config_t.ota, with ota_user =
 * the app): tc_ota_progress_line(), or a line saying there is no route. Loop thread.
 * @return snprintf's length
 */
int tc_app_console_ota(char *buf, size_t cap, void *app);

/** @brief The client (NULL when not running). */
tc_client_t *tc_app_client(const tc_app_t *app);

/**
 * @brief The app as a handle: tc_handle_stop() stops every service with the one deadline (see tc_server_handle(),
 * tc_http.h, tc_client_handle(), tc_dns_server_handle()); the report sums theirs and carries each in parts
 * (TC_APP_PART_*). The app is freed before the stop's callback runs.
 * @param app  the app (NULL gives NULL)
 * @return its handle, valid until the stop completes
 */
tc_handle_t *tc_app_handle(tc_app_t *app);

/**
 * @brief Write the registry and the allocation counters of a loop as JSON: {"backend", "heap", "sockets", "count"}.
 * Loop thread only.
 * @return the length written (without NUL), or TC_ELIMIT when cap is too small
 */
int tc_app_status_json(const tc_loop_t *loop, char *buf, size_t cap);

/**
 * @brief What /api/status serves: tc_app_status_json()'s document plus "app" (version, uptime, ports, captive mode,
 * stream rate, client, whether the stop route is enabled) and, with the OTA route, "ota" (tc_ota_status_json()).
 * Loop thread only.
 * @return the length written (without NUL), or TC_ELIMIT when cap is too small
 */
int tc_app_status_json_app(const tc_app_t *app, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
