/* Unit tests of the near-cache (cache.h): bounds, TTL, negative entries, generations, threads. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tessera/cache.h"
#include "tessera/error.h"

#define NOW INT64_C(1700000000000)
#define DAY INT64_C(86400000)

/* A session with id `sid` of `user`, alive for a day, with `extra` bytes of app data (0: none). */
static void make(tess_session_t *s, const char *sid, const char *user, size_t extra)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->id, sizeof(s->id), "%s", sid);
    snprintf(s->user_id, sizeof(s->user_id), "%s", user);
    memcpy(s->role, "visitor", 8);
    s->created_ms = NOW;
    s->expires_ms = NOW + DAY;
    s->absolute_expires_ms = NOW + 30 * DAY;
    if (extra > 0) {
        s->extra_json = malloc(extra + 1);
        memset(s->extra_json, 'x', extra);
        s->extra_json[extra] = '\0';
    }
}

static tess_cache_t *new_cache(size_t entries, size_t bytes, unsigned shards)
{
    tess_cache_opts_t o;
    tess_cache_t *c = NULL;
    tess_cache_opts_default(&o);
    o.max_entries = entries;
    o.max_bytes = bytes;
    o.shards = shards;
    assert_int_equal(tess_cache_new(&c, &o), 0);
    return c;
}

static void put(tess_cache_t *c, const char *sid, const char *user, size_t extra, int64_t now)
{
    tess_session_t s;
    make(&s, sid, user, extra);
    assert_int_equal(tess_cache_put(c, tess_str(sid), &s, now, tess_cache_gen(c, tess_str(sid))), 0);
    tess_session_clear(&s);
}

static int lookup(tess_cache_t *c, const char *sid, int64_t now)
{
    tess_session_t s;
    int res = tess_cache_get(c, tess_str(sid), now, &s);
    if (res == TESS_CACHE_HIT)
        assert_string_equal(s.id, sid);
    else
        assert_null(s.extra_json);
    tess_session_clear(&s);
    return res;
}

static void test_opts(void **state)
{
    tess_cache_opts_t o;
    tess_cache_t *c = (tess_cache_t *)1;
    (void)state;

    tess_cache_opts_default(&o);
    assert_int_equal(o.max_entries, 100000);
    assert_int_equal(o.max_bytes, 64 << 20);
    assert_int_equal(o.ttl_ms, 300000);
    assert_int_equal(o.negative_ttl_ms, 5000);
    assert_int_equal(o.shards, 16);
    o.shards = 3;
    assert_int_equal(tess_cache_new(&c, &o), TESS_EINVAL);
    assert_null(c);
    o.shards = 4;
    o.ttl_ms = -1;
    assert_int_equal(tess_cache_new(&c, &o), TESS_EINVAL);
    assert_int_equal(tess_cache_new(&c, NULL), 0);
    tess_cache_free(c);
    /* more shards than entries: still a hard bound */
    c = new_cache(3, 1 << 20, 16);
    for (int i = 0; i < 50; i++) {
        char sid[16];
        snprintf(sid, sizeof(sid), "s%d", i);
        put(c, sid, "u", 0, NOW);
    }
    {
        tess_cache_stats_t st;
        tess_cache_get_stats(c, &st);
        assert_true(st.entries <= 3);
        assert_true(st.entries >= 1);
    }
    tess_cache_free(c);
    tess_cache_free(NULL);
}

static void test_hit_miss(void **state)
{
    tess_cache_t *c = new_cache(100, 1 << 20, 4);
    tess_session_t s, got;
    tess_cache_stats_t st;
    (void)state;

    make(&s, "sid-a", "alice", 10);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), &s, NOW, tess_cache_gen(c, TESS_STR_LIT("sid-a"))), 0);
    assert_int_equal(tess_cache_get(c, TESS_STR_LIT("sid-a"), NOW, &got), TESS_CACHE_HIT);
    assert_string_equal(got.user_id, "alice");
    assert_string_equal(got.extra_json, s.extra_json);
    assert_ptr_not_equal(got.extra_json, s.extra_json); /* a deep copy */
    tess_session_clear(&got);
    assert_int_equal(lookup(c, "sid-b", NOW), TESS_CACHE_MISS);
    /* replace: one entry, new content */
    memcpy(s.role, "agent", 6);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), &s, NOW, tess_cache_gen(c, TESS_STR_LIT("sid-a"))), 0);
    assert_int_equal(tess_cache_get(c, TESS_STR_LIT("sid-a"), NOW, &got), TESS_CACHE_HIT);
    assert_string_equal(got.role, "agent");
    tess_session_clear(&got);
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    assert_true(st.bytes > 10);
    tess_session_clear(&s);
    tess_cache_free(c);
}

