/*
 * test_frame.c: the length-prefix reassembler (docs/testing.md B1, B2).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "net_internal.h"
#include "support/support.h"

static crdtnet_framer *fr;

static void
teardown(void)
{
    crdtnet_framer_free(fr);
    fr = NULL;
}

/* Append one frame (header + payload of @p len bytes of @p fill). */
static size_t
put_frame(unsigned char *buf, size_t len, unsigned char fill)
{
    ck_assert_int_eq(crdtnet_frame_header(buf, len), CRDT_OK);
    memset(buf + 4, fill, len);
    return len + 4;
}

/* Feed everything, collecting frames; returns the frame count. */
static int
feed_all(const unsigned char *bytes, size_t len, size_t *lens, int max_frames)
{
    const unsigned char *p;
    size_t used, n;
    int got = 0;
    int rc;

    while (len > 0) {
        ck_assert_int_eq(crdtnet_framer_feed(fr, bytes, len, &used), CRDT_OK);
        bytes += used;
        len -= used;
        while ((rc = crdtnet_framer_next(fr, &p, &n)) == CRDT_OK) {
            ck_assert_int_lt(got, max_frames);
            lens[got++] = n;
        }
        ck_assert_int_eq(rc, CRDT_EAGAIN);
    }
    return got;
}

START_TEST(test_frame_header_is_big_endian)
{
    unsigned char h[4];

    ck_assert_int_eq(crdtnet_frame_header(h, 0x010203), CRDT_OK);
    ck_assert_int_eq(h[0], 0);
    ck_assert_int_eq(h[1], 1);
    ck_assert_int_eq(h[2], 2);
    ck_assert_int_eq(h[3], 3);
    ck_assert_int_eq(crdtnet_frame_header(h, 0), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_frame_header(h, CRDTNET_FRAME_MAX_HARD + 1),
                     CRDT_EINVAL);
}
END_TEST

START_TEST(test_frame_new_checks_max)
{
    ck_assert_int_eq(crdtnet_framer_new(&fr, 63), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_framer_new(&fr, CRDTNET_FRAME_MAX_HARD + 1),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 64), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_set_max(fr, 10), CRDT_EINVAL);
    ck_assert_int_eq(crdtnet_framer_set_max(fr, 0), CRDT_OK);
}
END_TEST

/* Three frames, split at every byte boundary into two feeds. */
START_TEST(test_frame_split_at_every_boundary)
{
    unsigned char wire[4 + 1 + 4 + 100 + 4 + 7];
    size_t total = 0, cut, used, n, lens[3];
    const unsigned char *p;
    int got;

    total += put_frame(wire + total, 1, 0xa1);
    total += put_frame(wire + total, 100, 0xb2);
    total += put_frame(wire + total, 7, 0xc3);
    ck_assert_uint_eq(total, sizeof wire);
    for (cut = 0; cut <= total; cut++) {
        ck_assert_int_eq(crdtnet_framer_new(&fr, 0), CRDT_OK);
        got = feed_all(wire, cut, lens, 3);
        got += feed_all(wire + cut, total - cut, lens + got, 3 - got);
        ck_assert_int_eq(got, 3);
        ck_assert_uint_eq(lens[0], 1);
        ck_assert_uint_eq(lens[1], 100);
        ck_assert_uint_eq(lens[2], 7);
        ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_EAGAIN);
        ck_assert_int_eq(crdtnet_framer_feed(fr, wire, 0, &used), CRDT_OK);
        crdtnet_framer_free(fr);
        fr = NULL;
    }
}
END_TEST

START_TEST(test_frame_byte_by_byte_keeps_content)
{
    unsigned char wire[4 + 300];
    const unsigned char *p;
    size_t i, used, n;
    int rc;

    put_frame(wire, 300, 0);
    for (i = 0; i < 300; i++)
        wire[4 + i] = (unsigned char)(i * 7);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 0), CRDT_OK);
    for (i = 0; i < sizeof wire; i++) {
        ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_EAGAIN);
        ck_assert_int_eq(crdtnet_framer_feed(fr, wire + i, 1, &used), CRDT_OK);
        ck_assert_uint_eq(used, 1);
    }
    rc = crdtnet_framer_next(fr, &p, &n);
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_uint_eq(n, 300);
    ck_assert_mem_eq(p, wire + 4, 300);
}
END_TEST

/* A buffer holding several frames: feed stops at each frame's end, so
 * memory stays bounded by max + 4 (invariant (2) of frame.c). */
