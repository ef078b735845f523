/*
 * test_session_edges3.c: two pieces of the sync state machine asked
 * what a session seldom asks them.
 *
 * The heads summary of sync protocol 4 (net/src/summary.c) fed what a
 * session never feeds it: heads blobs of the wrong shape
 * (crdtnet__sum_new() reads the blob a peer or a damaged store may hand
 * over), rounds fed before the summary started or after it ended, a
 * second start, and the peer's heads asked for before they are known.
 * Each must be refused with the documented code and leave the summary
 * as it was (a refused round changes nothing that a later, right call
 * then reads).
 *
 * The transport's idle call (crdtnet__session_idle()) made at every
 * moment of a session, not only while a protocol 4 offer waits for its
 * answer, and on no session: it must change nothing of the outcome.
 *
 * The CUT planner (net/src/cut.c) for takers it must send nothing: a new
 * replica, a taker whose epoch is not on the giver's chain, a next epoch
 * that runs a custom migration; and the taker's bound for a giver epoch
 * it holds no record of, or its own. Each is checked against the same
 * scene where the planner does send, so a refusal is the rule at work
 * and not a scene that could never send.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdtnet/session.h"
#include "cut.h"
#include "epoch/epoch.h"
#include "internal.h"
#include "net_internal.h"
#include "summary.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/session_msg.h"
#include "support/support.h"

#define ENTRY CRDTNET__SUM_ENTRY

/* msgpack: bin 8 of @p n bytes, all @p fill */
static void
put_bin(wbuf *w, size_t n, unsigned fill)
{
    put_byte(w, 0xc4);
    put_byte(w, (unsigned)n);
    for (size_t i = 0; i < n; i++)
        put_byte(w, fill);
}

/* one well-formed heads entry: actor (8 x @p a), seq 7, hash */
static void
put_entry(wbuf *w, unsigned a)
{
    put_bin(w, 8, a);
    put_byte(w, 0x07);
    put_bin(w, 32, 0xab);
}

/* crdtnet__sum_new() on @p w must answer @p want and return no summary */
static void
assert_refused(const wbuf *w, int want)
{
    crdtnet__sum *s = (crdtnet__sum *)&s; /* not NULL: must be reset */

    ck_assert_int_eq(crdtnet__sum_new(&s, w->b, w->n), want);
    ck_assert_ptr_null(s);
}

static wbuf w;

/* A heads blob that is not an array, or an array of other than triples */
START_TEST(test_heads_blob_not_triples)
{
    crdtnet__sum *s;

    w.n = 0;
    put_byte(&w, 0x81); /* a map */
    put_byte(&w, 0x01);
    put_byte(&w, 0x02);
    assert_refused(&w, CRDT_EPROTO);

    w.n = 0;
    put_byte(&w, 0x92); /* two items: not actor, seq, hash */
    put_bin(&w, 8, 1);
    put_byte(&w, 0x01);
    assert_refused(&w, CRDT_EPROTO);

    /* bytes announced but none given */
    ck_assert_int_eq(crdtnet__sum_new(&s, NULL, 3), CRDT_EPROTO);
    ck_assert_ptr_null(s);
}
END_TEST

/* A triple whose actor, seq or hash is of the wrong type or size */
START_TEST(test_heads_blob_bad_triple)
{
    w.n = 0; /* actor of 7 bytes */
    put_byte(&w, 0x93);
    put_bin(&w, 7, 1);
    put_byte(&w, 0x01);
    put_bin(&w, 32, 2);
    assert_refused(&w, CRDT_EPROTO);

    w.n = 0; /* seq is a string */
    put_byte(&w, 0x93);
    put_bin(&w, 8, 1);
    put_byte(&w, 0xa1);
    put_byte(&w, 'x');
    put_bin(&w, 32, 2);
    assert_refused(&w, CRDT_EPROTO);

    w.n = 0; /* seq is negative */
    put_byte(&w, 0x93);
    put_bin(&w, 8, 1);
    put_byte(&w, 0xff);
    put_bin(&w, 32, 2);
    assert_refused(&w, CRDT_EPROTO);

    w.n = 0; /* hash of 31 bytes, after a good first triple */
    put_byte(&w, 0x96);
    put_entry(&w, 1);
    put_bin(&w, 8, 2);
    put_byte(&w, 0x01);
    put_bin(&w, 31, 2);
    assert_refused(&w, CRDT_EPROTO);
}
END_TEST

