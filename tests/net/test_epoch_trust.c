/*
 * test_epoch_trust.c: a replica that holds the previous epoch re-derives
 * a compaction or lens epoch from its own state before adopting it. A
 * forged epoch (signed by its creator, but whose state does not follow
 * from the ops it folds) is refused with a reason and the replica stays
 * at its epoch with nothing lost; a replica that has nothing to derive
 * from (a new one) trusts the signature alone, and only a valid one.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

/* The test helper that builds a bad snapshot: write one register into
 * @p r's state directly, as no op of its log does (the state hash moves
 * with it), so the next epoch @p r makes folds a state that does not
 * follow from its ops. */
static void
tamper_state(crdt_replica *r, int64_t v)
{
    tu_state_put_ghost(r, "balance", v);
}

/* a writes, then both hold the same ops at epoch 0 */
static void
shared_history(void)
{
    tu_sync_result s;

    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "balance", 10 + i), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "e", "n", 1), CRDT_OK);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ex, 0);
    ck_assert_int_eq(s.ey, 0);
}

static uint64_t
epoch_number(crdt_replica *r)
{
    epoch_info e;
    uint64_t n;

    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    n = e.number;
    epoch_info_clear(&e);
    return n;
}

static const char *RENAME = "collection c 1 -> 2\nrename n -> count\n";

static void
check_genuine(const char *lens_text)
{
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;

    shared_history();
    tu_migrate(a, lens_text, &e);
    /* b holds the records, then checks the epoch itself */
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_msg(chk.verdict == EPOCH_DERIVED_MATCH, "%s", chk.reason);
    ck_assert_uint_eq(chk.number, 1);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ex, 0);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    ck_assert_int_eq(s.ry.snapshot_received, 1);
    tu_assert_converged(a, b);
    epoch_info_clear(&e);
}

START_TEST(test_genuine_compaction_adopted)
{
    check_genuine(NULL);
}
END_TEST

START_TEST(test_genuine_lens_adopted)
{
    char buf[64];

    check_genuine(RENAME);
    tu_field_str(buf, sizeof buf, b, "c", "e", "count");
    ck_assert_str_eq(buf, "1");
}
END_TEST

static void
check_forged(const char *lens_text)
{
    char before[65], after[65], buf[64];
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;
    uint64_t q0, q1;

    shared_history();
    tu_hash(before, b);
    ck_assert_int_eq(epoch_quarantine_count(&q0, b), CRDT_OK);
    tamper_state(a, 1000000);
    tu_migrate(a, lens_text, &e);
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_MISMATCH);
    ck_assert_ptr_nonnull(strstr(chk.reason, "epoch 1 from "));
    ck_assert_ptr_nonnull(strstr(chk.reason, "does not match its migration: "
                                             "state hash differs"));
    /* the sync path refuses it: b stays at epoch 0, nothing changes */
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_ptr_nonnull(strstr(s.ry.reason, "does not match its "
                                              "migration"));
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_hash(after, b);
    ck_assert_str_eq(before, after);
    ck_assert_int_eq(epoch_quarantine_count(&q1, b), CRDT_OK);
    ck_assert_uint_eq(q0, q1);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "14");
    /* b keeps writing and syncing at epoch 0 with a replica there */
    ck_assert_int_eq(tu_put_int(b, "c", "d", "balance", 15), CRDT_OK);
    {
        char dc[256];
        unsigned char space[16];
        crdt_replica *c;
        tu_sync_result s2;

        crdt_replica_space_id(b, space);
        c = tu_create(dc, sizeof dc, space);
        ck_assert_int_eq(epoch_attach(c), CRDT_OK);
        s2 = tu_sessions_run(b, c, NULL);
        ck_assert_msg(s2.ex == 0 && s2.ey == 0, "%s / %s", s2.rx.reason,
                      s2.ry.reason);
        tu_field_str(buf, sizeof buf, c, "c", "d", "balance");
        ck_assert_str_eq(buf, "15");
        crdt_replica_close(c);
        test_rmtree(dc);
    }
    /* and refuses the forged epoch again on the next try */
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_uint_eq(epoch_number(b), 0);
    /* an epoch built on the forged one is refused with its reason */
    tu_migrate(a, NULL, NULL);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_ptr_nonnull(strstr(s.ry.reason, "epoch 1 from "));
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "15");
    epoch_info_clear(&e);
}

