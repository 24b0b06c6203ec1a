/*
 * Wire encodings: base64 (both alphabets, unpadded), strict base64url decoding, URL percent-coding as
 * JavaScript's encodeURIComponent / decodeURIComponent, hex, CSPRNG bytes and session ids.
 * Everything here is pure (apart from the CSPRNG) and thread-safe.
 */
#include <limits.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "tessera/encoding.h"
#include "tessera/error.h"

static const char b64url_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char b64std_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* base64url value of each byte, -1 outside the alphabet ('=' included). */
/* clang-format off */
static const int8_t b64url_value[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x00 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x10 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, /* 0x20 */
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1, /* 0x30 */
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, /* 0x40 */
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63, /* 0x50 */
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, /* 0x60 */
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1, /* 0x70 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x80 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0x90 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xa0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xb0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xc0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xd0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xe0 */
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, /* 0xf0 */
};
/* clang-format on */

static size_t base64_encode(const char *alphabet, const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    size_t i = 0;

    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

size_t tess_base64url_encode(const uint8_t *in, size_t n, char *out)
{
    return base64_encode(b64url_alphabet, in, n, out);
}

size_t tess_base64_encode_nopad(const uint8_t *in, size_t n, char *out)
{
    return base64_encode(b64std_alphabet, in, n, out);
}

int tess_base64url_decode(tess_str_t in, uint8_t *out, size_t cap, size_t *outlen)
{
    const uint8_t *p = (const uint8_t *)in.ptr;
    size_t rem = in.len % 4;
    size_t need = in.len / 4 * 3 + (rem == 0 ? 0 : rem - 1);
    size_t o = 0;
    size_t i = 0;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (rem == 1) {
        return TESS_EBADFMT; /* 6 bits cannot end a byte */
    }
    if (need > cap) {
        return TESS_ENOSPACE;
    }
    for (; i + 4 <= in.len; i += 4) {
        int a = b64url_value[p[i]], b = b64url_value[p[i + 1]];
        int c = b64url_value[p[i + 2]], d = b64url_value[p[i + 3]];
        if ((a | b | c | d) < 0) {
            return TESS_EBADFMT;
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
        out[o++] = (uint8_t)v;
    }
    if (rem == 2) {
        int a = b64url_value[p[i]], b = b64url_value[p[i + 1]];
        if ((a | b) < 0 || (b & 0x0f) != 0) {
            return TESS_EBADFMT; /* non-canonical: unused bits must be zero */
        }
        out[o++] = (uint8_t)(a << 2 | b >> 4);
    } else if (rem == 3) {
        int a = b64url_value[p[i]], b = b64url_value[p[i + 1]], c = b64url_value[p[i + 2]];
        if ((a | b | c) < 0 || (c & 0x03) != 0) {
            return TESS_EBADFMT;
        }
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        out[o++] = (uint8_t)(v >> 16);
        out[o++] = (uint8_t)(v >> 8);
    }
    if (outlen != NULL) {
        *outlen = o;
    }
    return TESS_OK;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Reads "%XX" at in[i]; returns the byte or -1. */
static int pct_byte(tess_str_t in, size_t i)
{
    if (in.len < 3 || i > in.len - 3 || in.ptr[i] != '%') {
        return -1;
    }
    int hi = hex_value((unsigned char)in.ptr[i + 1]);
    int lo = hex_value((unsigned char)in.ptr[i + 2]);
    if (hi < 0 || lo < 0) {
        return -1;
    }
    return hi << 4 | lo;
}

/*
 * ECMAScript's Decode(string, reservedSet = "") over bytes: an escaped byte >= 0x80 must start a
 * well-formed UTF-8 sequence whose continuation bytes are escaped too; overlong forms, surrogates and
 * code points past U+10FFFF throw URIError there, so they are TESS_EBADFMT here. Literal bytes pass as is.
 */
int tess_url_decode(tess_str_t in, char *out, size_t cap, size_t *outlen)
{
    size_t o = 0;
    size_t i = 0;
    int rc = TESS_OK;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out == NULL || cap == 0) {
        return TESS_ENOSPACE;
    }
    if (in.len > 0 && in.ptr == NULL) {
        return TESS_EINVAL;
    }
    while (i < in.len) {
        unsigned char c = (unsigned char)in.ptr[i];
        if (c != '%') {
            if (o + 1 >= cap) {
                rc = TESS_ENOSPACE;
                goto out;
            }
            out[o++] = (char)c;
            i++;
            continue;
        }
        int b = pct_byte(in, i);
        if (b < 0) {
            rc = TESS_EBADFMT;
            goto out;
        }
        i += 3;
        if (b < 0x80) {
            if (o + 1 >= cap) {
                rc = TESS_ENOSPACE;
                goto out;
            }
            out[o++] = (char)b;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if ((b & 0xe0) == 0xc0) {
            n = 2, cp = (uint32_t)b & 0x1f, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            n = 3, cp = (uint32_t)b & 0x0f, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            n = 4, cp = (uint32_t)b & 0x07, min = 0x10000;
        } else {
            rc = TESS_EBADFMT; /* continuation byte first, or 5/6-byte lead */
            goto out;
        }
        uint8_t seq[4] = {(uint8_t)b};
        for (size_t k = 1; k < n; k++) {
            int cb = pct_byte(in, i);
            if (cb < 0 || (cb & 0xc0) != 0x80) {
                rc = TESS_EBADFMT;
                goto out;
            }
            i += 3;
            seq[k] = (uint8_t)cb;
            cp = cp << 6 | ((uint32_t)cb & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            rc = TESS_EBADFMT;
            goto out;
        }
        if (o + n >= cap) {
            rc = TESS_ENOSPACE;
            goto out;
        }
        memcpy(out + o, seq, n);
        o += n;
    }
out:
    if (rc != TESS_OK) {
        out[0] = '\0';
        return rc;
    }
    out[o] = '\0';
    if (outlen != NULL) {
        *outlen = o;
    }
    return TESS_OK;
}

/* encodeURIComponent's unreserved set: A-Z a-z 0-9 - _ . ! ~ * ' ( ) */
static int url_unreserved(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    switch (c) {
    case '-':
    case '_':
    case '.':
    case '!':
    case '~':
    case '*':
    case '\'':
    case '(':
    case ')':
        return 1;
    default:
        return 0;
    }
}

int tess_url_encode(tess_str_t in, char *out, size_t cap, size_t *outlen)
{
    static const char hex_upper[] = "0123456789ABCDEF";
    size_t o = 0;

    if (outlen != NULL) {
        *outlen = 0;
    }
    if (out == NULL || cap == 0) {
        return TESS_ENOSPACE;
    }
    if (in.len > 0 && in.ptr == NULL) {
        return TESS_EINVAL;
    }
    for (size_t i = 0; i < in.len; i++) {
        unsigned char c = (unsigned char)in.ptr[i];
        if (url_unreserved(c)) {
            if (o + 1 >= cap) {
                goto nospace;
            }
            out[o++] = (char)c;
        } else {
            if (o + 3 >= cap) {
                goto nospace;
            }
            out[o++] = '%';
            out[o++] = hex_upper[c >> 4];
            out[o++] = hex_upper[c & 15];
        }
    }
    out[o] = '\0';
    if (outlen != NULL) {
        *outlen = o;
    }
    return TESS_OK;
nospace:
    out[0] = '\0';
    return TESS_ENOSPACE;
}

size_t tess_i64_decimal(int64_t v, char out[TESS_I64_DEC_MAX])
{
    char tmp[TESS_I64_DEC_MAX];
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    size_t n = 0, len = 0;

    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        tmp[n++] = '-';
    while (n > 0)
        out[len++] = tmp[--n];
    out[len] = '\0';
    return len;
}

size_t tess_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char hex_lower[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_lower[in[i] >> 4];
        out[2 * i + 1] = hex_lower[in[i] & 15];
    }
    out[2 * n] = '\0';
    return 2 * n;
}

int tess_random_bytes(uint8_t *out, size_t n)
{
    while (n > 0) {
        int chunk = n > (size_t)INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(out, chunk) != 1) {
            return TESS_EIO; /* fail closed: never fall back to a weaker source */
        }
        out += chunk;
        n -= (size_t)chunk;
    }
    return TESS_OK;
}

int tess_id_new(char out[TESS_ID_LEN + 1])
{
    uint8_t raw[TESS_ID_BYTES];
    int rc;

    out[0] = '\0';
    rc = tess_random_bytes(raw, sizeof(raw));
    if (rc != TESS_OK) {
        goto out;
    }
    tess_base64url_encode(raw, sizeof(raw), out);
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

int tess_id_valid(tess_str_t id)
{
    if (id.len == 0 || id.len > TESS_SID_MAX || id.ptr == NULL) {
        return 0;
    }
    for (size_t i = 0; i < id.len; i++) {
        if (b64url_value[(unsigned char)id.ptr[i]] < 0) {
            return 0;
        }
    }
    return 1;
}

int tess_ct_eq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

size_t tess_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned c;
    size_t len;
    uint32_t v, min;

    if (n == 0)
        return 0;
    c = p[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, v = c & 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, v = c & 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, v = c & 0x07;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; ++k) {
        if ((p[k] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (p[k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}
