/*
 * test_hashq.c: state entries hashed on another thread (hashq.h) sum to
 * what hashing each in place gives: with a server hashing beside the
 * producer, with none (the producer hashes the queue as it settles),
 * when the ring is full (entries refused, hashed in place), across
 * several settles, and after the queue is closed and opened again.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "hashq.h"
#include "internal.h"
#include "support/support.h"

typedef struct {
    uint64_t queued[4]; /* the settled sums */
    uint64_t in_place[4]; /* entries the queue refused */
    uint64_t expect[4];   /* every entry hashed in place */
    size_t refused;
} sums;

static void *
serve(void *arg)
{
    crdt__hashq_serve(arg);
    return NULL;
}

static void
add_to(uint64_t acc[4], const uint64_t h[4], int sign)
{
    for (int i = 0; i < 4; i++)
        acc[i] = sign > 0 ? acc[i] + h[i] : acc[i] - h[i];
}

/* @p n entries of keys and values of many lengths, some past
 * CRDT__HASHQ_ENTRY_MAX, both signs; a settle every @p settle_every. */
static void
produce(crdt__hashq *q, sums *s, size_t n, size_t settle_every,
        uint64_t seed)
{
    unsigned char k[300], v[700];

    for (size_t i = 0; i < n; i++) {
        size_t kl = 1 + (size_t)(test_rand(&seed) % 60);
        size_t vl = (size_t)(test_rand(&seed) %
                             (i % 97 == 0 ? sizeof v : 48));
        int sign = test_rand(&seed) % 3 == 0 ? -1 : 1;
        uint64_t h[4];

        for (size_t j = 0; j < kl; j++)
            k[j] = (unsigned char)test_rand(&seed);
        for (size_t j = 0; j < vl; j++)
            v[j] = (unsigned char)(i + j);
        crdt__hash_entry(h, k, kl, v, vl);
        add_to(s->expect, h, sign);
        if (!crdt__hashq_add(q, k, kl, v, vl, sign)) {
            add_to(s->in_place, h, sign);
            s->refused++;
        }
        if (settle_every && i % settle_every == settle_every - 1)
            crdt__hashq_settle(q, s->queued);
    }
    crdt__hashq_settle(q, s->queued);
}

static void
assert_sums(const sums *s)
{
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(s->queued[i] + s->in_place[i], s->expect[i]);
}

START_TEST(test_a_server_beside_the_producer)
{
    crdt__hashq *q = crdt__hashq_new();
    pthread_t th;
    sums s;

    ck_assert_ptr_nonnull(q);
    for (int round = 0; round < 2; round++) {
        memset(&s, 0, sizeof s);
        crdt__hashq_open(q);
        ck_assert_int_eq(pthread_create(&th, NULL, serve, q), 0);
        produce(q, &s, 60000, round ? 7001 : 0, 11 + (uint64_t)round);
        crdt__hashq_close(q);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        assert_sums(&s);
        /* the long entries (past the limit) went in place */
        ck_assert_uint_ge(s.refused, 1);
    }
    crdt__hashq_free(q);
}
END_TEST

START_TEST(test_no_server_the_producer_hashes_it_all)
{
    crdt__hashq *q = crdt__hashq_new();
    sums s;

    ck_assert_ptr_nonnull(q);
    memset(&s, 0, sizeof s);
    /* more than the ring holds: once it is full, entries are refused
     * until a settle empties it */
    produce(q, &s, 50000, 0, 3);
    assert_sums(&s);
    ck_assert_uint_gt(s.refused, 10000);
    memset(&s, 0, sizeof s);
    produce(q, &s, 20000, 900, 4);
    assert_sums(&s);
    crdt__hashq_free(q);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("hashq");
    TCase *tc = tcase_create("hashq");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_server_beside_the_producer);
    tcase_add_test(tc, test_no_server_the_producer_hashes_it_all);
    suite_add_tcase(s, tc);
    return s;
}
