/*
 * fuzz_change.c: the bytes of one change, as a peer sends it or the store
 * holds it -> crdt_change_decode -> every op through crdt_op_iter ->
 * crdt_change_verify (the decoder of sync messages and of the store;
 * docs/testing.md, "Fuzzing").
 *
 * Input: the encoded change.
 * Checked: no crash or sanitizer report; only the documented codes;
 * every view the decoder hands out (signature, op array, names, string
 * and bytes values, observed parts) lies inside the input, and ops_len
 * too; the iterator yields at most n_ops ops and, when it gets through
 * all of them, ends exactly at the end of the input; each op re-encodes
 * (crdt__op_encode) to bytes that decode to the same op and re-encode to
 * the same bytes (decode -> encode -> decode, msgpack-c's pattern);
 * verify answers CRDT_OK or CRDT_EAUTH, and CRDT_OK only for a decoded
 * change that carries a signature (format 2 may come without one: then
 * CRDT_EAUTH, only a successor proves it); stripping the signature of a
 * signed format-2 change gives a change that decodes to the same hash.
 * Format-2 references (a nil name, a bare-uint id of the change's own
 * actor) resolve to names inside the input.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_change` writes the corpus (genuine
 * changes of every op kind from a replica with deterministic randomness
 * and clock, plus the bombs of docs/testing.md B3, B4) into DIR and exits.
 */
#include <ftw.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "support/fuzz_util.h"
#include "support/fuzz_rng.h"
#include "internal.h" /* crdt__op_encode, crdt__mp: the re-encoding check */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- checks ---------------------------------------------------------- */

static const unsigned char *in_lo, *in_hi; /* the current input */

static void
inside(const void *p, size_t n)
{
    const unsigned char *q = p;

    if (n == 0)
        return;
    if (q == NULL || q < in_lo || q > in_hi || n > (size_t)(in_hi - q))
        abort(); /* a view points outside the input */
}

