/*
 * Unit tests of tessera's Redis key space (tessera/keyspace.h): the prefixes with their defaults, the check
 * of a prefix pair, and what every kind of key classifies as, with default and custom prefixes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "exactbuf.h"
#include "strfill.h"
#include "tessera/error.h"
#include "tessera/keyspace.h"

static const char *kind_name(tess_key_kind_t k)
{
    switch (k) {
    case TESS_KEYKIND_OTHER:
        return "OTHER";
    case TESS_KEYKIND_SESSION:
        return "SESSION";
    case TESS_KEYKIND_USER_SET:
        return "USER_SET";
    case TESS_KEYKIND_EPOCH:
        return "EPOCH";
    case TESS_KEYKIND_DENY:
        return "DENY";
    case TESS_KEYKIND_CUTOFF:
        return "CUTOFF";
    case TESS_KEYKIND_APP:
        return "APP";
    }
    return "?";
}

/* Classifies `key` (in an exact-length block) and checks the kind and the rest. */
static void check(const tess_keyspace_t *ks, const char *key, tess_key_kind_t kind, const char *rest)
{
    exactbuf_t b = {0};
    size_t n = strlen(key);
    tess_str_t k = exactbuf_set(&b, key, n), r = TESS_STR_LIT("unset");
    tess_key_kind_t got = tess_keyspace_classify(ks, k, &r);
    if (got != kind)
        fail_msg("'%.*s': %s, want %s", (int)n, key, kind_name(got), kind_name(kind));
    if (r.len != strlen(rest) || (r.len > 0 && memcmp(r.ptr, rest, r.len) != 0))
        fail_msg("'%.*s': rest '%.*s', want '%s'", (int)n, key, (int)r.len, r.ptr, rest);
    /* The rest points into the key (no copy), and a NULL `rest` is allowed. */
    if (r.len > 0)
        assert_true(r.ptr >= k.ptr && r.ptr + r.len == k.ptr + k.len);
    assert_int_equal(tess_keyspace_classify(ks, k, NULL), kind);
    exactbuf_free(&b);
}

static void test_default_prefixes(void **state)
{
    tess_keyspace_t empty = {NULL, NULL};
    (void)state;
    assert_string_equal(tess_keyspace_session(NULL), "session:");
    assert_string_equal(tess_keyspace_tessera(NULL), "tessera:");
    assert_string_equal(tess_keyspace_session(&empty), TESS_KEYSPACE_SESSION_DEFAULT);
    assert_string_equal(tess_keyspace_tessera(&empty), TESS_KEYSPACE_TESSERA_DEFAULT);
    tess_keyspace_t one = {"sess:", NULL};
    assert_string_equal(tess_keyspace_session(&one), "sess:");
    assert_string_equal(tess_keyspace_tessera(&one), "tessera:");
    assert_int_equal(tess_keyspace_check(NULL), 0);
    assert_int_equal(tess_keyspace_check(&empty), 0);
}

/* Every kind, under the prefixes `s` and `t`. */
static void check_every_kind(const tess_keyspace_t *ks, const char *s, const char *t)
{
    char key[256], rest[64];
    struct {
        const char *prefix, *fixed, *tail;
        tess_key_kind_t kind;
    } rows[] = {
        {s, "", "abcDEF-_0123456789", TESS_KEYKIND_SESSION},
        {s, "user:", "42", TESS_KEYKIND_USER_SET},
        {t, "epoch", "", TESS_KEYKIND_EPOCH},
        {t, "deny:", "jti-1", TESS_KEYKIND_DENY},
        {t, "nbf:", "42", TESS_KEYKIND_CUTOFF},
        {t, "app:", "meta:7", TESS_KEYKIND_APP},
        {t, "l2:", "abcDEF-_0123456789", TESS_KEYKIND_SESSION}, /* an L2 copy: evicts like a session document */
        {t, "l2:user:", "42", TESS_KEYKIND_USER_SET},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        snprintf(key, sizeof(key), "%s%s%s", rows[i].prefix, rows[i].fixed, rows[i].tail);
        check(ks, key, rows[i].kind, rows[i].tail);
    }
    /* The kinds' fixed parts alone: an empty rest (the callers decide what an empty id means). */
    snprintf(key, sizeof(key), "%suser:", s);
    check(ks, key, TESS_KEYKIND_USER_SET, "");
    snprintf(key, sizeof(key), "%sdeny:", t);
    check(ks, key, TESS_KEYKIND_DENY, "");
    snprintf(key, sizeof(key), "%snbf:", t);
    check(ks, key, TESS_KEYKIND_CUTOFF, "");
    snprintf(key, sizeof(key), "%sapp:", t);
    check(ks, key, TESS_KEYKIND_APP, "");
    /* A key equal to the session prefix is a session with an empty id; equal to tessera's, nothing. */
    check(ks, s, TESS_KEYKIND_SESSION, "");
    check(ks, t, TESS_KEYKIND_OTHER, "");
    /* Near misses under tessera's prefix are not tessera's. */
    const char *others[] = {"epochs", "epoc",   "EPOCH", "deny",        "nbf",   "app",
                            "l2",     "L2:abc", "x",     "session:abc", "user:1"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        snprintf(key, sizeof(key), "%s%s", t, others[i]);
        check(ks, key, TESS_KEYKIND_OTHER, "");
    }
    /* Under the session prefix everything else is a session id (ids never hold ':'). */
    snprintf(key, sizeof(key), "%suser", s);
    snprintf(rest, sizeof(rest), "user");
    check(ks, key, TESS_KEYKIND_SESSION, rest);
    snprintf(key, sizeof(key), "%sUSER:1", s);
    check(ks, key, TESS_KEYKIND_SESSION, "USER:1");
    /* A prefix cut short, or a key of nobody's. */
    snprintf(key, sizeof(key), "%.*s", (int)strlen(s) - 1, s);
    check(ks, key, TESS_KEYKIND_OTHER, "");
    snprintf(key, sizeof(key), "%.*s", (int)strlen(t) - 1, t);
    check(ks, key, TESS_KEYKIND_OTHER, "");
    check(ks, "", TESS_KEYKIND_OTHER, "");
    check(ks, "foo:bar", TESS_KEYKIND_OTHER, "");
    snprintf(key, sizeof(key), "x%s1", s);
    check(ks, key, TESS_KEYKIND_OTHER, "");
}

