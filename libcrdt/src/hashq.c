/*
 * hashq.c: a ring of chunks of state entries waiting to be hashed (see
 * hashq.h).
 *
 * Invariants:
 *  (1) The chunks go round in order: the producer fills chunk `fill`
 *      and queues it, the next one to hash is `head`, so the queued and
 *      busy chunks are the ones from `head` up to (not including) `fill`.
 *  (2) The producer writes only the chunk it fills, and only once it
 *      has seen that chunk FREE; a BUSY chunk is read by its hasher
 *      only, who marks it FREE (release) when done. `head`, `pending`,
 *      `acc` and the sleepers' flags are under the lock.
 *  (3) `acc` holds the sum of every chunk hashed since the last settle;
 *      after a settle, no chunk is queued or busy.
 *  (4) A wake-up costs a system call (and on a VM much more), so each
 *      side signals only when the other sleeps: a merge queues a chunk
 *      about every 30 us, which a busy aid takes without being woken.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "hashq.h"
#include "internal.h"

#define CHUNKS 8
#define CHUNK_BYTES (64 * 1024)

enum { FREE = 0, QUEUED, BUSY };

struct crdt__hashq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned char *buf; /* CHUNKS * CHUNK_BYTES */
    size_t len[CHUNKS];
    _Atomic int st[CHUNKS];
    unsigned fill;  /* the producer's chunk */
    int fill_ok;    /* the producer's: chunk `fill` is FREE and its own */
    unsigned head;  /* the next chunk to hash */
    size_t pending; /* chunks QUEUED or BUSY */
    int closed;
    int server_sleeps, producer_sleeps;
    uint64_t acc[4];
};

crdt__hashq *
crdt__hashq_new(void)
{
    crdt__hashq *q = calloc(1, sizeof *q);

    if (q == NULL)
        return NULL;
    if ((q->buf = malloc((size_t)CHUNKS * CHUNK_BYTES)) == NULL)
        goto fail;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        goto fail;
    if (pthread_cond_init(&q->cond, NULL) != 0) {
        pthread_mutex_destroy(&q->lock);
        goto fail;
    }
    for (int i = 0; i < CHUNKS; i++)
        atomic_init(&q->st[i], FREE);
    q->fill_ok = 1;
    return q;
fail:
    free(q->buf);
    free(q);
    return NULL;
}

void
crdt__hashq_free(crdt__hashq *q)
{
    if (q == NULL)
        return;
    pthread_cond_destroy(&q->cond);
    pthread_mutex_destroy(&q->lock);
    free(q->buf);
    free(q);
}

/* The sum of chunk @p i's entries; the caller has it BUSY. */
static void
hash_chunk(const crdt__hashq *q, unsigned i, uint64_t sum[4])
{
    const unsigned char *p = q->buf + (size_t)i * CHUNK_BYTES;
    const unsigned char *end = p + q->len[i];

    while (p < end) {
        int sign = p[0];
        size_t n = (size_t)p[1] | (size_t)p[2] << 8;
        uint64_t h[4];

        crdt__hash_entry_bytes(h, p + 3, n);
        for (int l = 0; l < 4; l++)
            sum[l] = sign ? sum[l] + h[l] : sum[l] - h[l];
        p += 3 + n;
    }
}

/* Under the lock: hash the chunk at `head` if it is queued, releasing
 * the lock meanwhile. 1 if it was. */
static int
serve_one(crdt__hashq *q)
{
    unsigned i = q->head;
    uint64_t sum[4] = { 0 };

    if (atomic_load_explicit(&q->st[i], memory_order_acquire) != QUEUED)
        return 0;
    atomic_store_explicit(&q->st[i], BUSY, memory_order_relaxed);
    q->head = (i + 1) % CHUNKS;
    pthread_mutex_unlock(&q->lock);
    hash_chunk(q, i, sum);
    pthread_mutex_lock(&q->lock);
    for (int l = 0; l < 4; l++)
        q->acc[l] += sum[l];
    atomic_store_explicit(&q->st[i], FREE, memory_order_release);
    q->pending--;
    if (q->producer_sleeps)
        pthread_cond_broadcast(&q->cond);
    return 1;
}

/* Producer: queue the chunk it filled and take the next if it is free. */
static void
submit(crdt__hashq *q)
{
    pthread_mutex_lock(&q->lock);
    atomic_store_explicit(&q->st[q->fill], QUEUED, memory_order_release);
    q->pending++;
    if (q->server_sleeps)
        pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    q->fill = (q->fill + 1) % CHUNKS;
    q->fill_ok = atomic_load_explicit(&q->st[q->fill],
                                      memory_order_acquire) == FREE;
    if (q->fill_ok)
        q->len[q->fill] = 0;
}

int
crdt__hashq_add(crdt__hashq *q, const void *k, size_t kl, const void *v,
                size_t vl, int sign)
{
    size_t n = 2 + kl + vl;
    unsigned char *p;

    if (n > CRDT__HASHQ_ENTRY_MAX)
        return 0;
    if (!q->fill_ok) { /* the ring was full: has a chunk come free? */
        if (atomic_load_explicit(&q->st[q->fill], memory_order_acquire) !=
            FREE)
            return 0;
        q->fill_ok = 1;
        q->len[q->fill] = 0;
    }
    if (q->len[q->fill] + 3 + n > CHUNK_BYTES) {
        submit(q);
        if (!q->fill_ok)
            return 0;
    }
    p = q->buf + (size_t)q->fill * CHUNK_BYTES + q->len[q->fill];
    p[0] = sign > 0;
    p[1] = (unsigned char)n;
    p[2] = (unsigned char)(n >> 8);
    q->len[q->fill] += 3 + crdt__entry_bytes_put(p + 3, k, kl, v, vl);
    return 1;
}

void
crdt__hashq_settle(crdt__hashq *q, uint64_t acc[4])
{
    if (q->fill_ok && q->len[q->fill] > 0)
        submit(q);
    pthread_mutex_lock(&q->lock);
    while (q->pending > 0) {
        if (serve_one(q))
            continue;
        q->producer_sleeps = 1; /* the server hashes the last one */
        pthread_cond_wait(&q->cond, &q->lock);
        q->producer_sleeps = 0;
    }
    for (int l = 0; l < 4; l++) {
        acc[l] += q->acc[l];
        q->acc[l] = 0;
    }
    pthread_mutex_unlock(&q->lock);
    /* nothing is queued: every chunk is FREE, the producer's included */
    q->fill_ok = 1;
    q->len[q->fill] = 0;
}

void
crdt__hashq_serve_pending(crdt__hashq *q)
{
    pthread_mutex_lock(&q->lock);
    while (serve_one(q))
        ;
    pthread_mutex_unlock(&q->lock);
}

void
crdt__hashq_serve(crdt__hashq *q)
{
    pthread_mutex_lock(&q->lock);
    for (;;) {
        if (serve_one(q))
            continue;
        if (q->closed)
            break;
        q->server_sleeps = 1;
        pthread_cond_wait(&q->cond, &q->lock);
        q->server_sleeps = 0;
    }
    pthread_mutex_unlock(&q->lock);
}

void
crdt__hashq_close(crdt__hashq *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 1;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

void
crdt__hashq_open(crdt__hashq *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = 0;
    pthread_mutex_unlock(&q->lock);
}