START_TEST(test_forged_compaction_refused)
{
    check_forged(NULL);
}
END_TEST

START_TEST(test_forged_lens_refused)
{
    check_forged(RENAME);
}
END_TEST

/* A brand-new replica holds nothing to derive from: it adopts a forged
 * epoch on its creator's valid signature alone (docs/security.md). */
START_TEST(test_new_replica_trusts_signature_only)
{
    char dc[256], ha[65], hc[65];
    unsigned char space[16];
    crdt_replica *c;
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;

    shared_history();
    tamper_state(a, 1000000);
    tu_migrate(a, NULL, &e);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    ck_assert_int_eq(epoch_store_records(c, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, c, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_UNCHECKED);
    ck_assert_uint_gt(chk.lacking, 0);
    ck_assert_ptr_nonnull(strstr(chk.reason, "signature alone"));
    s = tu_sessions_run(a, c, NULL);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    ck_assert_uint_eq(epoch_number(c), 1);
    tu_hash(ha, a);
    tu_hash(hc, c);
    ck_assert_str_eq(ha, hc);
    crdt_replica_close(c);
    test_rmtree(dc);
    epoch_info_clear(&e);
}
END_TEST

/* ...but only a valid signature: a record whose signature was altered
 * is not stored, so no reset to it can begin. */
START_TEST(test_bad_signature_not_stored)
{
    char dc[256];
    unsigned char space[16], *bad;
    const unsigned char *rec;
    crdt_replica *c;
    epoch_info e, got;
    size_t len;

    shared_history();
    tu_migrate(a, NULL, &e);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    bad = malloc(e.raw_len);
    memcpy(bad, e.raw, e.raw_len);
    bad[e.raw_len - 1] ^= 0x01; /* the signature is the record's tail */
    rec = bad;
    len = e.raw_len;
    ck_assert_int_lt(epoch_store_records(c, &rec, &len, 1), 0);
    ck_assert_int_eq(epoch_get(&got, c, e.id), CRDT_ENOTFOUND);
    free(bad);
    crdt_replica_close(c);
    test_rmtree(dc);
    epoch_info_clear(&e);
}
END_TEST

/* b wrote beyond the cut: it cannot take its own ops out of the state,
 * so the signature vouches; the epoch is adopted and b's ops survive. */
START_TEST(test_beyond_cut_trusts_signature)
{
    char buf[64];
    epoch_info e;
    epoch_check chk;
    tu_sync_result s;

    shared_history();
    ck_assert_int_eq(tu_put_int(b, "c", "x", "mine", 7), CRDT_OK);
    tu_migrate(a, NULL, &e);
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_UNCHECKED);
    ck_assert_ptr_nonnull(strstr(chk.reason, "beyond the cut"));
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s", s.ry.reason);
    tu_assert_converged(a, b);
    tu_field_str(buf, sizeof buf, a, "c", "x", "mine");
    ck_assert_str_eq(buf, "7");
    epoch_info_clear(&e);
}
END_TEST

/* After the shared history, a writes twice more that b never sees (b
 * missed them), then migrates: b lacks those changes of the cut. */
static void
missed_writes(void)
{
    shared_history();
    ck_assert_int_eq(tu_put_int(a, "c", "d", "balance", 20), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "m", "late", 3), CRDT_OK);
}

/* b missed writes of the cut: the giver sends them first (CUT), b merges
 * them at epoch 0, re-derives the genuine epoch and adopts it. */
static void
check_missed_genuine(const char *lens_text)
{
    char buf[64];
    tu_sync_result s;

    missed_writes();
    tu_migrate(a, lens_text, NULL);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s / %s", s.rx.reason,
                  s.ry.reason);
    ck_assert_uint_eq(s.ry.cut_changes_received, 2);
    ck_assert_int_eq(s.ry.snapshot_received, 1);
    ck_assert_uint_eq(epoch_number(b), 1);
    tu_assert_converged(a, b);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "20");
    tu_field_str(buf, sizeof buf, b, "c", "m", "late");
    ck_assert_str_eq(buf, "3");
}

START_TEST(test_missed_writes_fetched_genuine_adopted)
{
    check_missed_genuine(NULL);
}
END_TEST

