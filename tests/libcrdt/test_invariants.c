/*
 * test_invariants.c: in builds with assertions (Debug, STRATA_ASSERTS,
 * the sanitizer builds) a broken "keeps (N)" invariant stops the process
 * where it breaks instead of reading on. Built only there.
 */
#include <check.h>
#include <signal.h>
#include <stdint.h>

#include "internal.h"
#include "support/support.h"

#ifdef NDEBUG
#error "test_invariants is built only with assertions on"
#endif

/* mp.c keeps (1): a reader's position never passes its end. One that
 * does would make every bound check pass (the length wraps); the
 * assertion stops it before the first read. */
START_TEST(test_mp_reader_past_its_end_aborts)
{
    static const unsigned char buf[16] = { 0x05 };
    crdt__mp m;
    uint64_t v;

    m.p = buf + 8;
    m.end = buf + 4;
    (void)crdt__mp_uint(&m, &v);
}
END_TEST

/* The same reader at its end answers an error and stays put. */
START_TEST(test_mp_reader_at_its_end_refuses)
{
    static const unsigned char buf[4] = { 0x05 };
    crdt__mp m;
    uint64_t v;

    m.p = buf + 4;
    m.end = buf + 4;
    ck_assert_int_eq(crdt__mp_uint(&m, &v), CRDT_EPROTO);
    ck_assert_ptr_eq(m.p, buf + 4);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("invariants");
    TCase *tc = tcase_create("invariants");

    tcase_add_test_raise_signal(tc, test_mp_reader_past_its_end_aborts,
                                SIGABRT);
    tcase_add_test(tc, test_mp_reader_at_its_end_refuses);
    suite_add_tcase(s, tc);
    return s;
}
