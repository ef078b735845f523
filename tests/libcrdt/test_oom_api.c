/*
 * test_oom_api.c: running out of memory at every allocation of libcrdt's
 * own code in the rest of the public API (support/oom.h,
 * oom_each_call()): an open of a byte copy with its caches cold, both
 * open checks and every kind of text and list read; the feed (a
 * subscription, a watch, every event since the start); the whole log
 * exported as stored and signed, packed in both versions, unpacked both
 * ways and merged unpacked, and a backup. Each failed call answers
 * CRDT_ENOMEM and leaves every database byte for byte as it was; a
 * failed backup leaves no torn file, a failed merge all or nothing.
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
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

OOM_PAIR_FIXTURE(tu_pair_create)

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
    rc = tu_seqs_sum(cr, &sum);
    if (rc == CRDT_OK)
        rc = crdt_replica_check(cr, 0, why, sizeof why);
    if (rc == CRDT_OK)
        rc = crdt_replica_check_records(cr, why, sizeof why);
    crdt_replica_close(cr);
    if (rc == CRDT_OK && sum != c->sum)
        return CRDT_EIO; /* read otherwise than the first handle did */
    return rc;
}

static int
metas_whole(const char *path)
{
    char file[400];
    unsigned char pg[2][4096];
    uint32_t magic[2];
    FILE *f;

    snprintf(file, sizeof file, "%s/data.mdb", path);
    ck_assert_ptr_nonnull(f = fopen(file, "rb"));
    ck_assert_uint_eq(fread(pg, 4096, 2, f), 2);
    fclose(f);
    for (int i = 0; i < 2; i++) /* MDB_meta's mm_magic */
        memcpy(&magic[i], pg[i] + 16, 4);
    return magic[0] == 0xBEEFC0DE && magic[1] == 0xBEEFC0DE;
}

static void
zero_older_meta(const char *path)
{
    char file[400];
    unsigned char pg[2][4096], zero[4096] = { 0 };
    uint64_t txnid[2];
    FILE *f;

    snprintf(file, sizeof file, "%s/data.mdb", path);
    ck_assert_ptr_nonnull(f = fopen(file, "r+b"));
    ck_assert_uint_eq(fread(pg, 4096, 2, f), 2);
    for (int i = 0; i < 2; i++) /* MDB_meta's mm_txnid, after the header */
        memcpy(&txnid[i], pg[i] + 144, 8);
    ck_assert_uint_ne(txnid[0], txnid[1]);
    ck_assert_int_eq(fseek(f, txnid[0] < txnid[1] ? 0 : 4096, SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(zero, sizeof zero, 1, f), 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* _i = 1: the older meta page zeroed first, so the open restores it
 * from the other (pagecheck.c) before it reads. */
START_TEST(test_open_reads_and_checks_out_of_memory)
{
    copy_arg c;

    tu_seqs_pair(a, b);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_seqs_sum(b, &c.sum), CRDT_OK);
    copy_of(&c, b, db);
    b = tu_open_dir(db); /* for the fixture */
    if (_i == 1) {
        ck_assert(metas_whole(c.path));
        zero_older_meta(c.path);
        ck_assert(!metas_whole(c.path));
    }
    ck_assert_int_gt(oom_each_call("open, read and check a copy", a,
                                   open_read_check, &c, NULL, NULL, 20000),
                     2);
    ck_assert(metas_whole(c.path));
    test_rmtree(c.dir);
}
END_TEST

/* Zero the older of the two meta pages of the data file under @p path:
 * the state stays the newer one's, and a writable open rewrites the
 * damaged page from it. */
/* @p n inserts of a two-byte character at the front of c/d9/t, each in
 * a commit of its own: each its own run, chained to the one before. */
static void
front_inserts(crdt_replica *r, int n)
{
    for (int i = 0; i < n; i++) {
        crdt_txn *t;

        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d9", "t", 0,
                                              "\xc3\xa9", 2),
                         CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* Open the copy (cold) and read c/d9/t: its length must be the one the
 * first handle read (in c->sum). */
static int
open_read_long_text(crdt_replica *r, void *arg)
{
    copy_arg *c = arg;
    crdt_replica *cr;
    crdt_read *rd;
    char *text = NULL;
    size_t len = 0;
    int rc;

    (void)r;
    if ((rc = crdt_replica_open(&cr, c->path, NULL)) < 0)
        return rc;
    if ((rc = crdt_read_begin(&rd, cr)) == CRDT_OK) {
        rc = crdt_read_text(&text, &len, rd, "c", "d9", "t");
        crdt_read_end(rd);
    }
    crdt_text_free(text);
    crdt_replica_close(cr);
    if (rc == CRDT_OK && len != c->sum)
        return CRDT_EIO; /* read otherwise than the first handle did */
    return rc;
}

/* A text of many runs loaded cold: more runs than the loader's first
 * buffers hold, each actor's chain deeper than its first stack (the
 * first run one side integrates depends on the other's whole chain),
 * and more bytes than characters (the text's buffer grows). _i = 1: the
 * text compacted by an epoch first, so it loads as base segments. */
START_TEST(test_long_text_loaded_out_of_memory)
{
    copy_arg c;
    char *text = NULL;
    crdt_read *rd;

    front_inserts(b, 70);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    front_inserts(a, 70);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    front_inserts(b, 1);
    ck_assert_int_eq(crdt_read_begin(&rd, b), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&text, &c.sum, rd, "c", "d9", "t"),
                     CRDT_OK);
    crdt_read_end(rd);
    crdt_text_free(text);
    ck_assert_uint_eq(c.sum, 2 * 141);
    if (_i == 1) {
        ck_assert_int_eq(epoch_attach(b), CRDT_OK);
        tu_migrate(b, NULL, NULL);
    }
    copy_of(&c, b, db);
    b = tu_open_dir(db); /* for the fixture */
    ck_assert_int_gt(oom_each_call("a long text loaded cold", a,
                                   open_read_long_text, &c, NULL, NULL,
                                   20000),
                     2);
    test_rmtree(c.dir);
}
END_TEST

/* The forks a peer's heads show: two chains of one actor, one at each
 * side (tu_forked_chains()); b, whose chain is the longer, finds that
 * a's head is not a change of it. */
typedef struct {
    unsigned char *heads;
    size_t len;
    size_t forks;
} forks_arg;

static int
forks_op(crdt_replica *r, void *arg)
{
    forks_arg *f = arg;
    crdt_actor *out = NULL;
    int rc = crdt_forks_find(&out, &f->forks, r, f->heads, f->len);

    crdt_free(out);
    return rc;
}

START_TEST(test_forks_found_out_of_memory)
{
    forks_arg f = { NULL, 0, 0 };

    tu_forked_chains(a, b, NULL);
    ck_assert_int_eq(crdt_heads_export(&f.heads, &f.len, a), CRDT_OK);
    ck_assert_int_gt(oom_each_call("forks found", b, forks_op, &f, NULL,
                                   NULL, 10000),
                     1);
    ck_assert_uint_eq(f.forks, 1);
    crdt_free(f.heads);
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
    ck_assert_int_gt(oom_each_call("feed", a, feed_op, &f, NULL, NULL, 20000),
                     2);
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
    Suite *s = suite_create("oom_api");
    TCase *tc = tcase_create("oom_api");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_open_reads_and_checks_out_of_memory, 0, 2);
    tcase_add_loop_test(tc, test_long_text_loaded_out_of_memory, 0, 2);
    tcase_add_test(tc, test_forks_found_out_of_memory);
    tcase_add_test(tc, test_feed_out_of_memory);
    tcase_add_test(tc, test_export_pack_backup_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
