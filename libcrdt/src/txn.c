/*
 * txn.c: local write transactions; each commit appends ONE change.
 *
 *   begin --put/incr/...--> (ops applied to the state as they come)
 *     --commit--> change encoded, hashed, signed, logged; heads updated
 *
 * Invariants:
 *  (1) Ops are encoded first and then applied through the same decoder
 *      and crdt__state_apply() that remote changes take.
 *  (2) If the map fills, the LMDB txn is aborted, the map grown, and
 *      every op recorded so far re-applied in a new txn: a write never
 *      fails because the map was too small.
 *  (3) A txn that hit an unexpected error is failed: every later call
 *      returns CRDT_EBADTXN, and commit commits nothing.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "seq.h"
#include "txn_group.h"

struct crdt_txn {
    crdt_replica *r;
    crdt__wctx *w;      /* == &own, or the group's (txn_group.c) */
    crdt__wctx own;
    struct crdt__wgroup *g; /* crdt_txn_write(): the group it runs in */
    crdt__enc ops;      /* encoded ops, without the array header */
    uint64_t n_ops;
    uint64_t seq0;      /* seq of the first op */
    uint64_t hlc0;      /* stamp of the first op */
    unsigned char prev[CRDT_HASH_BYTES];
    unsigned char epoch_id[CRDT_HASH_BYTES];
    int failed;
    /* raw keys to delete at commit: (db, len, bytes) records */
    crdt__enc dels;
    size_t n_dels;
    uint64_t seq_ctr;  /* last sequence element id issued; 0: not loaded */
    int seq_ctr_dirty;
    size_t last_from;  /* where the last op's bytes start in ops */
    /* crdt_txn_copy_of(): the prefix of op kind 11 that every op written
     * now gets, its length 0 for plain ops */
    unsigned char copy_head[48];
    size_t copy_len;
    unsigned char hash[CRDT_HASH_BYTES]; /* of the change written last */
};

static int run_dels(crdt_txn *t);

/* Read what the next change chains to, inside the current LMDB txn. */
static int
load_position(crdt_txn *t)
{
    crdt__head h;
    MDB_val v;
    uint64_t hlc;
    int rc;

    rc = crdt__head_get(t->w->txn, t->r, &t->r->actor, &h);
    if (rc == CRDT_ENOTFOUND) {
        t->seq0 = 1;
        memset(t->prev, 0, sizeof t->prev);
    } else if (rc < 0) {
        return rc;
    } else {
        t->seq0 = h.seq + 1;
        memcpy(t->prev, h.hash, sizeof t->prev);
    }
    if ((rc = crdt__meta_u64(t->w->txn, t->r, "hlc", &hlc)) < 0)
        return rc;
    t->hlc0 = crdt__hlc_next(hlc, 1);
    rc = crdt__meta_get(t->w->txn, t->r, "epoch_id", &v);
    if (rc < 0 || v.mv_size != CRDT_HASH_BYTES)
        return rc < 0 ? rc : CRDT_ECORRUPT;
    memcpy(t->epoch_id, v.mv_data, CRDT_HASH_BYTES);
    return CRDT_OK;
}

int
crdt__wctx_begin_fresh(crdt__wctx *w, crdt_replica *r)
{
    int rc;

    /* a reset commits, then renews the incarnation in a txn of its own
     * (and that may fail): a write in between would reuse a seq */
    for (int tries = 0; tries < 2; tries++) {
        if ((rc = crdt__wctx_begin(w, r, 1)) < 0)
            return rc;
        if ((rc = crdt__actor_stale(w->txn, r)) == 0)
            return CRDT_OK;
        crdt__wctx_abort(w);
        if (rc < 0)
            return rc;
        if ((rc = crdt_replica_check_incarnation(NULL, r)) < 0)
            return rc;
    }
    return CRDT_ECONFLICT; /* renewed, and stale still: not ours to fix */
}

int
crdt_txn_begin(crdt_txn **out, crdt_replica *r)
{
    crdt_txn *t;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    if (r->read_only)
        return CRDT_EPERM;
    /* crdt__wctx_begin() answers BUSY before waiting on the writer lock */
    t = calloc(1, sizeof *t);
    if (t == NULL)
        return CRDT_ENOMEM;
    t->r = r;
    t->w = &t->own;
    crdt__enc_init(&t->ops);
    crdt__enc_init(&t->dels);
    rc = crdt__wctx_begin_fresh(t->w, r);
    if (rc == CRDT_OK)
        rc = load_position(t);
    if (rc < 0) {
        crdt__wctx_abort(t->w);
        crdt__enc_free(&t->ops);
        crdt__enc_free(&t->dels);
        free(t);
        return rc;
    }
    *out = t;
    return CRDT_OK;
}

