/*
 * members.c: the member set of a space, as the handshake checks it.
 *
 * Membership is ordinary replicated data, so it travels with every sync:
 * collection "$members", one document per member named by its Ed25519
 * public key in lowercase hex (64 characters, exactly CRDT_NAME_MAX),
 * register "member" == true. Removing a member is a write of false (or a
 * delete), which also replicates.
 *
 * Invariants:
 *  (1) Any doubt is "not a member": a read error, another field type, a
 *      value other than boolean true (fail closed).
 *  (2) Each check reads one fresh snapshot, so a member added by another
 *      process counts for the next handshake.
 */
#include <stdint.h>
#include <string.h>

#include "crdtnet/conn.h"

static int
field_is_true(crdt_read *rd, const char *doc)
{
    crdt_field f;

    if (crdt_read_field(&f, rd, CRDTNET_MEMBERS_COLL, doc,
                        CRDTNET_MEMBERS_FIELD) != CRDT_OK)
        return 0;
    return f.kind == CRDT_FIELD_REGISTER && f.value.type == CRDT_VBOOL &&
           f.value.u.b == 1; /* keeps (1) */
}

int
crdtnet_is_member(crdt_replica *r, const unsigned char pk[32])
{
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    crdt_read *rd;
    int yes;

    if (r == NULL || pk == NULL)
        return 0;
    crdt_hex(hex, pk, CRDT_PUBKEY_BYTES);
    if (crdt_read_begin(&rd, r) != CRDT_OK)
        return 0; /* keeps (1) */
    yes = field_is_true(rd, hex);
    crdt_read_end(rd);
    return yes;
}

typedef struct {
    crdt_read *rd;
    uint64_t n;
} count_ctx;

static int
count_one(const char *name, size_t len, void *p)
{
    count_ctx *c = p;
    char doc[CRDT_NAME_MAX + 1];

    /* The name is a view into the walk; copy it before the next read. */
    if (len == 0 || len > CRDT_NAME_MAX)
        return 0;
    memcpy(doc, name, len);
    doc[len] = '\0';
    if (field_is_true(c->rd, doc))
        c->n++;
    return 0;
}

int
crdtnet_member_count(crdt_replica *r, uint64_t *out)
{
    count_ctx c;
    int rc;

    if (r == NULL || out == NULL)
        return CRDT_EINVAL;
    c.n = 0;
    rc = crdt_read_begin(&c.rd, r);
    if (rc < 0)
        return rc;
    rc = crdt_read_docs(c.rd, CRDTNET_MEMBERS_COLL, count_one, &c);
    crdt_read_end(c.rd);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    if (rc < 0)
        return rc;
    *out = c.n;
    return CRDT_OK;
}
