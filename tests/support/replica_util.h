/* Helpers for tests that drive replicas. */
#ifndef TEST_REPLICA_UTIL_H
#define TEST_REPLICA_UTIL_H

#include "crdt/crdt.h"

/* Create a fresh replica in a new temp dir (joining @p space if given). */
crdt_replica *tu_create(char *dir, size_t size, const unsigned char *space);
/* Two fresh replicas of one space (@p a creates it, @p b joins), in new
 * temp dirs @p da and @p db, not attached to libepoch (tu_pair_open() in
 * epoch_util.h attaches them). */
void tu_pair_create(crdt_replica **a, char *da, crdt_replica **b, char *db,
                    size_t dir_size);
/* Close both and remove their directories. */
void tu_pair_close(crdt_replica *a, const char *da, crdt_replica *b,
                   const char *db);
/* The fixture of a file whose every test runs on a fresh pair: declares
 * the replicas a and b, their directories da and db, and the setup()
 * and teardown() for tcase_add_checked_fixture(); @p open is
 * tu_pair_create or tu_pair_open. Written without a ';' after it. */
#define TU_PAIR_FIXTURE(open)                                                  \
    static char da[256], db[256];                                              \
    static crdt_replica *a, *b;                                                \
    static void setup(void) { open(&a, da, &b, db, sizeof da); }               \
    static void teardown(void) { tu_pair_close(a, da, b, db); }

/* Write int @p v to register c/d/@p field straight into @p r's state, as
 * the op of a ghost actor that no log holds (the state hash moves with
 * it): a state that does not follow from the replica's ops. */
void tu_state_put_ghost(crdt_replica *r, const char *field, int64_t v);
/* Copy every change @p from has that @p to lacks; returns merge rc. */
int tu_sync_one_way(crdt_replica *to, crdt_replica *from);
/* Field as a JSON-ish string for assertions ("" if absent). */
void tu_field_str(char *buf, size_t size, crdt_replica *r, const char *coll,
                  const char *doc, const char *field);
/* Every change @p r exports, as copies the caller frees with
 * tu_batch_free(). */
typedef struct {
    crdt_bytes *v;
    size_t n;
} tu_batch;
tu_batch tu_export_all(crdt_replica *r);
/* Every change of @p r as its writer stored it: each local commit took
 * the signature of the one before (proven by it), the last is signed
 * (crdt_export_begin_as_stored()). */
tu_batch tu_export_as_stored(crdt_replica *r);
/* crdt_merge() of @p batch (a tu_batch *) into @p r: the loops'
 * operation. */
int tu_merge_batch(crdt_replica *r, void *batch);
/* The changes @p r holds beyond what @p holder holds. */
tu_batch tu_export_beyond(crdt_replica *r, crdt_replica *holder);
void tu_batch_free(tu_batch *b);
/* @p r's counters (crdt_read_stats(), checked). */
crdt_stats tu_stats(crdt_replica *r);
/* Changes parked in @p r's pending area (crdt_stats.pending). */
uint64_t tu_pending(crdt_replica *r);
/* Write @p list (n >= 2 consecutive changes of one actor) into @p r's
 * log as one run record (docs/storage.md 3: c1 | packed) under the key
 * of its last change, replacing what that key held: a stored run as a
 * damaged disk or a forger might leave it. */
void tu_log_put_run(crdt_replica *r, const crdt_bytes *list, size_t n);
/* Change the last byte of the ops of the change @p b (a tu_batch's own
 * copy): it still decodes, with another hash, its signature now wrong. */
void tu_change_alter_op(crdt_bytes *b);
/* Write @p who's public key into @p r's member set as a member (@p yes)
 * or not (checked). */
void tu_set_member(crdt_replica *r, crdt_replica *who, int yes);
/* A copy of the replica under @p dir (made by tu_create()) taken with
 * cp while it may be open, into a new temp dir @p clone_dir: a clone
 * behind its back, opened. */
crdt_replica *tu_clone_open(const char *dir, char *clone_dir, size_t size);
/* How many ops @p r holds in its quarantine. */
uint64_t tu_quarantine_count(crdt_replica *r);
/* State hash as hex. */
void tu_hash(char *hex65, crdt_replica *r);
/* put int helper: one change. */
int tu_put_int(crdt_replica *r, const char *coll, const char *doc,
               const char *field, int64_t v);
/* The same change through crdt_txn_write() (a group's shared txn). */
int tu_write_int(crdt_replica *r, const char *coll, const char *doc,
                 const char *field, int64_t v);
/* @p n one-op changes: @p field of documents @p prefix followed by
 * 0 .. n-1 (zero-padded to @p width digits) set to 0 .. n-1, one commit
 * each (checked). */
void tu_put_numbered(crdt_replica *r, const char *coll, const char *prefix,
                     int width, int n, const char *field);
/* BLAKE2b of every record (key length, key, value length, value) of
 * database @p db (a CRDT_DB_* of crdt/raw.h) of @p r, in key order. */
void tu_db_digest(crdt_replica *r, int db, unsigned char out[32]);
/* One change of every op kind (text and list too) on documents c/d0..d3,
 * varied by @p *(int *)arg: a crdt_write_fn. */
int tu_all_kinds(crdt_txn *t, void *arg);
/* That change committed by a txn of its own, or through crdt_txn_write()
 * if @p shared; the commit's error, not asserted. */
