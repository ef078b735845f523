/*
 * test_oplog_edges.c: the op log's answers to what a careless caller, a
 * damaged disk or a hostile peer hands it: bad arguments to the heads,
 * chain and txn calls, malformed heads blobs, a heads database or a log
 * record that does not hold what its key says, a run record under
 * another actor's key, and the ops of one txn that must not be folded
 * into one run (docs/storage.md 3, crdt/sync.h, crdt/txn.h).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "support/replica_util.h"
#include "support/support.h"

TU_PAIR_FIXTURE(tu_pair_create)

static void
log_key(unsigned char key[16], const crdt_actor *who, uint64_t seq)
{
    memcpy(key, who->b, CRDT_ACTOR_BYTES);
    for (int i = 0; i < 8; i++)
        key[8 + i] = (unsigned char)(seq >> (56 - 8 * i));
}

static void
raw_put(crdt_replica *r, crdt_db which, const void *k, size_t kl, const void *v,
        size_t vl)
{
    crdt_raw *t;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_put(t, which, k, kl, v, vl), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

/* A copy of the record under @p k (the caller frees it). */
static unsigned char *
raw_copy(crdt_replica *r, crdt_db which, const void *k, size_t kl, size_t *len)
{
    crdt_raw *t;
    const void *v;
    unsigned char *copy;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, which, k, kl, &v, len), CRDT_OK);
    copy = malloc(*len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, v, *len);
    crdt_raw_abort(t);
    return copy;
}

/* @p n one-op changes of @p r on c/d/v. */
static void
commit_n(crdt_replica *r, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(tu_put_int(r, "c", "d", "v", i), CRDT_OK);
}

static uint64_t
op_count_of_txn(crdt_txn *t)
{
    return crdt_txn_op_count(t);
}

/* ---- bad arguments ---- */

