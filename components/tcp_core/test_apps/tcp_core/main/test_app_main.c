/*
 * test_app_main.c - tcp_core's own test app: on the device's own stack (lwIP's loopback on a chip, the host's on the
 * linux target), an echo server and a reconnecting client on one loop exchange ROUNDS messages; with the Ethernet
 * choice of the app's Kconfig (Espressif's QEMU) the client then exchanges ROUNDS more with an echo peer on the
 * network. Every handle stops through tc_handle_stop_wait(), the loop is freed, and tcp_core's heap must be back to
 * where it started. The last line says PASS or FAIL with the reason; pytest_tcp_core_app.py waits for it.
 */
#include <stdio.h>
#include <string.h>

#include "sdkconfig.h"
#include "tcp_core.h"

#if !CONFIG_IDF_TARGET_LINUX
#include "esp_netif.h"
#endif
#if CONFIG_TC_TEST_APP_NET_OPENETH
#include "esp_eth.h"
#include "esp_event.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#endif

#define ROUNDS 100
#define MSG "ping"
#define MSG_LEN 4

typedef struct {
    int echoes;  /* messages that came back whole */
    size_t have; /* bytes of the current answer */
    char got[MSG_LEN];
    int bad; /* an answer that was not our message */
} client_state_t;

static void client_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user)
{
    client_state_t *st = user;
    if (ev == TC_EV_OPEN) {
        tc_conn_send(conn, MSG, MSG_LEN);
        return;
    }
    if (ev != TC_EV_DATA) {
        return;
    }
    const char *p = data;
    for (size_t i = 0; i < len; i++) {
        st->got[st->have++] = p[i];
        if (st->have < MSG_LEN) {
            continue;
        }
        st->have = 0;
        if (memcmp(st->got, MSG, MSG_LEN) != 0) {
            st->bad = 1;
            return;
        }
        if (++st->echoes < ROUNDS) {
            tc_conn_send(conn, MSG, MSG_LEN);
        }
    }
}

/* A reconnecting client to host:port on loop, run until ROUNDS echoes came back (or about 10 s), then stopped. */
static const char *exchange(tc_loop_t *loop, const char *host, uint16_t port, const char *what)
{
    client_state_t cs = {0};
    tc_client_config_t ccfg = TC_CLIENT_DEFAULT_CONFIG();
    ccfg.host = host;
    ccfg.port = port;
    ccfg.backoff_max_ms = 1000; /* a peer that is not listening yet is tried again within a second */
    ccfg.cb = client_cb;
    ccfg.user = &cs;
    tc_client_t *cli;
    if (tc_client_start(loop, &ccfg, &cli) != TC_OK) {
        return "tc_client_start";
    }
    for (int turn = 0; turn < 1000 && cs.echoes < ROUNDS && !cs.bad; turn++) { /* at most ~10 s */
        tc_loop_run_once(loop, 10);
    }
    tc_stop_report_t rep;
    int crc = tc_handle_stop_wait(tc_client_handle(cli), 500, &rep);
    printf("tcp_core test app: %s %s:%u: %d of %d echoes\n", what, host, (unsigned)port, cs.echoes, ROUNDS);
    if (cs.bad) {
        return "an echo came back wrong";
    }
    if (cs.echoes != ROUNDS) {
        return "not every message came back";
    }
    return crc == TC_OK ? NULL : "the client's stop failed";
}

