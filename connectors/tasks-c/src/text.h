/*
 * Small string helpers with no WebAssembly dependency, so that
 * tests/unit_test.c can compile and test them natively.
 *
 * Every function that returns `char *` returns a NUL-terminated string
 * allocated with malloc (free it with free()), or NULL when memory ran out.
 */
#ifndef TASKS_TEXT_H
#define TASKS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* printf into a freshly allocated string. */
char *text_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copy of the `len` bytes at `s`, NUL-terminated. */
char *text_dup_n(const char *s, size_t len);

/*
 * Percent-encodes `s` for use as ONE URL path segment: every byte except the
 * RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~) becomes %XX, so `/`,
 * `?`, `#` and `%` in an id cannot change the URL's structure.
 */
char *text_pct_encode_segment(const char *s);

/*
 * Parses a Retry-After value given in seconds ("120", surrounding spaces
 * allowed). Values above UINT32_MAX saturate. The HTTP-date form and anything
 * else unparsable return false.
 */
bool text_parse_retry_after(const char *value, uint32_t *secs);

/* The parts of an absolute http(s) URL, each a malloc'd string. */
typedef struct text_url {
    char *scheme;         /* "http" or "https", lower case */
    char *authority;      /* "host[:port]" as written (userinfo is refused) */
    char *path_and_query; /* starts with "/"; "/" when the URL has no path */
} text_url_t;

/*
 * Splits `url` into scheme, authority and path-with-query. The fragment
 * (after `#`) is dropped, as HTTP clients do. Returns false, with a static
 * explanation in *why, for anything that is not an absolute http:// or
 * https:// URL with a non-empty host.
 */
bool text_url_split(const char *url, text_url_t *out, const char **why);
void text_url_free(text_url_t *url);

/* ASCII case-insensitive equality of two NUL-terminated strings. */
bool text_ieq(const char *a, const char *b);

#endif
