/*
 * test_mdb_faults.c: an LMDB call failing at every point of a local
 * write txn (a txn of its own, or crdt_txn_write()), a merge, reads, an
 * export and a reopen. The failing call answers EIO (support/mdbfault.h);
 * each public call then answers CRDT_EIO, ends the txn the error
 * belongs to without another call on it, and leaves every database of
 * the replica byte for byte as it was; the same call then succeeds. The
 * loops stop at the first run that reaches no armed call, so each one
 * fails every LMDB call its operation makes, in turn.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lmdb.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/feed.h"
#include "crdt/members.h"
#include "crdt/text.h"
#include "support/epoch_util.h"
#include "support/mdbfault.h"
#include "support/replica_util.h"
#include "support/support.h"

#define CALLS_MAX 20000 /* far above what any operation here makes */

TU_PAIR_FIXTURE(tu_pair_create)
TU_AID_FIXTURE

static int
op_commit(crdt_replica *r, void *arg)
{
    /* with a doc delete, a text delete and a list set */
    return tu_write_all_kinds(r, 13, *(const int *)arg);
}

/* _i = 1: through crdt_txn_write() (a group of one) */
START_TEST(test_local_txn_fails_at_every_lmdb_call)
{
    unsigned char before[32], after[32];
    int shared = _i;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, shared), CRDT_OK);
    tu_digest_all(a, before);
    ck_assert_int_gt(mdbfault_each_call("commit", a, op_commit, &shared,
                                        NULL, CALLS_MAX),
                     10);
    tu_digest_all(a, after);
    ck_assert_mem_ne(after, before, 32); /* the last run committed */
}
END_TEST

static void
assert_same_state(crdt_replica *x, crdt_replica *y)
{
    char hx[65], hy[65];

    tu_hash(hx, x);
    tu_hash(hy, y);
    ck_assert_str_eq(hx, hy);
}

START_TEST(test_merge_fails_at_every_lmdb_call)
{
    tu_batch x;

    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "own", "v", 1), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_int_gt(mdbfault_each_call("merge", b, tu_merge_batch, &x, NULL,
                                        CALLS_MAX),
                     10);
    /* the same batch again: every change is held already */
    mdbfault_each_call("merge, all held", b, tu_merge_batch, &x, NULL,
                       CALLS_MAX);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    assert_same_state(a, b);
    tu_batch_free(&x);
}
END_TEST

/* Concurrent text and list edits: the merge integrates the other's runs
 * among its own, deletes across them. */
START_TEST(test_concurrent_seq_merge_fails_at_every_lmdb_call)
{
    tu_batch x;

    tu_seqs_pair(a, b);
    x = tu_export_all(a);
    ck_assert_int_gt(mdbfault_each_call("concurrent text merge", b,
                                        tu_merge_batch, &x, NULL, CALLS_MAX),
                     10);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    assert_same_state(a, b);
    tu_batch_free(&x);
}
END_TEST

/* Inserts whose anchors have not come yet, parked, then the changes
 * that bring the anchors (tu_parked_scene()). */
START_TEST(test_parked_inserts_fail_at_every_lmdb_call)
{
    tu_parked sc;

    tu_parked_scene(&sc, a, b);
    ck_assert_int_gt(mdbfault_each_call("merge, anchors missing", a,
                                        tu_merge_batch, &sc.from_c, NULL,
                                        CALLS_MAX),
                     10);
    ck_assert_int_gt(mdbfault_each_call("merge, anchors come", a,
                                        tu_merge_batch, &sc.from_b, NULL,
                                        CALLS_MAX),
                     10);
    tu_parked_close(&sc, a);
}
END_TEST

/* A change of a's actor that another copy of a wrote under the same
 * seq: detected, quarantined, never merged (the chain checks). */
START_TEST(test_equivocation_fails_at_every_lmdb_call)
{
    char dc[256];
    crdt_replica *clone;
    tu_batch x, y;

    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    clone = tu_clone_open(da, dc, sizeof dc); /* behind a's back */
    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(clone, "c", "d", "f", 3), CRDT_OK);
    x = tu_export_all(a);
    y = tu_export_all(clone);
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_OK);
    mdbfault_each_call("merge, an equivocation", b, tu_merge_batch, &y, NULL,
                       CALLS_MAX);
    ck_assert_uint_eq(tu_quarantine_count(b), 1);
    tu_batch_free(&x);
    tu_batch_free(&y);
    crdt_replica_close(clone);
    test_rmtree(dc);
}
END_TEST

