/*
 * merge.c: merging a batch of remote changes in one write transaction.
 *
 * Invariants:
 *  (1) All or nothing: any invalid change (bad signature, broken chain,
 *      other space, too far in the future) fails the whole batch and the
 *      caller aborts the txn.
 *  (2) Per actor, changes apply in seq order, each chained to the head
 *      (prev == hash of the change ending at head.seq). A change whose
 *      predecessor is missing waits in the pending area, and is applied
 *      as soon as the gap fills.
 *  (3) Idempotent: a change at or below the head is a no-op. A signed
 *      change that contradicts the chain we hold (equivocation: a cloned
 *      replica) is not merged: its ops go to the quarantine, reported.
 *  (4) Signatures: every change of the batch is proven: by the next
 *      change of its actor in the batch when that one chains to it (same
 *      actor, next seq, prev = its hash) and is proven, else by its own
 *      signature. So one Ed25519 check covers a whole run, and a change
 *      may come without its signature (format 2) when its successor is in
 *      the batch. A run whose chain is broken, or whose last change is
 *      unsigned or forged, fails the batch with CRDT_EAUTH and nothing is
 *      committed. An actor is proven before it is applied, or, in a large
 *      merge, by the merge's aid while the merge applies (mergeaid.h):
 *      then what the merge applied is in its txn only until every proof
 *      is in, and a change of another epoch waits for its proof before
 *      the epoch hook sees it.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mergeaid.h"
#include "seq.h"

typedef crdt__mitem item;

/* Sorts pointers to the items: moving a pointer is cheaper than an
 * item (a decoded header of some 270 bytes). */
static int
cmp_item(const void *a, const void *b)
{
    const item *x = *(item *const *)a, *y = *(item *const *)b;
    int c = memcmp(x->c.actor.b, y->c.actor.b, CRDT_ACTOR_BYTES);

    if (c != 0)
        return c;
    return x->c.seq < y->c.seq ? -1 : x->c.seq > y->c.seq;
}

/* The batch in (actor, seq) order, stably. A batch comes mostly as a
 * few runs already in that order (a session sends the log actor by
 * actor; peers' changes arrive each in its own order): those are found
 * in one pass and merged pairwise, about n log(runs) comparisons where
 * a sort takes n log(n) (a 10,000-change batch of four runs: 30,000
 * against some 130,000). Many runs, or no memory: qsort. */
#define NATURAL_RUNS_MAX 16
static void
sort_items(item **ord, size_t n)
{
    size_t start[NATURAL_RUNS_MAX + 1], runs = 1;
    item **tmp, **from, **to;

    for (size_t i = 1; i < n; i++)
        if (cmp_item(&ord[i - 1], &ord[i]) > 0) {
            if (runs == NATURAL_RUNS_MAX)
                goto sort;
            start[runs++] = i;
        }
    if (runs == 1)
        return;
    if ((tmp = malloc(n * sizeof *tmp)) == NULL)
        goto sort;
    start[0] = 0;
    from = ord;
    to = tmp;
    while (runs > 1) {
        size_t out = 0, k = 0;
        start[runs] = n;
        for (; k + 1 < runs; k += 2) {
            size_t i = start[k], mid = start[k + 1], j = mid,
                   end = start[k + 2], o = i;
            while (i < mid && j < end)
                to[o++] = cmp_item(&from[j], &from[i]) < 0 ? from[j++]
                                                           : from[i++];
            while (i < mid)
                to[o++] = from[i++];
            while (j < end)
                to[o++] = from[j++];
            start[out++] = start[k];
        }
        if (k < runs) { /* an odd run out: carried over */
            memcpy(to + start[k], from + start[k],
                   (n - start[k]) * sizeof *to);
            start[out++] = start[k];
        }
        runs = out;
        item **t = from;
        from = to;
        to = t;
    }
    if (from != ord)
        memcpy(ord, from, n * sizeof *ord);
    free(tmp);
    return;
sort:
    qsort(ord, n, sizeof *ord, cmp_item);
}

