/*
 * internal.h: what the files of libcrdt share. Not installed.
 *
 * Layering inside the library:
 *   replica.c (open, identity, meta)  txn.c (local writes)
 *   merge.c (remote changes)  export.c  read.c
 *        \        |         /
 *   state.c (apply one op to the materialized state, state hash)
 *        |
 *   codec.c / mp.c (msgpack)   store_lmdb.c (LMDB env, growth, errors)
 */
#ifndef CRDT_INTERNAL_H
#define CRDT_INTERNAL_H

#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "crdt/change.h"
#include "crdt/error.h"
#include "crdt/feed.h"
#include "crdt/raw.h"
#include "crdt/read.h"
#include "crdt/replica.h"
#include "crdt/sync.h"
#include "crdt/txn.h"
#include "crdt/vv.h"

#define CRDT__FORMAT 2u       /* of an encoded change (codec.c) */
#define CRDT__FORMAT_V1 1u    /* still read: every change before 2 */
/* of the LMDB files: 2 = SipHash state hash; 3 = a log record may hold
 * a run of changes (logrec.c); 4 = a feed record may be of version 2
 * (feed.c); 5 = the state may keep a collection's lens defaults once
 * (entries DEFAULTS and NO_DEFAULTS, state_entry.c) */
#define CRDT__STORE_FORMAT 5u
/* op kind 11: a copy of another op around one op (docs/storage.md 5.3) */
#define CRDT__OP_COPY 11u
#define CRDT__KEY_MAX 511 /* LMDB's default maximum key size */
#define CRDT__ELEM_MAX 256 /* encoded set element, so keys fit */
#define CRDT__LIST_VALUE_MAX 65536 /* encoded list element value */
/* MDB_MAP_FULL: internal only; public calls grow the map and retry, and
 * report CRDT_EFULL only when the map may not grow any more. */
#define CRDT__EMAPFULL (-1000)
/* What a public call answers for @p rc: CRDT__EMAPFULL never leaves the
 * library (a caller that grows the map, crdt_replica_grow(), and tries
 * again sees CRDT_EFULL). */
static inline int
crdt__full(int rc)
{
    return rc == CRDT__EMAPFULL ? CRDT_EFULL : rc;
}

/* A merge's ops waiting to be applied in key order (applyq.c). */
struct crdt__qop;
struct crdt__qkey;
typedef struct crdt__applyq {
    struct crdt__qop **blk;  /* block k: CRDT__QBLOCK << k ops, 64-byte
                                aligned: growing never moves an op */
    size_t nblk, capblk;
    struct crdt__qkey *keys; /* 2 * cap: the sort's scratch follows */
    size_t n, cap;
} crdt__applyq;
#define CRDT__QBLOCK 1024

/* What a write context changed, for the change feed (feed.c). */
typedef struct {
    unsigned char *buf;   /* entries: len(2) | coll 0 doc 0 field 0 */
    size_t len, cap, n;
    size_t last;          /* offset of the last entry, for repeats */
    int all;              /* anything may have changed */
    unsigned char *rec;   /* the record written at commit, to dispatch */
    size_t rec_len;
    uint64_t seq;         /* its feed seq */
    int oom;              /* an allocation failed: the commit fails */
    crdt_feed_event ev;   /* decoded before the commit, for subscribers */
    void *ev_mem;
} crdt__feedacc;

struct crdt_feed_sub;

struct crdt_replica {
    MDB_env *env;
    MDB_dbi dbi[CRDT_DB__COUNT];
    MDB_dbi feed_dbi;         /* the change feed (feed.c) */
    int feed_ok;              /* 0: a read-only open of a store without it */
    char *notify_path;        /* touched after each recorded commit */
    pthread_mutex_t feed_lock; /* the subscriptions, and calling them */
    struct crdt_feed_sub *subs;
    char *path;
    unsigned char space_id[CRDT_SPACE_ID_BYTES];
    unsigned char pk[CRDT_PUBKEY_BYTES];
    unsigned char sk[CRDT_SECKEY_BYTES];
    unsigned char incarnation[8];
    crdt_actor actor;
    size_t max_map_size;
    uint64_t max_drift_ms;
    uint64_t pending_max_actor, pending_max, pending_max_gap;
    int read_only;
    pthread_rwlock_t grow_lock; /* txns hold it shared; growth exclusive */
    /* The open txns and the thread that began each (store_lmdb.c (7)) */
    pthread_mutex_t txns_lock;
    struct crdt__open_txn *txns;
    size_t n_txns, cap_txns;
    /* The resident-map budget (store_lmdb.c): */
    pthread_mutex_t map_lock; /* one committer checks at a time */
    size_t map_budget;        /* bytes; SIZE_MAX = never drop */
    size_t map_rss_base;      /* file-backed RSS after the last drop */
    int map_based;            /* map_rss_base taken (first write commit) */
    void *map_addr;           /* the LMDB map; NULL = find it again */
    size_t map_len, map_size; /* its VMA length; me_mapsize then */
    int map_off;              /* lookup or madvise failed: stop trying */
    int map_statm_fd;         /* /proc/self/statm, kept open; -1 = not yet */
    crdt_epoch_hook hook;
    void *hook_ctx;
    /* merges reuse it (one write txn at a time): its buffers stay warm */
    crdt__applyq applyq;
    int applyq_busy;
    void *merge_buf;     /* a merge's decoded headers (merge.c), kept */
    size_t merge_cap;    /* changes it holds */
    /* a merge's log run (merge.c, logrun.c), kept: its buffers grown
     * once, not faulted in again by every merge */
    struct crdt__logrun *merge_run;
    /* a large merge's second thread's buffers (mergeaid.c), kept */
    struct crdt__mergeaid *merge_aid;
    /* sequence fields' in-memory order, by field (seq_cache.c) */
    pthread_mutex_t seq_lock;
    struct crdt__seq *seq_cache[8];
    /* Group commit (store_lmdb.c): commits do not sync one by one; a
     * committer returns once a sync that began after its commit ended */
    int group_sync;            /* the env is MDB_NOSYNC for it */
    /* 1 from a creation committed without a sync (store_create.c) until
     * a durable commit has synced it too; atomic */
    int create_unsynced;
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_cond;
    uint64_t sync_done;        /* commits counted, in order */
    uint64_t sync_synced;      /* commits up to here are on disk */
    uint64_t sync_failed;      /* a failed sync covered commits up to here */
    int sync_running;          /* a leader is in mdb_env_sync() */
    uint64_t sync_count;       /* syncs issued (tests, bench) */
    /* crdt_txn_write()'s queue (txn_group.c) */
    pthread_mutex_t wq_lock;
    pthread_cond_t wq_lead_cond; /* the leader: a request, a sync ended */
    struct crdt__wreq *wq_head, *wq_tail;
    int wq_busy;               /* a leader is running a group */
    int damaged; /* crdt_replica_mark_damaged(); atomic */
    uint64_t readers_checked_ms; /* last stale-reader sweep; atomic */
};

