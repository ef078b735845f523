/*
 * store_lmdb.c: the LMDB environment of a replica: open, the named
 * databases, map growth, error translation, meta records.
 *
 * Invariants:
 *  (1) Opening never creates a store unless asked to; a directory without
 *      our format record is refused, never silently re-initialised.
 *  (2) The map grows only while no txn of this process is open (the
 *      grow lock), and other processes pick up the new size through
 *      MDB_MAP_RESIZED.
 *  (3) MDB_* codes and errno never leave this file untranslated.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define DEFAULT_MAP (1024ull * 1024 * 1024)

static const char *const DB_NAMES[CRDT_DB__COUNT] = {
    "meta", "log", "heads", "pending", "state0", "state1",
    "epochs", "lenses", "archive", "quarantine", "staging",
};

int
crdt__mdb_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS: return CRDT_OK;
    case MDB_NOTFOUND: return CRDT_ENOTFOUND;
    case MDB_KEYEXIST: return CRDT_EEXISTS;
    case MDB_MAP_FULL: return CRDT__EMAPFULL;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID:
    case MDB_PANIC:
        return CRDT_ECORRUPT;
    case MDB_VERSION_MISMATCH: return CRDT_EVERSION;
    case MDB_BAD_TXN: return CRDT_EBADTXN;
    case ENOSPC: case EDQUOT: return CRDT_EFULL;
    case EACCES: case EROFS: case EPERM: return CRDT_EPERM;
    case ENOMEM: return CRDT_ENOMEM;
    case ENOENT: return CRDT_ENOTFOUND;
    default: return CRDT_EIO;
    }
}

static int
dir_state(const char *path, int *has_data)
{
    struct stat st;
    char buf[4096];

    *has_data = 0;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? CRDT_ENOTFOUND : crdt__mdb_err(errno);
    if (!S_ISDIR(st.st_mode))
        return CRDT_EPERM;
    if ((size_t)snprintf(buf, sizeof buf, "%s/data.mdb", path) >= sizeof buf)
        return CRDT_EINVAL;
    *has_data = access(buf, F_OK) == 0;
    return CRDT_OK;
}

int
crdt__store_open(crdt_replica *r, const char *path,
                 const crdt_open_options *o, int *created)
{
    unsigned int flags = MDB_NOTLS;
    MDB_txn *txn = NULL;
    MDB_val v;
    int has_data, rc;
    size_t map = o->map_size ? o->map_size : DEFAULT_MAP;

    *created = 0;
    rc = dir_state(path, &has_data);
    if (rc == CRDT_ENOTFOUND && o->create) {
        if (mkdir(path, 0700) != 0)
            return crdt__mdb_err(errno);
        rc = CRDT_OK;
    }
    if (rc < 0)
        return rc;
    if (!has_data && !o->create)
        return CRDT_ENOTFOUND; /* keeps (1) */
    if (has_data && o->create)
        return CRDT_EEXISTS;
    if (o->max_map_size && map > o->max_map_size)
        map = o->max_map_size;

    if ((rc = mdb_env_create(&r->env)) != 0)
        return crdt__mdb_err(rc);
    mdb_env_set_maxdbs(r->env, CRDT_DB__COUNT + 2);
    mdb_env_set_maxreaders(r->env, 510);
    mdb_env_set_mapsize(r->env, map);
    if (o->read_only)
        flags |= MDB_RDONLY;
    if (o->no_sync)
        flags |= MDB_NOSYNC;
    rc = mdb_env_open(r->env, path, flags, 0600);
    if (rc != 0) {
        rc = crdt__mdb_err(rc);
        goto fail;
    }
    { int dead; mdb_reader_check(r->env, &dead); }

    if ((rc = crdt__mdb_err(mdb_txn_begin(r->env, NULL,
                                          o->read_only ? MDB_RDONLY : 0,
                                          &txn))) < 0)
        goto fail;
    for (int i = 0; i < CRDT_DB__COUNT; i++) {
        unsigned int f = o->read_only ? 0 : MDB_CREATE;
        rc = mdb_dbi_open(txn, DB_NAMES[i], f, &r->dbi[i]);
        if (rc != 0) {
            rc = rc == MDB_NOTFOUND ? CRDT_ECORRUPT : crdt__mdb_err(rc);
            goto fail;
        }
    }
    rc = mdb_get(txn, r->dbi[CRDT_DB_META],
                 &(MDB_val){ 6, (void *)"format" }, &v);
    if (rc == MDB_NOTFOUND && !has_data) {
        *created = 1; /* the caller writes the meta records */
    } else if (rc != 0) {
        rc = rc == MDB_NOTFOUND ? CRDT_ECORRUPT : crdt__mdb_err(rc);
        goto fail;
    } else if (v.mv_size != 4 ||
               memcmp(v.mv_data, "\0\0\0", 3) != 0) {
        rc = CRDT_ECORRUPT;
        goto fail;
    } else if (((unsigned char *)v.mv_data)[3] != CRDT__FORMAT) {
        rc = CRDT_EVERSION;
        goto fail;
    }
    if (*created) {
        unsigned char fmt[4] = { 0, 0, 0, CRDT__FORMAT };
        rc = crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_META],
                                   &(MDB_val){ 6, (void *)"format" },
                                   &(MDB_val){ 4, fmt }, 0));
        if (rc < 0)
            goto fail;
        rc = crdt__mdb_err(mdb_txn_commit(txn));
    } else {
        rc = crdt__mdb_err(mdb_txn_commit(txn));
    }
    txn = NULL;
    if (rc < 0)
        goto fail;
    return CRDT_OK;

