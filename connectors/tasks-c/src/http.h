/*
 * A small blocking HTTP client over the generated wasi:http bindings.
 *
 * Copy http.c/http.h (and text.c/text.h, which they use) into your own
 * connector: they depend only on the bindings `wit-bindgen c` generates for
 * the `connector` world (connector.h) and on libc.
 *
 *     http_header_t headers[] = {{"accept", "application/json"}};
 *     http_request_t req = {
 *         .method = "GET",
 *         .url = "https://api.example.com/things/1",
 *         .headers = headers,
 *         .header_count = 1,
 *     };
 *     http_response_t resp;
 *     http_error_t err;
 *     if (!http_send(&req, &resp, &err)) {
 *         // err.message, e.g. "HttpRequestDenied"
 *     } else {
 *         // resp.status, resp.body (NUL-terminated), http_response_header()
 *         http_response_free(&resp);
 *     }
 *
 * What the host does for you, so this helper does not: it injects the
 * credentials the manifest's `auth` declares (never set `authorization`
 * yourself), enforces the egress policy (a request to a host the manifest does
 * not allow fails with HttpRequestDenied), applies its own timeouts and
 * retries idempotent requests on 429/503.
 *
 * Every wasi:http resource the helper creates is dropped before it returns,
 * on success and on every error path.
 */
#ifndef TASKS_HTTP_H
#define TASKS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One request header; both strings are borrowed for the call. */
typedef struct http_header {
    const char *name;
    const char *value;
} http_header_t;

/* Responses larger than this fail with HTTP_ERR_TOO_LARGE unless the request
 * sets its own max_response_bytes. */
#define HTTP_DEFAULT_MAX_RESPONSE_BYTES (8u * 1024u * 1024u)

typedef struct http_request {
    const char *method;           /* "GET", "POST", ... (upper case) */
    const char *url;              /* absolute http:// or https:// URL */
    const http_header_t *headers; /* may be NULL when header_count is 0 */
    size_t header_count;
    const uint8_t *body; /* request body, or NULL */
    size_t body_len;
    uint64_t timeout_ms;       /* connect/first-byte/between-bytes; 0 = host default */
    size_t max_response_bytes; /* 0 = HTTP_DEFAULT_MAX_RESPONSE_BYTES */
} http_request_t;

/* A response header; both strings are owned by the response. */
typedef struct http_response_header {
    char *name;  /* lower case, as wasi:http reports it */
    char *value; /* bytes as received, NUL-terminated */
} http_response_header_t;

typedef struct http_response {
    uint16_t status;
    http_response_header_t *headers;
    size_t header_count;
    /* The body, with a NUL byte after the last one (not counted in body_len)
     * so text bodies can be used as C strings. Never NULL after success. */
    char *body;
    size_t body_len;
} http_response_t;

typedef enum http_error_kind {
    /* wasi:http reported an error-code: the request was denied by the host,
     * the connection failed, timed out, ... `message` is the code's name in
     * the same spelling as the Rust bindings, e.g. "HttpRequestDenied",
     * "ConnectionRefused", "DnsError". */
    HTTP_ERR_TRANSPORT,
    /* The URL is not an absolute http(s) URL; `message` says why. */
    HTTP_ERR_INVALID_URL,
    /* A header name or value was refused, or the method is invalid. */
    HTTP_ERR_INVALID_REQUEST,
    /* The response body exceeded max_response_bytes. */
    HTTP_ERR_TOO_LARGE,
    /* A stream failed without an error-code, or memory ran out. */
    HTTP_ERR_OTHER,
} http_error_kind_t;

typedef struct http_error {
    http_error_kind_t kind;
    char message[160];
} http_error_t;

/*
 * Sends `req` and reads the whole response. Returns true and fills *resp
 * (free it with http_response_free) whatever the status code; returns false
 * and fills *err when no response was received.
 */
bool http_send(const http_request_t *req, http_response_t *resp, http_error_t *err);

/* Frees what http_send put into *resp. Safe to call twice. */
void http_response_free(http_response_t *resp);

/* The first value of header `name` (case-insensitive), or NULL. */
const char *http_response_header(const http_response_t *resp, const char *name);

#endif
