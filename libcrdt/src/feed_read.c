/*
 * feed_read.c: reading the change feed (crdt/feed.h): a record decoded
 * into an event (the decoder's size limits, both record versions), the
 * records since a cursor (crdt_feed_since(), cursors as text) and
 * watches that wake on another process's commits (DIR/notify, inotify).
 * feed.c writes the records and calls this process's subscribers.
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

    int rc;

    memset(c, 0, sizeof *c);
    rc = crdt__meta_get(txn, r, "feed_gen", &v);
    if (rc == CRDT_OK && v.mv_size == 8)
        memcpy(c->gen, v.mv_data, 8);
    else if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    return crdt__meta_u64(txn, r, "feed_seq", &c->seq);
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
    if ((rc = read_head(txn, r, &head)) < 0) {
        crdt__txn_end(r, txn, 0);
        return rc;
    }
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
