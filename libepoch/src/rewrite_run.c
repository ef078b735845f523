/*
 * rewrite_run.c: one pass of the rewriter (rewrite.c) over the whole
 * active state slot into the spare slot, on the caller's thread or with
 * a second one.
 *
 * A migration's big txn spends most of its time in LMDB: appending the
 * new entries, faulting in the pages they fill and writing them at
 * commit. Reading the old slot, running the lens, encoding and hashing
 * the new entries need no write txn, so with `threaded` a second thread
 * does them in a read txn that sees what the write txn began with
 * (crdt_raw_begin_base), filling batches (crdt_raw_batch, which also
 * hashes) that the write txn's thread appends.
 *
 *   producer (second thread)            writer (caller, holds the txn)
 *   cursor over the active slot         take the oldest full batch
 *   rewriter -> sink -> batch           crdt_raw_spare_put_batch
 *   batch full: hand it over            hand it back empty
 *
 * Invariants:
 *  (1) Entries reach the spare slot in the order the rewriter made them:
 *      batches are a ring taken in the order they were filled.
 *  (2) The read txn sees the active slot as the write txn does: the
 *      write txn has not written it (epoch__rewrite_opts.threaded's
 *      condition), and crdt_raw_begin_base() checks the snapshot.
 *  (3) Nothing outlives the call: the second thread is joined and the
 *      read txn ended before this returns, on every path (a retry after
 *      CRDT_EFULL grows the map, which wants no txn open). The read txn
 *      is begun and ended on the caller's thread (the lock it holds is
 *      the caller's) and used on the second one between the thread's
 *      creation and its join.
 *  (4) Either side's error stops both; the writer's comes back first.
 *  (5) Memory: RING batches of about BATCH_BYTES, besides the document
 *      the rewriter holds.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "epoch_internal.h"

#define RING 4
#define BATCH_BYTES (256u * 1024)
#define PROGRESS_EVERY 0x10000u /* entries between progress calls */

typedef struct {
    crdt_raw_batch *b;
    uint64_t seen; /* active-slot entries read when it was handed over */
} slot;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* one waiter at a time: the ring is full or empty */
    slot ring[RING];
    uint64_t head, tail; /* full: [tail, head); the producer fills head */
    int done, stop, rc;  /* rc: the producer's */
    crdt_raw *base;      /* the read txn the producer reads */
    epoch__rewriter *rw;
    uint64_t seen;
} pipe_run;

/* Producer: the batch being filled goes to the writer; wait for a free
 * one. CRDT_EBUSY: the writer stopped (its error is the one returned). */
static int
hand_over(pipe_run *p)
{
    int stop;

    pthread_mutex_lock(&p->mu);
    p->ring[p->head % RING].seen = p->seen;
    p->head++;
    pthread_cond_signal(&p->cv);
    while (p->head - p->tail == RING && !p->stop)
        pthread_cond_wait(&p->cv, &p->mu);
    stop = p->stop;
    pthread_mutex_unlock(&p->mu);
    if (stop)
        return CRDT_EBUSY;
    crdt_raw_batch_clear(p->ring[p->head % RING].b);
    return CRDT_OK;
}

/* The rewriter's output, on the producer's thread. */
static int
to_batch(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    pipe_run *p = ctx;
    crdt_raw_batch *b = p->ring[p->head % RING].b;
    int rc = crdt_raw_batch_add(b, k, kl, v, vl);

    if (rc == CRDT_OK && crdt_raw_batch_bytes(b) >= BATCH_BYTES)
        rc = hand_over(p);
    return rc;
}

/* Feed every entry of @p t's active slot to @p rw, then finish it. */
static int
feed_slot(crdt_raw *t, epoch__rewriter *rw, uint64_t *seen,
          epoch_progress_fn progress, void *progress_ctx, uint64_t total)
{
    crdt_raw_cursor *c = NULL;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    if ((rc = crdt_raw_cursor_open(&c, t, crdt_raw_state_db(t, 0))) < 0)
        return rc;
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK) {
        if ((rc = epoch__rewriter_put(rw, k, kl, v, vl)) < 0)
            break;
        if (++*seen % PROGRESS_EVERY == 0 && progress)
            progress(*seen, total, progress_ctx);
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    if (rc == CRDT_ENOTFOUND)
        rc = epoch__rewriter_finish(rw);
    return rc;
}

static void *
produce(void *arg)
{
    pipe_run *p = arg;
    int rc = feed_slot(p->base, p->rw, &p->seen, NULL, NULL, 0);

    pthread_mutex_lock(&p->mu);
    if (rc == CRDT_OK) {
        p->ring[p->head % RING].seen = p->seen;
        p->head++; /* the last batch, perhaps empty */
    }
    p->rc = rc;
    p->done = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Writer: append the batches as they come. */
static int
consume(pipe_run *p, crdt_raw *t, uint64_t total, epoch_progress_fn progress,
        void *progress_ctx)
{
    uint64_t reported = 0;
    int rc = CRDT_OK;

    for (;;) {
        slot *s;
        pthread_mutex_lock(&p->mu);
        while (p->tail == p->head && !p->done)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->tail == p->head) { /* done, and all appended */
            pthread_mutex_unlock(&p->mu);
            break;
        }
        s = &p->ring[p->tail % RING];
        pthread_mutex_unlock(&p->mu);

        if ((rc = crdt_raw_spare_put_batch(t, s->b)) < 0)
            break;
        if (progress && s->seen / PROGRESS_EVERY > reported / PROGRESS_EVERY)
            progress(s->seen, total, progress_ctx);
        reported = s->seen;

        pthread_mutex_lock(&p->mu);
        p->tail++;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    if (rc < 0) { /* (4) */
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

static int
run_threaded(crdt_raw *t, epoch__rewriter *rw, uint64_t total,
             const epoch__rewrite_opts *o, int *started)
{
    pipe_run p;
    pthread_t th;
    int rc = CRDT_OK, n = 0;

    memset(&p, 0, sizeof p);
    p.rw = rw;
    /* begun and ended here, used there: crdt_raw_begin_base() */
    if ((rc = crdt_raw_begin_base(&p.base, t)) < 0)
        return rc == CRDT_ENOMEM ? rc : CRDT_OK; /* no reader slot, say:
                                                    the caller goes inline */
    for (; n < RING && rc == CRDT_OK; n++)
        rc = crdt_raw_batch_new(&p.ring[n].b);
    if (rc == CRDT_OK && pthread_mutex_init(&p.mu, NULL) != 0)
        rc = CRDT_ENOMEM;
    if (rc == CRDT_OK && pthread_cond_init(&p.cv, NULL) != 0) {
        pthread_mutex_destroy(&p.mu);
        rc = CRDT_ENOMEM;
    }
    if (rc == CRDT_OK) {
        epoch__rewriter_set_sink(rw, to_batch, &p);
        if (pthread_create(&th, NULL, produce, &p) == 0) {
            *started = 1;
            rc = consume(&p, t, total, o->progress, o->progress_ctx);
            pthread_join(th, NULL); /* (3) */
            if (rc == CRDT_OK)
                rc = p.rc;
        }
        epoch__rewriter_set_sink(rw, NULL, NULL);
        pthread_cond_destroy(&p.cv);
        pthread_mutex_destroy(&p.mu);
    }
    crdt_raw_abort(p.base); /* (3) */
    for (int i = 0; i < n; i++)
        crdt_raw_batch_free(p.ring[i].b);
    return rc;
}

int
epoch__rewrite_slot(crdt_raw *t, const epoch__rewrite_opts *o, int *wrote_seq)
{
    epoch__rewriter *rw = NULL;
    uint64_t total = 0, seen = 0;
    int rc, started = 0;

    if (o->progress)
        crdt_raw_count(&total, t, crdt_raw_state_db(t, 0));
    if ((rc = crdt_raw_spare_clear(t)) < 0 ||
        (rc = epoch__rewriter_new(&rw, t, o->lens, o->custom_coll, o->custom,
                                  o->custom_ctx)) < 0)
        return rc;
    if (o->threaded && o->custom == NULL)
        rc = run_threaded(t, rw, total, o, &started);
    if (!started && rc == CRDT_OK) /* inline, or no thread to be had */
        rc = feed_slot(t, rw, &seen, o->progress, o->progress_ctx, total);
    if (rc == CRDT_OK && o->progress)
        o->progress(total, total, o->progress_ctx);
    if (wrote_seq != NULL)
        *wrote_seq = epoch__rewriter_wrote_seq(rw);
    epoch__rewriter_free(rw);
    return rc;
}
