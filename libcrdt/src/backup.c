/*
 * backup.c: online backup and restore.
 *
 *   file = "STRATABK" | version u32 BE (1) | header_len u32 BE | header |
 *          data_len u64 BE | data (an LMDB data.mdb, compacted) |
 *          BLAKE2b-256 of everything before
 *   header = msgpack [ space bin16, epoch_number, epoch_id bin32,
 *                      state_hash bin32, created_ms, ops_total ]
 *
 * The copy is taken with mdb_env_copy2(MDB_CP_COMPACT) from one read
 * txn; the header is then read from the copy itself, so it describes
 * exactly the snapshot in the file whatever writers did meanwhile.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/backup.h"
#include "internal.h"

static const char MAGIC[8] = { 'S', 'T', 'R', 'A', 'T', 'A', 'B', 'K' };

static int
write_all(int fd, const void *p, size_t n, crypto_generichash_state *h)
{
    const unsigned char *b = p;

    if (h != NULL)
        crypto_generichash_update(h, b, n);
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return crdt__mdb_err(errno);
        }
        b += w;
        n -= (size_t)w;
    }
    return CRDT_OK;
}

static int
read_all(int fd, void *p, size_t n)
{
    unsigned char *b = p;

    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? CRDT_ECORRUPT : crdt__mdb_err(errno);
        b += r;
        n -= (size_t)r;
    }
    return CRDT_OK;
}

static void
rmdir_files(const char *dir)
{
    char p[4200];

    snprintf(p, sizeof p, "%s/data.mdb", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/lock.mdb", dir);
    unlink(p);
    rmdir(dir);
}

/* Read the header fields from an opened replica (the copy). */
static int
info_of(crdt_backup_info *info, crdt_replica *r)
{
    crdt_read *rd;
    crdt_stats st;
    crdt_vv *vv;
    int rc;

    if ((rc = crdt_read_begin(&rd, r)) < 0)
        return rc;
    rc = crdt_read_stats(&st, rd);
    if (rc == CRDT_OK)
        rc = crdt_read_vv(&vv, rd);
    crdt_read_end(rd);
    if (rc < 0)
        return rc;
    memset(info, 0, sizeof *info);
    crdt_replica_space_id(r, info->space_id);
    info->epoch_number = st.epoch_number;
    memcpy(info->epoch_id, st.epoch_id, CRDT_HASH_BYTES);
    memcpy(info->state_hash, st.state_hash, CRDT_HASH_BYTES);
    info->created_ms = crdt__now_ms();
    info->ops_total = crdt_vv_total(vv);
    crdt_vv_free(vv);
    return CRDT_OK;
}

int
crdt_backup(crdt_backup_info *info_out, crdt_replica *r, const char *file)
{
    char tmpdir[4096], tmpfile[4096], data[4200];
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *copy = NULL;
    crdt_backup_info info;
    crypto_generichash_state h;
    unsigned char hdr[16], digest[32], buf[65536];
    crdt__enc e;
    int fd = -1, in = -1, rc;
    struct stat st;

    if (r == NULL || file == NULL)
        return CRDT_EINVAL;
    if ((size_t)snprintf(tmpdir, sizeof tmpdir, "%s.tmpdir-XXXXXX", file) >=
        sizeof tmpdir)
        return CRDT_EINVAL;
    if (mkdtemp(tmpdir) == NULL)
        return crdt__mdb_err(errno);
    rc = crdt__mdb_err(mdb_env_copy2(r->env, tmpdir, MDB_CP_COMPACT));
    if (rc < 0)
        goto out;
    o.read_only = 1;
    if ((rc = crdt_replica_open(&copy, tmpdir, &o)) < 0)
        goto out;
    rc = info_of(&info, copy);
    crdt_replica_close(copy);
    if (rc < 0)
        goto out;

    snprintf(data, sizeof data, "%s/data.mdb", tmpdir);
    snprintf(tmpfile, sizeof tmpfile, "%s.tmp", file);
    if ((in = open(data, O_RDONLY)) < 0 || fstat(in, &st) != 0) {
        rc = crdt__mdb_err(errno);
        goto out;
    }
    fd = open(tmpfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        rc = crdt__mdb_err(errno);
        goto out;
    }
    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 6);
    crdt__enc_bin(&e, info.space_id, CRDT_SPACE_ID_BYTES);
    msgpack_pack_uint64(&e.pk, info.epoch_number);
    crdt__enc_bin(&e, info.epoch_id, CRDT_HASH_BYTES);
    crdt__enc_bin(&e, info.state_hash, CRDT_HASH_BYTES);
    msgpack_pack_uint64(&e.pk, info.created_ms);
    msgpack_pack_uint64(&e.pk, info.ops_total);
    crypto_generichash_init(&h, NULL, 0, sizeof digest);
    hdr[0] = 0; hdr[1] = 0; hdr[2] = 0; hdr[3] = 1;
    hdr[4] = (unsigned char)(e.sb.size >> 24);
    hdr[5] = (unsigned char)(e.sb.size >> 16);
    hdr[6] = (unsigned char)(e.sb.size >> 8);
    hdr[7] = (unsigned char)e.sb.size;
    rc = crdt__enc_ok(&e);
    if (rc == CRDT_OK)
        rc = write_all(fd, MAGIC, 8, &h);
    if (rc == CRDT_OK)
        rc = write_all(fd, hdr, 8, &h);
    if (rc == CRDT_OK)
        rc = write_all(fd, e.sb.data, e.sb.size, &h);
    crdt__enc_free(&e);
    crdt__be64(hdr, (uint64_t)st.st_size);
    if (rc == CRDT_OK)
        rc = write_all(fd, hdr, 8, &h);
    for (off_t done = 0; rc == CRDT_OK && done < st.st_size;) {
        size_t want = sizeof buf;
        if ((off_t)want > st.st_size - done)
            want = (size_t)(st.st_size - done);
        if ((rc = read_all(in, buf, want)) == CRDT_OK)
            rc = write_all(fd, buf, want, &h);
        done += (off_t)want;
    }
    crypto_generichash_final(&h, digest, sizeof digest);
    if (rc == CRDT_OK)
        rc = write_all(fd, digest, sizeof digest, NULL);
    if (rc == CRDT_OK && fsync(fd) != 0)
        rc = crdt__mdb_err(errno);
    if (close(fd) != 0 && rc == CRDT_OK)
        rc = crdt__mdb_err(errno);
    fd = -1;
    if (rc == CRDT_OK && rename(tmpfile, file) != 0)
        rc = crdt__mdb_err(errno);
    if (rc < 0)
        unlink(tmpfile);
    else if (info_out != NULL)
        *info_out = info;
