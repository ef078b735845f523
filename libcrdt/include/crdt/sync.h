/**
 * @file crdt/sync.h
 * What sync needs from a replica: export the changes a version vector
 * lacks (streamed, never the whole log in memory), and merge a batch of
 * remote changes in one write transaction.
 */
#ifndef CRDT_SYNC_H
#define CRDT_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/change.h"
#include "crdt/replica.h"
#include "crdt/vv.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An export cursor over the log. Opaque; holds a read snapshot. */
typedef struct crdt_export crdt_export;

/**
 * Start exporting every change with an op that @p lacks does not hold,
 * per actor in seq order. @p lacks may be NULL (everything).
 *
 * Signatures: every change this replica committed comes signed (the log
 * keeps only the newest one's signature, and the others are signed
 * again: the same bytes the commit made), so each may be moved and
 * merged on its own. A change merged from another replica may come
 * without its signature (docs/storage.md 5.5): its successors up to a
 * signed change follow it in this export, and crdt_merge() needs them in
 * the same batch.
 * @param[out] out  release it with crdt_export_end()
 */
CRDT_API int crdt_export_begin(crdt_export **out, crdt_replica *r, const crdt_vv *lacks);

/**
 * As crdt_export_begin(), but every change exactly as the log holds it:
 * own changes too may come without a signature, proven by the ones after
 * them. For a sender that keeps an actor's run together and drops the
 * signatures inside it anyway (the sync session): no signing per change.
 */
CRDT_API int crdt_export_begin_as_stored(crdt_export **out, crdt_replica *r,
                                         const crdt_vv *lacks);

/**
 * Next encoded change. @p buf_out points into the map (or the cursor's
 * own buffer, for a change of a run record, docs/storage.md 3): valid
 * until the call after the next one or crdt_export_end() (a sender may
 * hold the previous change while it reads the next); do not free. A
 * change given its signature back (crdt_export_begin()) is valid until
 * the next call.
 * @return CRDT_OK; CRDT_ENOTFOUND when done; CRDT_EIO; CRDT_ENOMEM.
 */
CRDT_API int crdt_export_next(crdt_export *e, const unsigned char **buf_out,
                     size_t *len_out);

/**
 * crdt_export_next() and the change's decode (as crdt_change_decode()
 * gives it: ops walked, the body's BLAKE2b-256 in @p c_out->hash). A
 * change of a run record comes with the hash computed when the run was
 * read and checked (docs/storage.md 3): not hashed again. @p c_out's
 * views point into @p *buf_out and live as long.
 * @return CRDT_OK; CRDT_ENOTFOUND when done; CRDT_ECORRUPT (a stored
 *         change that does not decode, a damaged run); CRDT_EIO;
 *         CRDT_ENOMEM.
 */
CRDT_API int crdt_export_next_change(crdt_export *e,
                                     const unsigned char **buf_out,
                                     size_t *len_out, crdt_change *c_out);

CRDT_API void crdt_export_end(crdt_export *e);

/** One encoded change handed to crdt_merge(). */
typedef struct {
    const unsigned char *data;
    size_t len;
} crdt_bytes;

/** Largest packed list of changes crdt_changes_unpack() reads. */
#define CRDT_CHANGES_PACKED_MAX (8u * 1024 * 1024)
/** Most bytes of changes one packed list may rebuild. */
#define CRDT_CHANGES_UNPACKED_MAX (16u * 1024 * 1024)

/**
 * Pack @p n encoded changes into the compact form of a packed CHANGES
 * message (docs/protocol.md, "Packed changes"): per-message tables of
 * authors, epochs and names, seq and prev implied by the author's
 * previous change in the list, the stamp delta-coded, register, counter
 * and set ops in a few bytes. crdt_changes_unpack() rebuilds every
 * change byte for byte; a change that would not come back identical
 * (format 1, an encoding our writer does not make) is carried verbatim.
 * @param[out] out  allocated; release it with crdt_free()
 * @return CRDT_OK; CRDT_EINVAL; CRDT_ENOMEM; CRDT_ELIMIT (the packed
 *         form would exceed CRDT_CHANGES_PACKED_MAX).
 */
CRDT_API int crdt_changes_pack(unsigned char **out, size_t *out_len,
                               const crdt_bytes *changes, size_t n);

/**
 * crdt_changes_pack() of changes already decoded: @p hashes holds n x
 * CRDT_HASH_BYTES, the `hash` of each change as crdt_change_decode() or
 * crdt_export_next_change() gave it, so the packer does not hash each
 * change again. A change whose bytes are not those its packed record
 * rebuilds goes verbatim, as with crdt_changes_pack(). The
 * hashes only decide which change is chained to the one before (its seq
 * and prev implied): a wrong hash costs size, never exactness (the next
 * change's prev then differs from it and is written out).
 * @return as crdt_changes_pack(); CRDT_EINVAL when @p hashes is NULL
 *         and n > 0.
 */
