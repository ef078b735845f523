/*
 * mergeaid.c: a large merge's second thread (see mergeaid.h).
 *
 * Invariants:
 *  (1) The aid reads the merge's changes and their bytes and writes only
 *      its own memory and the items of the batch's second half (their
 *      decoded headers, before the merge reads them): it never touches
 *      LMDB, the replica or the merge's queue, so the merge's txn stays
 *      on the merge's thread.
 *  (2) Its runs are cut as the log's run would cut them (logrun.c: one
 *      actor's changes, split at CRDT__LOGRUN_CHANGES_MAX changes and
 *      CRDT__LOGRUN_BYTES_MAX bytes) and packed by the same packer from
 *      the same inputs, so a record it packed is byte for byte the one
 *      the merge would pack. The merge takes one only when its run is
 *      exactly those changes (same bytes, same order); a run that
 *      differs (a duplicate, a parked change, a drained pending one) is
 *      packed by the merge itself.
 *  (3) The merge's outcome does not depend on the aid: before the merge
 *      returns, every actor it touched is proven, and when it fails for
 *      another reason at an actor, an actor up to that one that is not
 *      proven makes it CRDT_EAUTH, as when each actor was proven before
 *      it was applied. What was applied of an unproven actor is in the
 *      merge's txn only, which the caller then aborts.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashq.h"
#include "mergeaid.h"

size_t crdt__mergeaid_min_bytes = CRDT__MERGEAID_MIN_BYTES;
size_t crdt__mergeaid_split_min = CRDT__MERGEAID_SPLIT_MIN;
_Atomic unsigned long crdt__mergeaid_records;

typedef struct {
    size_t first, n; /* ord indexes */
} aid_group;

typedef struct {
    size_t first, n;       /* ord indexes */
    unsigned char *packed; /* NULL: not packed (the merge packs it) */
    size_t len;
    int deferred;          /* the merge's thread only: to write, key */
    unsigned char key[16];
} aid_run;

/* Kept by the replica from merge to merge (its arrays grown once). */
struct crdt__mergeaid {
    /* stage 1: the headers of items[split, n) */
    crdt__mitem *items;
    const crdt_bytes *changes;
    const unsigned char *hashes; /* n x CRDT_HASH_BYTES, or NULL */
    size_t split, n;
    const unsigned char *space;
    uint64_t limit_ms;
    int s1_rc;          /* the first error of its range */
    uint64_t s1_max_hlc;
    /* stage 2 */
    crdt__mitem *const *ord;
    aid_group *groups;
    aid_run *runs;
    size_t cap; /* of groups and of runs */
    size_t n_groups, n_runs;
    size_t cursor;  /* the merge's thread only: its next run */
    size_t written; /* the merge's thread only: runs before it are done */
    pthread_t th;
    pid_t th_pid;   /* the process the thread runs in; 0: no thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock */
    int job, idle, quit; /* a merge's work is handed over / done; close */
    int screened, go, stop;
    size_t runs_done, groups_proven;
    size_t fail_at; /* ord index of the first actor not proven; SIZE_MAX */
    crdt__hashq *hq; /* the state entries it hashes; NULL: none */
};

int
crdt__prove_actor(crdt__mitem *const *items, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        if (i + 1 < n && crdt_change_proves(&items[i + 1]->c, &items[i]->c))
            continue; /* proven by its successor, which is */
        if (crdt_change_verify(&items[i]->c) < 0)
            return CRDT_EAUTH;
    }
    return CRDT_OK;
}

int
crdt__mitem_screen(crdt__mitem *it, const crdt_bytes *ch,
                   const unsigned char *hash, const unsigned char *space,
                   uint64_t limit_ms, uint64_t *max_hlc)
{
    crdt_change *c = &it->c;
    uint64_t top;
    int rc;

    it->data = ch->data;
    it->len = ch->len;
    /* each op is decoded (and checked) once, when it is queued */
    rc = hash != NULL ? crdt__change_decode_hashed(c, ch->data, ch->len, hash)
                      : crdt__change_decode_header(c, ch->data, ch->len);
    if (rc < 0)
        return rc;
    if (memcmp(c->space_id, space, CRDT_SPACE_ID_BYTES) != 0)
        return CRDT_EAUTH; /* replayed from another space */
    top = c->hlc + c->n_ops - 1;
    if (crdt__hlc_ms(top) > limit_ms)
        return CRDT_ECLOCK;
    if (top > *max_hlc)
        *max_hlc = top;
    return CRDT_OK;
}

