/*
 * test_reset_edges.c: the reset to a peer's snapshot (reset.c), the
 * snapshot reader (snapshot.c) and epoch_relate() (relate.c) at their
 * edges: refused arguments, staging tokens of every form (old, of a dead
 * or unknown owner, of a length no reset writes) and a token taken over
 * in the middle of a reset, a snapshot and a staged log too large to be
 * buffered in one piece, a snapshot migrated up on its way in (through a
 * lens, through a compaction, refused for a custom migration or an epoch
 * that is no child of the target, a broken lens, a hostile entry, an
 * epoch its owner did not sign), a snapshot that is not the reported
 * state, a migration started meanwhile, a target of another root, a map
 * that must grow while staging, damaged state, staging and archive
 * entries, our unsynced ops quarantined by a rejected reset, and the
 * stale-peer policy and missing records of epoch_relate(). Each refused
 * input must leave the replica as it was.
 *
 * Not here: LMDB and allocation failures inside a reset. They need the
 * linker's wraps (support/mdbfault.h, support/oom.h), which only the
 * binaries listed in tests/CMakeLists.txt get.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "epoch_internal.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

static int
put_into_reset(const void *k, size_t kl, const void *v, size_t vl, void *rs)
{
    return epoch_reset_put(rs, k, kl, v, vl);
}

/* Write (or, with @p v NULL, delete) one raw record of @p r, checked. */
static void
raw_set(crdt_replica *r, crdt_db which, const void *k, size_t kl, const void *v,
        size_t vl)
{
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    if (v != NULL)
        ck_assert_int_eq(crdt_raw_put(t, which, k, kl, v, vl), CRDT_OK);
    else
        ck_assert_int_eq(crdt_raw_del(t, which, k, kl), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

static void
be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

/* A staging token as another reset writes it: token(16) | started_ms |
 * pid | pid_start, big-endian; @p len 24 stops after started_ms (a token
 * written before the owner was recorded). */
static void
token_put(crdt_replica *r, size_t len, uint64_t started_ms, uint64_t pid,
          uint64_t pid_start)
{
    unsigned char tok[40];

    memset(tok, 0xa5, 16);
    be64(tok + 16, started_ms);
    be64(tok + 24, pid);
    be64(tok + 32, pid_start);
    raw_set(r, CRDT_DB_META, "staging", 7, tok, len);
}

static epoch_staging
staging_of(crdt_replica *r)
{
    epoch_staging s;

    ck_assert_int_eq(epoch_staging_get(&s, r), CRDT_OK);
    return s;
}

/* What a refused reset must leave as it was: the epoch, the state, the
 * log and the quarantine. */
typedef struct {
    unsigned char epoch[EPOCH_ID_BYTES];
    unsigned char state[32], log[32], quarantine[32];
} view;

static view
view_of(crdt_replica *r)
{
    view v;
    epoch_info e;
    crdt_raw *t;
    crdt_db active;

    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    memcpy(v.epoch, e.id, EPOCH_ID_BYTES);
    epoch_info_clear(&e);
    /* the active slot: a failed reset may leave the spare half staged,
     * which nothing reads and the next reset clears */
    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    active = crdt_raw_state_db(t, 0);
    crdt_raw_abort(t);
    tu_db_digest(r, active, v.state);
    tu_db_digest(r, CRDT_DB_LOG, v.log);
    tu_db_digest(r, CRDT_DB_QUARANTINE, v.quarantine);
    return v;
}

static void
assert_unchanged(crdt_replica *r, const view *before)
{
    view now = view_of(r);

    ck_assert_mem_eq(now.epoch, before->epoch, EPOCH_ID_BYTES);
    ck_assert_mem_eq(now.state, before->state, 32);
    ck_assert_mem_eq(now.log, before->log, 32);
    ck_assert_mem_eq(now.quarantine, before->quarantine, 32);
}

static void
current_id(unsigned char *id, crdt_replica *r)
{
    epoch_info e;

    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    memcpy(id, e.id, EPOCH_ID_BYTES);
    epoch_info_clear(&e);
}

/* b's reset to a's current epoch, a's snapshot streamed into it (its
 * state hash in @p hash) */
static epoch_reset *
reset_b_from_a(unsigned char hash[32])
{
    unsigned char id[EPOCH_ID_BYTES];
    epoch_reset *rs;

    current_id(id, a);
    ck_assert_int_eq(epoch_reset_begin(&rs, b, id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, hash, put_into_reset, rs),
                     CRDT_OK);
    return rs;
}

/* ---- bad arguments ---- */

static int
count_entry(const void *k, size_t kl, const void *v, size_t vl, void *n)
{
    (void)k, (void)kl, (void)v, (void)vl;
    ++*(int *)n;
    return 0;
}

START_TEST(test_reset_arguments_are_refused)
{
    /* one byte past the longest key LMDB takes (511) */
    unsigned char id[EPOCH_ID_BYTES], key[512] = { 'k' };
    crdt_actor actor = crdt_replica_actor(b);
    epoch_reset *rs = NULL;
    epoch_snapshot *s = NULL;
    epoch_staging st;
    epoch_relation rel = EPOCH_UNKNOWN;
    uint64_t moved = 7;
    char before[65], after[65];
    int n = 0;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    current_id(id, a);
    tu_hash(before, a);
    ck_assert_int_eq(epoch_reset_begin(NULL, a, id, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_begin(&rs, NULL, id, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_begin(&rs, a, NULL, NULL), CRDT_EINVAL);
    ck_assert_ptr_null(rs);
    ck_assert_int_eq(staging_of(a).present, 0); /* nothing was begun */

    ck_assert_int_eq(epoch_reset_begin(&rs, a, id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_reset_put(NULL, "k", 1, "v", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_put(rs, NULL, 1, "v", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_put(rs, "k", 0, "v", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_put(rs, key, sizeof key, "v", 1),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_put(rs, "k", 1, "v", CRDT_CHANGE_MAX + 65),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_change(NULL, "c", 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_change(rs, NULL, 1), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_change(rs, "c", CRDT_CHANGE_MAX + 1),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_quarantine_unsynced(NULL, "why", &moved),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_quarantine_unsynced(rs, NULL, &moved),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_quarantine_forks(NULL, &actor, 1, "why",
                                                  &moved), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_quarantine_forks(rs, &actor, 1, NULL,
                                                  &moved), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_quarantine_forks(rs, NULL, 1, "why",
                                                  &moved), CRDT_EINVAL);
    ck_assert_int_eq(epoch_reset_commit(NULL, NULL, id), CRDT_EINVAL);
    epoch_reset_abort(NULL); /* a no-op */
    ck_assert_int_eq(epoch_staging_get(NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(epoch_staging_get(&st, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_snapshot_walk(NULL, NULL, NULL, count_entry, &n),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, NULL, &n),
                     CRDT_EINVAL);
    ck_assert_int_eq(epoch_snapshot_open(NULL, a, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_snapshot_open(&s, NULL, NULL, NULL), CRDT_EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(epoch_snapshot_next(NULL, NULL, NULL, NULL, NULL),
                     CRDT_EINVAL);
    epoch_snapshot_close(NULL);
    ck_assert_int_eq(epoch_relate(NULL, NULL, a, id, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_relate(&rel, NULL, NULL, id, NULL), CRDT_EINVAL);
    ck_assert_int_eq(epoch_relate(&rel, NULL, a, NULL, NULL), CRDT_EINVAL);
    ck_assert_int_eq(rel, EPOCH_UNKNOWN);
    ck_assert_int_eq(n, 0);
    ck_assert_uint_eq(moved, 7);

    /* the refusals left the reset as it was: no fork list (none given is
     * a list of none), and the replica's own snapshot, taken without its
     * hash or id and committed without an expected hash, is its state */
    ck_assert_int_eq(epoch_reset_quarantine_forks(rs, NULL, 0, "none",
                                                  &moved), CRDT_OK);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, put_into_reset, rs),
                     CRDT_OK);
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, NULL), CRDT_OK);
    ck_assert_uint_eq(moved, 0);
    tu_hash(after, a);
    ck_assert_str_eq(after, before);
    ck_assert_int_eq(staging_of(a).present, 0);
    ck_assert_uint_eq(tu_quarantine_count(a), 0);
}
END_TEST

/* The snapshot streamed in is not the state the sender reported (a
 * byte lost or changed on the way): CRDT_ECORRUPT, nothing changes. */
START_TEST(test_wrong_expected_hash_changes_nothing)
{
    unsigned char hash[32];
    epoch_reset *rs;
    view before;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 2), CRDT_OK);
    before = view_of(b);
    rs = reset_b_from_a(hash);
    hash[7] ^= 0x01;
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, hash), CRDT_ECORRUPT);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
}
END_TEST

typedef struct {
    int n, kind;
    char reason[64];
} first_seen;

static int
note_entry(const epoch_quarantined *q, void *p)
{
    first_seen *f = p;

    if (f->n++ == 0) {
        f->kind = q->kind;
        snprintf(f->reason, sizeof f->reason, "%s", q->reason);
    }
    return 0;
}

/* Rejected beyond policy: b's own write that the target epoch does not
 * fold goes to the quarantine (kind unsynced, with the reason) in the
 * switching txn, the count comes back, the state is the sender's, and b
 * starts a new incarnation. */
START_TEST(test_rejected_reset_quarantines_the_unsynced)
{
    static const char why[] = "rejected: too far behind";
    unsigned char hash[32];
    epoch_info e1;
    epoch_reset *rs;
    crdt_merge_report rep;
    crdt_actor before = crdt_replica_actor(b), after;
    first_seen f = { 0, 0, "" };
    uint64_t moved = 99;
    char ha[65], hb[65], buf[64];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(tu_put_int(b, "c", "mine", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_reset_begin(&rs, b, e1.id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_reset_quarantine_unsynced(rs, "a first reason",
                                                     NULL), CRDT_OK);
    ck_assert_int_eq(epoch_reset_quarantine_unsynced(rs, why, &moved),
                     CRDT_OK); /* the last one named counts */
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, hash, put_into_reset, rs),
                     CRDT_OK);
    memset(&rep, 0, sizeof rep);
    ck_assert_int_eq(epoch_reset_commit(&rep, rs, hash), CRDT_OK);
    ck_assert_uint_eq(moved, 1);
    ck_assert_int_eq(epoch_quarantine_list(b, note_entry, &f), CRDT_OK);
    ck_assert_int_eq(f.n, 1);
    ck_assert_int_eq(f.kind, CRDT_QK_UNSYNCED);
    ck_assert_str_eq(f.reason, why);
    tu_field_str(buf, sizeof buf, b, "c", "mine", "x");
    ck_assert_str_eq(buf, "");
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    after = crdt_replica_actor(b);
    ck_assert_mem_ne(after.b, before.b, sizeof before.b);
    epoch_info_clear(&e1);
}
END_TEST

/* ---- the staging token ---- */

/* Each form of a stored token as epoch_staging_get() reads it, and
 * whether it keeps a reset out: only a recent token whose owner is alive
 * or cannot be known blocks. */
START_TEST(test_staging_tokens_of_every_form)
{
    const uint64_t now = crdt_raw_now_ms(), old = now - 11 * 60 * 1000;
    unsigned char id[EPOCH_ID_BYTES];
    epoch_reset *rs;
    epoch_staging s;

    current_id(id, b);
    s = staging_of(b);
    ck_assert_int_eq(s.present, 0);

    /* a token of a length no reset writes is no token */
    raw_set(b, CRDT_DB_META, "staging", 7, "garbage", 7);
    s = staging_of(b);
    ck_assert_int_eq(s.present, 0);
    ck_assert_int_eq(s.active, 0);
    ck_assert_int_eq(epoch_reset_begin(&rs, b, id, NULL), CRDT_OK);
    epoch_reset_abort(rs);

    /* the short form has only its time: recent, it blocks */
    token_put(b, 24, now, 0, 0);
    s = staging_of(b);
    ck_assert_int_eq(s.present, 1);
    ck_assert_int_eq(s.active, 1);
    ck_assert_int_eq(s.owner_alive, -1);
    ck_assert_uint_eq(s.started_ms, now);
    ck_assert_uint_eq(s.pid, 0);
    rs = NULL;
    ck_assert_int_eq(epoch_reset_begin(&rs, b, id, NULL), CRDT_EBUSY);
    ck_assert_ptr_null(rs);
    ck_assert_uint_eq(staging_of(b).started_ms, now); /* still the other's */

    /* ten minutes on, it is stale */
    token_put(b, 24, old, 0, 0);
    s = staging_of(b);
    ck_assert_int_eq(s.present, 1);
    ck_assert_int_eq(s.active, 0);
    ck_assert_int_eq(s.owner_alive, -1);

    /* recent tokens whose owner cannot be running: pid 0, a pid beyond
     * any process, our own pid with no start time recorded */
    {
        const struct {
            uint64_t pid, start;
        } dead[] = { { 0, 12345 }, { 0x80000000u, 12345 },
                     { (uint64_t)getpid(), 0 } };
        for (size_t i = 0; i < sizeof dead / sizeof dead[0]; i++) {
            token_put(b, 40, now, dead[i].pid, dead[i].start);
            s = staging_of(b);
            ck_assert_int_eq(s.present, 1);
            ck_assert_uint_eq(s.pid, dead[i].pid);
            ck_assert_int_eq(s.owner_alive, 0);
            ck_assert_int_eq(s.active, 0);
        }
    }

    /* a dead owner's token is taken over at once; ours names us, alive */
    ck_assert_int_eq(epoch_reset_begin(&rs, b, id, NULL), CRDT_OK);
    s = staging_of(b);
    ck_assert_int_eq(s.present, 1);
    ck_assert_int_eq(s.active, 1);
    ck_assert_int_eq(s.owner_alive, 1);
    ck_assert_uint_eq(s.pid, (uint64_t)getpid());
    epoch_reset_abort(rs);
    ck_assert_int_eq(staging_of(b).present, 0);
}
END_TEST

/* Another reset takes the staging over (ours went stale meanwhile, or a
 * damaged token replaced it): our commit answers CRDT_EBUSY and changes
 * nothing, and the abort leaves the other's token where it is. */
START_TEST(test_token_taken_over_fails_the_commit)
{
    unsigned char hash[32];
    epoch_reset *rs;
    view before;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 2), CRDT_OK);
    for (int form = 0; form < 2; form++) {
        before = view_of(b);
        rs = reset_b_from_a(hash);
        if (form == 0)
            token_put(b, 24, crdt_raw_now_ms(), 0, 0);
        else
            raw_set(b, CRDT_DB_META, "staging", 7, "damaged", 7);
        ck_assert_int_eq(epoch_reset_commit(NULL, rs, hash), CRDT_EBUSY);
        assert_unchanged(b, &before);
        /* the other's token stays: another reset may still own it */
        ck_assert_int_eq(staging_of(b).present, form == 0);
        if (form == 0)
            ck_assert_int_eq(staging_of(b).active, 1);
        raw_set(b, CRDT_DB_META, "staging", 7, NULL, 0);
    }
}
END_TEST

/* ---- snapshots and logs larger than the buffer (4 MiB) ---- */

#define BIG_DOCS 5
#define BIG_BYTES (900u * 1024)

/* BIG_DOCS documents c/bigN with a string of BIG_BYTES each, one change
 * each: together more than one buffer of a reset. */
static void
write_big(crdt_replica *r)
{
    char *s = malloc(BIG_BYTES);

    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < BIG_BYTES; i++)
        s[i] = (char)('a' + i % 26);
    for (int d = 0; d < BIG_DOCS; d++) {
        char doc[16];
        crdt_txn *t;
        crdt_value v = crdt_value_str(s, BIG_BYTES);
        s[0] = (char)('A' + d); /* another value each */
        snprintf(doc, sizeof doc, "big%d", d);
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", doc, "s", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    free(s);
}

/* A snapshot too large for one buffer is written in parts while it
 * streams in; the commit adds the rest and swaps in exactly its state. */
START_TEST(test_large_snapshot_is_staged_in_parts)
{
    write_big(a);
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_put_int(b, "c", "mine", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(tu_reset_answered(b, a), CRDT_OK);
    /* b's own write is replayed onto a's state */
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
    ck_assert_int_eq(staging_of(b).present, 0);
}
END_TEST

/* The same for the sender's log staged with the snapshot: its changes
 * are staged in parts, and all of them join the log at commit. */
START_TEST(test_large_staged_log_is_staged_in_parts)
{
    tu_batch rest;

    write_big(a);
    ck_assert_int_eq(tu_reset_with_log_answered(b, a, NULL, 0), CRDT_OK);
    tu_assert_converged(a, b);
    rest = tu_export_beyond(a, b);
    ck_assert_uint_eq(rest.n, 0); /* b holds every change of a's */
    tu_batch_free(&rest);
}
END_TEST

typedef struct {
    epoch_reset *rs;
    crdt_replica *r;
    int big_seen;
} steal_ctx;

/* epoch_reset_put() of each entry; before the fifth large one (whose put
 * fills the buffer and writes it out) another reset takes the staging. */
static int
put_stealing(const void *k, size_t kl, const void *v, size_t vl, void *p)
{
    steal_ctx *c = p;

    if (vl > BIG_BYTES / 2 && ++c->big_seen == BIG_DOCS)
        token_put(c->r, 24, crdt_raw_now_ms(), 0, 0);
    return epoch_reset_put(c->rs, k, kl, v, vl);
}

/* Writing a full buffer out fails (the staging was taken over): the
 * reset is failed for good (every later call CRDT_EBADTXN) and the
 * replica is as it was. */
START_TEST(test_failed_flush_fails_the_reset)
{
    unsigned char id[EPOCH_ID_BYTES], hash[32];
    steal_ctx c = { NULL, NULL, 0 };
    tu_batch log;
    view before;

    write_big(a);
    ck_assert_int_eq(tu_put_int(b, "c", "mine", "x", 1), CRDT_OK);
    log = tu_export_all(a);
    ck_assert_uint_ge(log.n, 1);
    before = view_of(b);
    current_id(id, a);
    c.r = b;
    ck_assert_int_eq(epoch_reset_begin(&c.rs, b, id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, hash, put_stealing, &c),
                     CRDT_EBUSY);
    ck_assert_int_eq(c.big_seen, BIG_DOCS);
    ck_assert_int_eq(epoch_reset_put(c.rs, "k", 1, "v", 1), CRDT_EBADTXN);
    ck_assert_int_eq(epoch_reset_change(c.rs, log.v[0].data, log.v[0].len),
                     CRDT_EBADTXN);
    ck_assert_int_eq(epoch_reset_commit(NULL, c.rs, hash), CRDT_EBADTXN);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).active, 1); /* the other's */
    tu_batch_free(&log);
}
END_TEST

/* The same when the buffer that fills is one of staged changes. */
START_TEST(test_failed_flush_of_changes_fails_the_reset)
{
    unsigned char hash[32];
    epoch_reset *rs;
    tu_batch log;
    view before;
    size_t i;
    int rc = CRDT_OK;

    write_big(a);
    log = tu_export_all(a);
    ck_assert_uint_eq(log.n, BIG_DOCS);
    before = view_of(b);
    rs = reset_b_from_a(hash);
    for (i = 0; i < log.n && rc == CRDT_OK; i++) {
        if (i == log.n - 1)
            token_put(b, 24, crdt_raw_now_ms(), 0, 0);
        rc = epoch_reset_change(rs, log.v[i].data, log.v[i].len);
    }
    ck_assert_int_eq(rc, CRDT_EBUSY);
    ck_assert_uint_eq(i, log.n); /* the last one filled the buffer */
    ck_assert_int_eq(epoch_reset_change(rs, log.v[0].data, log.v[0].len),
                     CRDT_EBADTXN);
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, hash), CRDT_EBADTXN);
    assert_unchanged(b, &before);
    tu_batch_free(&log);
}
END_TEST

/* ---- migrating up on the way in ---- */

typedef struct {
    crdt_bytes *k, *v;
    size_t n, cap;
} entries;

static int
keep_entry(const void *k, size_t kl, const void *v, size_t vl, void *p)
{
    entries *e = p;
    unsigned char *kc = malloc(kl), *vc = malloc(vl ? vl : 1);

    if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 16;
        e->k = realloc(e->k, e->cap * sizeof *e->k);
        e->v = realloc(e->v, e->cap * sizeof *e->v);
    }
    ck_assert(kc != NULL && vc != NULL && e->k != NULL && e->v != NULL);
    memcpy(kc, k, kl);
    memcpy(vc, v, vl);
    e->k[e->n].data = kc;
    e->k[e->n].len = kl;
    e->v[e->n].data = vc;
    e->v[e->n++].len = vl;
    return 0;
}

