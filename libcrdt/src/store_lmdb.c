/*
 * store_lmdb.c: the LMDB environment of a replica: open, the named
 * databases, map growth, error translation, meta records.
 *
 * Invariants:
 *  (1) Opening never creates a store unless asked to; a directory without
 *      our format record is refused, never silently re-initialised. The
 *      one exception is a data file that no durable commit reached, a
 *      creation a system crash cut short (store_create.c): it is no
 *      replica yet, and only a create replaces it.
 *  (2) The map grows only while no txn of this process is open (the
 *      grow lock), and other processes pick up the new size through
 *      MDB_MAP_RESIZED.
 *  (3) MDB_* codes and errno never leave this file untranslated.
 *  (4) After a write commit, the pages of the map this process keeps
 *      mapped are dropped once file-backed RSS has grown by more than
 *      the resident-map budget since the last drop, or since the first
 *      write commit of this handle (Linux; see map_trim()). Dropping
 *      never changes what any txn reads.
 *  (5) Group commit (crdt_open_options.group_commit): a write commit
 *      returns CRDT_OK only after an mdb_env_sync() that began after
 *      LMDB's commit of it returned has succeeded (group_sync()). Many
 *      committers share one sync.
 *  (6) Creating a replica commits its format and identity records
 *      without a sync; the next commit that LMDB (or group_sync()) syncs
 *      syncs them too, as it syncs the whole file before its meta page.
 *      Until then a system crash may leave a file that (1)'s exception
 *      covers; a close with no such commit since syncs the creation.
 *      A no_sync open never syncs, the creation neither.
 *  (7) A thread never waits for its own txns: when the map must grow (or
 *      adopt another process's growth) while the calling thread holds a
 *      txn of the same replica, the call fails with CRDT_EBUSY, having
 *      written nothing (the open-txn table, txns_held_here()).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "internal.h"

#define DEFAULT_MAP (1024ull * 1024 * 1024)
#define DEFAULT_RESIDENT ((size_t)32 * 1024 * 1024)

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
    /* LMDB refuses every txn of an environment whose meta page it could
     * not write: an I/O error, the file as of the last commit is sound
     * (tests/libcrdt/test_writefail.c) */
    case MDB_PANIC: return CRDT_EIO;
    case MDB_CORRUPTED: case MDB_PAGE_NOTFOUND: case MDB_INVALID:
    /* a named database's record in the catalog with flags we never set:
     * the catalog page is damaged */
    case MDB_INCOMPATIBLE:
        return CRDT_ECORRUPT;
    case MDB_VERSION_MISMATCH: return CRDT_EVERSION;
    case MDB_BAD_TXN: return CRDT_EBADTXN;
    /* every reader slot is held, by live readers (crdt__txn_begin()
     * sweeps dead ones first): try later */
    case MDB_READERS_FULL: return CRDT_EBUSY;
    /* more dirty pages than one txn may hold */
    case MDB_TXN_FULL: return CRDT_ELIMIT;
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

/* ---- the resident-map budget (keeps (4)) ----
 *
 * LMDB maps data.mdb PROT_READ and MAP_SHARED (we never set
 * MDB_WRITEMAP; writes go through pwrite()). A page stays mapped once a
 * txn has touched it, and the kernel maps the cached pages around each
 * fault too (fault-around), so over a long history nearly the whole file
 * ends up counted in RSS although it is clean page cache.
 *
 * Checking: after each successful write commit, read the process's
 * file-backed RSS from /proc/self/statm (an O(1) counter, kept open: one
 * pread() a check, file_rss()).
 * When it exceeds the RSS right after the last drop by more than the
 * budget, madvise(MADV_DONTNEED) the whole map and take a new base. The
 * first base is the RSS after the handle's first write commit, not at
 * open: what a process read before it ever wrote stays mapped. A sync
 * reads the heads (10,000 scattered leaf pages, each fault mapping the
 * 64 KiB around it: tens of MB at a million ops), commits what it
 * received, then reads the heads again for FIN; a base taken at open
 * dropped them at that one commit, and each of those faults came back
 * (about 15 us apiece on a VM). The budget bounds what write commits
 * add, which is what grows without end in a long merge. The
 * measure is process-wide, so other file mappings growing only make a
 * drop come earlier; the base follows RSS down when it shrinks (another
 * replica's drop, reclaim). A single committer checks at a time; one
 * that finds the lock taken skips, the next commit checks again.
 *
 * Why the drop is safe: for a shared file mapping MADV_DONTNEED removes
 * this process's page-table entries only; "subsequent accesses ... will
 * result in repopulating the memory contents from the up-to-date
 * contents of the underlying mapped file" (madvise(2)). The pages are
 * clean (nothing writes through the map), so nothing is lost, and they
 * usually stay in the page cache, so the refault is a minor fault. A
 * read txn in another thread holding pointers into the map keeps
 * working: its snapshot's pages are not rewritten while it lives (LMDB's
 * reader table), so a refault returns the same bytes it saw before.
 * Only anonymous or private memory would lose data under MADV_DONTNEED.
 * The map must not move while we use its address: we hold the grow
 * lock shared (crdt__txn_end), and mdb_env_set_mapsize() is only called
 * with it held exclusively, which also forgets the address.
 *
 * Finding the map: LMDB 0.9 does not expose its address (me_mapaddr is
 * set only with MDB_FIXEDMAP). A value read in a read txn points into
 * the map, so the /proc/self/maps line containing that pointer is the
 * map; it must be a shared, read-only mapping at file offset 0 whose
 * length is the map size. Anything else and the budget is switched off
 * for this handle (a no-op, never an error). Device and inode numbers
 * are not compared: overlayfs and btrfs report other ones in maps than
 * fstat() does.
 */
