/*
 * test_oom.c: a migration through a lens (with a text made a string, and
 * without) while one allocation of our own code fails, for every
 * allocation in turn: the builder answers CRDT_ENOMEM and the replica is
 * as it was (same epoch, same state hash,
 * no upgrade marker left behind), or the migration succeeds. Only the
 * allocations of our objects fail (support/oom.h).
 *
 * Then what follows a migration, through support/oom.h's loop (each
 * failure CRDT_ENOMEM, the replica byte for byte as before): a stale
 * replica's reset into the new epoch (its records stored, the reset),
 * the merge that rebases its changes through the lens, the quarantine
 * listed and re-applied, and the parse of a lens of every step kind.
 * And about epochs: a copy of a folded op rebased, the resets that settle
 * two chains of one actor and two forked epochs, a migration beside a
 * collection's kept lens defaults, and a custom migration over sets.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/oom.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256];
static crdt_replica *a, *b;

static void
setup(void)
{
    a = tu_create(da, sizeof da, NULL);
    ck_assert_int_eq(epoch_attach(a), CRDT_OK);
}

static void
teardown(void)
{
    oom_disarm();
    crdt_replica_close(a);
    test_rmtree(da);
    if (b != NULL) {
        crdt_replica_close(b);
        test_rmtree(db);
        b = NULL;
    }
}

/* A migration of @p r through @p lens (an epoch_lens *; NULL: a
 * compaction). */
static int
op_migrate(crdt_replica *r, void *lens)
{
    epoch_builder *bl;
    epoch_info e;
    int rc;

    if ((rc = epoch_builder_new(&bl, r)) < 0)
        return rc;
    if (lens != NULL)
        rc = epoch_builder_add_lens(bl, lens);
    if (rc == CRDT_OK)
        rc = epoch_builder_commit(&e, bl);
    epoch_builder_free(bl);
    if (rc == CRDT_OK)
        epoch_info_clear(&e);
    return rc;
}

static int
migrate(epoch_lens *l)
{
    return op_migrate(a, l);
}

/* b joins a's space, attached. */
static void
join_b(void)
{
    unsigned char space[16];

    crdt_replica_space_id(a, space);
    b = tu_create(db, sizeof db, space);
    ck_assert_int_eq(epoch_attach(b), CRDT_OK);
}

START_TEST(test_migration_out_of_memory_at_every_allocation)
{
    /* _i = 1: the text made a string too */
    static const char *const texts[] = {
        "collection c 1 -> 2\n"
        "rename v -> w\n"
        "add note string default \"\"\n"
        "convert w int -> string\n",
        "collection c 1 -> 2\n"
        "rename v -> w\n"
        "add note string default \"\"\n"
        "convert w int -> string\n"
        "convert t text -> string\n"
    };
    const char *text = texts[_i];
    char h0[65], h1[65], got[64];
    epoch_lens *l = NULL;
    epoch_info e0, e1;
    epoch_marker m;
    long n, failed = 0;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 40; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
        if (i % 8 == 0) { /* a text the lens makes a string */
            crdt_txn *t;
            ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
            ck_assert_int_eq(crdt_txn_text_insert(t, "c", doc, "t", 0,
                                                  "hey", 3),
                             CRDT_OK);
            ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
        }
    }
    ck_assert_int_eq(epoch_lens_parse(&l, text, strlen(text), NULL),
                     CRDT_OK);
    tu_hash(h0, a);
    ck_assert_int_eq(epoch_current(&e0, a), CRDT_OK);
    for (n = 1; n < 20000; n++) {
        oom_arm(n);
        rc = migrate(l);
        int hit = oom_disarm();
        if (rc == CRDT_OK) {
            ck_assert_msg(!hit, "allocation %ld failed, migration said OK",
                          n);
            break;
        }
        failed++;
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        /* nothing happened: same epoch, same state, no marker */
        tu_hash(h1, a);
        ck_assert_str_eq(h1, h0);
        ck_assert_int_eq(epoch_current(&e1, a), CRDT_OK);
        ck_assert_mem_eq(e1.id, e0.id, 32);
        epoch_info_clear(&e1);
        ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(failed, 0);
    ck_assert_int_eq(epoch_current(&e1, a), CRDT_OK);
    ck_assert(memcmp(e1.id, e0.id, 32) != 0);
    epoch_info_clear(&e1);
    tu_field_str(got, sizeof got, a, "c", "d7", "w");
    ck_assert_str_eq(got, "\"7\"");
    if (_i) {
        tu_field_str(got, sizeof got, a, "c", "d8", "t");
        ck_assert_str_eq(got, "\"hey\"");
    }
    epoch_info_clear(&e0);
    epoch_lens_free(l);
}
END_TEST

