/*
 * fuzz_summary.c: the heads summary of sync protocol 4 as a peer sends
 * it (HELLO's root, count and entries; SUMMARY rounds) -> a summary of
 * fixed local heads (net/src/summary.c): crdtnet__sum_start() and
 * crdtnet__sum_round_feed(), the decoders with their limits.
 *
 * Input: byte 0 picks our heads: bit 0 few (30: they travel whole in
 * HELLO) or many (300). Then the peer's HELLO: root (32 bytes), count
 * (4 bytes, big-endian), entries length (2 bytes, big-endian) and the
 * entries; then rounds, each a digests length (2 bytes), the digests,
 * an entries length (2 bytes) and the entries, until the input ends.
 * Our own round messages are taken before each round is fed.
 * Checked: no crash or sanitizer report; only the documented codes; a
 * failure is final (the harness stops); once done, the peer's vv has
 * the announced count, in strictly increasing actor order, and the
 * rebuilt heads parse as a heads blob.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_summary` writes the corpus (a
 * genuine peer's HELLO and rounds against both local sets, with one,
 * two and many differences, and truncated and oversized variants) into
 * DIR and exits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "internal.h"
#include "summary.h"
#include "support/fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ENTRY CRDTNET__SUM_ENTRY
#define MANY 300
#define FEW 30

static uint64_t
mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
cmp_entry(const void *a, const void *b)
{
    return memcmp(a, b, 8);
}

/* @p n entries (actor, seq, hash), sorted, from @p seed. */
static void
make_entries(unsigned char *e, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = e + i * ENTRY;
        uint64_t a = mix(&seed), seq = 1 + mix(&seed) % 500;
        memcpy(p, &a, 8);
        for (int b = 0; b < 8; b++)
            p[8 + b] = (unsigned char)(seq >> (56 - 8 * b));
        for (int b = 0; b < 32; b += 8) {
            uint64_t h = mix(&seed);
            memcpy(p + 16 + b, &h, 8);
        }
    }
    qsort(e, n, ENTRY, cmp_entry);
}

/* A summary of @p n entries (a heads blob, as crdt_heads_export()). */
static crdtnet__sum *
sum_of(const unsigned char *e, size_t n)
{
    crdt__enc enc;
    crdtnet__sum *s = NULL;

    crdt__enc_init(&enc);
    msgpack_pack_array(&enc.pk, 3 * n);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = e + i * ENTRY;
        crdt__enc_bin(&enc, p, 8);
        msgpack_pack_uint64(&enc.pk, crdt__rd64(p + 8));
        crdt__enc_bin(&enc, p + 16, 32);
    }
    if (crdt__enc_ok(&enc) != CRDT_OK ||
        crdtnet__sum_new(&s, (const unsigned char *)enc.sb.data,
                         enc.sb.size) != CRDT_OK)
        abort();
    crdt__enc_free(&enc);
    return s;
}

static crdtnet__sum *
ours(int few)
{
    static unsigned char e[MANY * ENTRY];
    size_t n = few ? FEW : MANY;

    make_entries(e, n, 42);
    return sum_of(e, n);
}

typedef struct {
    const uint8_t *p, *end;
} reader;

static int
take(reader *r, size_t n, const uint8_t **out)
{
    if ((size_t)(r->end - r->p) < n)
        return -1;
    *out = r->p;
    r->p += n;
    return 0;
}

static int
take_u16(reader *r, size_t *v)
{
    const uint8_t *b;

    if (take(r, 2, &b) < 0)
        return -1;
    *v = (size_t)b[0] << 8 | b[1];
    return 0;
}

