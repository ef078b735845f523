/*
 * fuzz_pagecheck.c: the data-file check (libcrdt/src/pagecheck.c) on
 * arbitrary bytes taken as a whole data.mdb.
 *
 * Input: the bytes of a data.mdb image, as they are.
 *
 * Checked, for every input:
 *  - crdt__pagecheck_image() answers CRDT_OK, CRDT_ECORRUPT (with a
 *    reason) or CRDT_ENOMEM; never a crash or a sanitizer report;
 *  - crdt__store_unborn_image() (is it a creation a crash cut short?)
 *    answers 0 or 1, never a crash;
 *  - a budget is a prefix of the full walk: an image the full walk
 *    accepts is accepted under any budget too;
 *  - the promise the check makes to LMDB: an image it accepts (after the
 *    meta page repair an open would make) is then opened by LMDB
 *    read-only and every record of every database is read with cursors;
 *    that must not fault (a fault here is a page the check let through).
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_pagecheck` writes the corpus into
 * DIR and exits: the compacted data file of a small replica (a few
 * documents over several commits), the same file uncompacted, and
 * damaged variants of it (each meta page zeroed, a page's pointer
 * array, a page number, a cut file).
 */
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/fuzz_rng.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmpdir[4096], image_path[4200];

/* ---- seeds ----------------------------------------------------------- */

static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (b = malloc((size_t)n + 1)) == NULL ||
        fread(b, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void
write_docs(crdt_replica *r, int round)
{
    static const char *const names[] = {"Ada", "Grace", "Edsger", "Barbara"};
    crdt_txn *t;
    char doc[16];

    for (int i = 0; i < 4; i++) {
        crdt_value name = crdt_value_str(names[i], strlen(names[i]));
        crdt_value n = crdt_value_int(round * 10 + i);

        snprintf(doc, sizeof doc, "p%d", i);
        if (crdt_txn_begin(&t, r) != CRDT_OK ||
            crdt_txn_put(t, "people", doc, "name", &name) != CRDT_OK ||
            crdt_txn_incr(t, "people", doc, "visits", 1) != CRDT_OK ||
            crdt_txn_put(t, "notes", doc, "n", &n) != CRDT_OK ||
            crdt_txn_commit(t, NULL) != CRDT_OK)
            abort();
    }
}

static void
make_seeds(const char *out)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char seed[32], space[16], *img;
    char rdir[4200], cdir[4200], file[4300];
    crdt_replica *r;
    size_t len;

    fuzz_rng_install();
    crdt_set_clock(fuzz_fixed_clock, NULL);
    memset(seed, 0x11, sizeof seed);
    memset(space, 0x5a, sizeof space);
    o.create = 1;
    o.no_sync = 1;
    o.space_id = space;
    o.seed = seed;
    snprintf(rdir, sizeof rdir, "%s/replica", tmpdir);
    snprintf(cdir, sizeof cdir, "%s/compact", tmpdir);
    if (crdt_replica_open(&r, rdir, &o) != CRDT_OK)
        abort();
    for (int round = 0; round < 3; round++)
        write_docs(r, round);
    /* a compacted copy: every page in use, the smallest image */
    if (mkdir(cdir, 0700) != 0 ||
        mdb_env_copy2(r->env, cdir, MDB_CP_COMPACT) != 0)
        abort();
    crdt_replica_close(r);

    snprintf(file, sizeof file, "%s/data.mdb", cdir);
    img = slurp(file, &len);
    fuzz_put_seed(out, "replica_compact", img, len);
    {   /* meta page 1 zeroed; a leaf's pointer array; a page number */
        unsigned char *c = malloc(len);
        if (c == NULL)
            abort();
        memcpy(c, img, len);
        memset(c + 4096, 0, 4096);
        fuzz_put_seed(out, "replica_compact_meta1_zeroed", c, len);
        memcpy(c, img, len);
        memset(c + 2 * 4096 + 16, 0xff, 8);
        fuzz_put_seed(out, "replica_compact_page2_nodes", c, len);
        memcpy(c, img, len);
        c[3 * 4096] ^= 0x40;
        fuzz_put_seed(out, "replica_compact_page3_number", c, len);
        free(c);
    }
    memset(img, 0, 4096); /* meta page 0 zeroed: an open restores it */
    fuzz_put_seed(out, "replica_compact_meta0_zeroed", img, len);
    fuzz_put_seed(out, "replica_compact_cut", img, len / 2);
    free(img);
    snprintf(file, sizeof file, "%s/data.mdb", rdir);
    img = slurp(file, &len);
    fuzz_put_seed(out, "replica_live", img, len);
    free(img);
}

