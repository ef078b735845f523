/*
 * state.c: applying one op to the materialized state, and the state hash.
 *
 * State keys (docs/storage.md): coll 0 doc 0 [field 0 KIND ...]
 *   coll 0 doc 0                      doc tombstone: hlc(8) actor(8)
 *   ... field 0 'R'                   register: hlc(8) actor(8) scalar
 *                                     (scalar 0xc1 = field tombstone)
 *   ... field 0 'C' actor(8)          counter part: count(8) sum(8)
 *                                     last_seq(8)
 *   ... field 0 'D' actor(8)          counter part removed: count sum
 *   ... field 0 'S' elem actor seq    set tag: 1 live, 0 removed
 *
 * Merge rules, each commutative, associative and idempotent:
 *  (1) registers and the doc tombstone keep the max (hlc, actor) stamp,
 *      and a register under one stamp the value whose bytes sort last;
 *  (2) a counter part grows by one op at a time in seq order, and only
 *      for a seq above the last one it counted (so an op applied again,
 *      e.g. after a reset to a snapshot that holds it, is a no-op); a
 *      removed part keeps the observation with the highest count, and
 *      at equal counts the highest sum (as a u64);
 *  (3) a set tag goes 1 -> 0 only (a removed tag never comes back);
 *  (4) a document's first entry brings a born mark where its collection
 *      keeps lens defaults (mark_newborn() below);
 *  so two replicas that applied the same ops hold byte-identical state,
 *  and the multiset hash over (key, value) pairs is equal.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "hashq.h"
#include "internal.h"
#include "seq.h"
#include "state_keys.h"
#include "txn_group.h"

/* ---- multiset hash: a sum of per-entry hashes in four 64-bit lanes ----
 *
 * Store format 2 hashes an entry with two SipHash-2-4-128 (fixed public
 * keys, one per lane pair); format 1 used BLAKE2b-256, twice as slow, and
 * is kept only to check backups taken by format 1. The sum is a check
 * that two replicas hold the same state, not a commitment against an
 * adversary: an additive sum of 64-bit lanes admits crafted collisions
 * (generalized birthday) whatever the entry hash, so a keyed PRF with a
 * public key loses nothing a cryptographic hash would give here.
 * docs/storage.md, "The state hash", defines the bytes.
 */
#define ENTRY_INLINE 1024 /* longer entries are hashed via BLAKE2b first */

static const unsigned char LANE_KEY[2][16] = {
    { 's', 't', 'r', 'a', 't', 'a', '-', 's', 't', 'a', 't', 'e', '-', 'l',
      '0', '1' },
    { 's', 't', 'r', 'a', 't', 'a', '-', 's', 't', 'a', 't', 'e', '-', 'l',
      '2', '3' },
};

/* The hashed bytes: klen (2, big-endian) | key | value. Into @p buf when
 * they fit; otherwise their BLAKE2b-256 goes there. Returns the length. */
static size_t
entry_bytes(unsigned char *buf, const void *k, size_t kl, const void *v,
            size_t vl)
{
    unsigned char len[2] = { (unsigned char)(kl >> 8), (unsigned char)kl };
    crypto_generichash_state st;

    if (2 + kl + vl <= ENTRY_INLINE)
        return crdt__entry_bytes_put(buf, k, kl, v, vl);
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, len, 2);
    crypto_generichash_update(&st, k, kl);
    crypto_generichash_update(&st, v, vl);
    crypto_generichash_final(&st, buf, 32);
    return 32;
}

static void
lanes_of(uint64_t out[4], const unsigned char h[32])
{
    for (int i = 0; i < 4; i++) {
        uint64_t x = 0;
        for (int j = 7; j >= 0; j--)
            x = (x << 8) | h[i * 8 + j];
        out[i] = x;
    }
}

void
crdt__hash_entry(uint64_t out[4], const void *k, size_t kl, const void *v,
                 size_t vl)
{
    unsigned char buf[ENTRY_INLINE];
    size_t n = entry_bytes(buf, k, kl, v, vl);

    crdt__hash_entry_bytes(out, buf, n);
}

