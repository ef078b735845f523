/**
 * @file crdt/vv.h
 * Version vectors: for each actor, the highest seq held. Because ops of
 * one actor are applied in seq order, this is the exact summary of what
 * a replica holds.
 */
#ifndef CRDT_VV_H
#define CRDT_VV_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/read.h"
#include "crdt/replica.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A version vector. Opaque; owns its memory. */
typedef struct crdt_vv crdt_vv;

/** @param[out] out  an empty vector; release with crdt_vv_free() */
CRDT_API int crdt_vv_new(crdt_vv **out);
CRDT_API void crdt_vv_free(crdt_vv *vv);

/** Highest seq of @p actor, 0 if absent. O(log n). */
CRDT_API uint64_t crdt_vv_get(const crdt_vv *vv, const crdt_actor *actor);
/** Set (never lowers: keeps the max). @return CRDT_OK; CRDT_ENOMEM. */
CRDT_API int crdt_vv_set(crdt_vv *vv, const crdt_actor *actor, uint64_t seq);
/**
 * Room for @p n entries in all, allocated at once: a caller that knows
 * how many actors it will set (a vector rebuilt from 10,000 heads) saves
 * the reallocs of growing it one doubling at a time. Entries are kept.
 * @return CRDT_OK; CRDT_ELIMIT (more than 65536); CRDT_ENOMEM;
 *         CRDT_EINVAL.
 */
CRDT_API int crdt_vv_reserve(crdt_vv *vv, size_t n);
/**
 * A copy of @p vv, made in one allocation.
 * @param[out] out  release with crdt_vv_free()
 * @return CRDT_OK; CRDT_ENOMEM; CRDT_EINVAL.
 */
CRDT_API int crdt_vv_copy(crdt_vv **out, const crdt_vv *vv);
CRDT_API size_t crdt_vv_count(const crdt_vv *vv);
/** Entry @p i in actor order. */
CRDT_API void crdt_vv_entry(const crdt_vv *vv, size_t i, crdt_actor *actor_out,
                   uint64_t *seq_out);
/** 1 if @p a >= @p b for every actor. */
CRDT_API int crdt_vv_covers(const crdt_vv *a, const crdt_vv *b);
/** Sum of all seqs (a history size). */
CRDT_API uint64_t crdt_vv_total(const crdt_vv *vv);

/** Read this replica's version vector from @p rd. */
CRDT_API int crdt_read_vv(crdt_vv **out, crdt_read *rd);

/**
 * msgpack encoding: a map { actor (bin 8) : seq (uint) }, actor order.
 * @param[out] buf_out  malloc'd; release it with crdt_free()
 */
CRDT_API int crdt_vv_encode(unsigned char **buf_out, size_t *len_out,
                   const crdt_vv *vv);
/** Decode at most 65536 entries. @return CRDT_OK; CRDT_EPROTO; ELIMIT. */
CRDT_API int crdt_vv_decode(crdt_vv **out, const unsigned char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif
