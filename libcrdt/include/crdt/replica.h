/**
 * @file crdt/replica.h
 * Opening a space replica: one LMDB environment in one directory.
 *
 * A replica holds one space: its identity (an Ed25519 key pair plus a
 * per-replica incarnation), its op log, its materialized state and its
 * version vector. Several threads and processes may open the same
 * directory at once; LMDB serialises writers and never blocks readers.
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
int crdt_replica_open(crdt_replica **out, const char *path,
                      const crdt_open_options *opts);

/** Close @p r. NULL does nothing. Every txn on it must be finished. */
void crdt_replica_close(crdt_replica *r);

/** The directory the replica was opened from. Valid until close. */
const char *crdt_replica_path(const crdt_replica *r);

/** Copy out the space id (CRDT_SPACE_ID_BYTES). */
void crdt_replica_space_id(const crdt_replica *r, unsigned char *out);

/** Copy out this replica's Ed25519 public key (CRDT_PUBKEY_BYTES). */
void crdt_replica_public_key(const crdt_replica *r, unsigned char *out);

/**
 * Copy out this replica's Ed25519 secret key (CRDT_SECKEY_BYTES), for
 * the handshake. The caller wipes it (sodium_memzero) when done.
 */
void crdt_replica_secret_key(const crdt_replica *r, unsigned char *out);

/** This replica's actor id (public key + incarnation). */
crdt_actor crdt_replica_actor(const crdt_replica *r);

/**
 * Derive an identity seed from a recovery phrase with a memory-hard KDF
 * (Argon2id). The same phrase always gives the same seed.
 * @return CRDT_OK; CRDT_EINVAL (phrase shorter than 8 bytes); CRDT_ENOMEM.
 */
int crdt_seed_from_phrase(unsigned char *seed_out, const char *phrase,
                          size_t len);

/**
 * Write a fresh recovery phrase of @p words words (12..24) from the
 * built-in word list into @p buf, space separated and NUL-terminated.
 * @return CRDT_OK; CRDT_EINVAL (bad count or buffer too small).
 */
int crdt_phrase_generate(char *buf, size_t size, int words);

/**
 * The id of the last committed write txn of the replica's environment,
 * by any process. O(1); a daemon polls it to notice writes made by
 * other processes.
 */
uint64_t crdt_replica_last_txn(crdt_replica *r);

/** Hex helpers: @p out must hold 2*len+1 bytes. */
void crdt_hex(char *out, const unsigned char *bin, size_t len);
/** Parse exactly @p len bytes of hex; CRDT_EINVAL on any bad character. */
int crdt_unhex(unsigned char *out, size_t len, const char *hex);

#ifdef __cplusplus
}
#endif

#endif
