/*
 * test_oom.c: running out of memory at every allocation of libcrdt's own
 * code in a merge, a local write txn (a txn of its own, or a
 * crdt_txn_write()) and reads: each call answers
 * CRDT_ENOMEM or succeeds, and a failed one leaves the replica exactly as
 * it was (same state hash); the same call then succeeds. Only the
 * allocations of our own objects fail (support/oom.h).
 *
 * The paths below take the other calls of the public API through the
 * same loop (support/oom.h, oom_each_call()): an open of a replica on
 * disk with cold caches and every kind of read, concurrent text and
 * list edits merged, the feed, an export packed and unpacked, the open
 * checks and a backup.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crdt/backup.h"
#include "crdt/crdt.h"
#include "crdt/feed.h"
#include "crdt/sync.h"
#include "crdt/text.h"
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b;

static void
setup(void)
{
    tu_pair_create(&a, da, &b, db, sizeof da);
}

static void
teardown(void)
{
    oom_disarm();
    tu_pair_close(a, da, b, db);
}

START_TEST(test_merge_out_of_memory_at_every_allocation)
{
    char before[65], after[65], want[65];
    tu_batch x;
    long n;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    x = tu_export_all(a);
    tu_hash(before, b);
    for (n = 1; n < 10000 && rc != CRDT_OK; n++) {
        oom_arm(n);
        rc = crdt_merge(NULL, b, x.v, x.n);
        int hit = oom_disarm();
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, merge said OK", n);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        tu_hash(after, b);
        ck_assert_str_eq(after, before);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(n, 2); /* some allocation was failed on the way */
    tu_hash(after, b);
    tu_hash(want, a);
    ck_assert_str_eq(after, want);
    tu_batch_free(&x);
}
END_TEST

/* _i = 1: through crdt_txn_write() (a group of one) */
START_TEST(test_local_txn_out_of_memory_at_every_allocation)
{
    char before[65], after[65];
    long n;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, _i), CRDT_OK);
    for (n = 1; n < 10000 && rc != CRDT_OK; n++) {
        tu_hash(before, a);
        oom_arm(n);
        /* with a DEL_DOC and observations */
        rc = tu_write_all_kinds(a, 6, _i);
        int hit = oom_disarm();
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, commit said OK", n);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        tu_hash(after, a);
        ck_assert_str_eq(after, before);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(n, 2);
}
END_TEST

static int
count_field(const crdt_field *f, void *ctx)
{
    (void)f;
    ++*(int *)ctx;
    return 0;
}

START_TEST(test_reads_out_of_memory_at_every_allocation)
{
    long n;
    int rc = CRDT_ENOMEM, fields = 0, want = 0;
    crdt_read *rd;

    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_doc(rd, "c", "d1", count_field, &want),
                     CRDT_OK);
    crdt_read_end(rd);
    ck_assert_int_gt(want, 0);
    for (n = 1; n < 10000 && rc != CRDT_OK; n++) {
        crdt_read *r2 = NULL;
        crdt_vv *vv = NULL;

        fields = 0;
        oom_arm(n);
        rc = crdt_read_begin(&r2, a);
        if (rc == CRDT_OK)
            rc = crdt_read_doc(r2, "c", "d1", count_field, &fields);
        if (rc == CRDT_OK)
            rc = crdt_read_vv(&vv, r2);
        int hit = oom_disarm();
        crdt_vv_free(vv);
        if (r2 != NULL)
            crdt_read_end(r2);
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, read said OK", n);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_eq(fields, want);
}
END_TEST

/* ---- the other paths ---- */

/* The text, the list, a slice and a cursor of c/d2 and of c/d3 in one
 * snapshot, summed up in @p sum (their bytes and lengths). */
