/*
 * test_summary.c: sync protocol 4, the heads summary (net/src/summary.c)
 * and the sessions that use it: two summaries of different heads run
 * against each other learn exactly each other's heads; a session pair
 * that differs by one change each way moves a few hundred bytes of
 * summary instead of the whole version vector; equal heads end at
 * HELLO; a version 3 peer is answered in version 3; a summary that
 * lies, is out of order or too large is refused.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "internal.h"
#include "net_internal.h"
#include "summary.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* ---- the summary alone, on made-up heads ---- */

typedef struct {
    unsigned char actor[8];
    uint64_t seq;
    unsigned char hash[32];
} head;

static uint64_t rng = 0x243f6a8885a308d3ULL;

static uint64_t
next_rand(void)
{
    uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
cmp_head(const void *x, const void *y)
{
    return memcmp(((const head *)x)->actor, ((const head *)y)->actor, 8);
}

/* @p n random heads, sorted, no actor twice. */
static head *
random_heads(size_t n)
{
    head *h = calloc(n ? n : 1, sizeof *h);
    size_t k = 0;

    ck_assert_ptr_nonnull(h);
    for (size_t i = 0; i < n; i++) {
        uint64_t a = next_rand();
        memcpy(h[i].actor, &a, 8);
        h[i].seq = 1 + next_rand() % 1000;
        for (int j = 0; j < 32; j++)
            h[i].hash[j] = (unsigned char)next_rand();
    }
    qsort(h, n, sizeof *h, cmp_head);
    for (size_t i = 0; i < n; i++) /* drop the (unlikely) repeats */
        if (k == 0 || memcmp(h[k - 1].actor, h[i].actor, 8) != 0)
            h[k++] = h[i];
    ck_assert_uint_eq(k, n);
    return h;
}

/* The heads blob of crdt_heads_export() for @p h. */
static unsigned char *
blob_of(const head *h, size_t n, size_t *len)
{
    crdt__enc e;
    unsigned char *out;

    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 3 * n);
    for (size_t i = 0; i < n; i++) {
        crdt__enc_bin(&e, h[i].actor, 8);
        msgpack_pack_uint64(&e.pk, h[i].seq);
        crdt__enc_bin(&e, h[i].hash, 32);
    }
    ck_assert_int_eq(crdt__enc_ok(&e), CRDT_OK);
    out = malloc(e.sb.size);
    memcpy(out, e.sb.data, e.sb.size);
    *len = e.sb.size;
    crdt__enc_free(&e);
    return out;
}

static crdtnet__sum *
sum_of(const head *h, size_t n)
{
    size_t len;
    unsigned char *b = blob_of(h, n, &len);
    crdtnet__sum *s;

    ck_assert_int_eq(crdtnet__sum_new(&s, b, len), CRDT_OK);
    free(b);
    return s;
}

/* Run x against y to the end; the bytes both sent (digests and
 * entries), and the rounds. */
static size_t
run_sums(crdtnet__sum *x, crdtnet__sum *y, unsigned *rounds)
{
    unsigned char rx[32], ry[32];
    uint64_t nx, ny;
    size_t bytes = 0;

    const unsigned char *ex, *ey;
    size_t lx, ly;

    crdtnet__sum_root(x, rx, &nx);
    crdtnet__sum_root(y, ry, &ny);
    crdtnet__sum_hello_entries(x, &ex, &lx);
    crdtnet__sum_hello_entries(y, &ey, &ly);
    ck_assert_int_eq(crdtnet__sum_start(x, ry, ny, ey, ly), CRDT_OK);
    ck_assert_int_eq(crdtnet__sum_start(y, rx, nx, ex, lx), CRDT_OK);
    for (int i = 0; i < 40 && (crdtnet__sum_round_due(x) ||
                               crdtnet__sum_round_due(y)); i++) {
        const unsigned char *s1, *h1, *s2, *h2;
        size_t sl1, hl1, sl2, hl2;
        unsigned char *c1, *c2;

        ck_assert(crdtnet__sum_round_due(x) && crdtnet__sum_round_due(y));
        crdtnet__sum_round_take(x, &s1, &sl1, &h1, &hl1);
        /* copies: the views die with the next round */
        c1 = malloc(sl1 + hl1 + 1);
        memcpy(c1, s1, sl1);
        memcpy(c1 + sl1, h1, hl1);
        crdtnet__sum_round_take(y, &s2, &sl2, &h2, &hl2);
        c2 = malloc(sl2 + hl2 + 1);
        memcpy(c2, s2, sl2);
        memcpy(c2 + sl2, h2, hl2);
        bytes += sl1 + hl1 + sl2 + hl2;
        ck_assert_int_eq(crdtnet__sum_round_feed(y, c1, sl1, c1 + sl1, hl1),
                         CRDT_OK);
        ck_assert_int_eq(crdtnet__sum_round_feed(x, c2, sl2, c2 + sl2, hl2),
                         CRDT_OK);
        free(c1);
        free(c2);
    }
    ck_assert(crdtnet__sum_done(x));
    ck_assert(crdtnet__sum_done(y));
    ck_assert_uint_eq(crdtnet__sum_rounds(x), crdtnet__sum_rounds(y));
    *rounds = crdtnet__sum_rounds(x);
    return bytes;
}

/* The vv @p s rebuilt for its peer is exactly @p h. */
static void
assert_peer_is(const crdtnet__sum *s, const head *h, size_t n)
{
    crdt_vv *vv;

    ck_assert_int_eq(crdtnet__sum_peer_vv(s, &vv), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_count(vv), n);
    for (size_t i = 0; i < n; i++) {
        crdt_actor a;
        uint64_t seq;
        crdt_vv_entry(vv, i, &a, &seq);
        ck_assert_mem_eq(a.b, h[i].actor, 8);
        ck_assert_uint_eq(seq, h[i].seq);
        /* the lookups FIN uses agree with the rebuilt vv, and the
         * head it judges by carries the peer's chain hash */
        ck_assert_uint_eq(crdtnet__sum_peer_seq(s, &a), h[i].seq);
        {
            uint64_t ps;
            unsigned char ph[32];
            ck_assert_int_eq(crdtnet__sum_peer_head(s, &a, &ps, ph), CRDT_OK);
            ck_assert_uint_eq(ps, h[i].seq);
            ck_assert_mem_eq(ph, h[i].hash, 32);
        }
    }
    crdt_vv_free(vv);
}

/* Our seqs as the summary keeps them; an actor nobody holds is 0. */
static void
assert_own_is(const crdtnet__sum *s, const head *h, size_t n)
{
    crdt_actor none;

    for (size_t i = 0; i < n; i++) {
        crdt_actor a;
        memcpy(a.b, h[i].actor, 8);
        ck_assert_uint_eq(crdtnet__sum_own_seq(s, &a), h[i].seq);
    }
    memset(none.b, 0xff, sizeof none.b); /* random actors never are */
    ck_assert_uint_eq(crdtnet__sum_own_seq(s, &none), 0);
    ck_assert_uint_eq(crdtnet__sum_peer_seq(s, &none), 0);
    {
        uint64_t ps;
        unsigned char ph[32];
        ck_assert_int_eq(crdtnet__sum_peer_head(s, &none, &ps, ph),
                         CRDT_ENOTFOUND);
    }
}

/* Every actor whose head differs is in the peer heads @p s rebuilt. */
static void
assert_differing_heads_known(const crdtnet__sum *s, const head *peer,
                             size_t n)
{
    unsigned char *b;
    size_t len;

    ck_assert_int_eq(crdtnet__sum_peer_heads(s, &b, &len), CRDT_OK);
    ck_assert_int_eq(crdt_heads_parse(b, len, NULL, NULL) == CRDT_OK ||
                         len > 0,
                     1);
    for (size_t i = 0; i < n; i++) {
        crdt_actor a;
        uint64_t seq;
        unsigned char hash[32];
        memcpy(a.b, peer[i].actor, 8);
        if (crdt_heads_lookup(&seq, hash, b, len, &a) == CRDT_OK) {
            ck_assert_uint_eq(seq, peer[i].seq);
            ck_assert_mem_eq(hash, peer[i].hash, 32);
        }
    }
    free(b);
}

START_TEST(test_sums_learn_each_others_heads)
{
    static const size_t sizes[] = { 0, 1, 3, 40, 700, 10000 };
    static const size_t diffs[] = { 0, 1, 2, 5, 60 };

    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        for (size_t di = 0; di < sizeof diffs / sizeof *diffs; di++) {
            size_t n = sizes[si], nb = n;
            head *ha = random_heads(n), *hb = malloc((n + 64) * sizeof *hb);
            crdtnet__sum *x, *y;
            unsigned rounds;
            size_t bytes;

            memcpy(hb, ha, n * sizeof *ha);
            for (size_t k = 0; k < diffs[di]; k++) {
                size_t i = n ? next_rand() % n : 0;
                switch (next_rand() % 3) {
                case 0: /* b holds one more change of an actor */
                    if (i < nb) {
                        hb[i].seq++;
                        hb[i].hash[0] ^= 1;
                    }
                    break;
                case 1: /* the same seq, another chain: an equivocation */
                    if (i < nb)
                        hb[i].hash[31] ^= 0x80;
                    break;
                default: { /* b knows a new actor */
                    head *one = random_heads(1);
                    hb[nb++] = one[0];
                    free(one);
                    qsort(hb, nb, sizeof *hb, cmp_head);
                }
                }
            }
            x = sum_of(ha, n);
            y = sum_of(hb, nb);
            bytes = run_sums(x, y, &rounds);
            assert_peer_is(x, hb, nb);
            assert_peer_is(y, ha, n);
            assert_own_is(x, ha, n);
            assert_own_is(y, hb, nb);
            assert_differing_heads_known(x, hb, nb);
            assert_differing_heads_known(y, ha, n);
            if (diffs[di] == 0)
                ck_assert_uint_eq(rounds, 0);
            if (n == 10000 && diffs[di] > 0 && diffs[di] <= 2)
                /* about a KiB each way, not 480 KB of heads */
                ck_assert_uint_lt(bytes, 3 * 1024);
            crdtnet__sum_free(x);
            crdtnet__sum_free(y);
            free(ha);
            free(hb);
        }
    }
}
END_TEST

