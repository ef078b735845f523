/*
 * cut.c: which changes of an epoch's cut a taker lacks, and whether this
 * giver can supply them (docs/protocol.md, CUT; docs/security.md 7).
 *
 * A taker at epoch N re-derives epoch N+1 from its own state only when it
 * holds exactly the changes N+1 folds (libepoch derive.c). One that
 * missed some writes of epoch N cannot, and would adopt N+1 on its
 * creator's signature alone. The giver keeps those changes in its archive
 * (under N's number), so it sends the ones the taker lacks first; the
 * taker merges them as any change and then holds the cut.
 *
 * The giver sends them only when that makes the check possible, so a
 * fetch never costs bytes for nothing:
 *  - the taker holds something (a new replica, with an empty version
 *    vector, syncs by snapshot to avoid history: it keeps the old rule);
 *  - the epoch on our chain whose parent is the taker's epoch exists and
 *    runs no custom migration;
 *  - the taker holds nothing beyond that epoch's cut, and lacks something
 *    of it;
 *  - the archive holds, for every actor the taker lacks seqs of, exactly
 *    the run from the taker's head to the cut: contiguous, chained to the
 *    taker's head hash, ending on the cut's own change (its chain hash)
 *    and a signed one (a message never ends a run on an unsigned one),
 *    at most CUT_BYTES_MAX bytes in all.
 * Otherwise (pruned archive, a fork, too much) nothing is sent and the
 * signature vouches, as before.
 * Invariant: one change in hand at a time (an export cursor), the vvs
 * are the only memory that grows, with the number of actors.
 */
#include <stdlib.h>
#include <string.h>

#include "crdt/raw.h"
#include "cut.h"
#include "net_internal.h"

#define CUT_BYTES_MAX CRDTNET__CUT_BYTES_MAX
#define CUT_CHAIN_MAX 65536 /* epochs walked up our chain */

/* The cut's chain hashes, per actor, sorted by actor for lookups. */
typedef struct {
    crdt_actor actor;
    unsigned char hash[CRDT_HASH_BYTES];
} cut_head;

typedef struct {
    cut_head *v;
    size_t n, cap;
} cut_heads;

static int
keep_head(const crdt_head *h, void *ctx)
{
    cut_heads *l = ctx;

    if (l->n == l->cap) {
        cut_head *v = crdtnet__grow(l->v, &l->cap, sizeof *v);
        if (v == NULL)
            return CRDT_ENOMEM;
        l->v = v;
    }
    l->v[l->n].actor = h->actor;
    memcpy(l->v[l->n].hash, h->hash, CRDT_HASH_BYTES);
    l->n++;
    return CRDT_OK;
}

static int
cmp_head(const void *x, const void *y)
{
    return memcmp(((const cut_head *)x)->actor.b,
                  ((const cut_head *)y)->actor.b, CRDT_ACTOR_BYTES);
}

/* Does the cut's change of @p a have hash @p hash? */
static int
cut_hash_is(const cut_heads *l, const crdt_actor *a,
            const unsigned char *hash)
{
    cut_head key;
    const cut_head *h;

    key.actor = *a;
    h = bsearch(&key, l->v, l->n, sizeof *l->v, cmp_head);
    return h != NULL && memcmp(h->hash, hash, CRDT_HASH_BYTES) == 0;
}

/* The epoch on the chain of @p from (NULL: our current epoch) up whose
 * parent is @p taker_epoch, into @p out. @return 1 found; 0 not; < 0 an
 * error. */
static int
child_of_taker(epoch_info *out, crdt_replica *r, const unsigned char *from,
               const unsigned char *taker_epoch)
{
    epoch_info e;
    int rc;

    if ((rc = from ? epoch_get(&e, r, from) : epoch_current(&e, r)) < 0)
        return rc == CRDT_ENOTFOUND ? 0 : rc;
    for (int steps = 0; steps < CUT_CHAIN_MAX && e.number > 0; steps++) {
        epoch_info up;
        if (memcmp(e.parent, taker_epoch, EPOCH_ID_BYTES) == 0) {
            *out = e;
            return 1;
        }
        if ((rc = epoch_get(&up, r, e.parent)) < 0) {
            epoch_info_clear(&e);
            return rc == CRDT_ENOTFOUND ? 0 : rc;
        }
        epoch_info_clear(&e);
        e = up;
    }
    epoch_info_clear(&e);
    return 0;
}

/* How many actors of @p upto the taker lacks seqs of. */
static size_t
actors_lacking(const crdt_vv *taker, const crdt_vv *upto)
{
    size_t n = 0;

    for (size_t i = 0; i < crdt_vv_count(upto); i++) {
        crdt_actor a;
        uint64_t seq;
        crdt_vv_entry(upto, i, &a, &seq);
        n += crdt_vv_get(taker, &a) < seq;
    }
    return n;
}

/* Does the taker hold nothing beyond @p upto and lack something of it? */
static int
taker_below_cut(const crdt_vv *taker, const crdt_vv *upto)
{
    for (size_t i = 0; i < crdt_vv_count(taker); i++) {
        crdt_actor a;
        uint64_t seq;
        crdt_vv_entry(taker, i, &a, &seq);
        if (seq > crdt_vv_get(upto, &a))
            return 0; /* beyond the cut: nothing can be derived */
    }
    return actors_lacking(taker, upto) > 0;
}