size_t
crdt__entry_bytes_put(unsigned char *dst, const void *k, size_t kl,
                      const void *v, size_t vl)
{
    dst[0] = (unsigned char)(kl >> 8);
    dst[1] = (unsigned char)kl;
    memcpy(dst + 2, k, kl);
    if (vl)
        memcpy(dst + 2 + kl, v, vl);
    return 2 + kl + vl;
}

void
crdt__hash_entry_bytes(uint64_t out[4], const unsigned char *e, size_t n)
{
    /* = crypto_shorthash_siphashx24 under each key, read little-endian */
    crdt__siphash128x2(out, e, n, LANE_KEY[0], LANE_KEY[1]);
}

void
crdt__hash_entry_v1(uint64_t out[4], const void *k, size_t kl,
                    const void *v, size_t vl)
{
    unsigned char h[32], len[2] = { (unsigned char)(kl >> 8),
                                    (unsigned char)kl };
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, len, 2);
    crypto_generichash_update(&st, k, kl);
    crypto_generichash_update(&st, v, vl);
    crypto_generichash_final(&st, h, sizeof h);
    lanes_of(out, h);
}

int
crdt__state_rehash(MDB_txn *txn, MDB_dbi dbi, int format,
                   unsigned char out[32])
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t acc[4] = { 0 }, h[4];
    int rc;

    if ((rc = crdt__mdb_err(mdb_cursor_open(txn, dbi, &cur))) < 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (format == 1)
            crdt__hash_entry_v1(h, k.mv_data, k.mv_size, v.mv_data,
                                v.mv_size);
        else
            crdt__hash_entry(h, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        for (int i = 0; i < 4; i++)
            acc[i] += h[i];
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    crdt__acc_bytes(out, acc);
    return CRDT_OK;
}

void
crdt__acc_bytes(unsigned char out[32], const uint64_t acc[4])
{
    for (int i = 0; i < 4; i++)
        crdt__be64(out + 8 * i, acc[i]);
}

void
crdt__acc_load(uint64_t acc[4], const unsigned char in[32])
{
    for (int i = 0; i < 4; i++)
        acc[i] = crdt__rd64(in + 8 * i);
}

static void
acc_add(crdt__wctx *w, const void *k, size_t kl, const void *v, size_t vl,
        int sign)
{
    uint64_t h[4];

    w->acc_dirty = 1;
    if (w->hq != NULL && crdt__hashq_add(w->hq, k, kl, v, vl, sign))
        return;
    crdt__hash_entry(h, k, kl, v, vl);
    for (int i = 0; i < 4; i++)
        w->acc[i] = sign > 0 ? w->acc[i] + h[i] : w->acc[i] - h[i];
}

void
crdt__wctx_hash_settle(crdt__wctx *w)
{
    if (w->hq != NULL)
        crdt__hashq_settle(w->hq, w->acc);
}

/* w->app: whether a new key is put with MDB_APPEND (see put_new) */
enum { APP_TRY = 0, APP_PAST = 2 };

static int
cursor_ready(crdt__wctx *w)
{
    int rc;

    if (w->cur != NULL && w->cur_dbi == w->state)
        return CRDT_OK;
    if (w->cur != NULL)
        mdb_cursor_close(w->cur);
    w->cur = NULL;
    w->cur_at = w->cur_set = 0;
    w->app = APP_TRY;
    rc = mdb_cursor_open(w->txn, w->state, &w->cur);
    if (rc != 0)
        return crdt__mdb_err(rc);
    w->cur_dbi = w->state;
    return CRDT_OK;
}

static int
key_order(const MDB_val *a, const MDB_val *b)
{
    return crdt__key_cmp(a->mv_data, a->mv_size, b->mv_data, b->mv_size);
}

/*
 * The merge queue applies its ops in key order, so the key asked for is
 * often the one the cursor is on or one of the next few (in w1, 1.6
 * entries on). Stepping there costs one key comparison per entry, where
 * MDB_SET_KEY compares the key with the page's first, last and current
 * entries and then searches the page (about ten comparisons). Returns 1
 * and fills @p out when found, 0 when the key is absent (the cursor
 * passed where it would be), -1 when the step does not apply (cursor
 * not set, or after the key, or the key farther on): then search.
 */
#define STEP_MAX 4
static int
step_to(MDB_cursor *cur, const MDB_val *key, MDB_val *out, int *err)
{
    MDB_val ck, cv;
    int c, rc;

    /* not there (no current entry, the end): search; LMDB's errors are
     * the caller's (after one, the txn takes no other call) */
    *err = 0;
    if ((rc = mdb_cursor_get(cur, &ck, &cv, MDB_GET_CURRENT)) != 0 ||
        (c = key_order(&ck, key)) > 0)
        goto not_here;
    for (int i = 0; c < 0; i++) {
        if (i == STEP_MAX)
            return -1;
        if ((rc = mdb_cursor_get(cur, &ck, &cv, MDB_NEXT)) != 0)
            goto not_here;
        c = key_order(&ck, key);
    }
    if (c > 0)
        return 0;
    *out = cv;
    return 1;
not_here:
    if (rc != 0 && rc != MDB_NOTFOUND && rc != EINVAL)
        *err = crdt__mdb_err(rc);
    return -1;
}

int
crdt__state_get(crdt__wctx *w, const void *k, size_t kl, MDB_val *out)
{
    MDB_val key = { kl, (void *)k };
    int rc;

    if ((rc = cursor_ready(w)) < 0)
        return rc;
    if (w->cur_step && w->cur_set) {
        int err;
        if ((rc = step_to(w->cur, &key, out, &err)) >= 0) {
            w->cur_at = w->cur_set = rc;
            return rc ? CRDT_OK : CRDT_ENOTFOUND;
        }
        if (err < 0)
            return err;
    }
    rc = mdb_cursor_get(w->cur, &key, out, MDB_SET_KEY);
    w->cur_at = w->cur_set = rc == 0;
    return rc == MDB_NOTFOUND ? CRDT_ENOTFOUND : crdt__mdb_err(rc);
}

/* The first entry whose key starts with @p p (@p pl bytes), in @p key
 * and @p val; CRDT_ENOTFOUND when there is none. */
int
crdt__state_first_under(crdt__wctx *w, const void *p, size_t pl, MDB_val *key,
                        MDB_val *val)
{
    int rc;

    if ((rc = cursor_ready(w)) < 0)
        return rc;
    key->mv_size = pl;
    key->mv_data = (void *)p;
    rc = mdb_cursor_get(w->cur, key, val, MDB_SET_RANGE);
    w->cur_at = w->cur_set = 0;
    if (rc == MDB_NOTFOUND)
        return CRDT_ENOTFOUND;
    if (rc != 0)
        return crdt__mdb_err(rc);
    if (key->mv_size < pl || memcmp(key->mv_data, p, pl) != 0)
        return CRDT_ENOTFOUND;
    return CRDT_OK;
}

/*
 * Put a key not in the database. A key after the database's last one is
 * appended: MDB_APPEND goes down the right edge of the B-tree with no
 * search, and when the last leaf is full it starts a new leaf instead of
 * moving half of the full one (a fresh replica's merge writes its
 * records in key order, nearly all past the last key). LMDB checks the
 * order itself (MDB_KEYEXIST when the key is not after the last one), so
 * a wrong guess only costs the try: after one, the last key is kept
 * (APP_PAST) and only keys after it try again. The records written are
 * the same either way; only the pages' fill differs.
 */
static int
put_new(crdt__wctx *w, MDB_val *key, MDB_val *val)
{
    MDB_val lk, lv;
    int rc;

    if (w->app == APP_PAST &&
        crdt__key_cmp(key->mv_data, key->mv_size, w->app_last,
                      w->app_last_len) <= 0)
        return mdb_cursor_put(w->cur, key, val, 0);
    rc = mdb_cursor_put(w->cur, key, val, MDB_APPEND);
    if (rc != MDB_KEYEXIST) {
        w->app = APP_TRY;
        return rc;
    }
    /* the failed try left the cursor on the last key */
    if ((rc = mdb_cursor_get(w->cur, &lk, &lv, MDB_GET_CURRENT)) != 0)
        return rc;
    if (lk.mv_size <= sizeof w->app_last) {
        memcpy(w->app_last, lk.mv_data, lk.mv_size);
        w->app_last_len = lk.mv_size;
        w->app = APP_PAST;
    }
    return mdb_cursor_put(w->cur, key, val, 0);
}

/* The length of @p k's doc key (coll 0 doc 0), 0 if it has none. */
static size_t
doc_key_len(const unsigned char *k, size_t kl)
{
    const unsigned char *z1, *z2;

    if (kl == 0 || k[0] == 0 || (z1 = memchr(k, 0, kl)) == NULL ||
        (z2 = memchr(z1 + 1, 0, kl - (size_t)(z1 + 1 - k))) == NULL)
        return 0;
    return (size_t)(z2 + 1 - k);
}

int
crdt__state_not_born(crdt__wctx *w, const unsigned char *k, size_t kl)
{
    size_t dkl = doc_key_len(k, kl);

    if (dkl == 0)
        return CRDT_OK;
    if (w->not_born_len + 2 + dkl > w->not_born_cap) {
        size_t cap = w->not_born_cap ? w->not_born_cap * 2 : 512;
        unsigned char *p;
        while (cap < w->not_born_len + 2 + dkl)
            cap *= 2;
        if ((p = realloc(w->not_born, cap)) == NULL)
            return CRDT_ENOMEM;
        w->not_born = p;
        w->not_born_cap = cap;
    }
    w->not_born[w->not_born_len] = (unsigned char)(dkl >> 8);
    w->not_born[w->not_born_len + 1] = (unsigned char)dkl;
    memcpy(w->not_born + w->not_born_len + 2, k, dkl);
    w->not_born_len += 2 + dkl;
    return CRDT_OK;
}

static int
was_not_born(const crdt__wctx *w, const unsigned char *dk, size_t dkl)
{
    for (size_t o = 0; o + 2 <= w->not_born_len;) {
        size_t l = (size_t)w->not_born[o] << 8 | w->not_born[o + 1];
        if (l == dkl && memcmp(w->not_born + o + 2, dk, dkl) == 0)
            return 1;
        o += 2 + l;
    }
    return 0;
}

static void
not_born_free(crdt__wctx *w)
{
    free(w->not_born);
    w->not_born = NULL;
    w->not_born_len = w->not_born_cap = 0;
}

/*
 * (4) A document born in a collection that keeps lens defaults (entry
 * 00 'V' coll, written by a migration: docs/storage.md 4.2) does not
 * show them, as it would not have got them stored: its first entry
 * brings the mark coll 0 doc 0 0 'N' (view.c). Every replica of the
 * epoch holds the same documents at its cut, so every one of them marks
 * the same documents, whatever the order of the ops that make them.
 */
static int
mark_newborn(crdt__wctx *w, const unsigned char *k, size_t kl)
{
    static const unsigned char one = 1;
    unsigned char mk[CRDT__KEY_MAX];
    size_t cl, dkl = doc_key_len(k, kl);
    MDB_cursor *cur;
    MDB_val dk, dv;
    int rc;

    if (dkl == 0)
        return CRDT_OK;
    cl = (size_t)((const unsigned char *)memchr(k, 0, kl) - k);
    if (cl > CRDT_NAME_MAX || dkl + 2 > sizeof mk ||
        (kl == dkl + 2 && k[dkl] == 0 && k[dkl + 1] == 'N'))
        return CRDT_OK;
    if (w->kept_defaults == 0 || w->kept_cl != cl ||
        memcmp(w->kept_coll, k, cl) != 0) {
        mk[0] = 0;
        mk[1] = 'V';
        memcpy(mk + 2, k, cl);
        dk.mv_size = cl + 2;
        dk.mv_data = mk;
        rc = mdb_get(w->txn, w->state, &dk, &dv);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return crdt__mdb_err(rc);
        w->kept_defaults = rc == 0 ? 2 : 1;
        w->kept_cl = cl;
        memcpy(w->kept_coll, k, cl);
    }
    if (w->kept_defaults != 2 || was_not_born(w, k, dkl))
        return CRDT_OK;
    if ((rc = crdt__mdb_err(mdb_cursor_open(w->txn, w->state, &cur))) < 0)
        return rc;
    dk.mv_size = dkl;
    dk.mv_data = (void *)k;
    rc = mdb_cursor_get(cur, &dk, &dv, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == 0 && dk.mv_size >= dkl && memcmp(dk.mv_data, k, dkl) == 0)
        return CRDT_OK; /* not its first entry */
    if (rc != 0 && rc != MDB_NOTFOUND)
        return crdt__mdb_err(rc);
    memcpy(mk, k, dkl);
    mk[dkl] = 0;
    mk[dkl + 1] = 'N';
    return crdt__state_put(w, mk, dkl + 2, &one, 1, NULL);
}

int
crdt__state_put(crdt__wctx *w, const void *k, size_t kl, const void *v,
                size_t vl, const MDB_val *old)
{
    MDB_val key = { kl, (void *)k }, val = { vl, (void *)v };
    int rc;

    if (old != NULL && old->mv_size == vl && memcmp(old->mv_data, v, vl) == 0)
        return CRDT_OK;
    if (old == NULL && (rc = mark_newborn(w, k, kl)) < 0)
        return rc;
    if (old != NULL)
        acc_add(w, k, kl, old->mv_data, old->mv_size, -1);
    acc_add(w, k, kl, v, vl, +1);
    if (kl > 0 && *(const unsigned char *)k == 0)
        w->copies_waiting = 2; /* op_copy.c's record: of no document */
    else
        crdt__feed_note(w, k, kl);
    if ((rc = cursor_ready(w)) < 0)
        return rc;
    /* @old came from crdt__state_get() on this key, which left the cursor
     * on it: overwrite in place, one B-tree descent instead of two */
    if (old == NULL)
        rc = put_new(w, &key, &val);
    else
        rc = mdb_cursor_put(w->cur, &key, &val,
                            w->cur_at ? MDB_CURRENT : 0);
    w->cur_at = 0;
    w->cur_set = rc == 0; /* a put leaves the cursor on its key */
    return crdt__mdb_err(rc);
}

int
crdt__state_del(crdt__wctx *w, const void *k, size_t kl, const MDB_val *old)
{
    MDB_val key = { kl, (void *)k };

    acc_add(w, k, kl, old->mv_data, old->mv_size, -1);
    if (kl > 0 && *(const unsigned char *)k != 0) /* see crdt__state_put */
        crdt__feed_note(w, k, kl);
    w->cur_at = w->cur_set = 0;
    return crdt__mdb_err(mdb_del(w->txn, w->state, &key, NULL));
}

/* ---- write contexts ---- */

int
crdt__wctx_begin(crdt__wctx *w, crdt_replica *r, int check_marker)
{
    MDB_val v;
    int rc;

    memset(w, 0, sizeof *w);
    w->r = r;
    if ((rc = crdt__feed_guard(r)) < 0) /* no writes from a feed callback */
        return rc;
    if ((rc = crdt__wgroup_guard(r)) < 0) /* nor from a crdt_txn_write body */
        return rc;
    /* Answer BUSY at once: a migration holds the writer lock for its
     * whole big txn, so waiting in mdb_txn_begin could take minutes.
     * A read txn never waits; the check under the lock stays, for a
     * migration that starts between the two. */
    if (check_marker && (rc = crdt__marker_peek(r)) != 0)
        return rc > 0 ? CRDT_EBUSY : rc;
    rc = crdt__txn_begin(r, 1, &w->txn);
    if (rc < 0)
        return rc;
    rc = check_marker ? crdt__marker_present(w->txn, r) : 0;
    if (rc == 0)
        rc = crdt__state_slot(w->txn, r, &w->state_slot);
    if (rc == CRDT_OK) {
        w->state = r->dbi[CRDT_DB_STATE0 + w->state_slot];
        rc = crdt__meta_get(w->txn, r, w->state_slot ? "hash1" : "hash0",
                            &v);
        if (rc == CRDT_OK && v.mv_size == 32)
            crdt__acc_load(w->acc, v.mv_data);
        else if (rc == CRDT_ENOTFOUND || rc == CRDT_OK)
            rc = CRDT_OK; /* no hash kept yet: the empty state's */
    }
    if (rc != CRDT_OK) {
        crdt__txn_end(r, w->txn, 0);
        w->txn = NULL;
        return rc > 0 ? CRDT_EBUSY : rc;
    }
    return CRDT_OK;
}

int
crdt__wctx_commit(crdt__wctx *w)
{
    unsigned char b[32];
    int rc = CRDT_OK;

    crdt__wctx_hash_settle(w);
    if (w->acc_dirty) {
        crdt__acc_bytes(b, w->acc);
        rc = crdt__meta_put(w->txn, w->r, w->state_slot ? "hash1" : "hash0",
                            b, 32);
    }
    if (rc == CRDT_OK)
        rc = crdt__feed_write(w); /* in this txn: durable with it */
    if (rc < 0) {
        crdt__wctx_abort(w);
        return rc;
    }
    {
        uint64_t id = mdb_txn_id(w->txn);
        /* closes the cursor too */
        rc = w->sync_later ? crdt__txn_commit_unwaited(w->r, w->txn)
                           : crdt__txn_end(w->r, w->txn, 1);
        if (rc == CRDT_OK)
            crdt__seq_wctx_commit(w, id);
        else
            crdt__seq_wctx_abort(w);
    }
    w->txn = NULL;
    w->cur = NULL;
    not_born_free(w);
    if (rc == CRDT_OK)
        crdt__feed_committed(w);
    else
        crdt__feed_reset(w);
    return rc;
}

void
crdt__wctx_abort(crdt__wctx *w)
{
    if (w->txn)
        crdt__txn_end(w->r, w->txn, 0);
    crdt__seq_wctx_abort(w);
    w->txn = NULL;
    w->cur = NULL;
    not_born_free(w);
    crdt__feed_reset(w);
}

/* ---- stamps ---- */

int
crdt__stamp_cmp(uint64_t hlc, const crdt_actor *a, const unsigned char *old)
{
    uint64_t oh = crdt__rd64(old);

    if (hlc != oh)
        return hlc > oh ? 1 : -1;
    return memcmp(a->b, old + 8, CRDT_ACTOR_BYTES);
}

int
crdt__bytes_above(const unsigned char *a, size_t al, const unsigned char *b,
                  size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);

    return c != 0 ? c > 0 : al > bl;
}

