/* Declarations cffi exposes to Python (a hand-kept subset of components/tcp_core/include; the compiler checks them
 * against the real headers when the extension is built). */

/* tc_err.h */
typedef enum { TC_OK, TC_EINVAL, TC_ETIMEDOUT, TC_ECLOSED, TC_ENOSYS, TC_EIO, ... } tc_err_t;
const char *tc_err_name(int err);
const char *tc_strerror(int err);

/* tc_alloc.h */
typedef struct {
    size_t bytes_in_use;
    size_t bytes_peak;
    size_t blocks_in_use;
    uint64_t allocs;
    uint64_t failures;
} tc_alloc_stats_t;
void tc_alloc_set_limit(size_t max_bytes);
void tc_alloc_stats(tc_alloc_stats_t *out);
void tc_alloc_reset_peak(void);

/* tc_addr.h (the type) */
typedef struct {
    uint8_t family;
    uint8_t ip[16];
    uint16_t port;
    uint32_t scope_id;
} tc_addr_t;
/* src/tc_sock.h, the private backend contract: the lwIP TAP backend's bring-up (the host build sees src/) */
typedef struct {
    const char *tap_name;
    tc_addr_t address;
    uint8_t prefix_len;
    tc_addr_t gateway;
} tc_sock_env_t;
int tc_sock_global_init(const tc_sock_env_t *env);
/* tc_backend.h */
const char *tc_sock_backend(void);
int tc_sock_time_wait_count(uint16_t local_port);
int tc_sock_active_count(uint16_t local_port);

/* tc_addr.h */
#define TC_ADDR_STRLEN ...
int tc_addr_from_ip(const char *ip, uint16_t port, tc_addr_t *out);
int tc_addr_split(const char *text, uint16_t default_port, char *host, size_t host_cap, uint16_t *port);
int tc_addr_format(const tc_addr_t *addr, int with_port, char *buf, size_t cap);

/* tc_loop.h */
typedef struct tc_loop tc_loop_t;
typedef void (*tc_post_cb)(tc_loop_t *loop, void *user);
int tc_loop_new(tc_loop_t **out);
int tc_loop_free(tc_loop_t *loop);
int tc_loop_run(tc_loop_t *loop);
int tc_loop_run_for(tc_loop_t *loop, uint32_t ms);
void tc_loop_stop(tc_loop_t *loop);
int tc_loop_post(tc_loop_t *loop, tc_post_cb cb, void *user);
uint64_t tc_now_ms(void);

/* tc_registry.h */
typedef enum { TC_KIND_LISTENER, TC_KIND_ACCEPTED, TC_KIND_CLIENT, TC_KIND_UDP, TC_KIND_EXTERNAL, ... } tc_kind_t;
typedef enum { TC_ROLE_TCP, TC_ROLE_LISTENER, TC_ROLE_CLIENT, TC_ROLE_ECHO, TC_ROLE_HTTP, TC_ROLE_WS, TC_ROLE_SSE, TC_ROLE_STREAM, TC_ROLE_DNS, TC_ROLE_EXTERNAL, TC_ROLE_COUNT, ... } tc_role_t;
typedef enum { TC_STATE_LISTENING, TC_STATE_CONNECTING, TC_STATE_OPEN, TC_STATE_CLOSING, ... } tc_state_t;
#define TC_REG_FLAG_STREAMING ...
#define TC_REG_FLAG_PAUSED ...
#define TC_REG_FLAG_BUSY ...
typedef struct {
    uint32_t id;
    int fd;
    uint8_t kind;
    uint8_t state;
    uint8_t flags;
    uint8_t role;
    const char *owner;
    tc_addr_t local;
    tc_addr_t peer;
    uint64_t age_ms;
    uint64_t idle_ms;
    uint64_t bytes_in;
    uint64_t bytes_out;
    size_t queued;
} tc_sock_info_t;
const char *tc_role_name(unsigned role);
int tc_role_is_long_lived(unsigned role);
typedef struct {
    uint32_t fin_first;
    uint32_t peer_first;
    uint32_t reset_sent;
    uint32_t reset_received;
    uint32_t time_wait_reaped;
    uint32_t time_wait_kept;
} tc_close_stats_t;
void tc_registry_close_stats(const tc_loop_t *loop, tc_close_stats_t *out);
uint32_t tc_registry_count(const tc_loop_t *loop);
uint32_t tc_registry_snapshot(const tc_loop_t *loop, tc_sock_info_t *out, uint32_t cap);