static int
same_name(const char *a, size_t al, const char *b, size_t bl)
{
    return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

/* The same id ranges, whether spelled out or by reference. */
static int
same_ranges(const crdt_op *a, const crdt_op *b)
{
    crdt_op_ranges x, y;
    crdt_seq_range r, s;
    int rx, ry;

    if ((a->ranges == NULL) != (b->ranges == NULL))
        return 0;
    if (a->ranges == NULL)
        return 1;
    crdt_op_ranges_init(&x, a);
    crdt_op_ranges_init(&y, b);
    do {
        rx = crdt_op_ranges_next(&r, &x);
        ry = crdt_op_ranges_next(&s, &y);
        if (rx != ry || (rx == CRDT_OK &&
                         (memcmp(r.actor.b, s.actor.b, 8) != 0 ||
                          r.ctr != s.ctr || r.len != s.len)))
            return 0;
    } while (rx == CRDT_OK);
    return 1;
}

static int
same_op(const crdt_op *a, const crdt_op *b)
{
    if (a->kind != b->kind || !same_name(a->coll, a->coll_len, b->coll,
                                         b->coll_len) ||
        !same_name(a->doc, a->doc_len, b->doc, b->doc_len))
        return 0;
    if (a->kind != CRDT_OP_DEL_DOC &&
        !same_name(a->field, a->field_len, b->field, b->field_len))
        return 0;
    if ((a->kind == CRDT_OP_PUT || a->kind == CRDT_OP_SADD ||
         a->kind == CRDT_OP_SREM) && !fuzz_same_value(&a->value, &b->value))
        return 0;
    if (a->kind == CRDT_OP_INCR && a->delta != b->delta)
        return 0;
    if (a->kind >= CRDT_OP_TINS)
        return a->pos == b->pos && a->len == b->len && a->ctr == b->ctr &&
               same_name(a->text, a->text_len, b->text, b->text_len) &&
               a->left.ctr == b->left.ctr && a->right.ctr == b->right.ctr &&
               a->target.ctr == b->target.ctr && same_ranges(a, b);
    return same_name((const char *)a->observed, a->observed_len,
                     (const char *)b->observed, b->observed_len);
}

static void
check_op_views(const crdt_op *op)
{
    if (op->kind > CRDT_OP_LSET)
        abort();
    if (op->coll_len == 0 || op->coll_len > CRDT_NAME_MAX ||
        op->doc_len == 0 || op->doc_len > CRDT_NAME_MAX)
        abort();
    inside(op->coll, op->coll_len);
    inside(op->doc, op->doc_len);
    if (op->kind != CRDT_OP_DEL_DOC) {
        if (op->field_len == 0 || op->field_len > CRDT_NAME_MAX)
            abort();
        inside(op->field, op->field_len);
    }
    if (op->kind >= CRDT_OP_TINS) { /* sequence ops: fuzz_seqop says more */
        if (op->kind == CRDT_OP_TINS)
            inside(op->text, op->text_len);
        if (op->kind == CRDT_OP_TDEL || op->kind == CRDT_OP_LDEL)
            inside(op->ranges, op->ranges_len);
        return;
    }
    if ((op->kind == CRDT_OP_PUT || op->kind == CRDT_OP_SADD ||
         op->kind == CRDT_OP_SREM) &&
        (op->value.type == CRDT_VSTRING || op->value.type == CRDT_VBYTES))
        inside(op->value.u.s.ptr, op->value.u.s.len);
    if (op->observed_len > 0)
        inside(op->observed, op->observed_len);
    if ((op->kind == CRDT_OP_SREM || op->kind == CRDT_OP_DEL_FIELD ||
         op->kind == CRDT_OP_DEL_DOC) && op->observed_len == 0)
        abort(); /* removes carry what they observed */
}

/* decode -> encode -> decode -> encode: same op, same bytes */
static void
round_trip(const crdt_op *op)
{
    crdt__enc e1, e2;
    crdt__mp m;
    crdt_op back;

    crdt__enc_init(&e1);
    crdt__enc_init(&e2);
    if (crdt__op_encode(&e1, op) != CRDT_OK)
        abort();
    m.p = (const unsigned char *)e1.sb.data;
    m.end = m.p + e1.sb.size;
    if (crdt__op_decode(&back, &m) != CRDT_OK || m.p != m.end ||
        !same_op(op, &back))
        abort();
    if (crdt__op_encode(&e2, &back) != CRDT_OK || e1.sb.size != e2.sb.size ||
        memcmp(e1.sb.data, e2.sb.data, e1.sb.size) != 0)
        abort();
    crdt__enc_free(&e1);
    crdt__enc_free(&e2);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crdt_change c;
    crdt_op_iter it;
    crdt_op op;
    uint64_t n = 0;
    int rc;

    /* a copy of exactly @p size bytes, so ASan sees any overread */
    unsigned char *buf = malloc(size ? size : 1);

    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);
    in_lo = buf;
    in_hi = buf + size;
    rc = crdt_change_decode(&c, buf, size);
    if (rc != CRDT_OK) {
        if (rc != CRDT_EPROTO && rc != CRDT_EVERSION && rc != CRDT_ELIMIT)
            abort();
        free(buf);
        return 0;
    }
    if (c.sig != NULL)
        inside(c.sig, 64);
    else if (c.version != 2)
        abort(); /* only format 2 may come unsigned */
    inside(c.ops, c.ops_len);
    if (c.ops_len > size || c.n_ops == 0 || c.n_ops > CRDT_CHANGE_MAX_OPS ||
        c.seq == 0 || c.hlc > UINT64_MAX - c.n_ops)
        abort();
    crdt_op_iter_init(&it, &c);
    while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK) {
        if (++n > c.n_ops)
            abort();
        check_op_views(&op);
        round_trip(&op);
    }
    if (rc != CRDT_ENOTFOUND && rc != CRDT_EPROTO)
        abort();
    if (rc == CRDT_ENOTFOUND && (n != c.n_ops || it.p != c.ops + c.ops_len))
        abort(); /* all ops read: they fill the rest of the body */
    if (crdt_op_iter_next(&op, &it) != CRDT_ENOTFOUND)
        abort(); /* an ended or failed iterator stays ended */
    rc = crdt_change_verify(&c);
    if (rc != CRDT_OK && rc != CRDT_EAUTH)
        abort();
    if (c.sig == NULL && rc != CRDT_EAUTH)
        abort();
    if (c.sig != NULL && c.version == 2) {
        unsigned char hash[CRDT_HASH_BYTES];
        crdt_change u;
        size_t nl;

        memcpy(hash, c.hash, sizeof hash);
        nl = crdt_change_strip_sig(buf, size);
        if (nl != 0 && (nl != size - 65 ||
                        crdt_change_decode(&u, buf, nl) != CRDT_OK ||
                        u.sig != NULL ||
                        memcmp(u.hash, hash, sizeof hash) != 0))
            abort();
    }
    free(buf);
    return 0;
}

/* ---- seeds: deterministic randomness and clock ------------------------ */


/* Wrap @p ops (the op array's bytes) into a change with a well-formed
 * header and a zero signature. */
