/*
 * txn_group.c: crdt_txn_write(): several threads' changes in one LMDB
 * write txn.
 *
 * A durable one-op commit costs the disk about a dozen pages (LMDB copies
 * every page a txn changes: the state, log, heads, feed and meta trees,
 * the main tree, the free list, a meta page), whoever else commits at the
 * same time. So a call queues its request, and the first caller that
 * finds no group running leads one: it takes every request queued, opens
 * one write context, runs each request's function on a txn of its own
 * that shares the context, writes each change, and commits the LMDB txn
 * once. Callers arriving meanwhile queue for the next group, which starts
 * as soon as this one's LMDB commit returns (the queue's head leads it);
 * the leader then waits for the sync that makes its group durable
 * (store_lmdb.c (5)) and wakes each of the group's callers once.
 *
 * Invariants:
 *  (1) Each request that wrote ops is one change, the same as
 *      crdt_txn_commit() would write: its own seqs and HLC, chained to the
 *      change before it, and it sees every change ahead of it in the
 *      group. Only the group's last change is stored signed: a change
 *      proves the one before it (txn.c, unsign_predecessor()), so the log
 *      holds what one thread committing them one by one would leave.
 *  (2) A request whose function fails leaves nothing: if it had written,
 *      the context is begun again and the changes before it replayed
 *      from their recorded ops (they see the same state as the first
 *      time, so they are the same changes).
 *  (3) The map filling up: grow it and replay everything so far, as
 *      txn.c's (2) does for one txn.
 *  (4) A request's call returns once its change is durable, or with the
 *      error that kept it out: an error of the shared txn (its commit,
 *      a storage error while writing) fails every request of the group
 *      that wrote.
 *  (5) A thread that holds a txn of the replica never waits for another
 *      thread's group (that group's leader could be waiting for the map
 *      to be free of txns to grow it): it writes alone.
 *  (6) With group_commit, a group does not commit while a shared sync
 *      runs or is due (up to GROUP_MAX changes, or WAIT_MAX_NS of
 *      waiting for the sync to end): it could not be durable before
 *      the sync after that one anyway, so it takes in every request
 *      that arrives during the sync. One LMDB txn goes with each sync,
 *      the pages it changes are written once for all its changes
 *      (groups committed between two syncs would each copy them), and
 *      the group is built while the disk syncs the one before.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdt/txn.h"
#include "txn_group.h"

#define REDO_TRIES 16
#define GROUP_MAX 1024 /* changes in one group: then it commits anyway */
#define WAIT_MAX_NS 20000000L /* for a sync to end: then it commits anyway */

struct crdt__wreq {
    crdt_write_fn fn;
    void *arg;
    int rc;
    int ran;    /* its function was called */
    int wrote;  /* its change is in the group's LMDB commit */
    int taken; /* by a group (under wq_lock) */
    int done;  /* its result is final (under wq_lock) */
    pthread_cond_t cond; /* its caller waits here */
    crdt_commit_info info;
    struct crdt__wreq *next;
};

struct crdt__wgroup {
    crdt_replica *r;
    crdt__wctx w;
    crdt_txn **m;          /* the changes written, in order */
    struct crdt__wreq **req; /* whose they are */
    size_t n, cap;
};

/* The replica whose group body this thread is running, if any: a body
 * that begins another write of it would wait for the writer lock this
 * thread holds (crdt__wctx_begin() answers CRDT_EBUSY instead). */
static _Thread_local const crdt_replica *in_body;

int
crdt__wgroup_guard(const crdt_replica *r)
{
    return in_body != NULL && in_body == r ? CRDT_EBUSY : CRDT_OK;
}

static int redo(struct crdt__wgroup *g, crdt_txn *cur, int grow);

/* Keeps (2) and (3); also called from inside a body (a full map). */
int
crdt__wgroup_redo(struct crdt__wgroup *g, crdt_txn *cur, int grow)
{
    const crdt_replica *was = in_body;
    int rc;

    in_body = NULL; /* the group's own context is begun again */
    rc = redo(g, cur, grow);
    in_body = was;
    return rc;
}

static int
redo(struct crdt__wgroup *g, crdt_txn *cur, int grow)
{
    int rc = CRDT__EMAPFULL;

    for (int tries = 0; rc == CRDT__EMAPFULL && tries < REDO_TRIES;
         tries++) {
        crdt__wctx_abort(&g->w);
        if ((grow || tries > 0) && (rc = crdt__store_grow(g->r)) < 0)
            return rc;
        if ((rc = crdt__wctx_begin(&g->w, g->r, 1)) < 0)
            return rc;
        g->w.sync_later = 1;
        rc = CRDT_OK;
        for (size_t i = 0; i < g->n && rc == CRDT_OK; i++) {
            rc = crdt__txn_member_reapply(g->m[i]);
            if (rc == CRDT_OK)
                rc = crdt__txn_member_write(g->m[i], i == 0,
                                            &g->req[i]->info);
        }
        if (rc == CRDT_OK && cur != NULL)
            rc = crdt__txn_member_reapply(cur);
    }
    return rc == CRDT__EMAPFULL ? CRDT_EFULL : rc;
}

