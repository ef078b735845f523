/**
 * @file epoch/epoch.h
 * libepoch: epochs, the migration builder, rebasing, quarantine, reset.
 *
 * An epoch folds the op log into a compact state and may migrate that
 * state to a new schema through a lens (epoch/lens.h). Its record holds
 * the number, parent, per-collection schema versions, the lens, the
 * heads folded into it (base), and the state hash; the id is a hash of
 * those, so two replicas that compact the same state with the same
 * migration make the same epoch. Creator and signature are outside the
 * id. Every replica keeps every record, hence the whole lens chain.
 *
 * What this layer promises the one above (sync): a replica attached with
 * epoch_attach() merges changes written in any epoch it holds a record
 * for, transforming their ops through the lens chain, and quarantines
 * what cannot be transformed; epoch_reset_*() swaps in a snapshot of a
 * newer or canonical epoch atomically and rebases the replica's own
 * unsynced ops onto it.
 */
#ifndef EPOCH_EPOCH_H
#define EPOCH_EPOCH_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/crdt.h"
#include "epoch/lens.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The library version, e.g. "0.1.0". Static; do not free. */
EPOCH_API const char *epoch_version(void);

#define EPOCH_ID_BYTES 32
#define EPOCH_RECORD_MAX (8u * 1024 * 1024)

/** One collection's schema version. */
typedef struct {
    char coll[CRDT_NAME_MAX + 1];
    uint32_t version;
} epoch_schema_entry;

/** A decoded epoch record. Owns its memory: free with epoch_info_clear(). */
typedef struct {
    uint64_t number;
    unsigned char id[EPOCH_ID_BYTES];
    unsigned char parent[EPOCH_ID_BYTES];
    epoch_schema_entry *schema; /**< sorted by collection */
    size_t n_schema;
    char *lens;                 /**< canonical lens text, "" if none */
    char *custom;               /**< custom migration name, "" if none */
    uint64_t base_total;        /**< sum of the folded heads' seqs */
    unsigned char state_hash[CRDT_HASH_BYTES];
    unsigned char creator[CRDT_PUBKEY_BYTES];
    uint64_t created_ms;        /**< creator's clock; not in the id */
    unsigned char *raw;         /**< the encoded record */
    size_t raw_len;
} epoch_info;

EPOCH_API void epoch_info_clear(epoch_info *e);

/** Version of @p coll in @p e (1 when the epoch does not name it). */
EPOCH_API uint32_t epoch_schema_version(const epoch_info *e, const char *coll);

/**
 * Decode and check an encoded record: its id is the hash of its body and
 * its signature verifies. @return CRDT_OK; CRDT_EPROTO; CRDT_EAUTH.
 */
EPOCH_API int epoch_record_decode(epoch_info *out, const unsigned char *buf,
                        size_t len);

/**
 * The heads folded into epoch @p e (the version vector of its base, with
 * each actor's chain hash and key) as the msgpack blob the record holds:
 * a view into @p e. Genesis folds nothing: CRDT_ENOTFOUND.
 */
EPOCH_API int epoch_record_heads(const unsigned char **out, size_t *len,
                       const epoch_info *e);

/** The current epoch of @p r (genesis is number 0, no parent). */
EPOCH_API int epoch_current(epoch_info *out, crdt_replica *r);

/** Load a stored record by id. @return CRDT_OK; CRDT_ENOTFOUND. */
EPOCH_API int epoch_get(epoch_info *out, crdt_replica *r, const unsigned char *id);

/**
 * The chain from genesis to the current epoch, oldest first.
 * @param[out] out  an array of @p n_out records; free with
 *                  epoch_chain_free()
 */
EPOCH_API int epoch_chain(epoch_info **out, size_t *n_out, crdt_replica *r);
EPOCH_API void epoch_chain_free(epoch_info *chain, size_t n);

/**
 * Every record this replica holds (its chain and the branches it has
 * seen), by number: what a peer needs to transform any change we may
 * send it. Free with epoch_chain_free().
 */
EPOCH_API int epoch_all(epoch_info **out, size_t *n_out, crdt_replica *r);

/**
 * Store records received from a peer (each checked: its id is the hash
 * of its body, its signature verifies). A record already held is
 * written again with the same bytes. @return CRDT_OK; CRDT_EPROTO;
 * CRDT_EAUTH.
 */
EPOCH_API int epoch_store_records(crdt_replica *r, const unsigned char *const *recs,
                        const size_t *lens, size_t n);

/* ---- the migration builder ---- */

/** A migration being built. Opaque. */
typedef struct epoch_builder epoch_builder;

/**
 * A custom migration of one document, for transforms no lens can
 * express. Called with the visible fields; it edits @p doc in place.
 * Return CRDT_OK, or an error to fail the whole migration.
 */
