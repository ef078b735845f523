/*
 * fuzz_changepack.c: a packed change list as a peer sends it (the bin of
 * a PACKED message, docs/protocol.md "Packed changes") ->
 * crdt_changes_unpack -> crdt_changes_pack -> crdt_changes_unpack, and the
 * same with crdt_changes_pack_hashed() and in packed version 2
 * (crdt_changes_pack_version()).
 *
 * Checked: no crash or sanitizer report; only the documented codes; at
 * most CRDT_CHANGES_UNPACKED_MAX bytes rebuilt; every rebuilt change
 * decodes (crdt_change_decode); packing the rebuilt list again and
 * unpacking that gives the same changes byte for byte (what a relay
 * does with what it merged).
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_changepack` writes the corpus (lists
 * packed from the changes of a replica: register writes of numbered
 * documents from two authors, every op kind, a run without signatures;
 * cut and flipped copies; count and length bombs; packs in a form the
 * packer does not write, which are refused: a raw op of the compact
 * shape, a value tag sent again, the author by index instead of the
 * flag, an overlong count; in version 2: the same lists, one-op
 * changes, a stamp delta-coded where a flag says it, n_ops 1 spelled
 * out, a long op where the short one repeats the names) into DIR and
 * exits.
 */
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "../support/hand_pack.h"
#include "support/fuzz_rng.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *in = malloc(size ? size : 1), *buf = NULL;
    unsigned char *packed = NULL;
    crdt_bytes *list = NULL;
    size_t n = 0, plen = 0, total = 0;
    crdt_change c;
    int rc;

    if (in == NULL)
        return 0;
    if (size)
        memcpy(in, data, size); /* exactly @p size bytes for ASan */
    rc = crdt_changes_unpack(&list, &n, &buf, in, size);
    if (rc != CRDT_OK) {
        if (rc != CRDT_EPROTO && rc != CRDT_ELIMIT && rc != CRDT_ENOMEM)
            abort();
        if (list != NULL || buf != NULL || n != 0)
            abort(); /* nothing handed out on failure */
        free(in);
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        total += list[i].len;
        /* a verbatim record is at least a change's length; a packed one
         * rebuilt a change that decodes (the unpacker checked) */
        if (list[i].len < CRDT_CHANGE_MIN)
            abort();
        (void)crdt_change_decode(&c, list[i].data, list[i].len);
    }
    if (total > CRDT_CHANGES_UNPACKED_MAX)
        abort();
    rc = crdt_changes_pack(&packed, &plen, list, n);
    if (rc == CRDT_OK)
        fuzz_check_unpacks_to(packed, plen, list, n);
    else if (rc != CRDT_ELIMIT && rc != CRDT_ENOMEM)
        abort();
    {
        unsigned char *p2 = NULL;
        size_t l2 = 0;
        rc = crdt_changes_pack_version(&p2, &l2, list, NULL, n,
                                       CRDT_CHANGES_PACK_V2);
        if (rc == CRDT_OK)
            fuzz_check_unpacks_to(p2, l2, list, n);
        else if (rc != CRDT_ELIMIT && rc != CRDT_ENOMEM)
            abort();
        crdt_free(p2);
    }
    /* packed with the decoded hashes (zeros for a change that does not
     * decode: a wrong hash may cost size, never exactness) */
    if (n > 0) {
        unsigned char *hashes = calloc(n, CRDT_HASH_BYTES), *p2 = NULL;
        size_t l2 = 0;
        for (size_t i = 0; hashes != NULL && i < n; i++)
            if (crdt_change_decode(&c, list[i].data, list[i].len) == CRDT_OK)
                memcpy(hashes + i * CRDT_HASH_BYTES, c.hash, CRDT_HASH_BYTES);
        rc = hashes ? crdt_changes_pack_hashed(&p2, &l2, list, hashes, n)
                    : CRDT_ENOMEM;
        if (rc == CRDT_OK)
            fuzz_check_unpacks_to(p2, l2, list, n);
        else if (rc != CRDT_ELIMIT && rc != CRDT_ENOMEM)
            abort();
        crdt_free(p2);
        free(hashes);
    }
    crdt_free(list);
    crdt_free(buf);
    crdt_free(packed);
    free(in);
    return 0;
}

/* ---- seeds ----------------------------------------------------------- */

static void
registers(crdt_replica *r, int changes, int ops, uint64_t *s)
{
    for (int i = 0; i < changes; i++) {
        crdt_txn *t;
        if (crdt_txn_begin(&t, r) != CRDT_OK)
            exit(1);
        for (int j = 0; j < ops; j++) {
            char doc[16];
            crdt_value v;
            *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
            v = crdt_value_int((int64_t)((*s >> 2) | (1ULL << 40)));
            snprintf(doc, sizeof doc, "d%05u", (unsigned)((*s >> 33) % 10000));
            if (crdt_txn_put(t, "c", doc, "v", &v) != CRDT_OK)
                exit(1);
        }
        if (crdt_txn_commit(t, NULL) != CRDT_OK)
            exit(1);
    }
}

typedef struct {
    crdt_bytes v[64];
    size_t n;
} seed_list;

