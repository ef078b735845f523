/*
 * test_runs.c: compact runs. A local txn's typing and deleting runs are
 * one op each (and converge like the keystrokes they stand for); a run
 * of changes carries one signature (the hash chain proves the rest),
 * and a broken, forged or unsigned-at-the-end run is refused whole;
 * format-1 changes (every change written before format 2) still merge
 * and are served on.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdt/text.h"
#include "support/replica_util.h"
#include "support/support.h"

static char da[256], db[256], dc[256];
static crdt_replica *a, *b, *c;

static void
setup(void)
{
    unsigned char space[16];

    a = tu_create(da, sizeof da, NULL);
    crdt_replica_space_id(a, space);
    b = tu_create(db, sizeof db, space);
    c = tu_create(dc, sizeof dc, space);
}

static void
teardown(void)
{
    crdt_replica_close(a);
    crdt_replica_close(b);
    crdt_replica_close(c);
    test_rmtree(da);
    test_rmtree(db);
    test_rmtree(dc);
}

static void
text_of(char *buf, size_t cap, crdt_replica *r)
{
    crdt_read *rd;
    char *s = NULL;
    size_t n = 0;

    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    if (crdt_read_text(&s, &n, rd, "notes", "n1", "body") != CRDT_OK)
        n = 0;
    ck_assert_uint_lt(n, cap);
    if (n)
        memcpy(buf, s, n);
    buf[n] = 0;
    crdt_text_free(s);
    crdt_read_end(rd);
}

static uint64_t
ops_of(const crdt_bytes *ch)
{
    crdt_change d;

    ck_assert_int_eq(crdt_change_decode(&d, ch->data, ch->len), CRDT_OK);
    return d.n_ops;
}

/* One change per character: @p n commits of "x" at the end. */
static void
type_changes(crdt_replica *r, int n)
{
    for (int i = 0; i < n; i++) {
        crdt_txn *t;
        ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
        ck_assert_int_eq(crdt_txn_text_insert(t, "notes", "n1", "body",
                                              (uint64_t)i, "x", 1), CRDT_OK);
        ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    }
}

/* The signatures of changes [0, upto) of @p x dropped, as a sender
 * does for changes whose successor goes with them. */
static void
strip(tu_batch *x, size_t upto)
{
    for (size_t i = 0; i < upto; i++) {
        size_t nl = crdt_change_strip_sig((unsigned char *)x->v[i].data,
                                          x->v[i].len);
        ck_assert_uint_eq(nl, x->v[i].len - 65);
        x->v[i].len = nl;
    }
}

/* How many changes of @p r's log carry a signature, as stored. */
static size_t
stored_signed(crdt_replica *r, size_t *n_out)
{
    crdt_export *e;
    const unsigned char *p;
    size_t len, n = 0, sig = 0;
    int rc;

    ck_assert_int_eq(crdt_export_begin_as_stored(&e, r, NULL), CRDT_OK);
    while ((rc = crdt_export_next(e, &p, &len)) == CRDT_OK) {
        crdt_change d;
        ck_assert_int_eq(crdt_change_decode(&d, p, len), CRDT_OK);
        n++;
        sig += d.sig != NULL;
    }
    ck_assert_int_eq(rc, CRDT_ENOTFOUND);
    crdt_export_end(e);
    *n_out = n;
    return sig;
}

/* A writer's log of keystroke commits keeps one signature, on its newest
 * change; export signs the others again, so each still merges alone. */
START_TEST(test_local_log_keeps_one_signature)
{
    char ha[65], hb[65], why[256];
    size_t n;
    tu_batch x;

    type_changes(a, 30);
    ck_assert_uint_eq(stored_signed(a, &n), 1);
    ck_assert_uint_eq(n, 30);
    ck_assert_int_eq(crdt_replica_check_records(a, why, sizeof why),
                     CRDT_OK);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 30);
    for (size_t i = 0; i < x.n; i++) { /* one by one, each proven alone */
        crdt_change d;
        ck_assert_int_eq(crdt_change_decode(&d, x.v[i].data, x.v[i].len),
                         CRDT_OK);
        ck_assert_ptr_nonnull(d.sig);
        ck_assert_int_eq(crdt_merge(NULL, b, &x.v[i], 1), CRDT_OK);
    }
    tu_batch_free(&x);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    /* the next commit unsigns the old head */
    type_changes(a, 1);
    ck_assert_uint_eq(stored_signed(a, &n), 1);
    ck_assert_uint_eq(n, 31);
}
END_TEST

