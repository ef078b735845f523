/* Recognising LMDB's data file by its descriptor, for the test programs
 * that stand in for pwrite() and writev() (test_writefail.c,
 * integration/support/failwrite.c). */
#ifndef TEST_DATA_FILE_H
#define TEST_DATA_FILE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* 1 when @p fd is open on a file named data.mdb. */
static inline int
test_is_data_file(int fd)
{
    char path[64], link[512];
    ssize_t n;

    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    n = readlink(path, link, sizeof link - 1);
    if (n < 9)
        return 0;
    link[n] = '\0';
    return strcmp(link + n - 9, "/data.mdb") == 0;
}

#endif