typedef int (*epoch_custom_fn)(epoch_doc *doc, const char *coll,
                               const char *doc_id, void *ctx);

/** Progress: @p done of @p total state entries rewritten. */
typedef void (*epoch_progress_fn)(uint64_t done, uint64_t total, void *ctx);

/**
 * Start a migration of @p r.
 * @param[out] out  release with epoch_builder_free() on every path
 */
EPOCH_API int epoch_builder_new(epoch_builder **out, crdt_replica *r);
/** Apply @p lens (copied). Its `from` versions must match the replica. */
EPOCH_API int epoch_builder_add_lens(epoch_builder *b, const epoch_lens *lens);
/**
 * Run @p fn on every document of @p coll. Marks the epoch non-rebasable:
 * ops written before it can not be transformed, so stale peers across it
 * are rejected. @p name is recorded in the epoch.
 */
EPOCH_API int epoch_builder_set_custom(epoch_builder *b, const char *name,
                             const char *coll, uint32_t to_version,
                             epoch_custom_fn fn, void *ctx);
EPOCH_API void epoch_builder_set_progress(epoch_builder *b, epoch_progress_fn fn,
                                void *ctx);
/**
 * Keep archived logs of this many sealed epochs (default 0: all). A
 * replica that loses a fork can rebase only the ops of archived logs.
 */
EPOCH_API void epoch_builder_set_retention(epoch_builder *b, uint32_t epochs);

/**
 * Build the new epoch: write the upgrade marker (own small txn), then in
 * ONE write txn rewrite the state, append the record, archive the log and
 * clear the marker. After this only epoch_builder_free() is allowed.
 * @param[out] out  the new epoch (epoch_info_clear() it), or NULL
 * @return CRDT_OK; CRDT_EBUSY (another migration is running or was
 *         interrupted: resume or abort it); CRDT_EINVAL (lens does not
 *         fit the schema); CRDT_EFULL; CRDT_EIO.
 */
EPOCH_API CRDT_MUST_CHECK int epoch_builder_commit(epoch_info *out, epoch_builder *b);
EPOCH_API void epoch_builder_free(epoch_builder *b);

/* ---- the upgrade marker ---- */

/** What an interrupted or running migration recorded. */
typedef struct {
    uint64_t target_number;
    uint64_t started_ms;
    char *lens;   /**< canonical lens text or "" */
    char *custom; /**< custom name or "" */
} epoch_marker;

EPOCH_API void epoch_marker_clear(epoch_marker *m);
/** @return CRDT_OK (present); CRDT_ENOTFOUND (none). */
EPOCH_API int epoch_marker_get(epoch_marker *out, crdt_replica *r);
/** Re-run the recorded migration from the start (lens only). */
EPOCH_API int epoch_migration_resume(epoch_info *out, crdt_replica *r,
                           epoch_progress_fn fn, void *ctx);
/** Drop the marker; the epoch stays as it is. */
EPOCH_API int epoch_migration_abort(crdt_replica *r);

/* ---- rebasing and quarantine ---- */

/**
 * Install the rebasing hook on @p r: merges then accept changes written
 * in any epoch @p r holds a record for. Call once after opening; the
 * hook lives until epoch_detach() or the replica closes.
 */
EPOCH_API CRDT_MUST_CHECK int epoch_attach(crdt_replica *r);
EPOCH_API void epoch_detach(crdt_replica *r);

/** One quarantined op. Views valid until the next call. */
typedef struct {
    crdt_actor actor;
    uint64_t seq;
    uint64_t hlc;
    const char *reason;
    unsigned char epoch_id[EPOCH_ID_BYTES]; /**< written against */
    crdt_op op;                             /**< as written */
    int kind;         /**< CRDT_QK_* (crdt/raw.h); 0 in an older store */
    const void *key;  /**< its raw key, for removing exactly this entry */
    size_t key_len;
} epoch_quarantined;

typedef int (*epoch_quarantine_cb)(const epoch_quarantined *q, void *ctx);

/** Visit every quarantined op in (actor, seq, kind, change) order. */
EPOCH_API int epoch_quarantine_list(crdt_replica *r, epoch_quarantine_cb cb,
                          void *ctx);
/** Number of quarantined ops. */
EPOCH_API int epoch_quarantine_count(uint64_t *out, crdt_replica *r);
/**
 * Move every op of the local log that a peer at epoch @p target lacks
 * (beyond its folded heads) into the quarantine with @p reason: what a
 * replica rejected beyond policy does so nothing is lost.
 */
EPOCH_API int epoch_quarantine_unsynced(uint64_t *moved_out, crdt_replica *r,
                              const unsigned char *target_heads,
                              size_t heads_len, const char *reason);
/**
 * Re-apply quarantined ops as NEW local writes in the current schema
 * (one change), where they still make sense; those that still do not
 * stay quarantined. @p applied_out and @p kept_out may be NULL.
 */