START_TEST(test_heads_and_chain_calls_refuse_bad_arguments)
{
    unsigned char *out = NULL, hash[32] = { 0 }, buf[48];
    size_t len = 0, cap = 0, n = 7;
    uint64_t seq = 99;
    crdt_actor actor = crdt_replica_actor(a), *forks = NULL;
    crdt_read *rd;
    int found = 5;

    ck_assert_int_eq(crdt_heads_export(NULL, &len, a), CRDT_EINVAL);
    ck_assert_int_eq(crdt_heads_export(&out, NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(crdt_heads_export(&out, &len, NULL), CRDT_EINVAL);
    ck_assert_ptr_null(out);

    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_heads(NULL, &cap, &n, rd), CRDT_EINVAL);
    ck_assert_int_eq(crdt_read_heads(&out, NULL, &n, rd), CRDT_EINVAL);
    ck_assert_int_eq(crdt_read_heads(&out, &cap, NULL, rd), CRDT_EINVAL);
    ck_assert_int_eq(crdt_read_heads(&out, &cap, &n, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_read_heads_after(NULL, 1, &n, NULL, rd),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_read_heads_after(buf, 1, NULL, NULL, rd),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_read_heads_after(buf, 1, &n, NULL, NULL),
                     CRDT_EINVAL);
    crdt_read_end(rd);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(n, 7);

    ck_assert_int_eq(crdt_chain_check(NULL, a, &actor, 1, hash), CRDT_EINVAL);
    ck_assert_int_eq(crdt_chain_check(&found, NULL, &actor, 1, hash),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_chain_check(&found, a, NULL, 1, hash), CRDT_EINVAL);
    ck_assert_int_eq(crdt_chain_check(&found, a, &actor, 1, NULL),
                     CRDT_EINVAL);
    ck_assert_int_eq(found, 5);

    ck_assert_int_eq(crdt_head_read(NULL, hash, a, &actor), CRDT_EINVAL);
    ck_assert_int_eq(crdt_head_read(&seq, NULL, a, &actor), CRDT_EINVAL);
    ck_assert_int_eq(crdt_head_read(&seq, hash, NULL, &actor), CRDT_EINVAL);
    ck_assert_int_eq(crdt_head_read(&seq, hash, a, NULL), CRDT_EINVAL);
    ck_assert_uint_eq(seq, 99);

    ck_assert_int_eq(crdt_forks_find(NULL, &n, a, buf, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_forks_find(&forks, NULL, a, buf, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_forks_find(&forks, &n, NULL, buf, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, NULL, 1), CRDT_EINVAL);
    ck_assert_ptr_null(forks);
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, NULL, 0, &actor),
                     CRDT_EPROTO);

    /* no counter moves on a refused or empty call */
    ck_assert_int_eq(crdt_equivocations_add(NULL, 1), CRDT_EINVAL);
    ck_assert_int_eq(crdt_equivocations_add(a, 0), CRDT_OK);
    ck_assert_uint_eq(tu_stats(a).equivocations, 0);
    ck_assert_int_eq(crdt_equivocations_add(a, 2), CRDT_OK);
    ck_assert_uint_eq(tu_stats(a).equivocations, 2);
}
END_TEST

START_TEST(test_txn_calls_refuse_bad_arguments)
{
    crdt_txn *t;
    crdt_actor actor = crdt_replica_actor(b);
    unsigned char tag[8] = { 1 }, key[4] = { 1, 2, 3, 4 };
    static unsigned char longkey[600];
    crdt_commit_info info = { 9, 9, 9 };
    crdt_value ok = crdt_value_int(1), bad = crdt_value_int(1);
    crdt_value nobytes = crdt_value_bytes(NULL, 3);
    crdt_value empty = crdt_value_bytes(NULL, 0);
    static char big[400];
    crdt_value bigelem;
    char buf[64];

    ck_assert_int_eq(crdt_txn_begin(NULL, a), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_begin(&t, NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_commit(NULL, NULL), CRDT_EINVAL);
    crdt_txn_abort(NULL);
    ck_assert_int_eq(crdt_txn_put(NULL, "c", "d", "f", &ok), CRDT_EINVAL);
    ck_assert_uint_eq(crdt_txn_op_count(NULL), 0);
    ck_assert_int_eq(crdt_txn_copy_of(NULL, NULL, 0, NULL, 0), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_raw_del(NULL, CRDT_DB_LOG, key, sizeof key),
                     CRDT_EINVAL);

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    /* a copy names the op it copies: its actor, seq and tag */
    ck_assert_int_eq(crdt_txn_copy_of(t, &actor, 1, NULL, 0), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_copy_of(t, &actor, 0, tag, 0), CRDT_EINVAL);
    /* raw deletes: a known database but never the state, a key LMDB takes */
    ck_assert_int_eq(crdt_txn_raw_del(t, CRDT_DB__COUNT, key, sizeof key),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_raw_del(t, CRDT_DB_LOG, key, 0), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_raw_del(t, CRDT_DB_LOG, longkey,
                                      sizeof longkey), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_raw_del(t, CRDT_DB_STATE0, key, sizeof key),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_raw_del(t, CRDT_DB_STATE1, key, sizeof key),
                     CRDT_EINVAL);
    /* bad values and names leave the txn as it was, and usable */
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "", &ok), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", NULL), CRDT_EINVAL);
    bad.type = (crdt_vtype)(CRDT_VBYTES + 1);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &bad), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &nobytes), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", NULL), CRDT_EINVAL);
    ck_assert_int_eq(crdt_txn_srem(t, "c", "d", "s", &bad), CRDT_EINVAL);
    /* a set element must fit a key: too long is a limit, not a bad value */
    memset(big, 'e', sizeof big);
    bigelem = crdt_value_str(big, sizeof big);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", &bigelem), CRDT_ELIMIT);
    ck_assert_uint_eq(crdt_txn_op_count(t), 0);
    /* no bytes at all are empty bytes */
    ck_assert_int_eq(crdt_txn_put(t, "c", "d", "f", &empty), CRDT_OK);
    ck_assert_int_eq(crdt_txn_sadd(t, "c", "d", "s", &ok), CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 2);
    ck_assert_int_eq(crdt_txn_commit(t, &info), CRDT_OK);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_eq(info.last_seq, 2);
    tu_field_str(buf, sizeof buf, a, "c", "d", "s");
    ck_assert_str_eq(buf, "[1]");
    ck_assert_uint_eq(tu_stats(a).changes_in_log, 1);
}
END_TEST

/* A group's txn ends with the group: commit and abort of it inside the
 * body are refused, and the body's ops are committed once. */
