/**
 * @file crdt/change.h
 * Changes as bytes: decode one to inspect it (the `log` command, the
 * sync layer, rebasing). The byte layout is in docs/storage.md.
 */
#ifndef CRDT_CHANGE_H
#define CRDT_CHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/export.h"
#include "crdt/replica.h"
#include "crdt/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest encoded change accepted (and produced). */
#define CRDT_CHANGE_MAX (4u * 1024 * 1024)
/** No encoded change is shorter (its fixed fields alone: space, epoch,
 *  key, incarnation, prev, signature): bounds how many a message of a
 *  given size can carry. */
#define CRDT_CHANGE_MIN 128u
/** Most ops in one change. */
#define CRDT_CHANGE_MAX_OPS 1000000u

/** Op kinds. Numbers are permanent (they are on disk and on the wire). */
typedef enum {
    CRDT_OP_PUT = 0,
    CRDT_OP_INCR = 1,
    CRDT_OP_SADD = 2,
    CRDT_OP_SREM = 3,
    CRDT_OP_DEL_FIELD = 4,
    CRDT_OP_DEL_DOC = 5,
    /* sequence ops (crdt/text.h explains them) */
    CRDT_OP_TINS = 6,  /**< insert text */
    CRDT_OP_TDEL = 7,  /**< delete a range of text */
    CRDT_OP_LINS = 8,  /**< insert one list element */
    CRDT_OP_LDEL = 9,  /**< delete a range of list elements */
    CRDT_OP_LSET = 10  /**< replace one list element's value */
} crdt_op_kind;

/** The id of one sequence element. A value type. ctr 0 is "no element"
 *  (an origin at the start or end; the end of a sequence as a cursor). */
typedef struct {
    crdt_actor actor;
    uint64_t ctr;
} crdt_seq_id;

/** A range of consecutive element ids of one actor. */
typedef struct {
    crdt_actor actor;
    uint64_t ctr;  /**< first id */
    uint64_t len;  /**< number of ids, >= 1 */
} crdt_seq_range;


/** A decoded change header; a view into the bytes it came from. */
typedef struct {
    unsigned char space_id[CRDT_SPACE_ID_BYTES];
    unsigned char epoch_id[CRDT_HASH_BYTES]; /**< written against */
    unsigned char pubkey[CRDT_PUBKEY_BYTES];
    unsigned char incarnation[8];
    crdt_actor actor;     /**< derived from pubkey + incarnation */
    uint64_t seq;         /**< seq of the first op */
    uint64_t n_ops;
    uint64_t hlc;         /**< HLC of the first op; op i has hlc + i */
    unsigned char prev[CRDT_HASH_BYTES]; /**< hash of the previous change */
    unsigned char hash[CRDT_HASH_BYTES]; /**< hash of this change's body */
    /** 64 bytes; NULL when the change came without its signature (format
     *  2): the signed change it chains to proves it (docs/storage.md,
     *  "Signatures of a run") */
    const unsigned char *sig;
    unsigned version;                    /**< body format: 1 or 2 */
    const unsigned char *ops;            /**< encoded op array */
    size_t ops_len;
} crdt_change;

/** One op, a view into the change bytes (names are not NUL-terminated). */
typedef struct {
    crdt_op_kind kind;
    const char *coll;
    size_t coll_len;
    const char *doc;
    size_t doc_len;
    const char *field;  /**< NULL for DEL_DOC */
    size_t field_len;
    crdt_value value;   /**< PUT, SADD, SREM */
    int64_t delta;      /**< INCR */
    /* The observed part of SREM / DEL_FIELD / DEL_DOC, still encoded. */
    const unsigned char *observed;
    size_t observed_len;
    /* Sequence ops (TINS TDEL LINS LDEL LSET); crdt/text.h. */
    uint64_t pos;       /**< the index the writer saw */
    uint64_t len;       /**< TINS: code points; TDEL, LDEL: elements */
    const char *text;   /**< TINS: UTF-8, text_len bytes */
    size_t text_len;
    uint64_t ctr;       /**< TINS, LINS: id counter of the first element */
    crdt_seq_id left;   /**< TINS, LINS: left origin (ctr 0: the start) */
    crdt_seq_id right;  /**< TINS, LINS: right origin (ctr 0: the end) */
    crdt_seq_id target; /**< LSET: the element replaced */
    /* TDEL, LDEL: the deleted id ranges, still encoded; walk them with
     * crdt_op_ranges_next(). */
    const unsigned char *ranges;
    size_t ranges_len;
    /** The actor of the change the op came in, when its ranges may name
     *  it by nil (format 2); all zero otherwise. */
    crdt_actor author;
    int has_author;
    /** A copy (op kind 11 around it, docs/storage.md 5.3): the op that a
     *  replica which lost an equivocation re-applies under its new
     *  incarnation names the op it copies: its actor, its seq and the
     *  first 8 bytes of the hash of the change it was written in. A
     *  rebase into an epoch whose cut folds that change skips it
     *  (docs/protocol.md, "Equivocation"). */
    int is_copy;
    crdt_actor copy_actor;
    uint64_t copy_seq;
    unsigned char copy_tag[8];
    /** The copied op's stamp (>= 1), when the copy gives it: a copied
     *  register write, field delete, doc delete or LSET is applied under the
     *  stamp (copy_hlc, copy_actor), the original's, so that copy and
     *  original are one write. 0: not given (a copy written before
     *  copies carried it), applied under its own stamp. */
    uint64_t copy_hlc;
} crdt_op;