#ifdef __linux__
/*
 * The replica keeps /proc/self/statm open (opened at the first check,
 * closed with the handle) and reads it with pread(): an open, a path walk
 * and a close per write commit were about a tenth of a one-op commit's
 * CPU. /proc/self resolves to this process when opened, so a forked
 * child would read its parent's figures through it; a child must not use
 * its parent's handle anyway (LMDB's rule, crdt/replica.h).
 */
static int
file_rss(crdt_replica *r, size_t *out)
{
    char buf[160];
    unsigned long long size, res, shared;
    ssize_t n;
    long page = sysconf(_SC_PAGESIZE);

    if (r->map_statm_fd < 0)
        r->map_statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (r->map_statm_fd < 0)
        return -1;
    n = pread(r->map_statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0) { /* closed behind our back (EBADF): open it again next
                   * time; not closed here, the number may be another's */
        r->map_statm_fd = -1;
        return -1;
    }
    if (page <= 0)
        return -1;
    buf[n] = '\0';
    if (sscanf(buf, "%llu %llu %llu", &size, &res, &shared) != 3)
        return -1;
    *out = (size_t)(shared * (unsigned long long)page);
    return 0;
}

/* 0 found; -1 not now (try again later); -2 never (switch off). */
static int
map_find(crdt_replica *r)
{
    MDB_txn *txn;
    MDB_val v;
    MDB_envinfo info;
    uintptr_t p, lo, hi;
    unsigned long long off;
    char line[256], perms[8];
    int rc, at_start = 1, found = 0;
    long page = sysconf(_SC_PAGESIZE);
    FILE *f;

    if (mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn) != 0)
        return -1; /* e.g. MDB_MAP_RESIZED: the next begin adopts it */
    rc = mdb_get(txn, r->dbi[CRDT_DB_META],
                 &(MDB_val){ 6, (void *)"format" }, &v);
    mdb_env_info(r->env, &info);
    mdb_txn_abort(txn);
    if (rc != 0 || page <= 0)
        return -2;
    p = (uintptr_t)v.mv_data; /* only compared, never dereferenced */

    f = fopen("/proc/self/maps", "re");
    if (f == NULL)
        return -2;
    while (!found && fgets(line, sizeof line, f) != NULL) {
        int whole = strchr(line, '\n') != NULL;
        if (at_start &&
            sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx", &lo, &hi,
                   perms, &off) == 4 &&
            lo <= p && p < hi)
            found = 1;
        at_start = whole; /* a long line's tail is not a new line */
    }
    fclose(f);
    if (!found || off != 0 || strcmp(perms, "r--s") != 0 ||
        hi - lo != (info.me_mapsize + (size_t)page - 1) / (size_t)page *
                       (size_t)page)
        return -2;
    r->map_addr = (void *)lo;
    r->map_len = hi - lo;
    r->map_size = info.me_mapsize;
    return 0;
}
#endif

/* Called by crdt__txn_end() after a successful write commit, with the
 * grow lock still held shared. */