/* The 48-byte entries of @p h, as crdt_read_heads() gives them. */
static unsigned char *
entries_of(const head *h, size_t n)
{
    unsigned char *e = malloc(n ? n * CRDTNET__SUM_ENTRY : 1);

    ck_assert_ptr_nonnull(e);
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = e + i * CRDTNET__SUM_ENTRY;
        memcpy(p, h[i].actor, 8);
        crdt__be64(p + 8, h[i].seq);
        memcpy(p + 16, h[i].hash, 32);
    }
    return e;
}

/* A summary made from entries is the one made from the heads blob; the
 * entries must be in strictly increasing actor order. */
START_TEST(test_sum_from_entries)
{
    head *h = random_heads(300);
    crdtnet__sum *x = sum_of(h, 300), *y;
    unsigned char rx[32], ry[32], *e;
    uint64_t nx, ny;

    ck_assert_int_eq(crdtnet__sum_new_entries(&y, entries_of(h, 300), 300),
                     CRDT_OK);
    crdtnet__sum_root(x, rx, &nx);
    crdtnet__sum_root(y, ry, &ny);
    ck_assert_mem_eq(rx, ry, 32);
    ck_assert_uint_eq(nx, ny);
    crdtnet__sum_free(y);
    e = entries_of(h, 300); /* two actors swapped */
    memcpy(e + 10 * CRDTNET__SUM_ENTRY, h[11].actor, 8);
    memcpy(e + 11 * CRDTNET__SUM_ENTRY, h[10].actor, 8);
    ck_assert_int_eq(crdtnet__sum_new_entries(&y, e, 300), CRDT_EPROTO);
    ck_assert_ptr_null(y);
    e = entries_of(h, 300); /* one actor twice */
    memcpy(e + 11 * CRDTNET__SUM_ENTRY, h[10].actor, 8);
    ck_assert_int_eq(crdtnet__sum_new_entries(&y, e, 300), CRDT_EPROTO);
    ck_assert_int_eq(crdtnet__sum_new_entries(&y, entries_of(h, 0), 0),
                     CRDT_OK);
    crdtnet__sum_free(y);
    crdtnet__sum_free(x);
    free(h);
}
END_TEST

/* FIN's vv digest hashed in pieces is BLAKE2b-256 of actor || seq
 * (big-endian) per head, in actor order (docs/protocol.md), whatever
 * the pieces. */
START_TEST(test_vv_digest_in_pieces)
{
    static const size_t sizes[] = { 0, 1, 63, 64, 65, 1000 };

    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        size_t n = sizes[si];
        head *h = random_heads(n);
        unsigned char *e = entries_of(h, n), *flat = malloc(16 * n + 1);
        unsigned char want[32], got[32];
        crypto_generichash_state st;

        for (size_t i = 0; i < n; i++) {
            memcpy(flat + 16 * i, h[i].actor, 8);
            crdt__be64(flat + 16 * i + 8, h[i].seq);
        }
        crypto_generichash(want, 32, flat, 16 * n, NULL, 0);
        for (size_t piece = 1; piece <= 130; piece += 43) {
            crypto_generichash_init(&st, NULL, 0, 32);
            for (size_t i = 0; i < n; i += piece)
                crdtnet__vv_digest_add(&st, e + i * CRDTNET__SUM_ENTRY,
                                       n - i < piece ? n - i : piece);
            crypto_generichash_final(&st, got, 32);
            ck_assert_mem_eq(got, want, 32);
        }
        free(flat);
        free(e);
        free(h);
    }
}
END_TEST

