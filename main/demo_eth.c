/*
 * demo_eth.c - the demo's Ethernet (see demo_eth.h). The services listen on 0.0.0.0 and do not care which network
 * carries them: this file only gets the interface an address.
 */
#include "demo_eth.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>

#include "esp_eth.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "sdkconfig.h"

static const char *TAG = "demo_eth";

#define GOT_IP_BIT BIT0

static EventGroupHandle_t s_bits;
static volatile bool s_link_up;
static volatile uint32_t s_ip; /* network order, 0 = none */

#if CONFIG_DEMO_ETH_OPENETH
#define MAC_KIND "OpenCores MAC"
#else
#define MAC_KIND "internal EMAC"
#endif

static void on_eth_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    (void)base;
    (void)data;
    if (id == ETHERNET_EVENT_CONNECTED || id == ETHERNET_EVENT_DISCONNECTED) {
        s_link_up = id == ETHERNET_EVENT_CONNECTED;
        ESP_LOGI(TAG, "link %s", s_link_up ? "up" : "down");
    }
}

static void on_ip_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg;
    (void)base;
    if (id == IP_EVENT_ETH_GOT_IP) {
        const ip_event_got_ip_t *e = data;
        s_ip = e->ip_info.ip.addr;
        ESP_LOGI(TAG, "address " IPSTR, IP2STR(&e->ip_info.ip));
        xEventGroupSetBits(s_bits, GOT_IP_BIT);
    } else if (id == IP_EVENT_ETH_LOST_IP) {
        s_ip = 0;
        xEventGroupClearBits(s_bits, GOT_IP_BIT);
        ESP_LOGW(TAG, "address lost");
    }
}

static esp_eth_mac_t *new_mac(void)
{
    eth_mac_config_t mac = ETH_MAC_DEFAULT_CONFIG();
#if CONFIG_DEMO_ETH_OPENETH
    return esp_eth_mac_new_openeth(&mac);
#else
    eth_esp32_emac_config_t emac = ETH_ESP32_EMAC_DEFAULT_CONFIG();
    emac.smi_gpio.mdc_num = CONFIG_DEMO_ETH_MDC_GPIO;
    emac.smi_gpio.mdio_num = CONFIG_DEMO_ETH_MDIO_GPIO;
    return esp_eth_mac_new_esp32(&emac, &mac);
#endif
}

static esp_eth_phy_t *new_phy(void)
{
    eth_phy_config_t phy = ETH_PHY_DEFAULT_CONFIG();
#if CONFIG_DEMO_ETH_OPENETH
    /* QEMU's open_eth answers MII reads like a DP83848 with the link always up: no reset pin, no negotiation. */
    phy.reset_gpio_num = -1;
    phy.autonego_timeout_ms = 100;
    return esp_eth_phy_new_dp83848(&phy);
#else
    phy.phy_addr = CONFIG_DEMO_ETH_PHY_ADDR;
    phy.reset_gpio_num = CONFIG_DEMO_ETH_PHY_RESET_GPIO;
#if CONFIG_DEMO_ETH_PHY_IP101
    return esp_eth_phy_new_ip101(&phy);
#elif CONFIG_DEMO_ETH_PHY_LAN87XX
    return esp_eth_phy_new_lan87xx(&phy);
#elif CONFIG_DEMO_ETH_PHY_RTL8201
    return esp_eth_phy_new_rtl8201(&phy);
#elif CONFIG_DEMO_ETH_PHY_DP83848
    return esp_eth_phy_new_dp83848(&phy);
#else
    return esp_eth_phy_new_ksz80xx(&phy);
#endif
#endif
}

esp_err_t demo_eth_start(void)
{
    if ((s_bits = xEventGroupCreate()) == NULL) {
        return ESP_ERR_NO_MEM;
    }
    esp_err_t err = esp_netif_init();
    if (err != ESP_OK) {
        return err;
    }
    esp_netif_config_t ncfg = ESP_NETIF_DEFAULT_ETH();
    esp_netif_t *netif = esp_netif_new(&ncfg);
    esp_eth_mac_t *mac = new_mac();
    esp_eth_phy_t *phy = new_phy();
    if (netif == NULL || mac == NULL || phy == NULL) {
        ESP_LOGE(TAG, "cannot create the %s", netif == NULL ? "netif" : mac == NULL ? "MAC (" MAC_KIND ")" : "PHY");
        return ESP_ERR_NO_MEM; /* start-up only: what was made stays (the demo has no network then anyway) */
    }
    esp_eth_config_t ecfg = ETH_DEFAULT_CONFIG(mac, phy);
    esp_eth_handle_t eth = NULL;
    err = esp_eth_driver_install(&ecfg, &eth);
    if (err == ESP_OK) {
        err = esp_netif_attach(netif, esp_eth_new_netif_glue(eth));
    }
    if (err == ESP_OK) {
        err = esp_event_handler_register(ETH_EVENT, ESP_EVENT_ANY_ID, on_eth_event, NULL);
    }
    if (err == ESP_OK) {
        err = esp_event_handler_register(IP_EVENT, ESP_EVENT_ANY_ID, on_ip_event, NULL);
    }
    if (err == ESP_OK) {
        err = esp_eth_start(eth);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "Ethernet (" MAC_KIND "): %s", esp_err_to_name(err));
    }
    return err;
}

esp_err_t demo_eth_wait_ip(uint32_t timeout_ms)
{
    if (s_bits == NULL) {
        return ESP_ERR_INVALID_STATE;
    }
    EventBits_t b = xEventGroupWaitBits(s_bits, GOT_IP_BIT, pdFALSE, pdTRUE, pdMS_TO_TICKS(timeout_ms));
    return (b & GOT_IP_BIT) ? ESP_OK : ESP_ERR_TIMEOUT;
}

bool demo_eth_ip(char *buf, size_t cap)
{
    esp_ip4_addr_t ip = {.addr = s_ip};
    if (cap > 0) {
        buf[0] = '\0';
    }
    if (ip.addr == 0 || cap < 16) {
        return false;
    }
    snprintf(buf, cap, IPSTR, IP2STR(&ip));
    return true;
}

int demo_eth_describe(char *buf, size_t cap)
{
    esp_ip4_addr_t ip = {.addr = s_ip};
    char addr[16] = "-";
    if (ip.addr) {
        snprintf(addr, sizeof(addr), IPSTR, IP2STR(&ip));
    }
    return snprintf(buf, cap, "eth: link %s, address %s (" MAC_KIND ")\n", s_link_up ? "up" : "down", addr);
}
