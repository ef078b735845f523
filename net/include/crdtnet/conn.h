/**
 * @file crdtnet/conn.h
 * Sync sessions over TCP: the socket layer under crdtnet/session.h, and
 * the membership rule the handshake applies.
 *
 * One connection is driven by one thread with blocking sockets and
 * poll() timeouts: frames (crdtnet/frame.h) carry the handshake
 * (crdtnet/handshake.h), then every session message (crdtnet/session.h)
 * is sealed in the encrypted channel (crdtnet/channel.h). The layout on
 * the wire is in docs/protocol.md ("Sessions over TCP").
 *
 * What this layer promises the one above: a function here returns only
 * after the socket is closed; data moves only after both sides proved
 * their identity and membership; every wait is bounded by a timeout or
 * the stop flag; memory held for a peer that has not authenticated is
 * at most its 4 KiB handshake frame plus about 3.5 KiB of state (the
 * handshake's and the crdtnet_peer's: both transports run on a
 * crdtnet_peer, crdtnet/peer.h).
 */
#ifndef CRDTNET_CONN_H
#define CRDTNET_CONN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- membership ---------------------------------------------------- */

/** The collection that holds a space's member set: an alias of
 *  CRDT_MEMBERS_COLL, whose layout crdt/members.h owns. */
#define CRDTNET_MEMBERS_COLL CRDT_MEMBERS_COLL
/** Meta key of the peer key a joining replica pinned (32 bytes). */
#define CRDTNET_PIN_META "pinned_peer"

/**
 * Is @p pk a member of @p r's space? Membership is ordinary replicated
 * data (crdt/members.h) and travels with every sync; a key is a member
 * when crdt_member_role() gives a role crdt_role_admits().
 * @return 1 if a member, 0 if not or if the replica cannot be read
 *         (fails closed).
 */
CRDTNET_API int crdtnet_is_member(crdt_replica *r, const unsigned char pk[32]);

/**
 * Count the members of @p r's space (crdt_members_count(): the keys of
 * the member set whose role admits them). A replica that joined a space
 * and never synced has 0.
 * @param[out] out  the count, written on success
 * @return CRDT_OK; CRDT_EINVAL; a read error (then nobody counts, so a
 *         first peer is not trusted on first use).
 */
CRDTNET_API int crdtnet_member_count(crdt_replica *r, uint64_t *out);

/* ---- connections --------------------------------------------------- */

/**
 * Split a peer or listen address, the one parser the library and the
 * CLI share: "HOST:PORT", or "[V6]:PORT" for an IPv6 literal. HOST is
 * not empty and, without brackets, holds no ':' (so "::1:7400" is
 * refused: write "[::1]:7400"); PORT is 1 to 5 decimal digits, 0..65535
 * (0: any free port, for listening).
 * @return CRDT_OK; CRDT_EINVAL (malformed, or a part does not fit in
 *         its buffer, NUL included).
 */
CRDTNET_API int crdtnet_split_hostport(char *host, size_t host_size,
                                       char *port, size_t port_size,
                                       const char *s);

/**
 * Receives one log line (no prefix, no newline), for instance
 * "127.0.0.1:40112: handshake failed: not a member of this space".
 * Called from the connection's thread; @p ctx is passed last.
 */
typedef void (*crdtnet_log_fn)(const char *line, void *ctx);

/** How serious a log event is; a daemon filters on it. */
typedef enum {
    CRDTNET_LOG_ERROR = 0, /**< a local failure: storage, memory */
    CRDTNET_LOG_WARN = 1,  /**< a peer or session failed, a limit hit */
    CRDTNET_LOG_INFO = 2,  /**< start, stop, authenticated, session ended */
    CRDTNET_LOG_DEBUG = 3  /**< detail */
} crdtnet_log_level;

/**
 * Receives one log event: its level, the peer it concerns ("HOST:PORT",
 * or NULL for none) and the message (no prefix, no newline). When set,
 * it is called instead of @c log, with @c log_ctx. Called from the
 * connection's thread.
 */
typedef void (*crdtnet_log_event_fn)(int level, const char *peer,
                                     const char *msg, void *ctx);