static void
take(seed_list *l, crdt_replica *r, int strip)
{
    crdt_export *e;
    const unsigned char *p;
    size_t len;

    if (crdt_export_begin(&e, r, NULL) != CRDT_OK)
        exit(1);
    while (l->n < 64 && crdt_export_next(e, &p, &len) == CRDT_OK) {
        unsigned char *u = malloc(len);
        if (u == NULL)
            exit(1);
        memcpy(u, p, len);
        l->v[l->n].data = u;
        l->v[l->n].len = len;
        l->n++;
    }
    crdt_export_end(e);
    /* a run as sent: only its last change keeps its signature */
    for (size_t i = 0; strip && i + 1 < l->n; i++) {
        size_t nl = crdt_change_strip_sig((unsigned char *)l->v[i].data,
                                          l->v[i].len);
        if (nl > 0)
            l->v[i].len = nl;
    }
}

static void
put_packed_as(const char *out, const char *name, const seed_list *l,
              unsigned char **keep, size_t *keep_len, int version)
{
    unsigned char *p;
    size_t len;

    if (crdt_changes_pack_version(&p, &len, l->v, NULL, l->n, version) !=
        CRDT_OK)
        exit(1);
    fuzz_put_seed(out, name, p, len);
    if (keep != NULL) {
        *keep = p;
        *keep_len = len;
    } else {
        crdt_free(p);
    }
}

static void
put_packed(const char *out, const char *name, const seed_list *l,
           unsigned char **keep, size_t *keep_len)
{
    put_packed_as(out, name, l, keep, keep_len, CRDT_CHANGES_PACK_V1);
}

static void
list_free(seed_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free((void *)l->v[i].data);
    l->n = 0;
}

/* Hand-written packs in a form the packer does not write (docs/protocol.md,
 * "Packed changes", canonical form): each is refused. One author's
 * changes of one PUT op (c, d, v = 1); @p op: the first change's op
 * bytes, @p second: a second record (or NULL). */
static void
put_hand_pack(const char *out, const char *name, const unsigned char *op,
              size_t op_len, const unsigned char *second, size_t second_len)
{
    unsigned char p[256];

    fuzz_put_seed(out, name, p,
                  tu_hand_pack(p, op, op_len, second, second_len));
}

static void
noncanonical_seeds(const char *out, const unsigned char *valid, size_t len)
{
    static const unsigned char op[] = {0x08, 0, 1, 'c', 0, 1, 'd',
                                       0, 1, 'v', 0x01};
    static const unsigned char raw_compact[] = {
        3, 9, 0x95, 0, 0xa1, 'c', 0xa1, 'd', 0xa1, 'v', 0x01};
    static const unsigned char ok2[] = {0x1d, 0, 1, 0x48, 1, 3, 5};
    static const unsigned char tag_sent[] = {0x1d, 0, 1, 0x08, 1, 3, 5, 1};
    static const unsigned char author_by_index[] = {0x15, 0, 0, 1, 0x48,
                                                    1, 3, 5};
    unsigned char *q;

    put_hand_pack(out, "valid_by_hand", op, sizeof op, ok2, sizeof ok2);
    put_hand_pack(out, "noncanonical_raw_op", raw_compact,
                  sizeof raw_compact, NULL, 0);
    put_hand_pack(out, "noncanonical_tag_sent", op, sizeof op, tag_sent,
                  sizeof tag_sent);
    put_hand_pack(out, "noncanonical_author_by_index", op, sizeof op,
                  author_by_index, sizeof author_by_index);
    /* the valid list with its count as a two-byte varint */
    if (len < 18 || valid[17] >= 0x80 || (q = malloc(len + 1)) == NULL)
        exit(1);
    memcpy(q, valid, 17);
    q[17] = (unsigned char)(valid[17] | 0x80);
    q[18] = 0;
    memcpy(q + 19, valid + 18, len - 18);
    fuzz_put_seed(out, "noncanonical_overlong_count", q, len + 1);
    free(q);
}

/* Version 2 by hand (docs/protocol.md, "Packed changes"): a first
 * record of one author, epoch, seq 1, hlc 1 (a delta), op PUT c d1 v =
 * 1, then @p rest (@p n records in all). */
static void
put_hand_v2(const char *out, const char *name, unsigned n,
            const unsigned char *rest, size_t rest_len)
{
    static const unsigned char op[] = {0x08, 0, 1, 'c', 0, 2, 'd', '1',
                                       0, 1, 'v', 0x01};
    unsigned char p[512];
    size_t at = 0;

    p[at++] = 2;
    memset(p + at, 0x11, 16);
    at += 16;
    p[at++] = (unsigned char)n;
    p[at++] = 0x21;
    p[at++] = 0;
    memset(p + at, 0x22, 40);
    at += 40;
    p[at++] = 0;
    memset(p + at, 0x33, 32);
    at += 32;
    p[at++] = 1;
    memset(p + at, 0x44, 32);
    at += 32;
    p[at++] = 2;
    memcpy(p + at, op, sizeof op);
    at += sizeof op;
    memcpy(p + at, rest, rest_len);
    fuzz_put_seed(out, name, p, at + rest_len);
}

