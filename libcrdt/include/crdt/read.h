/**
 * @file crdt/read.h
 * Reads from a consistent snapshot. A read transaction never blocks and
 * is never blocked by a writer (LMDB MVCC); keep it short, since an old
 * snapshot holds pages a writer cannot reuse.
 */
#ifndef CRDT_READ_H
#define CRDT_READ_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/replica.h"
#include "crdt/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A read transaction. Opaque. */
typedef struct crdt_read crdt_read;

/** The CRDT type of a field. Numbers are permanent. */
typedef enum {
    CRDT_FIELD_REGISTER = 1,
    CRDT_FIELD_COUNTER = 2,
    CRDT_FIELD_SET = 3,
    CRDT_FIELD_TEXT = 4, /**< crdt/text.h: value is the whole text */
    CRDT_FIELD_LIST = 5  /**< crdt/text.h: elems in list order */
} crdt_field_kind;

/**
 * A visible field. A borrowed view: every pointer is valid only during
 * the callback (or until the next call on the same read txn).
 */
typedef struct {
    const char *name;
    crdt_field_kind kind;
    crdt_value value;          /**< REGISTER; TEXT: the text, a string */
    int64_t counter;           /**< COUNTER */
    const crdt_value *elems;   /**< SET: sorted by crdt_value_cmp(), unique;
                                    LIST: the elements in list order */
    size_t n_elems;
} crdt_field;

/** Called per field; return non-zero to stop (that value is returned). */
typedef int (*crdt_field_cb)(const crdt_field *f, void *ctx);
/** Called per name (collection or document id); non-zero stops. */
typedef int (*crdt_name_cb)(const char *name, size_t len, void *ctx);

/**
 * Begin a read transaction.
 * @param[out] out  release it with crdt_read_end()
 * @return CRDT_OK; CRDT_EIO.
 */
CRDT_API CRDT_MUST_CHECK int crdt_read_begin(crdt_read **out, crdt_replica *r);

/** End @p rd. NULL does nothing. */
CRDT_API void crdt_read_end(crdt_read *rd);

/**
 * The id of the committed write transaction @p rd reads (its snapshot):
 * two reads with the same id see the same replica, whatever was
 * committed between them, so what was computed from one holds for the
 * other. 0 for NULL.
 */
CRDT_API uint64_t crdt_read_txn_id(crdt_read *rd);

/**
 * Visit the visible fields of one document in field-name order.
 * @return CRDT_OK; CRDT_ENOTFOUND (no visible field); a callback's value.
 */
CRDT_API int crdt_read_doc(crdt_read *rd, const char *coll, const char *doc,
                  crdt_field_cb cb, void *ctx);

/** Look up one field. @p out is a view valid until the next call on
 *  @p rd. @return CRDT_OK; CRDT_ENOTFOUND. */
CRDT_API int crdt_read_field(crdt_field *out, crdt_read *rd, const char *coll,
                    const char *doc, const char *field);

/** Visit the ids of the live documents of @p coll, in key order. */
CRDT_API int crdt_read_docs(crdt_read *rd, const char *coll, crdt_name_cb cb,
                   void *ctx);

/** Visit the collections that hold at least one live document. */
CRDT_API int crdt_read_collections(crdt_read *rd, crdt_name_cb cb, void *ctx);

/** Summary counters kept by the store; O(1). */
typedef struct {
    uint64_t ops_in_log;   /**< ops in the active epoch's log */
    uint64_t changes_in_log;
    uint64_t pending;      /**< changes waiting for a gap to fill */
    uint64_t epoch_number;
    unsigned char epoch_id[CRDT_HASH_BYTES];
    unsigned char state_hash[CRDT_HASH_BYTES];
    uint64_t equivocations; /**< equivocating actors found by syncs and
                                 merges (a copied or twice-restored
                                 replica wrote), ever */
} crdt_stats;

/** Fill @p out from the read snapshot. @return CRDT_OK; CRDT_EIO. */
CRDT_API int crdt_read_stats(crdt_stats *out, crdt_read *rd);

/**
 * Count the live documents (walks the state: O(state)).
 * @return CRDT_OK; CRDT_EIO.
 */
CRDT_API int crdt_read_doc_count(uint64_t *out, crdt_read *rd);

#ifdef __cplusplus
}
#endif

#endif
