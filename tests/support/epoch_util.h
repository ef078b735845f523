/* Helpers for tests that drive epochs and sync sessions: a pair of
 * attached replicas of one space, migrations, a reset the way sync does
 * it, two sessions wired in memory, a copied data directory. */
#ifndef TEST_EPOCH_UTIL_H
#define TEST_EPOCH_UTIL_H

#include "crdt/crdt.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/replica_util.h"

/* Two fresh replicas of one space (@p a creates it, @p b joins), both
 * attached (epoch_attach()). Directories go to @p da and @p db; close
 * them with tu_pair_close() (replica_util.h). */
void tu_pair_open(crdt_replica **a, char *da, crdt_replica **b, char *db,
                  size_t dir_size);

/* a: a fresh attached replica for each test (in @p da), then setup()
 * runs @p more (a statement; `(void)0` for nothing) */
#define TU_ATTACHED_FIXTURE(more)                                              \
    static char da[256];                                                       \
    static crdt_replica *a;                                                    \
    static void setup(void)                                                    \
    {                                                                          \
        a = tu_create(da, sizeof da, NULL);                                    \
        ck_assert_int_eq(epoch_attach(a), CRDT_OK);                            \
        more;                                                                  \
    }                                                                          \
    static void teardown(void)                                                 \
    {                                                                          \
        crdt_replica_close(a);                                                 \
        test_rmtree(da);                                                       \
    }

/* How many entries the active state slot of @p r holds. */
uint64_t tu_state_entries(crdt_replica *r);

/* Open the replica under @p dir (made by tu_create()) and attach it. */
crdt_replica *tu_open_dir(const char *dir);
/* A byte copy of the data directory under @p from (whose replica must be
 * closed) into a new temp dir @p to: a copied (cloned) replica. */
void tu_copy_dir(const char *from, char *to, size_t to_size);
/* Byte copies of the two closed replicas under @p da and @p db into new
 * temp dirs @p dx and @p dy (256 bytes each), opened and attached in
 * @p x and @p y; tu_pair_close() them. */
void tu_pair_copy(const char *da, const char *db, char *dx, char *dy,
                  crdt_replica **x, crdt_replica **y);

/* Parse @p text as a lens; the test fails with the parser's message. */
epoch_lens *tu_lens(const char *text);
/* One migration of @p r: compaction if @p lens_text is NULL. @p out
 * (may be NULL) gets the new epoch. */
void tu_migrate(crdt_replica *r, const char *lens_text, epoch_info *out);

/* What sync does when @p stale is behind @p fresh: store the records,
 * reset to the snapshot, then the sender's log beyond the base. Returns
 * the first error of the reset or the merge. */
int tu_reset_from(crdt_replica *stale, crdt_replica *fresh);

/* The steps of a sync with every error answered, not asserted: for the
 * fault loops, which fail each call of a step in turn (each has their
 * operations' shape, @p fresh a crdt_replica *).
 * tu_store_records_answered(): the fresh side's epoch records stored on
 * the stale one. tu_reset_answered(): the reset to the fresh side's
 * snapshot (after the records). tu_merge_from_answered(): the changes
 * of @p from that @p to lacks (at most 64), merged; @p alloc copies
 * them (malloc, or an allocator the loop never fails). */
int tu_store_records_answered(crdt_replica *stale, void *fresh);
int tu_reset_answered(crdt_replica *stale, void *fresh);
int tu_merge_from_answered(crdt_replica *to, crdt_replica *from,
                           void *(*alloc)(size_t));
/* tu_reset_answered() with what a session's taker gets along with the
 * snapshot: the fresh side's log beyond its epoch's base heads, staged
 * (epoch_reset_change()); and, when @p n_forks > 0, the chains of
 * @p forks judged lost to the fresh side's
 * (epoch_reset_quarantine_forks()). Errors answered, not asserted. */
int tu_reset_with_log_answered(crdt_replica *stale, crdt_replica *fresh,
                               const crdt_actor *forks, size_t n_forks);
/* The quarantine listed (@p count, an int *, gets how many entries) and
 * re-applied (@p unused), errors answered: the loops' operations. */
int tu_quarantine_listed(crdt_replica *r, void *count);
int tu_quarantine_applied(crdt_replica *r, void *unused);
/* A migration through @p lens_text ("" for a compaction) interrupted
 * right after its marker txn: the marker written, the epoch as it was. */
void tu_interrupted(crdt_replica *r, const char *lens_text);
/* 1 when @p r is at the epoch of @p fresh (a crdt_replica *): the reset
 * committed. The fault loops' "committed" answer for a reset. */
int tu_at_epoch_of(crdt_replica *r, void *fresh);

/* @p *b (under @p db) becomes a byte copy of a third replica c of
 * @p a's space, and writes five documents copy0..copy4 under c's actor
 * while c writes three (orig0..orig2) and @p a, holding c's, folds them
 * into a compaction epoch: a copy behind an epoch that folded its
 * original's writes. c is removed. */
void tu_copy_behind_epoch(crdt_replica *a, crdt_replica **b, char *db,
                          size_t db_size);
/* Two chains of one actor in one epoch: a replica c of @p a's space
 * writes c/base, a byte copy of c is taken, then c writes c/orig and the
 * copy c/copy0 and c/copy1 (one change each: the copy's seqs 2 and 3
 * are other changes than c's seq 2). @p a then holds c's chain and
 * @p b, another replica of the space, the copy's. c and the copy are
 * removed; @p actor_out (may be NULL) gets their actor. */
void tu_forked_chains(crdt_replica *a, crdt_replica *b, crdt_actor *actor_out);
/* How many of copy0..copy4 @p r shows in its state, plus the ops in its
 * quarantine: at least 5 when nothing of the copy's was lost. */
uint64_t tu_copy_writes_kept(crdt_replica *r);

/* A copy of an insert and its original, met in a reset's replay: of
 * @p a and @p b (one space, attached), the one whose actor sorts first
 * (*@p stale_out) writes a copy of the other's (*@p fresh_out) insert of
 * "hey" into c/d/t (crdt_txn_copy_of(): what a replica that lost an
 * equivocation re-applies) without holding the original. Its reset to
 * the fresh one's snapshot of their one epoch, with the fresh log staged
 * (tu_reset_with_log_answered()), replays the copy first (its actor's
 * log keys sort first), which waits for the original, then the
 * original, which takes the copy's ids away: c/d/t holds "hey" once. */
void tu_copy_and_original(crdt_replica *a, crdt_replica *b,
                          crdt_replica **stale_out, crdt_replica **fresh_out);

/* Move every message @p from has to send into @p to; 1 if any moved. */
int tu_pump(crdtnet_session *from, crdtnet_session *to);
/* Move at most one message from @p from into @p to; 1 if one moved. */
int tu_pump_one(crdtnet_session *from, crdtnet_session *to);

/* The result of one sync between two replicas (tu_sessions_run()). */
typedef struct {
    crdtnet_report rx, ry; /* each side's report */
    int ex, ey;            /* each side's error (0: none) */
} tu_sync_result;

/* Run one session on each replica, wired in memory, until neither has
 * anything to send (bounded); @p opts may be NULL. */
tu_sync_result tu_sessions_run(crdt_replica *x, crdt_replica *y,
                               const crdtnet_session_options *opts);
/* The same with options per side (@p ox for @p x, @p oy for @p y; either
 * may be NULL): a peer of another protocol version, for one. */
tu_sync_result tu_sessions_run2(crdt_replica *x,
                                const crdtnet_session_options *ox,
                                crdt_replica *y,
                                const crdtnet_session_options *oy);

/* Same epoch and same state hash on both. */
void tu_assert_converged(crdt_replica *x, crdt_replica *y);

#endif
