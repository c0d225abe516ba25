/*
 * test_log.c — src/log: log_request (the access line, built without an
 * argument list) must write exactly the line log_buffered writes for the
 * same request, in TEXT and JSON, whatever a client put in the path, the
 * method or the id (quotes, control characters, bytes that are not UTF-8)
 * and for every kind of number; only the timestamp may differ.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "../test.h"

/* Everything logged while fn runs, from the stderr it went to. */
static char *capture(void (*fn)(void *), void *arg)
{
    FILE *f = tmpfile();
    if (!f)
        return NULL;
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(f), STDERR_FILENO);
    fn(arg);
    log_flush();
    dup2(saved, STDERR_FILENO);
    close(saved);
    long size = ftell(f) > 0 ? ftell(f) : lseek(fileno(f), 0, SEEK_END);
    char *text = calloc(1, (size_t)size + 1);
    if (text) {
        lseek(fileno(f), 0, SEEK_SET);
        if (read(fileno(f), text, (size_t)size) != size)
            text[0] = '\0';
    }
    fclose(f);
    return text;
}

typedef struct request_case {
    const char *id, *method, *path, *model;
    unsigned status;
    double seconds;
    unsigned long long bytes;
} request_case;

static void write_with_log_request(void *arg)
{
    const request_case *c = arg;
    log_request(c->id, c->method, c->path, c->status, c->seconds, c->bytes, c->model);
}

/* The access line as the server wrote it before log_request. */
static void write_with_log_buffered(void *arg)
{
    const request_case *c = arg;
    char status[24], ms[32], bytes[24];
    snprintf(status, sizeof(status), "%u", c->status);
    double micros = c->seconds * 1e6 + 0.5;
    unsigned long long thousandths = micros > 0 && micros < 1e18 ? (unsigned long long)micros : 0;
    snprintf(ms, sizeof(ms), "%llu.%03llu", thousandths / 1000, thousandths % 1000);
    snprintf(bytes, sizeof(bytes), "%llu", c->bytes);
    log_buffered(LOG_INFO, "request", "request_id", c->id, "method", c->method, "path", c->path ? c->path : "",
                 "status", status, "ms", ms, "bytes", bytes, "model", c->model, NULL);
}

/* The line without its timestamp (TEXT: up to the first space; JSON: the
 * "time" member's value). */
static const char *after_time(const char *line)
{
    const char *p = line[0] == '{' ? strstr(line, "\",\"level\"") : strchr(line, ' ');
    return p ? p : line;
}

static void check_same_line(const request_case *c, log_format format)
{
    log_configure(LOG_INFO, format);
    char *want = capture(write_with_log_buffered, (void *)c);
    char *got = capture(write_with_log_request, (void *)c);
    CHECK(want && got && want[0] && strchr(want, '\n'));
    if (want && got && strcmp(after_time(want), after_time(got)) != 0) {
        fprintf(stderr, "log_request wrote\n  %sinstead of\n  %s", got, want);
        test_failed_checks++;
    }
    free(want);
    free(got);
}

static void test_log_request_writes_the_line_log_buffered_writes(void)
{
    const request_case cases[] = {
        {"0123456789abcdef-000001", "POST", "/predict", "iris_svc", 200, 0.000123456, 88},
        {"id", "GET", "/v2/models/m/versions/2/infer?x=\"1\"\\", "", 404, 12.3456789, 0},
        {"x", "PO\tST", "/p\x01\x7f\n\r\"ath\xff\xc3\xa9", NULL, 499, 0.0, 18446744073709551615ull},
        {"", "", NULL, "m\"odel", 0, 1e-9, 1},
        {"y", "DELETE", "/a", "b", 503, 4.0005, 65536},
        {"z", "GET", "/", "c", 408, -1.0, 7},
        /* the special bytes past the first 8, where the line is scanned 8 at a time */
        {"0123456789abcdef\x01", "GETGETGET\x7f", "/predict/abcdefgh\x1fij\x7fklmnopqr\"s\\t", "long_model_name\x02", 200,
         0.5, 3},
        {"0123456789abcdef-00", "OPTIONS1", "/abcdefghijk\xc3\xa9\xff\xed\xa0\x80zzzzzzzz", "modelname\xc3", 201, 0.25, 4},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_same_line(&cases[i], LOG_TEXT);
        check_same_line(&cases[i], LOG_JSON);
    }
}

/* A client's long URL: past the length written in one piece, the line is
 * built the general way, with the same bytes. */
static void test_log_request_writes_long_paths_the_same_way(void)
{
    static char path[3001];
    for (size_t i = 0; i < sizeof(path) - 1; i++)
        path[i] = (char)('a' + i % 26);
    path[2999] = '\x01';
    request_case c = {"id", "GET", path, "m", 414, 0.002, 40};
    check_same_line(&c, LOG_TEXT);
    check_same_line(&c, LOG_JSON);
    path[1000] = '\0'; /* 1000 bytes: the one-piece line, at its edge */
    request_case edge = {"0123456789abcdef-000001", "GET", path, "model", 404, 0.002, 40};
    check_same_line(&edge, LOG_TEXT);
}

/* The escaping itself, spelled out: past the first 8 bytes too. */
static void test_log_request_escapes_client_bytes_anywhere(void)
{
    request_case c = {"abcdefgh-1\x01", "GET", "/abcdefghij\"k\\l\tm\x7fn\xc3\xa9o\xffp", "m", 200, 0.001, 2};
    log_configure(LOG_INFO, LOG_TEXT);
    char *text = capture(write_with_log_request, &c);
    CHECK(text && strcmp(after_time(text), " INFO    request request_id=abcdefgh-1? method=GET "
                                            "path=/abcdefghij\"k\\l?m?n\xc3\xa9o\xffp status=200 ms=1.000 "
                                            "bytes=2 model=m\n") == 0);
    log_configure(LOG_INFO, LOG_JSON);
    char *json = capture(write_with_log_request, &c);
    CHECK(json && strcmp(after_time(json), "\",\"level\":\"INFO\",\"message\":\"request\",\"request_id\":"
                                            "\"abcdefgh-1\\u0001\",\"method\":\"GET\",\"path\":"
                                            "\"/abcdefghij\\\"k\\\\l\\tm\x7fn\xc3\xa9o?p\",\"status\":\"200\","
                                            "\"ms\":\"1.000\",\"bytes\":\"2\",\"model\":\"m\"}\n") == 0);
    free(text);
    free(json);
    log_configure(LOG_INFO, LOG_TEXT);
}

static void test_log_request_is_silent_below_its_level(void)
{
    request_case c = {"id", "GET", "/", "m", 200, 0.001, 2};
    log_configure(LOG_WARNING, LOG_TEXT);
    char *got = capture(write_with_log_request, &c);
    CHECK(got && got[0] == '\0');
    free(got);
    log_configure(LOG_INFO, LOG_TEXT);
}

int main(void)
{
    RUN(test_log_request_writes_the_line_log_buffered_writes);
    RUN(test_log_request_writes_long_paths_the_same_way);
    RUN(test_log_request_escapes_client_bytes_anywhere);
    RUN(test_log_request_is_silent_below_its_level);
    TEST_MAIN_END();
}
