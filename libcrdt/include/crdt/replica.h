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
 * - Growing the map waits until no txn of the process is open. A write
 *   or merge that must grow it while the calling thread still holds a
 *   txn or read it began on the same replica fails with CRDT_EBUSY
 *   (nothing written) instead of waiting for itself; end that read and
 *   retry. A read begun by another thread is waited for, even when
 *   this thread is using it: end it before such a write.
 * - Many threads writing: share ONE handle. Each thread begins its own
 *   txns (crdt_txn_begin, crdt_merge, ...); they take the writer lock
 *   in turn. With @c group_commit their commits also share syncs: a
 *   commit returns once a sync of the data file that began after LMDB
 *   committed it has completed, and one sync covers every commit that
 *   arrived while the one before ran. crdt_txn_write() (crdt/txn.h)
 *   goes further: concurrent calls' changes share one LMDB txn, so the
 *   disk writes the pages they change once per group, not per change.
 *   16 threads of one-op changes get several times one thread's commits
 *   per second (bench: group_commit).
 *
 * Durability: when crdt_txn_commit(), crdt_txn_write(), crdt_merge() or
 * a write crdt_raw commit returns CRDT_OK, the change is on disk: it survives the process
 * being killed and the machine losing power. A commit that has not
 * returned may or may not be there after a crash, never half.
 * - Default options: LMDB's own durable commit (the data pages synced,
 *   then the meta page that names them), inside the writer lock. A
 *   power loss at any moment leaves the last returned commit or a later
 *   one, never a damaged file.
 * - @c group_commit: LMDB runs MDB_NOSYNC and the library syncs
 *   (fdatasync of data.mdb) on the committers' behalf, outside the lock.
 *   What returned is on disk, and a kill -9 at any moment loses nothing
 *   that returned; but between two syncs LMDB's ordering (data pages
 *   before the meta page) is the file system's to keep, so a power loss
 *   DURING a sync may damage the file, and with it commits that had
 *   returned (docs/storage.md section 1). For many writer threads on
 *   storage with a battery-backed cache or a file system that orders
 *   writes; the open check (crdt_replica_check) reports such damage.
 *   CRDT_EIO from a commit whose shared sync failed: the change is
 *   visible to reads but may not be on disk.
 * - @c no_sync: nothing is synced (simulations, setup).
 * - A large crdt_merge() (a batch of 32 KiB or more, on a machine with
 *   more than one CPU) runs a second thread of its own for the length of
 *   the call (every signal blocked in it): it packs the log records and
 *   checks the signatures while the caller's thread applies. The result
 *   is the same as without it.
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

/** What crdt_replica_open() found wrong with the data file, if anything. */
typedef struct {
    /** CRDT_ECORRUPT: what is damaged (one line, no newline); after a
     *  successful open with @c meta_restored: what was restored. */
    char damage[256];
    /** 1: one of LMDB's two meta pages was damaged and was rewritten from
     *  the other; the replica opened at that page's commit, the latest
     *  or the one before it (the latest may be lost). */
    int meta_restored;
    uint64_t meta_txnid; /**< the LMDB txn id it opened at */
} crdt_open_report;

/** Options for crdt_replica_open(); start from CRDT_OPEN_OPTIONS_INIT. */
typedef struct {
    unsigned int version;     /**< 5 (4: without group_commit;
                                   3: without check_pages and report;
                                   2: without the pending bounds either;
                                   1: without map_resident either) */
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
     * since the last time (or since the first write commit of this
     * handle: what was read before any write is not counted), the
     * replica unmaps its map's pages (madvise(MADV_DONTNEED)): they stay
     * in the page cache and fault back in when used. 0 = 32 MiB;
     * SIZE_MAX = never.
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
    /**
     * Before LMDB reads a page, the open checks the data file: its meta
     * pages and length, then the pages of every B-tree (crdt_replica_check),
     * stopping after this many pages. 0 = CRDT_CHECK_PAGES_DEFAULT;
     * UINT64_MAX = every page (reads the whole file).
     */
    uint64_t check_pages;
    /** If not NULL: filled with what was found damaged or restored. */
    crdt_open_report *report;
    /** Commits share syncs (see "Durability" above for what it trades). */
    int group_commit;
} crdt_open_options;

#define CRDT_CHECK_PAGES_DEFAULT 4096 /**< 16 MiB of 4 KiB pages */
#define CRDT_OPEN_OPTIONS_INIT                                            \
    { 5, 0, 0, 0, 0, 0, 0, NULL, NULL, 0, 0, 0, 0, 0, NULL, 0 }

/**
 * Open the replica in directory @p path.
 * @param[out] out  the handle; release it with crdt_replica_close()
 * @param opts      options, or NULL for the defaults (open existing only)
 * @return CRDT_OK; CRDT_ENOTFOUND (no replica there and not @c create);
 *         CRDT_EEXISTS (@c create on a directory holding other files);
 *         CRDT_EVERSION (newer format); CRDT_ECORRUPT (the data file is
 *         damaged: @c opts->report says where); CRDT_EPERM; CRDT_EIO.
 *         A @c create that fails leaves no replica (the next create makes
 *         it), or, when the failure came in the reads after the creation
 *         committed, the whole replica: the next create answers
 *         CRDT_EEXISTS and an open without @c create opens it.
 */
