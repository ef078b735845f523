/*
 * test_merge.c: merging remote changes: idempotence, gaps, forged or
 * foreign changes, equivocation, clock drift, LWW and add-wins rules.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_create)

START_TEST(test_merge_is_idempotent)
{
    char ha[65], hb[65], hb2[65];
    crdt_merge_report rep;
    tu_batch x;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 5);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 5);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.duplicates, 5);
    ck_assert_uint_eq(rep.changes_applied, 0);
    tu_hash(hb2, b);
    ck_assert_str_eq(hb, hb2);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_gap_waits_in_pending)
{
    char buf[32];
    crdt_merge_report rep;
    tu_batch x;

    for (int i = 1; i <= 3; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    x = tu_export_all(a);
    /* deliver 3, then 2, then 1 */
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[2], 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 1);
    tu_field_str(buf, sizeof buf, b, "c", "d", "f");
    ck_assert_str_eq(buf, "");
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[1], 1), CRDT_OK);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[0], 1), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 3);
    tu_field_str(buf, sizeof buf, b, "c", "d", "f");
    ck_assert_str_eq(buf, "3");
    tu_batch_free(&x);
}
END_TEST

/* A change whose seq is near 2^62 would wait forever for predecessors
 * nobody has: it goes to the quarantine with its reason, not pending. */
START_TEST(test_far_ahead_change_is_quarantined)
{
    unsigned char *h, *nh;
    size_t hl;
    crdt_raw *t;
    crdt_merge_report rep;
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    /* move a's own head to 2^62: its next change starts just above */
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_heads_encode(&h, &hl, t), CRDT_OK);
    /* [actor bin8, seq 1 (fixint), ...]: seq becomes a uint64 */
    ck_assert_uint_eq(h[0], 0x95);
    ck_assert_uint_eq(h[11], 0x01);
    nh = malloc(hl + 8);
    memcpy(nh, h, 11);
    nh[11] = 0xcf;
    memset(nh + 12, 0, 8);
    nh[12] = 0x40; /* 2^62 */
    memcpy(nh + 20, h + 12, hl - 12);
    ck_assert_int_eq(crdt_raw_heads_replace(t, nh, hl + 8), CRDT_OK);
    {
        /* and as issued by a itself: a head beyond what its actor
         * issued is a copy's writing, and a's next write would renew
         * its incarnation first */
        unsigned char own[16] = { 0 };
        ck_assert_uint_eq(h[1], 0xc4); /* bin8 of the actor */
        memcpy(own, h + 3, 8);
        own[8] = 0x40;
        ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, "own_seq", 7, own,
                                      sizeof own),
                         CRDT_OK);
    }
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    free(h);
    free(nh);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 2);
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[1], 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 0);
    ck_assert_uint_eq(rep.quarantined_ops, 1);
    ck_assert_uint_eq(tu_pending(b), 0);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    tu_batch_free(&x);
}
END_TEST

/* An actor's share of the pending area is bounded: the farthest-ahead
 * parked change makes room for a nearer one, into the quarantine. */
