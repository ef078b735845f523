/**
 * @file crdt/raw.h
 * The storage layer's promise to libepoch: raw access to the replica's
 * named databases inside one LMDB transaction, plus the few compound
 * steps (swap the state, archive the log, replay the log) that must run
 * inside a caller's transaction. Applications use crdt/txn.h and
 * crdt/read.h instead; nothing here checks CRDT semantics.
 *
 * Who it is for: libepoch (migrations, resets, rebasing), and Strata's
 * own tools and tests (the CLI's verify, the simulator's clock). It is
 * installed because those build against installed headers, but it is
 * not part of crdt/crdt.h: an application that includes it steps
 * outside every guarantee the other headers give.
 *
 * Layout of every database: docs/storage.md.
 */
#ifndef CRDT_RAW_H
#define CRDT_RAW_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/change.h"
#include "crdt/replica.h"
#include "crdt/sync.h"
#include "crdt/txn.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The named databases. Numbers index an internal table only. */
typedef enum {
    CRDT_DB_META = 0,     /**< identity, counters, markers */
    CRDT_DB_LOG,          /**< active epoch's changes: actor|last_seq */
    CRDT_DB_HEADS,        /**< per actor: seq, chain hash, key */
    CRDT_DB_PENDING,      /**< changes waiting for a gap: actor|first_seq */
    CRDT_DB_STATE0,       /**< materialized state, slot 0 */
    CRDT_DB_STATE1,       /**< materialized state, slot 1 */
    CRDT_DB_EPOCHS,       /**< epoch records (libepoch) */
    CRDT_DB_LENSES,       /**< lens chain (libepoch) */
    CRDT_DB_ARCHIVE,      /**< logs of sealed epochs */
    CRDT_DB_QUARANTINE,   /**< ops that could not be rebased */
    CRDT_DB_STAGING,      /**< a peer's log received with a snapshot */
    CRDT_DB__COUNT
} crdt_db;

/** A raw transaction. Opaque. */
typedef struct crdt_raw crdt_raw;

/**
 * Begin a raw transaction. A write one does NOT check the upgrade marker
 * (the migration builder is the one that sets it).
 * @param[out] out  finish with crdt_raw_commit() or crdt_raw_abort()
 * @return CRDT_OK; CRDT_EPERM (write on a read-only replica); CRDT_EIO.
 */
CRDT_API CRDT_MUST_CHECK int crdt_raw_begin(crdt_raw **out, crdt_replica *r, int write);
/**
 * Grow the map after a raw call returned CRDT_EFULL, with no txn of this
 * thread open (it waits for those of other threads to end); then redo
 * the whole txn.
 * @return CRDT_OK; CRDT_EFULL (at the configured maximum); CRDT_EBUSY
 * (the calling thread still holds a txn of @p r: growing would wait for
 * it forever).
 */
CRDT_API int crdt_replica_grow(crdt_replica *r);

/**
 * 1 if a migration marker (meta "upgrade") is present, 0 if not, or a
 * crdt_err: read in a read txn of its own, so it never waits on the
 * writer lock a running migration holds. A writer asks this first to
 * answer CRDT_EBUSY at once.
 */
CRDT_API int crdt_raw_marker_peek(crdt_replica *r);
/** Commit and free. @return CRDT_OK; CRDT_EFULL; CRDT_EIO. */
CRDT_API CRDT_MUST_CHECK int crdt_raw_commit(crdt_raw *t);
/** Abort and free; NULL does nothing. */
CRDT_API void crdt_raw_abort(crdt_raw *t);
CRDT_API crdt_replica *crdt_raw_replica(crdt_raw *t);

/** Get: @p v_out points into the map until the txn ends. ENOTFOUND. */
CRDT_API int crdt_raw_get(crdt_raw *t, crdt_db db, const void *k, size_t kl,
                 const void **v_out, size_t *vl_out);
CRDT_API int crdt_raw_put(crdt_raw *t, crdt_db db, const void *k, size_t kl,
                 const void *v, size_t vl);
/** Delete; CRDT_ENOTFOUND if absent. */
CRDT_API int crdt_raw_del(crdt_raw *t, crdt_db db, const void *k, size_t kl);
/** Remove every record of @p db. */
CRDT_API int crdt_raw_clear(crdt_raw *t, crdt_db db);
/** Number of records in @p db. */
CRDT_API int crdt_raw_count(uint64_t *out, crdt_raw *t, crdt_db db);