/** Connection settings; start from CRDTNET_CONN_OPTIONS_INIT. */
typedef struct {
    unsigned int version;     /**< 1 */
    /**
     * Stay connected after the first full exchange and push changes both
     * ways as they are committed, by this or any other process, within
     * about 250 ms. Ends when the peer closes, on the idle timeout or on
     * @c stop.
     */
    int live;
    epoch_policy policy;      /**< for stale or forked peers */
    size_t batch_bytes;       /**< session message target; 0 = default */
    int connect_timeout_ms;   /**< TCP connect; 0 = 10000 */
    int handshake_timeout_ms; /**< from accept/connect to authenticated;
                                   0 = 10000 */
    /**
     * Nothing received for this long ends the connection; also bounds a
     * write that makes no progress. 0 = 30000. A live connection sends
     * a keepalive after a third of it without traffic.
     */
    int idle_timeout_ms;
    /**
     * Client only. By default a client whose member set is empty (it
     * joined a space and never synced) trusts the server it connected to
     * (trust on first use). Nonzero: always check strictly.
     */
    int no_tofu;
    /**
     * Nonzero asks the connection to end: it sends its final message
     * and closes within about 250 ms (plus at most one second waiting
     * for the peer's). May be NULL. Setting it is async-signal-safe.
     */
    volatile sig_atomic_t *stop;
    crdtnet_log_fn log;       /**< one line per event, or NULL: silent */
    void *log_ctx;            /**< passed to @c log or @c log_event */
    crdtnet_log_event_fn log_event; /**< structured events, or NULL */
    /**
     * Called on the connection's thread after each session message
     * received, with the session's report so far (for a progress
     * display); NULL: none. @c progress_ctx is passed last.
     */
    void (*progress)(const crdtnet_report *rep, void *ctx);
    void *progress_ctx;
    /** Nonzero: never announce nor use PACKED messages, as a build from
     *  before them (crdtnet_session_options.plain_changes). */
    int plain_changes;
} crdtnet_conn_options;

#define CRDTNET_CONN_OPTIONS_INIT                                           \
    { 1, 0, { 0, 0 }, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, 0 }

/**
 * Connect to @p host : @p port (IPv4 or IPv6, getaddrinfo), authenticate
 * as a client with @p r's space id and identity, run one sync session to
 * its end (or, with @c live, until the peer closes or @c stop), send our
 * final message and close.
 *
 * The server is accepted if it is in @p r's member set. If that set is
 * empty (a replica that joined and never synced), it is accepted if its
 * key is the one pinned in @p r (meta CRDTNET_PIN_META, written by
 * `strata init --peer-key`), or, with no pin and @c no_tofu 0, whatever
 * it is (trust on first use: the member set then arrives with the
 * sync).
 *
 * @p r must be epoch_attach()ed. Safe to call from several threads at
 * once on the same replica.
 * @param[out] out  may be NULL; zeroed, then filled on every path: the
 *                  session's report, and on failure @c reason says why
 *                  (for instance "peer: not a member of this space")
 * @param opts      settings, or NULL for the defaults
 * @return CRDT_OK (the session finished: both sides hold the same data);
 *         CRDT_EAUTH (handshake refused either way; see out->reason);
 *         CRDT_EBUSY (the peer or we are migrating; retry after
 *         out->busy_retry_ms); CRDT_EREJECTED (stale or forked beyond
 *         policy: out->rejected, our unsynced ops are in quarantine);
 *         CRDT_EVERSION; CRDT_EPROTO (malformed or oversized frame);
 *         CRDT_ECORRUPT; CRDT_EFULL; CRDT_EIO (connect failed, timeout,
 *         connection lost); CRDT_EINVAL (bad arguments).
 */
CRDTNET_API int crdtnet_sync_connect(crdtnet_report *out, crdt_replica *r,
                         const char *host, const char *port,
                         const crdtnet_conn_options *opts);

/**
 * Serve one accepted connection: authenticate as a server for whichever
 * of the @p n replicas has the space the client asks for (strictly: a
 * client outside that replica's member set is refused and nothing
 * moves), then run a session until it ends, the peer closes, the idle
 * timeout, or @c stop. Closes @p fd on every path.
 *
 * Each replica must be epoch_attach()ed. Safe to call from several
 * threads at once on the same replicas.
 * @param fd        a connected TCP socket; this function owns it
 * @param out       may be NULL; as for crdtnet_sync_connect()
 * @return CRDT_OK (the session ended well: finished, or a live session
 *         that the peer or @c stop closed); the codes of
 *         crdtnet_sync_connect().
 */
CRDTNET_API int crdtnet_serve_conn(int fd, crdt_replica *const *replicas, size_t n,
                       const crdtnet_conn_options *opts,
                       crdtnet_report *out);

#ifdef __cplusplus
}
#endif

#endif