static int
count_field(const crdt_field *f, void *ctx)
{
    (void)f;
    ++*(int *)ctx;
    return 0;
}

static int
count_name(const char *name, size_t len, void *ctx)
{
    (void)name;
    (void)len;
    ++*(int *)ctx;
    return 0;
}

/* The text and the list of a document. */
static int
read_seqs(crdt_read *rd, int *got)
{
    crdt_value *vals = NULL;
    char *text = NULL;
    size_t len, n;
    int rc;

    if ((rc = crdt_read_text(&text, &len, rd, "c", "d2", "t")) < 0)
        return rc;
    free(text);
    if ((rc = crdt_read_list(&vals, &n, rd, "c", "d2", "l")) < 0)
        return rc;
    crdt_list_free(vals);
    *got += (int)(len + n);
    return CRDT_OK;
}

/* Reads of every kind in one snapshot; @p arg (int) counts what they
 * saw. */
static int
read_all(crdt_replica *r, void *arg)
{
    int *got = arg;
    crdt_read *rd = NULL;
    crdt_vv *vv = NULL;
    crdt_field f;
    crdt_stats st;
    uint64_t docs;
    unsigned char after[4 * CRDT_HEAD_ENTRY_BYTES], *heads = NULL;
    crdt_actor *forks = NULL;
    size_t n = 0, hl;
    int rc;

    *got = 0;
    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    if ((rc = read_seqs(rd, got)) == CRDT_OK &&
        (rc = crdt_read_doc(rd, "c", "d1", count_field, got)) == CRDT_OK &&
        (rc = crdt_read_docs(rd, "c", count_name, got)) == CRDT_OK &&
        (rc = crdt_read_collections(rd, count_name, got)) == CRDT_OK &&
        (rc = crdt_read_field(&f, rd, "c", "d2", "t")) == CRDT_OK &&
        (rc = crdt_read_stats(&st, rd)) == CRDT_OK &&
        (rc = crdt_read_doc_count(&docs, rd)) == CRDT_OK &&
        (rc = crdt_read_heads_after(after, 4, &n, NULL, rd)) ==
            CRDT_OK)
        rc = crdt_read_vv(&vv, rd);
    if (rc == CRDT_OK && n > 0) { /* the page after the first head */
        crdt_actor first;
        size_t m = 0;

        memcpy(first.b, after, CRDT_ACTOR_BYTES);
        rc = crdt_read_heads_after(after, 4, &m, &first, rd);
        *got += (int)m;
    }
    crdt_vv_free(vv);
    crdt_read_end(rd);
    *got += (int)n;
    /* the heads as a peer gets them, and the forks they show: none */
    if (rc == CRDT_OK && (rc = crdt_heads_export(&heads, &hl, r)) == CRDT_OK) {
        rc = crdt_forks_find(&forks, &n, r, heads, hl);
        *got += (int)n;
        crdt_free(forks);
        crdt_free(heads);
    }
    return rc;
}

START_TEST(test_reads_fail_at_every_lmdb_call)
{
    int want = 0, got = 0;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(read_all(a, &want), CRDT_OK);
    ck_assert_int_gt(want, 3);
    mdbfault_each_call("read", a, read_all, &got, NULL, CALLS_MAX);
    ck_assert_int_eq(got, want);
}
END_TEST

/* Every change of @p r through an export; @p arg (size_t) counts
 * them. */
static int
export_all(crdt_replica *r, void *arg)
{
    size_t *n = arg;
    crdt_export *e;
    const unsigned char *buf;
    size_t len;
    int rc;

    *n = 0;
    if ((rc = crdt_export_begin(&e, r, NULL)) < 0)
        return rc;
    while ((rc = crdt_export_next(e, &buf, &len)) == CRDT_OK)
        ++*n;
    crdt_export_end(e);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

START_TEST(test_export_fails_at_every_lmdb_call)
{
    size_t want = 0, got = 0;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK); /* a merged run too */
    ck_assert_int_eq(tu_put_int(b, "c", "d9", "v", 9), CRDT_OK);
    ck_assert_int_eq(export_all(b, &want), CRDT_OK);
    ck_assert_uint_eq(want, 13);
    mdbfault_each_call("export", b, export_all, &got, NULL, CALLS_MAX);
    ck_assert_uint_eq(got, want);
}
END_TEST