/* What authority.c keeps about the member set during one write txn. */
typedef struct {
    int loaded;     /* owner looked up in this txn */
    int on;         /* the space has an owner: roles are enforced */
    unsigned char owner[CRDT_PUBKEY_BYTES];
    int phase;      /* replay: 0 every op; 1 the owner's; 2 the others'
                       member-set ops; 3 the others' other ops */
    int replaying;
    int genesis_new;                /* a genesis record was applied */
    unsigned char touched[8][CRDT_PUBKEY_BYTES]; /* member docs written */
    size_t n_touched;
    int touched_all;                /* more than fit above */
    /* the standing of the last author checked (one change = one author) */
    int cache_ok;
    unsigned char cache_pk[CRDT_PUBKEY_BYTES];
    crdt_actor cache_actor;
    int cache_member, cache_readonly, cache_admin, cache_removed;
    uint64_t cache_cut;
} crdt__auth;

/* A write context: one LMDB write txn plus the state-hash accumulator. */
typedef struct {
    crdt_replica *r;
    MDB_txn *txn;
    MDB_dbi state;   /* the active state database */
    int state_slot;  /* 0 or 1 */
    uint64_t acc[4]; /* multiset hash of the active state */
    int acc_dirty;
    struct crdt__hashq *hq; /* set by a large merge: entries to add to
                               @acc wait here (hashq.h); settle first */
    MDB_cursor *cur; /* on @state; positioned by the last lookup */
    MDB_dbi cur_dbi;
    int cur_at;      /* the cursor sits on the key last looked up */
    int cur_set;     /* ... or on one our last get or put left it on */
    int cur_step;    /* lookups come in key order (a queue's flush): try
                        stepping the cursor forward before a search */
    int app;         /* new keys past the last one: appended (state.c) */
    int copies_waiting; /* the active state holds waiting copies (op_copy.c):
                           0 not known yet, 1 none, 2 some */
    int kept_defaults;  /* collection kept_coll keeps lens defaults (entry
                           00 'V' coll, state.c): 0 not known, 1 no, 2 yes */
    size_t kept_cl;
    char kept_coll[CRDT_NAME_MAX];
    unsigned char *not_born; /* doc keys (u16 length first) of documents
                                that lost an entry in this txn: never
                                marked as born (state.c (4)) */
    size_t not_born_len, not_born_cap;
    size_t app_last_len;
    unsigned char app_last[CRDT__KEY_MAX]; /* the last key, when app = 2 */
    crdt__applyq *q; /* set by a merge: its ops wait here, see applyq.c */
    crdt__feedacc fa; /* what this txn changed (feed.c) */
    struct crdt__seq *seq_touched; /* sequences this txn changes */
    int seq_foreign; /* raw writes: the cached sequences may be stale */
    int seq_defer;   /* inside a merge's queue flush: sequence records are
                        written once at its end (seq_store.c) */
    crdt__auth auth; /* authority.c */
    /* during crdt__merge_in() (merge.c): */
    MDB_cursor *log_cur;   /* on the log: one actor's run is appended in
                              key order, so it stays on the leaf page */
    uint64_t log_ops, log_changes; /* added to the counters at the end */
    int pending_any;       /* the pending area may hold a change */
    struct crdt__logrun *log_run; /* the run in hand, not yet written */
    /* during crdt_raw_replay_log(): the log key of the change replayed;
     * the log's changes from it on are not judged yet */
    const unsigned char *replay_key;
    int sync_later; /* commit: leave the wait for durability to the
                       caller (crdt__store_sync_wait()) */
} crdt__wctx;

/* A raw txn (crdt/raw.h): a write context, or a read txn. Merge builds
 * one on the stack around its own context to call the epoch hook. */
struct crdt_raw {
    crdt__wctx own;
    crdt__wctx *w;   /* == &own, or borrowed */
    int write;
    uint64_t spare_acc[4]; /* the spare slot's hash, kept here while the
                              txn writes it, stored at commit/swap */
    int spare_loaded, spare_dirty;
};

/* ---- feed.c: the change feed ---- */
/* Note that state key @p k changed (state.c calls it on every change). */
void crdt__feed_note(crdt__wctx *w, const void *k, size_t kl);
/* Note that the state may have changed anywhere (swap, clear). */
void crdt__feed_all(crdt__wctx *w);
/* In the write txn, just before it commits: write the summary record. */
int crdt__feed_write(crdt__wctx *w);
/* After a successful commit: touch the notify file, call subscribers,
 * free the accumulator. */