/**
 * Decode the header of an encoded change and hash its body. Does not
 * check the signature (see crdt_change_verify()).
 * @return CRDT_OK; CRDT_EPROTO (malformed); CRDT_EVERSION; CRDT_ELIMIT.
 */
CRDT_API int crdt_change_decode(crdt_change *out, const unsigned char *buf,
                       size_t len);

/**
 * Read only who wrote a change and its last seq, without hashing or
 * walking its ops: cheap bookkeeping for a sender. Not a validation.
 * @return CRDT_OK; CRDT_EPROTO.
 */
CRDT_API int crdt_change_peek(crdt_actor *actor_out, uint64_t *last_seq_out,
                     const unsigned char *buf, size_t len);

/** Check the change's signature. @return CRDT_OK; CRDT_EAUTH (a bad
 *  signature, or none: see crdt_change_proves()). */
CRDT_API int crdt_change_verify(const crdt_change *c);

/**
 * Does @p next vouch for @p c through the hash chain: same actor, the
 * next seq, and @p next's prev is @p c's hash? A change without its
 * signature is authentic when such a successor is, up to a signed change
 * that verifies. @return 1 or 0.
 */
CRDT_API int crdt_change_proves(const crdt_change *next,
                                const crdt_change *c);

/**
 * Drop the signature of an encoded format-2 change, in place: a sender
 * does it to a change whose successor goes in the same batch (and so
 * proves it). @return the new length (65 bytes shorter); 0 if the change
 * is not format 2, has no signature, or does not decode as a change.
 */
CRDT_API size_t crdt_change_strip_sig(unsigned char *buf, size_t len);

/** Iterates the ops of a decoded change. The fields are private. */
typedef struct {
    const unsigned char *p, *end;
    uint64_t left;
    /* format 2: an op may say "the same collection, document or field as
     * the op before" and name an id of the change's own actor by its
     * counter alone (docs/storage.md) */
    int compact;
    crdt_actor self;
    const char *coll, *doc, *field;
    size_t coll_len, doc_len, field_len;
    uint64_t next_ctr; /* after the last insert: what a nil ctr names */
} crdt_op_iter;

CRDT_API void crdt_op_iter_init(crdt_op_iter *it, const crdt_change *c);
/** @return CRDT_OK; CRDT_ENOTFOUND at the end; CRDT_EPROTO. */
CRDT_API int crdt_op_iter_next(crdt_op *out, crdt_op_iter *it);

/** Walks the id ranges of a TDEL / LDEL op. */
typedef struct {
    const unsigned char *p, *end;
    uint64_t left;
    crdt_actor author; /* what a nil actor names (format 2) */
    int has_author;
} crdt_op_ranges;

/** Start walking the ranges of @p op (a decoded TDEL or LDEL). */
CRDT_API void crdt_op_ranges_init(crdt_op_ranges *it, const crdt_op *op);
/** @return CRDT_OK; CRDT_ENOTFOUND at the end; CRDT_EPROTO. */
CRDT_API int crdt_op_ranges_next(crdt_seq_range *out, crdt_op_ranges *it);

#ifdef __cplusplus
}
#endif

#endif