static void
map_trim(crdt_replica *r)
{
#ifdef __linux__
    MDB_envinfo info;
    size_t rss;
    int rc;

    if (r->map_budget == SIZE_MAX)
        return;
    if (pthread_mutex_trylock(&r->map_lock) != 0)
        return; /* another committer is checking */
    if (r->map_off || file_rss(r, &rss) < 0)
        goto done;
    if (!r->map_based) { /* the first write commit: the base, no drop */
        r->map_rss_base = rss;
        r->map_based = 1;
        goto done;
    }
    if (rss < r->map_rss_base)
        r->map_rss_base = rss;
    if (rss - r->map_rss_base <= r->map_budget)
        goto done;
    mdb_env_info(r->env, &info);
    if (r->map_addr != NULL && info.me_mapsize != r->map_size)
        r->map_addr = NULL; /* resized behind our back: look again */
    if (r->map_addr == NULL) {
        rc = map_find(r);
        if (rc == -2)
            r->map_off = 1;
        if (rc < 0)
            goto done;
    }
    if (madvise(r->map_addr, r->map_len, MADV_DONTNEED) != 0) {
        r->map_off = 1; /* e.g. EINVAL on mlock()ed memory */
        goto done;
    }
    if (file_rss(r, &rss) == 0)
        r->map_rss_base = rss;
done:
    pthread_mutex_unlock(&r->map_lock);
#else
    (void)r;
#endif
}

static void
map_budget_init(crdt_replica *r, const crdt_open_options *o)
{
    size_t want = o->version >= 2 ? o->map_resident : 0;

    r->map_budget = want ? want : DEFAULT_RESIDENT;
    r->map_addr = NULL;
    r->map_rss_base = 0;
    r->map_based = 0; /* taken at the first write commit (map_trim()) */
#ifdef __linux__
    /* a read-only handle never commits: no check, no descriptor kept */
    if (r->read_only)
        r->map_off = 1;
    else if (r->map_budget != SIZE_MAX &&
             file_rss(r, &r->map_rss_base) < 0)
        r->map_off = 1;
#endif
}

/*
 * Store format 1 -> 2: only the state hash changed (state.c), so the two
 * slots' hashes are recomputed and the format bumped, in the txn that
 * opens the replica: a crash leaves format 1, and the next open retries.
 */
static int
upgrade_from_1(MDB_txn *txn, crdt_replica *r)
{
    unsigned char h[32], fmt[4] = { 0, 0, 0, CRDT__STORE_FORMAT };
    int rc = CRDT_OK;

    for (int slot = 0; slot < 2 && rc == CRDT_OK; slot++) {
        rc = crdt__state_rehash(txn, r->dbi[CRDT_DB_STATE0 + slot], 2, h);
        if (rc == CRDT_OK)
            rc = crdt__meta_put(txn, r, slot ? "hash1" : "hash0", h, 32);
    }
    if (rc == CRDT_OK)
        rc = crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_META],
                                   &(MDB_val){ 6, (void *)"format" },
                                   &(MDB_val){ 4, fmt }, 0));
    return rc;
}

/*
 * Store format 2, 3 or 4 -> 5: format 3 may hold run records in the log
 * (several changes of one actor in one record, logrec.c), which a
 * format-2 build would take for damage; format 4 writes change-feed
 * records of version 2 (feed.c), which a format-3 build would take for
 * damage; format 5 may keep a collection's lens defaults once (state
 * entries DEFAULTS and NO_DEFAULTS, state_entry.c), which a format-4
 * build would not show. Every record of formats 2 to 4 is a format-5
 * record, so only the number changes, in the txn that opens the replica
 * for writing (a read-only open reads them as they are). An older build
 * then answers CRDT_EVERSION.
 */
static int
upgraded_by_number(const MDB_val *format)
{
    unsigned f = ((const unsigned char *)format->mv_data)[3];

    return f == 2 || f == 3 || f == 4;
}

static int
upgrade_number(MDB_txn *txn, crdt_replica *r)
{
    unsigned char fmt[4] = { 0, 0, 0, CRDT__STORE_FORMAT };

    return crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_META],
                                 &(MDB_val){ 6, (void *)"format" },
                                 &(MDB_val){ 4, fmt }, 0));
}

