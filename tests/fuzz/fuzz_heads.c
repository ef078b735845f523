/*
 * fuzz_heads.c: a heads blob as an epoch record carries it ->
 * crdt_heads_parse, crdt_heads_seq, crdt_heads_vv.
 *
 * Input: the blob (msgpack array: actor, seq, hash, pk, inc per actor).
 * Checked: no crash or sanitizer report; only CRDT_OK, CRDT_EPROTO,
 * CRDT_ELIMIT or CRDT_ENOMEM; the three calls give the same answer for
 * the same blob; a good blob's vector has each parsed actor at the seq
 * crdt_heads_seq() gives it.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_heads` writes a few blobs (no
 * heads, one genuine head, broken ones) into DIR and exits.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const unsigned char *blob;
    size_t len;
    const crdt_vv *vv;
    size_t n;
} walk;

static int
check_head(const crdt_head *h, void *ctx)
{
    walk *w = ctx;
    uint64_t seq;

    if (crdt_heads_seq(&seq, w->blob, w->len, &h->actor) != CRDT_OK ||
        crdt_vv_get(w->vv, &h->actor) != seq)
        abort();
    w->n++;
    return CRDT_OK;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *buf = malloc(size ? size : 1);
    crdt_actor none = { { 0 } };
    crdt_vv *vv = NULL;
    uint64_t seq = 0;
    int rc, rc_seq, rc_vv;

    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size); /* exactly @p size bytes for ASan */
    rc = crdt_heads_parse(buf, size, NULL, NULL);
    if (rc != CRDT_OK && rc != CRDT_EPROTO && rc != CRDT_ELIMIT)
        abort();
    rc_seq = crdt_heads_seq(&seq, buf, size, &none);
    rc_vv = crdt_heads_vv(&vv, buf, size);
    if (rc_vv == CRDT_ENOMEM) {
        free(buf);
        return 0;
    }
    if (rc_seq != rc || rc_vv != rc || (rc != CRDT_OK) != (vv == NULL))
        abort();
    if (rc == CRDT_OK) {
        walk w = { buf, size, vv, 0 };
        if (crdt_heads_parse(buf, size, check_head, &w) != CRDT_OK ||
            crdt_vv_count(vv) > w.n)
            abort();
    }
    crdt_vv_free(vv);
    free(buf);
    return 0;
}

/* ---- seeds ----------------------------------------------------------- */

static void
write_seeds(const char *dir)
{
    unsigned char b[256], pk[32], inc[8], in[40], actor[32];
    size_t n = 0;

    memset(pk, 7, sizeof pk);
    memset(inc, 3, sizeof inc);
    memcpy(in, pk, 32);
    memcpy(in + 32, inc, 8);
    crypto_generichash(actor, 8, in, sizeof in, NULL, 0);
    b[n++] = 0x95;
    b[n++] = 0xc4;
    b[n++] = 8;
    memcpy(b + n, actor, 8);
    n += 8;
    b[n++] = 0x2a; /* seq 42 */
    b[n++] = 0xc4;
    b[n++] = 32;
    memset(b + n, 9, 32); /* hash */
    n += 32;
    b[n++] = 0xc4;
    b[n++] = 32;
    memcpy(b + n, pk, 32);
    n += 32;
    b[n++] = 0xc4;
    b[n++] = 8;
    memcpy(b + n, inc, 8);
    n += 8;
    fuzz_put_seed(dir, "one_head", b, n);
    fuzz_put_seed(dir, "one_head_truncated", b, n - 1);
    b[n] = 0xc0;
    fuzz_put_seed(dir, "one_head_trailing", b, n + 1);
    b[3] ^= 1;
    fuzz_put_seed(dir, "wrong_actor", b, n);
    fuzz_put_seed(dir, "empty_array", (const unsigned char *)"\x90", 1);
    fuzz_put_seed(dir, "no_bytes", b, 0); /* no heads */
    fuzz_put_seed(dir, "map_not_array", (const unsigned char *)"\x80", 1);
    fuzz_put_seed(dir, "four_items", (const unsigned char *)"\x94\xc0\xc0\xc0\xc0", 5);
    fuzz_put_seed(dir, "bomb_array32", (const unsigned char *)"\xdd\xff\xff\xff\xff", 5);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}