/* Apply the encoded ops in [p, end) starting at op index @p index. */
static int
apply_bytes(crdt_txn *t, const unsigned char *p, const unsigned char *end,
            uint64_t index)
{
    crdt__mp m = { p, end };
    crdt_op op;
    int rc;

    while (m.p < m.end) {
        if ((rc = crdt__op_decode(&op, &m)) < 0)
            return rc;
        /* the rules every replica applies to this op (authority.c) */
        if ((rc = crdt__auth_local(t->w, t->seq0 + index, &op)) < 0)
            return rc;
        rc = op.is_copy ? crdt__seq_copy_apply(t->w, &op, t->hlc0 + index,
                                               &t->r->actor, t->seq0 + index)
                        : crdt__state_apply(t->w, &op, t->hlc0 + index,
                                            &t->r->actor, t->seq0 + index);
        if (rc < 0)
            return rc;
        crdt__auth_applied(t->w, &op);
        index++;
    }
    return CRDT_OK;
}

/* Apply encoded ops [from, end) of the txn's ops starting at op index
 * @p index. */
static int
apply_encoded(crdt_txn *t, size_t from, uint64_t index)
{
    return apply_bytes(t, (unsigned char *)t->ops.sb.data + from,
                       (unsigned char *)t->ops.sb.data + t->ops.sb.size,
                       index);
}

/* Keeps (2): grow the map and replay everything recorded so far. */
static int
retry_after_map_full(crdt_txn *t)
{
    int rc;

    if (t->g != NULL) /* the changes before it in the group, then it */
        return crdt__wgroup_redo(t->g, t, 1);
    for (int tries = 0; tries < 16; tries++) {
        crdt__wctx_abort(t->w);
        if ((rc = crdt__store_grow(t->r)) < 0)
            return rc;
        if ((rc = crdt__wctx_begin(t->w, t->r, 1)) < 0)
            return rc;
        if ((rc = load_position(t)) < 0)
            return rc;
        rc = apply_encoded(t, 0, 0);
        if (rc != CRDT__EMAPFULL)
            return rc;
    }
    return CRDT_EFULL;
}

/* The op just encoded at @p from becomes a copy: the prefix of
 * crdt_txn_copy_of() goes in front of its bytes. */
static int
wrap_copy(crdt_txn *t, size_t from)
{
    size_t len = t->ops.sb.size - from;

    if (crdt__enc_raw(&t->ops, (const char *)t->copy_head, t->copy_len) < 0 ||
        crdt__enc_ok(&t->ops) < 0)
        return CRDT_ENOMEM;
    memmove(t->ops.sb.data + from + t->copy_len, t->ops.sb.data + from, len);
    memcpy(t->ops.sb.data + from, t->copy_head, t->copy_len);
    return CRDT_OK;
}

int
crdt_txn_copy_of(crdt_txn *t, const crdt_actor *actor, uint64_t seq,
                 const unsigned char *tag, uint64_t hlc)
{
    crdt__enc e;
    int rc;

    if (t == NULL || (actor != NULL && (tag == NULL || seq == 0)))
        return CRDT_EINVAL;
    t->copy_len = 0;
    if (actor == NULL)
        return CRDT_OK;
    crdt__enc_init(&e);
    rc = msgpack_pack_array(&e.pk, hlc != 0 ? 6 : 5) < 0 ||
                 msgpack_pack_uint64(&e.pk, CRDT__OP_COPY) < 0 ||
                 crdt__enc_bin(&e, actor->b, CRDT_ACTOR_BYTES) < 0 ||
                 msgpack_pack_uint64(&e.pk, seq) < 0 ||
                 crdt__enc_bin(&e, tag, 8) < 0 ||
                 (hlc != 0 && msgpack_pack_uint64(&e.pk, hlc) < 0)
             ? CRDT_ENOMEM
             : crdt__enc_ok(&e);
    if (rc == CRDT_OK && e.sb.size <= sizeof t->copy_head) {
        memcpy(t->copy_head, e.sb.data, e.sb.size);
        t->copy_len = e.sb.size;
    } else if (rc == CRDT_OK) {
        rc = CRDT_ERROR;
    }
    crdt__enc_free(&e);
    return rc;
}

