/*
 * Signed session cookies (express-session / cookie-signature format), secret rotation lists,
 * Cookie / Set-Cookie header helpers and the two date formats they use.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* SHA256_CTX: crypto/secrets.h */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "crypto/secrets.h"
#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

#define SHA256_BLOCK 64

struct tess_secret {
    char *ptr;        /* owned copy, NUL-terminated (the secret itself may hold NUL bytes) */
    size_t len;       /* length in bytes */
    SHA256_CTX inner; /* SHA-256 state after (key ^ ipad); read-only once built */
    SHA256_CTX outer; /* SHA-256 state after (key ^ opad); read-only once built */
};

/* Immutable once tess_secrets_parse() returns: shared by all threads, only ever read. */
struct tess_secrets {
    EVP_MD *md;                                 /* fetched SHA-256 implementation */
    size_t count;                               /* entries in use */
    struct tess_secret items[TESS_SECRETS_MAX]; /* items[0] signs */
};

/* ---------------------------------------------------------------------------------------------------- */
/* secret lists                                                                                         */

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Absorbs the HMAC pads of `key` into the two contexts of `s`. */
static int secret_key_setup(EVP_MD *md, struct tess_secret *s)
{
    uint8_t key[SHA256_BLOCK] = {0};
    uint8_t pad[SHA256_BLOCK];
    unsigned int klen = 0;
    int rc = TESS_EIO;

    if (s->len > SHA256_BLOCK) {
        /* RFC 2104: keys longer than a block are hashed first */
        if (EVP_Digest(s->ptr, s->len, key, &klen, md, NULL) != 1) {
            goto out;
        }
    } else {
        memcpy(key, s->ptr, s->len);
    }
    for (size_t i = 0; i < SHA256_BLOCK; i++) {
        pad[i] = key[i] ^ 0x36;
    }
    if (SHA256_Init(&s->inner) != 1 || SHA256_Update(&s->inner, pad, sizeof(pad)) != 1) {
        goto out;
    }
    for (size_t i = 0; i < SHA256_BLOCK; i++) {
        pad[i] = key[i] ^ 0x5c;
    }
    if (SHA256_Init(&s->outer) != 1 || SHA256_Update(&s->outer, pad, sizeof(pad)) != 1) {
        goto out;
    }
    rc = TESS_OK;
out:
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(pad, sizeof(pad));
    return rc;
}

int tess_secrets_parse(tess_secrets_t **out, tess_str_t list)
{
    tess_secrets_t *s = NULL;
    size_t start = 0;
    int rc = TESS_OK;

    if (out == NULL) {
        return TESS_EINVAL;
    }
    *out = NULL;
    if (list.len == 0 || list.ptr == NULL) {
        return TESS_EINVAL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return TESS_ENOMEM;
    }
    s->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (s->md == NULL) {
        rc = TESS_EIO;
        goto out;
    }
    for (;;) {
        const char *comma = memchr(list.ptr + start, ',', list.len - start);
        size_t end = comma != NULL ? (size_t)(comma - list.ptr) : list.len;
        size_t b = start, e = end;

        while (b < e && is_blank(list.ptr[b])) {
            b++;
        }
        while (e > b && is_blank(list.ptr[e - 1])) {
            e--;
        }
        if (e == b) {
            rc = TESS_EINVAL;
            goto out;
        }
        if (s->count == TESS_SECRETS_MAX || e - b > TESS_SECRET_MAX) {
            rc = TESS_ETOOBIG;
            goto out;
        }
        struct tess_secret *it = &s->items[s->count++];
        it->ptr = malloc(e - b + 1);
        if (it->ptr == NULL) {
            rc = TESS_ENOMEM;
            goto out;
        }
        memcpy(it->ptr, list.ptr + b, e - b);
        it->ptr[e - b] = '\0';
        it->len = e - b;
        rc = secret_key_setup(s->md, it);
        if (rc != TESS_OK) {
            goto out;
        }
        if (comma == NULL) {
            break;
        }
        start = end + 1;
    }
    *out = s;
    s = NULL;
out:
    tess_secrets_free(s);
    return rc;
}

