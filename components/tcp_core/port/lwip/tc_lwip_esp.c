/*
 * port/lwip/tc_lwip_esp.c - the lwIP shim of the chips: ESP-IDF's esp-lwip. esp_netif_init() and the network glue
 * (esp/tc_wifi.c, Ethernet) start the stack and own its interfaces before the first socket, so there is nothing to
 * bring up here; tc_sock_lwip.c does the rest, as on the host.
 */
#include "tc_lwip_shim.h"

#include "tc_err.h"

const char *tc__lwip_name(void)
{
    return "esp-lwip";
}

int tc__lwip_init(const tc_sock_env_t *env)
{
    (void)env;
    return TC_OK;
}

int tc__lwip_ready(void)
{
    return 1;
}
