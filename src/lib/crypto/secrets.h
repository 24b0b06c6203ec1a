/*
 * Internal: keyed HMAC-SHA256 over a secret list (shared by cookie.c and jwt.c).
 *
 * tess_secrets_parse() absorbs each secret's ipad and opad blocks into two SHA-256 states once; an HMAC
 * then costs two struct copies of those read-only states plus the message and one 32-byte block. The states
 * are OpenSSL's SHA256_CTX (the same SHA-NI/AVX2 code as EVP, deprecated in 3.0 but shipped): a plain struct,
 * so a copy allocates nothing, where EVP_MD_CTX_copy_ex() allocates a provider context per copy in
 * OpenSSL 3 (and EVP_MAC_init() on a keyed EVP_MAC_CTX, EVP_MAC_CTX_dup() or the one-shot HMAC() cost more
 * still; bench_jwt measures it against HMAC()).
 */
#ifndef TESSERA_SECRETS_INTERNAL_H
#define TESSERA_SECRETS_INTERNAL_H

/* The low-level SHA-256 interface: deprecated in OpenSSL 3.0, shipped, and the only allocation-free one. Its
 * users define OPENSSL_SUPPRESS_DEPRECATED before their first OpenSSL header. */
#ifndef OPENSSL_SUPPRESS_DEPRECATED
#error "define OPENSSL_SUPPRESS_DEPRECATED before any OpenSSL header (SHA256_CTX, see above)"
#endif
#include <openssl/sha.h>

#include "tessera/cookie.h"

#define TESS__HMAC_LEN 32 /* HMAC-SHA256 output, in bytes */

/*
 * HMAC-SHA256(secret i, msg) into `mac`, allocating nothing. The secret list is only read, so any number
 * of threads may call this on the same list. Returns 0, or TESS_EIO when OpenSSL fails.
 */
int tess__secrets_hmac(const tess_secrets_t *secrets, size_t i, const void *msg, size_t n, uint8_t mac[TESS__HMAC_LEN]);

#endif