static int
commit_inside(crdt_txn *t, void *arg)
{
    crdt_value v = crdt_value_int(3);
    int rc = crdt_txn_put(t, "c", "d", "v", &v);

    *(int *)arg = crdt_txn_commit(t, NULL);
    crdt_txn_abort(t);
    return rc;
}

START_TEST(test_group_txn_is_not_committed_by_its_body)
{
    crdt_commit_info info;
    int inner = 0;
    char buf[32];

    ck_assert_int_eq(crdt_txn_write(a, commit_inside, &inner, &info),
                     CRDT_OK);
    ck_assert_int_eq(inner, CRDT_EINVAL);
    ck_assert_uint_eq(info.first_seq, 1);
    ck_assert_uint_eq(info.last_seq, 1);
    tu_field_str(buf, sizeof buf, a, "c", "d", "v");
    ck_assert_str_eq(buf, "3");
}
END_TEST

START_TEST(test_read_only_replica_refuses_a_txn)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_txn *t = NULL;
    unsigned char before[32], after[32];
    char path[300];

    commit_n(a, 1);
    tu_digest_all(a, before);
    snprintf(path, sizeof path, "%s", crdt_replica_path(a));
    crdt_replica_close(a);
    o.read_only = 1;
    ck_assert_int_eq(crdt_replica_open(&a, path, &o), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_EPERM);
    ck_assert_ptr_null(t);
    tu_digest_all(a, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
}
END_TEST

/* The epoch id a change carries comes from meta: a damaged one is named,
 * never written into a change. */
START_TEST(test_damaged_epoch_id_fails_the_begin)
{
    crdt_txn *t = NULL;
    size_t len;
    unsigned char *id = raw_copy(a, CRDT_DB_META, "epoch_id", 8, &len);

    ck_assert_uint_eq(len, 32);
    raw_put(a, CRDT_DB_META, "epoch_id", 8, id, 31);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_ECORRUPT);
    ck_assert_ptr_null(t);
    raw_put(a, CRDT_DB_META, "epoch_id", 8, id, 32);
    commit_n(a, 1);
    ck_assert_uint_eq(tu_stats(a).changes_in_log, 1);
    free(id);
}
END_TEST

/* ---- heads ---- */

START_TEST(test_head_read_and_quarantine_key)
{
    crdt_actor actor = crdt_replica_actor(a), other = crdt_replica_actor(b);
    unsigned char hash[32], want[32], *blob, key[25], lk[16];
    uint64_t seq, want_seq;
    size_t len;

    commit_n(a, 3);
    ck_assert_int_eq(crdt_heads_export(&blob, &len, a), CRDT_OK);
    ck_assert_int_eq(crdt_heads_lookup(&want_seq, want, blob, len, &actor),
                     CRDT_OK);
    ck_assert_int_eq(crdt_head_read(&seq, hash, a, &actor), CRDT_OK);
    ck_assert_uint_eq(seq, 3);
    ck_assert_uint_eq(want_seq, 3);
    ck_assert(memcmp(hash, want, 32) == 0);
    /* an actor it never heard of: no head, the outputs untouched */
    seq = 42;
    memset(hash, 0x5a, sizeof hash);
    ck_assert_int_eq(crdt_head_read(&seq, hash, a, &other), CRDT_ENOTFOUND);
    ck_assert_uint_eq(seq, 42);
    ck_assert_uint_eq(hash[0], 0x5a);
    crdt_free(blob);

    /* a quarantine key without a change hash: zeros in its place */
    memset(key, 0xee, sizeof key);
    crdt_quarantine_key(key, &actor, 7, 2, NULL);
    log_key(lk, &actor, 7);
    ck_assert(memcmp(key, lk, 16) == 0);
    ck_assert_uint_eq(key[16], 2);
    for (int i = 17; i < 25; i++)
        ck_assert_uint_eq(key[i], 0);
}
END_TEST

/* Append a msgpack array header of @p n items. */
static size_t
mp_array(unsigned char *p, uint32_t n)
{
    if (n < 16) {
        p[0] = (unsigned char)(0x90 | n);
        return 1;
    }
    p[0] = 0xdd;
    p[1] = (unsigned char)(n >> 24);
    p[2] = (unsigned char)(n >> 16);
    p[3] = (unsigned char)(n >> 8);
    p[4] = (unsigned char)n;
    return 5;
}