static void
check_done(crdtnet__sum *s, uint64_t peer_n)
{
    crdt_vv *vv = NULL;
    unsigned char *blob = NULL;
    size_t len = 0;
    crdt_actor prev, a;
    uint64_t seq;

    if (crdtnet__sum_peer_vv(s, &vv) != CRDT_OK ||
        crdt_vv_count(vv) != peer_n)
        abort();
    for (size_t i = 0; i < crdt_vv_count(vv); i++) {
        crdt_vv_entry(vv, i, &a, &seq);
        if (i > 0 && memcmp(prev.b, a.b, 8) >= 0)
            abort();
        /* FIN's lookup of the peer's seq agrees with the rebuilt vv */
        if (crdtnet__sum_peer_seq(s, &a) != seq)
            abort();
        prev = a;
    }
    crdt_vv_free(vv);
    if (crdtnet__sum_peer_heads(s, &blob, &len) != CRDT_OK)
        abort();
    {
        crdt__mp m = { blob, blob + len };
        uint32_t n;
        if (crdt__mp_array(&m, &n) < 0 || n % 3 != 0)
            abort();
    }
    free(blob);
}

static int
documented(int rc)
{
    return rc == CRDT_OK || rc == CRDT_EPROTO || rc == CRDT_ELIMIT ||
           rc == CRDT_ENOMEM;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader r = { data, data + size };
    const uint8_t *flags, *root, *cnt, *few, *sums, *heads;
    size_t fl, sl, hl;
    uint64_t peer_n;
    crdtnet__sum *s;
    int rc;

    if (take(&r, 1, &flags) < 0 || take(&r, 32, &root) < 0 ||
        take(&r, 4, &cnt) < 0 || take_u16(&r, &fl) < 0 ||
        take(&r, fl, &few) < 0)
        return 0;
    s = ours(flags[0] & 1);
    peer_n = (uint64_t)cnt[0] << 24 | (uint64_t)cnt[1] << 16 |
             (uint64_t)cnt[2] << 8 | cnt[3];
    rc = crdtnet__sum_start(s, root, peer_n, few, fl);
    if (!documented(rc))
        abort();
    for (int round = 0; rc == CRDT_OK && !crdtnet__sum_done(s) &&
                        round < 20;
         round++) {
        const unsigned char *a, *b;
        size_t al, bl;

        while (crdtnet__sum_round_due(s)) /* ours goes out first */
            crdtnet__sum_round_take(s, &a, &al, &b, &bl);
        if (take_u16(&r, &sl) < 0 || take(&r, sl, &sums) < 0 ||
            take_u16(&r, &hl) < 0 || take(&r, hl, &heads) < 0)
            break;
        rc = crdtnet__sum_round_feed(s, sums, sl, heads, hl);
        if (!documented(rc))
            abort();
    }
    if (rc == CRDT_OK && crdtnet__sum_done(s))
        check_done(s, peer_n);
    crdtnet__sum_free(s);
    return 0;
}

/* ---- seeds ---- */

typedef struct {
    unsigned char b[65536];
    size_t n;
} buf;

static void
put(buf *o, const void *p, size_t n)
{
    if (o->n + n > sizeof o->b)
        abort();
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void
put_u16(buf *o, size_t v)
{
    unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };
    put(o, b, 2);
}

