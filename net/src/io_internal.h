/*
 * io_internal.h: shared between conn.c and daemon.c (and their tests);
 * never installed. Names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_IO_INTERNAL_H
#define CRDTNET_IO_INTERNAL_H

#include <stddef.h>

#include "crdtnet/conn.h"
#include "crdtnet/daemon.h"

/*
 * Stop flags (crdtnet_conn_options.stop, the daemon's own) are set by
 * other threads or by signal handlers and polled by the loops: read and
 * set them as relaxed atomics (lock-free for an int, so a signal
 * handler may set one too). They order nothing; whoever stops also
 * writes the daemon's stop pipe or is joined.
 */
#define CRDTNET__FLAG(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define CRDTNET__FLAG_SET(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELAXED)

/*
 * What the daemon learns from a connection while it runs. Called from
 * the connection's thread; any hook may be NULL.
 */
typedef struct {
    /* The handshake succeeded (called once, before the session starts). */
    void (*authenticated)(void *ctx);
    /* The counters of replica @p r's space (called once the space is
     * known); NULL: not counted. Updated with relaxed atomic adds. */
    crdtnet_space_stats *(*stats)(crdt_replica *r, void *ctx);
    void *ctx;
    /* Set (by another thread) to end the connection if it is still in
     * its handshake: the daemon evicts its oldest pending handshake to
     * make room under a flood. NULL: never. */
    const volatile int *evict;
    /* Stored (relaxed) with crdtnet__now_ms() whenever bytes arrive, so
     * the daemon can tell idle pending handshakes from active ones.
     * NULL: not reported. */
    long long *rx_ms;
} crdtnet__conn_hooks;

/* crdtnet_serve_conn() and crdtnet_sync_connect() with hooks. */
int crdtnet__serve_conn(int fd, crdt_replica *const *replicas, size_t n,
                        const crdtnet_conn_options *opts,
                        crdtnet_report *out, const crdtnet__conn_hooks *h);
int crdtnet__sync_connect(crdtnet_report *out, crdt_replica *r,
                          const char *host, const char *port,
                          const crdtnet_conn_options *opts,
                          const crdtnet__conn_hooks *h);

/*
 * A server connection driven by an event loop instead of its own thread
 * (the daemon's): the same protocol steps, deadlines and hooks as
 * crdtnet__serve_conn(), one turn at a time. @p opts and @p h must
 * outlive the connection. Not thread-safe: one thread turns it.
 */
typedef struct crdtnet__conn crdtnet__conn;

/* Take @p fd (made non-blocking; closed on failure). */
int crdtnet__conn_accept(crdtnet__conn **out, int fd,
                         crdt_replica *const *replicas, size_t n,
                         const crdtnet_conn_options *opts,
                         const crdtnet__conn_hooks *h);

/* One turn at @p now (crdtnet__now_ms()): the I/O that @p revents
 * (POLLIN, POLLOUT, POLLERR, POLLHUP; 0 on a timer) allows, with @p rbuf
 * (@p rsize bytes, shared by every connection of the loop) to read
 * into, then the deadlines and the peer's clock, then output up to a
 * bounded number of bytes. */
void crdtnet__conn_turn(crdtnet__conn *c, int revents, unsigned char *rbuf,
                        size_t rsize, long long now);

/* The poll events to wait for (POLLIN, POLLOUT); 0 once done. */
int crdtnet__conn_events(const crdtnet__conn *c);

/* When to turn it at the latest without I/O (ms, same clock as @p now,
 * at most 250 ms ahead). */
long long crdtnet__conn_due(const crdtnet__conn *c, long long now);

/* Live: its space has a new commit. Runs the peer's live tick now
 * (instead of on its own, up to 250 ms later): its membership is read
 * again (revoked: it is closed), else the next turn queues what it
 * lacks. */
void crdtnet__conn_poke(crdtnet__conn *c);

/* 1 when the connection is over: crdtnet__conn_end() it. */
int crdtnet__conn_done(const crdtnet__conn *c);

/* The end: the result (as crdtnet_serve_conn() returns it; @p out may be
 * NULL), the end's log lines, then free and close. */
int crdtnet__conn_end(crdtnet__conn *c, crdtnet_report *out);

/* Add @p v to counter @p p (relaxed: counters order nothing). */
#define crdtnet__count(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

/* stats.c: the outcome (crdtnet_outcome) of a session's result code. */
int crdtnet__outcome(int rc);

/* stats.c: count one merge that took @p us microseconds. */
void crdtnet__count_merge(crdtnet_space_stats *st, uint64_t us);

/* Milliseconds on the monotonic clock. */
long long crdtnet__now_ms(void);


#endif
