/**
 * @file crdtnet/daemon.h
 * The sync daemon: serves one or more spaces to many peers at once and
 * keeps live sessions with configured peers (`strata serve`).
 *
 * Threads: crdtnet_daemon_run() accepts connections in the calling
 * thread; every accepted connection and every configured peer gets its
 * own thread, so a slow or silent peer never holds up the others. Live
 * sessions push changes committed by any process to connected peers
 * within about a second. Limits (connections, concurrent handshakes,
 * timeouts) keep a misbehaving peer from exhausting the daemon.
 *
 * Signals belong to the caller: install a SIGTERM/SIGINT handler that
 * calls crdtnet_daemon_stop(), which is async-signal-safe.
 */
#ifndef CRDTNET_DAEMON_H
#define CRDTNET_DAEMON_H

#include <stddef.h>

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
    unsigned max_conns;      /**< accepted connections; 0 = 256 */
    unsigned max_handshakes; /**< not yet authenticated; 0 = 128 */
    int backoff_min_ms;      /**< first reconnect delay; 0 = 1000 */
    int backoff_max_ms;      /**< reconnect delay cap; 0 = 60000 */
    int quiet;               /**< nonzero: log nothing */
} crdtnet_daemon_options;

#define CRDTNET_DAEMON_OPTIONS_INIT                                         \
    { 1, CRDTNET_CONN_OPTIONS_INIT, 0, 0, 0, 0, 0 }

/** Prefix of every line the daemon logs to stderr. */
#define CRDTNET_DAEMON_LOG_PREFIX "strata serve: "

/**
 * Create a daemon and bind its listening socket, so the port is known
 * before crdtnet_daemon_run().
 * @param[out] out    release it with crdtnet_daemon_free()
 * @param replicas    @p n open replicas, each epoch_attach()ed, each of a
 *                    different space; borrowed: they must stay open until
 *                    crdtnet_daemon_free()
 * @param listen_host address to bind (IPv4 or IPv6 literal or name);
 *                    NULL, "" or "*" = every address
 * @param listen_port port or service; "0" picks a free port (see
 *                    crdtnet_daemon_port())
 * @param peers       @p n_peers "host:port" strings ("[v6]:port" for an
 *                    IPv6 literal), copied; the daemon keeps a live
 *                    session with each peer for each replica
 * @param opts        settings, or NULL for the defaults
 * @return CRDT_OK; CRDT_EINVAL (no replica, two of the same space, bad
 *         peer string); CRDT_EIO (cannot resolve or bind; the address
 *         is in use); CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_daemon_new(crdtnet_daemon **out, crdt_replica *const *replicas,
                       size_t n, const char *listen_host,
                       const char *listen_port, const char *const *peers,
                       size_t n_peers, const crdtnet_daemon_options *opts);

/** The port the daemon listens on (useful after binding port 0). */
CRDTNET_API int crdtnet_daemon_port(const crdtnet_daemon *d);

/**
 * Run until crdtnet_daemon_stop(): accept connections, start the peer
 * threads. On stop: stop accepting, end every session with its final
 * message, join every thread (within about two seconds), then return.
 * Every merged batch was its own committed transaction, so nothing
 * received is lost. Call once.
 * @return CRDT_OK; CRDT_EINVAL (called twice); CRDT_ENOMEM; CRDT_ERROR
 *         (cannot start a thread).
 */
CRDTNET_API int crdtnet_daemon_run(crdtnet_daemon *d);

/**
 * Ask the daemon to stop. Async-signal-safe (a flag and one write() to a
 * pipe); may be called from any thread, before or during
 * crdtnet_daemon_run(), any number of times.
 */
CRDTNET_API void crdtnet_daemon_stop(crdtnet_daemon *d);

/**
 * Release @p d: closes the listening socket. Call after
 * crdtnet_daemon_run() returned (or if it never ran). NULL does nothing.
 */
CRDTNET_API void crdtnet_daemon_free(crdtnet_daemon *d);

#ifdef __cplusplus
}
#endif

#endif