static void test_entry_bound(void **state)
{
    tess_cache_t *c = new_cache(64, 64 << 20, 4);
    tess_cache_stats_t st;
    (void)state;

    for (int i = 0; i < 1000; i++) {
        char sid[16];
        snprintf(sid, sizeof(sid), "sid-%d", i);
        put(c, sid, "u", 0, NOW);
        tess_cache_get_stats(c, &st);
        assert_true(st.entries <= 64);
    }
    tess_cache_get_stats(c, &st);
    assert_true(st.entries >= 48); /* each shard is full, give or take the hash spread */
    assert_int_equal(st.evictions, 1000 - st.entries);
    /* the most recent entry is there */
    assert_int_equal(lookup(c, "sid-999", NOW), TESS_CACHE_HIT);
    tess_cache_free(c);
}

static void test_byte_bound(void **state)
{
    const size_t max_bytes = 64 * 1024;
    tess_cache_t *c = new_cache(100000, max_bytes, 4);
    tess_cache_stats_t st;
    tess_session_t s;
    (void)state;

    for (int i = 0; i < 500; i++) {
        char sid[16];
        snprintf(sid, sizeof(sid), "sid-%d", i);
        put(c, sid, "u", 1000 + (size_t)i, NOW);
        tess_cache_get_stats(c, &st);
        assert_true(st.bytes <= max_bytes);
    }
    assert_true(st.entries > 10);
    assert_true(st.evictions > 400);
    assert_int_equal(st.evictions + st.entries, 500);
    /* an entry larger than a shard's share is not stored, and drops the stale value it replaces */
    put(c, "sid-499", "u", 10, NOW);
    assert_int_equal(lookup(c, "sid-499", NOW), TESS_CACHE_HIT);
    make(&s, "sid-499", "u", max_bytes / 4);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-499"), &s, NOW, tess_cache_gen(c, TESS_STR_LIT("sid-499"))),
                     0);
    assert_int_equal(lookup(c, "sid-499", NOW), TESS_CACHE_MISS);
    tess_cache_get_stats(c, &st);
    assert_true(st.bytes <= max_bytes);
    tess_session_clear(&s);
    tess_cache_free(c);
}

static void test_lru_order(void **state)
{
    tess_cache_t *c = new_cache(3, 1 << 20, 1);
    (void)state;

    put(c, "a", "u", 0, NOW);
    put(c, "b", "u", 0, NOW);
    put(c, "c", "u", 0, NOW);
    assert_int_equal(lookup(c, "a", NOW), TESS_CACHE_HIT); /* a is now the most recent */
    put(c, "d", "u", 0, NOW);
    assert_int_equal(lookup(c, "b", NOW), TESS_CACHE_MISS);
    assert_int_equal(lookup(c, "a", NOW), TESS_CACHE_HIT);
    assert_int_equal(lookup(c, "c", NOW), TESS_CACHE_HIT);
    assert_int_equal(lookup(c, "d", NOW), TESS_CACHE_HIT);
    tess_cache_free(c);
}