void crdt__feed_committed(crdt__wctx *w);
/* Free the accumulator (abort, or after a commit). */
void crdt__feed_reset(crdt__wctx *w);
/* CRDT_EBUSY when called from a feed callback of @p r: no writes then. */
int crdt__feed_guard(const crdt_replica *r);
/* Decode a stored record (size-limited, every name checked). */
int crdt__feed_decode(const unsigned char *p, size_t len, uint64_t seq,
                      const char *coll, const char *doc,
                      crdt_feed_event *ev, void **mem);
/* Open the feed database in @p txn (creating it if @p create);
 * CRDT_ENOTFOUND if absent and not created. */
int crdt__feed_open(crdt_replica *r, MDB_txn *txn, int create);
/* ---- txn.c, for the sequence ops (seq_api.c; crdt__txn_wctx below) */
int crdt__txn_check(crdt_txn *t, const char *coll, const char *doc,
                    const char *field, int want_kind);
int crdt__txn_seq_ids(crdt_txn *t, uint64_t n, uint64_t *first);
int crdt__txn_add_op(crdt_txn *t, const crdt_op *op);

/* read.c: what a read txn reads from (for seq_api.c). */
void crdt__read_parts(crdt_read *rd, crdt_replica **r, MDB_txn **txn,
                      MDB_dbi *dbi);
/* seq_api.c: delete every element of the sequence fields of a document
 * (@p field NULL) or of one field, before a DEL_DOC / DEL_FIELD. */
int crdt__txn_seq_clear(crdt_txn *t, const char *coll, const char *doc,
                        const char *field);

/* ---- merge.c ---- */
/* @p hashes: each change's body hash (n x CRDT_HASH_BYTES), computed by
 * libcrdt from these same bytes (an unpack), or NULL: hashed here. */
/* Change @p i's hash in @p hashes (n x CRDT_HASH_BYTES), or NULL. */
static inline const unsigned char *
crdt__hash_at(const unsigned char *hashes, size_t i)
{
    return hashes != NULL ? hashes + i * CRDT_HASH_BYTES : NULL;
}
int crdt__merge_in(crdt__wctx *w, crdt_merge_report *rep,
                   const crdt_bytes *changes, const unsigned char *hashes,
                   size_t n);
/* crdt_merge() of changes whose hashes libcrdt computed earlier from
 * these same bytes (crdt__changes_unpack_hashed()): spares hashing each
 * body again. @p hashes NULL: crdt_merge(). */
int crdt__merge_hashed(crdt_merge_report *report, crdt_replica *r,
                       const crdt_bytes *changes, const unsigned char *hashes,
                       size_t n);
/* Apply one decoded change's ops from op index @p skip on (rebasing
 * through the epoch hook when it was written in another epoch). */
int crdt__apply_change(crdt__wctx *w, const crdt_change *c, uint64_t skip,
                       const unsigned char *cur_epoch,
                       crdt_merge_report *rep);
/* Write the log run a merge holds in hand (none outside a merge), so
 * that a read of the log sees every change the merge applied so far. */
int crdt__merge_log_settle(crdt__wctx *w);

/* ---- authority.c: roles, checked for every op applied ---- */
/* Is @p op one the current replay phase applies? 1 yes, 0 no. */
int crdt__auth_in_phase(crdt__wctx *w, const unsigned char *pk,
                        const crdt_op *op);
/* Check a remote op: 1 apply it; 0 refused, quarantined with the reason
 * (counted in @p rep); negative on error. */
int crdt__auth_check(crdt__wctx *w, const crdt_change *c, uint64_t index,
                     const crdt_op *op, crdt_merge_report *rep);
/* Check a local op of this replica: CRDT_OK or CRDT_EPERM. */
int crdt__auth_local(crdt__wctx *w, uint64_t seq, const crdt_op *op);
/* 1 if @p op writes the member set. */
int crdt__auth_is_members(const crdt_op *op);
/* Note an applied member-set op. */
void crdt__auth_applied(crdt__wctx *w, const crdt_op *op);
/* Before commit: if the member set changed the standing of a key whose
 * ops were already judged, rebuild the state from the log. */
int crdt__auth_settle(crdt__wctx *w);

/* The write context of a local txn (txn.c), for members.c. */
crdt__wctx *crdt__txn_wctx(crdt_txn *t);
/* A key's standing as authority.c reads it (members.c). */
typedef struct {
    int on, is_owner, found, member, readonly, admin, removed;
} crdt__member_doc;
int crdt__member_doc_read(crdt__wctx *w, const unsigned char *pk,
                          crdt__member_doc *out);

/* ---- applyq.c: a merge batch's ops, applied in state-key order ---- */
void crdt__applyq_init(crdt__applyq *q);
void crdt__applyq_free(crdt__applyq *q);
/* Hold @p op (a view into change bytes that outlive the queue), of a
 * kind below CRDT_OP_TINS, not a member-set op and not a copy: only the
 * parts crdt__state_apply() reads for those kinds are kept, and for an
 * increment or add the first 8 bytes of @p hash, its change's (a copy
 * of it may wait: op_copy.c). */
int crdt__applyq_push(crdt__wctx *w, crdt__applyq *q, const crdt_op *op,
                      uint64_t hlc, const crdt_actor *actor, uint64_t seq,
                      const unsigned char *hash);
/* Apply every op held, in key order, and empty the queue. */
int crdt__applyq_flush(crdt__wctx *w, crdt__applyq *q);

/* ---- store_lmdb.c ---- */
int crdt__mdb_err(int mdb_rc);
/* Populate the whole pages of a fresh buffer of @p len bytes with one
 * call (prefault.c); a hint, never an error. */
