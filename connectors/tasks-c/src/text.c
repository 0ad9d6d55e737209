#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *text_printf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    char *out = malloc((size_t)n + 1);
    if (out == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

char *text_dup_n(const char *s, size_t len) {
    char *out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    if (len > 0) {
        memcpy(out, s, len);
    }
    out[len] = '\0';
    return out;
}

static bool is_unreserved(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

char *text_pct_encode_segment(const char *s) {
    static const char hex[] = "0123456789ABCDEF";
    size_t len = strlen(s);
    /* Worst case every byte becomes three; guard the multiplication. */
    if (len > (SIZE_MAX - 1) / 3) {
        return NULL;
    }
    char *out = malloc(len * 3 + 1);
    if (out == NULL) {
        return NULL;
    }
    char *w = out;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (is_unreserved(*p)) {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 0x0F];
        }
    }
    *w = '\0';
    return out;
}

static bool is_space(char c) {
    return c == ' ' || c == '\t';
}

bool text_parse_retry_after(const char *value, uint32_t *secs) {
    if (value == NULL) {
        return false;
    }
    const char *p = value;
    while (is_space(*p)) {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return false;
    }
    uint64_t n = 0;
    while (*p >= '0' && *p <= '9') {
        if (n <= UINT32_MAX) {
            n = n * 10 + (uint64_t)(*p - '0');
        }
        p++;
    }
    while (is_space(*p)) {
        p++;
    }
    if (*p != '\0') {
        return false;
    }
    *secs = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return true;
}

static char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

bool text_ieq(const char *a, const char *b) {
    while (*a != '\0' && *b != '\0') {
        if (ascii_lower(*a) != ascii_lower(*b)) {
            return false;
        }
        a++;
        b++;
    }
    return *a == *b;
}

/* Schemes are case-insensitive (RFC 3986 section 3.1). */
static bool ieq_n(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) {
            return false;
        }
    }
    return true;
}

void text_url_free(text_url_t *url) {
    free(url->scheme);
    free(url->authority);
    free(url->path_and_query);
    url->scheme = url->authority = url->path_and_query = NULL;
}

bool text_url_split(const char *url, text_url_t *out, const char **why) {
    memset(out, 0, sizeof *out);
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        *why = "not an absolute URL";
        return false;
    }
    size_t scheme_len = (size_t)(sep - url);
    const char *scheme;
    if (scheme_len == 4 && ieq_n(url, "http", 4)) {
        scheme = "http";
    } else if (scheme_len == 5 && ieq_n(url, "https", 5)) {
        scheme = "https";
    } else {
        *why = "scheme must be http or https";
        return false;
    }
    const char *auth = sep + 3;
    size_t auth_len = strcspn(auth, "/?#");
    if (auth_len == 0) {
        *why = "URL has no host";
        return false;
    }
    if (memchr(auth, '@', auth_len) != NULL) {
        /* Credentials in URLs would bypass the host's credential handling. */
        *why = "user information in URLs is not supported";
        return false;
    }
    const char *rest = auth + auth_len;
    size_t rest_len = strcspn(rest, "#");

    out->scheme = text_dup_n(scheme, strlen(scheme));
    out->authority = text_dup_n(auth, auth_len);
    if (rest_len == 0) {
        out->path_and_query = text_dup_n("/", 1);
    } else if (rest[0] == '?') {
        out->path_and_query = text_printf("/%.*s", (int)rest_len, rest);
    } else {
        out->path_and_query = text_dup_n(rest, rest_len);
    }
    if (out->scheme == NULL || out->authority == NULL || out->path_and_query == NULL) {
        text_url_free(out);
        *why = "out of memory";
        return false;
    }
    return true;
}