static void test_ttl(void **state)
{
    tess_cache_opts_t o;
    tess_cache_t *c;
    tess_session_t s;
    (void)state;

    tess_cache_opts_default(&o);
    o.ttl_ms = 1000;
    assert_int_equal(tess_cache_new(&c, &o), 0);
    put(c, "a", "u", 0, NOW);
    assert_int_equal(lookup(c, "a", NOW + 999), TESS_CACHE_HIT);
    assert_int_equal(lookup(c, "a", NOW + 1000), TESS_CACHE_MISS);
    assert_int_equal(lookup(c, "a", NOW + 999), TESS_CACHE_MISS); /* removed on the expired lookup */

    /* the session's own expiry caps the entry */
    make(&s, "b", "u", 0);
    s.expires_ms = NOW + 500;
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("b"), &s, NOW, tess_cache_gen(c, TESS_STR_LIT("b"))), 0);
    assert_int_equal(lookup(c, "b", NOW + 499), TESS_CACHE_HIT);
    assert_int_equal(lookup(c, "b", NOW + 500), TESS_CACHE_MISS);
    s.expires_ms = NOW + DAY;
    s.absolute_expires_ms = NOW + 200;
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("b"), &s, NOW, tess_cache_gen(c, TESS_STR_LIT("b"))), 0);
    assert_int_equal(lookup(c, "b", NOW + 200), TESS_CACHE_MISS);
    /* already expired: not stored */
    s.expires_ms = NOW;
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("b"), &s, NOW, tess_cache_gen(c, TESS_STR_LIT("b"))), 0);
    assert_int_equal(lookup(c, "b", NOW), TESS_CACHE_MISS);
    tess_cache_free(c);
}

static void test_negative(void **state)
{
    tess_cache_opts_t o;
    tess_cache_t *c;
    tess_cache_stats_t st;
    (void)state;

    tess_cache_opts_default(&o);
    assert_int_equal(tess_cache_new(&c, &o), 0);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("ghost"), NULL, NOW, tess_cache_gen(c, TESS_STR_LIT("ghost"))), 0);
    assert_int_equal(lookup(c, "ghost", NOW), TESS_CACHE_NEGATIVE);
    assert_int_equal(lookup(c, "ghost", NOW + 4999), TESS_CACHE_NEGATIVE);
    assert_int_equal(lookup(c, "ghost", NOW + 5000), TESS_CACHE_MISS);
    /* a real session replaces a negative entry */
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("ghost"), NULL, NOW, tess_cache_gen(c, TESS_STR_LIT("ghost"))), 0);
    put(c, "ghost", "u", 0, NOW);
    assert_int_equal(lookup(c, "ghost", NOW), TESS_CACHE_HIT);
    /* evict removes negative entries too */
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("g2"), NULL, NOW, tess_cache_gen(c, TESS_STR_LIT("g2"))), 0);
    tess_cache_evict(c, TESS_STR_LIT("g2"));
    assert_int_equal(lookup(c, "g2", NOW), TESS_CACHE_MISS);
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.negative_hits, 2);
    assert_int_equal(st.hits, 1);
    tess_cache_free(c);

    /* negative_ttl_ms = 0: no negative caching */
    o.negative_ttl_ms = 0;
    assert_int_equal(tess_cache_new(&c, &o), 0);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("ghost"), NULL, NOW, tess_cache_gen(c, TESS_STR_LIT("ghost"))), 0);
    assert_int_equal(lookup(c, "ghost", NOW), TESS_CACHE_MISS);
    tess_cache_free(c);
}

/* Every field comes back as it was put (entries keep a session packed), and an entry stays small. */
static void test_round_trip_packed(void **state)
{
    tess_cache_t *c = new_cache(100, 1 << 20, 1);
    const char *extras[] = {NULL, "", "{\"cookie\":{\"path\":\"/\"},\"n\":1}"};
    tess_cache_stats_t st;
    (void)state;

    for (int i = 0; i < 3; i++) {
        tess_session_t s, got;
        char sid[64];
        snprintf(sid, sizeof(sid), "Xk3p9vQ2mZr7Lw1aBc4dEf6gHi8jKl0nOp2qRs4tUv%d", i); /* 43 bytes, as ours */
        make(&s, sid, i == 1 ? "" : "user-1234567", 0);
        if (i == 2)
            s.role[0] = '\0';
        s.max_age_ms = 7 * DAY + i;
        s.extra_json = extras[i] != NULL ? strdup(extras[i]) : NULL;
        assert_int_equal(tess_cache_put(c, tess_str(sid), &s, NOW, tess_cache_gen(c, tess_str(sid))), 0);
        assert_int_equal(tess_cache_get(c, tess_str(sid), NOW, &got), TESS_CACHE_HIT);
        assert_string_equal(got.id, s.id);
        assert_string_equal(got.user_id, s.user_id);
        assert_string_equal(got.role, s.role);
        assert_true(got.created_ms == s.created_ms && got.expires_ms == s.expires_ms &&
                    got.absolute_expires_ms == s.absolute_expires_ms && got.max_age_ms == s.max_age_ms);
        if (extras[i] == NULL)
            assert_null(got.extra_json);
        else
            assert_string_equal(got.extra_json, extras[i]);
        tess_session_clear(&got);
        tess_session_clear(&s);
    }
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 3);
    /* 43-byte id, 12-byte user, "visitor": the header and the strings, far under a tess_session_t (256). */
    tess_cache_evict(c, TESS_STR_LIT("Xk3p9vQ2mZr7Lw1aBc4dEf6gHi8jKl0nOp2qRs4tUv2"));
    tess_cache_evict(c, TESS_STR_LIT("Xk3p9vQ2mZr7Lw1aBc4dEf6gHi8jKl0nOp2qRs4tUv1"));
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_true(st.bytes < 200);
    tess_cache_free(c);
}

