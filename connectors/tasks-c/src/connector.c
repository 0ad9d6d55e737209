/*
 * The `tasks` example connector in C: the behaviour is specified in
 * docs/authoring/tasks-example.md and shared by the Rust, JavaScript and
 * Python versions.
 *
 * Memory rules at the export boundary (wit-bindgen's C ABI):
 * - Arguments of an export (`method`, `params`, `request`) are owned by the
 *   export: it frees them before returning.
 * - Everything an export returns (the manifest, a result string, an error
 *   message, events) must be allocated with malloc: the generated
 *   `cabi_post_*` functions free it after the host has copied it. Never
 *   return a string literal with connector_string_set().
 * - Running out of memory traps (abort), as the generated cabi_realloc does.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cJSON.h"
#include "connector.h"
#include "http.h"
#include "text.h"

/* The connector's name. `plugboard new` renames a copy of this project by
 * replacing exactly this constant. */
#define CONNECTOR_NAME "tasks"
#define CONNECTOR_VERSION "0.1.0"
#define DEFAULT_API_BASE "https://tasks.example.com/api"

/* Upstream calls give up after this long; the host's own limits still apply. */
#define UPSTREAM_TIMEOUT_MS 30000u

typedef plugboard_connector_types_method_info_t method_info_t;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                              */

/* Traps when an allocation failed. What a guest writes to stderr before a
 * trap is shown in the host's CONNECTOR_TRAPPED message. */
static void *must(void *p) {
    if (p == NULL) {
        fputs(CONNECTOR_NAME ": out of memory\n", stderr);
        abort();
    }
    return p;
}

/* A heap copy of `s` as a component-model string (freed by cabi_post_*). */
static connector_string_t dup_str(const char *s) {
    connector_string_t out;
    connector_string_dup(&out, s);
    return out;
}

/* Moves the malloc'd C string `s` into a component-model string. */
static connector_string_t take_str(char *s) {
    must(s);
    connector_string_t out = {(uint8_t *)s, strlen(s)};
    if (out.len == 0) {
        /* Nothing frees a zero-length string, so do not hand one over. */
        free(s);
        out.ptr = NULL;
    }
    return out;
}

/* A NUL-terminated malloc'd copy of a component-model string. */
static char *cstr(const uint8_t *ptr, size_t len) {
    return must(text_dup_n((const char *)ptr, len));
}

/* Parses exactly one JSON document from `len` bytes (no trailing data, no
 * NUL bytes). Returns NULL when the bytes are not JSON. */
static cJSON *parse_json(const uint8_t *bytes, size_t len) {
    if (len == 0 || memchr(bytes, '\0', len) != NULL) {
        return NULL;
    }
    char *text = cstr(bytes, len);
    cJSON *value = cJSON_ParseWithOpts(text, NULL, 1);
    free(text);
    return value;
}

/* Serializes `value` (compact) into a component-model string. */
static connector_string_t json_str(const cJSON *value) {
    return take_str(cJSON_PrintUnformatted(value));
}

/* The string member `key` of `obj`, or NULL when absent or not a string. */
static const char *get_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void log_line(plugboard_connector_host_log_level_t level, const char *message,
                     const plugboard_connector_host_log_field_t *fields, size_t n) {
    connector_string_t msg;
    connector_string_set(&msg, message); /* borrowed: imports copy their arguments */
    plugboard_connector_host_list_log_field_t list = {
        (plugboard_connector_host_log_field_t *)fields, n};
    plugboard_connector_host_log(level, &msg, &list);
}

/* ------------------------------------------------------------------------ */
/* Errors. Each returns false so that `return fail_...(err, ...);` reads as
 * "fail with". The message is heap-allocated; cabi_post_* frees it.          */

