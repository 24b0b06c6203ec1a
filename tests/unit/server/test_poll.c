/*
 * Unit tests of the polled path's pure parts (server/poll.h): etag_matches() over If-None-Match headers built
 * with h2o's own header calls, and the meta cache through its public functions on a server_t whose
 * deployment is coherent (a Redis URL, never connected: tess_deploy_new checks its syntax only).
 *
 * The meta cache's entries are private to poll.c. To fill it, this file repeats its one-member definition:
 * the same tag and member make it the same type (C11 6.2.7), and test_mirror_reaches_the_cache checks
 * through meta_cache_stats() that the mirror reaches the cache poll.c counts. Keys are the decimal pre-chat
 * ids, as poll.c's meta_key() writes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "exactbuf.h"
#include "server/poll.h"
#include "tessera/cache.h"
#include "tessera/error.h"
#include "tmpdir.h"

/* ---- etag_matches ---------------------------------------------------------------------------------------- */

#define OURS "\"0123456789abcdef\"" /* a strong tag as poll.c renders them */
#define MAX_HEADERS 4

typedef struct inm {
    h2o_mem_pool_t pool;
    h2o_headers_t headers;
    exactbuf_t values[MAX_HEADERS]; /* h2o keeps the pointers: the values live here, exactly sized */
    int n;
} inm_t;

static void inm_add(inm_t *h, const char *value)
{
    tess_str_t v;
    assert_true(h->n < MAX_HEADERS);
    v = exactbuf_str(&h->values[h->n++], value);
    h2o_add_header(&h->pool, &h->headers, H2O_TOKEN_IF_NONE_MATCH, NULL, v.ptr, v.len);
}

/* etag_matches(OURS) over one If-None-Match header per non-NULL argument. */
static int matches(const char *v1, const char *v2, const char *v3)
{
    inm_t h;
    exactbuf_t tag = {0};
    int m;
    memset(&h, 0, sizeof(h));
    h2o_mem_init_pool(&h.pool);
    if (v1 != NULL)
        inm_add(&h, v1);
    if (v2 != NULL)
        inm_add(&h, v2);
    if (v3 != NULL)
        inm_add(&h, v3);
    /* A header of another name with our tag must not count. */
    h2o_add_header(&h.pool, &h.headers, H2O_TOKEN_IF_MATCH, NULL, H2O_STRLIT(OURS));
    m = etag_matches(&h.headers, exactbuf_str(&tag, OURS));
    exactbuf_free(&tag);
    for (int i = 0; i < h.n; i++)
        exactbuf_free(&h.values[i]);
    h2o_mem_clear_pool(&h.pool);
    return m;
}

#define MATCH1(v) assert_int_equal(matches(v, NULL, NULL), 1)
#define NOMATCH1(v) assert_int_equal(matches(v, NULL, NULL), 0)

static void test_etag_exact_and_weak(void **state)
{
    (void)state;
    assert_int_equal(matches(NULL, NULL, NULL), 0); /* no If-None-Match */
    MATCH1(OURS);
    MATCH1("W/" OURS); /* compared weakly (RFC 9110 13.1.2) */
    MATCH1("  " OURS "  ");
    NOMATCH1("w/" OURS); /* "W/" is case-sensitive */
    NOMATCH1("W/ " OURS);
    NOMATCH1("\"0123456789ABCDEF\"");
    NOMATCH1("\"other\"");
}

static void test_etag_star(void **state)
{
    (void)state;
    MATCH1("*");
    MATCH1(" *");
    MATCH1("\t*");
    MATCH1("\"a\", *");
    NOMATCH1("\"*\""); /* a tag whose text is a star is not the wildcard */
}

static void test_etag_lists(void **state)
{
    (void)state;
    MATCH1("\"a\"," OURS);
    MATCH1("\"a\", " OURS);
    MATCH1("\"a\",\t" OURS);
    MATCH1("\"a\" , \t ," OURS ",\"b\"");
    MATCH1(",,," OURS);
    MATCH1("W/\"a\", W/" OURS);
    MATCH1("\"a,b\", " OURS); /* a comma is a valid etagc: it does not split a quoted tag */
    MATCH1("\"a\", \"b\", \"c\", \"d\", " OURS);
    NOMATCH1("\"a\", \"b\", \"c\"");
    NOMATCH1(", , ,");
    NOMATCH1("\t \t");
}