START_TEST(test_typing_run_is_one_op)
{
    char ta[2048], tb[2048], ha[65], hb[65];
    crdt_txn *t;
    tu_batch x;

    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int i = 0; i < 1000; i++)
        ck_assert_int_eq(crdt_txn_text_insert(t, "notes", "n1", "body",
                                              (uint64_t)i, i % 2 ? "b" : "a",
                                              1), CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 1);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    /* then in the middle: typing, backspace, delete */
    ck_assert_int_eq(crdt_txn_begin(&t, a), CRDT_OK);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(crdt_txn_text_insert(t, "notes", "n1", "body",
                                              (uint64_t)(10 + i), "é", 2),
                         CRDT_OK);
    for (int i = 0; i < 15; i++) /* backspace over the run and before it */
        ck_assert_int_eq(crdt_txn_text_delete(t, "notes", "n1", "body",
                                              (uint64_t)(29 - i), 1), CRDT_OK);
    for (int i = 0; i < 7; i++) /* delete key at one position */
        ck_assert_int_eq(crdt_txn_text_delete(t, "notes", "n1", "body",
                                              100, 1), CRDT_OK);
    ck_assert_uint_eq(crdt_txn_op_count(t), 3);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);

    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 2);
    ck_assert_uint_eq(ops_of(&x.v[0]), 1);
    ck_assert_uint_eq(ops_of(&x.v[1]), 3);
    /* 1,000 characters: about a byte each plus the header */
    ck_assert_uint_lt(x.v[0].len, 1000 + 300);
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_OK);
    text_of(ta, sizeof ta, a);
    text_of(tb, sizeof tb, b);
    ck_assert_str_eq(ta, tb);
    /* 1,000 + 20 two-byte characters, 15 of those and 7 others gone */
    ck_assert_uint_eq(strlen(ta), 1000 + 40 - 30 - 7);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&x);
}
END_TEST

/* The same edits one op per keystroke (each its own txn) and folded
 * (one txn) leave the same text and the same state records. */
START_TEST(test_folded_and_unfolded_converge)
{
    char t1[512], t2[512];
    crdt_txn *t;
    tu_batch x;

    type_changes(a, 50);
    ck_assert_int_eq(crdt_txn_begin(&t, b), CRDT_OK);
    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(crdt_txn_text_insert(t, "notes", "n1", "body",
                                              (uint64_t)i, "y", 1), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    /* c gets both, in either order: concurrent runs do not interleave */
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_merge(NULL, c, x.v, x.n), CRDT_OK);
    tu_batch_free(&x);
    x = tu_export_all(b);
    ck_assert_int_eq(crdt_merge(NULL, c, x.v, x.n), CRDT_OK);
    ck_assert_int_eq(crdt_merge(NULL, a, x.v, x.n), CRDT_OK);
    tu_batch_free(&x);
    text_of(t1, sizeof t1, a);
    text_of(t2, sizeof t2, c);
    ck_assert_str_eq(t1, t2);
    ck_assert_uint_eq(strlen(t1), 100);
    ck_assert(strspn(t1, "x") == 50 || strspn(t1, "y") == 50);
}
END_TEST