static void test_classify_default_prefixes(void **state)
{
    (void)state;
    check_every_kind(NULL, "session:", "tessera:");
    check(NULL, "session:abc", TESS_KEYKIND_SESSION, "abc");
    check(NULL, "tessera:epoch", TESS_KEYKIND_EPOCH, "");
    check(NULL, "sess:abc", TESS_KEYKIND_OTHER, ""); /* connect-redis's own default is not ours */
    /* Binary-safe: an embedded NUL is a byte of the rest. */
    {
        exactbuf_t b = {0};
        tess_str_t r;
        assert_int_equal(tess_keyspace_classify(NULL, exactbuf_set(&b, "session:a\0b", 11), &r), TESS_KEYKIND_SESSION);
        assert_int_equal(r.len, 3);
        assert_memory_equal(r.ptr, "a\0b", 3);
        exactbuf_free(&b);
    }
}

static void test_classify_custom_prefixes(void **state)
{
    tess_keyspace_t a = {"sess:", "t:"};
    tess_keyspace_t b = {"myapp:s:", "myapp:t:"}; /* a shared leading part is fine */
    tess_keyspace_t c = {"S", "T"};
    tess_keyspace_t d = {NULL, "x:"};
    (void)state;
    assert_int_equal(tess_keyspace_check(&a), 0);
    assert_int_equal(tess_keyspace_check(&b), 0);
    assert_int_equal(tess_keyspace_check(&c), 0);
    assert_int_equal(tess_keyspace_check(&d), 0);
    check_every_kind(&a, "sess:", "t:");
    check_every_kind(&b, "myapp:s:", "myapp:t:");
    check_every_kind(&c, "S", "T");
    check_every_kind(&d, "session:", "x:");
    /* The defaults are not looked at once a prefix is set. */
    check(&a, "session:abc", TESS_KEYKIND_OTHER, "");
    check(&a, "tessera:epoch", TESS_KEYKIND_OTHER, "");
    check(&d, "tessera:epoch", TESS_KEYKIND_OTHER, "");
}

static void test_check_refuses(void **state)
{
    char p64[TESS_KEY_PREFIX_MAX + 1], p65[TESS_KEY_PREFIX_MAX + 2];
    (void)state;
    strfill(p64, 'p', TESS_KEY_PREFIX_MAX);
    strfill(p65, 'p', TESS_KEY_PREFIX_MAX + 1);
    struct {
        tess_keyspace_t ks;
        int rc;
    } rows[] = {
        {{"", NULL}, TESS_EINVAL},
        {{NULL, ""}, TESS_EINVAL},
        {{"", ""}, TESS_EINVAL},
        {{p64, NULL}, 0},
        {{NULL, p64}, 0},
        {{p65, NULL}, TESS_EINVAL},
        {{NULL, p65}, TESS_EINVAL},
        {{"same:", "same:"}, TESS_EINVAL},
        {{"tessera:", NULL}, TESS_EINVAL}, /* equal to the other's default */
        {{NULL, "session:"}, TESS_EINVAL},
        {{"s", "s:"}, TESS_EINVAL}, /* one a prefix of the other, either way */
        {{"s:", "s"}, TESS_EINVAL},
        {{"tess", NULL}, TESS_EINVAL},
        {{NULL, "sess"}, TESS_EINVAL},
        {{"session:x", NULL}, 0}, /* the default tessera: prefix is no prefix of it */
        {{"a:b", "b:a"}, 0},
        {{"xs:", "s:"}, 0}, /* one inside the other but not at its start: keys stay apart */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc = tess_keyspace_check(&rows[i].ks);
        if (rc != rows[i].rc)
            fail_msg("check('%s', '%s') = %d, want %d", tess_keyspace_session(&rows[i].ks),
                     tess_keyspace_tessera(&rows[i].ks), rc, rows[i].rc);
    }
}

/* The check exists so that no key can be both kinds: for accepted pairs, each prefix's keys stay its own. */
static void test_accepted_pairs_keep_keys_apart(void **state)
{
    tess_keyspace_t pairs[] = {{NULL, NULL}, {"sess:", "t:"}, {"xs:", "s:"}, {"a:b", "b:a"}};
    char key[256];
    (void)state;
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *s = tess_keyspace_session(&pairs[i]), *t = tess_keyspace_tessera(&pairs[i]);
        assert_int_equal(tess_keyspace_check(&pairs[i]), 0);
        snprintf(key, sizeof(key), "%sdeny:j", t);
        check(&pairs[i], key, TESS_KEYKIND_DENY, "j");
        snprintf(key, sizeof(key), "%sabc", s);
        check(&pairs[i], key, TESS_KEYKIND_SESSION, "abc");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_prefixes),
        cmocka_unit_test(test_classify_default_prefixes),
        cmocka_unit_test(test_classify_custom_prefixes),
        cmocka_unit_test(test_check_refuses),
        cmocka_unit_test(test_accepted_pairs_keep_keys_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
