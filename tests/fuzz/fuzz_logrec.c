/*
 * fuzz_logrec.c: a record of the `log` database as a damaged file may
 * hold it (docs/storage.md 3, "Run records") -> crdt_raw_log_changes,
 * the reader every log user goes through.
 *
 * Input: the record's key (16 bytes: actor | last seq) then its value;
 * an input shorter than 16 bytes is a value read without a key.
 * Checked: no crash or sanitizer report; only the documented codes
 * (CRDT_ECORRUPT for a damaged run); nothing handed out on failure; a
 * value that is not a run comes back as one change, byte for byte; a
 * run comes back as 2 .. 4,096 changes of at most 1 MiB in all, each
 * decoding, of the key's actor, each chained to the one before, the last
 * ending at the key's seq, and packing them again and reading that gives
 * the same changes (what the merge writes).
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_logrec` writes the corpus (the
 * records of a replica that merged another's changes: a run and a single
 * change, with and without the key; a run cut short, with a flipped
 * bit, under the wrong seq, with a varint longer than the shortest (not
 * canonical: refused), a tag byte alone, a count bomb) into DIR and
 * exits.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/fuzz_rng.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RUN_TAG 0xc1

static uint64_t
rd64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void
check_run(const crdt_bytes *list, size_t n, const unsigned char *key)
{
    crdt_change c, prev;
    size_t total = 0;
    unsigned char *packed = NULL;
    size_t plen = 0;

    if (n < 2 || n > 4096)
        abort();
    for (size_t i = 0; i < n; i++) {
        total += list[i].len;
        if (crdt_change_decode(&c, list[i].data, list[i].len) != CRDT_OK)
            abort();
        if (key != NULL && memcmp(c.actor.b, key, 8) != 0)
            abort();
        if (i > 0 && !crdt_change_proves(&c, &prev))
            abort();
        prev = c;
    }
    if (total > 1024 * 1024)
        abort();
    if (key != NULL && prev.seq + prev.n_ops - 1 != rd64(key + 8))
        abort();
    if (crdt_changes_pack(&packed, &plen, list, n) != CRDT_OK)
        abort();
    fuzz_check_unpacks_to(packed, plen, list, n);
    crdt_free(packed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *key = size >= 16 ? data : NULL;
    size_t vlen = size >= 16 ? size - 16 : size;
    unsigned char *v = calloc(1, vlen ? vlen : 1), *buf = NULL;
    crdt_bytes *list = NULL;
    size_t n = 0;
    int rc;

    if (v == NULL)
        return 0;
    if (vlen)
        memcpy(v, data + (size - vlen), vlen); /* exact length for ASan */
    rc = crdt_raw_log_changes(&list, &n, &buf, key, key ? 16 : 0, v, vlen);
    if (rc != CRDT_OK) {
        if (rc != CRDT_ECORRUPT && rc != CRDT_ENOMEM)
            abort();
        if (list != NULL || buf != NULL || n != 0)
            abort();
        free(v);
        return 0;
    }
    if (vlen > 0 && v[0] == RUN_TAG) {
        check_run(list, n, key);
    } else if (n != 1 || list[0].len != vlen ||
               (vlen && memcmp(list[0].data, v, vlen) != 0)) {
        abort(); /* a single change is handed out as it is stored */
    }
    crdt_free(list);
    crdt_free(buf);
    free(v);
    return 0;
}

/* ---- seeds ----------------------------------------------------------- */

static void
commit_puts(crdt_replica *r, int changes, int ops)
{
    for (int i = 0; i < changes; i++) {
        crdt_txn *t;
        if (crdt_txn_begin(&t, r) != CRDT_OK)
            exit(1);
        for (int j = 0; j < ops; j++) {
            char doc[16];
            crdt_value v = crdt_value_int(i * 1000 + j);
            snprintf(doc, sizeof doc, "d%05d", (i * 7 + j) % 50);
            if (crdt_txn_put(t, "c", doc, "v", &v) != CRDT_OK)
                exit(1);
        }
        if (crdt_txn_commit(t, NULL) != CRDT_OK)
            exit(1);
    }
}

