/**
 * @file crdt/replica.h
 * Opening a space replica: one LMDB environment in one directory.
 *
 * A replica holds one space: its identity (an Ed25519 key pair plus a
 * per-replica incarnation), its op log, its materialized state and its
 * version vector.
 *
 * Threads and processes (LMDB's rules, which these follow):
 * - Open a directory ONCE per process and share the crdt_replica among
 *   threads. Opening the same directory twice in one process is not
 *   allowed: closing one handle drops the locks the other relies on.
 * - Several processes may have the same directory open at once; LMDB
 *   serialises writers (across processes) and never blocks readers.
 * - A write txn (crdt_txn, crdt_raw with write) belongs to the thread
 *   that began it: commit or abort it on that thread, and never begin
 *   a second write txn on a thread that holds one (the writer lock is
 *   not recursive). A read (crdt_read) may be handed to another thread
 *   but is used by one thread at a time.
 * - fork(): a child must not use a replica, txn or read its parent
 *   opened, nor close it; it opens its own after the fork, and the
 *   parent keeps using its handle.
 * - crdt_set_clock() (crdt/raw.h) is process-wide: set it before any
 *   replica is opened.
 */
#ifndef CRDT_REPLICA_H
#define CRDT_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "crdt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CRDT_SPACE_ID_BYTES 16
#define CRDT_ACTOR_BYTES 8
#define CRDT_PUBKEY_BYTES 32
#define CRDT_SECKEY_BYTES 64
#define CRDT_HASH_BYTES 32
#define CRDT_SIG_BYTES 64 /**< an Ed25519 detached signature */
#define CRDT_SEED_BYTES 32
#define CRDT_NAME_MAX 64 /**< collection, document and field names */

/** An open replica. Opaque; thread-safe for concurrent txns. */
typedef struct crdt_replica crdt_replica;

/** An actor id: a short hash of the public key and the incarnation. */
typedef struct {
    unsigned char b[CRDT_ACTOR_BYTES];
} crdt_actor;

/** Options for crdt_replica_open(); start from CRDT_OPEN_OPTIONS_INIT. */
typedef struct {
    unsigned int version;     /**< 3 (2: without the pending bounds,
                                   1: without map_resident) */
    int create;               /**< create a new replica if the dir is empty */
    int read_only;            /**< open for reading only */
    size_t map_size;          /**< initial LMDB map size; 0 = 1 GiB */
    size_t max_map_size;      /**< never grow beyond; 0 = no limit */
    int no_sync;              /**< MDB_NOSYNC: a system crash may lose or
                                   corrupt recent commits (simulation only) */
    uint64_t max_drift_ms;    /**< refuse changes stamped further ahead;
                                   0 = 300000 (5 minutes) */
    /* Used only when creating: */
    const unsigned char *space_id; /**< join this space; NULL = new space */
    const unsigned char *seed;     /**< CRDT_SEED_BYTES identity seed;
                                        NULL = a new random identity */
    /**
     * Resident-map budget, in bytes (Linux; ignored elsewhere). LMDB's
     * read-only map keeps every page this process has touched mapped,
     * so RSS grows with the data file. After a write commit, once the
     * process's file-backed resident memory has grown by more than this
     * since the last time, the replica unmaps its map's pages
     * (madvise(MADV_DONTNEED)): they stay in the page cache and fault
     * back in when used. 0 = 32 MiB; SIZE_MAX = never.
     */
    size_t map_resident;
    /**
     * Bounds of the pending area (changes that wait for a missing
     * predecessor): changes parked per actor (0 = 1024), in the whole
     * replica (0 = 65536), and how far ahead of an actor's head a change
     * may start (0 = 2^20 seqs). A change beyond a bound, or the
     * farthest-ahead parked change of the actor it displaces, goes to
     * the quarantine with the reason.
     */
    uint64_t pending_max_actor;
    uint64_t pending_max;
    uint64_t pending_max_gap;
} crdt_open_options;

#define CRDT_OPEN_OPTIONS_INIT                                            \
    { 3, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0 }

/**
 * Open the replica in directory @p path.
 * @param[out] out  the handle; release it with crdt_replica_close()
 * @param opts      options, or NULL for the defaults (open existing only)
 * @return CRDT_OK; CRDT_ENOTFOUND (no replica there and not @c create);
 *         CRDT_EEXISTS (@c create on a directory holding other files);
 *         CRDT_EVERSION (newer format); CRDT_ECORRUPT; CRDT_EPERM; CRDT_EIO.
 */
