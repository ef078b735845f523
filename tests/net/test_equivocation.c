/*
 * test_equivocation.c: a replica's directory copied (or a backup
 * restored twice) and both copies writing: the same (actor, seq) with
 * different content. Every sync must find it, both sides must pick the
 * same winner, the loser's ops must land in the quarantine, the copies
 * must converge and no acknowledged write may vanish.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "epoch_internal.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256], dc[256];
static crdt_replica *a, *b, *c;

/* c becomes a byte copy of a (a copied data directory) */
static void
clone_a(void)
{
    crdt_replica_close(a);
    tu_copy_dir(da, dc, sizeof dc);
    a = tu_open_dir(da);
    c = tu_open_dir(dc);
}

static void
setup(void)
{
    tu_pair_open(&a, da, &b, db, sizeof da);
    c = NULL;
}

static void
teardown(void)
{
    tu_pair_close(a, da, b, db);
    if (c != NULL) {
        crdt_replica_close(c);
        test_rmtree(dc);
    }
}

static void
run(crdt_replica *x, crdt_replica *y, crdtnet_report *rx, crdtnet_report *ry,
    int *ex, int *ey)
{
    tu_sync_result res = tu_sessions_run(x, y, NULL);

    *rx = res.rx;
    *ry = res.ry;
    *ex = res.ex;
    *ey = res.ey;
}

static void
sync_ok(crdt_replica *x, crdt_replica *y)
{
    crdtnet_report rx, ry;
    int ex, ey;

    run(x, y, &rx, &ry, &ex, &ey);
    ck_assert_msg(ex == 0 && ey == 0, "sync failed: %d %d: %s / %s", ex, ey,
                  rx.reason, ry.reason);
    ck_assert_int_eq(rx.in_sync, 1);
    ck_assert_int_eq(ry.in_sync, 1);
}

#define assert_same(x, y)                                                 \
    do {                                                                  \
        char hx_[65], hy_[65];                                            \
        tu_hash(hx_, x);                                                  \
        tu_hash(hy_, y);                                                  \
        ck_assert_str_eq(hx_, hy_);                                       \
    } while (0)

static uint64_t
quarantined(crdt_replica *r)
{
    uint64_t n = 0;

    ck_assert_int_eq(epoch_quarantine_count(&n, r), CRDT_OK);
    return n;
}

static uint64_t
equivocations(crdt_replica *r)
{
    return tu_stats(r).equivocations;
}

typedef struct {
    const char *doc;
    int found;
} find_ctx;

static int
find_doc(const epoch_quarantined *q, void *p)
{
    find_ctx *f = p;

    if (q->op.doc_len == strlen(f->doc) &&
        memcmp(q->op.doc, f->doc, q->op.doc_len) == 0 &&
        strstr(q->reason, "equivocation") != NULL)
        f->found = 1;
    return 0;
}

/* present in @p r's state, or in its quarantine as an equivocation */
static int
kept(crdt_replica *r, const char *doc)
{
    char buf[64];
    find_ctx f = { doc, 0 };

    tu_field_str(buf, sizeof buf, r, "c", doc, "v");
    if (buf[0] != '\0')
        return 1;
    ck_assert_int_eq(epoch_quarantine_list(r, find_doc, &f), CRDT_OK);
    return f.found;
}

static int
find_any(const epoch_quarantined *q, void *p)
{
    find_ctx *f = p;

    if (q->op.doc_len == strlen(f->doc) &&
        memcmp(q->op.doc, f->doc, q->op.doc_len) == 0 && q->reason[0] != 0)
        f->found = 1;
    return 0;
}

/* present in @p r's state, or in its quarantine for any reason */
static int
held(crdt_replica *r, const char *doc)
{
    char buf[64];
    find_ctx f = { doc, 0 };

    tu_field_str(buf, sizeof buf, r, "c", doc, "v");
    if (buf[0] != '\0')
        return 1;
    ck_assert_int_eq(epoch_quarantine_list(r, find_any, &f), CRDT_OK);
    return f.found;
}

/* Equal version vectors, different content: both copies wrote seq 2. */
START_TEST(test_equal_vectors_converge)
{
    crdtnet_report rx, ry;
    int ex, ey;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    clone_a();
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "copy", "v", 3), CRDT_OK);
    run(a, c, &rx, &ry, &ex, &ey);
    ck_assert_msg(ex == 0 && ey == 0, "%s / %s", rx.reason, ry.reason);
    ck_assert_int_eq(rx.in_sync, 1);
    ck_assert_int_eq(ry.in_sync, 1);
    ck_assert_uint_eq(rx.equivocations, 1);
    ck_assert_uint_eq(ry.equivocations, 1);
    assert_same(a, c);
    ck_assert_uint_eq(equivocations(a), 1);
    ck_assert_uint_eq(equivocations(c), 1);
    /* nothing lost: the loser's own write was re-applied under its new
     * incarnation, so both writes are in both states */
    ck_assert(kept(a, "orig") && kept(c, "orig"));
    ck_assert(kept(a, "copy") && kept(c, "copy"));
    ck_assert_int_eq(rx.renewed, 1);
    ck_assert_int_eq(ry.renewed, 1);
    ck_assert_int_ne(rx.equivocation_lost, ry.equivocation_lost);
    ck_assert_uint_eq(quarantined(a) + quarantined(c), 0);
    /* a second sync is a plain one */
    sync_ok(a, c);
    /* a bystander that only saw the original follows the same winner */
    sync_ok(b, a);
    assert_same(a, b);
}
END_TEST

