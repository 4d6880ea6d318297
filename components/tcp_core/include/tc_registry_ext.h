/*
 * tc_registry_ext.h - sockets that tcp_core does not own (esp_http_server sessions, an application's own sockets)
 * tracked in a loop's registry from any thread, so `status` and /api/status list every socket of the device.
 *
 * The registry belongs to the loop thread; these calls only allocate and post (tc_loop_post()), and the loop thread
 * links, updates and unlinks the entry in that order. An entry is kind TC_KIND_EXTERNAL, state TC_STATE_OPEN, with
 * the peer address read when it was opened; tcp_core never reads, writes or closes its descriptor.
 *
 * Example (an esp_http_server open_fn / close_fn pair):
 *     tc_ext_sock_open(loop, sockfd, "httpd", &s);      // open_fn, on the server's task
 *     tc_ext_sock_set_flags(s, TC_REG_FLAG_STREAMING, 0); // a stream handler started
 *     tc_ext_sock_close(s);                              // close_fn, before close(sockfd)
 */
#pragma once

#include <stdint.h>

#include "tc_loop.h"
#include "tc_registry.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tc_ext_sock tc_ext_sock_t; /**< opaque registry entry of an external socket */

/**
 * @brief Track an external socket in the loop's registry.
 *
 * Thread-safety: any thread, typically the one that owns the socket (the addresses are read here, while the
 * descriptor surely is that socket). The entry appears once the loop runs the posted work. Until
 * tc_ext_sock_close() has been carried out by the loop, tc_loop_free() answers TC_EBUSY.
 * @param loop   the loop whose registry lists the socket
 * @param fd     the socket's descriptor (a backend descriptor: an lwIP socket on the device); not owned
 * @param owner  registry label, e.g. "httpd" (not copied: a string literal or otherwise static)
 * @param out    receives the entry
 * @return TC_OK, TC_EINVAL (NULL loop, owner or out, negative fd), TC_ENOMEM (nothing tracked)
 */
int tc_ext_sock_open(tc_loop_t *loop, int fd, const char *owner, tc_ext_sock_t **out);

/**
 * @brief Set and clear registry flags (TC_REG_FLAG_*) of an external socket, e.g. TC_REG_FLAG_STREAMING.
 *
 * Thread-safety: any thread. The registry shows the change after the loop's next pass. If that post cannot be
 * allocated (out of memory) the registry keeps the old flags until the entry's next change; tc_ext_sock_flags()
 * always has the new ones.
 * @param s      the entry (NULL is ignored)
 * @param set    flags to set
 * @param clear  flags to clear (applied before set)
 */
void tc_ext_sock_set_flags(tc_ext_sock_t *s, uint8_t set, uint8_t clear);

/**
 * @brief The flags last asked for with tc_ext_sock_set_flags(). Thread-safe.
 * @param s  the entry
 * @return the flags (0 for NULL)
 */
uint8_t tc_ext_sock_flags(const tc_ext_sock_t *s);

/**
 * @brief Stop tracking an external socket; call before the socket itself is closed. Never fails.
 *
 * Thread-safety: any thread; s must not be used afterwards. The loop unlinks and frees the entry. Under memory
 * exhaustion (the post cannot be allocated) the entry is parked and removed at the loop's next post of any external
 * socket; tc_loop_free() keeps answering TC_EBUSY until then.
 * @param s  the entry (NULL is ignored)
 */
void tc_ext_sock_close(tc_ext_sock_t *s);

#ifdef __cplusplus
}
#endif