static size_t
wrap_change(unsigned char *out, const unsigned char *ops, size_t n)
{
    unsigned char *b = out + 6, *q = b; /* after 92 c6 <len: 4 bytes> */
    size_t body;

    *q++ = 0x99; /* body: 9 elements */
    *q++ = 0x01;
    *q++ = 0xc4, *q++ = 16, memset(q, 0x5a, 16), q += 16; /* space */
    *q++ = 0xc4, *q++ = 32, memset(q, 0x01, 32), q += 32; /* epoch */
    *q++ = 0xc4, *q++ = 32, memset(q, 0x02, 32), q += 32; /* pubkey */
    *q++ = 0xc4, *q++ = 8, memset(q, 0x03, 8), q += 8;    /* incarnation */
    *q++ = 0x01;                                          /* seq */
    *q++ = 0xcf, memset(q, 0x01, 8), q += 8;              /* hlc */
    *q++ = 0xc4, *q++ = 32, memset(q, 0x04, 32), q += 32; /* prev */
    memcpy(q, ops, n);
    q += n;
    body = (size_t)(q - b);
    out[0] = 0x92;
    out[1] = 0xc6;
    for (int i = 0; i < 4; i++)
        out[2 + i] = (unsigned char)(body >> (24 - 8 * i));
    *q++ = 0xc4, *q++ = 64, memset(q, 0, 64), q += 64;    /* sig */
    return (size_t)(q - out);
}

/* The bombs of docs/testing.md B3, B4: the whole input, or (@p in_ops) the
 * op array of an otherwise well-formed change. */
static void
put_bombs(const char *dir, const char *prefix, int in_ops)
{
    static const unsigned char array32[] = {0xdd, 0xff, 0x00, 0x00, 0x00};
    static const unsigned char bin32[] = {0x92, 0xc6, 0xff, 0xff, 0xff,
                                          0xff, 0xc4, 0x00};
    unsigned char *b = malloc(100001), *w = malloc(100300);
    char name[80];
    size_t n;

    if (b == NULL || w == NULL)
        exit(1);
#define PUT(nm, p, len)                                                      \
    do {                                                                     \
        snprintf(name, sizeof name, "%sbomb_%s", prefix, nm);                \
        if (in_ops)                                                          \
            fuzz_put_seed(dir, name, w, wrap_change(w, p, len));                  \
        else                                                                 \
            fuzz_put_seed(dir, name, p, len);                                     \
    } while (0)
    PUT("array32_dd_ff000000", array32, sizeof array32);
    memset(b, 0x91, 100000); /* 100,000 x fixarray(1), then nil */
    b[100000] = 0xc0;
    PUT("nesting_91x100000", b, in_ops ? 60000 : 100001);
    for (n = 0; n + 3 <= 3000; n += 3) { /* array16 of 65535, nested */
        b[n] = 0xdc;
        b[n + 1] = 0xff;
        b[n + 2] = 0xff;
    }
    PUT("array16_chain", b, n);
    PUT("bin32_ffffffff", bin32, sizeof bin32);
#undef PUT
    free(b);
    free(w);
}

/*
 * crdt_txn_commit() works around a library bug: run_dels() computes
 * NULL + 0 (txn.c:475) when a txn has no raw deletes, which UBSan with
 * -fno-sanitize-recover turns into an abort. One delete of a key that
 * is never there makes the buffer non-NULL; remove this once fixed.
 */