static int
get(crdt__wctx *w, const crdt__key *k, MDB_val *out)
{
    return crdt__state_get(w, k->b, k->len, out);
}

/* ---- the observed part of removes ---- */

static int
apply_tag_removed(crdt__wctx *w, crdt__key *k, size_t base,
                  const unsigned char *actor, uint64_t seq)
{
    static const unsigned char zero = 0;
    MDB_val old;
    int rc;

    k->len = base;
    crdt__key_bytes(k, actor, CRDT_ACTOR_BYTES);
    crdt__key_u64(k, seq);
    if (k->len > CRDT__KEY_MAX)
        return CRDT_EPROTO;
    rc = get(w, k, &old);
    if (rc == CRDT_ENOTFOUND)
        return crdt__state_put(w, k->b, k->len, &zero, 1, NULL);
    if (rc < 0)
        return rc;
    return crdt__state_put(w, k->b, k->len, &zero, 1, &old); /* keeps (3) */
}

/*
 * (2) for a removed part: is (count, sum) above the stored observation
 * @p old? One actor's increments in seq order give one sum per count, so
 * the count alone orders observations; but a copied replica can write
 * two versions of the same seqs, and deletes that observed each version
 * then carry equal counts with different sums. The sum breaks the tie,
 * so the kept one does not depend on the order the deletes came in
 * (simulator seed 9781).
 */
