/*
 * sim_oracle.c: what must hold after the heal.
 *  (1) Convergence: every replica has the same epoch id, schema, version
 *      vector and state hash.
 *  (2) Nothing lost: every op a replica committed is held (its seq is
 *      within every replica's vv for its actor), or sits in some
 *      replica's quarantine with a reason.
 *  (3) The stored state hash equals a hash recomputed from the state.
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
        for (int i = 0; i < 32; i++)
            sim_trace(w, st[0].state_hash[i]);
    for (int i = 0; i < w->n; i++) {
        crdt_vv_free(vv[i]);
        epoch_info_clear(&ep[i]);
    }
    return rc;
}
