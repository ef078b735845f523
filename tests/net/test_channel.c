/*
 * test_channel.c: the encrypted channel (docs/testing.md B9, S2, S3b, S7). Two
 * channels are wired back to back from fixed stream states, so these
 * tests need no handshake; test_handshake.c covers the two together.
 */
#include <check.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/channel.h"
#include "net_internal.h"
#include "support/support.h"

#define FRAME_MAX 4096

static crdtnet_channel *a, *b; /* a's push pairs with b's pull, and back */

static void
setup(void)
{
    unsigned char k1[32], k2[32], h1[24], h2[24];
    crdtnet__stream a_push, a_pull, b_push, b_pull;

    ck_assert_int_ge(sodium_init(), 0);
    crypto_secretstream_xchacha20poly1305_keygen(k1);
    crypto_secretstream_xchacha20poly1305_keygen(k2);
    crypto_secretstream_xchacha20poly1305_init_push(&a_push, h1, k1);
    crypto_secretstream_xchacha20poly1305_init_pull(&b_pull, h1, k1);
    crypto_secretstream_xchacha20poly1305_init_push(&b_push, h2, k2);
    crypto_secretstream_xchacha20poly1305_init_pull(&a_pull, h2, k2);
    ck_assert_int_eq(crdtnet__channel_new(&a, &a_push, &a_pull, FRAME_MAX),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet__channel_new(&b, &b_push, &b_pull, FRAME_MAX),
                     CRDT_OK);
}

static void
teardown(void)
{
    crdtnet_channel_free(a);
    crdtnet_channel_free(b);
    a = b = NULL;
}

/* Seal on @p from, open on @p to, check the plaintext survived. */
static void
roundtrip(crdtnet_channel *from, crdtnet_channel *to, const void *msg,
          size_t len)
{
    const unsigned char *p, *q;
    size_t n, m;

    ck_assert_int_eq(crdtnet_channel_seal(from, msg, len, &p, &n), CRDT_OK);
    ck_assert_uint_eq(n, len + CRDTNET_CHANNEL_ABYTES);
    ck_assert_int_eq(crdtnet_channel_open(to, p, n, &q, &m), CRDT_OK);
    ck_assert_ptr_nonnull(q);
    ck_assert_uint_eq(m, len);
    if (len > 0)
        ck_assert_mem_eq(q, msg, len);
}

/* Seal and keep a copy of the payload. */
static size_t
seal_copy(crdtnet_channel *ch, const char *msg, unsigned char *out)
{
    const unsigned char *p;
    size_t n;

    ck_assert_int_eq(crdtnet_channel_seal(ch, msg, strlen(msg), &p, &n),
                     CRDT_OK);
    memcpy(out, p, n);
    return n;
}

START_TEST(test_channel_round_trip_both_ways)
{
    static unsigned char big[FRAME_MAX];
    const unsigned char *p;
    size_t n;

    memset(big, 0x5a, sizeof big);
    roundtrip(a, b, "hello", 5);
    roundtrip(b, a, "world", 5);
    roundtrip(a, b, NULL, 0);
    ck_assert_uint_eq(crdtnet_channel_max_plain(a),
                      FRAME_MAX - CRDTNET_CHANNEL_ABYTES);
    roundtrip(a, b, big, crdtnet_channel_max_plain(a));
    ck_assert_int_eq(crdtnet_channel_seal(a, big,
                                          crdtnet_channel_max_plain(a) + 1,
                                          &p, &n),
                     CRDT_ELIMIT);
    roundtrip(a, b, "still fine", 10);
}
END_TEST

START_TEST(test_channel_tampered_byte_is_eauth_and_dead)
{
    unsigned char f1[64], f2[64];
    const unsigned char *p, *q;
    size_t n1, n2, n, m, i;

    for (i = 0; i < 22; i++) { /* every byte of a 5-byte message */
        teardown();
        setup();
        n1 = seal_copy(a, "hello", f1);
        n2 = seal_copy(a, "again", f2);
        f1[i] ^= 0x01;
        ck_assert_int_eq(crdtnet_channel_open(b, f1, n1, &q, &m), CRDT_EAUTH);
        /* Dead: the genuine next frame fails too, and b cannot send. */
        ck_assert_int_eq(crdtnet_channel_open(b, f2, n2, &q, &m), CRDT_EAUTH);
        ck_assert_int_eq(crdtnet_channel_seal(b, "x", 1, &p, &n), CRDT_EAUTH);
        /* But it may still say goodbye. */
        ck_assert_int_eq(crdtnet_channel_seal_final(b, "bye", 3, &p, &n),
                         CRDT_OK);
        ck_assert_int_eq(crdtnet_channel_open(a, p, n, &q, &m), CRDT_OK);
        ck_assert(crdtnet_channel_peer_closed(a));
    }
}
END_TEST

