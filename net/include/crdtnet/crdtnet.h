/**
 * @file crdtnet/crdtnet.h
 * libcrdtnet umbrella header: encrypted peer sync for Strata replicas.
 *
 * Start here:
 *   crdtnet/conn.h       sync a replica with a peer over TCP (one call),
 *                        or serve one accepted connection
 *   crdtnet/daemon.h     listen, accept and keep peers in live sync
 *   crdtnet/session.h    the sync state machine without sockets
 *   crdtnet/handshake.h  the authenticated key exchange without sockets
 *   crdtnet/channel.h    the encrypted channel the handshake yields
 *   crdtnet/frame.h      length-prefixed frames on a byte stream
 *
 * Includes crdt/crdt.h and epoch/epoch.h, whose rules hold here too.
 * Buffers this library allocates for the caller are released with
 * crdtnet_free().
 */
#ifndef CRDTNET_CRDTNET_H
#define CRDTNET_CRDTNET_H

#include "crdt/crdt.h"
#include "crdtnet/channel.h"
#include "crdtnet/conn.h"
#include "crdtnet/daemon.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "crdtnet/invite.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The library version, e.g. "0.1.0". Static; do not free. */
CRDTNET_API const char *crdtnet_version(void);

/**
 * Release a buffer this library allocated for the caller (e.g. the
 * message of crdtnet_session_error_msg()). NULL does nothing.
 */
CRDTNET_API void crdtnet_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
