/*
 * derive.c: re-deriving an epoch before adopting it.
 *
 * An epoch record is signed by an admin, but the signature says only who
 * made it, not that its state follows from the ops it folds. A replica
 * that holds the epoch's parent can check that itself: the record names
 * the heads it folds (the cut: per actor the last seq and its chain
 * hash), so a replica that holds exactly those changes holds the state
 * the creator migrated, byte for byte (docs/ARCHITECTURE.md, "same ops,
 * same epoch, same state"). Applying the epoch's lens to that state in
 * a write txn that is then aborted gives the state hash the record must
 * carry.
 *
 * The rule (docs/security.md, "Epochs"):
 *  - re-derived when this replica is at the epoch's parent and its heads
 *    are the cut exactly: a different hash refuses the epoch;
 *  - otherwise (it lacks changes of the cut, holds changes beyond it,
 *    one of its chains forks from the cut's, the epoch is further than
 *    one step, or it runs a custom migration) nothing can be derived
 *    from what it holds, and the admin's signature alone vouches.
 * Invariants:
 *  (1) The scratch work happens in a write txn that is always aborted;
 *      the one write that stays is the record of a refusal.
 *  (2) Memory holds one document at a time (rewrite.c), not the state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

typedef struct {
    epoch__head *v;
    size_t n, cap;
} head_list;

static int
keep_head(const crdt_head *h, void *ctx)
{
    head_list *l = ctx;

    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        epoch__head *v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            return CRDT_ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n].actor = h->actor;
    l->v[l->n].seq = h->seq;
    memcpy(l->v[l->n].hash, h->hash, CRDT_HASH_BYTES);
    l->n++;
    return CRDT_OK;
}

/* The blob is libcrdt's: crdt_heads_parse() reads it, with the same
 * answer to a bad blob as every other reader. */
int
epoch__heads_parse(epoch__head **out, size_t *n_out, const unsigned char *h,
                   size_t len)
{
    head_list l = { NULL, 0, 0 };
    int rc;

    *out = NULL;
    *n_out = 0;
    if ((rc = crdt_heads_parse(h, len, keep_head, &l)) < 0) {
        free(l.v);
        return rc;
    }
    *out = l.v;
    *n_out = l.n;
    return CRDT_OK;
}

static const epoch__head *
heads_find(const epoch__head *v, size_t n, const crdt_actor *a)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(v[i].actor.b, a->b, CRDT_ACTOR_BYTES) == 0)
            return &v[i];
    return NULL;
}

/* The child of our epoch @p cur on @p target's ancestry, into @p out.
 * @return 1 found; 0 the target does not descend from @p cur. */
static int
child_of(epoch_info *out, crdt_raw *t, const epoch_info *cur,
         const unsigned char *target_id)
{
    epoch_info e;
    int rc;

    if ((rc = epoch__get_in(&e, t, target_id)) < 0)
        return rc;
    for (uint64_t steps = 0; steps < EPOCH__CHAIN_MAX; steps++) {
        epoch_info up;
        if (e.number <= cur->number)
            break;
        if (memcmp(e.parent, cur->id, EPOCH_ID_BYTES) == 0) {
            *out = e;
            return 1;
        }
        if ((rc = epoch__get_in(&up, t, e.parent)) < 0) {
            epoch_info_clear(&e);
            return rc;
        }
        epoch_info_clear(&e);
        e = up;
    }
    epoch_info_clear(&e);
    return 0;
}

/* Compare our heads with the cut: what we lack, what we hold beyond it,
 * and the first actor whose chain forks from the cut's. */
static int
compare_heads(crdt_raw *t, const epoch__head *cut, size_t n_cut,
              uint64_t *lacking, uint64_t *beyond, size_t *fork_at)
{
    unsigned char *ours_blob = NULL;
    size_t ours_len = 0, n_ours = 0;
    epoch__head *ours = NULL;
    int rc;

    *lacking = *beyond = 0;
    *fork_at = SIZE_MAX;
    if ((rc = crdt_raw_heads_encode(&ours_blob, &ours_len, t)) < 0)
        return rc;
    rc = epoch__heads_parse(&ours, &n_ours, ours_blob, ours_len);
    crdt_free(ours_blob);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n_cut; i++) {
        const epoch__head *o = heads_find(ours, n_ours, &cut[i].actor);
        uint64_t have = o ? o->seq : 0;
        if (have < cut[i].seq)
            *lacking += cut[i].seq - have;
        else if (o && have == cut[i].seq &&
                 memcmp(o->hash, cut[i].hash, CRDT_HASH_BYTES) != 0 &&
                 *fork_at == SIZE_MAX)
            *fork_at = i; /* same seq, another change: two chains */
    }
    for (size_t i = 0; i < n_ours; i++) {
        const epoch__head *c = heads_find(cut, n_cut, &ours[i].actor);
        uint64_t folded = c ? c->seq : 0;
        if (ours[i].seq > folded)
            *beyond += ours[i].seq - folded;
    }
    free(ours);
    return CRDT_OK;
}

