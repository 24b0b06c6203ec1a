/*
 * The server's log: one line per event on stderr, as JSON ({"ts":..,"level":..,"event":..,"msg":..} plus
 * key/value fields) or as text ("TS LEVEL event: msg k=v"), each line written with one write(2) so that lines
 * from several threads never interleave. Level and format are set once at start-up (log_configure) and only
 * read afterwards, from any thread.
 *
 * Never give it a secret, a cookie, or a URL that may hold a password.
 */
#ifndef TESSERA_SERVER_LOG_H
#define TESSERA_SERVER_LOG_H

#include <stddef.h>

typedef enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 } log_level_t;

#define LOG_LINE_MAX 4096 /* bytes in one line; a longer message is cut (and marked with "...") */

/* Parses error|warn|info|debug; 0 or -1. */
int log_level_parse(const char *s, log_level_t *out);
/* Sets the level and the format (json: 1, text: 0). Call before any thread starts. */
void log_configure(log_level_t level, int json);
/* 1 when lines of `level` are written. */
int log_enabled(log_level_t level);
/* 1 when the format is JSON. */
int log_is_json(void);

/* A key/value field of a line: a string (`s`, NULL for none) or, when `s` is NULL, the integer `i`. */
typedef struct log_field {
    const char *key; /* a static name: [a-z_]+ */
    const char *s;   /* string value (escaped as JSON), or NULL */
    long long i;     /* integer value when s is NULL */
} log_field_t;

/*
 * Writes one line of `level` for `event` (a static dotted name, e.g. "backend.down") with the message `msg`
 * (may be NULL) and `n` fields. Returns the bytes written, 0 when filtered out.
 */
size_t log_event(log_level_t level, const char *event, const char *msg, const log_field_t *fields, size_t n);

/*
 * Formats the line log_event would write into `buf` (at most `cap` bytes, with the newline, no NUL needed):
 * for the unit tests and for writers of their own. Returns its length.
 */
size_t log_format_line(char *buf, size_t cap, int json, long long ts_ms, log_level_t level, const char *event,
                       const char *msg, const log_field_t *fields, size_t n);

/* Appends `s` (n bytes) to buf as the inside of a JSON string: quotes, backslashes and control bytes escaped,
 * invalid UTF-8 bytes replaced by U+FFFD. Returns the new length (never past cap). */
size_t log_json_escape(char *buf, size_t len, size_t cap, const char *s, size_t n);

#endif