START_TEST(test_pending_share_is_bounded_per_actor)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_merge_report rep;
    char sub[300], buf[32];
    tu_batch x;

    crdt_replica_close(b);
    snprintf(sub, sizeof sub, "%s/r", db);
    o.pending_max_actor = 2;
    ck_assert_int_eq(crdt_replica_open(&b, sub, &o), CRDT_OK);
    for (int i = 1; i <= 5; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    x = tu_export_all(a);
    for (int i = 4; i >= 1; i--) /* seqs 5, 4, 3, 2: all wait for 1 */
        ck_assert_int_eq(crdt_merge(&rep, b, &x.v[i], 1), CRDT_OK);
    ck_assert_uint_eq(tu_pending(b), 2);
    ck_assert_uint_eq(tu_quarantine_count(b), 2); /* 5 and 4 made room */
    ck_assert_int_eq(crdt_merge(&rep, b, &x.v[0], 1), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 3);
    ck_assert_uint_eq(tu_pending(b), 0);
    /* the displaced ones come again from the peer and apply */
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    tu_field_str(buf, sizeof buf, b, "c", "d", "f");
    ck_assert_str_eq(buf, "5");
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_forged_change_is_refused)
{
    char hb[65], hb2[65];
    tu_batch x;
    unsigned char *p;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 12345), CRDT_OK);
    x = tu_export_all(a);
    tu_hash(hb, b);
    p = (unsigned char *)x.v[0].data;
    /* flip the last byte of the body (inside the op's value) */
    for (size_t i = x.v[0].len - 64 - 3; i > 0; i--) {
        if (p[i] == 0xcd || p[i] == 0xd1) { /* int16 header of 12345 */
            p[i + 2] ^= 1;
            break;
        }
    }
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, 1), CRDT_EAUTH);
    tu_hash(hb2, b);
    ck_assert_str_eq(hb, hb2);
    /* a flipped signature too */
    tu_batch_free(&x);
    x = tu_export_all(a);
    p = (unsigned char *)x.v[0].data;
    p[x.v[0].len - 1] ^= 0x80;
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, 1), CRDT_EAUTH);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_other_space_is_refused)
{
    char dc[256];
    crdt_replica *c = tu_create(dc, sizeof dc, NULL);
    tu_batch x;

    ck_assert_int_eq(tu_put_int(c, "c", "d", "f", 1), CRDT_OK);
    x = tu_export_all(c);
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_EAUTH);
    tu_batch_free(&x);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

START_TEST(test_truncated_and_garbage_are_eproto)
{
    crdt_bytes g;
    unsigned char junk[64];
    tu_batch x;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    x = tu_export_all(a);
    for (size_t cut = 0; cut < x.v[0].len; cut += 7) {
        g.data = x.v[0].data;
        g.len = cut;
        int rc = crdt_merge(NULL, b, &g, 1);
        ck_assert_msg(rc == CRDT_EPROTO, "cut %zu rc %d", cut, rc);
    }
    memset(junk, 0xdd, sizeof junk); /* array32 with a huge count */
    g.data = junk;
    g.len = sizeof junk;
    ck_assert_int_eq(crdt_merge(NULL, b, &g, 1), CRDT_EPROTO);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_equivocation_is_detected)
{
    char dc[256];
    crdt_replica *clone;
    tu_batch x, y;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    /* clone a's files behind its back, then both write seq 2 */
    clone = tu_clone_open(da, dc, sizeof dc);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(clone, "c", "d", "f", 3), CRDT_OK);
    x = tu_export_all(a);
    y = tu_export_all(clone);
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_OK);
    {
        crdt_merge_report rep;
        char buf[32], h1[65], h2[65];

        tu_hash(h1, b);
        /* the clone's change is detected, quarantined, never merged */
        ck_assert_int_eq(crdt_merge(&rep, b, y.v, y.n), CRDT_OK);
        ck_assert_uint_eq(rep.conflicts, 1);
        ck_assert_uint_eq(rep.quarantined_ops, 1);
        tu_hash(h2, b);
        ck_assert_str_eq(h1, h2);
        tu_field_str(buf, sizeof buf, b, "c", "d", "f");
        ck_assert_str_eq(buf, "2");
        ck_assert_uint_eq(tu_quarantine_count(b), 1);
    }
    tu_batch_free(&x);
    tu_batch_free(&y);
    crdt_replica_close(clone);
    test_rmtree(dc);
}
END_TEST

static uint64_t
far_future(void *ctx)
{
    (void)ctx;
    return 4102444800000ull; /* 2100-01-01 */
}

