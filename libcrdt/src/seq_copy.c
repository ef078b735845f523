/*
 * seq_copy.c: a copied insert and its original, one element in the end.
 *
 * A replica that lost an equivocation re-applies its losing version's
 * ops under a new incarnation, each a copy naming the op it copies
 * (docs/protocol.md, "Copies"). The losing version can still reach a
 * state by another way (an epoch on another branch folded it, or some
 * replica's log kept it), and then the state would hold the original's
 * elements and the copy's: an insert applied twice. So, for inserts:
 *
 *  - a copy whose original is in the log already (the change of the
 *    original's actor holding its seq, with the tag the copy names) goes
 *    in with its ids deleted;
 *  - a copy whose original is not there goes in as it is, and leaves a
 *    record 'a' under the field's block, keyed by the original (actor,
 *    seq, tag) and its own first id, holding its length;
 *  - an original that finds such records deletes those copies' ids and
 *    takes the records away.
 *
 * Either order ends in the same records: the copy's run, a delete range
 * over its ids (ranges are kept as maximal intervals, seq_store.c (2)),
 * no 'a' record; so the state hash agrees. The rebasing hook covers the
 * third way, an epoch's cut that folded the original (libepoch
 * rebase.c). The 'a' records of a field are counted in its built
 * sequence, so an insert looks for one only where some copy waits.
 */
#include <stdlib.h>
#include <string.h>

#include "seq_int.h"

/* after the block's key: 'a' actor(8) seq(8) tag(8), then the copy's
 * first id: actor(8) ctr(8) */
#define COPY_KEY_MAX 41

static int
is_insert(const crdt_op *op)
{
    return op->kind == CRDT_OP_TINS || op->kind == CRDT_OP_LINS;
}

static void
field_key(crdt__seqkey *k, const crdt_op *op)
{
    crdt__seqkey_make(k, op->coll, op->coll_len, op->doc, op->doc_len,
                      op->field, op->field_len,
                      op->kind == CRDT_OP_TINS ? 'T' : 'L');
}

/* The 'a' key of the original (@p a, @p seq, @p tag) in block @p k. */
static size_t
copy_key(unsigned char *out, const crdt__seqkey *k, const crdt_actor *a,
         uint64_t seq, const unsigned char *tag)
{
    memcpy(out, k->b, k->len);
    out[k->len] = 'a';
    memcpy(out + k->len + 1, a->b, CRDT_ACTOR_BYTES);
    crdt__be64(out + k->len + 9, seq);
    memcpy(out + k->len + 17, tag, 8);
    return k->len + 25;
}

/* Delete ids (@p a, ctr .. ctr + len - 1) of the field of insert @p ins.
 * A delete's records name ids only, whoever deleted them. */
static int
delete_ids(crdt__wctx *w, const crdt_op *ins, const crdt_actor *a,
           uint64_t ctr, uint64_t len, uint64_t hlc, uint64_t seq)
{
    crdt__enc e;
    crdt_op del;
    int rc;

    memset(&del, 0, sizeof del);
    del.kind = ins->kind == CRDT_OP_TINS ? CRDT_OP_TDEL : CRDT_OP_LDEL;
    del.coll = ins->coll;
    del.coll_len = ins->coll_len;
    del.doc = ins->doc;
    del.doc_len = ins->doc_len;
    del.field = ins->field;
    del.field_len = ins->field_len;
    del.len = len;
    crdt__enc_init(&e);
    if (msgpack_pack_array(&e.pk, 3) < 0 ||
        crdt__enc_bin(&e, a->b, CRDT_ACTOR_BYTES) < 0 ||
        msgpack_pack_uint64(&e.pk, ctr) < 0 ||
        msgpack_pack_uint64(&e.pk, len) < 0)
        rc = CRDT_ENOMEM;
    else
        rc = crdt__enc_ok(&e);
    if (rc == CRDT_OK) {
        del.ranges = (const unsigned char *)e.sb.data;
        del.ranges_len = e.sb.size;
        rc = crdt__state_apply(w, &del, hlc, a, seq);
    }
    crdt__enc_free(&e);
    return rc;
}