/* _i = 1: a replica of format 4, whose open bumps the number; 2: of
 * format 1, whose open recomputes the slots' hashes (in the txn that
 * opens it, so a failure leaves the old format to upgrade again). */
START_TEST(test_reopen_fails_at_every_lmdb_call)
{
    unsigned char before[32], after[32], v1[32];
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    char path[300], h_before[65], h_after[65];
    crdt_raw *t;
    const void *fmt;
    size_t fmt_len;
    long n;
    int done = 0;

    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    tu_digest_all(a, before);
    tu_hash(h_before, a);
    crdt_replica_close(a);
    a = NULL;
    o.no_sync = 1;
    snprintf(path, sizeof path, "%s/r", da); /* tu_create()'s */
    if (_i == 1)
        tu_set_format(path, 4);
    else if (_i == 2)
        tu_downgrade_to_1(path, v1);
    for (n = 1; n < CALLS_MAX && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_replica_open(&a, path, &o), n, "open");
        if (done == 2) {
            crdt_replica_close(a);
            a = NULL;
            done = 0;
        } else if (!done) {
            ck_assert_ptr_null(a);
        }
    }
    ck_assert_int_eq(done, 1);
    mdbfault_reach(__func__, n);
    tu_hash(h_after, a);
    ck_assert_str_eq(h_after, h_before);
    ck_assert_int_eq(crdt_raw_begin(&t, a, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, CRDT_DB_META, "format", 6, &fmt,
                                  &fmt_len), CRDT_OK);
    ck_assert_uint_eq(fmt_len, 4);
    ck_assert_uint_gt(((const unsigned char *)fmt)[3], 4); /* upgraded */
    crdt_raw_abort(t);
    if (_i == 0) {
        tu_digest_all(a, after);
        ck_assert_mem_eq(after, before, 32);
    }
}
END_TEST

/* A create that fails leaves either no replica, and the next create
 * makes it, or (a failure after the creation's commit, in the reads
 * that follow it) the whole replica, which an open opens. */
START_TEST(test_create_fails_at_every_lmdb_call)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT, plain;
    unsigned char space[16], got[16];
    char dir[256], path[300];
    crdt_replica *r = NULL;
    long n;
    int done = 0, rc, left_whole = 0;

    crdt_replica_space_id(a, space);
    o.create = 1;
    o.no_sync = 1;
    o.space_id = space;
    plain = o;
    plain.create = 0;
    plain.space_id = NULL;
    for (n = 1; n < CALLS_MAX && !done; n++) {
        ck_assert_int_eq(test_tmpdir(dir, sizeof dir), 0);
        snprintf(path, sizeof path, "%s/r", dir);
        mdbfault_arm(n);
        done = mdbfault_judge(crdt_replica_open(&r, path, &o), n, "create");
        if (!done) {
            ck_assert_ptr_null(r);
            rc = crdt_replica_open(&r, path, &o);
            if (rc == CRDT_EEXISTS) {
                left_whole++;
                rc = crdt_replica_open(&r, path, &plain);
            }
            ck_assert_int_eq(rc, CRDT_OK);
        }
        crdt_replica_space_id(r, got);
        ck_assert_mem_eq(got, space, 16);
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", (int)n), CRDT_OK);
        ck_assert_int_eq(tu_sync_one_way(r, a), CRDT_OK);
        assert_same_state(r, a);
        crdt_replica_close(r);
        r = NULL;
        test_rmtree(dir);
    }
    ck_assert_int_eq(done, 1);
    ck_assert_int_gt(n, 5);
    ck_assert_int_gt(left_whole, 0);
}
END_TEST

/* A batch whose first change of an actor is missing parks the rest in
 * the pending area; the batch that brings it applies them all. */
