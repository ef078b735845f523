/*
 * test_value_order.c: crdt_value_cmp() is a total order (IEEE totalOrder
 * for doubles), and sets holding NaN, -0.0 and +0.0 read back sorted by
 * it, the same on every replica, with equal state hashes.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/replica_util.h"
#include "support/support.h"

static double
bits(uint64_t u)
{
    double d;

    memcpy(&d, &u, sizeof d);
    return d;
}

static int
same_bits(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

START_TEST(test_doubles_in_ieee_total_order)
{
    /* ascending */
    const double d[] = {
        bits(0xfff8000000000000u), /* -NaN */
        -INFINITY,
        -1.0,
        bits(0x8000000000000001u), /* the smallest negative subnormal */
        -0.0,
        0.0,
        bits(0x0000000000000001u),
        1.0,
        INFINITY,
        bits(0x7ff8000000000000u), /* NaN */
        bits(0x7ff8000000000001u), /* NaN with another payload */
    };
    const size_t n = sizeof d / sizeof d[0];

    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            crdt_value a = crdt_value_double(d[i]);
            crdt_value b = crdt_value_double(d[j]);
            int want = (i > j) - (i < j);

            ck_assert_msg(crdt_value_cmp(&a, &b) == want,
                          "cmp(d[%zu], d[%zu]) = %d, want %d", i, j,
                          crdt_value_cmp(&a, &b), want);
        }
}
END_TEST

static void
sadd_all(crdt_replica *r, const double *d, size_t n, int reverse)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (size_t k = 0; k < n; k++) {
        crdt_value v = crdt_value_double(d[reverse ? n - 1 - k : k]);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", &v), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

static void
srem_one(crdt_replica *r, double d)
{
    crdt_value v = crdt_value_double(d);
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", "s", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* The set reads back as exactly @p want, in that order, bit for bit. */
static void
expect_set(crdt_replica *r, const double *want, size_t n)
{
    crdt_read *rd;
    crdt_field f;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_field(&f, rd, "c", "d", "s"), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_SET);
    ck_assert_uint_eq(f.n_elems, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(f.elems[i].type, CRDT_VDOUBLE);
        ck_assert_msg(same_bits(f.elems[i].u.d, want[i]),
                      "element %zu is %g, want %g", i, f.elems[i].u.d,
                      want[i]);
    }
    crdt_read_end(rd);
}

START_TEST(test_double_digits_are_the_fewest_that_read_back)
{
    static const double cases[] = { 0.1, 100.0, 1.0 / 3, 0.1 + 0.2,
                                    1e300, -2.5e-8, 5e-324, 1.7976931348623157e308 };
    static const int want[] = { 1, 1, 16, 17, 1, 2, 1, 17 };
    char buf[400];

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int p = crdt_double_digits(cases[i]);
        ck_assert_int_eq(p, want[i]);
        snprintf(buf, sizeof buf, "%.*g", p, cases[i]);
        ck_assert(strtod(buf, NULL) == cases[i]);
        if (p > 1) { /* one digit fewer does not read back */
            snprintf(buf, sizeof buf, "%.*g", p - 1, cases[i]);
            ck_assert(strtod(buf, NULL) != cases[i]);
        }
    }
    ck_assert_int_eq(crdt_double_digits(INFINITY), 17);
}
END_TEST

START_TEST(test_set_of_nan_and_zeros_converges_in_one_order)
{
    char da[256], db[256], ha[65], hb[65];
    unsigned char space[CRDT_SPACE_ID_BYTES];
    const double in[] = { NAN, 0.0, -0.0, 1.0, -INFINITY, -0.0, NAN };
    const double sorted[] = { -INFINITY, -0.0, 0.0, 1.0, NAN };
    const double after[] = { -INFINITY, 0.0, 1.0, NAN };
    const double last[] = { -INFINITY, 0.0, 1.0 };
    crdt_replica *a, *b;

    a = tu_create(da, sizeof da, NULL);
    crdt_replica_space_id(a, space);
    b = tu_create(db, sizeof db, space);
    /* the same elements, added in opposite orders on two replicas */
    sadd_all(a, in, sizeof in / sizeof in[0], 0);
    sadd_all(b, in, sizeof in / sizeof in[0], 1);
    expect_set(a, sorted, 5);
    expect_set(b, sorted, 5);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    expect_set(a, sorted, 5);
    expect_set(b, sorted, 5);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);

    /* -0.0 and +0.0 are two elements: removing one keeps the other */
    srem_one(a, -0.0);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    expect_set(a, after, 4);
    expect_set(b, after, 4);
    /* and a NaN is an element like any other */
    srem_one(b, NAN);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    expect_set(a, last, 3);
    expect_set(b, last, 3);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);

    crdt_replica_close(a);
    crdt_replica_close(b);
    test_rmtree(da);
    test_rmtree(db);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("value_order");
    TCase *tc = tcase_create("value_order");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_doubles_in_ieee_total_order);
    tcase_add_test(tc, test_set_of_nan_and_zeros_converges_in_one_order);
    tcase_add_test(tc, test_double_digits_are_the_fewest_that_read_back);
    suite_add_tcase(s, tc);
    return s;
}