static void
entries_free(entries *e)
{
    for (size_t i = 0; i < e->n; i++) {
        free((void *)e->k[i].data);
        free((void *)e->v[i].data);
    }
    free(e->k);
    free(e->v);
}

/* Reset @p r to the snapshot @p snap of epoch @p target, migrated up to
 * @p final; the commit's answer. */
static int
reset_migrating(crdt_replica *r, const unsigned char *target,
                const unsigned char *final, const entries *snap)
{
    epoch_reset *rs = NULL; /* a refused begin sets nothing */
    crdt_merge_report rep;
    int rc = epoch_reset_begin(&rs, r, target, final);

    for (size_t i = 0; rc == CRDT_OK && i < snap->n; i++)
        rc = epoch_reset_put(rs, snap->k[i].data, snap->k[i].len,
                             snap->v[i].data, snap->v[i].len);
    if (rc == CRDT_OK) {
        memset(&rep, 0, sizeof rep);
        return epoch_reset_commit(&rep, rs, NULL);
    }
    epoch_reset_abort(rs);
    return rc;
}

/* A snapshot of epoch 1 whose sender has moved on to epoch 2 (a lens
 * renaming a field): the receiver migrates it in memory and ends at
 * epoch 2 with the state the sender's migration made. Targets that are
 * not a lens child of the snapshot's epoch are refused first. */
