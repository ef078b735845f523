/*
 * lmdb_ref.c: the raw LMDB references, measured in the same run.
 *
 * Each reference does the storage work a workload cannot avoid, with
 * nothing of Strata on top: records of exactly the size libcrdt stores
 * for the workload's ops, the same transaction batching, the default
 * (durable) environment flags. The ratio of a workload to its reference
 * is then what Strata's CRDT layer costs over its storage engine.
 */
#include "bench.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REF_MAP (4ull * 1024 * 1024 * 1024)

size_t
bench_state_key(unsigned char *k, const char *doc, size_t dl)
{
    size_t n = 0;

    k[n++] = 'c';
    k[n++] = 0;
    memcpy(k + n, doc, dl);
    n += dl;
    k[n++] = 0;
    k[n++] = 'v';
    k[n++] = 0;
    k[n++] = 'R';
    return n;
}

static void
be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)v;
        v >>= 8;
    }
}

void
bench_state_val(unsigned char v[25], uint64_t hlc, int64_t val)
{
    be64(v, hlc);
    memset(v + 8, 0x5a, 8); /* actor */
    v[16] = 0xcf;           /* msgpack uint64, as libcrdt stores it */
    be64(v + 17, (uint64_t)val);
}

static int
env_open(MDB_env **env, const char *dir, unsigned flags, char *err,
         size_t errlen)
{
    int rc = mdb_env_create(env);

    if (rc == 0)
        rc = mdb_env_set_mapsize(*env, REF_MAP);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(*env, 4);
    if (rc == 0)
        rc = mdb_env_open(*env, dir, flags | MDB_NOTLS, 0600);
    if (rc != 0) {
        snprintf(err, errlen, "mdb_env_open %s: %s", dir, mdb_strerror(rc));
        if (*env)
            mdb_env_close(*env);
        *env = NULL;
        return -1;
    }
    return 0;
}

#define CHECK(call)                                                       \
    do {                                                                  \
        int rc_ = (call);                                                 \
        if (rc_ != 0) {                                                   \
            bench_fail(out, "%s: %s", #call, mdb_strerror(rc_));          \
            goto fail;                                                    \
        }                                                                 \
    } while (0)

int
ref_w1_child(bench_res *out, void *ctx)
{
    const ref_w1_args *a = ctx;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    uint64_t s = a->seed, hlc = 1, found = 0;
    unsigned char k[128], v[25];
    char doc[32];
    double t0, t1;

    if (env_open(&env, a->dir, 0, out->err, sizeof out->err) < 0)
        return -1;
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, "state", MDB_CREATE, &dbi));
    CHECK(mdb_txn_commit(txn));
    txn = NULL;

    t0 = bench_now();
    for (uint64_t done = 0; done < a->n_ops;) {
        uint64_t n = a->n_ops - done < a->batch_ops ? a->n_ops - done
                                                    : a->batch_ops;
        CHECK(mdb_txn_begin(env, NULL, 0, &txn));
        for (uint64_t i = 0; i < n; i++) {
            size_t dl = bench_doc_id(doc, 5, bench_rand(&s) % a->n_docs);
            MDB_val key = { bench_state_key(k, doc, dl), k };
            MDB_val val = { sizeof v, v };
            bench_state_val(v, hlc++, bench_value(&s));
            CHECK(mdb_put(txn, dbi, &key, &val, 0));
        }
        CHECK(mdb_txn_commit(txn));
        txn = NULL;
        done += n;
    }
    /* then read every document, as the workload does */
    CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn));
    for (uint64_t d = 0; d < a->n_docs; d++) {
        size_t dl = bench_doc_id(doc, 5, d);
        MDB_val key = { bench_state_key(k, doc, dl), k }, val;
        if (mdb_get(txn, dbi, &key, &val) == 0 && val.mv_size == sizeof v)
            found++;
    }
    mdb_txn_abort(txn);
    txn = NULL;
    t1 = bench_now();
    out->v[0] = t1 - t0;
    out->v[1] = (double)found;
    mdb_env_close(env);
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return -1;
}

