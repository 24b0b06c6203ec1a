/*
 * The stored session document read in place: tess_session_from_json's fast path for the common, plain
 * document (what express-session, connect-redis, connect-pg-simple and tessera itself write). No tree is
 * built: the modelled members are read where they lie and every other member is copied into extra_json as
 * its original text. Anything out of the plain (an escape in a string, a fraction or exponent, a repeated
 * modelled member, a value the model refuses) declines, and the cJSON path in session.c reads the document
 * with its full rules and error reports; so this path only ever answers a document that the cJSON path
 * accepts, with the same session (fuzz/fuzz_session.c checks both on every input).
 */
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "session_flat.h"
#include "tessera/cookie.h"
#include "tessera/error.h"

#define DEPTH_MAX 32
#define DIGITS_MAX 15 /* below 10^15: exact in a double, printed alike by cJSON and by us */

typedef struct scan {
    const char *p;   /* next byte */
    const char *end; /* one past the document */
} scan_t;

static void skip_ws(scan_t *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* A string without escapes or control bytes, ASCII only: its content in `out`. 0, or -1 to decline. */
static int scan_string(scan_t *c, tess_str_t *out)
{
    const char *start;
    if (c->p >= c->end || *c->p != '"')
        return -1;
    start = ++c->p;
    for (; c->p < c->end; c->p++) {
        unsigned char b = (unsigned char)*c->p;
        if (b == '"') {
            *out = tess_strn(start, (size_t)(c->p - start));
            c->p++;
            return 0;
        }
        if (b == '\\' || b < 0x20 || b >= 0x80)
            return -1;
    }
    return -1;
}

/* An integer literal of at most DIGITS_MAX digits (no fraction, no exponent). 0, or -1 to decline. */
static int scan_int(scan_t *c, int64_t *v)
{
    int neg = 0, n = 0;
    int64_t x = 0;
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    if (c->p >= c->end || *c->p < '0' || *c->p > '9')
        return -1;
    if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
        return -1; /* a leading zero */
    for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
        if (++n > DIGITS_MAX)
            return -1;
        x = x * 10 + (*c->p - '0');
    }
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return -1;
    if (neg && x == 0)
        return -1; /* -0: leave it to cJSON */
    *v = neg ? -x : x;
    return 0;
}

