/*
 * op_copy.c: a copied op and its original, one op in the end.
 *
 * A copy that gives its original's stamp (docs/storage.md 5.3) and
 * whose whole effect is a write under a stamp (PUT, DEL_FIELD, DEL_DOC,
 * LSET) is applied under that stamp: it is then the very write it
 * copies, and whichever of the two comes second changes nothing (two
 * values under one stamp keep the one whose bytes sort last, state.c).
 * The rest of this file settles a copied counter increment or set add
 * with its original, counted once in the end.
 *
 * A replica that lost an equivocation re-applies its losing version's
 * ops under a new incarnation, each a copy naming the op it copies
 * (docs/protocol.md, "Copies"). When the losing version reaches a state
 * by another way as well, an increment would count twice and an add
 * leave a second tag that a remove which saw one of them does not take
 * away. seq_copy.c settles inserts; this file does the same for INCR and
 * SADD, with one record per waiting copy, ahead of every document:
 *
 *   00 'W' | original actor(8) | seq(8) | tag(8) | copy actor(8)
 *          | copy seq(8)
 *   value: 'C' | delta(8)    a copied increment
 *          'S'               a copied add
 *
 *  - a copy whose original the log holds already goes in neutralised:
 *    the increment counts with delta 0 (its part's count and last seq
 *    move as for any op), the add's tag is written removed;
 *  - a copy whose original is not there goes in as it is and leaves its
 *    record (an increment only when its part has not counted it yet: a
 *    replay does not bring back a record its original took away);
 *  - an original that finds records of itself neutralises those copies
 *    (the part's sum loses the delta; the tag is removed) and takes the
 *    records away.
 *
 * Either order ends in the same entries (the copy's part counted with
 * nothing added, or its tag removed; the original's as usual; no
 * record), so the state hash agrees. The records name no field: the
 * original reaches its field transformed through the same lenses as the
 * copy, so the field and element of the op in hand are the copy's too,
 * and a migration copies the records as they are. A record whose copy's
 * part or tag is gone (a migration removed the field) is taken away with
 * nothing to neutralise.
 *
 * Why ahead of every document: an original looks for its records after
 * every increment and add it applies, and almost always there is none.
 * One look per write txn at the first key says whether the state holds
 * any record at all (crdt__wctx.copies_waiting); only then does each
 * original look for its own. A document's key starts with its
 * collection's name, never with a 00 byte.
 */
#include <string.h>

#include "seq.h"
#include "state_keys.h"

static int
is_counted(const crdt_op *op)
{
    return op->kind == CRDT_OP_INCR || op->kind == CRDT_OP_SADD;
}

/* An op whose whole effect is a write under its stamp: a copy that
 * gives its original's stamp is applied under it, and lands as the very
 * write it copies (a second time, nothing changes). */
static int
is_stamped(const crdt_op *op)
{
    return op->kind == CRDT_OP_PUT || op->kind == CRDT_OP_DEL_FIELD ||
           op->kind == CRDT_OP_DEL_DOC || op->kind == CRDT_OP_LSET;
}

static const unsigned char WAIT_MARK[2] = { 0, 'W' };

/* 00 'W' | original (a, seq, tag) into @p k; returns its length so far
 * (the copy's actor and seq follow). */
static size_t
wait_prefix(crdt__key *k, const crdt_actor *a, uint64_t seq,
            const unsigned char *tag)
{
    k->len = 0;
    crdt__key_bytes(k, WAIT_MARK, sizeof WAIT_MARK);
    crdt__key_bytes(k, a->b, CRDT_ACTOR_BYTES);
    crdt__key_u64(k, seq);
    crdt__key_bytes(k, tag, 8);
    return k->len;
}

/* The copy's own entry: its counter part (field 'C' actor) or its tag
 * (field 'S' elem actor seq). */
