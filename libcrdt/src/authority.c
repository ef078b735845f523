/*
 * authority.c: who may write what, decided the same way on every replica
 * (docs/security.md has the model; crdt/members.h the record layout).
 *
 * Invariants:
 *  (1) Off in a space without an owner (made before roles): every op is
 *      valid, as it always was.
 *  (2) The state is a function of the set of changes in the log: an op
 *      is valid by rules that read only (a) the owner's ops, (b) the
 *      member-set ops of admins, whose validity reads only (a), and
 *      (c) the member set that (a) and (b) make. A replay applies them
 *      in that order; a merge applies ops as they come, checked against
 *      the member set it holds, and replays when a member-set change
 *      alters the standing of a key whose ops it already judged. Either
 *      way every replica that holds the same changes holds the same
 *      state and the same refusals.
 *  (3) A refused op is never dropped: its change stays in the log (the
 *      chain and the version vector go on, peers get it) and the op is
 *      in the quarantine with a reason starting "authority:".
 *  (4) A removal names, per actor of the removed key, the last seq the
 *      remover held: that is the removal's causal past. Any later op of
 *      that key, concurrent or not, is refused. A removal is permanent.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/members.h"
#include "internal.h"
#include "seq.h"
#include "state_keys.h"
#include "view.h"

#define MCOLL CRDT_MEMBERS_COLL
#define MCOLL_LEN (sizeof MCOLL - 1)
#define WHY_PREFIX "authority:"
#define CUT_NONE UINT64_MAX

static const char F_GENESIS[] = "genesis", F_ADMIN[] = "admin",
                  F_MEMBER[] = "member", F_READONLY[] = "readonly",
                  F_CUTOFFS[] = "cutoffs";

typedef struct {
    int found, member, readonly, admin, removed;
    const unsigned char *actor; /* the actor whose cutoff we want, or NULL */
    uint64_t cut;               /* its last valid seq; CUT_NONE if none */
    unsigned char nonce[CRDT_SPACE_NONCE_BYTES];
    int has_nonce;
} standing;

static int
name_is(const char *p, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(p, lit, len) == 0;
}

void
crdt_space_id_for_owner(unsigned char *space_out, const unsigned char *pk,
                        const unsigned char *nonce)
{
    crypto_generichash_state st;
    unsigned char h[32];

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)"strata-owner", 12);
    crypto_generichash_update(&st, pk, CRDT_PUBKEY_BYTES);
    crypto_generichash_update(&st, nonce, CRDT_SPACE_NONCE_BYTES);
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(space_out, h, CRDT_SPACE_ID_BYTES);
}

static int
is_bool(const crdt_value *v, int want)
{
    return v->type == CRDT_VBOOL && v->u.b == want;
}

static int
standing_field(const crdt_field *f, void *p)
{
    standing *s = p;
    size_t nl = strlen(f->name);

    s->found = 1;
    if (f->kind == CRDT_FIELD_REGISTER) {
        if (name_is(f->name, nl, F_MEMBER))
            s->member = is_bool(&f->value, 1);
        else if (name_is(f->name, nl, F_READONLY))
            s->readonly = is_bool(&f->value, 1);
        else if (name_is(f->name, nl, F_ADMIN))
            s->admin = is_bool(&f->value, 1);
        else if (name_is(f->name, nl, F_GENESIS) &&
                 f->value.type == CRDT_VBYTES &&
                 f->value.u.s.len == CRDT_SPACE_NONCE_BYTES) {
            memcpy(s->nonce, f->value.u.s.ptr, CRDT_SPACE_NONCE_BYTES);
            s->has_nonce = 1;
        }
    } else if (f->kind == CRDT_FIELD_SET &&
               name_is(f->name, nl, F_CUTOFFS)) {
        for (size_t i = 0; i < f->n_elems; i++) {
            const crdt_value *e = &f->elems[i];
            const unsigned char *b = (const unsigned char *)e->u.s.ptr;
            uint64_t seq;

            if (e->type != CRDT_VBYTES || e->u.s.len != 16)
                continue; /* only valid removals get here; be safe */
            s->removed = 1;
            if (s->actor == NULL || memcmp(b, s->actor, 8) != 0)
                continue;
            seq = crdt__rd64(b + 8);
            if (s->cut == CUT_NONE || seq < s->cut)
                s->cut = seq; /* several removals: the earliest */
        }
    }
    return 0;
}