static int cpus_online;
static pthread_once_t cpus_once = PTHREAD_ONCE_INIT;

static void
count_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpus_online = n > 0 && n < 4096 ? (int)n : 1;
}

static void
pack_run(aid_run *ru, crdt__mitem *const *ord)
{
    unsigned char *p = NULL;
    size_t len = 0;

    if (crdt__changes_pack_items(&p, &len,
                                 (const crdt__mitem *const *)ord + ru->first,
                                 ru->n) == CRDT_OK &&
        len + 1 <= CRDT__LOGRUN_MAX) {
        ru->packed = p;
        ru->len = len;
    } else {
        crdt_free(p);
    }
}

/* One merge's work: stages 1 and 2, then the state entries' hashes
 * until the merge ends. */
static void
aid_job(crdt__mergeaid *a)
{
    int stop;

    for (size_t i = a->split; i < a->n; i++) {
        int rc = crdt__mitem_screen(&a->items[i], &a->changes[i],
                                    crdt__hash_at(a->hashes, i), a->space,
                                    a->limit_ms, &a->s1_max_hlc);
        if (rc < 0) {
            a->s1_rc = rc;
            break;
        }
    }
    pthread_mutex_lock(&a->lock);
    a->screened = 1;
    pthread_cond_broadcast(&a->cond);
    while (!a->go && !a->stop)
        pthread_cond_wait(&a->cond, &a->lock);
    stop = a->stop;
    pthread_mutex_unlock(&a->lock);
    if (stop)
        return;
    for (size_t k = 0; k < a->n_runs; k++) {
        if (a->runs[k].n > 1)
            pack_run(&a->runs[k], a->ord);
        if (a->hq != NULL)
            crdt__hashq_serve_pending(a->hq);
        pthread_mutex_lock(&a->lock);
        a->runs_done = k + 1;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
    }
    for (size_t g = 0; g < a->n_groups; g++) {
        const aid_group *gr = &a->groups[g];
        int rc = crdt__prove_actor(a->ord + gr->first, gr->n);
        pthread_mutex_lock(&a->lock);
        if (rc < 0) {
            a->fail_at = gr->first;
            a->groups_proven = a->n_groups;
        } else {
            a->groups_proven = g + 1;
        }
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        if (rc < 0)
            break;
        if (a->hq != NULL)
            crdt__hashq_serve_pending(a->hq);
    }
    if (a->hq != NULL)
        crdt__hashq_serve(a->hq); /* until the merge ends */
}

/* The thread stays from merge to merge (creating and joining one per
 * merge was 2.5% of the merge thread's samples over w1's 100 merges):
 * it waits for a job, does it, says so, until the replica closes. */
static void *
aid_main(void *arg)
{
    crdt__mergeaid *a = arg;

    for (;;) {
        pthread_mutex_lock(&a->lock);
        while (!a->job && !a->quit)
            pthread_cond_wait(&a->cond, &a->lock);
        if (!a->job) { /* quit */
            pthread_mutex_unlock(&a->lock);
            return NULL;
        }
        a->job = 0;
        pthread_mutex_unlock(&a->lock);
        aid_job(a);
        pthread_mutex_lock(&a->lock);
        a->idle = 1;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
    }
}

/* The lock and the condition, fresh: at the first merge, and in a
 * forked child (the thread did not come along; it waited on them). */
static int
sync_init(crdt__mergeaid *a)
{
    if (pthread_mutex_init(&a->lock, NULL) != 0)
        return -1;
    if (pthread_cond_init(&a->cond, NULL) != 0) {
        pthread_mutex_destroy(&a->lock);
        return -1;
    }
    return 0;
}

static int
thread_start(crdt__mergeaid *a)
{
    sigset_t all, old;
    int rc;

    a->job = a->quit = 0;
    a->idle = 1;
    /* the application's signals are for its own threads, never ours */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&a->th, NULL, aid_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -1;
    a->th_pid = getpid();
    return 0;
}

