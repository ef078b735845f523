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

/* Add @p v to counter @p p (relaxed: counters order nothing). */
#define crdtnet__count(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)

/* stats.c: the outcome (crdtnet_outcome) of a session's result code. */
int crdtnet__outcome(int rc);

/* stats.c: count one merge that took @p us microseconds. */
void crdtnet__count_merge(crdtnet_space_stats *st, uint64_t us);

/* Milliseconds on the monotonic clock. */
long long crdtnet__now_ms(void);


#endif
