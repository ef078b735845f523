/*
 * sim_oracle.c: what must hold after the heal.
 *  (1) Convergence: every replica has the same epoch id, schema, version
 *      vector and state hash.
 *  (2) Nothing lost: every op a replica committed is held, or sits in
 *      some replica's quarantine with a reason. Copies of a replica (a
 *      cloned directory) commit two versions of one (actor, seq), so
 *      "held" means the version itself: the change is on the converged
 *      chain of its actor, walked from the converged head back through
 *      the changes any replica keeps (log, archive, pending), across
 *      every epoch. A version off that chain (it lost a fork) must be in
 *      a quarantine under its own change (the key's tag), or, when its
 *      author's own losing ops were re-applied, that author must have
 *      moved to a new incarnation. Where no replica keeps a chain's
 *      change any more, its older ops count as held by seq alone
 *      (w->unverified).
 *  (3) The stored state hash equals a hash recomputed from the state.
 *  (4) Equal sequences: every text and list field reads the same on
 *      every replica (read through the sequence engine, not only its
 *      hash), and no element appears twice in one (the simulator inserts
 *      every code point and list value once: a duplicate is an op
 *      applied twice).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/raw.h"
#include "sim.h"

typedef struct {
    const crdt_actor *actor;
    uint64_t seq;
    const unsigned char *tag; /* the change's hash, or NULL: any version */
    int found;
} q_find;

static int
q_match(const epoch_quarantined *q, void *ctx)
{
    q_find *f = ctx;

    if (q->reason == NULL || q->reason[0] == '\0')
        return 0;
    if (memcmp(q->actor.b, f->actor->b, 8) == 0 && q->seq == f->seq) {
        /* the key's tag: the first 8 bytes of the change's hash */
        if (f->tag != NULL && q->key_len == CRDT_QUARANTINE_KEY_BYTES &&
            memcmp((const unsigned char *)q->key + 17, f->tag, 8) != 0)
            return 0;
        f->found = 1;
        return 1;
    }
    return 0;
}

/* ---- (2) the converged chains ---- */

typedef struct {
    unsigned char hash[32], prev[32];
    crdt_actor actor;
    uint64_t first, last;
    int on_chain;
} known;

typedef struct {
    known *v;
    size_t n, cap;
    int oom;
} known_set;

static void
known_add(known_set *s, const void *data, size_t len)
{
    crdt_change c;

    if (s->oom || crdt_change_decode(&c, data, len) != CRDT_OK)
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        known *nv = realloc(s->v, cap * sizeof *nv);
        if (nv == NULL) {
            s->oom = 1;
            return;
        }
        s->v = nv;
        s->cap = cap;
    }
    memcpy(s->v[s->n].hash, c.hash, 32);
    memcpy(s->v[s->n].prev, c.prev, 32);
    s->v[s->n].actor = c.actor;
    s->v[s->n].first = c.seq;
    s->v[s->n].last = c.seq + c.n_ops - 1;
    s->v[s->n].on_chain = 0;
    s->n++;
}

static int
cmp_known(const void *a, const void *b)
{
    return memcmp(((const known *)a)->hash, ((const known *)b)->hash, 32);
}

static known *
known_find(known_set *s, const unsigned char *hash)
{
    known key;

    memcpy(key.hash, hash, 32);
    return bsearch(&key, s->v, s->n, sizeof *s->v, cmp_known);
}

/* Every change every replica keeps, deduplicated by hash. */
static void
known_collect(sim_world *w, known_set *s)
{
    static const crdt_db dbs[] = { CRDT_DB_LOG, CRDT_DB_ARCHIVE,
                                   CRDT_DB_PENDING };

    for (int i = 0; i < w->n; i++) {
        crdt_raw *t;
        if (crdt_raw_begin(&t, w->rep[i], 0) != CRDT_OK)
            continue;
        for (size_t d = 0; d < sizeof dbs / sizeof *dbs; d++) {
            crdt_raw_cursor *c;
            const void *k, *v;
            size_t kl, vl;
            if (crdt_raw_cursor_open(&c, t, dbs[d]) != CRDT_OK)
                continue;
            for (int rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
                 rc == CRDT_OK;
                 rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl)) {
                /* a log or archive record may hold a run of changes */
                crdt_bytes *list = NULL;
                unsigned char *buf = NULL;
                size_t n = 0;
                int e = crdt_raw_log_changes(&list, &n, &buf, NULL, 0, v,
                                             vl);
                if (e == CRDT_ENOMEM)
                    s->oom = 1;
                if (e != CRDT_OK)
                    continue; /* damaged: skipped, as a change that does
                                 not decode is (known_add) */
                for (size_t j = 0; j < n; j++)
                    known_add(s, list[j].data, list[j].len);
                crdt_free(list);
                crdt_free(buf);
            }
            crdt_raw_cursor_close(c);
        }
        crdt_raw_abort(t);
    }
    qsort(s->v, s->n, sizeof *s->v, cmp_known);
    size_t u = 0;
    for (size_t i = 0; i < s->n; i++)
        if (u == 0 || memcmp(s->v[u - 1].hash, s->v[i].hash, 32) != 0)
            s->v[u++] = s->v[i];
    s->n = u;
}