START_TEST(test_snapshot_migrated_up_through_a_lens)
{
    unsigned char unknown[EPOCH_ID_BYTES], genesis[EPOCH_ID_BYTES];
    epoch_info e1, e2, now;
    entries snap = { 0 };
    char buf[64], ha[65], hb[65];
    unsigned char hash[32];
    epoch_reset *rs;
    view before;

    current_id(genesis, a);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "name", 7), CRDT_OK);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, keep_entry, &snap),
                     CRDT_OK);
    tu_migrate(a, "collection c 1 -> 2\nrename name -> title\n", &e2);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    before = view_of(b);

    memset(unknown, 0x5a, sizeof unknown);
    ck_assert_int_eq(reset_migrating(b, e1.id, unknown, &snap),
                     CRDT_ENOTFOUND);
    ck_assert_int_eq(reset_migrating(b, genesis, e2.id, &snap), CRDT_EINVAL);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
    /* the target itself as the epoch to migrate to: no migration */
    ck_assert_int_eq(epoch_reset_begin(&rs, b, e1.id, e1.id), CRDT_OK);
    epoch_reset_abort(rs);

    ck_assert_int_eq(reset_migrating(b, e1.id, e2.id, &snap), CRDT_OK);
    ck_assert_int_eq(epoch_current(&now, b), CRDT_OK);
    ck_assert_mem_eq(now.id, e2.id, EPOCH_ID_BYTES);
    epoch_info_clear(&now);
    tu_field_str(buf, sizeof buf, b, "c", "d", "title");
    ck_assert_str_eq(buf, "7");
    tu_field_str(buf, sizeof buf, b, "c", "d", "name");
    ck_assert_str_eq(buf, "");
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    ck_assert_int_eq(epoch_snapshot_walk(b, NULL, hash, count_entry,
                                         &(int){ 0 }), CRDT_OK);
    ck_assert_mem_eq(hash, e2.state_hash, 32);
    entries_free(&snap);
    epoch_info_clear(&e1);
    epoch_info_clear(&e2);
}
END_TEST