static bool fail(connector_error_t *err, uint8_t tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool fail(connector_error_t *err, uint8_t tag, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *msg = must(malloc(n < 0 ? 1 : (size_t)n + 1));
    va_start(ap, fmt);
    vsnprintf(msg, n < 0 ? 1 : (size_t)n + 1, fmt, ap);
    va_end(ap);

    err->tag = tag;
    connector_string_t s = take_str(msg);
    switch (tag) {
    case PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT:
        err->val.invalid_input = s;
        break;
    case PLUGBOARD_CONNECTOR_TYPES_ERROR_UNAUTHORIZED:
        err->val.unauthorized = s;
        break;
    case PLUGBOARD_CONNECTOR_TYPES_ERROR_NOT_FOUND:
        err->val.not_found = s;
        break;
    case PLUGBOARD_CONNECTOR_TYPES_ERROR_TEMPORARY:
        err->val.temporary = s;
        break;
    case PLUGBOARD_CONNECTOR_TYPES_ERROR_PERMANENT:
        err->val.permanent = s;
        break;
    case PLUGBOARD_CONNECTOR_TYPES_ERROR_CONFIG:
        err->val.config = s;
        break;
    default:
        /* rate-limited and upstream carry records: use their own helpers. */
        fputs(CONNECTOR_NAME ": fail() called with a record error case\n", stderr);
        abort();
    }
    return false;
}

static bool fail_upstream(connector_error_t *err, uint16_t status, const char *message) {
    err->tag = PLUGBOARD_CONNECTOR_TYPES_ERROR_UPSTREAM;
    err->val.upstream.status = status;
    err->val.upstream.message = dup_str(message);
    return false;
}

static bool fail_rate_limited(connector_error_t *err, const char *message, bool has_retry,
                              uint32_t retry_after_secs) {
    err->tag = PLUGBOARD_CONNECTOR_TYPES_ERROR_RATE_LIMITED;
    err->val.rate_limited.message = dup_str(message);
    err->val.rate_limited.retry_after_secs.is_some = has_retry;
    err->val.rate_limited.retry_after_secs.val = has_retry ? retry_after_secs : 0;
    return false;
}

/* ------------------------------------------------------------------------ */
/* describe                                                                   */

static const char CONFIG_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"api_base\":{\"type\":\"string\",\"format\":\"uri\","
    "\"default\":\"https://tasks.example.com/api\",\"description\":\"Base URL of the Tasks "
    "API\"}},\"additionalProperties\":false}";

static const char CREDENTIAL_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"api_token\":{\"type\":\"string\",\"description\":"
    "\"API token\"},\"webhook_secret\":{\"type\":\"string\",\"description\":\"Shared secret "
    "Tasks sends with webhooks\"}},\"required\":[\"api_token\"],\"additionalProperties\":false}";

static const char MESSAGE_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\"}},\"required\":["
    "\"message\"],\"additionalProperties\":false}";

static const char GET_TASK_PARAMS_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\",\"minLength\":1}},"
    "\"required\":[\"id\"],\"additionalProperties\":false}";

static const char CREATE_TASK_PARAMS_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\",\"minLength\":1}},"
    "\"required\":[\"title\"],\"additionalProperties\":false}";

static const char TASK_SCHEMA[] =
    "{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"string\"},\"title\":{\"type\":"
    "\"string\"},\"done\":{\"type\":\"boolean\"}},\"required\":[\"id\",\"title\",\"done\"]}";

static const struct {
    const char *name, *description, *params_schema, *result_schema;
} METHODS[] = {
    {"echo", "Returns `message` unchanged; no network.", MESSAGE_SCHEMA, MESSAGE_SCHEMA},
    {"get_task", "Fetches one task by id.", GET_TASK_PARAMS_SCHEMA, TASK_SCHEMA},
    {"create_task", "Creates a task.", CREATE_TASK_PARAMS_SCHEMA, TASK_SCHEMA},
};
#define METHOD_COUNT (sizeof METHODS / sizeof METHODS[0])

/* A one-element list<string> holding a heap copy of `s`. */
static connector_list_string_t one_string(const char *s) {
    connector_list_string_t list = {must(malloc(sizeof(connector_string_t))), 1};
    list.ptr[0] = dup_str(s);
    return list;
}

void exports_connector_describe(connector_manifest_t *ret) {
    memset(ret, 0, sizeof *ret);
    ret->name = dup_str(CONNECTOR_NAME);
    ret->version = dup_str(CONNECTOR_VERSION);
    ret->description = dup_str(
        "Example connector for the Tasks API: reads and creates tasks, receives task webhooks.");

    method_info_t *methods = must(calloc(METHOD_COUNT, sizeof *methods));
    for (size_t i = 0; i < METHOD_COUNT; i++) {
        methods[i].name = dup_str(METHODS[i].name);
        methods[i].description = dup_str(METHODS[i].description);
        methods[i].params_schema = dup_str(METHODS[i].params_schema);
        methods[i].result_schema = dup_str(METHODS[i].result_schema);
    }
    ret->methods.ptr = methods;
    ret->methods.len = METHOD_COUNT;

    ret->config_schema = dup_str(CONFIG_SCHEMA);
    ret->credential_schema = dup_str(CREDENTIAL_SCHEMA);

    /* The host adds `authorization: Bearer <api_token>` to requests towards
     * {api_base}; the connector never sees the token. */
    ret->auth.scheme.tag = PLUGBOARD_CONNECTOR_TYPES_AUTH_SCHEME_BEARER;
    ret->auth.scheme.val.bearer = dup_str("api_token");
    ret->auth.hosts = one_string("{api_base}");
    ret->auth.static_headers.ptr = NULL;
    ret->auth.static_headers.len = 0;

    ret->hosts = one_string("{api_base}");

    ret->webhook.is_some = true;
    ret->webhook.val.scheme.tag = PLUGBOARD_CONNECTOR_TYPES_WEBHOOK_SCHEME_SHARED_SECRET;
    ret->webhook.val.scheme.val.shared_secret.header = dup_str("x-tasks-secret");
    ret->webhook.val.scheme.val.shared_secret.secret_field = dup_str("webhook_secret");
    ret->webhook.val.delivery_id_header.is_some = true;
    ret->webhook.val.delivery_id_header.val = dup_str("x-tasks-delivery");

    ret->rate_limit.is_some = false;
}

/* ------------------------------------------------------------------------ */
/* Talking to the Tasks API                                                   */

/* The configured base URL without one trailing `/` (malloc'd). */
static bool api_base(char **out, connector_error_t *err) {
    connector_string_t key;
    connector_string_set(&key, "api_base");
    plugboard_connector_host_json_t raw;
    if (!plugboard_connector_host_get_config(&key, &raw)) {
        *out = must(text_dup_n(DEFAULT_API_BASE, strlen(DEFAULT_API_BASE)));
        return true;
    }
    /* get-config returns JSON text: a string arrives with its quotes. */
    cJSON *value = parse_json(raw.ptr, raw.len);
    plugboard_connector_host_json_free(&raw);
    if (!cJSON_IsString(value)) {
        cJSON_Delete(value);
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_CONFIG, "api_base must be a string");
    }
    char *base = must(text_dup_n(value->valuestring, strlen(value->valuestring)));
    cJSON_Delete(value);
    size_t len = strlen(base);
    if (len > 0 && base[len - 1] == '/') {
        base[len - 1] = '\0';
    }
    *out = base;
    return true;
}