START_TEST(test_missed_writes_fetched_genuine_lens_adopted)
{
    char buf[64];

    check_missed_genuine(RENAME);
    tu_field_str(buf, sizeof buf, b, "c", "e", "count");
    ck_assert_str_eq(buf, "1");
}
END_TEST

/* The forged epoch b could not check before (it lacked changes of the
 * cut, so the signature vouched): b fetches them, re-derives, refuses;
 * it stays at epoch 0 and keeps the fetched writes (nothing lost). */
/* b missed writes of a; a forges its state and migrates (epoch 1). */
static void
forge_after_missed_writes(void)
{
    missed_writes();
    tamper_state(a, 1000000);
    tu_migrate(a, NULL, NULL);
}

/* The sync succeeded with no CUT, and b adopted a's epoch 1 on its
 * signature (the rule for peers and archives that cannot supply a cut). */
static void
assert_adopted_without_cut(const tu_sync_result *s)
{
    ck_assert_msg(s->ex == 0 && s->ey == 0, "%s / %s", s->rx.reason,
                  s->ry.reason);
    ck_assert_uint_eq(s->ry.cut_changes_received, 0);
    ck_assert_uint_eq(epoch_number(b), 1);
    tu_assert_converged(a, b);
}

static void
check_missed_forged(const char *lens_text, const crdtnet_session_options *o)
{
    char buf[64];
    epoch_check chk;
    epoch_info e;
    tu_sync_result s;

    missed_writes();
    tamper_state(a, 1000000);
    tu_migrate(a, lens_text, &e);
    ck_assert_int_eq(epoch_store_records(b, (const unsigned char *const *)&e.raw,
                                         &e.raw_len, 1), CRDT_OK);
    /* on its own b cannot tell: it lacks 2 ops of the cut */
    ck_assert_int_eq(epoch_check_derivation(&chk, b, e.id), CRDT_OK);
    ck_assert_int_eq(chk.verdict, EPOCH_DERIVED_UNCHECKED);
    ck_assert_uint_eq(chk.lacking, 2);
    s = tu_sessions_run(a, b, o);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_ptr_nonnull(strstr(s.ry.reason, "does not match its "
                                              "migration"));
    ck_assert_uint_eq(s.ry.cut_changes_received, 2);
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "20");
    tu_field_str(buf, sizeof buf, b, "c", "m", "late");
    ck_assert_str_eq(buf, "3");
    /* refused again, now from the record of the refusal */
    s = tu_sessions_run(a, b, o);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_uint_eq(s.ry.cut_changes_received, 0);
    ck_assert_uint_eq(epoch_number(b), 0);
    epoch_info_clear(&e);
}

START_TEST(test_missed_writes_fetched_forged_refused)
{
    check_missed_forged(NULL, NULL);
}
END_TEST

START_TEST(test_missed_writes_fetched_forged_lens_refused)
{
    check_missed_forged(RENAME, NULL);
}
END_TEST

/* The fetch works in both sync protocols. */
START_TEST(test_missed_writes_fetched_protocol_3)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;

    o.sync_proto = 3;
    check_missed_forged(NULL, &o);
}
END_TEST

/* Two epochs behind: the cut fetched is that of the first epoch on the
 * giver's chain after b's (epoch 1), the one b can re-derive; a forged
 * epoch 1 under a genuine epoch 2 is refused with epoch 1's reason, a
 * genuine pair is adopted. */
START_TEST(test_two_epochs_behind_fetches_the_first_cut)
{
    char buf[64];
    tu_sync_result s;

    forge_after_missed_writes();
    ck_assert_int_eq(tu_put_int(a, "c", "d", "balance", 30), CRDT_OK);
    tu_migrate(a, NULL, NULL);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ey, CRDT_EREJECTED);
    ck_assert_ptr_nonnull(strstr(s.ry.reason, "epoch 1 from "));
    ck_assert_uint_eq(s.ry.cut_changes_received, 2);
    ck_assert_uint_eq(epoch_number(b), 0);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "20");
}
END_TEST