static int
finish_op(crdt_txn *t, size_t from, int rc)
{
    if (rc == CRDT_OK && t->copy_len > 0)
        rc = wrap_copy(t, from);
    /* one change must stay decodable by every peer: the op that would
     * push it past CRDT_CHANGE_MAX (with room for the header) is refused */
    if (rc == CRDT_OK)
        rc = crdt__enc_ok(&t->ops);
    if (rc == CRDT_OK && t->ops.sb.size > CRDT_CHANGE_MAX - 512)
        rc = CRDT_ELIMIT;
    if (rc == CRDT_OK)
        rc = apply_encoded(t, from, t->n_ops);
    if (rc == CRDT__EMAPFULL)
        rc = retry_after_map_full(t);
    if (rc == CRDT_OK) {
        t->n_ops++;
        t->last_from = from;
        return CRDT_OK;
    }
    /* the op is not part of the change: drop its bytes */
    t->ops.sb.size = from;
    if (rc != CRDT_EINVAL && rc != CRDT_ETYPE && rc != CRDT_ELIMIT &&
        rc != CRDT_EPERM)
        t->failed = 1; /* keeps (3) */
    return rc == CRDT__EMAPFULL ? CRDT_EFULL : rc;
}

static int
check(crdt_txn *t, const char *coll, const char *doc, const char *field,
      int want_kind)
{
    int kind;

    if (t == NULL)
        return CRDT_EINVAL;
    if (t->failed)
        return CRDT_EBADTXN;
    if (!crdt__name_ok(coll) || !crdt__name_ok(doc) ||
        (field != NULL && !crdt__name_ok(field)))
        return CRDT_EINVAL;
    if (t->n_ops >= CRDT_CHANGE_MAX_OPS ||
        t->ops.sb.size > CRDT_CHANGE_MAX - 4096)
        return CRDT_ELIMIT;
    if (want_kind == 0)
        return CRDT_OK;
    kind = crdt__state_field_kind(t->w->txn, t->w->state, coll, doc, field);
    if (kind < 0)
        return kind;
    if (kind != 0 && kind != want_kind)
        return CRDT_ETYPE;
    return CRDT_OK;
}

/* check() of an op on one field. check() takes a NULL field for a
 * document delete; anywhere else it is a bad name, refused here before
 * the field is looked up or encoded (a NULL would be read as a string,
 * and the op written without its field). */
static int
check_field(crdt_txn *t, const char *coll, const char *doc,
            const char *field, int want_kind)
{
    if (t != NULL && field == NULL)
        return CRDT_EINVAL;
    return check(t, coll, doc, field, want_kind);
}

static int
value_ok(const crdt_value *v)
{
    if (v == NULL || (unsigned)v->type > CRDT_VBYTES)
        return 0;
    if (v->type == CRDT_VSTRING)
        return crdt__utf8_valid(v->u.s.ptr, v->u.s.len);
    if (v->type == CRDT_VBYTES)
        return v->u.s.ptr != NULL || v->u.s.len == 0;
    return 1;
}

static int
encode_head(crdt_txn *t, crdt_op_kind kind, unsigned n, const char *coll,
            const char *doc, const char *field)
{
    /* a failed write leaves a short op: report it, never apply it */
    if (msgpack_pack_array(&t->ops.pk, n) < 0 ||
        msgpack_pack_uint64(&t->ops.pk, kind) < 0 ||
        crdt__enc_str(&t->ops, coll, strlen(coll)) < 0 ||
        crdt__enc_str(&t->ops, doc, strlen(doc)) < 0 ||
        (field != NULL && crdt__enc_str(&t->ops, field, strlen(field)) < 0))
        return CRDT_ENOMEM;
    return CRDT_OK;
}

int
crdt_txn_put(crdt_txn *t, const char *coll, const char *doc,
             const char *field, const crdt_value *v)
{
    size_t from;
    int rc = check_field(t, coll, doc, field, CRDT_FIELD_REGISTER);

    if (rc < 0)
        return rc;
    if (!value_ok(v))
        return CRDT_EINVAL;
    from = t->ops.sb.size;
    rc = encode_head(t, CRDT_OP_PUT, 5, coll, doc, field);
    if (rc == CRDT_OK)
        rc = crdt__enc_value(&t->ops, v);
    return finish_op(t, from, rc);
}