/* Merge everything @p from holds into @p to, in one batch. */
static void
merge_all(crdt_replica *to, crdt_replica *from)
{
    crdt_bytes v[64];
    size_t n = 0;
    crdt_export *e;
    const unsigned char *p;
    size_t len;

    if (crdt_export_begin(&e, from, NULL) != CRDT_OK)
        exit(1);
    while (n < 64 && crdt_export_next(e, &p, &len) == CRDT_OK) {
        unsigned char *u = malloc(len);
        if (u == NULL)
            exit(1);
        memcpy(u, p, len);
        v[n].data = u;
        v[n++].len = len;
    }
    crdt_export_end(e);
    if (crdt_merge(NULL, to, v, n) != CRDT_OK)
        exit(1);
    for (size_t i = 0; i < n; i++)
        free((void *)v[i].data);
}

/* key | value of the log's records, in key order (at most 8) */
static size_t
log_records(crdt_replica *r, unsigned char **out, size_t *out_len)
{
    crdt_raw *t;
    crdt_raw_cursor *c;
    const void *k, *v;
    size_t kl, vl, n = 0;
    int rc;

    if (crdt_raw_begin(&t, r, 0) != CRDT_OK ||
        crdt_raw_cursor_open(&c, t, CRDT_DB_LOG) != CRDT_OK)
        exit(1);
    for (rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
         rc == CRDT_OK && n < 8;
         rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl)) {
        if ((out[n] = malloc(kl + vl)) == NULL)
            exit(1);
        memcpy(out[n], k, kl);
        memcpy(out[n] + kl, v, vl);
        out_len[n++] = kl + vl;
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return n;
}

static void
write_seeds(const char *out)
{
    char tmpl[] = "/tmp/strata-fuzz-seed-XXXXXX";
    crdt_replica *a, *b;
    unsigned char *rec[8], *q;
    size_t len[8], n, run = 8, single = 8;
    static const unsigned char count_bomb[] = {
        RUN_TAG, 1, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0xff, 0xff, 0xff, 0xff,
        0x0f};

    if (mkdtemp(tmpl) == NULL)
        exit(1);
    a = fuzz_seed_replica(tmpl, 0x11);
    b = fuzz_seed_replica(tmpl, 0x22);
    commit_puts(a, 5, 4); /* five changes of a: one run record in b */
    merge_all(b, a);
    commit_puts(b, 1, 3); /* b's own change: a single record */
    n = log_records(b, rec, len);
    for (size_t i = 0; i < n; i++) {
        if (len[i] > 16 && rec[i][16] == RUN_TAG && run == 8)
            run = i;
        else if (len[i] > 16 && rec[i][16] != RUN_TAG && single == 8)
            single = i;
    }
    if (run == 8 || single == 8)
        exit(1);
    fuzz_put_seed(out, "valid_run", rec[run], len[run]);
    fuzz_put_seed(out, "valid_single", rec[single], len[single]);
    fuzz_put_seed(out, "run_head_no_key", rec[run] + 16, 15);
    fuzz_put_seed(out, "run_truncated_half", rec[run], 16 + (len[run] - 16) / 2);
    fuzz_put_seed(out, "run_truncated_minus1", rec[run], len[run] - 1);
    if ((q = malloc(len[run])) == NULL)
        exit(1);
    memcpy(q, rec[run], len[run]);
    q[15] ^= 1; /* the key names another last seq */
    fuzz_put_seed(out, "run_wrong_key_seq", q, len[run]);
    q[15] ^= 1;
    q[16 + (len[run] - 16) / 2] ^= 0x40; /* a flipped bit inside the run */
    fuzz_put_seed(out, "run_flipped_bit", q, len[run]);
    free(q);
    /* not canonical (docs/protocol.md, "Packed changes"): the first
     * record's author reference 00 as the two-byte varint 80 00 */
    /* key | c1 | 01 | space (16) | n | flags | author reference */
    if ((q = malloc(len[run] + 1)) == NULL || len[run] < 16 + 21 ||
        rec[run][16 + 20] != 0)
        exit(1);
    memcpy(q, rec[run], 16 + 20);
    q[16 + 20] = 0x80;
    q[16 + 21] = 0;
    memcpy(q + 16 + 22, rec[run] + 16 + 21, len[run] - 16 - 21);
    fuzz_put_seed(out, "run_noncanonical_varint", q, len[run] + 1);
    free(q);
    fuzz_put_seed(out, "tag_only", (const unsigned char[]){RUN_TAG}, 1);
    fuzz_put_seed(out, "bomb_count_2p32", count_bomb, sizeof count_bomb);
    for (size_t i = 0; i < n; i++)
        free(rec[i]);
    crdt_replica_close(a);
    crdt_replica_close(b);
    fuzz_dir_remove(tmpl);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_signing();
    return fuzz_seeds_if_asked(write_seeds);
}
