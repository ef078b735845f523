/**
 * @file crdt/error.h
 * One error enum shared by libcrdt, libepoch and crdtnet.
 *
 * Every function that can fail returns an int: CRDT_OK (0) on success and
 * a negative crdt_err on failure. Numbers are permanent: new codes are
 * appended, none is ever renumbered or reused.
 */
#ifndef CRDT_ERROR_H
#define CRDT_ERROR_H

#include "crdt/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CRDT_OK = 0,
    CRDT_ERROR = -1,      /**< unexpected failure */
    CRDT_ENOMEM = -2,     /**< out of memory */
    CRDT_EINVAL = -3,     /**< caller broke a documented precondition */
    CRDT_ENOTFOUND = -4,  /**< expected: no such document, field, epoch */
    CRDT_EEXISTS = -5,    /**< expected: already present (idempotent) */
    CRDT_EIO = -6,        /**< I/O error from the OS or LMDB; after a
                               failed write of LMDB's meta page every
                               call on the handle gets it: close the
                               handle and open it again */
    CRDT_ECORRUPT = -7,   /**< stored or supplied data failed a check */
    CRDT_EBADTXN = -8,    /**< txn already failed; only abort is allowed */
    CRDT_EVERSION = -9,   /**< format or protocol version we can't read */
    CRDT_EPROTO = -10,    /**< peer sent a malformed message */
    CRDT_EAUTH = -11,     /**< signature, MAC or membership check failed */
    CRDT_ECLOSED = -12,   /**< the session or handle is closed */
    CRDT_EAGAIN = -13,    /**< nothing ready yet; call again */
    CRDT_EBUSY = -14,     /**< a migration is in progress (or the map must
                               grow while this thread holds a txn of the
                               replica, or every LMDB reader slot is
                               held by a live reader); retry later */
    CRDT_EREJECTED = -15, /**< peer is stale or forked beyond policy */
    CRDT_EFULL = -16,     /**< storage full (disk or map limit) */
    CRDT_ECLOCK = -17,    /**< change stamped beyond the allowed drift */
    CRDT_ECONFLICT = -18, /**< same (actor, seq) with different content */
    CRDT_ETYPE = -19,     /**< field holds another CRDT type */
    CRDT_ELIMIT = -20,    /**< a size or count limit was exceeded (also
                               a txn too large for LMDB's dirty-page
                               limit: MDB_TXN_FULL) */
    CRDT_EPERM = -21      /**< not permitted (read-only, not a replica) */
} crdt_err;

/**
 * A static, human-readable description of @p rc, such as
 * "busy: a migration is in progress". Never NULL; do not free.
 */
CRDT_API const char *crdt_strerror(int rc);

#ifdef __cplusplus
}
#endif

#endif