/** A cursor over one database. Opaque. */
typedef struct crdt_raw_cursor crdt_raw_cursor;
CRDT_API int crdt_raw_cursor_open(crdt_raw_cursor **out, crdt_raw *t, crdt_db db);
CRDT_API void crdt_raw_cursor_close(crdt_raw_cursor *c);
/**
 * Position at the first key >= @p k (or the first key if @p k is NULL)
 * and return it; crdt_raw_cursor_next() moves on. Views are valid until
 * the cursor moves. @return CRDT_OK; CRDT_ENOTFOUND past the end.
 */
CRDT_API int crdt_raw_cursor_seek(crdt_raw_cursor *c, const void *k, size_t kl,
                         const void **k_out, size_t *kl_out,
                         const void **v_out, size_t *vl_out);
CRDT_API int crdt_raw_cursor_next(crdt_raw_cursor *c, const void **k_out,
                         size_t *kl_out, const void **v_out, size_t *vl_out);

/* ---- the materialized state in two slots ---- */

/** The active (0) or the spare (1) state database. */
CRDT_API crdt_db crdt_raw_state_db(crdt_raw *t, int spare);
/** Put into the spare state slot, keeping its state hash. */
CRDT_API int crdt_raw_spare_put(crdt_raw *t, const void *k, size_t kl,
                       const void *v, size_t vl);
/** Empty the spare slot and reset its hash. */
CRDT_API int crdt_raw_spare_clear(crdt_raw *t);

/**
 * A batch of entries for the spare slot, copied and hashed by
 * crdt_raw_batch_add() on any thread, then put by the write txn's thread
 * with crdt_raw_spare_put_batch(): a migration prepares the next batch
 * while its txn appends this one. The hashes stay libcrdt's own (the
 * handle is opaque). One thread at a time per batch. Opaque.
 */
typedef struct crdt_raw_batch crdt_raw_batch;
/** @param[out] out  release with crdt_raw_batch_free() */
CRDT_API int crdt_raw_batch_new(crdt_raw_batch **out);
CRDT_API void crdt_raw_batch_free(crdt_raw_batch *b);
/** Empty it for reuse; its memory is kept. */
CRDT_API void crdt_raw_batch_clear(crdt_raw_batch *b);
/**
 * Copy one entry in and hash it.
 * @return CRDT_OK; CRDT_EINVAL (empty key); CRDT_ELIMIT (key over
 *         CRDT_STATE_KEY_MAX, value over 4 GiB); CRDT_ENOMEM.
 */
CRDT_API int crdt_raw_batch_add(crdt_raw_batch *b, const void *k, size_t kl,
                                const void *v, size_t vl);
/** Bytes held (keys, values and 8 bytes an entry) and entries held. */
CRDT_API size_t crdt_raw_batch_bytes(const crdt_raw_batch *b);
CRDT_API size_t crdt_raw_batch_count(const crdt_raw_batch *b);
/**
 * crdt_raw_spare_put() of each entry of @p b in order, with the hashes
 * crdt_raw_batch_add() took. @p b is left as it was.
 * @return CRDT_OK; as crdt_raw_spare_put() (then abort the txn).
 */
CRDT_API int crdt_raw_spare_put_batch(crdt_raw *t, const crdt_raw_batch *b);
/**
 * A read txn, for another thread, that sees what write txn @p w saw when
 * it began (LMDB lets one writer and many readers run at once): a
 * migration reads the active slot there while @p w fills the spare.
 * It does not see what @p w has written. Begin it and end it
 * (crdt_raw_abort(), before @p w ends) on @p w's thread; between the
 * two, one other thread at a time may use it (its start and its join
 * order the uses).
 * @return CRDT_OK; CRDT_EINVAL (@p w is not a write txn); CRDT_EBUSY
 *         (the snapshot is not @p w's: cannot happen while @p w holds
 *         the writer lock, checked all the same); CRDT_EIO.
 */
CRDT_API CRDT_MUST_CHECK int crdt_raw_begin_base(crdt_raw **out,
                                                 crdt_raw *w);
/**
 * Make the spare slot active and empty the old one: a migration writes
 * the new state into the spare slot, then swaps, all in one txn.
 */
