/*
 * test_session.c: the sync protocol with two sessions wired in memory:
 * same epoch, behind (reset + rebase), fork, beyond policy, busy.
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

/* One sync between a and b with @p batch-byte messages (0: default). */
static void
run(crdtnet_report *ra, crdtnet_report *rb, int *ea, int *eb,
    size_t batch)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result res;

    o.batch_bytes = batch;
    res = tu_sessions_run(a, b, &o);
    *ra = res.rx;
    *rb = res.ry;
    *ea = res.ex;
    *eb = res.ey;
}


START_TEST(test_same_epoch_both_ways)
{
    crdtnet_report ra, rb;
    int ea, eb;
    char buf[64];

    for (int i = 0; i < 50; i++) {
        char doc[16];
        snprintf(doc, sizeof doc, "d%d", i);
        ck_assert_int_eq(tu_put_int(a, "c", doc, "x", i), CRDT_OK);
        ck_assert_int_eq(tu_put_int(b, "c", doc, "y", i), CRDT_OK);
    }
    run(&ra, &rb, &ea, &eb, 512); /* tiny batches: many messages */
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    ck_assert_uint_eq(ra.changes_sent, 50);
    ck_assert_uint_eq(rb.changes_received, 50);
    ck_assert_int_eq(ra.in_sync, 1);
    ck_assert_int_eq(rb.in_sync, 1);
    tu_field_str(buf, sizeof buf, b, "c", "d7", "x");
    ck_assert_str_eq(buf, "7");
    tu_assert_converged(a, b);
    /* again: nothing moves */
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_uint_eq(ra.changes_sent, 0);
    ck_assert_int_eq(ra.in_sync, 1);
}
END_TEST

