/*
 * feed.c: the change feed (crdt/feed.h): what each commit changed.
 *
 * Collecting: state.c calls crdt__feed_note() with every state key it
 * actually changes (a put that rewrites the same bytes is not a change).
 * A key names its collection, document and field (coll 0 doc 0 field 0
 * KIND ...; a document tombstone is coll 0 doc 0), so the entry noted
 * is that prefix; a merge applies its ops in key order, so repeats are
 * adjacent and dropped against the last entry. A swap or clear of the
 * state (a migration, a reset) notes "everything".
 *
 * Recording: just before the write txn commits, the entries are sorted,
 * made unique and written as ONE record of the "feed" database under the
 * next feed seq (docs/storage.md, "The change feed"), in the same txn, so
 * the summary is durable exactly when the change is. Only the newest
 * CRDT_FEED_KEEP records are kept: each write deletes the one that falls
 * out. Nothing here can fail a commit that would otherwise succeed,
 * except LMDB itself (map full, I/O) and running out of memory, which
 * fails the commit with CRDT_ENOMEM like any other allocation of it
 * (never a commit without its summary). When subscribers exist, the
 * event is decoded before the commit too, so calling them allocates
 * nothing after the change is durable.
 *
 * After the commit: the committer touches DIR/notify (other processes'
 * watches wake on its inotify event) and calls this handle's subscribers
 * on its own thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/inotify.h>
#endif

#include "internal.h"

#define REC_V1 1 /* entries whole: len(u16) | entry; read, not written */
#define REC_V2 2 /* coded against the entry before (code_entry()): store
                    format 4 writes it */
#define REC_HEAD 6                   /* version, flags, count(4) */
#define V1_ENTRY_HEAD 2
#define V2_ENTRY_HEAD 3              /* keep, tail, n */
#define REC_MAX_ENTRIES 65536u       /* more: the record says everything */
#define REC_MAX_BYTES (4u << 20)     /* the decoder's size limit */
#define ENTRY_MAX (3 * CRDT_NAME_MAX + 3)
#define SINCE_DEFAULT 1024
#define SINCE_MAX_BYTES (16u << 20)  /* records copied out per call */

struct crdt_feed_sub {
    struct crdt_feed_sub *next;
    crdt_replica *r;
    char *coll, *doc;
    crdt_feed_fn fn;
    void *ctx;
};

/* The replica whose subscribers this thread is calling now, if any. */
static _Thread_local const crdt_replica *in_callback;

int
crdt__feed_guard(const crdt_replica *r)
{
    return in_callback != NULL && in_callback == r ? CRDT_EBUSY : CRDT_OK;
}

/* ---- collecting ---- */

void
crdt__feed_reset(crdt__wctx *w)
{
    free(w->fa.buf);
    free(w->fa.rec);
    free(w->fa.ev_mem);
    memset(&w->fa, 0, sizeof w->fa);
}

void
crdt__feed_all(crdt__wctx *w)
{
    free(w->fa.buf);
    w->fa.buf = NULL;
    w->fa.len = w->fa.cap = w->fa.n = w->fa.last = 0;
    w->fa.all = 1;
    w->fa.oom = 0; /* "everything" needs no entries */
}

/* The length of the entry key @p k names (through the field's NUL), or 0
 * if the key is not shaped like a state key. @p doc_only: it is the
 * document's own key (then the entry gets an empty field). */
static size_t
entry_len(const unsigned char *k, size_t kl, int *doc_only)
{
    const unsigned char *z1, *z2, *z3;

    *doc_only = 0;
    if ((z1 = memchr(k, 0, kl)) == NULL || z1 == k)
        return 0;
    z2 = memchr(z1 + 1, 0, kl - (size_t)(z1 + 1 - k));
    if (z2 == NULL || z2 == z1 + 1)
        return 0;
    if ((size_t)(z2 + 1 - k) == kl) {
        *doc_only = 1;
        return kl;
    }
    z3 = memchr(z2 + 1, 0, kl - (size_t)(z2 + 1 - k));
    if (z3 == z2 + 1 && kl == (size_t)(z2 + 3 - k) && z2[2] == 'N') {
        *doc_only = 1; /* a document's mark (state.c (4)): the document */
        return (size_t)(z2 + 1 - k);
    }
    if (z3 == NULL || z3 == z2 + 1)
        return 0;
    return (size_t)(z3 + 1 - k);
}