out:
    if (in >= 0)
        close(in);
    if (fd >= 0)
        close(fd);
    rmdir_files(tmpdir);
    return crdt__full(rc);
}

/* Open @p file, check its hash, parse the header; leaves the fd at the
 * start of the data and its length in @p data_len. */
static int
open_checked(int *fd_out, uint64_t *data_len, crdt_backup_info *info,
             const char *file)
{
    unsigned char head[16], hb[512], digest[32], want[32], buf[65536];
    crypto_generichash_state h;
    struct stat st;
    uint32_t hl;
    int fd, rc;

    fd = open(file, O_RDONLY);
    if (fd < 0)
        return errno == ENOENT ? CRDT_ENOTFOUND : crdt__mdb_err(errno);
    if (fstat(fd, &st) != 0 || st.st_size < 16 + 8 + 32) {
        close(fd);
        return CRDT_ECORRUPT;
    }
    /* the trailing hash covers everything before it */
    crypto_generichash_init(&h, NULL, 0, sizeof digest);
    for (off_t done = 0, end = st.st_size - 32; done < end;) {
        size_t n = sizeof buf;
        if ((off_t)n > end - done)
            n = (size_t)(end - done);
        if ((rc = read_all(fd, buf, n)) < 0) {
            close(fd);
            return rc;
        }
        crypto_generichash_update(&h, buf, n);
        done += (off_t)n;
    }
    crypto_generichash_final(&h, digest, sizeof digest);
    if ((rc = read_all(fd, want, 32)) < 0 ||
        sodium_memcmp(digest, want, 32) != 0) {
        close(fd);
        return CRDT_ECORRUPT;
    }
    if (lseek(fd, 0, SEEK_SET) != 0 || read_all(fd, head, 16) < 0 ||
        memcmp(head, MAGIC, 8) != 0) {
        close(fd);
        return CRDT_ECORRUPT;
    }
    if (crdt__rd64((const unsigned char[8]){ 0, 0, 0, 0, head[8], head[9],
                                             head[10], head[11] }) != 1) {
        close(fd);
        return CRDT_EVERSION;
    }
    hl = (uint32_t)head[12] << 24 | (uint32_t)head[13] << 16 |
         (uint32_t)head[14] << 8 | head[15];
    if (hl > sizeof hb || read_all(fd, hb, hl) < 0) {
        close(fd);
        return CRDT_ECORRUPT;
    }
    {
        crdt__mp m = { hb, hb + hl };
        uint32_t n;
        memset(info, 0, sizeof *info);
        if (crdt__mp_array(&m, &n) < 0 || n != 6 ||
            crdt__mp_bin_fixed(&m, info->space_id, CRDT_SPACE_ID_BYTES) < 0 ||
            crdt__mp_uint(&m, &info->epoch_number) < 0 ||
            crdt__mp_bin_fixed(&m, info->epoch_id, CRDT_HASH_BYTES) < 0 ||
            crdt__mp_bin_fixed(&m, info->state_hash, CRDT_HASH_BYTES) < 0 ||
            crdt__mp_uint(&m, &info->created_ms) < 0 ||
            crdt__mp_uint(&m, &info->ops_total) < 0) {
            close(fd);
            return CRDT_ECORRUPT;
        }
    }
    if (read_all(fd, head, 8) < 0) {
        close(fd);
        return CRDT_ECORRUPT;
    }
    *data_len = crdt__rd64(head);
    if (*data_len != (uint64_t)st.st_size - 16 - hl - 8 - 32) {
        close(fd);
        return CRDT_ECORRUPT;
    }
    *fd_out = fd;
    return CRDT_OK;
}