START_TEST(test_channel_replayed_frame_is_eauth)
{
    unsigned char f1[64];
    const unsigned char *q;
    size_t n1, m;

    n1 = seal_copy(a, "pay 10", f1);
    ck_assert_int_eq(crdtnet_channel_open(b, f1, n1, &q, &m), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(b, f1, n1, &q, &m), CRDT_EAUTH);
}
END_TEST

START_TEST(test_channel_swapped_order_is_eauth)
{
    unsigned char f1[64], f2[64];
    const unsigned char *q;
    size_t n1, n2, m;

    n1 = seal_copy(a, "first", f1);
    n2 = seal_copy(a, "second", f2);
    ck_assert_int_eq(crdtnet_channel_open(b, f2, n2, &q, &m), CRDT_EAUTH);
    ck_assert_int_eq(crdtnet_channel_open(b, f1, n1, &q, &m), CRDT_EAUTH);
}
END_TEST

START_TEST(test_channel_dropped_frame_is_eauth)
{
    unsigned char f[3][64];
    const unsigned char *q;
    size_t n[3], m;

    n[0] = seal_copy(a, "one", f[0]);
    n[1] = seal_copy(a, "two", f[1]);
    n[2] = seal_copy(a, "three", f[2]);
    ck_assert_int_eq(crdtnet_channel_open(b, f[0], n[0], &q, &m), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(b, f[2], n[2], &q, &m), CRDT_EAUTH);
}
END_TEST

START_TEST(test_channel_truncated_frame_is_eauth)
{
    unsigned char f1[64];
    const unsigned char *q;
    size_t n1, m;

    n1 = seal_copy(a, "hello", f1);
    ck_assert_int_eq(crdtnet_channel_open(b, f1, n1 - 1, &q, &m), CRDT_EAUTH);
    teardown();
    setup();
    n1 = seal_copy(a, "hello", f1);
    ck_assert_int_eq(crdtnet_channel_open(b, f1, 16, &q, &m), CRDT_EAUTH);
    teardown();
    setup();
    ck_assert_int_eq(crdtnet_channel_open(b, f1, 0, &q, &m), CRDT_EAUTH);
}
END_TEST

/* A frame sealed for a's direction does not open in b's direction. */
START_TEST(test_channel_reflected_frame_is_eauth)
{
    unsigned char f1[64];
    const unsigned char *q;
    size_t n1, m;

    n1 = seal_copy(a, "hello", f1);
    ck_assert_int_eq(crdtnet_channel_open(a, f1, n1, &q, &m), CRDT_EAUTH);
}
END_TEST

START_TEST(test_channel_after_final_is_eclosed)
{
    unsigned char f2[64];
    const unsigned char *p, *q;
    size_t n, m, n2;

    ck_assert_int_eq(crdtnet_channel_seal_final(a, "done", 4, &p, &n),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_seal(a, "more", 4, &p, &n),
                     CRDT_ECLOSED);
    ck_assert_int_eq(crdtnet_channel_seal_final(a, NULL, 0, &p, &n),
                     CRDT_ECLOSED);
    teardown();
    setup();
    ck_assert_int_eq(crdtnet_channel_seal_final(a, "done", 4, &p, &n),
                     CRDT_OK);
    memcpy(f2, p, n);
    n2 = n;
    ck_assert(!crdtnet_channel_peer_closed(b));
    ck_assert_int_eq(crdtnet_channel_open(b, p, n, &q, &m), CRDT_OK);
    ck_assert_uint_eq(m, 4);
    ck_assert_mem_eq(q, "done", 4);
    ck_assert(crdtnet_channel_peer_closed(b));
    /* Whatever comes after the final message is refused. */
    ck_assert_int_eq(crdtnet_channel_open(b, f2, n2, &q, &m), CRDT_ECLOSED);
    /* Half-close: b can still talk to a. */
    roundtrip(b, a, "reply", 5);
}
END_TEST

/* Many messages both ways, random sizes, rekeying every 3 messages. */
START_TEST(test_channel_many_messages_across_rekeys)
{
    uint64_t st = test_seed("channel many messages");
    unsigned char msg[1000];
    size_t len, i;
    int k;

    crdtnet__channel_set_rekey_interval(a, 3);
    crdtnet__channel_set_rekey_interval(b, 3);
    for (k = 0; k < 2000; k++) {
        len = test_rand(&st) % sizeof msg;
        for (i = 0; i < len; i++)
            msg[i] = (unsigned char)test_rand(&st);
        if (test_rand(&st) & 1)
            roundtrip(a, b, msg, len);
        else
            roundtrip(b, a, msg, len);
    }
}
END_TEST

/* Rekeying really happens: a receiver that does not rekey falls out of
 * step at exactly the message after the interval. */
