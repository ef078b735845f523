/* seq_int.h: the structures of seq.c, shared with the files that store
 * sequences (seq_store.c, seq_load.c, seq_cache.c, seq_list.c). */
#ifndef CRDT_SEQ_INT_H
#define CRDT_SEQ_INT_H

#include "seq.h"

#define CH_MAX 128 /* fragments per chunk */
#define CH_HALF (CH_MAX / 2)
#define SEQ_HINTS 4 /* runs remembered per actor (seq.c, run_find) */

typedef struct seq_frag seq_frag;
typedef struct seq_chunk seq_chunk;

/* A block that runs, fragments and chunks are carved from (seq.c,
 * seq_alloc); they live until the sequence is freed. */
typedef struct seq_block {
    struct seq_block *next;
    size_t size, used; /* bytes after the header; bytes handed out */
} seq_block;

/* One stored run: elements (actor, ctr) .. (actor, ctr + len - 1). The
 * first has origins left/right; each later one has the previous element
 * as left origin and the same right origin. */
typedef struct {
    crdt_actor actor;
    uint64_t ctr, len;
    crdt_seq_id left, right;
    crdt__seq *owner;     /* whose blocks hold its bytes and frags */
    unsigned char *bytes; /* text: UTF-8; list: msgpack values; in the
                             owner's blocks (seq.c, seq_alloc) */
    size_t nbytes, cap;
    int ascii;            /* text of one byte per code point */
    int state;            /* while building: 0 new, 1 pending, 2 placed */
    int base;             /* an epoch's compacted run ('b' record): never
                             grows; origins: the element before it in the
                             base, and the end */
    uint64_t gap;         /* base run: ordinal of its first element in the
                             base (from 1); other run: the ordinal of the
                             base element its elements follow (0: none),
                             the "gap" they live in (seq.c, integration) */
    seq_frag **frags;     /* sorted by off (invariant 1); carved from
                             the blocks (seq.c, run_add_frag) */
    uint32_t nf, capf;
    /* changed since its record was written (seq_store.c, flush); the
     * record then holds the first stored_len elements, stored_nbytes
     * bytes (0: no record yet): a run only grows at its end */
    int dirty;
    uint64_t stored_len;
    size_t stored_nbytes;
} seq_run;

struct seq_frag {
    seq_run *run;
    uint64_t off, len;
    seq_chunk *ch;
    uint32_t idx;
    int deleted;
};

struct seq_chunk {
    seq_frag *f[CH_MAX];
    uint32_t n, idx;
    uint64_t vis, tot;
};

/* Deleted ids [c, e) of one actor: a 'd' record (invariant 2 of
 * seq_store.c: disjoint, never touching). */
typedef struct {
    uint64_t c, e;
} seq_ival;

typedef struct {
    crdt_actor actor;
    seq_ival *dels; /* the actor's delete records, sorted */
    size_t ndel, capdel; /* capdel: slots from dels on */
    size_t dels_skip;    /* free slots before dels in its allocation
                            (seq_store.c, put_deleted) */
    seq_ival *dels0; /* while they differ from what is stored: the stored
                        ones (seq_store.c, flush) */
    size_t ndel0;
    int dels_dirty;
    seq_run **runs; /* sorted by ctr */
    uint64_t *ctrs; /* ctrs[i] == runs[i]->ctr: the searches by id read
                       this array, not a run (a cache miss each) */
    size_t n, cap;
    size_t hint[SEQ_HINTS]; /* indexes of runs crdt__seq_run_find found
                               lately (guesses only: checked before use) */
    unsigned hint_next;     /* the slot the next one found goes to */
    uint64_t del_end; /* no delete range of this actor reaches past it */
    uint64_t held_end; /* end of this actor's newest held insert; 0: none */
    uint64_t cut_end;  /* ids below it were folded into an epoch ('x') */
} seq_actor;