/* Read @p pk's member document. An actor not named by a removal has no
 * valid op at all after it: cut 0. */
static int
standing_read(MDB_txn *txn, MDB_dbi dbi, const unsigned char *pk,
              const unsigned char *actor, standing *s)
{
    crdt__scratch sc = { 0 };
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    int rc;

    memset(s, 0, sizeof *s);
    s->actor = actor;
    s->cut = CUT_NONE;
    crdt_hex(hex, pk, CRDT_PUBKEY_BYTES);
    rc = crdt__view_doc(&sc, txn, dbi, MCOLL, MCOLL_LEN, hex,
                        2 * CRDT_PUBKEY_BYTES, NULL, 0, standing_field, s);
    crdt__scratch_free(&sc);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    if (rc == CRDT_OK && s->removed && s->cut == CUT_NONE)
        s->cut = 0;
    return rc;
}

/* Find the owner: the member document whose genesis nonce binds its key
 * to the space id. 1 found, 0 none, negative on error. */
static int
owner_find(MDB_txn *txn, MDB_dbi dbi, const unsigned char *space,
           unsigned char *owner)
{
    static const char suffix[] = "\0genesis\0R";
    const size_t klen = MCOLL_LEN + 1 + 2 * CRDT_PUBKEY_BYTES + sizeof suffix - 1;
    unsigned char prefix[MCOLL_LEN + 1];
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, err = CRDT_OK, found = 0;

    memcpy(prefix, MCOLL, MCOLL_LEN);
    prefix[MCOLL_LEN] = 0;
    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    k.mv_size = sizeof prefix;
    k.mv_data = prefix;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && !found; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *kb = k.mv_data;
        unsigned char pk[CRDT_PUBKEY_BYTES], space_of[CRDT_SPACE_ID_BYTES];
        char hex[2 * CRDT_PUBKEY_BYTES + 1];
        standing s;

        if (k.mv_size < sizeof prefix ||
            memcmp(kb, prefix, sizeof prefix) != 0)
            break;
        if (k.mv_size != klen ||
            memcmp(kb + sizeof prefix + 2 * CRDT_PUBKEY_BYTES, suffix,
                   sizeof suffix - 1) != 0)
            continue;
        memcpy(hex, kb + sizeof prefix, 2 * CRDT_PUBKEY_BYTES);
        hex[2 * CRDT_PUBKEY_BYTES] = '\0';
        if (crdt_unhex(pk, sizeof pk, hex) != CRDT_OK)
            continue;
        /* the view below moves no cursor of ours: this one stays put */
        if ((err = standing_read(txn, dbi, pk, NULL, &s)) < 0)
            break;
        if (!s.has_nonce)
            continue;
        crdt_space_id_for_owner(space_of, pk, s.nonce);
        if (memcmp(space_of, space, CRDT_SPACE_ID_BYTES) == 0) {
            memcpy(owner, pk, CRDT_PUBKEY_BYTES);
            found = 1;
        }
    }
    mdb_cursor_close(cur);
    if (err < 0)
        return err;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    return found;
}

static int
auth_load(crdt__wctx *w)
{
    int rc;

    if (w->auth.loaded)
        return CRDT_OK;
    rc = owner_find(w->txn, w->state, w->r->space_id, w->auth.owner);
    if (rc < 0)
        return rc;
    w->auth.on = rc;
    w->auth.loaded = 1;
    return CRDT_OK;
}

/* The standing of a change's author, kept for the change's next ops. */
static int
author_standing(crdt__wctx *w, const unsigned char *pk,
                const crdt_actor *actor)
{
    crdt__auth *a = &w->auth;
    standing s;
    int rc;

    if (a->cache_ok && memcmp(a->cache_pk, pk, CRDT_PUBKEY_BYTES) == 0 &&
        memcmp(a->cache_actor.b, actor->b, CRDT_ACTOR_BYTES) == 0)
        return CRDT_OK;
    if ((rc = standing_read(w->txn, w->state, pk, actor->b, &s)) < 0)
        return rc;
    memcpy(a->cache_pk, pk, CRDT_PUBKEY_BYTES);
    a->cache_actor = *actor;
    a->cache_member = s.member;
    a->cache_readonly = s.readonly;
    a->cache_admin = s.admin;
    a->cache_removed = s.removed;
    a->cache_cut = s.cut;
    a->cache_ok = 1;
    return CRDT_OK;
}