int
crdt__seq_apply_deleted(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                        const crdt_actor *actor, uint64_t seq)
{
    int rc;

    if (!is_insert(op) || op->len == 0)
        return CRDT_EINVAL;
    if ((rc = crdt__state_apply(w, op, hlc, actor, seq)) < 0)
        return rc;
    return delete_ids(w, op, actor, op->ctr, op->len, hlc, seq);
}

int
crdt__copy_log_holds(crdt__wctx *w, const crdt_actor *a, uint64_t seq,
                     const unsigned char *tag)
{
    crdt__logrec lr;
    crdt_change c;
    MDB_cursor *cur;
    size_t idx;
    int rc;

    /* the merge's run in hand may hold it: written first */
    if ((rc = crdt__merge_log_settle(w)) < 0)
        return rc;
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->r->dbi[CRDT_DB_LOG],
                                            &cur))) < 0)
        return rc;
    rc = crdt__logrec_find(&lr, &idx, cur, NULL, 0, a, seq);
    if (rc == CRDT_OK && w->replay_key != NULL) {
        /* a replay goes through the log in key order: a change at or
         * past the one in hand is not judged yet (it may still leave
         * for the quarantine); when it is applied, it finds the copy
         * waiting */
        MDB_val k, v;
        int g = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        /* the cursor sits on the record just found: a failure here is
         * the store's, never "not judged yet" (the txn is dead, and a
         * copy applied as waiting would be an insert applied twice) */
        if (g != 0) {
            crdt__logrec_close(&lr);
            rc = crdt__mdb_err(g);
            if (rc == CRDT_ENOTFOUND)
                rc = CRDT_ECORRUPT;
        } else if (k.mv_size != 16 ||
                   memcmp(k.mv_data, w->replay_key, 16) >= 0) {
            crdt__logrec_close(&lr);
            rc = CRDT_ENOTFOUND;
        }
    }
    if (rc == CRDT_OK) {
        rc = crdt__logrec_decode(&c, &lr, idx);
        if (rc == CRDT_OK)
            rc = c.seq <= seq && memcmp(c.hash, tag, 8) == 0;
        crdt__logrec_close(&lr);
    } else if (rc == CRDT_ENOTFOUND) {
        rc = 0;
    }
    mdb_cursor_close(cur);
    return rc;
}

int
crdt__seq_copy_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                     const crdt_actor *actor, uint64_t seq)
{
    unsigned char k[sizeof ((crdt__seqkey *)0)->b + COPY_KEY_MAX], v[8];
    crdt__seqkey fk;
    crdt__seq *s;
    MDB_val old;
    size_t kl;
    int rc, held;

    if (op->is_copy && !is_insert(op))
        return crdt__op_copy_apply(w, op, hlc, actor, seq);
    if (!op->is_copy || op->len == 0)
        return crdt__state_apply(w, op, hlc, actor, seq);
    rc = crdt__copy_log_holds(w, &op->copy_actor, op->copy_seq, op->copy_tag);
    if (rc < 0)
        return rc;
    held = rc;
    rc = held ? crdt__seq_apply_deleted(w, op, hlc, actor, seq)
              : crdt__state_apply(w, op, hlc, actor, seq);
    if (rc < 0)
        return rc;
    field_key(&fk, op);
    if ((rc = crdt__seq_for_write(&s, w, &fk)) < 0)
        return rc;
    if (held && s->ncopies == 0)
        return CRDT_OK;
    kl = copy_key(k, &fk, &op->copy_actor, op->copy_seq, op->copy_tag);
    memcpy(k + kl, actor->b, CRDT_ACTOR_BYTES);
    crdt__be64(k + kl + 8, op->ctr);
    crdt__be64(v, op->len);
    rc = crdt__state_get(w, k, kl + 16, &old);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (held && rc == CRDT_OK) {
        /* applied again (a replay) now that the original is here: it
         * waits no more, as if the original had come after it */
        MDB_val ov = { sizeof v, v };
        if ((rc = crdt__state_del(w, k, kl + 16, &ov)) == CRDT_OK)
            s->ncopies--;
        return rc;
    }
    if (held || rc == CRDT_OK)
        return CRDT_OK; /* nothing waits, or it waits already */
    if ((rc = crdt__state_put(w, k, kl + 16, v, sizeof v, NULL)) < 0)
        return rc;
    s->ncopies++;
    return CRDT_OK;
}

