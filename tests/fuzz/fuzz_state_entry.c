/*
 * fuzz_state_entry.c: one state entry as a damaged store could hold it
 * -> crdt_state_entry_decode -> crdt_state_entry_encode -> decode.
 *
 * Input: byte 0 is the key's length (mod the input), then the key, then
 * the value (keys are at most CRDT_STATE_KEY_MAX bytes in LMDB).
 * Checked: no crash or sanitizer report; only the documented codes; the
 * key-only decode agrees with the full one; what decodes encodes (unless
 * a name is not UTF-8, CRDT_EINVAL) to bytes that decode to the same
 * entry and encode again to the same bytes.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_state_entry` writes one entry of
 * each kind (the kept lens defaults and the born mark among them) and a
 * few broken ones into DIR and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
same(const crdt_state_entry *a, const crdt_state_entry *b)
{
    if (a->kind != b->kind || a->coll_len != b->coll_len ||
        a->doc_len != b->doc_len || a->field_len != b->field_len ||
        a->hlc != b->hlc || memcmp(a->actor.b, b->actor.b, 8) != 0 ||
        a->tombstone != b->tombstone || a->count != b->count ||
        a->sum != b->sum || a->seq != b->seq || a->live != b->live)
        abort();
    /* a set element's bytes may shrink to msgpack's shortest form */
    if (a->kind != CRDT_ENTRY_SET_TAG &&
        (a->rest_len != b->rest_len || a->raw_len != b->raw_len))
        abort();
    if (a->value.type != b->value.type)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char k2[CRDT_STATE_KEY_MAX], k3[CRDT_STATE_KEY_MAX], *buf;
    unsigned char *v2, *v3;
    crdt_state_entry e, kd, e2;
    size_t kl, vl, kl2, vl2, kl3, vl3;
    int rc;

    if (size < 1)
        return 0;
    kl = data[0] % size;
    if (kl > CRDT_STATE_KEY_MAX)
        kl = CRDT_STATE_KEY_MAX;
    vl = size - 1 - kl;
    buf = malloc(size);
    v2 = malloc(vl + 64);
    v3 = malloc(vl + 64);
    if (buf == NULL || v2 == NULL || v3 == NULL)
        abort();
    memcpy(buf, data + 1, size - 1); /* exactly the bytes, for ASan */
    rc = crdt_state_entry_decode(&e, buf, kl, buf + kl, vl);
    if (rc != CRDT_OK) {
        if (rc != CRDT_ECORRUPT)
            abort();
        goto out;
    }
    if (crdt_state_key_decode(&kd, buf, kl) != CRDT_OK || kd.kind != e.kind)
        abort();
    rc = crdt_state_entry_encode(k2, &kl2, v2, vl + 64, &vl2, &e);
    if (rc == CRDT_EINVAL)
        goto out; /* a name that is not UTF-8 */
    if (rc != CRDT_OK)
        abort();
    if (crdt_state_entry_decode(&e2, k2, kl2, v2, vl2) != CRDT_OK)
        abort();
    same(&e, &e2);
    if (crdt_state_entry_encode(k3, &kl3, v3, vl + 64, &vl3, &e2) !=
            CRDT_OK ||
        kl3 != kl2 || vl3 != vl2 || memcmp(k2, k3, kl2) != 0 ||
        memcmp(v2, v3, vl2) != 0)
        abort();
out:
    free(buf);
    free(v2);
    free(v3);
    return 0;
}

/* ---- seeds ----------------------------------------------------------- */

static void
put(const char *dir, const char *name, const void *k, size_t kl,
    const void *v, size_t vl)
{
    unsigned char b[1024];

    b[0] = (unsigned char)kl;
    memcpy(b + 1, k, kl);
    memcpy(b + 1 + kl, v, vl);
    fuzz_put_seed(dir, name, b, 1 + kl + vl);
}

static void
write_seeds(const char *dir)
{
    static const unsigned char stamp_int[] = { 0, 0, 0, 0, 0, 0, 0, 9, 1, 2,
                                               3, 4, 5, 6, 7, 8, 0x2a };
    static const unsigned char stamp_tomb[] = { 0, 0, 0, 0, 0, 0, 0, 9, 1,
                                                2, 3, 4, 5, 6, 7, 8, 0xc1 };
    static const unsigned char counter[24] = { [7] = 1, [15] = 5, [23] = 3 };
    static const unsigned char live = 1;

    put(dir, "doc_tombstone", "c\0d\0", 4, stamp_int, 16);
    put(dir, "register", "c\0d\0f\0R", 7, stamp_int, sizeof stamp_int);
    put(dir, "field_tombstone", "c\0d\0f\0R", 7, stamp_tomb,
        sizeof stamp_tomb);
    put(dir, "counter", "c\0d\0f\0C\1\2\3\4\5\6\7\10", 15, counter, 24);
    put(dir, "counter_removed", "c\0d\0f\0D\1\2\3\4\5\6\7\10", 15, counter,
        16);
    put(dir, "set_tag",
        "c\0d\0f\0S\xa1x\1\2\3\4\5\6\7\10\0\0\0\0\0\0\0\1", 25, &live, 1);
    put(dir, "text_header", "c\0d\0f\0T", 7, &live, 1);
    put(dir, "waiting_copy",
        "\0W\1\2\3\4\5\6\7\10\0\0\0\0\0\0\0\5\1\2\3\4\5\6\7\10"
        "\11\12\13\14\15\16\17\20\0\0\0\0\0\0\0\1",
        42, (const unsigned char *)"C\0\0\0\0\0\0\0\5", 9);
    put(dir, "noncanonical_int", "c\0d\0f\0R", 7,
        (const unsigned char[]){ 0, 0, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4, 5, 6, 7,
                                 8, 0xcd, 0, 1 },
        19);
    /* a collection's kept defaults: n = "-", nn = -7; then out of order */
    put(dir, "kept_defaults", "\0Vcoll", 6,
        (const unsigned char *)"\1n\0\2\xa1-\2nn\0\1\xf9", 12);
    put(dir, "kept_defaults_unsorted", "\0Vcoll", 6,
        (const unsigned char *)"\2nn\0\1\xf9\1n\0\2\xa1-", 12);
    put(dir, "born_mark", "c\0d\0\0N", 6, &live, 1);
    put(dir, "bad_kind", "c\0d\0f\0Z", 7, &live, 1);
    put(dir, "short_register", "c\0d\0f\0R", 7, stamp_int, 16);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}