int
ref_rewrite_setup(const char *dir, uint64_t n, uint64_t seed, char *err,
                  size_t errlen)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    unsigned char k[128], v[25];
    char doc[32];
    uint64_t s = seed;
    int rc = 0;

    if (env_open(&env, dir, MDB_NOSYNC, err, errlen) < 0)
        return -1;
    for (uint64_t i = 0; i < n && rc == 0;) {
        rc = mdb_txn_begin(env, NULL, 0, &txn);
        if (rc == 0)
            rc = mdb_dbi_open(txn, "a", MDB_CREATE, &dbi);
        for (uint64_t j = 0; rc == 0 && j < 100000 && i < n; j++, i++) {
            size_t dl = bench_doc_id(doc, 7, i);
            MDB_val key = { bench_state_key(k, doc, dl), k };
            MDB_val val = { sizeof v, v };
            bench_state_val(v, i + 1, bench_value(&s));
            rc = mdb_put(txn, dbi, &key, &val, 0);
        }
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0)
        rc = mdb_env_sync(env, 1);
    if (rc != 0)
        snprintf(err, errlen, "ref setup: %s", mdb_strerror(rc));
    mdb_env_close(env);
    return rc == 0 ? 0 : -1;
}

int
ref_rewrite_child(bench_res *out, void *ctx)
{
    const char *dir = ctx;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi a, b;
    MDB_val key, val;
    uint64_t n = 0;
    double t0, c0;
    int rc;

    if (env_open(&env, dir, 0, out->err, sizeof out->err) < 0)
        return -1;
    t0 = bench_now();
    c0 = bench_cpu_seconds();
    CHECK(mdb_txn_begin(env, NULL, 0, &txn));
    CHECK(mdb_dbi_open(txn, "a", 0, &a));
    CHECK(mdb_dbi_open(txn, "b", MDB_CREATE, &b));
    CHECK(mdb_cursor_open(txn, a, &cur));
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        CHECK(mdb_put(txn, b, &key, &val, 0));
        n++;
    }
    if (rc != MDB_NOTFOUND)
        CHECK(rc);
    mdb_cursor_close(cur);
    cur = NULL;
    CHECK(mdb_drop(txn, a, 1));
    CHECK(mdb_txn_commit(txn));
    txn = NULL;
    out->v[0] = bench_now() - t0;
    out->v[1] = (double)n;
    out->v[2] = bench_cpu_seconds() - c0;
    mdb_env_close(env);
    return 0;
fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return -1;
}

struct ref_commit {
    MDB_env *env;
    MDB_dbi dbi;
    uint64_t n_docs, s, hlc;
};

int
ref_commit_open(ref_commit **out, const char *dir, uint64_t n_docs,
                uint64_t seed, char *err, size_t errlen)
{
    ref_commit *rc = calloc(1, sizeof *rc);
    MDB_txn *txn;
    int r;

    if (rc == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (env_open(&rc->env, dir, 0, err, errlen) < 0) {
        free(rc);
        return -1;
    }
    r = mdb_txn_begin(rc->env, NULL, 0, &txn);
    if (r == 0) {
        r = mdb_dbi_open(txn, "state", MDB_CREATE, &rc->dbi);
        if (r == 0)
            r = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (r != 0) {
        snprintf(err, errlen, "ref_commit_open: %s", mdb_strerror(r));
        ref_commit_close(rc);
        return -1;
    }
    rc->n_docs = n_docs;
    rc->s = seed;
    rc->hlc = 1;
    *out = rc;
    return 0;
}

int
ref_commit_run(ref_commit *rc, uint64_t n, uint64_t ops_per_txn, char *err,
               size_t errlen)
{
    unsigned char k[128], v[25];
    char doc[32];
    MDB_txn *txn;
    int r = 0;

    for (uint64_t i = 0; r == 0 && i < n; i++) {
        if ((r = mdb_txn_begin(rc->env, NULL, 0, &txn)) != 0)
            break;
        for (uint64_t j = 0; r == 0 && j < ops_per_txn; j++) {
            size_t dl = bench_doc_id(doc, 5, bench_rand(&rc->s) % rc->n_docs);
            MDB_val key = { bench_state_key(k, doc, dl), k };
            MDB_val val = { sizeof v, v };
            bench_state_val(v, rc->hlc++, bench_value(&rc->s));
            r = mdb_put(txn, rc->dbi, &key, &val, 0);
        }
        if (r == 0)
            r = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (r != 0) {
        snprintf(err, errlen, "ref_commit_run: %s", mdb_strerror(r));
        return -1;
    }
    return 0;
}

void
ref_commit_close(ref_commit *rc)
{
    if (rc == NULL)
        return;
    if (rc->env)
        mdb_env_close(rc->env);
    free(rc);
}
