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
 *
 * Reading the records (decoding, crdt_feed_since(), watches):
 * feed_read.c; the record layout both share: feed_int.h.
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
#include "feed_int.h"

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
    rc = crdt__meta_get(w->txn, r, "feed_gen", &v);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (rc == CRDT_ENOTFOUND || v.mv_size != 8) {
        randombytes_buf(gen, sizeof gen);
        if ((rc = crdt__meta_put(w->txn, r, "feed_gen", gen, 8)) < 0)
            return rc;
    }
    if ((rc = crdt__meta_u64(w->txn, r, "feed_seq", &seq)) < 0)
        return rc;
    seq++;
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