static int
keep(struct crdt__wgroup *g, crdt_txn *t, struct crdt__wreq *q)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        crdt_txn **m = realloc(g->m, cap * sizeof *m);
        struct crdt__wreq **req;

        if (m == NULL)
            return CRDT_ENOMEM;
        g->m = m;
        if ((req = realloc(g->req, cap * sizeof *req)) == NULL)
            return CRDT_ENOMEM;
        g->req = req;
        g->cap = cap;
    }
    g->m[g->n] = t;
    g->req[g->n] = q;
    g->n++;
    return CRDT_OK;
}

/* Run one request in the group's context. Returns what makes the context
 * unusable for the rest (the request's own failure is in q->rc). */
static int
run_one(struct crdt__wgroup *g, struct crdt__wreq *q)
{
    crdt_txn *t;
    int rc, urc;

    if ((rc = crdt__txn_member_begin(&t, g->r, &g->w, g)) < 0)
        return rc;
    q->ran = 1;
    in_body = g->r;
    urc = q->fn(t, q->arg);
    in_body = NULL;
    if (urc >= 0 && crdt__txn_member_failed(t))
        urc = CRDT_EBADTXN;
    if (urc >= 0 && crdt__txn_member_ops(t) == 0) {
        crdt__txn_member_free(t); /* nothing to commit */
        q->rc = CRDT_OK;
        return CRDT_OK;
    }
    if (urc >= 0) {
        rc = crdt__txn_member_write(t, g->n == 0, &q->info);
        if (rc == CRDT__EMAPFULL) { /* all again with it, then write it */
            rc = crdt__wgroup_redo(g, t, 1);
            if (rc == CRDT_OK)
                rc = crdt__txn_member_write(t, g->n == 0, &q->info);
        }
        if (rc == CRDT_OK && (rc = keep(g, t, q)) == CRDT_OK) {
            q->wrote = 1;
            return CRDT_OK;
        }
        urc = rc == CRDT__EMAPFULL ? CRDT_EFULL : rc;
    }
    /* keeps (2): whatever it applied goes with the context */
    q->rc = urc;
    rc = crdt__txn_member_ops(t) > 0 || crdt__txn_member_failed(t)
             ? crdt__wgroup_redo(g, NULL, 0)
             : CRDT_OK;
    crdt__txn_member_free(t);
    return rc;
}

/* Sign the group's last change and commit (keeps (1), (3)). */
static int
finish(struct crdt__wgroup *g)
{
    int rc = CRDT_OK;

    for (int tries = 0; tries < REDO_TRIES; tries++) {
        rc = crdt__txn_member_sign(g->m[g->n - 1]);
        if (rc == CRDT_OK)
            rc = crdt__wctx_commit(&g->w); /* aborts it on failure */
        if (rc != CRDT__EMAPFULL)
            break;
        if ((rc = crdt__wgroup_redo(g, NULL, 1)) < 0)
            break;
        rc = CRDT__EMAPFULL;
    }
    return rc == CRDT__EMAPFULL ? CRDT_EFULL : rc;
}

/* Requests to add to a group that has @p n changes (keeps (6)). */
static struct crdt__wreq *
more(crdt_replica *r, size_t n)
{
    struct crdt__wreq *p = NULL;

    struct timespec until;

    /* a bound, for a sync that never comes: the ticket's holder is
     * about to lead it, so this is never reached in practice */
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += WAIT_MAX_NS;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->wq_lock);
    while (r->wq_head == NULL && n < GROUP_MAX && crdt__store_syncing(r))
        if (pthread_cond_timedwait(&r->wq_lead_cond, &r->wq_lock,
                                   &until) != 0)
            break;
    if (n < GROUP_MAX) {
        p = r->wq_head;
        r->wq_head = r->wq_tail = NULL;
        for (struct crdt__wreq *x = p; x != NULL; x = x->next)
            x->taken = 1;
    }
    pthread_mutex_unlock(&r->wq_lock);
    return p;
}

/* The leader's work: every request in @p q gets its rc, but for the
 * wait for durability; returns whether it committed anything, and then
 * its sync ticket in @p ticket. */