/* A compaction as the epoch to migrate to (no lens). Its base folds a
 * write the snapshot of epoch 1 was taken before: taking that snapshot
 * would count the write as held without it (lost), so it is refused and
 * nothing changes; a snapshot of exactly what epoch 2 folds is taken in
 * and ends at epoch 2's own state hash. */
START_TEST(test_snapshot_migrated_up_through_a_compaction)
{
    epoch_info e1, e2, now;
    entries early = { 0 }, full = { 0 };
    char buf[64];
    unsigned char hash[32];
    view before;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, keep_entry, &early),
                     CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 2), CRDT_OK);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, keep_entry, &full),
                     CRDT_OK);
    tu_migrate(a, NULL, &e2);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    before = view_of(b);
    ck_assert_int_eq(reset_migrating(b, e1.id, e2.id, &early),
                     CRDT_ECORRUPT);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);

    ck_assert_int_eq(reset_migrating(b, e1.id, e2.id, &full), CRDT_OK);
    ck_assert_int_eq(epoch_current(&now, b), CRDT_OK);
    ck_assert_mem_eq(now.id, e2.id, EPOCH_ID_BYTES);
    epoch_info_clear(&now);
    ck_assert_int_eq(epoch_snapshot_walk(b, NULL, hash, count_entry,
                                         &(int){ 0 }), CRDT_OK);
    ck_assert_mem_eq(hash, e2.state_hash, 32);
    tu_field_str(buf, sizeof buf, b, "c", "d", "x");
    ck_assert_str_eq(buf, "2");
    tu_assert_converged(a, b);
    entries_free(&early);
    entries_free(&full);
    epoch_info_clear(&e1);
    epoch_info_clear(&e2);
}
END_TEST

static int
set_flag(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_int(1);

    (void)coll, (void)id, (void)ctx;
    return epoch_doc_set_register(doc, "flag", &v);
}

/* A custom migration can not run on a snapshot in memory: migrating up
 * into its epoch is refused, and epoch_relate() rejects the gap (its
 * reason optional). */
START_TEST(test_custom_child_is_not_migrated_to)
{
    epoch_builder *bl;
    epoch_info e1, e2;
    entries snap = { 0 };
    epoch_relation rel;
    const char *why = "unset";
    view before;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, keep_entry, &snap),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "flag", "c", 2, set_flag,
                                              NULL), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&e2, bl), CRDT_OK);
    epoch_builder_free(bl);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    before = view_of(b);
    ck_assert_int_eq(reset_migrating(b, e1.id, e2.id, &snap), CRDT_EINVAL);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
    ck_assert_int_eq(epoch_relate(&rel, NULL, b, e2.id, NULL),
                     CRDT_EREJECTED);
    ck_assert_int_eq(rel, EPOCH_BEHIND);
    ck_assert_int_eq(epoch_relate(&rel, &why, b, e2.id, NULL),
                     CRDT_EREJECTED);
    ck_assert_str_eq(why, "a custom migration is in between");
    entries_free(&snap);
    epoch_info_clear(&e1);
    epoch_info_clear(&e2);
}
END_TEST