START_TEST(test_malformed_heads_blobs_are_eproto)
{
    crdt_actor actor = crdt_replica_actor(a), *forks = NULL;
    unsigned char *blob, bad[256], hash[32], *many;
    size_t len, n = 9, l;
    uint64_t seq;

    commit_n(a, 2);
    ck_assert_int_eq(crdt_heads_export(&blob, &len, a), CRDT_OK);
    ck_assert_uint_lt(len + 1, sizeof bad);

    /* not an array */
    bad[0] = 0xc0;
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, bad, 1), CRDT_EPROTO);
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, bad, 1, &actor),
                     CRDT_EPROTO);
    /* not whole triples: an array cut short, and two whole items */
    l = mp_array(bad, 2);
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, bad, l), CRDT_EPROTO);
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, bad, l, &actor),
                     CRDT_EPROTO);
    bad[l] = 0x01;
    bad[l + 1] = 0x02;
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, bad, l + 2), CRDT_EPROTO);
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, bad, l + 2, &actor),
                     CRDT_EPROTO);
    /* more heads than a version vector holds: refused before reading
     * them (a byte for each item, so the header itself is whole) */
    many = calloc(1, 5 + 3 * 65537);
    ck_assert_ptr_nonnull(many);
    l = mp_array(many, 3 * 65537);
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, many, l + 3 * 65537),
                     CRDT_ELIMIT);
    free(many);
    /* a seq that is no uint, or an actor cut short */
    memcpy(bad, blob, len);
    bad[11] = 0xa1; /* [actor bin8 (10 bytes), seq: now a 1-byte str] */
    ck_assert_uint_eq(blob[0], 0x93);
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, bad, len), CRDT_EPROTO);
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, bad, len, &actor),
                     CRDT_EPROTO);
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, blob, 5, &actor),
                     CRDT_EPROTO);
    memcpy(bad, blob, len);
    ck_assert_uint_eq(bad[1], 0xc4);
    bad[2] = CRDT_ACTOR_BYTES - 1; /* the actor's bin8: a byte short */
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, bad, len), CRDT_EPROTO);
    memcpy(bad, blob, len);
    bad[len - 33] = 0xc4; /* the hash's bin8 header, now of 31 bytes */
    bad[len - 32] = 31;
    ck_assert_int_eq(crdt_heads_lookup(&seq, hash, bad, len, &actor),
                     CRDT_EPROTO);
    /* a whole blob with a byte after it */
    memcpy(bad, blob, len);
    bad[len] = 0xc0;
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, bad, len + 1),
                     CRDT_EPROTO);
    ck_assert_ptr_null(forks);
    ck_assert_uint_eq(n, 0);
    /* and the blob itself: no fork */
    ck_assert_int_eq(crdt_forks_find(&forks, &n, a, blob, len), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    crdt_free(forks);
    crdt_free(blob);
}
END_TEST