/* One pass over what the archive would export: every lacking actor's run
 * whole, chained from the taker's head to the cut's own change (its
 * hash), ending signed. @return 1 it can be sent; 0 not. */
static int
archive_supplies(crdt_replica *r, uint64_t number, const crdt_vv *taker,
                 const crdt_vv *upto, const cut_heads *cut,
                 const unsigned char *heads, size_t heads_len)
{
    crdt_export *x = NULL;
    const unsigned char *p;
    size_t len, runs = 0;
    uint64_t bytes = 0, next = 0;
    unsigned char prev[CRDT_HASH_BYTES];
    crdt_actor cur;
    int rc, in_run = 0, last_signed = 0, ok = 1;

    if ((rc = crdt_export_begin_archive(&x, r, number, taker, upto)) < 0)
        return rc;
    while (ok && (rc = crdt_export_next(x, &p, &len)) == CRDT_OK) {
        crdt_change c;
        if (crdt_change_decode(&c, p, len) != CRDT_OK) {
            ok = 0;
            break;
        }
        bytes += len;
        if (!in_run || memcmp(c.actor.b, cur.b, CRDT_ACTOR_BYTES) != 0) {
            uint64_t have = crdt_vv_get(taker, &c.actor);
            /* the run before ends at the cut, signed */
            if (in_run && (next - 1 != crdt_vv_get(upto, &cur) ||
                           !last_signed || !cut_hash_is(cut, &cur, prev))) {
                ok = 0;
                break;
            }
            cur = c.actor;
            in_run = 1;
            runs++;
            next = have + 1;
            if (have > 0) { /* the run starts on the taker's head */
                uint64_t hs;
                if (crdt_heads_lookup(&hs, prev, heads, heads_len,
                                      &c.actor) != CRDT_OK ||
                    hs != have) {
                    ok = 0;
                    break;
                }
            } else {
                memcpy(prev, c.prev, sizeof prev); /* the chain's start */
            }
        }
        if (c.seq != next || memcmp(c.prev, prev, sizeof prev) != 0 ||
            bytes > CUT_BYTES_MAX) {
            ok = 0;
            break;
        }
        next = c.seq + c.n_ops;
        memcpy(prev, c.hash, sizeof prev);
        last_signed = c.sig != NULL;
    }
    crdt_export_end(x);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (ok && in_run &&
        (next - 1 != crdt_vv_get(upto, &cur) || !last_signed ||
         !cut_hash_is(cut, &cur, prev)))
        ok = 0;
    return ok && runs == actors_lacking(taker, upto);
}

int
crdtnet__cut_plan(crdtnet__cut *out, crdt_replica *r,
                  const unsigned char *taker_epoch, const crdt_vv *taker_vv,
                  const unsigned char *taker_heads, size_t heads_len)
{
    epoch_info k;
    const unsigned char *h;
    size_t hl;
    cut_heads cut = { NULL, 0, 0 };
    int rc;

    memset(out, 0, sizeof *out);
    if (taker_vv == NULL || crdt_vv_count(taker_vv) == 0)
        return CRDT_ENOTFOUND; /* a new replica: the snapshot alone */
    if ((rc = child_of_taker(&k, r, NULL, taker_epoch)) <= 0)
        return rc < 0 ? rc : CRDT_ENOTFOUND;
    rc = CRDT_ENOTFOUND;
    if (k.custom[0] == '\0' && k.number > 0 &&
        epoch_record_heads(&h, &hl, &k) == CRDT_OK &&
        (rc = crdt_heads_vv(&out->upto, h, hl)) == CRDT_OK) {
        rc = CRDT_ENOTFOUND;
        if (taker_below_cut(taker_vv, out->upto) &&
            (rc = crdt_heads_parse(h, hl, keep_head, &cut)) == CRDT_OK) {
            qsort(cut.v, cut.n, sizeof *cut.v, cmp_head);
            rc = archive_supplies(r, k.number - 1, taker_vv, out->upto,
                                  &cut, taker_heads, heads_len);
            rc = rc < 0 ? rc : rc ? CRDT_OK : CRDT_ENOTFOUND;
        }
    }
    free(cut.v);
    out->archive_epoch = k.number - 1;
    epoch_info_clear(&k);
    if (rc < 0)
        crdtnet__cut_clear(out);
    return rc;
}

void
crdtnet__cut_clear(crdtnet__cut *c)
{
    if (c == NULL)
        return;
    crdt_vv_free(c->upto);
    c->upto = NULL;
}

int
crdtnet__cut_bound(crdt_vv **out, crdt_replica *r,
                   const unsigned char *giver_epoch)
{
    epoch_info cur, k;
    const unsigned char *h;
    size_t hl;
    int rc;

    *out = NULL;
    if ((rc = epoch_current(&cur, r)) < 0)
        return rc;
    rc = child_of_taker(&k, r, giver_epoch, cur.id);
    epoch_info_clear(&cur);
    if (rc <= 0)
        return rc < 0 ? rc : CRDT_ENOTFOUND;
    rc = epoch_record_heads(&h, &hl, &k);
    if (rc == CRDT_OK)
        rc = crdt_heads_vv(out, h, hl);
    epoch_info_clear(&k);
    return rc;
}
