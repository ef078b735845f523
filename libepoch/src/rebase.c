/*
 * rebase.c: the merge hook that carries ops written in another epoch
 * into the current one.
 *
 * Path from the op's epoch S to the current epoch C: walk up from S to
 * the first ancestor A of C (S itself when S is an ancestor), applying
 * the INVERSE of each epoch's lens on the way up, then the lens of each
 * epoch from A down to C. Every replica holds every record, so every
 * replica computes the same transform: the rebase is deterministic and
 * the change keeps its author's signature.
 *
 * An op that cannot be carried (a custom migration on the path, a field
 * or collection the lens removed, a failed conversion) goes to the
 * quarantine with the reason; it is never dropped silently.
 */
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"
#include "lens_internal.h"

#define MAX_PATH 4096

typedef struct {
    epoch_lens *lens; /* owned; already inverted when going up */
} step;

/* One change a copy names: its actor and the first 8 bytes of its hash. */
typedef struct {
    crdt_actor actor;
    unsigned char tag[8];
} copy_ref;

typedef struct {
    unsigned char src[EPOCH_ID_BYTES], cur[EPOCH_ID_BYTES];
    int valid;
    step *steps;
    size_t n;
    const char *blocked; /* reason when a custom migration is in the way */
    /* buffers for the transformed op */
    char coll[CRDT_NAME_MAX + 1], doc[CRDT_NAME_MAX + 1];
    char field[CRDT_NAME_MAX + 1];
    epoch_buf scratch;
    unsigned char *obs;
    /* copies (crdt_txn_copy_of()): the current epoch's cut, and the
     * changes a copying change names, for the last ones asked about */
    unsigned char cut_of[EPOCH_ID_BYTES];
    int cut_valid;
    epoch__head *cut;
    size_t n_cut;
    unsigned char refs_of[CRDT_HASH_BYTES];
    int refs_valid;
    copy_ref *refs;
    size_t n_refs;
} rebase_ctx;

static void
path_clear(rebase_ctx *x)
{
    for (size_t i = 0; i < x->n; i++)
        epoch_lens_free(x->steps[i].lens);
    free(x->steps);
    x->steps = NULL;
    x->n = 0;
    x->valid = 0;
    x->blocked = NULL;
}

static void
release(void *p)
{
    rebase_ctx *x = p;

    path_clear(x);
    epoch_buf_free(&x->scratch);
    crdt_free(x->obs); /* crdt_observed_map()'s */
    free(x->cut);
    free(x->refs);
    free(x);
}

static int
add_step(rebase_ctx *x, const epoch_info *e, int inverse)
{
    epoch_lens *l = NULL, *inv = NULL;
    step *s;
    int rc;

    if (e->custom[0] != '\0') {
        x->blocked = "a custom migration is in the way";
        return CRDT_OK;
    }
    if (e->lens[0] == '\0')
        return CRDT_OK; /* compaction only: nothing to transform */
    if ((rc = epoch_lens_parse(&l, e->lens, strlen(e->lens), NULL)) < 0)
        /* a stored lens that does not parse is damage; memory is not */
        return rc == CRDT_ENOMEM ? rc : CRDT_ECORRUPT;
    if (inverse) {
        rc = epoch_lens_invert(&inv, l);
        epoch_lens_free(l);
        if (rc < 0)
            return rc;
        l = inv;
    }
    s = realloc(x->steps, (x->n + 1) * sizeof *s);
    if (s == NULL) {
        epoch_lens_free(l);
        return CRDT_ENOMEM;
    }
    x->steps = s;
    x->steps[x->n++].lens = l;
    return CRDT_OK;
}