/*
 * Sends `method` to `{api_base}{path}` with an optional JSON body and returns
 * the response, whatever its status. Fails only when no response came back.
 */
static bool call_tasks(const char *method, const char *path, const cJSON *json_body,
                       http_response_t *resp, connector_error_t *err) {
    char *base;
    if (!api_base(&base, err)) {
        return false;
    }
    char *url = must(text_printf("%s%s", base, path));
    free(base);

    char *body = json_body != NULL ? must(cJSON_PrintUnformatted(json_body)) : NULL;
    http_header_t headers[2] = {{"accept", "application/json"}};
    size_t header_count = 1;
    if (body != NULL) {
        headers[header_count++] = (http_header_t){"content-type", "application/json"};
    }
    http_request_t req = {
        .method = method,
        .url = url,
        .headers = headers,
        .header_count = header_count,
        .body = (const uint8_t *)body,
        .body_len = body != NULL ? strlen(body) : 0,
        .timeout_ms = UPSTREAM_TIMEOUT_MS,
    };
    http_error_t herr;
    bool ok = http_send(&req, resp, &herr);
    free(body);
    free(url);
    if (ok) {
        return true;
    }

    plugboard_connector_host_log_field_t fields[] = {
        {{(uint8_t *)"method", 6}, {(uint8_t *)method, strlen(method)}},
        {{(uint8_t *)"path", 4}, {(uint8_t *)path, strlen(path)}},
        {{(uint8_t *)"error", 5}, {(uint8_t *)herr.message, strlen(herr.message)}},
    };
    log_line(PLUGBOARD_CONNECTOR_HOST_LOG_LEVEL_WARN, "request to the Tasks API failed", fields,
             sizeof fields / sizeof fields[0]);
    if (herr.kind == HTTP_ERR_INVALID_URL) {
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_CONFIG, "api_base is not a usable URL: %s",
                    herr.message);
    }
    /* Denied by the host, connection refused, timeout, ...: the spec maps
     * every failed request to temporary("request failed: <code>"). */
    return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_TEMPORARY, "request failed: %s", herr.message);
}