/* Unequal chains: the copy wrote more; both sides notice. */
START_TEST(test_unequal_chains_both_notice)
{
    crdtnet_report rx, ry;
    int ex, ey;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    clone_a();
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert_int_eq(tu_put_int(c, "c", doc, "v", i), CRDT_OK);
    }
    sync_ok(a, b); /* the bystander holds the original's seq 2 */
    run(b, c, &rx, &ry, &ex, &ey);
    ck_assert_msg(ex == 0 && ey == 0, "%s / %s", rx.reason, ry.reason);
    ck_assert_int_eq(rx.in_sync, 1);
    ck_assert_int_eq(ry.in_sync, 1);
    ck_assert_int_eq(rx.equivocation_lost, 1); /* the shorter chain */
    ck_assert_uint_eq(quarantined(b), 1);      /* the original's seq 2 */
    ck_assert_uint_eq(rx.equivocations, 1);
    ck_assert_uint_eq(ry.equivocations, 1);
    assert_same(b, c);
    /* the original lost too: it writes "orig" again as a new actor */
    sync_ok(a, b);
    sync_ok(b, c);
    assert_same(a, b);
    assert_same(b, c);
    ck_assert(kept(a, "orig") && kept(c, "orig"));
    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert(kept(a, doc) && kept(b, doc) && kept(c, doc));
    }
    /* and it stays converged */
    sync_ok(a, c);
    ck_assert_uint_eq(equivocations(c), 1);
}
END_TEST

/* After the receiver compacts into an epoch, the copy's change for a
 * folded seq is not a duplicate: it is an equivocation. */
START_TEST(test_after_compaction_nothing_lost)
{
    epoch_builder *bl;
    crdt_bytes one;
    tu_batch all;
    crdt_merge_report mr;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    clone_a();
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "copy", "v", 3), CRDT_OK);
    sync_ok(a, b);
    ck_assert_int_eq(epoch_builder_new(&bl, b), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
    epoch_builder_free(bl);
    /* the copy's seq 2 reaches b by a plain merge (a live push) */
    all = tu_export_all(c);
    ck_assert_uint_ge(all.n, 2);
    one = all.v[all.n - 1];
    ck_assert_int_eq(crdt_merge(&mr, b, &one, 1), CRDT_OK);
    tu_batch_free(&all);
    ck_assert_uint_eq(mr.duplicates, 0);
    ck_assert_uint_eq(mr.conflicts, 1);
    ck_assert(kept(b, "copy"));
    ck_assert(kept(b, "orig"));
}
END_TEST

/* The original wrote after the copy was taken; the copy learns of it at
 * its first sync (a change of its own actor it never wrote) and writes
 * as a new actor from then on: no equivocation ever happens. */
START_TEST(test_copy_detected_at_first_sync)
{
    crdt_actor before, after, orig;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    clone_a();
    before = crdt_replica_actor(c);
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    sync_ok(a, b);
    sync_ok(c, b); /* the copy receives seq 2 of "its" actor */
    after = crdt_replica_actor(c);
    orig = crdt_replica_actor(a);
    ck_assert_mem_eq(before.b, orig.b, 8);
    ck_assert_mem_ne(after.b, orig.b, 8);
    ck_assert_int_eq(tu_put_int(c, "c", "copy", "v", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "orig2", "v", 4), CRDT_OK);
    sync_ok(c, b);
    sync_ok(a, b);
    sync_ok(c, b);
    assert_same(a, b);
    assert_same(b, c);
    ck_assert(kept(a, "copy") && kept(c, "orig2") && kept(b, "orig"));
    ck_assert_uint_eq(equivocations(a) + equivocations(b) + equivocations(c),
                      0);
}
END_TEST

/* The two copies at different epochs: the copy is still at epoch 0 when
 * a bystander folds the original's chain into epoch 1 (the change at the
 * cut was compacted, so no same-epoch fork check ever compares the two
 * versions). The copy resets into the epoch: its own writes for seqs the
 * epoch folds with the original's content must not vanish. @p longer:
 * the copy wrote more than the original (the cut folds fewer of its seqs
 * than it wrote). */
static void
copy_behind_epoch(int longer)
{
    crdtnet_report rx, ry;
    int ex, ey;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    clone_a();
    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "orig%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", 10 + i), CRDT_OK);
    }
    for (int i = 0; i < (longer ? 5 : 2); i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert_int_eq(tu_put_int(c, "c", doc, "v", 20 + i), CRDT_OK);
    }
    sync_ok(a, b);
    tu_migrate(b, NULL, NULL); /* folds the original's seqs 1..4 */
    run(b, c, &rx, &ry, &ex, &ey);
    ck_assert_msg(ex == 0 && ey == 0, "%s / %s", rx.reason, ry.reason);
    sync_ok(b, c);
    sync_ok(a, b);
    sync_ok(b, c);
    assert_same(a, b);
    assert_same(b, c);
    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "orig%d", i);
        ck_assert_msg(kept(b, doc), "%s lost", doc);
    }
    for (int i = 0; i < (longer ? 5 : 2); i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert_msg(kept(c, doc), "%s lost on the copy", doc);
    }
}

START_TEST(test_copy_behind_epoch_shorter)
{
    copy_behind_epoch(0);
}
END_TEST

START_TEST(test_copy_behind_epoch_longer)
{
    copy_behind_epoch(1);
}
END_TEST

/* One change of @p r with the docs @p d0 .. @p d0 + @p n - 1 (n ops). */
static void
put_run(crdt_replica *r, const char *prefix, int d0, int n)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (int i = d0; i < d0 + n; i++) {
        char doc[16];
        crdt_value v = crdt_value_int(i);
        snprintf(doc, sizeof doc, "%s%d", prefix, i);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* The copy's chain folded into two epochs at seq 4; the original, two
 * epochs behind, is rejected beyond policy and resets into them. Its
 * change 3..5 spans the cut (the evidence of the fork) and is unsynced;
 * its change 2..2 lies below the cut and is another version of seq 2
 * than the folded one: it must be quarantined, not archived as folded.
 * (The rejected taker's unsynced pass used to move 3..5 away before the
 * fork was judged, and seq 2 of the original vanished.) */
START_TEST(test_rejected_taker_keeps_its_version_below_the_cut)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result res;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    clone_a();
    put_run(c, "copy", 0, 2);    /* seqs 2..3 */
    put_run(c, "copy", 2, 1);    /* seq 4 */
    put_run(a, "orig", 0, 1);    /* seq 2 */
    put_run(a, "orig", 1, 3);    /* seqs 3..5 */
    sync_ok(b, c);
    tu_migrate(b, NULL, NULL);   /* folds the copy's chain at seq 4 */
    tu_migrate(b, NULL, NULL);
    o.policy.max_epochs_behind = 1;
    res = tu_sessions_run(a, b, &o);
    ck_assert_msg(res.ex == 0 && res.ey == 0, "%s / %s", res.rx.reason,
                  res.ry.reason);
    ck_assert_msg(res.rx.rejected == 1, "%s / %s", res.rx.reason, res.ry.reason);
    for (int i = 0; i < 4; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "orig%d", i);
        ck_assert_msg(held(a, doc), "%s lost", doc);
    }
    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert_msg(held(a, doc) && held(b, doc), "%s lost", doc);
    }
}
END_TEST