/* The groups (one per actor) and the runs the log would cut them into. */
static int
plan(crdt__mergeaid *a, crdt__mitem *const *ord, size_t n)
{
    if (n > a->cap) {
        void *g = realloc(a->groups, n * sizeof *a->groups), *r;
        if (g == NULL)
            return CRDT_ENOMEM;
        a->groups = g;
        if ((r = realloc(a->runs, n * sizeof *a->runs)) == NULL)
            return CRDT_ENOMEM;
        a->runs = r;
        a->cap = n;
    }
    a->n_groups = a->n_runs = 0;
    for (size_t i = 0, j; i < n; i = j) {
        size_t run_n = 0, run_len = 0;
        for (j = i + 1; j < n && memcmp(ord[j]->c.actor.b, ord[i]->c.actor.b,
                                        CRDT_ACTOR_BYTES) == 0;
             j++)
            ;
        a->groups[a->n_groups++] = (aid_group){ i, j - i };
        for (size_t k = i; k < j; k++) {
            if (run_n > 0 && (run_n == CRDT__LOGRUN_CHANGES_MAX ||
                              run_len + ord[k]->len > CRDT__LOGRUN_BYTES_MAX)) {
                a->runs[a->n_runs++] =
                    (aid_run){ .first = k - run_n, .n = run_n };
                run_n = run_len = 0;
            }
            run_n++;
            run_len += ord[k]->len;
        }
        a->runs[a->n_runs++] = (aid_run){ .first = j - run_n, .n = run_n };
    }
    return CRDT_OK;
}

crdt__mergeaid *
crdt__mergeaid_begin(crdt__mergeaid **keep, crdt__mitem *items,
                     const crdt_bytes *changes, const unsigned char *hashes,
                     size_t n,
                     const unsigned char *space, uint64_t limit_ms,
                     size_t *split)
{
    crdt__mergeaid *a = *keep;
    size_t bytes = 0, half = 0, h;

    *split = n;
    for (size_t i = 0; i < n; i++)
        bytes += changes[i].len;
    if (n == 0 || bytes < crdt__mergeaid_min_bytes)
        return NULL;
    pthread_once(&cpus_once, count_cpus);
    if (cpus_online < 2)
        return NULL;
    if (a == NULL) {
        if ((a = calloc(1, sizeof *a)) == NULL)
            return NULL;
        if (sync_init(a) < 0) {
            free(a);
            return NULL;
        }
        a->hq = crdt__hashq_new(); /* NULL: the merge hashes its entries */
        *keep = a;
    }
    if (a->th_pid != 0 && a->th_pid != getpid()) {
        /* a forked child: the thread did not come along, and the lock,
         * the condition and the queue's are copies that may name it as
         * a waiter: fresh ones (the old queue is left, not destroyed) */
        crdt__hashq *hq = crdt__hashq_new();
        if (hq == NULL || sync_init(a) < 0) {
            crdt__hashq_free(hq);
            return NULL; /* the merge does it all */
        }
        a->hq = hq;
        a->th_pid = 0;
    }
    if (a->th_pid == 0 && thread_start(a) < 0)
        return NULL;
    /* the merge's thread takes the first half of the bytes; a batch of
     * fewer changes is screened by the merge alone (the aid starts
     * meanwhile, and a hand-over would cost more than their headers) */
    if (n < crdt__mergeaid_split_min) {
        h = n;
    } else {
        for (h = 0; h < n && half < bytes / 2; h++)
            half += changes[h].len;
        if (h == 0)
            h = 1;
    }
    a->items = items;
    a->changes = changes;
    a->hashes = hashes;
    a->split = h;
    a->n = n;
    a->space = space;
    a->limit_ms = limit_ms;
    a->s1_rc = CRDT_OK;
    a->s1_max_hlc = 0;
    a->ord = NULL;
    a->n_groups = a->n_runs = 0;
    a->cursor = a->written = 0;
    a->screened = a->go = a->stop = 0;
    a->runs_done = a->groups_proven = 0;
    a->fail_at = SIZE_MAX;
    if (a->hq != NULL)
        crdt__hashq_open(a->hq);
    pthread_mutex_lock(&a->lock);
    a->job = 1;
    a->idle = 0;
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    *split = h;
    return a;
}

int
crdt__mergeaid_screened(crdt__mergeaid *a, uint64_t *max_hlc)
{
    pthread_mutex_lock(&a->lock);
    while (!a->screened)
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
    if (a->s1_rc < 0)
        return a->s1_rc;
    if (a->s1_max_hlc > *max_hlc)
        *max_hlc = a->s1_max_hlc;
    return CRDT_OK;
}

