/* faultsites.c: support/faultsites.h. */
#define _GNU_SOURCE /* dladdr() */
#include "support/faultsites.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SEEN_MAX 8192

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const void *seen[SEEN_MAX];
static size_t n_seen;
static pid_t seen_pid; /* a forked child starts its own file */

void
faultsites_note(const char *kind, const void *site)
{
    const char *dir = getenv("STRATA_FAULT_SITES");
    char path[512], line[1024], real[PATH_MAX];
    Dl_info info;
    int fd, n;

    if (dir == NULL || dir[0] == '\0' || site == NULL)
        return;
    pthread_mutex_lock(&lock);
    if (seen_pid != getpid()) {
        seen_pid = getpid();
        n_seen = 0;
    }
    for (size_t i = 0; i < n_seen; i++)
        if (seen[i] == site) {
            pthread_mutex_unlock(&lock);
            return;
        }
    if (n_seen < SEEN_MAX)
        seen[n_seen++] = site;
    pthread_mutex_unlock(&lock);
    if (dladdr(site, &info) == 0 || info.dli_fname == NULL)
        return;
    (void)mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/%s.%ld", dir, kind, (long)getpid());
    if (realpath(info.dli_fname, real) == NULL)
        return;
    n = snprintf(line, sizeof line, "%s %#lx\n", real,
                 (unsigned long)((const char *)site -
                                 (const char *)info.dli_fbase) - 1);
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || n <= 0 || (size_t)n >= sizeof line) {
        if (fd >= 0)
            close(fd);
        return;
    }
    (void)!write(fd, line, (size_t)n);
    close(fd);
}