START_TEST(test_frame_several_frames_in_one_buffer)
{
    unsigned char wire[5 * (4 + 64)];
    const unsigned char *p;
    size_t total = 0, used, n, off = 0;
    int i, got = 0;

    for (i = 0; i < 5; i++)
        total += put_frame(wire + total, 64, (unsigned char)i);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 64), CRDT_OK);
    while (off < total) {
        ck_assert_int_eq(crdtnet_framer_feed(fr, wire + off, total - off,
                                             &used),
                         CRDT_OK);
        ck_assert_uint_le(used, 64 + 4);
        off += used;
        /* A second feed before next() takes nothing. */
        if (off < total) {
            ck_assert_int_eq(crdtnet_framer_feed(fr, wire + off, total - off,
                                                 &used),
                             CRDT_OK);
            ck_assert_uint_eq(used, 0);
        }
        ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_OK);
        ck_assert_uint_eq(n, 64);
        ck_assert_int_eq(p[0], got);
        ck_assert_int_eq(p[63], got);
        got++;
    }
    ck_assert_int_eq(got, 5);
}
END_TEST

START_TEST(test_frame_exactly_max_is_accepted)
{
    unsigned char wire[4 + 64];
    const unsigned char *p;
    size_t used, n;

    put_frame(wire, 64, 0x55);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 64), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire, sizeof wire, &used),
                     CRDT_OK);
    ck_assert_uint_eq(used, sizeof wire);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_OK);
    ck_assert_uint_eq(n, 64);
}
END_TEST

START_TEST(test_frame_max_plus_one_is_elimit_and_sticky)
{
    unsigned char wire[4 + 65];
    const unsigned char *p;
    size_t used, n;

    put_frame(wire, 65, 0x55);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 64), CRDT_OK);
    /* The header alone is enough to refuse. */
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire, 4, &used), CRDT_ELIMIT);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire + 4, 65, &used),
                     CRDT_ELIMIT);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_ELIMIT);
}
END_TEST

/* With a 16 MiB maximum, 0xFFFFFFFF must be refused from the header with
 * nothing allocated, and a legal 16 MiB claim with 10 bytes behind it
 * must cost about 256 bytes, not 16 MiB (B2, and B19's slowloris). */
START_TEST(test_frame_huge_length_refused_before_allocation)
{
    static const unsigned char bomb[4] = {0xff, 0xff, 0xff, 0xff};
    unsigned char claim[4 + 10];
    const unsigned char *p;
    size_t used, n;

    ck_assert_int_eq(crdtnet_framer_new(&fr, CRDTNET_FRAME_MAX_HARD),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_feed(fr, bomb, 4, &used), CRDT_ELIMIT);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_ELIMIT);
    ck_assert_uint_eq(crdtnet__framer_capacity(fr), 0);
    crdtnet_framer_free(fr);

    /* A legal 16 MiB header followed by a trickle: stays incomplete. */
    ck_assert_int_eq(crdtnet_framer_new(&fr, CRDTNET_FRAME_MAX_HARD),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_frame_header(claim, CRDTNET_FRAME_MAX_HARD),
                     CRDT_OK);
    memset(claim + 4, 1, 10);
    ck_assert_int_eq(crdtnet_framer_feed(fr, claim, sizeof claim, &used),
                     CRDT_OK);
    ck_assert_uint_eq(used, sizeof claim);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_EAGAIN);
    ck_assert_uint_le(crdtnet__framer_capacity(fr), 256);
}
END_TEST

/* Trimming an idle framer frees its payload buffer; one with a frame
 * partly received keeps the bytes, and the frame completes intact. */
START_TEST(test_frame_trim_frees_only_between_frames)
{
    unsigned char f[4 + 1000];
    const unsigned char *p;
    size_t used, n;

    ck_assert_int_eq(crdtnet_framer_new(&fr, 0), CRDT_OK);
    ck_assert_int_eq(crdtnet_frame_header(f, 1000), CRDT_OK);
    for (size_t i = 0; i < 1000; i++)
        f[4 + i] = (unsigned char)i;
    ck_assert_int_eq(crdtnet_framer_feed(fr, f, sizeof f, &used), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_OK);
    ck_assert_uint_ge(crdtnet__framer_capacity(fr), 1000);
    crdtnet__framer_trim(fr);
    ck_assert_uint_eq(crdtnet__framer_capacity(fr), 0);

    ck_assert_int_eq(crdtnet_framer_feed(fr, f, 500, &used), CRDT_OK);
    crdtnet__framer_trim(fr); /* mid-frame: nothing goes */
    ck_assert_uint_ge(crdtnet__framer_capacity(fr), 496);
    ck_assert_int_eq(crdtnet_framer_feed(fr, f + 500, sizeof f - 500, &used),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_OK);
    ck_assert_uint_eq(n, 1000);
    ck_assert_mem_eq(p, f + 4, 1000);
}
END_TEST

