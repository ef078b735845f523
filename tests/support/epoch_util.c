/* epoch_util.c: helpers for tests that drive epochs and sync sessions. */
#include "support/epoch_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/raw.h"
#include "support/replica_util.h"
#include "support/support.h"

void
tu_pair_open(crdt_replica **a, char *da, crdt_replica **b, char *db,
             size_t dir_size)
{
    tu_pair_create(a, da, b, db, dir_size);
    ck_assert_int_eq(epoch_attach(*a), CRDT_OK);
    ck_assert_int_eq(epoch_attach(*b), CRDT_OK);
}

crdt_replica *
tu_open_dir(const char *dir)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r = NULL;
    char sub[300];

    snprintf(sub, sizeof sub, "%s/r", dir);
    ck_assert_int_eq(crdt_replica_open(&r, sub, &o), CRDT_OK);
    ck_assert_int_eq(epoch_attach(r), CRDT_OK);
    return r;
}

void
tu_copy_dir(const char *from, char *to, size_t to_size)
{
    char cmd[700];

    ck_assert_int_eq(test_tmpdir(to, to_size), 0);
    snprintf(cmd, sizeof cmd, "cp -a '%s/r' '%s/r'", from, to);
    ck_assert_int_eq(system(cmd), 0);
}

void
tu_pair_copy(const char *da, const char *db, char *dx, char *dy,
             crdt_replica **x, crdt_replica **y)
{
    tu_copy_dir(da, dx, 256);
    tu_copy_dir(db, dy, 256);
    *x = tu_open_dir(dx);
    *y = tu_open_dir(dy);
}

epoch_lens *
tu_lens(const char *text)
{
    epoch_lens *l = NULL;
    epoch_lens_error err;

    ck_assert_msg(epoch_lens_parse(&l, text, strlen(text), &err) == CRDT_OK,
                  "lens: line %d: %s", err.line, err.message);
    return l;
}

uint64_t
tu_state_entries(crdt_replica *r)
{
    crdt_raw *t;
    uint64_t n = 0;

    ck_assert_int_eq(crdt_raw_begin(&t, r, 0), CRDT_OK);
    ck_assert_int_eq(crdt_raw_count(&n, t, crdt_raw_state_db(t, 0)),
                     CRDT_OK);
    crdt_raw_abort(t);
    return n;
}

void
tu_migrate(crdt_replica *r, const char *lens_text, epoch_info *out)
{
    epoch_builder *bl;
    epoch_lens *l = lens_text ? tu_lens(lens_text) : NULL;

    ck_assert_int_eq(epoch_builder_new(&bl, r), CRDT_OK);
    if (l)
        ck_assert_int_eq(epoch_builder_add_lens(bl, l), CRDT_OK);
    ck_assert_int_eq(epoch_builder_commit(out, bl), CRDT_OK);
    epoch_builder_free(bl);
    epoch_lens_free(l);
}

static int
put_entry(const void *k, size_t kl, const void *v, size_t vl, void *ctx)
{
    return epoch_reset_put(ctx, k, kl, v, vl);
}

int
tu_reset_from(crdt_replica *stale, crdt_replica *fresh)
{
    epoch_info *chain;
    size_t n;
    epoch_reset *rs;
    unsigned char id[32], hash[32];
    int rc;

    ck_assert_int_eq(epoch_chain(&chain, &n, fresh), CRDT_OK);
    for (size_t i = 1; i < n; i++) {
        const unsigned char *rec = chain[i].raw;
        size_t len = chain[i].raw_len;
        ck_assert_int_eq(epoch_store_records(stale, &rec, &len, 1), CRDT_OK);
    }
    rc = epoch_reset_begin(&rs, stale, chain[n - 1].id, NULL);
    epoch_chain_free(chain, n);
    if (rc < 0)
        return rc;
    ck_assert_int_eq(epoch_snapshot_walk(fresh, id, hash, put_entry, rs),
                     CRDT_OK);
    if ((rc = epoch_reset_commit(NULL, rs, hash)) < 0)
        return rc;
    return tu_sync_one_way(stale, fresh);
}

