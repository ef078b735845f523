/*
 * members.c: the local calls that write the member set (crdt/members.h),
 * and the walk over it. Each write is an ordinary op of a local txn, so
 * the same rules judge it here (authority.c, via the txn) and on every
 * replica it reaches. Only libcrdt knows the set's layout (collection,
 * document names, fields): the CLI and the network layer see keys and
 * roles.
 */
#include <string.h>

#include "crdt/members.h"
#include "internal.h"

#define MAX_ACTORS 256 /* incarnations of one key named by a removal */

int
crdt_txn_member_genesis(crdt_txn *t, const unsigned char *nonce)
{
    unsigned char space[CRDT_SPACE_ID_BYTES];
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    crdt_replica *r;
    crdt_value n;

    if (t == NULL || nonce == NULL)
        return CRDT_EINVAL;
    r = crdt__txn_wctx(t)->r;
    crdt_space_id_for_owner(space, r->pk, nonce);
    if (memcmp(space, r->space_id, CRDT_SPACE_ID_BYTES) != 0)
        return CRDT_EINVAL;
    crdt_hex(hex, r->pk, CRDT_PUBKEY_BYTES);
    n = crdt_value_bytes(nonce, CRDT_SPACE_NONCE_BYTES);
    return crdt_txn_put(t, CRDT_MEMBERS_COLL, hex, "genesis", &n);
}

int
crdt_txn_member_set(crdt_txn *t, const unsigned char *pk, crdt_role role)
{
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    crdt_value yes = crdt_value_bool(1), no = crdt_value_bool(0);
    crdt__member_doc d;
    int rc;

    if (t == NULL || pk == NULL ||
        (role != CRDT_ROLE_READER && role != CRDT_ROLE_WRITER &&
         role != CRDT_ROLE_ADMIN))
        return CRDT_EINVAL;
    if ((rc = crdt__member_doc_read(crdt__txn_wctx(t), pk, &d)) < 0)
        return rc;
    if (d.on && (d.removed || d.is_owner))
        return CRDT_EPERM; /* a removal is permanent; the owner stays */
    crdt_hex(hex, pk, CRDT_PUBKEY_BYTES);
    /* only the fields that change: one op in the usual case */
    if (d.on && (role == CRDT_ROLE_ADMIN) != (d.admin != 0) &&
        (rc = crdt_txn_put(t, CRDT_MEMBERS_COLL, hex, "admin",
                           role == CRDT_ROLE_ADMIN ? &yes : &no)) < 0)
        return rc;
    if ((!d.on || role != CRDT_ROLE_ADMIN) && !d.member &&
        (rc = crdt_txn_put(t, CRDT_MEMBERS_COLL, hex, "member", &yes)) < 0)
        return rc;
    if ((role == CRDT_ROLE_READER) != (d.readonly != 0) &&
        (rc = crdt_txn_put(t, CRDT_MEMBERS_COLL, hex, "readonly",
                           role == CRDT_ROLE_READER ? &yes : &no)) < 0)
        return rc;
    return CRDT_OK;
}

int
crdt_txn_member_remove(crdt_txn *t, const unsigned char *pk)
{
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    crdt_value no = crdt_value_bool(0);
    crdt__wctx *w;
    crdt__member_doc d;
    MDB_cursor *cur;
    MDB_val k, v;
    unsigned char el[MAX_ACTORS][16];
    int rc, g, named = 0;

    if (t == NULL || pk == NULL)
        return CRDT_EINVAL;
    w = crdt__txn_wctx(t);
    if ((rc = crdt__member_doc_read(w, pk, &d)) < 0)
        return rc;
    if (!(d.member || d.admin || d.is_owner) || d.removed)
        return CRDT_ENOTFOUND;
    if (d.is_owner)
        return CRDT_EPERM;
    crdt_hex(hex, pk, CRDT_PUBKEY_BYTES);
    if (!d.on) /* a space without roles: membership is the register */
        return crdt_txn_put(t, CRDT_MEMBERS_COLL, hex, "member", &no);
    /* the removal's causal past: each actor of the key, up to its head.
     * Collected first: a write may grow the map and renew the txn. */
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->r->dbi[CRDT_DB_HEADS],
                                            &cur))) < 0)
        return rc;
    for (g = mdb_cursor_get(cur, &k, &v, MDB_FIRST); g == 0;
         g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size < CRDT__HEAD_BYTES || k.mv_size != CRDT_ACTOR_BYTES ||
            memcmp((unsigned char *)v.mv_data + 40, pk, CRDT_PUBKEY_BYTES) != 0)
            continue;
        if (named == MAX_ACTORS) {
            g = -1; /* more incarnations than anyone makes */
            break;
        }
        memcpy(el[named], k.mv_data, 8);
        memcpy(el[named] + 8, v.mv_data, 8); /* head seq, big-endian */
        named++;
    }
    mdb_cursor_close(cur);
    if (g != MDB_NOTFOUND)
        return g == -1 ? CRDT_ELIMIT : crdt__mdb_err(g);
    if (named == 0) /* it never wrote: no op of it is valid */
        memset(el[named++], 0, 16);
    for (int i = 0; i < named && rc == CRDT_OK; i++) {
        crdt_value e = crdt_value_bytes(el[i], 16);
        rc = crdt_txn_sadd(t, CRDT_MEMBERS_COLL, hex, "cutoffs", &e);
    }
    return rc;
}

int
crdt_role_admits(crdt_role role)
{
    return role == CRDT_ROLE_READER || role == CRDT_ROLE_WRITER ||
           role == CRDT_ROLE_ADMIN || role == CRDT_ROLE_OWNER;
}

typedef struct {
    crdt_replica *r;
    int with_none;
    crdt_member_fn fn;
    void *ctx;
    int rc;
} each_ctx;

static int
visit_doc(const char *name, size_t len, void *p)
{
    each_ctx *c = p;
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    unsigned char pk[CRDT_PUBKEY_BYTES];
    crdt_role role;
    int rc;

    /* one document per key, named by its lowercase hex; the name is a
     * view into the walk: copied before the next read */
    if (len != 2 * CRDT_PUBKEY_BYTES)
        return 0;
    memcpy(hex, name, len);
    hex[len] = '\0';
    if (crdt_unhex(pk, sizeof pk, hex) != CRDT_OK)
        return 0;
    if ((rc = crdt_member_role(c->r, pk, &role)) < 0) {
        c->rc = rc;
        return 1;
    }
    if (role == CRDT_ROLE_NONE && !c->with_none)
        return 0;
    if ((rc = c->fn(pk, role, c->ctx)) != 0) {
        c->rc = rc < 0 ? rc : CRDT_OK;
        return 1;
    }
    return 0;
}

int
crdt_members_each(crdt_replica *r, int with_none, crdt_member_fn fn,
                  void *ctx)
{
    each_ctx c = { r, with_none, fn, ctx, CRDT_OK };
    crdt_read *rd;
    int rc;

    if (r == NULL || fn == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = crdt_read_docs(rd, CRDT_MEMBERS_COLL, visit_doc, &c);
    crdt_read_end(rd);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    return rc < 0 ? rc : c.rc;
}

static int
count_admitted(const unsigned char *pk, crdt_role role, void *ctx)
{
    (void)pk;
    if (crdt_role_admits(role))
        ++*(uint64_t *)ctx;
    return 0;
}

int
crdt_members_count(uint64_t *out, crdt_replica *r)
{
    uint64_t n = 0;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt_members_each(r, 0, count_admitted, &n)) < 0)
        return rc;
    *out = n;
    return CRDT_OK;
}
