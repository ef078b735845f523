/*
 * envstat.c: crdt_replica_env_stats(): how full the LMDB map is and how
 * many reader slots are taken, for a daemon's metrics.
 */
#include <errno.h>
#include <lmdb.h>
#include <string.h>

#include "crdt/replica.h"
#include "internal.h"

/* mdb_reader_list() prints a header line, then one line per slot held
 * (or one "(no active readers)" line): count the slot lines. */
static int
count_reader(const char *msg, void *ctx)
{
    unsigned *n = ctx;

    if (strstr(msg, "pid") == NULL && strstr(msg, "no active") == NULL)
        (*n)++;
    return 0;
}

int
crdt_replica_env_stats(crdt_replica *r, crdt_env_stats *out)
{
    MDB_envinfo info;
    MDB_stat st;
    unsigned readers = 0;
    int rc;

    if (r == NULL || out == NULL)
        return CRDT_EINVAL;
    memset(out, 0, sizeof *out);
    pthread_rwlock_rdlock(&r->grow_lock); /* the map does not move */
    rc = mdb_env_info(r->env, &info);
    if (rc == 0)
        rc = mdb_env_stat(r->env, &st);
    if (rc == 0 && mdb_reader_list(r->env, count_reader, &readers) < 0)
        rc = EIO;
    pthread_rwlock_unlock(&r->grow_lock);
    if (rc != 0)
        return CRDT_EIO;
    out->map_size = (uint64_t)info.me_mapsize;
    out->map_used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    out->readers_max = info.me_maxreaders;
    out->readers_used = readers;
    return CRDT_OK;
}
