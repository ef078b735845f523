/*
 * test_session_edges2.c: more of the sync state machine's edges. Messages
 * that come where they do not belong (a snapshot to a side that takes
 * none, a CUT or a packed log after the snapshot began or ended, a CUT
 * to the loser of an epoch fork), the FIN verdict judged on a taker's
 * HELLO heads that say nothing conclusive, and a giver whose archive
 * cannot supply the cut a taker lacks (a record missing, damaged or of
 * another chain, a taker whose heads do not match its vv): it sends no
 * CUT, and the taker adopts the epoch on its signature as before. Each
 * case ends with the answer docs/protocol.md gives.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "internal.h"
#include "support/epoch_util.h"
#include "support/replica_util.h"
#include "support/session_msg.h"
#include "support/support.h"

/* a and b: a fresh attached pair of one space for each test */
TU_PAIR_FIXTURE(tu_pair_open)

/* ---- messages rewritten ---- */

/* bin 8 holding the @p n bytes at @p p */
static void
put_bin(wbuf *w, const void *p, size_t n)
{
    ck_assert_uint_lt(n, 256);
    put_byte(w, 0xc4);
    put_byte(w, (unsigned)n);
    put(w, p, n);
}

/* Message @p m with its element @p k replaced by @p raw (a whole msgpack
 * value); every other element copied as it is. */
static size_t
rewrite(unsigned char *out, size_t cap, const unsigned char *m, size_t len,
        uint32_t k, const unsigned char *raw, size_t raw_len)
{
    crdt__mp mp = { m, m + len };
    uint32_t n;
    size_t o = 0;

    ck_assert_int_eq(crdt__mp_array(&mp, &n), 0);
    ck_assert_uint_lt(k, n);
    ck_assert_uint_lt(n, 16);
    out[o++] = (unsigned char)(0x90 | n);
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *p = mp.p;
        const unsigned char *src = p;
        size_t l;
        ck_assert_int_eq(crdt__mp_skip(&mp), 0);
        l = (size_t)(mp.p - p);
        if (i == k) {
            src = raw;
            l = raw_len;
        }
        ck_assert_uint_le(o + l, cap);
        memcpy(out + o, src, l);
        o += l;
    }
    return o;
}

/* The bin element @p k of message @p m: its bytes and length. */
static const unsigned char *
field_bin(const unsigned char *m, size_t len, uint32_t k, uint32_t *bl)
{
    crdt__mp mp = { m, m + len };
    const unsigned char *p;
    uint32_t n;

    ck_assert_int_eq(crdt__mp_array(&mp, &n), 0);
    ck_assert_uint_lt(k, n);
    for (uint32_t i = 0; i < k; i++)
        ck_assert_int_eq(crdt__mp_skip(&mp), 0);
    ck_assert_int_eq(crdt__mp_bin(&mp, &p, bl), 0);
    return p;
}

/* ---- two sessions wired in memory, some messages edited ---- */

enum { E_WHOLE, E_BEFORE, E_FIELD, E_HEADS_PLUS };

/* The @p nth message of @p type that a (@p from 0), b (1) or either (2)
 * sends: replaced by @p raw (E_WHOLE), preceded by it (E_BEFORE), or
 * with its element @p k replaced by it (E_FIELD); E_HEADS_PLUS: the
 * heads of a HELLO of version 3 with one more head after them. */
typedef struct {
    int from, type, nth, mode;
    const unsigned char *raw;
    size_t raw_len;
    uint32_t k;
} edit;

typedef struct {
    int hit[2];            /* each edit was made */
    int rc[2];             /* what the receiver answered it */
    int ea, eb;            /* each side's error at the end */
    crdtnet_report ra, rb; /* each side's report */
} run_result;

static unsigned char edited[CRDTNET_SESSION_MSG_MAX];

/* The heads blob of a HELLO of version 3 (element 7) with one head of
 * an actor nobody holds after the others. */