START_TEST(test_channel_rekey_changes_keys)
{
    const unsigned char *p, *q;
    size_t n, m;
    int k;

    crdtnet__channel_set_rekey_interval(a, 4);
    crdtnet__channel_set_rekey_interval(b, 1000);
    for (k = 0; k < 4; k++)
        roundtrip(a, b, "m", 1);
    ck_assert_int_eq(crdtnet_channel_seal(a, "m", 1, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(b, p, n, &q, &m), CRDT_EAUTH);
}
END_TEST

/* The documented interval, 2^20, on both sides (counters fast-forwarded
 * so the test does not send a million messages). */
START_TEST(test_channel_default_rekey_interval)
{
    const uint64_t r = CRDTNET_CHANNEL_REKEY_INTERVAL;
    const unsigned char *p, *q;
    size_t n, m;
    int k;

    ck_assert_uint_eq(r, 1u << 20);
    crdtnet__channel_set_counters(a, r - 2, 0);
    crdtnet__channel_set_counters(b, 0, r - 2);
    for (k = 0; k < 5; k++)
        roundtrip(a, b, "across", 6);
    /* Control: a receiver whose count disagrees fails at the boundary. */
    teardown();
    setup();
    crdtnet__channel_set_counters(a, r - 2, 0);
    roundtrip(a, b, "one", 3);
    roundtrip(a, b, "two", 3); /* a rekeys after this one, b does not */
    ck_assert_int_eq(crdtnet_channel_seal(a, "three", 5, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_open(b, p, n, &q, &m), CRDT_EAUTH);
}
END_TEST

/* S7: the message count never wraps. */
START_TEST(test_channel_counter_exhaustion_refuses)
{
    const unsigned char *p;
    size_t n;

    crdtnet__channel_set_counters(a, UINT64_MAX - 1, 0);
    ck_assert_int_eq(crdtnet_channel_seal(a, "x", 1, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_channel_seal(a, "x", 1, &p, &n), CRDT_ELIMIT);
}
END_TEST

/* S2: a 32-byte canary sealed 100 times never shows up on the wire, raw
 * or as any 8-byte slice; identical plaintexts give distinct frames. */
START_TEST(test_channel_secret_marker_not_in_sealed_bytes)
{
    unsigned char canary[32], msg[200], prev[256];
    const unsigned char *p;
    size_t n, i, off;
    int k;

    randombytes_buf(canary, sizeof canary);
    memset(msg, 'A', sizeof msg);
    memcpy(msg + 50, canary, sizeof canary);
    memset(prev, 0, sizeof prev);
    /* Count hits and assert once per frame: Check reports every assert
     * to its parent over a pipe, and half a million of them made this
     * test slower than its timeout on a busy machine. */
    for (k = 0; k < 100; k++) {
        size_t leaks = 0;

        ck_assert_int_eq(crdtnet_channel_seal(a, msg, sizeof msg, &p, &n),
                         CRDT_OK);
        for (off = 0; off + 8 <= sizeof canary; off++)
            for (i = 0; i + 8 <= n; i++)
                leaks += memcmp(p + i, canary + off, 8) == 0;
        for (i = 0; i + 16 <= n; i++)
            leaks += memcmp(p + i, "AAAAAAAAAAAAAAAA", 16) == 0;
        ck_assert_uint_eq(leaks, 0);
        ck_assert(memcmp(p, prev, n) != 0);
        memcpy(prev, p, n);
    }
}
END_TEST

START_TEST(test_channel_null_and_bad_arguments)
{
    const unsigned char *p;
    size_t n;

    crdtnet_channel_free(NULL);
    ck_assert_int_eq(crdtnet_channel_seal(NULL, "x", 1, &p, &n), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_channel_seal(a, NULL, 1, &p, &n), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_channel_open(a, NULL, 1, &p, &n), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_channel_peer_closed(NULL), 0);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("channel");
    TCase *tc = tcase_create("channel");
    TCase *rk = tcase_create("rekey");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_channel_round_trip_both_ways);
    tcase_add_test(tc, test_channel_tampered_byte_is_eauth_and_dead);
    tcase_add_test(tc, test_channel_replayed_frame_is_eauth);
    tcase_add_test(tc, test_channel_swapped_order_is_eauth);
    tcase_add_test(tc, test_channel_dropped_frame_is_eauth);
    tcase_add_test(tc, test_channel_truncated_frame_is_eauth);
    tcase_add_test(tc, test_channel_reflected_frame_is_eauth);
    tcase_add_test(tc, test_channel_after_final_is_eclosed);
    tcase_add_test(tc, test_channel_secret_marker_not_in_sealed_bytes);
    tcase_add_test(tc, test_channel_null_and_bad_arguments);
    suite_add_tcase(s, tc);

    tcase_add_checked_fixture(rk, setup, teardown);
    tcase_add_test(rk, test_channel_many_messages_across_rekeys);
    tcase_add_test(rk, test_channel_rekey_changes_keys);
    tcase_add_test(rk, test_channel_default_rekey_interval);
    tcase_add_test(rk, test_channel_counter_exhaustion_refuses);
    suite_add_tcase(s, rk);
    return s;
}