int
crdt_txn_incr(crdt_txn *t, const char *coll, const char *doc,
              const char *field, int64_t delta)
{
    size_t from;
    int rc = check_field(t, coll, doc, field, CRDT_FIELD_COUNTER);

    if (rc < 0)
        return rc;
    from = t->ops.sb.size;
    rc = encode_head(t, CRDT_OP_INCR, 5, coll, doc, field);
    if (rc == CRDT_OK && msgpack_pack_int64(&t->ops.pk, delta) < 0)
        rc = CRDT_ENOMEM;
    return finish_op(t, from, rc);
}

static int
elem_ok(const crdt_value *v)
{
    unsigned char b[CRDT__ELEM_MAX];

    return value_ok(v) && crdt__value_bytes(b, sizeof b, v) >= 0;
}

/* SADD and SREM: an element op; SREM also records the tags it saw. */
static int
set_op(crdt_txn *t, crdt_op_kind kind, const char *coll, const char *doc,
       const char *field, const crdt_value *v)
{
    size_t from;
    int rc = check_field(t, coll, doc, field, CRDT_FIELD_SET);

    if (rc < 0)
        return rc;
    if (!elem_ok(v))
        return value_ok(v) ? CRDT_ELIMIT : CRDT_EINVAL;
    from = t->ops.sb.size;
    rc = encode_head(t, kind, kind == CRDT_OP_SREM ? 6 : 5, coll, doc, field);
    if (rc == CRDT_OK)
        rc = crdt__enc_value(&t->ops, v);
    if (rc == CRDT_OK && kind == CRDT_OP_SREM)
        rc = crdt__state_observe(t->w, &t->ops, CRDT_OP_SREM, coll, doc,
                                 field, v);
    return finish_op(t, from, rc);
}

int
crdt_txn_sadd(crdt_txn *t, const char *coll, const char *doc,
              const char *field, const crdt_value *v)
{
    return set_op(t, CRDT_OP_SADD, coll, doc, field, v);
}

int
crdt_txn_srem(crdt_txn *t, const char *coll, const char *doc,
              const char *field, const crdt_value *v)
{
    return set_op(t, CRDT_OP_SREM, coll, doc, field, v);
}

int
crdt_txn_del_field(crdt_txn *t, const char *coll, const char *doc,
                   const char *field)
{
    size_t from;
    int rc = check_field(t, coll, doc, field, 0);

    if (rc < 0)
        return rc;
    if ((rc = crdt__txn_seq_clear(t, coll, doc, field)) < 0)
        return rc;
    from = t->ops.sb.size;
    rc = encode_head(t, CRDT_OP_DEL_FIELD, 5, coll, doc, field);
    if (rc == CRDT_OK)
        rc = crdt__state_observe(t->w, &t->ops, CRDT_OP_DEL_FIELD, coll,
                                 doc, field, NULL);
    return finish_op(t, from, rc);
}

int
crdt_txn_del_doc(crdt_txn *t, const char *coll, const char *doc)
{
    size_t from;
    int rc = check(t, coll, doc, NULL, 0);

    if (rc < 0)
        return rc;
    if ((rc = crdt__txn_seq_clear(t, coll, doc, NULL)) < 0)
        return rc;
    from = t->ops.sb.size;
    rc = encode_head(t, CRDT_OP_DEL_DOC, 4, coll, doc, NULL);
    if (rc == CRDT_OK)
        rc = crdt__state_observe(t->w, &t->ops, CRDT_OP_DEL_DOC, coll, doc,
                                 NULL, NULL);
    return finish_op(t, from, rc);
}

uint64_t
crdt_txn_op_count(const crdt_txn *t)
{
    return t ? t->n_ops : 0;
}

/* The txn's ops (standalone form) as a format-2 change says them: a
 * name that repeats the op before's, and an id of our own actor, by
 * reference (codec.c). */
static int
compact_ops(crdt__enc *out, crdt_txn *t)
{
    crdt__mp m = { (unsigned char *)t->ops.sb.data,
                   (unsigned char *)t->ops.sb.data + t->ops.sb.size };
    crdt_op_iter ctx;
    crdt_op op;
    int rc;

    memset(&ctx, 0, sizeof ctx);
    ctx.compact = 1;
    ctx.self = t->r->actor;
    while (m.p < m.end)
        if ((rc = crdt__op_decode(&op, &m)) < 0 ||
            (rc = crdt__op_encode_in(out, &op, &ctx)) < 0)
            return rc;
    return crdt__enc_ok(out);
}