EPOCH_API int epoch_quarantine_apply(uint64_t *applied_out, uint64_t *kept_out,
                           crdt_replica *r);
/**
 * Re-apply, as new local writes, the ops of @p actor that lost an
 * equivocation (kind CRDT_QK_EQUIVOCATION): what a copied replica does
 * with its own losing writes once it has a new incarnation, so they
 * survive under it.
 */
EPOCH_API int epoch_quarantine_apply_lost(uint64_t *applied_out, crdt_replica *r,
                                const crdt_actor *actor);

/* ---- reset to a snapshot (sync) ---- */

/** The staging token of a reset (a snapshot being received). */
typedef struct {
    int present;         /**< a token is stored */
    int active;          /**< it still blocks other resets and migrations */
    uint64_t started_ms; /**< when the reset began */
    uint64_t pid;        /**< its owner process (0: not recorded) */
    int owner_alive;     /**< 1 alive, 0 dead (the token is void at once),
                              -1 unknown (no /proc, or an old token:
                              it expires 10 minutes after started_ms) */
} epoch_staging;

/**
 * Read the staging token of @p r. A token whose owner (pid and its start
 * time, from /proc) is no longer running is not active: the next sync
 * takes over at once.
 * @return CRDT_OK (out->present 0 if none); CRDT_EIO...
 */
EPOCH_API int epoch_staging_get(epoch_staging *out, crdt_replica *r);

/** A reset in progress: one write txn. Opaque. */
typedef struct epoch_reset epoch_reset;

/**
 * Begin resetting @p r into epoch @p target_id (its record and those of
 * its ancestors must be stored first: epoch_store_records()).
 * State entries then stream in with epoch_reset_put(); if the snapshot is
 * older than @p migrate_to (an epoch this replica holds and that descends
 * from the target), entries are migrated up through the lenses in memory
 * before they are written.
 */
EPOCH_API int epoch_reset_begin(epoch_reset **out, crdt_replica *r,
                      const unsigned char *target_id,
                      const unsigned char *migrate_to);
/** One state entry of the snapshot, in key order. */
EPOCH_API int epoch_reset_put(epoch_reset *rs, const void *k, size_t kl,
                    const void *v, size_t vl);
/**
 * One change of the sender's log beyond the epoch's base, sent with the
 * snapshot (the snapshot is the sender's current state, which holds
 * them). Staged, then merged at commit in the same txn as the swap, so
 * the version vector matches the state at every commit.
 */
EPOCH_API int epoch_reset_change(epoch_reset *rs, const void *change, size_t len);

/**
 * Rejected beyond policy: at commit, in the same txn as the switch, move
 * every op of the log the target epoch's base does not hold into the
 * quarantine with @p reason (copied) before the replay, and afterwards
 * start a new incarnation if any op moved. Doing it in the switching txn
 * means an interrupted reset leaves the replica exactly as it was.
 * @p moved_out (may be NULL) gets the count after commit.
 */
EPOCH_API int epoch_reset_quarantine_unsynced(epoch_reset *rs, const char *reason,
                                    uint64_t *moved_out);

/**
 * Equivocation lost: at commit, in the switching txn and before the
 * replay, move every change of the @p n actors @p actors (copied) in our
 * log that the sender's chain does not hold into the quarantine (kind
 * CRDT_QK_EQUIVOCATION) with @p reason, so the replay adopts the
 * sender's chain. If this replica's own actor is among them, it then
 * starts a new incarnation and re-applies its own losing ops under it.
 * @p moved_out (may be NULL) gets the count after commit.
 */
EPOCH_API int epoch_reset_quarantine_forks(epoch_reset *rs, const crdt_actor *actors,
                                 size_t n, const char *reason,
                                 uint64_t *moved_out);

/**
 * Swap the snapshot in, adopt the epoch's base heads, bring back the
 * changes of a losing fork from the archive, and replay every change
 * beyond the new heads through the lenses: the staged changes of the
 * sender first (re-applying an op the snapshot holds is a no-op), then
 * this replica's own. @p expected_hash is the state hash
 * the sender reported with the snapshot (NULL when migrating up); a
 * mismatch gives CRDT_ECORRUPT and nothing changes.
 */
EPOCH_API int epoch_reset_commit(crdt_merge_report *report, epoch_reset *rs,
                       const unsigned char *expected_hash);
EPOCH_API void epoch_reset_abort(epoch_reset *rs);

/**
 * Stream the current state: from one read snapshot, fill @p epoch_id_out
 * and @p hash_out (either may be NULL), then call @p cb per state entry
 * in key order; a non-zero return stops the walk and is returned.
 */
typedef int (*epoch_entry_cb)(const void *k, size_t kl, const void *v,
                              size_t vl, void *ctx);