static int
lead(crdt_replica *r, struct crdt__wreq *q, uint64_t *ticket)
{
    struct crdt__wgroup g;
    struct crdt__wreq *p;
    int rc, committed;

    memset(&g, 0, sizeof g);
    g.r = r;
    rc = crdt__wctx_begin_fresh(&g.w, r);
    g.w.sync_later = 1;
    for (p = q; rc == CRDT_OK;) {
        struct crdt__wreq *last = p;
        for (; p != NULL && rc == CRDT_OK; p = p->next) {
            rc = run_one(&g, p);
            last = p;
        }
        if (rc < 0 || (p = more(r, g.n)) == NULL)
            break;
        last->next = p; /* marked done with the rest */
    }
    if (rc == CRDT_OK && g.n > 0)
        rc = finish(&g);
    crdt__wctx_abort(&g.w); /* no-op after a commit */
    committed = rc == CRDT_OK && g.n > 0;
    if (committed) /* at once: the next group's leader sees a sync is due */
        *ticket = crdt__store_sync_ticket(r);
    for (p = q; p != NULL; p = p->next) {
        if (rc < 0 && (p->wrote || !p->ran))
            p->rc = rc; /* went with the group, or never ran */
        p->wrote = p->wrote && rc == CRDT_OK;
    }
    for (size_t i = 0; i < g.n; i++)
        crdt__txn_member_free(g.m[i]);
    free(g.m);
    free(g.req);
    return committed;
}

/* Lead a group with the queue (wq_lock held on entry and return):
 * commit it, hand the queue to the next leader, sync, and wake the
 * group's callers (keeps (4)). */
static void
lead_queue(crdt_replica *r)
{
    struct crdt__wreq *batch = r->wq_head, *p;
    uint64_t ticket = 0;
    int committed, rc = CRDT_OK;

    r->wq_busy = 1;
    r->wq_head = r->wq_tail = NULL;
    for (p = batch; p != NULL; p = p->next)
        p->taken = 1;
    pthread_mutex_unlock(&r->wq_lock);
    committed = lead(r, batch, &ticket);
    pthread_mutex_lock(&r->wq_lock);
    r->wq_busy = 0; /* the next group is built while this one syncs */
    if (r->wq_head != NULL)
        pthread_cond_signal(&r->wq_head->cond);
    pthread_mutex_unlock(&r->wq_lock);
    /* this thread syncs for the group: its callers wake once, durable */
    if (committed) /* also without group_commit: keeps store_lmdb.c (6) */
        rc = crdt__store_sync_wait(r, ticket);
    pthread_mutex_lock(&r->wq_lock);
    for (p = batch; p != NULL; p = p->next) {
        if (p->wrote && rc < 0)
            p->rc = rc;
        p->done = 1; /* p may be gone once it sees this */
        pthread_cond_signal(&p->cond);
    }
}

/* Keeps (5): the plain path. */
static int
write_alone(crdt_replica *r, crdt_write_fn fn, void *arg,
            crdt_commit_info *info)
{
    crdt_txn *t;
    int rc;

    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = fn(t, arg)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, info);
}

int
crdt_txn_write(crdt_replica *r, crdt_write_fn fn, void *arg,
               crdt_commit_info *info)
{
    struct crdt__wreq q;
    int rc;

    if (info != NULL)
        memset(info, 0, sizeof *info);
    if (r == NULL || fn == NULL)
        return CRDT_EINVAL;
    if (r->read_only)
        return CRDT_EPERM;
    if ((rc = crdt__feed_guard(r)) < 0)
        return rc;
    if (crdt__store_txns_held_here(r))
        return write_alone(r, fn, arg, info);
    memset(&q, 0, sizeof q);
    q.fn = fn;
    q.arg = arg;
    if (pthread_cond_init(&q.cond, NULL) != 0)
        return CRDT_ENOMEM;
    pthread_mutex_lock(&r->wq_lock);
    if (r->wq_tail != NULL)
        r->wq_tail->next = &q;
    else
        r->wq_head = &q;
    r->wq_tail = &q;
    if (r->wq_busy)
        pthread_cond_signal(&r->wq_lead_cond); /* a leader may take it */
    while (!q.done) {
        if (!r->wq_busy && !q.taken)
            lead_queue(r); /* q is in the queue, so it leads its group */
        else
            pthread_cond_wait(&q.cond, &r->wq_lock);
    }
    pthread_mutex_unlock(&r->wq_lock);
    pthread_cond_destroy(&q.cond);
    rc = q.rc;
    if (rc == CRDT_OK && info != NULL)
        *info = q.info;
    return rc;
}