void tess_secrets_free(tess_secrets_t *secrets)
{
    if (secrets == NULL) {
        return;
    }
    for (size_t i = 0; i < secrets->count; i++) {
        struct tess_secret *it = &secrets->items[i];
        if (it->ptr != NULL) {
            OPENSSL_cleanse(it->ptr, it->len);
            free(it->ptr);
        }
        OPENSSL_cleanse(&it->inner, sizeof(it->inner));
        OPENSSL_cleanse(&it->outer, sizeof(it->outer));
    }
    EVP_MD_free(secrets->md);
    free(secrets);
}

size_t tess_secrets_count(const tess_secrets_t *secrets)
{
    return secrets != NULL ? secrets->count : 0;
}

tess_str_t tess_secrets_get(const tess_secrets_t *secrets, size_t i)
{
    if (secrets == NULL || i >= secrets->count) {
        return tess_strn(NULL, 0);
    }
    return tess_strn(secrets->items[i].ptr, secrets->items[i].len);
}

int tess__secrets_hmac(const tess_secrets_t *secrets, size_t i, const void *msg, size_t n, uint8_t mac[TESS__HMAC_LEN])
{
    uint8_t ih[TESS__HMAC_LEN];
    SHA256_CTX c;
    int rc = TESS_EIO;

    if (secrets == NULL || i >= secrets->count) {
        return TESS_EINVAL;
    }
    /* a struct copy of the read-only state: the list stays shareable across threads */
    c = secrets->items[i].inner;
    if (SHA256_Update(&c, msg, n) != 1 || SHA256_Final(ih, &c) != 1) {
        goto out;
    }
    c = secrets->items[i].outer;
    if (SHA256_Update(&c, ih, sizeof(ih)) != 1 || SHA256_Final(mac, &c) != 1) {
        goto out;
    }
    rc = TESS_OK;
out:
    OPENSSL_cleanse(&c, sizeof(c));
    OPENSSL_cleanse(ih, sizeof(ih));
    return rc;
}

/* ---------------------------------------------------------------------------------------------------- */
/* signed cookies                                                                                       */

#define SIG_B64_LEN TESS_BASE64_LEN(TESS__HMAC_LEN) /* 43 */

/* base64(HMAC-SHA256(secret i, sid)) without '=' into sig (SIG_B64_LEN + 1 bytes). */
static int cookie_sig(const tess_secrets_t *secrets, size_t i, const char *sid, size_t n, char sig[SIG_B64_LEN + 1])
{
    uint8_t mac[TESS__HMAC_LEN];
    int rc = tess__secrets_hmac(secrets, i, sid, n, mac);

    if (rc == TESS_OK) {
        tess_base64_encode_nopad(mac, sizeof(mac), sig);
    }
    return rc;
}

int tess_cookie_sign(const tess_secrets_t *secrets, tess_str_t sid, char *out, size_t cap, size_t *outlen)
{
    char raw[2 + TESS_SID_MAX + 1 + SIG_B64_LEN + 1];
    size_t n = 0;
    int rc;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out != NULL && cap > 0) {
        out[0] = '\0';
    }
    if (secrets == NULL || secrets->count == 0 || sid.len == 0 || sid.len > TESS_SID_MAX || sid.ptr == NULL) {
        return TESS_EINVAL;
    }
    raw[n++] = 's';
    raw[n++] = ':';
    memcpy(raw + n, sid.ptr, sid.len);
    n += sid.len;
    raw[n++] = '.';
    rc = cookie_sig(secrets, 0, sid.ptr, sid.len, raw + n);
    if (rc != TESS_OK) {
        goto out;
    }
    n += SIG_B64_LEN;
    rc = tess_url_encode(tess_strn(raw, n), out, cap, outlen);
out:
    return rc;
}

/*
 * Order of checks: size, URL decoding, "s:" prefix, a last '.', the id's length (not its content),
 * then the signature under each secret (stopping at the first that verifies, as cookie-signature's
 * callers do: which secret matched is no secret), and only then the id's alphabet.
 */