START_TEST(test_merge_with_a_gap_fails_at_every_lmdb_call)
{
    tu_batch x, rest, first;

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    x = tu_export_all(a);
    rest.v = x.v + 1;
    rest.n = x.n - 1;
    first.v = x.v;
    first.n = 1;
    mdbfault_each_call("merge, parked", b, tu_merge_batch, &rest, NULL,
                       CALLS_MAX);
    ck_assert_uint_eq(tu_pending(b), x.n - 1);
    mdbfault_each_call("merge, the gap filled", b, tu_merge_batch, &first, NULL,
                       CALLS_MAX);
    ck_assert_uint_eq(tu_pending(b), 0);
    assert_same_state(a, b);
    tu_batch_free(&x);
}
END_TEST

/* Changes their writer stored without signatures (each proven by the
 * next, the last signed) park at a replica lacking the first; the merge
 * that brings it drains them, each proven by the signed end parked
 * after it. */
START_TEST(test_unsigned_run_drained_fails_at_every_lmdb_call)
{
    tu_batch signed_x, stored, rest, first;
    size_t unsigned_n = 0;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "f", i), CRDT_OK);
    signed_x = tu_export_all(a);
    stored = tu_export_as_stored(a);
    ck_assert_uint_eq(stored.n, 5);
    for (size_t i = 0; i < stored.n; i++) {
        crdt_change ch;
        unsigned char *copy = malloc(stored.v[i].len);

        ck_assert_ptr_nonnull(copy);
        memcpy(copy, stored.v[i].data, stored.v[i].len);
        ck_assert_int_eq(crdt_change_decode(&ch, copy, stored.v[i].len),
                         CRDT_OK);
        unsigned_n += ch.sig == NULL;
        free(copy);
    }
    ck_assert_uint_eq(unsigned_n, 4);
    rest.v = stored.v + 1;
    rest.n = stored.n - 1;
    first.v = signed_x.v;
    first.n = 1;
    ck_assert_int_eq(tu_merge_batch(b, &rest), CRDT_OK);
    ck_assert_uint_eq(tu_pending(b), 4);
    ck_assert_int_gt(mdbfault_each_call("merge, an unsigned run drained", b,
                                        tu_merge_batch, &first, NULL,
                                        CALLS_MAX),
                     10);
    ck_assert_uint_eq(tu_pending(b), 0);
    assert_same_state(a, b);
    tu_batch_free(&signed_x);
    tu_batch_free(&stored);
}
END_TEST

/* The pending area's harder cases (tu_pending_scene()): an actor's
 * share full, a nearer change displaces the farthest to the quarantine;
 * a copy's changes parked, which the chain then meets (at the head, in
 * the pending area) or passes (inside a change it applies) as other
 * versions of their seqs. */
START_TEST(test_pending_cases_fail_at_every_lmdb_call)
{
    tu_pending_cases p;
    uint64_t q;

    tu_pending_scene(&p, a, da, &b, db);
    ck_assert_int_gt(mdbfault_each_call("merge, a copy's changes parked", b,
                                        tu_merge_batch, &p.fork, NULL,
                                        CALLS_MAX),
                     10);
    ck_assert_uint_eq(tu_pending(b), 3); /* the 2nd displaced a's 5th */
    ck_assert_uint_gt(q = tu_quarantine_count(b), 0);
    ck_assert_int_gt(mdbfault_each_call("merge, displacing a parked change",
                                        b, tu_merge_batch, &p.near, NULL,
                                        CALLS_MAX),
                     10);
    ck_assert_uint_eq(tu_pending(b), 3);
    ck_assert_uint_gt(tu_quarantine_count(b), q); /* a's 4th */
    q = tu_quarantine_count(b);
    ck_assert_int_gt(mdbfault_each_call("merge, the chain meets them", b,
                                        tu_merge_batch, &p.all, NULL,
                                        CALLS_MAX),
                     10);
    ck_assert_uint_eq(tu_pending(b), 0);
    ck_assert_uint_eq(tu_quarantine_count(b), q + 2); /* one op each */
    tu_pending_close(&p, a, b);
}
END_TEST