struct crdt__seq {
    crdt__seqkey key;
    MDB_dbi dbi;
    seq_chunk **ch;
    size_t nch, capch;
    seq_actor *act; /* sorted by actor */
    size_t nact, capact, last_act;
    uint64_t vis, tot;
    uint64_t nparked; /* held inserts (records 'p') */
    uint64_t ncopies; /* copies waiting for their originals ('a') */
    seq_run **base;   /* the base runs in document order */
    size_t nbase, capbase;
    uint64_t base_total; /* elements in the base */
    int has_header;
    int default_gone; /* no lens default register of the field can be
                         there (seq_store.c, drop_lens_default) */
    int broken;       /* an allocation failed mid-change: never reuse */
    seq_block *blocks; /* the newest first (seq.c, seq_alloc) */
    size_t block_next; /* size of the next block */
    /* records changed in memory, not written yet (seq_store.c, flush) */
    seq_run **dirty_runs;
    size_t ndirty, capdirty;
    crdt_actor *dirty_dels; /* actors whose dels differ from dels0 */
    size_t ndirtyd, capdirtyd;
    /* cache bookkeeping (seq_cache.c) */
    uint64_t valid_at;
    int busy, cached;
    struct crdt__seq *next_touched;
};

seq_actor *crdt__seq_actor(crdt__seq *s, const crdt_actor *a, int create);
seq_run *crdt__seq_run_find(crdt__seq *s, const crdt_seq_id *id);
seq_run *crdt__seq_run_new(crdt__seq *s, const crdt_actor *actor,
                           uint64_t ctr);
int crdt__seq_run_append(seq_run *r, const void *p, size_t n,
                         uint64_t elems, int text);
int crdt__seq_has(crdt__seq *s, const crdt_seq_id *id);
int crdt__seq_integrate(crdt__seq *s, seq_run *r, uint64_t off,
                        uint64_t len);
/* The last fragment of @p r, if an insert continuing @p r (left origin
 * its last element, right origin @p right, its own) goes right after it
 * with no scan (seq.c); NULL: integrate it the long way. */
seq_frag *crdt__seq_typing_frag(const crdt__seq *s, const seq_run *r,
                                const crdt_seq_id *right);
/* Grow that fragment by the @p len elements appended to its run. */
void crdt__seq_typing_grow(crdt__seq *s, seq_frag *last, uint64_t len);
int crdt__seq_mark_deleted(crdt__seq *s, const crdt_actor *actor,
                           uint64_t c, uint64_t e);
/* Append @p r, a base run whose left origin is the base's last element,
 * to the order and to the base. */
int crdt__seq_base_add(crdt__seq *s, seq_run *r);
int crdt__seq_walk(const crdt__seq *s,
                   int (*cb)(const seq_run *r, uint64_t off, uint64_t len,
                             void *ctx),
                   void *ctx);
void crdt__seq_free(crdt__seq *s);
/* Bytes [*b0, *b1) of elements [off, off + len) of @p r (text: UTF-8
 * code points; list: msgpack values). CRDT_ECORRUPT if they run out. */
int crdt__seq_run_bytes(const seq_run *r, int text, uint64_t off,
                        uint64_t len, size_t *b0, size_t *b1);
/* 1 if element @p id is integrated and deleted, 0 if visible, -1 if it
 * is not integrated. */
int crdt__seq_elem_deleted(const crdt__seq *s, const crdt_seq_id *id);

/* ---- record keys (seq_store.c's layout) ---- */

/* key = P sub id [id2] */
typedef struct {
    unsigned char b[sizeof(((crdt__seqkey *)0)->b) + 1 + 32];
    size_t len;
} seq_skey;

static inline void
seq_skey_make(seq_skey *k, const crdt__seqkey *p, unsigned char sub,
          const crdt_actor *a, uint64_t ctr)
{
    memcpy(k->b, p->b, p->len);
    k->len = p->len;
    k->b[k->len++] = sub;
    if (a != NULL) {
        memcpy(k->b + k->len, a->b, 8);
        crdt__be64(k->b + k->len + 8, ctr);
        k->len += 16;
    }
}

static inline void
seq_put_id(unsigned char *p, const crdt_seq_id *id)
{
    memcpy(p, id->actor.b, 8);
    crdt__be64(p + 8, id->ctr);
}

static inline void
seq_get_id(crdt_seq_id *id, const unsigned char *p)
{
    memcpy(id->actor.b, p, 8);
    id->ctr = crdt__rd64(p + 8);
}

static inline int
seq_id_eq(const crdt_seq_id *a, const crdt_seq_id *b)
{
    return a->ctr == b->ctr &&
           (a->ctr == 0 || memcmp(a->actor.b, b->actor.b, 8) == 0);
}

/* Room for @p sa's delete records to grow by one (seq_store.c). */
int crdt__seq_dels_grow(seq_actor *sa);

#endif