START_TEST(test_behind_is_reset_and_rebased)
{
    crdtnet_report ra, rb;
    int ea, eb;
    char buf[64];

    ck_assert_int_eq(tu_put_int(a, "people", "p1", "name", 1), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(tu_put_int(b, "people", "p2", "name", 2), CRDT_OK);
    tu_migrate(a, "collection people 1 -> 2\nrename name -> full_name\n", NULL);
    ck_assert_int_eq(tu_put_int(a, "people", "p3", "full_name", 3), CRDT_OK);
    tu_migrate(a, "collection people 2 -> 3\nrename full_name -> title\n", NULL);
    ck_assert_int_eq(tu_put_int(a, "people", "p4", "title", 4), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 300);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    ck_assert_int_eq(rb.snapshot_received, 1);
    ck_assert_int_eq(ra.snapshot_sent, 1);
    ck_assert_int_eq(ra.in_sync, 1);
    tu_field_str(buf, sizeof buf, a, "people", "p2", "title");
    ck_assert_str_eq(buf, "2");
    tu_field_str(buf, sizeof buf, b, "people", "p4", "title");
    ck_assert_str_eq(buf, "4");
    tu_assert_converged(a, b);
}
END_TEST

START_TEST(test_fork_converges)
{
    crdtnet_report ra, rb;
    int ea, eb;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(tu_put_int(a, "c", "da", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, NULL);
    tu_migrate(b, "collection c 1 -> 2\nrename x -> y\n", NULL);
    ck_assert_int_eq(tu_put_int(a, "c", "da2", "x", 4), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db2", "y", 5), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    ck_assert_int_eq(ra.snapshot_received + rb.snapshot_received, 1);
    tu_assert_converged(a, b);
    ck_assert_int_eq(ra.in_sync, 1);
}
END_TEST

static int
mark(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_bool(1);
    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "checked", &v);
}

START_TEST(test_beyond_policy_is_rejected_and_quarantined)
{
    crdtnet_report ra, rb;
    epoch_builder *bl;
    uint64_t q = 0;
    int ea, eb;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(tu_put_int(b, "c", "d", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "e", "x", 3), CRDT_OK);
    ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "mark", "c", 2, mark, NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
    epoch_builder_free(bl);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(rb.rejected, 1);
    ck_assert_uint_eq(rb.quarantined_ops, 2);
    ck_assert_int_eq(epoch_quarantine_count(&q, b), CRDT_OK);
    ck_assert_uint_eq(q, 2);
    ck_assert_int_eq(eb, 0);
    tu_assert_converged(a, b);
    /* b goes on writing under a new actor, and syncs normally */
    ck_assert_int_eq(tu_put_int(b, "c", "f", "x", 9), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    tu_assert_converged(a, b);
}
END_TEST

START_TEST(test_busy_during_migration)
{
    crdtnet_report ra, rb;
    crdt_raw *t;
    int ea, eb;
    extern int epoch__marker_put(crdt_raw *, uint64_t, const char *,
                                 const char *);

    ck_assert_int_eq(crdt_raw_begin(&t, a, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, 1, "", ""), CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    run(&ra, &rb, &ea, &eb, 0);
    ck_assert_int_eq(ea, CRDT_EBUSY);
    ck_assert_int_eq(eb, CRDT_EBUSY);
    ck_assert_uint_gt(rb.busy_retry_ms, 0);
}
END_TEST

/* One CHANGES message of 8 MiB of empty entries: refused on its count
 * before anything is allocated for four million entries. */
START_TEST(test_changes_of_empty_entries_are_refused_early)
{
    /* version 3 (HELLO at once, no summary): the steps below are its */
    crdtnet_session_options v3 = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sa, *sb;
    const unsigned char *msg;
    unsigned char *bomb;
    size_t len, n = (CRDTNET_SESSION_MSG_MAX - 16) / 2, off = 0;
    tu_batch x;
    char h0[65], h1[65];

    ck_assert_int_eq(tu_put_int(b, "c", "d", "f", 1), CRDT_OK);
    x = tu_export_all(b); /* the smallest change there is */
    ck_assert_uint_ge(x.v[0].len, CRDT_CHANGE_MIN);
    tu_batch_free(&x);
    v3.sync_proto = 3;
    tu_hash(h0, a);
    ck_assert_int_eq(crdtnet_session_new(&sa, a, &v3), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sb, b, &v3), CRDT_OK);
    /* HELLO and FORKS both ways, nothing more: a is ready for CHANGES */
    ck_assert_int_eq(crdtnet_session_next_out(sb, &msg, &len), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(sa, msg, len), CRDT_OK);
    for (int i = 0; i < 2; i++) {
        unsigned char *copy;
        ck_assert_int_eq(crdtnet_session_next_out(sa, &msg, &len), CRDT_OK);
        copy = malloc(len);
        memcpy(copy, msg, len);
        ck_assert_int_eq(crdtnet_session_feed(sb, copy, len), CRDT_OK);
        free(copy);
    }
    ck_assert_int_eq(crdtnet_session_next_out(sb, &msg, &len), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(sa, msg, len), CRDT_OK);
    crdtnet_session_free(sb);
    bomb = malloc(8 + 2 * n);
    bomb[off++] = 0x92;
    bomb[off++] = 0x07;
    bomb[off++] = 0xdd;
    bomb[off++] = (unsigned char)(n >> 24);
    bomb[off++] = (unsigned char)(n >> 16);
    bomb[off++] = (unsigned char)(n >> 8);
    bomb[off++] = (unsigned char)n;
    for (size_t i = 0; i < n; i++) {
        bomb[off++] = 0xc4;
        bomb[off++] = 0x00;
    }
    ck_assert_msg(crdtnet_session_feed(sa, bomb, off) == CRDT_ELIMIT, "%s",
                  crdtnet_session_report(sa)->reason);
    ck_assert_str_eq(crdtnet_session_report(sa)->reason,
                     "more changes than the message can hold");
    free(bomb);
    crdtnet_session_free(sa);
    tu_hash(h1, a);
    ck_assert_str_eq(h0, h1);
}
END_TEST

START_TEST(test_garbage_messages_fail_cleanly)
{
    crdtnet_session *s;
    static const unsigned char junk[][8] = {
        { 0xc1 }, { 0x91, 0x63 }, { 0xdd, 0xff, 0xff, 0xff, 0xff },
        { 0x92, 0x07, 0x91 }, { 0x91, 0x01 },
    };
    char h0[65], h1[65];

    tu_hash(h0, a);
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        ck_assert_int_eq(crdtnet_session_new(&s, a, NULL), CRDT_OK);
        ck_assert_int_lt(crdtnet_session_feed(s, junk[i], 5), 0);
        crdtnet_session_free(s);
    }
    tu_hash(h1, a);
    ck_assert_str_eq(h0, h1);
}
END_TEST

/* A HELLO of sync protocol 1 (the store-format-1 state hash, which never
 * equals ours) ends the session with the reason, changing nothing. */
START_TEST(test_old_protocol_is_refused)
{
    /* version 3: its HELLO is the first message */
    crdtnet_session_options v3 = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sa, *sb;
    const unsigned char *msg;
    unsigned char hello[4096];
    size_t len;
    char h0[65], h1[65];

    v3.sync_proto = 3;
    tu_hash(h0, a);
    /* a HELLO announces PACKED with its proto as uint 8: cc 03 */
    ck_assert_int_eq(crdtnet_session_new(&sb, b, &v3), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_next_out(sb, &msg, &len), CRDT_OK);
    ck_assert_uint_ge(len, 4);
    ck_assert_uint_eq(msg[2], 0xcc);
    ck_assert_uint_eq(msg[3], 3);
    crdtnet_session_free(sb);
    /* one that does not read PACKED writes 03, as before */
    {
        crdtnet_session_options o = v3;
        o.plain_changes = 1;
        ck_assert_int_eq(crdtnet_session_new(&sb, b, &o), CRDT_OK);
    }
    ck_assert_int_eq(crdtnet_session_next_out(sb, &msg, &len), CRDT_OK);
    ck_assert_uint_le(len, sizeof hello);
    memcpy(hello, msg, len);
    crdtnet_session_free(sb);
    /* [1, proto, ...]: fixarray, type HELLO, proto */
    ck_assert_uint_eq(hello[1], 1);
    ck_assert_uint_eq(hello[2], 3);
    hello[2] = 2; /* the previous protocol: HELLO without heads */
    ck_assert_int_eq(crdtnet_session_new(&sa, a, &v3), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_feed(sa, hello, len), CRDT_EVERSION);
    ck_assert_str_eq(crdtnet_session_report(sa)->reason,
                     "unsupported sync protocol");
    crdtnet_session_free(sa);
    tu_hash(h1, a);
    ck_assert_str_eq(h0, h1);
}
END_TEST

/* A session each way between @p x and @p y until both end; the bytes x
 * sent in @p x_bytes. Both must end without an error. */
static size_t x_msgs; /* messages x sent in the last sync_pair_as() */

static void
sync_pair_as(crdt_replica *x, crdt_replica *y, size_t batch, size_t *x_bytes,
             int x_plain, int y_plain)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sx, *sy;
    const unsigned char *msg;
    size_t len;

    *x_bytes = 0;
    x_msgs = 0;
    o.batch_bytes = batch;
    o.plain_changes = x_plain;
    ck_assert_int_eq(crdtnet_session_new(&sx, x, &o), CRDT_OK);
    o.plain_changes = y_plain;
    ck_assert_int_eq(crdtnet_session_new(&sy, y, &o), CRDT_OK);
    for (int round = 0; round < 100000; round++) {
        int moved = 0;
        while (crdtnet_session_next_out(sx, &msg, &len) == CRDT_OK) {
            unsigned char *copy = malloc(len);
            memcpy(copy, msg, len);
            *x_bytes += len;
            x_msgs++;
            crdtnet_session_feed(sy, copy, len);
            free(copy);
            moved = 1;
        }
        while (crdtnet_session_next_out(sy, &msg, &len) == CRDT_OK) {
            unsigned char *copy = malloc(len);
            memcpy(copy, msg, len);
            crdtnet_session_feed(sx, copy, len);
            free(copy);
            moved = 1;
        }
        if (!moved)
            break;
    }
    ck_assert_int_eq(crdtnet_session_error(sx), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_error(sy), CRDT_OK);
    crdtnet_session_free(sx);
    crdtnet_session_free(sy);
}

static void
sync_pair(crdt_replica *x, crdt_replica *y, size_t batch, size_t *x_bytes)
{
    sync_pair_as(x, y, batch, x_bytes, 0, 0);
}

/* How many changes of @p r's log carry a signature; the last one must. */
static size_t
signed_in_log(crdt_replica *r, size_t *n_out)
{
    tu_batch x = tu_export_all(r);
    size_t n = 0;
    crdt_change c;

    for (size_t i = 0; i < x.n; i++) {
        ck_assert_int_eq(crdt_change_decode(&c, x.v[i].data, x.v[i].len),
                         CRDT_OK);
        n += c.sig != NULL;
    }
    ck_assert_int_eq(crdt_change_decode(&c, x.v[x.n - 1].data,
                                        x.v[x.n - 1].len), CRDT_OK);
    ck_assert_ptr_nonnull(c.sig);
    *n_out = x.n;
    tu_batch_free(&x);
    return n;
}

/* 1,000 one-character changes travel with one signature per message,
 * are stored so, and are served on from there, cut into other messages
 * (each still ending on a signed change). */
START_TEST(test_typing_run_travels_with_few_signatures)
{
    char dc[256];
    unsigned char space[16];
    crdt_replica *c;
    size_t ab, bc, n, sig;

    for (int i = 0; i < 1000; i++) {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "notes", "n1", "body",
                                              (uint64_t)i, "x", 1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    ck_assert_uint_eq(signed_in_log(a, &n), 1000); /* a commit signs */
    sync_pair(a, b, 16384, &ab);
    tu_assert_converged(a, b);
    sig = signed_in_log(b, &n);
    ck_assert_uint_eq(n, 1000);
    ck_assert_uint_ge(sig, 1);
    ck_assert_uint_le(sig, 30); /* one per message of 16 KiB */
    /* a's log, every change signed, against what a sent: at least 900
     * signatures (65 bytes each) saved, besides a few small messages */
    {
        tu_batch x = tu_export_all(a);
        size_t log_bytes = 0;
        for (size_t i = 0; i < x.n; i++)
            log_bytes += x.v[i].len;
        tu_batch_free(&x);
        ck_assert_uint_lt(ab, log_bytes - 900 * 65 + 4096);
    }
    /* b serves the run on in messages of another size */
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    sync_pair(b, c, 5000, &bc);
    {
        char hb[65], hc[65];
        tu_hash(hb, b);
        tu_hash(hc, c);
        ck_assert_str_eq(hb, hc);
    }
    ck_assert_uint_le(signed_in_log(c, &n), 60);
    ck_assert_uint_eq(n, 1000);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

/* @p changes changes of @p ops_per_change register writes each to
 * random docs of "c", the values wide enough to take 8 bytes */
static void
put_random(crdt_replica *r, int changes, int ops_per_change, uint64_t *seed)
{
    for (int i = 0; i < changes; i++) {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        for (int j = 0; j < ops_per_change; j++) {
            char doc[16];
            crdt_value v = crdt_value_int(
                (int64_t)((test_rand(seed) >> 2) | (1ULL << 40)));
            snprintf(doc, sizeof doc, "d%05u",
                     (unsigned)(test_rand(seed) % 10000));
            ck_assert_int_eq(crdt_txn_put(t, "c", doc, "v", &v), CRDT_OK);
        }
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* three fresh replicas of @p x's space, epochs attached */
static void
three_replicas(crdt_replica *r[3], char dirs[3][256], crdt_replica *x)
{
    unsigned char space[16];

    crdt_replica_space_id(x, space);
    for (int i = 0; i < 3; i++) {
        r[i] = tu_create(dirs[i], sizeof dirs[i], space);
        ck_assert_int_eq(epoch_attach(r[i]), CRDT_OK);
    }
}

static void
close_three(crdt_replica *r[3], char dirs[3][256])
{
    for (int i = 0; i < 3; i++) {
        crdt_replica_close(r[i]);
        test_rmtree(dirs[i]);
    }
}

/* A change loses its signature in place when its successor follows it
 * in the message (session_give.c, strip_last): the bin that holds it gets a
 * shorter header when the 65 bytes it loses take it under 256 or under
 * 65,536 bytes. Changes of every size around both bounds travel plain
 * and packed, each replica ends with the same state, and the stripped
 * changes are stored unsigned. */
START_TEST(test_stripped_changes_across_header_sizes)
{
    static char big[70000];
    char dirs[3][256];
    crdt_replica *r[3];
    size_t ab, n, at_256 = 0, at_64k = 0;
    tu_batch x;

    memset(big, 'q', sizeof big);
    for (int i = 0; i < 140 + 40; i++) {
        crdt_txn *t;
        size_t l = i < 140 ? 1 + (size_t)i : 65350 + 4 * (size_t)(i - 140);
        crdt_value v = crdt_value_str(big, l);
        ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
        ck_assert_int_eq(crdt_txn_put(t, "c", "d", "v", &v), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
    x = tu_export_all(a);
    for (size_t i = 0; i < x.n; i++) {
        at_256 += x.v[i].len >= 256 && x.v[i].len < 256 + 65;
        at_64k += x.v[i].len >= 65536 && x.v[i].len < 65536 + 65;
    }
    tu_batch_free(&x);
    ck_assert_uint_ge(at_256, 2);
    ck_assert_uint_ge(at_64k, 2);
    three_replicas(r, dirs, a);
    sync_pair_as(a, r[0], 1 << 20, &ab, 1, 1); /* plain both ways */
    sync_pair_as(a, r[1], 1 << 20, &ab, 0, 0); /* packed */
    sync_pair_as(r[0], r[2], 300000, &ab, 1, 1); /* served on, cut anew */
    for (int i = 0; i < 3; i++) {
        tu_assert_converged(a, r[i]);
        ck_assert_uint_lt(signed_in_log(r[i], &n), 100);
        ck_assert_uint_eq(n, 180);
    }
    close_three(r, dirs);
}
END_TEST

/* Register writes travel PACKED between two peers that read it, at
 * about half the bytes, and plain to and from a peer that does not (an
 * older one): every pair converges. */
START_TEST(test_packed_changes_and_an_older_peer)
{
    char dirs[3][256];
    crdt_replica *r[3];
    size_t packed, plain, back;
    uint64_t seed = test_seed("packed");

    put_random(a, 30, 100, &seed);
    three_replicas(r, dirs, a);
    sync_pair_as(a, r[0], 0, &packed, 0, 0); /* both read PACKED */
    tu_assert_converged(a, r[0]);
    sync_pair_as(a, r[1], 0, &plain, 0, 1);  /* r[1] is older */
    tu_assert_converged(a, r[1]);
    sync_pair_as(r[1], r[2], 0, &back, 1, 0); /* from an older one */
    tu_assert_converged(r[1], r[2]);
    ck_assert_msg(packed * 10 < plain * 6, "packed %zu, plain %zu", packed,
                  plain);
    ck_assert_uint_gt(back * 10, plain * 9); /* plain both ways */
    close_three(r, dirs);
}
END_TEST

/* One-op changes go in packed version 2 between two peers that read it
 * (HELLO's state hash as bin 16), in version 1 to and from a peer from
 * before it (plain_changes 2: PACKED and CUT, not version 2); every
 * pair converges. Version 2 takes a flags byte and the short op per
 * change, version 1 about five bytes more (docs/protocol.md). */
START_TEST(test_packed_version2_and_an_older_peer)
{
    char dirs[3][256];
    crdt_replica *r[3];
    size_t v2, v1, back;
    uint64_t seed = test_seed("packed-v2");

    put_random(a, 600, 1, &seed);
    three_replicas(r, dirs, a);
    sync_pair_as(a, r[0], 0, &v2, 0, 0); /* both read version 2 */
    tu_assert_converged(a, r[0]);
    sync_pair_as(a, r[1], 0, &v1, 0, 2); /* r[1] reads version 1 only */
    tu_assert_converged(a, r[1]);
    sync_pair_as(r[1], r[2], 0, &back, 2, 0); /* from such a peer */
    tu_assert_converged(r[1], r[2]);
    /* 600 changes: version 1 about 3,000 bytes more */
    ck_assert_msg(v2 + 600 * 3 < v1, "version 2 %zu bytes, 1 %zu", v2, v1);
    ck_assert_msg(v2 + 600 * 3 < back, "version 2 %zu bytes, back %zu", v2,
                  back);
    close_three(r, dirs);
}
END_TEST

/* A peer that did not announce packed version 2 (plain_changes 2)
 * refuses a PACKED message that holds it: x's first PACKED to y has
 * its version byte turned to 02 on the way. */
START_TEST(test_packed_version2_refused_unannounced)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *sx, *sy;
    const unsigned char *msg;
    size_t len;
    int tampered = 0;

    tu_put_numbered(a, "c", "d", 3, 50, "x");
    ck_assert_int_eq(crdtnet_session_new(&sx, a, &o), CRDT_OK);
    o.plain_changes = 2;
    ck_assert_int_eq(crdtnet_session_new(&sy, b, &o), CRDT_OK);
    for (int round = 0; round < 1000 && !tampered; round++) {
        int moved = 0;
        while (!tampered &&
               crdtnet_session_next_out(sx, &msg, &len) == CRDT_OK) {
            unsigned char *copy = malloc(len);
            memcpy(copy, msg, len);
            /* [13, 7, bin]: 93 0d 07 c4/c5/c6 <len> packed */
            if (len > 8 && copy[0] == 0x93 && copy[1] == 0x0d) {
                size_t at = copy[3] == 0xc4 ? 5 : copy[3] == 0xc5 ? 6 : 8;
                ck_assert_uint_eq(copy[at], 1); /* y reads version 1 */
                copy[at] = 2;
                ck_assert_int_eq(crdtnet_session_feed(sy, copy, len),
                                 CRDT_EPROTO);
                ck_assert_str_eq(crdtnet_session_report(sy)->reason,
                                 "malformed PACKED");
                tampered = 1;
            } else {
                crdtnet_session_feed(sy, copy, len);
            }
            free(copy);
            moved = 1;
        }
        while (!tampered &&
               crdtnet_session_next_out(sy, &msg, &len) == CRDT_OK) {
            unsigned char *copy = malloc(len);
            memcpy(copy, msg, len);
            crdtnet_session_feed(sx, copy, len);
            free(copy);
            moved = 1;
        }
        if (!moved)
            break;
    }
    ck_assert(tampered);
    crdtnet_session_free(sx);
    crdtnet_session_free(sy);
}
END_TEST

/* To a peer that reads PACKED a message counts a change at its ops'
 * size: one-op changes go in a few messages (a merge txn each), not one
 * per batch_bytes of their plain form; an older peer still gets them
 * batch_bytes at a time. */
START_TEST(test_packed_batches_count_ops_not_headers)
{
    char dirs[2][256];
    unsigned char space[16];
    crdt_replica *r[2];
    size_t bytes, msgs[2];
    tu_batch x;

    tu_put_numbered(a, "c", "d", 3, 300, "x");
    /* b holds them all signed (a's log keeps only its last one signed,
     * and a message never ends a run on an unsigned change) */
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_OK);
    tu_batch_free(&x);
    crdt_replica_space_id(b, space);
    for (int i = 0; i < 2; i++) {
        r[i] = tu_create(dirs[i], sizeof dirs[i], space);
        ck_assert_int_eq(epoch_attach(r[i]), CRDT_OK);
        sync_pair_as(b, r[i], 8192, &bytes, 0, i); /* r[1] reads plain */
        msgs[i] = x_msgs;
        tu_assert_converged(b, r[i]);
    }
    /* plain: 300 changes of ~170 bytes in messages of 8 KiB (7+); packed:
     * 300 x (ops + 8) bytes, about 2 */
    ck_assert_msg(msgs[0] + 4 < msgs[1], "packed %zu messages, plain %zu",
                  msgs[0], msgs[1]);
    for (int i = 0; i < 2; i++) {
        crdt_replica_close(r[i]);
        test_rmtree(dirs[i]);
    }
}
END_TEST

/* b's map must grow to take a's changes while b's session still holds
 * its own export open (messages go one at a time each way). Growing
 * waits until no txn of the process is open, so b's merge waited for
 * its own export's read txn, forever. Now that merge fails as busy
 * (retry soon), nothing half-written, and the next sync converges. */
START_TEST(test_merge_that_must_grow_while_exporting_is_busy_not_stuck)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    crdt_open_options oo = CRDT_OPEN_OPTIONS_INIT;
    crdtnet_session *sa, *sb;
    static char big[2048];
    char sub[300];
    crdtnet_report ra, rb;
    int ea, eb, moved = 1;

    memset(big, 'x', sizeof big);
    for (int k = 0; k < 2; k++) {
        crdt_replica *r = k ? b : a;
        for (int t = 0; t < 10; t++) {
            crdt_value v = crdt_value_str(big, sizeof big);
            crdt_txn *tx;
            ck_assert_int_eq(crdt_txn_begin(&tx, r), CRDT_OK);
            for (int i = 0; i < 200; i++) {
                char doc[32];
                snprintf(doc, sizeof doc, "%c%d-%d", "ab"[k], t, i);
                ck_assert_int_eq(crdt_txn_put(tx, "c", doc, "x", &v),
                                 CRDT_OK);
            }
            ck_assert_int_eq(crdt_txn_commit(tx, NULL), CRDT_OK);
        }
    }
    /* b again, its map just the size of what it holds */
    crdt_replica_close(b);
    snprintf(sub, sizeof sub, "%s/r", db);
    oo.map_size = 1; /* LMDB takes the data's size */
    ck_assert_int_eq(crdt_replica_open(&b, sub, &oo), CRDT_OK);
    ck_assert_int_eq(epoch_attach(b), CRDT_OK);

    o.batch_bytes = 16384; /* one change (400 KB) a message */
    ck_assert_int_eq(crdtnet_session_new(&sa, a, &o), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sb, b, &o), CRDT_OK);
    for (int round = 0; moved && round < 10000; round++) {
        moved = tu_pump_one(sb, sa); /* b's export opens first */
        moved |= tu_pump_one(sa, sb);
    }
    ck_assert_int_eq(crdtnet_session_error(sb), CRDT_EBUSY);
    ck_assert_uint_eq(crdtnet_session_report(sb)->busy_retry_ms, 1000);
    crdtnet_session_free(sa);
    crdtnet_session_free(sb);

    run(&ra, &rb, &ea, &eb, 0); /* the retry: b's export is not open */
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    tu_assert_converged(a, b);
}
END_TEST

/* @p r's version vector entry for @p of's actor. */
static uint64_t
vv_of(crdt_replica *r, crdt_replica *of)
{
    crdt_actor who = crdt_replica_actor(of);
    crdt_read *rd;
    crdt_vv *vv = NULL;
    uint64_t seq;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&vv, rd), CRDT_OK);
    crdt_read_end(rd);
    seq = crdt_vv_get(vv, &who);
    crdt_vv_free(vv);
    return seq;
}

/* A giver whose epoch changes between choosing its role and opening the
 * snapshot (another session reset it): the log sent with the snapshot is
 * the log beyond the base of the snapshot's epoch. b folded its own
 * changes into a fork epoch that loses to a's; b becomes giver for c
 * (behind), then resets into a's epoch, where b's changes are not folded
 * but held in its log and its state. c must get them as changes, not
 * only as their effects in the state. */
START_TEST(test_giver_reset_meanwhile_sends_the_log_of_the_new_epoch)
{
    char dc[256];
    unsigned char space[16];
    crdt_replica *c;
    crdtnet_session *sb, *sc;
    char buf[64];

    tu_put_numbered(b, "c", "b", 0, 3, "x");
    tu_put_numbered(a, "c", "a", 0, 5, "x");
    tu_migrate(b, NULL, NULL); /* folds b's 3 ops */
    tu_migrate(a, NULL, NULL); /* folds a's 5 ops: the canonical fork */
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);

    ck_assert_int_eq(crdtnet_session_new(&sb, b, NULL), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sc, c, NULL), CRDT_OK);
    tu_pump(sb, sc); /* b's HELLO */
    tu_pump(sc, sb); /* c's HELLO: b, ahead, becomes giver */
    /* meanwhile b syncs with a, loses the fork and resets into a's
     * epoch: its own changes come back into its log */
    {
        tu_sync_result r = tu_sessions_run(a, b, NULL);
        ck_assert_int_eq(r.ex, 0);
        ck_assert_int_eq(r.ey, 0);
        ck_assert_int_eq(r.ry.snapshot_received, 1);
    }
    ck_assert_uint_eq(vv_of(b, b), 3);
    for (int round = 0; round < 1000; round++)
        if (!tu_pump(sb, sc) + !tu_pump(sc, sb) == 2)
            break;
    ck_assert_int_eq(crdtnet_session_error(sb), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_error(sc), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_report(sc)->snapshot_received, 1);
    crdtnet_session_free(sb);
    crdtnet_session_free(sc);

    /* c holds b's changes, not only their effects */
    tu_field_str(buf, sizeof buf, c, "c", "b2", "x");
    ck_assert_str_eq(buf, "2");
    ck_assert_uint_eq(vv_of(c, b), 3);
    tu_assert_converged(b, c);
    /* and a replica that learns them from c agrees with a and b */
    {
        tu_sync_result r = tu_sessions_run(c, a, NULL);
        ck_assert_int_eq(r.ex, 0);
        ck_assert_int_eq(r.ey, 0);
    }
    tu_assert_converged(a, c);
    tu_assert_converged(a, b);
    crdt_replica_close(c);
    test_rmtree(dc);
}
END_TEST

