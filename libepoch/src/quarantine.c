/*
 * quarantine.c: ops that could not be rebased, kept with their reason.
 *
 * The records are libcrdt's (crdt_raw_quarantine_put(),
 * crdt_quarantine_decode(), crdt/raw.h); this file decides what goes
 * there and lists and re-applies it. The kind (rebase, unsynced, equivocation, pending overflow) and the tag
 * (the change's hash) keep two reasons, or two versions of one
 * (actor, seq), from overwriting each other.
 *
 * Nothing leaves the quarantine except by epoch_quarantine_apply(), in
 * the same txn that writes the op again as a new local change.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

static int
decode(epoch_quarantined *q, char *reason, size_t rsz, const void *k,
       size_t kl, const void *v, size_t vl)
{
    crdt_quarantined c;
    int rc;

    if ((rc = crdt_quarantine_decode(&c, k, kl, v, vl)) < 0)
        return rc;
    q->actor = c.actor;
    q->seq = c.seq;
    q->hlc = c.hlc;
    q->kind = c.kind;
    q->key = k;
    q->key_len = kl;
    q->op = c.op;
    memcpy(q->epoch_id, c.epoch_id, EPOCH_ID_BYTES);
    snprintf(reason, rsz, "%.*s", (int)c.reason_len, c.reason);
    q->reason = reason;
    return CRDT_OK;
}

int
epoch_quarantine_list(crdt_replica *r, epoch_quarantine_cb cb, void *ctx)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    char reason[256];
    int rc;

    if (r == NULL || cb == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_QUARANTINE)) < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        epoch_quarantined q;
        if ((rc = decode(&q, reason, sizeof reason, k, kl, v, vl)) < 0)
            break;
        if ((rc = cb(&q, ctx)) != 0)
            break;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return rc == CRDT_ENOTFOUND ? CRDT_OK : rc;
}

int
epoch_quarantine_count(uint64_t *out, crdt_replica *r)
{
    crdt_raw *t;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 0)) < 0)
        return rc;
    rc = crdt_raw_count(out, t, CRDT_DB_QUARANTINE);
    crdt_raw_abort(t);
    return rc;
}

/* Log keys of changes that left the log for the quarantine. */
typedef struct {
    unsigned char (*k)[16];
    size_t n;
} dead_keys;

static int
dead_add(dead_keys *d, const void *k)
{
    void *nd = realloc(d->k, (d->n + 1) * sizeof *d->k);

    if (nd == NULL)
        return CRDT_ENOMEM;
    d->k = nd;
    memcpy(d->k[d->n++], k, 16);
    return CRDT_OK;
}

/* The changes in the quarantine will never reach a peer: drop them from
 * the log (after the cursor is closed) and recount it. */
static int
dead_drop(crdt_raw *t, dead_keys *d, int rc)
{
    for (size_t i = 0; rc == CRDT_OK && i < d->n; i++)
        rc = crdt_raw_del(t, CRDT_DB_LOG, d->k[i], 16);
    if (rc == CRDT_OK && d->n > 0)
        rc = crdt_raw_recount_log(t);
    free(d->k);
    d->k = NULL;
    d->n = 0;
    return rc;
}

/* Decode the log record @p v into @p ch, over a copy in @p *copy (the
 * caller frees it): the record's bytes end with the cursor's txn view. */
static int
log_change(crdt_change *ch, unsigned char **copy, const void *v, size_t vl)
{
    int rc;

    if ((*copy = malloc(vl ? vl : 1)) == NULL)
        return CRDT_ENOMEM;
    memcpy(*copy, v, vl);
    if ((rc = crdt_change_decode(ch, *copy, vl)) < 0) {
        free(*copy);
        *copy = NULL;
    }
    return rc;
}

