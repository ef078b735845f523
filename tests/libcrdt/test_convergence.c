/*
 * test_convergence.c: property test. Five replicas in one process make
 * thousands of random writes of every type; changes travel between them
 * shuffled, split into batches, some batches duplicated and some lost
 * (and re-sent later). When everyone has synced, every replica must have
 * the same state hash and the same visible contents.
 *
 * Seeded: STRATA_SEED=N replays a run exactly; the seed is printed.
 */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/replica_util.h"
#include "support/support.h"

#define N_REPLICAS 5
#define ROUNDS 400

static char dirs[N_REPLICAS][256];
static crdt_replica *rep[N_REPLICAS];
static uint64_t rng;

static uint64_t
rnd(uint64_t n)
{
    return test_rand(&rng) % n;
}

static crdt_value
random_value(char *buf)
{
    switch (rnd(9)) {
    case 0: return crdt_value_null();
    case 1: return crdt_value_bool((int)rnd(2));
    case 2: return crdt_value_int((int64_t)rnd(100) - 50);
    case 3: return crdt_value_int(rnd(2) ? INT64_MAX : INT64_MIN);
    case 4: return crdt_value_double((double)rnd(1000) / 8.0);
    case 5: return crdt_value_str("", 0);
    case 6:
        buf[0] = 'v';
        buf[1] = (char)('a' + rnd(5));
        return crdt_value_str(buf, 2);
    case 7:
        buf[0] = 0; /* NUL bytes inside bytes values */
        buf[1] = (char)rnd(3);
        return crdt_value_bytes(buf, 2);
    default: return crdt_value_int(7); /* equal values written concurrently */
    }
}

static void
random_change(crdt_replica *r)
{
    static const char *colls[] = { "a", "b" };
    crdt_txn *t;
    int n_ops = 1 + (int)rnd(4);

    ck_assert_int_eq(crdt_txn_begin(&t, r), CRDT_OK);
    for (int i = 0; i < n_ops; i++) {
        char doc[8], buf[4];
        const char *coll = colls[rnd(2)];
        crdt_value v = random_value(buf);
        int rc;

        snprintf(doc, sizeof doc, "d%d", (int)rnd(12));
        switch (rnd(10)) {
        case 0: case 1: case 2:
            rc = crdt_txn_put(t, coll, doc, rnd(2) ? "r1" : "r2", &v);
            break;
        case 3: case 4:
            rc = crdt_txn_incr(t, coll, doc, "n", (int64_t)rnd(11) - 5);
            break;
        case 5: case 6:
            rc = crdt_txn_sadd(t, coll, doc, "s", &v);
            break;
        case 7:
            rc = crdt_txn_srem(t, coll, doc, "s", &v);
            break;
        case 8: {
            static const char *fields[] = { "r1", "r2", "n", "s" };
            rc = crdt_txn_del_field(t, coll, doc, fields[rnd(4)]);
            break;
        }
        default:
            rc = rnd(3) == 0 ? crdt_txn_del_doc(t, coll, doc) : CRDT_OK;
        }
        ck_assert_int_eq(rc, CRDT_OK);
    }
    ck_assert_int_eq(crdt_txn_commit(t, NULL), CRDT_OK);
}

typedef struct {
    unsigned char *data;
    size_t len;
} blob;

/* Everything @p from holds, shuffled, delivered in random batches with
 * duplicates; some batches are lost (the next delivery re-sends). */
static void
deliver_messy(crdt_replica *to, crdt_replica *from)
{
    crdt_export *e;
    const unsigned char *p;
    size_t len, n = 0, cap = 0;
    blob *all = NULL;

    ck_assert_int_eq(crdt_export_begin(&e, from, NULL), CRDT_OK);
    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            all = realloc(all, cap * sizeof *all);
        }
        all[n].data = malloc(len);
        memcpy(all[n].data, p, len);
        all[n].len = len;
        n++;
    }
    crdt_export_end(e);
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = rnd(i);
        blob tmp = all[i - 1];
        all[i - 1] = all[j];
        all[j] = tmp;
    }
    for (size_t i = 0; i < n;) {
        size_t k = 1 + rnd(8), m = 0;
        crdt_bytes batch[16];

        if (k > n - i)
            k = n - i;
        for (size_t j = 0; j < k; j++) {
            batch[m].data = all[i + j].data;
            batch[m++].len = all[i + j].len;
            if (rnd(10) == 0 && m < 16) { /* duplicate inside the batch */
                batch[m] = batch[m - 1];
                m++;
            }
        }
        if (rnd(6) != 0) /* a lost batch is just not merged */
            ck_assert_int_eq(crdt_merge(NULL, to, batch, m), CRDT_OK);
        i += k;
    }
    for (size_t i = 0; i < n; i++)
        free(all[i].data);
    free(all);
}

typedef struct {
    char *buf;
    size_t len, cap;
} dump;

static void
dump_put(dump *d, const char *s, size_t n)
{
    if (d->len + n + 1 > d->cap) {
        d->cap = (d->len + n + 1) * 2;
        d->buf = realloc(d->buf, d->cap);
    }
    memcpy(d->buf + d->len, s, n);
    d->len += n;
    d->buf[d->len] = 0;
}

