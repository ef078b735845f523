/*
 * timer_heap.c: a binary min-heap of deadlines (timer_heap.h).
 */
#include <stdlib.h>

#include "timer_heap.h"

static void
place(crdtnet__heap *h, size_t i, crdtnet__heap_ent e)
{
    h->v[i] = e;
    *e.pos = i;
}

static void
sift_up(crdtnet__heap *h, size_t i)
{
    crdtnet__heap_ent e = h->v[i];

    while (i > 0 && h->v[(i - 1) / 2].due > e.due) {
        place(h, i, h->v[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    place(h, i, e);
}

static void
sift_down(crdtnet__heap *h, size_t i)
{
    crdtnet__heap_ent e = h->v[i];
    size_t c;

    while ((c = 2 * i + 1) < h->n) {
        if (c + 1 < h->n && h->v[c + 1].due < h->v[c].due)
            c++;
        if (h->v[c].due >= e.due)
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, e);
}

int
crdtnet__heap_set(crdtnet__heap *h, void *item, size_t *pos, long long due)
{
    size_t i = *pos;

    if (i == CRDTNET__HEAP_NONE) {
        if (h->n == h->cap) {
            size_t cap = h->cap ? h->cap * 2 : 64;
            crdtnet__heap_ent *nv = realloc(h->v, cap * sizeof *nv);
            if (nv == NULL)
                return -1;
            h->v = nv;
            h->cap = cap;
        }
        i = h->n++;
        h->v[i].item = item;
        h->v[i].pos = pos;
        h->v[i].due = due;
        *pos = i;
        sift_up(h, i);
        return 0;
    }
    if (due < h->v[i].due) {
        h->v[i].due = due;
        sift_up(h, i);
    } else {
        h->v[i].due = due;
        sift_down(h, i);
    }
    return 0;
}

void
crdtnet__heap_remove(crdtnet__heap *h, size_t *pos)
{
    size_t i = *pos;

    if (i == CRDTNET__HEAP_NONE)
        return;
    *pos = CRDTNET__HEAP_NONE;
    if (i == --h->n)
        return;
    {
        size_t *moved = h->v[h->n].pos; /* the last one fills the hole */
        place(h, i, h->v[h->n]);
        sift_up(h, i);
        sift_down(h, *moved);
    }
}

void *
crdtnet__heap_top(const crdtnet__heap *h, long long *due)
{
    if (h->n == 0)
        return NULL;
    if (due != NULL)
        *due = h->v[0].due;
    return h->v[0].item;
}

void
crdtnet__heap_free(crdtnet__heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