/* tc_tcp.h */
typedef struct tc_conn tc_conn_t;
typedef struct tc_server tc_server_t;
typedef struct tc_client tc_client_t;
typedef enum { TC_EV_OPEN, TC_EV_DATA, TC_EV_DRAINED, TC_EV_SHUTDOWN, TC_EV_CLOSE, ... } tc_event_t;
typedef enum { TC_CLOSE_GRACEFUL, TC_CLOSE_PEER_FIRST, TC_CLOSE_ABORT, ... } tc_close_policy_t;
typedef enum { TC_FULL_EVICT_LRU, TC_FULL_REFUSE, TC_FULL_EVICT_IDLE, ... } tc_full_policy_t;
#define TC_OPEN_OVER_LIMIT ...
typedef enum {
    TC_REASON_LOCAL, TC_REASON_PEER, TC_REASON_RESET, TC_REASON_IDLE, TC_REASON_EVICTED, TC_REASON_REFUSED,
    TC_REASON_STOP, TC_REASON_FORCED, TC_REASON_LINGER, TC_REASON_CONNECT, TC_REASON_NOMEM, ...
} tc_close_reason_t;
typedef void (*tc_conn_cb)(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user);
typedef struct {
    size_t high_water;
    size_t low_water;
    size_t queue_max;
    uint32_t idle_timeout_ms;
    tc_close_policy_t close_policy;
    uint32_t linger_ms;
    bool nodelay;
    int keepalive_s;
    bool keep_time_wait;
} tc_conn_config_t;
typedef struct {
    const char *host;
    uint16_t port;
    int backlog;
    bool v6only;
    uint32_t max_conns;
    tc_full_policy_t when_full;
    uint32_t overflow_max;
    tc_conn_config_t conn;
    const char *name;
    tc_conn_cb cb;
    void *user;
} tc_server_config_t;
typedef struct {
    const char *host;
    uint16_t port;
    uint32_t connect_timeout_ms;
    bool reconnect;
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    uint8_t jitter_pct;
    uint32_t max_attempts;
    tc_conn_config_t conn;
    const char *name;
    tc_conn_cb cb;
    void *user;
} tc_client_config_t;
typedef struct {
    uint32_t graceful;
    uint32_t forced;
    uint32_t elapsed_ms;
    size_t bytes_freed;
} tc_stop_report_t;
typedef void (*tc_stop_cb)(tc_server_t *server, const tc_stop_report_t *report, void *user);
typedef struct {
    uint32_t attempts;
    uint32_t connects;
    uint32_t failures;
    int last_error;
    uint32_t last_delay_ms;
} tc_client_stats_t;
typedef void (*tc_client_done_cb)(void *user);

int tc_server_start(tc_loop_t *loop, const tc_server_config_t *cfg, tc_server_t **out);
uint16_t tc_server_port(const tc_server_t *server);
uint32_t tc_server_conn_count(const tc_server_t *server);
int tc_server_stop(tc_server_t *server, uint32_t deadline_ms, tc_stop_cb done, void *user);
int tc_client_start(tc_loop_t *loop, const tc_client_config_t *cfg, tc_client_t **out);
tc_conn_t *tc_client_conn(const tc_client_t *client);
void tc_client_stats(const tc_client_t *client, tc_client_stats_t *out);
int tc_client_stop_then(tc_client_t *client, tc_client_done_cb done, void *user);
int tc_conn_send(tc_conn_t *conn, const void *data, size_t len);
typedef struct {
    const void *data;
    size_t len;
} tc_buf_t;
int tc_conn_sendv(tc_conn_t *conn, const tc_buf_t *bufs, size_t n);
size_t tc_conn_queued(const tc_conn_t *conn);
int tc_conn_close(tc_conn_t *conn, tc_close_policy_t how);
int tc_conn_close_default(tc_conn_t *conn);
uint32_t tc_conn_id(const tc_conn_t *conn);
void tc_conn_set_role(tc_conn_t *conn, unsigned role);
unsigned tc_conn_role(const tc_conn_t *conn);
const tc_addr_t *tc_conn_peer(const tc_conn_t *conn);
int tc_conn_is_closing(const tc_conn_t *conn);
void tc_conn_set_reading(tc_conn_t *conn, int on);

/* tc_http.h */
typedef struct tc_http tc_http_t;
typedef struct {
    uint32_t requests_finished;
    uint32_t streams_ended;
    uint32_t websockets_closed;
    uint32_t graceful;
    uint32_t forced;
    uint32_t elapsed_ms;
    size_t bytes_freed;
} tc_http_stop_report_t;