int
tu_store_records_answered(crdt_replica *stale, void *fresh)
{
    epoch_info *chain;
    size_t n;
    int rc;

    if ((rc = epoch_chain(&chain, &n, fresh)) < 0)
        return rc;
    for (size_t i = 1; i < n && rc == CRDT_OK; i++) {
        const unsigned char *rec = chain[i].raw;
        size_t len = chain[i].raw_len;
        rc = epoch_store_records(stale, &rec, &len, 1);
    }
    epoch_chain_free(chain, n);
    return rc;
}

int
tu_reset_answered(crdt_replica *stale, void *fresh)
{
    unsigned char id[32], hash[32];
    epoch_info e;
    epoch_reset *rs;
    int rc;

    if ((rc = epoch_current(&e, fresh)) < 0)
        return rc;
    rc = epoch_reset_begin(&rs, stale, e.id, NULL);
    epoch_info_clear(&e);
    if (rc < 0)
        return rc;
    rc = epoch_snapshot_walk(fresh, id, hash, put_entry, rs);
    if (rc < 0) {
        epoch_reset_abort(rs);
        return rc;
    }
    return epoch_reset_commit(NULL, rs, hash);
}

int
tu_reset_with_log_answered(crdt_replica *stale, crdt_replica *fresh,
                           const crdt_actor *forks, size_t n_forks)
{
    static const char why[] = "equivocation: lost to the peer's chain";
    unsigned char id[32], hash[32];
    const unsigned char *heads, *buf;
    size_t heads_len, len;
    crdt_vv *lacks = NULL;
    crdt_export *ex = NULL;
    epoch_info e;
    epoch_reset *rs;
    int rc;

    if ((rc = epoch_current(&e, fresh)) < 0)
        return rc;
    rc = epoch_reset_begin(&rs, stale, e.id, NULL);
    if (rc == CRDT_OK) {
        /* genesis folds nothing: its whole log goes (lacks NULL) */
        rc = epoch_record_heads(&heads, &heads_len, &e);
        if (rc == CRDT_OK)
            rc = crdt_heads_vv(&lacks, heads, heads_len);
        else if (rc == CRDT_ENOTFOUND)
            rc = CRDT_OK;
    } else {
        rs = NULL;
    }
    epoch_info_clear(&e);
    if (rc == CRDT_OK && n_forks > 0)
        rc = epoch_reset_quarantine_forks(rs, forks, n_forks, why, NULL);
    if (rc == CRDT_OK)
        rc = epoch_snapshot_walk(fresh, id, hash, put_entry, rs);
    if (rc == CRDT_OK)
        rc = crdt_export_begin(&ex, fresh, lacks);
    while (rc == CRDT_OK) {
        if ((rc = crdt_export_next(ex, &buf, &len)) == CRDT_ENOTFOUND) {
            rc = CRDT_OK; /* the log's end */
            break;
        }
        if (rc == CRDT_OK)
            rc = epoch_reset_change(rs, buf, len);
    }
    crdt_export_end(ex);
    crdt_vv_free(lacks);
    if (rc == CRDT_OK)
        return epoch_reset_commit(NULL, rs, hash);
    epoch_reset_abort(rs);
    return rc;
}

int
tu_merge_from_answered(crdt_replica *to, crdt_replica *from,
                       void *(*alloc)(size_t))
{
    crdt_read *rd;
    crdt_vv *vv = NULL;
    crdt_export *e;
    crdt_bytes list[64];
    const unsigned char *buf;
    size_t len, n = 0;
    int rc;

    if ((rc = crdt_read_begin(&rd, to)) < 0)
        return rc;
    rc = crdt_read_vv(&vv, rd);
    crdt_read_end(rd);
    if (rc == CRDT_OK)
        rc = crdt_export_begin(&e, from, vv); /* reads vv until its end */
    if (rc < 0) {
        crdt_vv_free(vv);
        return rc;
    }
    while (n < 64 && (rc = crdt_export_next(e, &buf, &len)) == CRDT_OK) {
        unsigned char *copy = alloc(len);
        if (copy == NULL) /* no assertion here: a loop may be armed */
            abort();
        memcpy(copy, buf, len);
        list[n].data = copy;
        list[n++].len = len;
    }
    crdt_export_end(e);
    crdt_vv_free(vv);
    if (rc == CRDT_ENOTFOUND)
        rc = crdt_merge(NULL, to, list, n);
    for (size_t i = 0; i < n; i++)
        free((void *)list[i].data);
    return rc;
}