static void
v2_seeds(const char *out)
{
    /* c d2 v (header 50), then c d3 v as the short op 83; the stamps:
     * the same ms (7d), the next (bd), a later one (fd, d = 5) */
    static const unsigned char ok[] = {0x7d, 0x50, 1, 2, 5, 0xbd, 0x83,
                                       0xfd, 5, 0x84};
    static const unsigned char delta_for_same[] = {0x3d, 0, 0x50, 1, 2, 5};
    static const unsigned char one_op_spelled[] = {0x5d, 1, 0x50, 1, 2, 5};
    static const unsigned char long_not_short[] = {0x7d, 0x50, 1, 2, 5,
                                                   0x7d, 0x50, 1, 3, 5};

    put_hand_v2(out, "v2_valid_by_hand", 4, ok, sizeof ok);
    put_hand_v2(out, "v2_noncanonical_delta_for_same", 2, delta_for_same,
                sizeof delta_for_same);
    put_hand_v2(out, "v2_noncanonical_one_op_spelled", 2, one_op_spelled,
                sizeof one_op_spelled);
    put_hand_v2(out, "v2_noncanonical_long_op", 3, long_not_short,
                sizeof long_not_short);
}

static void
write_seeds(const char *out)
{
    char tmpl[] = "/tmp/strata-fuzz-seed-XXXXXX";
    crdt_replica *a, *b;
    seed_list la = { .n = 0 }, lb = { .n = 0 }, mix = { .n = 0 };
    uint64_t s = 42;
    unsigned char *p, *q;
    size_t len;
    crdt_txn *t;
    crdt_value v = crdt_value_str("red", 3);
    static const unsigned char count_bomb[] = {
        1, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
        0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x0f};

    if (mkdtemp(tmpl) == NULL)
        exit(1);
    a = fuzz_seed_replica(tmpl, 0x11);
    b = fuzz_seed_replica(tmpl, 0x22);
    registers(a, 3, 20, &s);
    registers(b, 2, 10, &s);
    if (crdt_txn_begin(&t, a) != CRDT_OK ||
        crdt_txn_sadd(t, "tags", "t1", "colors", &v) != CRDT_OK ||
        crdt_txn_incr(t, "stats", "s1", "hits", -7) != CRDT_OK ||
        crdt_txn_text_insert(t, "notes", "n1", "body", 0, "abc", 3) !=
            CRDT_OK ||
        crdt_txn_commit(t, NULL) != CRDT_OK)
        exit(1);
    if (crdt_txn_begin(&t, a) != CRDT_OK ||
        crdt_txn_srem(t, "tags", "t1", "colors", &v) != CRDT_OK ||
        crdt_txn_del_field(t, "stats", "s1", "hits") != CRDT_OK ||
        crdt_txn_del_doc(t, "c", "d00001") != CRDT_OK ||
        crdt_txn_commit(t, NULL) != CRDT_OK)
        exit(1);
    take(&la, a, 0);
    take(&lb, b, 1);
    put_packed(out, "valid_signed_every_kind", &la, NULL, NULL);
    put_packed(out, "valid_run_unsigned", &lb, NULL, NULL);
    for (size_t i = 0; i < la.n || i < lb.n; i++) { /* interleaved */
        if (i < la.n)
            mix.v[mix.n++] = la.v[i];
        if (i < lb.n)
            mix.v[mix.n++] = lb.v[i];
    }
    put_packed(out, "valid_two_authors", &mix, &p, &len);
    put_packed_as(out, "v2_two_authors", &mix, NULL, NULL,
                  CRDT_CHANGES_PACK_V2);
    put_packed_as(out, "v2_signed_every_kind", &la, NULL, NULL,
                  CRDT_CHANGES_PACK_V2);
    mix.n = 0;
    fuzz_put_seed(out, "valid_empty",
                  (const unsigned char[]){1, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                          0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a,
                                          0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0},
                  18);
    fuzz_put_seed(out, "truncated_half", p, len / 2);
    fuzz_put_seed(out, "truncated_minus1", p, len - 1);
    q = malloc(len + 1);
    if (q == NULL)
        exit(1);
    memcpy(q, p, len);
    q[len] = 0;
    fuzz_put_seed(out, "trailing_byte", q, len + 1);
    q[len / 3] ^= 0x40; /* a flipped bit somewhere in a record */
    fuzz_put_seed(out, "flipped_bit", q, len);
    free(q);
    fuzz_put_seed(out, "bomb_count_2p32", count_bomb, sizeof count_bomb);
    noncanonical_seeds(out, p, len);
    v2_seeds(out);
    crdt_free(p);
    list_free(&la);
    list_free(&lb);
    registers(b, 40, 1, &s); /* one-op changes, as one-op writers send */
    take(&lb, b, 1);
    put_packed_as(out, "v2_one_op_run", &lb, NULL, NULL,
                  CRDT_CHANGES_PACK_V2);
    put_packed(out, "valid_one_op_run", &lb, NULL, NULL);
    list_free(&lb);
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
