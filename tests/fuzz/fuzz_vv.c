/*
 * fuzz_vv.c: a version vector as a peer sends it (HELLO, FIN) ->
 * crdt_vv_decode -> crdt_vv_encode -> crdt_vv_decode.
 *
 * Input: the encoded vector, a msgpack map { actor (bin 8) : seq }.
 * Checked: no crash or sanitizer report; only the documented codes;
 * entries come out in strictly increasing actor order, at most 65536,
 * with an actor that appears twice keeping its highest seq (what
 * crdt_vv_get says for each key of the input); the re-encoding is no
 * longer than the input, decodes to the same entries and re-encodes to
 * the same bytes (decode -> encode -> decode); covers() and total()
 * agree with the entries.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_vv` writes the corpus (vectors
 * encoded by crdt_vv_encode, hand-written non-canonical encodings, and
 * the bombs of docs/testing.md B3, B4) into DIR and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same_entries(const crdt_vv *a, const crdt_vv *b)
{
    crdt_actor x, y;
    uint64_t sx, sy;

    if (crdt_vv_count(a) != crdt_vv_count(b) ||
        crdt_vv_total(a) != crdt_vv_total(b))
        abort();
    for (size_t i = 0; i < crdt_vv_count(a); i++) {
        crdt_vv_entry(a, i, &x, &sx);
        crdt_vv_entry(b, i, &y, &sy);
        if (memcmp(x.b, y.b, sizeof x.b) != 0 || sx != sy)
            abort();
    }
    if (!crdt_vv_covers(a, b) || !crdt_vv_covers(b, a))
        abort();
}

static void
check_order(const crdt_vv *vv)
{
    crdt_actor prev, a;
    uint64_t seq, total = 0;
    size_t n = crdt_vv_count(vv);

    if (n > 65536)
        abort();
    for (size_t i = 0; i < n; i++) {
        crdt_vv_entry(vv, i, &a, &seq);
        if (i > 0 && memcmp(prev.b, a.b, sizeof a.b) >= 0)
            abort(); /* sorted, no duplicates */
        if (crdt_vv_get(vv, &a) != seq)
            abort();
        total += seq; /* wraps like the library's sum, if it does */
        prev = a;
    }
    if (crdt_vv_total(vv) != total)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1), *e1 = NULL, *e2 = NULL;
    crdt_vv *v1 = NULL, *v2 = NULL;
    size_t l1 = 0, l2 = 0;
    int rc;

    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size); /* exactly @p size bytes for ASan */
    rc = crdt_vv_decode(&v1, buf, size);
    if (rc != CRDT_OK) {
        if (rc != CRDT_EPROTO && rc != CRDT_ELIMIT && rc != CRDT_ENOMEM)
            abort();
        free(buf);
        return 0;
    }
    check_order(v1);
    if (crdt_vv_encode(&e1, &l1, v1) != CRDT_OK || l1 > size)
        abort(); /* canonical and duplicates folded: never longer */
    if (crdt_vv_decode(&v2, e1, l1) != CRDT_OK)
        abort();
    same_entries(v1, v2);
    if (crdt_vv_encode(&e2, &l2, v2) != CRDT_OK || l1 != l2 ||
        memcmp(e1, e2, l1) != 0)
        abort();
    crdt_vv_free(v1);
    crdt_vv_free(v2);
    free(e1);
    free(e2);
    free(buf);
    return 0;
}

/* ---- seeds ----------------------------------------------------------- */

static void
put_vv(const char *dir, const char *name, size_t n, uint64_t seq0)
{
    crdt_vv *vv;
    crdt_actor a;
    unsigned char *b;
    size_t len;

    if (crdt_vv_new(&vv) != CRDT_OK)
        exit(1);
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < 8; j++)
            a.b[j] = (unsigned char)((i * 37 + 11) >> (j * 3));
        if (crdt_vv_set(vv, &a, seq0 + i * 1000003u) != CRDT_OK)
            exit(1);
    }
    if (crdt_vv_encode(&b, &len, vv) != CRDT_OK)
        exit(1);
    fuzz_put_seed(dir, name, b, len);
    free(b);
    crdt_vv_free(vv);
}

static void
write_seeds(const char *dir)
{
    /* map of 2: an actor twice (the higher seq wins), non-canonical ints */
    static const unsigned char dup[] = {
        0x82, 0xc4, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x05,
        0xc4, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0xcd, 0x01, 0x00};
    static const unsigned char wide[] = {
        0xde, 0x00, 0x01, 0xc5, 0x00, 0x08, 9, 9, 9, 9, 9, 9, 9, 9,
        0xd3, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2a};
    static const unsigned char neg[] = {0x81, 0xc4, 0x08, 1, 1, 1, 1,
                                        1,    1,    1,    1, 0xff};
    static const unsigned char short_actor[] = {0x81, 0xc4, 0x07, 1, 1, 1,
                                                1,    1,    1,    1, 0x01};
    static const unsigned char map32[] = {0xdf, 0xff, 0x00, 0x00, 0x00};
    static const unsigned char bin32[] = {0x81, 0xc6, 0xff, 0xff, 0xff,
                                          0xff, 0x01};
    unsigned char *b = malloc(100001);
    size_t n;

    if (b == NULL)
        exit(1);
    put_vv(dir, "valid_empty", 0, 0);
    put_vv(dir, "valid_one", 1, 1);
    put_vv(dir, "valid_three", 3, 200);
    put_vv(dir, "valid_max_seq", 2, UINT64_MAX - 1000003u);
    put_vv(dir, "valid_300", 300, 1); /* map16 */
    fuzz_put_seed(dir, "dup_actor_noncanonical", dup, sizeof dup);
    fuzz_put_seed(dir, "map16_bin16_int64", wide, sizeof wide);
    fuzz_put_seed(dir, "negative_seq", neg, sizeof neg);
    fuzz_put_seed(dir, "short_actor", short_actor, sizeof short_actor);
    fuzz_put_seed(dir, "truncated_seq", dup, sizeof dup - 1);
    fuzz_put_seed(dir, "trailing_nil", (const unsigned char[]){0x80, 0xc0}, 2);
    fuzz_put_seed(dir, "bomb_map32_df_ff000000", map32, sizeof map32);
    fuzz_put_seed(dir, "bomb_array32_dd_ff000000",
             (const unsigned char[]){0xdd, 0xff, 0x00, 0x00, 0x00}, 5);
    fuzz_put_seed(dir, "bomb_bin32_ffffffff", bin32, sizeof bin32);
    memset(b, 0x91, 100000);
    b[100000] = 0xc0;
    fuzz_put_seed(dir, "bomb_nesting_91x100000", b, 100001);
    for (n = 0; n + 3 <= 3000; n += 3) {
        b[n] = 0xdc;
        b[n + 1] = 0xff;
        b[n + 2] = 0xff;
    }
    fuzz_put_seed(dir, "bomb_array16_chain", b, n);
    b[0] = 0xde; /* map16 of 65535 entries of nothing */
    b[1] = 0xff;
    b[2] = 0xff;
    fuzz_put_seed(dir, "truncated_map16", b, 3);
    free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}
