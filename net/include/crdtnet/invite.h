/**
 * @file crdtnet/invite.h
 * Invitations: how a new replica joins a space without trusting the
 * first daemon it meets (docs/security.md, "Invitations").
 *
 * The inviter (an admin or the owner) makes a token with
 * crdtnet_invite_create(): the space id, the inviter's public key, a
 * one-time secret, the role to give and an expiry. Only a hash of the
 * secret is kept, in the inviter's replica (local, never replicated).
 * The joiner creates a replica for the space and keeps the token with
 * crdtnet_invite_keep(): its first sync then talks only to a server that
 * proves the inviter's key in the handshake, and presents the secret,
 * encrypted, to that server alone. A daemon serving the inviter's
 * replica accepts the secret once, before its expiry: it adds the
 * joiner's key with the role, in a member-set change signed by that
 * replica's key (the inviter's), and marks the invitation used.
 */
#ifndef CRDTNET_INVITE_H
#define CRDTNET_INVITE_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "crdt/members.h"
#include "crdtnet/handshake.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Meta key of the invitation secret a joining replica holds (32 bytes). */
#define CRDTNET_INVITE_META "invite_secret"
/** Characters in a token (base64url, no padding), without the NUL. */
#define CRDTNET_INVITE_TOKEN_LEN 126
/** Longest lifetime crdtnet_invite_create() accepts: 365 days. */
#define CRDTNET_INVITE_TTL_MAX ((uint64_t)365 * 24 * 3600)

/** A decoded invitation token. */
typedef struct {
    unsigned char space_id[CRDTNET_SPACE_ID_BYTES];
    unsigned char inviter_pk[CRDTNET_PK_BYTES]; /**< pinned by the joiner */
    unsigned char secret[CRDTNET_INVITE_SECRET_BYTES];
    crdt_role role;    /**< reader, writer or admin */
    uint64_t expires;  /**< Unix time, seconds */
} crdtnet_invite;

/**
 * Make an invitation to @p r's space and record it (the hash of its
 * secret, the role, the expiry) in @p r.
 * @param role         reader, writer or admin
 * @param ttl_seconds  1 to CRDTNET_INVITE_TTL_MAX
 * @param now          the current Unix time (seconds)
 * @param[out] token_out  caller provides @p token_size bytes, at least
 *                        CRDTNET_INVITE_TOKEN_LEN + 1; gets the token
 * @return CRDT_OK; CRDT_EINVAL; CRDT_EPERM (this replica's key may not
 *         give @p role: only an admin invites, only the owner invites an
 *         admin); CRDT_EIO; CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_invite_create(crdt_replica *r, crdt_role role,
                                      uint64_t ttl_seconds, uint64_t now,
                                      char *token_out, size_t token_size);

/**
 * Decode a token made by crdtnet_invite_create().
 * @return CRDT_OK; CRDT_EINVAL (not a token: wrong length, characters,
 *         version, role or checksum).
 */
CRDTNET_API int crdtnet_invite_parse(const char *token, crdtnet_invite *out);

/**
 * Joiner: keep @p inv in @p r (a replica of inv->space_id that holds no
 * member set yet): pin the inviter's key (meta CRDTNET_PIN_META) and keep
 * the secret (meta CRDTNET_INVITE_META). Until @p r holds a member set,
 * syncs go only to a server proving the inviter's key and present the
 * secret to it.
 * @return CRDT_OK; CRDT_EINVAL (another space); CRDT_EIO.
 */
CRDTNET_API int crdtnet_invite_keep(crdt_replica *r, const crdtnet_invite *inv);

#ifdef __cplusplus
}
#endif

#endif