static void test_etag_several_headers(void **state)
{
    (void)state;
    assert_int_equal(matches("\"a\"", OURS, NULL), 1);
    assert_int_equal(matches("\"a\"", "\"b\"", "W/" OURS), 1);
    assert_int_equal(matches("\"a\"", "\"b\"", "\"c\""), 0);
    assert_int_equal(matches("", "", OURS), 1);
    assert_int_equal(matches("", "*", NULL), 1);
}

static void test_etag_malformed(void **state)
{
    (void)state;
    NOMATCH1("");
    NOMATCH1("\"0123456789abcdef"); /* unterminated */
    NOMATCH1("\"");
    NOMATCH1("W/");
    NOMATCH1("W");
    NOMATCH1("W/\"");
    NOMATCH1("0123456789abcdef");      /* unquoted */
    NOMATCH1("\"\"");                  /* an empty tag */
    NOMATCH1("\"0123456789abcdef0\""); /* ours as its prefix */
    NOMATCH1("\"0123456789abcde\"");   /* a prefix of ours */
    NOMATCH1("\"a" OURS);              /* ours inside another tag */
    /* Junk before a good tag is skipped up to its comma; an unterminated tag ends its header only. */
    MATCH1("junk, " OURS);
    MATCH1("junk junk, W/" OURS);
    assert_int_equal(matches("\"unterminated, " OURS, OURS, NULL), 1);
    assert_int_equal(matches("\"unterminated", NULL, NULL), 0);
    /* Our tag right after a closing quote, without a separator: the next token starts at the quote. */
    MATCH1("\"a\"" OURS);
}

/* Every byte string of up to 3 bytes from a small alphabet: no match without our tag, no overread, no hang. */
static void test_etag_short_inputs(void **state)
{
    static const char alpha[] = {'"', 'W', '/', ',', ' ', '\t', '*', 'a', '\0'};
    const size_t na = sizeof(alpha);
    (void)state;
    for (size_t len = 0; len <= 3; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= na;
        for (size_t code = 0; code < total; code++) {
            char v[4];
            int star = 0;
            size_t c = code;
            inm_t h;
            exactbuf_t tag = {0};
            tess_str_t s;
            for (size_t i = 0; i < len; i++, c /= na) {
                v[i] = alpha[c % na];
                star |= v[i] == '*';
            }
            memset(&h, 0, sizeof(h));
            h2o_mem_init_pool(&h.pool);
            s = exactbuf_set(&h.values[0], v, len);
            h2o_add_header(&h.pool, &h.headers, H2O_TOKEN_IF_NONE_MATCH, NULL, s.ptr, s.len);
            if (etag_matches(&h.headers, exactbuf_str(&tag, OURS)) && !star)
                fail_msg("a %zu-byte header without our tag or '*' matched", len);
            exactbuf_free(&tag);
            exactbuf_free(&h.values[0]);
            h2o_mem_clear_pool(&h.pool);
        }
    }
}

/* ---- the meta cache -------------------------------------------------------------------------------------- */

struct meta_cache {
    tess_cache_t *c; /* as poll.c: values keyed by the decimal id */
};

typedef struct fixture {
    tmpdir_t tmp;
    tess_secrets_t *secrets;
    server_t srv; /* zeroed but for its deployment */
} fixture_t;

static int setup_redis_url(void **state, const char *redis_url)
{
    fixture_t *f = calloc(1, sizeof(*f));
    tess_deploy_opts_t o = {0};
    char db[128], url[160], err[256] = "";
    assert_non_null(f);
    tmpdir_make(&f->tmp);
    assert_int_equal(tess_secrets_parse(&f->secrets, TESS_STR_LIT("poll-test-secret")), 0);
    snprintf(url, sizeof(url), "sqlite:%s", tmpdir_path(&f->tmp, "sessions.db", db, sizeof(db)));
    o.strategy = TESS_STRATEGY_DB;
    o.database_url = url;
    o.redis_url = redis_url;
    o.secrets = f->secrets;
    tess_session_policy_default(&o.policy);
    o.on_app_key = meta_on_app_key;
    o.on_coherence = meta_on_coherence;
    o.app_arg = &f->srv;
    if (tess_deploy_new(&f->srv.sessions, &o, err, sizeof(err)) != 0)
        fail_msg("tess_deploy_new: %s", err);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_redis_url(state, "redis://127.0.0.1:1"); /* coherent; nothing ever connects to it */
}

static int setup_no_redis(void **state)
{
    return setup_redis_url(state, NULL);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    meta_cache_free(&f->srv);
    assert_null(f->srv.meta);
    tess_deploy_free(f->srv.sessions);
    tess_secrets_free(f->secrets);
    tmpdir_remove(&f->tmp);
    free(f);
    return 0;
}

