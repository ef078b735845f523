/*
 * hashq.h: the state hash's entries hashed on another thread (hashq.c).
 *
 * Every state entry a txn writes or replaces is hashed into the state
 * hash (state.c): two SipHash-2-4-128 per entry, the largest single
 * cost of a large merge's own thread once its ops are decoded. The hash
 * of an entry depends on its bytes only and the sum is commutative, so
 * a large merge copies the entries' bytes into a queue and its aid
 * (mergeaid.h) hashes them while the merge goes on writing LMDB.
 *
 * One producer (the thread that holds the write txn) adds entries and
 * settles; one server (the aid) hashes queued chunks; the producer also
 * hashes queued chunks itself while it settles, so it never waits on a
 * server that is busy elsewhere. The sum is the same bytes as hashing
 * each entry in place: settle before reading or replacing the
 * accumulator (crdt__wctx_hash_settle()).
 */
#ifndef CRDT_HASHQ_H
#define CRDT_HASHQ_H

#include <stddef.h>
#include <stdint.h>

typedef struct crdt__hashq crdt__hashq;

/* Entries longer than this (key and value bytes, plus 2) are hashed in
 * place by the caller. */
#define CRDT__HASHQ_ENTRY_MAX 512

/* A queue with no entries; NULL when out of memory. */
crdt__hashq *crdt__hashq_new(void);
void crdt__hashq_free(crdt__hashq *q);

/* Producer: queue the entry (@p k, @p v) to be added (@p sign > 0) to
 * or taken (< 0) from the sum: 1. 0 when the queue is full or the entry
 * too long: the caller hashes it in place. */
int crdt__hashq_add(crdt__hashq *q, const void *k, size_t kl, const void *v,
                    size_t vl, int sign);
/* Producer: hash whatever is queued (sharing the work with the server)
 * and add the sum of every entry queued since the last settle to
 * @p acc. */
void crdt__hashq_settle(crdt__hashq *q, uint64_t acc[4]);

/* Server: hash the chunks queued now; never waits. */
void crdt__hashq_serve_pending(crdt__hashq *q);
/* Server: hash chunks as they come until crdt__hashq_close(). */
void crdt__hashq_serve(crdt__hashq *q);
/* Producer: settle first; then the server's crdt__hashq_serve()
 * returns. crdt__hashq_open() makes the queue usable again. */
void crdt__hashq_close(crdt__hashq *q);
void crdt__hashq_open(crdt__hashq *q);

#endif
