/**
 * @file crdtnet/peer.h
 * One object that syncs a replica over any transport: bytes in, bytes
 * out. Inside: the framing (crdtnet/frame.h), the authenticated
 * handshake (crdtnet/handshake.h), the encrypted channel
 * (crdtnet/channel.h) and the sync session (crdtnet/session.h), in the
 * same wire format as `strata sync` over TCP (docs/protocol.md), so a
 * peer on a pipe, a WebSocket or Bluetooth talks to any Strata peer once
 * the bytes arrive.
 *
 * The app's loop (the client's; the server's is the same):
 * @code
 *   crdtnet_peer_new(&p, &r, 1, CRDTNET_HS_CLIENT, NULL);
 *   while (!crdtnet_peer_done(p)) {
 *       while (crdtnet_peer_next_out(p, &out, &n) == CRDT_OK)
 *           send_all(out, n);          // before the next call
 *       if (crdtnet_peer_done(p))
 *           break;
 *       n = receive(buf, sizeof buf);   // blocking, or when readable
 *       if (n == 0)
 *           crdtnet_peer_eof(p);        // the other side hung up
 *       else
 *           crdtnet_peer_feed(p, buf, n);
 *   }
 *   rc = crdtnet_peer_result(p, &report);
 *   crdtnet_peer_free(p);
 * @endcode
 *
 * No I/O and no threads. The clock is the transport's: a loop that can
 * wake on a timer calls crdtnet_peer_tick() (keepalives, live pushes,
 * membership re-checks, handshake and idle timeouts); one that cannot
 * gives up with crdtnet_peer_stop() or by freeing the peer. Not thread-safe: one
 * thread drives a peer. Memory: before the peer authenticated, at most a
 * 4 KiB frame and about 3.5 KiB of state; after, one message each way.
 *
 * crdtnet_sync_connect() and crdtnet_serve_conn() (crdtnet/conn.h), and
 * so `strata sync` and `strata serve`, are a socket and a clock around a
 * crdtnet_peer: one implementation of the protocol for every transport.
 */
#ifndef CRDTNET_PEER_H
#define CRDTNET_PEER_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/export.h"
#include "crdt/crdt.h"
#include "crdtnet/handshake.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A peer. Opaque. */
typedef struct crdtnet_peer crdtnet_peer;

/** Settings; start from CRDTNET_PEER_OPTIONS_INIT. */
typedef struct {
    unsigned int version; /**< 2 (1: without sync_proto) */
    epoch_policy policy;  /**< for stale or forked peers */
    size_t batch_bytes;   /**< session message target; 0 = default */
    /** Client only: by default a client whose member set is empty trusts
     *  the server it reached (trust on first use). Nonzero: strict. */
    int no_tofu;
    /** Stay open after the first exchange; crdtnet_peer_poke() after
     *  local commits queues them for the other side. */
    int live;
    /** For crdtnet_peer_tick() only: the handshake must end within this
     *  many ms of the first tick; 0 = 10000. */
    int handshake_timeout_ms;
    /** For crdtnet_peer_tick() only: a session that receives nothing for
     *  this many ms fails; a live one sends a keepalive after a third of
     *  it without output. 0 = 30000. */
    int idle_timeout_ms;
    /** Nonzero: never announce nor use PACKED messages, as a build from
     *  before them (crdtnet_session_options.plain_changes). */
    int plain_changes;
    /** Highest sync protocol offered: 0 = the newest (4); 3 = version 3
     *  only (crdtnet_session_options.sync_proto). */
    unsigned int sync_proto;
} crdtnet_peer_options;

#define CRDTNET_PEER_OPTIONS_INIT { 2, { 0, 0 }, 0, 0, 0, 0, 0, 0, 0 }

/** Where a peer is, and what moved so far. */
typedef struct {
    int authenticated;         /**< the handshake succeeded */
    int done;                  /**< crdtnet_peer_done() */
    uint64_t bytes_in, bytes_out;
    uint64_t changes_sent, changes_received;
    unsigned char peer_key[CRDTNET_PK_BYTES]; /**< once authenticated */
} crdtnet_peer_progress;

