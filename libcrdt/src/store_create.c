/*
 * store_create.c: a creation that never reached the disk.
 *
 * Creating a replica commits its format and identity records WITHOUT a
 * sync of its own (store_lmdb.c): the first durable commit after it
 * (LMDB syncs the whole data file before it writes its meta page), or
 * the close if none came, makes the creation durable. A system crash
 * before that can leave the data file in any state its unsynced writes
 * produce: absent, empty, shorter than its meta pages, meta pages of
 * zeroes, LMDB's initial meta pages only (txnid 0), or the creation's
 * meta page (txnid 1) over pages that never reached the disk.
 *
 * None of these held anything but an identity that no durable commit
 * used, so an open treats them as a directory with no replica yet
 * (docs/storage.md 1.1): a plain open answers CRDT_ENOTFOUND, a create
 * removes the file and creates afresh. What is NOT such a leftover, and
 * keeps being refused as damaged: any file whose newest sound meta page
 * is of a later commit than the creation's, a creation's commit whose
 * pages all reached the disk (each starts with its page number, so none
 * is zeroes: a page damaged otherwise is the open's checks' to refuse),
 * and meta pages that are damaged without being zeroes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Bytes of the two meta pages read first (LMDB's page is 4 KiB here;
 * pagecheck.c reads each meta page from its first 4096 bytes). */
#define METAS_BYTES (2 * 4096)
/* A creation's commit writes a few pages: a longer file is not one. */
#define UNBORN_MAX (1024 * 1024)

static int
read_all(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return crdt__mdb_err(errno);
        if (k == 0)
            break; /* shrank since the fstat: judged on what is there */
        got += (size_t)k;
    }
    return (int)(got == n ? CRDT_OK : CRDT_ECORRUPT);
}

static int
all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return 0;
    return 1;
}

/* 1 unborn, 0 not; -1: the creation's commit, whose pages beyond the
 * first @p len bytes decide */
static int
judge(const unsigned char *img, size_t len, uint64_t file_len)
{
    crdt__newest_meta m;

    if (crdt__pagecheck_newest(img, len, &m) < 0)
        return all_zero(img, len < METAS_BYTES ? len : METAS_BYTES);
    if (m.txnid == 0)
        return 1; /* LMDB's initial meta pages: nothing committed */
    if (m.txnid > 1)
        return 0;
    /* the creation's commit wrote every page from 2 to its last one, and
     * each starts with its own page number: one that is zeroes or past
     * the end of the file is a write that did not reach the disk (a page
     * damaged otherwise is the open's to refuse) */
    if (file_len / m.psize < m.last_pg + 1)
        return 1;
    for (uint64_t p = 2; p <= m.last_pg; p++) {
        if ((p + 1) * m.psize > len)
            return -1;
        if (all_zero(img + p * m.psize, m.psize))
            return 1;
    }
    return 0;
}

int
crdt__store_unborn_image(const unsigned char *img, size_t len)
{
    return judge(img, len, len) == 1;
}

int
crdt__store_unborn(const char *path)
{
    char file[4096 + 16];
    unsigned char *img = NULL;
    struct stat st;
    size_t len;
    int fd, rc;

    if ((size_t)snprintf(file, sizeof file, "%s/data.mdb", path) >=
        sizeof file)
        return CRDT_EINVAL;
    if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
        return errno == ENOENT ? 1 : crdt__mdb_err(errno);
    if (fstat(fd, &st) != 0) {
        rc = crdt__mdb_err(errno);
        goto out;
    }
    if (st.st_size == 0) {
        rc = 1;
        goto out;
    }
    len = (uint64_t)st.st_size < METAS_BYTES ? (size_t)st.st_size
                                              : METAS_BYTES;
    if ((img = malloc(METAS_BYTES)) == NULL) {
        rc = CRDT_ENOMEM;
        goto out;
    }
    if ((rc = read_all(fd, img, len)) < 0)
        goto out;
    rc = judge(img, len, (uint64_t)st.st_size);
    if (rc >= 0)
        goto out;
    /* the creation's commit: read its pages, if it is a creation's size */
    if ((uint64_t)st.st_size > UNBORN_MAX) {
        rc = 0;
        goto out;
    }
    free(img);
    len = (size_t)st.st_size;
    if ((img = malloc(len)) == NULL) {
        rc = CRDT_ENOMEM;
        goto out;
    }
    if ((rc = read_all(fd, img, len)) < 0)
        goto out;
    rc = judge(img, len, (uint64_t)st.st_size);
    if (rc < 0)
        rc = 0; /* cannot be: the whole file was read */
out:
    free(img);
    close(fd);
    return rc;
}

int
crdt__store_discard_unborn(const char *path)
{
    char file[4096 + 16];
    struct flock lk;
    int fd, rc = CRDT_OK;

    /* every process with the environment open holds a lock on byte 0 of
     * lock.mdb (LMDB's liveness lock): one may be creating it right now */
    if ((size_t)snprintf(file, sizeof file, "%s/lock.mdb", path) >=
        sizeof file)
        return CRDT_EINVAL;
    fd = open(file, O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT)
        return crdt__mdb_err(errno);
    if (fd >= 0) {
        memset(&lk, 0, sizeof lk);
        lk.l_type = F_WRLCK;
        lk.l_whence = SEEK_SET;
        lk.l_start = 0;
        lk.l_len = 1;
        if (fcntl(fd, F_SETLK, &lk) != 0)
            rc = errno == EACCES || errno == EAGAIN ? CRDT_EBUSY
                                                    : crdt__mdb_err(errno);
    }
    if (rc == CRDT_OK) {
        snprintf(file, sizeof file, "%s/data.mdb", path);
        if (unlink(file) != 0 && errno != ENOENT)
            rc = crdt__mdb_err(errno);
    }
    if (fd >= 0)
        close(fd); /* and its lock */
    return rc;
}
