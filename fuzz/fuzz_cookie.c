/*
 * libFuzzer driver for the cookie and encoding parsers: tess_cookie_unsign, tess_cookie_find,
 * tess_secrets_parse, tess_url_decode, tess_base64url_decode, tess_iso_date_parse.
 * The first byte picks the target; the rest is the input, passed with its exact length from a heap copy
 * (so ASan sees any read past it). Build and run: see fuzz/README.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "tessera/cookie.h"
#include "tessera/encoding.h"
#include "tessera/error.h"

static tess_secrets_t *secrets;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (secrets == NULL && tess_secrets_parse(&secrets, tess_str("keyboard cat,old secret")) != TESS_OK) {
        abort();
    }
    if (size == 0) {
        return 0;
    }
    uint8_t mode = data[0];
    size_t n;
    char *in = fuzz_rest(data, size, 0, &n);
    if (in == NULL) {
        return 0;
    }
    tess_str_t s = tess_strn(in, n);

    switch (mode % 6) {
    case 0: {
        char sid[TESS_SID_MAX + 1];
        size_t sid_n = 0;
        int rc = tess_cookie_unsign(secrets, s, sid, sizeof(sid), &sid_n);
        check(rc == TESS_OK || rc == TESS_EBADFMT || rc == TESS_EBADSIG || rc == TESS_ETOOBIG);
        if (rc == TESS_OK) {
            /* anything that verifies is a valid id that signs back to a value that verifies */
            check(sid_n == strlen(sid) && tess_id_valid(tess_strn(sid, sid_n)));
            char value[TESS_SIGNED_COOKIE_MAX];
            size_t vn;
            check(tess_cookie_sign(secrets, tess_strn(sid, sid_n), value, sizeof(value), &vn) == TESS_OK);
            char back[TESS_SID_MAX + 1];
            size_t bn;
            check(tess_cookie_unsign(secrets, tess_strn(value, vn), back, sizeof(back), &bn) == TESS_OK);
            check(bn == sid_n && memcmp(back, sid, bn) == 0);
        } else {
            check(sid_n == 0 && sid[0] == '\0');
        }
        break;
    }
    case 1: {
        /* "name\0header" */
        const char *nul = memchr(in, '\0', n);
        tess_str_t name = nul != NULL ? tess_strn(in, (size_t)(nul - in)) : tess_str("connect.sid");
        tess_str_t header = nul != NULL ? tess_strn(nul + 1, n - (size_t)(nul - in) - 1) : s;
        tess_str_t v;
        if (tess_cookie_find(header, name, &v) == TESS_OK) {
            check(v.len == 0 || (v.ptr >= header.ptr && v.ptr + v.len <= header.ptr + header.len));
        }
        break;
    }
    case 2: {
        tess_secrets_t *list = NULL;
        int rc = tess_secrets_parse(&list, s);
        check((rc == TESS_OK) == (list != NULL));
        if (list != NULL) {
            check(tess_secrets_count(list) >= 1 && tess_secrets_count(list) <= TESS_SECRETS_MAX);
            char value[TESS_SIGNED_COOKIE_MAX];
            size_t vn;
            char sid[TESS_SID_MAX + 1];
            size_t sn;
            check(tess_cookie_sign(list, tess_str("abc"), value, sizeof(value), &vn) == TESS_OK);
            check(tess_cookie_unsign(list, tess_strn(value, vn), sid, sizeof(sid), &sn) == TESS_OK);
        }
        tess_secrets_free(list);
        break;
    }
    case 3: {
        size_t cap = n + 1;
        char *out = malloc(cap);
        size_t on = 0;
        int ascii = 1;
        for (size_t i = 0; i < n; i++) {
            ascii &= (unsigned char)in[i] < 0x80;
        }
        if (out != NULL && tess_url_decode(s, out, cap, &on) == TESS_OK) {
            check(on <= n && out[on] == '\0');
        }
        if (out != NULL && ascii && tess_url_decode(s, out, cap, &on) == TESS_OK) {
            /* encodeURIComponent(decodeURIComponent(x)) decodes back to the same bytes (literal bytes
             * >= 0x80 pass decoding unchecked, as in a JS string, but their escapes are checked) */
            size_t ecap = 3 * on + 1;
            char *enc = malloc(ecap);
            char *dec = malloc(on + 1);
            size_t en, dn;
            if (enc != NULL && dec != NULL) {
                check(tess_url_encode(tess_strn(out, on), enc, ecap, &en) == TESS_OK);
                check(tess_url_decode(tess_strn(enc, en), dec, on + 1, &dn) == TESS_OK);
                check(dn == on && memcmp(dec, out, on) == 0);
            }
            free(enc);
            free(dec);
        }
        free(out);
        break;
    }
    case 4: {
        uint8_t *out = malloc(n + 1);
        size_t on = 0;
        if (out != NULL && tess_base64url_decode(s, out, n, &on) == TESS_OK) {
            /* strict decoding is canonical: re-encoding gives the input back */
            char *enc = malloc(TESS_BASE64_LEN(on) + 1);
            if (enc != NULL) {
                check(tess_base64url_encode(out, on, enc) == n && memcmp(enc, in, n) == 0);
            }
            free(enc);
        }
        free(out);
        break;
    }
    case 5: {
        int64_t ms = 0;
        if (tess_iso_date_parse(s, &ms) == TESS_OK) {
            char iso[32];
            check(tess_iso_date(ms, iso, sizeof(iso)) > 0);
            int64_t back = 0;
            check(tess_iso_date_parse(tess_str(iso), &back) == TESS_OK && back == ms);
        }
        break;
    }
    }
    free(in);
    return 0;
}