/*
 * Does @p k name the same entry as @p last (ll bytes), without parsing
 * it? A field's entry is coll 0 doc 0 field 0 with no NUL inside the
 * names: a key that begins with it has its first three NULs at the same
 * places, so entry_len() would give the same entry. A document's entry
 * (coll 0 doc 0 0) matches only the document's own key. Most notes are
 * of the same field as the one before (a merge applies in key order):
 * this skips scanning each key for its NULs.
 */
static int
same_entry(const unsigned char *last, size_t ll, const unsigned char *k,
           size_t kl)
{
    uint64_t x, y;

    if (ll >= 2 && last[ll - 2] == 0) /* a document's entry */
        return kl + 1 == ll && memcmp(last, k, kl) == 0;
    if (kl < ll)
        return 0;
    /* another document of a run (d1, d2, ...) differs near the entry's
     * end: look there first, without a call */
    if (ll >= 8) {
        memcpy(&x, last + ll - 8, 8);
        memcpy(&y, k + ll - 8, 8);
        if (x != y)
            return 0;
    }
    return memcmp(last, k, ll) == 0;
}

void
crdt__feed_note(crdt__wctx *w, const void *key, size_t kl)
{
    crdt__feedacc *a = &w->fa;
    const unsigned char *k = key;
    int doc_only;
    size_t n, el;

    if (a->all)
        return;
    if (a->n > 0) {
        const unsigned char *last = a->buf + a->last;
        if (same_entry(last + 2, (size_t)last[0] << 8 | last[1], k, kl))
            return;
    }
    n = entry_len(k, kl, &doc_only);
    el = n + (size_t)doc_only;
    if (n == 0 || el > ENTRY_MAX) {
        crdt__feed_all(w);
        return;
    }
    if (a->n >= REC_MAX_ENTRIES || a->len + 2 + el > REC_MAX_BYTES) {
        crdt__feed_all(w);
        return;
    }
    if (a->len + 2 + el > a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        unsigned char *nb;
        while (cap < a->len + 2 + el)
            cap *= 2;
        if ((nb = realloc(a->buf, cap)) == NULL) {
            a->oom = 1; /* the commit fails: crdt__feed_write() */
            return;
        }
        a->buf = nb;
        a->cap = cap;
    }
    a->last = a->len;
    a->buf[a->len] = (unsigned char)(el >> 8);
    a->buf[a->len + 1] = (unsigned char)el;
    memcpy(a->buf + a->len + 2, k, n);
    if (doc_only)
        a->buf[a->len + 2 + n] = 0;
    a->len += 2 + el;
    a->n++;
}

/* ---- recording ---- */

typedef struct {
    const unsigned char *p;
    size_t len;
} span;

static int
span_cmp(const void *a, const void *b)
{
    const span *x = a, *y = b;

    return crdt__key_cmp(x->p, x->len, y->p, y->len);
}

/*
 * Entry @p cur coded against @p prev (NULL for the first) into @p o:
 * keep | tail | n | n bytes, where cur is the first keep bytes of prev,
 * the n bytes, then the last tail bytes of prev. Sorted entries of one
 * collection and field differ only in the middle, where their documents
 * differ (c 0 doc-0041 0 v 0, then c 0 doc-0042 0 v 0: keep 9, tail 3,
 * the byte '2'), so a merge's record shrinks to about a third.
 */
static size_t
code_entry(unsigned char *o, const span *prev, const span *cur)
{
    size_t keep = 0, tail = 0, n;

    if (prev != NULL) {
        size_t m = prev->len < cur->len ? prev->len : cur->len;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* eight bytes at a time: the first differing byte is the lowest
         * set byte of the difference (a commit codes thousands) */
        for (; keep + 8 <= m; keep += 8) {
            uint64_t x, y;
            memcpy(&x, prev->p + keep, 8);
            memcpy(&y, cur->p + keep, 8);
            if (x != y) {
                keep += (size_t)__builtin_ctzll(x ^ y) / 8;
                break;
            }
        }
#endif
        while (keep < m && prev->p[keep] == cur->p[keep])
            keep++;
        while (keep + tail < m &&
               prev->p[prev->len - 1 - tail] == cur->p[cur->len - 1 - tail])
            tail++;
    }
    n = cur->len - keep - tail;
    o[0] = (unsigned char)keep; /* an entry is at most ENTRY_MAX < 256 */
    o[1] = (unsigned char)tail;
    o[2] = (unsigned char)n;
    memcpy(o + V2_ENTRY_HEAD, cur->p + keep, n);
    return V2_ENTRY_HEAD + n;
}

