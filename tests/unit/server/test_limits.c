/*
 * Unit tests of the per-address connection table (server/limits.h): the address keys (IPv4, IPv4-mapped IPv6
 * and IPv4 share one; IPv6 by /64; Unix sockets have none), the bound per address, release, and the table
 * itself against a plain array model over many addresses and random acquire/release sequences (which walks
 * the backward-shift deletion through wrapped probe chains).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "server/limits.h"

static addr_key_t key4(const char *ip)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(1234)};
    addr_key_t k;
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    assert_int_equal(addr_key_of((struct sockaddr *)&sa, sizeof(sa), &k), 0);
    return k;
}

static addr_key_t key6(const char *ip)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(1234)};
    addr_key_t k;
    assert_int_equal(inet_pton(AF_INET6, ip, &sa.sin6_addr), 1);
    assert_int_equal(addr_key_of((struct sockaddr *)&sa, sizeof(sa), &k), 0);
    return k;
}

static int same(addr_key_t a, addr_key_t b)
{
    return memcmp(&a, &b, sizeof(a)) == 0;
}

static void test_keys(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_in short_in = {.sin_family = AF_INET};
    addr_key_t k;
    (void)state;

    assert_true(same(key4("192.0.2.1"), key4("192.0.2.1")));
    assert_false(same(key4("192.0.2.1"), key4("192.0.2.2")));
    assert_true(same(key4("192.0.2.1"), key6("::ffff:192.0.2.1")));
    assert_true(same(key6("2001:db8:1:2::1"), key6("2001:db8:1:2:ffff:ffff:ffff:ffff")));
    assert_false(same(key6("2001:db8:1:2::1"), key6("2001:db8:1:3::1")));
    assert_false(same(key6("::1"), key4("0.0.0.1")));
    assert_int_equal(addr_key_of((struct sockaddr *)&un, sizeof(un), &k), -1);
    assert_int_equal(addr_key_of((struct sockaddr *)&short_in, 4, &k), -1);
}

static void test_bound_per_address(void **state)
{
    addr_limit_t *t;
    addr_key_t a = key4("198.51.100.7"), b = key4("198.51.100.8");
    (void)state;

    assert_int_equal(addr_limit_new(&t, 3, 100), 0);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(addr_limit_acquire(t, &a), 0);
    assert_int_equal(addr_limit_acquire(t, &a), -1);
    assert_int_equal(addr_limit_count(t, &a), 3);
    assert_int_equal(addr_limit_acquire(t, &b), 0); /* another address is not affected */
    assert_int_equal(addr_limit_refused(t), 1);
    addr_limit_release(t, &a);
    assert_int_equal(addr_limit_acquire(t, &a), 0);
    for (int i = 0; i < 3; ++i)
        addr_limit_release(t, &a);
    assert_int_equal(addr_limit_count(t, &a), 0);
    assert_int_equal(addr_limit_count(t, &b), 1);
    addr_limit_release(t, &a); /* not counted: no effect */
    assert_int_equal(addr_limit_count(t, &b), 1);
    addr_limit_free(t);
    assert_int_equal(addr_limit_refused(NULL), 0);
    addr_limit_free(NULL);
}

/* The table against a model: N addresses, random acquire/release, every count compared after each step. */
static void test_against_model(void **state)
{
    enum { N = 500, PER = 4, STEPS = 200000 };
    static int model[N];
    addr_key_t keys[N];
    addr_limit_t *t;
    unsigned seed = 12345;
    (void)state;

    /* Sized for N connections: 1024 slots, so N addresses fill it to half (long, wrapping probe chains). */
    assert_int_equal(addr_limit_new(&t, PER, N), 0);
    for (int i = 0; i < N; ++i) {
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%d.%d.%d", i % 7, i / 7 % 256, i * 37 % 251);
        keys[i] = key4(ip);
        for (int j = 0; j < i; ++j)
            assert_false(same(keys[i], keys[j]));
    }
    for (int step = 0; step < STEPS; ++step) {
        int i = (int)(rand_r(&seed) % N);
        if (rand_r(&seed) % 2 == 0) {
            int want = model[i] < PER ? 0 : -1;
            assert_int_equal(addr_limit_acquire(t, &keys[i]), want);
            if (want == 0)
                ++model[i];
        } else if (model[i] > 0) {
            addr_limit_release(t, &keys[i]);
            --model[i];
        }
        if (step % 997 == 0) {
            for (int k = 0; k < N; ++k)
                if (addr_limit_count(t, &keys[k]) != model[k])
                    fail_msg("step %d: address %d has %d, model %d", step, k, addr_limit_count(t, &keys[k]), model[k]);
        }
    }
    for (int k = 0; k < N; ++k) {
        assert_int_equal(addr_limit_count(t, &keys[k]), model[k]);
        while (model[k]-- > 0)
            addr_limit_release(t, &keys[k]);
    }
    for (int k = 0; k < N; ++k)
        assert_int_equal(addr_limit_count(t, &keys[k]), 0);
    addr_limit_free(t);
}

/* A table sized for `max_conns` never holds more addresses than that (fail closed, never overfilled). */
static void test_full_table_refuses(void **state)
{
    addr_limit_t *t;
    int admitted = 0;
    (void)state;

    assert_int_equal(addr_limit_new(&t, 1, 10), 0); /* 64 slots: at most 32 addresses */
    for (int i = 0; i < 100; ++i) {
        char ip[32];
        addr_key_t k;
        snprintf(ip, sizeof(ip), "203.0.113.%d", i);
        k = key4(ip);
        admitted += addr_limit_acquire(t, &k) == 0;
    }
    assert_int_equal(admitted, 32);
    addr_limit_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_bound_per_address),
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_full_table_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
