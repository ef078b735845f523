/*
 * mergeaid.h: a large merge's second thread (mergeaid.c).
 *
 * A merge's own thread decodes and applies the ops and writes LMDB;
 * four of its steps read only bytes and the decoded headers: decoding,
 * hashing and screening each change's header, packing each actor's run
 * into its log record, the Ed25519 checks that prove each actor's
 * changes (merge.c, invariant (4)), and hashing the state entries it
 * writes into the state hash. On a machine with more than one CPU, a
 * merge of enough bytes shares the first with the aid (it screens the
 * batch's second half) and hands it the other three, which it runs
 * while the merge applies: a run the aid packs is written once the
 * merge has applied the ops (or before it reads its log), the proofs
 * are awaited before the merge ends (and before a change of another
 * epoch reaches the epoch hook), and the entries it queued are summed
 * before anything reads the state hash (hashq.h).
 * The outcome is the same bytes and the same errors as without the aid.
 */
#ifndef CRDT_MERGEAID_H
#define CRDT_MERGEAID_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef struct crdt__mergeaid crdt__mergeaid;

/* The smallest merge (its changes' bytes together) given an aid;
 * 0 = every merge (tests), SIZE_MAX = none. */
#define CRDT__MERGEAID_MIN_BYTES (32 * 1024)
extern size_t crdt__mergeaid_min_bytes;
/* The fewest changes whose headers the aid shares (0 = any: tests). */
#define CRDT__MERGEAID_SPLIT_MIN 512
extern size_t crdt__mergeaid_split_min;
/* Log records the aids of this process have written (tests, profiles). */
extern _Atomic unsigned long crdt__mergeaid_records;

/* Keeps invariant (4) of merge.c for the @p n changes of one actor,
 * sorted by seq: CRDT_OK, or CRDT_EAUTH. */
int crdt__prove_actor(crdt__mitem *const *items, size_t n);

/* Decodes change @p ch's header into @p it (its body hash @p hash when
 * not NULL: see crdt__merge_hashed()) and screens it (merge.c, step 1):
 * the space @p space, the last op's stamp not beyond @p limit_ms; raises
 * *max_hlc to that stamp. */
int crdt__mitem_screen(crdt__mitem *it, const crdt_bytes *ch,
                       const unsigned char *hash, const unsigned char *space,
                       uint64_t limit_ms, uint64_t *max_hlc);

/* Starts the aid of a merge of the @p n changes @p changes into
 * @p items: it screens items[*split, n) (crdt__mitem_screen()) while the
 * merge screens items[0, *split). @p keep: the replica's aid, kept from
 * merge to merge (NULL before the first; crdt__mergeaid_free() at the
 * close). NULL (and *split = n): no aid (a small merge, one CPU, or no
 * thread to be had): the merge does everything itself. */
crdt__mergeaid *crdt__mergeaid_begin(crdt__mergeaid **keep,
                                     crdt__mitem *items,
                                     const crdt_bytes *changes,
                                     const unsigned char *hashes, size_t n,
                                     const unsigned char *space,
                                     uint64_t limit_ms, size_t *split);
/* Waits for the aid's screening: the first error of its part, or
 * CRDT_OK and *max_hlc raised to its largest stamp. */
int crdt__mergeaid_screened(crdt__mergeaid *a, uint64_t *max_hlc);
/* Hands the aid the items sorted (@p ord: by actor, then seq; alive and
 * unchanged until crdt__mergeaid_end()) for packing and proving.
 * CRDT_ENOMEM: the aid does nothing more (end it; the merge does all). */
int crdt__mergeaid_go(crdt__mergeaid *a, crdt__mitem *const *ord, size_t n);

/* After crdt__mergeaid_go(): the queue whose state entries the aid
 * hashes beside the merge (hashq.h), or NULL. The merge settles it
 * before crdt__mergeaid_end(). */
struct crdt__hashq *crdt__mergeaid_hashq(crdt__mergeaid *a);

/* A log run about to be written (@p n changes @p list of @p actor, under
 * log key @p key): when the aid packs exactly these changes, it keeps
 * the key and the run is written by crdt__mergeaid_write() (1);
 * otherwise 0, and the caller writes the run itself. Never waits. */
int crdt__mergeaid_defer(crdt__mergeaid *a, const crdt_actor *actor,
                         const crdt_bytes *list, size_t n,
                         const unsigned char key[16]);

/* Writes the runs deferred so far (in @p txn's log @p dbi, through
 * @p cur when not NULL), waiting for their records: before the merge
 * reads its log, and once it has applied the ops. */
int crdt__mergeaid_write(crdt__mergeaid *a, MDB_txn *txn, MDB_dbi dbi,
                         MDB_cursor *cur);

/* Waits until the actors whose changes begin at or before ord index
 * @p upto are proven: CRDT_OK, or CRDT_EAUTH if one of them is not. */
int crdt__mergeaid_proven(crdt__mergeaid *a, size_t upto);

/* Waits for the aid to finish this merge's work (stopping it if it
 * never got its items sorted) and frees what it packed. The aid and its
 * thread are kept for the replica's next large merge. */
void crdt__mergeaid_end(crdt__mergeaid *a);
/* At the replica's close: stops the thread. In a forked child (where
 * the thread did not come along) only the memory is freed. */
void crdt__mergeaid_free(crdt__mergeaid *a);

#endif
