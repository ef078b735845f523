/*
 * crossfork.c: an equivocation found across epochs.
 *
 * Two copies of one replica (a copied directory) write the same seqs of
 * one actor with different content. At equal epochs the sync session
 * compares chains (crdt_forks_find()). When the replica resetting into
 * an epoch holds the other version of seqs that epoch folds, the only
 * evidence is the epoch's base heads: per actor the last seq folded and
 * its chain hash. Without this pass the reset's replay would archive our
 * version of every folded seq as "already folded" (its ops in neither the
 * state nor the quarantine: lost), and a change of ours beyond the cut
 * that does not chain to the folded head would fail the reset for good.
 *
 * An actor's chain in our log forks from the cut when
 *   (a) our change that ends at or spans the cut's seq is another change
 *       (other hash, or other bounds), or
 *   (b) our change right after the cut does not chain to the cut's hash,
 *   or, for this replica's own actor only,
 *   (c) the cut folds seqs of it this replica never holds: another copy
 *       wrote under its actor (the incarnation guard renews it after);
 *   or, for a former incarnation of this replica (its changes signed
 *   with this replica's key),
 *   (d) our chain of it ends below the cut: the seqs between were ours
 *       too, and they are not in our log (a rejected reset set them
 *       aside, renewing us), so nothing here can show that the epoch
 *       folded our version rather than a copy's (seed 16681). Kept in
 *       the quarantine, not archived as folded: when the epoch did fold
 *       ours, that costs a quarantine entry, never an op.
 * Every change of that actor in our log then leaves the log for the
 * quarantine, nothing is archived as folded:
 *   - a change below the cut is kept with kind CRDT_QK_UNSYNCED and is
 *     not re-applied by itself: the cut's hash cannot tell which of them
 *     the epoch folded too (those written before the copy was made
 *     were), so re-applying could apply an op twice;
 *   - a change that holds the cut's seq is not the one folded there, and
 *     a change beyond the cut continues our version, which lost: kind
 *     CRDT_QK_EQUIVOCATION, so a copy re-applies its own under its new
 *     incarnation, as at equal epochs: as copies naming the ops they
 *     copy, which a rebase into another branch of epochs whose cut
 *     folds this very chain skips (rebase.c).
 * Invariants:
 *  (1) Inside the reset's one txn: an interrupted reset changes nothing.
 *      It runs after a losing fork's archived changes came back into the
 *      log (they may hold our version too), before a rejected taker's
 *      unsynced changes or a same-epoch loser's forked ones leave the log
 *      (our change that spans the cut may be among them: without it our
 *      changes below the cut look folded), and before the sender's
 *      staged log joins it (only our own changes are judged).
 *  (2) Nothing is dropped: every op of a change that leaves the log is in
 *      the quarantine first.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

static const char WHY_FOLDED[] =
    "equivocation across epochs: the epoch folds another chain of this "
    "actor (a copied replica?); this change is below its cut and may or "
    "may not be among the folded ones: kept, not re-applied";
static const char WHY_BEYOND[] =
    "equivocation across epochs: the epoch folds another chain of this "
    "actor (a copied replica?); this change is not the one it folds at "
    "the cut, or continues the losing chain";

int
epoch__spans_of(epoch__span **out, size_t *n_out, crdt_raw *t, crdt_db db,
                const unsigned char *actor)
{
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl, n = 0;
    epoch__span *m = NULL;
    int rc;

    *out = NULL;
    *n_out = 0;
    if ((rc = crdt_raw_cursor_open(&c, t, db)) < 0)
        return rc;
    rc = crdt_raw_cursor_seek(c, actor, CRDT_ACTOR_BYTES, &k, &kl, &v, &vl);
    while (rc == CRDT_OK && kl == 16 &&
           memcmp(k, actor, CRDT_ACTOR_BYTES) == 0) {
        crdt_change ch;
        epoch__span *nm;
        if ((rc = crdt_change_decode(&ch, v, vl)) < 0)
            break;
        if ((nm = realloc(m, (n + 1) * sizeof *m)) == NULL) {
            rc = CRDT_ENOMEM;
            break;
        }
        m = nm;
        memcpy(m[n].key, k, 16);
        m[n].first = ch.seq;
        m[n].last = ch.seq + ch.n_ops - 1;
        memcpy(m[n].hash, ch.hash, CRDT_HASH_BYTES);
        memcpy(m[n].prev, ch.prev, CRDT_HASH_BYTES);
        memcpy(m[n].pubkey, ch.pubkey, CRDT_PUBKEY_BYTES);
        n++;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    if (rc != CRDT_OK && rc != CRDT_ENOTFOUND) {
        free(m);
        return rc;
    }
    *out = m;
    *n_out = n;
    return CRDT_OK;
}

/* (a), (b), (c) and (d) of the file comment; @p pk: this replica's
 * signing key. */