CRDT_API int crdt_raw_swap_state(crdt_raw *t);
/**
 * State hash of the active slot (CRDT_HASH_BYTES): zeros when none is
 * kept. @return CRDT_OK; the read's error (CRDT_EIO).
 */
CRDT_API int crdt_raw_state_hash(crdt_raw *t, unsigned char *out);
/** Recompute the active slot's hash from scratch (verify). */
CRDT_API int crdt_raw_state_rehash(crdt_raw *t, unsigned char *out);
/**
 * The space's owner as the active slot holds it (crdt/members.h): 1 and
 * its key in @p owner_out, 0 if the state holds no valid genesis record,
 * negative on a read error.
 */
CRDT_API int crdt_raw_owner(crdt_raw *t, unsigned char *owner_out);

/* ---- sequences (text and list fields) at an epoch ---- */

/**
 * Compact every text and list field of the active state for an epoch
 * (docs/text.md, "Epochs"): deleted elements are dropped (but one a held
 * insert names as origin), the kept ones are rewritten in document order
 * with adjacent elements of one actor folded into one segment, and per
 * actor the end of the folded ids is recorded. The visible sequences do
 * not change; the records are a function of the state, so every replica
 * compacting the same state gets the same state hash.
 * @param[out] dropped_out  number of elements dropped (may be NULL)
 * @return CRDT_OK; CRDT_EINVAL (read txn); CRDT_ENOMEM; CRDT_EFULL;
 *         CRDT_ECORRUPT.
 */
CRDT_API int crdt_raw_seq_compact(crdt_raw *t, uint64_t *dropped_out);
/**
 * For an insert (TINS, LINS) from before an epoch of the active state:
 * 1 if its left or right origin was compacted away by an epoch (below
 * the field's folded ids and not kept), 0 if not (or another op kind),
 * negative on error. Such an insert cannot be placed where its writer
 * meant it: the rebase quarantines it.
 */
CRDT_API int crdt_raw_seq_gone(crdt_raw *t, const crdt_op *op);

/**
 * A lens's `convert FIELD string -> text` (@p to_text 1) or `text ->
 * string` (0) over every document of @p coll (docs/lenses.md): a string
 * register becomes a text of its code points (elements (actor 0, 1 ..),
 * written as an epoch's base; another value becomes an empty text); a
 * text becomes a string register of its visible text stamped (0, actor
 * 0), like a lens default. Other kinds of entries of the field stay.
 * @return CRDT_OK; CRDT_EINVAL; CRDT_ENOMEM; CRDT_EFULL; CRDT_ECORRUPT.
 */
CRDT_API int crdt_raw_seq_retype(crdt_raw *t, const char *coll,
                                 const char *field, int to_text);

/* ---- state entries: the one reader and writer outside state.c ---- */

/** Longest state key (LMDB's key limit). */
#define CRDT_STATE_KEY_MAX 511

/** What one entry of a state slot is (docs/storage.md, section 4). */
typedef enum {
    CRDT_ENTRY_DOC_TOMBSTONE = 0, /**< the document's delete stamp */
    CRDT_ENTRY_REGISTER,          /**< a register value or field tombstone */
    CRDT_ENTRY_COUNTER,           /**< one actor's increments */
    CRDT_ENTRY_COUNTER_REMOVED,   /**< what deletes observed of a part */
    CRDT_ENTRY_SET_TAG,           /**< one add of a set element */
    CRDT_ENTRY_TEXT,              /**< a record of a text field's block */
    CRDT_ENTRY_LIST,              /**< a record of a list field's block */
    CRDT_ENTRY_COPY_WAITING,      /**< a copied increment or add whose
                                       original has not come yet */
    CRDT_ENTRY_DEFAULTS,          /**< a collection's lens defaults,
                                       shown where a document lacks the
                                       field (docs/storage.md 4.2) */
    CRDT_ENTRY_NO_DEFAULTS        /**< a document born after them, which
                                       does not show them */
} crdt_entry_kind;

