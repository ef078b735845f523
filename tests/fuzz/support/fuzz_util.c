/* fuzz_util.c: see fuzz_util.h. */
#include "fuzz_util.h"
#include "fuzz_rng.h"
#include "crdt/raw.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

void
fuzz_dir_remove(const char *path)
{
    nftw(path, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Names carry the pid of the run that made them. */
static void
remove_stale(const char *base, const char *prefix)
{
    size_t pl = strlen(prefix);
    struct dirent *e;
    DIR *d = opendir(base);

    if (d == NULL)
        return;
    while ((e = readdir(d)) != NULL) {
        char path[4096], *end;
        long pid;

        if (strncmp(e->d_name, prefix, pl) != 0)
            continue;
        pid = strtol(e->d_name + pl, &end, 10);
        if (end == e->d_name + pl || *end != '-' || pid <= 0 ||
            kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* not ours, or its process still runs */
        snprintf(path, sizeof path, "%s/%s", base, e->d_name);
        fuzz_dir_remove(path);
    }
    closedir(d);
}

int
fuzz_dir_make(char *out, size_t size, const char *base, const char *name)
{
    char prefix[128];

    if (base == NULL || *base == '\0')
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(prefix, sizeof prefix, "strata-fuzz-%s-", name);
    remove_stale(base, prefix);
    if ((size_t)snprintf(out, size, "%s/%s%ld-XXXXXX", base, prefix,
                         (long)getpid()) >= size)
        return -1;
    return mkdtemp(out) == NULL ? -1 : 0;
}

void
fuzz_put_seed(const char *dir, const char *name, const void *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int
fuzz_same_value(const crdt_value *a, const crdt_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case CRDT_VNULL: return 1;
    case CRDT_VBOOL: return a->u.b == b->u.b;
    case CRDT_VINT: return a->u.i == b->u.i;
    case CRDT_VDOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof a->u.d) == 0;
    case CRDT_VSTRING:
    case CRDT_VBYTES:
        return a->u.s.len == b->u.s.len &&
               (a->u.s.len == 0 ||
                memcmp(a->u.s.ptr, b->u.s.ptr, a->u.s.len) == 0);
    }
    return 0;
}

int
fuzz_seeds_if_asked(void (*write_seeds)(const char *dir))
{
    const char *dir = getenv("STRATA_FUZZ_SEEDS");

    if (dir != NULL && *dir != '\0') {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}

void
fuzz_check_unpacks_to(const unsigned char *packed, size_t plen,
                      const crdt_bytes *list, size_t n)
{
    crdt_bytes *got = NULL;
    unsigned char *buf = NULL;
    size_t n2 = 0;

    if (crdt_changes_unpack(&got, &n2, &buf, packed, plen) != CRDT_OK ||
        n2 != n)
        abort();
    for (size_t i = 0; i < n; i++)
        if (got[i].len != list[i].len ||
            memcmp(got[i].data, list[i].data, list[i].len) != 0)
            abort();
    crdt_free(got);
    crdt_free(buf);
}

void
fuzz_init_signing(void)
{
    fuzz_rng_install();
    crdt_set_clock(fuzz_fixed_clock, NULL);
    if (sodium_init() < 0)
        abort();
}

uint64_t
fuzz_fixed_clock(void *ctx)
{
    (void)ctx;
    return 1700000000000ULL; /* 2023-11-14: seeds stay within the drift */
}

crdt_replica *
fuzz_seed_replica(const char *dir, unsigned char fill)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char space[16], seed[32];
    char path[300];
    crdt_replica *r;

    memset(space, 0x5a, sizeof space);
    memset(seed, fill, sizeof seed);
    snprintf(path, sizeof path, "%s/r%02x", dir, fill);
    o.create = 1;
    o.no_sync = 1;
    o.space_id = space;
    o.seed = seed;
    if (crdt_replica_open(&r, path, &o) != CRDT_OK)
        exit(1);
    return r;
}
