/* The extension's own declarations; everything else is generated from the C headers (cdefgen.py). */

/* helpers defined in the extension's source (GLUE in build.py): the default-config macros as functions */
void tcpy_app_defaults(tc_app_config_t *c);
void tcpy_server_defaults(tc_server_config_t *c);
void tcpy_client_defaults(tc_client_config_t *c);
tc_conn_cb tcpy_echo_cb(void);
void tcpy_console_defaults(tc_console_config_t *c);
const char *tcpy_console_prompt(void);

/* Python callbacks: run on the loop thread with the GIL taken by cffi. */
extern "Python" void tcpy_post_cb(tc_loop_t *loop, void *user);
extern "Python" void tcpy_conn_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user);
extern "Python" void tcpy_stop_cb(tc_handle_t *handle, const tc_stop_report_t *report, void *user);
extern "Python" void tcpy_app_stop_request_cb(tc_app_t *app, void *user);

/* Console callbacks: run on the thread that called tc_console_exec() (never the loop's), GIL taken by cffi. */
extern "Python" int tcpy_console_wifi_cb(const char *ssid, const char *password, void *user);
extern "Python" int tcpy_console_ota_cb(uint32_t deadline_ms, tc_console_ota_result_t *result, void *user);
extern "Python" int tcpy_console_info_cb(char *buf, size_t cap, void *user);