/**
 * One state entry, decoded. Names and views point into the bytes it was
 * decoded from (or, to encode, into the caller's memory). Which members
 * mean something depends on @c kind:
 *  - DOC_TOMBSTONE: @c hlc, @c actor (the stamp); no field.
 *  - REGISTER: @c hlc, @c actor; @c tombstone, or @c value (a scalar).
 *  - COUNTER: @c actor (whose part), @c count, @c sum, @c seq (the last
 *    seq applied). COUNTER_REMOVED: @c actor, @c count, @c sum.
 *  - SET_TAG: @c value (the element), @c actor and @c seq (the add's),
 *    @c live.
 *  - TEXT, LIST: @c rest (the record's key after the field's block) and
 *    @c raw (its value), carried as they are: a sequence is read through
 *    crdt/read.h, never entry by entry.
 *  - COPY_WAITING: no names; @c rest (the original's actor, seq and
 *    tag, the copy's actor and seq: 40 bytes) and @c raw (1 or 9
 *    bytes), carried as they are (docs/storage.md 4.2). These keys come
 *    before every document's.
 *  - DEFAULTS: @c coll (no doc, no field) and @c raw, the (field, value)
 *    pairs, read with crdt_state_defaults_next() and built with
 *    crdt_state_defaults_put(). These keys come before the waiting
 *    copies'.
 *  - NO_DEFAULTS: @c coll, @c doc; no field. Its key comes right after
 *    the document's own (a tombstone's).
 * Stamps order by @c hlc, then by the actor's bytes.
 */
typedef struct {
    crdt_entry_kind kind;
    const char *coll, *doc, *field; /**< field: NULL for DOC_TOMBSTONE;
                                         all NULL for COPY_WAITING */
    size_t coll_len, doc_len, field_len;
    uint64_t hlc;
    crdt_actor actor;
    int tombstone;
    crdt_value value;
    uint64_t count, sum, seq;
    int live;
    const unsigned char *rest, *raw;
    size_t rest_len, raw_len;
} crdt_state_entry;

/**
 * Decode the state entry with key @p k and value @p v (as a cursor over
 * crdt_raw_state_db() returns them) into @p out.
 * @return CRDT_OK; CRDT_ECORRUPT (not a valid entry).
 */
CRDT_API int crdt_state_entry_decode(crdt_state_entry *out, const void *k,
                                     size_t kl, const void *v, size_t vl);
/**
 * Decode only the key: @c kind, the names, @c rest (for REGISTER and
 * DOC_TOMBSTONE empty; for the others what follows the kind).
 * @return CRDT_OK; CRDT_ECORRUPT.
 */
CRDT_API int crdt_state_key_decode(crdt_state_entry *out, const void *k,
                                   size_t kl);
/**
 * Encode @p e: its key into @p k (CRDT_STATE_KEY_MAX bytes) and its
 * value into @p v (@p v_cap bytes), the bytes a replica writes for that
 * entry. Encoding a decoded entry gives back the bytes it came from.
 * @return CRDT_OK; CRDT_EINVAL (a NULL argument, a bad name or kind);
 *         CRDT_ELIMIT: the key would be longer than CRDT_STATE_KEY_MAX
 *         or a set element longer than 256 bytes (*@p vl_out is 0), or
 *         the value needs more than @p v_cap bytes (*@p vl_out is how
 *         many: call again with that much).
 */
CRDT_API int crdt_state_entry_encode(unsigned char *k, size_t *kl_out,
                                     unsigned char *v, size_t v_cap,
                                     size_t *vl_out,
                                     const crdt_state_entry *e);

/** Longest value of a DEFAULTS entry. */
#define CRDT_STATE_DEFAULTS_MAX 65536

/**
 * The next (field, value) pair of a DEFAULTS entry's value: *@p p starts
 * at the value and moves past the pair; @p end is the value's end. The
 * field and a string or bytes value point into the value.
 * @return 1 (a pair), 0 (the end); CRDT_ECORRUPT.
 */
CRDT_API int crdt_state_defaults_next(const unsigned char **p,
                                      const unsigned char *end,
                                      const char **field_out,
                                      size_t *field_len_out,
                                      crdt_value *value_out);
/**
 * Append the pair (@p field, @p value) to a DEFAULTS value of *@p len
 * bytes in @p v (@p cap bytes). Fields go in increasing order of their
 * field keys (bytewise, a shorter name before the names it starts).
 * @return CRDT_OK; CRDT_EINVAL (a bad name, not above the last one is
 *         the caller's to keep); CRDT_ELIMIT (no room: the value would
 *         pass @p cap or CRDT_STATE_DEFAULTS_MAX).
 */