/* Maps a non-2xx answer to an error (returns false); 2xx returns true. */
static bool check_status(const http_response_t *resp, connector_error_t *err) {
    uint16_t status = resp->status;
    if (status >= 200 && status < 300) {
        return true;
    }
    /* <message>: the body's string `error`, else "HTTP <status>". */
    char fallback[16];
    snprintf(fallback, sizeof fallback, "HTTP %u", (unsigned)status);
    cJSON *body = parse_json((const uint8_t *)resp->body, resp->body_len);
    const char *from_body = cJSON_IsObject(body) ? get_string(body, "error") : NULL;
    char *message = must(text_printf("%s", from_body != NULL ? from_body : fallback));
    cJSON_Delete(body);

    bool ok;
    if (status == 400 || status == 422) {
        ok = fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT, "%s", message);
    } else if (status == 401 || status == 403) {
        ok = fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_UNAUTHORIZED, "%s", message);
    } else if (status == 404) {
        ok = fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_NOT_FOUND, "%s", message);
    } else if (status == 429) {
        uint32_t secs = 0;
        bool has = text_parse_retry_after(http_response_header(resp, "retry-after"), &secs);
        ok = fail_rate_limited(err, message, has, secs);
    } else if (status >= 500 && status < 600) {
        ok = fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_TEMPORARY, "%s", message);
    } else {
        ok = fail_upstream(err, status, message);
    }
    free(message);
    return ok;
}

/* A 2xx task answer reduced to {id, title, done}. */
static bool task_result(const http_response_t *resp, connector_json_t *ret, connector_error_t *err) {
    cJSON *body = parse_json((const uint8_t *)resp->body, resp->body_len);
    const char *id = get_string(body, "id");
    const char *title = get_string(body, "title");
    const cJSON *done = cJSON_GetObjectItemCaseSensitive(body, "done");
    if (!cJSON_IsObject(body) || id == NULL || title == NULL || !cJSON_IsBool(done)) {
        cJSON_Delete(body);
        return fail_upstream(err, resp->status, "unexpected response body");
    }
    cJSON *task = must(cJSON_CreateObject());
    must(cJSON_AddStringToObject(task, "id", id));
    must(cJSON_AddStringToObject(task, "title", title));
    must(cJSON_AddBoolToObject(task, "done", cJSON_IsTrue(done)));
    *ret = json_str(task);
    cJSON_Delete(task);
    cJSON_Delete(body);
    return true;
}

/* ------------------------------------------------------------------------ */
/* Methods                                                                    */

static bool method_echo(const cJSON *params, connector_json_t *ret, connector_error_t *err) {
    const char *message = get_string(params, "message");
    if (message == NULL) {
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
                    "message must be a string");
    }
    if (message[0] == '\0') {
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
                    "message must not be empty");
    }
    cJSON *out = must(cJSON_CreateObject());
    must(cJSON_AddStringToObject(out, "message", message));
    *ret = json_str(out);
    cJSON_Delete(out);
    return true;
}

static bool method_get_task(const cJSON *params, connector_json_t *ret, connector_error_t *err) {
    const char *id = get_string(params, "id");
    if (id == NULL || id[0] == '\0') {
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
                    "id must be a non-empty string");
    }
    /* `.` and `..` would be dot-segments, which servers and proxies resolve
     * (`/tasks/..` is `/`, and many decode `%2E%2E` first): no encoding
     * keeps them one segment, so refuse them, as the other examples do. */
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0) {
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
                    "id must not be `.` or `..`");
    }
    char *segment = must(text_pct_encode_segment(id));
    char *path = must(text_printf("/tasks/%s", segment));
    free(segment);
    http_response_t resp;
    bool ok = call_tasks("GET", path, NULL, &resp, err);
    free(path);
    if (!ok) {
        return false;
    }
    ok = check_status(&resp, err) && task_result(&resp, ret, err);
    http_response_free(&resp);
    return ok;
}

