/*
 * pagecheck.c: checking LMDB's data file before LMDB reads it.
 *
 * LMDB trusts its file: a truncated data.mdb makes the first read past
 * the end a SIGBUS, and a damaged page (bad offsets, a child page number
 * past the end) a SIGSEGV or a wild read inside a cursor. So before any
 * LMDB call reads a page, two checks read the file with pread() (which
 * fails, never faults) and answer CRDT_ECORRUPT with a reason:
 *
 *  (1) crdt__store_precheck(), before mdb_env_open(): both meta pages
 *      (0 and 1) parse, and the file holds every page up to the newest
 *      meta's last page. If exactly one meta page is damaged and the
 *      other is sound, the damaged one is rewritten as a copy of the
 *      sound one (LMDB refuses a file with any damaged meta page): the
 *      replica opens at the sound page's commit, which is the latest or
 *      the one before it, and the caller is told (a warning).
 *  (2) crdt__store_walk(), in a read txn (so no writer reuses the pages
 *      it walks): every B-tree of the snapshot (the free list, the main
 *      database, each named database), page by page: the page number in
 *      the header, its kind, the bounds of its pointer array and of each
 *      node, keys in order, overflow runs inside the file, the depth.
 *      It stops after a budget of pages (the caller's choice): a walk of
 *      every page reads the whole file. It reads through a read-only map
 *      of the file (pread() if mapping fails), only at page numbers up
 *      to the snapshot's last page, which the file's length was checked
 *      to hold.
 *
 * The layout read here is LMDB 0.9's on-disk format (lmdb.h's
 * MDB_DATA_VERSION 1, 64-bit pgno_t and size_t), which every 0.9 release
 * keeps.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

#define MAGIC 0xBEEFC0DEu
#define DATA_VERSION 1u
#define HDR 16        /* page header: pgno, pad, flags, lower, upper */
#define P_BRANCH 0x01
#define P_LEAF 0x02
#define P_OVERFLOW 0x04
#define P_META 0x08
#define P_KIND 0x6f   /* the kind bits; 0x10 dirty, 0x4000/0x8000 are not */
#define F_BIGDATA 0x01
#define F_SUBDATA 0x02
#define NODE 8        /* node header: lo, hi, flags, ksize */
#define DB_BYTES 48   /* MDB_db */
#define P_INVALID UINT64_MAX
#define DEPTH_MAX 32
#define LAST_PG_MAX ((uint64_t)1 << 47)

typedef struct {
    uint32_t psize;
    uint64_t txnid, last_pg;
    uint64_t root[2]; /* FREE_DBI, MAIN_DBI */
    uint16_t depth[2];
} meta;

typedef struct {
    int fd;
    uint32_t psize;
    uint64_t last_pg, size_pages;
    uint64_t budget, seen;
    int ordered; /* keys compare as bytes (the free list's are integers) */
    const unsigned char *map; /* the file mapped read-only, or NULL */
    uint64_t map_len;
    unsigned char *page, *prev_key;
    size_t prev_len, prev_cap;
    /* one page buffer per level (a parent's stays valid under its
     * children); a named database's tree starts again at level 1 */
    unsigned char *bufs[2 * (DEPTH_MAX + 1)];
    int level;
    char *why;
    size_t why_len;
} walker;