static int
copy_entry_key(crdt__key *k, const crdt_op *op, const unsigned char *actor,
               uint64_t seq)
{
    crdt__key_doc(k, op->coll, op->coll_len, op->doc, op->doc_len);
    crdt__key_field(k, op->field, op->field_len);
    if (op->kind == CRDT_OP_INCR) {
        crdt__key_byte(k, 'C');
        crdt__key_bytes(k, actor, CRDT_ACTOR_BYTES);
    } else {
        unsigned char e[CRDT__ELEM_MAX];
        int n = crdt__value_bytes(e, sizeof e, &op->value);

        if (n < 0)
            return CRDT_ELIMIT;
        crdt__key_byte(k, 'S');
        crdt__key_bytes(k, e, (size_t)n);
        crdt__key_bytes(k, actor, CRDT_ACTOR_BYTES);
        crdt__key_u64(k, seq);
    }
    return k->len > CRDT__KEY_MAX ? CRDT_ELIMIT : CRDT_OK;
}

/* Take copy (@p actor, @p seq) of @p op back out of the counted: its
 * part's sum loses @p delta, or its tag is removed. */
static int
neutralise(crdt__wctx *w, const crdt_op *op, const unsigned char *actor,
           uint64_t seq, uint64_t delta)
{
    static const unsigned char zero = 0;
    unsigned char cv[24];
    crdt__key k;
    MDB_val old;
    int rc;

    if ((rc = copy_entry_key(&k, op, actor, seq)) < 0)
        return rc;
    rc = crdt__state_get(w, k.b, k.len, &old);
    if (rc == CRDT_ENOTFOUND)
        return CRDT_OK; /* gone with its field */
    if (rc < 0)
        return rc;
    if (op->kind == CRDT_OP_SADD)
        return crdt__state_put(w, k.b, k.len, &zero, 1, &old);
    if (old.mv_size != 24)
        return CRDT_ECORRUPT;
    memcpy(cv, old.mv_data, 24);
    crdt__be64(cv + 8, crdt__rd64(cv + 8) - delta); /* wrapping, as added */
    return crdt__state_put(w, k.b, k.len, cv, 24, &old);
}

/* Has increment (@p actor, @p seq) been counted here before? Its part
 * counts one actor's ops in seq order, so a last seq at or past it says
 * so. (An add's tag says nothing: a remove that came first writes it.) */
static int
counted_already(crdt__wctx *w, const crdt_op *op, const crdt_actor *actor,
                uint64_t seq)
{
    crdt__key k;
    MDB_val v;
    int rc;

    if (op->kind != CRDT_OP_INCR)
        return 0;
    if ((rc = copy_entry_key(&k, op, actor->b, seq)) < 0)
        return rc;
    rc = crdt__state_get(w, k.b, k.len, &v);
    if (rc == CRDT_ENOTFOUND)
        return 0;
    if (rc < 0)
        return rc;
    return v.mv_size == 24 &&
           crdt__rd64((unsigned char *)v.mv_data + 16) >= seq;
}

/* Copy (@p actor, @p seq) of add @p op, its tag written removed. */
static int
removed_tag(crdt__wctx *w, const crdt_op *op, const crdt_actor *actor,
            uint64_t seq)
{
    static const unsigned char zero = 0;
    crdt__key k;
    MDB_val old;
    int rc;

    if ((rc = copy_entry_key(&k, op, actor->b, seq)) < 0)
        return rc;
    rc = crdt__state_get(w, k.b, k.len, &old);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    return crdt__state_put(w, k.b, k.len, &zero, 1,
                           rc == CRDT_OK ? &old : NULL);
}