static int
read_seqs(crdt_read *rd, uint64_t *sum)
{
    static const char *const docs[] = { "d2", "d3" };
    int rc = CRDT_OK;

    for (size_t i = 0; i < 2 && rc == CRDT_OK; i++) {
        crdt_value *vals = NULL;
        char *text = NULL, *slice = NULL;
        size_t len = 0, n = 0, sl = 0;
        crdt_cursor cur;
        uint64_t pos = 0;

        if ((rc = crdt_read_text(&text, &len, rd, "c", docs[i], "t")) ==
                CRDT_OK &&
            (rc = crdt_read_text_slice(&slice, &sl, rd, "c", docs[i], "t", 1,
                                       len > 2 ? 2 : 0)) == CRDT_OK &&
            (rc = crdt_read_list(&vals, &n, rd, "c", docs[i], "l")) ==
                CRDT_OK &&
            (rc = crdt_read_cursor_at(&cur, rd, "c", docs[i], "t", 1)) ==
                CRDT_OK)
            rc = crdt_read_cursor_pos(&pos, rd, "c", docs[i], "t", &cur);
        if (rc == CRDT_ENOTFOUND) /* not written yet: counts as empty */
            rc = CRDT_OK;
        for (size_t k = 0; text != NULL && k < len; k++)
            *sum = *sum * 31 + (unsigned char)text[k];
        *sum += 1000 * (n + sl) + pos;
        crdt_text_free(text);
        crdt_text_free(slice);
        crdt_list_free(vals);
    }
    return rc;
}

static int
seqs_of(crdt_replica *r, uint64_t *sum)
{
    crdt_read *rd;
    int rc;

    *sum = 0;
    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = read_seqs(rd, sum);
    crdt_read_end(rd);
    return rc;
}

typedef struct {
    tu_batch x;
    uint64_t sum; /* what seqs_of() gave before */
} merge_arg;

static int
merge_op(crdt_replica *r, void *arg)
{
    merge_arg *m = arg;
    return crdt_merge(NULL, r, m->x.v, m->x.n);
}

static int
seqs_same(crdt_replica *r, void *arg)
{
    merge_arg *m = arg;
    uint64_t sum;

    return seqs_of(r, &sum) != CRDT_OK || sum != m->sum;
}

START_TEST(test_concurrent_seq_merge_out_of_memory)
{
    merge_arg m;
    char ha[65], hb[65];
    uint64_t sa, sb;

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_edit_seqs_both(a, b);
    m.x = tu_export_all(a);
    ck_assert_int_eq(seqs_of(b, &m.sum), CRDT_OK);
    ck_assert_int_gt(oom_each_call("concurrent text merge", b, merge_op, &m,
                                   seqs_same, NULL, 20000),
                     2);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    ck_assert_int_eq(seqs_of(a, &sa), CRDT_OK);
    ck_assert_int_eq(seqs_of(b, &sb), CRDT_OK);
    ck_assert_uint_eq(sa, sb);
    tu_batch_free(&m.x);
}
END_TEST

/* A batch merged with the merge's second thread (its aid) whatever its
 * size: a failed allocation of the aid's may be absorbed (the merge does
 * the work on one thread), with the same result. The batch comes
 * rotated by half, two runs in (actor, seq) order: the merge's sort
 * merges them in a buffer, or sorts in place when it cannot have one. */
START_TEST(test_merge_with_aid_out_of_memory)
{
    merge_arg m;

    for (int i = 0; i < 30; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "own", "v", 1), CRDT_OK);
    m.x = tu_export_all(a);
    {
        size_t half = m.x.n / 2;
        crdt_bytes *rot = malloc(m.x.n * sizeof *rot);

        ck_assert_ptr_nonnull(rot);
        for (size_t i = 0; i < m.x.n; i++)
            rot[i] = m.x.v[(i + half) % m.x.n];
        memcpy(m.x.v, rot, m.x.n * sizeof *rot);
        free(rot);
    }
    crdt_replica_close(b);
    tu_merge_aid_always(1);
    ck_assert_int_gt(oom_each_call_on_copy("merge with its aid", db, merge_op,
                                           &m, 20000),
                     2);
    tu_merge_aid_always(0);
    b = tu_open_dir(db); /* for the fixture */
    tu_batch_free(&m.x);
}
END_TEST

/* Typing as an editor does: one character per insert, each after the
 * one before (the txn folds them into one run), then a few characters
 * deleted one by one (folded into one range), in c/DOC/t. */
typedef struct {
    const char *doc;
    char *before; /* the text before, for type_undone() */
} type_arg;