START_TEST(test_run_carries_one_signature)
{
    char ha[65], hb[65], hc[65];
    crdt_merge_report rep;
    tu_batch x, y;

    type_changes(a, 40);
    x = tu_export_all(a);
    ck_assert_uint_eq(x.n, 40);
    strip(&x, 39); /* the last one signs for the run */
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 40);
    tu_hash(ha, a);
    tu_hash(hb, b);
    ck_assert_str_eq(ha, hb);
    /* b keeps them as they came, and serves them on: its log proves each
     * by the chain to the signed one */
    y = tu_export_all(b);
    ck_assert_uint_eq(y.n, 40);
    ck_assert_int_eq(crdt_merge(&rep, c, y.v, y.n), CRDT_OK);
    tu_hash(hc, c);
    ck_assert_str_eq(ha, hc);
    tu_batch_free(&y);
    /* a replayed run is all duplicates */
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, x.n), CRDT_OK);
    ck_assert_uint_eq(rep.duplicates, 40);
    tu_batch_free(&x);
}
END_TEST

/* Nothing of a refused batch is applied: b's state and vv stay empty. */
static void
assert_untouched(crdt_replica *r, const char *hash_before)
{
    char h[65];
    crdt_read *rd;
    crdt_vv *vv;

    tu_hash(h, r);
    ck_assert_str_eq(h, hash_before);
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_vv(&vv, rd), CRDT_OK);
    ck_assert_uint_eq(crdt_vv_count(vv), 0);
    crdt_vv_free(vv);
    crdt_read_end(rd);
}

START_TEST(test_unsigned_end_of_run_is_refused)
{
    char h0[65];
    tu_batch x;

    tu_hash(h0, b);
    type_changes(a, 10);
    x = tu_export_all(a);
    strip(&x, 10); /* nobody signs */
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_EAUTH);
    assert_untouched(b, h0);
    /* an unsigned change alone: its successor is not there */
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, 1), CRDT_EAUTH);
    assert_untouched(b, h0);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_broken_chain_is_refused)
{
    char h0[65];
    tu_batch x;

    tu_hash(h0, b);
    type_changes(a, 6);
    x = tu_export_all(a);
    strip(&x, 5);
    /* change 3 missing: 2 has no successor to vouch for it */
    free((void *)x.v[3].data);
    x.v[3] = x.v[5];
    x.n = 5;
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_EAUTH);
    assert_untouched(b, h0);
    tu_batch_free(&x);
}
END_TEST

START_TEST(test_forged_middle_change_is_refused)
{
    char h0[65];
    tu_batch x;
    unsigned char *p;
    size_t i;

    tu_hash(h0, b);
    type_changes(a, 6);
    x = tu_export_all(a);
    strip(&x, 5);
    /* change 2's character "x" becomes "y": its hash changes, so change
     * 3 no longer chains to it */
    p = (unsigned char *)x.v[2].data;
    for (i = x.v[2].len - 1; i > 0; i--)
        if (p[i - 1] == 0xa1 && p[i] == 'x')
            break;
    ck_assert_uint_gt(i, 0);
    p[i] = 'y';
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_EAUTH);
    assert_untouched(b, h0);
    /* a forged signed end: the whole run falls with it */
    tu_batch_free(&x);
    x = tu_export_all(a);
    strip(&x, 5);
    p = (unsigned char *)x.v[5].data;
    p[x.v[5].len - 1] ^= 0x80;
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_EAUTH);
    assert_untouched(b, h0);
    tu_batch_free(&x);
}
END_TEST