static int
op_grant(crdt_replica *r, void *arg)
{
    const unsigned char *pk = arg;
    crdt_txn *t;
    int rc;

    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = crdt_txn_member_set(t, pk, CRDT_ROLE_WRITER)) < 0 ||
        (rc = crdt_txn_member_set(t, pk + 32, CRDT_ROLE_READER)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

struct role_read {
    const unsigned char *pk;
    crdt_role role;
};

static int
op_role(crdt_replica *r, void *arg)
{
    struct role_read *q = arg;

    return crdt_member_role(r, q->pk, &q->role);
}

static int
op_remove(crdt_replica *r, void *arg)
{
    crdt_txn *t;
    int rc;

    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = crdt_txn_member_remove(t, arg)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

/* A removal merged after the removed writer's later writes: the
 * authority rules replay the log; its two later ops are refused. */
START_TEST(test_removal_replay_fails_at_every_lmdb_call)
{
    tu_trio t;
    tu_batch x;
    char got[32];
    unsigned char pk[32];
    crdt_role role;

    tu_removal_scene(&t, &x);
    ck_assert_int_gt(mdbfault_each_call("removal replayed", t.p, tu_merge_batch,
                                        &x, NULL, CALLS_MAX),
                     10);
    tu_field_str(got, sizeof got, t.p, "c", "y", "f");
    ck_assert_str_eq(got, "");
    /* a removal in a space with roles names the key's actors' heads */
    randombytes_buf(pk, sizeof pk);
    ck_assert_int_eq(tu_set_role(t.o, pk, CRDT_ROLE_WRITER), CRDT_OK);
    mdbfault_each_call("removal, roles on", t.o, op_remove, pk, NULL,
                       CALLS_MAX);
    ck_assert_int_eq(crdt_member_role(t.o, pk, &role), CRDT_OK);
    ck_assert_int_eq(role, CRDT_ROLE_REMOVED);
    tu_batch_free(&x);
    tu_trio_close(&t);
}
END_TEST

/* Granting roles (the member set checked and written), then reading
 * them back; then a writer whose changes a holds is removed. */
START_TEST(test_members_fail_at_every_lmdb_call)
{
    unsigned char pk[64];
    struct role_read q = { pk, CRDT_ROLE_NONE };
    crdt_role want;

    randombytes_buf(pk, sizeof pk);
    mdbfault_each_call("members", a, op_grant, pk, NULL, CALLS_MAX);
    mdbfault_each_call("role", a, op_role, &q, NULL, CALLS_MAX);
    ck_assert_int_eq(crdt_member_role(a, pk, &want), CRDT_OK);
    ck_assert_int_eq(q.role, want);

    crdt_replica_public_key(b, pk);
    ck_assert_int_eq(op_grant(a, pk), CRDT_OK); /* b a writer (pk + 32: a
                                                   stranger a reader) */
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(tu_write_all_kinds(b, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    mdbfault_each_call("member removed", a, op_remove, pk, NULL, CALLS_MAX);
    ck_assert_int_eq(crdt_member_role(a, pk, &want), CRDT_OK);
    ck_assert_int_eq(want, CRDT_ROLE_NONE);
}
END_TEST

static int
op_record_check(crdt_replica *r, void *arg)
{
    (void)arg;
    char why[200];

    return crdt_replica_check_records(r, why, sizeof why);
}

static int
op_page_check(crdt_replica *r, void *arg)
{
    (void)arg;
    char why[200];

    return crdt_replica_check(r, 0, why, sizeof why);
}

/* The checks of the records (every change's hash and signature, the
 * state's hash) and of the pages. */
START_TEST(test_checks_fail_at_every_lmdb_call)
{
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_write_all_kinds(b, 9, 0), CRDT_OK);
    mdbfault_each_call("record check", b, op_record_check, NULL, NULL,
                       CALLS_MAX);
    mdbfault_each_call("page check", b, op_page_check, NULL, NULL,
                       CALLS_MAX);
}
END_TEST

static int
count_event(void *ctx, const crdt_feed_event *ev)
{
    (void)ev;
    ++*(int *)ctx;
    return 0;
}

struct feed_read {
    crdt_feed_cursor from, next, head;
    int events;
};

static int
op_feed(crdt_replica *r, void *arg)
{
    struct feed_read *f = arg;
    int rc;

    f->events = 0;
    if ((rc = crdt_feed_head(&f->head, r)) < 0)
        return rc;
    rc = crdt_feed_since(r, &f->from, NULL, NULL, 0, count_event, &f->events,
                         &f->next);
    return rc < 0 ? rc : CRDT_OK;
}

/* The change feed: its head, and the events from a cursor on. */
START_TEST(test_feed_fails_at_every_lmdb_call)
{
    struct feed_read f;

    memset(&f, 0, sizeof f);
    ck_assert_int_eq(crdt_feed_head(&f.from, a), CRDT_OK);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    mdbfault_each_call("feed", a, op_feed, &f, NULL, CALLS_MAX);
    ck_assert_int_eq(f.events, 5);
    ck_assert_uint_eq(f.next.seq, f.head.seq);
}

/* A feed that holds all it keeps: each commit's record pushes out the
 * oldest (its number written as a feed of CRDT_FEED_KEEP records
 * leaves it, not by that many commits). */
START_TEST(test_feed_full_fails_at_every_lmdb_call)
{
    unsigned char n[8];
    crdt_feed_cursor head;
    crdt_raw *t;
    int shared = 0;

    for (int i = 0; i < 8; i++)
        n[i] = (unsigned char)((uint64_t)CRDT_FEED_KEEP >> (56 - 8 * i));
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_META, "feed_seq", 8, n, 8),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_int_gt(mdbfault_each_call("commit, the feed full", a,
                                        op_commit, &shared, NULL, CALLS_MAX),
                     10);
    ck_assert_int_eq(crdt_feed_head(&head, a), CRDT_OK);
    ck_assert_uint_eq(head.seq, CRDT_FEED_KEEP + 1);
}
END_TEST

/* ---- the map full at every write ----------------------------------- */

/* Close the fixture's pair for byte copies; reopen() after. */
static void
reopen(void)
{
    a = tu_open_dir(da);
    b = tu_open_dir(db);
}

/* A local write txn of every kind and member grants (_i = 1: through
 * crdt_txn_write()), then a merge: at each write, the map is full. The
 * public call grows it and does the work again: CRDT_OK, never
 * CRDT_EFULL below the map's limit, and (for the merge, whose result
 * depends on nothing else) byte for byte the result of a run that never
 * met a full map. */
START_TEST(test_map_full_at_every_write_grows_and_redoes)
{
    unsigned char pk[64];
    int shared = _i;
    tu_batch x;

    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "own", "v", 1), CRDT_OK);
    x = tu_export_all(a);
    randombytes_buf(pk, sizeof pk);
    crdt_replica_close(a);
    crdt_replica_close(b);
    ck_assert_int_gt(mdbfault_each_write_full("commit", da, op_commit,
                                              &shared, 0, CALLS_MAX),
                     5);
    if (!shared) {
        ck_assert_int_gt(mdbfault_each_write_full("members", da, op_grant,
                                                  pk, 0, CALLS_MAX),
                         3);
        ck_assert_int_gt(mdbfault_each_write_full("merge", db, tu_merge_batch,
                                                  &x, MDBFAULT_SAME_BYTES,
                                                  CALLS_MAX),
                         10);
    }
    tu_batch_free(&x);
    reopen();
}
END_TEST