static int scan_lit(scan_t *c, const char *lit, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* A member's key, its colon and the blanks around: the key in `key`. 0, or -1 to decline. */
static int scan_key(scan_t *c, tess_str_t *key)
{
    if (scan_string(c, key) != 0)
        return -1;
    skip_ws(c);
    if (c->p >= c->end || *c->p++ != ':')
        return -1;
    skip_ws(c);
    return 0;
}

/* Which of `names` `key` is (-1: none), marked in `seen`; -2 when it came before (cJSON's first-wins
   reading decides then). */
static int known(tess_str_t key, const char *const *names, int n, unsigned *seen)
{
    for (int i = 0; i < n; ++i) {
        if (key.len == strlen(names[i]) && memcmp(key.ptr, names[i], key.len) == 0) {
            if ((*seen & (1u << i)) != 0)
                return -2;
            *seen |= 1u << i;
            return i;
        }
    }
    return -1;
}

/* Any plain value (objects and arrays of plain values, DEPTH_MAX deep). 0, or -1 to decline. */
static int scan_value(scan_t *c, int depth)
{
    tess_str_t str;
    int64_t n;

    if (c->p >= c->end || depth > DEPTH_MAX)
        return -1;
    switch (*c->p) {
    case '"':
        return scan_string(c, &str);
    case 't':
        return scan_lit(c, "true", 4);
    case 'f':
        return scan_lit(c, "false", 5);
    case 'n':
        return scan_lit(c, "null", 4);
    case '{':
    case '[': {
        char close = *c->p == '{' ? '}' : ']';
        int obj = close == '}';
        c->p++;
        skip_ws(c);
        if (c->p < c->end && *c->p == close) {
            c->p++;
            return 0;
        }
        for (;;) {
            if (obj && scan_key(c, &str) != 0)
                return -1;
            if (scan_value(c, depth + 1) != 0)
                return -1;
            skip_ws(c);
            if (c->p >= c->end)
                return -1;
            if (*c->p == close) {
                c->p++;
                return 0;
            }
            if (*c->p++ != ',')
                return -1;
            skip_ws(c);
        }
    }
    default:
        return scan_int(c, &n);
    }
}

/* An integer >= 0, or null (*v untouched). 0, or -1 to decline. */
static int scan_count_or_null(scan_t *c, int64_t *v)
{
    if (c->p < c->end && *c->p == 'n')
        return scan_lit(c, "null", 4);
    return scan_int(c, v) == 0 && *v >= 0 ? 0 : -1;
}

static int is(tess_str_t k, const char *name)
{
    size_t n = strlen(name);
    return k.len == n && memcmp(k.ptr, name, n) == 0;
}

/* The cookie object: its expiry, originalMaxAge, and whether it is exactly the default one (session.c). */
static int scan_cookie(scan_t *c, tess__flat_t *f)
{
    enum { ORIGINAL_MAX_AGE, SECURE, HTTP_ONLY, PATH, SAME_SITE, EXPIRES };
    static const char *const names[] = {"originalMaxAge", "secure", "httpOnly", "path", "sameSite", "expires"};
    unsigned seen = 0, plain = 0; /* members met; of them, those with the default value */
    tess_str_t key, v;

    if (c->p >= c->end || *c->p != '{')
        return -1;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0; /* {}: not the default (its members are missing) */
    }
    for (;;) {
        int bit;
        if (scan_key(c, &key) != 0 || (bit = known(key, names, 6, &seen)) == -2)
            return -1;
        switch (bit) {
        case ORIGINAL_MAX_AGE:
            if (scan_count_or_null(c, &f->max_age) != 0)
                return -1;
            if (f->max_age != 0) /* null (-1) or > 0: what default_cookie() writes for it */
                plain |= 1u << bit;
            break;
        case EXPIRES:
            if (c->p < c->end && *c->p == 'n') {
                if (scan_lit(c, "null", 4) != 0)
                    return -1;
            } else if (scan_string(c, &v) != 0 || tess_iso_date_parse(v, &f->cookie_expires) != 0) {
                return -1;
            }
            break;
        case SECURE:
        case HTTP_ONLY: {
            const char *want = bit == SECURE ? "false" : "true";
            const char *at = c->p;
            if (scan_value(c, 1) != 0)
                return -1;
            if ((size_t)(c->p - at) == strlen(want) && memcmp(at, want, strlen(want)) == 0)
                plain |= 1u << bit;
            break;
        }
        case PATH:
        case SAME_SITE:
            if (c->p < c->end && *c->p == '"') {
                if (scan_string(c, &v) != 0)
                    return -1;
                if (is(v, bit == PATH ? "/" : "lax"))
                    plain |= 1u << bit;
            } else if (scan_value(c, 1) != 0) {
                return -1;
            }
            break;
        default:
            if (scan_value(c, 1) != 0)
                return -1;
            f->cookie_other = 1;
            break;
        }
        skip_ws(c);
        if (c->p >= c->end)
            return -1;
        if (*c->p == '}') {
            c->p++;
            break;
        }
        if (*c->p++ != ',')
            return -1;
        skip_ws(c);
    }
    f->cookie_default = !f->cookie_other && plain == 0x1f;
    return 0;
}

/* Appends `span` to the extra object being built in f->extra. 0, or TESS_ENOMEM. */
static int keep(tess__flat_t *f, const char *from, const char *to)
{
    size_t n = (size_t)(to - from);
    if (f->extra_len + n + 3 > f->extra_cap) {
        size_t cap = (f->extra_cap == 0 ? 128 : f->extra_cap);
        while (cap < f->extra_len + n + 3)
            cap *= 2;
        char *p = realloc(f->extra, cap);
        if (p == NULL)
            return TESS_ENOMEM;
        f->extra = p;
        f->extra_cap = cap;
    }
    char sep = f->extra_len == 0 ? '{' : ',';
    f->extra[f->extra_len++] = sep;
    memcpy(f->extra + f->extra_len, from, n);
    f->extra_len += n;
    return 0;
}

