/*
 * replay.c: the trace replayer (replay.h).
 *
 * Bookkeeping per agent replica: @c has, the set of txns whose changes
 * it holds (always the causal closure of its agent's last txn, @c last),
 * and @c known, the version vector of what it holds (kept here from the
 * changes' headers, so capturing a local change costs one export, not a
 * read of the replica's version vector).
 *
 * Finding what a replica lacks before txn T: a walk from T's parents
 * that stops at txns it has. Because @c has is closed under parents,
 * the walk only visits txns it lacks, so the whole replay costs
 * O(txns + parent edges) walking, whatever the DAG.
 */
#include "replay.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "crdt/change.h"
#include "crdt/read.h"
#include "crdt/sync.h"
#include "crdt/text.h"
#include "crdt/txn.h"
#include "crdt/vv.h"

#define MERGE_BATCH 512 /* changes per crdt_merge between replicas */

static int
fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- the spool ---- */

static int
spool_add(replay_spool *s, const unsigned char *b, size_t n)
{
    if (s->n + 2 > s->n_cap) {
        size_t nc = s->n_cap ? s->n_cap * 2 : 1024;
        size_t *no = realloc(s->off, nc * sizeof *no);

        if (no == NULL)
            return -1;
        s->off = no;
        s->n_cap = nc;
        if (s->n == 0)
            s->off[0] = 0;
    }
    if (s->len + n > s->cap) {
        size_t nc = s->cap ? s->cap : 1 << 20;
        unsigned char *nb;

        while (nc < s->len + n)
            nc *= 2;
        nb = realloc(s->buf, nc);
        if (nb == NULL)
            return -1;
        s->buf = nb;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, b, n);
    s->len += n;
    s->off[++s->n] = s->len;
    return 0;
}

void
replay_spool_free(replay_spool *s)
{
    if (s == NULL)
        return;
    free(s->buf);
    free(s->off);
    free(s->unsigned_in_log);
    memset(s, 0, sizeof *s);
}

/* One crdt_merge of the @p k changes in @p b; it must apply them all. */
static int
merge_batch(crdt_replica *r, const crdt_bytes *b, size_t k, char *err,
            size_t errlen)
{
    crdt_merge_report rep;
    int rc = crdt_merge(&rep, r, b, k);

    if (rc < 0)
        return fail(err, errlen, "crdt_merge: %s", crdt_strerror(rc));
    if (rep.pending || rep.quarantined_ops || rep.conflicts)
        return fail(err, errlen,
                    "crdt_merge left %llu pending, %llu quarantined ops, "
                    "%llu conflicts",
                    (unsigned long long)rep.pending,
                    (unsigned long long)rep.quarantined_ops,
                    (unsigned long long)rep.conflicts);
    return 0;
}

static int
merge_list(crdt_replica *r, const replay_spool *s, const size_t *idx,
           size_t n, size_t batch, char *err, size_t errlen)
{
    crdt_bytes *b = malloc((batch ? batch : 1) * sizeof *b);

    if (b == NULL)
        return fail(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i += batch) {
        size_t k = n - i < batch ? n - i : batch;

        for (size_t j = 0; j < k; j++) {
            size_t c = idx ? idx[i + j] : i + j;

            b[j].data = s->buf + s->off[c];
            b[j].len = s->off[c + 1] - s->off[c];
        }
        if (merge_batch(r, b, k, err, errlen) < 0) {
            free(b);
            return -1;
        }
    }
    free(b);
    return 0;
}

int
replay_merge_spool_cut(crdt_replica *r, const replay_spool *s,
                       const size_t *ends, size_t n_messages, char *err,
                       size_t errlen)
{
    crdt_bytes *b = malloc((s->n ? s->n : 1) * sizeof *b);
    size_t from = 0;

    if (b == NULL)
        return fail(err, errlen, "out of memory");
    for (size_t i = 0; i < n_messages; i++) {
        size_t to = ends[i];

        if (to <= from || to > s->n) {
            free(b);
            return fail(err, errlen, "message %zu: bad end %zu", i, to);
        }
        for (size_t c = from; c < to; c++) {
            b[c - from].data = s->buf + s->off[c];
            b[c - from].len = s->off[c + 1] - s->off[c];
        }
        if (merge_batch(r, b, to - from, err, errlen) < 0) {
            free(b);
            return -1;
        }
        from = to;
    }
    free(b);
    return from == s->n ? 0
                        : fail(err, errlen, "the messages end at change %zu "
                                            "of %zu", from, s->n);
}