/* ---- damaged state, staging and archive ---- */

/* The kept state hash no longer matches the entries: the snapshot is
 * not served. A sound one opens without asking for its hash or id. */
START_TEST(test_damaged_state_is_not_served)
{
    epoch_snapshot *s = (epoch_snapshot *)&s;
    unsigned char wrong[32];
    const void *k, *v;
    size_t kl, vl;
    int n = 0, walked = 0, rc;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "e", "x", 2), CRDT_OK);
    ck_assert_int_eq(epoch_snapshot_open(&s, a, NULL, NULL), CRDT_OK);
    while ((rc = epoch_snapshot_next(s, &k, &kl, &v, &vl)) == CRDT_OK &&
           n < 1000)
        n++;
    ck_assert_int_eq(rc, CRDT_ENOTFOUND);
    epoch_snapshot_close(s);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, count_entry,
                                         &walked), CRDT_OK);
    ck_assert_int_eq(n, walked);
    ck_assert_int_ge(n, 2);

    memset(wrong, 0x11, sizeof wrong);
    raw_set(a, CRDT_DB_META, "hash0", 5, wrong, sizeof wrong);
    raw_set(a, CRDT_DB_META, "hash1", 5, wrong, sizeof wrong);
    s = NULL;
    ck_assert_int_eq(epoch_snapshot_open(&s, a, NULL, NULL), CRDT_ECORRUPT);
    ck_assert_ptr_null(s);
}
END_TEST

/* A staged entry under a key no change has (shorter than an actor, or
 * not actor|seq): the commit answers CRDT_ECORRUPT, nothing changes. */
START_TEST(test_damaged_staging_entry_fails_the_commit)
{
    static const struct {
        const char *key;
        size_t len;
    } bad[] = { { "shrt", 4 }, { "an actor and more", 17 } };
    unsigned char hash[32];
    epoch_reset *rs;
    view before;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 2), CRDT_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        before = view_of(b);
        rs = reset_b_from_a(hash);
        raw_set(b, CRDT_DB_STAGING, bad[i].key, bad[i].len, "x", 1);
        ck_assert_int_eq(epoch_reset_commit(NULL, rs, hash), CRDT_ECORRUPT);
        assert_unchanged(b, &before);
        ck_assert_int_eq(staging_of(b).present, 0);
    }
}
END_TEST

/* ---- whose changes stay ---- */

/* The sender holds the first of our changes but not the second: the
 * staged copy of our chain ends before our log does, which is no fork;
 * nothing goes to the quarantine and both our writes are kept. */
START_TEST(test_own_changes_beyond_the_senders_copy_are_kept)
{
    char buf[64];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_migrate(a, NULL, NULL);
    ck_assert_int_eq(tu_put_int(b, "c", "mine", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "mine", "y", 2), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(tu_reset_with_log_answered(b, a, NULL, 0), CRDT_OK);
    ck_assert_uint_eq(tu_quarantine_count(b), 0);
    tu_field_str(buf, sizeof buf, b, "c", "mine", "x");
    ck_assert_str_eq(buf, "1");
    tu_field_str(buf, sizeof buf, b, "c", "mine", "y");
    ck_assert_str_eq(buf, "2");
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    tu_assert_converged(a, b);
}
END_TEST

/* ---- the map grows, hostile records and entries ---- */

/* A replica opened with a map far smaller than the snapshot: the
 * buffer's write fills it, the map grows, and the staging goes on. */
START_TEST(test_small_map_grows_while_staging)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_env_stats st;
    char sub[300];

    write_big(a);
    tu_migrate(a, NULL, NULL);
    crdt_replica_close(b);
    b = NULL;
    snprintf(sub, sizeof sub, "%s/r", db);
    o.map_size = 1u << 20;
    ck_assert_int_eq(crdt_replica_open(&b, sub, &o), CRDT_OK);
    ck_assert_int_eq(epoch_attach(b), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(tu_reset_answered(b, a), CRDT_OK);
    tu_assert_converged(a, b);
    ck_assert_int_eq(crdt_replica_env_stats(b, &st), CRDT_OK);
    ck_assert_uint_gt(st.map_size, BIG_DOCS * BIG_BYTES);
}
END_TEST

/* Migrating up, a snapshot entry that is no state entry is found when
 * the full buffer is written out: the put answers CRDT_ECORRUPT, the
 * reset is failed for good and the replica is as it was. */
START_TEST(test_hostile_entry_fails_a_migrating_reset)
{
    epoch_info e1, e2;
    entries snap = { 0 };
    epoch_reset *rs;
    view before;
    size_t i;
    int rc = CRDT_OK;

    write_big(a);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, keep_entry, &snap),
                     CRDT_OK);
    tu_migrate(a, NULL, &e2);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    before = view_of(b);
    ck_assert_int_eq(epoch_reset_begin(&rs, b, e1.id, e2.id), CRDT_OK);
    ck_assert_int_eq(epoch_reset_put(rs, "\x01no entry", 9, "v", 1),
                     CRDT_OK); /* only buffered */
    for (i = 0; i < snap.n && rc == CRDT_OK; i++)
        rc = epoch_reset_put(rs, snap.k[i].data, snap.k[i].len,
                             snap.v[i].data, snap.v[i].len);
    ck_assert_int_eq(rc, CRDT_ECORRUPT);
    ck_assert_int_eq(epoch_reset_put(rs, snap.k[0].data, snap.k[0].len,
                                     snap.v[0].data, snap.v[0].len),
                     CRDT_EBADTXN);
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, NULL), CRDT_EBADTXN);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
    entries_free(&snap);
    epoch_info_clear(&e1);
    epoch_info_clear(&e2);
}
END_TEST

/* A child record, signed, whose lens text is no lens (a buggy or
 * hostile creator): migrating up into it is refused, nothing changes. */