/* Build the record into a->rec: sorted, unique entries. */
static int
build_record(crdt__feedacc *a)
{
    span *s = NULL;
    size_t n = 0, out = REC_HEAD;
    unsigned char *rec;

    if (!a->all && a->n > 0) {
        s = malloc(a->n * sizeof *s);
        if (s == NULL)
            return CRDT_ENOMEM;
    }
    if (!a->all) {
        for (size_t off = 0; off < a->len; n++) {
            s[n].len = (size_t)a->buf[off] << 8 | a->buf[off + 1];
            s[n].p = a->buf + off + 2;
            off += 2 + s[n].len;
        }
        /* a merge notes its keys in key order (applyq.c): most records
         * need no sort, and one pass tells */
        size_t sorted = 1;
        while (sorted < n && span_cmp(&s[sorted - 1], &s[sorted]) <= 0)
            sorted++;
        if (sorted < n)
            qsort(s, n, sizeof *s, span_cmp);
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
            if (u == 0 || span_cmp(&s[u - 1], &s[i]) != 0)
                s[u++] = s[i];
        n = u;
        for (size_t i = 0; i < n; i++) /* at most: none coded shorter */
            out += V2_ENTRY_HEAD + s[i].len;
    }
    rec = malloc(a->all ? REC_HEAD : out);
    if (rec == NULL) {
        free(s);
        return CRDT_ENOMEM;
    }
    rec[0] = REC_V2;
    rec[1] = a->all ? 1 : 0;
    n = a->all ? 0 : n;
    rec[2] = (unsigned char)(n >> 24);
    rec[3] = (unsigned char)(n >> 16);
    rec[4] = (unsigned char)(n >> 8);
    rec[5] = (unsigned char)n;
    out = REC_HEAD;
    for (size_t i = 0; i < n; i++)
        out += code_entry(rec + out, i > 0 ? &s[i - 1] : NULL, &s[i]);
    free(s);
    a->rec = rec;
    a->rec_len = out;
    return CRDT_OK;
}

int
crdt__feed_open(crdt_replica *r, MDB_txn *txn, int create)
{
    char buf[4096];
    int rc = mdb_dbi_open(txn, "feed", create ? MDB_CREATE : 0,
                          &r->feed_dbi);

    r->feed_ok = rc == 0;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    if (r->notify_path == NULL) { /* the store may be opened twice */
        if ((size_t)snprintf(buf, sizeof buf, "%s/notify", r->path) >=
            sizeof buf)
            return CRDT_EINVAL;
        if ((r->notify_path = strdup(buf)) == NULL)
            return CRDT_ENOMEM;
    }
    /* ENOTFOUND: a store no writer opened since the feed came; a
     * read-only handle works with an empty feed (feed_retry_open()) */
    return rc == MDB_NOTFOUND ? CRDT_ENOTFOUND : CRDT_OK;
}