int
crdt__mergeaid_go(crdt__mergeaid *a, crdt__mitem *const *ord, size_t n)
{
    int rc = plan(a, ord, n);

    pthread_mutex_lock(&a->lock);
    if (rc == CRDT_OK) {
        a->ord = ord;
        a->go = 1;
    } else {
        a->stop = 1;
    }
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    return rc;
}

crdt__hashq *
crdt__mergeaid_hashq(crdt__mergeaid *a)
{
    return a != NULL && a->go ? a->hq : NULL;
}

int
crdt__mergeaid_defer(crdt__mergeaid *a, const crdt_actor *actor,
                     const crdt_bytes *list, size_t n,
                     const unsigned char key[16])
{
    size_t k;
    int seen = 0;

    if (a == NULL || n < 2)
        return 0;
    /* the merge writes its runs in the aid's order: look from its place
     * on, through the runs of actors it has left behind, and no further
     * than the runs of this actor */
    for (k = a->cursor; k < a->n_runs; k++) {
        const crdt__mitem *first = a->ord[a->runs[k].first];
        int same = memcmp(first->c.actor.b, actor->b, CRDT_ACTOR_BYTES) == 0;
        if (same && first->data == list[0].data)
            break;
        if (!same && seen)
            return 0;
        seen |= same;
    }
    if (k == a->n_runs || a->runs[k].n != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        const crdt__mitem *it = a->ord[a->runs[k].first + i];
        if (it->data != list[i].data || it->len != list[i].len)
            return 0;
    }
    a->cursor = k + 1;
    a->runs[k].deferred = 1;
    memcpy(a->runs[k].key, key, 16);
    return 1;
}

int
crdt__mergeaid_write(crdt__mergeaid *a, MDB_txn *txn, MDB_dbi dbi,
                     MDB_cursor *cur)
{
    if (a == NULL)
        return CRDT_OK;
    for (; a->written < a->cursor; a->written++) {
        aid_run *ru = &a->runs[a->written];
        int rc;

        if (!ru->deferred)
            continue;
        pthread_mutex_lock(&a->lock);
        while (a->runs_done <= a->written)
            pthread_cond_wait(&a->cond, &a->lock);
        pthread_mutex_unlock(&a->lock);
        if (ru->packed == NULL) {
            /* the aid could not pack it (memory): the merge does */
            pack_run(ru, a->ord);
            if (ru->packed == NULL)
                return CRDT_ENOMEM;
        }
        ru->deferred = 0;
        if ((rc = crdt__logrun_put_packed(txn, dbi, cur, ru->key, ru->packed,
                                          ru->len)) < 0)
            return rc;
        atomic_fetch_add_explicit(&crdt__mergeaid_records, 1,
                                  memory_order_relaxed);
    }
    return CRDT_OK;
}

int
crdt__mergeaid_proven(crdt__mergeaid *a, size_t upto)
{
    int rc;

    if (a == NULL)
        return CRDT_OK;
    pthread_mutex_lock(&a->lock);
    while (a->groups_proven < a->n_groups &&
           a->groups[a->groups_proven].first <= upto)
        pthread_cond_wait(&a->cond, &a->lock);
    rc = a->fail_at != SIZE_MAX && a->fail_at <= upto ? CRDT_EAUTH : CRDT_OK;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

void
crdt__mergeaid_end(crdt__mergeaid *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->lock);
    if (!a->go)
        a->stop = 1; /* stage 2 never came */
    pthread_cond_broadcast(&a->cond);
    pthread_mutex_unlock(&a->lock);
    if (a->hq != NULL)
        crdt__hashq_close(a->hq);
    pthread_mutex_lock(&a->lock);
    while (!a->idle)
        pthread_cond_wait(&a->cond, &a->lock);
    pthread_mutex_unlock(&a->lock);
    for (size_t k = 0; k < a->n_runs; k++) {
        crdt_free(a->runs[k].packed);
        a->runs[k].packed = NULL;
    }
}

void
crdt__mergeaid_free(crdt__mergeaid *a)
{
    if (a == NULL)
        return;
    if (a->th_pid != 0 && a->th_pid != getpid()) {
        /* a forked child's copy: its lock and condition may name the
         * parent's thread as a waiter, which destroying would wait for */
        free(a->runs);
        free(a->groups);
        free(a);
        return;
    }
    if (a->th_pid != 0) {
        pthread_mutex_lock(&a->lock);
        a->quit = 1;
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->th, NULL);
    }
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->lock);
    crdt__hashq_free(a->hq);
    free(a->runs);
    free(a->groups);
    free(a);
}