/* ---- group commit (keeps (5)) ----
 *
 * A durable LMDB commit syncs twice (the data pages, then the meta page
 * through its O_DSYNC descriptor), inside the writer lock: committers
 * queue for the disk one by one. With group_commit the environment is
 * opened MDB_NOSYNC instead and the sync is shared (what that trades
 * under power loss: crdt/replica.h, "Durability"). After LMDB's commit returns (the
 * txn's pages and meta page are in the page cache), the committer takes
 * a ticket, then waits until the on-disk mark passes it. If no sync is
 * running it becomes the leader: it notes the last ticket handed out
 * (every commit up to it has returned from LMDB, so one fdatasync of
 * the data file covers them all, meta pages included), syncs without
 * any lock, and moves the mark. Committers arriving during a sync wait
 * for it to end and the next leader covers them together: under load
 * one fdatasync covers as many commits as arrived during the last one.
 * A group of crdt_txn_write() changes (txn_group.c) takes one ticket
 * for all of them as its LMDB commit returns, and its callers wait on
 * it; a ticket not yet synced also tells the next group's leader that a
 * sync is due (crdt__store_syncing()).
 *
 * A failed sync (EIO) fails every commit it covered: they are visible
 * but maybe not on disk, and a second fsync may falsely succeed after
 * the kernel dropped the dirty pages, so they are not retried.
 */
static uint64_t
sync_ticket(crdt_replica *r)
{
    uint64_t mine;

    pthread_mutex_lock(&r->sync_lock);
    mine = ++r->sync_done;
    pthread_mutex_unlock(&r->sync_lock);
    return mine;
}

/* Wait until ticket @p mine is synced, leading a sync if none runs. */
static int
sync_wait(crdt_replica *r, uint64_t mine)
{
    uint64_t upto;
    int rc = CRDT_OK;

    pthread_mutex_lock(&r->sync_lock);
    while (r->sync_synced < mine && r->sync_failed < mine) {
        if (r->sync_running) {
            pthread_cond_wait(&r->sync_cond, &r->sync_lock);
            continue;
        }
        r->sync_running = 1;
        upto = r->sync_done;
        r->sync_count++;
        pthread_mutex_unlock(&r->sync_lock);
        rc = mdb_env_sync(r->env, 1);
        pthread_mutex_lock(&r->sync_lock);
        r->sync_running = 0;
        if (rc == 0 && upto > r->sync_synced)
            r->sync_synced = upto;
        else if (rc != 0 && upto > r->sync_failed)
            r->sync_failed = upto;
        pthread_cond_broadcast(&r->sync_cond);
        /* a group waiting for this sync to end commits now
         * (txn_group.c (6)); never with sync_lock held */
        pthread_mutex_unlock(&r->sync_lock);
        pthread_mutex_lock(&r->wq_lock);
        pthread_cond_signal(&r->wq_lead_cond);
        pthread_mutex_unlock(&r->wq_lock);
        pthread_mutex_lock(&r->sync_lock);
    }
    /* a failed sync that covered this commit wins: a success after it
     * may have found the pages already dropped (and one before it,
     * reported late, costs a false alarm, never a lost commit) */
    rc = r->sync_failed < mine && r->sync_synced >= mine ? CRDT_OK
                                                         : CRDT_EIO;
    pthread_mutex_unlock(&r->sync_lock);
    return rc;
}

static int
group_sync(crdt_replica *r)
{
    return sync_wait(r, sync_ticket(r));
}

int
crdt__store_syncing(crdt_replica *r)
{
    int running;

    if (!r->group_sync)
        return 0;
    pthread_mutex_lock(&r->sync_lock);
    /* or about to: a commit took a ticket that no sync covered yet */
    running = r->sync_running || (r->sync_done > r->sync_synced &&
                                  r->sync_done > r->sync_failed);
    pthread_mutex_unlock(&r->sync_lock);
    return running;
}

uint64_t
crdt__store_syncs(crdt_replica *r)
{
    uint64_t n;

    pthread_mutex_lock(&r->sync_lock);
    n = r->sync_count;
    pthread_mutex_unlock(&r->sync_lock);
    return n;
}

/* open_dbs(): it cannot go on without a write txn */
#define NEED_WRITE 100

/*
 * Begin a txn (a write txn if @p write) and open the named databases and
 * check the format record in it. Returns, with *@p out still open:
 * 0 current format (or format 2 in a read-only open); 1 no format
 * record; 2 format 1, 3 format 2 (a write txn only). Returns NEED_WRITE
 * (txn ended) if a read txn found a database missing or format 1 or 2 in
 * a writable open; a crdt_err (txn ended) otherwise.
 */
