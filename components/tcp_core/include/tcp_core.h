/*
 * tcp_core.h - the one header to include for tcp_core: the portable core (loop, TCP server and client, registry,
 * HTTP/WebSocket/streaming server, captive-portal helpers, DNS responder, console) and, in an ESP-IDF build, the ESP
 * glue (esp_err_t conversion, the esp_http_server adapter, the esp_console front end; Wi-Fi on chips).
 *
 * Example:
 *     #include "tcp_core.h"
 *     tc_loop_t *loop; tc_loop_new(&loop);
 *     tc_server_config_t cfg = TC_SERVER_DEFAULT_CONFIG(); cfg.port = 3333; cfg.cb = tc_echo_cb;
 *     tc_server_start(loop, &cfg, &srv); tc_loop_run(loop);
 *
 * The demo firmware's services (tc_app.h, the dashboard, the demo frames) are not in the component: they live in
 * the project's main/app/ and use this API like any application.
 */
#pragma once

#include "tc_version.h"

#include "tc_err.h"
#include "tc_config.h"
#include "tc_alloc.h"
#include "tc_addr.h"
#include "tc_loop.h"
#include "tc_registry.h"
#include "tc_registry_ext.h"
#include "tc_backend.h"
#include "tc_tcp.h"
#include "tc_http.h"
#include "tc_captive.h"
#include "tc_dns_server.h"
#include "tc_console.h"

#if defined(ESP_PLATFORM)
/* The ESP glue's headers only when their piece is on (menuconfig: tcp_core > ESP-IDF glue): each includes the
 * header of the ESP-IDF component it wraps, which an application without that piece does not have. */
#include "sdkconfig.h"
#include "tc_esp.h"
#if CONFIG_TCP_CORE_ESP_CONSOLE
#include "tc_esp_console.h"
#endif
#if CONFIG_TCP_CORE_HTTPD_ADAPTER
#include "tc_httpd_adapter.h"
#endif
#if CONFIG_TCP_CORE_WIFI
#include "tc_wifi.h"
#endif
#endif