static size_t
heads_plus_one(unsigned char *out, size_t cap, const unsigned char *m,
               size_t len)
{
    static const unsigned char extra[8] = "XXXXXXXX";
    unsigned char zero[32] = { 0 };
    const unsigned char *h;
    uint32_t hl;
    wbuf *w = malloc(sizeof *w);
    size_t o;

    ck_assert_ptr_nonnull(w);
    h = field_bin(m, len, 7, &hl);
    /* a fixarray of 3 items per head: room for one more */
    ck_assert_uint_ge(hl, 1);
    ck_assert_uint_eq(h[0] & 0xf0, 0x90);
    ck_assert_uint_le((h[0] & 0x0f) + 3, 15);
    w->n = 0;
    put_byte(w, 0xc5); /* bin 16 */
    put_byte(w, 0);
    put_byte(w, 0);
    put_byte(w, (unsigned)(0x90 | ((h[0] & 0x0f) + 3)));
    put(w, h + 1, hl - 1);
    put_bin(w, extra, 8);
    put_byte(w, 0x01);
    put_bin(w, zero, 32);
    w->b[1] = (unsigned char)((w->n - 3) >> 8);
    w->b[2] = (unsigned char)(w->n - 3);
    o = rewrite(out, cap, m, len, 7, w->b, w->n);
    free(w);
    return o;
}

static size_t
apply_edit(const edit *e, const unsigned char *msg, size_t len)
{
    switch (e->mode) {
    case E_FIELD:
        return rewrite(edited, sizeof edited, msg, len, e->k, e->raw,
                       e->raw_len);
    case E_HEADS_PLUS:
        return heads_plus_one(edited, sizeof edited, msg, len);
    default:
        memcpy(edited, e->raw, e->raw_len);
        return e->raw_len;
    }
}

/* Run a session on a (@p oa) and on b (@p ob) to their end, making the
 * @p n_edits edits of @p edits on the way. */
static run_result
run_edited(const crdtnet_session_options *oa,
           const crdtnet_session_options *ob, const edit *edits,
           int n_edits)
{
    crdtnet_session *s[2];
    run_result res;
    int seen[2] = { 0, 0 };

    memset(&res, 0, sizeof res);
    ck_assert_int_eq(crdtnet_session_new(&s[0], a, oa), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&s[1], b, ob), CRDT_OK);
    for (int round = 0; round < 10000; round++) {
        int moved = 0;
        for (int d = 0; d < 2; d++) {
            const unsigned char *msg;
            size_t len;
            while (crdtnet_session_next_out(s[d], &msg, &len) == CRDT_OK) {
                unsigned char *copy = malloc(len + 1);
                int done = 0;
                ck_assert_ptr_nonnull(copy);
                memcpy(copy, msg, len);
                moved = 1;
                for (int i = 0; i < n_edits && !done; i++) {
                    const edit *e = &edits[i];
                    if (res.hit[i] || (e->from != 2 && e->from != d) ||
                        type_of(copy, len) != e->type || seen[i]++ != e->nth)
                        continue;
                    res.hit[i] = done = 1;
                    res.rc[i] =
                        crdtnet_session_feed(s[!d], edited,
                                             apply_edit(e, copy, len));
                    if (e->mode == E_BEFORE && res.rc[i] == CRDT_OK)
                        res.rc[i] = crdtnet_session_feed(s[!d], copy, len);
                }
                if (!done)
                    (void)crdtnet_session_feed(s[!d], copy, len);
                free(copy);
            }
        }
        if (!moved)
            break;
    }
    for (int d = 0; d < 2; d++)
        ck_assert_msg(crdtnet_session_finished(s[d]) ||
                          crdtnet_session_error(s[d]) != CRDT_OK,
                      "%c neither finished nor failed", "ab"[d]);
    res.ea = crdtnet_session_error(s[0]);
    res.eb = crdtnet_session_error(s[1]);
    res.ra = *crdtnet_session_report(s[0]);
    res.rb = *crdtnet_session_report(s[1]);
    crdtnet_session_free(s[0]);
    crdtnet_session_free(s[1]);
    return res;
}

/* The receiver of the one edit (b when a's message was edited) ended
 * with @p rc and @p why; with @p h0, its replica is unchanged. */
static void
assert_refused(const run_result *r, int to_b, int rc, const char *why,
               const char *h0)
{
    const crdtnet_report *rep = to_b ? &r->rb : &r->ra;

    ck_assert_msg(r->hit[0], "the message to edit never went");
    ck_assert_msg(r->rc[0] == rc, "answered %d (%s), not %d", r->rc[0],
                  rep->reason, rc);
    ck_assert_int_eq(to_b ? r->eb : r->ea, rc);
    ck_assert_str_eq(rep->reason, why);
    if (h0 != NULL) {
        char h1[65];
        tu_hash(h1, to_b ? b : a);
        ck_assert_str_eq(h0, h1);
    }
}

static crdtnet_session_options
v3(void)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    o.sync_proto = 3;
    return o;
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