int
crdt__auth_is_members(const crdt_op *op)
{
    return op->coll_len == MCOLL_LEN && memcmp(op->coll, MCOLL, MCOLL_LEN) == 0;
}

static int
target_key(const crdt_op *op, unsigned char *pk)
{
    char hex[2 * CRDT_PUBKEY_BYTES + 1];

    if (op->doc_len != 2 * CRDT_PUBKEY_BYTES)
        return 0;
    memcpy(hex, op->doc, op->doc_len);
    hex[op->doc_len] = '\0';
    return crdt_unhex(pk, CRDT_PUBKEY_BYTES, hex) == CRDT_OK;
}

/* The rules: 1 valid, 0 refused with *why, negative on error. */
static int
op_ok(crdt__wctx *w, const unsigned char *pk, const crdt_actor *actor,
      uint64_t seq, const crdt_op *op, const char **why)
{
    crdt__auth *a = &w->auth;
    unsigned char tpk[CRDT_PUBKEY_BYTES];
    const char *f = op->field;
    size_t fl = op->field_len;
    int rc, by_owner;

    if ((rc = auth_load(w)) < 0)
        return rc;
    if (!a->on)
        return 1; /* keeps (1) */
    by_owner = memcmp(pk, a->owner, CRDT_PUBKEY_BYTES) == 0;
    if (!by_owner && (rc = author_standing(w, pk, actor)) < 0)
        return rc;
    if (!by_owner && a->cache_removed && seq > a->cache_cut) {
        *why = WHY_PREFIX " the author was removed from the space and this "
               "op is not in the removal's causal past";
        return 0; /* keeps (4) */
    }
    if (!crdt__auth_is_members(op)) {
        if (by_owner || a->cache_admin ||
            (a->cache_member && !a->cache_readonly))
            return 1;
        *why = a->cache_member ? WHY_PREFIX " the author is a reader"
                               : WHY_PREFIX " the author is not a member";
        return 0;
    }
    if (!target_key(op, tpk)) {
        *why = WHY_PREFIX " a member document must be named by a key";
        return 0;
    }
    if (op->kind == CRDT_OP_PUT && name_is(f, fl, F_GENESIS)) {
        unsigned char space_of[CRDT_SPACE_ID_BYTES];

        if (op->value.type == CRDT_VBYTES &&
            op->value.u.s.len == CRDT_SPACE_NONCE_BYTES &&
            memcmp(pk, tpk, CRDT_PUBKEY_BYTES) == 0) {
            crdt_space_id_for_owner(space_of, tpk,
                                    (const unsigned char *)op->value.u.s.ptr);
            if (memcmp(space_of, w->r->space_id, CRDT_SPACE_ID_BYTES) == 0)
                return 1;
        }
        *why = WHY_PREFIX " a genesis record that does not bind its key to "
               "the space id";
        return 0;
    }
    if (!((op->kind == CRDT_OP_PUT && op->value.type == CRDT_VBOOL &&
           (name_is(f, fl, F_ADMIN) || name_is(f, fl, F_MEMBER) ||
            name_is(f, fl, F_READONLY))) ||
          (op->kind == CRDT_OP_SADD && name_is(f, fl, F_CUTOFFS) &&
           op->value.type == CRDT_VBYTES && op->value.u.s.len == 16))) {
        *why = WHY_PREFIX " the member set takes only role writes and "
               "removals";
        return 0;
    }
    if (memcmp(tpk, a->owner, CRDT_PUBKEY_BYTES) == 0) {
        if (by_owner && !name_is(f, fl, F_CUTOFFS))
            return 1;
        *why = WHY_PREFIX " the owner's standing cannot be changed";
        return 0;
    }
    if (by_owner)
        return 1;
    if (!a->cache_admin) {
        *why = WHY_PREFIX " only an admin may change the member set";
        return 0;
    }
    if (name_is(f, fl, F_ADMIN)) {
        *why = WHY_PREFIX " only the owner may grant or revoke the admin "
               "role";
        return 0;
    }
    {
        standing t;
        if ((rc = standing_read(w->txn, w->state, tpk, NULL, &t)) < 0)
            return rc;
        if (t.admin) {
            *why = WHY_PREFIX " only the owner may change an admin";
            return 0;
        }
    }
    return 1;
}