CRDT_API CRDT_MUST_CHECK int crdt_replica_open(crdt_replica **out, const char *path,
                      const crdt_open_options *opts);

/** Close @p r. NULL does nothing. Every txn on it must be finished. */
CRDT_API void crdt_replica_close(crdt_replica *r);

/** The directory the replica was opened from. Valid until close. */
CRDT_API const char *crdt_replica_path(const crdt_replica *r);

/** Copy out the space id (CRDT_SPACE_ID_BYTES). */
CRDT_API void crdt_replica_space_id(const crdt_replica *r, unsigned char *out);

/** Copy out this replica's Ed25519 public key (CRDT_PUBKEY_BYTES). */
CRDT_API void crdt_replica_public_key(const crdt_replica *r, unsigned char *out);

/**
 * Sign @p len bytes at @p msg with this replica's Ed25519 key: a
 * detached signature of CRDT_SIG_BYTES, which anyone checks with the
 * public key (libsodium's crypto_sign_verify_detached()). The key never
 * leaves the library.
 * @return CRDT_OK; CRDT_EINVAL (NULL @p sig or @p r, or NULL @p msg with
 *         a length).
 */
CRDT_API CRDT_MUST_CHECK int crdt_replica_sign(unsigned char *sig,
                                               const crdt_replica *r,
                                               const void *msg, size_t len);

/**
 * Copy out this replica's Ed25519 secret key (CRDT_SECKEY_BYTES). Only
 * for what needs the key itself: the handshake's config
 * (crdtnet/handshake.h) and rebuilding a replica with the same
 * identity. To sign, use crdt_replica_sign(). The caller wipes the copy
 * (sodium_memzero) when done.
 */
CRDT_API void crdt_replica_secret_key(const crdt_replica *r, unsigned char *out);

/** This replica's actor id (public key + incarnation). */
CRDT_API crdt_actor crdt_replica_actor(const crdt_replica *r);

/**
 * Derive an identity seed from a recovery phrase with a memory-hard KDF
 * (Argon2id). The same phrase always gives the same seed.
 * @return CRDT_OK; CRDT_EINVAL (phrase shorter than 8 bytes); CRDT_ENOMEM.
 */
CRDT_API int crdt_seed_from_phrase(unsigned char *seed_out, const char *phrase,
                          size_t len);

/**
 * Write a fresh recovery phrase of @p words words (12..24) from the
 * built-in word list into @p buf, space separated and NUL-terminated.
 * @return CRDT_OK; CRDT_EINVAL (bad count or buffer too small).
 */
CRDT_API int crdt_phrase_generate(char *buf, size_t size, int words);

/**
 * The id of the last committed write txn of the replica's environment,
 * by any process. O(1); a daemon polls it to notice writes made by
 * other processes.
 */
CRDT_API uint64_t crdt_replica_last_txn(crdt_replica *r);

/**
 * Release a buffer this library allocated for the caller (the
 * @c buf_out of crdt_vv_encode(), crdt_raw_heads_encode(),
 * crdt_observed_map()). NULL does nothing. Use this rather than free():
 * the library and the program need not share an allocator.
 */
CRDT_API void crdt_free(void *p);

/** How full a replica's storage map is; crdt_replica_env_stats(). */
typedef struct {
    uint64_t map_size;     /**< bytes the map holds now (it grows) */
    uint64_t map_used;     /**< bytes of it in use, up to the last page */
    uint32_t readers_max;  /**< reader slots */
    uint32_t readers_used; /**< slots held, by live or dead readers */
} crdt_env_stats;

/**
 * The map size and use and the reader slots of @p r's environment, as
 * every process sees them. Cheap; a daemon reports them as metrics.
 * @return CRDT_OK; CRDT_EINVAL; CRDT_EIO.
 */
CRDT_API int crdt_replica_env_stats(crdt_replica *r, crdt_env_stats *out);

/** Hex helpers: @p out must hold 2*len+1 bytes. */
CRDT_API void crdt_hex(char *out, const unsigned char *bin, size_t len);
/** Parse exactly @p len bytes of hex; CRDT_EINVAL on any bad character. */
CRDT_API int crdt_unhex(unsigned char *out, size_t len, const char *hex);

#ifdef __cplusplus
}
#endif

#endif