static int
removed_above(uint64_t count, uint64_t sum, const unsigned char *old)
{
    uint64_t oc = crdt__rd64(old);

    return count > oc || (count == oc && sum > crdt__rd64(old + 8));
}

/* fobs = [ ctr: [actor, count, sum]*, set: [elem, actor, seq]* ] */
static int
apply_field_obs(crdt__wctx *w, crdt__key *fk, crdt__mp *m)
{
    size_t base = fk->len;
    uint32_t n, cn, sn;
    int rc;

    if (crdt__mp_array(m, &n) < 0 || n != 2 || crdt__mp_array(m, &cn) < 0 ||
        cn % 3 != 0)
        return CRDT_EPROTO;
    for (uint32_t i = 0; i < cn / 3; i++) {
        unsigned char actor[8], v[16];
        uint64_t count;
        int64_t sum;
        MDB_val old;

        if (crdt__mp_bin_fixed(m, actor, 8) < 0 ||
            crdt__mp_uint(m, &count) < 0 || crdt__mp_int(m, &sum) < 0)
            return CRDT_EPROTO;
        fk->len = base;
        crdt__key_byte(fk, 'D');
        crdt__key_bytes(fk, actor, 8);
        crdt__be64(v, count);
        crdt__be64(v + 8, (uint64_t)sum);
        rc = get(w, fk, &old);
        if (rc == CRDT_ENOTFOUND)
            rc = crdt__state_put(w, fk->b, fk->len, v, 16, NULL);
        else if (rc == CRDT_OK && old.mv_size == 16 &&
                 removed_above(count, (uint64_t)sum, old.mv_data))
            rc = crdt__state_put(w, fk->b, fk->len, v, 16, &old); /* (2) */
        if (rc < 0)
            return rc;
    }
    if (crdt__mp_array(m, &sn) < 0 || sn % 3 != 0)
        return CRDT_EPROTO;
    for (uint32_t i = 0; i < sn / 3; i++) {
        const unsigned char *e0 = m->p;
        unsigned char actor[8];
        crdt_value ev;
        uint64_t seq;

        if (crdt__mp_value(m, &ev) < 0)
            return CRDT_EPROTO;
        size_t elen = (size_t)(m->p - e0);
        if (elen > CRDT__ELEM_MAX || crdt__mp_bin_fixed(m, actor, 8) < 0 ||
            crdt__mp_uint(m, &seq) < 0)
            return CRDT_EPROTO;
        fk->len = base;
        crdt__key_byte(fk, 'S');
        crdt__key_bytes(fk, e0, elen);
        rc = apply_tag_removed(w, fk, fk->len, actor, seq);
        if (rc < 0)
            return rc;
    }
    fk->len = base;
    return CRDT_OK;
}