int
crdt__auth_in_phase(crdt__wctx *w, const unsigned char *pk,
                    const crdt_op *op)
{
    int by_owner = memcmp(pk, w->auth.owner, CRDT_PUBKEY_BYTES) == 0;

    switch (w->auth.phase) {
    case 1: return by_owner;
    case 2: return !by_owner && crdt__auth_is_members(op);
    case 3: return !by_owner && !crdt__auth_is_members(op);
    default: return 1;
    }
}

/* Keeps (3): the record quarantine.c writes for every kind, kind
 * CRDT_QK_AUTHORITY in the key. */
static int
quarantine(crdt__wctx *w, const crdt_change *c, uint64_t index,
           const crdt_op *op, const char *why)
{
    return crdt__quarantine_put(w->txn, w->r, c, c->seq + index, op,
                                CRDT_QK_AUTHORITY, why, strlen(why));
}

int
crdt__auth_check(crdt__wctx *w, const crdt_change *c, uint64_t index,
                 const crdt_op *op, crdt_merge_report *rep)
{
    const char *why = NULL;
    int rc;

    rc = op_ok(w, c->pubkey, &c->actor, c->seq + index, op, &why);
    if (rc != 0)
        return rc;
    if ((rc = quarantine(w, c, index, op, why)) < 0)
        return rc;
    if (rep) {
        rep->quarantined_ops++;
        rep->unauthorized_ops++;
    }
    return 0;
}

int
crdt__auth_local(crdt__wctx *w, uint64_t seq, const crdt_op *op)
{
    const char *why = NULL;
    int rc = op_ok(w, w->r->pk, &w->r->actor, seq, op, &why);

    if (rc < 0)
        return rc;
    return rc ? CRDT_OK : CRDT_EPERM;
}

void
crdt__auth_applied(crdt__wctx *w, const crdt_op *op)
{
    crdt__auth *a = &w->auth;
    unsigned char tpk[CRDT_PUBKEY_BYTES];

    if (!crdt__auth_is_members(op))
        return;
    a->cache_ok = 0;
    if (a->replaying)
        return;
    if (op->field != NULL && name_is(op->field, op->field_len, F_GENESIS)) {
        a->genesis_new = 1;
        a->loaded = 0;
    }
    if (!target_key(op, tpk))
        return;
    for (size_t i = 0; i < a->n_touched; i++)
        if (memcmp(a->touched[i], tpk, CRDT_PUBKEY_BYTES) == 0)
            return;
    if (a->n_touched == sizeof a->touched / sizeof a->touched[0])
        a->touched_all = 1;
    else
        memcpy(a->touched[a->n_touched++], tpk, CRDT_PUBKEY_BYTES);
}

/* 1 if a key in @p a->touched wrote an op we hold (its ops were judged
 * against the member set as it was). */
static int
touched_wrote(crdt__wctx *w)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, hit = 0;

    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn,
                                            w->r->dbi[CRDT_DB_HEADS],
                                            &cur))) < 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !hit;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *pk = (const unsigned char *)v.mv_data + 8 +
                                  CRDT_HASH_BYTES;
        if (v.mv_size < CRDT__HEAD_BYTES)
            continue;
        for (size_t i = 0; i < w->auth.n_touched && !hit; i++)
            hit = memcmp(w->auth.touched[i], pk, CRDT_PUBKEY_BYTES) == 0;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    return hit;
}

/* Remove the quarantine entries a previous judgement wrote. */
static int
drop_refusals(crdt__wctx *w)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn,
                                            w->r->dbi[CRDT_DB_QUARANTINE],
                                            &cur))) < 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        crdt_quarantined q;

        if (crdt_quarantine_decode(&q, k.mv_data, k.mv_size, v.mv_data,
                                   v.mv_size) < 0 ||
            q.kind != CRDT_QK_AUTHORITY ||
            q.reason_len < sizeof WHY_PREFIX - 1 ||
            memcmp(q.reason, WHY_PREFIX, sizeof WHY_PREFIX - 1) != 0)
            continue;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? CRDT_OK : crdt__mdb_err(rc);
}

