/**
 * @file crdtnet/daemon.h
 * The sync daemon: serves one or more spaces to many peers at once and
 * keeps live sessions with configured peers (`strata serve`).
 *
 * Threads: crdtnet_daemon_run() runs an event loop in the calling
 * thread: it accepts connections and drives every accepted one (epoll;
 * a connection's turn reads and writes a bounded slice, so a slow or
 * silent peer, or one receiving a snapshot, never holds up the others
 * for long); every configured peer gets its own thread. One daemon holds
 * thousands of idle live sessions (a few KiB each; the process needs one
 * file descriptor per connection: see docs/operations.md). Live
 * sessions push changes committed by any process to connected peers
 * within about a second. Limits (connections, concurrent handshakes,
 * timeouts, pending handshakes per source address) keep a misbehaving
 * peer from exhausting the daemon.
 * Counters per space (crdtnet_daemon_space_stats()) feed a metrics
 * endpoint.
 *
 * Signals belong to the caller: install a SIGTERM/SIGINT handler that
 * calls crdtnet_daemon_stop(), which is async-signal-safe.
 */
#ifndef CRDTNET_DAEMON_H
#define CRDTNET_DAEMON_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "crdtnet/conn.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A sync daemon. Opaque. */
typedef struct crdtnet_daemon crdtnet_daemon;

/** Daemon settings; start from CRDTNET_DAEMON_OPTIONS_INIT. */
typedef struct {
    unsigned int version; /**< 1 */
    /**
     * Settings for every connection, both ways: timeouts, policy,
     * batch size, no_tofu (for outgoing peers). @c live is forced on,
     * @c stop is the daemon's own. @c log, if set, receives every line
     * instead of stderr.
     */
    crdtnet_conn_options conn;
    /** accepted connections; 0 = CRDTNET_DAEMON_MAX_CONNS_DEFAULT */
    unsigned max_conns;
    unsigned max_handshakes; /**< not yet authenticated; 0 = 128 */
    int backoff_min_ms;      /**< first reconnect delay; 0 = 1000 */
    int backoff_max_ms;      /**< reconnect delay cap; 0 = 60000 */
    int quiet;               /**< nonzero: log nothing */
    /**
     * The share of handshakes not yet authenticated one source address
     * (IP, any port) may hold once the daemon is full; 0 = 32. Then a
     * new connection from an address at its share replaces only one of
     * its own (the idlest), and one from an address below it first
     * replaces one of an address above it, so one address flooding the
     * daemon cannot take the slots other addresses' members need.
     */
    unsigned max_handshakes_per_addr;
} crdtnet_daemon_options;

/** The default of crdtnet_daemon_options.max_conns. Each connection
 *  takes a file descriptor: raise RLIMIT_NOFILE to match. */
#define CRDTNET_DAEMON_MAX_CONNS_DEFAULT 16384u

#define CRDTNET_DAEMON_OPTIONS_INIT                                         \
    { 1, CRDTNET_CONN_OPTIONS_INIT, 0, 0, 0, 0, 0, 0 }

/** How a sync session ended, for crdtnet_space_stats.sessions. */
typedef enum {
    CRDTNET_OUTCOME_OK = 0,   /**< finished, or a live session closed */
    CRDTNET_OUTCOME_BUSY,     /**< a migration on either side */
    CRDTNET_OUTCOME_REJECTED, /**< stale or forked beyond policy */
    CRDTNET_OUTCOME_AUTH,     /**< handshake refused either way */
    CRDTNET_OUTCOME_PROTOCOL, /**< malformed message, other version */
    CRDTNET_OUTCOME_NETWORK,  /**< connection lost, timeout, stopped */
    CRDTNET_OUTCOME_LOCAL,    /**< our storage or memory failed */
    CRDTNET_OUTCOME_COUNT
} crdtnet_outcome;

/** Buckets of the merge latency histogram (the last is unbounded). */
#define CRDTNET_MERGE_BUCKETS 12

/**
 * Counters of one space since the daemon started, summed over every
 * connection both ways (accepted and to configured peers). Every field
 * is a uint64_t (a copy is read field by field, without a lock).
 */