/* The giver's log beyond an epoch's cut holds the original's chain, cut
 * into other changes than the copy's (2..2, 3..5 against 2..3, 4..4): no
 * change of the copy shares a key with one of the giver's, and the cut
 * (at seq 1, before the copy was made) names no fork. The copy's reset
 * must move its own version to the quarantine before the giver's log
 * joins it; left in place, the replay met two changes for seq 2 and the
 * reset failed on every sync (cannot apply the snapshot). */
START_TEST(test_staged_chain_cut_differently_replaces_ours)
{
    crdtnet_report rx, ry;
    int ex, ey;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    tu_migrate(b, NULL, NULL); /* the cut: seq 1 */
    clone_a();
    put_run(a, "orig", 0, 1);  /* seq 2 */
    put_run(a, "orig", 1, 3);  /* seqs 3..5 */
    put_run(c, "copy", 0, 2);  /* seqs 2..3 */
    put_run(c, "copy", 2, 1);  /* seq 4 */
    sync_ok(a, b);             /* b's log at epoch 1: the original's */
    run(c, b, &rx, &ry, &ex, &ey);
    ck_assert_msg(ex == 0 && ey == 0, "%s / %s", rx.reason, ry.reason);
    ck_assert_int_eq(rx.snapshot_received, 1);
    sync_ok(c, b);
    sync_ok(a, b);
    sync_ok(c, b);
    assert_same(a, b);
    assert_same(b, c);
    ck_assert_uint_ge(equivocations(c), 1);
    for (int i = 0; i < 4; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "orig%d", i);
        ck_assert_msg(held(c, doc), "%s lost", doc);
    }
    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert_msg(held(c, doc) && held(b, doc), "%s lost", doc);
    }
}
END_TEST

static void
put_text(crdt_replica *r, const char *text)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "doc", "t", 0, text,
                                          strlen(text)),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* How often @p needle occurs in text c/doc/t of @p r. */
static int
text_count(crdt_replica *r, const char *needle)
{
    crdt_read *rd;
    char *txt = NULL;
    size_t len = 0;
    int n = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_text(&txt, &len, rd, "c", "doc", "t") == CRDT_OK)
        for (const char *p = txt; (p = strstr(p, needle)) != NULL; p++)
            n++;
    crdt_read_end(rd);
    crdt_text_free(txt);
    return n;
}

/* Insert @p text into c/doc/t of @p r right after the first @p needle. */
static void
put_text_after(crdt_replica *r, const char *needle, const char *text)
{
    crdt_read *rd;
    crdt_txn *t;
    char *txt = NULL;
    const char *at;
    size_t len = 0, pos;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&txt, &len, rd, "c", "doc", "t"),
                     CRDT_OK);
    crdt_read_end(rd);
    at = strstr(txt, needle);
    ck_assert_ptr_nonnull(at);
    pos = (size_t)(at - txt) + strlen(needle); /* ASCII: bytes = points */
    crdt_text_free(txt);
    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "doc", "t", pos, text,
                                          strlen(text)),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

/* Two sibling epochs fold the two copies' versions of seq 2: b's folds
 * the original's, d's (the canonical one: it folds more) the copy's.
 * The copy first resets into b's epoch and loses its seq 2 there; it
 * must keep it in the quarantine, not re-write it under a new actor:
 * when it later follows d's epoch, which holds its seq 2, a re-written
 * copy would insert its text a second time. */
START_TEST(test_copy_lost_to_one_epoch_won_by_another)
{
    char dd[256];
    unsigned char space[16];
    crdt_replica *d;
    crdtnet_report rx, ry;
    int ex, ey;

    crdt_replica_space_id(a, space);
    d = tu_create(dd, sizeof dd, space);
    ck_assert_int_eq(epoch_attach(d), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    sync_ok(a, d);
    clone_a();
    put_text(a, "orig");
    put_text(c, "copy");
    sync_ok(a, b);
    tu_migrate(b, NULL, NULL);   /* folds the original's seq 2 */
    sync_ok(c, d);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tu_put_int(d, "c", "more", "v", i), CRDT_OK);
    tu_migrate(d, NULL, NULL);   /* folds the copy's seq 2, and more */
    run(c, b, &rx, &ry, &ex, &ey); /* the copy loses at b's epoch */
    ck_assert_msg(ex == 0 && ey == 0, "%s / %s", rx.reason, ry.reason);
    ck_assert_int_eq(text_count(c, "copy"), 1); /* re-applied as a copy */
    /* typed right after the copy: its left origin is the copy's last
     * element, which d's epoch applies as deleted (the original shows) */
    put_text_after(c, "copy", "tail");
    for (int round = 0; round < 3; round++) {
        sync_ok(c, d);
        sync_ok(b, d);
        sync_ok(a, d);
    }
    assert_same(a, d);
    assert_same(b, d);
    assert_same(c, d);
    ck_assert_int_eq(text_count(d, "copy"), 1);
    ck_assert_int_eq(text_count(c, "copy"), 1);
    ck_assert_int_eq(text_count(d, "orig"), 1); /* a lost it: re-applied */
    ck_assert_int_eq(text_count(d, "tail"), 1);
    crdt_replica_close(d);
    test_rmtree(dd);
}
END_TEST

/* A session whose HELLOs named no fork, and a copy's version of seq 2
 * reaches b from a third replica after b sent its HELLO: a then sends
 * its own seq 2, which b quarantines (an equivocation met by the
 * merge). Both end with equal vvs and different states; that is not a
 * divergence but a fork vvs cannot show: "not in sync", no error on
 * either side, and the next sync settles it with nothing lost. */