/* @p r holds what @p like holds, and nothing waits in its pending area. */
static void
assert_caught_up(crdt_replica *r, crdt_replica *like)
{
    char h1[65], h2[65];
    crdt_read *rd;
    crdt_stats st;

    tu_hash(h1, like);
    tu_hash(h2, r);
    ck_assert_str_eq(h1, h2);
    ck_assert_int_eq(crdt_read_begin(&rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_stats(&st, rd), CRDT_OK);
    ck_assert_uint_eq(st.pending, 0);
    crdt_read_end(rd);
}

/* A parked unsigned change whose run lost its signed end (displaced
 * from a full pending area) waits: the log never ends on an unsigned
 * change, so everything held can be served on; the run sent again
 * completes it. */
START_TEST(test_parked_run_without_its_end_waits)
{
    char dd[256];
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char space[16], sub[300];
    crdt_replica *d;
    crdt_merge_report rep;
    tu_batch x, y;
    crdt_bytes run[2];

    crdt_replica_space_id(a, space);
    ck_assert_int_eq(test_tmpdir(dd, sizeof dd), 0);
    snprintf((char *)sub, sizeof sub, "%s/r", dd);
    o.create = 1;
    o.space_id = space;
    o.pending_max_actor = 2;
    ck_assert_int_eq(crdt_replica_open(&d, (char *)sub, &o), CRDT_OK);
    type_changes(a, 5);
    x = tu_export_all(a);
    x.v[3].len = crdt_change_strip_sig((unsigned char *)x.v[3].data,
                                       x.v[3].len); /* 4 unsigned, 5 signed */
    ck_assert_uint_gt(x.v[3].len, 0);
    ck_assert_int_eq(crdt_merge(NULL, d, x.v, 1), CRDT_OK); /* seq 1 */
    run[0] = x.v[3];
    run[1] = x.v[4];
    ck_assert_int_eq(crdt_merge(&rep, d, run, 2), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 2);
    /* change 3 (signed here: a copy from a's log) is nearer: 5 makes room */
    {
        tu_batch z = tu_export_all(a);
        ck_assert_int_eq(crdt_merge(&rep, d, &z.v[2], 1), CRDT_OK);
        ck_assert_uint_eq(rep.quarantined_ops, 1);
        /* 2 fills the gap: 3 is applied, 4 has no signed end: it waits */
        ck_assert_int_eq(crdt_merge(&rep, d, &z.v[1], 1), CRDT_OK);
        ck_assert_uint_eq(rep.changes_applied, 2);
        tu_batch_free(&z);
    }
    /* what d holds serves on: its log ends on a signed change */
    y = tu_export_all(d);
    ck_assert_uint_eq(y.n, 3);
    ck_assert_int_eq(crdt_merge(NULL, c, y.v, y.n), CRDT_OK);
    tu_batch_free(&y);
    /* the run again: complete, nothing left parked */
    ck_assert_int_eq(crdt_merge(&rep, d, run, 2), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 2);
    assert_caught_up(d, a);
    tu_batch_free(&x);
    crdt_replica_close(d);
    test_rmtree(dd);
}
END_TEST

/* A reset's replay that meets changes stored without their signature
 * whose run's signed end is not in the log any more (a pass of an
 * earlier reset moved it to the quarantine) parks them until a peer
 * sends the run again; it used to fail the whole reset with CRDT_EAUTH,
 * on every try (simulator seeds 1866 and 1867). */
START_TEST(test_replay_parks_a_run_without_its_end)
{
    unsigned char key[16];
    crdt_actor who = crdt_replica_actor(a);
    crdt_merge_report rep;
    crdt_raw *t;
    tu_batch x;

    type_changes(a, 5);
    x = tu_export_all(a);
    strip(&x, 4); /* 1 to 4 unsigned, 5 signed: one run */
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, 5), CRDT_OK);

    ck_assert_int_eq(crdt_raw_begin(&t, b, 1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_log_split(NULL, t, CRDT_DB_LOG), CRDT_OK);
    memcpy(key, who.b, 8);
    memset(key + 8, 0, 8);
    key[15] = 5;
    ck_assert_int_eq(crdt_raw_del(t, CRDT_DB_LOG, key, sizeof key), CRDT_OK);
    /* a snapshot that folds none of a's changes */
    ck_assert_int_eq(crdt_raw_heads_replace(t, (const unsigned char *)"\x90",
                                            1), CRDT_OK);
    ck_assert_int_eq(crdt_raw_spare_clear(t), CRDT_OK);
    ck_assert_int_eq(crdt_raw_swap_state(t), CRDT_OK);
    memset(&rep, 0, sizeof rep);
    ck_assert_int_eq(crdt_raw_replay_log(&rep, t, 1), CRDT_OK);
    ck_assert_uint_eq(rep.pending, 4);
    ck_assert_uint_eq(rep.changes_applied, 0);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);

    /* the run again: applied whole, nothing left parked */
    ck_assert_int_eq(crdt_merge(&rep, b, x.v, 5), CRDT_OK);
    ck_assert_uint_eq(rep.changes_applied, 5);
    assert_caught_up(b, a);
    tu_batch_free(&x);
}
END_TEST