/* The change just stored proves the one before it, so that one's
 * signature is dead weight on disk: a log of keystroke commits keeps one
 * signature per run, as a merged run does (docs/storage.md 5.5). The
 * record at (actor, seq0 - 1) is our head's change, whose hash is
 * t->prev: the log and the head are written together, and the open's
 * record check verifies the links. A predecessor folded into an epoch,
 * stored without a signature already, or the end of a merged run record,
 * is left as it is. */
static int
unsign_predecessor(crdt_txn *t)
{
    crdt_replica *r = t->r;
    unsigned char key[16];
    MDB_val k = { sizeof key, key }, v;
    unsigned char *copy;
    size_t len;
    int rc;

    if (t->seq0 <= 1)
        return CRDT_OK;
    crdt__log_key(key, &r->actor, t->seq0 - 1);
    rc = mdb_get(t->w->txn, r->dbi[CRDT_DB_LOG], &k, &v);
    if (rc == MDB_NOTFOUND)
        return CRDT_OK;
    if (rc != 0)
        return crdt__mdb_err(rc);
    if (crdt__logrec_is_run(v.mv_data, v.mv_size))
        return CRDT_OK; /* a merged run (storage.md 3): its end stays signed */
    if ((copy = malloc(v.mv_size)) == NULL)
        return CRDT_ENOMEM;
    memcpy(copy, v.mv_data, v.mv_size);
    len = crdt_change_strip_sig(copy, v.mv_size);
    rc = CRDT_OK;
    if (len > 0) { /* 0: format 1, or no signature to drop */
        v.mv_size = len;
        v.mv_data = copy;
        rc = crdt__mdb_err(mdb_put(t->w->txn, r->dbi[CRDT_DB_LOG], &k, &v, 0));
    }
    free(copy);
    return rc;
}

/* Encode, hash, sign and store the change; update heads and counters.
 * Unless @p sign, the change is stored without its signature, as
 * unsign_predecessor() would leave it: a group's later change proves it
 * (txn_group.c signs the group's last). */