/* Build the path from @p src to the current epoch (see file comment). */
static int
build_path(rebase_ctx *x, crdt_raw *t, const unsigned char *src)
{
    unsigned char (*anc)[EPOCH_ID_BYTES] = NULL;
    epoch_info *down = NULL;
    size_t n_anc = 0, n_down = 0, common = 0;
    unsigned char cur[EPOCH_ID_BYTES], id[EPOCH_ID_BYTES];
    epoch_info e;
    int rc = CRDT_OK, found = 0;

    path_clear(x);
    if ((rc = crdt_raw_get_epoch(t, NULL, cur)) < 0)
        return rc;
    /* ancestors of the current epoch, newest first (with their records) */
    memcpy(id, cur, EPOCH_ID_BYTES);
    for (;;) {
        if (n_anc >= MAX_PATH) {
            rc = CRDT_ELIMIT;
            goto done;
        }
        if ((rc = epoch__get_in(&e, t, id)) < 0)
            goto done;
        /* each realloc result is kept as soon as it succeeds, so the
         * cleanup at done: frees exactly what is held */
        void *na = realloc(anc, (n_anc + 1) * EPOCH_ID_BYTES);
        if (na == NULL) {
            epoch_info_clear(&e);
            rc = CRDT_ENOMEM;
            goto done;
        }
        anc = na;
        void *nd = realloc(down, (n_down + 1) * sizeof *down);
        if (nd == NULL) {
            epoch_info_clear(&e);
            rc = CRDT_ENOMEM;
            goto done;
        }
        down = nd;
        memcpy(anc[n_anc++], id, EPOCH_ID_BYTES);
        down[n_down++] = e;
        if (e.number == 0)
            break;
        memcpy(id, e.parent, EPOCH_ID_BYTES);
    }
    /* up from src until we meet an ancestor of the current epoch */
    memcpy(id, src, EPOCH_ID_BYTES);
    for (size_t guard = 0; guard < MAX_PATH && !found; guard++) {
        for (size_t i = 0; i < n_anc; i++) {
            if (memcmp(anc[i], id, EPOCH_ID_BYTES) == 0) {
                common = i;
                found = 1;
                break;
            }
        }
        if (found)
            break;
        if ((rc = epoch__get_in(&e, t, id)) < 0)
            goto done; /* CRDT_ENOTFOUND: an epoch we hold no record of */
        rc = add_step(x, &e, 1);
        memcpy(id, e.parent, EPOCH_ID_BYTES);
        int genesis = e.number == 0;
        epoch_info_clear(&e);
        if (rc < 0)
            goto done;
        if (genesis) {
            rc = CRDT_ECORRUPT; /* another genesis: not our space */
            goto done;
        }
    }
    if (!found) {
        rc = CRDT_ELIMIT;
        goto done;
    }
    /* down from the common ancestor (exclusive) to the current epoch */
    for (size_t i = common; i > 0; i--)
        if ((rc = add_step(x, &down[i - 1], 0)) < 0)
            goto done;
    memcpy(x->src, src, EPOCH_ID_BYTES);
    memcpy(x->cur, cur, EPOCH_ID_BYTES);
    x->valid = 1;
done:
    for (size_t i = 0; i < n_down; i++)
        epoch_info_clear(&down[i]);
    free(down);
    free(anc);
    if (rc < 0)
        path_clear(x);
    return rc;
}

static epoch_op_kind
to_kind(crdt_op_kind k)
{
    return (epoch_op_kind)k; /* the two enums share their order */
}

typedef struct {
    const epoch_lens *lens;
    const char *coll;
    epoch_buf *scratch;
    const char *reason;
} map_ctx;

static int
map_field(const char **out, const char *field, size_t len, void *p)
{
    map_ctx *m = p;
    char f[CRDT_NAME_MAX + 1];
    const char *nf;
    int rc;

    memcpy(f, field, len);
    f[len] = 0;
    rc = epoch_lens_map_field(&nf, m->lens, m->coll, f);
    if (rc < 0)
        return rc;
    *out = nf == f ? NULL : nf; /* NULL: keep the original name */
    return CRDT_OK;
}

static int
map_elem(crdt_value *out, const char *field, size_t len,
         const crdt_value *in, void *p)
{
    map_ctx *m = p;
    char f[CRDT_NAME_MAX + 1];

    memcpy(f, field, len);
    f[len] = 0;
    if (epoch_lens_map_value(out, m->scratch, m->lens, m->coll, f, in,
                             &m->reason) < 0)
        *out = crdt_value_null(); /* as a migrated document has it */
    return CRDT_OK;
}

/*
 * The fields that step @p i adds with a default, carried to the current
 * schema by the later steps, are given to the document this op touches
 * (if it has no entry for them): a document migrated by those lenses has
 * them, so a document that only old ops bring must have them too.
 */