/* Keeps (2): the state from the log, in the three phases. */
static int
replay(crdt__wctx *w)
{
    unsigned char cur_epoch[CRDT_HASH_BYTES];
    crdt__applyq *q = w->q;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc;

    if (q != NULL && (rc = crdt__applyq_flush(w, q)) < 0)
        return rc;
    if ((rc = crdt__meta_get(w->txn, w->r, "epoch_id", &v)) < 0 ||
        v.mv_size != CRDT_HASH_BYTES)
        return rc < 0 ? rc : CRDT_ECORRUPT;
    memcpy(cur_epoch, v.mv_data, CRDT_HASH_BYTES);
    if (w->cur != NULL)
        mdb_cursor_close(w->cur);
    w->cur = NULL;
    w->cur_at = 0;
    w->copies_waiting = 0;
    w->kept_defaults = 0;
    if ((rc = crdt__mdb_err(mdb_drop(w->txn, w->state, 0))) < 0)
        return rc;
    /* the sequences' in-memory order describes the state just dropped:
     * forget it, so the replay rebuilds each from its own records */
    crdt__seq_wctx_abort(w);
    w->seq_foreign = 1;
    crdt__wctx_hash_settle(w); /* what is queued was of the state dropped */
    memset(w->acc, 0, sizeof w->acc);
    w->acc_dirty = 1;
    if ((rc = drop_refusals(w)) < 0)
        return rc;
    w->q = NULL;
    w->auth.replaying = 1;
    w->auth.cache_ok = 0;
    for (int phase = 1; phase <= 3 && rc == CRDT_OK; phase++) {
        w->auth.phase = phase;
        rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->r->dbi[CRDT_DB_LOG],
                                           &cur));
        if (rc < 0)
            break;
        int g;
        for (g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0;
             g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            /* a view dies at the next write: work on a copy (a run is
             * rebuilt into its own buffer) */
            unsigned char *copy = malloc(v.mv_size ? v.mv_size : 1);
            crdt__logrec lr;

            if (copy == NULL) {
                rc = CRDT_ENOMEM;
                break;
            }
            memcpy(copy, v.mv_data, v.mv_size);
            rc = crdt__logrec_open(&lr, k.mv_data, k.mv_size, copy,
                                   v.mv_size);
            for (size_t i = 0; rc == CRDT_OK && i < lr.n; i++) {
                crdt_change c;
                rc = crdt_change_decode(&c, lr.list[i].data, lr.list[i].len);
                if (rc == CRDT_OK)
                    rc = crdt__apply_change(w, &c, 0, cur_epoch, NULL);
                /* the queue may hold views into the change: apply them
                 * before its bytes go */
                if (rc == CRDT_OK && w->q != NULL)
                    rc = crdt__applyq_flush(w, w->q);
            }
            crdt__logrec_close(&lr);
            free(copy);
            if (rc < 0)
                break;
        }
        if (rc == CRDT_OK && g != MDB_NOTFOUND)
            rc = crdt__mdb_err(g);
        mdb_cursor_close(cur);
    }
    w->auth.phase = 0;
    w->auth.replaying = 0;
    w->auth.cache_ok = 0;
    w->q = q;
    return rc;
}

int
crdt__auth_settle(crdt__wctx *w)
{
    crdt__auth *a = &w->auth;
    uint64_t epoch;
    int rc, need;

    if (a->replaying || (!a->genesis_new && a->n_touched == 0 &&
                         !a->touched_all))
        return CRDT_OK;
    need = a->genesis_new || a->touched_all;
    if (!need && (need = touched_wrote(w)) < 0)
        return need;
    a->genesis_new = 0;
    a->touched_all = 0;
    a->n_touched = 0;
    if (!need)
        return CRDT_OK;
    if ((rc = auth_load(w)) < 0)
        return rc;
    if (!a->on)
        return CRDT_OK;
    /* After an epoch the log no longer holds every op since the start:
     * the epoch's base stands (docs/security.md, "Limits"). */
    if ((rc = crdt__meta_u64(w->txn, w->r, "epoch_num", &epoch)) < 0 ||
        epoch != 0)
        return rc;
    return replay(w);
}

/* ---- public: reading roles ---- */

const char *
crdt_role_name(crdt_role role)
{
    switch (role) {
    case CRDT_ROLE_READER: return "reader";
    case CRDT_ROLE_WRITER: return "writer";
    case CRDT_ROLE_ADMIN: return "admin";
    case CRDT_ROLE_OWNER: return "owner";
    case CRDT_ROLE_REMOVED: return "removed";
    default: return "none";
    }
}