CRDT_API int crdt_state_defaults_put(unsigned char *v, size_t cap,
                                     size_t *len, const char *field,
                                     size_t field_len,
                                     const crdt_value *value);

/* ---- epochs and the log ---- */

/** Set the current epoch (number and id) that new local changes carry. */
CRDT_API int crdt_raw_set_epoch(crdt_raw *t, uint64_t number, const unsigned char *id);
CRDT_API int crdt_raw_get_epoch(crdt_raw *t, uint64_t *number_out,
                       unsigned char *id_out);
/**
 * Move every change of the active log whose last seq is <= @p upto's
 * entry for its actor (all of them if @p upto is NULL) to the archive,
 * tagged with @p epoch_number so the archive keeps each epoch's log.
 */
CRDT_API int crdt_raw_archive_log(crdt_raw *t, const crdt_vv *upto,
                         uint64_t epoch_number);
/**
 * The changes of one record of `log`, `archive` or `staging`, as their
 * exact signed bytes (docs/storage.md 3: a record holds one change or a
 * run of consecutive changes of one actor). A run is checked whole: its
 * size, each change decodes, one actor, each chained to the one before,
 * the last ending at the key's seq.
 * @param key  the record's key (16 bytes, or 24 for `archive`), or NULL
 *             to skip the checks against it
 * @param[out] list_out, buf_out  copies: @p list_out[i] points into
 *             @p *buf_out; release both with crdt_free()
 * @return CRDT_OK; CRDT_EINVAL; CRDT_ECORRUPT (a damaged run);
 *         CRDT_ENOMEM. A single change is handed out undecoded.
 */
CRDT_API int crdt_raw_log_changes(crdt_bytes **list_out, size_t *n_out,
                                  unsigned char **buf_out, const void *key,
                                  size_t key_len, const void *v, size_t len);
/**
 * Rewrite every run record of @p db (`log`, `archive` or `staging`) as
 * one record per change under its own key, for a caller that takes
 * single changes out of the log by key (a reset's quarantine passes).
 * @param[out] split_out  run records split (may be NULL)
 * @return CRDT_OK; CRDT_EINVAL (not a write txn, another database);
 *         CRDT_ECORRUPT (a damaged run); CRDT_EFULL.
 */
CRDT_API int crdt_raw_log_split(uint64_t *split_out, crdt_raw *t,
                                crdt_db db);
/** Recount ops_in_log / changes_in_log after log records were removed. */
CRDT_API int crdt_raw_recount_log(crdt_raw *t);
/** Drop archived logs of epochs below @p keep_from. */
CRDT_API int crdt_raw_prune_archive(crdt_raw *t, uint64_t keep_from);

/**
 * Export the changes the archive keeps of epoch @p epoch_number's log
 * (the changes an epoch after it folded): per actor of @p upto, in actor
 * order, every archived change that ends above @p from's seq for that
 * actor (@p from may be NULL: 0) and at or below @p upto's, in seq
 * order. Read with crdt_export_next() and crdt_export_end() (crdt/sync.h)
 * in one read snapshot; this replica's own changes come signed, others'
 * as stored (one may lack its signature when its successor proves it).
 * The archive's record format is libcrdt's: read it only this way. A
 * pruned archive (crdt_raw_prune_archive()) exports nothing for the
 * epoch; the caller checks the seqs it got. Both vvs are borrowed until
 * crdt_export_end().
 * @return CRDT_OK; CRDT_EINVAL; CRDT_ENOMEM; CRDT_EIO.
 */
CRDT_API int crdt_export_begin_archive(crdt_export **out, crdt_replica *r,
                                       uint64_t epoch_number,
                                       const crdt_vv *from,
                                       const crdt_vv *upto);

/**
 * The heads (per-actor seq, chain hash, key) as one msgpack blob, and
 * back: an epoch record carries the heads folded into it, so a replica
 * that resets to it can keep checking every actor's hash chain. The
 * blob is a msgpack array of 5 items per actor, in actor order:
 * actor (bin 8), seq (uint), hash (bin 32), pk (bin 32), inc (bin 8).
 * Only libcrdt reads or writes it: everyone else calls
 * crdt_heads_parse() and the two helpers after it.
 * @param[out] buf_out  malloc'd; release it with crdt_free()
 */
CRDT_API int crdt_raw_heads_encode(unsigned char **buf_out, size_t *len_out,
                          crdt_raw *t);