int
replay_merge_spool(crdt_replica *r, const replay_spool *s, size_t batch,
                   char *err, size_t errlen)
{
    return merge_list(r, s, NULL, s->n, batch ? batch : MERGE_BATCH, err,
                      errlen);
}

int
replay_read_text(char **out, size_t *len, crdt_replica *r, char *err,
                 size_t errlen)
{
    crdt_read *rd = NULL;
    int rc = crdt_read_begin(&rd, r);

    *out = NULL;
    if (rc < 0)
        return fail(err, errlen, "crdt_read_begin: %s", crdt_strerror(rc));
    rc = crdt_read_text(out, len, rd, REPLAY_COLL, REPLAY_DOC, REPLAY_FIELD);
    crdt_read_end(rd);
    if (rc == CRDT_ENOTFOUND) {
        *out = calloc(1, 1);
        *len = 0;
        return *out ? 0 : fail(err, errlen, "out of memory");
    }
    if (rc < 0)
        return fail(err, errlen, "crdt_read_text: %s", crdt_strerror(rc));
    {
        /* hand back a malloc'd copy: callers free() it */
        char *c = malloc(*len + 1);

        if (c != NULL) {
            memcpy(c, *out, *len);
            c[*len] = 0;
        }
        crdt_text_free(*out);
        *out = c;
    }
    return *out ? 0 : fail(err, errlen, "out of memory");
}

char *
replay_reference(const trace *t, size_t n, size_t *len, char *err,
                 size_t errlen)
{
    size_t cap = t->start_len + t->text_len + 1, used = t->start_len;
    char *b = malloc(cap);

    if (b == NULL) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    memcpy(b, t->start, t->start_len);
    for (size_t i = 0; i < n && i < t->n_patches; i++) {
        const trace_patch *p = &t->patches[i];
        size_t at = trace_utf8_off(b, used, p->pos);
        size_t end = trace_utf8_off(b + at, used - at, p->del) + at;

        if (trace_utf8_cp(b, at) != p->pos ||
            trace_utf8_cp(b + at, end - at) != p->del) {
            fail(err, errlen, "patch %zu: [%u, %u] is past the end", i,
                 p->pos, p->del);
            free(b);
            return NULL;
        }
        memmove(b + at, b + end, used - end);
        used -= end - at;
        memmove(b + at + p->ins_len, b + at, used - at);
        memcpy(b + at, t->text + p->ins_off, p->ins_len);
        used += p->ins_len;
    }
    b[used] = 0;
    *len = used;
    return b;
}

/* ---- agents ---- */

typedef struct {
    crdt_replica *r;
    crdt_vv *known;
    unsigned char *has;   /* bit per txn */
    long last;            /* its agent's last txn, -1: none */
    int gen;              /* rebuilds so far (directory suffix) */
    char dir[512];
} agent;

typedef struct {
    const trace *t;
    const replay_opts *o;
    replay_result *res;
    replay_spool *spool;
    agent *ag;
    size_t *txn_first, *txn_n; /* each txn's changes in the spool */
    size_t *stack, *missing;
    unsigned char *seen;
    unsigned char space[CRDT_SPACE_ID_BYTES];
    int have_space;
    char *err;
    size_t errlen;
} ctx;

#define HAS(a, i) ((a)->has[(i) >> 3] & (1u << ((i) & 7)))
#define SET(a, i) ((a)->has[(i) >> 3] |= (unsigned char)(1u << ((i) & 7)))