/* Bytes after the array, and an array announcing more than the limit */
START_TEST(test_heads_blob_trailing_or_too_many)
{
    w.n = 0;
    put_byte(&w, 0x93);
    put_entry(&w, 1);
    put_byte(&w, 0xc0); /* one nil too many */
    assert_refused(&w, CRDT_EPROTO);

    /* an array of 3 * (SUM_MAX + 1) items: refused on the count alone,
     * before any item is read (the reader wants a byte per item, so the
     * items are there, as nils) */
    {
        uint32_t n = 3u * (CRDTNET__SUM_MAX + 1);
        unsigned char *big = calloc(5 + (size_t)n, 1);
        crdtnet__sum *s = NULL;

        ck_assert_ptr_nonnull(big);
        big[0] = 0xdd;
        big[1] = (n >> 24) & 0xff;
        big[2] = (n >> 16) & 0xff;
        big[3] = (n >> 8) & 0xff;
        big[4] = n & 0xff;
        memset(big + 5, 0xc0, n);
        ck_assert_int_eq(crdtnet__sum_new(&s, big, 5 + (size_t)n),
                         CRDT_ELIMIT);
        ck_assert_ptr_null(s);
        free(big);
    }

    /* two entries of one actor: out of order */
    w.n = 0;
    put_byte(&w, 0x96);
    put_entry(&w, 1);
    put_entry(&w, 1);
    assert_refused(&w, CRDT_EPROTO);
}
END_TEST

/* A summary of @p n entries of actors 1..n, from a blob */
static crdtnet__sum *
sum_of_actors(unsigned n)
{
    crdtnet__sum *s;

    w.n = 0;
    put_byte(&w, 0x90 + 3 * n);
    for (unsigned i = 1; i <= n; i++)
        put_entry(&w, i);
    ck_assert_int_eq(crdtnet__sum_new(&s, w.b, w.n), CRDT_OK);
    return s;
}

/* Before start: no round is open, the peer's heads are not known */
START_TEST(test_summary_asked_before_start)
{
    crdtnet__sum *s = sum_of_actors(2);
    crdt_actor one, nine;
    unsigned char hash[32], none[16] = { 0 }, *heads = NULL;
    uint64_t seq = 99;
    size_t len = 0;
    crdt_vv *vv = NULL;

    memset(one.b, 1, 8);
    memset(nine.b, 9, 8);
    ck_assert_int_eq(crdtnet__sum_done(s), 0);
    ck_assert_int_eq(crdtnet__sum_round_feed(s, NULL, 0, none, 0),
                     CRDT_EPROTO);
    ck_assert_uint_eq(crdtnet__sum_rounds(s), 0);
    ck_assert_int_eq(crdtnet__sum_peer_head(s, &one, &seq, hash),
                     CRDT_ENOTFOUND);
    ck_assert_uint_eq(seq, 99);
    ck_assert_uint_eq(crdtnet__sum_peer_seq(s, &one), 0);
    ck_assert_int_eq(crdtnet__sum_peer_vv(s, &vv), CRDT_EINVAL);
    ck_assert_ptr_null(vv);
    ck_assert_int_eq(crdtnet__sum_peer_heads(s, &heads, &len), CRDT_EINVAL);
    ck_assert_ptr_null(heads);
    /* our own heads are known from the start */
    ck_assert_int_eq(crdtnet__sum_own_head(s, &one, &seq, hash), CRDT_OK);
    ck_assert_uint_eq(seq, 7);
    ck_assert_uint_eq(hash[0], 0xab);
    ck_assert_int_eq(crdtnet__sum_own_head(s, &nine, &seq, hash),
                     CRDT_ENOTFOUND);
    ck_assert_uint_eq(crdtnet__sum_own_seq(s, &nine), 0);
    crdtnet__sum_free(s);
}
END_TEST