/**
 * Replace every head with those of @p buf (checked whole first: on an
 * error nothing changed). @return CRDT_OK; CRDT_EINVAL (a read txn);
 * what crdt_heads_parse() returns for a bad blob; CRDT_EFULL.
 */
CRDT_API int crdt_raw_heads_replace(crdt_raw *t, const unsigned char *buf,
                           size_t len);

/** Largest heads blob accepted (an epoch record's limit). */
#define CRDT_HEADS_BLOB_MAX ((size_t)8 * 1024 * 1024)

/** One actor's head as the heads blob carries it. */
typedef struct {
    crdt_actor actor;
    uint64_t seq;                          /**< last op held */
    unsigned char hash[CRDT_HASH_BYTES];   /**< of the change ending there */
    unsigned char pk[CRDT_PUBKEY_BYTES];
    unsigned char inc[8];
} crdt_head;

/** Called per head; a negative return stops the parse with that code. */
typedef int (*crdt_head_fn)(const crdt_head *h, void *ctx);

/**
 * The one parser of a heads blob: check it and call @p fn (NULL: only
 * check) for each head, in order. A blob of length 0 holds no heads.
 * @return CRDT_OK; CRDT_ELIMIT (longer than CRDT_HEADS_BLOB_MAX);
 *         CRDT_EPROTO (not an array of 5 items per actor, an item of the
 *         wrong type or size, an actor that is not the one its key and
 *         incarnation make, bytes after the array); a negative code
 *         @p fn returned. The same blob always gets the same answer, so
 *         every caller treats a bad blob alike.
 */
CRDT_API int crdt_heads_parse(const unsigned char *blob, size_t len,
                              crdt_head_fn fn, void *ctx);
/**
 * The seq @p blob holds for @p actor in @p seq_out (0 if none; the
 * larger one if the blob names the actor twice, as crdt_heads_vv()).
 * @return as crdt_heads_parse(); on an error @p seq_out is untouched.
 */
CRDT_API int crdt_heads_seq(uint64_t *seq_out, const unsigned char *blob,
                            size_t len, const crdt_actor *actor);
/**
 * The version vector of @p blob (each actor's seq).
 * @param[out] out  free with crdt_vv_free(); NULL on an error
 * @return as crdt_heads_parse(); CRDT_ENOMEM.
 */
CRDT_API int crdt_heads_vv(crdt_vv **out, const unsigned char *blob,
                           size_t len);
/** Version vector from the heads in this txn. */
CRDT_API int crdt_raw_vv(crdt_vv **out, crdt_raw *t);

/**
 * Re-apply every change of the active log beyond the current heads (in
 * seq order per actor, chain-checked) to the active state: what a reset
 * does after swapping in a snapshot. Changes at or below the heads are
 * archived under @p archive_epoch. A change whose predecessors are not
 * there, or one stored without its signature that nothing in the log
 * proves any more, waits in the pending area (report->pending) until a
 * peer sends its run again.
 */
CRDT_API int crdt_raw_replay_log(crdt_merge_report *report, crdt_raw *t,
                        uint64_t archive_epoch);

/**
 * Quarantine keys: actor(8) | seq(8) | kind(1) | tag(8), the tag being
 * the first 8 bytes of the hash of the change the op came in. Two
 * reasons, or two versions of one (actor, seq), never share a key.
 * Stores of format 2 written before this used actor | seq (16 bytes);
 * readers accept both.
 */
#define CRDT_QUARANTINE_KEY_BYTES 25
enum {
    CRDT_QK_REBASE = 'r',       /**< a lens or custom migration refused it */
    CRDT_QK_UNSYNCED = 'u',     /**< a rejected replica's own ops */
    CRDT_QK_EQUIVOCATION = 'e', /**< the losing version of an actor's seq */
    CRDT_QK_PENDING = 'p',      /**< fell out of a full pending area */
    CRDT_QK_OTHER_COPY = 'o',   /**< another copy's version of this
                                     replica's own actor, received: kept,
                                     never re-applied as ours */
    CRDT_QK_AUTHORITY = 'a'     /**< refused by the authority rules
                                     (docs/security.md) */
};
CRDT_API void crdt_quarantine_key(unsigned char *key, const crdt_actor *a,
                         uint64_t seq, int kind,
                         const unsigned char *change_hash);