static int
agent_open(ctx *c, agent *a, uint32_t id)
{
    crdt_open_options oo = CRDT_OPEN_OPTIONS_INIT;
    char name[64];
    int rc;

    snprintf(name, sizeof name, "agent%u.%d", id, a->gen++);
    snprintf(a->dir, sizeof a->dir, "%s/%s", c->o->base, name);
    bench_rmtree(a->dir);
    oo.create = 1;
    oo.no_sync = !c->o->durable;
    oo.space_id = c->have_space ? c->space : NULL;
    rc = crdt_replica_open(&a->r, a->dir, &oo);
    if (rc < 0)
        return fail(c->err, c->errlen, "create replica %s: %s", a->dir,
                    crdt_strerror(rc));
    if (!c->have_space) {
        crdt_replica_space_id(a->r, c->space);
        c->have_space = 1;
    }
    if (crdt_vv_new(&a->known) < 0)
        return fail(c->err, c->errlen, "out of memory");
    a->last = -1;
    memset(a->has, 0, (c->t->n_txns + 7) / 8);
    return 0;
}

static void
agent_close(ctx *c, agent *a)
{
    crdt_replica_close(a->r);
    a->r = NULL;
    crdt_vv_free(a->known);
    a->known = NULL;
    if (!c->o->keep && a->dir[0])
        bench_rmtree(a->dir);
}

/* Note the changes [from, to) of the spool in @p a's version vector. */
static int
note_known(ctx *c, agent *a, size_t from, size_t to)
{
    for (size_t k = from; k < to; k++) {
        crdt_actor act;
        uint64_t last;
        const replay_spool *s = c->spool;

        if (crdt_change_peek(&act, &last, s->buf + s->off[k],
                             s->off[k + 1] - s->off[k]) < 0)
            return fail(c->err, c->errlen, "change %zu: unreadable", k);
        if (crdt_vv_get(a->known, &act) < last &&
            crdt_vv_set(a->known, &act, last) < 0)
            return fail(c->err, c->errlen, "out of memory");
    }
    return 0;
}

static int
cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;

    return a < b ? -1 : a > b;
}

/* Merge into @p a every txn in the closure of @p parents it lacks. */
static int
catch_up(ctx *c, agent *a, const uint32_t *parents, uint32_t n_parents,
         int *reached_last)
{
    size_t sp = 0, nm = 0, nchanges = 0;

    *reached_last = a->last < 0;
    for (uint32_t i = 0; i < n_parents; i++)
        c->stack[sp++] = parents[i];
    while (sp > 0) {
        size_t x = c->stack[--sp];
        const trace_txn *tx;

        if (HAS(a, x)) {
            if ((long)x == a->last)
                *reached_last = 1;
            continue;
        }
        if (c->seen[x])
            continue;
        c->seen[x] = 1;
        c->missing[nm++] = x;
        tx = &c->t->txns[x];
        for (uint32_t k = 0; k < tx->n_parents; k++)
            c->stack[sp++] = c->t->parents[tx->first_parent + k];
    }
    for (size_t i = 0; i < nm; i++)
        c->seen[c->missing[i]] = 0;
    if (nm == 0)
        return 0;
    /* txn order is a topological order: parents have smaller indexes */
    qsort(c->missing, nm, sizeof *c->missing, cmp_size);
    /* the changes of those txns, in order; reuse c->stack for indexes */
    for (size_t i = 0; i < nm; i++) {
        size_t x = c->missing[i];

        for (size_t k = 0; k < c->txn_n[x]; k++)
            c->stack[nchanges++] = c->txn_first[x] + k;
        SET(a, x);
    }
    if (nchanges > 0) {
        if (merge_list(a->r, c->spool, c->stack, nchanges, MERGE_BATCH,
                       c->err, c->errlen) < 0)
            return -1;
        c->res->merged += nchanges;
        for (size_t i = 0; i < nchanges; i++)
            if (note_known(c, a, c->stack[i], c->stack[i] + 1) < 0)
                return -1;
    }
    return 0;
}