/* Keeps (2): rewrite the active state through @p lens into the spare
 * slot and swap, as the builder does. */
static int
apply_lens(crdt_raw *t, const epoch_lens *lens)
{
    epoch__rewrite_opts o;
    int rc;

    memset(&o, 0, sizeof o);
    o.lens = lens; /* inline: a second thread would read the slot as this
                      txn began, which is not sure to be what it holds */
    rc = epoch__rewrite_slot(t, &o, NULL);
    if (rc == CRDT_OK)
        rc = crdt_raw_swap_state(t);
    return rc;
}

/* A refused epoch stays refused: meta "refused" | id = the reason. Once
 * this replica writes beyond the cut it could no longer re-derive the
 * epoch, and must not then take it on the signature alone. */
#define REFUSED_KEY "refused"
#define REFUSED_KEY_LEN 7

static void
refused_key(unsigned char *key, const unsigned char *id)
{
    memcpy(key, REFUSED_KEY, REFUSED_KEY_LEN);
    memcpy(key + REFUSED_KEY_LEN, id, EPOCH_ID_BYTES);
}

/* Is @p id, or an epoch between it and our current one, refused? Fills
 * @p out from the stored reason. */
static int
refused_on_path(epoch_check *out, crdt_raw *t, const epoch_info *cur,
                const unsigned char *target_id)
{
    unsigned char key[REFUSED_KEY_LEN + EPOCH_ID_BYTES];
    epoch_info e;
    const void *v;
    size_t vl;
    int rc, found = 0;

    if ((rc = epoch__get_in(&e, t, target_id)) < 0)
        return rc;
    for (uint64_t steps = 0; steps < EPOCH__CHAIN_MAX && !found; steps++) {
        epoch_info up;
        if (e.number <= cur->number)
            break;
        refused_key(key, e.id);
        rc = crdt_raw_get(t, CRDT_DB_META, key, sizeof key, &v, &vl);
        if (rc < 0 && rc != CRDT_ENOTFOUND)
            break;
        if (rc == CRDT_ENOTFOUND) {
            rc = CRDT_OK;
        } else {
            out->verdict = EPOCH_DERIVED_MISMATCH;
            out->number = e.number;
            snprintf(out->reason, sizeof out->reason, "%.*s",
                     (int)(vl < sizeof out->reason ? vl
                                                   : sizeof out->reason - 1),
                     (const char *)v);
            found = 1;
            break;
        }
        if ((rc = epoch__get_in(&up, t, e.parent)) < 0)
            break;
        epoch_info_clear(&e);
        e = up;
    }
    epoch_info_clear(&e);
    return rc < 0 ? rc : found;
}

/* Remember a refusal, in its own committed txn. */
static int
refusal_put(crdt_replica *r, const unsigned char *id, const char *reason)
{
    unsigned char key[REFUSED_KEY_LEN + EPOCH_ID_BYTES];
    crdt_raw *t;
    int rc;

    refused_key(key, id);
    for (int tries = 0; tries < 8; tries++) {
        if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
            return rc;
        rc = crdt_raw_put(t, CRDT_DB_META, key, sizeof key, reason,
                          strlen(reason));
        if (rc == CRDT_OK)
            rc = crdt_raw_commit(t);
        else
            crdt_raw_abort(t);
        if (!epoch__grew(r, &rc))
            break;
    }
    return rc;
}