static int
apply_defaults(rebase_ctx *x, crdt_raw *t, size_t i, const char *coll,
               const char *doc)
{
    const epoch_lens *l = x->steps[i].lens;
    size_t n = epoch_lens_default_count(l, coll);
    int rc = CRDT_OK;

    for (size_t d = 0; d < n && rc == CRDT_OK; d++) {
        const char *f;
        char name[CRDT_NAME_MAX + 1];
        crdt_value v;
        epoch_buf scratch = EPOCH_BUF_INIT;
        int gone = 0;

        if ((rc = epoch_lens_default(&f, &v, l, coll, d)) < 0)
            break;
        snprintf(name, sizeof name, "%s", f);
        for (size_t j = i + 1; j < x->n && !gone; j++) {
            const char *nf;
            crdt_value nv;
            if (epoch_lens_map_value(&nv, &scratch, x->steps[j].lens, coll,
                                     name, &v, NULL) < 0)
                nv = crdt_value_null();
            v = nv;
            if (epoch_lens_map_field(&nf, x->steps[j].lens, coll, name) < 0)
                gone = 1;
            else if (nf != name)
                snprintf(name, sizeof name, "%s", nf);
        }
        if (!gone)
            rc = crdt_raw_state_default(t, coll, doc, name, &v);
        epoch_buf_free(&scratch);
    }
    return rc;
}

/*
 * A text or list op (TINS TDEL LINS LDEL LSET) from another epoch: a
 * lens renames its field, or removes it (or drops the collection), and
 * the op goes to the quarantine. Nothing else changes: its element ids
 * still name the same elements, because an epoch rewrites a sequence's
 * records under the new name as they are (rewrite.c), and a convert step
 * does not touch list elements, in a migrated document or here.
 */
static int
transform_seq(rebase_ctx *x, crdt_raw *t, const crdt_change *c, uint64_t seq,
              const crdt_op *in, crdt_op *out)
{
    epoch_op_view v, nv;
    const char *reason = NULL;
    int rc;

    memset(&v, 0, sizeof v);
    v.kind = EPOCH_OP_DEL_FIELD; /* a field op without a value: renames,
                                    removals and drops only */
    v.coll = x->coll;
    v.doc = x->doc;
    v.field = x->field;
    v.value = crdt_value_null();
    for (size_t i = 0; i < x->n; i++) {
        /* a text that a step turns into a string register: its ops have
         * no place there */
        if (epoch__lens_retypes(x->steps[i].lens, v.coll, v.field) ==
            EPOCH__TO_STRING) {
            reason = "field converted to string";
            goto quarantine;
        }
        rc = epoch_lens_apply_op(&nv, &x->scratch, x->steps[i].lens, &v,
                                 &reason);
        if (rc == CRDT_ENOTFOUND || rc == CRDT_ETYPE)
            goto quarantine;
        if (rc < 0)
            return rc;
        if ((rc = apply_defaults(x, t, i, v.coll, v.doc)) < 0)
            return rc;
        if (nv.field != NULL && nv.field != x->field) {
            snprintf(x->field, sizeof x->field, "%s", nv.field);
            nv.field = x->field;
        }
        v = nv;
    }
    *out = *in;
    out->coll = x->coll;
    out->coll_len = strlen(x->coll);
    out->doc = x->doc;
    out->doc_len = strlen(x->doc);
    out->field = x->field;
    out->field_len = strlen(x->field);
    /* an insert next to an element an epoch dropped has no place: the
     * same answer on every replica of this epoch (its base decides) */
    if ((rc = crdt_raw_seq_gone(t, out)) < 0)
        return rc;
    if (rc > 0) {
        reason = "anchor compacted away";
        goto quarantine;
    }
    return CRDT_OK;

quarantine:
    rc = crdt_raw_quarantine_put(t, c, seq, in, CRDT_QK_REBASE,
                                 reason ? reason : "cannot be rebased");
    return rc < 0 ? rc : CRDT_EREJECTED;
}