/* Apply patches [from, to) in one crdt txn on @p a. */
static int
apply(ctx *c, agent *a, size_t from, size_t to, crdt_commit_info *info)
{
    crdt_txn *tx = NULL;
    int rc = crdt_txn_begin(&tx, a->r);

    memset(info, 0, sizeof *info);
    if (rc < 0)
        return fail(c->err, c->errlen, "crdt_txn_begin: %s",
                    crdt_strerror(rc));
    for (size_t i = from; i < to; i++) {
        const trace_patch *p = &c->t->patches[i];

        if (p->del > 0 &&
            (rc = crdt_txn_text_delete(tx, REPLAY_COLL, REPLAY_DOC,
                                       REPLAY_FIELD, p->pos, p->del)) < 0) {
            crdt_txn_abort(tx);
            return fail(c->err, c->errlen, "patch %zu: delete %u at %u: %s",
                        i, p->del, p->pos, crdt_strerror(rc));
        }
        if (p->ins_len > 0 &&
            (rc = crdt_txn_text_insert(tx, REPLAY_COLL, REPLAY_DOC,
                                       REPLAY_FIELD, p->pos,
                                       c->t->text + p->ins_off,
                                       p->ins_len)) < 0) {
            crdt_txn_abort(tx);
            return fail(c->err, c->errlen,
                        "patch %zu: insert %u code points at %u: %s", i,
                        p->ins_cp, p->pos, crdt_strerror(rc));
        }
    }
    rc = crdt_txn_commit(tx, info);
    if (rc < 0)
        return fail(c->err, c->errlen, "crdt_txn_commit: %s",
                    crdt_strerror(rc));
    c->res->txns++;
    c->res->patches += to - from;
    return 0;
}

/* Append @p a's change(s) of the commit @p info to the spool. */
static int
capture(ctx *c, agent *a, const crdt_commit_info *info)
{
    crdt_actor me = crdt_replica_actor(a->r);
    crdt_export *ex = NULL;
    const unsigned char *b;
    size_t n;
    int rc;

    if (info->first_seq == 0)
        return 0; /* nothing written */
    if (crdt_vv_set(a->known, &me, info->first_seq - 1) < 0)
        return fail(c->err, c->errlen, "out of memory");
    rc = crdt_export_begin(&ex, a->r, a->known);
    if (rc < 0)
        return fail(c->err, c->errlen, "crdt_export_begin: %s",
                    crdt_strerror(rc));
    while ((rc = crdt_export_next(ex, &b, &n)) == CRDT_OK)
        if (spool_add(c->spool, b, n) < 0) {
            crdt_export_end(ex);
            return fail(c->err, c->errlen, "out of memory");
        }
    crdt_export_end(ex);
    if (rc != CRDT_ENOTFOUND)
        return fail(c->err, c->errlen, "crdt_export_next: %s",
                    crdt_strerror(rc));
    if (crdt_vv_set(a->known, &me, info->last_seq) < 0)
        return fail(c->err, c->errlen, "out of memory");
    return 0;
}

static int
check_text(ctx *c, agent *a, uint32_t id, const char *want, size_t want_len)
{
    char *s = NULL;
    size_t n = 0;

    if (replay_read_text(&s, &n, a->r, c->err, c->errlen) < 0)
        return -1;
    if (n != want_len || memcmp(s, want, n) != 0) {
        size_t i = 0;

        while (i < n && i < want_len && s[i] == want[i])
            i++;
        free(s);
        return fail(c->err, c->errlen,
                    "replica of agent %u ends with %zu bytes of text, the "
                    "trace with %zu; first difference at byte %zu",
                    id, n, want_len, i);
    }
    free(s);
    return 0;
}

/* Which of the spool's changes from @p first on (@p a's whole log)
 * that log holds without a signature: the same changes in the same
 * order, as stored (what a session sends). */
