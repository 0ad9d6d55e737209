/*
 * Blocking HTTP over wasi:http 0.2 with the C bindings from `wit-bindgen c`.
 * See http.h for the interface and docs/authoring/c.md for the rules it
 * follows. The life of one request:
 *
 *   fields ──► outgoing-request ──► outgoing-handler.handle ──► future-incoming-response
 *                 │ body()                                          │ subscribe → pollable.block
 *                 ▼                                                 ▼ get
 *              outgoing-body ─ write() ─► output-stream          incoming-response
 *                 finish()                                          │ headers(), consume()
 *                                                                   ▼
 *                                                     incoming-body ─ stream() ─► input-stream
 *                                                                   finish() ─► future-trailers
 *
 * Ownership rules the code below keeps (the component model enforces them;
 * breaking one traps the whole invocation):
 * - A resource passed as `own` to a function (the headers given to the
 *   request constructor, the request given to `handle`, the body given to
 *   `finish`) is consumed: never drop or use it again.
 * - Child resources (a body's stream, a stream's pollable, a response's
 *   headers) must be dropped before their parent.
 * - Everything else we hold must be dropped exactly once.
 * - The generated `*_free` helpers free memory only; they never drop resource
 *   handles (e.g. the `error` inside a `stream-error`).
 */
#include "http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connector.h"
#include "text.h"

/* blocking-write-and-flush accepts at most 4096 bytes per call. */
#define WRITE_CHUNK 4096u
/* How much to ask an input-stream for per read. */
#define READ_CHUNK 65536u

/* Names of wasi:http error-code cases, spelled like the Rust bindings'
 * variants (`HttpRequestDenied`), indexed by the generated tag values. */
static const char *const ERROR_CODE_NAMES[] = {
    [WASI_HTTP_TYPES_ERROR_CODE_DNS_TIMEOUT] = "DnsTimeout",
    [WASI_HTTP_TYPES_ERROR_CODE_DNS_ERROR] = "DnsError",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_NOT_FOUND] = "DestinationNotFound",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_UNAVAILABLE] = "DestinationUnavailable",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_PROHIBITED] = "DestinationIpProhibited",
    [WASI_HTTP_TYPES_ERROR_CODE_DESTINATION_IP_UNROUTABLE] = "DestinationIpUnroutable",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_REFUSED] = "ConnectionRefused",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TERMINATED] = "ConnectionTerminated",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_TIMEOUT] = "ConnectionTimeout",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_READ_TIMEOUT] = "ConnectionReadTimeout",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_WRITE_TIMEOUT] = "ConnectionWriteTimeout",
    [WASI_HTTP_TYPES_ERROR_CODE_CONNECTION_LIMIT_REACHED] = "ConnectionLimitReached",
    [WASI_HTTP_TYPES_ERROR_CODE_TLS_PROTOCOL_ERROR] = "TlsProtocolError",
    [WASI_HTTP_TYPES_ERROR_CODE_TLS_CERTIFICATE_ERROR] = "TlsCertificateError",
    [WASI_HTTP_TYPES_ERROR_CODE_TLS_ALERT_RECEIVED] = "TlsAlertReceived",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_DENIED] = "HttpRequestDenied",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_LENGTH_REQUIRED] = "HttpRequestLengthRequired",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_BODY_SIZE] = "HttpRequestBodySize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_METHOD_INVALID] = "HttpRequestMethodInvalid",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_INVALID] = "HttpRequestUriInvalid",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_URI_TOO_LONG] = "HttpRequestUriTooLong",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_HEADER_SECTION_SIZE] = "HttpRequestHeaderSectionSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_HEADER_SIZE] = "HttpRequestHeaderSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_TRAILER_SECTION_SIZE] = "HttpRequestTrailerSectionSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_REQUEST_TRAILER_SIZE] = "HttpRequestTrailerSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_INCOMPLETE] = "HttpResponseIncomplete",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_HEADER_SECTION_SIZE] = "HttpResponseHeaderSectionSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_HEADER_SIZE] = "HttpResponseHeaderSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_BODY_SIZE] = "HttpResponseBodySize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRAILER_SECTION_SIZE] =
        "HttpResponseTrailerSectionSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRAILER_SIZE] = "HttpResponseTrailerSize",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TRANSFER_CODING] = "HttpResponseTransferCoding",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_CONTENT_CODING] = "HttpResponseContentCoding",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_TIMEOUT] = "HttpResponseTimeout",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_UPGRADE_FAILED] = "HttpUpgradeFailed",
    [WASI_HTTP_TYPES_ERROR_CODE_HTTP_PROTOCOL_ERROR] = "HttpProtocolError",
    [WASI_HTTP_TYPES_ERROR_CODE_LOOP_DETECTED] = "LoopDetected",
    [WASI_HTTP_TYPES_ERROR_CODE_CONFIGURATION_ERROR] = "ConfigurationError",
    [WASI_HTTP_TYPES_ERROR_CODE_INTERNAL_ERROR] = "InternalError",
};

