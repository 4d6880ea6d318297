/*
 * tc_console.h - the device's serial-console commands as portable C: one command line in, its text out; the
 * firmware runs them under esp_console (tc_esp_console.h) and `tcp-core serve --console-pty` on a pseudo-terminal.
 *
 * | command                    | does                                                                        |
 * |----------------------------|-----------------------------------------------------------------------------|
 * | status                     | the firmware's info lines, the OTA line, then the loop's registry: one line |
 * |                            | per socket                                                                  |
 * | wifi <ssid> [password]     | hands Wi-Fi credentials to the firmware's callback (which stores them)      |
 * | ota-prepare [deadline_ms]  | the firmware's callback stops every server within the deadline; prints the  |
 * |                            | time it took, the connections closed and forced, and the heap freed         |
 * | ota                        | the firmware upload's progress (bytes, percent, rate, time left) or state   |
 * | help                       | the command list                                                            |
 *
 * Arguments are separated by spaces; "double quotes" keep spaces in one argument, and \" and \\ escape inside them
 * (an SSID may hold spaces). Output lines end with "\n". A password is never echoed.
 *
 * Threads: the commands run on the caller's thread, which must not be the loop's: `status` reads the registry on
 * the loop thread through tc_loop_post() and waits for it, and the ota-prepare callback usually waits for a stop
 * that the loop carries out. On the loop thread itself use tc_console_status().
 *
 * Example:
 *     tc_console_config_t cc = TC_CONSOLE_DEFAULT_CONFIG();
 *     cc.loop = loop; cc.wifi = store_credentials; cc.ota_prepare = stop_everything;
 *     char out[1024]; int rc = tc_console_exec(&cc, "ota-prepare 2000", out, sizeof(out)); fputs(out, stdout);
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "tc_loop.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The prompt word; esp_console's REPL prints it followed by one space of its own. */
#define TC_CONSOLE_PROMPT_WORD "tcp_core>"
/** The prompt a console front end prints before each line (the pty console prints it as is). */
#define TC_CONSOLE_PROMPT TC_CONSOLE_PROMPT_WORD " "

/** Deadline of `ota-prepare` without an argument. */
#define TC_CONSOLE_OTA_DEADLINE_MS 3000u

/** Largest deadline `ota-prepare` accepts (a bigger one is a typo, not a plan). */
#define TC_CONSOLE_OTA_DEADLINE_MAX_MS 600000u

/** Longest command line accepted, without its NUL (TC_ETOOBIG beyond). */
#define TC_CONSOLE_MAX_LINE 255

/** Most arguments in one line, the command included (TC_ETOOBIG beyond). */
#define TC_CONSOLE_MAX_ARGS 8

/** What the ota-prepare callback reports; the console prints it. */
typedef struct {
    uint32_t elapsed_ms; /**< stop request to the last server stopped */
    uint32_t graceful;   /**< connections that closed before the deadline */
    uint32_t forced;     /**< connections aborted (or sockets shut down) at the deadline */
    int64_t heap_freed;  /**< bytes: free heap after minus before on the device, tcp_core's own bytes on the host */
} tc_console_ota_result_t;

/**
 * @brief Store Wi-Fi credentials (NVS on the device) and apply them. Runs on the console's thread.
 * @param ssid      1 to 32 bytes, checked by the console
 * @param password  "" for an open network, else 8 to 63 characters or 64 hex digits, checked by the console
 * @param user      the config's user pointer
 * @return TC_OK or a negative tc_err_t (printed)
 */
typedef int (*tc_console_wifi_cb)(const char *ssid, const char *password, void *user);

/**
 * @brief Stop every server within deadline_ms (tc_handle_stop() of the app, tc_httpd_stop_deadline()) and report. Runs on the
 * console's thread and may block up to the deadline (plus the loop's reaction time).
 * @param deadline_ms  1 to TC_CONSOLE_OTA_DEADLINE_MAX_MS
 * @param result       zeroed by the console; fill it in
 * @param user         the config's user pointer
 * @return TC_OK, or a negative tc_err_t (printed; TC_ECLOSED conventionally means "already stopped")
 */
typedef int (*tc_console_ota_cb)(uint32_t deadline_ms, tc_console_ota_result_t *result, void *user);

/**
 * @brief Write extra `status` lines (Wi-Fi state, addresses, free heap), each ending in "\n". Console's thread.
 * @param buf   where to write
 * @param cap   its size (NUL included)
 * @param user  the config's user pointer
 * @return the length written (snprintf-style: a value >= cap means the text was cut), or a negative tc_err_t
 */
typedef int (*tc_console_info_cb)(char *buf, size_t cap, void *user);

/**
 * @brief Write the OTA progress line(s) (tc_ota_progress_line(), tc_app_console_ota()), each ending in "\n". Runs on
 * the LOOP thread (the console posts it there with `status` and `ota`), so it may read the loop's handles.
 * @return the length written (snprintf-style: >= cap means cut), or a negative tc_err_t
 */
