/*
 * fuzz_seqbase.c: the records an epoch writes for a text field (base
 * 'b' and folded ids 'x', docs/storage.md 4.4) as they reach a replica
 * in a snapshot from a peer: decoded when the field is built
 * (libcrdt/src/seq_store.c, base_load).
 *
 * Setup: a replica on tmpfs with one text field edited (inserts and
 * deletes across two writers) and compacted by an epoch, so its state
 * holds genuine 'b' and 'x' records.
 * Input: byte 0 % 3 picks what the rest becomes: 0 the value of the
 * first 'b' record; 1 the value of an extra 'b' record, after the
 * others (index from byte 1); 2 the value of the 'x' record. The state
 * is installed (spare slot + swap), then the text is read, its document
 * read, and a local insert and delete written in an aborted txn.
 * Checked: no crash or sanitizer report; every call answers a code
 * (CRDT_OK, CRDT_ECORRUPT, CRDT_ENOMEM, CRDT_ELIMIT, CRDT_ENOTFOUND,
 * CRDT_ETYPE, CRDT_EINVAL, CRDT_EBADTXN).
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_seqbase` writes the genuine records
 * as inputs into DIR and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "epoch/epoch.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    unsigned char *k, *v;
    size_t kl, vl;
} entry;

static char tmpdir[4096];
static crdt_replica *rep;
static entry ents[64];
static size_t n_ents;
static long first_b = -1, first_x = -1;

static void
cleanup(void)
{
    crdt_replica_close(rep);
    fuzz_dir_remove(tmpdir);
}

static void
must(int rc)
{
    if (rc != CRDT_OK)
        abort();
}

static void
edit(crdt_replica *r, uint64_t pos, const char *ins, uint64_t del_n)
{
    crdt_txn *t;

    must(crdt_txn_begin(&t, r));
    if (ins != NULL)
        must(crdt_txn_text_insert(t, "c", "d", "t", pos, ins, strlen(ins)));
    else
        must(crdt_txn_text_delete(t, "c", "d", "t", pos, del_n));
    must(crdt_txn_commit(t, NULL));
}

static void
setup(void)
{
    epoch_builder *b;
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl;
    int rc;

    if (fuzz_dir_make(tmpdir, sizeof tmpdir, getenv("STRATA_FUZZ_TMP"),
                      "seqbase") < 0)
        abort();
    atexit(cleanup);
    {
        crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
        unsigned char seed[32], space[16];
        char path[4200];
        memset(seed, 0x44, sizeof seed); /* the same replica every run */
        memset(space, 0x5b, sizeof space);
        o.create = 1;
        o.no_sync = 1;
        o.space_id = space;
        o.seed = seed;
        snprintf(path, sizeof path, "%s/r", tmpdir);
        must(crdt_replica_open(&rep, path, &o));
    }
    edit(rep, 0, "h\xc3\xa9llo w\xc3\xb6rld", 0);
    edit(rep, 5, " there", 0);
    edit(rep, 1, NULL, 3);
    edit(rep, 0, "\xe4\xb8\x80", 0);
    must(epoch_builder_new(&b, rep));
    must(epoch_builder_commit(NULL, b));
    epoch_builder_free(b);
    must(crdt_raw_begin(&t, rep, 0));
    must(crdt_raw_cursor_open(&c, t, crdt_raw_state_db(t, 0)));
    for (rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
         rc == CRDT_OK && n_ents < 64;
         rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl)) {
        entry *e = &ents[n_ents];
        const unsigned char *kb = k;
        e->k = malloc(kl);
        e->v = malloc(vl + 1);
        if (e->k == NULL || e->v == NULL)
            abort();
        memcpy(e->k, k, kl);
        memcpy(e->v, v, vl);
        e->kl = kl;
        e->vl = vl;
        if (kl > 9 && kb[kl - 10] == 'T' && kb[kl - 9] == 'b' &&
            first_b < 0)
            first_b = (long)n_ents;
        if (kl > 9 && kb[kl - 10] == 'T' && kb[kl - 9] == 'x' &&
            first_x < 0)
            first_x = (long)n_ents;
        n_ents++;
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    if (first_b < 0 || first_x < 0)
        abort(); /* the epoch must have written both */
}