START_TEST(test_fork_met_after_hello_is_not_divergence)
{
    /* version 3: both HELLOs go at once, so the pumps below stop
     * between the HELLOs and the rest of the session */
    crdtnet_session_options v3 = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sa, *sb;
    crdt_merge_report mr;
    tu_batch all;
    crdt_bytes one;
    const crdtnet_report *ra, *rb;

    v3.sync_proto = 3;
    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    clone_a();
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "copy", "v", 3), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sa, a, &v3), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sb, b, &v3), CRDT_OK);
    tu_pump(sa, sb);    /* a's HELLO */
    tu_pump(sb, sa);    /* b's HELLO (seq 1 of the actor) and FORKS */
    all = tu_export_all(c);
    one = all.v[all.n - 1]; /* the copy's seq 2, from a third replica */
    ck_assert_int_eq(crdt_merge(&mr, b, &one, 1), CRDT_OK);
    tu_batch_free(&all);
    for (int round = 0; round < 1000; round++) {
        int moved = tu_pump(sa, sb);
        moved |= tu_pump(sb, sa);
        if (!moved)
            break;
    }
    ra = crdtnet_session_report(sa);
    rb = crdtnet_session_report(sb);
    ck_assert_msg(crdtnet_session_error(sa) == 0 &&
                      crdtnet_session_error(sb) == 0,
                  "%s / %s", ra->reason, rb->reason);
    ck_assert_uint_eq(rb->conflicts, 1);
    ck_assert_int_eq(ra->in_sync, 0);
    ck_assert_int_eq(rb->in_sync, 0);
    crdtnet_session_free(sa);
    crdtnet_session_free(sb);
    sync_ok(a, b);
    sync_ok(b, c);
    sync_ok(a, b);
    assert_same(a, b);
    assert_same(b, c);
    ck_assert(held(a, "orig") && held(b, "orig") && held(c, "orig"));
    ck_assert(held(a, "copy") && held(b, "copy") && held(c, "copy"));
}
END_TEST

/* The same verdict still catches a real divergence: equal ops, one
 * state altered behind its log, nothing written during the session. */
START_TEST(test_divergence_still_reported)
{
    crdtnet_report rx, ry;
    int ex, ey;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    tu_state_put_ghost(b, "v", 9);
    run(a, b, &rx, &ry, &ex, &ey);
    ck_assert_int_eq(ex, CRDT_ECORRUPT);
    ck_assert_int_eq(ey, CRDT_ECORRUPT);
}
END_TEST

/* A divergence met in a session that moves changes: the side that only
 * received them holds exactly the heads the peer announced and reports
 * it; when both sides received, neither can tell a divergence from a
 * version one of them got from a third replica (seed 4705), so the
 * session ends "not in sync" and the next one, where nothing moves,
 * reports it. */
START_TEST(test_divergence_reported_once_heads_are_the_announced_ones)
{
    /* _i: 0 protocol 4 (heads from the summary), 1 protocol 3 (the
     * peer's HELLO heads) */
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result res;

    if (_i == 1)
        o.sync_proto = 3;
    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    sync_ok(a, b);
    tu_state_put_ghost(b, "v", 9);
    ck_assert_int_eq(tu_put_int(a, "c", "one", "v", 2), CRDT_OK);
    res = tu_sessions_run(a, b, &o); /* a -> b only: b judges */
    ck_assert_int_eq(res.ey, CRDT_ECORRUPT);

    ck_assert_int_eq(tu_put_int(a, "c", "two", "v", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "three", "v", 4), CRDT_OK);
    res = tu_sessions_run(a, b, &o); /* both ways: nobody can judge */
    ck_assert_msg(res.ex == 0 && res.ey == 0, "%s / %s", res.rx.reason,
                  res.ry.reason);
    ck_assert_int_eq(res.rx.in_sync, 0);
    ck_assert_int_eq(res.ry.in_sync, 0);
    res = tu_sessions_run(a, b, &o); /* nothing moves */
    ck_assert_int_eq(res.ex, CRDT_ECORRUPT);
    ck_assert_int_eq(res.ey, CRDT_ECORRUPT);
}
END_TEST

/* A copy's version of a seq, parked ahead of the head, then the true
 * chain reaching it: the parked version never follows the head. It goes
 * to the quarantine and the merge goes on (it used to fail that merge,
 * and every later one of the actor, with CRDT_ECONFLICT: simulator
 * seed 1675). */
START_TEST(test_parked_copy_version_is_quarantined_when_the_chain_arrives)
{
    crdt_merge_report rep;
    crdt_read *rd;
    crdt_stats st;
    uint64_t held = 0;
    char ha[65], hb[65];
    tu_batch xa, xc;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "v", 1), CRDT_OK);
    clone_a();
    ck_assert_int_eq(tu_put_int(a, "c", "d", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "v", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "d", "w", 20), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "d", "w", 30), CRDT_OK);
    xa = tu_export_all(a);
    xc = tu_export_all(c);
    ck_assert_uint_eq(xa.n, 3);
    ck_assert_uint_eq(xc.n, 3);
    ck_assert_int_eq(crdt_merge(NULL, b, xa.v, 1), CRDT_OK); /* seq 1 */
    ck_assert_int_eq(crdt_merge(&rep, b, &xc.v[2], 1), CRDT_OK); /* c's 3 */
    ck_assert_uint_eq(rep.pending, 1);
    ck_assert_int_eq(crdt_merge(&rep, b, &xa.v[1], 2), CRDT_OK); /* a's 2, 3 */
    ck_assert_uint_eq(rep.changes_applied, 2);
    ck_assert_uint_eq(rep.conflicts, 1);
    ck_assert_int_eq(epoch_quarantine_count(&held, b), CRDT_OK);
    ck_assert_uint_eq(held, 1);
    ck_assert_int_eq(crdt_read_begin(&rd, b), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    ck_assert_uint_eq(st.pending, 0);
    crdt_read_end(rd);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&xa);
    tu_batch_free(&xc);
}
END_TEST

static int
count_kinds(const epoch_quarantined *q, void *p)
{
    int *seen = p;

    if (strstr(q->reason, "equivocation") != NULL)
        seen[0]++;
    else
        seen[1]++;
    return 0;
}

/* A lens refuses the original's op at (actor, 2) and the copy's op for
 * the same (actor, 2) is an equivocation: two quarantine entries. */
START_TEST(test_quarantine_keys_do_not_collide)
{
    epoch_builder *bl;
    epoch_lens *l = NULL;
    static const char lens[] = "collection c 1 -> 2\nremove v\n";
    tu_batch all;
    crdt_bytes one;
    crdt_merge_report mr;
    int seen[2] = { 0, 0 };

    ck_assert_int_eq(tu_put_int(a, "c", "base", "w", 1), CRDT_OK);
    sync_ok(a, b);
    clone_a();
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "copy", "v", 3), CRDT_OK);
    ck_assert_int_eq(epoch_lens_parse(&l, lens, strlen(lens), NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, b), CRDT_OK);
    ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
    epoch_builder_free(bl);
    epoch_lens_free(l);
    all = tu_export_all(a); /* the original's seq 2: v removed by the lens */
    one = all.v[all.n - 1];
    ck_assert_int_eq(crdt_merge(&mr, b, &one, 1), CRDT_OK);
    tu_batch_free(&all);
    ck_assert_uint_eq(mr.quarantined_ops, 1);
    all = tu_export_all(c); /* the copy's seq 2 */
    one = all.v[all.n - 1];
    ck_assert_int_eq(crdt_merge(&mr, b, &one, 1), CRDT_OK);
    tu_batch_free(&all);
    ck_assert_uint_eq(mr.conflicts, 1);
    ck_assert_uint_eq(quarantined(b), 2);
    ck_assert_int_eq(epoch_quarantine_list(b, count_kinds, seen), CRDT_OK);
    ck_assert_int_eq(seen[0], 1);
    ck_assert_int_eq(seen[1], 1);
}
END_TEST

/* The change @p r wrote last, decoded into @p ch (its bytes in @p keep,
 * which the caller frees with tu_batch_free()). */
static void
last_change(crdt_replica *r, tu_batch *keep, crdt_change *ch)
{
    *keep = tu_export_all(r);
    ck_assert_uint_gt(keep->n, 0);
    ck_assert_int_eq(crdt_change_decode(ch, keep->v[keep->n - 1].data,
                                        keep->v[keep->n - 1].len),
                     CRDT_OK);
}

static size_t
list_len(crdt_replica *r)
{
    crdt_read *rd;
    crdt_value *v = NULL;
    size_t n = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_list(&v, &n, rd, "c", "doc", "l") != CRDT_OK)
        n = 0;
    crdt_read_end(rd);
    crdt_list_free(v);
    return n;
}

/* a writes @p n ops in one change (@p op writes op i), then b the same
 * ops as copies naming a's, one each. */
static void
original_and_copies(void (*op)(crdt_txn *t, int i), int n)
{
    crdt_actor orig = crdt_replica_actor(a);
    crdt_change ch;
    tu_batch keep;
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int i = 0; i < n; i++)
        op(t, i);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    last_change(a, &keep, &ch);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    for (int i = 0; i < n; i++) {
        ck_assert_int_eq(crdt_txn_copy_of(t, &orig, ch.seq + (uint64_t)i,
                                          ch.hash, ch.hlc + (uint64_t)i),
                         CRDT_OK);
        op(t, i);
    }
    ck_assert_int_eq(crdt_txn_copy_of(t, NULL, 0, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_batch_free(&keep);
}

static void
inserts(crdt_txn *t, int i)
{
    crdt_value seven = crdt_value_int(7);

    if (i == 0)
        ck_assert_int_eq(crdt_txn_text_insert(t, "c", "doc", "t", 0, "orig",
                                              4),
                         CRDT_OK);
    else
        ck_assert_int_eq(crdt_txn_list_insert(t, "c", "doc", "l", 0, &seven),
                         CRDT_OK);
}

/* A copy of an insert (a text's and a list's) and the original reach
 * replicas in either order, and the copy's writer gets the original
 * after writing it: each shows once everywhere and the states agree.
 * Before copies and originals settled as one element, the copy applied
 * after its original (or before it) showed beside it (libcrdt
 * seq_copy.c). */
START_TEST(test_copy_and_original_show_once_in_either_order)
{
    char dd[256], de[256];
    unsigned char space[16];
    crdt_replica *d, *e;

    crdt_replica_space_id(a, space);
    d = tu_create(dd, sizeof dd, space);
    e = tu_create(de, sizeof de, space);
    original_and_copies(inserts, 2); /* b copies a's two inserts */
    ck_assert_int_eq(tu_sync_one_way(d, a), CRDT_OK); /* original first */
    ck_assert_int_eq(tu_sync_one_way(d, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(e, b), CRDT_OK); /* copy first */
    ck_assert_int_eq(tu_sync_one_way(e, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    crdt_replica *all[] = { a, b, d, e };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(text_count(all[i], "orig"), 1);
        ck_assert_uint_eq(list_len(all[i]), 1);
        assert_same(all[i], a);
    }
    crdt_replica_close(d);
    crdt_replica_close(e);
    test_rmtree(dd);
    test_rmtree(de);
}
END_TEST

/* c/doc/@p name of @p r: a counter's value or a set's size, 0 when it
 * does not show. */
static int64_t
shown(crdt_replica *r, const char *name)
{
    crdt_read *rd;
    crdt_field f;
    int64_t n = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_field(&f, rd, "c", "doc", name) == CRDT_OK) {
        ck_assert(f.kind == CRDT_FIELD_COUNTER || f.kind == CRDT_FIELD_SET);
        n = f.kind == CRDT_FIELD_COUNTER ? f.counter : (int64_t)f.n_elems;
    }
    crdt_read_end(rd);
    return n;
}

static int
count_name(const char *name, size_t len, void *ctx)
{
    (void)name;
    (void)len;
    (*(int *)ctx)++;
    return CRDT_OK;
}

/* @p r's collections and documents, counted: a waiting copy's record is
 * neither. */
static void
one_doc_in_one_collection(crdt_replica *r)
{
    crdt_read *rd;
    uint64_t docs = 0;
    int colls = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_collections(rd, count_name, &colls), CRDT_OK);
    ck_assert_int_eq(crdt_read_doc_count(&docs, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_int_eq(colls, 1);
    ck_assert_uint_eq(docs, 1);
}

/* Increment c/doc/n by 5 (op 0), add "x" to c/doc/s (op 1). */
static void
incr_and_add(crdt_txn *t, int i)
{
    crdt_value x = crdt_value_str("x", 1);

    if (i == 0)
        ck_assert_int_eq(crdt_txn_incr(t, "c", "doc", "n", 5), CRDT_OK);
    else
        ck_assert_int_eq(crdt_txn_sadd(t, "c", "doc", "s", &x), CRDT_OK);
}

/* The same for a counter increment and a set add (libcrdt op_copy.c):
 * the increment counts once whichever of copy and original comes first
 * (it counted twice), and a remove that saw only the original's add
 * takes the element away where the copy comes after it (the copy's own
 * tag kept it). */
START_TEST(test_copied_increment_and_add_count_once_in_either_order)
{
    char dd[256], de[256];
    unsigned char space[16];
    crdt_replica *d, *e;
    crdt_value x = crdt_value_str("x", 1);
    crdt_txn *t;

    crdt_replica_space_id(a, space);
    d = tu_create(dd, sizeof dd, space);
    e = tu_create(de, sizeof de, space);
    original_and_copies(incr_and_add, 2); /* b copies a's two ops */
    ck_assert_int_eq(shown(b, "n"), 5); /* the copy alone: it counts */
    ck_assert_int_eq(shown(b, "s"), 1);
    /* d: the original, a remove that sees only its tag, then the copy */
    ck_assert_int_eq(tu_sync_one_way(d, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, d), CRDT_OK);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "doc", "s", &x), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(d, b), CRDT_OK);
    ck_assert_int_eq(shown(d, "n"), 5);
    ck_assert_int_eq(shown(d, "s"), 0);
    /* e: the copy first, then the original, then d's remove */
    ck_assert_int_eq(tu_sync_one_way(e, b), CRDT_OK);
    ck_assert_int_eq(shown(e, "n"), 5);
    one_doc_in_one_collection(e); /* two copies wait */
    ck_assert_int_eq(tu_sync_one_way(e, a), CRDT_OK);
    ck_assert_int_eq(shown(e, "n"), 5);
    ck_assert_int_eq(shown(e, "s"), 1);
    ck_assert_int_eq(tu_sync_one_way(e, d), CRDT_OK);
    ck_assert_int_eq(shown(e, "s"), 0);
    ck_assert_int_eq(tu_sync_one_way(a, d), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(d, a), CRDT_OK);
    crdt_replica *all[] = { a, b, d, e };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(shown(all[i], "n"), 5);
        ck_assert_int_eq(shown(all[i], "s"), 0);
        assert_same(all[i], a);
    }
    /* a later increment of either actor counts as usual */
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "doc", "n", 2), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(e, b), CRDT_OK);
    ck_assert_int_eq(shown(e, "n"), 7);
    crdt_replica_close(d);
    crdt_replica_close(e);
    test_rmtree(dd);
    test_rmtree(de);
}
END_TEST