START_TEST(test_child_with_a_broken_lens_is_refused)
{
    static const char bad_lens[] = "collection c 1 ->";
    epoch_info e1, bogus;
    entries snap = { 0 };
    const unsigned char *heads;
    size_t heads_len;
    view before;
    int rc;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(epoch_snapshot_walk(a, NULL, NULL, keep_entry, &snap),
                     CRDT_OK);
    ck_assert_int_eq(epoch_record_heads(&heads, &heads_len, &e1), CRDT_OK);
    ck_assert_int_eq(epoch__record_make(&bogus, a, 2, e1.id, e1.schema,
                                        e1.n_schema, bad_lens, "", heads,
                                        heads_len, e1.state_hash), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    raw_set(b, CRDT_DB_EPOCHS, bogus.id, EPOCH_ID_BYTES, bogus.raw,
            bogus.raw_len);
    before = view_of(b);
    {
        epoch_lens *l = NULL;
        rc = epoch_lens_parse(&l, bad_lens, strlen(bad_lens), NULL);
        ck_assert_int_lt(rc, 0);
        epoch_lens_free(l);
    }
    ck_assert_int_eq(reset_migrating(b, e1.id, bogus.id, &snap), rc);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
    entries_free(&snap);
    epoch_info_clear(&e1);
    epoch_info_clear(&bogus);
}
END_TEST

/* An archive entry under a key no archived change has: the reset of a
 * losing fork brings every archived change back for the replay, skips
 * that one and leaves it where it is; no write is lost. */
START_TEST(test_fork_reset_skips_a_damaged_archive_key)
{
    static const unsigned char junk_key[12] = { 0, 0, 0, 0, 0, 0, 0, 0,
                                                'j', 'u', 'n', 'k' };
    epoch_info ea, eb;
    epoch_relation rel;
    crdt_replica *loser, *winner;
    crdt_raw *t;
    const void *v;
    size_t vl;
    char buf[64];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "da", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, &ea);
    tu_migrate(b, NULL, &eb);
    ck_assert_int_eq(tu_store_records_answered(a, b), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_relate(&rel, NULL, a, eb.id, NULL), CRDT_OK);
    loser = rel == EPOCH_FORK_LOSE ? a : b;
    winner = loser == a ? b : a;
    raw_set(loser, CRDT_DB_ARCHIVE, junk_key, sizeof junk_key, "?", 1);
    ck_assert_int_eq(tu_reset_from(loser, winner), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(winner, loser), CRDT_OK);
    tu_assert_converged(a, b);
    tu_field_str(buf, sizeof buf, winner, "c", "da", "x");
    ck_assert_str_eq(buf, "2");
    tu_field_str(buf, sizeof buf, winner, "c", "db", "x");
    ck_assert_str_eq(buf, "3");
    ck_assert_int_eq(crdt_raw_begin(&t, loser, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, CRDT_DB_ARCHIVE, junk_key,
                                  sizeof junk_key, &v, &vl), CRDT_OK);
    ck_assert_uint_eq(vl, 1);
    crdt_raw_abort(t);
    epoch_info_clear(&ea);
    epoch_info_clear(&eb);
}
END_TEST

/* A migration started while the snapshot streamed in (its marker is
 * there at commit): the reset gives way with CRDT_EBUSY and changes
 * nothing; the migration's marker stays for it to resume or abort. */
START_TEST(test_migration_started_meanwhile_fails_the_commit)
{
    unsigned char hash[32];
    epoch_reset *rs;
    epoch_marker m;
    crdt_raw *t;
    view before;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 2), CRDT_OK);
    before = view_of(b);
    rs = reset_b_from_a(hash);
    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, 1, "", ""), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, hash), CRDT_EBUSY);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
    ck_assert_int_eq(epoch_marker_get(&m, b), CRDT_OK);
    ck_assert_uint_eq(m.target_number, 1);
    epoch_marker_clear(&m);
    ck_assert_int_eq(epoch_migration_abort(b), CRDT_OK);
}
END_TEST

/* A target whose chain does not come down to our genesis (its root a
 * record numbered 0 of its own: forged, or of another space): there is
 * no common ancestor, the commit answers CRDT_ECORRUPT and nothing
 * changes. */
START_TEST(test_target_of_another_root_is_refused)
{
    static const unsigned char zero[32];
    epoch_info root, child;
    epoch_reset *rs;
    view before;

    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 2), CRDT_OK);
    ck_assert_int_eq(epoch__record_make(&root, a, 0, zero, NULL, 0, "", "",
                                        (const unsigned char *)"\x90", 1,
                                        zero), CRDT_OK);
    ck_assert_int_eq(epoch__record_make(&child, a, 1, root.id, NULL, 0, "",
                                        "", (const unsigned char *)"\x90", 1,
                                        zero), CRDT_OK);
    raw_set(b, CRDT_DB_EPOCHS, root.id, EPOCH_ID_BYTES, root.raw,
            root.raw_len);
    raw_set(b, CRDT_DB_EPOCHS, child.id, EPOCH_ID_BYTES, child.raw,
            child.raw_len);
    before = view_of(b);
    ck_assert_int_eq(epoch_reset_begin(&rs, b, child.id, NULL), CRDT_OK);
    ck_assert_int_eq(epoch_reset_commit(NULL, rs, NULL), CRDT_ECORRUPT);
    assert_unchanged(b, &before);
    ck_assert_int_eq(staging_of(b).present, 0);
    epoch_info_clear(&root);
    epoch_info_clear(&child);
}
END_TEST

/* ---- a space with an owner ---- */

typedef struct {
    char dir[3][256];
    crdt_replica *o, *w, *j; /* owner, an admin, a joiner */
} owned;

/* An owner's space with an admin (who holds the owner's changes) and a
 * replica that joined and knows nothing yet, so no owner either. */