static int
count_quarantined(const epoch_quarantined *q, void *ctx)
{
    (void)q;
    ++*(int *)ctx;
    return 0;
}

int
tu_quarantine_listed(crdt_replica *r, void *count)
{
    *(int *)count = 0;
    return epoch_quarantine_list(r, count_quarantined, count);
}

int
tu_quarantine_applied(crdt_replica *r, void *unused)
{
    uint64_t applied, kept;

    (void)unused;
    return epoch_quarantine_apply(&applied, &kept, r);
}

void
tu_interrupted(crdt_replica *r, const char *lens_text)
{
    extern int epoch__marker_put(crdt_raw *, uint64_t, const char *,
                                 const char *);
    crdt_raw *t;
    epoch_info e;

    ck_assert_int_eq(epoch_current(&e, r), CRDT_OK);
    ck_assert_int_eq(crdt_raw_begin(&t, r, 1), CRDT_OK);
    ck_assert_int_eq(epoch__marker_put(t, e.number + 1, lens_text, ""),
                     CRDT_OK);
    ck_assert_int_eq(crdt_raw_commit(t), CRDT_OK);
    epoch_info_clear(&e);
}

int
tu_at_epoch_of(crdt_replica *r, void *fresh)
{
    epoch_info x, y;
    int same;

    ck_assert_int_eq(epoch_current(&x, r), CRDT_OK);
    ck_assert_int_eq(epoch_current(&y, fresh), CRDT_OK);
    same = memcmp(x.id, y.id, sizeof x.id) == 0;
    epoch_info_clear(&x);
    epoch_info_clear(&y);
    return same;
}

void
tu_copy_behind_epoch(crdt_replica *a, crdt_replica **b, char *db,
                     size_t db_size)
{
    unsigned char space[16];
    char dc[256], doc[16];
    crdt_replica *c;

    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "base", "v", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, c), CRDT_OK);
    crdt_replica_close(c);
    crdt_replica_close(*b);
    test_rmtree(db);
    tu_copy_dir(dc, db, db_size);
    *b = tu_open_dir(db);
    c = tu_open_dir(dc);
    for (int i = 0; i < 3; i++) {
        snprintf(doc, sizeof doc, "orig%d", i);
        ck_assert_int_eq(tu_put_int(c, "c", doc, "v", 10 + i), CRDT_OK);
    }
    for (int i = 0; i < 5; i++) {
        snprintf(doc, sizeof doc, "copy%d", i);
        ck_assert_int_eq(tu_put_int(*b, "c", doc, "v", 20 + i), CRDT_OK);
    }
    ck_assert_int_eq(tu_sync_one_way(a, c), CRDT_OK);
    tu_migrate(a, NULL, NULL); /* folds the original's seqs */
    crdt_replica_close(c);
    test_rmtree(dc);
}

void
tu_forked_chains(crdt_replica *a, crdt_replica *b, crdt_actor *actor_out)
{
    unsigned char space[16];
    char dc[256], dcopy[256];
    crdt_replica *c, *copy;

    crdt_replica_space_id(a, space);
    c = tu_create(dc, sizeof dc, space);
    ck_assert_int_eq(epoch_attach(c), CRDT_OK);
    ck_assert_int_eq(tu_put_int(c, "c", "base", "v", 1), CRDT_OK);
    crdt_replica_close(c);
    tu_copy_dir(dc, dcopy, sizeof dcopy);
    c = tu_open_dir(dc);
    copy = tu_open_dir(dcopy);
    if (actor_out != NULL)
        *actor_out = crdt_replica_actor(c);
    ck_assert_int_eq(tu_put_int(c, "c", "orig", "v", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(copy, "c", "copy0", "v", 3), CRDT_OK);
    ck_assert_int_eq(tu_put_int(copy, "c", "copy1", "v", 4), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, c), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(b, copy), CRDT_OK);
    crdt_replica_close(c);
    crdt_replica_close(copy);
    test_rmtree(dc);
    test_rmtree(dcopy);
}