int
crdt_backup_check(crdt_backup_info *info_out, const char *file)
{
    crdt_backup_info info;
    uint64_t len;
    int fd, rc;

    if (file == NULL)
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    rc = open_checked(&fd, &len, &info, file);
    if (rc < 0)
        return rc;
    close(fd);
    if (info_out != NULL)
        *info_out = info;
    return CRDT_OK;
}

/*
 * A backup taken while a reset was staging a snapshot carries its meta
 * `staging` record, naming the process that staged it (docs/storage.md
 * 6.4). That process may well be alive, and its session is with the
 * original replica, not this copy: the restored replica would answer
 * every sync and migration "a reset is in progress" until the record
 * went stale. The half-staged changes are never read; both go.
 */
static int
drop_staging(crdt_replica *r)
{
    crdt_raw *t;
    int rc;

    if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
        return rc;
    rc = crdt_raw_del(t, CRDT_DB_META, "staging", 7);
    if (rc == CRDT_OK || rc == CRDT_ENOTFOUND)
        rc = crdt_raw_clear(t, CRDT_DB_STAGING);
    if (rc < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    return crdt_raw_commit(t);
}

int
crdt_restore(crdt_backup_info *info_out, const char *file, const char *dir)
{
    crdt_backup_info info;
    crdt_replica *r = NULL;
    char data[4200];
    unsigned char buf[65536];
    uint64_t len;
    int fd = -1, out = -1, rc, made_dir = 0;
    struct stat st;

    if (file == NULL || dir == NULL)
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    if (stat(dir, &st) == 0) {
        DIR *d = opendir(dir);
        struct dirent *de;
        int empty = 1;
        if (d == NULL)
            return crdt__mdb_err(errno);
        while ((de = readdir(d)) != NULL)
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                empty = 0;
        closedir(d);
        if (!empty)
            return CRDT_EEXISTS; /* never overwrite a replica */
    } else if (mkdir(dir, 0700) != 0) {
        return crdt__mdb_err(errno);
    } else {
        made_dir = 1;
    }
    if ((rc = open_checked(&fd, &len, &info, file)) < 0)
        goto fail;
    snprintf(data, sizeof data, "%s/data.mdb", dir);
    out = open(data, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (out < 0) {
        rc = crdt__mdb_err(errno);
        goto fail;
    }
    for (uint64_t done = 0; rc == CRDT_OK && done < len;) {
        size_t n = sizeof buf;
        if (n > len - done)
            n = (size_t)(len - done);
        if ((rc = read_all(fd, buf, n)) == CRDT_OK)
            rc = write_all(out, buf, n, NULL);
        done += n;
    }
    if (rc == CRDT_OK && fsync(out) != 0)
        rc = crdt__mdb_err(errno);
    close(out);
    out = -1;
    if (rc < 0)
        goto fail;
    if ((rc = crdt_replica_open(&r, dir, NULL)) < 0)
        goto fail;
    {   /* the restored state must be the one the header describes */
        crdt_raw *t;
        unsigned char h[32];
        unsigned char space[CRDT_SPACE_ID_BYTES];
        rc = crdt_raw_begin(&t, r, 0);
        if (rc == CRDT_OK) {
            rc = crdt_raw_state_rehash(t, h);
            /* a backup of a format-1 replica carries a format-1 hash
             * (opening the copy has upgraded it to format 2) */
            if (rc == CRDT_OK && memcmp(h, info.state_hash, 32) != 0)
                rc = crdt__state_rehash(t->w->txn, t->w->state, 1, h);
            crdt_raw_abort(t);
        }
        crdt_replica_space_id(r, space);
        if (rc == CRDT_OK &&
            (memcmp(h, info.state_hash, 32) != 0 ||
             memcmp(space, info.space_id, CRDT_SPACE_ID_BYTES) != 0))
            rc = CRDT_ECORRUPT;
    }
    if (rc == CRDT_OK)
        rc = drop_staging(r);
    if (rc == CRDT_OK)
        rc = crdt_replica_new_incarnation(r);
    crdt_replica_close(r);
    if (rc < 0)
        goto fail;
    close(fd);
    if (info_out != NULL)
        *info_out = info;
    return CRDT_OK;
fail:
    if (fd >= 0)
        close(fd);
    if (out >= 0)
        close(out);
    unlink(data);
    {
        char lock[4200];
        snprintf(lock, sizeof lock, "%s/lock.mdb", dir);
        unlink(lock);
    }
    if (made_dir)
        rmdir(dir);
    return rc;
}