int
epoch__quarantine_unsynced_in(uint64_t *moved_out, crdt_raw *t,
                              const unsigned char *target_heads,
                              size_t heads_len, const char *reason)
{
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    uint64_t moved = 0;
    dead_keys dead = { NULL, 0 };
    int rc;

    if ((rc = crdt_raw_cursor_open(&c, t, CRDT_DB_LOG)) < 0)
        return rc;
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        crdt_change ch;
        unsigned char *copy;
        uint64_t have, n = 0;

        if ((rc = log_change(&ch, &copy, v, vl)) < 0)
            break;
        rc = crdt_heads_seq(&have, target_heads, heads_len, &ch.actor);
        if (rc == CRDT_OK && ch.seq + ch.n_ops - 1 > have) {
            rc = crdt_raw_quarantine_change(&n, t, &ch, have,
                                            CRDT_QK_UNSYNCED, reason);
            moved += n;
            if (rc == CRDT_OK)
                rc = dead_add(&dead, k);
        }
        free(copy);
        if (rc < 0)
            break;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    rc = dead_drop(t, &dead, rc);
    if (rc == CRDT_OK && moved_out)
        *moved_out = moved;
    return rc;
}

/*
 * The losing side of an equivocation, inside a reset's switching txn:
 * every change of a forked actor in our log that the winner's chain
 * does not hold (not folded into the epoch's base, not among the
 * winner's staged changes under the same key with the same hash) goes to
 * the quarantine (kind 'e') and leaves the log, so the replay adopts the
 * winner's chain and nothing of ours is overwritten or lost.
 */
int
epoch__quarantine_forks_in(uint64_t *moved_out, crdt_raw *t,
                           const crdt_actor *actors, size_t n_actors,
                           const unsigned char *base_heads,
                           size_t heads_len, const char *reason)
{
    uint64_t moved = 0;
    int rc = CRDT_OK;

    for (size_t a = 0; rc == CRDT_OK && a < n_actors; a++) {
        dead_keys dead = { NULL, 0 };
        crdt_raw_cursor *c;
        const void *k, *v;
        size_t kl, vl;
        uint64_t base;

        if ((rc = crdt_heads_seq(&base, base_heads, heads_len,
                                 &actors[a])) < 0 ||
            (rc = crdt_raw_cursor_open(&c, t, CRDT_DB_LOG)) < 0)
            break;
        rc = crdt_raw_cursor_seek(c, actors[a].b, 8, &k, &kl, &v, &vl);
        while (rc == CRDT_OK && kl == 16 &&
               memcmp(k, actors[a].b, 8) == 0) {
            const void *sv;
            size_t svl;
            crdt_change ch, theirs;
            unsigned char *copy;
            uint64_t n = 0;

            if ((rc = log_change(&ch, &copy, v, vl)) < 0)
                break;
            int keep = ch.seq + ch.n_ops - 1 <= base;
            if (!keep &&
                crdt_raw_get(t, CRDT_DB_STAGING, k, 16, &sv, &svl) ==
                    CRDT_OK &&
                crdt_change_decode(&theirs, sv, svl) == CRDT_OK &&
                memcmp(theirs.hash, ch.hash, CRDT_HASH_BYTES) == 0)
                keep = 1;
            if (!keep) {
                rc = crdt_raw_quarantine_change(&n, t, &ch, 0,
                                                CRDT_QK_EQUIVOCATION, reason);
                moved += n;
                if (rc == CRDT_OK)
                    rc = dead_add(&dead, k);
            }
            free(copy);
            if (rc < 0)
                break;
            rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
        }
        crdt_raw_cursor_close(c);
        if (rc == CRDT_ENOTFOUND)
            rc = CRDT_OK;
        rc = dead_drop(t, &dead, rc);
    }
    if (rc == CRDT_OK && moved_out)
        *moved_out = moved;
    return rc;
}

/* epoch_quarantine_unsynced() inside its write txn. */
struct unsynced {
    uint64_t moved;
    const unsigned char *heads;
    size_t heads_len;
    const char *reason;
};