START_TEST(test_heads_read_in_pieces_and_into_a_short_buffer)
{
    crdt_actor x = crdt_replica_actor(a), y = crdt_replica_actor(b), lo, hi,
               mid;
    unsigned char *buf = NULL, piece[2 * 48];
    size_t cap = 0, n = 0;
    crdt_read *rd;

    commit_n(a, 1);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_heads(&buf, &cap, &n, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(cap, 48);
    /* a second actor's head: the kept buffer is too short, and grows */
    commit_n(b, 2);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_heads(&buf, &cap, &n, rd), CRDT_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(cap, 96);
    if (memcmp(x.b, y.b, 8) < 0) {
        lo = x;
        hi = y;
    } else {
        lo = y;
        hi = x;
    }
    ck_assert(memcmp(buf, lo.b, 8) == 0);
    ck_assert(memcmp(buf + 48, hi.b, 8) == 0);
    /* after an actor that holds no head: from the next one that does */
    memset(mid.b, 0, sizeof mid.b);
    ck_assert_int_eq(crdt_read_heads_after(piece, 2, &n, &mid, rd), CRDT_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert(memcmp(piece, buf, 96) == 0);
    ck_assert_int_eq(crdt_read_heads_after(piece, 2, &n, &lo, rd), CRDT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert(memcmp(piece, buf + 48, 48) == 0);
    memset(mid.b, 0xff, sizeof mid.b);
    n = 5;
    ck_assert_int_eq(crdt_read_heads_after(piece, 2, &n, &mid, rd), CRDT_OK);
    ck_assert_uint_eq(n, 0);
    crdt_read_end(rd);
    crdt_free(buf);
}
END_TEST

/* A heads record that is not an actor's head: every reader of the heads
 * names it (_i = 0: a key of another size, 1: a value of another size). */
START_TEST(test_damaged_heads_record_is_ecorrupt)
{
    crdt_actor x = crdt_replica_actor(a);
    unsigned char *blob = NULL, *buf = NULL, piece[2 * 48], key[9], *head;
    size_t len = 0, cap = 0, n = 0, hl, cl;
    const unsigned char *c;
    crdt_export *e;
    crdt_read *rd;
    int rc = CRDT_OK;

    commit_n(a, 1);
    head = raw_copy(a, CRDT_DB_HEADS, x.b, 8, &hl);
    if (_i == 0) {
        memcpy(key, x.b, 8);
        key[8] = 0;
        raw_put(a, CRDT_DB_HEADS, key, 9, head, hl);
    } else {
        raw_put(a, CRDT_DB_HEADS, x.b, 8, head, hl - 1);
    }
    ck_assert_int_eq(crdt_heads_export(&blob, &len, a), CRDT_ECORRUPT);
    ck_assert_ptr_null(blob);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_heads(&buf, &cap, &n, rd), CRDT_ECORRUPT);
    ck_assert_int_eq(crdt_read_heads_after(piece, 2, &n, NULL, rd),
                     CRDT_ECORRUPT);
    crdt_read_end(rd);
    /* an export walks the heads too (the good record first, if any) */
    ck_assert_int_eq(crdt_export_begin(&e, a, NULL), CRDT_OK);
    for (int i = 0; i < 4 && (rc = crdt_export_next(e, &c, &cl)) == CRDT_OK;
         i++)
        ;
    ck_assert_int_eq(rc, CRDT_ECORRUPT);
    crdt_export_end(e);
    if (_i == 0) { /* paging after x lands on the damaged key itself */
        crdt_raw *t;
        ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
        ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_HEADS, x.b, 8), CRDT_OK);
        ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
        ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
        ck_assert_int_eq(crdt_read_heads_after(piece, 2, &n, &x, rd),
                         CRDT_ECORRUPT);
        crdt_read_end(rd);
    }
    crdt_free(buf);
    free(head);
}
END_TEST

/* ---- the chain check against what the log holds ---- */

START_TEST(test_chain_check_below_every_change_is_unknown)
{
    crdt_actor x = crdt_replica_actor(a);
    unsigned char hash[32] = { 0 };
    uint64_t seq;
    int found = 7;

    commit_n(a, 3);
    ck_assert_int_eq(crdt_head_read(&seq, hash, a, &x), CRDT_OK);
    /* no change ends at seq 0, none spans it, no archive holds it */
    ck_assert_int_eq(crdt_chain_check(&found, a, &x, 0, hash), CRDT_OK);
    ck_assert_int_eq(found, CRDT_CHAIN_UNKNOWN);
    /* a damaged epoch number is named, not taken for "not archived" */
    raw_put(a, CRDT_DB_META, "epoch_num", 9, "abc", 3);
    ck_assert_int_eq(crdt_chain_check(&found, a, &x, 0, hash),
                     CRDT_ECORRUPT);
    /* the head itself needs no epoch */
    ck_assert_int_eq(crdt_chain_check(&found, a, &x, 3, hash), CRDT_OK);
    ck_assert_int_eq(found, CRDT_CHAIN_SAME);
}
END_TEST

/* A log record that is not the change its key names (_i = 0: an older
 * change of the actor, which ends before the key's seq; 1: bytes that
 * are no change): the chain check answers CRDT_ECORRUPT, never a fork. */