static void set_error(http_error_t *err, http_error_kind_t kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(http_error_t *err, http_error_kind_t kind, const char *fmt, ...) {
    err->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

/* Records a wasi:http error-code and frees the strings it may carry. */
static void set_transport_error(http_error_t *err, wasi_http_types_error_code_t *code) {
    const char *name = NULL;
    if (code->tag < sizeof ERROR_CODE_NAMES / sizeof ERROR_CODE_NAMES[0]) {
        name = ERROR_CODE_NAMES[code->tag];
    }
    if (name != NULL) {
        set_error(err, HTTP_ERR_TRANSPORT, "%s", name);
    } else {
        /* A case added to wasi:http after these bindings were written. */
        set_error(err, HTTP_ERR_TRANSPORT, "ErrorCode(%u)", (unsigned)code->tag);
    }
    wasi_http_types_error_code_free(code);
}

/* Turns a stream-error into an http_error_t and drops the io error it owns. */
static void set_stream_error(http_error_t *err, wasi_io_streams_stream_error_t *se,
                             const char *what) {
    if (se->tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
        set_error(err, HTTP_ERR_OTHER, "%s: stream closed early", what);
        return;
    }
    wasi_io_error_own_error_t io = se->val.last_operation_failed;
    wasi_http_types_error_code_t code;
    /* Prefer the wasi:http error-code behind the stream error. */
    if (wasi_http_types_http_error_code(wasi_io_error_borrow_error(io), &code)) {
        set_transport_error(err, &code);
    } else {
        connector_string_t debug;
        wasi_io_error_method_error_to_debug_string(wasi_io_error_borrow_error(io), &debug);
        set_error(err, HTTP_ERR_OTHER, "%s: %.*s", what, (int)debug.len, (const char *)debug.ptr);
        connector_string_free(&debug);
    }
    wasi_io_error_error_drop_own(io);
}

static bool set_method(wasi_http_types_borrow_outgoing_request_t req, const char *name) {
    static const struct {
        const char *name;
        uint8_t tag;
    } known[] = {
        {"GET", WASI_HTTP_TYPES_METHOD_GET},         {"HEAD", WASI_HTTP_TYPES_METHOD_HEAD},
        {"POST", WASI_HTTP_TYPES_METHOD_POST},       {"PUT", WASI_HTTP_TYPES_METHOD_PUT},
        {"DELETE", WASI_HTTP_TYPES_METHOD_DELETE},   {"CONNECT", WASI_HTTP_TYPES_METHOD_CONNECT},
        {"OPTIONS", WASI_HTTP_TYPES_METHOD_OPTIONS}, {"TRACE", WASI_HTTP_TYPES_METHOD_TRACE},
        {"PATCH", WASI_HTTP_TYPES_METHOD_PATCH},
    };
    wasi_http_types_method_t method;
    method.tag = WASI_HTTP_TYPES_METHOD_OTHER;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(name, known[i].name) == 0) {
            method.tag = known[i].tag;
            break;
        }
    }
    if (method.tag == WASI_HTTP_TYPES_METHOD_OTHER) {
        /* Borrowed for the call: no copy, nothing to free. */
        connector_string_set(&method.val.other, name);
    }
    return wasi_http_types_method_outgoing_request_set_method(req, &method);
}

/* Builds the request headers. On failure returns false with *err set and
 * nothing left to drop. */