/* Mark the chain of @p a from its converged head on r0; returns the seq
 * below which the chain could not be followed (0: followed to seq 1). */
static uint64_t
chain_mark(sim_world *w, known_set *s, const crdt_actor *a)
{
    unsigned char hash[32];
    uint64_t seq = 0;
    known *k;

    if (crdt_head_read(&seq, hash, w->rep[0], a) != CRDT_OK)
        return UINT64_MAX; /* no head: nothing of it is held */
    while ((k = known_find(s, hash)) != NULL && !k->on_chain) {
        k->on_chain = 1;
        if (k->first <= 1)
            return 0;
        seq = k->first - 1;
        memcpy(hash, k->prev, 32);
    }
    return k != NULL ? 0 : seq;
}

typedef struct {
    crdt_actor actor;
    uint64_t broken_at;
} actor_chain;

/* The author of @p cm saw an equivocation and writes under a new actor
 * now: its own losing ops were re-applied under it and left the
 * quarantine. */
static int
lost_and_renewed(sim_world *w, const sim_commit *cm)
{
    crdt_replica *r = w->rep[cm->replica];
    crdt_read *rd;
    crdt_stats st;

    if (memcmp(crdt_replica_actor(r).b, cm->actor.b, 8) == 0 ||
        crdt_read_begin(&rd, r) != CRDT_OK)
        return 0;
    if (crdt_read_stats(&st, rd) != CRDT_OK)
        st.equivocations = 0;
    crdt_read_end(rd);
    return st.equivocations > 0;
}

/* (2), version by version. */
static int
nothing_lost(sim_world *w, crdt_vv *vv0)
{
    known_set ks = { 0 };
    actor_chain *ac = NULL;
    size_t n_ac = 0;
    int rc = 0;

    known_collect(w, &ks);
    if (ks.oom) {
        snprintf(w->finding, sizeof w->finding, "oracle: out of memory");
        free(ks.v);
        return 1;
    }
    for (size_t c = 0; rc == 0 && c < w->n_commits; c++) {
        const sim_commit *cm = &w->commits[c];
        actor_chain *x = NULL;
        known *k;
        int held;

        for (size_t j = 0; j < n_ac && x == NULL; j++)
            if (memcmp(ac[j].actor.b, cm->actor.b, 8) == 0)
                x = &ac[j];
        if (x == NULL) {
            actor_chain *na = realloc(ac, (n_ac + 1) * sizeof *na);
            if (na == NULL) {
                snprintf(w->finding, sizeof w->finding, "oracle: out of memory");
                rc = 1;
                break;
            }
            ac = na;
            x = &ac[n_ac++];
            x->actor = cm->actor;
            x->broken_at = chain_mark(w, &ks, &cm->actor);
        }
        held = crdt_vv_get(vv0, &cm->actor) >= cm->seq;
        if (held) {
            k = known_find(&ks, cm->hash);
            if (k != NULL && k->on_chain)
                continue; /* this very version is on the converged chain */
            if (cm->seq <= x->broken_at && x->broken_at != UINT64_MAX) {
                w->unverified++;
                continue; /* nobody keeps that part of the chain */
            }
            w->forked_ops++;
        }
        q_find f = { &cm->actor, cm->seq, held ? cm->hash : NULL, 0 };
        for (int i = 0; i < w->n && !f.found; i++)
            epoch_quarantine_list(w->rep[i], q_match, &f);
        if (f.found)
            continue;
        if (lost_and_renewed(w, cm))
            continue; /* its author re-applied its losing ops under a new
                         incarnation (epoch_quarantine_apply_lost) */
        {
            char hex[17];
            crdt_hex(hex, cm->actor.b, 8);
            snprintf(w->finding, sizeof w->finding,
                     "op %s:%llu committed on r%d is lost (%s)", hex,
                     (unsigned long long)cm->seq, cm->replica,
                     held ? "another version of its seq is held, and it "
                            "is in no quarantine"
                          : "neither held nor quarantined");
            rc = 1;
        }
    }
    free(ac);
    free(ks.v);
    return rc;
}

static int
schema_equal(const epoch_info *a, const epoch_info *b)
{
    if (a->n_schema != b->n_schema)
        return 0;
    for (size_t i = 0; i < a->n_schema; i++)
        if (strcmp(a->schema[i].coll, b->schema[i].coll) != 0 ||
            a->schema[i].version != b->schema[i].version)
            return 0;
    return 1;
}

/* ---- (4) the sequences of one replica, dumped ---- */

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} dump;

static void
dump_add(dump *d, const void *b, size_t n)
{
    if (d->oom)
        return;
    if (d->len + n > d->cap) {
        size_t nc = d->cap ? d->cap : 4096;
        char *np;
        while (nc < d->len + n)
            nc *= 2;
        np = realloc(d->p, nc);
        if (np == NULL) {
            d->oom = 1;
            return;
        }
        d->p = np;
        d->cap = nc;
    }
    memcpy(d->p + d->len, b, n);
    d->len += n;
}

typedef struct {
    char names[256][CRDT_NAME_MAX + 1];
    int n;
} name_list;

static int
collect(const char *name, size_t len, void *ctx)
{
    name_list *l = ctx;

    if (l->n == 256 || len > CRDT_NAME_MAX)
        return 0; /* the simulator uses far fewer */
    memcpy(l->names[l->n], name, len);
    l->names[l->n][len] = 0;
    l->n++;
    return 0;
}

typedef struct {
    dump *d;
    const char *where;
    char finding[256];
} seq_ctx;

static int
cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return a < b ? -1 : a > b;
}

static int
seq_field(const crdt_field *f, void *p)
{
    seq_ctx *c = p;

    if (f->kind == CRDT_FIELD_TEXT) {
        static unsigned char seen[20000];
        const unsigned char *s = (const unsigned char *)f->value.u.s.ptr;
        size_t n = f->value.u.s.len;

        dump_add(c->d, f->name, strlen(f->name));
        dump_add(c->d, "=T", 2);
        dump_add(c->d, s, n);
        dump_add(c->d, "\n", 1);
        memset(seen, 0, sizeof seen);
        for (size_t i = 0; i < n; i++) {
            uint32_t cp;
            if ((s[i] & 0xF0) != 0xE0 || i + 2 >= n)
                continue; /* only the simulator's 3-byte code points */
            cp = ((uint32_t)(s[i] & 0x0F) << 12) |
                 ((uint32_t)(s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            if (cp >= 0x4E00 && cp < 0x4E00 + 20000) {
                if (seen[cp - 0x4E00]++) {
                    snprintf(c->finding, sizeof c->finding,
                             "%s field %s: code point U+%04X twice (an "
                             "insert applied twice)",
                             c->where, f->name, (unsigned)cp);
                    return 1;
                }
            }
            i += 2;
        }
    } else if (f->kind == CRDT_FIELD_LIST) {
        int64_t *v = malloc((f->n_elems + 1) * sizeof *v);
        size_t k = 0;

        dump_add(c->d, f->name, strlen(f->name));
        dump_add(c->d, "=L", 2);
        for (size_t i = 0; i < f->n_elems; i++) {
            char b[32];
            int m;
            if (f->elems[i].type == CRDT_VINT && v != NULL)
                v[k++] = f->elems[i].u.i;
            m = snprintf(b, sizeof b, "%d:%lld,", (int)f->elems[i].type,
                         f->elems[i].type == CRDT_VINT
                             ? (long long)f->elems[i].u.i : 0LL);
            dump_add(c->d, b, (size_t)m);
        }
        dump_add(c->d, "\n", 1);
        if (v != NULL) {
            qsort(v, k, sizeof *v, cmp_i64);
            for (size_t i = 1; i < k; i++)
                if (v[i] == v[i - 1]) {
                    snprintf(c->finding, sizeof c->finding,
                             "%s field %s: list value %lld twice (an "
                             "insert applied twice)",
                             c->where, f->name, (long long)v[i]);
                    free(v);
                    return 1;
                }
        }
        free(v);
    }
    return 0;
}

/* Every text and list of replica @p i into @p d; 1 with a finding. */
static int
dump_seqs(sim_world *w, int i, dump *d)
{
    crdt_read *rd;
    name_list colls, docs;
    seq_ctx c;
    int rc = 0;

    memset(&c, 0, sizeof c);
    c.d = d;
    if (crdt_read_begin(&rd, w->rep[i]) < 0) {
        snprintf(w->finding, sizeof w->finding, "r%d unreadable", i);
        return 1;
    }
    colls.n = 0;
    crdt_read_collections(rd, collect, &colls);
    for (int a = 0; a < colls.n && rc == 0; a++) {
        docs.n = 0;
        crdt_read_docs(rd, colls.names[a], collect, &docs);
        for (int b = 0; b < docs.n && rc == 0; b++) {
            char where[200];
            snprintf(where, sizeof where, "r%d %s/%s", i, colls.names[a],
                     docs.names[b]);
            c.where = where;
            dump_add(d, where + 3, strlen(where + 3)); /* without "rN " */
            dump_add(d, "\n", 1);
            if (crdt_read_doc(rd, colls.names[a], docs.names[b], seq_field,
                              &c) > 0) {
                snprintf(w->finding, sizeof w->finding, "%s", c.finding);
                rc = 1;
            }
        }
    }
    crdt_read_end(rd);
    if (rc == 0 && d->oom) {
        snprintf(w->finding, sizeof w->finding, "oracle: out of memory");
        rc = 1;
    }
    return rc;
}

static int
seq_oracle(sim_world *w)
{
    dump d0 = { 0 }, di = { 0 };
    int rc = dump_seqs(w, 0, &d0);

    for (int i = 1; rc == 0 && i < w->n; i++) {
        di.len = 0;
        rc = dump_seqs(w, i, &di);
        if (rc == 0 && (di.len != d0.len || memcmp(di.p, d0.p, d0.len))) {
            size_t k = 0;
            while (k < di.len && k < d0.len && di.p[k] == d0.p[k])
                k++;
            snprintf(w->finding, sizeof w->finding,
                     "r%d: texts and lists differ from r0 (first at byte "
                     "%zu of %zu)",
                     i, k, d0.len);
            rc = 1;
        }
    }
    free(d0.p);
    free(di.p);
    return rc;
}

int
sim_no_duplicates(sim_world *w)
{
    dump d = { 0 };
    int rc = 0;

    for (int i = 0; rc == 0 && i < w->n; i++) {
        d.len = 0;
        rc = dump_seqs(w, i, &d);
    }
    free(d.p);
    return rc;
}

int
sim_oracle(sim_world *w)
{
    crdt_stats st[SIM_MAX_REPLICAS];
    crdt_vv *vv[SIM_MAX_REPLICAS] = { 0 };
    epoch_info ep[SIM_MAX_REPLICAS];
    int rc = 0;

    memset(ep, 0, sizeof ep);
    for (int i = 0; i < w->n; i++) {
        crdt_read *rd;
        crdt_raw *t;
        unsigned char h1[32], h2[32];

        if (crdt_read_begin(&rd, w->rep[i]) < 0 ||
            crdt_read_stats(&st[i], rd) < 0 || crdt_read_vv(&vv[i], rd) < 0) {
            snprintf(w->finding, sizeof w->finding, "r%d unreadable", i);
            rc = 1;
            break;
        }
        crdt_read_end(rd);
        epoch_current(&ep[i], w->rep[i]);
        if (crdt_raw_begin(&t, w->rep[i], 0) != CRDT_OK) {
            snprintf(w->finding, sizeof w->finding, "r%d unreadable", i);
            rc = 1;
            break;
        }
        crdt_raw_state_hash(t, h1);
        crdt_raw_state_rehash(t, h2);
        crdt_raw_abort(t);
        if (memcmp(h1, h2, 32) != 0) { /* (3) */
            snprintf(w->finding, sizeof w->finding,
                     "r%d: stored state hash differs from the state", i);
            rc = 1;
            break;
        }
    }
    for (int i = 1; rc == 0 && i < w->n; i++) { /* (1) */
        if (memcmp(st[i].epoch_id, st[0].epoch_id, 32) != 0)
            snprintf(w->finding, sizeof w->finding,
                     "r%d epoch %llu differs from r0 epoch %llu", i,
                     (unsigned long long)st[i].epoch_number,
                     (unsigned long long)st[0].epoch_number);
        else if (!schema_equal(&ep[i], &ep[0]))
            snprintf(w->finding, sizeof w->finding, "r%d schema differs", i);
        else if (!crdt_vv_covers(vv[i], vv[0]) || !crdt_vv_covers(vv[0], vv[i]))
            snprintf(w->finding, sizeof w->finding, "r%d vv differs from r0",
                     i);
        else if (memcmp(st[i].state_hash, st[0].state_hash, 32) != 0)
            snprintf(w->finding, sizeof w->finding,
                     "r%d state hash differs from r0", i);
        else
            continue;
        rc = 1;
    }
    if (rc == 0)
        rc = nothing_lost(w, vv[0]); /* (2) */
    if (rc == 0)
        rc = seq_oracle(w); /* (4) */
    if (rc == 0)
        for (int i = 0; i < 32; i++)
            sim_trace(w, st[0].state_hash[i]);
    for (int i = 0; i < w->n; i++) {
        crdt_vv_free(vv[i]);
        epoch_info_clear(&ep[i]);
    }
    return rc;
}