int tess_cookie_unsign(const tess_secrets_t *secrets, tess_str_t value, char *sid_out, size_t cap, size_t *sid_len)
{
    char buf[TESS_COOKIE_VALUE_MAX + 1];
    char expect[SIG_B64_LEN + 1];
    size_t len = 0;
    int rc;

    if (sid_len != NULL) {
        *sid_len = 0;
    }
    if (sid_out != NULL && cap > 0) {
        sid_out[0] = '\0';
    }
    if (secrets == NULL || secrets->count == 0 || sid_out == NULL) {
        return TESS_EINVAL;
    }
    if (value.len > TESS_COOKIE_VALUE_MAX) {
        return TESS_ETOOBIG;
    }
    /* decodeURIComponent is the identity on values without '%', so decoding unconditionally is safe */
    if (tess_url_decode(value, buf, sizeof(buf), &len) != TESS_OK) {
        return TESS_EBADFMT;
    }
    if (len < 2 || buf[0] != 's' || buf[1] != ':') {
        return TESS_EBADFMT;
    }
    const char *body = buf + 2;
    size_t body_len = len - 2;
    const char *dot = NULL;
    for (size_t i = body_len; i > 0; i--) { /* lastIndexOf('.'), as cookie-signature */
        if (body[i - 1] == '.') {
            dot = body + i - 1;
            break;
        }
    }
    if (dot == NULL) {
        return TESS_EBADFMT;
    }
    size_t id_len = (size_t)(dot - body);
    const char *sig = dot + 1;
    size_t sig_len = body_len - id_len - 1;
    if (id_len == 0 || id_len > TESS_SID_MAX) {
        return TESS_EBADFMT;
    }
    if (sig_len != SIG_B64_LEN) {
        return TESS_EBADSIG; /* no secret can produce it */
    }
    rc = TESS_EBADSIG;
    for (size_t i = 0; i < secrets->count; i++) {
        int hrc = cookie_sig(secrets, i, body, id_len, expect);
        if (hrc != TESS_OK) {
            rc = hrc;
            goto out;
        }
        if (CRYPTO_memcmp(expect, sig, SIG_B64_LEN) == 0) {
            rc = TESS_OK;
            break;
        }
    }
    if (rc != TESS_OK) {
        goto out;
    }
    if (!tess_id_valid(tess_strn(body, id_len))) {
        rc = TESS_EBADFMT;
        goto out;
    }
    if (cap < id_len + 1) {
        rc = TESS_ENOSPACE;
        goto out;
    }
    memcpy(sid_out, body, id_len);
    sid_out[id_len] = '\0';
    if (sid_len != NULL) {
        *sid_len = id_len;
    }
out:
    OPENSSL_cleanse(expect, sizeof(expect));
    return rc;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Cookie / Set-Cookie headers                                                                          */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Same rules as the npm "cookie" package's parse(): pairs split on ';', first '=' splits name and value. */
int tess_cookie_find(tess_str_t header, tess_str_t name, tess_str_t *value)
{
    size_t pos = 0;

    if (value == NULL) {
        return TESS_EINVAL;
    }
    *value = tess_strn(NULL, 0);
    if (header.ptr == NULL || name.len == 0 || name.ptr == NULL) {
        return TESS_ENOTFOUND;
    }
    while (pos < header.len) {
        const char *semi = memchr(header.ptr + pos, ';', header.len - pos);
        size_t end = semi != NULL ? (size_t)(semi - header.ptr) : header.len;
        const char *eq = memchr(header.ptr + pos, '=', end - pos);

        if (eq != NULL) {
            size_t kb = pos, ke = (size_t)(eq - header.ptr);
            size_t vb = ke + 1, ve = end;
            while (kb < ke && is_ows(header.ptr[kb])) {
                kb++;
            }
            while (ke > kb && is_ows(header.ptr[ke - 1])) {
                ke--;
            }
            if (ke - kb == name.len && memcmp(header.ptr + kb, name.ptr, name.len) == 0) {
                while (vb < ve && is_ows(header.ptr[vb])) {
                    vb++;
                }
                while (ve > vb && is_ows(header.ptr[ve - 1])) {
                    ve--;
                }
                if (ve - vb >= 2 && header.ptr[vb] == '"' && header.ptr[ve - 1] == '"') {
                    vb++;
                    ve--;
                }
                *value = tess_strn(header.ptr + vb, ve - vb);
                return TESS_OK;
            }
        }
        if (semi == NULL) {
            break;
        }
        pos = end + 1;
    }
    return TESS_ENOTFOUND;
}

/* Bytes that would end or split a header field or attribute: CTLs, DEL and ';'. */
static int attr_safe(tess_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c == 0x7f || c == ';') {
            return 0;
        }
    }
    return 1;
}

typedef struct strbuf {
    char *p;
    size_t cap;
    size_t len;
    int overflow;
} strbuf_t;