int tu_write_all_kinds(crdt_replica *r, int i, int shared);
/* One BLAKE2b of every database's tu_db_digest(), in order: the replica
 * byte for byte. */
void tu_digest_all(crdt_replica *r, unsigned char out[32]);
/* 1: every merge gets the large merge's second thread (libcrdt's
 * mergeaid.h), however small; 0: the default again. */
void tu_merge_aid_always(int on);
/* setup_aid() and teardown_aid(): the file's own setup() and teardown()
 * with tu_merge_aid_always() on, for a second run of its tests. Written
 * without a ';' after it. */
#define TU_AID_FIXTURE                                                         \
    static void setup_aid(void) { tu_merge_aid_always(1); setup(); }           \
    static void teardown_aid(void) { teardown(); tu_merge_aid_always(0); }

/* Concurrent edits of the texts (c/d2/t, c/d3/t) and the list (c/d3/l)
 * in @p x and @p y, with one sync y <- x half way: runs typed at both
 * ends, deletes across the other's inserts. */
void tu_edit_seqs_both(crdt_replica *x, crdt_replica *y);
/* Eight writes of every kind in @p x, taken by @p y, then
 * tu_edit_seqs_both(): concurrent text and list edits on a shared base,
 * not yet merged by either side. */
void tu_seqs_pair(crdt_replica *x, crdt_replica *y);

/* A space with an owner (its roles on, docs/security.md): the space id
 * for the owner of @p seed, and @p nonce for its genesis. */
void tu_owner_space(unsigned char space[16], unsigned char nonce[16],
                    const unsigned char *seed);
/* A new replica of @p space under @p dir whose key pair comes from
 * @p seed; with @p nonce (the owner's), it writes the space's genesis. */
crdt_replica *tu_create_seeded(char *dir, size_t size,
                               const unsigned char *space,
                               const unsigned char *seed,
                               const unsigned char *nonce);
/* One txn that gives @p pk @p role, or removes @p pk from the member
 * set; errors answered, not asserted. */
int tu_set_role(crdt_replica *r, const unsigned char *pk, crdt_role role);
int tu_remove_key(crdt_replica *r, const unsigned char *pk);

/* A member removed after it wrote on: owner o grants w a writer; w
 * writes one document, o sees it and removes w; w writes two more. p
 * (the owner's key, another replica) holds all of w's writes but not
 * the removal, which @p removal holds (o's changes beyond p's): its
 * merge replays the authority rules and refuses w's later two ops. */
typedef struct {
    char dir[3][256];
    crdt_replica *o, *w, *p;
} tu_trio;
void tu_removal_scene(tu_trio *t, tu_batch *removal);
void tu_trio_close(tu_trio *t);

/* The text, the list, a slice and a cursor of c/d2 and of c/d3 (absent
 * ones count as empty) read in one snapshot of @p r, summed up in
 * @p sum (their bytes and lengths): equal sums, equal reads. */
int tu_seqs_sum(crdt_replica *r, uint64_t *sum);

/* Typing as an editor does in c/@p doc/t: 40 characters, one insert
 * each after the one before (the txn folds them into one run), then 5
 * deleted one by one (folded into one range), in one txn; errors
 * answered, not asserted. */
int tu_type_run(crdt_replica *r, const char *doc);

/* Inserts whose anchors have not come yet: @p b types a text (c/d2/t);
 * a third replica c of @p a's space takes it, types into it at both
 * ends and deletes some of it. @p from_c holds c's changes only (their
 * anchors are b's: a merge into a replica that lacks b's parks them),
 * @p from_b all of b's (they bring the anchors). tu_parked_close(): c
 * takes @p a's changes and must then show @p a's state; both batches
 * freed, c removed. */
typedef struct {
    char dir[256];
    crdt_replica *c;
    tu_batch from_c, from_b;
} tu_parked;
void tu_parked_scene(tu_parked *p, crdt_replica *a, crdt_replica *b);
void tu_parked_close(tu_parked *p, crdt_replica *a);

/* The pending area's harder cases. @p a writes five changes and @p b
 * (reopened with room for three parked changes an actor) parks a's 4th
 * and 5th. A copy of @p a taken after its first change writes a 2nd of
 * as many ops as a's and two one-op changes: @p fork holds these two,
 * the first starting where a's 3rd starts, the second inside a's 3rd
 * (both park at a replica lacking a's 2nd, the second displacing a's
 * 5th; once a's chain reaches or passes them they are proven other
 * versions of their seqs). @p near is a's 2nd (merged then, it
 * displaces a's 4th), @p all every change of a.
 * tu_pending_close(): @p b takes every change and must show a's state;
 * every batch freed, the copy removed. */
typedef struct {
    char dir[256];
    crdt_replica *copy;
    tu_batch near, all, fork;
} tu_pending_cases;
void tu_pending_scene(tu_pending_cases *p, crdt_replica *a, const char *da,
                      crdt_replica **b, const char *db);
void tu_pending_close(tu_pending_cases *p, crdt_replica *a, crdt_replica *b);

/* The replica in @p path (its LMDB directory, closed) with its format
 * record set to @p fmt and nothing else changed. */
void tu_set_format(const char *path, unsigned char fmt);
/* Turn the replica in @p path (closed) into what format 1 wrote: format
 * 1 and the slots' hashes as format 1 defined them. Returns slot 0's in
 * @p v1_hash. */
void tu_downgrade_to_1(const char *path, unsigned char v1_hash[32]);

#endif
