/*
 * fuzz_record.c: an epoch record as a peer sends it in HELLO ->
 * epoch_record_decode; with a good signature also what a receiving
 * replica does with it: store it, relate it to the replica's own epoch.
 *
 * Input: byte 0 is a set of flags, the rest the payload.
 *   bit 0  assisted: the payload is the record's BODY; the harness signs
 *          it with a fixed creator key (as any member can), so the fuzzer
 *          gets past the signature check; the record is then stored in a
 *          tmpfs replica of the same space (which holds epoch 1 of the
 *          seed chain), related with epoch_relate() and deleted again, so
 *          every input starts from the same replica.
 * Checked: no crash or sanitizer report; only the documented codes; a
 * decoded record owns a copy of exactly the input, has the id BLAKE2b of
 * its body, names of 1..64 bytes, and heads that lie inside its copy;
 * relate answers a relation or a documented code, and so does
 * epoch_check_derivation() (which parses the record's heads blob).
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_record` writes the corpus (records
 * of a replica migrated twice, as records and as assisted bodies, plus
 * the bombs of docs/testing.md B3, B4) into DIR and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"
#include "support/fuzz_util.h"
#include "support/fuzz_rng.h"
#include "internal.h" /* crdt__mp: split seed records into body and rest */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* libepoch, not in a public header: where a record's heads blob is */
int epoch__record_heads(const unsigned char **out, size_t *len,
                        const epoch_info *e);

#define CREATED_MS 1700000000000ULL

static unsigned char space[16], creator_pk[32], creator_sk[64];
static crdt_replica *rep; /* the receiving replica */
static char tmpdir[4096];

/* ---- deterministic randomness and clock ------------------------------ */


static uint64_t clock_ms = CREATED_MS;

static uint64_t
fixed_clock(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

/* ---- building records ------------------------------------------------ */

static void
id_of(unsigned char *id, const unsigned char *body, size_t len)
{
    crypto_generichash_state st;

    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)"strata-epoch-v1",
                              15);
    crypto_generichash_update(&st, body, len);
    crypto_generichash_final(&st, id, 32);
}

/* [bin body, bin32 creator, created_ms, bin64 sig]: what a member signs */
static unsigned char *
sign_body(size_t *len_out, const unsigned char *body, size_t bl)
{
    unsigned char id[32], msg[40], *out, *q;

    id_of(id, body, bl);
    memcpy(msg, id, 32);
    crdt__be64(msg + 32, CREATED_MS);
    out = malloc(bl + 128);
    if (out == NULL)
        return NULL;
    q = out;
    *q++ = 0x94;
    *q++ = 0xc6; /* bin32 body */
    for (int i = 0; i < 4; i++)
        *q++ = (unsigned char)(bl >> (24 - 8 * i));
    memcpy(q, body, bl);
    q += bl;
    *q++ = 0xc4, *q++ = 32, memcpy(q, creator_pk, 32), q += 32;
    *q++ = 0xcf, crdt__be64(q, CREATED_MS), q += 8;
    *q++ = 0xc4, *q++ = 64;
    crypto_sign_detached(q, NULL, msg, sizeof msg, creator_sk);
    q += 64;
    *len_out = (size_t)(q - out);
    return out;
}

/* ---- the target ------------------------------------------------------ */

static void
check_decoded(const epoch_info *e, const unsigned char *rec, size_t len)
{
    const unsigned char *h = NULL;
    crdt__mp m = {rec, rec + len};
    const unsigned char *body;
    unsigned char id[32];
    uint32_t n, bl;
    size_t hl = 0;

    if (e->raw == NULL || e->raw_len != len || memcmp(e->raw, rec, len) != 0)
        abort();
    if (crdt__mp_array(&m, &n) != CRDT_OK ||
        crdt__mp_bin(&m, &body, &bl) != CRDT_OK)
        abort();
    id_of(id, body, bl);
    if (memcmp(id, e->id, 32) != 0)
        abort();
    if (e->lens == NULL || e->custom == NULL ||
        (e->n_schema > 0 && e->schema == NULL))
        abort();
    for (size_t i = 0; i < e->n_schema; i++) {
        size_t l = strnlen(e->schema[i].coll, sizeof e->schema[i].coll);
        if (l == 0 || l > CRDT_NAME_MAX)
            abort();
    }
    (void)epoch_schema_version(e, "people");
    if (epoch__record_heads(&h, &hl, e) != CRDT_OK)
        abort(); /* decode accepted the body: the heads are there */
    if (hl > 0 && (h < e->raw || h + hl > e->raw + e->raw_len))
        abort();
}