static bool build_fields(const http_request_t *req, wasi_http_types_own_fields_t *out,
                         http_error_t *err) {
    wasi_http_types_own_fields_t fields = wasi_http_types_constructor_fields();
    wasi_http_types_borrow_fields_t b = wasi_http_types_borrow_fields(fields);
    for (size_t i = 0; i < req->header_count; i++) {
        wasi_http_types_field_name_t name;
        wasi_http_types_field_value_t value;
        connector_string_set(&name, req->headers[i].name);
        value.ptr = (uint8_t *)req->headers[i].value;
        value.len = strlen(req->headers[i].value);
        wasi_http_types_header_error_t herr;
        if (!wasi_http_types_method_fields_append(b, &name, &value, &herr)) {
            const char *why = herr.tag == WASI_HTTP_TYPES_HEADER_ERROR_FORBIDDEN ? "forbidden"
                              : herr.tag == WASI_HTTP_TYPES_HEADER_ERROR_IMMUTABLE
                                  ? "immutable"
                                  : "invalid syntax";
            set_error(err, HTTP_ERR_INVALID_REQUEST, "header %s refused: %s",
                      req->headers[i].name, why);
            wasi_http_types_fields_drop_own(fields);
            return false;
        }
    }
    *out = fields;
    return true;
}

/* Writes the whole request body and finishes it; consumes `body`. */
static bool write_body(wasi_http_types_own_outgoing_body_t body, const uint8_t *bytes, size_t len,
                       http_error_t *err) {
    bool ok = true;
    if (len > 0) {
        wasi_http_types_own_output_stream_t stream;
        if (!wasi_http_types_method_outgoing_body_write(wasi_http_types_borrow_outgoing_body(body),
                                                        &stream)) {
            set_error(err, HTTP_ERR_OTHER, "request body stream already taken");
            ok = false;
        } else {
            wasi_io_streams_borrow_output_stream_t s = wasi_io_streams_borrow_output_stream(stream);
            for (size_t off = 0; off < len; off += WRITE_CHUNK) {
                size_t n = len - off < WRITE_CHUNK ? len - off : WRITE_CHUNK;
                connector_list_u8_t chunk = {(uint8_t *)bytes + off, n};
                wasi_io_streams_stream_error_t se;
                if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(s, &chunk,
                                                                                  &se)) {
                    set_stream_error(err, &se, "writing the request body");
                    ok = false;
                    break;
                }
            }
            /* The stream is a child of the body: drop it before finish. */
            wasi_io_streams_output_stream_drop_own(stream);
        }
    }
    wasi_http_types_error_code_t code;
    if (!wasi_http_types_static_outgoing_body_finish(body, NULL, &code)) {
        if (ok) {
            set_transport_error(err, &code);
        } else {
            wasi_http_types_error_code_free(&code);
        }
        ok = false;
    }
    return ok;
}

/* Reads an incoming body to its end; consumes `body`. On success *out is a
 * malloc'd buffer with a NUL after the last byte. */