static int
commit(crdt_txn *t)
{
    int rc = crdt_txn_raw_del(t, CRDT_DB_QUARANTINE, "fuzz", 4);

    if (rc != CRDT_OK) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

static void
write_seeds(const char *out)
{
    char tmpl[] = "/tmp/strata-fuzz-seed-XXXXXX";
    const unsigned char *p;
    crdt_replica *r;
    crdt_export *e;
    crdt_txn *t;
    size_t len, i = 0;
    char name[64];
    unsigned char *last = NULL;
    size_t last_len = 0;
    static const unsigned char bytes[] = {0, 1, 2, 0xff};

    if (mkdtemp(tmpl) == NULL)
        exit(1);
    r = fuzz_seed_replica(tmpl, 0x11);

#define TXN(body)                                                            \
    do {                                                                     \
        if (crdt_txn_begin(&t, r) != CRDT_OK)                                \
            exit(1);                                                         \
        body;                                                                \
        if (commit(t) != CRDT_OK)                                            \
            exit(1);                                                         \
    } while (0)
    crdt_value v;
    TXN(v = crdt_value_str("Ada", 3);
        crdt_txn_put(t, "people", "p1", "name", &v));
    TXN(v = crdt_value_int(INT64_MIN);
        crdt_txn_put(t, "people", "p1", "min", &v);
        v = crdt_value_int(INT64_MAX);
        crdt_txn_put(t, "people", "p1", "max", &v);
        v = crdt_value_null(); crdt_txn_put(t, "people", "p1", "nil", &v);
        v = crdt_value_bool(1); crdt_txn_put(t, "people", "p1", "ok", &v);
        v = crdt_value_double(-0.5);
        crdt_txn_put(t, "people", "p1", "ratio", &v);
        v = crdt_value_bytes(bytes, sizeof bytes);
        crdt_txn_put(t, "people", "p1", "raw", &v);
        v = crdt_value_str("", 0); crdt_txn_put(t, "people", "p1", "e", &v));
    TXN(crdt_txn_incr(t, "stats", "s", "hits", 5);
        crdt_txn_incr(t, "stats", "s", "hits", INT64_MIN));
    TXN(v = crdt_value_str("red", 3);
        crdt_txn_sadd(t, "tags", "t1", "colors", &v);
        v = crdt_value_int(7); crdt_txn_sadd(t, "tags", "t1", "colors", &v));
    TXN(v = crdt_value_str("red", 3);
        crdt_txn_srem(t, "tags", "t1", "colors", &v));
    TXN(crdt_txn_del_field(t, "stats", "s", "hits"));
    TXN(crdt_txn_del_doc(t, "people", "p1"));
    TXN(v = crdt_value_str("caf\xc3\xa9 \xe2\x82\xac", 8);
        crdt_txn_put(t, "n\xc3\xa4me", "d", "f", &v);
        crdt_txn_incr(t, "n\xc3\xa4me", "d", "c", -1);
        v = crdt_value_double(1e300); crdt_txn_sadd(t, "x", "y", "z", &v);
        crdt_txn_del_doc(t, "x", "y"));
    /* format 2: a typing run (one TINS), backspaces (one TDEL), names
     * and own ids by reference */
    TXN(for (int k = 0; k < 12; k++)
            crdt_txn_text_insert(t, "notes", "n1", "body", (uint64_t)k,
                                 &"ab"[k & 1], 1);
        for (int k = 0; k < 4; k++)
            crdt_txn_text_delete(t, "notes", "n1", "body",
                                 (uint64_t)(11 - k), 1);
        crdt_txn_text_insert(t, "notes", "n1", "body", 3, "\xc3\xa9", 2));
    /* copies (op kind 11): with the original's stamp and without */
    {
        static const unsigned char tag[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
        crdt_actor orig;

        memset(orig.b, 0x42, sizeof orig.b);
        TXN(crdt_txn_copy_of(t, &orig, 3, tag, 0x1234567890);
            v = crdt_value_int(3); crdt_txn_put(t, "c", "d", "v", &v);
            crdt_txn_copy_of(t, &orig, 4, tag, 0x1234567891);
            crdt_txn_del_field(t, "c", "d", "v");
            crdt_txn_copy_of(t, &orig, 5, tag, 0);
            crdt_txn_incr(t, "c", "d", "n", 2);
            crdt_txn_copy_of(t, NULL, 0, NULL, 0);
            crdt_txn_del_doc(t, "c", "d"));
    }
#undef TXN

    if (crdt_export_begin(&e, r, NULL) != CRDT_OK)
        exit(1);
    while (crdt_export_next(e, &p, &len) == CRDT_OK) {
        unsigned char *u = malloc(len);
        size_t ul;

        snprintf(name, sizeof name, "valid_%02zu", ++i);
        fuzz_put_seed(out, name, p, len);
        /* as sent when its successor goes with it */
        if (u == NULL)
            exit(1);
        memcpy(u, p, len);
        if ((ul = crdt_change_strip_sig(u, len)) > 0) {
            snprintf(name, sizeof name, "unsigned_%02zu", i);
            fuzz_put_seed(out, name, u, ul);
        }
        free(u);
        free(last);
        last = malloc(len);
        memcpy(last, p, len);
        last_len = len;
    }
    crdt_export_end(e);
    crdt_replica_close(r);
    fuzz_dir_remove(tmpl);
    if (last == NULL)
        exit(1);
    fuzz_put_seed(out, "truncated_half", last, last_len / 2);
    fuzz_put_seed(out, "truncated_minus1", last, last_len - 1);
    last[last_len - 1] ^= 1; /* a flipped signature bit: EAUTH */
    fuzz_put_seed(out, "bad_signature", last, last_len);
    /* bombs as the whole input and inside the change's outer array */
    put_bombs(out, "", 0);
    put_bombs(out, "ops_", 1);
    free(last);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_init_signing();
    return fuzz_seeds_if_asked(write_seeds);
}