START_TEST(test_sums_refuse_what_does_not_add_up)
{
    head *ha = random_heads(500), *hb = malloc(500 * sizeof *hb);
    crdtnet__sum *x, *y;
    unsigned char rx[32], ry[32], *bad;
    const unsigned char *s1, *h1;
    uint64_t nx, ny;
    size_t sl1, hl1;

    memcpy(hb, ha, 500 * sizeof *ha);
    hb[17].seq++;
    x = sum_of(ha, 500);
    y = sum_of(hb, 500);
    crdtnet__sum_root(x, rx, &nx);
    crdtnet__sum_root(y, ry, &ny);
    /* a count above the limit */
    ck_assert_int_eq(crdtnet__sum_start(x, ry, CRDTNET__SUM_MAX + 1, NULL,
                                        0),
                     CRDT_ELIMIT);
    crdtnet__sum_free(x);
    x = sum_of(ha, 500);
    /* entries in HELLO for many heads */
    ck_assert_int_eq(crdtnet__sum_start(x, ry, ny, (unsigned char *)hb,
                                        CRDTNET__SUM_ENTRY),
                     CRDT_EPROTO);
    crdtnet__sum_free(x);
    x = sum_of(ha, 500);
    ck_assert_int_eq(crdtnet__sum_start(x, ry, ny, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdtnet__sum_start(y, rx, nx, NULL, 0), CRDT_OK);
    crdtnet__sum_round_take(y, &s1, &sl1, &h1, &hl1);
    bad = malloc(sl1 + 2 * CRDTNET__SUM_ENTRY);
    memcpy(bad, s1, sl1);
    /* digests of another length */
    ck_assert_int_eq(crdtnet__sum_round_feed(x, bad, sl1 - 1, NULL, 0),
                     CRDT_EPROTO);
    /* entries when no leaf is open, or not a whole entry */
    ck_assert_int_eq(crdtnet__sum_round_feed(x, bad, sl1, bad, 5),
                     CRDT_EPROTO);
    ck_assert_int_eq(crdtnet__sum_round_feed(x, bad, sl1, bad,
                                             CRDTNET__SUM_ENTRY),
                     CRDT_EPROTO);
    /* run the rest honestly to the last round, then lie in it */
    for (int i = 0; i < 10; i++) {
        const unsigned char *s2, *h2;
        size_t sl2, hl2;
        unsigned char *c;
        int last;

        crdtnet__sum_round_take(x, &s2, &sl2, &h2, &hl2);
        c = malloc(sl2 + hl2 + 1);
        memcpy(c, s2, sl2);
        memcpy(c + sl2, h2, hl2);
        ck_assert_int_eq(crdtnet__sum_round_feed(y, c, sl2, c + sl2, hl2),
                         CRDT_OK);
        free(c);
        memcpy(bad, s1, sl1); /* y's round, as taken before */
        last = crdtnet__sum_done(y);
        if (last) {
            unsigned char *e = malloc(hl1 + 1);
            memcpy(e, h1, hl1);
            ck_assert_uint_ge(hl1, CRDTNET__SUM_ENTRY);
            e[16] ^= 1; /* another chain hash than y's root says */
            ck_assert_int_eq(crdtnet__sum_round_feed(x, bad, sl1, e, hl1),
                             CRDT_EPROTO);
            free(e);
            break;
        }
        ck_assert_int_eq(crdtnet__sum_round_feed(x, bad, sl1, h1, hl1),
                         CRDT_OK);
        crdtnet__sum_round_take(y, &s1, &sl1, &h1, &hl1);
        free(bad);
        bad = malloc(sl1 + 1);
        memcpy(bad, s1, sl1);
    }
    free(bad);
    crdtnet__sum_free(x);
    crdtnet__sum_free(y);
    free(ha);
    free(hb);
}
END_TEST

/* ---- sessions ---- */

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

typedef struct {
    crdtnet_report rx, ry;
    size_t bytes; /* both ways */
} pair_result;

/* Move every message between @p sx and @p sy until both are quiet and
 * finished without error. @return the bytes moved both ways. */
static size_t
exchange(crdtnet_session *sx, crdtnet_session *sy)
{
    crdtnet_session *from[2] = { sx, sy }, *to[2] = { sy, sx };
    const unsigned char *msg;
    size_t len, bytes = 0;

    for (int round = 0; round < 100000; round++) {
        int moved = 0;
        for (int d = 0; d < 2; d++) {
            while (crdtnet_session_next_out(from[d], &msg, &len) == CRDT_OK) {
                unsigned char *copy = malloc(len + 1);
                ck_assert_ptr_nonnull(copy);
                memcpy(copy, msg, len);
                bytes += len;
                ck_assert_int_eq(crdtnet_session_feed(to[d], copy, len),
                                 CRDT_OK);
                free(copy);
                moved = 1;
            }
        }
        if (!moved)
            break;
    }
    ck_assert_int_eq(crdtnet_session_error(sx), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_error(sy), CRDT_OK);
    ck_assert(crdtnet_session_finished(sx));
    ck_assert(crdtnet_session_finished(sy));
    return bytes;
}

/* A session each way, x offering @p px, y @p py (0: the newest). */
static pair_result
sync_pair(crdt_replica *x, crdt_replica *y, unsigned px, unsigned py)
{
    crdtnet_session_options ox = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session_options oy = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sx, *sy;
    pair_result res;

    memset(&res, 0, sizeof res);
    ox.sync_proto = px;
    oy.sync_proto = py;
    ck_assert_int_eq(crdtnet_session_new(&sx, x, &ox), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sy, y, &oy), CRDT_OK);
    res.bytes = exchange(sx, sy);
    res.rx = *crdtnet_session_report(sx);
    res.ry = *crdtnet_session_report(sy);
    crdtnet_session_free(sx);
    crdtnet_session_free(sy);
    return res;
}

/* @p n actors write on @p r (one incarnation each), then both sync. */
static void
share_actors(int n)
{
    for (int i = 0; i < n; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(crdt_replica_new_incarnation(a), CRDT_OK);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
    }
    sync_pair(a, b, 0, 0);
    tu_assert_converged(a, b);
}

/* A side that offered protocol 4 reads its heads for HELLO while it
 * waits for the peer (crdtnet__session_idle()): a write after that
 * travels in CHANGES as one after HELLO does, and a peer that answers
 * in version 3 still gets a HELLO of version 3. */
