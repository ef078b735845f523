/*
 * members.c: the member set of a space, stored as ordinary replicated
 * data so it travels with every sync: collection "$members", one document
 * per member named by its public key in lowercase hex (64 characters,
 * exactly CRDT_NAME_MAX), with the register "member" = true.
 */
#include "cli.h"

int
cli_member_add(crdt_replica *r, const unsigned char *pubkey)
{
    char hex[2 * CRDT_PUBKEY_BYTES + 1];
    crdt_value yes = crdt_value_bool(1);
    crdt_txn *t;
    int rc;

    crdt_hex(hex, pubkey, CRDT_PUBKEY_BYTES);
    rc = crdt_txn_begin(&t, r);
    if (rc < 0)
        return rc;
    rc = crdt_txn_put(t, CLI_MEMBERS_COLL, hex, CLI_MEMBERS_FIELD, &yes);
    if (rc < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}