int
crdt__op_copy_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                    const crdt_actor *actor, uint64_t seq)
{
    unsigned char val[9];
    crdt__key k;
    crdt_op neutral;
    MDB_val old;
    int rc, held, before;

    if (op->is_copy && op->copy_hlc != 0 && is_stamped(op))
        return crdt__state_apply(w, op, op->copy_hlc, &op->copy_actor, seq);
    if (!op->is_copy || !is_counted(op))
        return crdt__state_apply(w, op, hlc, actor, seq);
    if ((held = crdt__copy_log_holds(w, &op->copy_actor, op->copy_seq,
                                     op->copy_tag)) < 0)
        return held;
    if ((before = counted_already(w, op, actor, seq)) < 0)
        return before;
    wait_prefix(&k, &op->copy_actor, op->copy_seq, op->copy_tag);
    crdt__key_bytes(&k, actor->b, CRDT_ACTOR_BYTES);
    crdt__key_u64(&k, seq);
    rc = crdt__state_get(w, k.b, k.len, &old);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (held && rc == CRDT_OK) {
        /* applied before and waiting, the original here now (a replay):
         * as if the original had come after it */
        uint64_t delta = old.mv_size == 9
                             ? crdt__rd64((unsigned char *)old.mv_data + 1)
                             : 0;
        if ((rc = crdt__state_del(w, k.b, k.len, &old)) < 0)
            return rc;
        return neutralise(w, op, actor->b, seq, delta);
    }
    if (before)
        return CRDT_OK; /* whatever settled it stands */
    if (held) {
        if (op->kind == CRDT_OP_SADD) /* as if a remove came first */
            return removed_tag(w, op, actor, seq);
        neutral = *op;
        neutral.delta = 0;
        return crdt__state_apply(w, &neutral, hlc, actor, seq);
    }
    if ((rc = crdt__state_apply(w, op, hlc, actor, seq)) < 0)
        return rc;
    val[0] = op->kind == CRDT_OP_INCR ? 'C' : 'S';
    crdt__be64(val + 1, (uint64_t)op->delta);
    rc = crdt__state_get(w, k.b, k.len, &old); /* the apply moved pages */
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    return crdt__state_put(w, k.b, k.len, val,
                           op->kind == CRDT_OP_INCR ? 9 : 1,
                           rc == CRDT_OK ? &old : NULL);
}

/* 1 when the active state holds some waiting copy, 0 when none. */
static int
any_waiting(crdt__wctx *w)
{
    MDB_val key, val;
    int rc;

    if (w->copies_waiting == 0) {
        rc = crdt__state_first_under(w, WAIT_MARK, sizeof WAIT_MARK, &key,
                                     &val);
        if (rc < 0 && rc != CRDT_ENOTFOUND)
            return rc;
        w->copies_waiting = rc == CRDT_OK ? 2 : 1;
    }
    return w->copies_waiting == 2;
}

int
crdt__op_original_applied(crdt__wctx *w, const crdt_op *op,
                          const crdt_actor *actor, uint64_t seq,
                          const unsigned char *tag)
{
    unsigned char kb[CRDT__KEY_MAX], vb[9];
    crdt__key k;
    MDB_val key, val;
    size_t pl;
    int rc;

    if (!is_counted(op) || op->is_copy)
        return CRDT_OK;
    if ((rc = any_waiting(w)) <= 0)
        return rc;
    pl = wait_prefix(&k, actor, seq, tag);
    /* each pass takes one record away: bounded by the records */
    while ((rc = crdt__state_first_under(w, k.b, pl, &key, &val)) == CRDT_OK) {
        size_t kl = key.mv_size;
        uint64_t delta = 0;
        MDB_val ov;

        if (kl != pl + 16 || (val.mv_size != 9 && val.mv_size != 1))
            return CRDT_ECORRUPT;
        memcpy(kb, key.mv_data, kl);
        memcpy(vb, val.mv_data, val.mv_size);
        ov.mv_size = val.mv_size;
        ov.mv_data = vb;
        if (val.mv_size == 9)
            delta = crdt__rd64(vb + 1);
        if ((rc = crdt__state_del(w, kb, kl, &ov)) < 0 ||
            (rc = neutralise(w, op, kb + pl, crdt__rd64(kb + pl + 8),
                             delta)) < 0)
            return rc;
    }
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}