START_TEST(test_two_epochs_behind_genuine_adopted)
{
    char buf[64];
    tu_sync_result s;

    missed_writes();
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "balance", 30), CRDT_OK);
    tu_migrate(a, RENAME, NULL);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s / %s", s.rx.reason,
                  s.ry.reason);
    ck_assert_uint_eq(s.ry.cut_changes_received, 2);
    ck_assert_uint_eq(epoch_number(b), 2);
    tu_assert_converged(a, b);
    tu_field_str(buf, sizeof buf, b, "c", "d", "balance");
    ck_assert_str_eq(buf, "30");
}
END_TEST

/* A copy of b (its data directory) wrote its own seq 2 of b's actor while
 * b wrote seqs 2 and 3, which the epoch folds: the copy lacks seq 3 of
 * the cut, but its chain forks from the cut's below it. The giver sends
 * no CUT (the run would not chain to the copy's head); the copy takes
 * the epoch as before (the reset settles the fork). */
START_TEST(test_forked_taker_is_sent_no_cut)
{
    char dc[256];
    crdt_replica *c;
    tu_sync_result s;

    shared_history();
    ck_assert_int_eq(tu_put_int(b, "c", "b", "n", 1), CRDT_OK);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s", s.ry.reason);
    crdt_replica_close(b);
    tu_copy_dir(db, dc, sizeof dc);
    b = tu_open_dir(db);
    c = tu_open_dir(dc);
    ck_assert_int_eq(tu_put_int(b, "c", "b", "n", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "b", "n", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "copy", "n", 2), CRDT_OK);
    s = tu_sessions_run(a, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s", s.ry.reason);
    tu_migrate(a, NULL, NULL); /* folds b's seqs 1..3 */
    s = tu_sessions_run(a, c, NULL);
    ck_assert_uint_eq(s.ry.cut_changes_received, 0);
    ck_assert_msg(s.ey == 0, "%s", s.ry.reason);
    ck_assert_uint_eq(epoch_number(c), 1);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

/* A peer from before CUT (plain_changes: it writes epoch_number as the
 * shortest uint and reads no CUT) still syncs, with the old rule: the
 * new giver sends it nothing before the snapshot, and it adopts the
 * forged epoch on the signature, as before. */
START_TEST(test_older_taker_keeps_old_rule)
{
    crdtnet_session_options old = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result s;

    old.plain_changes = 1;
    forge_after_missed_writes();
    s = tu_sessions_run2(a, NULL, b, &old);
    assert_adopted_without_cut(&s);
}
END_TEST

/* An older giver never sends CUT: the new taker adopts on the signature
 * as before, and the sync succeeds. */
START_TEST(test_older_giver_keeps_old_rule)
{
    crdtnet_session_options old = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result s;

    old.plain_changes = 1;
    forge_after_missed_writes();
    s = tu_sessions_run2(a, &old, b, NULL);
    assert_adopted_without_cut(&s);
}
END_TEST

/* A migration whose lens adds a field with a default keeps the default
 * once for the collection (store format 5, storage.md 4.2). A peer of a
 * release before it (plain_changes 3: everything else announced) would
 * store that entry and never show the default, so a giver refuses it
 * the snapshot with the reason, and the stale replica is left as it
 * was; one that announces it (epoch_id as bin 16 in HELLO) takes it and
 * shows the default. An epoch that keeps no defaults still goes to the
 * older peer. */
START_TEST(test_older_taker_refused_kept_defaults)
{
    crdtnet_session_options old = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session_options v3 = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sa;
    const unsigned char *msg;
    size_t len;
    tu_sync_result s;
    crdt_value dash = crdt_value_str("-", 1);
    crdt_read *rd;
    crdt_field f;
    char h0[65], h1[65];

    shared_history();
    /* epoch 1 keeps no defaults: the older peer takes it */
    tu_migrate(a, NULL, NULL);
    old.plain_changes = 3;
    s = tu_sessions_run2(a, NULL, b, &old);
    ck_assert_int_eq(s.ex, 0);
    ck_assert_int_eq(s.ey, 0);
    ck_assert_uint_eq(epoch_number(b), 1);
    /* epoch 2 keeps one */
    tu_migrate(a, "collection c 1 -> 2\nadd note string default \"-\"\n",
               NULL);
    tu_hash(h0, b);
    s = tu_sessions_run2(a, NULL, b, &old);
    ck_assert_int_eq(s.ex, CRDT_EVERSION);
    ck_assert_str_eq(s.rx.reason,
                     "the peer's release cannot read this epoch's kept lens "
                     "defaults (store format 5): upgrade it");
    ck_assert_int_eq(s.ey, CRDT_EVERSION);
    ck_assert_str_eq(s.ry.reason,
                     "peer: the peer's release cannot read this epoch's "
                     "kept lens defaults (store format 5): upgrade it");
    ck_assert_uint_eq(epoch_number(b), 1);
    tu_hash(h1, b);
    ck_assert_str_eq(h0, h1);
    /* the HELLO of a release that reads them: epoch_id as c5 00 20 */
    v3.sync_proto = 3; /* its HELLO is the first message */
    ck_assert_int_eq(crdtnet_session_new(&sa, a, &v3), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_next_out(sa, &msg, &len), CRDT_OK);
    ck_assert_uint_ge(len, 6);
    ck_assert_uint_eq(msg[4], 0xc5);
    ck_assert_uint_eq(msg[5], 0);
    ck_assert_uint_eq(msg[6], 32);
    crdtnet_session_free(sa);
    /* b upgraded: it takes the epoch and shows the default */
    s = tu_sessions_run(a, b, NULL);
    ck_assert_int_eq(s.ex, 0);
    ck_assert_int_eq(s.ey, 0);
    ck_assert_uint_eq(epoch_number(b), 2);
    ck_assert_int_eq(crdt_read_begin(&rd, b), CRDT_OK);
    ck_assert_int_eq(crdt_read_field(&f, rd, "c", "e", "note"), CRDT_OK);
    ck_assert_int_eq(f.kind, CRDT_FIELD_REGISTER);
    ck_assert_int_eq(crdt_value_cmp(&f.value, &dash), 0);
    crdt_read_end(rd);
    tu_assert_converged(a, b);
}
END_TEST

/* The giver pruned the archive (retention): it cannot supply the cut,
 * sends nothing before the snapshot, and the signature vouches. */
START_TEST(test_pruned_archive_keeps_old_rule)
{
    crdt_raw *t;
    tu_sync_result s;

    forge_after_missed_writes();
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_prune_archive(t, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    s = tu_sessions_run(a, b, NULL);
    assert_adopted_without_cut(&s);
}
END_TEST

/* Pump @p from into @p to, one message at a time, until @p from's FORKS
 * has been fed to @p to; 1 once it has. */
static int
pump_through_forks(crdtnet_session *from, crdtnet_session *to)
{
    const unsigned char *msg;
    size_t len;
    int forks = 0;

    while (!forks && crdtnet_session_next_out(from, &msg, &len) == CRDT_OK) {
        unsigned char *copy = malloc(len ? len : 1);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, msg, len);
        forks = len >= 2 && copy[0] == 0x92 && copy[1] == 0x0c;
        crdtnet_session_feed(to, copy, len);
        free(copy);
    }
    return forks;
}

/* A CUT reaches @p who (b's session, with @p ob) right after the peer's
 * FORKS; @p a_ahead: a migrated first (b is its taker). */
static tu_sync_result
cut_after_forks(const crdtnet_session_options *ob, int a_ahead,
                const unsigned char *cut, size_t cut_len)
{
    crdtnet_session *sa, *sb;
    tu_sync_result res;
    int fed = 0;

    unsigned char beyond[4096];

    shared_history();
    if (a_ahead)
        tu_migrate(a, NULL, NULL);
    if (cut == NULL) { /* a CUT of a's change written after its epoch */
        crdt_export *e;
        const unsigned char *p, *last = NULL;
        size_t len, last_len = 0;
        ck_assert_int_eq(tu_put_int(a, "c", "d", "balance", 99), CRDT_OK);
        ck_assert_int_eq(crdt_export_begin(&e, a, NULL), CRDT_OK);
        while (crdt_export_next(e, &p, &len) == CRDT_OK) {
            ck_assert_uint_lt(len + 6, sizeof beyond);
            memcpy(beyond + 6, p, len);
            last = beyond;
            last_len = len;
        }
        crdt_export_end(e);
        ck_assert_ptr_nonnull(last);
        beyond[0] = 0x92;
        beyond[1] = 0x0f;
        beyond[2] = 0x91;
        beyond[3] = 0xc5;
        beyond[4] = (unsigned char)(last_len >> 8);
        beyond[5] = (unsigned char)last_len;
        cut = beyond;
        cut_len = last_len + 6;
    }
    ck_assert_int_eq(crdtnet_session_new(&sa, a, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sb, b, ob), CRDT_OK);
    for (int round = 0; round < 100 && !fed; round++) {
        tu_pump(sb, sa);
        if (pump_through_forks(sa, sb)) {
            res.ey = crdtnet_session_feed(sb, cut, cut_len);
            fed = 1;
        }
    }
    ck_assert(fed);
    res.ry = *crdtnet_session_report(sb);
    crdtnet_session_free(sa);
    crdtnet_session_free(sb);
    return res;
}

/* CUT is refused where it does not belong: at the same epoch (not a
 * taker), by a side that never announced it (plain_changes), and with a
 * change beyond the cut of the taker's next epoch. */
START_TEST(test_cut_where_it_does_not_belong)
{
    static const unsigned char cut[] = { 0x92, 0x0f, 0x90 };
    static const unsigned char packed_cut[] = { 0x93, 0x0d, 0x0f, 0xc4,
                                                0x00 };
    crdtnet_session_options old = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result r;

    r = cut_after_forks(NULL, 0, cut, sizeof cut);
    ck_assert_int_eq(r.ey, CRDT_EPROTO);
    ck_assert_str_eq(r.ry.reason, "unexpected CUT");
    teardown();
    setup();
    r = cut_after_forks(NULL, 0, packed_cut, sizeof packed_cut);
    ck_assert_int_eq(r.ey, CRDT_EPROTO);
    ck_assert_str_eq(r.ry.reason, "unexpected CUT");
    teardown();
    setup();
    old.plain_changes = 1;
    r = cut_after_forks(&old, 1, cut, sizeof cut);
    ck_assert_int_eq(r.ey, CRDT_EPROTO);
    ck_assert_str_eq(r.ry.reason, "unknown message type");
    teardown();
    setup();
    /* a taker that announced it takes an empty CUT before SNAP_BEGIN */
    r = cut_after_forks(NULL, 1, cut, sizeof cut);
    ck_assert_int_eq(r.ey, CRDT_OK);
    teardown();
    setup();
    /* but not a change beyond the cut: it would leave the taker beyond
     * it, where the signature alone vouches */
    r = cut_after_forks(NULL, 1, NULL, 0);
    ck_assert_int_eq(r.ey, CRDT_EPROTO);
    ck_assert_str_eq(r.ry.reason, "CUT beyond the epoch's cut");
    ck_assert_uint_eq(epoch_number(b), 0);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("epoch_trust");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_genuine_compaction_adopted);
    tcase_add_test(tc, test_genuine_lens_adopted);
    tcase_add_test(tc, test_forged_compaction_refused);
    tcase_add_test(tc, test_forged_lens_refused);
    tcase_add_test(tc, test_new_replica_trusts_signature_only);
    tcase_add_test(tc, test_bad_signature_not_stored);
    tcase_add_test(tc, test_beyond_cut_trusts_signature);
    tcase_add_test(tc, test_missed_writes_fetched_genuine_adopted);
    tcase_add_test(tc, test_missed_writes_fetched_genuine_lens_adopted);
    tcase_add_test(tc, test_missed_writes_fetched_forged_refused);
    tcase_add_test(tc, test_missed_writes_fetched_forged_lens_refused);
    tcase_add_test(tc, test_missed_writes_fetched_protocol_3);
    tcase_add_test(tc, test_older_taker_keeps_old_rule);
    tcase_add_test(tc, test_older_giver_keeps_old_rule);
    tcase_add_test(tc, test_pruned_archive_keeps_old_rule);
    tcase_add_test(tc, test_older_taker_refused_kept_defaults);
    tcase_add_test(tc, test_cut_where_it_does_not_belong);
    tcase_add_test(tc, test_two_epochs_behind_fetches_the_first_cut);
    tcase_add_test(tc, test_two_epochs_behind_genuine_adopted);
    tcase_add_test(tc, test_forked_taker_is_sent_no_cut);
    suite_add_tcase(s, tc);
    return s;
}