static int
open_dbs(crdt_replica *r, const crdt_open_options *o, int write,
         MDB_txn **out)
{
    MDB_txn *txn;
    MDB_val v;
    int rc;

    if ((rc = crdt__mdb_err(mdb_txn_begin(r->env, NULL,
                                          write ? 0 : MDB_RDONLY, &txn))) < 0)
        return rc;
    for (int i = 0; i < CRDT_DB__COUNT; i++) {
        rc = mdb_dbi_open(txn, DB_NAMES[i], write ? MDB_CREATE : 0,
                          &r->dbi[i]);
        if (rc == MDB_NOTFOUND && !write && !o->read_only) {
            rc = NEED_WRITE;
            goto fail;
        }
        if (rc != 0) {
            rc = rc == MDB_NOTFOUND ? CRDT_ECORRUPT : crdt__mdb_err(rc);
            goto fail;
        }
    }
    rc = crdt__feed_open(r, txn, write);
    if (rc == CRDT_ENOTFOUND && !o->read_only) {
        rc = NEED_WRITE; /* a store from before the feed: create it */
        goto fail;
    }
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        goto fail;
    rc = mdb_get(txn, r->dbi[CRDT_DB_META],
                 &(MDB_val){ 6, (void *)"format" }, &v);
    if (rc == MDB_NOTFOUND) {
        rc = write ? 1 : CRDT_ECORRUPT;
        if (!write)
            goto fail;
    } else if (rc != 0) {
        rc = crdt__mdb_err(rc);
        goto fail;
    } else if (v.mv_size != 4 || memcmp(v.mv_data, "\0\0\0", 3) != 0) {
        rc = CRDT_ECORRUPT;
        goto fail;
    } else if (((unsigned char *)v.mv_data)[3] == 1 && !o->read_only) {
        rc = write ? 2 : NEED_WRITE;
        if (!write)
            goto fail;
    } else if (upgraded_by_number(&v) && o->read_only) {
        rc = 0; /* format 5 reads every record formats 2 to 4 wrote */
    } else if (upgraded_by_number(&v)) {
        rc = write ? 3 : NEED_WRITE;
        if (!write)
            goto fail;
    } else if (((unsigned char *)v.mv_data)[3] != CRDT__STORE_FORMAT) {
        rc = CRDT_EVERSION; /* newer, or format 1 opened read-only */
        goto fail;
    } else {
        rc = 0;
    }
    *out = txn;
    return rc;
fail:
    mdb_txn_abort(txn);
    return rc;
}

