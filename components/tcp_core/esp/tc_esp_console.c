/*
 * esp/tc_esp_console.c - the portable console (src/tc_console.c) registered with esp_console (see tc_esp_console.h).
 */
#include "tc_esp_console.h"

#include <stdio.h>
#include <stdlib.h>

#include "esp_console.h"
#include "esp_log.h"
#include "esp_task.h"
#include "sdkconfig.h"
#include "tc_esp.h"

#define TAG TC_ESP_TAG_CONSOLE

/* Text of one command: enough for `status` with ~20 sockets; longer output is cut with "...". */
#define OUT_CAP 3072

/* esp_console before 5.3 passes no context to commands: the settings live here, set once. */
static tc_console_config_t s_cfg;
static bool s_registered;

static int run(int argc, char **argv)
{
    char *out = malloc(OUT_CAP);
    if (out == NULL) {
        printf("console: out of memory\n");
        return 1;
    }
    int rc = tc_console_exec_argv(&s_cfg, argc, argv, out, OUT_CAP);
    fputs(out, stdout);
    fflush(stdout);
    free(out);
    return rc < 0 ? 1 : 0;
}

esp_err_t tc_esp_console_register(const tc_console_config_t *cfg)
{
    if (cfg == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (s_registered) {
        return ESP_ERR_INVALID_STATE;
    }
    s_cfg = *cfg;
    size_t n = 0;
    const tc_console_cmd_t *cmds = tc_console_commands(&n);
    for (size_t i = 0; i < n; i++) {
        const esp_console_cmd_t c = {
            .command = cmds[i].name,
            .help = cmds[i].help,
            .hint = cmds[i].args[0] ? cmds[i].args : NULL,
            .func = run,
        };
        esp_err_t err = esp_console_cmd_register(&c);
        if (err != ESP_OK) {
            ESP_LOGE(TAG, "registering \"%s\": %s", cmds[i].name, esp_err_to_name(err));
            return err;
        }
    }
    s_registered = true;
    return ESP_OK;
}

esp_err_t tc_esp_console_start(const tc_console_config_t *cfg)
{
    if (cfg == NULL) {
        return ESP_ERR_INVALID_ARG;
    }
    if (s_registered) {
        return ESP_ERR_INVALID_STATE;
    }
    esp_console_repl_t *repl = NULL;
    esp_console_repl_config_t rc = ESP_CONSOLE_REPL_CONFIG_DEFAULT();
    rc.prompt = TC_CONSOLE_PROMPT_WORD; /* esp_console appends the space: the line shows TC_CONSOLE_PROMPT */
    rc.max_cmdline_length = TC_CONSOLE_MAX_LINE + 1;
#if CONFIG_IDF_TARGET_LINUX
    /* The REPL waits in a host read() that FreeRTOS's POSIX simulator cannot see, so it looks always ready and
     * would starve every lower-priority task (the tcp_core loop included): run it at app_main's priority. */
    rc.task_priority = ESP_TASK_MAIN_PRIO;
#endif
    esp_err_t err;
#if defined(CONFIG_ESP_CONSOLE_UART_DEFAULT) || defined(CONFIG_ESP_CONSOLE_UART_CUSTOM)
    esp_console_dev_uart_config_t hw = ESP_CONSOLE_DEV_UART_CONFIG_DEFAULT();
    err = esp_console_new_repl_uart(&hw, &rc, &repl);
#elif defined(CONFIG_ESP_CONSOLE_USB_CDC)
    esp_console_dev_usb_cdc_config_t hw = ESP_CONSOLE_DEV_CDC_CONFIG_DEFAULT();
    err = esp_console_new_repl_usb_cdc(&hw, &rc, &repl);
#elif defined(CONFIG_ESP_CONSOLE_USB_SERIAL_JTAG)
    esp_console_dev_usb_serial_jtag_config_t hw = ESP_CONSOLE_DEV_USB_SERIAL_JTAG_CONFIG_DEFAULT();
    err = esp_console_new_repl_usb_serial_jtag(&hw, &rc, &repl);
#else
    (void)rc; /* CONFIG_ESP_CONSOLE_NONE: the REPL config has no device to go with */
    ESP_LOGE(TAG, "no console device in sdkconfig (CONFIG_ESP_CONSOLE_*): no REPL");
    return ESP_ERR_NOT_SUPPORTED;
#endif
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "creating the REPL: %s", esp_err_to_name(err));
        return err;
    }
    err = tc_esp_console_register(cfg);
    if (err == ESP_OK) {
        err = esp_console_start_repl(repl);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "starting the REPL: %s", esp_err_to_name(err));
        repl->del(repl); /* esp_console_deinit(): the commands are gone too */
        s_registered = false;
    }
    return err;
}
