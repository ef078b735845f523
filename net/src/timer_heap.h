/*
 * timer_heap.h: the daemon's event loop keeps one deadline per
 * connection in a binary min-heap, so each wake finds the due ones in
 * O(log n) instead of looking at every connection. Each item remembers
 * its own place (@c pos), so its deadline moves without a search. Never
 * installed; names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_TIMER_HEAP_H
#define CRDTNET_TIMER_HEAP_H

#include <stddef.h>
#include <stdint.h>

/* Not in the heap. */
#define CRDTNET__HEAP_NONE SIZE_MAX

typedef struct {
    long long due;
    void *item;
    size_t *pos; /* the item's place in the heap (kept up to date) */
} crdtnet__heap_ent;

typedef struct {
    crdtnet__heap_ent *v;
    size_t n, cap;
} crdtnet__heap;

/* Give @p item the deadline @p due: added if *@p pos is
 * CRDTNET__HEAP_NONE, else moved. @return 0; -1 out of memory. */
int crdtnet__heap_set(crdtnet__heap *h, void *item, size_t *pos,
                      long long due);

/* Take the item at *@p pos out (nothing if CRDTNET__HEAP_NONE). */
void crdtnet__heap_remove(crdtnet__heap *h, size_t *pos);

/* The earliest item and its deadline; NULL when empty. */
void *crdtnet__heap_top(const crdtnet__heap *h, long long *due);

void crdtnet__heap_free(crdtnet__heap *h);

#endif