/* A new replica of a's space, in @p dir (@p n bytes). */
static crdt_replica *
peer_of_a(char *dir, size_t n)
{
    unsigned char space[16];

    crdt_replica_space_id(a, space);
    return tu_create(dir, n, space);
}

/* A few ms pass: the next write's stamp is past every one made so far
 * on this host (stamps are ms << 16 | counter). */
static void
clock_moves_on(void)
{
    struct timespec ms = { 0, 3000000 };

    nanosleep(&ms, NULL);
}

/* c/doc/@p name of @p r as an int register; -1 when it does not show. */
static int64_t
reg(crdt_replica *r, const char *name)
{
    crdt_read *rd;
    crdt_field f;
    int64_t n = -1;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_field(&f, rd, "c", "doc", name) == CRDT_OK &&
        f.kind == CRDT_FIELD_REGISTER && f.value.type == CRDT_VINT)
        n = f.value.u.i;
    crdt_read_end(rd);
    return n;
}

/* c/doc/v = 1 (op 0), c/doc/w = 3 (op 1). */
static void
two_puts(crdt_txn *t, int i)
{
    crdt_value v = crdt_value_int(i == 0 ? 1 : 3);

    ck_assert_int_eq(crdt_txn_put(t, "c", "doc", i == 0 ? "v" : "w", &v),
                     CRDT_OK);
}

/* A copied register write is its original's write (libcrdt op_copy.c):
 * it is applied under the original's stamp, so a later write that the
 * original lost to wins over the copy too, in any order of arrival.
 * Under its own (newer) stamp the copy overwrote that later write with
 * the old value everywhere. And two values under one stamp (a copy
 * whose value is not its original's) settle on the same one in either
 * order. */
START_TEST(test_copied_register_write_lands_as_its_original)
{
    char dw[256], dd[256], de[256];
    crdt_replica *w = peer_of_a(dw, sizeof dw), *d = peer_of_a(dd, sizeof dd),
                 *e = peer_of_a(de, sizeof de);
    crdt_actor orig = crdt_replica_actor(a);
    crdt_value nine = crdt_value_int(9);
    crdt_change ch;
    tu_batch keep;
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    two_puts(t, 0);
    two_puts(t, 1);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    last_change(a, &keep, &ch);
    /* w saw the original and wrote v after it */
    ck_assert_int_eq(tu_sync_one_way(w, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(w, "c", "doc", "v", 2), CRDT_OK);
    clock_moves_on(); /* b's clock is past w's write */
    /* b copies both ops; w's copy with another value */
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, ch.seq, ch.hash, ch.hlc),
                     CRDT_OK);
    two_puts(t, 0);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, ch.seq + 1, ch.hash,
                                      ch.hlc + 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "doc", "w", &nine), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(reg(b, "w"), 9);
    /* d: the copy, w's write, the original; e: the other way round */
    ck_assert_int_eq(tu_sync_one_way(d, b), CRDT_OK);
    ck_assert_int_eq(reg(d, "v"), 1);
    ck_assert_int_eq(tu_sync_one_way(d, w), CRDT_OK);
    ck_assert_int_eq(reg(d, "v"), 2);
    ck_assert_int_eq(tu_sync_one_way(e, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(e, w), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(e, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, w), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(w, a), CRDT_OK);
    crdt_replica *all[] = { a, b, w, d, e };
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(reg(all[i], "v"), 2);
        ck_assert_int_eq(reg(all[i], "w"), 9); /* the higher bytes */
        assert_same(all[i], a);
    }
    tu_batch_free(&keep);
    crdt_replica_close(w);
    crdt_replica_close(d);
    crdt_replica_close(e);
    test_rmtree(dw);
    test_rmtree(dd);
    test_rmtree(de);
}
END_TEST

