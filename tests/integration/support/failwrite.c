/*
 * failwrite.c: a preload for test_write_error.sh. It defines pwrite(),
 * which LMDB writes its meta pages through, and fails one write of a
 * meta page of a data.mdb with EIO when the file named by
 * STRATA_TEST_FAIL_META exists (removing the file: once per trigger).
 * Every other write goes to the kernel unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "support/data_file.h"

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
    const char *trigger = getenv("STRATA_TEST_FAIL_META");

    if (trigger != NULL && off >= 0 && off < 2 * sysconf(_SC_PAGESIZE) &&
        test_is_data_file(fd) && unlink(trigger) == 0) {
        errno = EIO;
        return -1;
    }
    return (ssize_t)syscall(SYS_pwrite64, fd, buf, n, off);
}
