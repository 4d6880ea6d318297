/*
 * fuzz_console.c - the console's line handling (tc_console_exec()): tokenizer, quoting, argument checks and the
 * bounded output writer, with bytes from the serial port as they come.
 *
 * Input: byte 0 chooses the output capacity (0..255), the rest is the command line (NULs cut it, as a C string
 * would). Checked on every input: the output is terminated within its capacity, a non-negative return is the text's
 * length, and the callbacks only ever see arguments the console validated.
 * Replay: gcc ... fuzz_console.c replay_main.c <sources> -lpthread; fuzz: clang -fsanitize=fuzzer,address,undefined.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tc_console.h"
#include "tc_err.h"

static int wifi_cb(const char *ssid, const char *password, void *user)
{
    (void)user;
    size_t sl = strlen(ssid), pl = strlen(password);
    if (sl < 1 || sl > 32 || (pl != 0 && (pl < 8 || pl > 64))) {
        abort(); /* the console must refuse these before calling */
    }
    return sl % 2 ? TC_OK : TC_EIO;
}

static int ota_cb(uint32_t deadline_ms, tc_console_ota_result_t *res, void *user)
{
    (void)user;
    if (deadline_ms < 1 || deadline_ms > TC_CONSOLE_OTA_DEADLINE_MAX_MS) {
        abort();
    }
    res->elapsed_ms = deadline_ms / 2;
    res->heap_freed = -(int64_t)deadline_ms;
    return deadline_ms % 3 ? TC_OK : TC_ECLOSED;
}

static int info_cb(char *buf, size_t cap, void *user)
{
    (void)user;
    const char *text = "wifi: fuzz 10.0.0.1\n";
    size_t n = strlen(text);
    if (cap > 0) {
        size_t k = n < cap - 1 ? n : cap - 1;
        memcpy(buf, text, k);
        buf[k] = '\0';
    }
    return (int)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t cap = data[0];
    char line[TC_CONSOLE_MAX_LINE + 64];
    size_t n = size - 1 < sizeof(line) - 1 ? size - 1 : sizeof(line) - 1;
    memcpy(line, data + 1, n);
    line[n] = '\0';

    tc_console_config_t cfg = TC_CONSOLE_DEFAULT_CONFIG();
    cfg.wifi = wifi_cb;
    cfg.ota_prepare = ota_cb;
    cfg.info = info_cb;
    char *out = malloc(cap ? cap : 1); /* exact size: ASan sees a write past the capacity */
    if (out == NULL) {
        return 0;
    }
    int rc = tc_console_exec(&cfg, line, cap ? out : NULL, cap);
    if (cap > 0) {
        size_t len = strnlen(out, cap);
        if (len == cap) {
            abort(); /* not terminated */
        }
        if (rc >= 0 && (size_t)rc != len) {
            abort();
        }
    }
    free(out);
    return 0;
}