static void
owned_open(owned *s)
{
    unsigned char so[32], sw[32], sj[32], pw[32], sk[64], space[16],
        nonce[16];

    randombytes_buf(so, sizeof so);
    randombytes_buf(sw, sizeof sw);
    randombytes_buf(sj, sizeof sj);
    crypto_sign_seed_keypair(pw, sk, sw);
    tu_owner_space(space, nonce, so);
    s->o = tu_create_seeded(s->dir[0], sizeof s->dir[0], space, so, nonce);
    s->w = tu_create_seeded(s->dir[1], sizeof s->dir[1], space, sw, NULL);
    s->j = tu_create_seeded(s->dir[2], sizeof s->dir[2], space, sj, NULL);
    ck_assert_int_eq(tu_set_role(s->o, pw, CRDT_ROLE_ADMIN), CRDT_OK);
    ck_assert_int_eq(tu_put_int(s->o, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(s->w, s->o), CRDT_OK);
    ck_assert_int_eq(crdt_members_owner(s->j, NULL), 0);
}

static void
owned_close(owned *s)
{
    crdt_replica *r[3] = { s->o, s->w, s->j };

    for (int i = 0; i < 3; i++) {
        crdt_replica_close(r[i]);
        test_rmtree(s->dir[i]);
    }
}

/* A joiner that knows no owner takes the genesis snapshot of an owned
 * space: genesis has no creator to check, the owner comes with it. A
 * member that knew the owner takes it too. */
START_TEST(test_joiner_takes_an_owned_genesis)
{
    owned s;
    char ho[65], hj[65];

    owned_open(&s);
    ck_assert_int_eq(tu_reset_answered(s.j, s.o), CRDT_OK);
    tu_hash(ho, s.o);
    tu_hash(hj, s.j);
    ck_assert_str_eq(hj, ho);
    ck_assert_int_eq(crdt_members_owner(s.j, NULL), 1);
    /* the admin knew the owner already: it takes the snapshot as well */
    ck_assert_int_eq(crdt_members_owner(s.w, NULL), 1);
    ck_assert_int_eq(tu_reset_answered(s.w, s.o), CRDT_OK);
    tu_hash(hj, s.w);
    ck_assert_str_eq(hj, ho);
    owned_close(&s);
}
END_TEST

/* Migrating up, a joiner that knows no owner also wants the owner's
 * signature on the epoch it ends at: the snapshot's epoch the owner
 * signed, the child an admin made: CRDT_EPERM, nothing changes. */
START_TEST(test_joiner_refuses_a_child_the_owner_did_not_sign)
{
    owned s;
    epoch_info e1o, e1w, e2w;
    entries snap = { 0 };
    const unsigned char *rec;
    size_t len;
    view before;

    owned_open(&s);
    ck_assert_int_eq(epoch_attach(s.o), CRDT_OK);
    ck_assert_int_eq(epoch_attach(s.w), CRDT_OK);
    tu_migrate(s.o, NULL, &e1o);
    tu_migrate(s.w, NULL, &e1w); /* the same epoch, the admin's record */
    ck_assert_mem_eq(e1w.id, e1o.id, EPOCH_ID_BYTES);
    tu_migrate(s.w, "collection c 1 -> 2\nrename x -> y\n", &e2w);
    ck_assert_int_eq(epoch_snapshot_walk(s.o, NULL, NULL, keep_entry, &snap),
                     CRDT_OK);
    rec = e1o.raw;
    len = e1o.raw_len;
    ck_assert_int_eq(epoch_store_records(s.j, &rec, &len, 1), CRDT_OK);
    rec = e2w.raw;
    len = e2w.raw_len;
    ck_assert_int_eq(epoch_store_records(s.j, &rec, &len, 1), CRDT_OK);
    before = view_of(s.j);
    ck_assert_int_eq(reset_migrating(s.j, e1o.id, e2w.id, &snap),
                     CRDT_EPERM);
    assert_unchanged(s.j, &before);
    ck_assert_int_eq(crdt_members_owner(s.j, NULL), 0);
    entries_free(&snap);
    epoch_info_clear(&e1o);
    epoch_info_clear(&e1w);
    epoch_info_clear(&e2w);
    owned_close(&s);
}
END_TEST

/* b's copy chain of an actor loses to a's (an equivocation) while b's
 * quarantine already holds an op of b's own of another kind (rejected
 * as unsynced). The reset looks for b's own losing writes to re-apply:
 * that op is none, it stays quarantined as it was; b still starts a new
 * incarnation, its chain now ending below the seq that op took (never
 * reused). */
typedef struct {
    crdt_actor own, forked;
    int own_kind, n_own, n_forked;
} kinds_seen;

static int
kind_of_own(const epoch_quarantined *q, void *p)
{
    kinds_seen *k = p;

    if (memcmp(q->actor.b, k->own.b, sizeof k->own.b) == 0) {
        k->n_own++;
        k->own_kind = q->kind;
    } else if (memcmp(q->actor.b, k->forked.b, sizeof k->forked.b) == 0 &&
               q->kind == CRDT_QK_EQUIVOCATION) {
        k->n_forked++;
    }
    return 0;
}

START_TEST(test_own_unsynced_entry_is_no_lost_equivocation)
{
    crdt_actor forked, before, after;
    kinds_seen kinds;
    char buf[64];
    unsigned char *heads;
    size_t heads_len;
    uint64_t moved = 0;
    crdt_raw *t;

    tu_forked_chains(a, b, &forked);
    ck_assert_int_eq(crdt_raw_begin(&t, b, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_heads_encode(&heads, &heads_len, t), CRDT_OK);
    crdt_raw_abort(t);
    ck_assert_int_eq(tu_put_int(b, "c", "mine", "x", 1), CRDT_OK);
    ck_assert_int_eq(epoch_quarantine_unsynced(&moved, b, heads, heads_len,
                                               "rejected"), CRDT_OK);
    crdt_free(heads);
    ck_assert_uint_eq(moved, 1);
    before = crdt_replica_actor(b);
    ck_assert_int_eq(tu_reset_with_log_answered(b, a, &forked, 1), CRDT_OK);
    after = crdt_replica_actor(b);
    ck_assert_mem_ne(after.b, before.b, sizeof before.b);
    /* the unsynced op and the copy's two losing changes */
    ck_assert_uint_eq(tu_quarantine_count(b), 3);
    memset(&kinds, 0, sizeof kinds);
    kinds.own = before;
    kinds.forked = forked;
    ck_assert_int_eq(epoch_quarantine_list(b, kind_of_own, &kinds), CRDT_OK);
    ck_assert_int_eq(kinds.n_own, 1);
    ck_assert_int_eq(kinds.own_kind, CRDT_QK_UNSYNCED);
    ck_assert_int_eq(kinds.n_forked, 2);
    tu_field_str(buf, sizeof buf, b, "c", "mine", "x");
    ck_assert_str_eq(buf, ""); /* not re-applied */
    tu_assert_converged(a, b);
}
END_TEST

/* ---- epoch_relate() ---- */

/* An epoch we hold no record of is EPOCH_UNKNOWN, not an error. */
START_TEST(test_relate_to_an_unknown_epoch)
{
    unsigned char other[EPOCH_ID_BYTES];
    epoch_relation rel = EPOCH_SAME;
    const char *why = "unset";

    memset(other, 0x3c, sizeof other);
    ck_assert_int_eq(epoch_relate(&rel, &why, a, other, NULL), CRDT_OK);
    ck_assert_int_eq(rel, EPOCH_UNKNOWN);
    ck_assert_ptr_null(why);
}
END_TEST

/* The age limit counts from the first epoch a replica holds (genesis has
 * no time), the epoch limit with or without a reason asked for. */
START_TEST(test_relate_policy_by_age_and_count)
{
    epoch_info e1, e1b, e3;
    epoch_relation rel;
    const char *why = NULL;
    const epoch_policy young = { 0, 1 }, lenient = { 0, 600000 },
                       short_chain = { 1, 0 };

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_migrate(a, NULL, &e1);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_relate(&rel, &why, b, e1.id, &young), CRDT_OK);
    ck_assert_int_eq(rel, EPOCH_BEHIND);
    ck_assert_ptr_null(why);
    /* b folds the same log the same way: the same epoch, its own time */
    tu_migrate(b, NULL, &e1b);
    ck_assert_mem_eq(e1b.id, e1.id, EPOCH_ID_BYTES);
    for (int i = 0; i < 2; i++) {
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 2 + i), CRDT_OK);
        tu_migrate(a, NULL, i == 1 ? &e3 : NULL);
    }
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(epoch_relate(&rel, &why, b, e3.id, &young),
                     CRDT_EREJECTED);
    ck_assert_int_eq(rel, EPOCH_BEHIND);
    ck_assert_str_eq(why, "older than the policy allows");
    ck_assert_int_eq(epoch_relate(&rel, NULL, b, e3.id, &young),
                     CRDT_EREJECTED);
    ck_assert_int_eq(epoch_relate(&rel, &why, b, e3.id, &lenient), CRDT_OK);
    ck_assert_int_eq(rel, EPOCH_BEHIND);
    ck_assert_ptr_null(why);
    ck_assert_int_eq(epoch_relate(&rel, NULL, b, e3.id, &short_chain),
                     CRDT_EREJECTED);
    ck_assert_int_eq(rel, EPOCH_BEHIND);
    epoch_info_clear(&e1);
    epoch_info_clear(&e1b);
    epoch_info_clear(&e3);
}
END_TEST