static uint16_t
rd16(const unsigned char *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t
rd32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t
rdu64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int
crdt__corrupt(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return CRDT_ECORRUPT;
}

/* Read exactly @p n bytes at @p off; CRDT_ECORRUPT if the file ends. */
static int
read_at(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;

    while (got < n) {
        ssize_t k = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return crdt__mdb_err(errno);
        if (k == 0)
            return CRDT_ECORRUPT;
        got += (size_t)k;
    }
    return CRDT_OK;
}

/* Parse meta page @p i from its first bytes; 0 sound, -1 damaged. */
static int
meta_parse(meta *m, const unsigned char *p, uint64_t i)
{
    const unsigned char *mm = p + HDR;
    uint32_t ps = rd32(mm + 24);

    memset(m, 0, sizeof *m);
    if (rdu64(p) != i || (rd16(p + 10) & P_KIND) != P_META ||
        rd32(mm) != MAGIC || rd32(mm + 4) != DATA_VERSION)
        return -1;
    if (ps < 512 || ps > 65536 || (ps & (ps - 1)) != 0)
        return -1;
    m->psize = ps;
    m->depth[0] = rd16(mm + 30);
    m->root[0] = rdu64(mm + 64);
    m->depth[1] = rd16(mm + 78);
    m->root[1] = rdu64(mm + 112);
    m->last_pg = rdu64(mm + 120);
    m->txnid = rdu64(mm + 128);
    /* bounded so that (last_pg + 1) * psize, the file length it needs,
     * cannot wrap around (2^47 pages of 64 KiB is 2^63 bytes) */
    if (m->last_pg < 1 || m->last_pg >= LAST_PG_MAX ||
        m->depth[0] > DEPTH_MAX || m->depth[1] > DEPTH_MAX)
        return -1;
    for (int d = 0; d < 2; d++)
        if (m->root[d] != P_INVALID &&
            (m->root[d] < 2 || m->root[d] > m->last_pg || m->depth[d] < 1))
            return -1;
    return 0;
}

/* The first 4096 bytes of meta pages 0 and 1 (a meta page is one page,
 * and page 1 starts at the page size that page 0 gives, or 4096 when
 * page 0 is damaged). */
static int
metas_read(int fd, unsigned char pages[2][4096], meta m[2], int ok[2])
{
    int rc = read_at(fd, pages[0], 4096, 0);
    uint64_t off = 4096;

    if (rc < 0)
        return rc;
    ok[0] = meta_parse(&m[0], pages[0], 0) == 0;
    if (ok[0])
        off = m[0].psize;
    if ((rc = read_at(fd, pages[1], 4096, off)) < 0)
        return rc;
    ok[1] = meta_parse(&m[1], pages[1], 1) == 0;
    if (ok[0] && ok[1] && m[0].psize != m[1].psize)
        ok[1] = 0;
    return CRDT_OK;
}

/* The same two meta pages in an image of @p len bytes in memory.
 * @return 1 when both lie inside it, 0 when it ends inside them (then
 * @p ok says which of them could still be parsed). */
static int
metas_parse(const unsigned char *img, size_t len, meta m[2], int ok[2])
{
    size_t off = 4096;

    ok[0] = ok[1] = 0;
    if (len < 4096)
        return 0;
    if ((ok[0] = meta_parse(&m[0], img, 0) == 0))
        off = m[0].psize;
    if (off > len || len - off < 4096)
        return 0;
    ok[1] = meta_parse(&m[1], img + off, 1) == 0;
    if (ok[0] && ok[1] && m[0].psize != m[1].psize)
        ok[1] = 0;
    return 1;
}

/* Which meta page LMDB opens: the sound one with the higher txnid (at
 * least one of @p ok is set). */
static int
newest_meta(const meta m[2], const int ok[2])
{
    return ok[0] && ok[1] ? (m[1].txnid > m[0].txnid) : ok[1];
}

int
crdt__store_precheck(const char *path, int may_repair, crdt_open_report *rep)
{
    char file[4096 + 16];
    unsigned char pages[2][4096];
    meta m[2];
    int ok[2], fd, rc, cur;
    struct stat st;
    char *why = rep ? rep->damage : NULL;
    size_t wl = rep ? sizeof rep->damage : 0;

    if ((size_t)snprintf(file, sizeof file, "%s/data.mdb", path) >=
        sizeof file)
        return CRDT_EINVAL;
    fd = open(file, (may_repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 && may_repair && (errno == EACCES || errno == EROFS))
        fd = open(file, O_RDONLY | O_CLOEXEC), may_repair = 0;
    if (fd < 0)
        return errno == ENOENT ? CRDT_ENOTFOUND : crdt__mdb_err(errno);
    if (fstat(fd, &st) != 0) {
        rc = crdt__mdb_err(errno);
        goto out;
    }
    if (st.st_size == 0) {
        rc = CRDT_OK; /* a store being created: LMDB writes its metas */
        goto out;
    }
    /* a meta page is written in one small pwrite() while we may read it:
     * a damaged one is read again before it counts as damaged */
    for (int tries = 0;; tries++) {
        if ((rc = metas_read(fd, pages, m, ok)) < 0) {
            crdt__corrupt(why, wl, "the data file ends inside its meta pages (%" PRIu64 " "
                "bytes)", (uint64_t)st.st_size);
            goto out;
        }
        if ((ok[0] && ok[1]) || tries == 3)
            break;
        usleep(10000);
    }
    if (!ok[0] && !ok[1]) {
        rc = crdt__corrupt(why, wl, "both LMDB meta pages are damaged");
        goto out;
    }
    cur = newest_meta(m, ok);
    if ((uint64_t)st.st_size / m[cur].psize < m[cur].last_pg + 1) {
        rc = crdt__corrupt(why, wl, "the data file is truncated: %" PRIu64 " bytes, its "
                 "last commit uses %" PRIu64 "", (uint64_t)st.st_size,
                 (m[cur].last_pg + 1) * m[cur].psize);
        goto out;
    }
    if (ok[0] && ok[1]) {
        rc = CRDT_OK;
        goto out;
    }
    /* exactly one is damaged: (1), rewrite it from the other */
    if (!may_repair) {
        rc = crdt__corrupt(why, wl, "LMDB meta page %" PRIu64 " is damaged and the "
                 "file is read-only here (writable, an open restores it "
                 "from meta page %" PRIu64 ")",
                 (uint64_t)!cur, (uint64_t)cur);
        goto out;
    }
    {
        unsigned char *pg = calloc(1, m[cur].psize);
        uint64_t bad = !cur;

        if (pg == NULL) {
            rc = CRDT_ENOMEM;
            goto out;
        }
        rc = read_at(fd, pg, m[cur].psize, (uint64_t)cur * m[cur].psize);
        if (rc == CRDT_OK) {
            memcpy(pg, &bad, 8); /* the page number in its header */
            if (pwrite(fd, pg, m[cur].psize, (off_t)(bad * m[cur].psize)) !=
                    (ssize_t)m[cur].psize ||
                fdatasync(fd) != 0)
                rc = crdt__mdb_err(errno);
        }
        free(pg);
        if (rc == CRDT_OK && rep != NULL) {
            rep->meta_restored = 1;
            rep->meta_txnid = m[cur].txnid;
            crdt__corrupt(why, wl, "LMDB meta page %" PRIu64 " was damaged; restored from "
                "meta page %" PRIu64 "", bad, (uint64_t)cur);
        }
    }
out:
    close(fd);
    return rc;
}

/* A page read: from the map when there is one (no syscall per page;
 * every offset read is inside the file's length, checked first), else
 * with pread(). */
static int
wread(walker *w, void *buf, size_t n, uint64_t off)
{
    if (w->map == NULL)
        return read_at(w->fd, buf, n, off);
    if (off > w->map_len || n > w->map_len - off)
        return CRDT_ECORRUPT;
    memcpy(buf, w->map + off, n);
    return CRDT_OK;
}

static int
cmp_keys(const unsigned char *a, size_t al, const unsigned char *b,
         size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c ? c : (al > bl) - (al < bl);
}

static int walk_tree(walker *w, uint64_t pgno, int depth, int want_depth,
                     int main_db);

static int
check_overflow(walker *w, uint64_t pgno, uint64_t dsize)
{
    unsigned char h[HDR];
    uint32_t pages;
    int rc;

    if (pgno < 2 || pgno > w->last_pg)
        return crdt__corrupt(w->why, w->why_len, "overflow page %" PRIu64 " is past the "
                   "last page %" PRIu64 "", pgno, w->last_pg);
    if ((rc = wread(w, h, HDR, pgno * w->psize)) < 0)
        return rc == CRDT_ECORRUPT
                   ? crdt__corrupt(w->why, w->why_len, "overflow page %" PRIu64
                         " is past the end of the file", pgno)
                   : rc;
    pages = rd32(h + 12);
    if (rdu64(h) != pgno || (rd16(h + 10) & P_KIND) != P_OVERFLOW ||
        pages == 0 || pgno + pages - 1 > w->last_pg ||
        dsize > (uint64_t)pages * w->psize - HDR)
        return crdt__corrupt(w->why, w->why_len, "damaged overflow page %" PRIu64 " "
                   "(%" PRIu32 " pages)", pgno, pages);
    w->seen += pages;
    return CRDT_OK;
}

/* Check the page in w->page (number @p pgno); recurse into children. */
static int
check_page(walker *w, uint64_t pgno, int depth, int want_depth, int main_db)
{
    unsigned char *p = w->page;
    uint16_t flags = rd16(p + 10) & P_KIND, lower = rd16(p + 12),
             upper = rd16(p + 14);
    int leaf = depth == want_depth, n, rc;
    uint64_t *kids = NULL;
    size_t nk = 0;

    if (rdu64(p) != pgno || flags != (leaf ? P_LEAF : P_BRANCH) ||
        lower < HDR || upper > w->psize || lower > upper ||
        ((lower - HDR) & 1) != 0)
        return crdt__corrupt(w->why, w->why_len, "damaged page %" PRIu64 " (header, at "
                   "depth %" PRIu64 ")", pgno, (uint64_t)depth);
    n = (lower - HDR) / 2;
    /* LMDB never keeps an empty page in a tree (a database that empties
     * gets no root), and reads an empty leaf's first node from the bytes
     * past its pointer array: a page pointer into anything */
    if (n == 0)
        return crdt__corrupt(w->why, w->why_len, "damaged page %" PRIu64 " (an empty %s)",
                   pgno, leaf ? "leaf" : "branch");
    w->prev_len = SIZE_MAX; /* no key before this page's first */
    if (!leaf && (kids = malloc((size_t)n * sizeof *kids)) == NULL)
        return CRDT_ENOMEM;
    for (int i = 0; i < n; i++) {
        uint16_t off = rd16(p + HDR + 2 * i);
        const unsigned char *node = p + off;
        uint16_t nf, ks;
        uint64_t ds;

        if (off < upper || (uint32_t)off + NODE > w->psize)
            goto bad;
        nf = rd16(node + 4);
        ks = rd16(node + 6);
        if ((uint32_t)off + NODE + ks > w->psize)
            goto bad;
        if (i > 0 || leaf) { /* a branch's first key is empty */
            if (w->ordered && w->prev_len != SIZE_MAX &&
                cmp_keys(w->prev_key, w->prev_len, node + NODE, ks) >= 0)
                goto bad;
            if (w->prev_key == NULL || w->prev_cap < ks) {
                unsigned char *k = realloc(w->prev_key, ks ? ks : 1);
                if (k == NULL) {
                    free(kids);
                    return CRDT_ENOMEM;
                }
                w->prev_key = k;
                w->prev_cap = ks ? ks : 1;
            }
            memcpy(w->prev_key, node + NODE, ks);
            w->prev_len = ks;
        }
        if (!leaf) {
            kids[nk++] = (uint64_t)rd16(node) | (uint64_t)rd16(node + 2) << 16 |
                         (uint64_t)nf << 32;
            continue;
        }
        ds = (uint64_t)rd16(node) | (uint64_t)rd16(node + 2) << 16;
        if (nf & ~(F_BIGDATA | F_SUBDATA))
            goto bad; /* no database of ours is DUPSORT */
        if (nf & F_BIGDATA) {
            if ((uint32_t)off + NODE + ks + 8 > w->psize || (nf & F_SUBDATA))
                goto bad;
            if ((rc = check_overflow(w, rdu64(node + NODE + ks), ds)) < 0) {
                free(kids);
                return rc;
            }
            continue;
        }
        if ((uint64_t)off + NODE + ks + ds > w->psize)
            goto bad;
        if (nf & F_SUBDATA) {
            const unsigned char *db = node + NODE + ks;
            uint64_t root;
            uint16_t d;

            if (!main_db || ds != DB_BYTES)
                goto bad;
            root = rdu64(db + 40);
            d = rd16(db + 6);
            if (root == P_INVALID)
                continue;
            if (d < 1 || d > DEPTH_MAX)
                goto bad;
            /* the named database's own keys start a new order */
            unsigned char *save_key = w->prev_key;
            size_t save_len = w->prev_len, save_cap = w->prev_cap;
            int save_ordered = w->ordered;
            w->prev_key = NULL;
            w->prev_cap = 0;
            w->ordered = 1;
            w->level = DEPTH_MAX + 1; /* past the main tree's buffers */
            rc = walk_tree(w, root, 1, d, 0);
            w->level = 0;
            free(w->prev_key);
            w->prev_key = save_key;
            w->prev_len = save_len;
            w->prev_cap = save_cap;
            w->ordered = save_ordered;
            if (rc < 0) {
                free(kids);
                return rc;
            }
        }
    }
    if (!leaf) {
        rc = CRDT_OK;
        for (size_t i = 0; i < nk && rc == CRDT_OK; i++)
            rc = walk_tree(w, kids[i], depth + 1, want_depth, main_db);
        free(kids);
        return rc;
    }
    return CRDT_OK;
bad:
    free(kids);
    return crdt__corrupt(w->why, w->why_len, "damaged page %" PRIu64 " (its nodes, at depth "
               "%" PRIu64 ")", pgno, (uint64_t)depth);
}

static int
walk_tree(walker *w, uint64_t pgno, int depth, int want_depth, int main_db)
{
    unsigned char *mine;
    int rc;

    if (w->seen >= w->budget)
        return CRDT_OK; /* the caller's budget: the rest is not checked */
    if (pgno < 2 || pgno > w->last_pg)
        return crdt__corrupt(w->why, w->why_len, "page number %" PRIu64 " is past the last "
                   "page %" PRIu64 "", pgno, w->last_pg);
    if (depth > want_depth || depth > DEPTH_MAX)
        return crdt__corrupt(w->why, w->why_len, "damaged page %" PRIu64 " (deeper than its "
                   "tree, %" PRIu64 ")", pgno, (uint64_t)want_depth);
    w->seen++;
    /* each level reads into its own buffer: the parent's stays valid */
    {
        int at = w->level + depth;
        if (at >= (int)(sizeof w->bufs / sizeof w->bufs[0]))
            return crdt__corrupt(w->why, w->why_len, "damaged page %" PRIu64 " (named "
                       "databases nested too deep)", pgno);
        if (w->bufs[at] == NULL && (w->bufs[at] = malloc(w->psize)) == NULL)
            return CRDT_ENOMEM;
        mine = w->bufs[at];
    }
    if ((rc = wread(w, mine, w->psize, pgno * w->psize)) < 0) {
        return rc == CRDT_ECORRUPT
                   ? crdt__corrupt(w->why, w->why_len, "page %" PRIu64 " is past the end of "
                         "the file", pgno)
                   : rc;
    }
    {
        unsigned char *save = w->page;
        w->page = mine;
        rc = check_page(w, pgno, depth, want_depth, main_db);
        w->page = save;
    }
    return rc;
}

/* Walk both trees of meta @p m (the free list, the main database and
 * its named databases) with @p w set up to read the snapshot's pages. */
static int
walk_snapshot(walker *w, const meta *m)
{
    int rc = CRDT_OK;

    for (int d = 0; d < 2 && rc == CRDT_OK; d++) {
        if (m->root[d] == P_INVALID)
            continue;
        w->ordered = d == 1;
        rc = walk_tree(w, m->root[d], 1, m->depth[d], d == 1);
    }
    return rc;
}

static void
walker_free(walker *w)
{
    free(w->prev_key);
    for (size_t i = 0; i < sizeof w->bufs / sizeof w->bufs[0]; i++)
        free(w->bufs[i]);
}

int
crdt__pagecheck_image(const unsigned char *img, size_t len,
                      uint64_t max_pages, int *cur_out, char *why,
                      size_t why_len)
{
    meta m[2];
    int ok[2], cur, rc;
    walker w;

    if (why != NULL && why_len > 0)
        why[0] = '\0';
    if (img == NULL && len > 0)
        return CRDT_EINVAL;
    /* the checks of crdt__store_precheck(), on bytes in memory: each
     * meta page is read from its first 4096 bytes */
    if (!metas_parse(img, len, m, ok))
        return crdt__corrupt(why, why_len, "the data file ends inside its meta pages "
                   "(%zu bytes)", len);
    if (!ok[0] && !ok[1])
        return crdt__corrupt(why, why_len, "both LMDB meta pages are damaged");
    cur = newest_meta(m, ok);
    if ((uint64_t)len / m[cur].psize < m[cur].last_pg + 1)
        return crdt__corrupt(why, why_len, "the data file is truncated: %zu bytes, its "
                   "last commit uses %" PRIu64, len,
                   (m[cur].last_pg + 1) * m[cur].psize);
    if (cur_out != NULL)
        *cur_out = ok[0] && ok[1] ? 2 : cur;
    /* (2) on the newest sound meta page's snapshot */
    memset(&w, 0, sizeof w);
    w.fd = -1;
    w.map = img;
    w.map_len = len;
    w.psize = m[cur].psize;
    w.last_pg = m[cur].last_pg;
    w.budget = max_pages ? max_pages : UINT64_MAX;
    w.why = why;
    w.why_len = why_len;
    rc = walk_snapshot(&w, &m[cur]);
    walker_free(&w);
    return rc;
}

int
crdt__pagecheck_newest(const unsigned char *img, size_t len,
                       crdt__newest_meta *out)
{
    meta m[2];
    int ok[2], cur;

    (void)metas_parse(img, len, m, ok); /* a short image: what it holds */
    if (!ok[0] && !ok[1])
        return CRDT_ECORRUPT;
    cur = newest_meta(m, ok);
    out->txnid = m[cur].txnid;
    out->last_pg = m[cur].last_pg;
    out->psize = m[cur].psize;
    return CRDT_OK;
}

int
crdt__store_walk(crdt_replica *r, uint64_t max_pages, char *why,
                 size_t why_len)
{
    char file[4096 + 16];
    unsigned char pages[2][4096];
    meta m[2];
    int ok[2], fd, rc = CRDT_EIO;
    walker w;

    if ((size_t)snprintf(file, sizeof file, "%s/data.mdb", r->path) >=
        sizeof file)
        return CRDT_EINVAL;
    if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
        return crdt__mdb_err(errno);
    memset(&w, 0, sizeof w);
    w.fd = fd;
    w.budget = max_pages ? max_pages : UINT64_MAX;
    w.why = why;
    w.why_len = why_len;
    /* the snapshot of a read txn: its pages are not reused while it
     * lives; its meta page is the one holding its txn id, unless two
     * commits came since it began (then begin again) */
    for (int tries = 0; tries < 8; tries++) {
        MDB_txn *txn;
        uint64_t id;
        int cur = -1;

        if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
            break;
        id = (uint64_t)mdb_txn_id(txn);
        rc = metas_read(fd, pages, m, ok);
        for (int i = 0; rc == CRDT_OK && i < 2; i++)
            if (ok[i] && m[i].txnid == id)
                cur = i;
        if (rc == CRDT_OK && cur < 0) {
            crdt__txn_end(r, txn, 0);
            rc = CRDT_ECORRUPT;
            crdt__corrupt(why, why_len, "no sound LMDB meta page holds the current "
                "commit %" PRIu64, id);
            continue;
        }
        if (rc == CRDT_OK) {
            struct stat st;
            w.psize = m[cur].psize;
            w.last_pg = m[cur].last_pg;
            if (fstat(fd, &st) != 0) {
                rc = crdt__mdb_err(errno);
            } else if ((uint64_t)st.st_size / w.psize < w.last_pg + 1) {
                rc = crdt__corrupt(why, why_len, "the data file is truncated: %" PRIu64
                         " bytes, its last commit uses %" PRIu64,
                         (uint64_t)st.st_size, (w.last_pg + 1) * w.psize);
            } else {
                /* only pages up to last_pg are read, all inside the file
                 * (a file cut short meanwhile by someone else is what the
                 * CLI's fault handler is for) */
                void *p = mmap(NULL, (size_t)st.st_size, PROT_READ,
                               MAP_SHARED, fd, 0);
                if (p != MAP_FAILED) {
                    w.map = p;
                    w.map_len = (uint64_t)st.st_size;
                }
            }
        }
        if (rc == CRDT_OK)
            rc = walk_snapshot(&w, &m[cur]);
        crdt__txn_end(r, txn, 0);
        break;
    }
    if (w.map != NULL)
        munmap((void *)w.map, (size_t)w.map_len);
    walker_free(&w);
    close(fd);
    return rc;
}

int
crdt_replica_check(crdt_replica *r, uint64_t max_pages, char *why,
                   size_t why_len)
{
    if (r == NULL)
        return CRDT_EINVAL;
    if (why != NULL && why_len > 0)
        why[0] = '\0';
    return crdt__store_walk(r, max_pages, why, why_len);
}
