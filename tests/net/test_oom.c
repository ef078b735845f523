/*
 * test_oom.c: a sync session between two replicas in memory while one
 * allocation of our own code fails, for every allocation in turn. A
 * session may then end with CRDT_ENOMEM (or its peer with the error it
 * was told), never with a crash, a short message or a damaged replica:
 * each replica's kept state hash equals the one recomputed from its
 * entries, and a sync without failures then converges. Only the
 * allocations of our own objects fail (support/oom.h). Five syncs: a
 * plain one, one with a peer of an older release, one whose heads are
 * compared by summary rounds (over 64 actors a side), one that resets a
 * replica behind a migration, and one that resets a copied replica whose
 * original's writes an epoch folded. Three more run each failure on
 * fresh byte copies of the pair (sync_each_call_on_copies()), as an
 * earlier run's merges would take away what a later allocation serves:
 * plain CHANGES to an older peer, the FORKS of two copies that both
 * wrote, and the verdict at FIN on a divergence.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b;
static int b_is_old; /* b speaks as a release before PACKED messages */

static void
setup(void)
{
    tu_pair_open(&a, da, &b, db, sizeof da);
}

static void
teardown(void)
{
    oom_disarm();
    b_is_old = 0;
    tu_pair_close(a, da, b, db);
}

static void
write_some(crdt_replica *r, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        crdt_value v = crdt_value_int(i), s = crdt_value_str("x", 1);
        crdt_txn *t;
        char doc[16];

        snprintf(doc, sizeof doc, "d%d", i % 5);
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_incr(t, "c", doc, "n", 1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &s), CRDT_OK);
        if (i % 4 == 3)
            ck_assert_int_eq(crdt_txn_srem(t, "c", doc, "s", &s), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* Pump messages both ways between sessions on @p x and @p y until
 * neither has more; the copies use the real allocator, so only the
 * sessions meet the failure. */
static tu_sync_result
pump_pair(crdt_replica *x, const crdtnet_session_options *ox, crdt_replica *y,
          const crdtnet_session_options *oy)
{
    crdtnet_session *s[2] = { NULL, NULL };
    const unsigned char *msg;
    tu_sync_result res;
    size_t len;

    memset(&res, 0, sizeof res);
    res.ex = crdtnet_session_new(&s[0], x, ox);
    res.ey = crdtnet_session_new(&s[1], y, oy);
    for (int round = 0; round < 10000 && res.ex == 0 && res.ey == 0;
         round++) {
        int moved = 0;

        for (int i = 0; i < 2; i++)
            while (crdtnet_session_next_out(s[i], &msg, &len) == CRDT_OK) {
                unsigned char *copy = oom_real_malloc(len);
                memcpy(copy, msg, len);
                crdtnet_session_feed(s[1 - i], copy, len);
                free(copy);
                moved = 1;
            }
        if (!moved)
            break;
    }
    if (s[0] != NULL) {
        res.rx = *crdtnet_session_report(s[0]);
        if (res.ex == 0)
            res.ex = crdtnet_session_error(s[0]);
    }
    if (s[1] != NULL) {
        res.ry = *crdtnet_session_report(s[1]);
        if (res.ey == 0)
            res.ey = crdtnet_session_error(s[1]);
    }
    crdtnet_session_free(s[0]);
    crdtnet_session_free(s[1]);
    return res;
}

/* The options of a peer of a release before PACKED messages and before
 * summaries. */
static crdtnet_session_options
old_peer_options(void)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;

    o.batch_bytes = 512;
    o.plain_changes = 1;
    o.sync_proto = 3;
    return o;
}

/* One sync of a and b: several CHANGES messages, several merges */
static void
pump(int *ea, int *eb)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session_options ob = old_peer_options();
    tu_sync_result res;

    o.batch_bytes = 512;
    res = pump_pair(a, &o, b, b_is_old ? &ob : &o);
    *ea = res.ex;
    *eb = res.ey;
}

static void
pump_clean(void)
{
    int ea, eb;

    pump(&ea, &eb);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
}

static void
assert_hash_exact(crdt_replica *r)
{
    crdt_raw *t;
    unsigned char kept[32], again[32];

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    crdt_raw_state_hash(t, kept);
    ck_assert_int_eq(crdt_raw_state_rehash(t, again), CRDT_OK);
    crdt_raw_abort(t);
    ck_assert_mem_eq(kept, again, 32);
}

/* Sync a and b with each allocation failing in turn: each side ends
 * with a clean result, CRDT_ENOMEM, or CRDT_ECLOSED (the peer went),
 * its state hash exact; a clean run then converges them. */
