/**
 * @file crdt/members.h
 * The member set of a space and who may do what (docs/security.md).
 *
 * The member set is replicated data: collection CRDT_MEMBERS_COLL, one
 * document per member named by its Ed25519 public key in lowercase hex,
 * with these fields (each written only as this header's calls write it):
 *   "genesis"  bytes(16)  on the owner's document only: the nonce that,
 *                         hashed with the owner's key, gives the space id
 *   "admin"    bool       admin role; written by the owner only
 *   "member"   bool       may connect and (unless readonly) write
 *   "readonly" bool       reader role
 *   "cutoffs"  set of bytes(16): actor(8) | seq(8 big-endian). A removal:
 *              the actor's ops up to seq stay valid, every later op (and
 *              every op of an actor not listed) is refused. Permanent.
 *
 * A space whose id is bound to an owner key (crdt_space_id_for_owner())
 * and that holds the owner's genesis record enforces roles in merge, on
 * every replica alike. A space made before roles has no owner: every
 * member may do everything, as before.
 */
#ifndef CRDT_MEMBERS_H
#define CRDT_MEMBERS_H

#include "crdt/replica.h"
#include "crdt/txn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRDT_MEMBERS_COLL "$members"
#define CRDT_SPACE_NONCE_BYTES 16

/** A key's standing in a space. Numbers are permanent. */
typedef enum {
    CRDT_ROLE_NONE = 0,    /**< not a member */
    CRDT_ROLE_READER = 1,  /**< may connect and read */
    CRDT_ROLE_WRITER = 2,  /**< may also write data */
    CRDT_ROLE_ADMIN = 3,   /**< may also add and remove writers, readers */
    CRDT_ROLE_OWNER = 4,   /**< may also add and remove admins */
    CRDT_ROLE_REMOVED = 5  /**< was removed: refused for good */
} crdt_role;

/** "none", "reader", "writer", "admin", "owner", "removed". */
CRDT_API const char *crdt_role_name(crdt_role role);

/** Parse "reader", "writer" or "admin". CRDT_EINVAL otherwise. */
CRDT_API int crdt_role_parse(const char *s, crdt_role *out);

/**
 * The space id an owner key and a nonce give: the first 16 bytes of
 * BLAKE2b-256("strata-owner" | pk | nonce). A new space created with it
 * (crdt_open_options.space_id) and a genesis record
 * (crdt_txn_member_genesis()) enforces roles.
 */
CRDT_API void crdt_space_id_for_owner(unsigned char *space_out, const unsigned char *pk,
                             const unsigned char *nonce);

/**
 * Read @p pk's role from a fresh snapshot. In a space without an owner a
 * member (member == true) is CRDT_ROLE_ADMIN: anyone may change the set.
 * @return CRDT_OK; CRDT_EINVAL; CRDT_EIO; CRDT_ENOMEM.
 */
CRDT_API int crdt_member_role(crdt_replica *r, const unsigned char *pk,
                     crdt_role *out);

/**
 * May a key holding @p self give another key the role @p grant (reader,
 * writer or admin)? 1 yes, 0 no. @p roles_on is crdt_members_owner()'s
 * answer: without an owner every admin (every member) may; with one the
 * owner may give any role and an admin any role but admin. The rule
 * merge applies to every member-set op (docs/security.md 2), for callers
 * that must refuse early (an invitation that could never be redeemed).
 */
CRDT_API int crdt_role_may_grant(crdt_role self, crdt_role grant,
                                 int roles_on);

/** 1 if @p role lets a key connect (reader, writer, admin, owner). */
CRDT_API int crdt_role_admits(crdt_role role);

/** Called per key of the member set; non-zero stops the walk. */
typedef int (*crdt_member_fn)(const unsigned char *pk, crdt_role role,
                              void *ctx);

/**
 * Visit every key the member set names, in key order, with its role
 * (CRDT_ROLE_NONE for a document that names no role, also skipped when
 * @p with_none is 0; CRDT_ROLE_REMOVED for a removed key). Documents
 * whose name is not a public key in lowercase hex are not keys and are
 * skipped. The layout of the set stays libcrdt's: callers (the CLI's
 * `member ls`, the network layer's checks) see keys and roles only.
 * @return CRDT_OK (also for an empty set); CRDT_EINVAL; a read error;
 *         what @p fn returned if negative.
 */
CRDT_API int crdt_members_each(crdt_replica *r, int with_none,
                               crdt_member_fn fn, void *ctx);

/**
 * How many keys the member set admits (crdt_role_admits()), in
 * @p out. @return CRDT_OK; CRDT_EINVAL; a read error.
 */
CRDT_API int crdt_members_count(uint64_t *out, crdt_replica *r);

/**
 * Whether the space enforces roles: 1 and the owner's key in
 * @p owner_out (may be NULL), or 0. Negative on a read error.
 */
CRDT_API int crdt_members_owner(crdt_replica *r, unsigned char *owner_out);

/**
 * Record this replica's key as the owner of a space whose id is
 * crdt_space_id_for_owner(own key, @p nonce). CRDT_EINVAL if it is not.
 */
CRDT_API int crdt_txn_member_genesis(crdt_txn *t, const unsigned char *nonce);

/**
 * Give @p pk role @p role (reader, writer or admin). Refused with
 * CRDT_EPERM unless this replica's key may do it (docs/security.md):
 * also for a key that was removed (a removal is permanent).
 */
CRDT_API int crdt_txn_member_set(crdt_txn *t, const unsigned char *pk,
                        crdt_role role);

/**
 * Remove @p pk: its ops this replica holds stay valid, any other op of
 * that key is refused everywhere. CRDT_EPERM as above; CRDT_ENOTFOUND if
 * @p pk is not a member.
 */
CRDT_API int crdt_txn_member_remove(crdt_txn *t, const unsigned char *pk);

#ifdef __cplusplus
}
#endif

#endif