static int
type_op(crdt_replica *r, void *arg)
{
    const type_arg *ta = arg;
    crdt_read *rd;
    crdt_txn *t;
    uint64_t len = 0;
    int rc;

    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = crdt_read_seq_len(&len, rd, "c", ta->doc, "t");
    crdt_read_end(rd);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    for (uint64_t i = 0; i < 40 && rc == CRDT_OK; i++) {
        char ch[2] = { (char)('a' + i % 26), 0 };
        rc = crdt_txn_text_insert(t, "c", ta->doc, "t", len + i, ch, 1);
    }
    for (int i = 0; i < 5 && rc == CRDT_OK; i++)
        rc = crdt_txn_text_delete(t, "c", ta->doc, "t", len + 3, 1);
    if (rc < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

static char *
text_of(crdt_replica *r, const char *doc)
{
    crdt_read *rd;
    char *text = NULL;
    size_t len;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&text, &len, rd, "c", doc, "t"), CRDT_OK);
    crdt_read_end(rd);
    return text;
}

/* 0 when c/DOC/t reads as it did before the typing */
static int
type_undone(crdt_replica *r, void *arg)
{
    const type_arg *ta = arg;
    char *now = text_of(r, ta->doc);
    int differs = strcmp(now, ta->before) != 0;

    crdt_text_free(now);
    return differs;
}

/* Sequence paths: typing folded into runs, and a merge of inserts whose
 * anchors have not come yet (parked until they do). b types a text;
 * c, having b's text, types into it and deletes some of it; a takes
 * c's changes first (parked: their anchors are b's) and b's after
 * (the parked ones integrated then). */
