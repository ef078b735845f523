/*
 * members.c: the member set of a space, as the handshake checks it.
 *
 * Membership is ordinary replicated data, so it travels with every sync:
 * collection "$members", one document per member named by its Ed25519
 * public key in lowercase hex (64 characters, exactly CRDT_NAME_MAX),
 * roles and removals as crdt/members.h describes (docs/security.md).
 * A key is let in when its role is reader, writer, admin or owner; a
 * removed key never again.
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
role_admits(crdt_role role)
{
    return role == CRDT_ROLE_READER || role == CRDT_ROLE_WRITER ||
           role == CRDT_ROLE_ADMIN || role == CRDT_ROLE_OWNER;
}

int
crdtnet_is_member(crdt_replica *r, const unsigned char pk[32])
{
    crdt_role role;

    if (r == NULL || pk == NULL)
        return 0;
    if (crdt_member_role(r, pk, &role) != CRDT_OK)
        return 0; /* keeps (1) */
    return role_admits(role);
}

typedef struct {
    crdt_replica *r;
    uint64_t n;
} count_ctx;

static int
count_one(const char *name, size_t len, void *p)
{
    count_ctx *c = p;
    char doc[CRDT_NAME_MAX + 1];
    unsigned char pk[CRDT_PUBKEY_BYTES];

    /* The name is a view into the walk; copy it before the next read. */
    if (len != 2 * CRDT_PUBKEY_BYTES)
        return 0;
    memcpy(doc, name, len);
    doc[len] = '\0';
    if (crdt_unhex(pk, sizeof pk, doc) == CRDT_OK && crdtnet_is_member(c->r, pk))
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
    crdt_read *rd;

    c.r = r;
    c.n = 0;
    rc = crdt_read_begin(&rd, r);
    if (rc < 0)
        return rc;
    rc = crdt_read_docs(rd, CRDTNET_MEMBERS_COLL, count_one, &c);
    crdt_read_end(rd);
    if (rc == CRDT_ENOTFOUND)
        rc = CRDT_OK;
    if (rc < 0)
        return rc;
    *out = c.n;
    return CRDT_OK;
}