typedef int (*tc_console_loop_info_cb)(char *buf, size_t cap, void *user);

/** Console settings; start from TC_CONSOLE_DEFAULT_CONFIG(). Unset callbacks make their command say so. */
typedef struct {
    tc_loop_t *loop;               /**< whose registry `status` lists; NULL: no registry lines */
    tc_console_wifi_cb wifi;       /**< `wifi`; NULL: TC_ENOSYS */
    tc_console_ota_cb ota_prepare; /**< `ota-prepare`; NULL: TC_ENOSYS */
    tc_console_info_cb info;       /**< extra `status` lines; NULL: none */
    tc_console_loop_info_cb ota;   /**< `ota` and the OTA line of `status` (loop thread); NULL: "no OTA route" */
    void *ota_user;                /**< passed to ota (not user: it is read on the loop thread) */
    void *user;                    /**< passed last to every callback */
    uint32_t loop_wait_ms;         /**< how long `status` waits for the loop thread */
} tc_console_config_t;

#define TC_CONSOLE_DEFAULT_CONFIG()                                                                  \
    {                                                                                                \
        .loop = NULL, .wifi = NULL, .ota_prepare = NULL, .info = NULL, .ota = NULL, .ota_user = NULL, \
        .user = NULL, .loop_wait_ms = 2000,                                                          \
    }

/** One console command, for front ends that register commands one by one (esp_console). */
typedef struct {
    const char *name; /**< "status" */
    const char *args; /**< argument hint, e.g. "<ssid> [password]"; "" for none */
    const char *help; /**< one sentence */
} tc_console_cmd_t;

/**
 * @brief The command table (static, thread-safe).
 * @param count  receives the number of entries; must not be NULL
 * @return the first entry
 */
const tc_console_cmd_t *tc_console_commands(size_t *count);

/**
 * @brief Run one command line and write its text into out (always NUL-terminated when cap > 0; cut text ends in
 * "...\n").
 *
 * Thread-safety: any thread but the loop's (see the header comment); cfg is only read.
 * @param cfg   the console settings
 * @param line  the command line (a trailing "\r\n" is ignored); an empty line does nothing and returns 0
 * @param out   where the text goes
 * @param cap   size of out
 * @return the length of the text on success; on failure a negative code and out says why: TC_EINVAL (NULL cfg
 *         or line, NULL out with cap > 0, a bad argument, an unterminated quote), TC_ENOTFOUND (unknown command),
 *         TC_ETOOBIG (line or argument count beyond the limits), TC_ENOSYS (callback not set), TC_ETIMEDOUT (the
 *         loop did not answer `status` in time), TC_ENOMEM, or the callback's own code
 */
int tc_console_exec(const tc_console_config_t *cfg, const char *line, char *out, size_t cap);

/**
 * @brief tc_console_exec() for a line already split into arguments (esp_console hands these over).
 * @param cfg   the console settings
 * @param argc  number of arguments, the command name included (>= 1)
 * @param argv  the arguments
 * @param out   where the text goes
 * @param cap   size of out
 * @return as tc_console_exec(), except: TC_EINVAL for a NULL cfg, argv or argv[0], argc < 1, NULL out with cap > 0
 *         or a bad argument, and never TC_ETOOBIG (the line and argument limits are tc_console_exec()'s)
 */
int tc_console_exec_argv(const tc_console_config_t *cfg, int argc, char *const argv[], char *out, size_t cap);

/**
 * @brief One argument as the console's line splitter reads it back: as it is when it has no blank, quote or
 * backslash and is not empty, else in double quotes with \" and \\ inside. Thread-safe.
 *
 * Front ends that build a command line from arguments (a host tool sending `wifi "my net" pass`) use it.
 * @param arg  the argument (NUL-terminated)
 * @param out  where the text goes (always NUL-terminated when cap > 0)
 * @param cap  size of out
 * @return the length of the whole quoted text (snprintf-style: a value >= cap means it was cut), TC_EINVAL for a
 *         NULL arg, or NULL out with cap > 0, TC_ETOOBIG when that length is above INT32_MAX
 */
int tc_console_quote(const char *arg, char *out, size_t cap);

/**
 * @brief Write the registry lines of `status`: a summary line, then one line per socket, oldest first.
 *
 * Thread-safety: the loop's thread only (it walks the registry). Format of a socket line:
 * "  #<id> <kind> <state> <owner> <local or peer> [age <s>s idle <s>s in <n> out <n> queued <n>] [streaming]".
 * @param loop  the loop
 * @param out   where the text goes
 * @param cap   size of out
 * @return the length written (cut text ends in "...\n"), TC_EINVAL for NULL arguments
 */
int tc_console_status(const tc_loop_t *loop, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