/* ---- after a migration ---- */

#define LENS                                                                   \
    "collection c 1 -> 2\n"                                                    \
    "rename v -> title\n"                                                      \
    "convert age int -> string\n"                                              \
    "remove gone\n"                                                            \
    "add note string default \"-\"\n"                                         \
    "convert t text -> string\n"

#define CALLS_MAX 50000

/* b joins a's space; both hold @p n documents with a text; then b goes
 * offline and writes against version 1 (one write the lens drops), and
 * a migrates through LENS and writes on. */
static void
stale_pair(int n)
{
    join_b();
    for (int i = 0; i < n; i++) {
        char doc[16];
        crdt_txn *t;

        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "age", i), CRDT_OK);
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "c", doc, "t", 0, "hey", 3),
                         CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d1", "v", 77), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d2", "gone", 78), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d9", "age", 79), CRDT_OK);
    tu_migrate(a, LENS, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d3", "title", 80), CRDT_OK);
}

START_TEST(test_reset_out_of_memory_at_every_allocation)
{
    stale_pair(8);
    oom_each_call("store records", b, tu_store_records_answered, a, NULL, NULL,
                  CALLS_MAX);
    ck_assert_int_gt(oom_each_call("reset", b, tu_reset_answered, a, NULL,
                                   tu_at_epoch_of, CALLS_MAX),
                     2);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

static int
op_merge_from(crdt_replica *to, void *from)
{
    return tu_merge_from_answered(to, from, oom_real_malloc);
}

static int
op_attach(crdt_replica *r, void *unused)
{
    (void)unused;
    return epoch_attach(r);
}

/* b's changes of the epoch before, merged by a: rebased through the
 * lens, the write to a removed field into the quarantine; then the
 * quarantine listed and re-applied. */
START_TEST(test_rebase_and_quarantine_out_of_memory)
{
    uint64_t q = 0;
    int listed = 0;

    stale_pair(6);
    /* a failed attach keeps the hook it had: the merge below rebases */
    oom_each_call("attach again", a, op_attach, NULL, NULL, NULL, CALLS_MAX);
    ck_assert_int_gt(oom_each_call("rebasing merge", a, op_merge_from, b,
                                   NULL, NULL, CALLS_MAX),
                     2);
    ck_assert_int_eq(epoch_quarantine_count(&q, a), CRDT_OK);
    ck_assert_uint_eq(q, 1);
    oom_each_call("quarantine list", a, tu_quarantine_listed, &listed, NULL,
                  NULL, CALLS_MAX);
    ck_assert_int_eq(listed, 1);
    oom_each_call("quarantine apply", a, tu_quarantine_applied, NULL, NULL,
                  NULL, CALLS_MAX);
    ck_assert_int_eq(tu_reset_from(b, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

/* b re-writes a's increment as a copy of it (what a replica that lost
 * an equivocation does, crdt_txn_copy_of()), and a compacts, folding the
 * original: merged by a, the copy is rebased into an epoch whose cut
 * holds the change it copies, and is skipped. */
START_TEST(test_copy_of_a_folded_op_out_of_memory)
{
    crdt_actor orig = crdt_replica_actor(a);
    crdt_change ch;
    tu_batch keep, left;
    crdt_txn *t;
    char got[32];

    join_b();
    ck_assert_int_eq(tu_put_int(b, "c", "e", "v", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    keep = tu_export_all(a);
    ck_assert_uint_eq(keep.n, 1);
    ck_assert_int_eq(crdt_change_decode(&ch, keep.v[0].data, keep.v[0].len),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, ch.seq, ch.hash, ch.hlc),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_incr(t, "c", "d", "n", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, NULL, 0, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_batch_free(&keep);
    tu_migrate(a, NULL, NULL);
    /* b's change before the copy, rebased first: what a rebase from
     * b's epoch caches is there before the loop, so every run makes the
     * same allocations */
    keep = tu_export_all(b);
    ck_assert_uint_eq(keep.n, 2);
    ck_assert_int_eq(crdt_merge(NULL, a, keep.v, 1), CRDT_OK);
    tu_batch_free(&keep);
    ck_assert_int_gt(oom_each_call("rebasing merge of a copy", a,
                                   op_merge_from, b, NULL, NULL, CALLS_MAX),
                     2);
    left = tu_export_beyond(b, a);
    ck_assert_uint_eq(left.n, 0); /* merged */
    tu_batch_free(&left);
    tu_field_str(got, sizeof got, a, "c", "d", "n");
    ck_assert_str_eq(got, "c1"); /* counted once */
}
END_TEST

typedef struct {
    crdt_replica *fresh;
    const crdt_actor *forks;
    size_t n_forks;
} reset_with_log;

static int
op_reset_with_log(crdt_replica *stale, void *arg)
{
    const reset_with_log *x = arg;

    return tu_reset_with_log_answered(stale, x->fresh, x->forks, x->n_forks);
}

/* The reset of an equivocation committed: what lost is held (the
 * quarantine was empty before). */
static int
quarantine_holds(crdt_replica *r, void *unused)
{
    (void)unused;
    return tu_quarantine_count(r) > 0;
}

/* b holds a copy's chain of c's actor (seqs 2 and 3) where a holds c's
 * own (seq 2). b's reset to a's snapshot, with a's log staged, keeps
 * the change both hold (seq 1) and quarantines the copy's: found as a's
 * chain comes in (_i = 0), or named lost beforehand as a session does
 * (_i = 1, epoch_reset_quarantine_forks()). */
START_TEST(test_equivocation_reset_out_of_memory)
{
    crdt_actor forked;
    reset_with_log x = { a, &forked, (size_t)_i };
    char got[32];

    join_b();
    tu_forked_chains(a, b, &forked);
    ck_assert_int_gt(oom_each_call("reset over a copy's chain", b,
                                   op_reset_with_log, &x, NULL,
                                   quarantine_holds, CALLS_MAX),
                     2);
    ck_assert_uint_eq(tu_quarantine_count(b), 2);
    tu_field_str(got, sizeof got, b, "c", "orig", "v");
    ck_assert_str_eq(got, "2");
    tu_field_str(got, sizeof got, b, "c", "copy0", "v");
    ck_assert_str_eq(got, "");
    tu_assert_converged(a, b);
}
END_TEST

static int
put_entry(const void *k, size_t kl, const void *v, size_t vl, void *rs)
{
    return epoch_reset_put(rs, k, kl, v, vl);
}

/* A second naming of the lost chains that fails for want of memory
 * leaves the first one as it was: the reset commits with it (b's whole
 * chain of c's actor held: no log of a's was staged). */
START_TEST(test_failed_fork_naming_keeps_the_first)
{
    unsigned char hash[32];
    crdt_actor forked[2];
    epoch_info e;
    epoch_reset *rs;
    int rc;

    join_b();
    tu_forked_chains(a, b, &forked[0]);
    forked[1] = crdt_replica_actor(a);
    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    ck_assert_int_eq(epoch_reset_begin(&rs, b, e.id, NULL), CRDT_OK);
    epoch_info_clear(&e);
    ck_assert_int_eq(epoch_reset_quarantine_forks(rs, forked, 1, "lost",
                                                  NULL),
                     CRDT_OK);
    oom_arm(1);
    rc = epoch_reset_quarantine_forks(rs, forked, 2, "lost again", NULL);
    ck_assert(oom_disarm());
    ck_assert_int_eq(rc, CRDT_ENOMEM);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, hash, put_entry, rs),
                     CRDT_OK);
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, hash), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(b), 3);
}
END_TEST

/* a and b compact apart from one epoch, each folding a write of its
 * own: the loser's reset to the winner's epoch brings its fork's
 * archived changes back into the log for the replay. */
START_TEST(test_fork_reset_out_of_memory)
{
    static const char *const docs[] = { "d", "da", "db" };
    epoch_info ea, eb;
    epoch_relation ra;
    crdt_replica *loser, *winner;
    char got[32];

    join_b();
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "da", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, &ea);
    tu_migrate(b, NULL, &eb);
    {
        const unsigned char *ra_ = ea.raw, *rb_ = eb.raw;
        size_t la = ea.raw_len, lb = eb.raw_len;
        ck_assert_int_eq(epoch_store_records(b, &ra_, &la, 1), CRDT_OK);
        ck_assert_int_eq(epoch_store_records(a, &rb_, &lb, 1), CRDT_OK);
    }
    ck_assert_int_eq(epoch_relate(&ra, NULL, a, eb.id, NULL), CRDT_OK);
    ck_assert(ra == EPOCH_FORK_WIN || ra == EPOCH_FORK_LOSE);
    loser = ra == EPOCH_FORK_LOSE ? a : b;
    winner = loser == a ? b : a;
    ck_assert_int_gt(oom_each_call("reset of a forked epoch", loser,
                                   tu_reset_answered, winner, NULL,
                                   tu_at_epoch_of, CALLS_MAX),
                     2);
    ck_assert_int_eq(tu_sync_one_way(winner, loser), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(loser, winner), CRDT_OK);
    tu_assert_converged(a, b);
    for (int i = 0; i < 3; i++) { /* the loser's own write came back */
        tu_field_str(got, sizeof got, loser, "c", docs[i], "x");
        ck_assert_msg(got[0] != 0, "doc %s lost", docs[i]);
    }
    epoch_info_clear(&ea);
    epoch_info_clear(&eb);
}
END_TEST

/* A migration of another collection after a lens that added a field
 * with a default: the collection's kept defaults (one state entry,
 * rewrite_defaults.c) read, and carried over as they are. */
START_TEST(test_defaults_kept_through_a_migration_out_of_memory)
{
    epoch_lens *l = tu_lens("collection e 1 -> 2\nrename v -> w\n");
    epoch_info e;
    char got[32];

    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
    }
    ck_assert_int_eq(tu_put_int(a, "e", "x", "v", 7), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nadd note string default \"-\"\n",
               NULL);
    ck_assert_int_gt(oom_each_call("migration beside kept defaults", a,
                                   op_migrate, l, NULL, NULL, CALLS_MAX),
                     2);
    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    ck_assert_uint_eq(e.number, 2);
    epoch_info_clear(&e);
    tu_field_str(got, sizeof got, a, "e", "x", "w");
    ck_assert_str_eq(got, "7");
    tu_field_str(got, sizeof got, a, "c", "d1", "note");
    ck_assert_str_eq(got, "\"-\"");
    epoch_lens_free(l);
}
END_TEST

/* A custom migration that runs a lens over each document (a register
 * renamed, a set copied along with the document). */
static int
apply_lens(epoch_doc *doc, const char *coll, const char *doc_id, void *lens)
{
    (void)doc_id;
    return epoch_lens_apply_doc(doc, lens, coll);
}

static int
op_custom_migrate(crdt_replica *r, void *lens)
{
    epoch_builder *bl;
    int rc;

    if ((rc = epoch_builder_new(&bl, r)) < 0)
        return rc;
    rc = epoch_builder_set_custom(bl, "rename v", "c", 2, apply_lens, lens);
    if (rc == CRDT_OK)
        rc = epoch_builder_commit(NULL, bl);
    epoch_builder_free(bl);
    return rc;
}

START_TEST(test_custom_migration_out_of_memory)
{
    epoch_lens *l = tu_lens("collection c 1 -> 2\nrename v -> title\n");
    char got[32];

    for (int i = 0; i < 2; i++) {
        crdt_value x = crdt_value_str("x", 1), y = crdt_value_str("y", 1);
        char doc[16];
        crdt_txn *t;

        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &x), CRDT_OK);
        ck_assert_int_eq(crdt_txn_sadd(t, "c", doc, "s", &y), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    ck_assert_int_gt(oom_each_call("custom migration", a, op_custom_migrate,
                                   l, NULL, NULL, CALLS_MAX),
                     2);
    tu_field_str(got, sizeof got, a, "c", "d1", "title");
    ck_assert_str_eq(got, "1");
    tu_field_str(got, sizeof got, a, "c", "d1", "v");
    ck_assert_str_eq(got, "");
    tu_field_str(got, sizeof got, a, "c", "d1", "s");
    ck_assert_str_eq(got, "[\"x\",\"y\"]");
    epoch_lens_free(l);
}
END_TEST

/* A migration interrupted after its marker txn, resumed: a failed
 * resume leaves the state and the epoch as they were, with the marker
 * or without it (a migration that fails cleanly drops its marker). */
START_TEST(test_resume_out_of_memory_at_every_allocation)
{
    char before[65], after[65];
    epoch_info e;
    epoch_marker m;
    long n;
    int rc = CRDT_ENOMEM;

    for (int i = 0; i < 6; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
    }
    tu_interrupted(a, LENS);
    tu_hash(before, a);
    for (n = 1; n < CALLS_MAX; n++) {
        if (epoch_marker_get(&m, a) == CRDT_OK)
            epoch_marker_clear(&m);
        else
            tu_interrupted(a, LENS); /* the last try dropped it */
        oom_arm(n);
        rc = epoch_migration_resume(NULL, a, NULL, NULL);
        int hit = oom_disarm();
        if (!hit) {
            ck_assert_int_eq(rc, CRDT_OK);
            break;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "allocation %ld: %s", n,
                      crdt_strerror(rc));
        tu_hash(after, a);
        ck_assert_str_eq(after, before);
        ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
        ck_assert_uint_eq(e.number, 0);
        epoch_info_clear(&e);
    }
    ck_assert_int_eq(rc, CRDT_OK);
    ck_assert_int_gt(n, 2);
    ck_assert_int_eq(epoch_current(&e, a), CRDT_OK);
    ck_assert_uint_eq(e.number, 1);
    epoch_info_clear(&e);
    ck_assert_int_eq(epoch_marker_get(&m, a), CRDT_ENOTFOUND);
}
END_TEST

/* A lens of every step kind and clause, with comments and blank lines,
 * parsed and inverted (what a rebase down the chain does). */
static int
op_parse(crdt_replica *r, void *arg)
{
    epoch_lens *l = NULL, *inv = NULL;
    int rc;

    (void)r;
    rc = epoch_lens_parse(&l, arg, strlen(arg), NULL);
    if (rc == CRDT_OK)
        rc = epoch_lens_invert(&inv, l);
    epoch_lens_free(inv);
    epoch_lens_free(l);
    return rc;
}

START_TEST(test_lens_parse_out_of_memory)
{
    static const char text[] =
        "# every kind of step\n"
        "collection contacts 1 -> 2\n"
        "rename name -> full_name\n"
        "\n"
        "add note string default \"\"\n"
        "add n int default 3\n"
        "remove legacy_flag  # gone\n"
        "convert age int -> string\n"
        "convert status string -> int map \"a\"=1, \"b\"=2 default 0 "
        "reverse-default \"?\"\n"
        "convert body text -> string\n"
        "collection other 4 -> 5\n"
        "rename a -> b\n";

    ck_assert_int_gt(oom_each_call("lens parse", a, op_parse, (void *)text,
                                   NULL, NULL, CALLS_MAX),
                     2);
}
END_TEST

/* ---- what a peer reads of an epoch, and a copy behind an epoch ---- */

/* Every record held (a peer's transform needs them all): arg gets how
 * many. */
static int
op_all_records(crdt_replica *r, void *count)
{
    epoch_info *all;
    size_t n;
    int rc;

    *(size_t *)count = 0;
    if ((rc = epoch_all(&all, &n, r)) < 0)
        return rc;
    *(size_t *)count = n;
    epoch_chain_free(all, n);
    return CRDT_OK;
}

/* The state streamed as a giver sends it: arg gets the entries. */
static int
op_snapshot_stream(crdt_replica *r, void *count)
{
    unsigned char id[32], hash[32];
    epoch_snapshot *s;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    *(size_t *)count = 0;
    if ((rc = epoch_snapshot_open(&s, r, id, hash)) < 0)
        return rc;
    while ((rc = epoch_snapshot_next(s, &k, &kl, &v, &vl)) == CRDT_OK)
        ++*(size_t *)count;
    epoch_snapshot_close(s);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

/* Each log record's changes copied out, as a verifier reads them: arg
 * gets how many. */
static int
op_log_changes(crdt_replica *r, void *count)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    *(size_t *)count = 0;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_LOG)) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    for (rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
         rc == CRDT_OK; rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl)) {
        crdt_bytes *list;
        unsigned char *buf;
        size_t n;
        if ((rc = crdt_raw_log_changes(&list, &n, &buf, k, kl, v, vl)) < 0)
            break;
        *(size_t *)count += n;
        crdt_free(list);
        crdt_free(buf);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

START_TEST(test_epoch_reads_out_of_memory)
{
    size_t n = 0;

    for (int i = 0; i < 3; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "v", i), CRDT_OK);
    }
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d3", "v", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d4", "v", 4), CRDT_OK);
    ck_assert_int_gt(oom_each_call("all records", a, op_all_records, &n,
                                   NULL, NULL, CALLS_MAX),
                     0);
    ck_assert_uint_eq(n, 1); /* the compaction's: genesis is no record */
    ck_assert_int_gt(oom_each_call("snapshot stream", a, op_snapshot_stream,
                                   &n, NULL, NULL, CALLS_MAX),
                     0);
    ck_assert_uint_ge(n, 5); /* at least each document's register */
    ck_assert_int_gt(oom_each_call("log changes", a, op_log_changes, &n,
                                   NULL, NULL, CALLS_MAX),
                     1);
    ck_assert_uint_eq(n, 2); /* d3's and d4's: the rest is archived */
}
END_TEST