static bool read_body(wasi_http_types_own_incoming_body_t body, size_t limit, char **out,
                      size_t *out_len, http_error_t *err) {
    bool ok = true;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    wasi_http_types_own_input_stream_t stream;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &stream)) {
        set_error(err, HTTP_ERR_OTHER, "response body stream already taken");
        ok = false;
    } else {
        wasi_io_streams_borrow_input_stream_t s = wasi_io_streams_borrow_input_stream(stream);
        wasi_io_streams_own_pollable_t ready = wasi_io_streams_method_input_stream_subscribe(s);
        for (;;) {
            connector_list_u8_t chunk;
            wasi_io_streams_stream_error_t se;
            if (!wasi_io_streams_method_input_stream_read(s, READ_CHUNK, &chunk, &se)) {
                if (se.tag == WASI_IO_STREAMS_STREAM_ERROR_CLOSED) {
                    break; /* end of body */
                }
                set_stream_error(err, &se, "reading the response body");
                ok = false;
                break;
            }
            if (chunk.len == 0) {
                /* Nothing available yet: wait instead of spinning. */
                wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
                continue;
            }
            if (chunk.len > limit - len) {
                connector_list_u8_free(&chunk);
                set_error(err, HTTP_ERR_TOO_LARGE, "response body larger than %zu bytes", limit);
                ok = false;
                break;
            }
            if (len + chunk.len + 1 > cap) {
                size_t want = cap == 0 ? 4096 : cap;
                while (want < len + chunk.len + 1) {
                    want *= 2;
                }
                char *grown = realloc(buf, want);
                if (grown == NULL) {
                    connector_list_u8_free(&chunk);
                    set_error(err, HTTP_ERR_OTHER, "out of memory");
                    ok = false;
                    break;
                }
                buf = grown;
                cap = want;
            }
            memcpy(buf + len, chunk.ptr, chunk.len);
            len += chunk.len;
            connector_list_u8_free(&chunk);
        }
        /* Children first: the pollable belongs to the stream, the stream to
         * the body. */
        wasi_io_poll_pollable_drop_own(ready);
        wasi_io_streams_input_stream_drop_own(stream);
    }
    /* finish consumes the body; we do not care about trailers. */
    wasi_http_types_future_trailers_drop_own(wasi_http_types_static_incoming_body_finish(body));
    if (!ok) {
        free(buf);
        return false;
    }
    if (buf == NULL) {
        buf = malloc(1);
        if (buf == NULL) {
            set_error(err, HTTP_ERR_OTHER, "out of memory");
            return false;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return true;
}

/* Copies the response headers; drops `headers`. */
static bool copy_headers(wasi_http_types_own_headers_t headers, http_response_t *resp,
                         http_error_t *err) {
    wasi_http_types_list_tuple2_field_name_field_value_t entries;
    wasi_http_types_method_fields_entries(wasi_http_types_borrow_fields(headers), &entries);
    wasi_http_types_fields_drop_own(headers);
    bool ok = true;
    if (entries.len > 0) {
        resp->headers = calloc(entries.len, sizeof *resp->headers);
        if (resp->headers == NULL) {
            ok = false;
        }
    }
    for (size_t i = 0; ok && i < entries.len; i++) {
        http_response_header_t *h = &resp->headers[i];
        h->name = text_dup_n((const char *)entries.ptr[i].f0.ptr, entries.ptr[i].f0.len);
        h->value = text_dup_n((const char *)entries.ptr[i].f1.ptr, entries.ptr[i].f1.len);
        resp->header_count = i + 1;
        if (h->name == NULL || h->value == NULL) {
            ok = false;
        }
    }
    wasi_http_types_list_tuple2_field_name_field_value_free(&entries);
    if (!ok) {
        set_error(err, HTTP_ERR_OTHER, "out of memory");
    }
    return ok;
}

/* Everything after the request is built: send it, write the body, wait for
 * and read the response. Consumes `request`. */
static bool exchange(const http_request_t *req, wasi_http_types_own_outgoing_request_t request,
                     wasi_http_types_own_request_options_t *options, http_response_t *resp,
                     http_error_t *err) {
    wasi_http_types_own_outgoing_body_t body;
    if (!wasi_http_types_method_outgoing_request_body(
            wasi_http_types_borrow_outgoing_request(request), &body)) {
        wasi_http_types_outgoing_request_drop_own(request);
        if (options != NULL) {
            wasi_http_types_request_options_drop_own(*options);
        }
        set_error(err, HTTP_ERR_OTHER, "request body already taken");
        return false;
    }

    /* Hand the request over before writing the body: the host drains the
     * body only once the request is in flight, so writing a large body first
     * could block forever. `handle` consumes the request and the options,
     * also when it fails. */
    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(request, options, &future, &code)) {
        /* The body was never finished; dropping it abandons the request. */
        wasi_http_types_outgoing_body_drop_own(body);
        set_transport_error(err, &code);
        return false;
    }

    http_error_t write_err;
    bool written = write_body(body, req->body, req->body_len, &write_err);

    wasi_io_poll_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(
        wasi_http_types_borrow_future_incoming_response(future));
    wasi_io_poll_method_pollable_block(wasi_io_poll_borrow_pollable(ready));
    wasi_io_poll_pollable_drop_own(ready);

    wasi_http_types_result_result_own_incoming_response_error_code_void_t got;
    bool have = wasi_http_types_method_future_incoming_response_get(
        wasi_http_types_borrow_future_incoming_response(future), &got);
    wasi_http_types_future_incoming_response_drop_own(future);
    if (!have || got.is_err) {
        set_error(err, HTTP_ERR_OTHER, "response future was not ready");
        return false;
    }
    if (got.val.ok.is_err) {
        set_transport_error(err, &got.val.ok.val.err);
        return false;
    }
    wasi_http_types_own_incoming_response_t response = got.val.ok.val.ok;
    /* If the upstream answered, its answer says more than a body write that
     * failed because it stopped reading (e.g. a 413). */
    (void)written;
    (void)write_err;

    wasi_http_types_borrow_incoming_response_t r = wasi_http_types_borrow_incoming_response(response);
    resp->status = wasi_http_types_method_incoming_response_status(r);
    /* headers() is a child of the response; copy_headers drops it. */
    bool ok = copy_headers(wasi_http_types_method_incoming_response_headers(r), resp, err);
    if (ok) {
        wasi_http_types_own_incoming_body_t in_body;
        if (!wasi_http_types_method_incoming_response_consume(r, &in_body)) {
            set_error(err, HTTP_ERR_OTHER, "response body already taken");
            ok = false;
        } else {
            size_t limit = req->max_response_bytes ? req->max_response_bytes
                                                   : HTTP_DEFAULT_MAX_RESPONSE_BYTES;
            ok = read_body(in_body, limit, &resp->body, &resp->body_len, err);
        }
    }
    wasi_http_types_incoming_response_drop_own(response);
    return ok;
}