/* A giver never serves a damaged run: b's stored run of a's changes
 * has its last (signed) change altered, the chain inside the run still
 * whole (nothing after it names its hash), so only the signature check
 * of the run's end catches it, with the hashes the run's read computed
 * (the session does not hash the changes again). c gets none of it. */
START_TEST(test_giver_refuses_a_run_whose_signed_end_was_altered)
{
    char dc[256];
    unsigned char space[16];
    crdt_replica *c;
    tu_batch sent;
    tu_sync_result r;

    tu_put_numbered(a, "c", "a", 0, 8, "x");
    sent = tu_export_all(a);
    ck_assert_uint_eq(sent.n, 8);
    ck_assert_int_eq(crdt_merge(NULL, b, sent.v, sent.n), CRDT_OK);
    tu_change_alter_op(&sent.v[7]);
    tu_log_put_run(b, sent.v, sent.n);
    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    r = tu_sessions_run(c, b, NULL);
    ck_assert_msg(r.ey == CRDT_ECORRUPT, "giver's error %d (%s), taker's %d",
                  r.ey, r.ry.reason, r.ex);
    ck_assert_uint_eq(vv_of(c, a), 0);
    crdt_replica_close(c);
    test_rmtree(dc);
    tu_batch_free(&sent);
}
END_TEST