START_TEST(test_heads_read_while_waiting)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT, o3 = o;
    crdtnet_session *sx, *sy;
    const unsigned char *msg;
    size_t len;

    share_actors(100);
    for (unsigned proto = 0; proto <= 3; proto += 3) {
        ck_assert_int_eq(tu_put_int(a, "c", "x", "a", 10 + proto), CRDT_OK);
        ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 20 + proto), CRDT_OK);
        o3.sync_proto = proto;
        ck_assert_int_eq(crdtnet_session_new(&sx, a, &o), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_new(&sy, b, &o3), CRDT_OK);
        /* the offer of version 4: an empty message (a keepalive to a
         * peer of version 3) */
        ck_assert_int_eq(crdtnet_session_next_out(sx, &msg, &len), CRDT_OK);
        ck_assert_uint_eq(len, 0);
        ck_assert_int_eq(crdtnet_session_feed(sy, msg, len), CRDT_OK);
        crdtnet__session_idle(sx); /* heads read before the peer answers */
        crdtnet__session_idle(sx); /* once */
        ck_assert_int_eq(tu_put_int(a, "c", "y", "late", 1), CRDT_OK);
        exchange(sx, sy);
        tu_assert_converged(a, b);
        ck_assert_uint_eq(crdtnet_session_report(sx)->sync_proto,
                          proto ? 3 : 4);
        ck_assert_uint_eq(crdtnet_session_report(sy)->changes_received, 2);
        ck_assert_uint_eq(crdtnet_session_report(sx)->changes_received, 1);
        ck_assert(crdtnet_session_report(sx)->in_sync);
        ck_assert(crdtnet_session_report(sy)->in_sync);
        crdtnet_session_free(sx);
        crdtnet_session_free(sy);
    }
}
END_TEST

START_TEST(test_one_change_each_way_moves_a_summary)
{
    pair_result r4, r3;

    share_actors(300);
    ck_assert_int_eq(tu_put_int(a, "c", "x", "a", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 2), CRDT_OK);
    r4 = sync_pair(a, b, 0, 0);
    tu_assert_converged(a, b);
    ck_assert_uint_eq(r4.rx.sync_proto, 4);
    ck_assert_uint_eq(r4.ry.sync_proto, 4);
    ck_assert_uint_ge(r4.rx.summary_rounds, 1);
    ck_assert_uint_eq(r4.rx.changes_received, 1);
    ck_assert_uint_eq(r4.ry.changes_received, 1);
    ck_assert(r4.rx.in_sync && r4.ry.in_sync);
    /* the same difference in version 3: the whole vv and heads */
    ck_assert_int_eq(tu_put_int(a, "c", "x", "a", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 4), CRDT_OK);
    r3 = sync_pair(a, b, 3, 3);
    tu_assert_converged(a, b);
    ck_assert_uint_eq(r3.rx.sync_proto, 3);
    ck_assert_uint_eq(r3.rx.changes_received, 1);
    ck_assert(r3.rx.in_sync && r3.ry.in_sync);
    /* 300 actors: about 2 x 300 x 56 bytes of heads and vv each way */
    ck_assert_uint_lt(4 * r4.bytes, r3.bytes);
}
END_TEST

/* The heads as a sync reads them (crdt_read_heads(), whole and in
 * pieces) are the heads crdt_heads_export() encodes, in actor order. */
START_TEST(test_read_heads_is_the_export)
{
    unsigned char *blob, *all = NULL, piece[7 * CRDT_HEAD_ENTRY_BYTES];
    size_t bl, cap = 0, n = 0, got = 0, k;
    crdtnet__sum *x;
    crdt_actor after;
    crdt_read *rd;
    int first = 1;

    share_actors(40);
    ck_assert_int_eq(crdt_heads_export(&blob, &bl, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_heads(&all, &cap, &n, rd), CRDT_OK);
    ck_assert_uint_ge(n, 40);
    ck_assert_uint_ge(cap, n * CRDT_HEAD_ENTRY_BYTES);
    /* the same buffer serves the next read */
    ck_assert_int_eq(crdt_read_heads(&all, &cap, &k, rd), CRDT_OK);
    ck_assert_uint_eq(k, n);
    do { /* 7 at a time: the last piece is short (or empty) */
        ck_assert_int_eq(crdt_read_heads_after(piece, 7, &k,
                                               first ? NULL : &after, rd),
                         CRDT_OK);
        ck_assert_uint_le(got + k, n);
        ck_assert_mem_eq(piece, all + got * CRDT_HEAD_ENTRY_BYTES,
                         k * CRDT_HEAD_ENTRY_BYTES);
        got += k;
        if (k > 0)
            memcpy(after.b, piece + (k - 1) * CRDT_HEAD_ENTRY_BYTES, 8);
        first = 0;
    } while (k == 7);
    ck_assert_uint_eq(got, n);
    crdt_read_end(rd);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *e = all + i * CRDT_HEAD_ENTRY_BYTES;
        unsigned char hash[32];
        uint64_t seq;
        crdt_actor act;
        memcpy(act.b, e, 8);
        ck_assert_int_eq(crdt_heads_lookup(&seq, hash, blob, bl, &act),
                         CRDT_OK);
        ck_assert_uint_eq(seq, crdt__rd64(e + 8));
        ck_assert_mem_eq(hash, e + 16, 32);
        if (i > 0)
            ck_assert_int_lt(memcmp(e - CRDT_HEAD_ENTRY_BYTES, e, 8), 0);
    }
    /* and a summary of either has the same root */
    ck_assert_int_eq(crdtnet__sum_new(&x, blob, bl), CRDT_OK);
    {
        crdtnet__sum *y;
        unsigned char rx[32], ry[32];
        uint64_t nx, ny;
        ck_assert_int_eq(crdtnet__sum_new_entries(&y, all, n), CRDT_OK);
        crdtnet__sum_root(x, rx, &nx);
        crdtnet__sum_root(y, ry, &ny);
        ck_assert_mem_eq(rx, ry, 32);
        ck_assert_uint_eq(nx, ny);
        crdtnet__sum_free(y);
    }
    crdtnet__sum_free(x);
    crdt_free(blob);
}
END_TEST