/* An eviction drops the puts in flight of its own stripe only: on one shard, most keys' puts survive it. */
static void test_generation_stripes(void **state)
{
    enum { KEYS = 1000 };
    tess_cache_t *c = new_cache(4 * KEYS, 16 << 20, 1);
    uint64_t gens[KEYS];
    char key[32];
    tess_session_t s;
    int kept = 0;
    (void)state;

    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "sid-%d", i);
        gens[i] = tess_cache_gen(c, tess_str(key));
    }
    tess_cache_evict(c, TESS_STR_LIT("sid-0")); /* a logout while all KEYS lookups are in flight */
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "sid-%d", i);
        make(&s, key, "u", 0);
        assert_int_equal(tess_cache_put(c, tess_str(key), &s, NOW, gens[i]), 0);
        tess_session_clear(&s);
        if (lookup(c, key, NOW) == TESS_CACHE_HIT)
            kept++;
        else
            assert_int_not_equal(tess_cache_gen(c, tess_str(key)), gens[i]); /* dropped only when it moved */
    }
    assert_int_equal(lookup(c, "sid-0", NOW), TESS_CACHE_MISS); /* the evicted key's own put: dropped */
    assert_true(kept >= KEYS * 9 / 10);                         /* 1/64 share its stripe: ~984 kept */
    tess_cache_free(c);
}

static void test_generation_guard(void **state)
{
    tess_cache_t *c = new_cache(100, 1 << 20, 4);
    tess_session_t s;
    uint64_t gen;
    (void)state;

    make(&s, "sid-a", "alice", 0);
    /* a lookup starts (reads the generation), a logout evicts, the slow lookup's put must be dropped */
    gen = tess_cache_gen(c, TESS_STR_LIT("sid-a"));
    tess_cache_evict(c, TESS_STR_LIT("sid-a"));
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), &s, NOW, gen), 0);
    assert_int_equal(lookup(c, "sid-a", NOW), TESS_CACHE_MISS);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), NULL, NOW, gen), 0);
    assert_int_equal(lookup(c, "sid-a", NOW), TESS_CACHE_MISS);
    /* same with a flush and with evict_user */
    gen = tess_cache_gen(c, TESS_STR_LIT("sid-a"));
    tess_cache_flush(c);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), &s, NOW, gen), 0);
    assert_int_equal(lookup(c, "sid-a", NOW), TESS_CACHE_MISS);
    gen = tess_cache_gen(c, TESS_STR_LIT("sid-a"));
    tess_cache_evict_user(c, TESS_STR_LIT("alice"));
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), &s, NOW, gen), 0);
    assert_int_equal(lookup(c, "sid-a", NOW), TESS_CACHE_MISS);
    /* an unrelated put (a bound eviction) does not move it */
    gen = tess_cache_gen(c, TESS_STR_LIT("sid-a"));
    put(c, "sid-b", "bob", 0, NOW);
    assert_int_equal(tess_cache_gen(c, TESS_STR_LIT("sid-a")), gen);
    assert_int_equal(tess_cache_put(c, TESS_STR_LIT("sid-a"), &s, NOW, gen), 0);
    assert_int_equal(lookup(c, "sid-a", NOW), TESS_CACHE_HIT);
    tess_session_clear(&s);
    tess_cache_free(c);
}