START_TEST(test_frame_zero_length_is_eproto)
{
    static const unsigned char zero[6] = {0, 0, 0, 0, 1, 2};
    const unsigned char *p;
    size_t used, n;

    ck_assert_int_eq(crdtnet_framer_new(&fr, 0), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_feed(fr, zero, sizeof zero, &used),
                     CRDT_EPROTO);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_EPROTO);
    ck_assert_int_eq(crdtnet_framer_feed(fr, zero + 4, 2, &used),
                     CRDT_EPROTO);
}
END_TEST

/* Truncated frame (B1): nothing is delivered until the last byte. */
START_TEST(test_frame_truncated_body_waits)
{
    unsigned char wire[4 + 20];
    const unsigned char *p;
    size_t used, n;

    put_frame(wire, 20, 9);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 0), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire, 2, &used), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire + 2, 21, &used), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire + 23, 1, &used), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_OK);
    ck_assert_uint_eq(n, 20);
}
END_TEST

/* set_max applies to the next header: the handshake-then-session switch. */
START_TEST(test_frame_set_max_applies_to_next_header)
{
    unsigned char wire[4 + 200];
    const unsigned char *p;
    size_t used, n;

    put_frame(wire, 200, 3);
    ck_assert_int_eq(crdtnet_framer_new(&fr, 100), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_set_max(fr, 4096), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire, sizeof wire, &used),
                     CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_next(fr, &p, &n), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_set_max(fr, 100), CRDT_OK);
    ck_assert_int_eq(crdtnet_framer_feed(fr, wire, sizeof wire, &used),
                     CRDT_ELIMIT);
}
END_TEST

/* Random chunking of many random-sized frames, seeded and replayable. */
START_TEST(test_frame_random_chunking)
{
    uint64_t st = test_seed("frame random chunking");
    size_t cap = 200 * (4 + 1000), total = 0, off = 0, used, n, chunk;
    unsigned char *wire = malloc(cap);
    size_t lens[200];
    const unsigned char *p;
    int i, got = 0, rc;

    ck_assert_ptr_nonnull(wire);
    for (i = 0; i < 200; i++) {
        lens[i] = 1 + test_rand(&st) % 1000;
        total += put_frame(wire + total, lens[i], (unsigned char)i);
    }
    ck_assert_int_eq(crdtnet_framer_new(&fr, 1000), CRDT_OK);
    while (off < total) {
        chunk = 1 + test_rand(&st) % 3000;
        if (chunk > total - off)
            chunk = total - off;
        ck_assert_int_eq(crdtnet_framer_feed(fr, wire + off, chunk, &used),
                         CRDT_OK);
        off += used;
        while ((rc = crdtnet_framer_next(fr, &p, &n)) == CRDT_OK) {
            ck_assert_uint_eq(n, lens[got]);
            ck_assert_int_eq(p[n - 1], (unsigned char)got);
            got++;
        }
        ck_assert_int_eq(rc, CRDT_EAGAIN);
    }
    ck_assert_int_eq(got, 200);
    free(wire);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("framer");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_frame_header_is_big_endian);
    tcase_add_test(tc, test_frame_new_checks_max);
    tcase_add_test(tc, test_frame_split_at_every_boundary);
    tcase_add_test(tc, test_frame_byte_by_byte_keeps_content);
    tcase_add_test(tc, test_frame_several_frames_in_one_buffer);
    tcase_add_test(tc, test_frame_exactly_max_is_accepted);
    tcase_add_test(tc, test_frame_max_plus_one_is_elimit_and_sticky);
    tcase_add_test(tc, test_frame_huge_length_refused_before_allocation);
    tcase_add_test(tc, test_frame_zero_length_is_eproto);
    tcase_add_test(tc, test_frame_truncated_body_waits);
    tcase_add_test(tc, test_frame_set_max_applies_to_next_header);
    tcase_add_test(tc, test_frame_random_chunking);
    tcase_add_test(tc, test_frame_trim_frees_only_between_frames);
    suite_add_tcase(s, tc);
    return s;
}