typedef struct {
    uint64_t peers_connected; /**< authenticated sessions open now */
    uint64_t changes_in;      /**< changes received */
    uint64_t changes_out;     /**< changes sent */
    uint64_t ops_in;          /**< ops in the changes received */
    uint64_t bytes_in;        /**< bytes read from sockets */
    uint64_t bytes_out;       /**< bytes written to sockets */
    uint64_t sessions[CRDTNET_OUTCOME_COUNT]; /**< ended, by outcome */
    uint64_t rebased_ops;     /**< ops of older epochs rebased on merge */
    uint64_t quarantined_ops; /**< ops set aside (beyond policy) */
    uint64_t conflicts;       /**< equivocating changes quarantined */
    uint64_t snapshots_in;    /**< resets to a peer's snapshot */
    uint64_t snapshots_out;   /**< snapshots sent */
    /** Merges of received messages that carried changes, and the time
     *  they took: merge_buckets[i] counts those that took at most
     *  crdtnet_merge_bucket_us(i) microseconds and more than bucket
     *  i - 1 (not cumulative). */
    uint64_t merges;
    uint64_t merge_us_total;
    uint64_t merge_buckets[CRDTNET_MERGE_BUCKETS];
} crdtnet_space_stats;

/** Upper bound of merge bucket @p i in microseconds; UINT64_MAX for the
 *  last. */
CRDTNET_API uint64_t crdtnet_merge_bucket_us(unsigned i);

/** The name of an outcome ("ok", "busy", "rejected", "auth",
 *  "protocol", "network", "local"). */
CRDTNET_API const char *crdtnet_outcome_name(int outcome);

/**
 * Copy the counters of replica @p i (in the order given to
 * crdtnet_daemon_new()). Safe from any thread while the daemon runs.
 * @return CRDT_OK; CRDT_EINVAL (no such replica).
 */
CRDTNET_API int crdtnet_daemon_space_stats(crdtnet_daemon *d, size_t i,
                               crdtnet_space_stats *out);

/** Prefix of every line the daemon logs to stderr. */
#define CRDTNET_DAEMON_LOG_PREFIX "strata serve: "

/**
 * Create a daemon and bind its listening socket, so the port is known
 * before crdtnet_daemon_run().
 * @param[out] out    release it with crdtnet_daemon_free()
 * @param replicas    @p n open replicas, each epoch_attach()ed, each of a
 *                    different space; borrowed: they must stay open until
 *                    crdtnet_daemon_free() (or until removed and idle:
 *                    crdtnet_daemon_space_idle())
 * @param listen_host address to bind (IPv4 or IPv6 literal or name);
 *                    NULL, "" or "*" = every address
 * @param listen_port port or service; "0" picks a free port (see
 *                    crdtnet_daemon_port())
 * @param peers       @p n_peers "host:port" strings ("[v6]:port" for an
 *                    IPv6 literal), copied; the daemon keeps a live
 *                    session with each peer for each replica
 * @param opts        settings, or NULL for the defaults
 * @return CRDT_OK; CRDT_EINVAL (no replica, two of the same space, bad
 *         peer string); CRDT_ELIMIT (more than CRDTNET_DAEMON_MAX_SPACES
 *         replicas); CRDT_EIO (cannot resolve or bind; the address
 *         is in use); CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_daemon_new(crdtnet_daemon **out, crdt_replica *const *replicas,
                       size_t n, const char *listen_host,
                       const char *listen_port, const char *const *peers,
                       size_t n_peers, const crdtnet_daemon_options *opts);

/** The port the daemon listens on (useful after binding port 0; after
 *  crdtnet_daemon_set_listen(), the new one once the loop took it). */
CRDTNET_API int crdtnet_daemon_port(const crdtnet_daemon *d);

/**
 * Listen on another address from now on (before or during
 * crdtnet_daemon_run(), from any thread). The new socket is bound here,
 * so a failure leaves the daemon listening where it was; the loop then
 * takes it at once and closes the old one. Sessions already accepted
 * are sockets of their own and go on; only new connections use the new
 * address. Logs "listening on NEW (was OLD)".
 * @return CRDT_OK; CRDT_EIO (cannot resolve or bind; the address is in
 *         use); CRDT_EINVAL.
 */
CRDTNET_API int crdtnet_daemon_set_listen(crdtnet_daemon *d,
                                          const char *host,
                                          const char *port);

/**
 * Run until crdtnet_daemon_stop(): the event loop that accepts and
 * drives connections, in the calling thread; start the peer threads.
 * On stop: stop accepting, end every session with its final message,
 * join every thread (within about two seconds), then return.
 * Every merged batch was its own committed transaction, so nothing
 * received is lost. Call once.
 * @return CRDT_OK; CRDT_EINVAL (called twice); CRDT_ENOMEM; CRDT_ERROR
 *         (cannot start a thread, or the event loop failed to start).
 */
CRDTNET_API int crdtnet_daemon_run(crdtnet_daemon *d);

/**
 * Ask the daemon to stop. Async-signal-safe (a flag and one write() to a
 * pipe); may be called from any thread, before or during
 * crdtnet_daemon_run(), any number of times.
 */