START_TEST(test_seq_paths_out_of_memory)
{
    char dc[256], hc[65], ha[65];
    unsigned char space[16];
    crdt_replica *c;
    merge_arg from_c, from_b;
    type_arg td2 = { "d2", NULL }, ta = { "d5", NULL };

    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(type_op(b, &td2), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(c, b), CRDT_OK);
    tu_edit_seqs_both(c, c); /* runs at both ends of c/d2 and c/d3 */
    ck_assert_int_eq(type_op(c, &td2), CRDT_OK);
    from_c.x = tu_export_beyond(c, b);
    from_b.x = tu_export_all(b);
    ck_assert_int_eq(seqs_of(a, &from_c.sum), CRDT_OK);
    ck_assert_int_eq(type_op(a, &ta), CRDT_OK);
    ta.before = text_of(a, "d5");
    ck_assert_int_gt(oom_each_call("typing", a, type_op, &ta, type_undone,
                                   NULL, 20000),
                     2);
    crdt_text_free(ta.before);
    ck_assert_int_eq(seqs_of(a, &from_c.sum), CRDT_OK);
    ck_assert_int_gt(oom_each_call("merge, anchors missing", a, merge_op,
                                   &from_c, seqs_same, NULL, 20000),
                     2);
    ck_assert_int_eq(seqs_of(a, &from_b.sum), CRDT_OK);
    ck_assert_int_gt(oom_each_call("merge, anchors come", a, merge_op,
                                   &from_b, seqs_same, NULL, 20000),
                     2);
    ck_assert_int_eq(tu_sync_one_way(c, a), CRDT_OK);
    tu_hash(ha, a);
    tu_hash(hc, c);
    ck_assert_str_eq(ha, hc);
    tu_batch_free(&from_c.x);
    tu_batch_free(&from_b.x);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

/* A removal merged after the removed writer's later writes: the
 * authority rules replay the log; its two later ops are refused. */
START_TEST(test_removal_replay_out_of_memory)
{
    tu_trio t;
    merge_arg m;
    char got[32];

    tu_removal_scene(&t, &m.x);
    m.sum = 0;
    ck_assert_int_gt(oom_each_call("removal replayed", t.p, merge_op, &m,
                                   NULL, NULL, 20000),
                     2);
    tu_field_str(got, sizeof got, t.p, "c", "x", "f");
    ck_assert_str_eq(got, "1");
    tu_field_str(got, sizeof got, t.p, "c", "y", "f");
    ck_assert_str_eq(got, "");
    tu_batch_free(&m.x);
    tu_trio_close(&t);
}
END_TEST

/* A second handle's work on a byte copy of a replica: the copy's path. */
typedef struct {
    char dir[256];
    char path[300];
    uint64_t sum;
} copy_arg;

static void
copy_of(copy_arg *c, crdt_replica *r, const char *dir)
{
    char cmd[700];

    crdt_replica_close(r);
    ck_assert_int_eq(test_tmpdir(c->dir, sizeof c->dir), 0);
    snprintf(cmd, sizeof cmd, "cp -r %s/r %s/r", dir, c->dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(c->path, sizeof c->path, "%s/r", c->dir);
}

/* Open the copy (cold: no cache of its texts yet), read every kind, and
 * check it, both ways the open check can: its pages and its records. */
static int
open_read_check(crdt_replica *r, void *arg)
{
    copy_arg *c = arg;
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *cr;
    char why[256];
    uint64_t sum = 0;
    int rc;

    (void)r;
    o.check_pages = UINT64_MAX; /* every page */
    if ((rc = crdt_replica_open(&cr, c->path, &o)) < 0)
        return rc;
    rc = seqs_of(cr, &sum);
    if (rc == CRDT_OK)
        rc = crdt_replica_check(cr, 0, why, sizeof why);
    if (rc == CRDT_OK)
        rc = crdt_replica_check_records(cr, why, sizeof why);
    crdt_replica_close(cr);
    if (rc == CRDT_OK && sum != c->sum)
        return CRDT_EIO; /* read otherwise than the first handle did */
    return rc;
}

START_TEST(test_open_reads_and_checks_out_of_memory)
{
    copy_arg c;

    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_edit_seqs_both(a, b);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(seqs_of(b, &c.sum), CRDT_OK);
    copy_of(&c, b, db);
    b = tu_open_dir(db); /* for the fixture */
    ck_assert_int_gt(oom_each_call("open, read and check a copy", a,
                                   open_read_check, &c, NULL, NULL, 20000),
                     2);
    test_rmtree(c.dir);
}
END_TEST

/* The feed: a subscription, a watch, and every event since the start. */
typedef struct {
    const char *dir;
    int events;
} feed_arg;

static int
count_event(void *ctx, const crdt_feed_event *ev)
{
    (void)ev;
    ++*(int *)ctx;
    return 0;
}

static int
feed_op(crdt_replica *r, void *arg)
{
    feed_arg *f = arg;
    crdt_feed_cursor from, next;
    crdt_feed_sub *s = NULL;
    crdt_feed_watch *w = NULL;
    int rc, got = 0;

    if ((rc = crdt_feed_subscribe(&s, r, "c", NULL, count_event, &got)) < 0)
        return rc;
    crdt_feed_unsubscribe(s);
    if ((rc = crdt_feed_watch_open(&w, f->dir)) < 0)
        return rc;
    crdt_feed_watch_close(w);
    if ((rc = crdt_feed_head(&from, r)) < 0)
        return rc;
    from.seq = 0;
    rc = crdt_feed_since(r, &from, NULL, NULL, 0, count_event, &got, &next);
    if (rc >= 0 && got != f->events)
        return CRDT_EIO;
    return rc < 0 ? rc : CRDT_OK;
}

START_TEST(test_feed_out_of_memory)
{
    crdt_feed_cursor from, next;
    char path[300];
    feed_arg f = { path, 0 };

    snprintf(path, sizeof path, "%s/r", da);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    ck_assert_int_eq(crdt_feed_head(&from, a), CRDT_OK);
    from.seq = 0;
    ck_assert_int_eq(crdt_feed_since(a, &from, NULL, NULL, 0, count_event,
                                     &f.events, &next),
                     20);
    ck_assert_int_gt(oom_each_call("feed", a, feed_op, &f, NULL, NULL, 20000), 2);
}
END_TEST

/* The whole log exported as stored and signed, packed both versions,
 * unpacked both ways, and merged unpacked into @p to; and a backup. */
typedef struct {
    crdt_replica *to;
    char file[300];
    size_t changes;
} export_arg;

static int
unpack_and_merge(export_arg *x, const unsigned char *p, size_t len)
{
    crdt_bytes *list = NULL;
    unsigned char *buf = NULL;
    crdt_unpacked *u = NULL;
    size_t n = 0;
    int rc;

    if ((rc = crdt_changes_unpack(&list, &n, &buf, p, len)) < 0)
        return rc;
    crdt_free(list);
    crdt_free(buf);
    if (n != x->changes)
        return CRDT_EIO;
    if ((rc = crdt_unpacked_new(&u, p, len)) < 0)
        return rc;
    rc = crdt_merge_unpacked(NULL, x->to, u);
    crdt_unpacked_free(u);
    return rc;
}

#define EXPORT_MAX 64

static int
export_op(crdt_replica *r, void *arg)
{
    export_arg *x = arg;
    crdt_bytes v[EXPORT_MAX];
    unsigned char *packed = NULL;
    size_t n = 0, len = 0, kept = 0;
    crdt_export *e = NULL;
    crdt_backup_info info;
    int rc = CRDT_OK;

    unlink(x->file);
    for (int stored = 0; stored < 2 && rc == CRDT_OK; stored++) {
        const unsigned char *p;
        crdt_change c;
        size_t l;

        rc = stored ? crdt_export_begin_as_stored(&e, r, NULL)
                    : crdt_export_begin(&e, r, NULL);
        if (rc < 0)
            break;
        n = 0;
        while ((rc = crdt_export_next_change(e, &p, &l, &c)) == CRDT_OK &&
               n < EXPORT_MAX) {
            if (!stored) { /* the test's own copies: never failed */
                unsigned char *copy = oom_real_malloc(l);
                if (copy == NULL) /* no assertion while armed: Check's
                                   * own allocations would fail */
                    abort();
                memcpy(copy, p, l);
                v[n].data = copy;
                v[n].len = l;
                kept = n + 1;
            }
            n++;
        }
        crdt_export_end(e);
        if (rc == CRDT_ENOTFOUND)
            rc = n == x->changes ? CRDT_OK : CRDT_EIO;
    }
    for (int ver = CRDT_CHANGES_PACK_V1;
         rc == CRDT_OK && ver <= CRDT_CHANGES_PACK_V2; ver++) {
        rc = crdt_changes_pack_version(&packed, &len, v, NULL, n, ver);
        if (rc == CRDT_OK)
            rc = unpack_and_merge(x, packed, len);
        crdt_free(packed);
        packed = NULL;
    }
    for (size_t i = 0; i < kept; i++)
        free((void *)v[i].data);
    if (rc == CRDT_OK && (rc = crdt_backup(&info, r, x->file)) == CRDT_OK)
        rc = crdt_backup_check(&info, x->file);
    return rc;
}

/* After a failed run: @p to holds all of the log or none of it, and a
 * backup file is whole or absent. */
static int
export_check(crdt_replica *r, void *arg)
{
    export_arg *x = arg;
    crdt_backup_info info;
    char hr[65], ht[65];
    uint64_t held = tu_stats(x->to).changes_in_log;

    tu_hash(hr, r);
    tu_hash(ht, x->to);
    if (held != 0 && (held != x->changes || strcmp(hr, ht) != 0))
        return 1;
    return access(x->file, F_OK) == 0 &&
           crdt_backup_check(&info, x->file) != CRDT_OK;
}

START_TEST(test_export_pack_backup_out_of_memory)
{
    export_arg x;
    char ha[65], hb[65];

    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(tu_write_all_kinds(a, i, 0), CRDT_OK);
    x.to = b;
    x.changes = 20;
    snprintf(x.file, sizeof x.file, "%s/backup", da);
    ck_assert_int_gt(oom_each_call("export, pack, unpack, backup", a,
                                   export_op, &x, export_check, NULL,
                                   20000),
                     2);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("oom");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_merge_out_of_memory_at_every_allocation);
    tcase_add_loop_test(tc, test_local_txn_out_of_memory_at_every_allocation,
                        0, 2);
    tcase_add_test(tc, test_reads_out_of_memory_at_every_allocation);
    suite_add_tcase(s, tc);

    tc = tcase_create("paths");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_concurrent_seq_merge_out_of_memory);
    tcase_add_test(tc, test_merge_with_aid_out_of_memory);
    tcase_add_test(tc, test_seq_paths_out_of_memory);
    tcase_add_test(tc, test_removal_replay_out_of_memory);
    tcase_add_test(tc, test_open_reads_and_checks_out_of_memory);
    tcase_add_test(tc, test_feed_out_of_memory);
    tcase_add_test(tc, test_export_pack_backup_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