int
crdt__apply_change(crdt__wctx *w, const crdt_change *c, uint64_t skip,
                   const unsigned char *cur_epoch, crdt_merge_report *rep)
{
    int foreign = memcmp(c->epoch_id, cur_epoch, CRDT_HASH_BYTES) != 0;
    crdt_op_iter it;
    crdt_op op, out;
    struct crdt_raw raw;
    uint64_t i = 0;
    int rc, queued;

    int defer = w->seq_defer;

    raw.w = w;
    raw.write = 1;
    /* the hook reads the state as it stands: what is queued goes first,
     * and sequence records are written through while it may read them */
    if (foreign && w->q != NULL && (rc = crdt__applyq_flush(w, w->q)) < 0)
        return rc;
    if (foreign && (rc = crdt__seq_flush_touched(w)) < 0)
        return rc;
    if (foreign) {
        w->seq_foreign = 1; /* the hook may write the state directly */
        w->seq_defer = 0;
    }
    crdt_op_iter_init(&it, c);
    while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK) {
        const crdt_op *apply = &op;

        if (i < skip || (w->auth.phase != 0 &&
                         !crdt__auth_in_phase(w, c->pubkey, &op))) {
            i++;
            continue;
        }
        /* refused by the authority rules: quarantined, the rest goes on */
        if ((rc = crdt__auth_check(w, c, i, &op, rep)) <= 0) {
            if (rc < 0)
                return rc;
            i++;
            continue;
        }
        if (foreign) {
            if (w->r->hook.transform == NULL)
                return CRDT_ENOTFOUND; /* no way to read that epoch */
            rc = w->r->hook.transform(w->r->hook_ctx, &raw, c, c->seq + i,
                                      &op, &out);
            if (rc == CRDT_EREJECTED) {
                if (rep)
                    rep->quarantined_ops++;
                i++;
                continue;
            }
            if (rc == CRDT_EEXISTS) { /* a copy of an op held already */
                i++;
                continue;
            }
            /* the hook writes through crdt_raw_*, which answer a full
             * map as CRDT_EFULL: this txn filled it, so the merge grows
             * the map and runs again, as for its own writes */
            if (rc == CRDT_EFULL)
                return CRDT__EMAPFULL;
            if (rc < 0)
                return rc;
            apply = &out;
            if (rep)
                rep->rebased_ops++;
        }
        /* member-set ops go in at once: later ops' checks read them;
         * so do sequence ops (one field's ops keep their order either
         * way, and no other op reads a sequence's records: queueing
         * them bought nothing but a copy of each), whose records the
         * merge writes once at its end (seq_store.c) */
        queued = w->q != NULL && !foreign && !op.is_copy &&
                 !crdt__auth_is_members(apply) && apply->kind < CRDT_OP_TINS;
        if (queued) {
            rc = crdt__applyq_push(w, w->q, apply, c->hlc + i, &c->actor,
                                   c->seq + i, c->hash);
        } else if (op.is_copy) {
            /* a copy reads its part or tag: the queue's ops of the same
             * field (its actor's earlier increments) go first */
            rc = w->q != NULL ? crdt__applyq_flush(w, w->q) : CRDT_OK;
            if (rc == CRDT_OK)
                rc = crdt__seq_copy_apply(w, apply, c->hlc + i, &c->actor,
                                          c->seq + i);
        } else {
            rc = crdt__state_apply(w, apply, c->hlc + i, &c->actor,
                                   c->seq + i);
        }
        /* an op that some copy copied: the copy is neutralised (a queued
         * op does this as the queue applies it) */
        if (rc == CRDT_OK && !queued)
            rc = crdt__seq_original_applied(w, apply, &c->actor, c->seq + i,
                                            c->hash);
        if (rc < 0) {
            w->seq_defer = defer;
            return rc;
        }
        crdt__auth_applied(w, apply);
        if (rep)
            rep->ops_applied++;
        i++;
    }
    w->seq_defer = defer;
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

/* Store @p c (applied) in the log, in the actor's run (one record for
 * the run, logrun.c), and advance the head. @p data stays alive until
 * the run is written: the merge's message, or with @p own a malloc'd
 * copy the run takes (in every case). */
static int
log_append(crdt__wctx *w, crdt__logrun *run, const crdt_change *c,
           const unsigned char *data, size_t len, int own, crdt__head *h)
{
    int rc;

    rc = crdt__logrun_add(run, w->txn, w->r->dbi[CRDT_DB_LOG], w->log_cur, c,
                          data, len, own);
    if (rc < 0)
        return rc;
    h->seq = c->seq + c->n_ops - 1;
    memcpy(h->hash, c->hash, CRDT_HASH_BYTES);
    memcpy(h->pk, c->pubkey, CRDT_PUBKEY_BYTES);
    memcpy(h->inc, c->incarnation, 8);
    /* the counters are written once, at the end of the merge */
    w->log_ops += c->n_ops;
    w->log_changes++;
    return CRDT_OK;
}

static int
log_run_flush(crdt__wctx *w, crdt__logrun *run)
{
    return crdt__logrun_flush(run, w->txn, w->r->dbi[CRDT_DB_LOG],
                              w->log_cur);
}

/* The log as the merge has applied it so far, before it is read: the
 * run in hand and the runs handed to the aid are written. */
static int
log_settle(crdt__wctx *w, crdt__logrun *run)
{
    int rc = log_run_flush(w, run);

    if (rc == CRDT_OK)
        rc = crdt__mergeaid_write(run->aid, w->txn, w->r->dbi[CRDT_DB_LOG],
                                  w->log_cur);
    return rc;
}

int
crdt__merge_log_settle(crdt__wctx *w)
{
    /* the outer merge's run, under a merge inside its epoch hook, was
     * written before the hook ran (crdt__apply_change) */
    return w->log_run == NULL ? CRDT_OK : log_settle(w, w->log_run);
}

/* The log counters of what log_append() stored. */
static int
log_counts_flush(crdt__wctx *w)
{
    int rc = CRDT_OK;

    if (w->log_ops > 0)
        rc = crdt__count_add(w->txn, w->r, "ops_in_log",
                             (int64_t)w->log_ops);
    if (rc == CRDT_OK && w->log_changes > 0)
        rc = crdt__count_add(w->txn, w->r, "changes_in_log",
                             (int64_t)w->log_changes);
    w->log_ops = w->log_changes = 0;
    return rc;
}

/*
 * Equivocation: a validly signed change that contradicts the chain we
 * hold for its actor — a replica's files were copied (or a backup
 * restored twice) and both copies wrote. Within a merge the chain held
 * here wins (a sync compares the two heads first and resets the loser,
 * session.c); the change is not merged: its ops go to the quarantine
 * under their own keys (kind 'e', tagged with the change's hash, so
 * nothing else quarantined for that (actor, seq) is overwritten), with a
 * reason naming both versions, and the merge goes on.
 */
static int
quarantine_conflict(crdt__wctx *w, const crdt_change *c, const crdt__head *h,
                    crdt_merge_report *rep)
{
    char why[200], mine[17], held[17];
    size_t why_len;
    uint64_t n = 0;
    int rc, kind;

    /* proven with its batch (4): signed by the actor, so a clone's
     * change, not a forgery */
    crdt_hex(mine, c->hash, 8);
    crdt_hex(held, h->hash, 8);
    why_len = (size_t)snprintf(why, sizeof why,
                               "equivocation: change %s contradicts the "
                               "chain held for its actor (head %llu, %s); "
                               "a copied replica?",
                               mine, (unsigned long long)h->seq, held);
    /* of our own actor, it is the other copy's version, not one we
     * wrote: if ours loses later, it is not among what we re-apply */
    kind = memcmp(c->actor.b, w->r->actor.b, CRDT_ACTOR_BYTES) == 0
               ? CRDT_QK_OTHER_COPY
               : CRDT_QK_EQUIVOCATION;
    if ((rc = crdt__quarantine_ops(w, c, kind, why, why_len, &n)) < 0)
        return rc;
    if ((rc = crdt__count_add(w->txn, w->r, "equivocations", 1)) < 0)
        return rc;
    if (rep) {
        rep->conflicts++;
        rep->quarantined_ops += n;
    }
    return CRDT_OK;
}

/* Keeps (3): is the change at or below the head the one we hold? Its
 * copy may be in the log, or folded into an epoch and archived: a copy
 * that is nowhere (pruned) cannot be compared and counts as held. */
static int
check_duplicate(crdt__wctx *w, const crdt_change *c)
{
    unsigned char key[16];
    MDB_val k = { sizeof key, key }, v;
    crdt_change held;
    int rc, found;

    crdt__log_key(key, &c->actor, c->seq + c->n_ops - 1);
    rc = mdb_get(w->txn, w->r->dbi[CRDT_DB_LOG], &k, &v);
    if (rc == MDB_NOTFOUND ||
        (rc == 0 && crdt__logrec_is_run(v.mv_data, v.mv_size))) {
        /* not a record of its own (a run holds it, or it spans one):
         * the chain check reads inside runs */
        rc = crdt__chain_check(&found, w->txn, w->r, &c->actor,
                               c->seq + c->n_ops - 1, c->hash);
        if (rc < 0)
            return rc;
        return found == CRDT_CHAIN_FORK ? CRDT_ECONFLICT : CRDT_OK;
    }
    if (rc != 0)
        return crdt__mdb_err(rc);
    if (crdt_change_decode(&held, v.mv_data, v.mv_size) < 0)
        return CRDT_ECORRUPT;
    if (held.seq != c->seq ||
        memcmp(held.hash, c->hash, CRDT_HASH_BYTES) != 0)
        return CRDT_ECONFLICT;
    return CRDT_OK;
}

/* A change that falls out of the pending area: its ops are kept in the
 * quarantine with the reason (nothing is dropped). */
static int
quarantine_pending(crdt__wctx *w, const crdt_change *c, const char *why,
                   crdt_merge_report *rep)
{
    uint64_t n = 0;
    int rc = crdt__quarantine_ops(w, c, CRDT_QK_PENDING, why, strlen(why),
                                  &n);

    if (rc == CRDT_OK && rep)
        rep->quarantined_ops += n;
    return rc;
}

/* Parked changes of @p a: how many, and the key of the farthest ahead. */
static int
pending_of(crdt__wctx *w, const crdt_actor *a, uint64_t *n_out,
           unsigned char *last_key)
{
    MDB_cursor *cur;
    MDB_val k = { CRDT_ACTOR_BYTES, (void *)a->b }, v;
    uint64_t n = 0;
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn,
                                            w->r->dbi[CRDT_DB_PENDING],
                                            &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == 16 &&
           memcmp(k.mv_data, a->b, CRDT_ACTOR_BYTES) == 0) {
        memcpy(last_key, k.mv_data, 16);
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    *n_out = n;
    return CRDT_OK;
}

/*
 * Park @p it until its predecessor comes. The pending area is bounded
 * (crdt_open_options): a change too far ahead of its actor's head, or
 * arriving when the replica's pending area is full, goes to the
 * quarantine; when its actor's share is full, the farthest-ahead change
 * of that actor (the incoming one or a parked one) does.
 */
static int
park(crdt__wctx *w, const item *it, const crdt__head *h,
     crdt_merge_report *rep)
{
    unsigned char key[16], far_key[16];
    MDB_val k = { sizeof key, key }, v = { it->len, (void *)it->data };
    uint64_t mine = 0, parked;
    int rc;

    /* it waits for a later batch: check now what applying it would (its
     * signature or its run's was checked with the batch, (4)) */
    if ((rc = crdt__change_check_ops(&it->c)) < 0)
        return rc;
    crdt__log_key(key, &it->c.actor, it->c.seq);
    if ((rc = mdb_get(w->txn, w->r->dbi[CRDT_DB_PENDING], &k, &v)) == 0)
        return CRDT_OK; /* parked already */
    if (rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    v.mv_size = it->len;
    v.mv_data = (void *)it->data;
    if (it->c.seq - h->seq > w->r->pending_max_gap)
        return quarantine_pending(w, &it->c, "pending: too far ahead of its "
                                  "actor's head (a gap no peer will fill)",
                                  rep);
    if ((rc = crdt__meta_u64(w->txn, w->r, "pending", &parked)) < 0)
        return rc;
    if (parked >= w->r->pending_max)
        return quarantine_pending(w, &it->c, "pending: the replica's pending "
                                  "area is full", rep);
    if ((rc = pending_of(w, &it->c.actor, &mine, far_key)) < 0)
        return rc;
    if (mine >= w->r->pending_max_actor) {
        MDB_val fk = { 16, far_key }, fv;
        crdt_change far;
        unsigned char *copy;

        if (memcmp(far_key, key, 16) < 0)
            return quarantine_pending(w, &it->c, "pending: its actor's share "
                                      "of the pending area is full", rep);
        /* the incoming change is nearer: the farthest one makes room */
        if ((rc = crdt__mdb_err(mdb_get(w->txn, w->r->dbi[CRDT_DB_PENDING],
                                        &fk, &fv))) < 0)
            return rc;
        if ((copy = malloc(fv.mv_size)) == NULL)
            return CRDT_ENOMEM;
        memcpy(copy, fv.mv_data, fv.mv_size);
        rc = crdt_change_decode(&far, copy, fv.mv_size);
        if (rc == CRDT_OK)
            rc = quarantine_pending(w, &far, "pending: displaced from its "
                                    "actor's full share of the pending area "
                                    "by a nearer change", rep);
        free(copy);
        if (rc == CRDT_OK)
            rc = crdt__mdb_err(mdb_del(w->txn, w->r->dbi[CRDT_DB_PENDING],
                                       &fk, NULL));
        if (rc == CRDT_OK)
            rc = crdt__count_add(w->txn, w->r, "pending", -1);
        if (rc < 0)
            return rc;
    }
    w->pending_any = 1;
    rc = mdb_put(w->txn, w->r->dbi[CRDT_DB_PENDING], &k, &v,
                 MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST)
        return CRDT_OK;
    if (rc != 0)
        return crdt__mdb_err(rc);
    if (rep)
        rep->pending++;
    return crdt__count_add(w->txn, w->r, "pending", 1);
}

/*
 * Does the pending area hold, after the unsigned change @p c, its
 * successors up to a signed one? They were parked together and proven
 * then (4); one of them may since have been displaced (park()). The log
 * must never keep an unsigned change without the signed end of its run
 * (docs/storage.md 5.5), so without it @p c stays parked until a peer
 * sends the run again. @p proven_to: the last seq found proven. Returns
 1 (signed up to @p proven_to), 0 (not), or an error.
 */
static int
pending_run_signed(crdt__wctx *w, const crdt_change *c, uint64_t *proven_to)
{
    unsigned char key[16];
    MDB_val k = { sizeof key, key }, v;
    crdt_change cur = *c, next;
    int rc;

    for (uint64_t steps = 0; steps < UINT64_C(1) << 20; steps++) {
        crdt__log_key(key, &c->actor, cur.seq + cur.n_ops);
        rc = mdb_get(w->txn, w->r->dbi[CRDT_DB_PENDING], &k, &v);
        if (rc == MDB_NOTFOUND)
            return 0;
        if (rc != 0) /* a storage error is no answer: the merge fails */
            return crdt__mdb_err(rc);
        if (crdt__change_decode_header(&next, v.mv_data, v.mv_size) < 0 ||
            !crdt_change_proves(&next, &cur))
            return 0;
        if (next.sig != NULL) {
            *proven_to = next.seq + next.n_ops - 1;
            return 1;
        }
        cur = next;
    }
    return 0;
}

/*
 * The parked changes of @p c's actor whose first seq falls inside @p c,
 * which is applied now on top of head @p h: none of them can ever
 * follow the head. A copy of @p c itself (an unsigned change left
 * waiting by drain_pending()) just goes. Another version of those seqs
 * was written by a copy of the replica: proven, it goes to the
 * quarantine as a merge's fork does; unproven, it is dropped (nothing
 * shows its author wrote it; a peer holding its run sends it again,
 * and the merge then meets it as a fork). Looking only at the key of
 * @p c's first seq left a fork parked inside a change the head passed
 * in the area for ever, holding a place of the actor's share, and
 * dropped a proven fork at that key without a trace.
 */
static int
settle_parked_within(crdt__wctx *w, const crdt_change *c,
                     const crdt__head *h, crdt_merge_report *rep)
{
    unsigned char key[16];
    MDB_val k, v;
    MDB_cursor *cur;
    uint64_t last = c->seq + c->n_ops - 1, proven_to = 0;
    int rc = CRDT_OK;

    if (!w->pending_any)
        return CRDT_OK; /* the pending area is empty */
    crdt__log_key(key, &c->actor, c->seq);
    while (rc == CRDT_OK) {
        crdt_change p;
        unsigned char *copy;
        int found;

        if ((rc = crdt__mdb_err(mdb_cursor_open(
                 w->txn, w->r->dbi[CRDT_DB_PENDING], &cur))) < 0)
            return rc;
        k.mv_size = sizeof key;
        k.mv_data = key;
        found = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (found == 0 && (k.mv_size != sizeof key ||
                           memcmp(k.mv_data, c->actor.b, 8) != 0 ||
                           crdt__rd64((const unsigned char *)k.mv_data + 8) >
                               last))
            found = MDB_NOTFOUND;
        if (found != 0) {
            mdb_cursor_close(cur);
            return found == MDB_NOTFOUND ? CRDT_OK : crdt__mdb_err(found);
        }
        memcpy(key, k.mv_data, sizeof key);
        copy = malloc(v.mv_size);
        if (copy != NULL)
            memcpy(copy, v.mv_data, v.mv_size);
        else
            rc = CRDT_ENOMEM;
        mdb_cursor_close(cur); /* the quarantine's writes move it */
        if (rc == CRDT_OK && crdt_change_decode(&p, copy, v.mv_size) ==
                                 CRDT_OK &&
            memcmp(p.hash, c->hash, CRDT_HASH_BYTES) != 0) {
            int proven = p.sig != NULL
                             ? crdt_change_verify(&p) == CRDT_OK
                             : pending_run_signed(w, &p, &proven_to);
            rc = proven < 0 ? proven
                 : proven   ? quarantine_conflict(w, &p, h, rep)
                            : CRDT_OK;
        }
        free(copy);
        k.mv_size = sizeof key;
        k.mv_data = key;
        if (rc == CRDT_OK)
            rc = crdt__mdb_err(
                mdb_del(w->txn, w->r->dbi[CRDT_DB_PENDING], &k, NULL));
        if (rc == CRDT_OK)
            rc = crdt__count_add(w->txn, w->r, "pending", -1);
    }
    return rc;
}

/*
 * Can a change written in epoch @p id be applied here: is it the current
 * epoch @p cur, one whose record we hold (the epoch hook rebases from
 * it), or the genesis (which has none)? A change parks without this
 * check, and its epoch's record may not have come with it (a peer made
 * the epoch after its HELLO, or the change came through a replica that
 * never held the record). When the head reaches it, such a change waits
 * in the pending area: applied, it would fail the merge with
 * CRDT_ENOTFOUND, and every later merge of its actor, although the
 * changes before it are fine (simulator seed 9272). A peer holding the
 * epoch sends its record in HELLO and the change again. Returns 1
 * (held), 0 (not), or an error.
 */
static int
epoch_held(crdt__wctx *w, const unsigned char *id, const unsigned char *cur)
{
    MDB_val k = { CRDT_HASH_BYTES, (void *)id }, v;
    int rc;

    if (memcmp(id, cur, CRDT_HASH_BYTES) == 0)
        return 1;
    rc = mdb_get(w->txn, w->r->dbi[CRDT_DB_EPOCHS], &k, &v);
    if (rc != MDB_NOTFOUND) /* held, or a storage error (no answer) */
        return rc == 0 ? 1 : crdt__mdb_err(rc);
    rc = crdt__meta_get(w->txn, w->r, "genesis_id", &v);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (rc < 0 || v.mv_size != CRDT_HASH_BYTES)
        return 1; /* cannot tell (a replica from before the record): try */
    return memcmp(v.mv_data, id, CRDT_HASH_BYTES) == 0;
}

/* Apply parked changes that now follow the head; keeps (2). */
static int
drain_pending(crdt__wctx *w, crdt__logrun *run, const crdt_actor *a,
              crdt__head *h, const unsigned char *cur_epoch,
              crdt_merge_report *rep)
{
    unsigned char key[16];
    MDB_val k = { sizeof key, key }, v;
    crdt_change c;
    unsigned char *copy;
    uint64_t proven_to = 0;
    int rc;

    while (w->pending_any) {
        crdt__log_key(key, a, h->seq + 1);
        rc = mdb_get(w->txn, w->r->dbi[CRDT_DB_PENDING], &k, &v);
        if (rc == MDB_NOTFOUND)
            return CRDT_OK;
        if (rc != 0)
            return crdt__mdb_err(rc);
        /* the view dies at the next write: work on a copy */
        copy = malloc(v.mv_size);
        if (copy == NULL)
            return CRDT_ENOMEM;
        memcpy(copy, v.mv_data, v.mv_size);
        size_t len = v.mv_size;
        rc = crdt_change_decode(&c, copy, len);
        if (rc == CRDT_OK &&
            (memcmp(c.pubkey, h->pk, CRDT_PUBKEY_BYTES) != 0 ||
             memcmp(c.incarnation, h->inc, 8) != 0))
            rc = CRDT_EAUTH;
        if (rc == CRDT_OK &&
            memcmp(c.prev, h->hash, CRDT_HASH_BYTES) != 0) {
            /* another version of this seq, parked before the head came
             * (a copied replica wrote both): it never follows the head.
             * Proven, it goes to the quarantine as a merge's fork does
             * and leaves the pending area; unproven, it waits, as an
             * unsigned change without its run's end does below (a merge
             * of the true change drops it). Failing here would fail
             * every merge of this actor from now on. */
            int proven = c.sig != NULL
                             ? crdt_change_verify(&c) == CRDT_OK
                             : pending_run_signed(w, &c, &proven_to);
            if (proven > 0) /* c's views point into copy */
                rc = quarantine_conflict(w, &c, h, rep);
            free(copy);
            if (proven <= 0 || rc < 0)
                return proven < 0 ? proven : rc;
            if ((rc = crdt__mdb_err(mdb_del(
                     w->txn, w->r->dbi[CRDT_DB_PENDING], &k, NULL))) < 0)
                return rc;
            return crdt__count_add(w->txn, w->r, "pending", -1);
        }
        if (rc == CRDT_OK && c.sig == NULL &&
            c.seq + c.n_ops - 1 > proven_to) {
            int signed_end = pending_run_signed(w, &c, &proven_to);
            if (signed_end <= 0) {
                free(copy);
                return signed_end; /* 0: its run's signed end is gone: it
                                    * waits */
            }
        }
        if (rc == CRDT_OK) {
            int held = epoch_held(w, c.epoch_id, cur_epoch);
            if (held <= 0) {
                free(copy);
                return held; /* 0: its epoch's record is not here yet: it
                              * waits */
            }
        }
        if (rc == CRDT_OK)
            rc = crdt__mdb_err(
                mdb_del(w->txn, w->r->dbi[CRDT_DB_PENDING], &k, NULL));
        if (rc == CRDT_OK)
            rc = crdt__count_add(w->txn, w->r, "pending", -1);
        if (rc == CRDT_OK) /* the rest of its seqs (its own key is gone) */
            rc = settle_parked_within(w, &c, h, rep);
        if (rc == CRDT_OK)
            rc = crdt__apply_change(w, &c, 0, cur_epoch, rep);
        /* the queue holds views into @copy: apply them before it goes */
        if (rc == CRDT_OK && w->q != NULL)
            rc = crdt__applyq_flush(w, w->q);
        /* the run keeps @copy until it is written (and frees it) */
        if (rc == CRDT_OK)
            rc = log_append(w, run, &c, copy, len, 1, h);
        else
            free(copy);
        if (rc < 0)
            return rc;
        if (rep)
            rep->changes_applied++;
    }
    return CRDT_OK;
}

/* Keeps (4) for the actor's changes @p items: here, or by the merge's
 * aid, which proves them beside the merge (the merge awaits its proofs
 * before it ends, mergeaid.h); a change of another epoch is proven
 * before the epoch hook sees it. */
static int
prove(crdt__wctx *w, crdt__logrun *run, size_t at, item *const *items,
      size_t n, const unsigned char *cur_epoch)
{
    int rc;

    if (run->aid == NULL)
        return crdt__prove_actor(items, n);
    for (size_t i = 0; i < n; i++)
        if (memcmp(items[i]->c.epoch_id, cur_epoch, CRDT_HASH_BYTES) != 0) {
            /* and the hook may read the log */
            if ((rc = crdt__mergeaid_proven(run->aid, at)) < 0)
                return rc;
            return log_settle(w, run);
        }
    return CRDT_OK;
}

static int
merge_actor_run(crdt__wctx *w, crdt__logrun *run, item *const *items,
                size_t n, size_t at, const unsigned char *cur_epoch,
                crdt_merge_report *rep)
{
    const crdt_actor *a = &items[0]->c.actor;
    crdt__head h;
    uint64_t start_seq;
    int rc, had_head;

    if ((rc = prove(w, run, at, items, n, cur_epoch)) < 0)
        return rc;
    rc = crdt__head_get(w->txn, w->r, a, &h);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    had_head = rc == CRDT_OK;
    if (!had_head) {
        memset(&h, 0, sizeof h);
        h.seq = 0;
        memcpy(h.pk, items[0]->c.pubkey, CRDT_PUBKEY_BYTES);
        memcpy(h.inc, items[0]->c.incarnation, 8);
    }
    start_seq = h.seq;
    for (size_t i = 0; i < n; i++) {
        const crdt_change *c = &items[i]->c;
        uint64_t last = c->seq + c->n_ops - 1;

        if (memcmp(c->pubkey, h.pk, CRDT_PUBKEY_BYTES) != 0 ||
            memcmp(c->incarnation, h.inc, 8) != 0)
            return CRDT_EAUTH; /* actor id collision or forgery */
        if (last <= h.seq) {
            /* it may be in the run: the check reads the log */
            if ((rc = log_settle(w, run)) < 0)
                return rc;
            rc = check_duplicate(w, c);
            if (rc == CRDT_ECONFLICT) {
                if ((rc = quarantine_conflict(w, c, &h, rep)) < 0)
                    return rc;
                break; /* the rest of this actor's batch is suspect */
            }
            if (rc < 0)
                return rc;
            if (rep)
                rep->duplicates++;
            continue;
        }
        if (c->seq > h.seq + 1) {
            if ((rc = park(w, items[i], &h, rep)) < 0)
                return rc;
            continue;
        }
        if (c->seq != h.seq + 1 ||
            memcmp(c->prev, h.hash, CRDT_HASH_BYTES) != 0) {
            /* a fork of this actor's chain */
            if ((rc = log_settle(w, run)) < 0 ||
                (rc = quarantine_conflict(w, c, &h, rep)) < 0)
                return rc;
            break;
        }
        if ((rc = settle_parked_within(w, c, &h, rep)) < 0 ||
            (rc = crdt__apply_change(w, c, 0, cur_epoch, rep)) < 0)
            return rc;
        if ((rc = log_append(w, run, c, items[i]->data, items[i]->len, 0,
                             &h)) < 0)
            return rc;
        if (rep)
            rep->changes_applied++;
        if ((rc = drain_pending(w, run, a, &h, cur_epoch, rep)) < 0)
            return rc;
    }
    if (h.seq == start_seq)
        return CRDT_OK; /* nothing applied: duplicates or parked only */
    if ((rc = log_run_flush(w, run)) < 0)
        return rc;
    return crdt__head_put(w->txn, w->r, a, &h);
}

/* The changes of one actor: those it applies go to the log as one run
 * record (or a few, logrun.c). @p run is the merge's, empty, its
 * buffers kept from actor to actor (grown once per merge, not per
 * actor: the regrowth copied and faulted in megabytes per batch). */
static int
merge_actor(crdt__wctx *w, crdt__logrun *run, item *const *items, size_t n,
            size_t at, const unsigned char *cur_epoch,
            crdt_merge_report *rep)
{
    int rc = merge_actor_run(w, run, items, n, at, cur_epoch, rep);

    crdt__logrun_reset(run); /* written, or dropped with the failed txn */
    return rc;
}

int
crdt__merge_in(crdt__wctx *w, crdt_merge_report *rep,
               const crdt_bytes *changes, const unsigned char *hashes,
               size_t n)
{
    crdt_replica *r = w->r;
    unsigned char cur_epoch[CRDT_HASH_BYTES];
    uint64_t now = crdt__now_ms(), max_hlc = 0;
    crdt__applyq own, *q = r->applyq_busy ? &own : &r->applyq;
    MDB_cursor *outer_cur;
    crdt__logrun *outer_run;
    uint64_t outer_ops, outer_changes;
    int outer_pending, outer_defer;
    item *items, *own_items = NULL, **ord;
    crdt__mergeaid *aid = NULL;
    struct crdt__hashq *outer_hq = w->hq;
    size_t failed_at = SIZE_MAX; /* the actor (ord index) that failed */
    int reached = 0;             /* the actors were reached */
    size_t split = n;            /* the merge screens items[0, split) */
    MDB_val v;
    int rc = CRDT_OK;

    if (n == 0)
        return CRDT_OK;
    if ((rc = crdt__meta_get(w->txn, r, "epoch_id", &v)) < 0 ||
        v.mv_size != CRDT_HASH_BYTES)
        return rc < 0 && rc != CRDT_ENOTFOUND ? rc : CRDT_ECORRUPT;
    memcpy(cur_epoch, v.mv_data, CRDT_HASH_BYTES);
    /* the replica's buffers, kept between merges (as its queue is);
     * a merge inside a merge's epoch hook gets its own */
    if (n > SIZE_MAX / (sizeof *items + sizeof *ord))
        return CRDT_ENOMEM;
    if (r->applyq_busy) {
        items = malloc(n * (sizeof *items + sizeof *ord));
        if (items == NULL)
            return CRDT_ENOMEM;
        own_items = items;
    } else {
        if (n > r->merge_cap) {
            void *nb = malloc(n * (sizeof *items + sizeof *ord));
            if (nb == NULL)
                return CRDT_ENOMEM;
            free(r->merge_buf);
            r->merge_buf = nb;
            r->merge_cap = n;
        }
        items = r->merge_buf;
    }
    ord = (item **)(items + n);
    for (size_t i = 0; i < n; i++)
        ord[i] = &items[i];
    /* a merge inside a merge's epoch hook runs on its own */
    if (q != &own)
        aid = crdt__mergeaid_begin(&r->merge_aid, items, changes, hashes, n,
                                   r->space_id, now + r->max_drift_ms,
                                   &split);
    for (size_t i = 0; i < split; i++)
        if ((rc = crdt__mitem_screen(&items[i], &changes[i],
                                     crdt__hash_at(hashes, i), r->space_id,
                                     now + r->max_drift_ms, &max_hlc)) < 0)
            goto done;
    if (aid != NULL && (rc = crdt__mergeaid_screened(aid, &max_hlc)) < 0)
        goto done;
    sort_items(ord, n);
    if (aid != NULL && crdt__mergeaid_go(aid, ord, n) < 0) {
        crdt__mergeaid_end(aid); /* the merge does it all itself */
        aid = NULL;
    }
    if (w->hq == NULL) /* a merge in an epoch hook keeps the outer's */
        w->hq = crdt__mergeaid_hashq(aid);
    /* a merge inside a merge's epoch hook shares @p w: keep the outer's */
    outer_run = w->log_run;
    outer_cur = w->log_cur;
    outer_ops = w->log_ops;
    outer_changes = w->log_changes;
    outer_pending = w->pending_any;
    {
        MDB_stat st;
        w->pending_any = mdb_stat(w->txn, r->dbi[CRDT_DB_PENDING], &st) != 0 ||
                         st.ms_entries > 0;
    }
    w->log_ops = w->log_changes = 0;
    w->log_cur = NULL;
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, r->dbi[CRDT_DB_LOG],
                                            &w->log_cur))) < 0) {
        w->log_cur = outer_cur;
        w->log_ops = outer_ops;
        w->log_changes = outer_changes;
        w->pending_any = outer_pending;
        goto done;
    }
    if (q == &own) /* a merge inside a merge's epoch hook */
        crdt__applyq_init(&own);
    else
        r->applyq_busy = 1;
    w->q = q;
    outer_defer = w->seq_defer;
    w->seq_defer = 1; /* sequence records: written once, below */
    {
        /* the replica's run, kept between merges (its buffers stay
         * mapped); a merge inside a merge's epoch hook gets its own */
        crdt__logrun own_run, *run = &own_run;
        memset(&own_run, 0, sizeof own_run);
        if (q != &own) {
            if (r->merge_run == NULL &&
                (r->merge_run = calloc(1, sizeof *r->merge_run)) == NULL)
                rc = CRDT_ENOMEM;
            run = r->merge_run;
        }
        if (rc == CRDT_OK)
            rc = crdt__logrun_reserve(run, n);
        if (rc == CRDT_OK) {
            run->aid = aid;
            w->log_run = run;
            reached = 1;
        }
        for (size_t i = 0, j; rc == CRDT_OK && i < n; i = j) {
            for (j = i + 1;
                 j < n && memcmp(ord[j]->c.actor.b, ord[i]->c.actor.b,
                                 CRDT_ACTOR_BYTES) == 0;
                 j++)
                ;
            if ((rc = merge_actor(w, run, ord + i, j - i, i, cur_epoch,
                                  rep)) < 0) {
                failed_at = i;
                break;
            }
        }
        if (run != NULL)
            run->aid = NULL;
        w->log_run = outer_run;
        crdt__logrun_free(&own_run);
    }
    if (w->log_cur != NULL)
        mdb_cursor_close(w->log_cur);
    if (rc == CRDT_OK)
        rc = log_counts_flush(w);
    w->log_cur = outer_cur;
    w->log_ops = outer_ops;
    w->log_changes = outer_changes;
    w->pending_any |= outer_pending;
    if (rc == CRDT_OK)
        rc = crdt__applyq_flush(w, q);
    /* the runs the aid packed meanwhile (nothing above read the log) */
    if (rc == CRDT_OK)
        rc = crdt__mergeaid_write(aid, w->txn, r->dbi[CRDT_DB_LOG], NULL);
    w->seq_defer = outer_defer;
    if (rc == CRDT_OK)
        rc = crdt__seq_flush_touched(w);
    if (rc == CRDT_OK) /* a member-set change may judge held ops anew */
        rc = crdt__auth_settle(w);
    q->n = 0; /* dropped on failure: the txn aborts */
    w->q = NULL;
    if (q == &own)
        crdt__applyq_free(&own);
    else
        r->applyq_busy = 0;
    if (rc < 0)
        goto done;
    /* the clock never runs behind what we have seen (bounded by drift) */
    {
        uint64_t hlc;
        if ((rc = crdt__meta_u64(w->txn, r, "hlc", &hlc)) == CRDT_OK &&
            max_hlc > hlc)
            rc = crdt__meta_put_u64(w->txn, r, "hlc", max_hlc);
    }
done:
    if (w->hq != outer_hq) { /* its entries are summed before the aid ends */
        crdt__wctx_hash_settle(w);
        w->hq = outer_hq;
    }
    if (aid != NULL) {
        /* (4): an actor not proven up to where the merge stopped is the
         * merge's error, as when each was proven before it applied */
        int proof = reached ? crdt__mergeaid_proven(aid, failed_at) : CRDT_OK;
        if (proof < 0)
            rc = proof;
        crdt__mergeaid_end(aid);
    }
    free(own_items);
    return rc;
}

int
crdt_merge(crdt_merge_report *report, crdt_replica *r,
           const crdt_bytes *changes, size_t n)
{
    return crdt__merge_hashed(report, r, changes, NULL, n);
}

int
crdt__merge_hashed(crdt_merge_report *report, crdt_replica *r,
                   const crdt_bytes *changes, const unsigned char *hashes,
                   size_t n)
{
    crdt_merge_report rep;
    crdt__wctx w;
    int rc = CRDT_OK;

    if (r == NULL || (changes == NULL && n > 0))
        return CRDT_EINVAL;
    for (int tries = 0; tries < 16; tries++) {
        memset(&rep, 0, sizeof rep);
        if ((rc = crdt__wctx_begin(&w, r, 1)) < 0)
            return rc;
        rc = crdt__merge_in(&w, &rep, changes, hashes, n);
        if (rc == CRDT_OK)
            rc = crdt__wctx_commit(&w);
        else
            crdt__wctx_abort(&w);
        if (rc != CRDT__EMAPFULL)
            break;
        if ((rc = crdt__store_grow(r)) < 0)
            break;
        rc = CRDT__EMAPFULL;
    }
    if (rc == CRDT__EMAPFULL)
        rc = CRDT_EFULL;
    if (rc == CRDT_OK) {
        /* a change of our own actor that we did not write: this
         * directory was copied; never write as that actor again */
        for (size_t i = 0; i < n; i++) {
            crdt_actor a;
            uint64_t last;
            if (crdt_change_peek(&a, &last, changes[i].data,
                                 changes[i].len) == CRDT_OK &&
                memcmp(a.b, r->actor.b, CRDT_ACTOR_BYTES) == 0) {
                rc = crdt_replica_check_incarnation(NULL, r);
                break;
            }
        }
    }
    if (rc == CRDT_OK && report != NULL)
        *report = rep;
    return rc;
}