static int
unsynced_in(crdt_raw *t, void *ctx)
{
    struct unsynced *u = ctx;
    int rc;

    u->moved = 0;
    /* it takes single changes out of the log by key (storage.md 3) */
    rc = crdt_raw_log_split(NULL, t, CRDT_DB_LOG);
    if (rc == CRDT_OK)
        rc = epoch__quarantine_unsynced_in(&u->moved, t, u->heads,
                                           u->heads_len, u->reason);
    return rc;
}

int
epoch_quarantine_unsynced(uint64_t *moved_out, crdt_replica *r,
                          const unsigned char *target_heads,
                          size_t heads_len, const char *reason)
{
    struct unsynced u = { 0, target_heads, heads_len, reason };
    int rc;

    if (r == NULL || reason == NULL)
        return CRDT_EINVAL;
    if ((rc = epoch__write(r, unsynced_in, &u)) < 0)
        return rc;
    if (moved_out)
        *moved_out = u.moved;
    return CRDT_OK;
}

/* ---- re-apply ---- */

typedef struct {
    unsigned char key[CRDT_QUARANTINE_KEY_BYTES];
    size_t key_len;
    unsigned char *op;    /* encoded op (copy) */
    size_t op_len;
    crdt_actor actor;     /* the op it is: what a re-applied copy names */
    uint64_t seq;
    uint64_t hlc;         /* and its stamp, which the copy keeps */
} held;

typedef struct {
    held *v;
    size_t n;
    int kind;                /* only this kind, when not 0 */
    const crdt_actor *actor; /* only this actor, when not NULL */
    int as_copies;           /* re-written as copies of what they were */
} held_list;

static int
collect(const epoch_quarantined *q, void *p)
{
    held_list *l = p;
    crdt__enc e;
    held *nv;

    if ((l->kind != 0 && q->kind != l->kind) ||
        (l->actor != NULL && memcmp(q->actor.b, l->actor->b, 8) != 0))
        return 0;
    nv = realloc(l->v, (l->n + 1) * sizeof *nv);

    if (nv == NULL)
        return CRDT_ENOMEM;
    l->v = nv;
    memcpy(nv[l->n].key, q->key, q->key_len);
    nv[l->n].key_len = q->key_len;
    nv[l->n].actor = q->actor;
    nv[l->n].seq = q->seq;
    nv[l->n].hlc = q->hlc;
    crdt__enc_init(&e);
    if (crdt__op_encode(&e, &q->op) < 0 || crdt__enc_ok(&e) < 0) {
        crdt__enc_free(&e);
        return CRDT_ENOMEM;
    }
    nv[l->n].op = (unsigned char *)e.sb.data; /* handed over */
    nv[l->n].op_len = e.sb.size;
    l->n++;
    return 0;
}

static int
reapply(crdt_txn *t, const crdt_op *op)
{
    char coll[CRDT_NAME_MAX + 1], doc[CRDT_NAME_MAX + 1];
    char field[CRDT_NAME_MAX + 1];

    snprintf(coll, sizeof coll, "%.*s", (int)op->coll_len, op->coll);
    snprintf(doc, sizeof doc, "%.*s", (int)op->doc_len, op->doc);
    if (op->field)
        snprintf(field, sizeof field, "%.*s", (int)op->field_len, op->field);
    switch (op->kind) {
    case CRDT_OP_PUT: return crdt_txn_put(t, coll, doc, field, &op->value);
    case CRDT_OP_INCR: return crdt_txn_incr(t, coll, doc, field, op->delta);
    case CRDT_OP_SADD: return crdt_txn_sadd(t, coll, doc, field, &op->value);
    case CRDT_OP_SREM: return crdt_txn_srem(t, coll, doc, field, &op->value);
    case CRDT_OP_DEL_FIELD: return crdt_txn_del_field(t, coll, doc, field);
    case CRDT_OP_DEL_DOC: return crdt_txn_del_doc(t, coll, doc);
    /* a held sequence op is re-applied at the index its writer saw */
    case CRDT_OP_TINS:
        return crdt_txn_text_insert(t, coll, doc, field, op->pos, op->text,
                                    op->text_len);
    case CRDT_OP_TDEL:
        return crdt_txn_text_delete(t, coll, doc, field, op->pos, op->len);
    case CRDT_OP_LINS:
        return crdt_txn_list_insert(t, coll, doc, field, op->pos, &op->value);
    case CRDT_OP_LDEL:
        return crdt_txn_list_delete(t, coll, doc, field, op->pos, op->len);
    case CRDT_OP_LSET:
        return crdt_txn_list_set(t, coll, doc, field, op->pos, &op->value);
    }
    return CRDT_EINVAL;
}

