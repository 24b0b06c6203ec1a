/*
 * Unit tests of the log line writer (server/log.h): JSON escaping of quotes, backslashes and control bytes,
 * UTF-8 kept when well-formed and replaced when not, every JSON line parsed back by cJSON, text lines kept on
 * one line, the level parser, and the bound on a line's length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "server/log.h"

#define TS 1764633600000LL /* 2025-12-02T00:00:00.000Z */

static size_t esc(const char *s, size_t n, char *out, size_t cap)
{
    size_t len = log_json_escape(out, 0, cap - 1, s, n);
    out[len] = '\0';
    return len;
}

static void test_json_escape(void **state)
{
    char out[256];
    (void)state;
    esc("a\"b\\c", 5, out, sizeof(out));
    assert_string_equal(out, "a\\\"b\\\\c");
    esc("l1\nl2\r\t\x01\x1f\x7f", 10, out, sizeof(out));
    assert_string_equal(out, "l1\\nl2\\r\\t\\u0001\\u001f\\u007f");
    esc("nul\0x", 5, out, sizeof(out));
    assert_string_equal(out, "nul\\u0000x");
    /* Well-formed UTF-8 as is: é, €, 😀. */
    esc("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, out, sizeof(out));
    assert_string_equal(out, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    /* A lone continuation byte, an overlong, a surrogate, a cut sequence: each byte replaced. */
    esc("\x80", 1, out, sizeof(out));
    assert_string_equal(out, "\\ufffd");
    esc("\xc0\xaf", 2, out, sizeof(out));
    assert_string_equal(out, "\\ufffd\\ufffd");
    esc("\xed\xa0\x80", 3, out, sizeof(out));
    assert_string_equal(out, "\\ufffd\\ufffd\\ufffd");
    esc("x\xe2\x82", 3, out, sizeof(out));
    assert_string_equal(out, "x\\ufffd\\ufffd");
    /* Never past cap. */
    assert_int_equal(esc("\"\"\"\"\"\"", 6, out, 6), 5);
}

static void test_json_line_parses_back(void **state)
{
    char buf[LOG_LINE_MAX];
    const char *nasty = "quote\" back\\ nl\n ctl\x02 bad\xff utf8\xc3\xa9";
    log_field_t f[] = {{"path", nasty, 0}, {"status", NULL, 404}, {"bytes", NULL, -7}};
    size_t len = log_format_line(buf, sizeof(buf), 1, TS, LOG_WARN, "access", nasty, f, 3);
    cJSON *o, *v;
    (void)state;
    assert_true(len > 0 && len < sizeof(buf));
    assert_int_equal(buf[len - 1], '\n');
    assert_null(memchr(buf, '\n', len - 1)); /* one line */
    buf[len] = '\0';
    o = cJSON_Parse(buf);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "ts")->valuestring, "2025-12-02T00:00:00.000Z");
    assert_string_equal(cJSON_GetObjectItem(o, "level")->valuestring, "warn");
    assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "access");
    v = cJSON_GetObjectItem(o, "path");
    assert_string_equal(v->valuestring, "quote\" back\\ nl\n ctl\x02 bad\xef\xbf\xbd utf8\xc3\xa9");
    assert_string_equal(cJSON_GetObjectItem(o, "msg")->valuestring, v->valuestring);
    assert_int_equal(cJSON_GetObjectItem(o, "status")->valueint, 404);
    assert_int_equal(cJSON_GetObjectItem(o, "bytes")->valueint, -7);
    cJSON_Delete(o);
}

static void test_text_line(void **state)
{
    char buf[LOG_LINE_MAX];
    log_field_t f[] = {{"path", "/a\nb", 0}, {"status", NULL, 200}};
    size_t len = log_format_line(buf, sizeof(buf), 0, TS, LOG_INFO, "access", "m\x01", f, 2);
    (void)state;
    buf[len] = '\0';
    assert_string_equal(buf, "2025-12-02T00:00:00.000Z tessera: info access: m\\x01 path=/a\\x0ab status=200\n");
}

static void test_long_lines_are_bounded(void **state)
{
    static char big[3 * LOG_LINE_MAX];
    char buf[LOG_LINE_MAX];
    size_t len;
    cJSON *o;
    (void)state;
    memset(big, '"', sizeof(big) - 1);
    len = log_format_line(buf, sizeof(buf), 1, TS, LOG_ERROR, "x", big, NULL, 0);
    assert_true(len <= sizeof(buf) - 1);
    buf[len] = '\0';
    o = cJSON_Parse(buf); /* still a JSON object: the truncation marker */
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "event")->valuestring, "log.truncated");
    cJSON_Delete(o);
    len = log_format_line(buf, sizeof(buf), 0, TS, LOG_ERROR, "x", big, NULL, 0);
    assert_true(len <= sizeof(buf));
    assert_memory_equal(buf + len - 4, "...\n", 4);
}

static void test_levels(void **state)
{
    log_level_t l;
    (void)state;
    assert_int_equal(log_level_parse("debug", &l), 0);
    assert_int_equal(l, LOG_DEBUG);
    assert_int_equal(log_level_parse("error", &l), 0);
    assert_int_equal(l, LOG_ERROR);
    assert_int_equal(log_level_parse("INFO", &l), -1);
    assert_int_equal(log_level_parse("", &l), -1);
    log_configure(LOG_WARN, 1);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_WARN));
    assert_false(log_enabled(LOG_INFO));
    assert_int_equal(log_event(LOG_INFO, "filtered", NULL, NULL, 0), 0);
    assert_true(log_is_json());
    log_configure(LOG_INFO, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escape), cmocka_unit_test(test_json_line_parses_back),
        cmocka_unit_test(test_text_line),   cmocka_unit_test(test_long_lines_are_bounded),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
