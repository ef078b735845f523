/*
 * replay.h: replay an editing trace (trace.h) through Strata replicas
 * and check that every replica ends with the trace's endContent.
 *
 * The text lives in collection REPLAY_COLL, document REPLAY_DOC, field
 * REPLAY_FIELD. One replica per agent, all in one space:
 *
 *  - A txn of agent a is applied on a's replica AT THE VERSION OF ITS
 *    PARENTS: before it, the replica merges the changes of every txn in
 *    the causal closure of the parents that it lacks (the txns' own
 *    changes, captured when they were committed), so the positions of
 *    the txn's patches mean what they meant to its author. Its patches
 *    then go into ONE local crdt txn, in order.
 *  - A replica only ever holds the closure of its agent's last txn. If a
 *    txn of agent a does not descend from a's previous txn (an agent
 *    whose own history forks), a's replica is rebuilt: a fresh replica
 *    (new actor) that merges the closure of the parents.
 *  - At the end every replica merges what it lacks, and its text must
 *    equal endContent.
 *
 * A sequential trace is one agent whose patches apply in order; there
 * the txn boundaries are @c batch patches (the trace's own txns if 0).
 * With @c limit_patches a PREFIX is replayed and compared with the text
 * a plain buffer gets from the same patches (endContent is only for the
 * whole trace).
 */
#ifndef STRATA_BENCH_REPLAY_H
#define STRATA_BENCH_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/replica.h"
#include "trace.h"

#define REPLAY_COLL "trace"
#define REPLAY_DOC "doc"
#define REPLAY_FIELD "text"

typedef struct {
    const char *base;       /* replicas go into base/agent<N>[.<k>] */
    int durable;            /* 0: opened with no_sync (a check) */
    uint32_t batch;         /* sequential: patches per txn; 0 = trace txns */
    size_t limit_patches;   /* sequential: replay a prefix; 0 = all */
    int keep;               /* leave the replicas on disk (else removed) */
} replay_opts;

/* The changes the replay produced, in commit order (a valid merge
 * order: every change comes after those it depends on), each signed. */
typedef struct {
    unsigned char *buf;
    size_t len, cap;
    size_t *off;            /* change i is buf[off[i] .. off[i + 1]) */
    size_t n, n_cap;
    unsigned char space_id[CRDT_SPACE_ID_BYTES];
    /* sequential replay: 1 if change i is held WITHOUT its signature in
     * the log of the replica that wrote it (a later commit of its actor
     * proves it, docs/storage.md 5.5): what a sync session reads
     * (crdt_export_begin_as_stored) and cuts its messages by; NULL when
     * not known (every change counts as held signed) */
    unsigned char *unsigned_in_log;
} replay_spool;

typedef struct {
    double seconds;         /* the replay: local txns and the syncs */
    uint64_t patches;       /* applied */
    uint64_t txns;          /* local crdt txns committed */
    uint64_t merged;        /* changes merged between replicas */
    uint64_t rebuilds;      /* replicas rebuilt (forked agent history) */
    uint32_t replicas;      /* agents' replicas checked */
    char dir0[512];         /* agent 0's replica (with keep) */
} replay_result;

/*
 * Replay @p t. On success every replica held the expected text; the
 * changes are appended to @p spool (may be NULL).
 * @return 0, or -1 with the reason in @p err.
 */
int replay_run(replay_result *out, replay_spool *spool, const trace *t,
               const replay_opts *o, char *err, size_t errlen);

void replay_spool_free(replay_spool *s);

/* Merge every change of @p s into @p r, @p batch changes per crdt_merge.
 * 0, or -1 with @p err. */
int replay_merge_spool(crdt_replica *r, const replay_spool *s, size_t batch,
                       char *err, size_t errlen);

/* Merge the changes of @p s message by message: message i is changes
 * [ends[i - 1], ends[i]) (from 0), one crdt_merge each. 0, or -1 with
 * @p err. */
int replay_merge_spool_cut(crdt_replica *r, const replay_spool *s,
                           const size_t *ends, size_t n_messages, char *err,
                           size_t errlen);

/* The text of the replay field of @p r (malloc'd, NUL-terminated; an
 * absent field is ""). 0, or -1 with @p err. */
int replay_read_text(char **out, size_t *len, crdt_replica *r, char *err,
                     size_t errlen);

/* What a plain buffer holds after the first @p n patches of the
 * sequential @p t (the reference for a prefix). NULL on a bad patch or
 * no memory (@p err says which). */
char *replay_reference(const trace *t, size_t n, size_t *len, char *err,
                       size_t errlen);

#endif
