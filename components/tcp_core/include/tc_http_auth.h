/*
 * tc_http_auth.h - HTTP Basic authentication (RFC 7617) for single routes: a check in constant time and the 401
 * answer with its WWW-Authenticate challenge; and CORS (Fetch standard) per route: allowed origins, methods,
 * headers, credentials, the preflight OPTIONS answered.
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
#include <stdint.h>

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

/* ---- CORS ---- */

/* tc_http_cors_t, the opaque policy shared by routes and servers, is declared in tc_http.h. */

/** A CORS policy; start from TC_HTTP_CORS_DEFAULT_CONFIG(). Strings are copied. */
typedef struct {
    const char *origins;     /**< "*" or a comma-separated list of exact origins ("http://a.lan,https://b.lan") */
    const char *methods;     /**< Access-Control-Allow-Methods of the preflight, e.g. "GET, POST" */
    const char *headers;     /**< Access-Control-Allow-Headers, e.g. "Content-Type, Authorization"; "" = none */
    bool credentials;        /**< Access-Control-Allow-Credentials: true (then the origin is echoed, never "*") */
    uint32_t max_age;        /**< Access-Control-Max-Age of the preflight, seconds */
} tc_http_cors_config_t;

#define TC_HTTP_CORS_DEFAULT_CONFIG()                                                                  \
    {                                                                                                  \
        .origins = "*", .methods = "GET, POST", .headers = "Content-Type", .credentials = false,       \
        .max_age = 600,                                                                                \
    }

/**
 * @brief Create a CORS policy. Loop thread.
 * @param out  receives it; free with tc_http_cors_free() after the servers using it have stopped
 * @return TC_OK, TC_EINVAL, TC_ENOMEM
 */
int tc_http_cors_new(const tc_http_cors_config_t *cfg, tc_http_cors_t **out);

/**
 * @brief Add a route whose answers carry the policy's CORS headers for an allowed Origin, and an OPTIONS route for
 * the same pattern that answers preflights (204 with the allowed methods and headers; 403 for an origin, method or
 * header not allowed). Requests without Origin are served as by tc_http_route(), with Vary: Origin when the policy's
 * answer depends on it (see tc_http_cors_headers()). The policy replaces the server's default (tc_http_config_t.cors)
 * on this route. Loop thread.
 * @return TC_OK, TC_EINVAL, TC_ENOMEM
 */
int tc_http_cors_route(tc_http_t *http, tc_http_cors_t *cors, unsigned methods, const char *pattern,
                       tc_http_handler_cb cb, void *user);

/**
 * @brief Add the policy's headers to a response being built (for handlers that answer themselves). Loop thread.
 * A policy whose answer depends on the Origin (a list of origins, or credentials) adds Vary: Origin whatever the
 * Origin, or none (Fetch standard, "CORS protocol and HTTP caches": a shared cache keeps the answers apart); "*"
 * without credentials does not.
 * @return 1 when the request's Origin is allowed (headers added), 0 when not or absent, or tc_http_resp_header()'s
 *         errors
 */
int tc_http_cors_headers(tc_http_req_t *req, const tc_http_cors_t *cors);

/** @brief Free a policy and its route wrappers (after the servers using it have stopped). */
void tc_http_cors_free(tc_http_cors_t *cors);

#ifdef __cplusplus
}
#endif
