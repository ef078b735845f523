/*
 * members.c: writing the member set of a space. The set is replicated
 * data whose layout is libcrdt's (crdt/members.h); libcrdt judges every
 * write to it by the same rules on every replica (docs/security.md).
 */
#include "cli.h"

/* One txn holding one member-set change; CRDT_OK or a crdt_err. */
static int
member_txn(crdt_replica *r, const unsigned char *pubkey, crdt_role role,
           int remove)
{
    crdt_txn *t;
    int rc;

    rc = crdt_txn_begin(&t, r);
    if (rc < 0)
        return rc;
    rc = remove ? crdt_txn_member_remove(t, pubkey)
                : crdt_txn_member_set(t, pubkey, role);
    if (rc < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

int
cli_member_add(crdt_replica *r, const unsigned char *pubkey, crdt_role role)
{
    return member_txn(r, pubkey, role, 0);
}

int
cli_member_rm(crdt_replica *r, const unsigned char *pubkey)
{
    return member_txn(r, pubkey, CRDT_ROLE_NONE, 1);
}