int
crdt__store_open(crdt_replica *r, const char *path,
                 const crdt_open_options *o, int *created)
{
    unsigned int flags = MDB_NOTLS;
    MDB_txn *txn = NULL;
    int has_data, rc, wrote = 0, defer;
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
    /* a creation a system crash cut short is not a replica yet
     * (store_create.c): a create starts afresh */
    if (has_data && (rc = crdt__store_unborn(path)) != 0) {
        if (rc < 0)
            return rc;
        if (!o->create)
            return CRDT_ENOTFOUND;
        if ((rc = crdt__store_discard_unborn(path)) < 0)
            return rc;
        has_data = 0;
    }
    if (!has_data && !o->create)
        return CRDT_ENOTFOUND; /* keeps (1) */
    if (has_data && o->create)
        return CRDT_EEXISTS;
    if (o->max_map_size && map > o->max_map_size)
        map = o->max_map_size;

    if (o->version >= 4 && o->report != NULL)
        memset(o->report, 0, sizeof *o->report);
    /* pagecheck.c (1): no LMDB read of a truncated file or a damaged
     * meta page; any open restores one damaged meta page (LMDB's own
     * redundancy, not data: as a read-only open that finds a reader slot
     * of a dead process clears it) */
    if (has_data &&
        (rc = crdt__store_precheck(path, 1,
                                   o->version >= 4 ? o->report : NULL)) < 0)
        return rc;

    if ((rc = mdb_env_create(&r->env)) != 0)
        return crdt__mdb_err(rc);
    mdb_env_set_maxdbs(r->env, CRDT_DB__COUNT + 4);
    mdb_env_set_maxreaders(r->env, 510);
    mdb_env_set_mapsize(r->env, map);
    if (o->read_only)
        flags |= MDB_RDONLY;
    /* no_sync: never synced; group_commit: synced by group_sync();
     * otherwise LMDB's own durable commit */
    r->group_sync = !o->read_only && !o->no_sync && o->version >= 5 &&
                    o->group_commit;
    if (!o->read_only && (o->no_sync || r->group_sync))
        flags |= MDB_NOSYNC;
    rc = mdb_env_open(r->env, path, flags, 0600);
    if (rc != 0) {
        rc = crdt__mdb_err(rc);
        goto fail;
    }
    { int dead; mdb_reader_check(r->env, &dead); }
    /* pagecheck.c (2): the pages, before LMDB's own reads (the databases'
     * names below) can fault on a damaged one */
    if (has_data) {
        uint64_t max = o->version >= 4 && o->check_pages
                           ? o->check_pages : CRDT_CHECK_PAGES_DEFAULT;
        crdt_open_report *rep = o->version >= 4 ? o->report : NULL;
        rc = crdt__store_walk(r, max, rep ? rep->damage : NULL,
                              rep ? sizeof rep->damage : 0);
        if (rc < 0)
            goto fail;
    }

    /* A writable open of a store that needs nothing written opens its
     * databases in a read txn: a write txn would wait on the writer lock,
     * which a migration holds for its whole big txn, and a writer must
     * learn of the migration at once (crdt__wctx_begin). */
    if (has_data && !o->read_only) {
        rc = open_dbs(r, o, 0, &txn);
        if (rc != NEED_WRITE)
            goto opened;
    }
    rc = open_dbs(r, o, !o->read_only, &txn);
    wrote = !o->read_only;
opened:
    if (rc < 0)
        goto fail;
    *created = rc == 1 && !has_data;
    if (*created) {
        unsigned char fmt[4] = { 0, 0, 0, CRDT__STORE_FORMAT };
        rc = crdt__mdb_err(mdb_put(txn, r->dbi[CRDT_DB_META],
                                   &(MDB_val){ 6, (void *)"format" },
                                   &(MDB_val){ 4, fmt }, 0));
        /* the identity in the same txn: one commit creates the whole
         * replica, synced by the next durable one or the close (6) */
        if (rc == CRDT_OK)
            rc = crdt__genesis_put(txn, r, o);
        if (rc < 0)
            goto fail;
    } else if (rc == 1) {
        rc = CRDT_ECORRUPT; /* keeps (1): data but no format record */
        goto fail;
    } else if (rc == 2 && (rc = upgrade_from_1(txn, r)) < 0) {
        goto fail;
    } else if (rc == 3 && (rc = upgrade_number(txn, r)) < 0) {
        goto fail;
    }
    /* (6): a creation commits without a sync of its own */
    defer = *created && !o->no_sync;
    if (defer && !r->group_sync)
        mdb_env_set_flags(r->env, MDB_NOSYNC, 1);
    rc = crdt__mdb_err(mdb_txn_commit(txn));
    txn = NULL;
    if (defer && !r->group_sync)
        mdb_env_set_flags(r->env, MDB_NOSYNC, 0);
    if (rc == CRDT_OK && r->group_sync && wrote && !defer)
        rc = group_sync(r); /* a read txn wrote nothing to sync */
    if (rc < 0)
        goto fail;
    __atomic_store_n(&r->create_unsynced, defer, __ATOMIC_RELAXED);
    map_budget_init(r, o);
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
    /* (6): no durable commit since the creation: sync it now */
    if (r->env && __atomic_load_n(&r->create_unsynced, __ATOMIC_RELAXED))
        mdb_env_sync(r->env, 1);
    if (r->env)
        mdb_env_close(r->env);
    r->env = NULL;
    if (r->map_statm_fd >= 0)
        close(r->map_statm_fd);
    r->map_statm_fd = -1;
}

/*
 * (7) The open txns of a replica and the thread that began each. Growing
 * the map (or adopting another process's growth) waits until no txn of
 * this process is open, so a thread that still holds a txn of the same
 * replica would wait for itself, forever: a sync session whose export
 * read txn stays open between messages merging what its peer sent, or a
 * daemon's loop turning one connection's merge while another's export is
 * open. Such a thread gets CRDT_EBUSY instead (nothing was written; retry
 * once its txns have ended). Txns of other threads are waited for, as
 * they end. The table is per replica, not per thread, because a read may
 * be handed to another thread and ended there: it is then the beginning
 * thread's until it ends, wherever that is. (A thread that writes while
 * it uses a read another thread began still waits for that read.)
 */
struct crdt__open_txn {
    MDB_txn *txn;
    pthread_t owner;
};

static int
txns_add(crdt_replica *r, MDB_txn *txn)
{
    pthread_mutex_lock(&r->txns_lock);
    if (r->n_txns == r->cap_txns) {
        size_t cap = r->cap_txns ? r->cap_txns * 2 : 16;
        struct crdt__open_txn *v = realloc(r->txns, cap * sizeof *v);
        if (v == NULL) {
            pthread_mutex_unlock(&r->txns_lock);
            return CRDT_ENOMEM;
        }
        r->txns = v;
        r->cap_txns = cap;
    }
    r->txns[r->n_txns].txn = txn;
    r->txns[r->n_txns].owner = pthread_self();
    r->n_txns++;
    pthread_mutex_unlock(&r->txns_lock);
    return CRDT_OK;
}