static void
receive(const epoch_info *e)
{
    const unsigned char *rec = e->raw;
    size_t len = e->raw_len;
    epoch_relation rel = EPOCH_UNKNOWN;
    epoch_policy pol = {2, 0};
    const char *why = NULL;
    epoch_info got;
    crdt_raw *t;
    int rc, had = 0;

    if (rep == NULL)
        return;
    if (epoch_get(&got, rep, e->id) == CRDT_OK) {
        had = 1; /* one of the seeds' own records: leave it */
        epoch_info_clear(&got);
    }
    rc = epoch_store_records(rep, &rec, &len, 1);
    if (rc != CRDT_OK)
        abort(); /* a decoded record is always storable */
    if (epoch_get(&got, rep, e->id) != CRDT_OK || got.raw_len != len)
        abort();
    epoch_info_clear(&got);
    rc = epoch_relate(&rel, &why, rep, e->id, &pol);
    if (rc != CRDT_OK && rc != CRDT_EREJECTED && rc != CRDT_EAUTH &&
        rc != CRDT_ENOTFOUND && rc != CRDT_ECORRUPT)
        abort();
    if (rc == CRDT_OK && rel > EPOCH_UNKNOWN)
        abort();
    {   /* what a taker does before a reset: re-derive it (its heads blob
         * goes through the heads parser) */
        epoch_check chk;
        rc = epoch_check_derivation(&chk, rep, e->id);
        if (rc != CRDT_OK && rc != CRDT_ENOTFOUND && rc != CRDT_EPROTO &&
            rc != CRDT_EINVAL && rc != CRDT_ECORRUPT)
            abort();
        if (rc == CRDT_OK && chk.verdict > EPOCH_DERIVED_MISMATCH)
            abort();
    }
    if (!had) { /* back to the replica every input starts from */
        unsigned char refused[7 + 32];
        memcpy(refused, "refused", 7); /* a refusal it may have recorded */
        memcpy(refused + 7, e->id, 32);
        if (crdt_raw_begin(&t, rep, 1) != CRDT_OK ||
            crdt_raw_del(t, CRDT_DB_EPOCHS, e->id, 32) != CRDT_OK)
            abort();
        rc = crdt_raw_del(t, CRDT_DB_META, refused, sizeof refused);
        if ((rc != CRDT_OK && rc != CRDT_ENOTFOUND) ||
            crdt_raw_commit(t) != CRDT_OK)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *rec;
    size_t len;
    epoch_info e;
    int rc;

    if (size < 1)
        return 0;
    if (data[0] & 1) {
        rec = sign_body(&len, data + 1, size - 1);
    } else {
        len = size - 1;
        rec = malloc(len ? len : 1); /* exactly @p len bytes for ASan */
        if (rec != NULL && len)
            memcpy(rec, data + 1, len);
    }
    if (rec == NULL)
        return 0;
    memset(&e, 0, sizeof e);
    rc = epoch_record_decode(&e, rec, len);
    if (rc == CRDT_OK) {
        check_decoded(&e, rec, len);
        if (data[0] & 1)
            receive(&e);
        epoch_info_clear(&e);
    } else if (rc != CRDT_EPROTO && rc != CRDT_EAUTH && rc != CRDT_EVERSION &&
               rc != CRDT_ELIMIT && rc != CRDT_ENOMEM) {
        abort();
    }
    free(rec);
    return 0;
}

/* ---- set-up and seeds ------------------------------------------------ */

static void
cleanup(void)
{
    crdt_replica_close(rep);
    rep = NULL;
    if (tmpdir[0])
        fuzz_dir_remove(tmpdir);
}

static crdt_replica *
make_replica(const char *name, unsigned char seed_byte)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char seed[32];
    char path[4200];
    crdt_replica *r;

    memset(seed, seed_byte, sizeof seed);
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    o.create = 1;
    o.no_sync = 1;
    o.space_id = space;
    o.seed = seed;
    if (crdt_replica_open(&r, path, &o) != CRDT_OK || epoch_attach(r) != 0)
        abort();
    return r;
}

/*
 * The raw delete before the commit works around a library bug:
 * run_dels() computes NULL + 0 (txn.c:475) when a txn has no raw
 * deletes, which UBSan with -fno-sanitize-recover turns into an abort.
 * Deleting a key that is never there makes the buffer non-NULL; drop
 * the workaround once the library is fixed.
 */
static void
put_str(crdt_replica *r, const char *coll, const char *doc,
        const char *field, const char *s)
{
    crdt_value v = crdt_value_str(s, strlen(s));
    crdt_txn *t;

    if (crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_put(t, coll, doc, field, &v) != CRDT_OK ||
        crdt_txn_raw_del(t, CRDT_DB_QUARANTINE, "fuzz", 4) != CRDT_OK ||
        crdt_txn_commit(t, NULL) != CRDT_OK)
        abort();
}