/* tc_app.h */
typedef struct tc_app tc_app_t;
#define TC_APP_OFF ...
#define TC_APP_STREAM_FRAME_MAX ...
#define TC_APP_NO_RATE ...
typedef struct {
    const char *host;
    int32_t echo_port;
    uint32_t echo_max_conns;
    const char *connect_host;
    uint16_t connect_port;
    int32_t http_port;
    uint32_t http_max_conns;
    uint32_t http_idle_timeout_ms;
    uint32_t http_head_timeout_ms;
    uint32_t ws_max_message;
    uint32_t http_body_min_rate;
    uint32_t http_body_grace_ms;
    uint64_t upload_max;
    uint32_t ws_ping_ms;
    uint32_t ws_pong_timeout_ms;
    uint32_t sse_heartbeat_ms;
    uint32_t stream_fps;
    uint32_t stream_frame_bytes;
    uint32_t events_ms;
    int captive;
    int32_t dns_port;
    const char *dns_answer;
    const char *portal_host;
    const char *admin_password;
    void (*stop_request)(tc_app_t *app, void *user);
    void *stop_request_user;
    const char *ota_dir;
    uint64_t ota_max;
    const char *admin_user;
    const char *admin_pass;
    const char *cors_origins;
    const char *static_dir;
    ...;
} tc_app_config_t;
typedef struct {
    tc_stop_report_t echo;
    tc_http_stop_report_t http;
    uint32_t client_closed;
    uint32_t client_forced;
    uint32_t elapsed_ms;
    size_t bytes_freed;
} tc_app_stop_report_t;
typedef void (*tc_app_stop_cb)(const tc_app_stop_report_t *report, void *user);
int tc_app_start(tc_loop_t *loop, const tc_app_config_t *cfg, tc_app_t **out);
uint16_t tc_app_echo_port(const tc_app_t *app);
uint16_t tc_app_http_port(const tc_app_t *app);
uint16_t tc_app_dns_port(const tc_app_t *app);
#define TC_CAPTIVE_OFF ...
#define TC_CAPTIVE_PORTAL ...
#define TC_CAPTIVE_ONLINE ...
int tc_app_stop(tc_app_t *app, uint32_t deadline_ms, tc_app_stop_cb done, void *user);
int tc_app_status_json(const tc_loop_t *loop, char *buf, size_t cap);
int tc_app_status_json_app(const tc_app_t *app, char *buf, size_t cap);

/* tc_ota.h */
typedef struct tc_ota tc_ota_t;
tc_ota_t *tc_app_ota(const tc_app_t *app);
int tc_ota_status_json(const tc_ota_t *ota, char *buf, size_t cap);
int tc_ota_progress_line(const tc_ota_t *ota, char *buf, size_t cap);
int tc_app_console_ota(char *buf, size_t cap, void *app);

/* tc_console.h */
#define TC_CONSOLE_OTA_DEADLINE_MS ...
#define TC_CONSOLE_OTA_DEADLINE_MAX_MS ...
#define TC_CONSOLE_MAX_LINE ...
typedef struct {
    uint32_t elapsed_ms;
    uint32_t graceful;
    uint32_t forced;
    int64_t heap_freed;
} tc_console_ota_result_t;
typedef int (*tc_console_wifi_cb)(const char *ssid, const char *password, void *user);
typedef int (*tc_console_ota_cb)(uint32_t deadline_ms, tc_console_ota_result_t *result, void *user);
typedef int (*tc_console_info_cb)(char *buf, size_t cap, void *user);
typedef int (*tc_console_loop_info_cb)(char *buf, size_t cap, void *user);
typedef struct {
    tc_loop_t *loop;
    tc_console_wifi_cb wifi;
    tc_console_ota_cb ota_prepare;
    tc_console_info_cb info;
    tc_console_loop_info_cb ota;
    void *ota_user;
    void *user;
    uint32_t loop_wait_ms;
} tc_console_config_t;
typedef struct {
    const char *name;
    const char *args;
    const char *help;
} tc_console_cmd_t;
const tc_console_cmd_t *tc_console_commands(size_t *count);
int tc_console_exec(const tc_console_config_t *cfg, const char *line, char *out, size_t cap);
int tc_console_status(const tc_loop_t *loop, char *out, size_t cap);

/* helpers defined in the extension's preamble (build.py) */
void tcpy_app_defaults(tc_app_config_t *c);
void tcpy_server_defaults(tc_server_config_t *c);
void tcpy_client_defaults(tc_client_config_t *c);
tc_conn_cb tcpy_echo_cb(void);
void tcpy_console_defaults(tc_console_config_t *c);
const char *tcpy_console_prompt(void);

/* Python callbacks: run on the loop thread with the GIL taken by cffi. */
extern "Python" void tcpy_post_cb(tc_loop_t *loop, void *user);
extern "Python" void tcpy_conn_cb(tc_conn_t *conn, tc_event_t ev, const void *data, size_t len, void *user);
extern "Python" void tcpy_stop_cb(tc_server_t *server, const tc_stop_report_t *report, void *user);
extern "Python" void tcpy_client_done_cb(void *user);
extern "Python" void tcpy_app_stop_cb(const tc_app_stop_report_t *report, void *user);
extern "Python" void tcpy_app_stop_request_cb(tc_app_t *app, void *user);

/* Console callbacks: run on the thread that called tc_console_exec() (never the loop's), GIL taken by cffi. */
extern "Python" int tcpy_console_wifi_cb(const char *ssid, const char *password, void *user);
extern "Python" int tcpy_console_ota_cb(uint32_t deadline_ms, tc_console_ota_result_t *result, void *user);
extern "Python" int tcpy_console_info_cb(char *buf, size_t cap, void *user);
