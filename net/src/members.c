/*
 * members.c: the member set of a space, as the handshake checks it.
 *
 * Membership is ordinary replicated data, so it travels with every sync;
 * its layout is libcrdt's (crdt/members.h): this file asks for keys and
 * roles only. A key is let in when its role is reader, writer, admin or
 * owner (crdt_role_admits()); a removed key never again.
 *
 * Invariants:
 *  (1) Any doubt is "not a member": a read error, another field type, a
 *      value other than boolean true (fail closed; crdt_member_role()).
 *  (2) Each check reads one fresh snapshot, so a member added by another
 *      process counts for the next handshake.
 */
#include "crdtnet/conn.h"

int
crdtnet_is_member(crdt_replica *r, const unsigned char pk[32])
{
    crdt_role role;

    if (r == NULL || pk == NULL)
        return 0;
    if (crdt_member_role(r, pk, &role) != CRDT_OK)
        return 0; /* keeps (1) */
    return crdt_role_admits(role);
}

int
crdtnet_member_count(crdt_replica *r, uint64_t *out)
{
    if (r == NULL || out == NULL)
        return CRDT_EINVAL;
    return crdt_members_count(out, r);
}