/* c/doc/l[0] of @p r as an int; -1 when there is none. */
static int64_t
first_in_list(crdt_replica *r)
{
    crdt_read *rd;
    crdt_value *v = NULL;
    size_t n = 0;
    int64_t x = -1;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_list(&v, &n, rd, "c", "doc", "l") == CRDT_OK && n > 0 &&
        v[0].type == CRDT_VINT)
        x = v[0].u.i;
    crdt_read_end(rd);
    crdt_list_free(v);
    return x;
}

/* The same for a list element's value (LSET). */
START_TEST(test_copied_list_set_lands_as_its_original)
{
    char dw[256], dd[256];
    crdt_replica *w = peer_of_a(dw, sizeof dw), *d = peer_of_a(dd, sizeof dd);
    crdt_actor orig = crdt_replica_actor(a);
    crdt_value one = crdt_value_int(1), five = crdt_value_int(5);
    crdt_change ch;
    tu_batch keep;
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_insert(t, "c", "doc", "l", 0, &one),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK); /* b has the element */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "doc", "l", 0, &five),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    last_change(a, &keep, &ch);
    ck_assert_int_eq(tu_sync_one_way(w, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, w), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "doc", "l", 0, &one),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    clock_moves_on(); /* b's clock is past w's set */
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, ch.seq, ch.hash, ch.hlc),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_set(t, "c", "doc", "l", 0, &five),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    /* d: the copy, then w's set (a's insert comes with b's log) */
    ck_assert_int_eq(tu_sync_one_way(d, b), CRDT_OK);
    ck_assert_int_eq(first_in_list(d), 5);
    ck_assert_int_eq(tu_sync_one_way(d, w), CRDT_OK);
    ck_assert_int_eq(first_in_list(d), 1);
    ck_assert_int_eq(tu_sync_one_way(a, w), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(w, a), CRDT_OK);
    crdt_replica *all[] = { a, b, w, d };
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(first_in_list(all[i]), 1);
        ck_assert_uint_eq(list_len(all[i]), 1);
        assert_same(all[i], a);
    }
    tu_batch_free(&keep);
    crdt_replica_close(w);
    crdt_replica_close(d);
    test_rmtree(dw);
    test_rmtree(dd);
}
END_TEST

/* A migration between copy and original: the copy counted first, a
 * lens renamed the field (and with it the copy's part), then the
 * original, written before the migration and so rebased onto the new
 * name, finds the waiting record the migration kept and takes the
 * copy's delta off under the new name. */
START_TEST(test_copy_settles_after_a_lens_renames_its_field)
{
    char de[256];
    unsigned char space[16];
    crdt_replica *e;

    crdt_replica_space_id(a, space);
    e = tu_create(de, sizeof de, space);
    ck_assert_int_eq(epoch_attach(e), CRDT_OK);
    original_and_copies(incr_and_add, 1); /* the increment only */
    ck_assert_int_eq(tu_sync_one_way(e, b), CRDT_OK);
    tu_migrate(e, "collection c 1 -> 2\nrename n -> m\n", NULL);
    sync_ok(e, a); /* a resets onto e's epoch; its original comes over */
    ck_assert_int_eq(shown(e, "m"), 5);
    ck_assert_int_eq(shown(a, "m"), 5);
    ck_assert_int_eq(shown(e, "n"), 0);
    assert_same(e, a);
    crdt_replica_close(e);
    test_rmtree(de);
}
END_TEST

/* A reset's replay goes through the log in key order, and a change it
 * has not reached may still leave the log (parked, quarantined). A copy
 * replayed before its original's change is reached must not count the
 * original as held: here the original cannot apply (its actor's seqs
 * before it are missing) and is parked, so the copy shows; once the
 * missing seqs come, the original applies and the copy's ids go. The
 * copy once went in deleted and, the original parked, nothing showed
 * (seed 15673: the original was later quarantined for good). */