/* Another process grew the map: LMDB answers MDB_MAP_RESIZED to the
 * next txn's begin here. At each begin in turn (of a local write, a
 * merge, reads and an export): the size is adopted and the txn begun
 * again, CRDT_OK, with what a run that never met it leaves. */
START_TEST(test_map_resized_at_every_begin_is_adopted)
{
    int shared = 0, got = 0;
    size_t changes = 0;
    tu_batch x;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "own", "v", 1), CRDT_OK);
    x = tu_export_all(a);
    crdt_replica_close(a);
    crdt_replica_close(b);
    ck_assert_int_gt(mdbfault_each_absorbed("commit", da, MDB_MAP_RESIZED,
                                            MDBFAULT_BEGINS, op_commit,
                                            &shared, 0, CALLS_MAX),
                     0);
    ck_assert_int_gt(mdbfault_each_absorbed("merge", db, MDB_MAP_RESIZED,
                                            MDBFAULT_BEGINS, tu_merge_batch, &x,
                                            MDBFAULT_SAME_BYTES, CALLS_MAX),
                     0);
    ck_assert_int_gt(mdbfault_each_absorbed("read", da, MDB_MAP_RESIZED,
                                            MDBFAULT_BEGINS, read_all, &got,
                                            MDBFAULT_SAME_BYTES, CALLS_MAX),
                     0);
    ck_assert_int_gt(mdbfault_each_absorbed("export", da, MDB_MAP_RESIZED,
                                            MDBFAULT_BEGINS, export_all,
                                            &changes, MDBFAULT_SAME_BYTES,
                                            CALLS_MAX),
                     0);
    tu_batch_free(&x);
    reopen();
}
END_TEST

