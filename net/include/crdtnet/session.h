/**
 * @file crdtnet/session.h
 * The sync protocol as a state machine without I/O: feed it the
 * decrypted messages the peer sent, take the messages to send. A socket
 * layer (crdtnet/conn.h) moves them through the encrypted channel; tests
 * wire two sessions directly. Message layouts: docs/protocol.md.
 *
 *   HELLO --(relate epochs)--> SAME:   send changes the peer lacks, DONE
 *                              AHEAD:  send snapshot, changes, DONE
 *                              BEHIND: receive snapshot, reset, rebase,
 *                                      then send changes, DONE
 *   both DONE --> FIN (state hash, vv) --> finished, or LIVE (daemon)
 *
 * Memory stays bounded: changes and snapshot entries are read from
 * cursors one batch at a time as the caller drains the output.
 */
#ifndef CRDTNET_SESSION_H
#define CRDTNET_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A sync session with one peer for one replica. Opaque. */
typedef struct crdtnet_session crdtnet_session;

typedef struct {
    unsigned int version;     /**< 2 (1: without sync_proto) */
    epoch_policy policy;      /**< for stale or forked peers */
    size_t batch_bytes;       /**< target message size; 0 = 256 KiB */
    int live;                 /**< stay open after FIN and push changes */
    /** 1: behave as a peer from before PACKED messages (HELLO's proto
     *  written as a fixint, every change list plain); 2: as a peer from
     *  before packed version 2 (PACKED and CUT announced, packed version
     *  1 only); 3: as a peer from before store format 5 (all of them
     *  but kept lens defaults: a snapshot holding them is refused it);
     *  0: announce and use them all (docs/protocol.md, HELLO and
     *  "Packed changes") */
    int plain_changes;
    /**
     * Highest sync protocol version offered (docs/protocol.md, "Versions
     * and their negotiation"): 0 = the newest, 4 (a summary of the
     * version vector, negotiated: a version 3 peer is answered in version
     * 3); 3 = only version 3 (the whole version vector and heads in HELLO
     * and FIN, sent at once, as releases before version 4 do).
     */
    unsigned int sync_proto;
} crdtnet_session_options;

#define CRDTNET_SESSION_OPTIONS_INIT { 2, { 0, 0 }, 0, 0, 0, 0 }

/** Largest message a session sends or accepts (one change fits). */
#define CRDTNET_SESSION_MSG_MAX ((size_t)8 * 1024 * 1024)

/** What a session did. */
typedef struct {
    uint64_t changes_sent;
    uint64_t changes_received;
    uint64_t ops_received;
    uint64_t snapshot_entries_sent;
    uint64_t snapshot_entries_received;
    int snapshot_received;     /**< we reset to the peer's epoch */
    int snapshot_sent;
    uint64_t rebased_ops;
    uint64_t quarantined_ops;
    int rejected;              /**< beyond policy: our ops quarantined */
    uint64_t conflicts;        /**< equivocating changes (cloned replica)
                                    quarantined, never merged */
    uint64_t equivocations;    /**< actors the two sides hold different
                                    chains of (a copied replica wrote) */
    crdt_actor equivocating;   /**< the first of them */
    int equivocation_lost;     /**< ours lost: reset to the peer's chain,
                                    our losing ops quarantined */
    int renewed;               /**< our own actor equivocated: this
                                    replica now writes as a new actor */
    char reason[160];          /**< why rejected, busy or failed */
    uint64_t busy_retry_ms;    /**< peer or we were migrating */
    int in_sync;               /**< FIN: same vv and same state hash */
    int local_damage;          /**< our replica failed a check of what
                                    it was about to send (CRDT_ECORRUPT);
                                    nothing damaged was sent */
    unsigned char state_hash[CRDT_HASH_BYTES];
    unsigned int sync_proto;   /**< the version both sides speak (3 or
                                    4), 0 before the peer's HELLO */
    unsigned int summary_rounds; /**< version 4: SUMMARY messages
                                    received (0: equal heads at HELLO) */
    uint64_t cut_changes_received; /**< changes of the next epoch's cut
                                    this taker lacked, fetched before
                                    the snapshot to re-derive the epoch
                                    (docs/protocol.md, CUT) */
} crdtnet_report;

/**
 * New session on @p r (which must be epoch_attach()ed).
 * @param[out] out  release with crdtnet_session_free()
 */
CRDTNET_API int crdtnet_session_new(crdtnet_session **out, crdt_replica *r,
                        const crdtnet_session_options *opts);
CRDTNET_API void crdtnet_session_free(crdtnet_session *s);

/**
 * One message from the peer (already decrypted). An empty message
 * (@p len 0, @p msg may be NULL) is a keepalive, except the first one
 * before the peer's HELLO: the peer offers sync protocol 4.
 * @return CRDT_OK; CRDT_EPROTO (malformed: the session is failed);
 *         CRDT_EAUTH (forged change, other space); CRDT_EBUSY (we or the
 *         peer are migrating); CRDT_ECORRUPT; CRDT_EFULL; CRDT_ECLOSED
 *         (after the end).
 */
CRDTNET_API int crdtnet_session_feed(crdtnet_session *s, const unsigned char *msg,
                         size_t len);

/**
 * The next message to send: a view valid until the next call on @p s.
 * The first may be empty (@p len 0): this side offers sync protocol 4;
 * send it as an empty message (a keepalive, which a peer of version 3
 * ignores).
 * @return CRDT_OK; CRDT_EAGAIN (nothing to send now: feed the peer's
 *         messages, or in live mode call again later); CRDT_ECLOSED
 *         (finished or failed; nothing more to send).
 */
CRDTNET_API int crdtnet_session_next_out(crdtnet_session *s, const unsigned char **msg,
                             size_t *len);

/** 1 when the session ended well (FIN exchanged). A BUSY from either
 *  side ends it with crdtnet_session_error() == CRDT_EBUSY. */
CRDTNET_API int crdtnet_session_finished(const crdtnet_session *s);
/** The error that ended the session, or CRDT_OK. */
CRDTNET_API int crdtnet_session_error(const crdtnet_session *s);
/** The report so far. */
CRDTNET_API const crdtnet_report *crdtnet_session_report(const crdtnet_session *s);

/**
 * Live mode: tell the session the replica may have changed (another
 * process or thread wrote); it queues what the peer lacks.
 */
CRDTNET_API void crdtnet_session_poke(crdtnet_session *s);

/**
 * Build an ERROR message to say goodbye with @p code and @p reason.
 * @param[out] out  allocated; release it with crdtnet_free()
 */
CRDTNET_API int crdtnet_session_error_msg(unsigned char **out, size_t *len, int code,
                              const char *reason);

#ifdef __cplusplus
}
#endif

#endif
