/*
 * epoch_internal.h: what the files of libepoch share. Not installed.
 *
 *   record.c     encode, decode, sign, store and walk epoch records
 *   rewrite.c    rewrite state entries through a lens or custom hook
 *   builder.c    the migration builder (marker + one big txn)
 *   marker.c     the upgrade marker
 *   rebase.c     the merge hook: ops of older or forked epochs
 *   quarantine.c ops that could not be rebased
 *   reset.c      swapping in a snapshot; relate.c the sync policy
 */
#ifndef EPOCH_INTERNAL_H
#define EPOCH_INTERNAL_H

#include <msgpack.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "epoch/lens.h"
#include "internal.h" /* libcrdt's private msgpack reader and helpers */

#define EPOCH__FORMAT 1u
/* Most epochs a chain may hold (a million migrations). */
#define EPOCH__CHAIN_MAX 1000000u

/* Build and sign a record; @p out gets id and raw (owned). */
int epoch__record_make(epoch_info *out, crdt_replica *r, uint64_t number,
                       const unsigned char *parent,
                       const epoch_schema_entry *schema, size_t n_schema,
                       const char *lens, const char *custom,
                       const unsigned char *heads, size_t heads_len,
                       const unsigned char *state_hash);
/* Base heads blob of a record (a view into e->raw). */
int epoch__record_heads(const unsigned char **out, size_t *len,
                        const epoch_info *e);
/* Load a record inside a raw txn. Genesis (no record) is synthesized. */
int epoch__get_in(epoch_info *out, crdt_raw *t, const unsigned char *id);
int epoch__current_in(epoch_info *out, crdt_raw *t);
int epoch__put_in(crdt_raw *t, const epoch_info *e);
/* May @p creator make epochs in @p r's space (docs/security.md)? CRDT_OK
 * (also when the replica knows no owner yet), CRDT_EPERM, or an error. */
int epoch__creator_ok(crdt_replica *r, const unsigned char *creator);
int epoch__genesis(epoch_info *out, crdt_raw *t);

/* Rewrite one document's state entries (collected by the caller) through
 * a lens and/or custom hook, writing into the spare slot. */
typedef struct epoch__rewriter epoch__rewriter;
int epoch__rewriter_new(epoch__rewriter **out, crdt_raw *t,
                        const epoch_lens *lens, const char *custom_coll,
                        epoch_custom_fn custom, void *custom_ctx);
/* Feed entries in key order; documents are flushed as they end. */
int epoch__rewriter_put(epoch__rewriter *w, const void *k, size_t kl,
                        const void *v, size_t vl);
int epoch__rewriter_finish(epoch__rewriter *w);
/* Point the rewriter at another txn (a reset writes in several). */
void epoch__rewriter_set_txn(epoch__rewriter *w, crdt_raw *t);
/* Where the rewriter's output goes instead of crdt_raw_spare_put() on
 * its txn (the migration's second thread: rewrite_run.c); @p fn NULL
 * goes back to the txn. */
typedef int (*epoch__sink_fn)(void *ctx, const void *k, size_t kl,
                              const void *v, size_t vl);
void epoch__rewriter_set_sink(epoch__rewriter *w, epoch__sink_fn fn,
                              void *ctx);
/* A migration's lens defaults kept once per collection
 * (rewrite_defaults.c). */
typedef struct epoch__vdefs epoch__vdefs;
int epoch__vdefs_new(epoch__vdefs **out);
void epoch__vdefs_free(epoch__vdefs *d);
/* An input DEFAULTS entry (they come before every document). */
int epoch__vdefs_input(epoch__vdefs *d, const crdt_state_entry *e);
/* Plan the output pairs of every collection through @p l. */
int epoch__vdefs_plan(epoch__vdefs *d, const epoch_lens *l,
                      const char *custom_coll, int custom);
/* The output DEFAULTS entries, in key order, to @p fn. */
int epoch__vdefs_emit(epoch__vdefs *d, epoch__sink_fn fn, void *ctx);
/* The input (@p out 0) or planned (1) DEFAULTS value of @p coll; NULL:
 * none. */
const unsigned char *epoch__vdefs_get(const epoch__vdefs *d,
                                      const char *coll, size_t cl, int out,
                                      size_t *len);
/* Has @p w written a text or list entry (a record of a sequence field)
 * into the spare slot? 0: what it wrote holds no sequence field. */
int epoch__rewriter_wrote_seq(const epoch__rewriter *w);

/* A reset stages the snapshot in the spare slot under meta "staging"
 * (token, started ms); a staging older than this is abandoned. */
#define EPOCH__STAGING_STALE_MS (10u * 60 * 1000)
/* Read the staging token in @p t; 1 present (filled), 0 absent, or a
 * crdt_err. epoch__staging_active(): 1, 0 or a crdt_err too. */
int epoch__staging_read(crdt_raw *t, epoch_staging *out);
int epoch__staging_active(crdt_raw *t);
void epoch__rewriter_free(epoch__rewriter *w);

/* One pass of the rewriter over the whole active slot into the emptied
 * spare slot (rewrite_run.c); the caller swaps. */
typedef struct {
    const epoch_lens *lens;
    const char *custom_coll; /* with custom: epoch__rewriter_new() */
    epoch_custom_fn custom;
    void *custom_ctx;
    epoch_progress_fn progress; /* may be NULL */
    void *progress_ctx;
    /* Read and rewrite on a second thread while @p t's thread appends:
     * only where @p t has not written the active slot (the second
     * thread reads what @p t began with) and there is no custom hook
     * (it is called on the caller's thread). */
    int threaded;
} epoch__rewrite_opts;
/* *wrote_seq as epoch__rewriter_wrote_seq(). */
int epoch__rewrite_slot(crdt_raw *t, const epoch__rewrite_opts *o,
                        int *wrote_seq);

/* Marker inside a txn. */
int epoch__marker_put(crdt_raw *t, uint64_t target, const char *lens,
                      const char *custom);
int epoch__marker_del(crdt_raw *t);


/* The losing side of an equivocation, inside a reset's txn. */
int epoch__quarantine_forks_in(uint64_t *moved_out, crdt_raw *t,
                               const crdt_actor *actors, size_t n_actors,
                               const unsigned char *base_heads,
                               size_t heads_len, const char *reason);

/* epoch_quarantine_unsynced() inside a caller's txn. */
int epoch__quarantine_unsynced_in(uint64_t *moved_out, crdt_raw *t,
                                  const unsigned char *target_heads,
                                  size_t heads_len, const char *reason);

/* One actor of a heads blob (crdt_raw_heads_encode(), an epoch record's
 * base heads): actor, last seq, chain hash. */
typedef struct {
    crdt_actor actor;
    uint64_t seq;
    unsigned char hash[CRDT_HASH_BYTES];
} epoch__head;
/* Parse a heads blob through crdt_heads_parse(); @p out is malloc'd
 * (NULL when empty). */
int epoch__heads_parse(epoch__head **out, size_t *n_out,
                       const unsigned char *h, size_t len);

/* One change in the log or the staging (both keyed actor | last seq):
 * its key, seq bounds, hash and prev. */
typedef struct {
    unsigned char key[16];
    uint64_t first, last;
    unsigned char hash[CRDT_HASH_BYTES], prev[CRDT_HASH_BYTES];
    unsigned char pubkey[CRDT_PUBKEY_BYTES]; /* its signer's key */
} epoch__span;
/* The changes of @p actor in database @p db, in seq order (the key
 * order); @p out is malloc'd (NULL when none). CRDT_OK or an error. */
int epoch__spans_of(epoch__span **out, size_t *n_out, crdt_raw *t,
                    crdt_db db, const unsigned char *actor);

/* Equivocation across epochs, inside a reset's txn after the heads are
 * replaced and a losing fork's archive came back, before the sender's log
 * is unstaged (@p own_head: our own head before the reset): every actor whose chain in our log forks from the one
 * @p base_heads fold (and this replica's own actor when the base folds
 * seqs of it this replica never holds, and a former incarnation of it
 * whose chain here ends below the cut) has its changes in our log moved
 * to the quarantine (crossfork.c). @p own_out: our own actor was among
 * them; @p forked_out: how many actors forked. */
int epoch__quarantine_crossforks_in(uint64_t *moved_out, uint64_t *forked_out,
                                    int *own_out, crdt_raw *t,
                                    uint64_t own_head,
                                    const unsigned char *base_heads,
                                    size_t heads_len);
/* This replica's own head seq in @p t (0 if it never wrote). */
int epoch__own_head_in(uint64_t *out, crdt_raw *t);

/* Apply a chain of lenses to a schema (versions); CRDT_EINVAL if a lens
 * section's `from` does not match. */
int epoch__schema_apply(epoch_schema_entry **out, size_t *n_out,
                        const epoch_schema_entry *in, size_t n,
                        const epoch_lens *lens, const char *custom_coll,
                        uint32_t custom_to);

/* builder.c: what an epoch does to text and list fields after the lens
 * rewrite (string <-> text conversions of @p lens, may be NULL, then
 * compaction); the builder and the re-derivation (derive.c) both call
 * it, so both reach the same state hash. @p no_seq: the caller knows
 * the state holds no text or list entry before the conversions (a
 * rewrite that wrote none), so when no conversion runs either the
 * compaction, which would find nothing, is not walked. */
int epoch__seq_epoch(crdt_raw *t, const epoch_lens *lens, int no_seq);

/* After a raw txn of @p r ended with @p *rc: 1 to redo it (it was
 * CRDT_EFULL and the map grew); else 0, with @p *rc the failure to
 * report (the growth's own when it failed: CRDT_EFULL at the maximum,
 * CRDT_EBUSY while this thread still holds a txn of @p r). */
static inline int
epoch__grew(crdt_replica *r, int *rc)
{
    int g;

    if (*rc != CRDT_EFULL)
        return 0;
    if ((g = crdt_replica_grow(r)) < 0) {
        *rc = g;
        return 0;
    }
    return 1;
}

/* Run @p fn(t, @p ctx) in a write txn of @p r and commit it (write.c);
 * CRDT_EFULL grows the map and runs it again. An error of @p fn aborts
 * the txn and is returned; @p fn must leave nothing behind it that a
 * second run would find (its effects are the txn's). */
int epoch__write(crdt_replica *r, int (*fn)(crdt_raw *t, void *ctx),
                 void *ctx);

#endif
