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

#ifdef __cplusplus
}
#endif

#endif