/* ---- other LMDB answers ---------------------------------------------- */

/* A child process that opens the replica under @p dir, begins a read
 * txn and dies without ending it: its reader slot stays behind. */
static void
dead_reader(const char *dir)
{
    pid_t pid = fork();
    int status;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        crdt_replica *c;
        crdt_read *rd;
        char sub[300];
        snprintf(sub, sizeof sub, "%s/r", dir); /* tu_create()'s */
        if (crdt_replica_open(&c, sub, NULL) != CRDT_OK ||
            crdt_read_begin(&rd, c) != CRDT_OK)
            _exit(2);
        _exit(0); /* no end, no close */
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Every reader slot taken: by live readers, CRDT_EBUSY (try later, not
 * an I/O error); when dead readers hold some, they are swept and the
 * read goes on. A txn too large for LMDB (MDB_TXN_FULL): CRDT_ELIMIT,
 * nothing written. */
START_TEST(test_readers_full_and_txn_full)
{
    unsigned char before[32], after[32];
    crdt_read *rd;
    int shared = 0;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "v", 1), CRDT_OK);
    mdbfault_arm_code(1, MDB_READERS_FULL, MDBFAULT_READ_BEGINS);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_EBUSY);
    ck_assert_int_eq(mdbfault_disarm(), 1);

    dead_reader(da);
    mdbfault_arm_code(1, MDB_READERS_FULL, MDBFAULT_READ_BEGINS);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(mdbfault_disarm(), 1);
    crdt_read_end(rd);

    tu_digest_all(a, before);
    for (long n = 1; n <= 3; n++) { /* the first writes and the commit */
        mdbfault_arm_code(n, MDB_TXN_FULL, MDBFAULT_WRITES);
        ck_assert_int_eq(op_commit(a, &shared), CRDT_ELIMIT);
        ck_assert_int_eq(mdbfault_disarm(), 1);
        ck_assert_int_eq(mdbfault_misuses(), 0);
        tu_digest_all(a, after);
        ck_assert_mem_eq(after, before, 32);
    }
    ck_assert_int_eq(op_commit(a, &shared), CRDT_OK);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("mdb_faults");
    TCase *tc = tcase_create("mdb_faults"), *aid;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_local_txn_fails_at_every_lmdb_call, 0, 2);
    tcase_add_test(tc, test_merge_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_concurrent_seq_merge_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_parked_inserts_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_reads_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_export_fails_at_every_lmdb_call);
    tcase_add_loop_test(tc, test_reopen_fails_at_every_lmdb_call, 0, 3);
    tcase_add_test(tc, test_create_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_merge_with_a_gap_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_equivocation_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_pending_cases_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_unsigned_run_drained_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_members_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_removal_replay_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_checks_fail_at_every_lmdb_call);
    tcase_add_test(tc, test_feed_fails_at_every_lmdb_call);
    tcase_add_test(tc, test_feed_full_fails_at_every_lmdb_call);
    tcase_add_loop_test(tc, test_map_full_at_every_write_grows_and_redoes,
                        0, 2);
    tcase_add_test(tc, test_map_resized_at_every_begin_is_adopted);
    tcase_add_test(tc, test_readers_full_and_txn_full);
    suite_add_tcase(s, tc);
    /* the merge again with its second thread (the runs it packs are
     * written as the merge ends, after the log cursor is closed) */
    aid = tcase_create("aid");
    tcase_add_checked_fixture(aid, setup_aid, teardown_aid);
    tcase_set_timeout(aid, 300);
    tcase_add_test(aid, test_merge_fails_at_every_lmdb_call);
    suite_add_tcase(s, aid);
    return s;
}