int
crdt__feed_write(crdt__wctx *w)
{
    crdt__feedacc *a = &w->fa;
    crdt_replica *r = w->r;
    unsigned char key[8], gen[8];
    MDB_val v, kv = { 8, key }, vv;
    uint64_t seq;
    int rc;

    if (a->oom)
        return CRDT_ENOMEM;
    if (!r->feed_ok || (!a->all && a->n == 0))
        return CRDT_OK;
    if ((rc = build_record(a)) < 0)
        return rc;
    if (crdt__meta_get(w->txn, r, "feed_gen", &v) != CRDT_OK ||
        v.mv_size != 8) {
        randombytes_buf(gen, sizeof gen);
        if ((rc = crdt__meta_put(w->txn, r, "feed_gen", gen, 8)) < 0)
            return rc;
    }
    seq = crdt__meta_u64(w->txn, r, "feed_seq") + 1;
    crdt__be64(key, seq);
    vv.mv_data = a->rec;
    vv.mv_size = a->rec_len;
    if ((rc = crdt__mdb_err(mdb_put(w->txn, r->feed_dbi, &kv, &vv, 0))) < 0)
        return rc;
    if ((rc = crdt__meta_put_u64(w->txn, r, "feed_seq", seq)) < 0)
        return rc;
    if (seq > CRDT_FEED_KEEP) { /* the oldest kept one falls out */
        crdt__be64(key, seq - CRDT_FEED_KEEP);
        rc = mdb_del(w->txn, r->feed_dbi, &kv, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return crdt__mdb_err(rc);
    }
    a->seq = seq;
    /* No feed_lock here: this txn holds the grow lock, and a callback
     * (run under feed_lock) may begin a read txn, which takes the grow
     * lock: taking feed_lock here would order the two locks both ways.
     * One who subscribes after this look is served by
     * crdt__feed_committed(), which decodes the record then. */
    if (__atomic_load_n(&r->subs, __ATOMIC_ACQUIRE) != NULL)
        /* decoded now: calling them must not fail after the commit */
        return crdt__feed_decode(a->rec, a->rec_len, seq, NULL, NULL,
                                 &a->ev, &a->ev_mem);
    return CRDT_OK;
}

/* ---- decoding ---- */

static int
str_at(const unsigned char **p, const unsigned char *end, const char **out,
       size_t *len)
{
    const unsigned char *z = memchr(*p, 0, (size_t)(end - *p));

    if (z == NULL)
        return CRDT_ECORRUPT;
    *out = (const char *)*p;
    *len = (size_t)(z - *p);
    *p = z + 1;
    return CRDT_OK;
}

/*
 * The entries of a record, one at a time (docs/storage.md 6.5): a
 * version 1 entry is read where it lies; a version 2 entry is rebuilt
 * from the one before into @out, where it stays (the event points
 * into it).
 */
typedef struct {
    const unsigned char *p, *end;
    int version;
    unsigned char *out;
    const unsigned char *prev;
    size_t prev_len;
} entry_reader;

static int
next_entry(entry_reader *r, const unsigned char **e, size_t *el)
{
    const unsigned char *p = r->p;

    if (r->version == REC_V1) {
        if (r->end - p < V1_ENTRY_HEAD)
            return CRDT_ECORRUPT;
        *el = (size_t)p[0] << 8 | p[1];
        *e = p + V1_ENTRY_HEAD;
        if (*el > (size_t)(r->end - *e))
            return CRDT_ECORRUPT;
        r->p = *e + *el;
    } else {
        size_t keep, tail, n;
        unsigned char *d = r->out;

        if (r->end - p < V2_ENTRY_HEAD)
            return CRDT_ECORRUPT;
        keep = p[0];
        tail = p[1];
        n = p[2];
        if (n > (size_t)(r->end - p - V2_ENTRY_HEAD) ||
            keep + tail > r->prev_len)
            return CRDT_ECORRUPT;
        if (keep)
            memcpy(d, r->prev, keep);
        memcpy(d + keep, p + V2_ENTRY_HEAD, n);
        if (tail)
            memcpy(d + keep + n, r->prev + r->prev_len - tail, tail);
        *e = d;
        *el = keep + n + tail;
        r->out = d + *el;
        r->p = p + V2_ENTRY_HEAD + n;
    }
    r->prev = *e;
    r->prev_len = *el;
    return CRDT_OK;
}

/* The bytes a version 2 record's @p count entries rebuild to, or
 * SIZE_MAX when its headers do not hold together. */
static size_t
v2_rebuilt_len(const unsigned char *p, const unsigned char *end,
               size_t count)
{
    size_t total = 0, prev_len = 0;

    for (size_t i = 0; i < count; i++) {
        size_t keep, tail, n;

        if (end - p < V2_ENTRY_HEAD)
            return SIZE_MAX;
        keep = p[0];
        tail = p[1];
        n = p[2];
        if (n > (size_t)(end - p - V2_ENTRY_HEAD) || keep + tail > prev_len)
            return SIZE_MAX;
        prev_len = keep + n + tail;
        if (prev_len > ENTRY_MAX) /* so the total stays bounded */
            return SIZE_MAX;
        total += prev_len;
        p += V2_ENTRY_HEAD + n;
    }
    return p == end ? total : SIZE_MAX;
}

int
crdt__feed_decode(const unsigned char *p, size_t len, uint64_t seq,
                  const char *coll, const char *doc, crdt_feed_event *ev,
                  void **mem)
{
    const unsigned char *end = p + len, *prev = NULL;
    size_t count, prev_len = 0, nd = 0, nf = 0, rebuilt = 0, min_entry;
    crdt_feed_doc *docs;
    const char **fields;
    entry_reader rd;

    *mem = NULL;
    memset(ev, 0, sizeof *ev);
    ev->commit = seq;
    if (len < REC_HEAD || len > REC_MAX_BYTES ||
        (p[0] != REC_V1 && p[0] != REC_V2) || (p[1] & ~1u) != 0)
        return CRDT_ECORRUPT;
    count = (size_t)p[2] << 24 | (size_t)p[3] << 16 | (size_t)p[4] << 8 |
            p[5];
    /* the shortest entry: 5 bytes behind its length; or its header */
    min_entry = p[0] == REC_V1 ? V1_ENTRY_HEAD + 5 : V2_ENTRY_HEAD;
    if (count > REC_MAX_ENTRIES || (p[1] && count != 0) ||
        count * min_entry > len - REC_HEAD)
        return CRDT_ECORRUPT;
    if (p[1]) {
        if (len != REC_HEAD)
            return CRDT_ECORRUPT;
        ev->everything = 1;
        return CRDT_OK;
    }
    if (count == 0)
        return CRDT_ECORRUPT; /* no record is written for no change */
    if (p[0] == REC_V2 &&
        (rebuilt = v2_rebuilt_len(p + REC_HEAD, end, count)) == SIZE_MAX)
        return CRDT_ECORRUPT;
    /* at most 65,536 entries of ENTRY_MAX bytes */
    *mem = malloc(count * (sizeof *docs + sizeof *fields) + rebuilt);
    if (*mem == NULL)
        return CRDT_ENOMEM;
    docs = *mem;
    fields = (const char **)(docs + count);
    rd.p = p + REC_HEAD;
    rd.end = end;
    rd.version = p[0];
    rd.out = (unsigned char *)(fields + count);
    rd.prev = NULL;
    rd.prev_len = 0;
    for (size_t i = 0; i < count; i++) {
        const unsigned char *e, *ee;
        const char *c, *d, *f;
        size_t el, cl, dl, fl;
        int rc;

        if (next_entry(&rd, &e, &el) < 0 || el < 5 || el > ENTRY_MAX)
            goto corrupt;
        ee = e + el;
        if (prev != NULL) { /* strictly increasing: groups are runs */
            size_t m = prev_len < el ? prev_len : el;
            int c0 = memcmp(prev, e, m);
            if (c0 > 0 || (c0 == 0 && prev_len >= el))
                goto corrupt;
        }
        prev = e;
        prev_len = el;
        if ((rc = str_at(&e, ee, &c, &cl)) < 0 ||
            (rc = str_at(&e, ee, &d, &dl)) < 0 ||
            (rc = str_at(&e, ee, &f, &fl)) < 0 || e != ee)
            goto corrupt;
        if (!crdt__name_ok_len(c, cl) ||
            !crdt__name_ok_len(d, dl) ||
            (fl > 0 && !crdt__name_ok_len(f, fl)))
            goto corrupt;
        if ((coll != NULL && strcmp(coll, c) != 0) ||
            (doc != NULL && strcmp(doc, d) != 0))
            continue;
        if (nd == 0 || strcmp(docs[nd - 1].coll, c) != 0 ||
            strcmp(docs[nd - 1].doc, d) != 0) {
            docs[nd].coll = c;
            docs[nd].doc = d;
            docs[nd].whole = 0;
            docs[nd].fields = fields + nf;
            docs[nd].nfields = 0;
            nd++;
        }
        if (fl == 0) {
            docs[nd - 1].whole = 1;
        } else {
            fields[nf++] = f;
            docs[nd - 1].nfields++;
        }
    }
    if (rd.p != end)
        goto corrupt;
    ev->docs = docs;
    ev->ndocs = nd;
    return CRDT_OK;
corrupt:
    free(*mem);
    *mem = NULL;
    return CRDT_ECORRUPT;
}

/* ---- after a commit ---- */

static void
touch_notify(crdt_replica *r)
{
    if (r->notify_path == NULL)
        return;
    if (utimensat(AT_FDCWD, r->notify_path, NULL, 0) != 0 &&
        errno == ENOENT) {
        int fd = open(r->notify_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        if (fd >= 0)
            close(fd); /* IN_CLOSE_WRITE wakes the watches */
    }
}

/* The run of @p ev's docs that @p s wants (docs are sorted by coll, doc,
 * so a collection's or a document's entries are one run). */
static int
filter_view(const crdt_feed_event *ev, const char *coll, const char *doc,
            crdt_feed_event *out)
{
    size_t i = 0, j;

    *out = *ev;
    if (ev->everything || coll == NULL)
        return ev->everything || ev->ndocs > 0;
    while (i < ev->ndocs && (strcmp(ev->docs[i].coll, coll) != 0 ||
                             (doc && strcmp(ev->docs[i].doc, doc) != 0)))
        i++;
    j = i;
    while (j < ev->ndocs && strcmp(ev->docs[j].coll, coll) == 0 &&
           (doc == NULL || strcmp(ev->docs[j].doc, doc) == 0))
        j++;
    out->docs = ev->docs + i;
    out->ndocs = j - i;
    return out->ndocs > 0;
}

void
crdt__feed_committed(crdt__wctx *w)
{
    crdt_replica *r = w->r;
    crdt__feedacc *a = &w->fa;
    crdt_feed_event ev, view;
    const crdt_replica *outer;
    void *mem = NULL;

    if (a->seq == 0) {
        crdt__feed_reset(w);
        return;
    }
    touch_notify(r);
    pthread_mutex_lock(&r->feed_lock);
    if (r->subs != NULL) {
        if (a->ev.commit == a->seq) {
            ev = a->ev;
        } else if (crdt__feed_decode(a->rec, a->rec_len, a->seq, NULL, NULL,
                                     &ev, &mem) < 0) {
            /* subscribed since the commit began, and out of memory */
            memset(&ev, 0, sizeof ev);
            ev.commit = a->seq;
            ev.everything = 1;
        }
        outer = in_callback;
        in_callback = r;
        for (crdt_feed_sub *s = r->subs; s != NULL; s = s->next)
            if (filter_view(&ev, s->coll, s->doc, &view))
                s->fn(s->ctx, &view);
        in_callback = outer;
        free(mem);
    }
    pthread_mutex_unlock(&r->feed_lock);
    crdt__feed_reset(w);
}

/* ---- subscriptions ---- */

int
crdt_feed_subscribe(crdt_feed_sub **out, crdt_replica *r, const char *coll,
                    const char *doc, crdt_feed_fn fn, void *ctx)
{
    crdt_feed_sub *s, **tail;

    if (out == NULL || r == NULL || fn == NULL || (doc && !coll) ||
        (coll && !crdt__name_ok(coll)) ||
        (doc && !crdt__name_ok(doc)))
        return CRDT_EINVAL;
    if (crdt__feed_guard(r) < 0)
        return CRDT_EBUSY;
    if ((s = calloc(1, sizeof *s)) == NULL)
        return CRDT_ENOMEM;
    s->r = r;
    s->fn = fn;
    s->ctx = ctx;
    if ((coll && (s->coll = strdup(coll)) == NULL) ||
        (doc && (s->doc = strdup(doc)) == NULL)) {
        free(s->coll);
        free(s);
        return CRDT_ENOMEM;
    }
    pthread_mutex_lock(&r->feed_lock);
    for (tail = &r->subs; *tail != NULL; tail = &(*tail)->next)
        ;
    __atomic_store_n(tail, s, __ATOMIC_RELEASE); /* crdt__feed_write() */
    pthread_mutex_unlock(&r->feed_lock);
    *out = s;
    return CRDT_OK;
}

void
crdt_feed_unsubscribe(crdt_feed_sub *s)
{
    crdt_replica *r;

    if (s == NULL)
        return;
    r = s->r;
    if (crdt__feed_guard(r) < 0)
        return; /* would wait for itself: documented */
    pthread_mutex_lock(&r->feed_lock);
    for (crdt_feed_sub **p = &r->subs; *p != NULL; p = &(*p)->next)
        if (*p == s) {
            __atomic_store_n(p, s->next, __ATOMIC_RELEASE);
            break;
        }
    pthread_mutex_unlock(&r->feed_lock);
    free(s->coll);
    free(s->doc);
    free(s);
}

/* ---- cursors ---- */

/* A read-only handle opened before any writer created the feed: look
 * again (a dbi opened in a txn that commits stays usable; LMDB wants
 * one opener at a time in a process, hence the lock). */
static void
feed_retry_open(crdt_replica *r)
{
    MDB_txn *txn;
    MDB_dbi dbi;

    if (r->feed_ok || crdt__txn_begin(r, 0, &txn) < 0)
        return;
    pthread_mutex_lock(&r->feed_lock);
    if (!r->feed_ok && mdb_dbi_open(txn, "feed", 0, &dbi) == 0) {
        if (crdt__txn_end(r, txn, 1) == CRDT_OK) {
            r->feed_dbi = dbi;
            r->feed_ok = 1;
        }
        txn = NULL;
    }
    pthread_mutex_unlock(&r->feed_lock);
    if (txn != NULL)
        crdt__txn_end(r, txn, 0);
}

static int
read_head(MDB_txn *txn, crdt_replica *r, crdt_feed_cursor *c)
{
    MDB_val v;

    memset(c, 0, sizeof *c);
    if (crdt__meta_get(txn, r, "feed_gen", &v) == CRDT_OK && v.mv_size == 8)
        memcpy(c->gen, v.mv_data, 8);
    c->seq = crdt__meta_u64(txn, r, "feed_seq");
    return CRDT_OK;
}

int
crdt_feed_head(crdt_feed_cursor *out, crdt_replica *r)
{
    MDB_txn *txn;
    int rc;

    if (out == NULL || r == NULL)
        return CRDT_EINVAL;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = read_head(txn, r, out);
    crdt__txn_end(r, txn, 0);
    return rc;
}

typedef struct {
    uint64_t seq;
    size_t off, len;
} copied;

int
crdt_feed_since(crdt_replica *r, const crdt_feed_cursor *from,
                const char *coll, const char *doc, size_t max,
                crdt_feed_fn fn, void *ctx, crdt_feed_cursor *next)
{
    static const unsigned char zero[8];
    crdt_feed_cursor head;
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char key[8];
    unsigned char *buf = NULL;
    copied *recs = NULL;
    size_t n = 0, used = 0, cap = 0;
    int rc, valid, delivered = 0;

    if (r == NULL || from == NULL || fn == NULL || next == NULL ||
        (doc && !coll))
        return CRDT_EINVAL;
    if (max == 0)
        max = SINCE_DEFAULT;
    feed_retry_open(r);
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    read_head(txn, r, &head);
    /* a zero cursor is "from the start": valid while nothing fell out */
    valid = (memcmp(from->gen, head.gen, 8) == 0 ||
             (memcmp(from->gen, zero, 8) == 0 && from->seq == 0)) &&
            from->seq <= head.seq;
    if (valid && from->seq < head.seq && r->feed_ok) {
        rc = crdt__mdb_err(mdb_cursor_open(txn, r->feed_dbi, &cur));
        if (rc == CRDT_OK) {
            crdt__be64(key, from->seq + 1);
            k.mv_size = 8;
            k.mv_data = key;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
            valid = rc == 0; /* the next one must still be kept */
            rc = rc == MDB_NOTFOUND ? CRDT_OK : crdt__mdb_err(rc);
        }
        while (rc == CRDT_OK && valid && n < max) {
            if (k.mv_size != 8) {
                rc = CRDT_ECORRUPT;
                break;
            }
            if (n > 0 && used + v.mv_size > SINCE_MAX_BYTES)
                break;
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 16;
                copied *nr = realloc(recs, nc * sizeof *nr);
                if (nr == NULL) {
                    rc = CRDT_ENOMEM;
                    break;
                }
                recs = nr;
                cap = nc;
            }
            {
                unsigned char *nb = realloc(buf, used + v.mv_size + 1);
                if (nb == NULL) {
                    rc = CRDT_ENOMEM;
                    break;
                }
                buf = nb;
            }
            recs[n].seq = crdt__rd64(k.mv_data);
            recs[n].off = used;
            recs[n].len = v.mv_size;
            memcpy(buf + used, v.mv_data, v.mv_size);
            used += v.mv_size;
            n++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            rc = rc == MDB_NOTFOUND ? 1 : crdt__mdb_err(rc);
        }
        if (rc == 1)
            rc = CRDT_OK;
        mdb_cursor_close(cur);
    } else if (valid && from->seq < head.seq) {
        valid = 0;
    }
    crdt__txn_end(r, txn, 0);
    if (rc < 0)
        goto done;

    /* called with no txn open: the callback may do anything */
    if (!valid) {
        crdt_feed_event ev = { head.seq, 1, NULL, 0 };
        *next = head;
        fn(ctx, &ev);
        rc = 1;
        goto done;
    }
    *next = head;
    next->seq = from->seq;
    for (size_t i = 0; i < n; i++) {
        crdt_feed_event ev;
        void *mem;
        int stop = 0;

        if (recs[i].seq != next->seq + 1) {
            rc = CRDT_ECORRUPT; /* seqs are consecutive */
            goto done;
        }
        rc = crdt__feed_decode(buf + recs[i].off, recs[i].len, recs[i].seq,
                               coll, doc, &ev, &mem);
        if (rc < 0)
            goto done;
        next->seq = recs[i].seq;
        if (ev.everything || ev.ndocs > 0) {
            delivered++;
            stop = fn(ctx, &ev);
        }
        free(mem);
        if (stop)
            break;
    }
    rc = delivered;
done:
    free(buf);
    free(recs);
    return rc;
}

void
crdt_feed_cursor_format(char *buf, const crdt_feed_cursor *c)
{
    char hex[17];

    crdt_hex(hex, c->gen, 8);
    snprintf(buf, CRDT_FEED_CURSOR_CHARS, "%s.%" PRIu64, hex, c->seq);
}

int
crdt_feed_cursor_parse(crdt_feed_cursor *out, const char *s)
{
    char hex[17];
    uint64_t seq = 0;
    const char *p;

    if (out == NULL || s == NULL || strlen(s) < 18 || s[16] != '.')
        return CRDT_EINVAL;
    memcpy(hex, s, 16);
    hex[16] = 0;
    for (p = s + 17; *p; p++) {
        if (*p < '0' || *p > '9' || seq > (UINT64_MAX - 9) / 10 ||
            p - (s + 17) >= 20)
            return CRDT_EINVAL;
        seq = seq * 10 + (uint64_t)(*p - '0');
    }
    if (crdt_unhex(out->gen, 8, hex) < 0)
        return CRDT_EINVAL;
    out->seq = seq;
    return CRDT_OK;
}

/* ---- watches ---- */

static uint64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct crdt_feed_watch {
    int fd;
};

int
crdt_feed_watch_open(crdt_feed_watch **out, const char *dir)
{
#ifdef __linux__
    crdt_feed_watch *w;
    struct stat st;

    if (out == NULL || dir == NULL)
        return CRDT_EINVAL;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? CRDT_ENOTFOUND : crdt__mdb_err(errno);
    if ((w = calloc(1, sizeof *w)) == NULL)
        return CRDT_ENOMEM;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0) {
        free(w);
        return errno == ENOMEM ? CRDT_ENOMEM : CRDT_EIO;
    }
    /* the directory, not the file: it may not exist yet, and a watcher
     * needs no write access. data.mdb's writes are IN_MODIFY (not
     * asked for); lock.mdb is written through a map (no events). */
    if (inotify_add_watch(w->fd, dir, IN_ATTRIB | IN_CREATE | IN_MOVED_TO |
                                          IN_CLOSE_WRITE) < 0) {
        int e = errno;
        close(w->fd);
        free(w);
        return e == ENOENT ? CRDT_ENOTFOUND : crdt__mdb_err(e);
    }
    *out = w;
    return CRDT_OK;
#else
    (void)out;
    (void)dir;
    return CRDT_EPERM;
#endif
}