/* Few heads on both sides travel whole in HELLO: no round; a lie about
 * them (entries that do not hash to the root) is refused at once. */
START_TEST(test_few_heads_need_no_round)
{
    head *ha = random_heads(30), *hb = malloc(30 * sizeof *hb);
    crdtnet__sum *x = sum_of(ha, 30), *y;
    unsigned char rb[32];
    const unsigned char *eb;
    unsigned char *lie;
    uint64_t nb;
    size_t lb;
    unsigned rounds;

    memcpy(hb, ha, 30 * sizeof *ha);
    hb[3].seq += 2;
    y = sum_of(hb, 30);
    run_sums(x, y, &rounds);
    ck_assert_uint_eq(rounds, 0);
    assert_peer_is(x, hb, 30);
    assert_peer_is(y, ha, 30);
    crdtnet__sum_free(x);
    x = sum_of(ha, 30);
    crdtnet__sum_root(y, rb, &nb);
    crdtnet__sum_hello_entries(y, &eb, &lb);
    ck_assert_uint_eq(lb, 30 * CRDTNET__SUM_ENTRY);
    lie = malloc(lb);
    memcpy(lie, eb, lb);
    lie[3 * CRDTNET__SUM_ENTRY + 15] ^= 1; /* another seq */
    ck_assert_int_eq(crdtnet__sum_start(x, rb, nb, lie, lb), CRDT_EPROTO);
    free(lie);
    crdtnet__sum_free(x);
    crdtnet__sum_free(y);
    free(ha);
    free(hb);
}
END_TEST

START_TEST(test_equal_heads_end_at_hello)
{
    pair_result r;

    share_actors(40);
    r = sync_pair(a, b, 0, 0);
    ck_assert_uint_eq(r.rx.sync_proto, 4);
    ck_assert_uint_eq(r.rx.summary_rounds, 0);
    ck_assert_uint_eq(r.ry.summary_rounds, 0);
    ck_assert_uint_eq(r.rx.changes_received + r.ry.changes_received, 0);
    ck_assert(r.rx.in_sync && r.ry.in_sync);
}
END_TEST

