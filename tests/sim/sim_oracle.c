/*
 * sim_oracle.c: what must hold after the heal.
 *  (1) Convergence: every replica has the same epoch id, schema, version
 *      vector and state hash.
 *  (2) Nothing lost: every op a replica committed is held (its seq is
 *      within every replica's vv for its actor), or sits in some
 *      replica's quarantine with a reason.
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
    int found;
} q_find;

static int
q_match(const epoch_quarantined *q, void *ctx)
{
    q_find *f = ctx;

    if (q->reason == NULL || q->reason[0] == '\0')
        return 0;
    if (memcmp(q->actor.b, f->actor->b, 8) == 0 && q->seq == f->seq) {
        f->found = 1;
        return 1;
    }
    return 0;
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
    for (size_t c = 0; rc == 0 && c < w->n_commits; c++) { /* (2) */
        const sim_commit *cm = &w->commits[c];
        if (crdt_vv_get(vv[0], &cm->actor) >= cm->seq)
            continue;
        q_find f = { &cm->actor, cm->seq, 0 };
        for (int i = 0; i < w->n && !f.found; i++)
            epoch_quarantine_list(w->rep[i], q_match, &f);
        if (!f.found) {
            char hex[17];
            crdt_hex(hex, cm->actor.b, 8);
            snprintf(w->finding, sizeof w->finding,
                     "op %s:%llu committed on r%d is lost (neither held "
                     "nor quarantined)", hex, (unsigned long long)cm->seq,
                     cm->replica);
            rc = 1;
        }
    }
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