static void sb_put(strbuf_t *b, const char *s, size_t n)
{
    if (b->overflow || b->cap - b->len <= n) { /* keep room for the NUL */
        b->overflow = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

#define MAX_DATE_MS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z: last four-digit year */

int tess_set_cookie_format(const tess_set_cookie_t *c, char *out, size_t cap, size_t *outlen)
{
    strbuf_t b = {out, cap, 0, 0};
    char num[32];
    char date[32];

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out == NULL || cap == 0) {
        return TESS_ENOSPACE;
    }
    out[0] = '\0';
    if (c == NULL || c->name.len == 0 || c->name.ptr == NULL || (c->value.len > 0 && c->value.ptr == NULL) ||
        !attr_safe(c->name) || memchr(c->name.ptr, '=', c->name.len) != NULL || !attr_safe(c->value) ||
        (c->path != NULL && !attr_safe(tess_str(c->path))) ||
        (c->same_site != NULL && !attr_safe(tess_str(c->same_site)))) {
        return TESS_EINVAL;
    }
    sb_put(&b, c->name.ptr, c->name.len);
    sb_put(&b, "=", 1);
    if (c->value.len > 0) {
        sb_put(&b, c->value.ptr, c->value.len);
    }
    if (c->max_age_s >= 0) {
        int64_t expires_ms = 0; /* clearing: the epoch, immune to clock skew */
        if (c->max_age_s > 0) {
            if (c->now_ms < 0 || c->now_ms > MAX_DATE_MS || c->max_age_s > (MAX_DATE_MS - c->now_ms) / 1000) {
                return TESS_EINVAL;
            }
            expires_ms = c->now_ms + c->max_age_s * 1000;
        }
        snprintf(num, sizeof(num), "%" PRId64, c->max_age_s);
        sb_str(&b, "; Max-Age=");
        sb_str(&b, num);
        sb_str(&b, "; Path=");
        sb_str(&b, c->path != NULL ? c->path : "/");
        tess_http_date(expires_ms, date, sizeof(date));
        sb_str(&b, "; Expires=");
        sb_str(&b, date);
    } else {
        sb_str(&b, "; Path=");
        sb_str(&b, c->path != NULL ? c->path : "/");
    }
    if (c->http_only) {
        sb_str(&b, "; HttpOnly");
    }
    if (c->secure) {
        sb_str(&b, "; Secure");
    }
    if (c->same_site != NULL) {
        sb_str(&b, "; SameSite=");
        sb_str(&b, c->same_site);
    }
    if (b.overflow) {
        out[0] = '\0';
        return TESS_ENOSPACE;
    }
    if (outlen != NULL) {
        *outlen = b.len;
    }
    return TESS_OK;
}

/* ---------------------------------------------------------------------------------------------------- */
/* dates (proleptic Gregorian, UTC; H. Hinnant's civil-from-days)                                      */

#define JS_DATE_MAX_MS INT64_C(8640000000000000) /* ECMAScript time range, both ways */

typedef struct civil {
    int64_t year;
    int month, day, hour, min, sec, ms, wday;
} civil_t;

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void civil_from_ms(int64_t ms, civil_t *c)
{
    int64_t days = floor_div(ms, 86400000);
    int64_t rem = ms - days * 86400000;

    c->hour = (int)(rem / 3600000);
    c->min = (int)(rem / 60000 % 60);
    c->sec = (int)(rem / 1000 % 60);
    c->ms = (int)(rem % 1000);
    c->wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */

    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    c->day = (int)(doy - (153 * mp + 2) / 5 + 1);
    c->month = (int)(mp < 10 ? mp + 3 : mp - 9);
    c->year = yoe + era * 400 + (c->month <= 2);
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

size_t tess_http_date(int64_t ms, char *out, size_t cap)
{
    static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    civil_t c;

    if (out == NULL || cap < 30) {
        return 0;
    }
    out[0] = '\0';
    if (ms < 0 || ms > MAX_DATE_MS) {
        return 0; /* IMF-fixdate has a four-digit year */
    }
    civil_from_ms(ms, &c);
    int n = snprintf(out, cap, "%s, %02d %s %04" PRId64 " %02d:%02d:%02d GMT", wdays[c.wday], c.day,
                     months[c.month - 1], c.year, c.hour, c.min, c.sec);
    return n == 29 ? (size_t)n : 0;
}

size_t tess_iso_date(int64_t ms, char *out, size_t cap)
{
    civil_t c;
    int n;

    if (out == NULL || cap == 0) {
        return 0;
    }
    out[0] = '\0';
    if (ms < -JS_DATE_MAX_MS || ms > JS_DATE_MAX_MS) {
        return 0; /* toISOString throws RangeError */
    }
    civil_from_ms(ms, &c);
    if (c.year >= 0 && c.year <= 9999) {
        if (cap < 25) {
            return 0;
        }
        n = snprintf(out, cap, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year, c.month, c.day, c.hour, c.min,
                     c.sec, c.ms);
    } else {
        /* expanded years, as toISOString: sign and six digits */
        if (cap < 28) {
            return 0;
        }
        n = snprintf(out, cap, "%c%06" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", c.year < 0 ? '-' : '+',
                     c.year < 0 ? -c.year : c.year, c.month, c.day, c.hour, c.min, c.sec, c.ms);
    }
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* Reads exactly `n` digits at s[*i]. */
static int read_digits(tess_str_t s, size_t *i, size_t n, int *v)
{
    int r = 0;

    if (s.len - *i < n) {
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        char ch = s.ptr[*i + k];
        if (ch < '0' || ch > '9') {
            return -1;
        }
        r = r * 10 + (ch - '0');
    }
    *i += n;
    *v = r;
    return 0;
}

static int expect_char(tess_str_t s, size_t *i, char ch)
{
    if (*i >= s.len || s.ptr[*i] != ch) {
        return -1;
    }
    (*i)++;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z"; the fraction's first three digits are the milliseconds. */
int tess_iso_date_parse(tess_str_t s, int64_t *ms)
{
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, frac = 0;
    size_t i = 0;

    if (ms == NULL) {
        return TESS_EINVAL;
    }
    *ms = 0;
    if (s.ptr == NULL) {
        return TESS_EBADFMT;
    }
    if (read_digits(s, &i, 4, &y) || expect_char(s, &i, '-') || read_digits(s, &i, 2, &mo) || expect_char(s, &i, '-') ||
        read_digits(s, &i, 2, &d) || expect_char(s, &i, 'T') || read_digits(s, &i, 2, &h) || expect_char(s, &i, ':') ||
        read_digits(s, &i, 2, &mi) || expect_char(s, &i, ':') || read_digits(s, &i, 2, &sec)) {
        return TESS_EBADFMT;
    }
    if (i < s.len && s.ptr[i] == '.') {
        size_t digits = 0;
        i++;
        while (i < s.len && s.ptr[i] >= '0' && s.ptr[i] <= '9') {
            if (digits < 3) {
                frac = frac * 10 + (s.ptr[i] - '0');
            }
            digits++;
            i++;
        }
        if (digits == 0 || digits > 9) {
            return TESS_EBADFMT;
        }
        for (; digits < 3; digits++) {
            frac *= 10;
        }
    }
    if (expect_char(s, &i, 'Z') || i != s.len) {
        return TESS_EBADFMT;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 59) {
        return TESS_EBADFMT;
    }
    *ms = (days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) * 1000 + frac;
    return TESS_OK;
}

int tess_cookie_find_chunked(tess_str_t header, tess_str_t name, char *buf, size_t cap, tess_str_t *value,
                             size_t *chunks)
{
    char cname[64 + 4];
    size_t n = 0, i;
    tess_str_t part;

    if (value == NULL || chunks == NULL) {
        return TESS_EINVAL;
    }
    *value = tess_strn(NULL, 0);
    *chunks = 0;
    if (name.len > 63) {
        return TESS_EINVAL;
    }
    if (tess_cookie_find(header, name, value) == TESS_OK) {
        return TESS_OK;
    }
    for (i = 0; i <= TESS_COOKIE_CHUNKS_MAX; i++) {
        int cn = snprintf(cname, sizeof(cname), "%.*s.%zu", (int)name.len, name.ptr, i);
        if (tess_cookie_find(header, tess_strn(cname, (size_t)cn), &part) != TESS_OK) {
            break;
        }
        if (i == TESS_COOKIE_CHUNKS_MAX || part.len > cap - n) {
            return TESS_ETOOBIG;
        }
        if (part.len > 0) {
            memcpy(buf + n, part.ptr, part.len);
        }
        n += part.len;
    }
    if (i == 0) {
        return TESS_ENOTFOUND;
    }
    *value = tess_strn(buf, n);
    *chunks = i;
    return TESS_OK;
}