/* A genuine peer holding our heads with @p diffs changed, as input. */
static void
genuine(const char *dir, const char *name, int few, int diffs)
{
    static unsigned char e[(MANY + 8) * ENTRY];
    size_t n = few ? FEW : MANY;
    crdtnet__sum *me, *peer;
    unsigned char rm[32], rp[32];
    uint64_t nm, np;
    const unsigned char *fm, *fp;
    size_t lm, lp;
    buf *o = calloc(1, sizeof *o);
    unsigned char flag = (unsigned char)few;

    make_entries(e, n, 42);
    for (int k = 0; k < diffs; k++) {
        unsigned char *p = e + ((size_t)k * 37 % n) * ENTRY;
        p[15]++;      /* one more change */
        p[16] ^= 0x5a; /* its chain hash */
    }
    me = ours(few);
    peer = sum_of(e, n);
    crdtnet__sum_root(me, rm, &nm);
    crdtnet__sum_root(peer, rp, &np);
    crdtnet__sum_hello_entries(me, &fm, &lm);
    crdtnet__sum_hello_entries(peer, &fp, &lp);
    put(o, &flag, 1);
    put(o, rp, 32);
    {
        unsigned char c[4] = { (unsigned char)(np >> 24),
                               (unsigned char)(np >> 16),
                               (unsigned char)(np >> 8), (unsigned char)np };
        put(o, c, 4);
    }
    put_u16(o, lp);
    put(o, fp, lp);
    if (crdtnet__sum_start(peer, rm, nm, fm, lm) != CRDT_OK ||
        crdtnet__sum_start(me, rp, np, fp, lp) != CRDT_OK)
        abort();
    for (int i = 0; i < 20 && crdtnet__sum_round_due(peer); i++) {
        const unsigned char *s1, *h1, *s2, *h2;
        size_t sl1, hl1, sl2, hl2;
        unsigned char *c1, *c2;

        crdtnet__sum_round_take(peer, &s1, &sl1, &h1, &hl1);
        c1 = malloc(sl1 + hl1 + 1);
        memcpy(c1, s1, sl1);
        memcpy(c1 + sl1, h1, hl1);
        put_u16(o, sl1);
        put(o, c1, sl1);
        put_u16(o, hl1);
        put(o, c1 + sl1, hl1);
        crdtnet__sum_round_take(me, &s2, &sl2, &h2, &hl2);
        c2 = malloc(sl2 + hl2 + 1);
        memcpy(c2, s2, sl2);
        memcpy(c2 + sl2, h2, hl2);
        if (crdtnet__sum_round_feed(me, c1, sl1, c1 + sl1, hl1) !=
                CRDT_OK ||
            crdtnet__sum_round_feed(peer, c2, sl2, c2 + sl2, hl2) !=
                CRDT_OK)
            abort();
        free(c1);
        free(c2);
    }
    fuzz_put_seed(dir, name, o->b, o->n);
    {
        char tname[64];
        snprintf(tname, sizeof tname, "%s_truncated", name);
        fuzz_put_seed(dir, tname, o->b, o->n > 40 ? o->n - 7 : o->n);
    }
    crdtnet__sum_free(me);
    crdtnet__sum_free(peer);
    free(o);
}

static void
write_seeds(const char *dir)
{
    buf *o = calloc(1, sizeof *o);
    unsigned char zero[32] = { 0 };

    genuine(dir, "many_equal", 0, 0);
    genuine(dir, "many_one_diff", 0, 1);
    genuine(dir, "many_two_diffs", 0, 2);
    genuine(dir, "many_many_diffs", 0, 40);
    genuine(dir, "few_one_diff", 1, 1);
    genuine(dir, "few_equal", 1, 0);
    /* a count above the limit, and entries for many heads */
    put(o, "\0", 1);
    put(o, zero, 32);
    put(o, "\x00\x01\x00\x01", 4);
    put_u16(o, 0);
    fuzz_put_seed(dir, "count_over_limit", o->b, o->n);
    o->n = 0;
    put(o, "\0", 1);
    put(o, zero, 32);
    put(o, "\x00\x00\x01\x00", 4);
    put_u16(o, ENTRY);
    put(o, zero, 16);
    put(o, zero, 32);
    fuzz_put_seed(dir, "entries_for_many", o->b, o->n);
    /* a round of digests of the wrong length */
    o->n = 0;
    put(o, "\0", 1);
    put(o, zero, 32);
    put(o, "\x00\x00\x01\x2c", 4);
    put_u16(o, 0);
    put_u16(o, 7);
    put(o, zero, 7);
    put_u16(o, 0);
    fuzz_put_seed(dir, "digests_wrong_length", o->b, o->n);
    free(o);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return fuzz_seeds_if_asked(write_seeds);
}