START_TEST(test_log_record_not_what_its_key_says_is_ecorrupt)
{
    crdt_actor x = crdt_replica_actor(a);
    unsigned char k1[16], k3[16], hash[32] = { 0 }, *first;
    static const unsigned char junk[] = { 0x92, 0xc4, 0x01, 0x00, 0xc0 };
    size_t len;
    int found = 7;

    commit_n(a, 5);
    log_key(k1, &x, 1);
    log_key(k3, &x, 3);
    first = raw_copy(a, CRDT_DB_LOG, k1, 16, &len);
    if (_i == 0)
        raw_put(a, CRDT_DB_LOG, k3, 16, first, len);
    else
        raw_put(a, CRDT_DB_LOG, k3, 16, junk, sizeof junk);
    ck_assert_int_eq(crdt_chain_check(&found, a, &x, 3, hash),
                     CRDT_ECORRUPT);
    ck_assert_int_eq(found, CRDT_CHAIN_UNKNOWN);
    /* the records before it still answer */
    ck_assert_int_eq(crdt_chain_check(&found, a, &x, 2, hash), CRDT_OK);
    ck_assert_int_eq(found, CRDT_CHAIN_FORK);
    free(first);
}
END_TEST

/* ---- run records handed in by a raw reader ---- */

/* @p r's changes 1..n as one run record value (c1 | packed). */
static unsigned char *
run_value(crdt_replica *r, size_t *len, tu_batch *all)
{
    unsigned char *packed = NULL, *val;
    size_t plen = 0;

    *all = tu_export_all(r);
    ck_assert_int_eq(crdt_changes_pack(&packed, &plen, all->v, all->n),
                     CRDT_OK);
    val = malloc(plen + 1);
    ck_assert_ptr_nonnull(val);
    val[0] = 0xc1;
    memcpy(val + 1, packed, plen);
    crdt_free(packed);
    *len = plen + 1;
    return val;
}

START_TEST(test_raw_log_changes_checks_the_key)
{
    crdt_actor x = crdt_replica_actor(a), y = crdt_replica_actor(b);
    crdt_bytes *list = NULL;
    unsigned char *buf = NULL, *val, key[16], akey[24], *huge;
    size_t n = 0, vl;
    tu_batch all;

    commit_n(a, 4);
    val = run_value(a, &vl, &all);
    ck_assert_uint_eq(all.n, 4);

    ck_assert_int_eq(crdt_raw_log_changes(NULL, &n, &buf, NULL, 0, val, vl),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_raw_log_changes(&list, NULL, &buf, NULL, 0, val,
                                          vl), CRDT_EINVAL);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, NULL, NULL, 0, val, vl),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, NULL, 0, NULL, 1),
                     CRDT_EINVAL);
    log_key(key, &x, 4);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, key, 15, val, vl),
                     CRDT_EINVAL);

    /* the same run under another actor's key is damaged */
    log_key(key, &y, 4);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, key, 16, val, vl),
                     CRDT_ECORRUPT);
    ck_assert_ptr_null(list);
    /* ... and under an archive key (epoch | actor | seq) it is whole */
    memset(akey, 0, 8);
    log_key(akey + 8, &x, 4);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, akey, 24, val,
                                          vl), CRDT_OK);
    ck_assert_uint_eq(n, 4);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(list[i].len, all.v[i].len);
        ck_assert(memcmp(list[i].data, all.v[i].data, list[i].len) == 0);
    }
    crdt_free(list);
    crdt_free(buf);
    /* without a key only the run's own links are checked */
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, NULL, 0, val, vl),
                     CRDT_OK);
    ck_assert_uint_eq(n, 4);
    crdt_free(list);
    crdt_free(buf);
    /* an empty record is one empty change, handed out undecoded */
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, NULL, 0, NULL, 0),
                     CRDT_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(list[0].len, 0);
    crdt_free(list);
    crdt_free(buf);

    /* a run longer than a run may be is damaged before it is unpacked */
    huge = calloc(1, 1088u * 1024 + 1);
    ck_assert_ptr_nonnull(huge);
    memcpy(huge, val, vl);
    ck_assert_int_eq(crdt_raw_log_changes(&list, &n, &buf, NULL, 0, huge,
                                          1088u * 1024 + 1), CRDT_ECORRUPT);
    ck_assert_ptr_null(list);
    free(huge);
    free(val);
    tu_batch_free(&all);
}
END_TEST

/* A run under a key of neither length a log uses is refused by the
 * split, and the log is left as it was. */