bool http_send(const http_request_t *req, http_response_t *resp, http_error_t *err) {
    memset(resp, 0, sizeof *resp);
    memset(err, 0, sizeof *err);

    text_url_t url;
    const char *why = NULL;
    if (!text_url_split(req->url, &url, &why)) {
        set_error(err, HTTP_ERR_INVALID_URL, "%s", why);
        return false;
    }

    wasi_http_types_own_fields_t fields;
    if (!build_fields(req, &fields, err)) {
        text_url_free(&url);
        return false;
    }
    /* The constructor consumes `fields`. */
    wasi_http_types_own_outgoing_request_t request =
        wasi_http_types_constructor_outgoing_request(fields);
    wasi_http_types_borrow_outgoing_request_t b = wasi_http_types_borrow_outgoing_request(request);

    wasi_http_types_scheme_t scheme;
    scheme.tag = strcmp(url.scheme, "https") == 0 ? WASI_HTTP_TYPES_SCHEME_HTTPS
                                                  : WASI_HTTP_TYPES_SCHEME_HTTP;
    connector_string_t authority, path;
    connector_string_set(&authority, url.authority);
    connector_string_set(&path, url.path_and_query);

    bool ok = true;
    if (!set_method(b, req->method)) {
        set_error(err, HTTP_ERR_INVALID_REQUEST, "invalid method %s", req->method);
        ok = false;
    } else if (!wasi_http_types_method_outgoing_request_set_scheme(b, &scheme)) {
        set_error(err, HTTP_ERR_INVALID_URL, "unsupported scheme %s", url.scheme);
        ok = false;
    } else if (!wasi_http_types_method_outgoing_request_set_authority(b, &authority)) {
        set_error(err, HTTP_ERR_INVALID_URL, "invalid host %s", url.authority);
        ok = false;
    } else if (!wasi_http_types_method_outgoing_request_set_path_with_query(b, &path)) {
        set_error(err, HTTP_ERR_INVALID_URL, "invalid path or query");
        ok = false;
    }
    text_url_free(&url);
    if (!ok) {
        wasi_http_types_outgoing_request_drop_own(request);
        return false;
    }

    wasi_http_types_own_request_options_t options;
    wasi_http_types_own_request_options_t *options_ptr = NULL;
    if (req->timeout_ms > 0) {
        options = wasi_http_types_constructor_request_options();
        wasi_http_types_borrow_request_options_t o = wasi_http_types_borrow_request_options(options);
        wasi_http_types_duration_t ns = req->timeout_ms > UINT64_MAX / 1000000u
                                            ? UINT64_MAX
                                            : req->timeout_ms * 1000000u;
        /* A host that does not support a timeout refuses to set it; its own
         * limits apply then, so the results are ignored on purpose. */
        (void)wasi_http_types_method_request_options_set_connect_timeout(o, &ns);
        (void)wasi_http_types_method_request_options_set_first_byte_timeout(o, &ns);
        (void)wasi_http_types_method_request_options_set_between_bytes_timeout(o, &ns);
        options_ptr = &options;
    }

    if (!exchange(req, request, options_ptr, resp, err)) {
        http_response_free(resp);
        return false;
    }
    return true;
}

void http_response_free(http_response_t *resp) {
    for (size_t i = 0; i < resp->header_count; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

const char *http_response_header(const http_response_t *resp, const char *name) {
    for (size_t i = 0; i < resp->header_count; i++) {
        if (text_ieq(resp->headers[i].name, name)) {
            return resp->headers[i].value;
        }
    }
    return NULL;
}