CRDT_API int crdt_changes_pack_hashed(unsigned char **out, size_t *out_len,
                                      const crdt_bytes *changes,
                                      const unsigned char *hashes, size_t n);

/** The packed form's versions: 1, what every reader reads (and what
 * crdt_changes_pack() writes: a log's run records hold it); 2, one-op
 * changes smaller (docs/protocol.md, "Packed changes"), for a reader
 * that announced it. crdt_changes_unpack() reads both. */
#define CRDT_CHANGES_PACK_V1 1
#define CRDT_CHANGES_PACK_V2 2

/**
 * crdt_changes_pack_hashed() (@p hashes may be NULL: each change is
 * hashed, as crdt_changes_pack()) in packed form @p version,
 * CRDT_CHANGES_PACK_V1 or CRDT_CHANGES_PACK_V2.
 * @return as crdt_changes_pack(); CRDT_EINVAL for another version.
 */
CRDT_API int crdt_changes_pack_version(unsigned char **out, size_t *out_len,
                                       const crdt_bytes *changes,
                                       const unsigned char *hashes, size_t n,
                                       int version);

/**
 * Rebuild the changes of a packed list (@p in, @p len bytes, at most
 * CRDT_CHANGES_PACKED_MAX; at most CRDT_CHANGES_UNPACKED_MAX rebuilt).
 * Each rebuilt change decodes (crdt_change_decode()); nothing is
 * verified beyond that: hand them to crdt_merge() as ever. A record in
 * a form crdt_changes_pack() does not write (docs/protocol.md, "Packed
 * changes", canonical form) is CRDT_EPROTO.
 * @param[out] changes_out  views into *buf_out; release both with
 *                          crdt_free() (the list first or last)
 * @return CRDT_OK; CRDT_EINVAL; CRDT_EPROTO (malformed, trailing bytes,
 *         a table or count beyond its limit); CRDT_ELIMIT (too large);
 *         CRDT_ENOMEM.
 */
CRDT_API int crdt_changes_unpack(crdt_bytes **changes_out, size_t *n_out,
                                 unsigned char **buf_out,
                                 const unsigned char *in, size_t len);

/**
 * A packed list rebuilt, with each change's body hash as the rebuild
 * computed it (it hashes every change to chain the next one's prev), so
 * that crdt_merge_unpacked() does not hash each body again: about half
 * of a receiver's CPU for changes of one op. Opaque, so the hashes can
 * only be libcrdt's own: a hash that did not come from these bytes could
 * make a forged change pass for a signed one.
 */
typedef struct crdt_unpacked crdt_unpacked;

/**
 * crdt_changes_unpack() into a crdt_unpacked.
 * @param[out] out  release it with crdt_unpacked_free()
 * @return as crdt_changes_unpack().
 */
CRDT_API int crdt_unpacked_new(crdt_unpacked **out, const unsigned char *in,
                               size_t len);
/** The rebuilt changes (@p n_out of them), valid until
 * crdt_unpacked_free(). */
CRDT_API const crdt_bytes *crdt_unpacked_changes(const crdt_unpacked *u,
                                                 size_t *n_out);
CRDT_API void crdt_unpacked_free(crdt_unpacked *u);

/** What a merge did. */
typedef struct {
    uint64_t changes_applied;
    uint64_t ops_applied;
    uint64_t duplicates;     /**< changes already held (no-ops) */
    uint64_t pending;        /**< changes parked until a gap fills */
    uint64_t rebased_ops;    /**< ops transformed from an older epoch */
    uint64_t quarantined_ops;
    uint64_t conflicts;      /**< equivocating changes quarantined */
    uint64_t unauthorized_ops; /**< refused by the authority rules
                                    (docs/security.md), quarantined; also
                                    counted in quarantined_ops */
} crdt_merge_report;

/**
 * Merge @p n remote changes in ONE write transaction: all or nothing.
 * Each change's hash chain is checked, and the signature of the newest
 * change of each actor (the chain makes it cover the rest). Changes
 * already held are no-ops; a change whose predecessor is missing waits
 * in the pending area.
 * @param[out] report  what happened, or NULL
 * A signed change that contradicts the chain held for its actor (same
 * (actor, seq), other content: a cloned replica) is not merged; its ops
 * go to the quarantine and report->conflicts counts it.
 * @return CRDT_OK; CRDT_EAUTH (bad signature, another space);
 *         CRDT_ECLOCK (stamped beyond the allowed drift); CRDT_EPROTO
 *         (malformed); CRDT_EBUSY (migration in progress, or the map had
 *         to grow while this thread holds a read or export of @p r:
 *         nothing merged, retry once it ended); CRDT_ENOTFOUND
 *         (written in an epoch this replica does not know); CRDT_EFULL.
 */