/* Equal roots end the summary at start: a second start, or a round fed
 * after the end, is refused and the peer's heads stay as they were */
START_TEST(test_summary_fed_after_its_end)
{
    crdtnet__sum *s = sum_of_actors(2), *peer = sum_of_actors(2);
    unsigned char root[CRDTNET__SUM_ROOT], hash[32];
    const unsigned char *e;
    size_t el;
    uint64_t n, seq;
    crdt_actor one, nine;
    crdt_vv *vv;

    memset(one.b, 1, 8);
    memset(nine.b, 9, 8);
    crdtnet__sum_root(peer, root, &n);
    crdtnet__sum_hello_entries(peer, &e, &el);
    ck_assert_uint_eq(el, 2 * ENTRY);
    ck_assert_int_eq(crdtnet__sum_start(s, root, n, e, el), CRDT_OK);
    ck_assert_int_eq(crdtnet__sum_done(s), 1);

    ck_assert_int_eq(crdtnet__sum_start(s, root, n, e, el), CRDT_EPROTO);
    ck_assert_int_eq(crdtnet__sum_round_feed(s, NULL, 0, e, el),
                     CRDT_EPROTO);
    ck_assert_uint_eq(crdtnet__sum_rounds(s), 0);

    /* the peer holds what we hold, and nothing else */
    ck_assert_int_eq(crdtnet__sum_peer_head(s, &one, &seq, hash), CRDT_OK);
    ck_assert_uint_eq(seq, 7);
    ck_assert_int_eq(crdtnet__sum_peer_head(s, &nine, &seq, hash),
                     CRDT_ENOTFOUND);
    ck_assert_uint_eq(crdtnet__sum_peer_seq(s, &nine), 0);
    ck_assert_int_eq(crdtnet__sum_peer_vv(s, &vv), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_count(vv), 2);
    ck_assert_uint_eq(crdt_vv_get(vv, &one), 7);
    crdt_vv_free(vv);
    crdtnet__sum_free(peer);
    crdtnet__sum_free(s);
}
END_TEST


/* ---- the CUT planner ---- */

/* a and b: a fresh attached pair of one space for each cut test */
TU_PAIR_FIXTURE(tu_pair_open)

/* What b, a's taker, tells a: its epoch, vv and heads. */
typedef struct {
    unsigned char epoch[EPOCH_ID_BYTES];
    crdt_vv *vv;
    unsigned char *heads;
    size_t heads_len;
} taker_view;

static taker_view
taker_of(crdt_replica *r)
{
    taker_view t;
    epoch_info e;
    crdt_read *rd;

    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    memcpy(t.epoch, e.id, EPOCH_ID_BYTES);
    epoch_info_clear(&e);
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&t.vv, rd), CRDT_OK);
    crdt_read_end(rd);
    ck_assert_int_eq(crdt_heads_export(&t.heads, &t.heads_len, r), CRDT_OK);
    return t;
}

static void
taker_free(taker_view *t)
{
    crdt_vv_free(t->vv);
    crdt_free(t->heads);
}

/* a custom migration that marks every document */
static int
mark_doc(epoch_doc *doc, const char *coll, const char *id, void *ctx)
{
    crdt_value v = crdt_value_bool(1);

    (void)coll;
    (void)id;
    (void)ctx;
    return epoch_doc_set_register(doc, "marked", &v);
}

/* b takes a's first write; a writes once more (b lacks it) and then
 * compacts, or runs a custom migration when @p custom */
static void
b_lacks_part_of_the_cut(int custom)
{
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "e", "x", 2), CRDT_OK);
    if (!custom) {
        tu_migrate(a, NULL, NULL);
        return;
    }
    {
        epoch_builder *bl;
        ck_assert_int_eq(epoch_builder_new(&bl, a), CRDT_OK);
        ck_assert_int_eq(epoch_builder_set_custom(bl, "mark", "c", 2,
                                                  mark_doc, NULL), CRDT_OK);
        ck_assert_int_eq(epoch_builder_commit(NULL, bl), CRDT_OK);
        epoch_builder_free(bl);
    }
}

/* The taker a compaction left behind gets a plan; a new replica (no vv,
 * or an empty one) and a taker whose epoch is not on a's chain get none */
START_TEST(test_cut_plan_only_for_a_taker_on_our_chain)
{
    taker_view t;
    crdtnet__cut c;
    crdt_vv *empty;
    unsigned char stranger[EPOCH_ID_BYTES];
    crdt_actor actor = crdt_replica_actor(a);

    b_lacks_part_of_the_cut(0);
    t = taker_of(b);
    ck_assert_int_eq(crdtnet__cut_plan(&c, a, t.epoch, t.vv, t.heads,
                                       t.heads_len), CRDT_OK);
    ck_assert_uint_eq(c.archive_epoch, 0);
    ck_assert_uint_eq(crdt_vv_get(c.upto, &actor), 2);
    crdtnet__cut_clear(&c);
    ck_assert_ptr_null(c.upto);
    crdtnet__cut_clear(NULL);

    ck_assert_int_eq(crdtnet__cut_plan(&c, a, t.epoch, NULL, NULL, 0),
                     CRDT_ENOTFOUND);
    ck_assert_ptr_null(c.upto);
    ck_assert_int_eq(crdt_vv_new(&empty), CRDT_OK);
    ck_assert_int_eq(crdtnet__cut_plan(&c, a, t.epoch, empty, NULL, 0),
                     CRDT_ENOTFOUND);
    ck_assert_ptr_null(c.upto);
    crdt_vv_free(empty);
    /* an epoch a never saw: the walk up a's chain ends at genesis */
    memset(stranger, 0x5c, sizeof stranger);
    ck_assert_int_eq(crdtnet__cut_plan(&c, a, stranger, t.vv, t.heads,
                                       t.heads_len), CRDT_ENOTFOUND);
    ck_assert_ptr_null(c.upto);
    taker_free(&t);
}
END_TEST

/* The same taker, but a's next epoch runs a custom migration: its cut
 * cannot be re-derived, so nothing is planned */
START_TEST(test_cut_plan_none_past_a_custom_migration)
{
    taker_view t;
    crdtnet__cut c;

    b_lacks_part_of_the_cut(1);
    t = taker_of(b);
    ck_assert_int_eq(crdtnet__cut_plan(&c, a, t.epoch, t.vv, t.heads,
                                       t.heads_len), CRDT_ENOTFOUND);
    ck_assert_ptr_null(c.upto);
    taker_free(&t);
}
END_TEST

/* The taker's bound: a giver epoch it holds no record of, or its own
 * current epoch, has no child of its epoch: no CUT belongs there. With
 * a's records stored, a's epoch bounds the cut a planned. */
START_TEST(test_cut_bound_needs_a_child_of_our_epoch)
{
    unsigned char stranger[EPOCH_ID_BYTES];
    crdt_vv *vv = (crdt_vv *)&vv;
    epoch_info *all, cur;
    size_t n;
    crdt_actor actor = crdt_replica_actor(a);
    taker_view t;

    b_lacks_part_of_the_cut(0);
    t = taker_of(b);
    memset(stranger, 0x5c, sizeof stranger);
    ck_assert_int_eq(crdtnet__cut_bound(&vv, b, stranger), CRDT_ENOTFOUND);
    ck_assert_ptr_null(vv);
    ck_assert_int_eq(crdtnet__cut_bound(&vv, b, t.epoch), CRDT_ENOTFOUND);
    ck_assert_ptr_null(vv);

    ck_assert_int_eq(epoch_all(&all, &n, a), CRDT_OK);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *rec = all[i].raw;
        size_t len = all[i].raw_len;
        ck_assert_int_eq(epoch_store_records(b, &rec, &len, 1), CRDT_OK);
    }
    epoch_chain_free(all, n);
    ck_assert_int_eq(epoch_current(&cur, a), CRDT_OK);
    ck_assert_int_eq(crdtnet__cut_bound(&vv, b, cur.id), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_get(vv, &actor), 2);
    crdt_vv_free(vv);
    epoch_info_clear(&cur);
    taker_free(&t);
}
END_TEST

/* ---- idle at every moment ---- */