/* a writes; b takes it all; a compacts: b is a's taker, lacking nothing
 * of the cut */
static void
b_behind(void)
{
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "e", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    tu_migrate(a, NULL, NULL);
}

/* ---- messages where they do not belong ---- */

/* A snapshot's message to a side in the same epoch, which takes none */
START_TEST(test_snapshot_to_the_same_epoch)
{
    crdtnet_session_options o = v3();
    edit e = { 1, T_DONE, 0, E_BEFORE, MSG(0x91, 0x06), 2, 0 };
    run_result r;
    char h0[65];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    tu_hash(h0, a);
    r = run_edited(&o, &o, &e, 1);
    assert_refused(&r, 0, CRDT_EPROTO, "unexpected snapshot", h0);
    ck_assert_int_eq(r.eb, CRDT_EPROTO);
    ck_assert_str_eq(r.rb.reason, "peer: unexpected snapshot");
}
END_TEST

/* A PACKED CHANGES with nothing packed in it */
START_TEST(test_empty_packed_changes)
{
    crdtnet_session_options o = v3();
    edit e = { 1, T_DONE, 0, E_BEFORE,
               MSG(0x93, 0x0d, 0x07, 0xc4, 0x00), 5, 0 };
    run_result r;
    char h0[65];

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    tu_hash(h0, a);
    r = run_edited(&o, &o, &e, 1);
    assert_refused(&r, 0, CRDT_EPROTO, "malformed PACKED", h0);
}
END_TEST

/* A CUT once the snapshot began (b stays at its epoch), or once it was
 * taken; a packed SNAP_LOG once the snapshot was taken */
START_TEST(test_cut_and_log_after_the_snapshot_began)
{
    crdtnet_session_options o = v3();
    edit e = { 0, T_SNAP_END, 0, E_BEFORE, MSG(0x92, 0x0f, 0x90), 3, 0 };
    run_result r;
    char h0[65];

    b_behind();
    tu_hash(h0, b);
    r = run_edited(&o, &o, &e, 1);
    assert_refused(&r, 1, CRDT_EPROTO, "unexpected CUT", h0);
    ck_assert_uint_eq(epoch_number(b), 0);
    /* packed, the same */
    e.raw = MSG(0x93, 0x0d, 0x0f, 0xc4, 0x00);
    e.raw_len = 5;
    r = run_edited(&o, &o, &e, 1);
    assert_refused(&r, 1, CRDT_EPROTO, "unexpected CUT", h0);
    /* after SNAP_END: the snapshot is taken, the CUT refused */
    e.type = T_DONE;
    e.raw = MSG(0x92, 0x0f, 0x90);
    e.raw_len = 3;
    r = run_edited(&o, &o, &e, 1);
    assert_refused(&r, 1, CRDT_EPROTO, "unexpected CUT", NULL);
    ck_assert_int_eq(r.rb.snapshot_received, 1);
    ck_assert_uint_eq(epoch_number(b), 1);
    teardown();
    setup();
    b_behind();
    e.raw = MSG(0x93, 0x0d, 0x0b, 0xc4, 0x00);
    e.raw_len = 5;
    r = run_edited(&o, &o, &e, 1);
    assert_refused(&r, 1, CRDT_EPROTO, "unexpected snapshot", NULL);
    ck_assert_int_eq(r.rb.snapshot_received, 1);
}
END_TEST

/* Two epochs that fork from epoch 0: the loser's next epoch on the
 * winner's chain does not exist, so no CUT belongs to it */
START_TEST(test_cut_to_the_loser_of_an_epoch_fork)
{
    edit e = { 2, T_SNAP_BEGIN, 0, E_BEFORE, MSG(0x92, 0x0f, 0x90), 3, 0 };
    run_result r;
    char ha[65], hb[65];
    int to_b;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "da", "x", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(b, "c", "db", "x", 3), CRDT_OK);
    tu_migrate(a, NULL, NULL);
    tu_migrate(b, NULL, NULL);
    tu_hash(ha, a);
    tu_hash(hb, b);
    r = run_edited(NULL, NULL, &e, 1);
    to_b = strcmp(r.rb.reason, "unexpected CUT") == 0;
    assert_refused(&r, to_b, CRDT_EPROTO, "unexpected CUT", to_b ? hb : ha);
    ck_assert_uint_eq(epoch_number(to_b ? b : a), 1);
    ck_assert_int_eq(to_b ? r.ea : r.eb, CRDT_EPROTO);
}
END_TEST