START_TEST(test_replayed_copy_waits_for_an_original_not_yet_judged)
{
    char dd[256];
    unsigned char space[16], key[16];
    crdt_replica *d, *x, *y;
    crdt_actor ax, ay;
    crdt_change ch;
    tu_batch xs, ys;
    crdt_raw *t;
    crdt_txn *tx;
    crdt_merge_report mr;

    /* x writes the original, y the copy; y's actor sorts first, so the
     * replay reaches the copy before the original */
    ax = crdt_replica_actor(a);
    ay = crdt_replica_actor(b);
    x = memcmp(ax.b, ay.b, CRDT_ACTOR_BYTES) > 0 ? a : b;
    y = x == a ? b : a;
    ax = crdt_replica_actor(x);
    crdt_replica_space_id(a, space);
    d = tu_create(dd, sizeof dd, space);
    ck_assert_int_eq(tu_put_int(x, "c", "one", "v", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(x, "c", "two", "v", 2), CRDT_OK);
    put_text(x, "orig");
    last_change(x, &xs, &ch);
    ck_assert_int_eq(crdt_txn_begin(&tx, y), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(tx, &ax, ch.seq, ch.hash, ch.hlc),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(tx, "c", "doc", "t", 0, "orig", 4),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(tx, NULL), CRDT_OK);
    ys = tu_export_all(y);
    ck_assert_int_eq(crdt_merge(&mr, d, &ys.v[ys.n - 1], 1), CRDT_OK);
    tu_batch_free(&ys);
    ck_assert_int_eq(text_count(d, "orig"), 1); /* the copy, waiting */
    /* the original's change in d's log, its actor's seqs before it not */
    crdt__log_key(key, &ax, ch.seq);
    ck_assert_int_eq(crdt_raw_begin(&t, d, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_LOG, key, sizeof key,
                                  xs.v[xs.n - 1].data, xs.v[xs.n - 1].len),
                     CRDT_OK);
    /* as a reset into the genesis does: no heads, an empty state, and
     * the whole log replayed */
    ck_assert_int_eq(crdt_raw_heads_replace(t, (const unsigned char *)"\x90",
                                            1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_swap_state(t), CRDT_OK);
    ck_assert_int_eq(crdt_raw_replay_log(&mr, t, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_uint_eq(mr.pending, 1); /* the original, parked */
    ck_assert_int_eq(text_count(d, "orig"), 1);
    /* the rest of x's chain: the original applies, the copy goes */
    ck_assert_int_eq(crdt_merge(&mr, d, xs.v, xs.n - 1), CRDT_OK);
    tu_batch_free(&xs);
    ck_assert_uint_eq(tu_pending(d), 0);
    ck_assert_int_eq(text_count(d, "orig"), 1);
    ck_assert_int_eq(tu_sync_one_way(x, y), CRDT_OK);
    assert_same(d, x);
    crdt_replica_close(d);
    test_rmtree(dd);
}
END_TEST

/* (d) of libepoch's crossfork.c: the chain of a former incarnation of
 * this replica ends in its log below an epoch's cut (its later changes
 * were set aside, as a rejected reset does, and the replica renewed).
 * Nothing can show whether the epoch folded that version or a copy's, so
 * its changes go to the quarantine (kind u), not to the archive as
 * folded. Seed 16681 lost a copy's seqs 8 to 18 that way. */
START_TEST(test_former_incarnation_below_a_cut_is_kept)
{
    crdt_actor old = crdt_replica_actor(a);
    unsigned char *heads = NULL, key[16];
    size_t heads_len = 0;
    uint64_t moved = 0, forked = 0;
    int own = 1;
    crdt_raw *t;

    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "v", i), CRDT_OK);
    /* the cut: this actor at seq 7 */
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_heads_encode(&heads, &heads_len, t), CRDT_OK);
    /* seqs 4 to 7 leave the log */
    for (uint64_t s = 4; s <= 7; s++) {
        crdt__log_key(key, &old, s);
        ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_LOG, key, sizeof key),
                         CRDT_OK);
    }
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_int_eq(crdt_replica_new_incarnation(a), CRDT_OK);
    ck_assert_mem_ne(crdt_replica_actor(a).b, old.b, CRDT_ACTOR_BYTES);
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(epoch__quarantine_crossforks_in(&moved, &forked, &own, t,
                                                     0, heads, heads_len),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    crdt_free(heads);
    ck_assert_uint_eq(forked, 1);
    ck_assert_int_eq(own, 0); /* not the current actor: no renewal */
    ck_assert_uint_eq(moved, 3);
    ck_assert_uint_eq(quarantined(a), 3);
}
END_TEST

static int
count_other_copy(const epoch_quarantined *q, void *p)
{
    int *n = p;

    if (q->kind == CRDT_QK_OTHER_COPY)
        (*n)++;
    else
        n[1]++;
    return 0;
}

/* A merge that meets the other copy's version of this replica's own
 * actor keeps it in the quarantine as the other copy's (kind 'o'): when
 * this replica loses later, it re-applies what it wrote, never that. It
 * once re-applied both, and the other version, which had won, showed
 * twice. */
START_TEST(test_other_copys_version_is_not_reapplied_as_ours)
{
    crdt_actor own;
    crdt_merge_report mr;
    tu_batch all;
    uint64_t applied = 99;
    int kinds[2] = { 0, 0 };

    clone_a();
    put_text(a, "orig");
    put_text(c, "copy");
    all = tu_export_all(c);
    ck_assert_int_eq(crdt_merge(&mr, a, &all.v[all.n - 1], 1), CRDT_OK);
    tu_batch_free(&all);
    ck_assert_uint_eq(mr.conflicts, 1);
    ck_assert_int_eq(epoch_quarantine_list(a, count_other_copy, kinds),
                     CRDT_OK);
    ck_assert_int_eq(kinds[0], 1);
    ck_assert_int_eq(kinds[1], 0);
    own = crdt_replica_actor(a);
    ck_assert_int_eq(epoch_quarantine_apply_lost(&applied, a, &own),
                     CRDT_OK);
    ck_assert_uint_eq(applied, 0);
    ck_assert_int_eq(text_count(a, "copy"), 0);
    ck_assert_int_eq(text_count(a, "orig"), 1);
    ck_assert_uint_eq(quarantined(a), 1);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("equivocation");
    TCase *tc = tcase_create("clones");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_equal_vectors_converge);
    tcase_add_test(tc, test_unequal_chains_both_notice);
    tcase_add_test(tc, test_after_compaction_nothing_lost);
    tcase_add_test(tc, test_quarantine_keys_do_not_collide);
    tcase_add_test(tc, test_parked_copy_version_is_quarantined_when_the_chain_arrives);
    tcase_add_test(tc, test_copy_detected_at_first_sync);
    tcase_add_test(tc, test_copy_behind_epoch_shorter);
    tcase_add_test(tc, test_copy_behind_epoch_longer);
    tcase_add_test(tc, test_rejected_taker_keeps_its_version_below_the_cut);
    tcase_add_test(tc, test_fork_met_after_hello_is_not_divergence);
    tcase_add_test(tc, test_divergence_still_reported);
    tcase_add_loop_test(tc,
                        test_divergence_reported_once_heads_are_the_announced_ones,
                        0, 2);
    tcase_add_test(tc, test_staged_chain_cut_differently_replaces_ours);
    tcase_add_test(tc, test_copy_lost_to_one_epoch_won_by_another);
    tcase_add_test(tc, test_copy_and_original_show_once_in_either_order);
    tcase_add_test(tc,
                   test_copied_increment_and_add_count_once_in_either_order);
    tcase_add_test(tc, test_copied_register_write_lands_as_its_original);
    tcase_add_test(tc, test_copied_list_set_lands_as_its_original);
    tcase_add_test(tc, test_copy_settles_after_a_lens_renames_its_field);
    tcase_add_test(tc, test_other_copys_version_is_not_reapplied_as_ours);
    tcase_add_test(tc, test_replayed_copy_waits_for_an_original_not_yet_judged);
    tcase_add_test(tc, test_former_incarnation_below_a_cut_is_kept);
    suite_add_tcase(s, tc);
    return s;
}