static int
write_change(crdt_txn *t, crdt_commit_info *info, int sign, int unsign_prev)
{
    crdt_replica *r = t->r;
    crdt__enc body, change, ops;
    unsigned char hash[CRDT_HASH_BYTES], sig[64], key[16];
    crdt__head h;
    MDB_val k, v;
    uint64_t last = t->seq0 + t->n_ops - 1;
    int rc;

    crdt__enc_init(&body);
    crdt__enc_init(&change);
    crdt__enc_init(&ops);
    if ((rc = compact_ops(&ops, t)) < 0)
        goto done;
    /* a failed write would leave a short change, signed and stored: every
     * step is checked (out of memory fails the commit) */
    if (msgpack_pack_array(&body.pk, 9) < 0 ||
        msgpack_pack_uint64(&body.pk, CRDT__FORMAT) < 0 ||
        crdt__enc_bin(&body, r->space_id, CRDT_SPACE_ID_BYTES) < 0 ||
        crdt__enc_bin(&body, t->epoch_id, CRDT_HASH_BYTES) < 0 ||
        crdt__enc_bin(&body, r->pk, CRDT_PUBKEY_BYTES) < 0 ||
        crdt__enc_bin(&body, r->incarnation, 8) < 0 ||
        msgpack_pack_uint64(&body.pk, t->seq0) < 0 ||
        msgpack_pack_uint64(&body.pk, t->hlc0) < 0 ||
        crdt__enc_bin(&body, t->prev, CRDT_HASH_BYTES) < 0 ||
        msgpack_pack_array(&body.pk, (size_t)t->n_ops) < 0 ||
        crdt__enc_raw(&body, ops.sb.data, ops.sb.size) < 0) {
        rc = CRDT_ENOMEM;
        goto done;
    }

    crypto_generichash(hash, sizeof hash, (unsigned char *)body.sb.data,
                       body.sb.size, NULL, 0);
    memcpy(t->hash, hash, sizeof hash);
    if (sign && (rc = crdt__change_sign(sig, hash, r->sk)) < 0)
        goto done;
    if (msgpack_pack_array(&change.pk, 2) < 0 ||
        crdt__enc_bin(&change, body.sb.data, body.sb.size) < 0 ||
        (sign ? crdt__enc_bin(&change, sig, sizeof sig)
              : msgpack_pack_nil(&change.pk)) < 0) {
        rc = CRDT_ENOMEM;
        goto done;
    }

    crdt__log_key(key, &r->actor, last);
    k.mv_size = sizeof key;
    k.mv_data = key;
    v.mv_size = change.sb.size;
    v.mv_data = change.sb.data;
    rc = crdt__mdb_err(mdb_put(t->w->txn, r->dbi[CRDT_DB_LOG], &k, &v, 0));
    if (rc < 0 || (unsign_prev && (rc = unsign_predecessor(t)) < 0))
        goto done;
    h.seq = last;
    memcpy(h.hash, hash, sizeof hash);
    memcpy(h.pk, r->pk, sizeof h.pk);
    memcpy(h.inc, r->incarnation, sizeof h.inc);
    {   /* the highest seq this incarnation ever issued (see
         * crdt_replica_check_incarnation) */
        unsigned char own[16];
        memcpy(own, r->actor.b, 8);
        crdt__be64(own + 8, last);
        if ((rc = crdt__meta_put(t->w->txn, r, "own_seq", own, 16)) < 0)
            goto done;
    }
    if (t->seq_ctr_dirty) {
        unsigned char sc[16];
        memcpy(sc, r->actor.b, 8);
        crdt__be64(sc + 8, t->seq_ctr);
        if ((rc = crdt__meta_put(t->w->txn, r, "seq_ctr", sc, 16)) < 0)
            goto done;
    }
    if ((rc = crdt__head_put(t->w->txn, r, &r->actor, &h)) < 0 ||
        (rc = crdt__meta_put_u64(t->w->txn, r, "hlc",
                                 t->hlc0 + t->n_ops - 1)) < 0 ||
        (rc = crdt__count_add(t->w->txn, r, "ops_in_log",
                              (int64_t)t->n_ops)) < 0 ||
        (rc = crdt__count_add(t->w->txn, r, "changes_in_log", 1)) < 0)
        goto done;
    if ((rc = run_dels(t)) < 0)
        goto done;
    if (info != NULL) {
        info->first_seq = t->seq0;
        info->last_seq = last;
        info->hlc = t->hlc0;
    }
done:
    crdt__enc_free(&body);
    crdt__enc_free(&change);
    crdt__enc_free(&ops);
    return rc;
}

int
crdt_txn_commit(crdt_txn *t, crdt_commit_info *info)
{
    crdt_commit_info got = { 0, 0, 0 };
    int rc = CRDT_OK;

    if (t == NULL || t->g != NULL) /* a group's txn ends with the group */
        return CRDT_EINVAL;
    if (t->failed) {
        crdt_txn_abort(t);
        return CRDT_EBADTXN;
    }
    for (int tries = 0; t->n_ops > 0 && tries < 16; tries++) {
        rc = write_change(t, &got, 1, 1);
        if (rc == CRDT_OK) /* the change is in the log: judge again */
            rc = crdt__auth_settle(t->w);
        if (rc == CRDT_OK) {
            rc = crdt__wctx_commit(t->w);
            if (rc != CRDT__EMAPFULL)
                break;
        }
        if (rc != CRDT__EMAPFULL)
            break;
        rc = retry_after_map_full(t);
        if (rc < 0)
            break;
        rc = CRDT__EMAPFULL;
    }
    if (rc == CRDT__EMAPFULL)
        rc = CRDT_EFULL;
    if (info != NULL && rc == CRDT_OK)
        *info = got;
    crdt__wctx_abort(t->w); /* no-op after a commit */
    crdt__enc_free(&t->ops);
    crdt__enc_free(&t->dels);
    free(t);
    return rc;
}

void
crdt_txn_abort(crdt_txn *t)
{
    if (t == NULL || t->g != NULL)
        return;
    crdt__wctx_abort(t->w);
    crdt__enc_free(&t->ops);
    crdt__enc_free(&t->dels);
    free(t);
}