static int
note_unsigned(ctx *c, agent *a, size_t first)
{
    replay_spool *s = c->spool;
    crdt_export *ex = NULL;
    const unsigned char *b;
    size_t len, i = first;
    int rc;

    free(s->unsigned_in_log);
    if ((s->unsigned_in_log = calloc(s->n ? s->n : 1, 1)) == NULL)
        return fail(c->err, c->errlen, "out of memory");
    if ((rc = crdt_export_begin_as_stored(&ex, a->r, NULL)) < 0)
        return fail(c->err, c->errlen, "crdt_export_begin_as_stored: %s",
                    crdt_strerror(rc));
    while ((rc = crdt_export_next(ex, &b, &len)) == CRDT_OK) {
        crdt_change ch;

        if (i >= s->n || crdt_change_decode(&ch, b, len) != CRDT_OK) {
            crdt_export_end(ex);
            return fail(c->err, c->errlen, "the log as stored is not the "
                                           "spool (change %zu)", i);
        }
        s->unsigned_in_log[i++] = ch.sig == NULL;
    }
    crdt_export_end(ex);
    if (rc != CRDT_ENOTFOUND)
        return fail(c->err, c->errlen, "crdt_export_next: %s",
                    crdt_strerror(rc));
    if (i != s->n)
        return fail(c->err, c->errlen, "the log as stored holds %zu "
                                       "changes, the spool %zu", i - first,
                    s->n - first);
    return 0;
}

static int
run_sequential(ctx *c)
{
    const trace *t = c->t;
    agent *a = &c->ag[0];
    size_t n = t->n_patches;
    crdt_commit_info info;
    crdt_export *ex = NULL;
    const unsigned char *b;
    size_t len, first;
    int rc;

    if (c->o->limit_patches > 0 && c->o->limit_patches < n)
        n = c->o->limit_patches;
    if (t->start_len > 0) {
        crdt_txn *tx = NULL;

        if ((rc = crdt_txn_begin(&tx, a->r)) < 0 ||
            (rc = crdt_txn_text_insert(tx, REPLAY_COLL, REPLAY_DOC,
                                       REPLAY_FIELD, 0, t->start,
                                       t->start_len)) < 0 ||
            (rc = crdt_txn_commit(tx, &info)) < 0) {
            if (tx != NULL && rc != CRDT_OK)
                crdt_txn_abort(tx);
            return fail(c->err, c->errlen, "startContent: %s",
                        crdt_strerror(rc));
        }
    }
    if (c->o->batch > 0) {
        for (size_t i = 0; i < n; i += c->o->batch)
            if (apply(c, a, i, i + c->o->batch < n ? i + c->o->batch : n,
                      &info) < 0)
                return -1;
    } else {
        for (size_t i = 0; i < t->n_txns; i++) {
            const trace_txn *x = &t->txns[i];
            size_t from = x->first_patch, to = from + x->n_patches;

            if (from >= n)
                break;
            if (apply(c, a, from, to < n ? to : n, &info) < 0)
                return -1;
        }
    }
    /* the changes: everything the replica wrote, each signed */
    first = c->spool->n;
    if ((rc = crdt_export_begin(&ex, a->r, NULL)) < 0)
        return fail(c->err, c->errlen, "crdt_export_begin: %s",
                    crdt_strerror(rc));
    while ((rc = crdt_export_next(ex, &b, &len)) == CRDT_OK)
        if (spool_add(c->spool, b, len) < 0) {
            crdt_export_end(ex);
            return fail(c->err, c->errlen, "out of memory");
        }
    crdt_export_end(ex);
    if (rc != CRDT_ENOTFOUND)
        return fail(c->err, c->errlen, "crdt_export_next: %s",
                    crdt_strerror(rc));
    return note_unsigned(c, a, first);
}

static int
run_concurrent(ctx *c)
{
    const trace *t = c->t;

    for (size_t i = 0; i < t->n_txns; i++) {
        const trace_txn *x = &t->txns[i];
        agent *a = &c->ag[x->agent];
        crdt_commit_info info;
        int reached;
        size_t before = c->spool->n;

        if (a->r == NULL && agent_open(c, a, x->agent) < 0)
            return -1;
        if (catch_up(c, a, t->parents + x->first_parent, x->n_parents,
                     &reached) < 0)
            return -1;
        if (!reached) {
            /* the agent's replica holds a txn that is not an ancestor
             * of this one: start it again from the parents */
            agent_close(c, a);
            if (agent_open(c, a, x->agent) < 0 ||
                catch_up(c, a, t->parents + x->first_parent, x->n_parents,
                         &reached) < 0)
                return -1;
            c->res->rebuilds++;
        }
        if (apply(c, a, x->first_patch, x->first_patch + x->n_patches,
                  &info) < 0 ||
            capture(c, a, &info) < 0) {
            size_t l = strlen(c->err);
            snprintf(c->err + l, c->errlen - l, " (txn %zu, agent %u)", i,
                     x->agent);
            return -1;
        }
        c->txn_first[i] = before;
        c->txn_n[i] = c->spool->n - before;
        SET(a, i);
        a->last = (long)i;
        if ((i + 1) % 5000 == 0)
            bench_log("w2: replay: %zu of %zu txns, %llu changes merged",
                      i + 1, t->n_txns, (unsigned long long)c->res->merged);
    }
    return 0;
}