static void
sync_at_every_allocation(void)
{
    char ha[65], hb[65];
    long n, failed = 0;
    int ea = CRDT_ENOMEM, eb = 0;

    for (n = 1; n < 50000; n++) {
        oom_arm(n);
        pump(&ea, &eb);
        int hit = oom_disarm();
        if (!hit) { /* no allocation left to fail: a clean run */
            ck_assert_int_eq(ea, 0);
            ck_assert_int_eq(eb, 0);
            break;
        }
        if (ea != 0 || eb != 0) {
            failed++;
            ck_assert_msg(ea == 0 || ea == CRDT_ENOMEM || ea == CRDT_ECLOSED,
                          "allocation %ld: a: %s", n, crdt_strerror(ea));
            ck_assert_msg(eb == 0 || eb == CRDT_ENOMEM || eb == CRDT_ECLOSED,
                          "allocation %ld: b: %s", n, crdt_strerror(eb));
        }
        assert_hash_exact(a);
        assert_hash_exact(b);
    }
    ck_assert_int_gt(failed, 0);
    pump(&ea, &eb);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    tu_assert_converged(a, b);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
}

START_TEST(test_sync_out_of_memory_at_every_allocation)
{
    write_some(a, 0, 40);
    write_some(b, 100, 10);
    sync_at_every_allocation();
}
END_TEST

/* b is a peer of an older release: plain change lists, the whole
 * version vector and heads in HELLO and FIN */
START_TEST(test_old_peer_sync_out_of_memory)
{
    b_is_old = 1;
    write_some(a, 0, 30);
    write_some(b, 100, 10);
    sync_at_every_allocation();
}
END_TEST

/* b, a copy behind an epoch that folded its original's writes
 * (tu_copy_behind_epoch()): the sync resets b into a's epoch, where its
 * own versions of those seqs must come back under a new actor or wait in
 * its quarantine (the reset's cross-epoch fork paths). */
START_TEST(test_copy_behind_epoch_sync_out_of_memory)
{
    tu_copy_behind_epoch(a, &b, db, sizeof db);
    sync_at_every_allocation();
    ck_assert_int_ge(tu_copy_writes_kept(b), 5);
}
END_TEST

/* @p n writes by @p r, each under an actor of its own (a new
 * incarnation before each) */
static void
write_as_new_actors(crdt_replica *r, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        ck_assert_int_eq(crdt_replica_new_incarnation(r), CRDT_OK);
        write_some(r, i, 1);
    }
}

/* More than 64 heads on each side: the heads are compared by summary
 * rounds (docs/protocol.md, "Summaries"), not sent whole. */
START_TEST(test_summary_sync_out_of_memory)
{
    write_as_new_actors(a, 0, 70);
    pump_clean();
    write_as_new_actors(a, 100, 3);
    write_as_new_actors(b, 200, 2);
    sync_at_every_allocation();
}
END_TEST

/* b is behind a's migration, with writes of its own: the session resets
 * it to a's snapshot and rebases its writes. */
START_TEST(test_reset_sync_out_of_memory)
{
    write_some(a, 0, 20);
    pump_clean();
    write_some(b, 100, 3);
    tu_migrate(a, "collection c 1 -> 2\nrename v -> w\n", NULL);
    write_some(a, 200, 2);
    sync_at_every_allocation();
}
END_TEST

/* The files of a closed replica's data directory, held in memory: each
 * run gets a fresh byte copy written in place, with no process spawned
 * to copy them. */
#define IMAGE_FILES 8
typedef struct {
    char name[IMAGE_FILES][256];
    unsigned char *data[IMAGE_FILES];
    size_t len[IMAGE_FILES];
    int n;
} dir_image;

static void
image_take(dir_image *im, const char *dir)
{
    char sub[300], path[600];
    struct dirent *e;
    DIR *d;

    memset(im, 0, sizeof *im);
    snprintf(sub, sizeof sub, "%s/r", dir);
    d = opendir(sub);
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", sub, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        ck_assert_int_lt(im->n, IMAGE_FILES);
        snprintf(im->name[im->n], sizeof im->name[0], "%s", e->d_name);
        im->len[im->n] = (size_t)st.st_size;
        im->data[im->n] = oom_real_malloc(im->len[im->n] + 1);
        ck_assert_ptr_nonnull(f = fopen(path, "rb"));
        ck_assert_uint_eq(fread(im->data[im->n], 1, im->len[im->n], f),
                          im->len[im->n]);
        fclose(f);
        im->n++;
    }
    closedir(d);
}

