/*
 * sync_util.h: the pieces of a sync over loopback TCP between two
 * processes that w1_sync (w_sync.c) and sync_delta (w_delta.c) share:
 * whole reads and writes on the pipes between them, the server's listen
 * and accept on 127.0.0.1, its TCP byte counts, and the forked server
 * process seen from the client.
 */
#ifndef STRATA_BENCH_SYNC_UTIL_H
#define STRATA_BENCH_SYNC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "bench.h"
#include "crdt/crdt.h"

/* Write all @p n bytes; 0, or -1 on error. */
int sync_write_all(int fd, const void *p, size_t n);

/* Read exactly @p n bytes within @p ms; -1 on EOF, error or timeout. */
int sync_read_all(int fd, void *p, size_t n, int ms);

/* The replica's state hash (crdt_stats.state_hash); CRDT_OK or < 0. */
int sync_state_hash(crdt_replica *r, unsigned char out[CRDT_HASH_BYTES]);

/* What sync_listen_accept() returns when it could not listen. */
#define SYNC_LISTEN_FAILED (-1)
/* ... and when no client connected within the time. */
#define SYNC_ACCEPT_FAILED (-2)

/* The server's side: listen on 127.0.0.1 (a port the kernel picks),
 * send that port (an int; -1 if it could not listen) over @p port_w,
 * close @p port_w in every case, and accept one connection within
 * @p ms. The connected fd, or SYNC_LISTEN_FAILED / SYNC_ACCEPT_FAILED
 * with errno kept from the failing call. */
int sync_listen_accept(int port_w, int ms);

/* The server's end: tell the client "no port" (-1) if @p port_w is still
 * open (>= 0: the server failed before it listened), close @p r (may be
 * NULL), send the @p n bytes of result @p res over @p res_w, _exit(0). */
_Noreturn void sync_server_exit(int port_w, crdt_replica *r, int res_w,
                                const void *res, size_t n);

/* The TCP payload of connection @p fd so far, from TCP_INFO: what the
 * peer acknowledged (not tcpi_bytes_sent, which counts retransmits) and
 * what came in. Left 0 where the kernel does not tell. */
void sync_tcp_bytes(int fd, uint64_t *acked, uint64_t *received);

/* A forked server process: it runs @p fn, which writes its port on
 * port_w and its result on res_w, and must not return (_exit). */
typedef void (*sync_server_fn)(const void *ctx, int port_w, int res_w);

typedef struct {
    pid_t pid;
    int port_r, res_r; /* the client's ends of the two pipes */
} sync_server;

/* Fork the server process; 0, or -1 with @p out failed. */
int sync_server_start(sync_server *s, bench_res *out, sync_server_fn fn,
                      const void *ctx);

/* The port the server listens on, as a string for crdtnet_sync_connect,
 * within @p ms; -1 if it did not start. */
int sync_server_port(sync_server *s, char *port, size_t size, int ms);

/* Wait for the server process to end (killed first if @p failed, since
 * it may still wait for a client) and close the pipes. */
void sync_server_end(sync_server *s, int failed);

#endif