/* ---- the LMDB read pass ---------------------------------------------- */

/* Read every record of the database @p dbi; a fault is the finding. */
static void
read_all(MDB_txn *txn, MDB_dbi dbi, int main_db)
{
    volatile unsigned char sink = 0;
    MDB_cursor *c;
    MDB_val k, v;
    int rc;

    if (mdb_cursor_open(txn, dbi, &c) != 0)
        return;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        for (size_t i = 0; i < v.mv_size; i++)
            sink ^= ((const unsigned char *)v.mv_data)[i];
        for (size_t i = 0; i < k.mv_size; i++)
            sink ^= ((const unsigned char *)k.mv_data)[i];
        if (main_db && k.mv_size > 0 && k.mv_size < 128 &&
            memchr(k.mv_data, 0, k.mv_size) == NULL) {
            char name[128];
            MDB_dbi sub;

            memcpy(name, k.mv_data, k.mv_size);
            name[k.mv_size] = '\0';
            /* a named database (else MDB_INCOMPATIBLE: a plain record) */
            if (mdb_dbi_open(txn, name, 0, &sub) == 0)
                read_all(txn, sub, 0);
        }
    }
    mdb_cursor_close(c);
    (void)sink;
}

static void
lmdb_reads(const uint8_t *data, size_t size, int cur)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int fd = open(image_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    if (fd < 0 || write(fd, data, size) != (ssize_t)size)
        abort();
    if (cur != 2) {
        /* what crdt__store_precheck() does with one damaged meta page */
        uint32_t psize;
        uint64_t bad = (uint64_t)!cur;
        unsigned char *pg;

        /* the sound page's size; with page 0 damaged, page 1 is read
         * at 4096 (as the check reads it), then copied from psize */
        memcpy(&psize, data + (cur ? 4096 : 0) + 16 + 24, 4);
        if ((pg = malloc(psize)) == NULL)
            abort();
        memcpy(pg, data + (size_t)cur * psize, psize);
        memcpy(pg, &bad, 8);
        if (pwrite(fd, pg, psize, (off_t)(bad * psize)) != (ssize_t)psize)
            abort();
        free(pg);
    }
    close(fd);
    if (mdb_env_create(&env) != 0)
        abort();
    mdb_env_set_maxdbs(env, 64);
    if (mdb_env_open(env, image_path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK,
                     0600) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_dbi_open(txn, NULL, 0, &dbi) == 0)
            read_all(txn, dbi, 1);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
}

/* ---- the target ------------------------------------------------------ */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("STRATA_FUZZ_SEEDS");

    (void)argc;
    (void)argv;
    if (fuzz_dir_make(tmpdir, sizeof tmpdir, getenv("STRATA_FUZZ_TMP"),
                      "pagecheck") != 0)
        abort();
    snprintf(image_path, sizeof image_path, "%s/image.mdb", tmpdir);
    if (dir != NULL) {
        make_seeds(dir);
        fuzz_dir_remove(tmpdir);
        exit(0);
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    int rc, cur = -1;

    /* store_create.c's judgement of a creation cut short: 0 or 1 */
    rc = crdt__store_unborn_image(data, size);
    if (rc != 0 && rc != 1)
        abort();
    why[0] = 'x';
    rc = crdt__pagecheck_image(data, size, 0, &cur, why, sizeof why);
    if (rc != CRDT_OK && rc != CRDT_ECORRUPT && rc != CRDT_ENOMEM)
        abort();
    if (rc == CRDT_ECORRUPT && why[0] == '\0')
        abort(); /* a refusal always says why */
    if (rc != CRDT_OK)
        return 0;
    if (cur < 0 || cur > 2)
        abort();
    for (uint64_t budget = 1; budget <= 4; budget++)
        if (crdt__pagecheck_image(data, size, budget, NULL, why,
                                  sizeof why) != CRDT_OK)
            abort(); /* a budget checks a prefix of the same walk */
    lmdb_reads(data, size, cur);
    return 0;
}
