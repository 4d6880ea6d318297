/*
 * demo_eth.h - the demo's Ethernet network: an esp_netif with a DHCP client over the OpenCores MAC (Espressif's
 * QEMU) or the ESP32's internal EMAC with an RMII PHY (menuconfig "tcp_core demo > Network").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Bring Ethernet up: driver, esp_netif (DHCP client), link and address events; returns without waiting.
 *
 * Call once, from app_main, after esp_event_loop_create_default(). Not thread-safe.
 * @return ESP_OK; ESP_ERR_NO_MEM or the driver's error when the MAC, the PHY or the netif cannot be made
 */
esp_err_t demo_eth_start(void);

/**
 * @brief Wait until DHCP gave the interface an address.
 *
 * Any task. @param timeout_ms  how long at most
 * @return ESP_OK with an address, ESP_ERR_TIMEOUT without one, ESP_ERR_INVALID_STATE before demo_eth_start()
 */
esp_err_t demo_eth_wait_ip(uint32_t timeout_ms);

/**
 * @brief The interface's address as DHCP gave it, dotted ("10.0.2.15").
 *
 * Any task (a snapshot). @param buf  output, at least 16 bytes @param cap  its size
 * @return true with an address; false (buf = "") before DHCP has given one
 */
bool demo_eth_ip(char *buf, size_t cap);

/**
 * @brief One status line for the console: link, address, MAC kind ("eth: link up 10.0.2.15 (OpenCores MAC)\n").
 *
 * Any task (a snapshot that may be a moment old). @param buf  output @param cap  its size
 * @return what snprintf() returns
 */
int demo_eth_describe(char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