START_TEST(test_split_refuses_a_run_under_a_bad_key)
{
    crdt_actor x = crdt_replica_actor(a);
    unsigned char key[17], *val, before[32], after[32];
    size_t vl;
    uint64_t split = 9;
    tu_batch all;
    crdt_raw *t;

    commit_n(a, 3);
    val = run_value(a, &vl, &all);
    log_key(key, &x, 3);
    key[16] = 0;
    raw_put(a, CRDT_DB_LOG, key, sizeof key, val, vl);
    tu_db_digest(a, CRDT_DB_LOG, before);
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_log_split(&split, t, CRDT_DB_LOG),
                     CRDT_ECORRUPT);
    ck_assert_uint_eq(split, 0);
    crdt_raw_abort(t);
    tu_db_digest(a, CRDT_DB_LOG, after);
    ck_assert(memcmp(before, after, sizeof before) == 0);
    free(val);
    tu_batch_free(&all);
}
END_TEST

/* The replica's own changes came back to it as a run record (a merge of
 * its own log from a restored copy): the next commit leaves the run's
 * signed end as it is, and the log still serves every change. */
START_TEST(test_commit_after_own_run_record_keeps_it)
{
    tu_batch all, served;
    unsigned char key[16], *before, *after, why[256];
    crdt_actor x = crdt_replica_actor(a);
    size_t bl, al;
    char buf[32];

    crdt_raw *t;

    commit_n(a, 3);
    all = tu_export_all(a);
    /* the log as a merge of the three leaves it: one record */
    tu_log_put_run(a, all.v, all.n);
    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    for (uint64_t s = 1; s <= 2; s++) {
        log_key(key, &x, s);
        ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_LOG, key, 16), CRDT_OK);
    }
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    ck_assert_msg(crdt_replica_check_records(a, (char *)why, sizeof why) ==
                      CRDT_OK, "%s", why);
    log_key(key, &x, 3);
    before = raw_copy(a, CRDT_DB_LOG, key, 16, &bl);
    ck_assert_uint_eq(before[0], 0xc1);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "v", 7), CRDT_OK);
    after = raw_copy(a, CRDT_DB_LOG, key, 16, &al);
    ck_assert_uint_eq(al, bl);
    ck_assert(memcmp(before, after, bl) == 0);
    ck_assert_msg(crdt_replica_check_records(a, (char *)why, sizeof why) ==
                      CRDT_OK, "%s", why);
    /* what it serves merges elsewhere: every change proven */
    served = tu_export_all(a);
    ck_assert_uint_eq(served.n, 4);
    ck_assert_int_eq(crdt_merge(NULL, b, served.v, served.n), CRDT_OK);
    tu_field_str(buf, sizeof buf, b, "c", "d", "v");
    ck_assert_str_eq(buf, "7");
    free(before);
    free(after);
    tu_batch_free(&all);
    tu_batch_free(&served);
}
END_TEST

/* ---- ops of one txn that are not one run ---- */

static void
assert_text(crdt_replica *r, const char *coll, const char *doc,
            const char *field, const char *want)
{
    crdt_read *rd;
    char *s = NULL;
    size_t len = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_text(&s, &len, rd, coll, doc, field),
                     CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert(memcmp(s, want, len) == 0);
    crdt_text_free(s);
}

START_TEST(test_inserts_into_other_texts_are_not_folded)
{
    /* each one differs from the one before in one name only */
    static const char *names[][3] = {
        { "c", "d", "t" },    { "cc", "d", "t" },  { "cc", "dd", "t" },
        { "cc", "dd", "tt" }, { "ce", "dd", "tt" }, { "ce", "de", "tt" },
        { "ce", "de", "tu" },
    };
    size_t n = sizeof names / sizeof names[0];
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(crdt_txn_text_insert(t, names[i][0], names[i][1],
                                              names[i][2], 0, "ab", 2),
                         CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), n);
    /* typed in front of the last insert: not its continuation either */
    ck_assert_int_eq(crdt_txn_text_insert(t, "ce", "de", "tu", 0, "x", 1),
                     CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), n + 1);
    /* behind it: one run again */
    ck_assert_int_eq(crdt_txn_text_insert(t, "ce", "de", "tu", 1, "y", 1),
                     CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), n + 1);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    for (size_t i = 0; i + 1 < n; i++)
        assert_text(a, names[i][0], names[i][1], names[i][2], "ab");
    assert_text(a, "ce", "de", "tu", "xyab");
}
END_TEST

/* Backspace over the text of two actors: one delete op, its ranges one
 * per actor; and over a list: the list deletes fold the same way. */