CRDT_API CRDT_MUST_CHECK int crdt_replica_open(crdt_replica **out, const char *path,
                      const crdt_open_options *opts);

/**
 * Check the pages of @p r's data file in a read snapshot, as the open
 * does: every B-tree page's header, pointers, nodes, key order and
 * overflow runs, with pread() (a damaged file never faults). Stops after
 * @p max_pages pages (0 = all). @p why (may be NULL) gets the first
 * damage found, e.g. "damaged page 17 (its nodes, at depth 2)".
 * @return CRDT_OK; CRDT_ECORRUPT; CRDT_ENOMEM; CRDT_EIO.
 */
CRDT_API int crdt_replica_check(crdt_replica *r, uint64_t max_pages,
                                char *why, size_t why_len);

/**
 * Check the records inside the pages, from one read snapshot: what
 * crdt_replica_check() cannot see, a value whose bytes changed inside a
 * sound page. (1) The stored state: its entries must add up to the state
 * hash the store keeps. (2) The active log: every change decodes, is of
 * this space and stored under its own key, each follows the previous
 * change of its actor (its `prev` is that change's hash), the last
 * change of each actor's run has a valid signature and, when the
 * actor's head names that seq, the head's hash. One pass over the state
 * and the log plus one Ed25519 check per actor. @p why (may be NULL)
 * gets the first damage found, e.g. "damaged change at ACTOR up to seq
 * 7 in the log (bad signature)" or "damaged state: ...".
 * @return CRDT_OK; CRDT_ECORRUPT; CRDT_ENOMEM; CRDT_EIO.
 */
CRDT_API int crdt_replica_check_records(crdt_replica *r, char *why,
                                        size_t why_len);

/**
 * Mark @p r as damaged: something read from it (a change or snapshot
 * about to be sent) failed its check. Only a flag in this handle, for a
 * long-lived process: a daemon stops serving a damaged replica. Thread-
 * safe. @return 1 the first time, 0 if it was already marked.
 */
CRDT_API int crdt_replica_mark_damaged(crdt_replica *r);

/** 1 if crdt_replica_mark_damaged() was called on @p r. */
CRDT_API int crdt_replica_damaged(const crdt_replica *r);

/**
 * Whether LMDB gave up on this handle's environment. After a write of
 * its meta page failed (a failing disk; a copy-on-write filesystem out
 * of space), LMDB refuses every later txn of the handle, and every call
 * that reads or writes answers CRDT_EIO; the file still holds every
 * commit before the failed one (no damage). The handle has to be closed
 * and the replica opened again once the disk is sound. Cheap (one read
 * txn begun and ended); any thread.
 * @return 1 if the environment failed, else 0 (also for NULL).
 */
CRDT_API int crdt_replica_failed(crdt_replica *r);

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
 * Create a new, empty replica at @p dir with the key pair of @p from:
 * what rebuilding a damaged replica from a peer starts with, without
 * the secret key ever leaving the library. The new replica is a new
 * incarnation (a fresh random one, as at every creation), so it never
 * reuses an (actor, seq) that @p from issued.
 * @param o  open options for the new replica (NULL: defaults); @c create
 *           is implied; @c seed must be NULL (the key pair is @p from's);
 *           @c space_id NULL means @p from's space.
 * @param[out] out  the open new replica; close with crdt_replica_close()
 * @return CRDT_OK; CRDT_EINVAL (a NULL argument, a seed in @p o, or
 *         @c read_only in @p o); CRDT_EEXISTS (@p dir holds a replica);
 *         what crdt_replica_open() returns.
 */
CRDT_API CRDT_MUST_CHECK int crdt_replica_create_like(crdt_replica **out,
                                                      const crdt_replica *from,
                                                      const char *dir,
                                                      const crdt_open_options *o);

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

/**
 * Clear the reader slots of processes that died with a read txn open.
 * Opening a replica does it, and so does every write commit, at most
 * once a second: a long-lived writer keeps them cleared. A slot left
 * by a dead reader pins the snapshot it read, so the file grows until
 * it is cleared. @p dead_out (may be NULL): how many were cleared.
 * @return CRDT_OK; CRDT_EINVAL; CRDT_EIO.
 */
CRDT_API int crdt_replica_reader_check(crdt_replica *r, int *dead_out);

/** Hex helpers: @p out must hold 2*len+1 bytes. */
CRDT_API void crdt_hex(char *out, const unsigned char *bin, size_t len);
/** Parse exactly @p len bytes of hex; CRDT_EINVAL on any bad character. */
CRDT_API int crdt_unhex(unsigned char *out, size_t len, const char *hex);

#ifdef __cplusplus
}
#endif

#endif
