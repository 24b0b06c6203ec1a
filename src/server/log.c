/*
 * The server's log lines (log.h): a fixed buffer on the stack, one write(2) per line.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "server/log.h"
#include "tessera/common.h"
#include "tessera/cookie.h"

static atomic_int log_level = LOG_INFO;
static atomic_int log_json = 0;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *s, log_level_t *out)
{
    for (int i = 0; i < 4; ++i)
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return 0;
        }
    return -1;
}

void log_configure(log_level_t level, int json)
{
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&log_json, json, memory_order_relaxed);
}

int log_enabled(log_level_t level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

int log_is_json(void)
{
    return atomic_load_explicit(&log_json, memory_order_relaxed);
}

static size_t put(char *buf, size_t len, size_t cap, const char *s, size_t n)
{
    if (len + n > cap)
        n = cap - len;
    memcpy(buf + len, s, n);
    return len + n;
}

/* Length of the well-formed UTF-8 sequence at p (1..4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t need;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        need = 2, cp = p[0] & 0x1f;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        need = 3, cp = p[0] & 0x0f;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        need = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; ++i) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return need;
}

size_t log_json_escape(char *buf, size_t len, size_t cap, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];
    for (size_t i = 0; i < n && len < cap;) {
        unsigned char c = p[i];
        size_t k;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            len = put(buf, len, cap, esc, 2);
            ++i;
        } else if (c < 0x20 || c == 0x7f) {
            const char *named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : NULL;
            if (named != NULL)
                len = put(buf, len, cap, named, 2);
            else
                len = put(buf, len, cap, esc, (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c));
            ++i;
        } else if ((k = utf8_seq(p + i, n - i)) == 0) {
            len = put(buf, len, cap, "\\ufffd", 6);
            ++i;
        } else {
            len = put(buf, len, cap, s + i, k);
            i += k;
        }
    }
    return len;
}

/* Text lines: printable ASCII and UTF-8 as is, other bytes as \xNN, so a line stays one line. */
static size_t text_escape(char *buf, size_t len, size_t cap, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    char esc[8];
    for (size_t i = 0; i < n && len < cap;) {
        size_t k = utf8_seq(p + i, n - i);
        if (k == 1 && p[i] >= 0x20 && p[i] != 0x7f) {
            len = put(buf, len, cap, s + i, 1);
        } else if (k > 1) {
            len = put(buf, len, cap, s + i, k);
        } else {
            len = put(buf, len, cap, esc, (size_t)snprintf(esc, sizeof(esc), "\\x%02x", p[i]));
            k = 1;
        }
        i += k;
    }
    return len;
}

size_t log_format_line(char *buf, size_t cap, int json, long long ts_ms, log_level_t level, const char *event,
                       const char *msg, const log_field_t *fields, size_t n)
{
    char ts[32], num[32];
    size_t len = 0, body = cap > 5 ? cap - 5 : 0; /* room kept for "...", the closing brace, the newline */
    tess_iso_date(ts_ms, ts, sizeof(ts));
    if (json) {
        len = (size_t)snprintf(buf, body, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"", ts, level_names[level]);
        len = len < body ? len : body;
        len = log_json_escape(buf, len, body, event, strlen(event));
        len = put(buf, len, body, "\"", 1);
        if (msg != NULL) {
            len = put(buf, len, body, ",\"msg\":\"", 8);
            len = log_json_escape(buf, len, body, msg, strlen(msg));
            len = put(buf, len, body, "\"", 1);
        }
        for (size_t i = 0; i < n; ++i) {
            len = put(buf, len, body, ",\"", 2);
            len = log_json_escape(buf, len, body, fields[i].key, strlen(fields[i].key));
            len = put(buf, len, body, "\":", 2);
            if (fields[i].s != NULL) {
                len = put(buf, len, body, "\"", 1);
                len = log_json_escape(buf, len, body, fields[i].s, strlen(fields[i].s));
                len = put(buf, len, body, "\"", 1);
            } else {
                len = put(buf, len, body, num, (size_t)snprintf(num, sizeof(num), "%lld", fields[i].i));
            }
        }
        if (len >= body) {
            /* Cut: end the line as valid JSON, a field-free object saying so. */
            len = (size_t)snprintf(buf, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"event\":\"log.truncated\"}\n", ts,
                                   level_names[level]);
            return len < cap ? len : cap;
        }
        len = put(buf, len, cap, "}\n", 2);
        return len;
    }
    len = (size_t)snprintf(buf, body, "%s tessera: %s %s", ts, level_names[level], event);
    len = len < body ? len : body;
    if (msg != NULL) {
        len = put(buf, len, body, ": ", 2);
        len = text_escape(buf, len, body, msg, strlen(msg));
    }
    for (size_t i = 0; i < n; ++i) {
        len = put(buf, len, body, " ", 1);
        len = put(buf, len, body, fields[i].key, strlen(fields[i].key));
        len = put(buf, len, body, "=", 1);
        if (fields[i].s != NULL)
            len = text_escape(buf, len, body, fields[i].s, strlen(fields[i].s));
        else
            len = put(buf, len, body, num, (size_t)snprintf(num, sizeof(num), "%lld", fields[i].i));
    }
    if (len >= body)
        len = put(buf, len, cap, "...", 3);
    return put(buf, len, cap, "\n", 1);
}

size_t log_event(log_level_t level, const char *event, const char *msg, const log_field_t *fields, size_t n)
{
    char buf[LOG_LINE_MAX];
    size_t len;
    if (!log_enabled(level))
        return 0;
    len = log_format_line(buf, sizeof(buf), log_is_json(), (long long)tess_now_ms(), level, event, msg, fields, n);
    /* One write: stderr lines from several threads never interleave (short writes to a pipe are atomic). */
    return write(STDERR_FILENO, buf, len) < 0 ? 0 : len;
}