/* ---- the FIN verdict on a taker's HELLO heads (protocol 3) ---- */

/* b, a's taker, sends HELLO heads edited by @p heads (NULL: as they are)
 * and a FIN whose state hash is not a's: equal vvs, different states.
 * a judges the FIN on b's heads. */
static run_result
fin_other_state(const edit *heads)
{
    static unsigned char other[34];
    crdtnet_session_options o = v3();
    edit e[2];

    memset(other, 0x5a, sizeof other);
    other[0] = 0xc4;
    other[1] = 32;
    e[0] = (edit){ 1, T_FIN, 0, E_FIELD, other, sizeof other, 1 };
    if (heads != NULL)
        e[1] = *heads;
    return run_edited(&o, &o, e, heads != NULL ? 2 : 1);
}

START_TEST(test_fin_divergence_judged_on_the_takers_heads)
{
    run_result r;

    b_behind();
    r = fin_other_state(NULL);
    ck_assert(r.hit[0]);
    ck_assert_int_eq(r.rb.snapshot_received, 1);
    /* every head of a's is one b announced: the verdict holds */
    ck_assert_int_eq(r.ea, CRDT_ECORRUPT);
    ck_assert_str_eq(r.ra.reason,
                     "same ops but different state: replicas diverged");
    ck_assert_int_eq(r.ra.in_sync, 0);
}
END_TEST

/* Heads b's HELLO cannot hold, or one more than a holds: a cannot tell a
 * divergence, so the session ends "not in sync" on a's side, without an
 * error; b, whose FIN was the true one, is in sync. */
START_TEST(test_fin_inconclusive_on_bad_or_more_heads)
{
    static const unsigned char bad0[] = { 0xc4, 0x00 };
    /* 4 items; 3 items in 4 bytes, fewer than one head takes */
    static const unsigned char bad1[] = { 0xc4, 0x05, 0x94, 0, 0, 0, 0 };
    static const unsigned char bad2[] = { 0xc4, 0x04, 0x93, 0, 0, 0 };
    unsigned char bad3[2 + 50], bad4[2 + 50], bad5[2 + 50];
    const struct {
        const unsigned char *p;
        size_t n;
    } bad[] = {
        { bad0, sizeof bad0 }, { bad1, sizeof bad1 }, { bad2, sizeof bad2 },
        { bad3, sizeof bad3 }, { bad4, sizeof bad4 }, { bad5, sizeof bad5 },
    };

    /* 50 bytes, one head's room, whose actor, seq or hash is of the
     * wrong type */
    memset(bad3, 0, sizeof bad3);
    memcpy(bad3, "\xc4\x32\x93\x07", 4);
    memset(bad4, 0, sizeof bad4);
    memcpy(bad4, "\xc4\x32\x93\xc4\x08" "ABCDEFGH" "\xa1x", 15);
    memset(bad5, 0, sizeof bad5);
    memcpy(bad5, "\xc4\x32\x93\xc4\x08" "ABCDEFGH" "\x01\x07", 16);
    for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
        edit h = { 1, T_HELLO, 0, E_FIELD, NULL, 0, 7 };
        run_result r;
        if (i > 0) {
            teardown();
            setup();
        }
        b_behind();
        if (i < sizeof bad / sizeof bad[0]) {
            h.raw = bad[i].p;
            h.raw_len = bad[i].n;
        } else {
            h.mode = E_HEADS_PLUS;
        }
        r = fin_other_state(&h);
        ck_assert(r.hit[0] && r.hit[1]);
        ck_assert_msg(r.ea == 0 && r.eb == 0, "%zu: %s / %s", i,
                      r.ra.reason, r.rb.reason);
        ck_assert_int_eq(r.ra.in_sync, 0);
        ck_assert_int_eq(r.rb.in_sync, 1);
        ck_assert_int_eq(r.rb.snapshot_received, 1);
        tu_assert_converged(a, b);
    }
}
END_TEST

/* ---- a giver whose archive cannot supply the cut ---- */

/* a writes three changes b takes, then two more b misses, and compacts:
 * b lacks seqs 4 and 5 of a's actor of the cut, which a's archive keeps
 * under epoch 0 */
static void
missed_scene(void)
{
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "x", i), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 10), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "m", "late", 3), CRDT_OK);
}

static void
archive_key(unsigned char key[24], const crdt_actor *actor, uint64_t seq)
{
    memset(key, 0, 8); /* epoch 0 */
    memcpy(key + 8, actor->b, CRDT_ACTOR_BYTES);
    for (int i = 0; i < 8; i++)
        key[16 + i] = (unsigned char)(seq >> (56 - 8 * i));
}