static void
txns_drop(crdt_replica *r, MDB_txn *txn)
{
    pthread_mutex_lock(&r->txns_lock);
    for (size_t i = r->n_txns; i-- > 0;)
        if (r->txns[i].txn == txn) {
            r->txns[i] = r->txns[--r->n_txns];
            break;
        }
    pthread_mutex_unlock(&r->txns_lock);
}

static int
txns_held_here(crdt_replica *r)
{
    pthread_t me = pthread_self();
    int held = 0;

    pthread_mutex_lock(&r->txns_lock);
    for (size_t i = 0; i < r->n_txns && !held; i++)
        held = pthread_equal(r->txns[i].owner, me);
    pthread_mutex_unlock(&r->txns_lock);
    return held;
}

int
crdt__store_txns_held_here(crdt_replica *r)
{
    return txns_held_here(r);
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
        if (rc == 0) {
            if ((rc = txns_add(r, *out)) == CRDT_OK)
                return CRDT_OK;
            mdb_txn_abort(*out);
            *out = NULL;
            pthread_rwlock_unlock(&r->grow_lock);
            return rc;
        }
        pthread_rwlock_unlock(&r->grow_lock);
        if (rc == MDB_READERS_FULL) {
            int dead = 0;
            /* slots of killed readers: free them and try again */
            if (mdb_reader_check(r->env, &dead) == 0 && dead > 0)
                continue;
            return CRDT_EBUSY;
        }
        if (rc != MDB_MAP_RESIZED)
            return crdt__mdb_err(rc);
        if (txns_held_here(r))
            return CRDT_EBUSY; /* keeps (7) */
        /* another process grew the map: adopt its size (keeps (2)) */
        pthread_rwlock_wrlock(&r->grow_lock);
        mdb_env_set_mapsize(r->env, 0);
        r->map_addr = NULL; /* remapped: it may have moved */
        pthread_rwlock_unlock(&r->grow_lock);
    }
    return CRDT_EIO;
}

/*
 * Reader slots of dead processes. LMDB clears them only when asked
 * (mdb_reader_check), which an open does; until then a slot of a killed
 * reader pins the snapshot it read, so a long-lived writer (a daemon, an
 * app) cannot reuse any page freed since and the file grows without
 * bound. So a writer sweeps them after a commit, at most once a second
 * (a sweep reads the reader table and probes each pid: microseconds).
 */
#define READERS_SWEEP_MS 1000

