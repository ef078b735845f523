/*
 * seq.h: the sequence engine of text and list fields (seq.c; stored by
 * seq_store.c, seq_load.c, seq_cache.c, seq_list.c).
 *
 * A field's sequence lives in LMDB as insertion runs, delete ranges,
 * held inserts and list overrides (docs/storage.md). In memory it is a
 * crdt__seq: the runs cut into fragments in document order, kept in
 * chunks with counts (docs/text.md), built from the records when first
 * needed and cached per replica while no other writer changes them.
 */
#ifndef CRDT_SEQ_H
#define CRDT_SEQ_H

#include "internal.h"
#include "crdt/text.h"

typedef struct crdt__seq crdt__seq;

/* The state-key prefix of a sequence block: coll 0 doc 0 field 0 KIND. */
typedef struct {
    unsigned char b[3 * CRDT_NAME_MAX + 8];
    size_t len;
    unsigned char kind; /* 'T' text, 'L' list */
} crdt__seqkey;

void crdt__seqkey_make(crdt__seqkey *k, const char *coll, size_t cl,
                       const char *doc, size_t dl, const char *field,
                       size_t fl, unsigned char kind);

/* Get the sequence of @p k for a write context (writes change it in
 * place; the cache takes back or drops it at commit / abort). */
int crdt__seq_for_write(crdt__seq **out, crdt__wctx *w,
                        const crdt__seqkey *k);

/* Build the sequence of @p k from the records in @p txn (uncached). */
int crdt__seq_build(crdt__seq **out, MDB_txn *txn, MDB_dbi dbi,
                    const crdt__seqkey *k);
void crdt__seq_free(crdt__seq *s);

/* A sequence for reading in @p txn: the cached one (held under the cache
 * lock until crdt__seq_release) or a private build. */
int crdt__seq_for_read(crdt__seq **out, crdt_replica *r, MDB_txn *txn,
                       MDB_dbi dbi, const crdt__seqkey *k);
void crdt__seq_release(crdt_replica *r, crdt__seq *s);

/* Apply one sequence op (from crdt__state_apply). */
int crdt__seq_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                    const crdt_actor *actor);

/* Copies (seq_copy.c). A losing version's insert, re-applied under a
 * new incarnation as a copy that names its original (actor, seq, the
 * first 8 bytes of its change's hash), and that original settle as one
 * element in either order: the original shows, the copy's ids are
 * deleted. Apply copy @p op (an insert with is_copy set) written by
 * @p actor at @p seq: */
int crdt__seq_copy_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                         const crdt_actor *actor, uint64_t seq);
/* After insert @p op of @p actor at @p seq (of the change hashed
 * @p hash) is applied: delete the ids of a copy of it applied before
 * (an increment or add: op_copy.c). */
int crdt__seq_original_applied(crdt__wctx *w, const crdt_op *op,
                               const crdt_actor *actor, uint64_t seq,
                               const unsigned char *hash);
/* 1 when the log holds the change of @p a that holds @p seq and whose
 * hash starts with @p tag; 0 when not (a replay: not among the changes
 * it has passed). */
int crdt__copy_log_holds(crdt__wctx *w, const crdt_actor *a, uint64_t seq,
                         const unsigned char *tag);
/* The same for counter increments and set adds (op_copy.c): copy @p op
 * (INCR or SADD with is_copy set) applied, and after original @p op
 * (of the change whose hash starts with @p tag) is applied. The two
 * entry points above hand these ops on to them. */
int crdt__op_copy_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                        const crdt_actor *actor, uint64_t seq);
int crdt__op_original_applied(crdt__wctx *w, const crdt_op *op,
                              const crdt_actor *actor, uint64_t seq,
                              const unsigned char *tag);
/* Apply insert @p op with its own ids deleted at once (they never show,
 * and later inserts that name them as origins still find them). */
int crdt__seq_apply_deleted(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                            const crdt_actor *actor, uint64_t seq);

/* Cache hooks of the write context (state.c) and the replica. */
/* Write the run and delete records the sequences of @p w changed in
 * memory and have not written yet (each record once, however often it
 * changed). A merge's queue flush defers them to its end; every other
 * path writes them at the end of each op. */
int crdt__seq_flush_touched(crdt__wctx *w);
void crdt__seq_wctx_commit(crdt__wctx *w, uint64_t txnid);
void crdt__seq_wctx_abort(crdt__wctx *w);
void crdt__seq_cache_free(crdt_replica *r);

/* Reads of a built sequence. */
uint64_t crdt__seq_len(const crdt__seq *s);
/* Visible elements [pos, pos + n) as text (NUL-terminated, malloc'd). */
int crdt__seq_text(const crdt__seq *s, uint64_t pos, uint64_t n,
                   char **out, size_t *out_len);
/* List values [0, len) into one allocation; overrides read in @p txn. */
int crdt__seq_list(const crdt__seq *s, MDB_txn *txn, MDB_dbi dbi,
                   crdt_value **out, size_t *n);
/* Id of visible element @p pos (ctr 0 if pos == length). */
int crdt__seq_id_at(const crdt__seq *s, uint64_t pos, crdt_seq_id *out);
/* Number of visible elements before element @p id (length if unknown). */
uint64_t crdt__seq_index_of(const crdt__seq *s, const crdt_seq_id *id);

/* For a local insert at @p pos: the origins (reference: YjsMod). */
int crdt__seq_origins(const crdt__seq *s, uint64_t pos, crdt_seq_id *left,
                      crdt_seq_id *right);
/* For a local delete of [pos, pos + n): the id ranges, encoded as an
 * op's ranges array into @p e. */
int crdt__seq_ranges(const crdt__seq *s, uint64_t pos, uint64_t n,
                     crdt__enc *e);

#endif