int
replay_run(replay_result *out, replay_spool *spool_in, const trace *t,
           const replay_opts *o, char *err, size_t errlen)
{
    replay_spool own = { 0 };
    ctx c;
    uint32_t n_agents = t->concurrent ? t->n_agents : 1;
    size_t bits = (t->n_txns + 7) / 8;
    double t0;
    int rc = -1;
    char *want = NULL;
    size_t want_len = 0;

    memset(out, 0, sizeof *out);
    memset(&c, 0, sizeof c);
    c.t = t;
    c.o = o;
    c.res = out;
    c.spool = spool_in ? spool_in : &own;
    c.err = err;
    c.errlen = errlen;
    err[0] = 0;
    c.ag = calloc(n_agents, sizeof *c.ag);
    c.txn_first = calloc(t->n_txns + 1, sizeof *c.txn_first);
    c.txn_n = calloc(t->n_txns + 1, sizeof *c.txn_n);
    c.stack = malloc((t->n_txns + t->n_parents + t->n_patches + 1) *
                     sizeof *c.stack);
    c.missing = malloc((t->n_txns + 1) * sizeof *c.missing);
    c.seen = calloc(t->n_txns + 1, 1);
    if (!c.ag || !c.txn_first || !c.txn_n || !c.stack || !c.missing ||
        !c.seen) {
        fail(err, errlen, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n_agents; i++) {
        c.ag[i].has = calloc(bits + 1, 1);
        if (c.ag[i].has == NULL) {
            fail(err, errlen, "out of memory");
            goto out;
        }
    }
    if (agent_open(&c, &c.ag[0], 0) < 0)
        goto out;
    memcpy(c.spool->space_id, c.space, sizeof c.space);

    t0 = bench_now();
    if ((t->concurrent ? run_concurrent(&c) : run_sequential(&c)) < 0)
        goto out;
    out->seconds = bench_now() - t0;

    /* the expected text */
    if (!t->concurrent && o->limit_patches > 0 &&
        o->limit_patches < t->n_patches) {
        want = replay_reference(t, o->limit_patches, &want_len, err, errlen);
        if (want == NULL)
            goto out;
    }
    /* every replica syncs everything, then must hold it */
    for (uint32_t i = 0; i < n_agents; i++) {
        agent *a = &c.ag[i];
        if (a->r == NULL)
            continue; /* an agent without txns has no replica */
        if (t->concurrent) {
            size_t nm = 0;

            for (size_t x = 0; x < t->n_txns; x++)
                if (!HAS(a, x))
                    for (size_t k = 0; k < c.txn_n[x]; k++)
                        c.stack[nm++] = c.txn_first[x] + k;
            if (nm > 0 && merge_list(a->r, c.spool, c.stack, nm, MERGE_BATCH,
                                     err, errlen) < 0)
                goto out;
            out->merged += nm;
        }
        if (check_text(&c, a, i, want ? want : t->end,
                       want ? want_len : t->end_len) < 0)
            goto out;
        out->replicas++;
    }
    snprintf(out->dir0, sizeof out->dir0, "%s", c.ag[0].dir);
    rc = 0;
out:
    if (c.ag != NULL)
        for (uint32_t i = 0; i < n_agents; i++) {
            if (c.ag[i].r != NULL)
                agent_close(&c, &c.ag[i]);
            free(c.ag[i].has);
        }
    free(c.ag);
    free(c.txn_first);
    free(c.txn_n);
    free(c.stack);
    free(c.missing);
    free(c.seen);
    free(want);
    replay_spool_free(&own);
    return rc;
}