int
crdt_txn_raw_del(crdt_txn *t, crdt_db db, const void *k, size_t kl)
{
    unsigned char hdr[3];

    if (t == NULL || (unsigned)db >= CRDT_DB__COUNT || kl == 0 ||
        kl > CRDT__KEY_MAX || db == CRDT_DB_STATE0 || db == CRDT_DB_STATE1)
        return CRDT_EINVAL;
    if (t->failed)
        return CRDT_EBADTXN;
    hdr[0] = (unsigned char)db;
    hdr[1] = (unsigned char)(kl >> 8);
    hdr[2] = (unsigned char)kl;
    if (crdt__enc_raw(&t->dels, (const char *)hdr, 3) < 0 ||
        crdt__enc_raw(&t->dels, k, kl) < 0) {
        t->failed = 1; /* a half-written delete must never run */
        return CRDT_ENOMEM;
    }
    t->n_dels++;
    return CRDT_OK;
}

static int
run_dels(crdt_txn *t)
{
    const unsigned char *p = (const unsigned char *)t->dels.sb.data;
    const unsigned char *end;

    if (p == NULL || t->dels.sb.size == 0)
        return CRDT_OK; /* no raw deletes in this txn */
    end = p + t->dels.sb.size;

    while (p < end) {
        size_t kl = (size_t)p[1] << 8 | p[2];
        MDB_val k = { kl, (void *)(p + 3) };
        int rc = mdb_del(t->w->txn, t->r->dbi[p[0]], &k, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return crdt__mdb_err(rc);
        p += 3 + kl;
    }
    return CRDT_OK;
}

/* ---- for seq_api.c ---- */

crdt__wctx *
crdt__txn_wctx(crdt_txn *t)
{
    return t->w;
}

int
crdt__txn_check(crdt_txn *t, const char *coll, const char *doc,
                const char *field, int want_kind)
{
    return check_field(t, coll, doc, field, want_kind);
}

/* The next @p n element ids of this actor (kept in the txn, stored at
 * commit: a replay after the map grew reuses the ops' own ids). */
int
crdt__txn_seq_ids(crdt_txn *t, uint64_t n, uint64_t *first)
{
    if (t->seq_ctr == 0) {
        MDB_val v;
        int rc = crdt__meta_get(t->w->txn, t->r, "seq_ctr", &v);
        if (rc < 0 && rc != CRDT_ENOTFOUND)
            return rc;
        /* a record cut short is damage, not "none yet": restarting at
         * 1 would give new elements the ids of our earlier ones, and an
         * insert under a taken id is lost on every replica */
        if (rc == CRDT_OK && v.mv_size != 16)
            return CRDT_ECORRUPT;
        if (rc == CRDT_OK && memcmp(v.mv_data, t->r->actor.b, 8) == 0)
            t->seq_ctr = crdt__rd64((unsigned char *)v.mv_data + 8);
    }
    *first = t->seq_ctr + 1;
    t->seq_ctr += n;
    t->seq_ctr_dirty = 1;
    return CRDT_OK;
}

/*
 * @p op continues the last op's run (oprun.c): the last op's bytes are
 * replaced by @p folded, and @p op alone is applied, under the last op's
 * index. A map-full retry replays the folded op, which includes it; on
 * failure the last op's bytes come back.
 */
static int
fold_into_last(crdt_txn *t, const crdt__enc *folded, const crdt_op *op)
{
    size_t from = t->last_from, old_len = t->ops.sb.size - from;
    unsigned char *old = malloc(old_len);
    crdt__enc one;
    int rc;

    if (old == NULL)
        return CRDT_ENOMEM;
    memcpy(old, t->ops.sb.data + from, old_len);
    crdt__enc_init(&one);
    rc = crdt__op_encode(&one, op);
    if (rc == CRDT_OK)
        rc = crdt__enc_ok(&one);
    if (rc == CRDT_OK) {
        t->ops.sb.size = from;
        rc = crdt__enc_raw(&t->ops, folded->sb.data, folded->sb.size);
    }
    if (rc == CRDT_OK && t->ops.sb.size > CRDT_CHANGE_MAX - 512)
        rc = CRDT_ELIMIT;
    if (rc == CRDT_OK)
        rc = apply_bytes(t, (unsigned char *)one.sb.data,
                         (unsigned char *)one.sb.data + one.sb.size,
                         t->n_ops - 1);
    if (rc == CRDT__EMAPFULL)
        rc = retry_after_map_full(t);
    crdt__enc_free(&one);
    if (rc < 0) {
        t->ops.sb.size = from;
        if (crdt__enc_raw(&t->ops, old, old_len) < 0 ||
            (rc != CRDT_EINVAL && rc != CRDT_ETYPE && rc != CRDT_ELIMIT &&
             rc != CRDT_EPERM))
            t->failed = 1; /* keeps (3) */
    }
    free(old);
    return rc == CRDT__EMAPFULL ? CRDT_EFULL : rc;
}

int
crdt__txn_add_op(crdt_txn *t, const crdt_op *op)
{
    size_t from = t->ops.sb.size;

    if (t->n_ops > 0 && t->last_from < from && t->copy_len == 0 &&
        (op->kind == CRDT_OP_TINS || op->kind == CRDT_OP_TDEL ||
         op->kind == CRDT_OP_LDEL)) {
        crdt__mp m = { (unsigned char *)t->ops.sb.data + t->last_from,
                       (unsigned char *)t->ops.sb.data + from };
        crdt_op last;
        crdt__enc folded;
        int k = 0;

        crdt__enc_init(&folded);
        /* a copy stays one op: it names the one op it copies */
        if (crdt__op_decode(&last, &m) == CRDT_OK && m.p == m.end &&
            !last.is_copy)
            k = crdt__op_fold(&folded, &last, op, &t->r->actor);
        if (k == 1)
            k = fold_into_last(t, &folded, op);
        else if (k == 0)
            k = 2; /* not a continuation */
        crdt__enc_free(&folded);
        if (k != 2)
            return k;
    }
    t->last_from = from;
    return finish_op(t, from, crdt__op_encode(&t->ops, op));
}

/* ---- for txn_group.c: a txn in a group's shared write context ---- */

int
crdt__txn_member_begin(crdt_txn **out, crdt_replica *r, crdt__wctx *w,
                       struct crdt__wgroup *g)
{
    crdt_txn *t = calloc(1, sizeof *t);
    int rc;

    if (t == NULL)
        return CRDT_ENOMEM;
    t->r = r;
    t->w = w;
    t->g = g;
    crdt__enc_init(&t->ops);
    crdt__enc_init(&t->dels);
    if ((rc = load_position(t)) < 0) {
        crdt__txn_member_free(t);
        return rc;
    }
    *out = t;
    return CRDT_OK;
}

int
crdt__txn_member_reapply(crdt_txn *t)
{
    int rc = load_position(t);

    return rc < 0 ? rc : apply_encoded(t, 0, 0);
}

int
crdt__txn_member_write(crdt_txn *t, int unsign_prev, crdt_commit_info *info)
{
    int rc = write_change(t, info, 0, unsign_prev);

    return rc < 0 ? rc : crdt__auth_settle(t->w);
}

/* The change written last by @p t (stored with a nil signature) gets its
 * signature: [body, nil] becomes [body, bin8 of 64 bytes]. */
int
crdt__txn_member_sign(crdt_txn *t)
{
    crdt_replica *r = t->r;
    unsigned char key[16], *rec;
    MDB_val k = { sizeof key, key }, v;
    int rc;

    crdt__log_key(key, &r->actor, t->seq0 + t->n_ops - 1);
    if ((rc = crdt__mdb_err(mdb_get(t->w->txn, r->dbi[CRDT_DB_LOG], &k,
                                    &v))) < 0)
        return rc;
    if (v.mv_size < 2 || ((unsigned char *)v.mv_data)[v.mv_size - 1] != 0xc0)
        return CRDT_ECORRUPT; /* not what write_change() stored */
    if ((rec = malloc(v.mv_size + 65)) == NULL)
        return CRDT_ENOMEM;
    memcpy(rec, v.mv_data, v.mv_size - 1);
    rec[v.mv_size - 1] = 0xc4;
    rec[v.mv_size] = 0x40;
    rc = crdt__change_sign(rec + v.mv_size + 1, t->hash, r->sk);
    if (rc == CRDT_OK) {
        v.mv_size += 65;
        v.mv_data = rec;
        rc = crdt__mdb_err(mdb_put(t->w->txn, r->dbi[CRDT_DB_LOG], &k, &v,
                                   0));
    }
    free(rec);
    return rc;
}

uint64_t
crdt__txn_member_ops(const crdt_txn *t)
{
    return t->n_ops;
}

int
crdt__txn_member_failed(const crdt_txn *t)
{
    return t->failed;
}

void
crdt__txn_member_free(crdt_txn *t)
{
    if (t == NULL)
        return;
    crdt__enc_free(&t->ops);
    crdt__enc_free(&t->dels);
    free(t);
}
