/*
 * main.c - the tcp_core demo firmware: the device's TCP echo server and, optionally, a reconnecting TCP client on
 * one tcp_core loop (seed 000). Wi-Fi bring-up and the HTTP, WebSocket, stream and captive-portal services are added
 * by the firmware issue; on the linux target this runs over host sockets.
 */
#include <stdio.h>

#include "sdkconfig.h"
#include "tc_err.h"
#include "tc_loop.h"
#include "tc_tcp.h"

static void start_services(tc_loop_t *loop)
{
    tc_server_config_t scfg = TC_SERVER_DEFAULT_CONFIG();
    scfg.port = CONFIG_DEMO_ECHO_PORT;
    scfg.cb = tc_echo_cb;
    scfg.name = "echo";
    tc_server_t *echo;
    int rc = tc_server_start(loop, &scfg, &echo);
    printf("echo: %s on port %d\n", rc == TC_OK ? "listening" : tc_strerror(rc), CONFIG_DEMO_ECHO_PORT);
#if CONFIG_DEMO_CLIENT_ENABLE
    tc_client_config_t ccfg = TC_CLIENT_DEFAULT_CONFIG();
    ccfg.host = CONFIG_DEMO_CLIENT_HOST;
    ccfg.port = CONFIG_DEMO_CLIENT_PORT;
    ccfg.cb = tc_echo_cb;
    tc_client_t *client;
    rc = tc_client_start(loop, &ccfg, &client);
    printf("client: %s\n", rc == TC_OK ? "started" : tc_strerror(rc));
#endif
}

void app_main(void)
{
    tc_loop_t *loop;
    int rc = tc_loop_new(&loop);
    if (rc != TC_OK) {
        printf("tcp_core: loop: %s\n", tc_strerror(rc));
        return;
    }
    start_services(loop);
    tc_loop_run(loop);
}