/* Put @p v (NULL: delete) as the archived record of epoch 0 of @p actor
 * ending at @p seq, which must be there. */
static void
archive_set(crdt_replica *r, const crdt_actor *actor, uint64_t seq,
            const void *v, size_t vl)
{
    unsigned char key[24];
    const void *old;
    size_t ol;
    crdt_raw *t;

    archive_key(key, actor, seq);
    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_get(t, CRDT_DB_ARCHIVE, key, sizeof key, &old,
                                  &ol),
                     CRDT_OK);
    if (v == NULL)
        ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_ARCHIVE, key, sizeof key),
                         CRDT_OK);
    else
        ck_assert_int_eq(crdt_raw_put(t, CRDT_DB_ARCHIVE, key, sizeof key, v,
                                      vl),
                         CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
}

/* The sync went without a CUT, and b adopted a's epoch 1 on its
 * signature: the rule when the archive cannot supply the cut. */
static void
assert_no_cut(const tu_sync_result *s)
{
    ck_assert_msg(s->ex == 0 && s->ey == 0, "%s / %s", s->rx.reason,
                  s->ry.reason);
    ck_assert_uint_eq(s->ry.cut_changes_received, 0);
    ck_assert_int_eq(s->ry.snapshot_received, 1);
    ck_assert_uint_eq(epoch_number(b), 1);
    tu_assert_converged(a, b);
}

/* The archived run lacks its last change, or its first: no CUT */
START_TEST(test_archive_run_short_or_gapped)
{
    for (int v = 0; v < 2; v++) {
        crdt_actor actor;
        tu_sync_result s;
        if (v > 0) {
            teardown();
            setup();
        }
        actor = crdt_replica_actor(a);
        missed_scene();
        tu_migrate(a, NULL, NULL);
        archive_set(a, &actor, v == 0 ? 5 : 4, NULL, 0);
        s = tu_sessions_run(a, b, NULL);
        assert_no_cut(&s);
    }
}
END_TEST

/* seq 5 archived as the copy of a wrote it: a run that chains from b's
 * head but does not end on the cut's own change */
START_TEST(test_archive_run_ends_on_another_chain)
{
    crdt_actor actor = crdt_replica_actor(a);
    crdt_replica *c;
    char dc[256];
    tu_batch x;
    tu_sync_result s;

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(tu_put_int(a, "c", "d", "x", i), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, a), CRDT_OK);
    ck_assert_int_eq(tu_put_int(a, "c", "d", "x", 10), CRDT_OK);
    crdt_replica_close(a);
    tu_copy_dir(da, dc, sizeof dc);
    a = tu_open_dir(da);
    c = tu_open_dir(dc);
    /* a and its copy each write a seq 5 of their own */
    ck_assert_int_eq(tu_put_int(a, "c", "m", "late", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "m", "late", 4), CRDT_OK);
    tu_migrate(a, NULL, NULL);
    x = tu_export_all(c);
    ck_assert_uint_eq(x.n, 5);
    archive_set(a, &actor, 5, x.v[4].data, x.v[4].len);
    tu_batch_free(&x);
    crdt_replica_close(c);
    test_rmtree(dc);
    s = tu_sessions_run(a, b, NULL);
    assert_no_cut(&s);
}
END_TEST

/* The taker's HELLO heads (protocol 3) do not name its head of a's actor,
 * or name it at a seq its vv does not hold: the run cannot be shown to
 * start on its chain, so no CUT goes */
START_TEST(test_takers_heads_do_not_match_its_vv)
{
    static const unsigned char none[] = { 0xc4, 0x01, 0x90 };
    crdtnet_session_options o = v3();
    unsigned char h[2 + 46];
    crdt_actor actor;
    run_result r;

    for (int v = 0; v < 2; v++) {
        edit e = { 1, T_HELLO, 0, E_FIELD, NULL, 0, 7 };
        if (v > 0) {
            teardown();
            setup();
        }
        actor = crdt_replica_actor(a);
        missed_scene();
        tu_migrate(a, NULL, NULL);
        if (v == 0) {
            e.raw = none;
            e.raw_len = sizeof none;
        } else { /* a's actor at seq 2: b holds 3 */
            memset(h, 0, sizeof h);
            memcpy(h, "\xc4\x2e\x93\xc4\x08", 5);
            memcpy(h + 5, actor.b, 8);
            memcpy(h + 13, "\x02\xc4\x20", 3);
            e.raw = h;
            e.raw_len = sizeof h;
        }
        r = run_edited(&o, &o, &e, 1);
        ck_assert(r.hit[0]);
        ck_assert_msg(r.ea == 0 && r.eb == 0, "%s / %s", r.ra.reason,
                      r.rb.reason);
        ck_assert_uint_eq(r.rb.cut_changes_received, 0);
        ck_assert_int_eq(r.rb.snapshot_received, 1);
        ck_assert_uint_eq(epoch_number(b), 1);
        tu_assert_converged(a, b);
    }
}
END_TEST