static void
dump_value(dump *d, const crdt_value *v)
{
    char b[64];
    int n;

    switch (v->type) {
    case CRDT_VNULL: n = snprintf(b, sizeof b, "null"); break;
    case CRDT_VBOOL: n = snprintf(b, sizeof b, "%d", v->u.b); break;
    case CRDT_VINT: n = snprintf(b, sizeof b, "%" PRId64, v->u.i); break;
    case CRDT_VDOUBLE: n = snprintf(b, sizeof b, "%.17g", v->u.d); break;
    default:
        n = snprintf(b, sizeof b, "t%d:", v->type);
        dump_put(d, b, (size_t)n);
        for (size_t i = 0; i < v->u.s.len; i++) { /* hex: NUL-safe */
            n = snprintf(b, sizeof b, "%02x", (unsigned char)v->u.s.ptr[i]);
            dump_put(d, b, (size_t)n);
        }
        return;
    }
    dump_put(d, b, (size_t)n);
}

static int
dump_field(const crdt_field *f, void *ctx)
{
    dump *d = ctx;
    char b[64];

    dump_put(d, " ", 1);
    dump_put(d, f->name, strlen(f->name));
    dump_put(d, "=", 1);
    if (f->kind == CRDT_FIELD_REGISTER) {
        dump_value(d, &f->value);
    } else if (f->kind == CRDT_FIELD_COUNTER) {
        int n = snprintf(b, sizeof b, "c%" PRId64, f->counter);
        dump_put(d, b, (size_t)n);
    } else {
        dump_put(d, "{", 1);
        for (size_t i = 0; i < f->n_elems; i++) {
            dump_value(d, &f->elems[i]);
            dump_put(d, ",", 1);
        }
        dump_put(d, "}", 1);
    }
    return 0;
}

typedef struct {
    dump *d;
    crdt_read *rd;
    char coll[80];
} walk;

static int
dump_doc(const char *name, size_t len, void *ctx)
{
    walk *w = ctx;
    char doc[80];

    snprintf(doc, sizeof doc, "%.*s", (int)len, name);
    dump_put(w->d, "\n", 1);
    dump_put(w->d, w->coll, strlen(w->coll));
    dump_put(w->d, "/", 1);
    dump_put(w->d, doc, strlen(doc));
    ck_assert_int_eq(crdt_read_doc(w->rd, w->coll, doc, dump_field, w->d),
                     CRDT_OK);
    return 0;
}

static int
dump_coll(const char *name, size_t len, void *ctx)
{
    walk *w = ctx;

    snprintf(w->coll, sizeof w->coll, "%.*s", (int)len, name);
    return crdt_read_docs(w->rd, w->coll, dump_doc, w);
}

static char *
dump_replica(crdt_replica *r)
{
    dump d = { NULL, 0, 0 };
    walk w;

    dump_put(&d, "", 0);
    w.d = &d;
    ck_assert_int_eq(crdt_read_begin(&w.rd, r), CRDT_OK);
    ck_assert_int_eq(crdt_read_collections(w.rd, dump_coll, &w), CRDT_OK);
    crdt_read_end(w.rd);
    return d.buf;
}

START_TEST(test_five_replicas_converge)
{
    uint64_t seed = test_seed("convergence");
    unsigned char space[16];
    char h0[65], h[65];
    char *d0;

    rng = seed;
    rep[0] = tu_create(dirs[0], sizeof dirs[0], NULL);
    crdt_replica_space_id(rep[0], space);
    for (int i = 1; i < N_REPLICAS; i++)
        rep[i] = tu_create(dirs[i], sizeof dirs[i], space);

    for (int round = 0; round < ROUNDS; round++) {
        int w = (int)rnd(N_REPLICAS);
        for (int k = 0; k < 3; k++)
            random_change(rep[(w + k) % N_REPLICAS]);
        if (rnd(3) == 0) {
            int x = (int)rnd(N_REPLICAS), y = (int)rnd(N_REPLICAS);
            if (x != y)
                deliver_messy(rep[x], rep[y]);
        }
    }
    /* heal: everyone gets everything, in both messy and clean order */
    for (int pass = 0; pass < 2; pass++)
        for (int x = 0; x < N_REPLICAS; x++)
            for (int y = 0; y < N_REPLICAS; y++)
                if (x != y)
                    ck_assert_int_eq(tu_sync_one_way(rep[x], rep[y]), CRDT_OK);

    tu_hash(h0, rep[0]);
    d0 = dump_replica(rep[0]);
    for (int i = 1; i < N_REPLICAS; i++) {
        char *di = dump_replica(rep[i]);
        tu_hash(h, rep[i]);
        ck_assert_msg(strcmp(h0, h) == 0,
                      "seed %" PRIu64 ": replica %d hash differs", seed, i);
        ck_assert_msg(strcmp(d0, di) == 0,
                      "seed %" PRIu64 ": replica %d contents differ", seed, i);
        free(di);
    }
    ck_assert_msg(strlen(d0) > 100, "seed %" PRIu64 ": empty state", seed);
    free(d0);
    for (int i = 0; i < N_REPLICAS; i++) {
        crdt_replica_close(rep[i]);
        test_rmtree(dirs[i]);
    }
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("convergence");
    TCase *tc = tcase_create("random");

    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, test_five_replicas_converge, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}