static void test_evict_user_flush_disable(void **state)
{
    tess_cache_t *c = new_cache(1000, 1 << 20, 8);
    tess_cache_stats_t st;
    char sid[16];
    (void)state;

    for (int i = 0; i < 20; i++) {
        snprintf(sid, sizeof(sid), "sid-%d", i);
        put(c, sid, i % 2 ? "alice" : "bob", 0, NOW);
    }
    tess_cache_evict_user(c, TESS_STR_LIT("alice"));
    for (int i = 0; i < 20; i++) {
        snprintf(sid, sizeof(sid), "sid-%d", i);
        assert_int_equal(lookup(c, sid, NOW), i % 2 ? TESS_CACHE_MISS : TESS_CACHE_HIT);
    }
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.invalidations, 10);
    assert_int_equal(st.entries, 10);

    tess_cache_flush(c);
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.flushes, 1);
    assert_int_equal(lookup(c, "sid-0", NOW), TESS_CACHE_MISS);

    /* disabled: always MISS, puts dropped; disabling flushed */
    put(c, "sid-0", "bob", 0, NOW);
    tess_cache_set_enabled(c, 0);
    assert_int_equal(lookup(c, "sid-0", NOW), TESS_CACHE_MISS);
    put(c, "sid-1", "bob", 0, NOW);
    tess_cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    tess_cache_set_enabled(c, 1);
    assert_int_equal(lookup(c, "sid-0", NOW), TESS_CACHE_MISS);
    put(c, "sid-1", "bob", 0, NOW);
    assert_int_equal(lookup(c, "sid-1", NOW), TESS_CACHE_HIT);
    tess_cache_free(c);
}

/* 4 threads hammer one small cache; the bounds must hold throughout and nothing may crash or leak. */
typedef struct worker {
    tess_cache_t *c;  /* shared cache */
    int n;            /* worker index */
    size_t max_seen;  /* most entries observed */
    size_t max_bytes; /* most bytes observed */
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    tess_session_t s, got;
    char sid[32], user[16];
    unsigned seed = (unsigned)w->n * 7919u + 1;

    for (int i = 0; i < 20000; i++) {
        unsigned r = (unsigned)rand_r(&seed);
        snprintf(sid, sizeof(sid), "sid-%u", r % 500);
        snprintf(user, sizeof(user), "u%u", r % 13);
        switch (r % 10) {
        case 0:
            tess_cache_evict(w->c, tess_str(sid));
            break;
        case 1:
            if (r % 1000 == 1)
                tess_cache_evict_user(w->c, tess_str(user));
            else if (r % 5000 == 11)
                tess_cache_flush(w->c);
            break;
        case 2:
        case 3:
        case 4: {
            uint64_t gen = tess_cache_gen(w->c, tess_str(sid));
            make(&s, sid, user, r % 300);
            tess_cache_put(w->c, tess_str(sid), r % 7 == 0 ? NULL : &s, NOW, gen);
            tess_session_clear(&s);
            break;
        }
        default:
            if (tess_cache_get(w->c, tess_str(sid), NOW, &got) == TESS_CACHE_HIT && strcmp(got.id, sid) != 0)
                w->max_seen = (size_t)-1; /* flagged: wrong entry */
            tess_session_clear(&got);
        }
        if (i % 1000 == 0) {
            tess_cache_stats_t st;
            tess_cache_get_stats(w->c, &st);
            if (st.entries > w->max_seen && w->max_seen != (size_t)-1)
                w->max_seen = st.entries;
            if (st.bytes > w->max_bytes)
                w->max_bytes = st.bytes;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    tess_cache_t *c = new_cache(128, 32 * 1024, 8);
    pthread_t th[4];
    worker_t w[4];
    tess_cache_stats_t st;
    (void)state;

    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){c, i, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].max_seen <= 128);
        assert_true(w[i].max_bytes <= 32 * 1024);
    }
    tess_cache_get_stats(c, &st);
    assert_true(st.entries <= 128);
    assert_true(st.bytes <= 32 * 1024);
    assert_true(st.hits + st.negative_hits + st.misses > 0);
    tess_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opts),
        cmocka_unit_test(test_hit_miss),
        cmocka_unit_test(test_entry_bound),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_lru_order),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_negative),
        cmocka_unit_test(test_generation_guard),
        cmocka_unit_test(test_generation_stripes),
        cmocka_unit_test(test_round_trip_packed),
        cmocka_unit_test(test_evict_user_flush_disable),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