/* @p im written as the replica under @p dir (made by test_tmpdir()) */
static void
image_put(const dir_image *im, const char *dir)
{
    char path[600];

    snprintf(path, sizeof path, "%s/r", dir);
    ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
    for (int i = 0; i < im->n; i++) {
        int fd;

        /* over the last run's file, then cut to length: truncating it
         * to nothing first frees every block for the write to take
         * again, many times the cost of the copy */
        snprintf(path, sizeof path, "%s/r/%s", dir, im->name[i]);
        ck_assert_int_ge(fd = open(path, O_WRONLY | O_CREAT, 0600), 0);
        ck_assert_int_eq(pwrite(fd, im->data[i], im->len[i], 0),
                         (ssize_t)im->len[i]);
        ck_assert_int_eq(ftruncate(fd, (off_t)im->len[i]), 0);
        ck_assert_int_eq(close(fd), 0);
    }
}

static void
image_free(dir_image *im)
{
    for (int i = 0; i < im->n; i++)
        free(im->data[i]);
    im->n = 0;
}

/* A sync whose every allocation fails in turn on fresh byte copies of
 * a and b, so that a failure the session absorbs, or a merge an earlier
 * run committed, never hides a later allocation. */
typedef struct {
    const char *what;
    crdtnet_session_options oa, ob;
    int clean_err; /* what both sides answer without a failure */
    int b_hash_kept; /* b's kept state hash is the recomputed one */
} copy_sync;

/* What the side whose allocation did not fail may answer: told of the
 * failure, closed by it, done before it came (0), or its own verdict. */
static int
peer_answer_ok(const copy_sync *c, int e)
{
    return e == CRDT_ENOMEM || e == CRDT_ECLOSED || e == 0 ||
           e == c->clean_err;
}

/* A failed run that changed a replica must have committed something:
 * changes merged, a snapshot taken, an equivocation counted. */
static int
committed_something(const tu_sync_result *res)
{
    return res->rx.changes_received > 0 || res->ry.changes_received > 0 ||
           res->rx.snapshot_received || res->ry.snapshot_received ||
           res->rx.equivocations > 0 || res->ry.equivocations > 0;
}

/* Each allocation of the sync of @p c fails in turn (at most
 * @p calls_max), each run on fresh byte copies of a and b: a run must
 * end with CRDT_ENOMEM on one side (the other told so, closed, done, or
 * with its own verdict) and both replicas byte for byte as they were;
 * or, having absorbed the failure, with both as the run without failures
 * leaves them. A failure after a commit (a merge, a reset, an
 * equivocation counted) ends the loop: every allocation before it has
 * failed. Returns the number of the last allocation failed. */
static long
sync_each_call_on_copies(const copy_sync *c, long calls_max)
{
    unsigned char before[2][32], got[2][32], clean[2][32];
    char dx[256], dy[256];
    dir_image ia, ib;
    long n;

    crdt_replica_close(a); /* byte copies of closed replicas */
    crdt_replica_close(b);
    a = b = NULL;
    image_take(&ia, da);
    image_take(&ib, db);
    ck_assert_int_eq(test_tmpdir(dx, sizeof dx), 0);
    ck_assert_int_eq(test_tmpdir(dy, sizeof dy), 0);
    for (n = 0; n < calls_max; n++) {
        crdt_replica *x, *y;
        tu_sync_result res;
        int hit, changed;

        image_put(&ia, dx);
        image_put(&ib, dy);
        x = tu_open_dir(dx);
        y = tu_open_dir(dy);
        tu_digest_all(x, before[0]);
        tu_digest_all(y, before[1]);
        oom_arm(n); /* 0: none fails, the clean run */
        res = pump_pair(x, &c->oa, y, &c->ob);
        hit = oom_disarm();
        tu_digest_all(x, got[0]);
        tu_digest_all(y, got[1]);
        changed = memcmp(got, before, sizeof got) != 0;
        if (changed) {
            assert_hash_exact(x);
            if (c->b_hash_kept)
                assert_hash_exact(y);
        }
        crdt_replica_close(x);
        crdt_replica_close(y);
        if (n == 0 || !hit ||
            (res.ex == c->clean_err && res.ey == c->clean_err)) {
            ck_assert_msg(res.ex == c->clean_err && res.ey == c->clean_err,
                          "%s: no allocation failed, a: %s, b: %s", c->what,
                          crdt_strerror(res.ex), crdt_strerror(res.ey));
            if (n == 0)
                memcpy(clean, got, sizeof got);
            ck_assert_msg(memcmp(got, clean, sizeof got) == 0,
                          "%s: allocation %ld: not what a run without "
                          "failures leaves", c->what, n);
            if (n > 0 && !hit)
                break;
            continue;
        }
        ck_assert_msg((res.ex == CRDT_ENOMEM && peer_answer_ok(c, res.ey)) ||
                          (res.ey == CRDT_ENOMEM && peer_answer_ok(c, res.ex)),
                      "%s: allocation %ld failed, a: %s (%s), b: %s (%s)",
                      c->what, n, crdt_strerror(res.ex), res.rx.reason,
                      crdt_strerror(res.ey), res.ry.reason);
        ck_assert_msg(!changed || committed_something(&res),
                      "%s: allocation %ld failed, a replica changed and "
                      "nothing was committed", c->what, n);
        if (changed)
            break;
    }
    ck_assert_msg(n < calls_max, "%s: still failing after %ld allocations",
                  c->what, calls_max);
    test_rmtree(dx);
    test_rmtree(dy);
    image_free(&ia);
    image_free(&ib);
    a = tu_open_dir(da);
    b = tu_open_dir(db);
    return n;
}

