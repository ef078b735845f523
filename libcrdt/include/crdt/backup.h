/**
 * @file crdt/backup.h
 * Consistent online backups of a replica, and restore.
 *
 * A backup file is one LMDB snapshot of the replica (a compacting copy
 * taken from a read txn, so writers keep writing meanwhile) behind a
 * small header recording the space, the epoch and the state hash of that
 * snapshot, and followed by a BLAKE2b hash of everything before it.
 * Layout: docs/operations.md.
 */
#ifndef CRDT_BACKUP_H
#define CRDT_BACKUP_H

#include <stdint.h>

#include "crdt/replica.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What a backup file's header records. */
typedef struct {
    unsigned char space_id[CRDT_SPACE_ID_BYTES];
    uint64_t epoch_number;
    unsigned char epoch_id[CRDT_HASH_BYTES];
    unsigned char state_hash[CRDT_HASH_BYTES];
    uint64_t created_ms;
    uint64_t ops_total;      /**< sum of the version vector */
} crdt_backup_info;

/**
 * Write a backup of @p r to @p file atomically (temp file, fsync,
 * rename). @p info_out (may be NULL) gets the recorded header.
 * @return CRDT_OK; CRDT_EIO; CRDT_EFULL; CRDT_EPERM.
 */
CRDT_API CRDT_MUST_CHECK int crdt_backup(crdt_backup_info *info_out, crdt_replica *r,
                const char *file);

/** Read and check a backup file's header and hash (no restore). */
CRDT_API int crdt_backup_check(crdt_backup_info *info_out, const char *file);

/**
 * Restore @p file into the new directory @p dir: refuses an existing
 * replica or a non-empty directory (CRDT_EEXISTS), checks the file hash
 * and then the restored state's hash against the header (CRDT_ECORRUPT).
 * The restored replica is a new incarnation: a new actor id for its
 * future writes, so it never reuses an (actor, seq) the original sent.
 * A reset the original was staging when the backup was taken is
 * dropped (its session is the original's, docs/storage.md 6.4).
 */
CRDT_API CRDT_MUST_CHECK int crdt_restore(crdt_backup_info *info_out, const char *file,
                 const char *dir);

#ifdef __cplusplus
}
#endif

#endif