/* A held op the current state refuses: it stays held, the others go on. */
static int
refused(int rc)
{
    return rc == CRDT_ETYPE || rc == CRDT_EINVAL || rc == CRDT_ELIMIT ||
           rc == CRDT_ENOTFOUND;
}

static int
apply_where(uint64_t *applied_out, uint64_t *kept_out, crdt_replica *r,
            int kind, const crdt_actor *actor)
{
    held_list l = { NULL, 0, kind, actor, kind == CRDT_QK_EQUIVOCATION };
    crdt_txn *t = NULL;
    uint64_t applied = 0, kept = 0;
    int rc;

    if (r == NULL)
        return CRDT_EINVAL;
    if ((rc = epoch_quarantine_list(r, collect, &l)) < 0)
        goto done;
    if (l.n == 0)
        goto done;
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        goto done;
    /* The ops are applied as written: the user re-applies them after
     * checking (or editing) them against the current schema. One that
     * the current state refuses (a type clash, a position past the end,
     * a text or list that is not there any more) stays; none of those
     * fails the txn. */
    for (size_t i = 0; i < l.n; i++) {
        crdt__mp m = { l.v[i].op, l.v[i].op + l.v[i].op_len };
        crdt_op op;
        if (crdt__op_decode(&op, &m) < 0) {
            kept++;
            continue;
        }
        /* a losing version's op, re-written under the new incarnation,
         * names the op it copies (the key's tag: the hash of its
         * change), so that a rebase into an epoch whose cut folds that
         * very change skips it (rebase.c): the state has it already;
         * and its stamp, under which a copied register write lands as
         * the very write it copies */
        if (l.as_copies && l.v[i].key_len == CRDT_QUARANTINE_KEY_BYTES)
            rc = crdt_txn_copy_of(t, &l.v[i].actor, l.v[i].seq,
                                  l.v[i].key + 17, l.v[i].hlc);
        else
            rc = crdt_txn_copy_of(t, NULL, 0, NULL, 0);
        if (rc < 0)
            break;
        rc = reapply(t, &op);
        if (refused(rc)) {
            kept++;
            continue;
        }
        if (rc < 0)
            break;
        if ((rc = crdt_txn_raw_del(t, CRDT_DB_QUARANTINE, l.v[i].key,
                                    l.v[i].key_len)) < 0)
            break;
        applied++;
    }
    if (rc < 0 && !refused(rc)) {
        crdt_txn_abort(t);
        goto done;
    }
    rc = crdt_txn_commit(t, NULL);
done:
    for (size_t i = 0; i < l.n; i++)
        free(l.v[i].op);
    free(l.v);
    if (rc == CRDT_OK) {
        if (applied_out)
            *applied_out = applied;
        if (kept_out)
            *kept_out = kept;
    }
    return rc;
}

int
epoch_quarantine_apply(uint64_t *applied_out, uint64_t *kept_out,
                       crdt_replica *r)
{
    return apply_where(applied_out, kept_out, r, 0, NULL);
}

int
epoch_quarantine_apply_lost(uint64_t *applied_out, crdt_replica *r,
                            const crdt_actor *actor)
{
    if (actor == NULL)
        return CRDT_EINVAL;
    return apply_where(applied_out, NULL, r, CRDT_QK_EQUIVOCATION, actor);
}