static const char *run(void)
{
    tc_alloc_stats_t st;
    tc_alloc_stats(&st);
    size_t before = st.bytes_in_use;
    tc_loop_t *loop;
    if (tc_loop_new(&loop) != TC_OK) {
        return "tc_loop_new";
    }
    tc_server_config_t scfg = TC_SERVER_DEFAULT_CONFIG();
    scfg.host = "127.0.0.1";
    scfg.port = 0;
    scfg.cb = tc_echo_cb;
    tc_server_t *srv;
    if (tc_server_start(loop, &scfg, &srv) != TC_OK) {
        tc_loop_free(loop);
        return "tc_server_start";
    }
    const char *why = exchange(loop, "127.0.0.1", tc_server_port(srv), "loopback");
#if CONFIG_TC_TEST_APP_NET_OPENETH
    if (why == NULL) {
        why = exchange(loop, CONFIG_TC_TEST_APP_PEER_HOST, CONFIG_TC_TEST_APP_PEER_PORT, "Ethernet peer");
    }
#endif
    tc_stop_report_t rep;
    int src = tc_handle_stop_wait(tc_server_handle(srv), 500, &rep);
    int lrc = tc_loop_free(loop);
    tc_alloc_stats(&st);
    printf("tcp_core test app: heap %zu -> %zu bytes (peak %zu)\n", before, st.bytes_in_use, st.bytes_peak);
    if (why != NULL) {
        return why;
    }
    if (src != TC_OK || lrc != TC_OK) {
        return "a stop or the loop's free failed";
    }
    if (st.bytes_peak <= before) {
        return "tcp_core's allocation counters saw nothing"; /* the heap check below would prove nothing */
    }
    return st.bytes_in_use == before ? NULL : "tcp_core heap not back to its start";
}

#if CONFIG_TC_TEST_APP_NET_OPENETH
/* The OpenCores MAC of Espressif's QEMU with its DHCP client; returns once the interface has an address. */
static const char *ethernet_up(void)
{
    if (esp_event_loop_create_default() != ESP_OK) {
        return "esp_event_loop_create_default";
    }
    esp_netif_config_t ncfg = ESP_NETIF_DEFAULT_ETH();
    esp_netif_t *netif = esp_netif_new(&ncfg);
    eth_mac_config_t mac_cfg = ETH_MAC_DEFAULT_CONFIG();
    esp_eth_mac_t *mac = esp_eth_mac_new_openeth(&mac_cfg);
    eth_phy_config_t phy_cfg = ETH_PHY_DEFAULT_CONFIG();
    phy_cfg.reset_gpio_num = -1; /* QEMU's MII answers as a DP83848 with the link always up */
    phy_cfg.autonego_timeout_ms = 100;
    esp_eth_phy_t *phy = esp_eth_phy_new_dp83848(&phy_cfg);
    if (netif == NULL || mac == NULL || phy == NULL) {
        return "the Ethernet netif, MAC or PHY"; /* start-up only: the app ends here */
    }
    esp_eth_config_t ecfg = ETH_DEFAULT_CONFIG(mac, phy);
    esp_eth_handle_t eth = NULL;
    if (esp_eth_driver_install(&ecfg, &eth) != ESP_OK ||
        esp_netif_attach(netif, esp_eth_new_netif_glue(eth)) != ESP_OK || esp_eth_start(eth) != ESP_OK) {
        return "the Ethernet driver";
    }
    for (int i = 0; i < 100; i++) { /* DHCP from QEMU's user networking: at most 10 s */
        esp_netif_ip_info_t ip;
        if (esp_netif_get_ip_info(netif, &ip) == ESP_OK && ip.ip.addr != 0) {
            printf("tcp_core test app: Ethernet address " IPSTR "\n", IP2STR(&ip.ip));
            return NULL;
        }
        vTaskDelay(pdMS_TO_TICKS(100));
    }
    return "no address from DHCP";
}
#endif

void app_main(void)
{
    const char *why = NULL;
#if !CONFIG_IDF_TARGET_LINUX
    /* lwIP's thread: the stack's loopback needs it as much as a network does. */
    if (esp_netif_init() != ESP_OK) {
        why = "esp_netif_init";
    }
#endif
#if CONFIG_TC_TEST_APP_NET_OPENETH
    if (why == NULL) {
        why = ethernet_up();
    }
#endif
    if (why == NULL) {
        why = run();
    }
    if (why == NULL) {
        printf("tcp_core test app: PASS\n");
    } else {
        printf("tcp_core test app: FAIL (%s)\n", why);
    }
    fflush(stdout);
}