EPOCH_API int epoch_snapshot_walk(crdt_replica *r, unsigned char *epoch_id_out,
                        unsigned char *hash_out, epoch_entry_cb cb,
                        void *ctx);

/** A snapshot being read, one entry at a time. Opaque. */
typedef struct epoch_snapshot epoch_snapshot;

/**
 * Open a read snapshot of the current state for streaming.
 * @param[out] out  release with epoch_snapshot_close()
 */
EPOCH_API int epoch_snapshot_open(epoch_snapshot **out, crdt_replica *r,
                        unsigned char *epoch_id_out, unsigned char *hash_out);
/** Next entry; views valid until the next call. CRDT_ENOTFOUND at end. */
EPOCH_API int epoch_snapshot_next(epoch_snapshot *s, const void **k, size_t *kl,
                        const void **v, size_t *vl);
EPOCH_API void epoch_snapshot_close(epoch_snapshot *s);

/* ---- re-deriving an epoch before adopting it ---- */

/** What epoch_check_derivation() found. */
typedef enum {
    EPOCH_DERIVED_MATCH = 0,  /**< re-derived: the record's state hash */
    EPOCH_DERIVED_UNCHECKED,  /**< nothing to derive from: the creator's
                                   signature alone vouches (reason says why) */
    EPOCH_DERIVED_MISMATCH    /**< re-derived: another state; refuse it */
} epoch_derivation;

/** The result of epoch_check_derivation(). */
typedef struct {
    epoch_derivation verdict;
    uint64_t number;      /**< the epoch checked (0: none on the path) */
    uint64_t lacking;     /**< ops the epoch folds that this replica lacks */
    int forked;           /**< a chain of ours forks from the epoch's cut */
    crdt_actor fork_actor; /**< its actor, when @c forked */
    uint64_t fork_seq;    /**< the seq the cut folds for it */
    char reason[240];     /**< one line, for the session's report */
    int refuse_new;       /**< internal: a refusal to record */
    unsigned char refused_id[EPOCH_ID_BYTES]; /**< internal */
} epoch_check;

/**
 * Before adopting the epoch @p target_id (its records stored with
 * epoch_store_records()), re-derive its first step from this replica's
 * own state: find the child of our current epoch on the target's
 * ancestry and, if this replica holds exactly the changes that epoch
 * folds (its base heads, chain hashes included), apply the same
 * compaction or lens to its own state in a scratch txn that is never
 * committed, and compare the state hash with the record's. A different
 * hash gives EPOCH_DERIVED_MISMATCH with the reason "epoch N from KEY
 * does not match its migration: state hash differs": the caller must
 * refuse the epoch (the sync session fails with CRDT_EREJECTED and the
 * replica stays at its epoch). The refusal is recorded (the one write
 * this function makes): an epoch refused once, or any descendant of it,
 * stays refused with the same reason even after this replica wrote
 * beyond its cut and could no longer re-derive it. When nothing can be derived (the replica
 * lacks changes of the cut or holds changes beyond it, a chain forks
 * from the cut's, a custom migration, a fork of epochs) the verdict is
 * EPOCH_DERIVED_UNCHECKED and the admin's signature, already checked
 * when the record was stored, is all that vouches; docs/security.md
 * gives the rule. Changes nothing else in the replica.
 * @return CRDT_OK; CRDT_ENOTFOUND (a record is not held); CRDT_EBUSY (a
 *         reset is staging); CRDT_EIO...
 */
EPOCH_API int epoch_check_derivation(epoch_check *out, crdt_replica *r,
                                     const unsigned char *target_id);

/* ---- sync policy ---- */

/** How two epochs relate, from the local side's view. */
typedef enum {
    EPOCH_SAME = 0,   /**< same epoch */
    EPOCH_BEHIND,     /**< theirs descends from ours: reset to theirs */
    EPOCH_AHEAD,      /**< ours descends from theirs: they reset */
    EPOCH_FORK_WIN,   /**< forked; ours is canonical */
    EPOCH_FORK_LOSE,  /**< forked; theirs is canonical: reset to theirs */
    EPOCH_UNKNOWN     /**< we do not hold their record */
} epoch_relation;

/** Policy for stale peers. */
typedef struct {
    uint32_t max_epochs_behind; /**< 0 = no limit */
    uint64_t max_age_ms;        /**< 0 = no limit */
} epoch_policy;

/**
 * Relate our current epoch to @p theirs (both records must be held), and
 * say whether the gap is within @p policy: a custom migration on the
 * path, too many epochs or too old gives CRDT_EREJECTED with @p reason.
 */
EPOCH_API int epoch_relate(epoch_relation *rel_out, const char **reason_out,
                 crdt_replica *r, const unsigned char *theirs,
                 const epoch_policy *policy);

#ifdef __cplusplus
}
#endif

#endif