static int
forks(const epoch__span *m, size_t n, const epoch__head *cut, uint64_t own_head,
      int own, const unsigned char *pk)
{
    for (size_t i = 0; i < n; i++) {
        if (m[i].first <= cut->seq && cut->seq <= m[i].last)
            return m[i].last != cut->seq ||
                   memcmp(m[i].hash, cut->hash, CRDT_HASH_BYTES) != 0;
        if (m[i].first == cut->seq + 1)
            return memcmp(m[i].prev, cut->hash, CRDT_HASH_BYTES) != 0;
    }
    if (own)
        return n > 0 && own_head < cut->seq;
    /* (d): a former incarnation of ours, its chain here ending below */
    return n > 0 && m[n - 1].last < cut->seq &&
           memcmp(m[n - 1].pubkey, pk, CRDT_PUBKEY_BYTES) == 0;
}

/* Keeps (2): every op of the change under @p key into the quarantine,
 * then the change out of the log. */
static int
move_out(crdt_raw *t, const unsigned char *key, const char *why, int kind,
         uint64_t *moved)
{
    const void *v;
    size_t vl;
    unsigned char *copy;
    crdt_change ch;
    uint64_t n = 0;
    int rc;

    if ((rc = crdt_raw_get(t, CRDT_DB_LOG, key, 16, &v, &vl)) < 0)
        return rc;
    if ((copy = malloc(vl)) == NULL)
        return CRDT_ENOMEM;
    memcpy(copy, v, vl); /* the view dies at the first write */
    rc = crdt_change_decode(&ch, copy, vl);
    if (rc == CRDT_OK)
        rc = crdt_raw_quarantine_change(&n, t, &ch, 0, kind, why);
    if (rc == CRDT_OK)
        rc = crdt_raw_del(t, CRDT_DB_LOG, key, 16);
    if (rc == CRDT_OK)
        *moved += n;
    free(copy);
    return rc;
}

int
epoch__own_head_in(uint64_t *out, crdt_raw *t)
{
    crdt_actor own = crdt_replica_actor(crdt_raw_replica(t));
    unsigned char *blob = NULL;
    size_t len = 0, n = 0;
    epoch__head *h = NULL;
    int rc;

    *out = 0;
    if ((rc = crdt_raw_heads_encode(&blob, &len, t)) < 0)
        return rc;
    rc = epoch__heads_parse(&h, &n, blob, len);
    crdt_free(blob);
    for (size_t i = 0; rc == CRDT_OK && i < n; i++)
        if (memcmp(h[i].actor.b, own.b, CRDT_ACTOR_BYTES) == 0)
            *out = h[i].seq;
    free(h);
    return rc;
}

int
epoch__quarantine_crossforks_in(uint64_t *moved_out, uint64_t *forked_out,
                                int *own_out, crdt_raw *t, uint64_t own_head,
                                const unsigned char *base_heads,
                                size_t heads_len)
{
    epoch__head *cut = NULL;
    size_t n_cut = 0;
    crdt_actor own = crdt_replica_actor(crdt_raw_replica(t));
    unsigned char pk[CRDT_PUBKEY_BYTES];
    uint64_t moved = 0, forked = 0;
    int rc;

    crdt_replica_public_key(crdt_raw_replica(t), pk);
    *own_out = 0;
    if ((rc = epoch__heads_parse(&cut, &n_cut, base_heads, heads_len)) < 0)
        return rc;
    for (size_t i = 0; rc == CRDT_OK && i < n_cut; i++) {
        int is_own = memcmp(cut[i].actor.b, own.b, CRDT_ACTOR_BYTES) == 0;
        epoch__span *m = NULL;
        size_t n = 0;
        if ((rc = epoch__spans_of(&m, &n, t, CRDT_DB_LOG,
                                   cut[i].actor.b)) < 0)
            break;
        if (forks(m, n, &cut[i], own_head, is_own, pk)) {
            forked++;
            *own_out |= is_own;
            for (size_t j = 0; rc == CRDT_OK && j < n; j++)
                rc = m[j].last < cut[i].seq
                         ? move_out(t, m[j].key, WHY_FOLDED,
                                    CRDT_QK_UNSYNCED, &moved)
                         : move_out(t, m[j].key, WHY_BEYOND,
                                    CRDT_QK_EQUIVOCATION, &moved);
        }
        free(m);
    }
    if (rc == CRDT_OK && moved > 0)
        rc = crdt_raw_recount_log(t);
    if (rc == CRDT_OK) {
        *moved_out = moved;
        *forked_out = forked;
    }
    free(cut);
    return rc;
}