typedef struct mstats {
    uint64_t hits, misses;
    size_t entries;
} mstats_t;

static mstats_t stats(server_t *srv)
{
    mstats_t s = {99, 99, 99};
    assert_int_equal(meta_cache_stats(srv, &s.hits, &s.misses, &s.entries), 1);
    return s;
}

/* Puts a value for pre-chat `id` as h_prechat_meta does (generation read first). */
static void put(server_t *srv, int64_t id)
{
    char key[24], value[32];
    tess_str_t k = tess_strn(key, (size_t)snprintf(key, sizeof(key), "%lld", (long long)id));
    uint64_t gen = tess_cache_gen(srv->meta->c, k);
    int n = snprintf(value, sizeof(value), "meta of %lld", (long long)id);
    assert_int_equal(tess_cache_put_value(srv->meta->c, k, value, (size_t)n, tess_now_ms(), gen), 0);
}

static void copy_out(void *arg, const void *bytes, size_t len)
{
    char *out = arg;
    memcpy(out, bytes, len < 31 ? len : 31);
    out[len < 31 ? len : 31] = '\0';
}

/* 1 when pre-chat `id` is cached, with the value put() wrote. */
static int cached(server_t *srv, int64_t id)
{
    char key[24], got[32] = "", want[32];
    tess_str_t k = tess_strn(key, (size_t)snprintf(key, sizeof(key), "%lld", (long long)id));
    if (tess_cache_read_value(srv->meta->c, k, tess_now_ms(), copy_out, got) != TESS_CACHE_HIT)
        return 0;
    snprintf(want, sizeof(want), "meta of %lld", (long long)id);
    assert_string_equal(got, want);
    return 1;
}

static void app_key(server_t *srv, const char *name, size_t len)
{
    exactbuf_t b = {0};
    meta_on_app_key(srv, exactbuf_set(&b, name, len));
    exactbuf_free(&b);
}

/* Without Redis too there is a meta cache (kept coherent by the database's change events): off until they flow. */
static void test_cache_without_redis(void **state)
{
    fixture_t *f = *state;
    mstats_t s;
    assert_int_equal(tess_deploy_coherent(f->srv.sessions), 0);
    assert_int_equal(meta_cache_new(&f->srv), 0);
    assert_non_null(f->srv.meta);
    put(&f->srv, 7);
    s = stats(&f->srv);
    assert_int_equal(s.entries, 0); /* off until the events flow */
    meta_on_coherence(&f->srv, 1);
    put(&f->srv, 7);
    s = stats(&f->srv);
    assert_int_equal(s.entries, 1);
    meta_on_app_key(&f->srv, TESS_STR_LIT("meta:7"));
    s = stats(&f->srv);
    assert_int_equal(s.entries, 0);
}

static void test_mirror_reaches_the_cache(void **state)
{
    fixture_t *f = *state;
    mstats_t s;
    assert_int_equal(tess_deploy_coherent(f->srv.sessions), 1);
    assert_int_equal(meta_cache_new(&f->srv), 0);
    assert_non_null(f->srv.meta);
    s = stats(&f->srv);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.misses, 0);
    assert_int_equal(s.entries, 0);
    meta_on_coherence(&f->srv, 1);
    put(&f->srv, 7);
    assert_int_equal(stats(&f->srv).entries, 1);
    assert_true(cached(&f->srv, 7));
    assert_false(cached(&f->srv, 8));
    s = stats(&f->srv);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
}

static void test_off_until_coherence_up(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(meta_cache_new(&f->srv), 0);
    put(&f->srv, 7);
    assert_int_equal(stats(&f->srv).entries, 0); /* off: the put is dropped */
    assert_false(cached(&f->srv, 7));
    meta_on_coherence(&f->srv, 1);
    put(&f->srv, 7);
    assert_int_equal(stats(&f->srv).entries, 1);
    assert_true(cached(&f->srv, 7));
}

static void test_coherence_down_flushes_and_stops(void **state)
{
    fixture_t *f = *state;
    assert_int_equal(meta_cache_new(&f->srv), 0);
    meta_on_coherence(&f->srv, 1);
    put(&f->srv, 7);
    put(&f->srv, 8);
    assert_int_equal(stats(&f->srv).entries, 2);
    meta_on_coherence(&f->srv, 0);
    assert_int_equal(stats(&f->srv).entries, 0);
    put(&f->srv, 7);
    assert_int_equal(stats(&f->srv).entries, 0);
    assert_false(cached(&f->srv, 7));
    /* Back up: empty (whatever changed meanwhile was not heard), and caching again. */
    meta_on_coherence(&f->srv, 1);
    assert_int_equal(stats(&f->srv).entries, 0);
    put(&f->srv, 7);
    assert_true(cached(&f->srv, 7));
    /* A second "up" (the listener came back again) starts afresh too. */
    meta_on_coherence(&f->srv, 1);
    assert_int_equal(stats(&f->srv).entries, 0);
}