/* Install the state with entry @p at replaced by @p v (or @p extra
 * added: key + value). */
static int
install(long at, const unsigned char *v, size_t vl,
        const unsigned char *xk, size_t xkl)
{
    crdt_raw *t;
    int rc;

    if ((rc = crdt_raw_begin(&t, rep, 1)) < 0)
        abort();
    rc = crdt_raw_spare_clear(t);
    for (size_t i = 0; rc == CRDT_OK && i < n_ents; i++)
        rc = (long)i == at
                 ? crdt_raw_spare_put(t, ents[i].k, ents[i].kl, v, vl)
                 : crdt_raw_spare_put(t, ents[i].k, ents[i].kl, ents[i].v,
                                      ents[i].vl);
    if (rc == CRDT_OK && xk != NULL)
        rc = crdt_raw_spare_put(t, xk, xkl, v, vl);
    if (rc == CRDT_OK)
        rc = crdt_raw_swap_state(t);
    if (rc < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    return crdt_raw_commit(t);
}

static void
check(int rc)
{
    if (rc != CRDT_OK && rc != CRDT_ECORRUPT && rc != CRDT_ENOMEM &&
        rc != CRDT_ELIMIT && rc != CRDT_ENOTFOUND && rc != CRDT_ETYPE &&
        rc != CRDT_EINVAL && rc != CRDT_EBADTXN) {
        fprintf(stderr, "fuzz_seqbase: unexpected code %d\n", rc);
        abort(); /* EBADTXN: after a failed write in the txn */
    }
}

static void
exercise(void)
{
    crdt_read *rd;
    crdt_txn *t;
    char *s = NULL;
    size_t n = 0;

    must(crdt_read_begin(&rd, rep));
    check(crdt_read_text(&s, &n, rd, "c", "d", "t"));
    crdt_text_free(s);
    crdt_read_end(rd);
    must(crdt_txn_begin(&t, rep));
    check(crdt_txn_text_insert(t, "c", "d", "t", 1, "z", 1));
    check(crdt_txn_text_delete(t, "c", "d", "t", 0, 2));
    crdt_txn_abort(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char xk[512];
    size_t xkl = 0;
    int rc;

    if (size < 2 || size > 65536)
        return 0;
    switch (data[0] % 3) {
    case 0:
        rc = install(first_b, data + 1, size - 1, NULL, 0);
        break;
    case 1: /* an extra 'b' record: index 0xff..ff - byte 1 */
        xkl = ents[first_b].kl;
        if (xkl > sizeof xk)
            abort();
        memcpy(xk, ents[first_b].k, xkl);
        memset(xk + xkl - 8, 0xff, 8);
        xk[xkl - 1] = (unsigned char)(0xff - data[1]);
        rc = install(-1, data + 2, size - 2, xk, xkl);
        break;
    default:
        rc = install(first_x, data + 1, size - 1, NULL, 0);
        break;
    }
    if (rc == CRDT_OK)
        exercise();
    must(install(-1, NULL, 0, NULL, 0)); /* back to the genuine state */
    return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *seeds = getenv("STRATA_FUZZ_SEEDS");

    (void)argc;
    (void)argv;
    setup();
    if (seeds != NULL) {
        unsigned char buf[65536];
        const entry *b = &ents[first_b], *x = &ents[first_x];
        if (b->vl + 2 > sizeof buf)
            abort();
        buf[0] = 0;
        memcpy(buf + 1, b->v, b->vl);
        fuzz_put_seed(seeds, "base", buf, b->vl + 1);
        buf[0] = 1;
        buf[1] = 0;
        memcpy(buf + 2, b->v, b->vl);
        fuzz_put_seed(seeds, "base_extra", buf, b->vl + 2);
        buf[0] = 2;
        memcpy(buf + 1, x->v, x->vl);
        fuzz_put_seed(seeds, "cut", buf, x->vl + 1);
        exit(0);
    }
    return 0;
}