void crdt__prefault(void *p, size_t len);
/* Opens (or, with o->create, creates) the environment. A store it
 * creates gets its format record and its identity (crdt__genesis_put)
 * in ONE durable txn: a crash leaves no data, or a whole replica. */
int crdt__store_open(crdt_replica *r, const char *path,
                     const crdt_open_options *o, int *created);
/* replica.c: a new replica's identity and epoch-0 records, in @p txn. */
int crdt__genesis_put(MDB_txn *txn, crdt_replica *r,
                      const crdt_open_options *o);
void crdt__store_close(crdt_replica *r);
/* Every LMDB txn of the library begins and ends through these two, so
 * that growing the map can wait until no txn of this process is open. */
int crdt__txn_begin(crdt_replica *r, int write, MDB_txn **out);
int crdt__txn_end(crdt_replica *r, MDB_txn *txn, int commit);
/* Commit @p txn like crdt__txn_end(), but return before the commit is
 * durable: take a ticket with crdt__store_sync_ticket() right after, and
 * crdt__store_sync_wait() for it (txn_group.c: the writer lock is free
 * for the next group while this one syncs). */
int crdt__txn_commit_unwaited(crdt_replica *r, MDB_txn *txn);
uint64_t crdt__store_sync_ticket(crdt_replica *r);
int crdt__store_sync_wait(crdt_replica *r, uint64_t ticket);
/* A shared sync (group_commit) is running; when it ends, wq_lead_cond
 * is signalled (under wq_lock). */
int crdt__store_syncing(crdt_replica *r);
/* The calling thread holds a txn of @p r. */
int crdt__store_txns_held_here(crdt_replica *r);
/* Grow the map after MDB_MAP_FULL; CRDT_EFULL past max_map_size. */
int crdt__store_grow(crdt_replica *r);
/* 1 if LMDB gave up on r's environment (MDB_PANIC): crdt_replica_failed() */
int crdt__store_failed(crdt_replica *r);
/* Syncs issued by group commit so far (store_lmdb.c). */
uint64_t crdt__store_syncs(crdt_replica *r);
int crdt__meta_get(MDB_txn *txn, crdt_replica *r, const char *key,
                   MDB_val *out);
int crdt__meta_put(MDB_txn *txn, crdt_replica *r, const char *key,
                   const void *val, size_t len);
/* The u64 under @p key in @p *out: 0 when it was never written. */
int crdt__meta_u64(MDB_txn *txn, crdt_replica *r, const char *key,
                   uint64_t *out);
int crdt__meta_put_u64(MDB_txn *txn, crdt_replica *r, const char *key,
                       uint64_t v);
/* Index of the active state database (0/1) in @p *slot, read in
 * @p txn. */
int crdt__state_slot(MDB_txn *txn, crdt_replica *r, int *slot);

/* ---- pagecheck.c: the data file checked before LMDB reads it ---- */
/* Before mdb_env_open(): the meta pages and the file's length; a single
 * damaged meta page is restored from the other if @p may_repair. */
int crdt__store_precheck(const char *path, int may_repair,
                         crdt_open_report *rep);
/* Walk the B-trees of a read txn's snapshot, at most @p max_pages pages
 * (0 = all); CRDT_ECORRUPT with @p why filled at the first damage. */
int crdt__store_walk(crdt_replica *r, uint64_t max_pages, char *why,
                     size_t why_len);
/* The newest sound meta page in the first @p len bytes of a data file:
 * its commit's txnid, its last page and the page size; CRDT_ECORRUPT if
 * neither meta page is sound. */
typedef struct {
    uint64_t txnid, last_pg;
    uint32_t psize;
} crdt__newest_meta;
int crdt__pagecheck_newest(const unsigned char *img, size_t len,
                           crdt__newest_meta *out);

/* ---- store_create.c: a creation that never reached the disk ---- */
/* 1 if DIR/data.mdb holds no commit but possibly the creation's own,
 * unsynced and incomplete (docs/storage.md 1.1): not a replica yet; 0 if
 * it is one (or damaged: the open's checks say); or a crdt_err. */
int crdt__store_unborn(const char *path);
/* The same judgement on a whole data file in memory: 1 or 0 (for the
 * fuzz target). */
int crdt__store_unborn_image(const unsigned char *img, size_t len);
/* Remove such a file so that a create starts afresh; CRDT_EBUSY if
 * another process has the directory's environment open. */
int crdt__store_discard_unborn(const char *path);

/* Describe the damage in @p why (may be NULL, @p len its size) and
 * return CRDT_ECORRUPT: how the page and record checks report. */
int crdt__corrupt(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Both checks on a data file's bytes in memory (@p img, @p len): the
 * meta pages, the length, then the B-trees of the newest sound meta
 * page's snapshot, at most @p max_pages pages (0 = all). Nothing is
 * repaired: @p cur_out (may be NULL) gets 2 when both meta pages are
 * sound, else the one sound page (0 or 1) an open would copy over the
 * other. For the fuzz target and tests. */
int crdt__pagecheck_image(const unsigned char *img, size_t len,
                          uint64_t max_pages, int *cur_out, char *why,
                          size_t why_len);

/* ---- wctx: begin/finish a write context (state.c) ---- */
int crdt__wctx_begin(crdt__wctx *w, crdt_replica *r, int check_marker);
/* crdt__wctx_begin() for a local write (txn.c): the incarnation renewed
 * first if crdt__actor_stale() says so. */
int crdt__wctx_begin_fresh(crdt__wctx *w, crdt_replica *r);
int crdt__wctx_commit(crdt__wctx *w);
void crdt__wctx_abort(crdt__wctx *w);
/* 1 if an upgrade marker is present, 0 if not, or a crdt_err (read in
 * @p txn). */
int crdt__marker_present(MDB_txn *txn, crdt_replica *r);
/* 1 if an upgrade marker is present, 0 if not, or a crdt_err: read in a
 * read txn of its own, so it never waits on the writer lock. */
int crdt__marker_peek(crdt_replica *r);

/* ---- big-endian helpers ---- */
static inline void
crdt__be64(unsigned char *p, uint64_t v)
{
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* one store: gcc does not see the byte loop below as a bswap, and
     * stamps and keys are read and written for every op of a merge */
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
#else
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
#endif
}

static inline uint64_t
crdt__rd64(const unsigned char *p)
{
    uint64_t v = 0;
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&v, p, 8);
    v = __builtin_bswap64(v);
#else
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
#endif
    return v;
}