/* b, a copy of a third replica, wrote under its actor while a folded
 * the original's writes into a compaction (tu_copy_behind_epoch()): b's
 * reset to a's epoch finds its chain forked at the cut and moves it to
 * the quarantine, to be re-applied under a new actor. */
START_TEST(test_copy_behind_epoch_reset_out_of_memory)
{
    join_b();
    tu_copy_behind_epoch(a, &b, db, sizeof db);
    oom_each_call("store records", b, tu_store_records_answered, a, NULL, NULL,
                  CALLS_MAX);
    ck_assert_int_gt(oom_each_call("copy's reset", b, tu_reset_answered, a,
                                   NULL, tu_at_epoch_of, CALLS_MAX),
                     2);
    ck_assert_uint_ge(tu_copy_writes_kept(b), 5);
}
END_TEST

/* b's new document of the epoch before, merged by a through a lens that
 * adds a field: the rebase gives the document the field's default (and
 * applies a register too long for the stack's buffer), then b's text in
 * that field takes the default away. */
START_TEST(test_text_over_a_given_default_out_of_memory)
{
    crdt_value v;
    crdt_txn *t;
    tu_batch keep;
    char got[32], long_str[600];

    join_b();
    ck_assert_int_eq(tu_put_int(a, "c", "d0", "v", 0), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d0", "v", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "d0", "v", 2), CRDT_OK);
    memset(long_str, 'y', sizeof long_str - 1);
    long_str[sizeof long_str - 1] = 0;
    v = crdt_value_str(long_str, strlen(long_str));
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_put(t, "c", "dn", "long", &v), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "dn", "note", 0, "x", 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nadd note string default \"-\"\n",
               NULL);
    /* b's first two changes, rebased before the loop: what a rebase from
     * b's epoch caches, and the merge's buffers for two, are there, so
     * every run makes the same allocations */
    keep = tu_export_beyond(b, a);
    ck_assert_uint_eq(keep.n, 4);
    ck_assert_int_eq(crdt_merge(NULL, a, keep.v, 2), CRDT_OK);
    tu_batch_free(&keep);
    ck_assert_int_gt(oom_each_call("a text over a given default", a,
                                   op_merge_from, b, NULL, NULL, CALLS_MAX),
                     2);
    tu_field_str(got, sizeof got, a, "c", "dn", "note");
    ck_assert_str_eq(got, "\"x\"");
    tu_field_str(got, sizeof got, a, "c", "dn", "long");
    ck_assert_uint_eq(strlen(got), sizeof got - 1); /* cut to fit */
    ck_assert_int_eq(got[1], 'y');
}
END_TEST