static void
readers_sweep(crdt_replica *r)
{
    uint64_t now = crdt__now_ms(),
             last = __atomic_load_n(&r->readers_checked_ms, __ATOMIC_RELAXED);
    int dead;

    if (now - last < READERS_SWEEP_MS ||
        !__atomic_compare_exchange_n(&r->readers_checked_ms, &last, now, 0,
                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return; /* swept recently, or another committer is sweeping */
    mdb_reader_check(r->env, &dead);
}

int
crdt_replica_reader_check(crdt_replica *r, int *dead_out)
{
    int dead = 0, rc;

    if (r == NULL || r->env == NULL)
        return CRDT_EINVAL;
    rc = mdb_reader_check(r->env, &dead);
    if (dead_out != NULL)
        *dead_out = dead;
    __atomic_store_n(&r->readers_checked_ms, crdt__now_ms(), __ATOMIC_RELAXED);
    return crdt__mdb_err(rc);
}

/* (6): a commit after the creation's (txnid 1) was synced, and LMDB's
 * sync (or group_sync()) wrote every page of the file, the creation's
 * too; a commit that wrote nothing left LMDB's txnid where it was */
static void
creation_synced(crdt_replica *r)
{
    MDB_envinfo info;

    if (mdb_env_info(r->env, &info) == 0 && info.me_last_txnid > 1)
        __atomic_store_n(&r->create_unsynced, 0, __ATOMIC_RELAXED);
}

/*
 * A full disk ends a commit with EIO, not ENOSPC: the data file grows as
 * LMDB writes pages past its end, the write that runs out of space comes
 * back short, and LMDB reports a short write as EIO. So a commit's EIO
 * on a filesystem with (almost) no space left is reported as
 * CRDT_EFULL. The failed commit wrote only pages no committed meta page
 * points to: nothing is damaged, and the next commit after space is
 * freed succeeds (tests/integration/test_disk_full.sh).
 */
#define FULL_BELOW ((unsigned long long)1 << 20)

static int
commit_err(crdt_replica *r, int mdb_rc)
{
    struct statvfs fs;
    unsigned long long left;

    if (mdb_rc != EIO || statvfs(r->path, &fs) != 0)
        return crdt__mdb_err(mdb_rc);
    /* root may write into the blocks reserved for it */
    left = (unsigned long long)(geteuid() == 0 ? fs.f_bfree : fs.f_bavail) *
           fs.f_frsize;
    return left < FULL_BELOW ? CRDT_EFULL : CRDT_EIO;
}

uint64_t
crdt__store_sync_ticket(crdt_replica *r)
{
    return r->group_sync ? sync_ticket(r) : 0;
}

/* After a write commit: keeps (5) and (6) for it. */
int
crdt__store_sync_wait(crdt_replica *r, uint64_t ticket)
{
    int rc = CRDT_OK;

    if (r->group_sync)
        rc = sync_wait(r, ticket);
    if (rc == CRDT_OK &&
        __atomic_load_n(&r->create_unsynced, __ATOMIC_RELAXED))
        creation_synced(r);
    return rc;
}

static int
txn_end(crdt_replica *r, MDB_txn *txn, int commit, int wait)
{
    int rc = CRDT_OK;

    if (txn == NULL)
        return CRDT_OK;
    txns_drop(r, txn); /* while no other txn can have its address */
    if (commit)
        rc = commit_err(r, mdb_txn_commit(txn));
    else
        mdb_txn_abort(txn);
    if (commit && rc == CRDT_OK) {
        map_trim(r); /* keeps (4); the grow lock pins the map */
        readers_sweep(r);
    }
    pthread_rwlock_unlock(&r->grow_lock);
    /* outside the locks: other committers go on while this one waits */
    if (commit && rc == CRDT_OK && wait)
        rc = crdt__store_sync_wait(r, crdt__store_sync_ticket(r));
    return rc;
}

int
crdt__txn_end(crdt_replica *r, MDB_txn *txn, int commit)
{
    return txn_end(r, txn, commit, 1);
}

int
crdt__txn_commit_unwaited(crdt_replica *r, MDB_txn *txn)
{
    return txn_end(r, txn, 1, 0);
}

/* LMDB answers MDB_PANIC to every txn of an environment whose meta page
 * it failed to write, and to nothing else: a read txn begun and ended
 * tells. */
int
crdt__store_failed(crdt_replica *r)
{
    MDB_txn *txn;
    int rc;

    pthread_rwlock_rdlock(&r->grow_lock);
    rc = mdb_txn_begin(r->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&r->grow_lock);
    return rc == MDB_PANIC;
}

int
crdt__store_grow(crdt_replica *r)
{
    MDB_envinfo info;
    size_t next;
    int rc;

    if (txns_held_here(r))
        return CRDT_EBUSY; /* keeps (7) */
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
    r->map_addr = NULL; /* remapped: it may have moved */
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

int
crdt__meta_u64(MDB_txn *txn, crdt_replica *r, const char *key,
               uint64_t *out)
{
    MDB_val v;
    int rc = crdt__meta_get(txn, r, key, &v);

    *out = 0;
    if (rc == CRDT_ENOTFOUND)
        return CRDT_OK; /* never written: 0 */
    if (rc < 0)
        return rc;
    if (v.mv_size != 8)
        return CRDT_ECORRUPT;
    *out = crdt__rd64(v.mv_data);
    return CRDT_OK;
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
crdt__state_slot(MDB_txn *txn, crdt_replica *r, int *slot)
{
    uint64_t v;
    int rc = crdt__meta_u64(txn, r, "slot", &v);

    *slot = v == 1 ? 1 : 0;
    return rc;
}

int
crdt__marker_present(MDB_txn *txn, crdt_replica *r)
{
    MDB_val v;
    int rc = crdt__meta_get(txn, r, "upgrade", &v);

    return rc == CRDT_OK ? 1 : rc == CRDT_ENOTFOUND ? 0 : rc;
}

int
crdt__marker_peek(crdt_replica *r)
{
    MDB_txn *txn;
    int rc;

    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = crdt__marker_present(txn, r);
    crdt__txn_end(r, txn, 0);
    return rc;
}

int
crdt_raw_marker_peek(crdt_replica *r)
{
    return r == NULL ? CRDT_EINVAL : crdt__marker_peek(r);
}