static void test_app_key_evicts_one_prechat(void **state)
{
    fixture_t *f = *state;
    const int64_t ids[] = {7, 8, 17, 70, 77, INT64_C(999999999999999999)};
    assert_int_equal(meta_cache_new(&f->srv), 0);
    meta_on_coherence(&f->srv, 1);
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        put(&f->srv, ids[i]);
    app_key(&f->srv, "meta:7", 6);
    assert_int_equal(stats(&f->srv).entries, 5);
    assert_false(cached(&f->srv, 7));
    for (size_t i = 1; i < sizeof(ids) / sizeof(ids[0]); i++)
        assert_true(cached(&f->srv, ids[i]));
    app_key(&f->srv, "meta:999999999999999999", 23);
    assert_false(cached(&f->srv, INT64_C(999999999999999999)));
    assert_int_equal(stats(&f->srv).entries, 4);
    app_key(&f->srv, "meta:12345", 10); /* not cached: nothing else goes */
    assert_int_equal(stats(&f->srv).entries, 4);
}

static void test_app_key_flushes_on_anything_else(void **state)
{
    fixture_t *f = *state;
    const char *names[] = {
        "meta:queue",
        "meta:",
        "meta",
        "garbage",
        "Meta:7",
        "meta:0",
        "meta:-7",
        "meta:abc",
        "meta:7x",
        "meta:7 ",
        " meta:7",
        "meta:9223372036854775808", /* past INT64_MAX */
        "meta:123456789012345678901234567890",
        "meta:7:8",
        "x",
    };
    assert_int_equal(meta_cache_new(&f->srv), 0);
    meta_on_coherence(&f->srv, 1);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        put(&f->srv, 7);
        put(&f->srv, 8);
        assert_int_equal(stats(&f->srv).entries, 2);
        app_key(&f->srv, names[i], strlen(names[i]));
        if (stats(&f->srv).entries != 0)
            fail_msg("on_app_key('%s') left %zu entries, want a flush", names[i], stats(&f->srv).entries);
    }
    /* Empty: "everything may have changed" (FLUSHDB, an epoch bump), with or without a pointer. */
    put(&f->srv, 7);
    meta_on_app_key(&f->srv, tess_strn(NULL, 0));
    assert_int_equal(stats(&f->srv).entries, 0);
    put(&f->srv, 7);
    app_key(&f->srv, "", 0);
    assert_int_equal(stats(&f->srv).entries, 0);
}

/*
 * Another application may write the mark itself (the listener reports any key under <tessera>app:). A name
 * that is no canonical decimal must not evict a key nobody uses and leave the pre-chat's entry stale.
 */
static void test_app_key_noncanonical_id_never_leaves_it_stale(void **state)
{
    fixture_t *f = *state;
    struct {
        const char *name;
        size_t len;
    } names[] = {{"meta:007", 8}, {"meta:+7", 7}, {"meta:7\0x", 8}, {"meta:07", 7}};
    assert_int_equal(meta_cache_new(&f->srv), 0);
    meta_on_coherence(&f->srv, 1);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        put(&f->srv, 7);
        assert_true(cached(&f->srv, 7));
        app_key(&f->srv, names[i].name, names[i].len);
        if (cached(&f->srv, 7))
            fail_msg("on_app_key('%.*s') left pre-chat 7 cached", (int)names[i].len, names[i].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag_exact_and_weak),
        cmocka_unit_test(test_etag_star),
        cmocka_unit_test(test_etag_lists),
        cmocka_unit_test(test_etag_several_headers),
        cmocka_unit_test(test_etag_malformed),
        cmocka_unit_test(test_etag_short_inputs),
        cmocka_unit_test_setup_teardown(test_cache_without_redis, setup_no_redis, teardown),
        cmocka_unit_test_setup_teardown(test_mirror_reaches_the_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off_until_coherence_up, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coherence_down_flushes_and_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_key_evicts_one_prechat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_key_flushes_on_anything_else, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_key_noncanonical_id_never_leaves_it_stale, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