fail:
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(r->env);
    r->env = NULL;
    return rc;
}

void
crdt__store_close(crdt_replica *r)
{
    if (r->env)
        mdb_env_close(r->env);
    r->env = NULL;
}

int
crdt__txn_begin(crdt_replica *r, int write, MDB_txn **out)
{
    int rc;

    if (write && r->read_only)
        return CRDT_EPERM;
    for (int tries = 0; tries < 8; tries++) {
        pthread_rwlock_rdlock(&r->grow_lock);
        rc = mdb_txn_begin(r->env, NULL, write ? 0 : MDB_RDONLY, out);
        if (rc == 0)
            return CRDT_OK;
        pthread_rwlock_unlock(&r->grow_lock);
        if (rc != MDB_MAP_RESIZED)
            return crdt__mdb_err(rc);
        /* another process grew the map: adopt its size (keeps (2)) */
        pthread_rwlock_wrlock(&r->grow_lock);
        mdb_env_set_mapsize(r->env, 0);
        pthread_rwlock_unlock(&r->grow_lock);
    }
    return CRDT_EIO;
}

int
crdt__txn_end(crdt_replica *r, MDB_txn *txn, int commit)
{
    int rc = CRDT_OK;

    if (txn == NULL)
        return CRDT_OK;
    if (commit)
        rc = crdt__mdb_err(mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&r->grow_lock);
    return rc;
}

int
crdt__store_grow(crdt_replica *r)
{
    MDB_envinfo info;
    size_t next;
    int rc;

    pthread_rwlock_wrlock(&r->grow_lock);
    mdb_env_info(r->env, &info);
    next = info.me_mapsize * 2;
    if (r->max_map_size && next > r->max_map_size)
        next = r->max_map_size;
    if (next <= info.me_mapsize) {
        pthread_rwlock_unlock(&r->grow_lock);
        return CRDT_EFULL;
    }
    rc = crdt__mdb_err(mdb_env_set_mapsize(r->env, next));
    pthread_rwlock_unlock(&r->grow_lock);
    return rc;
}

int
crdt__meta_get(MDB_txn *txn, crdt_replica *r, const char *key, MDB_val *out)
{
    MDB_val k = { strlen(key), (void *)key };

    return crdt__mdb_err(mdb_get(txn, r->dbi[CRDT_DB_META], &k, out));
}

int
crdt__meta_put(MDB_txn *txn, crdt_replica *r, const char *key,
               const void *val, size_t len)
{
    MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };

    return crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_META], &k, &v, 0));
}

uint64_t
crdt__meta_u64(MDB_txn *txn, crdt_replica *r, const char *key)
{
    MDB_val v;

    if (crdt__meta_get(txn, r, key, &v) < 0 || v.mv_size != 8)
        return 0;
    return crdt__rd64(v.mv_data);
}

int
crdt__meta_put_u64(MDB_txn *txn, crdt_replica *r, const char *key,
                   uint64_t v)
{
    unsigned char b[8];

    crdt__be64(b, v);
    return crdt__meta_put(txn, r, key, b, 8);
}

int
crdt__state_slot(MDB_txn *txn, crdt_replica *r)
{
    return crdt__meta_u64(txn, r, "slot") == 1 ? 1 : 0;
}

int
crdt__marker_present(MDB_txn *txn, crdt_replica *r)
{
    MDB_val v;

    return crdt__meta_get(txn, r, "upgrade", &v) == CRDT_OK;
}