/* HELLO of version 4, byte for byte as docs/protocol.md lays it out. */
START_TEST(test_hello_layout)
{
    crdtnet_session *sb;
    const unsigned char *m;
    size_t len;
    unsigned char root[32];
    uint64_t n;
    crdtnet__sum *sum;
    unsigned char *hb;
    size_t hl;

    share_actors(100); /* 100 heads: more than travel whole in HELLO */
    ck_assert_int_eq(crdtnet_session_new(&sb, b, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_next_out(sb, &m, &len), CRDT_OK);
    ck_assert_uint_eq(len, 0); /* the offer of version 4 */
    ck_assert_int_eq(crdtnet_session_next_out(sb, &m, &len), CRDT_EAGAIN);
    ck_assert_int_eq(crdtnet_session_feed(sb, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_next_out(sb, &m, &len), CRDT_OK);
    ck_assert_uint_eq(len, 121); /* 123 with 10,000 heads (cd 27 10) */
    ck_assert_uint_eq(m[0], 0x99);
    ck_assert_uint_eq(m[1], 0x01);
    ck_assert_uint_eq(m[2], 0xcc); /* proto 4 as uint 8: reads PACKED */
    ck_assert_uint_eq(m[3], 0x04);
    /* the epoch id as bin 16: reads kept lens defaults */
    ck_assert_uint_eq(m[4], 0xc5);
    ck_assert_uint_eq(m[5], 0x00);
    ck_assert_uint_eq(m[6], 0x20);
    ck_assert_uint_eq(m[39], 0xcf); /* epoch 0 as uint 64: reads CUT */
    for (int i = 40; i < 48; i++)
        ck_assert_uint_eq(m[i], 0x00);
    /* the state hash as bin 16: reads packed version 2 */
    ck_assert_uint_eq(m[48], 0xc5);
    ck_assert_uint_eq(m[49], 0x00);
    ck_assert_uint_eq(m[50], 0x20);
    ck_assert_uint_eq(m[83], 0xc4);
    ck_assert_uint_eq(m[84], 0x20);
    ck_assert_uint_eq(m[117], 0x64); /* n_heads 100: a positive fixint */
    ck_assert_uint_eq(m[118], 0x90); /* no record */
    ck_assert_uint_eq(m[119], 0xc4); /* few: empty */
    ck_assert_uint_eq(m[120], 0x00);
    /* the root is BLAKE2b-256 of the entries */
    ck_assert_int_eq(crdt_heads_export(&hb, &hl, b), CRDT_OK);
    ck_assert_int_eq(crdtnet__sum_new(&sum, hb, hl), CRDT_OK);
    crdtnet__sum_root(sum, root, &n);
    ck_assert_uint_eq(n, 100);
    ck_assert_mem_eq(m + 85, root, 32);
    crdtnet__sum_free(sum);
    crdt_free(hb);
    crdtnet_session_free(sb);
}
END_TEST

/* The peer's FIN is judged against the snapshot our FIN was read from
 * only while nothing was committed since: a write between the two makes
 * the verdict "not in sync", without error, as a fresh read gives. */
START_TEST(test_fin_judged_on_the_current_state)
{
    crdtnet_session *sx, *sy;
    const unsigned char *msg;
    size_t len;
    unsigned char *their_fin = NULL;
    size_t their_len = 0;

    share_actors(100);
    ck_assert_int_eq(tu_put_int(a, "c", "x", "a", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 2), CRDT_OK);
    for (int late = 0; late < 2; late++) {
        ck_assert_int_eq(crdtnet_session_new(&sx, a, NULL), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_new(&sy, b, NULL), CRDT_OK);
        their_fin = NULL;
        for (int round = 0; round < 1000; round++) {
            int moved = 0;
            while (crdtnet_session_next_out(sx, &msg, &len) == CRDT_OK) {
                ck_assert_int_eq(crdtnet_session_feed(sy, msg, len),
                                 CRDT_OK);
                moved = 1;
            }
            while (crdtnet_session_next_out(sy, &msg, &len) == CRDT_OK) {
                if (len >= 2 && msg[1] == 9 && their_fin == NULL) {
                    their_fin = malloc(len); /* y's FIN: kept back */
                    memcpy(their_fin, msg, len);
                    their_len = len;
                } else {
                    ck_assert_int_eq(crdtnet_session_feed(sx, msg, len),
                                     CRDT_OK);
                }
                moved = 1;
            }
            if (!moved)
                break;
        }
        ck_assert_ptr_nonnull(their_fin);
        if (late) /* x commits after its FIN went */
            ck_assert_int_eq(tu_put_int(a, "c", "late", "v", 3), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_feed(sx, their_fin, their_len),
                         CRDT_OK);
        free(their_fin);
        exchange(sx, sy);
        ck_assert_int_eq(crdtnet_session_report(sx)->in_sync, !late);
        ck_assert(crdtnet_session_report(sy)->in_sync);
        crdtnet_session_free(sx);
        crdtnet_session_free(sy);
    }
}
END_TEST

/* Move every message of @p from to @p to; note @p from's FIN going
 * (*from_fin), and whether @p to got the peer's FIN before sending its
 * own (*to_first: then, with @p late, commit to @p late_r at once). */
static void
pump_fin(crdtnet_session *from, crdtnet_session *to, int *from_fin,
         const int *to_fin, int *to_first, int late, crdt_replica *late_r,
         int *moved)
{
    const unsigned char *msg;
    size_t len;

    while (crdtnet_session_next_out(from, &msg, &len) == CRDT_OK) {
        int fin = len >= 2 && msg[1] == 9;
        if (fin)
            *from_fin = 1;
        ck_assert_int_eq(crdtnet_session_feed(to, msg, len), CRDT_OK);
        if (fin && !*to_fin) {
            /* @p to judged the FIN before building its own: a commit
             * now must show in its FIN (a fresh read, not the snapshot
             * the judging read) */
            *to_first = 1;
            if (late)
                ck_assert_int_eq(tu_put_int(late_r, "c", "late2", "v", 3),
                                 CRDT_OK);
        }
        *moved = 1;
    }
}

START_TEST(test_fin_after_judging_the_peers_is_of_the_current_state)
{
    crdtnet_session *sx, *sy;

    share_actors(100);
    ck_assert_int_eq(tu_put_int(a, "c", "y", "a", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "y", "b", 2), CRDT_OK);
    for (int late = 0; late < 2; late++) {
        int x_fin = 0, y_fin = 0, x_first = 0, y_first = 0;

        ck_assert_int_eq(crdtnet_session_new(&sx, a, NULL), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_new(&sy, b, NULL), CRDT_OK);
        for (int round = 0; round < 1000; round++) {
            int moved = 0;
            /* y first: x's DONE and FIN leave in one turn, and y gets
             * x's FIN before it builds its own */
            pump_fin(sy, sx, &y_fin, &x_fin, &x_first, late, a, &moved);
            pump_fin(sx, sy, &x_fin, &y_fin, &y_first, late, b, &moved);
            if (!moved)
                break;
        }
        ck_assert(x_first || y_first);
        ck_assert(crdtnet_session_finished(sx) &&
                  crdtnet_session_finished(sy));
        /* the side that judged first had a commit after its judging
         * read: its peer is in sync with it only if its FIN was read
         * again */
        ck_assert_int_eq(crdtnet_session_report(y_first ? sx : sy)->in_sync,
                         !late);
        ck_assert(crdtnet_session_report(y_first ? sy : sx)->in_sync);
        crdtnet_session_free(sx);
        crdtnet_session_free(sy);
    }
}
END_TEST

START_TEST(test_version3_peer_is_answered_in_version3)
{
    for (int way = 0; way < 2; way++) {
        pair_result r;
        char doc[16];

        snprintf(doc, sizeof doc, "w%d", way);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "a", way), CRDT_OK);
        ck_assert_int_eq(tu_put_int(b, "c", doc, "b", way), CRDT_OK);
        r = way == 0 ? sync_pair(a, b, 0, 3) : sync_pair(a, b, 3, 0);
        tu_assert_converged(a, b);
        ck_assert_uint_eq(r.rx.sync_proto, 3);
        ck_assert_uint_eq(r.ry.sync_proto, 3);
        ck_assert_uint_eq(r.rx.summary_rounds, 0);
        ck_assert(r.rx.in_sync && r.ry.in_sync);
    }
}
END_TEST