/* The whole check inside the scratch txn @p t (aborted by the caller). */
static int
check_in(epoch_check *out, crdt_raw *t, const unsigned char *target_id)
{
    epoch_info cur, k;
    const unsigned char *cut_blob;
    size_t cut_len, n_cut = 0, fork_at;
    epoch__head *cut = NULL;
    epoch_lens *lens = NULL;
    unsigned char hash[CRDT_HASH_BYTES];
    uint64_t beyond;
    char who[17];
    int rc;

    memset(&k, 0, sizeof k);
    if ((rc = epoch__current_in(&cur, t)) < 0)
        return rc;
    if ((rc = refused_on_path(out, t, &cur, target_id)) != 0) {
        epoch_info_clear(&cur);
        return rc < 0 ? rc : CRDT_OK;
    }
    if ((rc = child_of(&k, t, &cur, target_id)) <= 0) {
        if (rc == 0)
            snprintf(out->reason, sizeof out->reason,
                     "the epoch does not descend from this replica's epoch "
                     "%llu: its admin's signature alone vouches for it",
                     (unsigned long long)cur.number);
        epoch_info_clear(&cur);
        return rc;
    }
    out->number = k.number;
    crdt_hex(who, k.creator, 8);
    if (k.custom[0] != '\0') {
        snprintf(out->reason, sizeof out->reason,
                 "epoch %llu runs the custom migration %s, which this "
                 "replica cannot re-run: its admin's signature alone "
                 "vouches for it", (unsigned long long)k.number, k.custom);
        goto done;
    }
    if ((rc = epoch__record_heads(&cut_blob, &cut_len, &k)) < 0 ||
        (rc = epoch__heads_parse(&cut, &n_cut, cut_blob, cut_len)) < 0)
        goto done;
    if ((rc = compare_heads(t, cut, n_cut, &out->lacking, &beyond,
                            &fork_at)) < 0)
        goto done;
    if (fork_at != SIZE_MAX) {
        char actor[17];
        crdt_hex(actor, cut[fork_at].actor.b, CRDT_ACTOR_BYTES);
        out->forked = 1;
        out->fork_actor = cut[fork_at].actor;
        out->fork_seq = cut[fork_at].seq;
        snprintf(out->reason, sizeof out->reason,
                 "equivocation: epoch %llu folds another change of actor %s "
                 "than this replica holds at the same seq; its admin's "
                 "signature alone vouches for it",
                 (unsigned long long)k.number, actor);
        goto done;
    }
    if (out->lacking > 0) {
        out->verdict = EPOCH_DERIVED_UNCHECKED;
        snprintf(out->reason, sizeof out->reason,
                 "this replica lacks %llu ops epoch %llu folds: its "
                 "admin's signature alone vouches for it",
                 (unsigned long long)out->lacking,
                 (unsigned long long)k.number);
        goto done;
    }
    if (beyond > 0) {
        snprintf(out->reason, sizeof out->reason,
                 "this replica holds %llu ops beyond the cut of epoch %llu "
                 "and cannot take them out of its state: its admin's "
                 "signature alone vouches for it",
                 (unsigned long long)beyond, (unsigned long long)k.number);
        out->verdict = EPOCH_DERIVED_UNCHECKED;
        goto done;
    }
    /* our state is the state at the cut: migrate it as the creator did */
    if (k.lens[0] != '\0' &&
        ((rc = epoch_lens_parse(&lens, k.lens, strlen(k.lens), NULL)) < 0 ||
         (rc = apply_lens(t, lens)) < 0))
        goto done;
    if ((rc = epoch__seq_epoch(t, lens, 0)) < 0) /* as the builder does */
        goto done;
    if ((rc = crdt_raw_state_hash(t, hash)) < 0)
        goto done;
    if (memcmp(hash, k.state_hash, CRDT_HASH_BYTES) == 0) {
        out->verdict = EPOCH_DERIVED_MATCH;
        snprintf(out->reason, sizeof out->reason,
                 "epoch %llu from %s re-derived: same state hash",
                 (unsigned long long)k.number, who);
    } else {
        out->verdict = EPOCH_DERIVED_MISMATCH;
        out->refuse_new = 1;
        memcpy(out->refused_id, k.id, EPOCH_ID_BYTES);
        snprintf(out->reason, sizeof out->reason,
                 "epoch %llu from %s does not match its migration: state "
                 "hash differs", (unsigned long long)k.number, who);
    }
done:
    epoch_lens_free(lens);
    free(cut);
    epoch_info_clear(&k);
    epoch_info_clear(&cur);
    return rc;
}

int
epoch_check_derivation(epoch_check *out, crdt_replica *r,
                       const unsigned char *target_id)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || r == NULL || target_id == NULL)
        return CRDT_EINVAL;
    memset(out, 0, sizeof *out);
    out->verdict = EPOCH_DERIVED_UNCHECKED;
    /* keeps (1): a write txn, for the spare slot, never committed */
    for (int tries = 0; tries < 8; tries++) {
        if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
            return rc;
        if ((rc = epoch__staging_active(t)) != 0) /* a reset is staging */
            rc = rc > 0 ? CRDT_EBUSY : rc;       /* in the spare slot */
        else
            rc = check_in(out, t, target_id);
        crdt_raw_abort(t);
        if (!epoch__grew(r, &rc))
            break;
    }
    if (rc == CRDT_OK && out->refuse_new)
        rc = refusal_put(r, out->refused_id, out->reason);
    return rc;
}