static bool method_create_task(const cJSON *params, connector_json_t *ret, connector_error_t *err) {
    const char *title = get_string(params, "title");
    if (title == NULL || title[0] == '\0') {
        return fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
                    "title must be a non-empty string");
    }
    cJSON *body = must(cJSON_CreateObject());
    must(cJSON_AddStringToObject(body, "title", title));
    http_response_t resp;
    bool ok = call_tasks("POST", "/tasks", body, &resp, err);
    cJSON_Delete(body);
    if (!ok) {
        return false;
    }
    ok = check_status(&resp, err) && task_result(&resp, ret, err);
    http_response_free(&resp);
    return ok;
}

bool exports_connector_invoke(connector_string_t *method, connector_json_t *params,
                              connector_json_t *ret, connector_error_t *err) {
    /* Take what we need from the arguments, then free them (we own them). */
    char *name = cstr(method->ptr, method->len);
    cJSON *p = parse_json(params->ptr, params->len);
    connector_string_free(method);
    plugboard_connector_types_json_free(params);

    bool (*handler)(const cJSON *, connector_json_t *, connector_error_t *) = NULL;
    if (strcmp(name, "echo") == 0) {
        handler = method_echo;
    } else if (strcmp(name, "get_task") == 0) {
        handler = method_get_task;
    } else if (strcmp(name, "create_task") == 0) {
        handler = method_create_task;
    }

    bool ok;
    if (handler == NULL) {
        ok = fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT, "unknown method `%s`", name);
    } else if (!cJSON_IsObject(p)) {
        ok = fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
                  "params must be a JSON object");
    } else {
        ok = handler(p, ret, err);
    }
    cJSON_Delete(p);
    free(name);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* test-connection                                                            */

bool exports_connector_test_connection(connector_string_t *ret, connector_error_t *err) {
    http_response_t resp;
    if (!call_tasks("GET", "/me", NULL, &resp, err)) {
        return false;
    }
    bool ok = check_status(&resp, err);
    if (ok) {
        cJSON *body = parse_json((const uint8_t *)resp.body, resp.body_len);
        const char *name = cJSON_IsObject(body) ? get_string(body, "name") : NULL;
        if (name == NULL) {
            ok = fail_upstream(err, resp.status, "unexpected response body");
        } else {
            *ret = take_str(must(text_printf("connected as %s", name)));
        }
        cJSON_Delete(body);
    }
    http_response_free(&resp);
    return ok;
}

/* ------------------------------------------------------------------------ */
/* handle-webhook                                                             */

bool exports_connector_handle_webhook(connector_webhook_request_t *request,
                                      connector_webhook_outcome_t *ret, connector_error_t *err) {
    /* The host has already checked x-tasks-secret. */
    cJSON *body = parse_json(request->body.ptr, request->body.len);
    /* wit-bindgen 0.63's connector_webhook_request_free does not free the
     * body (a list<u8>), so free it first and clear it: this stays correct if
     * a later version starts freeing it. */
    connector_list_u8_free(&request->body);
    request->body.ptr = NULL;
    request->body.len = 0;
    connector_webhook_request_free(request);

    bool ok = false;
    const char *type = NULL, *id = NULL;
    const cJSON *task = NULL;
    if (body == NULL) {
        fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT, "body is not valid JSON");
    } else if (!cJSON_IsObject(body)) {
        fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT, "body must be a JSON object");
    } else if ((type = get_string(body, "type")) == NULL) {
        fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
             "`type` is missing or not a string");
    } else if ((id = get_string(body, "id")) == NULL) {
        fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT, "`id` is missing or not a string");
    } else if (!cJSON_IsObject(task = cJSON_GetObjectItemCaseSensitive(body, "task"))) {
        fail(err, PLUGBOARD_CONNECTOR_TYPES_ERROR_INVALID_INPUT,
             "`task` is missing or not an object");
    } else {
        plugboard_connector_types_event_t *event = must(calloc(1, sizeof *event));
        event->kind = dup_str(type);
        event->id = dup_str(id);
        event->payload = json_str(task);
        ret->response.is_some = false; /* the host answers 200 */
        ret->events.ptr = event;
        ret->events.len = 1;
        ok = true;
    }
    cJSON_Delete(body);
    return ok;
}