START_TEST(test_future_change_is_refused)
{
    tu_batch x;

    crdt_set_clock(far_future, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    crdt_set_clock(NULL, NULL);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_ECLOCK);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_concurrent_rules)
{
    char ba[64], bb[64], ha[65], hb[65];
    crdt_txn *t;
    crdt_value x = crdt_value_str("x", 1);

    /* both add x; a removes x concurrently: b's add survives (add wins) */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 2), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 5), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", "s", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_field_str(ba, sizeof ba, a, "c", "d", "s");
    tu_field_str(bb, sizeof bb, b, "c", "d", "s");
    ck_assert_str_eq(ba, "[\"x\"]");
    ck_assert_str_eq(bb, ba);
    tu_field_str(ba, sizeof ba, a, "c", "d", "n");
    tu_field_str(bb, sizeof bb, b, "c", "d", "n");
    ck_assert_str_eq(ba, "c8");
    ck_assert_str_eq(bb, ba);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

/*
 * A merge applies a batch's ops sorted by key, and collapses runs of
 * writes to one register. Whatever the batching, the result must be the
 * writer's own: same hash, same counters (whose ops must stay in seq
 * order per actor), same sets. Names longer than the sort's 16-byte
 * prefix take its slow path.
 */
START_TEST(test_batching_does_not_change_the_result)
{
    static const char *colls[] = { "c", "a-collection-with-a-long-name" };
    static const char *fields[] = { "f", "n", "s", "a-field-with-a-long-name" };
    char dc[256], ha[65], hb[65], hc[65];
    uint64_t rng = 7;
    crdt_replica *c;
    unsigned char space[16];
    tu_batch all;

    for (int i = 0; i < 150; i++) {
        crdt_txn *t;
        int n_ops = 1 + (int)(test_rand(&rng) % 8);

        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        for (int j = 0; j < n_ops; j++) {
            const char *coll = colls[test_rand(&rng) % 2];
            const char *f = fields[test_rand(&rng) % 4];
            char doc[8];
            crdt_value v = crdt_value_int((int64_t)(test_rand(&rng) % 5));
            int rc;

            snprintf(doc, sizeof doc, "d%d", (int)(test_rand(&rng) % 3));
            switch (test_rand(&rng) % 8) {
            case 0:
                rc = crdt_txn_del_field(t, coll, doc, f);
                break;
            case 1:
                rc = test_rand(&rng) % 4 ? CRDT_OK
                                         : crdt_txn_del_doc(t, coll, doc);
                break;
            default:
                if (strcmp(f, "n") == 0)
                    rc = crdt_txn_incr(t, coll, doc, f,
                                       (int64_t)(test_rand(&rng) % 7) - 3);
                else if (strcmp(f, "s") == 0)
                    rc = test_rand(&rng) % 3
                             ? crdt_txn_sadd(t, coll, doc, f, &v)
                             : crdt_txn_srem(t, coll, doc, f, &v);
                else
                    rc = crdt_txn_put(t, coll, doc, f, &v);
            }
            ck_assert(rc == CRDT_OK || rc == CRDT_ETYPE);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    all = tu_export_all(a);
    ck_assert_uint_gt(all.n, 100);
    /* b: everything in one batch; c: one change per batch */
    ck_assert_int_eq(crdt_merge(NULL, b, all.v, all.n), CRDT_OK);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    for (size_t i = 0; i < all.n; i++)
        ck_assert_int_eq(crdt_merge(NULL, c, &all.v[i], 1), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    tu_hash(hc, c);
    ck_assert_str_eq(hb, ha);
    ck_assert_str_eq(hc, ha);
    /* the log's counters, added per actor of a batch, match the writer's */
    {
        crdt_replica *rs[3] = { a, b, c };
        crdt_stats st[3];
        for (int i = 0; i < 3; i++) {
            crdt_read *rd;
            ck_assert_int_eq(crdt_read_begin(&rd, rs[i]), CRDT_OK);
            ck_assert_int_eq(crdt_read_stats(&st[i], rd), CRDT_OK);
            crdt_read_end(rd);
        }
        ck_assert_uint_eq(st[0].changes_in_log, all.n);
        for (int i = 1; i < 3; i++) {
            ck_assert_uint_eq(st[i].ops_in_log, st[0].ops_in_log);
            ck_assert_uint_eq(st[i].changes_in_log, st[0].changes_in_log);
        }
    }
    for (int i = 0; i < 2; i++)
        for (int d = 0; d < 3; d++)
            for (int f = 0; f < 4; f++) {
                char doc[8], va[256], vb[256], vc[256];

                snprintf(doc, sizeof doc, "d%d", d);
                tu_field_str(va, sizeof va, a, colls[i], doc, fields[f]);
                tu_field_str(vb, sizeof vb, b, colls[i], doc, fields[f]);
                tu_field_str(vc, sizeof vc, c, colls[i], doc, fields[f]);
                ck_assert_str_eq(vb, va);
                ck_assert_str_eq(vc, va);
            }
    crdt_replica_close(c);
    test_rmtree(dc);
    tu_batch_free(&all);
}
END_TEST

/*
 * A batch larger than the merge queue holds (16,384 ops) is applied in
 * several sorted runs: each actor's counter ops must still count in seq
 * order across them, and registers end with their newest value.
 */
START_TEST(test_batch_beyond_the_queue_applies_in_runs)
{
    char ha[65], hb[65], va[64], vb[64];
    tu_batch all;

    for (int c = 0; c < 3; c++) {
        crdt_txn *t;

        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        for (int i = 0; i < 10000; i++) {
            char doc[8];
            crdt_value v = crdt_value_int(c * 10000 + i);

            snprintf(doc, sizeof doc, "d%d", i % 50);
            ck_assert_int_eq(crdt_txn_incr(t, "c", doc, "n", i % 7 - 3),
                             CRDT_OK);
            ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    all = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, all.v, all.n), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(hb, ha);
    for (int d = 0; d < 50; d++) {
        char doc[8];

        snprintf(doc, sizeof doc, "d%d", d);
        tu_field_str(va, sizeof va, a, "c", doc, "n");
        tu_field_str(vb, sizeof vb, b, "c", doc, "n");
        ck_assert_str_eq(vb, va);
        tu_field_str(va, sizeof va, a, "c", doc, "v");
        tu_field_str(vb, sizeof vb, b, "c", doc, "v");
        ck_assert_str_eq(vb, va);
    }
    tu_batch_free(&all);
}
END_TEST

static void
log_counts(crdt_replica *r, uint64_t *ops, uint64_t *changes)
{
    crdt_read *rd;
    crdt_stats st;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    crdt_read_end(rd);
    *ops = st.ops_in_log;
    *changes = st.changes_in_log;
}

/* Many small changes of two actors in one batch, shuffled, with a gap
 * that parks some until a later batch: the log counters (written once
 * per merge), the log (appended through one cursor) and the state come
 * out as the changes' own, and a repeat changes nothing. */
START_TEST(test_log_counters_of_small_changes)
{
    char dc[256], ha[65], hb[65], doc[16];
    crdt_replica *c = tu_create(dc, sizeof dc, NULL);
    unsigned char space[16];
    uint64_t ops0, ch0, ops, ch, ops_a, ch_a;
    crdt_merge_report rep;
    tu_batch xa, xc;
    crdt_bytes *first, *later;
    size_t nf = 0, nl = 0;
    uint64_t s = 7;

    crdt_replica_close(c);
    test_rmtree(dc);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    for (int i = 0; i < 40; i++) {
        snprintf(doc, sizeof doc, "d%d", i % 7);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
        ck_assert_int_eq(tu_put_int(c, "c", doc, "w", i), CRDT_OK);
    }
    xa = tu_export_all(a);
    xc = tu_export_all(c);
    log_counts(b, &ops0, &ch0);
    first = calloc(xa.n + xc.n, sizeof *first);
    later = calloc(xa.n + xc.n, sizeof *later);
    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_nonnull(later);
    /* a's changes 10..14 come later: 15.. wait in the pending area */
    for (size_t i = 0; i < xa.n; i++) {
        if (i >= 10 && i < 15)
            later[nl++] = xa.v[i];
        else
            first[nf++] = xa.v[i];
    }
    for (size_t i = 0; i < xc.n; i++)
        first[nf++] = xc.v[i];
    for (size_t i = nf - 1; i > 0; i--) { /* shuffle */
        size_t j;
        crdt_bytes t;
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        j = (size_t)(s >> 33) % (i + 1);
        t = first[i];
        first[i] = first[j];
        first[j] = t;
    }
    ck_assert_int_eq(crdt_merge(&rep, b, first, nf), CRDT_OK);
    ck_assert_uint_gt(rep.pending, 0);
    log_counts(b, &ops, &ch);
    ck_assert_uint_eq(ch - ch0, xc.n + 10);
    ck_assert_uint_eq(ops - ops0, xc.n + 10);
    ck_assert_int_eq(crdt_merge(&rep, b, later, nl), CRDT_OK);
    log_counts(b, &ops, &ch);
    ck_assert_uint_eq(ch - ch0, xa.n + xc.n);
    ck_assert_uint_eq(ops - ops0, xa.n + xc.n);
    ck_assert_uint_eq(tu_pending(b), 0);
    /* a repeat is all duplicates and counts nothing */
    ck_assert_int_eq(crdt_merge(&rep, b, first, nf), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 0);
    log_counts(b, &ops, &ch);
    ck_assert_uint_eq(ch - ch0, xa.n + xc.n);
    ck_assert_int_eq(crdt_replica_check_records(b, NULL, 0), CRDT_OK);
    /* b holds what a and c hold */
    ck_assert_int_eq(tu_sync_one_way(a, c), CRDT_OK);
    log_counts(a, &ops_a, &ch_a);
    (void)ops_a;
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    free(first);
    free(later);
    tu_batch_free(&xa);
    tu_batch_free(&xc);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

/* The same tests with every merge given an aid (libcrdt's mergeaid.h),
 * whatever its size: the aid's records and proofs must change nothing. */
TU_AID_FIXTURE

Suite *
test_suite(void)
{
    Suite *s = suite_create("merge");
    TCase *tc = tcase_create("merge");
    TCase *aid = tcase_create("merge with an aid");

    /* one durable commit per change in some cases: a loaded disk takes
     * seconds, past Check's default of 4 */
    tcase_set_timeout(tc, 60);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_merge_is_idempotent);
    tcase_add_test(tc, test_gap_waits_in_pending);
    tcase_add_test(tc, test_far_ahead_change_is_quarantined);
    tcase_add_test(tc, test_pending_share_is_bounded_per_actor);
    tcase_add_test(tc, test_forged_change_is_refused);
    tcase_add_test(tc, test_other_space_is_refused);
    tcase_add_test(tc, test_truncated_and_garbage_are_eproto);
    tcase_add_test(tc, test_equivocation_is_detected);
    tcase_add_test(tc, test_future_change_is_refused);
    tcase_add_test(tc, test_concurrent_rules);
    tcase_add_test(tc, test_batching_does_not_change_the_result);
    tcase_add_test(tc, test_batch_beyond_the_queue_applies_in_runs);
    tcase_add_test(tc, test_log_counters_of_small_changes);
    suite_add_tcase(s, tc);
    tcase_set_timeout(aid, 60);
    tcase_add_checked_fixture(aid, setup_aid, teardown_aid);
    tcase_add_test(aid, test_merge_is_idempotent);
    tcase_add_test(aid, test_gap_waits_in_pending);
    tcase_add_test(aid, test_far_ahead_change_is_quarantined);
    tcase_add_test(aid, test_pending_share_is_bounded_per_actor);
    tcase_add_test(aid, test_forged_change_is_refused);
    tcase_add_test(aid, test_other_space_is_refused);
    tcase_add_test(aid, test_truncated_and_garbage_are_eproto);
    tcase_add_test(aid, test_equivocation_is_detected);
    tcase_add_test(aid, test_future_change_is_refused);
    tcase_add_test(aid, test_concurrent_rules);
    tcase_add_test(aid, test_batching_does_not_change_the_result);
    tcase_add_test(aid, test_batch_beyond_the_queue_applies_in_runs);
    tcase_add_test(aid, test_log_counters_of_small_changes);
    suite_add_tcase(s, aid);
    return s;
}