int
crdt_role_parse(const char *s, crdt_role *out)
{
    if (s == NULL || out == NULL)
        return CRDT_EINVAL;
    if (strcmp(s, "reader") == 0)
        *out = CRDT_ROLE_READER;
    else if (strcmp(s, "writer") == 0)
        *out = CRDT_ROLE_WRITER;
    else if (strcmp(s, "admin") == 0)
        *out = CRDT_ROLE_ADMIN;
    else
        return CRDT_EINVAL;
    return CRDT_OK;
}

int
crdt_role_may_grant(crdt_role self, crdt_role grant, int roles_on)
{
    if (grant != CRDT_ROLE_READER && grant != CRDT_ROLE_WRITER &&
        grant != CRDT_ROLE_ADMIN)
        return 0;
    if (!roles_on) /* role_of() calls every member of such a space admin */
        return self == CRDT_ROLE_ADMIN;
    if (self == CRDT_ROLE_OWNER)
        return 1;
    return self == CRDT_ROLE_ADMIN && grant != CRDT_ROLE_ADMIN; /* op_ok() */
}

static crdt_role
role_of(const standing *s, int on, int is_owner)
{
    if (!on)
        return s->member ? CRDT_ROLE_ADMIN : CRDT_ROLE_NONE;
    if (is_owner)
        return CRDT_ROLE_OWNER;
    if (s->removed)
        return CRDT_ROLE_REMOVED;
    if (s->admin)
        return CRDT_ROLE_ADMIN;
    if (s->member)
        return s->readonly ? CRDT_ROLE_READER : CRDT_ROLE_WRITER;
    return CRDT_ROLE_NONE;
}

static int
role_in(MDB_txn *txn, MDB_dbi dbi, crdt_replica *r, const unsigned char *pk,
        crdt_role *out, unsigned char *owner_out)
{
    unsigned char owner[CRDT_PUBKEY_BYTES];
    standing s;
    int on, rc;

    if ((on = owner_find(txn, dbi, r->space_id, owner)) < 0)
        return on;
    if (owner_out != NULL && on)
        memcpy(owner_out, owner, CRDT_PUBKEY_BYTES);
    if (pk == NULL)
        return on;
    if ((rc = standing_read(txn, dbi, pk, NULL, &s)) < 0)
        return rc;
    *out = role_of(&s, on,
                   on && memcmp(pk, owner, CRDT_PUBKEY_BYTES) == 0);
    return on;
}

int
crdt_member_role(crdt_replica *r, const unsigned char *pk, crdt_role *out)
{
    MDB_txn *txn;
    int rc, slot;

    if (r == NULL || pk == NULL || out == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    if ((rc = crdt__state_slot(txn, r, &slot)) == CRDT_OK)
        rc = role_in(txn, r->dbi[CRDT_DB_STATE0 + slot], r, pk, out, NULL);
    crdt__txn_end(r, txn, 0);
    return rc < 0 ? rc : CRDT_OK;
}

int
crdt_members_owner(crdt_replica *r, unsigned char *owner_out)
{
    MDB_txn *txn;
    int rc, slot;

    if (r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    if ((rc = crdt__state_slot(txn, r, &slot)) == CRDT_OK)
        rc = role_in(txn, r->dbi[CRDT_DB_STATE0 + slot], r, NULL, NULL,
                     owner_out);
    crdt__txn_end(r, txn, 0);
    return rc;
}

int
crdt__member_doc_read(crdt__wctx *w, const unsigned char *pk,
                      crdt__member_doc *out)
{
    standing s;
    int rc;

    if ((rc = auth_load(w)) < 0 ||
        (rc = standing_read(w->txn, w->state, pk, NULL, &s)) < 0)
        return rc;
    out->on = w->auth.on;
    out->is_owner = w->auth.on &&
                    memcmp(pk, w->auth.owner, CRDT_PUBKEY_BYTES) == 0;
    out->found = s.found;
    out->member = s.member;
    out->readonly = s.readonly;
    out->admin = s.admin;
    out->removed = s.removed;
    return CRDT_OK;
}

int
crdt_raw_owner(crdt_raw *t, unsigned char *owner_out)
{
    unsigned char owner[CRDT_PUBKEY_BYTES];
    int rc;

    if (t == NULL)
        return CRDT_EINVAL;
    rc = owner_find(t->w->txn, t->w->state, t->w->r->space_id, owner);
    if (rc == 1 && owner_out != NULL)
        memcpy(owner_out, owner, CRDT_PUBKEY_BYTES);
    return rc;
}