/* One message at a time each way, idle called on both sides before
 * each, until neither has anything to send (bounded); then once more on
 * the finished sessions. */
static void
run_idle_everywhere(crdtnet_session *sx, crdtnet_session *sy)
{
    int round;

    for (round = 0; round < 1000; round++) {
        int moved;
        crdtnet__session_idle(sx);
        crdtnet__session_idle(sy);
        moved = tu_pump_one(sx, sy);
        crdtnet__session_idle(sx);
        crdtnet__session_idle(sy);
        moved |= tu_pump_one(sy, sx);
        if (!moved)
            break;
    }
    ck_assert_int_lt(round, 1000);
    crdtnet__session_idle(sx);
    crdtnet__session_idle(sy);
}

/* Sessions of protocol 4 with each other, and with a peer of version 3,
 * idle at every step: both sides end in sync with one change each, as
 * without the calls. A session that failed, and no session, are left
 * alone too. */
START_TEST(test_idle_at_every_moment_changes_nothing)
{
    crdtnet_session_options o4 = CRDTNET_SESSION_OPTIONS_INIT, o3 = o4;
    crdtnet_session *sx, *sy;

    crdtnet__session_idle(NULL);
    o3.sync_proto = 3;
    for (int v3 = 0; v3 <= 1; v3++) {
        const crdtnet_session_options *oy = v3 ? &o3 : &o4;
        ck_assert_int_eq(tu_put_int(a, "c", "x", "a", 10 + v3), CRDT_OK);
        ck_assert_int_eq(tu_put_int(b, "c", "x", "b", 20 + v3), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_new(&sx, a, &o4), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_new(&sy, b, oy), CRDT_OK);
        run_idle_everywhere(sx, sy);
        ck_assert_int_eq(crdtnet_session_error(sx), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_error(sy), CRDT_OK);
        ck_assert(crdtnet_session_finished(sx));
        ck_assert(crdtnet_session_finished(sy));
        ck_assert_uint_eq(crdtnet_session_report(sx)->sync_proto,
                          v3 ? 3 : 4);
        ck_assert_uint_eq(crdtnet_session_report(sx)->changes_received, 1);
        ck_assert_uint_eq(crdtnet_session_report(sy)->changes_received, 1);
        ck_assert(crdtnet_session_report(sx)->in_sync);
        ck_assert(crdtnet_session_report(sy)->in_sync);
        tu_assert_converged(a, b);
        crdtnet_session_free(sx);
        crdtnet_session_free(sy);
    }

    /* a session of protocol 4 whose offer went out and that then failed
     * on a message that is no msgpack */
    {
        char h0[65], h1[65];
        const unsigned char *msg;
        size_t len;
        tu_hash(h0, a);
        ck_assert_int_eq(crdtnet_session_new(&sx, a, &o4), CRDT_OK);
        ck_assert_int_eq(crdtnet_session_next_out(sx, &msg, &len), CRDT_OK);
        ck_assert_uint_eq(len, 0); /* the offer */
        ck_assert_int_ne(crdtnet_session_feed(sx, MSG(0xc1), 1), CRDT_OK);
        crdtnet__session_idle(sx);
        ck_assert_int_ne(crdtnet_session_error(sx), CRDT_OK);
        tu_hash(h1, a);
        ck_assert_str_eq(h0, h1);
        crdtnet_session_free(sx);
    }
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("session_edges3");
    TCase *tc = tcase_create("summary");

    tcase_add_test(tc, test_heads_blob_not_triples);
    tcase_add_test(tc, test_heads_blob_bad_triple);
    tcase_add_test(tc, test_heads_blob_trailing_or_too_many);
    tcase_add_test(tc, test_summary_asked_before_start);
    tcase_add_test(tc, test_summary_fed_after_its_end);
    suite_add_tcase(s, tc);
    tc = tcase_create("replicas");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_cut_plan_only_for_a_taker_on_our_chain);
    tcase_add_test(tc, test_cut_plan_none_past_a_custom_migration);
    tcase_add_test(tc, test_cut_bound_needs_a_child_of_our_epoch);
    tcase_add_test(tc, test_idle_at_every_moment_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}