/* The first @p n (at most 8) bytes at @p p as a big-endian number (the
 * 16-, 32- and 64-bit fields of msgpack). */
static inline uint64_t
crdt__be_n(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* LMDB's default key order (mdb_cmp_memn): the bytes, then the
 * length. */
static inline int
crdt__key_cmp(const void *a, size_t al, const void *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = n ? memcmp(a, b, n) : 0;

    if (c != 0)
        return c;
    return al < bl ? -1 : al > bl;
}

/* ---- LEB128 varints (change packs, compacted seq runs) ---- */
#define CRDT__VARINT_MAX 10
/* Write @p v as an unsigned LEB128 varint (7 bits a byte, low first);
 * how many bytes. */
static inline size_t
crdt__varint_put(unsigned char out[CRDT__VARINT_MAX], uint64_t v)
{
    size_t n = 0;

    do {
        out[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            out[n] |= 0x80;
        n++;
    } while (v);
    return n;
}

/* ---- mp.c: bounded zero-copy msgpack reader ---- */
typedef struct {
    const unsigned char *p, *end;
} crdt__mp;

int crdt__mp_array(crdt__mp *m, uint32_t *n);
int crdt__mp_map(crdt__mp *m, uint32_t *n);
int crdt__mp_uint(crdt__mp *m, uint64_t *v);
int crdt__mp_int(crdt__mp *m, int64_t *v);
int crdt__mp_bin(crdt__mp *m, const unsigned char **p, uint32_t *len);
int crdt__mp_bin_fixed(crdt__mp *m, unsigned char *out, uint32_t len);
int crdt__mp_str(crdt__mp *m, const char **p, uint32_t *len);
/* A string whose bytes the caller checks itself (UTF-8 not checked). */
int crdt__mp_str_bytes(crdt__mp *m, const char **p, uint32_t *len);
/* A string that is a valid name: 1..CRDT_NAME_MAX bytes, UTF-8, no NUL. */
int crdt__mp_name(crdt__mp *m, const char **p, uint32_t *len);
/* A scalar value; strings are checked to be UTF-8. */
int crdt__mp_value(crdt__mp *m, crdt_value *v);
/* Skip one object of any type; nesting limited to 32. */
int crdt__mp_skip(crdt__mp *m);
int crdt__utf8_valid(const char *s, size_t len);

/* ---- codec.c: encoders ---- */
/* A msgpack packer writing into a growable buffer we own. A write that
 * runs out of memory sticks: check crdt__enc_ok() once before the bytes
 * are stored or sent, not after every pack call. The packer points at
 * the struct: initialise it where it stays (never copy one). */
typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    int failed; /* a write failed since init or reset */
} crdt__enc;

static inline int
crdt__enc_ok(const crdt__enc *e)
{
    return e->failed ? CRDT_ENOMEM : CRDT_OK;
}

void crdt__enc_init(crdt__enc *e);
/* Append raw (already encoded) bytes. */
int crdt__enc_raw(crdt__enc *e, const void *p, size_t len);
void crdt__enc_reset(crdt__enc *e);
void crdt__enc_free(crdt__enc *e);
int crdt__enc_value(crdt__enc *e, const crdt_value *v);
int crdt__enc_str(crdt__enc *e, const char *s, size_t len);
int crdt__enc_bin(crdt__enc *e, const void *p, size_t len);
/* One op in its standalone form (every name and id spelled out: a
 * txn's buffer, the quarantine, format 1). */
/* chain.c: is @p c, held in the log @p dbi, authentic? Its own
 * signature, or the chain after it up to a signed change. CRDT_OK;
 * CRDT_EAUTH. */
int crdt__log_prove(MDB_txn *txn, MDB_dbi dbi, const crdt_change *c);
int crdt__op_decode(crdt_op *op, crdt__mp *m);
int crdt__op_encode(crdt__enc *e, const crdt_op *op);
/* One op of a change, in the change's context @p ctx (format 2 refers
 * to the op before and to the change's actor; NULL: standalone). The
 * context advances with each op. */
int crdt__op_decode_in(crdt_op *op, crdt__mp *m, crdt_op_iter *ctx);
int crdt__op_encode_in(crdt__enc *e, const crdt_op *op, crdt_op_iter *ctx);
/* A name (@p which: 0 coll, 1 doc, 2 field) in that context. */
int crdt__op_name(crdt__mp *m, const char **s, size_t *len, crdt_op_iter *ctx,
                  int which);
int crdt__op_enc_name(crdt__enc *e, const char *s, size_t len,
                      crdt_op_iter *ctx, int which);
/* seq_codec.c: the sequence ops, after the array header (of @p n items)
 * and the kind were read. */
int crdt__seq_op_decode(crdt_op *op, crdt__mp *m, uint32_t n,
                        crdt_op_iter *ctx);
int crdt__seq_op_encode(crdt__enc *e, const crdt_op *op, crdt_op_iter *ctx);
/* oprun.c: if @p next continues @p last's run (a local txn's typing or
 * deleting), encode the one op that says both into @p out and return 1;
 * 0 if it does not; a negative error. */
int crdt__op_fold(crdt__enc *out, const crdt_op *last, const crdt_op *next,
                  const crdt_actor *self);
int crdt__change_sign(unsigned char *sig, const unsigned char *hash,
                      const unsigned char *sk);
/* Encode a scalar into a fixed buffer; returns length or -1. */
int crdt__value_bytes(unsigned char *out, size_t cap, const crdt_value *v);
/* Decode a scalar encoded by crdt__value_bytes(). */
int crdt__value_parse(crdt_value *v, const unsigned char *p, size_t len);
/* Actor id from public key and incarnation. */
void crdt__actor_of(crdt_actor *out, const unsigned char *pk,
                    const unsigned char *inc);

/* ---- state.c: the materialized state ---- */
/*
 * Apply one op of actor @p actor with stamp @p hlc and seq @p seq.
 * Local and remote ops take this same path, so both follow one set of
 * merge rules.
 */
int crdt__state_apply(crdt__wctx *w, const crdt_op *op, uint64_t hlc,
                      const crdt_actor *actor, uint64_t seq);
/* Compute the observed part for SREM / DEL_FIELD / DEL_DOC (local). */
int crdt__state_observe(crdt__wctx *w, crdt__enc *e, crdt_op_kind kind,
                        const char *coll, const char *doc,
                        const char *field, const crdt_value *elem);
/* Which kind a field is live as, or 0; a negative code if the document
 * could not be read (CRDT_ENOMEM, an LMDB error). */
int crdt__state_field_kind(MDB_txn *txn, MDB_dbi state, const char *coll,
                           const char *doc, const char *field);
int crdt__state_put(crdt__wctx *w, const void *k, size_t kl,
                    const void *v, size_t vl, const MDB_val *old);
/* Field key order of two field names: bytewise, a name before the
 * longer names it starts (its key goes on with a NUL). */
int crdt__field_order(const char *a, size_t al, const char *b, size_t bl);
/* The document of state key @p k lost an entry it had before this txn
 * (a lens default a sequence op took away): it was not born here, even
 * if it holds no entry for a moment (state.c (4)). */
int crdt__state_not_born(crdt__wctx *w, const unsigned char *k, size_t kl);
int crdt__state_del(crdt__wctx *w, const void *k, size_t kl,
                    const MDB_val *old);
/* How stamp (@p hlc, @p a) orders against the stamp at the start of an
 * entry's value @p old (hlc(8) | actor(8)): < 0 older, 0 the same stamp
 * (a copy applied under its original's, or two versions of one actor),
 * > 0 newer. */
int crdt__stamp_cmp(uint64_t hlc, const crdt_actor *a,
                    const unsigned char *old);
/* Between two values under one stamp (a copy applied under its
 * original's, docs/storage.md 5.3), 1 when the bytes of @p a sort after
 * those of @p b: that one is kept, on every replica in any order. */
int crdt__bytes_above(const unsigned char *a, size_t al,
                      const unsigned char *b, size_t bl);
/* The first entry of the active state whose key starts with @p p, in
 * @p key and @p val (valid until the next write); CRDT_ENOTFOUND if none. */
int crdt__state_first_under(crdt__wctx *w, const void *p, size_t pl,
                            MDB_val *key, MDB_val *val);
/* Find @p k in the active state with the context's cursor, leaving it
 * there so crdt__state_put() can overwrite in place. ENOTFOUND if absent. */
int crdt__state_get(crdt__wctx *w, const void *k, size_t kl, MDB_val *out);
/* An entry's hash in the state hash (store format 2); _v1: format 1's,
 * for backups it wrote. */
void crdt__hash_entry(uint64_t out[4], const void *k, size_t kl,
                      const void *v, size_t vl);
/* SipHash-2-4-128 of @p in under two keys (siphash2.c): out[0..1] the
 * two little-endian words of crypto_shorthash_siphashx24 under @p key_a,
 * out[2..3] under @p key_b. */
void crdt__siphash128x2(uint64_t out[4], const void *in, size_t len,
                        const unsigned char key_a[16],
                        const unsigned char key_b[16]);
void crdt__hash_entry_v1(uint64_t out[4], const void *k, size_t kl,
                         const void *v, size_t vl);
/* The state hash of database @p dbi from scratch, as store format
 * @p format defines it (1 or 2). */
int crdt__state_rehash(MDB_txn *txn, MDB_dbi dbi, int format,
                       unsigned char out[32]);
void crdt__acc_bytes(unsigned char out[32], const uint64_t acc[4]);
/* Writes an entry's hashed bytes (klen, 2 bytes big-endian | key |
 * value) at @p dst: returns 2 + kl + vl (state.c). */
size_t crdt__entry_bytes_put(unsigned char *dst, const void *k, size_t kl,
                             const void *v, size_t vl);
/* The hash of an entry's hashed bytes (klen | key | value), at most
 * 1,024 of them (state.c). */
void crdt__hash_entry_bytes(uint64_t out[4], const unsigned char *e,
                            size_t n);
/* Adds the entries waiting in w->hq to w->acc: before anything reads or
 * replaces w->acc. */
void crdt__wctx_hash_settle(crdt__wctx *w);
void crdt__acc_load(uint64_t acc[4], const unsigned char in[32]);
/* rawbatch.c: a batch's entries, each as kl (4 bytes) | vl (4) | key |
 * value in the host's byte order, from the returned start to *end; and
 * the sum of their hashes added to @p acc. */
const unsigned char *crdt__batch_entries(const crdt_raw_batch *b,
                                         const unsigned char **end);
void crdt__batch_sum_into(const crdt_raw_batch *b, uint64_t acc[4]);

/* ---- heads.c: per-actor chain state ---- */
typedef struct {
    uint64_t seq;                       /* last op held */
    unsigned char hash[CRDT_HASH_BYTES]; /* hash of the change ending there */
    unsigned char pk[CRDT_PUBKEY_BYTES];
    unsigned char inc[8];
} crdt__head;

#define CRDT__HEAD_BYTES (8 + CRDT_HASH_BYTES + CRDT_PUBKEY_BYTES + 8)
/* 1 when a write under this replica's actor could reuse a seq: it issued
 * seqs its head does not reach (a reset took its own changes out of the
 * log) or its head is beyond what it issued (a copy of this directory
 * wrote as this actor): the incarnation must be renewed first
 * (crdt_replica_check_incarnation()). 0 when not; a crdt_err. */
int crdt__actor_stale(MDB_txn *txn, crdt_replica *r);
int crdt__head_get(MDB_txn *txn, crdt_replica *r, const crdt_actor *a,
                   crdt__head *out);
int crdt__head_put(MDB_txn *txn, crdt_replica *r, const crdt_actor *a,
                   const crdt__head *h);
/* Log and pending keys: actor(8) | seq(8) big-endian. */
void crdt__log_key(unsigned char *k, const crdt_actor *a, uint64_t seq);
/* Add to the meta counters ops_in_log / changes_in_log / pending. */
/* quarantine.c, the one writer of quarantine records: op @p op of @p c
 * (its seq @p seq) under kind CRDT_QK_*; every op of @p c above seq
 * @p above (counted in @p n_out); every op of @p c in @p w's txn. */
int crdt__quarantine_put(MDB_txn *txn, crdt_replica *r, const crdt_change *c,
                         uint64_t seq, const crdt_op *op, int kind,
                         const char *why, size_t why_len);
int crdt__quarantine_change(MDB_txn *txn, crdt_replica *r,
                            const crdt_change *c, uint64_t above, int kind,
                            const char *why, size_t why_len,
                            uint64_t *n_out);
int crdt__quarantine_ops(crdt__wctx *w, const crdt_change *c, int kind,
                         const char *why, size_t why_len, uint64_t *n_out);
/* chain.c: crdt_chain_check() inside a txn. */
int crdt__chain_check(int *out, MDB_txn *txn, crdt_replica *r,
                      const crdt_actor *a, uint64_t seq,
                      const unsigned char *hash);
int crdt__count_add(MDB_txn *txn, crdt_replica *r, const char *key,
                    int64_t delta);

/* ---- hlc.c ---- */
uint64_t crdt__now_ms(void);
/* Next local stamp for @p n ops: strictly above @p last and the clock. */
uint64_t crdt__hlc_next(uint64_t last, uint64_t n);
static inline uint64_t crdt__hlc_ms(uint64_t hlc) { return hlc >> 16; }

/* ---- logrec.c: log records (docs/storage.md 3, "Run records") ---- */
/* The first byte of a run record; a single change starts with 0x92. */
#define CRDT__LOGRUN_TAG 0xc1
/* A run holds 2 .. this many changes ... */
#define CRDT__LOGRUN_CHANGES_MAX 4096u
/* ... of at most this many change bytes in all (rebuilt) ... */
#define CRDT__LOGRUN_BYTES_MAX (1024u * 1024)
/* ... in a record of at most this many bytes. */
#define CRDT__LOGRUN_MAX (CRDT__LOGRUN_BYTES_MAX + 64u * 1024)
/* The changes of one log record, as their exact signed bytes: list[0..n)
 * are views into the record (one change) or into buf (a run). */
typedef struct {
    crdt_bytes *list;
    size_t n;
    unsigned char *buf;
    unsigned char *hashes; /* a run: each change's body hash, computed
                              when it was rebuilt and decoded in full,
                              ops walked (n x CRDT_HASH_BYTES) */
    crdt_bytes one;
    int run;
} crdt__logrec;
int crdt__logrec_is_run(const void *v, size_t len);
/* Open the record @p v under @p key (16 bytes: actor | last seq; 24: an
 * archive key; NULL: not checked against a key). A run is checked whole;
 * CRDT_ECORRUPT when damaged. Close it with crdt__logrec_close(). */
int crdt__logrec_open(crdt__logrec *lr, const void *key, size_t klen,
                      const void *v, size_t vlen);
void crdt__logrec_close(crdt__logrec *lr);
/* The header of change @p i of an open record (crdt__change_decode_header();
 * a run's changes with the hash its open computed, not hashed again). */
int crdt__logrec_decode(crdt_change *out, const crdt__logrec *lr, size_t i);
/* Position @p cur (a database keyed [prefix |] actor | last seq) on the
 * record of @p a that holds @p seq, or the first one after it, open it
 * and set @p idx to its first change that ends at or after @p seq.
 * CRDT_ENOTFOUND: no record of @p a at or after @p seq. */
int crdt__logrec_find(crdt__logrec *lr, size_t *idx, MDB_cursor *cur,
                      const unsigned char *prefix, size_t plen,
                      const crdt_actor *a, uint64_t seq);
/* Rewrite every run record of @p dbi as one record per change. */
int crdt__log_split(uint64_t *split_out, MDB_txn *txn, MDB_dbi dbi);

/* ---- changepack.c ---- */
/* crdt_changes_pack() of changes whose body hashes libcrdt computed
 * earlier from these same bytes (@p hashes: n x CRDT_HASH_BYTES, or
 * NULL: computed here): spares hashing each change again (a wrong hash
 * only keeps the next change from being chained to it). */
int crdt__changes_pack_hashed(unsigned char **out, size_t *out_len,
                              const crdt_bytes *changes,
                              const unsigned char *hashes, size_t n);
/* crdt_changes_unpack() that also gives each rebuilt change's body hash
 * (@p hashes_out: n x CRDT_HASH_BYTES, release with free(); NULL: not
 * wanted); a change carried verbatim is decoded to hash it. */
int crdt__changes_unpack_hashed(crdt_bytes **changes_out, size_t *n_out,
                                unsigned char **buf_out,
                                unsigned char **hashes_out,
                                const unsigned char *in, size_t len);

/* One change of a merge: its decoded header and its bytes (merge.c). */
typedef struct {
    crdt_change c;
    const unsigned char *data;
    size_t len;
} crdt__mitem;

/* Whether the decoded change @p c's views (ops, signature) lie in its
 * bytes @p d, @p len: then a copy of @p c stays true to them. */
static inline int
crdt__change_views_inside(const crdt_change *c, const unsigned char *d,
                          size_t len)
{
    return c->ops >= d && c->ops <= d + len &&
           c->ops_len <= (size_t)(d + len - c->ops) &&
           (c->sig == NULL ||
            (c->sig >= d && c->sig <= d + len &&
             (size_t)(d + len - c->sig) >= 64));
}

/* crdt__changes_pack_decoded() of the merge's changes @p items (each
 * decoded, its hash computed, its ops checked or to be checked before
 * the record is kept): the same bytes as crdt_changes_pack(). */
int crdt__changes_pack_items(unsigned char **out, size_t *out_len,
                             const crdt__mitem *const *items, size_t n);

/* ---- logrun.c: a merge's run of one actor's changes, one record ---- */
typedef struct crdt__logrun {
    /* the changes' bytes where they are: the merge's message, alive
     * until the merge ends, or a drained pending change's copy, which
     * the run owns (owned[]) and frees once the run is written */
    crdt_bytes *list;
    size_t len;         /* their bytes, all together */
    unsigned char *hashes; /* each change's body hash, as the merge
                              computed it (n x CRDT_HASH_BYTES) */
    size_t n, cap; /* cap: slots of list, hashes and dec alike */
    unsigned char **owned;
    size_t n_owned, cap_owned;
    crdt_actor actor;
    uint64_t last;      /* the last seq of the last change */
    /* each change as the merge decoded it, its views (ops, sig) into its
     * bytes: the packer need not decode and hash it again
     * (crdt__changes_pack_decoded); no_dec: one had views elsewhere */
    crdt_change *dec;
    int no_dec;
    /* a large merge's second thread (mergeaid.h), which may have packed
     * the run already; NULL: none */
    struct crdt__mergeaid *aid;
} crdt__logrun;
/* Add the applied change @p c (@p data, @p len: its bytes, not copied:
 * they must stay alive until the run is written or reset) to the run; a
 * run of another actor, or one that would pass its bounds, is written
 * first. @p own: @p data is malloc'd and the run takes it in every case
 * (freed once the run is written or reset, or here on failure). */
int crdt__logrun_add(crdt__logrun *run, MDB_txn *txn, MDB_dbi dbi,
                     MDB_cursor *cur, const crdt_change *c,
                     const unsigned char *data, size_t len, int own);
/* Write the run (if any) as one record of @p dbi (through @p cur when
 * not NULL) and empty it. */
int crdt__logrun_flush(crdt__logrun *run, MDB_txn *txn, MDB_dbi dbi,
                       MDB_cursor *cur);
/* Write the packed run @p packed, @p len as the log record of @p key (16
 * bytes): the tag byte, then the packed bytes. */
int crdt__logrun_put_packed(MDB_txn *txn, MDB_dbi dbi, MDB_cursor *cur,
                            const unsigned char key[16],
                            const unsigned char *packed, size_t len);
/* Room for @p n changes (up to a run's bound), and at least for the
 * next one: a merge knows how many its message holds, and growing by
 * doubling copied the decoded changes (some 270 bytes each) at every
 * step. */
int crdt__logrun_reserve(crdt__logrun *run, size_t n);
/* Empty the run without writing it (its buffers stay for the next). */
void crdt__logrun_reset(crdt__logrun *run);
void crdt__logrun_free(crdt__logrun *run);

/* crdt_changes_pack() of @p n changes whose decoded forms @p dec (as
 * crdt_change_decode() gives them, or from a header decode whose ops
 * were all read since) are at hand: they are not decoded and hashed
 * again; the bytes are those of crdt_changes_pack(). */
int crdt__changes_pack_decoded(unsigned char **out, size_t *out_len,
                               const crdt_bytes *changes,
                               const crdt_change *dec, size_t n);

/* ---- names ---- */
int crdt__name_ok(const char *s);
/* crdt_change_decode() without walking the ops: for a caller that
 * iterates them all before committing (the iterator checks them). */
int crdt__change_decode_header(crdt_change *out, const unsigned char *buf,
                               size_t len);
/* crdt__change_decode_header() of a change whose body hash @p hash was
 * computed earlier from these same bytes (a run record's unpack, a
 * merge's decode): spares the BLAKE2b. A wrong @p hash breaks every
 * chain check that follows: only for hashes libcrdt computed itself. */
int crdt__change_decode_hashed(crdt_change *out, const unsigned char *buf,
                               size_t len, const unsigned char *hash);
/* The walk crdt_change_decode() does: ops well-formed, filling the body. */
int crdt__change_check_ops(const crdt_change *c);
int crdt__name_ok_len(const char *s, size_t len);

#endif