/* One change per message: the cut comes in two CUT messages, the bound
 * read once */
START_TEST(test_cut_in_two_messages)
{
    crdtnet_session_options small = CRDTNET_SESSION_OPTIONS_INIT;
    tu_sync_result s;

    small.batch_bytes = 1;
    missed_scene();
    tu_migrate(a, NULL, NULL);
    s = tu_sessions_run2(a, &small, b, NULL);
    ck_assert_msg(s.ex == 0 && s.ey == 0, "%s / %s", s.rx.reason,
                  s.ry.reason);
    ck_assert_uint_eq(s.ry.cut_changes_received, 2);
    ck_assert_uint_eq(epoch_number(b), 1);
    tu_assert_converged(a, b);
}
END_TEST

/* b lacks the tail of a's first actor and all of its second incarnation
 * (two runs, the second from nothing): both go; with the first run's
 * last change gone from the archive, neither */
START_TEST(test_cut_of_two_actors)
{
    for (int v = 0; v < 2; v++) {
        crdt_actor first, second;
        tu_sync_result s;
        if (v > 0) {
            teardown();
            setup();
        }
        first = crdt_replica_actor(a);
        missed_scene();
        ck_assert_int_eq(crdt_replica_new_incarnation(a), CRDT_OK);
        second = crdt_replica_actor(a);
        ck_assert_int_eq(tu_put_int(a, "c", "n", "x", 1), CRDT_OK);
        ck_assert_int_eq(tu_put_int(a, "c", "n", "x", 2), CRDT_OK);
        tu_migrate(a, NULL, NULL);
        if (v == 1) { /* the run that goes first ends short */
            if (memcmp(first.b, second.b, CRDT_ACTOR_BYTES) < 0)
                archive_set(a, &first, 5, NULL, 0);
            else
                archive_set(a, &second, 2, NULL, 0);
            s = tu_sessions_run(a, b, NULL);
            assert_no_cut(&s);
            continue;
        }
        s = tu_sessions_run(a, b, NULL);
        ck_assert_msg(s.ex == 0 && s.ey == 0, "%s / %s", s.rx.reason,
                      s.ry.reason);
        ck_assert_uint_eq(s.ry.cut_changes_received, 4);
        ck_assert_uint_eq(epoch_number(b), 1);
        tu_assert_converged(a, b);
    }
}
END_TEST

/* The last archived change of the run does not decode: no CUT */
START_TEST(test_archive_change_does_not_decode)
{
    static const unsigned char junk[] = { 0x92, 0x01, 0x02 };
    crdt_actor actor = crdt_replica_actor(a);
    tu_sync_result s;

    missed_scene();
    tu_migrate(a, NULL, NULL);
    archive_set(a, &actor, 5, junk, sizeof junk);
    s = tu_sessions_run(a, b, NULL);
    assert_no_cut(&s);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("session_edges2");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_snapshot_to_the_same_epoch);
    tcase_add_test(tc, test_empty_packed_changes);
    tcase_add_test(tc, test_cut_and_log_after_the_snapshot_began);
    tcase_add_test(tc, test_cut_to_the_loser_of_an_epoch_fork);
    tcase_add_test(tc, test_fin_divergence_judged_on_the_takers_heads);
    tcase_add_test(tc, test_fin_inconclusive_on_bad_or_more_heads);
    tcase_add_test(tc, test_archive_run_short_or_gapped);
    tcase_add_test(tc, test_archive_run_ends_on_another_chain);
    tcase_add_test(tc, test_takers_heads_do_not_match_its_vv);
    tcase_add_test(tc, test_cut_in_two_messages);
    tcase_add_test(tc, test_cut_of_two_actors);
    tcase_add_test(tc, test_archive_change_does_not_decode);
    suite_add_tcase(s, tc);
    return s;
}