static int
transform_op(rebase_ctx *x, crdt_raw *t, const crdt_change *c, uint64_t seq,
             const crdt_op *in, crdt_op *out)
{
    unsigned char cur[EPOCH_ID_BYTES];
    epoch_op_view v, nv;
    crdt_op op = *in;
    const char *reason = NULL;
    int rc;

    if ((rc = crdt_raw_get_epoch(t, NULL, cur)) < 0)
        return rc;
    if (!x->valid || memcmp(x->src, c->epoch_id, EPOCH_ID_BYTES) != 0 ||
        memcmp(x->cur, cur, EPOCH_ID_BYTES) != 0) {
        if ((rc = build_path(x, t, c->epoch_id)) < 0)
            return rc;
    }
    if (x->blocked != NULL) {
        reason = x->blocked;
        goto quarantine;
    }
    memcpy(x->coll, in->coll, in->coll_len);
    x->coll[in->coll_len] = 0;
    memcpy(x->doc, in->doc, in->doc_len);
    x->doc[in->doc_len] = 0;
    if (in->field) {
        memcpy(x->field, in->field, in->field_len);
        x->field[in->field_len] = 0;
    }
    if (in->kind >= CRDT_OP_TINS) {
        if (in->field == NULL)
            return CRDT_ECORRUPT; /* the codec never yields one */
        return transform_seq(x, t, c, seq, in, out);
    }
    v.kind = to_kind(in->kind);
    v.coll = x->coll;
    v.doc = x->doc;
    v.field = in->field ? x->field : NULL;
    v.value = in->value;
    v.delta = in->delta;
    for (size_t i = 0; i < x->n; i++) {
        const epoch_lens *l = x->steps[i].lens;
        rc = epoch_lens_apply_op(&nv, &x->scratch, l, &v, &reason);
        if (rc == CRDT_ETYPE &&
            (v.kind == EPOCH_OP_PUT || v.kind == EPOCH_OP_SADD ||
             v.kind == EPOCH_OP_SREM)) {
            /* a value the lens cannot convert becomes null, exactly as in
             * a migrated document: the two orders must agree */
            epoch_op_view nullv = v;
            nullv.value = crdt_value_null();
            rc = epoch_lens_apply_op(&nv, &x->scratch, l, &nullv, &reason);
        }
        if (rc == CRDT_ENOTFOUND || rc == CRDT_ETYPE)
            goto quarantine;
        if (rc < 0)
            return rc;
        if ((rc = apply_defaults(x, t, i, v.coll, v.doc)) < 0)
            return rc;
        if (op.observed != NULL &&
            (op.kind == CRDT_OP_DEL_FIELD || op.kind == CRDT_OP_DEL_DOC)) {
            map_ctx m = { l, v.coll, &x->scratch, NULL };
            unsigned char *buf;
            size_t len;
            rc = crdt_observed_map(&buf, &len, &op, map_field, map_elem, &m);
            if (rc < 0)
                return rc;
            crdt_free(x->obs);
            x->obs = buf;
            op.observed = buf;
            op.observed_len = len;
        }
        if (nv.field != NULL && nv.field != x->field) {
            snprintf(x->field, sizeof x->field, "%s", nv.field);
            nv.field = x->field;
        }
        v = nv;
        op.field = v.field;
        op.field_len = v.field ? strlen(v.field) : 0;
    }
    *out = op; /* a copy stays one, naming its original (op_copy.c) */
    out->coll = x->coll;
    out->coll_len = strlen(x->coll);
    out->doc = x->doc;
    out->doc_len = strlen(x->doc);
    out->field = v.field;
    out->field_len = v.field ? strlen(v.field) : 0;
    out->value = v.value;
    out->delta = v.delta;
    out->observed = op.observed;
    out->observed_len = op.observed_len;
    return CRDT_OK;

quarantine:
    rc = crdt_raw_quarantine_put(t, c, seq, in, CRDT_QK_REBASE,
                                 reason ? reason : "cannot be rebased");
    return rc < 0 ? rc : CRDT_EREJECTED;
}

/* The current epoch's cut (its base heads), cached by epoch id. */
static int
load_cut(rebase_ctx *x, crdt_raw *t, const unsigned char *cur)
{
    epoch_info e;
    const unsigned char *h;
    size_t hl;
    int rc;

    if (x->cut_valid && memcmp(x->cut_of, cur, EPOCH_ID_BYTES) == 0)
        return CRDT_OK;
    free(x->cut);
    x->cut = NULL;
    x->n_cut = 0;
    x->cut_valid = 0;
    if ((rc = epoch__get_in(&e, t, cur)) < 0)
        return rc;
    rc = epoch__record_heads(&h, &hl, &e);
    if (rc == CRDT_OK)
        rc = epoch__heads_parse(&x->cut, &x->n_cut, h, hl);
    else if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK; /* genesis folds nothing */
    epoch_info_clear(&e);
    if (rc == CRDT_OK) {
        memcpy(x->cut_of, cur, EPOCH_ID_BYTES);
        x->cut_valid = 1;
    }
    return rc;
}

