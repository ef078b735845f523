/*
 * io_internal.h: shared between conn.c and daemon.c (and their tests);
 * never installed. Names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_IO_INTERNAL_H
#define CRDTNET_IO_INTERNAL_H

#include <stddef.h>

#include "crdtnet/conn.h"

/*
 * What the daemon learns from a connection while it runs. Called from
 * the connection's thread; any hook may be NULL.
 */
typedef struct {
    /* The handshake succeeded (called once, before the session starts). */
    void (*authenticated)(void *ctx);
    void *ctx;
} crdtnet__conn_hooks;

/* crdtnet_serve_conn() and crdtnet_sync_connect() with hooks. */
int crdtnet__serve_conn(int fd, crdt_replica *const *replicas, size_t n,
                        const crdtnet_conn_options *opts,
                        crdtnet_report *out, const crdtnet__conn_hooks *h);
int crdtnet__sync_connect(crdtnet_report *out, crdt_replica *r,
                          const char *host, const char *port,
                          const crdtnet_conn_options *opts,
                          const crdtnet__conn_hooks *h);

/* Milliseconds on the monotonic clock. */
long long crdtnet__now_ms(void);


#endif
