/*
 * test_siphash.c: the state hash's two-key SipHash (siphash2.c) gives
 * what libsodium's crypto_shorthash_siphashx24 gives under each key, on
 * every input length up to past the inline entry limit, and the entry
 * hash built on it is the one docs/storage.md defines (4.3).
 */
#include <check.h>
#include <sodium.h>
#include <stdint.h>
#include <string.h>

#include "internal.h"
#include "support/support.h"

static uint64_t
le64(const unsigned char *p)
{
    uint64_t x = 0;

    for (int i = 7; i >= 0; i--)
        x = (x << 8) | p[i];
    return x;
}

START_TEST(test_two_keys_match_libsodium_on_every_length)
{
    unsigned char in[1100], ka[16], kb[16], h[16];
    uint64_t out[4];

    ck_assert_int_ge(sodium_init(), 0);
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 131u + 7u);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 16; i++) {
            ka[i] = (unsigned char)(round * 37 + i);
            kb[i] = (unsigned char)(0xff - round * 11 - i * 3);
        }
        for (size_t len = 0; len <= sizeof in; len++) {
            crdt__siphash128x2(out, in, len, ka, kb);
            crypto_shorthash_siphashx24(h, in, len, ka);
            ck_assert_uint_eq(out[0], le64(h));
            ck_assert_uint_eq(out[1], le64(h + 8));
            crypto_shorthash_siphashx24(h, in, len, kb);
            ck_assert_uint_eq(out[2], le64(h));
            ck_assert_uint_eq(out[3], le64(h + 8));
        }
    }
}
END_TEST

/* docs/storage.md 4.3: an entry's lanes are the little-endian words of
 * SipHash-2-4-128 of klen(2, BE) | key | value under "strata-state-l01"
 * then "strata-state-l23" */
START_TEST(test_entry_hash_is_the_documented_one)
{
    static const unsigned char key[] = "c\0d00001\0v\0R";
    unsigned char val[25], buf[64], h[32];
    uint64_t lanes[4];
    size_t kl = sizeof key - 1, n = 0;

    ck_assert_int_ge(sodium_init(), 0);
    for (size_t i = 0; i < sizeof val; i++)
        val[i] = (unsigned char)(i * 7u);
    buf[n++] = (unsigned char)(kl >> 8);
    buf[n++] = (unsigned char)kl;
    memcpy(buf + n, key, kl);
    n += kl;
    memcpy(buf + n, val, sizeof val);
    n += sizeof val;
    crypto_shorthash_siphashx24(h, buf, n,
                                (const unsigned char *)"strata-state-l01");
    crypto_shorthash_siphashx24(h + 16, buf, n,
                                (const unsigned char *)"strata-state-l23");
    crdt__hash_entry(lanes, key, kl, val, sizeof val);
    for (int i = 0; i < 4; i++)
        ck_assert_uint_eq(lanes[i], le64(h + 8 * i));
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("siphash");
    TCase *tc = tcase_create("siphash");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_two_keys_match_libsodium_on_every_length);
    tcase_add_test(tc, test_entry_hash_is_the_documented_one);
    suite_add_tcase(s, tc);
    return s;
}