/* ---- apply ---- */

static int
apply_register(crdt__wctx *w, crdt__key *k, const crdt_value *v,
               uint64_t hlc, const crdt_actor *actor)
{
    unsigned char small[512], *buf = small;
    size_t cap = sizeof small;
    MDB_val old;
    int rc, n, c = 1;

    crdt__key_byte(k, 'R');
    rc = get(w, k, &old);
    if (rc < 0 && rc != CRDT_ENOTFOUND)
        return rc;
    if (rc == CRDT_OK && old.mv_size >= 16 &&
        (c = crdt__stamp_cmp(hlc, actor, old.mv_data)) < 0)
        return CRDT_OK; /* keeps (1) */
    if (v != NULL && (v->type == CRDT_VSTRING || v->type == CRDT_VBYTES) &&
        v->u.s.len + 32 > cap) {
        cap = v->u.s.len + 32;
        buf = malloc(cap);
        if (buf == NULL)
            return CRDT_ENOMEM;
    }
    crdt__be64(buf, hlc);
    memcpy(buf + 8, actor->b, 8);
    if (v == NULL) {
        buf[16] = 0xc1; /* tombstone: a byte msgpack never uses */
        n = 1;
    } else {
        n = crdt__value_bytes(buf + 16, cap - 16, v);
    }
    if (n >= 0 && c == 0 &&
        !crdt__bytes_above(buf + 16, (size_t)n,
                           (const unsigned char *)old.mv_data + 16,
                           old.mv_size - 16))
        rc = CRDT_OK; /* keeps (1): the same write, or the lower value */
    else
        rc = n < 0 ? CRDT_ELIMIT
                   : crdt__state_put(w, k->b, k->len, buf, 16 + (size_t)n,
                                     rc == CRDT_OK ? &old : NULL);
    if (buf != small)
        free(buf);
    return rc;
}