int
crdt_feed_watch_fd(const crdt_feed_watch *w)
{
    return w ? w->fd : -1;
}

#ifdef __linux__
/* Drain the queue; 1 if an event was about the notify file. */
static int
drain(crdt_feed_watch *w)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int hit = 0;
    ssize_t n;

    while ((n = read(w->fd, buf, sizeof buf)) > 0) {
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *e = (const void *)p;
            if (e->len == 0 || strcmp(e->name, "notify") == 0)
                hit = 1; /* len 0: the queue overflowed; assume a commit */
            p += sizeof *e + e->len;
        }
    }
    return hit;
}
#endif

void
crdt_feed_watch_clear(crdt_feed_watch *w)
{
#ifdef __linux__
    if (w != NULL)
        (void)drain(w);
#else
    (void)w;
#endif
}

int
crdt_feed_watch_wait(crdt_feed_watch *w, int timeout_ms)
{
#ifdef __linux__
    uint64_t until = 0;

    if (w == NULL)
        return CRDT_EINVAL;
    if (timeout_ms >= 0)
        until = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        struct pollfd p = { w->fd, POLLIN, 0 };
        int left = -1, rc;

        if (timeout_ms >= 0) {
            uint64_t now = mono_ms();
            left = now >= until ? 0 : (int)(until - now);
        }
        rc = poll(&p, 1, left);
        if (rc < 0)
            return errno == EINTR ? 0 : CRDT_EIO;
        if (rc == 0)
            return 0;
        if (drain(w))
            return 1;
        if (left == 0)
            return 0;
    }
#else
    (void)w;
    (void)timeout_ms;
    return CRDT_EPERM;
#endif
}

void
crdt_feed_watch_close(crdt_feed_watch *w)
{
    if (w == NULL)
        return;
#ifdef __linux__
    close(w->fd);
#endif
    free(w);
}