/**
 * One quarantine record, decoded (docs/storage.md, section 6). The
 * record is libcrdt's: merge, the authority rules and libepoch write it
 * through crdt_raw_quarantine_put() / crdt_raw_quarantine_change() and
 * read it through crdt_quarantine_decode(), never byte by byte.
 * Views point into the key and value it was decoded from.
 */
typedef struct {
    crdt_actor actor;
    uint64_t seq;
    int kind;                    /**< CRDT_QK_*; 0 in an older key */
    const unsigned char *tag;    /**< 8 bytes of the change's hash; NULL
                                      in an older key */
    const char *reason;          /**< not NUL-terminated */
    size_t reason_len;
    unsigned char epoch_id[CRDT_HASH_BYTES]; /**< the op was written in */
    uint64_t hlc;                /**< its stamp */
    crdt_op op;                  /**< as written */
} crdt_quarantined;

/**
 * Decode the quarantine record with key @p k and value @p v.
 * @return CRDT_OK; CRDT_ECORRUPT.
 */
CRDT_API int crdt_quarantine_decode(crdt_quarantined *out, const void *k,
                                    size_t kl, const void *v, size_t vl);
/**
 * Quarantine op @p op of change @p c, the one at seq @p seq (its stamp
 * is the change's hlc plus its index), under kind @p kind (CRDT_QK_*)
 * with @p reason; a record already under that key is replaced.
 * @return CRDT_OK; CRDT_EINVAL (a read txn, a NULL argument, @p seq
 *         below the change's); CRDT_EFULL; CRDT_EIO.
 */
CRDT_API int crdt_raw_quarantine_put(crdt_raw *t, const crdt_change *c,
                                     uint64_t seq, const crdt_op *op,
                                     int kind, const char *reason);
/**
 * Quarantine every op of change @p c whose seq is above @p above (0:
 * all of them), as crdt_raw_quarantine_put() does; how many in
 * @p n_out (may be NULL).
 * @return as crdt_raw_quarantine_put(); CRDT_EPROTO (a bad op).
 */
CRDT_API int crdt_raw_quarantine_change(uint64_t *n_out, crdt_raw *t,
                                        const crdt_change *c, uint64_t above,
                                        int kind, const char *reason);

/** Merge remote changes inside @p t (crdt_merge() does begin+this+commit).
 *  On an error @p t may hold part of the batch: abort it. */
CRDT_API CRDT_MUST_CHECK int crdt_raw_merge(crdt_merge_report *report, crdt_raw *t,
                   const crdt_bytes *changes, size_t n);

/**
 * Apply one op (already transformed) to the active state, as merge would,
 * for actor @p actor at stamp @p hlc. Used by quarantine re-apply.
 */
CRDT_API int crdt_raw_apply_op(crdt_raw *t, const crdt_op *op, uint64_t hlc,
                      const crdt_actor *actor, uint64_t seq);

/**
 * Apply insert @p op (TINS or LINS, already transformed) as
 * crdt_raw_apply_op() does, then delete the elements it inserted: a
 * copy whose original the current epoch already holds (rebase,
 * docs/protocol.md "Equivocation") keeps its ids as anchors for the
 * later inserts that name them, and shows nothing.
 * @return as crdt_raw_apply_op(); CRDT_EINVAL for another kind.
 */
CRDT_API int crdt_raw_apply_deleted(crdt_raw *t, const crdt_op *op,
                                    uint64_t hlc, const crdt_actor *actor,
                                    uint64_t seq);

/**
 * Give field @p field of document @p doc the register value @p v stamped
 * (0, actor 0), unless the document already has any entry for that
 * field: what a lens's `add ... default` does to a document, applied by
 * the rebasing hook to documents that old ops touch.
 */
CRDT_API int crdt_raw_state_default(crdt_raw *t, const char *coll, const char *doc,
                           const char *field, const crdt_value *v);

/* ---- rebasing hook ---- */

/**
 * How libepoch rebases. For every op of a change written against an
 * epoch other than the current one, merge calls @c transform:
 *  - CRDT_OK: @p out is the op in the current schema (its strings may
 *    point into memory the hook owns until its next call);
 *  - CRDT_EREJECTED: the op cannot be rebased; the hook has stored it in
 *    the quarantine with its reason; merge counts it and moves on;
 *  - CRDT_EEXISTS: the op is a copy of an op the current epoch already
 *    holds (crdt_txn_copy_of()); the hook has done what it needed to
 *    (nothing, or its insert applied as deleted); merge moves on;
 *  - CRDT_ENOTFOUND: unknown epoch; the whole merge fails.
 */
