/**
 * @file crdt/txn.h
 * Local writes. One write transaction yields ONE change: a run of
 * consecutive ops of this replica's actor, stamped with a hybrid logical
 * clock, hash-chained to the actor's previous change and signed.
 *
 * Names (collection, document, field) are 1..CRDT_NAME_MAX bytes of
 * UTF-8 without NUL. A write txn takes the replica's writer lock; keep
 * it short. While a migration is in progress, crdt_txn_begin() answers
 * CRDT_EBUSY at once instead of waiting.
 */
#ifndef CRDT_TXN_H
#define CRDT_TXN_H

#include <stdint.h>

#include "crdt/replica.h"
#include "crdt/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A local write transaction. Opaque. */
typedef struct crdt_txn crdt_txn;

/** What a commit produced. */
typedef struct {
    uint64_t first_seq; /**< seq of the change's first op; 0 if empty */
    uint64_t last_seq;  /**< seq of its last op */
    uint64_t hlc;       /**< HLC stamp of the first op */
} crdt_commit_info;

/**
 * Begin a write transaction on @p r.
 * @param[out] out  release it with crdt_txn_commit() or crdt_txn_abort()
 * @return CRDT_OK; CRDT_EBUSY (migration in progress); CRDT_EPERM
 *         (read-only); CRDT_EIO.
 */
CRDT_API CRDT_MUST_CHECK int crdt_txn_begin(crdt_txn **out, crdt_replica *r);

/**
 * Set register @p field to @p v (last writer wins by (HLC, actor)).
 * @return CRDT_OK; CRDT_EINVAL (bad name or value); CRDT_ETYPE (the
 *         field is a live counter or set); CRDT_EBADTXN; CRDT_EFULL and
 *         CRDT_EBUSY as crdt_txn_commit() (the map had to grow; the txn
 *         has failed).
 */
CRDT_API int crdt_txn_put(crdt_txn *t, const char *coll, const char *doc,
                 const char *field, const crdt_value *v);

/** Add @p delta (may be negative) to counter @p field. Codes as put. */
CRDT_API int crdt_txn_incr(crdt_txn *t, const char *coll, const char *doc,
                  const char *field, int64_t delta);

/** Add @p v to set @p field (add wins over a concurrent remove). */
CRDT_API int crdt_txn_sadd(crdt_txn *t, const char *coll, const char *doc,
                  const char *field, const crdt_value *v);

/**
 * Remove @p v from set @p field: removes the adds this replica has seen.
 * @return CRDT_OK (also when absent: the op is still recorded);
 *         CRDT_ETYPE; CRDT_EINVAL; CRDT_EBADTXN.
 */
CRDT_API int crdt_txn_srem(crdt_txn *t, const char *coll, const char *doc,
                  const char *field, const crdt_value *v);

/** Delete one field of any type (LWW tombstone for registers,
 *  observed-remove for counters and sets). */
CRDT_API int crdt_txn_del_field(crdt_txn *t, const char *coll, const char *doc,
                       const char *field);

/** Delete a whole document. */
CRDT_API int crdt_txn_del_doc(crdt_txn *t, const char *coll, const char *doc);

/** Number of ops recorded so far in @p t. */
CRDT_API uint64_t crdt_txn_op_count(const crdt_txn *t);

/**
 * Commit: sign the change and make it durable. @p t is freed on every
 * path. A txn with no ops commits nothing and reports first_seq 0.
 * @param[out] info  what was committed, or NULL
 * @return CRDT_OK; CRDT_EFULL (disk or map limit); CRDT_EIO; CRDT_EBADTXN;
 *         CRDT_EBUSY (the map had to grow while this thread holds another
 *         txn or read of the replica, which growing would wait for
 *         forever: nothing was committed; end it and write again).
 */
CRDT_API CRDT_MUST_CHECK int crdt_txn_commit(crdt_txn *t, crdt_commit_info *info);

/** Abort and free @p t. NULL does nothing. */
CRDT_API void crdt_txn_abort(crdt_txn *t);

/**
 * The body of a crdt_txn_write(): record ops on @p t with crdt_txn_put()
 * and the others, and return CRDT_OK (or any value >= 0) to commit them,
 * or a negative code to drop them. Never call crdt_txn_commit() or
 * crdt_txn_abort() on @p t (they answer CRDT_EINVAL), keep no pointer to
 * it, and do not block: other threads' changes wait behind it. Another
 * write of the replica begun in it (crdt_txn_begin(), crdt_txn_write(),
 * crdt_merge(), ...) answers CRDT_EBUSY.
 */
typedef int (*crdt_write_fn)(crdt_txn *t, void *arg);

/**
 * Write one change with many threads sharing the cost: the durable
 * alternative to crdt_txn_begin() + crdt_txn_commit() for apps that
 * commit small changes from several threads at once.
 *
 * Concurrent calls on one handle form a group: one of the calling
 * threads runs every queued @p fn in turn, each on a txn of its own
 * that sees the changes ahead of it, and commits them all in ONE LMDB
 * txn, so a small change costs the disk a share of one commit's pages
 * instead of a whole commit (bench: group_commit). Each @p fn that
 * recorded ops is its own change, as crdt_txn_commit() would have made
 * it; one that returned a negative code or whose txn failed leaves
 * nothing, and the others are unaffected.
 *
 * So @p fn may run on ANOTHER thread than the caller's (never on two at
 * once), and while it runs the writer lock is held for the whole group.
 * A thread that holds a txn or read of @p r writes alone instead
 * (waiting for another thread's group could deadlock with a map that
 * has to grow).
 *
 * Returns once the change is durable as crdt_txn_commit()'s is (with
 * @c group_commit the groups' syncs are shared as well).
 * @param[out] info  what was committed (first_seq 0: @p fn recorded no
 *                   ops), or NULL
 * @return CRDT_OK; @p fn's negative code; CRDT_EBADTXN (an op of @p fn
 *         failed the txn); the codes of crdt_txn_begin() and
 *         crdt_txn_commit(): an error of the shared LMDB txn fails
 *         every change of the group, and none of them is committed.
 */
CRDT_API CRDT_MUST_CHECK int crdt_txn_write(crdt_replica *r, crdt_write_fn fn,
                                            void *arg, crdt_commit_info *info);

#ifdef __cplusplus
}
#endif

#endif