/* ---- format 1 ---- */

static size_t
put_bin(unsigned char *p, const void *v, size_t n)
{
    p[0] = 0xc4;
    p[1] = (unsigned char)n;
    memcpy(p + 2, v, n);
    return n + 2;
}

/* A format-1 change, byte for byte as every change before format 2:
 * PUT c/d/f = @p val by a fresh key, signed. */
static size_t
v1_change(unsigned char *out, const crdt_change *like, int val, int sign)
{
    unsigned char body[256], pk[32], sk[64], inc[8] = { 1 }, prev[32] = { 0 };
    unsigned char hash[32], msg[16 + 32];
    size_t n = 0, o = 0;
    uint64_t hlc = like->hlc;

    crypto_sign_keypair(pk, sk);
    body[n++] = 0x99;
    body[n++] = 0x01; /* format 1 */
    n += put_bin(body + n, like->space_id, 16);
    n += put_bin(body + n, like->epoch_id, 32);
    n += put_bin(body + n, pk, 32);
    n += put_bin(body + n, inc, 8);
    body[n++] = 0x01; /* seq */
    body[n++] = 0xcf;
    for (int i = 7; i >= 0; i--)
        body[n++] = (unsigned char)(hlc >> (8 * i));
    n += put_bin(body + n, prev, 32);
    body[n++] = 0x91;
    memcpy(body + n, "\x95\x00\xa1" "c" "\xa1" "d" "\xa1" "f", 8);
    n += 8;
    body[n++] = (unsigned char)val;
    crypto_generichash(hash, 32, body, n, NULL, 0);
    memcpy(msg, "strata-change-v1", 16);
    memcpy(msg + 16, hash, 32);
    out[o++] = 0x92;
    out[o++] = 0xc4;
    out[o++] = (unsigned char)n;
    memcpy(out + o, body, n);
    o += n;
    if (!sign) {
        out[o++] = 0xc0;
        return o;
    }
    out[o++] = 0xc4;
    out[o++] = 64;
    crypto_sign_detached(out + o, NULL, msg, sizeof msg, sk);
    return o + 64;
}

START_TEST(test_format1_changes_still_merge_and_serve)
{
    unsigned char v1[512];
    crdt_change like;
    crdt_bytes one;
    char got[64], ha[65], hb[65];
    tu_batch x, y;

    ck_assert_int_eq(tu_put_int(a, "c", "e", "f", 1), CRDT_OK);
    x = tu_export_all(a);
    ck_assert_int_eq(crdt_change_decode(&like, x.v[0].data, x.v[0].len),
                     CRDT_OK);
    ck_assert_uint_eq(like.version, 2);
    one.data = v1;
    one.len = v1_change(v1, &like, 7, 1);
    ck_assert_uint_eq(crdt_change_strip_sig(v1, one.len), 0);
    ck_assert_int_eq(crdt_merge(NULL, b, &one, 1), CRDT_OK);
    tu_field_str(got, sizeof got, b, "c", "d", "f");
    ck_assert_str_eq(got, "7");
    /* b serves it on as it is, with its own changes */
    ck_assert_int_eq(crdt_merge(NULL, b, x.v, x.n), CRDT_OK);
    y = tu_export_all(b);
    ck_assert_uint_eq(y.n, 2);
    ck_assert_int_eq(crdt_merge(NULL, c, y.v, y.n), CRDT_OK);
    tu_hash(hb, b);
    tu_hash(ha, c);
    ck_assert_str_eq(ha, hb);
    tu_batch_free(&y);
    tu_batch_free(&x);
    /* format 1 was always signed: without one it is malformed */
    one.len = v1_change(v1, &like, 8, 0);
    ck_assert_int_eq(crdt_merge(NULL, c, &one, 1), CRDT_EPROTO);
}
END_TEST