static copy_sync
copy_sync_of(const char *what, int b_old)
{
    copy_sync c = { what, CRDTNET_SESSION_OPTIONS_INIT,
                    CRDTNET_SESSION_OPTIONS_INIT, 0, 1 };

    if (b_old)
        c.ob = old_peer_options();
    return c;
}

/* b, of an older release, takes a's changes as plain CHANGES
 * (crdtnet__on_changes()). */
START_TEST(test_plain_changes_out_of_memory)
{
    copy_sync c = copy_sync_of("plain CHANGES", 1);
    tu_sync_result res;

    write_some(a, 0, 3);
    /* b writes too: the generation of its change feed, drawn at random
     * by its first write, is then in the copies, and every run's bytes
     * can match the clean run's */
    write_some(b, 100, 1);
    ck_assert_int_gt(sync_each_call_on_copies(&c, 400), 0);
    res = pump_pair(a, &c.oa, b, &c.ob);
    ck_assert_int_eq(res.ex, 0);
    ck_assert_int_eq(res.ey, 0);
    ck_assert_uint_eq(res.rx.changes_received, 1);
    ck_assert_uint_eq(res.ry.changes_received, 3);
    ck_assert_int_eq(res.ry.in_sync, 1);
    tu_assert_converged(a, b);
}
END_TEST

/* b is a byte copy of a, and both wrote the same seq: the FORKS of both
 * sides name the actor, and the sync settles the equivocation. */
START_TEST(test_forks_out_of_memory)
{
    copy_sync c = copy_sync_of("FORKS", 0);
    tu_sync_result res;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    crdt_replica_close(a);
    crdt_replica_close(b);
    test_rmtree(db);
    tu_copy_dir(da, db, sizeof db);
    a = tu_open_dir(da);
    b = tu_open_dir(db);
    ck_assert_int_eq(tu_put_int(a, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "copy", "v", 3), CRDT_OK);
    ck_assert_int_gt(sync_each_call_on_copies(&c, 400), 0);
    res = pump_pair(a, &c.oa, b, &c.ob);
    ck_assert_msg(res.ex == 0 && res.ey == 0, "%s / %s", res.rx.reason,
                  res.ry.reason);
    ck_assert_uint_eq(res.rx.equivocations, 1);
    ck_assert_uint_eq(res.ry.equivocations, 1);
    ck_assert_int_ne(res.rx.equivocation_lost, res.ry.equivocation_lost);
    ck_assert_int_eq(res.rx.in_sync, 1);
    tu_assert_converged(a, b);
}
END_TEST

/* Equal ops, b's state altered behind its log, and a peer of version 3:
 * at FIN both judge the differing state hashes against the peer's HELLO
 * heads, and the clean answer is the divergence, on both sides. */
START_TEST(test_divergence_verdict_out_of_memory)
{
    copy_sync c = copy_sync_of("divergence at FIN", 1);
    tu_sync_result res;

    ck_assert_int_eq(tu_put_int(a, "c", "base", "v", 1), CRDT_OK);
    pump_clean();
    tu_state_put_ghost(b, "v", 9);
    c.clean_err = CRDT_ECORRUPT;
    c.b_hash_kept = 0;
    ck_assert_int_gt(sync_each_call_on_copies(&c, 400), 0);
    res = pump_pair(a, &c.oa, b, &c.ob);
    ck_assert_int_eq(res.ex, CRDT_ECORRUPT);
    ck_assert_int_eq(res.ey, CRDT_ECORRUPT);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("sync");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_sync_out_of_memory_at_every_allocation);
    tcase_add_test(tc, test_summary_sync_out_of_memory);
    tcase_add_test(tc, test_old_peer_sync_out_of_memory);
    tcase_add_test(tc, test_reset_sync_out_of_memory);
    tcase_add_test(tc, test_copy_behind_epoch_sync_out_of_memory);
    tcase_add_test(tc, test_plain_changes_out_of_memory);
    tcase_add_test(tc, test_forks_out_of_memory);
    tcase_add_test(tc, test_divergence_verdict_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
