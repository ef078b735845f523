/*
 * prefault.c: fault in a large fresh buffer with one call instead of
 * one page fault per page.
 *
 * A sync allocates a few buffers of hundreds of KB in a fresh process
 * (its heads, 48 bytes an actor; version vectors, 16 bytes an actor):
 * malloc hands them out as new anonymous mappings, and the first write
 * to each page is a page fault. On a virtual machine a fault costs
 * about 10-15 us (480 KB: 117 faults, 1.1-1.5 ms where
 * madvise(MADV_POPULATE_WRITE) and the writes take 0.5 ms). Only a
 * hint: a kernel without it (before Linux 5.14) or any error leaves the
 * buffer as it was, to be faulted in page by page.
 */
#include <stdint.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "internal.h"

#define PREFAULT_MIN (64 * 1024) /* smaller buffers: few faults */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* linux/mman.h, since 5.14 */
#endif

void
crdt__prefault(void *p, size_t len)
{
#ifdef __linux__
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo, hi;

    if (p == NULL || len < PREFAULT_MIN || page <= 0)
        return;
    /* whole pages inside the buffer only: the pages at its ends may be
     * shared with other allocations, which populating would not harm,
     * but madvise() wants an aligned start */
    lo = ((uintptr_t)p + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    hi = ((uintptr_t)p + len) & ~((uintptr_t)page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)len;
#endif
}
