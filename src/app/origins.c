/*
 * Allowed origins (origins.h): normalization, the list, the match.
 */
#include <stdio.h>
#include <string.h>

#include "app/origins.h"

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A reg-name or IPv4 byte (RFC 3986 unreserved; an origin's host is already IDNA-encoded). */
static int is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

static int is_ipv6_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/*
 * Normalizes authority "host[:port]" into `out` at `*len` (appending): host in lower case, ":port" only when
 * it is not `default_port`. Returns 0, or -1 when malformed or over `cap`.
 */
static int put_authority(tess_str_t a, int default_port, char *out, size_t cap, size_t *len)
{
    const char *p = a.ptr, *end = a.ptr + a.len, *host_end;
    long port = default_port;
    size_t n = *len;

    if (a.len == 0)
        return -1;
    if (*p == '[') {
        const char *close = memchr(p, ']', a.len);
        if (close == NULL || close == p + 1)
            return -1;
        for (const char *q = p + 1; q < close; ++q) {
            if (!is_ipv6_char(*q))
                return -1;
        }
        host_end = close + 1;
    } else {
        host_end = p;
        while (host_end < end && is_host_char(*host_end))
            ++host_end;
        if (host_end == p)
            return -1;
    }
    if (host_end < end) {
        const char *q = host_end + 1;
        if (*host_end != ':' || q == end || end - q > 5)
            return -1;
        port = 0;
        for (; q < end; ++q) {
            if (!is_digit(*q))
                return -1;
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535)
            return -1;
    }
    if (n + (size_t)(host_end - p) + 7 > cap)
        return -1;
    for (const char *q = p; q < host_end; ++q)
        out[n++] = lower(*q);
    if (port != default_port)
        n += (size_t)snprintf(out + n, cap - n, ":%ld", port);
    out[n] = '\0';
    *len = n;
    return 0;
}

/* The default port of the scheme that starts `origin` (normalized), or -1. */
static int scheme_port(tess_str_t in, size_t *skip)
{
    static const struct {
        const char *prefix;
        int port;
    } schemes[] = {{"http://", 80}, {"https://", 443}};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); ++i) {
        size_t n = strlen(schemes[i].prefix), k;
        if (in.len <= n)
            continue;
        for (k = 0; k < n && lower(in.ptr[k]) == schemes[i].prefix[k]; ++k)
            ;
        if (k == n) {
            *skip = n;
            return schemes[i].port;
        }
    }
    return -1;
}

int app_origin_normalize(tess_str_t in, char *out, size_t cap)
{
    size_t skip = 0, len;
    int port = scheme_port(in, &skip);

    if (port < 0 || in.len > APP_ORIGIN_MAX || cap < skip + 1)
        return -1;
    for (len = 0; len < skip; ++len)
        out[len] = lower(in.ptr[len]);
    if (put_authority(tess_strn(in.ptr + skip, in.len - skip), port, out, cap, &len) != 0)
        return -1;
    return (int)len;
}

int app_origins_parse(app_origins_t *o, const char *list, const char *from, char *err, size_t errcap)
{
    const char *p = list;

    memset(o, 0, sizeof(*o));
    if (list == NULL || *list == '\0')
        return 0;
    for (;;) {
        const char *comma = strchr(p, ','), *end = comma != NULL ? comma : p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && (*a == ' ' || *a == '\t'))
            ++a;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
            --b;
        if (o->count == APP_ORIGINS_MAX) {
            snprintf(err, errcap, "bad %s: at most %d origins", from, APP_ORIGINS_MAX);
            return -1;
        }
        if (app_origin_normalize(tess_strn(a, (size_t)(b - a)), o->origin[o->count], sizeof(o->origin[0])) < 0) {
            /* user:password@ anywhere in the list (a password may hold a comma): never repeated; a refusal is
               one line */
            int hide = strchr(list, '@') != NULL;
            for (const char *q = list; *q != '\0' && !hide; ++q)
                hide = (unsigned char)*q < 0x20 || *q == 0x7f;
            if (hide)
                snprintf(err, errcap,
                         "bad %s entry (not shown: it may hold a password or control characters): expected "
                         "http(s)://host[:port], without a path or wildcard",
                         from);
            else
                snprintf(err, errcap, "bad %s entry '%.*s': expected http(s)://host[:port], without a path or wildcard",
                         from, (int)(b - a > 80 ? 80 : b - a), a);
            return -1;
        }
        ++o->count;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

int app_origin_allowed(const app_origins_t *o, tess_str_t origin, tess_str_t authority)
{
    char norm[APP_ORIGIN_MAX + 1], own[APP_ORIGIN_MAX + 1];
    size_t skip = 0, len = 0;
    int port;

    if (app_origin_normalize(origin, norm, sizeof(norm)) < 0)
        return 0;
    if (o->count > 0) {
        for (size_t i = 0; i < o->count; ++i) {
            if (strcmp(norm, o->origin[i]) == 0)
                return 1;
        }
        return 0;
    }
    /* The request's own host: the Host header normalized with the default port of the Origin's scheme. */
    port = scheme_port(tess_str(norm), &skip);
    if (put_authority(authority, port, own, sizeof(own), &len) != 0)
        return 0;
    return strcmp(norm + skip, own) == 0;
}