typedef struct {
    int (*transform)(void *ctx, crdt_raw *t, const crdt_change *c,
                     uint64_t seq, const crdt_op *in, crdt_op *out);
    /** Called when the hook is replaced or the replica closes; may be
     *  NULL. */
    void (*release)(void *ctx);
} crdt_epoch_hook;

/** Install @p hook (copied) with @p ctx; NULL removes it. */
CRDT_API void crdt_replica_set_epoch_hook(crdt_replica *r, const crdt_epoch_hook *hook,
                                 void *ctx);

/**
 * Re-encode the observed part of an op with its field names and set
 * elements passed through callbacks (a lens renaming or converting).
 * @p map_field returns CRDT_OK with a new name, or CRDT_ENOTFOUND to drop
 * that field's part; @p map_elem returns CRDT_OK with a new value.
 * @param[out] buf_out  malloc'd; release it with crdt_free()
 */
typedef int (*crdt_map_field_fn)(const char **out, const char *field,
                                 size_t len, void *ctx);
typedef int (*crdt_map_elem_fn)(crdt_value *out, const char *field,
                                size_t len, const crdt_value *in, void *ctx);
CRDT_API int crdt_observed_map(unsigned char **buf_out, size_t *len_out,
                      const crdt_op *op, crdt_map_field_fn map_field,
                      crdt_map_elem_fn map_elem, void *ctx);

/**
 * Start a new incarnation: a new actor id for this replica's future
 * writes (same key pair). A replica that was restored from a backup, or
 * whose unsynced ops were quarantined, does this so it never reuses an
 * (actor, seq) that peers saw or will never see.
 */
CRDT_API int crdt_replica_new_incarnation(crdt_replica *r);

/**
 * If this replica's own chain head is below the highest seq it ever
 * issued (its own changes were parked after a reset, waiting for
 * predecessors), start a new incarnation, so the next local write can
 * never reuse a seq. @p renewed_out (may be NULL) says whether it did.
 */
CRDT_API int crdt_replica_check_incarnation(int *renewed_out, crdt_replica *r);

/**
 * Inside a local write txn, mark the ops written from now on as copies
 * of the op at (@p actor, @p seq) of the change whose hash starts with
 * the 8 bytes @p tag (op kind 11, docs/storage.md 5.3): what a replica
 * that lost an equivocation re-applies under its new incarnation. A
 * rebase into an epoch whose cut folds that change skips them
 * (docs/protocol.md, "Equivocation"). @p hlc is that op's stamp: a
 * copied register write, field delete, doc delete or LSET is applied under
 * (@p hlc, @p actor), so that it and its original are one write; 0
 * leaves it out (the copy is applied under its own stamp). @p actor
 * NULL: the ops written from now on are plain ops again. Copies are
 * never folded into runs.
 * @return CRDT_OK; CRDT_EINVAL (@p t NULL, or @p tag NULL or @p seq 0
 *         with an actor).
 */
CRDT_API int crdt_txn_copy_of(crdt_txn *t, const crdt_actor *actor,
                              uint64_t seq, const unsigned char *tag,
                              uint64_t hlc);

/**
 * Inside a local write txn, also delete raw key @p k of @p db when the
 * txn commits (quarantine re-apply: the op leaves the quarantine in the
 * same txn that writes it again).
 */
CRDT_API int crdt_txn_raw_del(crdt_txn *t, crdt_db db, const void *k, size_t kl);

/**
 * Replace the wall clock (milliseconds since the epoch) for every replica
 * in this process: the simulator's seam. NULL restores the real clock.
 */
typedef uint64_t (*crdt_clock_fn)(void *ctx);
CRDT_API void crdt_set_clock(crdt_clock_fn fn, void *ctx);

/**
 * The wall clock every replica of this process uses, in milliseconds
 * since the epoch: the override of crdt_set_clock() when one is set.
 * libepoch stamps its records with it, so the simulator's clock reaches
 * them too.
 */
CRDT_API uint64_t crdt_raw_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif
