/*
 * sim.h: the deterministic simulator's world.
 *
 * One seed decides everything: the number of replicas, every write,
 * partition, crash, migration and message delay. Three seams make it
 * deterministic: the network (sessions wired through in-memory links),
 * the clock (crdt_set_clock) and the randomness (libsodium's
 * randombytes implementation is replaced by the seeded PRNG).
 */
#ifndef SIM_H
#define SIM_H

#include <stdint.h>
#include <stdio.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"

/* 3 to 7 at the start; a clone and a backup restored twice add up to 3 */
#define SIM_MAX_REPLICAS 10
#define SIM_MAX_LINKS 32
#define SIM_MAX_COMMITS 20000

typedef struct {
    unsigned char *data;
    size_t len;
    uint64_t due;        /* simulated ms at which it arrives */
} sim_msg;

typedef struct {
    int used;
    int a, b;            /* replica indexes */
    crdtnet_session *sa, *sb;
    sim_msg *q[2];       /* q[0]: a -> b, q[1]: b -> a */
    size_t n[2], cap[2];
} sim_link;

typedef struct {
    crdt_actor actor;
    uint64_t seq;
    int replica;
    unsigned char hash[32]; /* the change's: two copies of a replica can
                               commit the same (actor, seq) twice */
} sim_commit;

typedef struct {
    uint64_t seed;
    uint64_t rng;
    uint64_t now_ms;
    int n;
    char root[256];
    char dirs[SIM_MAX_REPLICAS][300];
    crdt_replica *rep[SIM_MAX_REPLICAS];
    int64_t clock_offset[SIM_MAX_REPLICAS];
    int cur;             /* whose clock the engine reads */
    int blocked[SIM_MAX_REPLICAS][SIM_MAX_REPLICAS];
    sim_link links[SIM_MAX_LINKS];
    sim_commit *commits;
    size_t n_commits;
    /* stats */
    uint64_t ops, syncs, syncs_ok, crashes, migrations, lens_migrations;
    uint64_t partitions, resets, rejects, aborted_links, busy;
    uint64_t cut_changes; /* changes of an epoch's cut a taker lacked,
                             fetched before its reset (CUT) */
    uint64_t seq_ops;    /* text and list ops committed */
    uint64_t uniq;       /* next unique element: every inserted code point
                            and list value is new, so a duplicate in a
                            healed sequence means an op applied twice */
    uint64_t trace;      /* hash of everything that happened */
    /* copies: a replica's directory copied, a backup restored twice */
    int allow_clone, allow_restore;
    int clones, restores;
    int have_backup;
    char backup[320];
    uint64_t forked_ops;  /* committed ops whose version lost a fork */
    uint64_t unverified;  /* held by seq only: no replica keeps the chain */
    int verbose;
    char finding[512];
} sim_world;

uint64_t sim_rand(sim_world *w);
uint64_t sim_below(sim_world *w, uint64_t n);
void sim_trace(sim_world *w, uint64_t v);

int sim_world_init(sim_world *w, uint64_t seed, int verbose);
void sim_world_free(sim_world *w);
/* Chaos phase: random events for @p steps. */
int sim_chaos(sim_world *w, int steps);
/* Heal: no faults; sync every pair until quiet. */
int sim_heal(sim_world *w);
/* Oracle: returns 0 or fills w->finding. */
int sim_oracle(sim_world *w);
/* Oracle (4)'s duplicate check alone, on every replica as it stands:
 * 1 with w->finding set.  STRATA_SIM_EACH=1 runs it after every step,
 * to find the step that first applies an insert twice. */
int sim_no_duplicates(sim_world *w);

#endif