int
crdt__state_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                  const crdt_actor *actor, uint64_t seq)
{
    crdt__key k;
    crdt__mp m;
    MDB_val old;
    unsigned char buf[16];
    int rc;

    crdt__key_doc(&k, op->coll, op->coll_len, op->doc, op->doc_len);
    if (op->kind == CRDT_OP_DEL_DOC) {
        uint32_t n;
        size_t base = k.len;

        rc = get(w, &k, &old);
        if (rc < 0 && rc != CRDT_ENOTFOUND)
            return rc;
        if (rc == CRDT_ENOTFOUND ||
            crdt__stamp_cmp(hlc, actor, old.mv_data) > 0) {
            crdt__be64(buf, hlc);
            memcpy(buf + 8, actor->b, 8);
            rc = crdt__state_put(w, k.b, k.len, buf, 16,
                                 rc == CRDT_OK ? &old : NULL);
            if (rc < 0)
                return rc;
        }
        m.p = op->observed;
        m.end = op->observed + op->observed_len;
        if (crdt__mp_array(&m, &n) < 0 || n % 2 != 0)
            return CRDT_EPROTO;
        for (uint32_t i = 0; i < n / 2; i++) {
            const char *f;
            uint32_t fl;

            if (crdt__mp_str(&m, &f, &fl) < 0 || !crdt__name_ok_len(f, fl))
                return CRDT_EPROTO;
            k.len = base;
            crdt__key_field(&k, f, fl);
            if ((rc = apply_field_obs(w, &k, &m)) < 0)
                return rc;
        }
        return CRDT_OK;
    }

    if (op->kind >= CRDT_OP_TINS)
        return crdt__seq_apply(w, op, hlc, actor);
    crdt__key_field(&k, op->field, op->field_len);
    switch (op->kind) {
    case CRDT_OP_PUT:
        return apply_register(w, &k, &op->value, hlc, actor);
    case CRDT_OP_INCR: {
        uint64_t count = 0, sum = 0;
        unsigned char cv[24];

        crdt__key_byte(&k, 'C');
        crdt__key_bytes(&k, actor->b, CRDT_ACTOR_BYTES);
        rc = get(w, &k, &old);
        if (rc < 0 && rc != CRDT_ENOTFOUND)
            return rc;
        if (rc == CRDT_OK && old.mv_size == 24) {
            count = crdt__rd64(old.mv_data);
            sum = crdt__rd64((const unsigned char *)old.mv_data + 8);
            if (crdt__rd64((const unsigned char *)old.mv_data + 16) >= seq)
                return CRDT_OK; /* already counted: keeps (2) */
        }
        /* wrapping two's-complement sum: the same on every replica */
        crdt__be64(cv, count + 1);
        crdt__be64(cv + 8, sum + (uint64_t)op->delta);
        crdt__be64(cv + 16, seq);
        return crdt__state_put(w, k.b, k.len, cv, 24,
                               rc == CRDT_OK ? &old : NULL);
    }
    case CRDT_OP_SADD: {
        static const unsigned char one = 1;
        unsigned char e[CRDT__ELEM_MAX];
        int n = crdt__value_bytes(e, sizeof e, &op->value);

        if (n < 0)
            return CRDT_ELIMIT;
        crdt__key_byte(&k, 'S');
        crdt__key_bytes(&k, e, (size_t)n);
        crdt__key_bytes(&k, actor->b, CRDT_ACTOR_BYTES);
        crdt__key_u64(&k, seq);
        rc = get(w, &k, &old);
        if (rc == CRDT_ENOTFOUND)
            return crdt__state_put(w, k.b, k.len, &one, 1, NULL);
        return rc; /* present: added before, or removed already (3) */
    }
    case CRDT_OP_SREM: {
        unsigned char e[CRDT__ELEM_MAX];
        int n = crdt__value_bytes(e, sizeof e, &op->value);
        uint32_t cnt;
        size_t base;

        if (n < 0)
            return CRDT_ELIMIT;
        crdt__key_byte(&k, 'S');
        crdt__key_bytes(&k, e, (size_t)n);
        base = k.len;
        m.p = op->observed;
        m.end = op->observed + op->observed_len;
        if (crdt__mp_array(&m, &cnt) < 0 || cnt % 2 != 0)
            return CRDT_EPROTO;
        for (uint32_t i = 0; i < cnt / 2; i++) {
            unsigned char a[8];
            uint64_t s;

            if (crdt__mp_bin_fixed(&m, a, 8) < 0 || crdt__mp_uint(&m, &s) < 0)
                return CRDT_EPROTO;
            if ((rc = apply_tag_removed(w, &k, base, a, s)) < 0)
                return rc;
        }
        return CRDT_OK;
    }
    case CRDT_OP_DEL_FIELD: {
        size_t base = k.len;

        rc = apply_register(w, &k, NULL, hlc, actor);
        if (rc < 0)
            return rc;
        k.len = base;
        m.p = op->observed;
        m.end = op->observed + op->observed_len;
        return apply_field_obs(w, &k, &m);
    }
    default:
        return CRDT_EPROTO;
    }
}