CRDT_API CRDT_MUST_CHECK int crdt_merge(crdt_merge_report *report, crdt_replica *r,
               const crdt_bytes *changes, size_t n);

/**
 * crdt_merge() of the changes of @p u, taking the hashes its rebuild
 * computed instead of hashing each body again. Every check of
 * crdt_merge() stands (chains, signatures, authority); the outcome is
 * the same.
 */
CRDT_API CRDT_MUST_CHECK int crdt_merge_unpacked(crdt_merge_report *report,
                                                 crdt_replica *r,
                                                 const crdt_unpacked *u);

/* ---- equivocation (chain.c) ---- */

/**
 * Every head with its chain hash, for a peer's fork check: a msgpack
 * array of 3n items, [actor: bin 8, seq: uint, hash: bin 32] per actor,
 * in actor order. Free @p out with crdt_free().
 */
CRDT_API int crdt_heads_export(unsigned char **out, size_t *len, crdt_replica *r);

/** Bytes of one head as crdt_read_heads() gives it. */
#define CRDT_HEAD_ENTRY_BYTES 48

/**
 * Every head in the snapshot of @p rd, in actor order, as fixed-size
 * entries: actor (8 bytes) || seq (8, big-endian) || chain hash (32),
 * CRDT_HEAD_ENTRY_BYTES each, into @p *buf (grown with realloc when
 * @p *cap is short; pass NULL and 0 the first time, keep both for the
 * next call, free with crdt_free()). What crdt_heads_export() holds,
 * without an encoding: a sync summarises the heads and digests the
 * version vector from it on every session, and one read of the
 * database into one buffer keeps that cheap.
 * @return CRDT_OK with *n heads; CRDT_ELIMIT (more than 65,536 heads);
 *         CRDT_ENOMEM (the buffer is kept); CRDT_ECORRUPT.
 */
CRDT_API int crdt_read_heads(unsigned char **buf, size_t *cap, size_t *n,
                             crdt_read *rd);

/**
 * The same in pieces, without a buffer for all of them: up to @p max
 * heads whose actor follows @p after (NULL: from the first), in actor
 * order, into @p buf (@p max entries of CRDT_HEAD_ENTRY_BYTES). *n < max
 * means the last head was read; the next piece starts after the actor
 * of the last entry.
 * @return CRDT_OK with *n heads; CRDT_ECORRUPT.
 */
CRDT_API int crdt_read_heads_after(unsigned char *buf, size_t max, size_t *n,
                                   const crdt_actor *after, crdt_read *rd);

/** What crdt_chain_check() found. */
enum {
    CRDT_CHAIN_UNKNOWN = -1, /**< we hold less, or the copy was pruned */
    CRDT_CHAIN_FORK = 0,     /**< our chain holds another change there */
    CRDT_CHAIN_SAME = 1      /**< our chain passes through (seq, hash) */
};

/**
 * Does the chain this replica holds for @p a pass through the change
 * ending at @p seq with hash @p hash (head, log, then archive)?
 * @return CRDT_OK with *out one of CRDT_CHAIN_*; CRDT_EIO; CRDT_ECORRUPT.
 */
CRDT_API int crdt_chain_check(int *out, crdt_replica *r, const crdt_actor *a,
                     uint64_t seq, const unsigned char *hash);

/**
 * The actors of a peer's heads (crdt_heads_export() format, at most
 * 65,536) whose chain forks from ours: crdt_chain_check() gives
 * CRDT_CHAIN_FORK. Free @p out with crdt_free().
 * @return CRDT_OK; CRDT_EPROTO (malformed); CRDT_ELIMIT; CRDT_ENOMEM.
 */
CRDT_API int crdt_forks_find(crdt_actor **out, size_t *n_out, crdt_replica *r,
                    const unsigned char *heads, size_t len);

/** Seq and hash of @p a in a heads blob. @return CRDT_OK;
 *  CRDT_ENOTFOUND; CRDT_EPROTO. */
CRDT_API int crdt_heads_lookup(uint64_t *seq, unsigned char *hash,
                      const unsigned char *heads, size_t len,
                      const crdt_actor *a);

/** Head of @p a: seq and chain hash. @return CRDT_OK; CRDT_ENOTFOUND. */
CRDT_API int crdt_head_read(uint64_t *seq, unsigned char *hash, crdt_replica *r,
                   const crdt_actor *a);

/** Add @p n to the "equivocations" counter (crdt_stats). */
CRDT_API int crdt_equivocations_add(crdt_replica *r, uint64_t n);

#ifdef __cplusplus
}
#endif

#endif