CRDTNET_API void crdtnet_daemon_stop(crdtnet_daemon *d);

/** Replicas one daemon serves at most, over its life (a replica removed
 *  and added again keeps its place). */
#define CRDTNET_DAEMON_MAX_SPACES 64

/**
 * Serve @p r from now on (before or during crdtnet_daemon_run(), from
 * any thread): new connections may pick its space, and a live link to
 * each configured peer starts for it. @p r is borrowed like those given
 * to crdtnet_daemon_new(): open and epoch_attach()ed until
 * crdtnet_daemon_free(), even after crdtnet_daemon_remove_space(), unless
 * crdtnet_daemon_space_idle() says the daemon is done with it. The
 * caller checks it first (crdt_replica_check, crdt_replica_check_records).
 * Adding a replica removed before serves it again, with its counters.
 * Adding another handle of a removed space (the same replica opened
 * again, e.g. after LMDB gave up on the first handle's environment)
 * takes that space's place and counters: from CRDT_OK on, the daemon no
 * longer reads the handle it replaces.
 * @return CRDT_OK; CRDT_EEXISTS (a replica of that space is served);
 *         CRDT_EBUSY (another handle of that space, removed, is still
 *         read by a session: see crdtnet_daemon_space_idle());
 *         CRDT_ELIMIT (CRDTNET_DAEMON_MAX_SPACES replicas so far);
 *         CRDT_EINVAL; CRDT_ERROR (cannot start a peer thread).
 */
CRDTNET_API int crdtnet_daemon_add_space(crdtnet_daemon *d, crdt_replica *r);

/**
 * Stop serving @p r: new handshakes for its space are refused as for a
 * space never served; its sessions, accepted or to configured peers, end with their
 * final message within about a second (a connection still in its
 * handshake that picks the space ends as soon as it knows it); its peer
 * links are joined before this returns. Counters stay (index unchanged).
 * @return CRDT_OK; CRDT_ENOTFOUND (not served); CRDT_EINVAL.
 */
CRDTNET_API int crdtnet_daemon_remove_space(crdtnet_daemon *d,
                                            crdt_replica *r);

/**
 * Whether a removed replica @p r is out of the daemon's hands: no session
 * reads it any more (those of its space end within about a second of
 * crdtnet_daemon_remove_space(); one still in its handshake that began
 * before the removal may pick it until it ends) and its links were
 * joined. From CRDT_OK on the daemon never reads @p r again, so the
 * caller may close it, e.g. to open the replica anew after LMDB gave up
 * on its environment (MDB_PANIC), and crdtnet_daemon_add_space() the new
 * handle.
 * @return CRDT_OK; CRDT_EBUSY (a session may still read it: ask again);
 *         CRDT_EINVAL (@p r is served, or NULL); CRDT_ENOTFOUND (not one
 *         of the daemon's replicas).
 */
CRDTNET_API int crdtnet_daemon_space_idle(crdtnet_daemon *d,
                                          crdt_replica *r);

/** Configured peer addresses at most. */
#define CRDTNET_DAEMON_MAX_PEERS 64

/**
 * Replace the configured peers (before or during crdtnet_daemon_run(),
 * from any thread): every live link ends with its final message and is
 * joined (about a second), then one link per new address and served
 * replica starts. @p peers are "host:port" strings, copied.
 * @return CRDT_OK; CRDT_EINVAL (a bad address: nothing changed);
 *         CRDT_ELIMIT (more than CRDTNET_DAEMON_MAX_PEERS); CRDT_ECLOSED
 *         (the daemon is stopping); CRDT_ENOMEM; CRDT_ERROR (cannot
 *         start a thread).
 */
CRDTNET_API int crdtnet_daemon_set_peers(crdtnet_daemon *d,
                                         const char *const *peers,
                                         size_t n_peers);

/**
 * Apply new settings to the sessions that start from now on: @c
 * max_conns, @c max_handshakes, @c max_handshakes_per_addr (at once, for
 * accepting), and of @c conn
 * the @c policy, @c idle_timeout_ms, @c handshake_timeout_ms and @c
 * batch_bytes (each new connection, and each peer link's next dial).
 * Sessions already running keep theirs; the other fields are ignored.
 * @return CRDT_OK; CRDT_EINVAL.
 */
CRDTNET_API int crdtnet_daemon_set_options(crdtnet_daemon *d,
                                           const crdtnet_daemon_options *o);

/**
 * Release @p d: closes the listening socket. Call after
 * crdtnet_daemon_run() returned (or if it never ran). NULL does nothing.
 */
CRDTNET_API void crdtnet_daemon_free(crdtnet_daemon *d);

#ifdef __cplusplus
}
#endif

#endif