/* A SUMMARY where none is due, or one that is malformed, fails the
 * session; nothing of the replica changes. */
START_TEST(test_bad_summary_messages_fail_cleanly)
{
    static const unsigned char early[] = { 0x93, 0x0e, 0xc4, 0x00, 0xc4,
                                           0x00 };
    static const unsigned char shape[] = { 0x92, 0x0e, 0xc4, 0x00 };
    crdtnet_session *sa, *sb;
    const unsigned char *msg;
    unsigned char *copy;
    size_t len;
    char h0[65], h1[65];

    share_actors(100); /* more than travel whole in HELLO */
    ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 1), CRDT_OK);
    tu_hash(h0, a);
    /* before any HELLO */
    ck_assert_int_eq(crdtnet_session_new(&sa, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(sa, early, sizeof early),
                     CRDT_EPROTO);
    crdtnet_session_free(sa);
    /* after the HELLOs: the wrong element count, then wrong digests */
    for (int k = 0; k < 2; k++) {
        ck_assert_int_eq(crdtnet_session_new(&sa, a, NULL), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_new(&sb, b, NULL), CRDT_OK);
        for (int i = 0; i < 3; i++) { /* offers, then the two HELLOs */
            ck_assert_int_eq(crdtnet_session_next_out(sb, &msg, &len),
                             CRDT_OK);
            copy = malloc(len + 1);
            memcpy(copy, msg, len);
            ck_assert_int_eq(crdtnet_session_feed(sa, copy, len), CRDT_OK);
            free(copy);
            if (i == 0) {
                ck_assert_int_eq(crdtnet_session_next_out(sa, &msg, &len),
                                 CRDT_OK);
                ck_assert_uint_eq(len, 0);
                ck_assert_int_eq(crdtnet_session_feed(sb, msg, 0), CRDT_OK);
            }
            if (i == 1) {
                ck_assert_int_eq(crdtnet_session_next_out(sa, &msg, &len),
                                 CRDT_OK);
                copy = malloc(len + 1);
                memcpy(copy, msg, len);
                ck_assert_int_eq(crdtnet_session_feed(sb, copy, len),
                                 CRDT_OK);
                free(copy);
                break;
            }
        }
        ck_assert_uint_eq(crdtnet_session_report(sa)->sync_proto, 4);
        if (k == 0)
            ck_assert_int_eq(crdtnet_session_feed(sa, shape, sizeof shape),
                             CRDT_EPROTO);
        else
            ck_assert_int_eq(crdtnet_session_feed(sa, early, sizeof early),
                             CRDT_EPROTO);
        ck_assert_str_eq(crdtnet_session_report(sa)->reason,
                         "malformed SUMMARY");
        crdtnet_session_free(sa);
        crdtnet_session_free(sb);
    }
    tu_hash(h1, a);
    ck_assert_str_eq(h0, h1);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("summary");
    TCase *tu = tcase_create("summary");
    TCase *tc = tcase_create("sessions");

    tcase_set_timeout(tu, 60);
    tcase_add_test(tu, test_sums_learn_each_others_heads);
    tcase_add_test(tu, test_sums_refuse_what_does_not_add_up);
    tcase_add_test(tu, test_few_heads_need_no_round);
    tcase_add_test(tu, test_sum_from_entries);
    tcase_add_test(tu, test_vv_digest_in_pieces);
    suite_add_tcase(s, tu);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_one_change_each_way_moves_a_summary);
    tcase_add_test(tc, test_read_heads_is_the_export);
    tcase_add_test(tc, test_heads_read_while_waiting);
    tcase_add_test(tc, test_equal_heads_end_at_hello);
    tcase_add_test(tc, test_hello_layout);
    tcase_add_test(tc, test_fin_judged_on_the_current_state);
    tcase_add_test(tc, test_fin_after_judging_the_peers_is_of_the_current_state);
    tcase_add_test(tc, test_version3_peer_is_answered_in_version3);
    tcase_add_test(tc, test_bad_summary_messages_fail_cleanly);
    suite_add_tcase(s, tc);
    return s;
}