/* A format-2 name reference with no op before it is malformed. */
START_TEST(test_dangling_name_reference_is_eproto)
{
    crdt_change d;
    crdt_op_iter it;
    crdt_op op;
    crdt_bytes g;
    tu_batch x;
    const unsigned char *p;
    unsigned char *q;
    size_t i, len;

    ck_assert_int_eq(tu_put_int(a, "c", "d", "f", 1), CRDT_OK);
    x = tu_export_all(a);
    p = x.v[0].data;
    len = x.v[0].len;
    ck_assert(p[0] == 0x92 && p[1] == 0xc4); /* [ bin8 body, sig ] */
    /* the first op's collection "c" (a1 63) becomes nil (c0) */
    for (i = 3; i + 3 < len; i++)
        if (p[i] == 0xa1 && p[i + 1] == 'c' && p[i + 2] == 0xa1 &&
            p[i + 3] == 'd')
            break;
    ck_assert_uint_lt(i + 3, len);
    q = malloc(len);
    memcpy(q, p, i);
    q[i] = 0xc0;
    memcpy(q + i + 1, p + i + 2, len - i - 2);
    q[2] = (unsigned char)(p[2] - 1);
    ck_assert_int_eq(crdt_change_decode(&d, q, len - 1), CRDT_OK);
    crdt_op_iter_init(&it, &d);
    ck_assert_int_eq(crdt_op_iter_next(&op, &it), CRDT_EPROTO);
    g.data = q;
    g.len = len - 1;
    ck_assert_int_ne(crdt_merge(NULL, b, &g, 1), CRDT_OK);
    free(q);
    tu_batch_free(&x);
}
END_TEST

/* The same tests with every merge given an aid (libcrdt's mergeaid.h),
 * whatever its size: the aid's records and proofs must change nothing. */
TU_AID_FIXTURE

Suite *
test_suite(void)
{
    Suite *s = suite_create("runs");
    TCase *tc = tcase_create("runs");
    TCase *aid = tcase_create("runs with an aid");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_typing_run_is_one_op);
    tcase_add_test(tc, test_local_log_keeps_one_signature);
    tcase_add_test(tc, test_folded_and_unfolded_converge);
    tcase_add_test(tc, test_run_carries_one_signature);
    tcase_add_test(tc, test_unsigned_end_of_run_is_refused);
    tcase_add_test(tc, test_broken_chain_is_refused);
    tcase_add_test(tc, test_forged_middle_change_is_refused);
    tcase_add_test(tc, test_parked_run_without_its_end_waits);
    tcase_add_test(tc, test_replay_parks_a_run_without_its_end);
    tcase_add_test(tc, test_format1_changes_still_merge_and_serve);
    tcase_add_test(tc, test_dangling_name_reference_is_eproto);
    suite_add_tcase(s, tc);
    tcase_set_timeout(aid, 60);
    tcase_add_checked_fixture(aid, setup_aid, teardown_aid);
    tcase_add_test(aid, test_typing_run_is_one_op);
    tcase_add_test(aid, test_local_log_keeps_one_signature);
    tcase_add_test(aid, test_folded_and_unfolded_converge);
    tcase_add_test(aid, test_run_carries_one_signature);
    tcase_add_test(aid, test_unsigned_end_of_run_is_refused);
    tcase_add_test(aid, test_broken_chain_is_refused);
    tcase_add_test(aid, test_forged_middle_change_is_refused);
    tcase_add_test(aid, test_parked_run_without_its_end_waits);
    tcase_add_test(aid, test_format1_changes_still_merge_and_serve);
    tcase_add_test(aid, test_dangling_name_reference_is_eproto);
    suite_add_tcase(s, aid);
    return s;
}
