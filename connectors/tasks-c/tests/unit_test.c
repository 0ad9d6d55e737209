/*
 * Native unit tests of src/text.c (no WebAssembly needed):
 *
 *   cc -std=c11 -fsanitize=address,undefined -I src src/text.c tests/unit_test.c -o unit && ./unit
 *
 * tests/run.sh does exactly that.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void check_encode(const char *in, const char *want) {
    char *got = text_pct_encode_segment(in);
    if (got == NULL || strcmp(got, want) != 0) {
        fprintf(stderr, "encode(%s): got %s, want %s\n", in, got ? got : "(null)", want);
        failures++;
    }
    free(got);
}

static void test_pct_encode(void) {
    check_encode("42", "42");
    check_encode("", "");
    check_encode("AZaz09-._~", "AZaz09-._~");
    check_encode("a b/c?", "a%20b%2Fc%3F");
    check_encode("%#&=+:@", "%25%23%26%3D%2B%3A%40");
    check_encode("..", ".."); /* a dot segment stays one segment of the URL's path */
    check_encode("\xc3\xa9", "%C3%A9");
}

static void test_retry_after(void) {
    uint32_t s = 7;
    CHECK(text_parse_retry_after("120", &s) && s == 120);
    CHECK(text_parse_retry_after(" 0 ", &s) && s == 0);
    CHECK(text_parse_retry_after("99999999999999999999", &s) && s == UINT32_MAX);
    s = 7;
    CHECK(!text_parse_retry_after("", &s) && s == 7);
    CHECK(!text_parse_retry_after(NULL, &s));
    CHECK(!text_parse_retry_after("-1", &s));
    CHECK(!text_parse_retry_after("1.5", &s));
    CHECK(!text_parse_retry_after("12 s", &s));
    CHECK(!text_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", &s));
}

static void check_url(const char *url, const char *scheme, const char *authority,
                      const char *path) {
    text_url_t u;
    const char *why = NULL;
    if (!text_url_split(url, &u, &why)) {
        fprintf(stderr, "split(%s) failed: %s\n", url, why);
        failures++;
        return;
    }
    if (strcmp(u.scheme, scheme) != 0 || strcmp(u.authority, authority) != 0 ||
        strcmp(u.path_and_query, path) != 0) {
        fprintf(stderr, "split(%s): got %s | %s | %s\n", url, u.scheme, u.authority,
                u.path_and_query);
        failures++;
    }
    text_url_free(&u);
}

static void check_bad_url(const char *url) {
    text_url_t u;
    const char *why = NULL;
    if (text_url_split(url, &u, &why)) {
        fprintf(stderr, "split(%s) should fail\n", url);
        text_url_free(&u);
        failures++;
    } else {
        CHECK(why != NULL && u.scheme == NULL && u.authority == NULL);
    }
}

static void test_url_split(void) {
    check_url("https://tasks.example.com/api/tasks/42", "https", "tasks.example.com",
              "/api/tasks/42");
    check_url("http://127.0.0.1:8080/api/me", "http", "127.0.0.1:8080", "/api/me");
    check_url("HTTPS://Example.com", "https", "Example.com", "/");
    check_url("http://h?x=1", "http", "h", "/?x=1");
    check_url("http://h/p?q=1#frag", "http", "h", "/p?q=1");
    check_url("http://[::1]:8080/p", "http", "[::1]:8080", "/p");
    check_bad_url("");
    check_bad_url("/api/tasks");
    check_bad_url("ftp://h/x");
    check_bad_url("http:///path");
    check_bad_url("https://user:pw@h/");
}

static void test_misc(void) {
    CHECK(text_ieq("Retry-After", "retry-after"));
    CHECK(!text_ieq("retry-after", "retry-afte"));
    CHECK(text_ieq("", ""));
    char *s = text_printf("%s-%d", "x", 5);
    CHECK(s != NULL && strcmp(s, "x-5") == 0);
    free(s);
    s = text_dup_n("abc", 2);
    CHECK(s != NULL && strcmp(s, "ab") == 0);
    free(s);
}

int main(void) {
    test_pct_encode();
    test_retry_after();
    test_url_split();
    test_misc();
    if (failures > 0) {
        fprintf(stderr, "unit tests: %d failure(s)\n", failures);
        return 1;
    }
    printf("unit tests: ok\n");
    return 0;
}