/* A copy of an insert and its original met in a reset's replay
 * (tu_copy_and_original()): the original finds the copy waiting and
 * takes its ids away. */
START_TEST(test_copy_and_original_replay_out_of_memory)
{
    crdt_replica *stale, *fresh;
    reset_with_log x = { NULL, NULL, 0 };
    char got[16];

    join_b();
    tu_copy_and_original(a, b, &stale, &fresh);
    x.fresh = fresh;
    ck_assert_int_gt(oom_each_call("reset replaying a copy and its original",
                                   stale, op_reset_with_log, &x, NULL,
                                   tu_at_epoch_of, CALLS_MAX),
                     2);
    tu_field_str(got, sizeof got, stale, "c", "d", "t");
    ck_assert_str_eq(got, "\"hey\"");
    ck_assert_int_eq(tu_sync_one_way(fresh, stale), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oom");
    TCase *tc = tcase_create("migration");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_migration_out_of_memory_at_every_allocation,
                        0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("after");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_reset_out_of_memory_at_every_allocation);
    tcase_add_test(tc, test_rebase_and_quarantine_out_of_memory);
    tcase_add_test(tc, test_lens_parse_out_of_memory);
    tcase_add_test(tc, test_resume_out_of_memory_at_every_allocation);
    tcase_add_test(tc, test_copy_of_a_folded_op_out_of_memory);
    tcase_add_loop_test(tc, test_equivocation_reset_out_of_memory, 0, 2);
    tcase_add_test(tc, test_failed_fork_naming_keeps_the_first);
    tcase_add_test(tc, test_fork_reset_out_of_memory);
    tcase_add_test(tc, test_defaults_kept_through_a_migration_out_of_memory);
    tcase_add_test(tc, test_custom_migration_out_of_memory);
    suite_add_tcase(s, tc);

    tc = tcase_create("side_roads");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_epoch_reads_out_of_memory);
    tcase_add_test(tc, test_copy_behind_epoch_reset_out_of_memory);
    tcase_add_test(tc, test_text_over_a_given_default_out_of_memory);
    tcase_add_test(tc, test_copy_and_original_replay_out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}