/* A run of a's changes stored unsigned but for its last one (format 2)
 * is split by an epoch: b folds and archives a:1..2, a:3 (signed) stays
 * in its log. That epoch then loses a fork to one past a custom
 * migration: b is rejected, its log beyond the winner's heads goes to
 * the quarantine, and the losing fork's archived changes come back.
 * They must be judged with the log (a:3 no longer proves a:2): the reset
 * used to fail with CRDT_EAUTH on every try. */
START_TEST(test_rejected_fork_keeps_an_archived_run_whole)
{
    char dc[256], dd[256];
    unsigned char space[16];
    crdt_replica *c, *d;
    crdtnet_report ra, rb;
    epoch_builder *bl;
    size_t bytes, n;
    uint64_t q = 0;
    int ea, eb;

    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    d = tu_create(dd, sizeof dd, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    ck_assert_int_eq(epoch_attach(d), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d1", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d2", "x", 2), CRDT_OK);
    sync_pair(a, d, 0, &bytes);                /* d holds a:1..2 */
    ck_assert_int_eq(tu_put_int(a, "c", "d3", "x", 3), CRDT_OK);
    sync_pair(a, b, 0, &bytes);                /* one message: one sig */
    ck_assert_uint_eq(signed_in_log(b, &n), 1);
    ck_assert_uint_eq(n, 3);
    tu_migrate(d, NULL, NULL);                 /* folds a:2, not a:3 */
    sync_pair(d, b, 0, &bytes);                /* b archives a:1..2 */
    /* c's fork wins: a larger base total */
    tu_put_numbered(c, "c", "e", 0, 5, "x");
    ck_assert_int_eq(epoch_builder_new(&bl, c), CRDT_OK);
    ck_assert_int_eq(epoch_builder_set_custom(bl, "mark", "c", 2, mark, NULL),
                     CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
    epoch_builder_free(bl);
    {
        crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
        tu_sync_result res = tu_sessions_run(c, b, &o);
        ra = res.rx;
        rb = res.ry;
        ea = res.ex;
        eb = res.ey;
    }
    ck_assert_int_eq(ea, 0);
    ck_assert_int_eq(eb, 0);
    ck_assert_int_eq(rb.snapshot_received, 1);
    ck_assert_int_eq(rb.rejected, 1);
    /* a:1..3 are beyond the winner's heads: kept, never lost */
    ck_assert_int_eq(epoch_quarantine_count(&q, b), CRDT_OK);
    ck_assert_uint_eq(q, 3);
    tu_assert_converged(c, b);
    (void)ra;
    crdt_replica_close(c);
    crdt_replica_close(d);
    test_rmtree(dc);
    test_rmtree(dd);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("session");
    TCase *tc = tcase_create("sync");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_same_epoch_both_ways);
    tcase_add_test(tc, test_behind_is_reset_and_rebased);
    tcase_add_test(tc, test_fork_converges);
    tcase_add_test(tc, test_beyond_policy_is_rejected_and_quarantined);
    tcase_add_test(tc, test_busy_during_migration);
    tcase_add_test(tc, test_garbage_messages_fail_cleanly);
    tcase_add_test(tc, test_changes_of_empty_entries_are_refused_early);
    tcase_add_test(tc, test_old_protocol_is_refused);
    tcase_add_test(tc, test_typing_run_travels_with_few_signatures);
    tcase_add_test(tc, test_stripped_changes_across_header_sizes);
    tcase_add_test(tc, test_packed_changes_and_an_older_peer);
    tcase_add_test(tc, test_packed_version2_and_an_older_peer);
    tcase_add_test(tc, test_packed_version2_refused_unannounced);
    tcase_add_test(tc, test_giver_reset_meanwhile_sends_the_log_of_the_new_epoch);
    tcase_add_test(tc, test_rejected_fork_keeps_an_archived_run_whole);
    tcase_add_test(tc, test_giver_refuses_a_run_whose_signed_end_was_altered);
    tcase_add_test(tc, test_packed_batches_count_ops_not_headers);
    tcase_add_test(tc, test_merge_that_must_grow_while_exporting_is_busy_not_stuck);
    suite_add_tcase(s, tc);
    return s;
}