int tess__session_flat_read(tess_session_t *s, tess_str_t json, tess__flat_t *f)
{
    enum { USER_ID, ROLE, COOKIE, CREATED, ABSOLUTE };
    static const char *const names[] = {"userId", "role", "cookie", "createdAt", "absoluteExpiresAt"};
    scan_t c = {json.ptr, json.ptr + json.len};
    unsigned seen = 0;
    int rc = 0;

    memset(f, 0, sizeof(*f));
    f->max_age = -1;
    skip_ws(&c);
    if (c.p >= c.end || *c.p++ != '{')
        return 0;
    skip_ws(&c);
    if (c.p < c.end && *c.p == '}')
        return 0; /* no userId */
    for (;;) {
        const char *member = c.p;
        tess_str_t key, v;
        int64_t n;
        int bit, kept = 1;

        if (scan_key(&c, &key) != 0 || (bit = known(key, names, 5, &seen)) == -2)
            goto decline;
        switch (bit) {
        case USER_ID:
            if (c.p < c.end && *c.p == '"') {
                if (scan_string(&c, &v) != 0 || v.len == 0 || v.len > TESS_USER_ID_MAX)
                    goto decline;
                memcpy(s->user_id, v.ptr, v.len);
                s->user_id[v.len] = '\0';
                kept = 0;
            } else {
                const char *at = c.p;
                if (scan_int(&c, &n) != 0 || (size_t)(c.p - at) > TESS_USER_ID_MAX)
                    goto decline;
                memcpy(s->user_id, at, (size_t)(c.p - at)); /* the literal is its own decimal form */
                s->user_id[c.p - at] = '\0';
            }
            break;
        case ROLE:
            kept = 0;
            if (c.p < c.end && *c.p == 'n') {
                if (scan_lit(&c, "null", 4) != 0)
                    goto decline;
            } else {
                if (scan_string(&c, &v) != 0 || v.len > TESS_ROLE_MAX)
                    goto decline;
                memcpy(s->role, v.ptr, v.len);
                s->role[v.len] = '\0';
            }
            break;
        case COOKIE:
            if (c.p < c.end && *c.p == 'n') {
                if (scan_lit(&c, "null", 4) != 0) /* kept as it is, as the cJSON path does */
                    goto decline;
            } else {
                if (scan_cookie(&c, f) != 0)
                    goto decline;
                f->have_cookie = 1;
                kept = !f->cookie_default;
            }
            break;
        case CREATED:
        case ABSOLUTE:
            kept = 0;
            if (scan_count_or_null(&c, bit == CREATED ? &s->created_ms : &s->absolute_expires_ms) != 0)
                goto decline;
            break;
        default:
            if (scan_value(&c, 1) != 0)
                goto decline;
            break;
        }
        if (kept && (rc = keep(f, member, c.p)) != 0)
            goto decline;
        skip_ws(&c);
        if (c.p >= c.end)
            goto decline;
        if (*c.p == '}') {
            c.p++;
            break;
        }
        if (*c.p++ != ',')
            goto decline;
        skip_ws(&c);
    }
    skip_ws(&c);
    if (c.p != c.end || (seen & (1u << USER_ID)) == 0)
        goto decline;
    if (!tess_session_identity_valid(tess_str(s->user_id), tess_str(s->role)))
        goto decline; /* the cJSON path refuses it, and says so */
    if (f->extra != NULL) {
        f->extra[f->extra_len++] = '}';
        f->extra[f->extra_len] = '\0';
    }
    return 1;
decline:
    free(f->extra);
    memset(f, 0, sizeof(*f));
    s->user_id[0] = s->role[0] = '\0';
    s->created_ms = s->absolute_expires_ms = 0;
    return rc != 0 ? rc : 0;
}