uint64_t
tu_copy_writes_kept(crdt_replica *r)
{
    uint64_t shown = 0;

    for (int i = 0; i < 5; i++) {
        char doc[16], got[32];
        snprintf(doc, sizeof doc, "copy%d", i);
        tu_field_str(got, sizeof got, r, "c", doc, "v");
        shown += got[0] != 0;
    }
    return shown + tu_quarantine_count(r);
}

void
tu_copy_and_original(crdt_replica *a, crdt_replica *b,
                     crdt_replica **stale_out, crdt_replica **fresh_out)
{
    crdt_actor xa = crdt_replica_actor(a), xb = crdt_replica_actor(b), orig;
    crdt_replica *stale, *fresh;
    crdt_change ch;
    tu_batch x;
    crdt_txn *t;

    stale = memcmp(xa.b, xb.b, CRDT_ACTOR_BYTES) < 0 ? a : b;
    fresh = stale == a ? b : a;
    orig = crdt_replica_actor(fresh);
    ck_assert_int_eq(tu_put_int(fresh, "c", "base", "v", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(stale, fresh), CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, fresh), CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "hey", 3),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    x = tu_export_beyond(fresh, stale);
    ck_assert_uint_eq(x.n, 1);
    ck_assert_int_eq(crdt_change_decode(&ch, x.v[0].data, x.v[0].len),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_begin(&t, stale), CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, &orig, ch.seq, ch.hash, ch.hlc),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_text_insert(t, "c", "d", "t", 0, "hey", 3),
                     CRDT_OK);
    ck_assert_int_eq(crdt_txn_copy_of(t, NULL, 0, NULL, 0), CRDT_OK);
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
    tu_batch_free(&x);
    *stale_out = stale;
    *fresh_out = fresh;
}

int
tu_pump_one(crdtnet_session *from, crdtnet_session *to)
{
    const unsigned char *msg;
    size_t len;
    unsigned char *copy;

    if (crdtnet_session_next_out(from, &msg, &len) != CRDT_OK)
        return 0;
    copy = malloc(len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, msg, len); /* the view dies when @p from moves on */
    crdtnet_session_feed(to, copy, len);
    free(copy);
    return 1;
}

int
tu_pump(crdtnet_session *from, crdtnet_session *to)
{
    int moved = 0;

    while (tu_pump_one(from, to))
        moved = 1;
    return moved;
}

tu_sync_result
tu_sessions_run(crdt_replica *x, crdt_replica *y,
                const crdtnet_session_options *opts)
{
    return tu_sessions_run2(x, opts, y, opts);
}

tu_sync_result
tu_sessions_run2(crdt_replica *x, const crdtnet_session_options *ox,
                 crdt_replica *y, const crdtnet_session_options *oy)
{
    crdtnet_session *sx, *sy;
    tu_sync_result res;

    ck_assert_int_eq(crdtnet_session_new(&sx, x, ox), CRDT_OK);
    ck_assert_int_eq(crdtnet_session_new(&sy, y, oy), CRDT_OK);
    for (int round = 0; round < 100000; round++) {
        int moved = tu_pump(sx, sy);
        moved |= tu_pump(sy, sx);
        if (!moved)
            break;
    }
    res.rx = *crdtnet_session_report(sx);
    res.ry = *crdtnet_session_report(sy);
    res.ex = crdtnet_session_error(sx);
    res.ey = crdtnet_session_error(sy);
    crdtnet_session_free(sx);
    crdtnet_session_free(sy);
    return res;
}

void
tu_assert_converged(crdt_replica *x, crdt_replica *y)
{
    char hx[65], hy[65];
    epoch_info cx, cy;

    tu_hash(hx, x);
    tu_hash(hy, y);
    ck_assert_str_eq(hx, hy);
    ck_assert_int_eq(epoch_current(&cx, x), CRDT_OK);
    ck_assert_int_eq(epoch_current(&cy, y), CRDT_OK);
    ck_assert_mem_eq(cx.id, cy.id, 32);
    epoch_info_clear(&cx);
    epoch_info_clear(&cy);
}