/* One waiting copy's record, taken out of the state. */
typedef struct {
    crdt_actor actor;
    uint64_t ctr, len;
} waiting;

/* The copies of the original under @p k (@p kl bytes) that wait: all
 * of them, into @p out (malloc'd), @p n of them. */
static int
waiting_copies(crdt__wctx *w, const unsigned char *k, size_t kl,
               waiting **out, size_t *n)
{
    MDB_cursor *cur;
    MDB_val key = { kl, (void *)k }, val;
    waiting *list = NULL;
    size_t cap = 0;
    int rc = CRDT_OK, mrc;

    *out = NULL;
    *n = 0;
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
        return rc;
    for (mrc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); mrc == 0;
         mrc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        const unsigned char *kb = key.mv_data;
        if (key.mv_size < kl || memcmp(kb, k, kl) != 0)
            break;
        if (key.mv_size != kl + 16 || val.mv_size != 8) {
            rc = CRDT_ECORRUPT;
            break;
        }
        if (*n == cap) {
            size_t nc = cap ? cap * 2 : 2;
            waiting *nl = realloc(list, nc * sizeof *nl);
            if (nl == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            list = nl;
            cap = nc;
        }
        memcpy(list[*n].actor.b, kb + kl, CRDT_ACTOR_BYTES);
        list[*n].ctr = crdt__rd64(kb + kl + 8);
        list[*n].len = crdt__rd64(val.mv_data);
        (*n)++;
    }
    if (rc == CRDT_OK && mrc != 0 && mrc != MDB_NOTFOUND)
        rc = crdt__mdb_err(mrc);
    mdb_cursor_close(cur);
    if (rc < 0) {
        free(list);
        *n = 0;
        return rc;
    }
    *out = list;
    return CRDT_OK;
}

int
crdt__seq_original_applied(crdt__wctx *w, const crdt_op *op,
                           const crdt_actor *actor, uint64_t seq,
                           const unsigned char *hash)
{
    unsigned char k[sizeof ((crdt__seqkey *)0)->b + COPY_KEY_MAX], v[8];
    crdt__seqkey fk;
    crdt__seq *s;
    waiting *list;
    size_t kl, n;
    int rc;

    if (!is_insert(op))
        return crdt__op_original_applied(w, op, actor, seq, hash);
    field_key(&fk, op);
    if ((rc = crdt__seq_for_write(&s, w, &fk)) < 0)
        return rc;
    if (s->ncopies == 0)
        return CRDT_OK;
    kl = copy_key(k, &fk, actor, seq, hash);
    if ((rc = waiting_copies(w, k, kl, &list, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n && rc == CRDT_OK; i++) {
        MDB_val ov = { sizeof v, v };
        memcpy(k + kl, list[i].actor.b, CRDT_ACTOR_BYTES);
        crdt__be64(k + kl + 8, list[i].ctr);
        crdt__be64(v, list[i].len);
        rc = crdt__state_del(w, k, kl + 16, &ov);
        if (rc == CRDT_OK) {
            s->ncopies--;
            rc = delete_ids(w, op, &list[i].actor, list[i].ctr, list[i].len,
                            0, seq);
        }
    }
    free(list);
    return rc;
}