/**
 * A new peer for @p replicas. A client (CRDTNET_HS_CLIENT, the side
 * that speaks first) syncs @p replicas[0] (@p n must be 1). A server
 * answers for whichever of the @p n replicas holds the space the client
 * asks for, and admits only that replica's members. Each replica must
 * be epoch_attach()ed and outlive the peer.
 * @return CRDT_OK; CRDT_EINVAL; CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_peer_new(crdtnet_peer **out,
                                 crdt_replica *const *replicas,
                     size_t n, crdtnet_hs_role role,
                     const crdtnet_peer_options *opts);
/** Free @p p (wipes its keys). NULL does nothing. */
CRDTNET_API void crdtnet_peer_free(crdtnet_peer *p);

/**
 * Bytes from the other side, any amount, split anywhere. A protocol
 * failure does not return an error here: the peer queues its goodbye and
 * ends; see crdtnet_peer_result().
 * @return CRDT_OK; CRDT_EINVAL; CRDT_ECLOSED (already done: dropped).
 */
CRDTNET_API int crdtnet_peer_feed(crdtnet_peer *p, const void *bytes, size_t n);

/**
 * The next bytes to send: a view valid until the next call on @p p; send
 * all of them before calling again (each call moves on).
 * @return CRDT_OK; CRDT_EAGAIN (nothing now: feed what arrives);
 *         CRDT_ECLOSED (nothing more, ever).
 */
CRDTNET_API int crdtnet_peer_next_out(crdtnet_peer *p,
                                      const unsigned char **bytes,
                          size_t *n);

/** 1 when the conversation is over: the transport may close. */
CRDTNET_API int crdtnet_peer_done(const crdtnet_peer *p);

/** The transport ended (EOF, connection lost): finish what can be. */
CRDTNET_API void crdtnet_peer_eof(crdtnet_peer *p);

/** Ask the peer to end: it sends its goodbye, then is done once the
 *  other side's arrives or crdtnet_peer_eof() is called. */
CRDTNET_API void crdtnet_peer_stop(crdtnet_peer *p);

/** Live: the replica may have changed; queue what the other side lacks. */
CRDTNET_API void crdtnet_peer_poke(crdtnet_peer *p);

/**
 * The clock: call with a monotonic time in ms (any origin, never going
 * back) each time the loop wakes, and again at the latest at the time
 * returned. The first call starts the handshake timer. It fails the
 * handshake after crdtnet_peer_options.handshake_timeout_ms, and a
 * session that received nothing for idle_timeout_ms (a session says
 * goodbye with the error: CRDT_EIO in crdtnet_peer_result()). In a
 * session, every 250 ms it reads the other side's membership again (one
 * revoked gets CRDT_EAUTH in our goodbye, docs/security.md) and, if
 * live, queues the commits made meanwhile by any process; a live
 * session with no output for a third of the idle timeout queues a
 * keepalive. Ask crdtnet_peer_next_out() after each call.
 * @return when to call again (ms, same clock); UINT64_MAX once done.
 */
CRDTNET_API uint64_t crdtnet_peer_tick(crdtnet_peer *p, uint64_t now_ms);

/** Progress so far. */
CRDTNET_API void crdtnet_peer_progress_get(const crdtnet_peer *p,
                               crdtnet_peer_progress *out);

/**
 * The end, as `strata sync` reports it: fills @p out (may be NULL) with
 * the session's report (in_sync, changes, snapshot, rebased,
 * quarantined, reason...).
 * @return CRDT_OK (finished: both sides hold the same data, or a live
 *         peer ended well); CRDT_EAUTH; CRDT_EBUSY (retry after
 *         out->busy_retry_ms); CRDT_EREJECTED; CRDT_EVERSION;
 *         CRDT_EPROTO; CRDT_ECORRUPT; CRDT_EFULL; CRDT_EIO (the transport
 *         ended early); CRDT_EAGAIN (not done yet).
 */
CRDTNET_API int crdtnet_peer_result(const crdtnet_peer *p, crdtnet_report *out);

#ifdef __cplusplus
}
#endif

#endif
