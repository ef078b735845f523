/*
 * invite_internal.h: what the connection drivers need of invite.c;
 * never installed.
 */
#ifndef CRDTNET_INVITE_INTERNAL_H
#define CRDTNET_INVITE_INTERNAL_H

#include <stdint.h>

#include "crdt/crdt.h"
#include "crdtnet/handshake.h"

/*
 * Client: 1 and the secret of the invitation @p r holds, while @p r
 * holds no member set (the secret serves the first sync only); else 0.
 */
int crdtnet__invite_pending(crdt_replica *r,
                            unsigned char secret[CRDTNET_INVITE_SECRET_BYTES]);

/*
 * Server (the daemon serving the inviter's replica @p r): redeem the
 * invitation whose secret is @p secret for the authenticated key @p pk
 * at Unix time @p now. 1: @p pk now holds the recorded role, in a change
 * signed by @p r's key, and the invitation is used. 0: refused, with a
 * reason for the client in @p why ("invitation already used",
 * "invitation expired", "unknown invitation ...").
 */
int crdtnet__invite_redeem(crdt_replica *r, const unsigned char *pk,
                           const unsigned char *secret, uint64_t now,
                           char *why, size_t why_size);

#endif
