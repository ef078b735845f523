/**
 * @file crdt/change.h
 * Changes as bytes: decode one to inspect it (the `log` command, the
 * sync layer, rebasing). The byte layout is in docs/storage.md.
 */
#ifndef CRDT_CHANGE_H
#define CRDT_CHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/replica.h"
#include "crdt/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Largest encoded change accepted (and produced). */
#define CRDT_CHANGE_MAX (4u * 1024 * 1024)
/** Most ops in one change. */
#define CRDT_CHANGE_MAX_OPS 1000000u

/** Op kinds. Numbers are permanent (they are on disk and on the wire). */
typedef enum {
    CRDT_OP_PUT = 0,
    CRDT_OP_INCR = 1,
    CRDT_OP_SADD = 2,
    CRDT_OP_SREM = 3,
    CRDT_OP_DEL_FIELD = 4,
    CRDT_OP_DEL_DOC = 5
} crdt_op_kind;

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
    const unsigned char *sig;            /**< 64 bytes */
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

/** Check the change's signature. @return CRDT_OK; CRDT_EAUTH. */
CRDT_API int crdt_change_verify(const crdt_change *c);

/** Iterates the ops of a decoded change. */
typedef struct {
    const unsigned char *p, *end;
    uint64_t left;
} crdt_op_iter;

CRDT_API void crdt_op_iter_init(crdt_op_iter *it, const crdt_change *c);
/** @return CRDT_OK; CRDT_ENOTFOUND at the end; CRDT_EPROTO. */
CRDT_API int crdt_op_iter_next(crdt_op *out, crdt_op_iter *it);

#ifdef __cplusplus
}
#endif

#endif