/* Every change the copies of change @p c name, cached by its hash. */
static int
load_refs(rebase_ctx *x, const crdt_change *c)
{
    crdt_op_iter it;
    crdt_op op;
    int rc;

    if (x->refs_valid && memcmp(x->refs_of, c->hash, CRDT_HASH_BYTES) == 0)
        return CRDT_OK;
    x->n_refs = 0;
    x->refs_valid = 0;
    crdt_op_iter_init(&it, c);
    while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK) {
        copy_ref *nr;
        size_t k;
        if (!op.is_copy)
            continue;
        for (k = 0; k < x->n_refs; k++)
            if (memcmp(x->refs[k].actor.b, op.copy_actor.b,
                       CRDT_ACTOR_BYTES) == 0 &&
                memcmp(x->refs[k].tag, op.copy_tag, 8) == 0)
                break;
        if (k < x->n_refs)
            continue;
        if ((nr = realloc(x->refs, (x->n_refs + 1) * sizeof *nr)) == NULL)
            return CRDT_ENOMEM;
        x->refs = nr;
        nr[x->n_refs].actor = op.copy_actor;
        memcpy(nr[x->n_refs].tag, op.copy_tag, 8);
        x->n_refs++;
    }
    if (rc != CRDT_ENOTFOUND)
        return rc < 0 ? rc : CRDT_EPROTO;
    memcpy(x->refs_of, c->hash, CRDT_HASH_BYTES);
    x->refs_valid = 1;
    return CRDT_OK;
}

/*
 * Does the current epoch hold the op that copy @p in copies? A replica
 * that lost an equivocation re-writes its losing ops under a new
 * incarnation, each naming the op it copies (actor, seq, the tag of its
 * change: crdt_txn_copy_of()), all in one change. Its losing version is
 * one chain, and only it ever wrote that chain; so when the current
 * epoch's cut for that actor is at or above the op's seq, and the
 * change at the cut is one of the changes this change copies from, the
 * epoch folded the losing version through the op: the state holds the
 * original. Only the epoch's record and the change decide: every
 * replica of this epoch answers alike (docs/protocol.md,
 * "Equivocation").
 */
static int
copy_folded(rebase_ctx *x, crdt_raw *t, const crdt_change *c,
            const crdt_op *in, const unsigned char *cur)
{
    const epoch__head *h = NULL;
    int rc;

    if ((rc = load_cut(x, t, cur)) < 0)
        return rc;
    for (size_t i = 0; i < x->n_cut && h == NULL; i++)
        if (memcmp(x->cut[i].actor.b, in->copy_actor.b, CRDT_ACTOR_BYTES) == 0)
            h = &x->cut[i];
    if (h == NULL || h->seq < in->copy_seq)
        return 0;
    if ((rc = load_refs(x, c)) < 0)
        return rc;
    for (size_t k = 0; k < x->n_refs; k++)
        if (memcmp(x->refs[k].actor.b, in->copy_actor.b,
                   CRDT_ACTOR_BYTES) == 0 &&
            memcmp(x->refs[k].tag, h->hash, 8) == 0)
            return 1;
    return 0;
}

static int
transform(void *p, crdt_raw *t, const crdt_change *c, uint64_t seq,
          const crdt_op *in, crdt_op *out)
{
    rebase_ctx *x = p;
    unsigned char cur[EPOCH_ID_BYTES];
    int rc = transform_op(x, t, c, seq, in, out), held;

    if (rc < 0 || !in->is_copy)
        return rc;
    if ((rc = crdt_raw_get_epoch(t, NULL, cur)) < 0 ||
        (held = copy_folded(x, t, c, in, cur)) < 0)
        return rc < 0 ? rc : held;
    if (!held)
        return CRDT_OK;
    /* the original is in the state: an insert's ids stay as anchors for
     * its actor's later inserts, deleted; any other op is skipped */
    if (out->kind == CRDT_OP_TINS || out->kind == CRDT_OP_LINS) {
        rc = crdt_raw_apply_deleted(t, out, c->hlc + (seq - c->seq),
                                    &c->actor, seq);
        if (rc < 0)
            return rc;
    }
    return CRDT_EEXISTS;
}

int
epoch_attach(crdt_replica *r)
{
    static const crdt_epoch_hook hook = { transform, release };
    rebase_ctx *x;

    if (r == NULL)
        return CRDT_EINVAL;
    x = calloc(1, sizeof *x);
    if (x == NULL)
        return CRDT_ENOMEM;
    crdt_replica_set_epoch_hook(r, &hook, x);
    return CRDT_OK;
}

void
epoch_detach(crdt_replica *r)
{
    if (r != NULL)
        crdt_replica_set_epoch_hook(r, NULL, NULL);
}