START_TEST(test_backspace_over_two_actors_and_a_list_folds)
{
    crdt_txn *t;
    crdt_read *rd;
    crdt_value *vals = NULL;
    size_t n = 0;
    char buf[64];

    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "XY", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 2, "ab", 2),
                     CRDT_OK);
    for (int i = 0; i < 3; i++) {
        crdt_value v = crdt_value_int(i);
        ck_assert_int_eq(crdt_txn_list_insert(t, "c", "d", "l", (uint64_t)i,
                                              &v), CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int pos = 3; pos >= 1; pos--)
        ck_assert_int_eq(crdt_txn_text_delete(t, "c", "d", "t",
                                              (uint64_t)pos, 1), CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), 1);
    ck_assert_int_eq(crdt_txn_list_delete(t, "c", "d", "l", 2, 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_list_delete(t, "c", "d", "l", 1, 1), CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), 2);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    assert_text(a, "c", "d", "t", "X");
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_list(&vals, &n, rd, "c", "d", "l"), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(vals[0].u.i, 0);
    crdt_list_free(vals);
    /* the folded ops say what the keystrokes said, at the other end too */
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    assert_text(b, "c", "d", "t", "X");
    tu_field_str(buf, sizeof buf, b, "c", "d", "l");
    ck_assert_str_eq(buf, "[0]");
}
END_TEST

/* Typed right behind an element of another actor whose counter is the
 * last insert's: that element is not the last insert's tail. */
START_TEST(test_insert_after_another_actors_equal_counter_is_not_folded)
{
    crdt_txn *t;

    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "XY", 2),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, b), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "p", 1),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 2, "q", 1),
                     CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), 2);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    assert_text(a, "c", "d", "t", "pXqY");
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    assert_text(b, "c", "d", "t", "pXqY");
}
END_TEST

/* One insert op holds at most CRDT_TEXT_INSERT_MAX bytes: typing on past
 * it starts a new op. */
START_TEST(test_run_stops_at_the_insert_limit)
{
    char *big = malloc(CRDT_TEXT_INSERT_MAX);
    crdt_read *rd;
    uint64_t len = 0;
    crdt_txn *t;

    ck_assert_ptr_nonnull(big);
    memset(big, 'k', CRDT_TEXT_INSERT_MAX);
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, big,
                                          CRDT_TEXT_INSERT_MAX), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t",
                                          CRDT_TEXT_INSERT_MAX, "z", 1),
                     CRDT_OK);
    ck_assert_uint_eq(op_count_of_txn(t), 2);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    ck_assert_int_eq(crdt_read_begin(&rd, a), CRDT_OK);
    ck_assert_int_eq(crdt_read_seq_len(&len, rd, "c", "d", "t"), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_uint_eq(len, CRDT_TEXT_INSERT_MAX + 1);
    free(big);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("oplog_edges");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_heads_and_chain_calls_refuse_bad_arguments);
    tcase_add_test(tc, test_txn_calls_refuse_bad_arguments);
    tcase_add_test(tc, test_group_txn_is_not_committed_by_its_body);
    tcase_add_test(tc, test_read_only_replica_refuses_a_txn);
    tcase_add_test(tc, test_damaged_epoch_id_fails_the_begin);
    tcase_add_test(tc, test_head_read_and_quarantine_key);
    tcase_add_test(tc, test_malformed_heads_blobs_are_eproto);
    tcase_add_test(tc, test_heads_read_in_pieces_and_into_a_short_buffer);
    tcase_add_loop_test(tc, test_damaged_heads_record_is_ecorrupt, 0, 2);
    tcase_add_test(tc, test_chain_check_below_every_change_is_unknown);
    tcase_add_loop_test(tc, test_log_record_not_what_its_key_says_is_ecorrupt,
                        0, 2);
    tcase_add_test(tc, test_raw_log_changes_checks_the_key);
    tcase_add_test(tc, test_split_refuses_a_run_under_a_bad_key);
    tcase_add_test(tc, test_commit_after_own_run_record_keeps_it);
    tcase_add_test(tc, test_inserts_into_other_texts_are_not_folded);
    tcase_add_test(tc, test_backspace_over_two_actors_and_a_list_folds);
    tcase_add_test(tc,
                   test_insert_after_another_actors_equal_counter_is_not_folded);
    tcase_add_test(tc, test_run_stops_at_the_insert_limit);
    suite_add_tcase(s, tc);
    return s;
}