/* Two forks; b's losing one was made by a custom migration: b can not
 * move over to a's (its own ops can not be carried back over it). */
START_TEST(test_losing_fork_of_a_custom_migration_is_rejected)
{
    epoch_builder *bl;
    epoch_info ea, eb;
    epoch_relation rel;
    const char *why = NULL;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, &ea); /* folds two ops: the canonical fork */
    ck_assert_int_eq(epoch_builder_new(&bl, b), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "flag", "c", 2, set_flag,
                                              NULL), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(&eb, bl), CRDT_OK);
    epoch_builder_free(bl);
    ck_assert_int_eq(tu_store_records_answered(b, a), CRDT_OK);
    ck_assert_int_eq(tu_store_records_answered(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_relate(&rel, &why, b, ea.id, NULL),
                     CRDT_EREJECTED);
    ck_assert_int_eq(rel, EPOCH_FORK_LOSE);
    ck_assert_str_eq(why, "a custom migration is in between");
    ck_assert_int_eq(epoch_relate(&rel, &why, a, eb.id, NULL), CRDT_OK);
    ck_assert_int_eq(rel, EPOCH_FORK_WIN);
    ck_assert_ptr_null(why);
    epoch_info_clear(&ea);
    epoch_info_clear(&eb);
}
END_TEST

/* Forks two epochs deep with a record of the way down missing on either
 * side: the relation can not be known (CRDT_ENOTFOUND), and with the
 * record back it is. */
START_TEST(test_relate_with_a_missing_ancestor)
{
    epoch_info a1, a2, b1, b2;
    epoch_relation rel;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, &a1);
    tu_migrate(b, NULL, &b1);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 4), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 5), CRDT_OK);
    tu_migrate(a, NULL, &a2);
    tu_migrate(b, NULL, &b2);
    ck_assert_int_eq(tu_store_records_answered(a, b), CRDT_OK);
    ck_assert_int_eq(epoch_relate(&rel, NULL, a, b2.id, NULL), CRDT_OK);
    ck_assert_int_eq(rel, EPOCH_FORK_WIN);

    raw_set(a, CRDT_DB_EPOCHS, b1.id, EPOCH_ID_BYTES, NULL, 0);
    ck_assert_int_eq(epoch_relate(&rel, NULL, a, b2.id, NULL),
                     CRDT_ENOTFOUND);
    raw_set(a, CRDT_DB_EPOCHS, b1.id, EPOCH_ID_BYTES, b1.raw, b1.raw_len);
    raw_set(a, CRDT_DB_EPOCHS, a1.id, EPOCH_ID_BYTES, NULL, 0);
    ck_assert_int_eq(epoch_relate(&rel, NULL, a, b2.id, NULL),
                     CRDT_ENOTFOUND);
    raw_set(a, CRDT_DB_EPOCHS, a1.id, EPOCH_ID_BYTES, a1.raw, a1.raw_len);
    rel = EPOCH_UNKNOWN;
    ck_assert_int_eq(epoch_relate(&rel, NULL, a, b2.id, NULL), CRDT_OK);
    ck_assert_int_eq(rel, EPOCH_FORK_WIN);
    epoch_info_clear(&a1);
    epoch_info_clear(&a2);
    epoch_info_clear(&b1);
    epoch_info_clear(&b2);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("reset_edges");
    TCase *tc = tcase_create("reset_edges");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reset_arguments_are_refused);
    tcase_add_test(tc, test_wrong_expected_hash_changes_nothing);
    tcase_add_test(tc, test_rejected_reset_quarantines_the_unsynced);
    tcase_add_test(tc, test_staging_tokens_of_every_form);
    tcase_add_test(tc, test_token_taken_over_fails_the_commit);
    tcase_add_test(tc, test_large_snapshot_is_staged_in_parts);
    tcase_add_test(tc, test_large_staged_log_is_staged_in_parts);
    tcase_add_test(tc, test_failed_flush_fails_the_reset);
    tcase_add_test(tc, test_failed_flush_of_changes_fails_the_reset);
    tcase_add_test(tc, test_snapshot_migrated_up_through_a_lens);
    tcase_add_test(tc, test_snapshot_migrated_up_through_a_compaction);
    tcase_add_test(tc, test_custom_child_is_not_migrated_to);
    tcase_add_test(tc, test_damaged_state_is_not_served);
    tcase_add_test(tc, test_damaged_staging_entry_fails_the_commit);
    tcase_add_test(tc, test_own_changes_beyond_the_senders_copy_are_kept);
    tcase_add_test(tc, test_small_map_grows_while_staging);
    tcase_add_test(tc, test_hostile_entry_fails_a_migrating_reset);
    tcase_add_test(tc, test_child_with_a_broken_lens_is_refused);
    tcase_add_test(tc, test_fork_reset_skips_a_damaged_archive_key);
    tcase_add_test(tc, test_migration_started_meanwhile_fails_the_commit);
    tcase_add_test(tc, test_target_of_another_root_is_refused);
    tcase_add_test(tc, test_joiner_takes_an_owned_genesis);
    tcase_add_test(tc, test_joiner_refuses_a_child_the_owner_did_not_sign);
    tcase_add_test(tc, test_own_unsynced_entry_is_no_lost_equivocation);
    tcase_add_test(tc, test_relate_to_an_unknown_epoch);
    tcase_add_test(tc, test_relate_policy_by_age_and_count);
    tcase_add_test(tc, test_losing_fork_of_a_custom_migration_is_rejected);
    tcase_add_test(tc, test_relate_with_a_missing_ancestor);
    suite_add_tcase(s, tc);
    return s;
}