static void
migrate(crdt_replica *r, const char *text)
{
    epoch_builder *b;
    epoch_lens *l = NULL;

    if (text != NULL &&
        epoch_lens_parse(&l, text, strlen(text), NULL) != CRDT_OK)
        abort();
    if (epoch_builder_new(&b, r) != CRDT_OK ||
        (l != NULL && epoch_builder_add_lens(b, l) != CRDT_OK) ||
        epoch_builder_commit(NULL, b) != CRDT_OK)
        abort();
    epoch_builder_free(b);
    epoch_lens_free(l);
}

static void
put_seed(const char *dir, const char *name, unsigned char flags,
         const void *p, size_t n)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fputc(flags, f) == EOF ||
        fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void
write_seeds(const char *dir, const epoch_info *chain, size_t n)
{
    unsigned char *b = malloc(100001);
    char name[64];
    size_t k;

    if (b == NULL)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        crdt__mp m = {chain[i].raw, chain[i].raw + chain[i].raw_len};
        const unsigned char *body;
        uint32_t c, bl;

        snprintf(name, sizeof name, "record_epoch%zu", i + 1);
        put_seed(dir, name, 0, chain[i].raw, chain[i].raw_len);
        snprintf(name, sizeof name, "truncated_epoch%zu", i + 1);
        put_seed(dir, name, 0, chain[i].raw, chain[i].raw_len - 10);
        if (crdt__mp_array(&m, &c) != CRDT_OK ||
            crdt__mp_bin(&m, &body, &bl) != CRDT_OK)
            exit(1);
        snprintf(name, sizeof name, "assisted_body_epoch%zu", i + 1);
        put_seed(dir, name, 1, body, bl);
    }
    for (int assisted = 0; assisted < 2; assisted++) {
        const char *pre = assisted ? "assisted_" : "";
#define PUT(nm, p, len)                                                      \
    do {                                                                     \
        snprintf(name, sizeof name, "%sbomb_%s", pre, nm);                   \
        put_seed(dir, name, (unsigned char)assisted, p, len);                \
    } while (0)
        PUT("array32_dd_ff000000",
            ((const unsigned char[]){0xdd, 0xff, 0x00, 0x00, 0x00}), 5);
        memset(b, 0x91, 100000);
        b[100000] = 0xc0;
        PUT("nesting_91x100000", b, 100001 - assisted * 40000);
        for (k = 0; k + 3 <= 3000; k += 3) {
            b[k] = 0xdc;
            b[k + 1] = 0xff;
            b[k + 2] = 0xff;
        }
        PUT("array16_chain", b, k);
        PUT("bin32_ffffffff",
            ((const unsigned char[]){0x94, 0xc6, 0xff, 0xff, 0xff, 0xff}),
            6);
#undef PUT
    }
    /* body with a schema map16 claiming 65535 entries */
    {
        static const unsigned char schema_bomb[] = {
            0x98, 0x01, 0x01, 0xc4, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0,    0,    0,    0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0,    0,    0,    0,    0,    0xde, 0xff, 0xff};
        put_seed(dir, "assisted_schema_map16_bomb", 1, schema_bomb,
                 sizeof schema_bomb);
    }
    free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("STRATA_FUZZ_SEEDS");
    const char *base = getenv("STRATA_FUZZ_TMP");
    unsigned char seed[32];
    crdt_replica *m;
    epoch_info *chain = NULL;
    size_t n = 0;

    (void)argc;
    (void)argv;
    fuzz_rng_install();
    crdt_set_clock(fixed_clock, NULL);
    if (sodium_init() < 0)
        abort();
    memset(space, 0x5a, sizeof space);
    memset(seed, 0x77, sizeof seed);
    crypto_sign_seed_keypair(creator_pk, creator_sk, seed);
    if (fuzz_dir_make(tmpdir, sizeof tmpdir, base, "record") < 0)
        abort();
    atexit(cleanup);

    /* a replica of the space migrated twice: the seed chain */
    m = make_replica("m", 0x11);
    put_str(m, "people", "p1", "name", "Ada");
    migrate(m, "collection people 1 -> 2\nrename name -> full_name\n");
    clock_ms += 1000;
    put_str(m, "people", "p2", "full_name", "Grace");
    migrate(m, NULL);
    if (epoch_chain(&chain, &n, m) != CRDT_OK || n != 3)
        abort();
    /* the receiver holds epoch 1, so bodies can chain onto either */
    rep = make_replica("r", 0x22);
    {
        const unsigned char *rec = chain[1].raw;
        size_t len = chain[1].raw_len;
        if (epoch_store_records(rep, &rec, &len, 1) != CRDT_OK)
            abort();
    }
    if (dir != NULL && *dir != '\0') {
        write_seeds(dir, chain + 1, n - 1); /* genesis has no record */
        epoch_chain_free(chain, n);
        exit(0);
    }
    epoch_chain_free(chain, n);
    crdt_replica_close(m);
    return 0;
}
