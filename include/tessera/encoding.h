/*
 * Encodings used on the wire: base64 (standard and URL-safe, unpadded), URL percent-encoding, hex,
 * and session ids.
 * All functions are pure and thread-safe.
 */
#ifndef TESSERA_ENCODING_H
#define TESSERA_ENCODING_H

#include "tessera/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * 64-bit FNV-1a of `n` bytes from `basis` (TESS_FNV1A64_BASIS, or it XOR a seed). For hash tables and ETags:
 * it changes with the content; it does not resist forgery.
 */
#define TESS_FNV1A64_BASIS 0xcbf29ce484222325ULL
static inline uint64_t tess_fnv1a64(uint64_t basis, const void *p, size_t n)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = basis;
    for (size_t i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Bytes of randomness in a session id, and its length as unpadded base64url text. */
#define TESS_ID_BYTES 32
#define TESS_ID_LEN 43

/* Encoded length (without NUL) of n bytes in unpadded base64 of either alphabet. */
#define TESS_BASE64_LEN(n) (((n)*4 + 2) / 3)

/*
 * Unpadded base64url (RFC 4648 §5) of `in`; writes TESS_BASE64_LEN(n) chars and a NUL to `out`,
 * which must hold TESS_BASE64_LEN(n) + 1 bytes. Returns the length written (without NUL).
 */
TESS_API size_t tess_base64url_encode(const uint8_t *in, size_t n, char *out);
/* Same with the standard alphabet (+ and /), still unpadded (as cookie-signature emits it). */
TESS_API size_t tess_base64_encode_nopad(const uint8_t *in, size_t n, char *out);
/*
 * Decodes unpadded base64url (padding '=' is rejected; so is any byte outside the alphabet and
 * non-zero trailing bits). Returns 0 with *outlen set, TESS_EBADFMT, or TESS_ENOSPACE when `cap` is short.
 */
TESS_API int tess_base64url_decode(tess_str_t in, uint8_t *out, size_t cap, size_t *outlen);

/*
 * Percent-decodes `in` (as decodeURIComponent; '+' is kept as '+'). Returns 0, TESS_EBADFMT on a
 * malformed escape, TESS_ENOSPACE when `cap` is short. `out` is NUL-terminated on success.
 */
TESS_API int tess_url_decode(tess_str_t in, char *out, size_t cap, size_t *outlen);
/*
 * Percent-encodes as encodeURIComponent (unreserved: A-Z a-z 0-9 - _ . ! ~ * ' ( )).
 * Returns 0 or TESS_ENOSPACE. `out` is NUL-terminated on success.
 */
TESS_API int tess_url_encode(tess_str_t in, char *out, size_t cap, size_t *outlen);

/* `v` in decimal into `out` (at most 20 chars + NUL), without printf (it runs per request). Returns the length. */
#define TESS_I64_DEC_MAX 21
TESS_API size_t tess_i64_decimal(int64_t v, char out[TESS_I64_DEC_MAX]);

/* Lower-case hex of `in` into `out` (2n chars + NUL). Returns 2n. */
TESS_API size_t tess_hex_encode(const uint8_t *in, size_t n, char *out);

/*
 * A new session id: TESS_ID_BYTES from the OS CSPRNG (OpenSSL RAND_bytes), base64url.
 * `out` holds TESS_ID_LEN + 1 bytes. Returns 0 or TESS_EIO when the CSPRNG fails (fail closed).
 */
TESS_API int tess_id_new(char out[TESS_ID_LEN + 1]);
/* Fills `out` with `n` CSPRNG bytes. Returns 0 or TESS_EIO. */
TESS_API int tess_random_bytes(uint8_t *out, size_t n);

/*
 * 1 when `id` is a syntactically acceptable session id: 1..TESS_SID_MAX bytes from the base64url
 * alphabet (ours are 43; express-session's uid-safe ids are 32). 0 otherwise.
 */
TESS_API int tess_id_valid(tess_str_t id);

/* Constant-time equality of two equal-length byte strings (CRYPTO_memcmp); 1 when equal. */
TESS_API int tess_ct_eq(const void *a, const void *b, size_t n);

/*
 * Decodes the UTF-8 sequence that starts p[0..n): its length (1 to 4) with the code point in *cp, or 0 when it
 * is not well-formed (n == 0, truncated, a stray continuation byte, an overlong form, a surrogate, past
 * U+10FFFF: Unicode's Table 3-7).
 */
TESS_API size_t tess_utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);

#ifdef __cplusplus
}
#endif
#endif
