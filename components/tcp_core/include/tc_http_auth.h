/*
 * tc_http_auth.h - HTTP Basic authentication (RFC 7617) for single routes: a check in constant time and the 401
 * answer with its WWW-Authenticate challenge.
 *
 * Basic sends the password in clear on every request: use it on a network you trust (the device's soft-AP) or
 * behind TLS. The comparison takes the same time whether the first or the last byte differs, so the answer's timing
 * does not tell an attacker how much of a guess was right.
 *
 * Example (at the top of a handler):
 *     if (!tc_http_basic_auth_ok(req, "admin", password)) return tc_http_basic_auth_challenge(req, "tcp_core");
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "tc_http.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Whether the request's Authorization header carries Basic credentials equal to user and pass. Loop thread.
 * A NULL or empty pass means no authentication is configured: always true.
 * @return true when the credentials match (or none are required)
 */
bool tc_http_basic_auth_ok(const tc_http_req_t *req, const char *user, const char *pass);

/**
 * @brief Answer 401 with `WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"`. Ends the request. Loop thread.
 * @param realm  shown by browsers; no '"', CR or LF (TC_EINVAL)
 * @return tc_http_respond()'s codes, TC_EINVAL
 */
int tc_http_basic_auth_challenge(tc_http_req_t *req, const char *realm);

/**
 * @brief Compare two byte strings in time that depends only on their lengths (not on where they differ). Pure.
 * @return true when equal
 */
bool tc_http_const_equal(const void *a, size_t alen, const void *b, size_t blen);

#ifdef __cplusplus
}
#endif
