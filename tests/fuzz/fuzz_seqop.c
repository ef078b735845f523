/*
 * fuzz_seqop.c: the bytes of one op -> crdt__op_decode, aimed at the
 * sequence ops (TINS TDEL LINS LDEL LSET, docs/storage.md), then the id
 * ranges of a delete through crdt_op_ranges_next.
 *
 * Input: one encoded op (a msgpack array), as it sits in a change.
 * Checked: no crash or sanitizer report; only CRDT_OK or CRDT_EPROTO;
 * every view (names, text, ranges) lies inside the input; a text is
 * valid UTF-8 without NUL and its code points are counted into len; a
 * range walk yields at most the count
 * the array declares, each range non-empty; a decoded op re-encodes
 * (crdt__op_encode) to bytes that decode to the same op and re-encode
 * to the same bytes (decode -> encode -> decode).
 * Then the same bytes as an op of a format-2 change (crdt__op_decode_in,
 * after an op that named "c"/"d"/"f", our actor 07 x 8): a nil name is
 * the one before, a bare-uint id is ours; the decoded op re-encodes in
 * the same context and decodes to the same op, and its standalone form
 * spells everything out.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "internal.h"
#include "support/op_context.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
inside(const void *p, size_t n, const uint8_t *lo, size_t size)
{
    const uint8_t *b = p;

    if (n == 0)
        return;
    if (b < lo || b + n > lo + size)
        abort();
}

static int
same_id(const crdt_seq_id *a, const crdt_seq_id *b)
{
    return a->ctr == b->ctr &&
           memcmp(a->actor.b, b->actor.b, sizeof a->actor.b) == 0;
}

/* The input as an op of a format-2 change. */
static void
in_change(const uint8_t *data, size_t size)
{
    crdt__mp m = { data, data + size };
    crdt_op_iter ctx;
    crdt_op op, op2, op3;
    crdt__enc e, s;
    int rc;

    tu_format2_context(&ctx);
    rc = crdt__op_decode_in(&op, &m, &ctx);
    if (rc != CRDT_OK && rc != CRDT_EPROTO)
        abort();
    if (rc != CRDT_OK)
        return;
    crdt__enc_init(&e);
    crdt__enc_init(&s);
    tu_format2_context(&ctx);
    if (crdt__op_encode_in(&e, &op, &ctx) == CRDT_OK &&
        crdt__enc_ok(&e) == CRDT_OK) {
        crdt__mp m2 = { (unsigned char *)e.sb.data,
                        (unsigned char *)e.sb.data + e.sb.size };
        tu_format2_context(&ctx);
        if (crdt__op_decode_in(&op2, &m2, &ctx) != CRDT_OK ||
            m2.p != m2.end || op2.kind != op.kind || op2.pos != op.pos ||
            op2.len != op.len || op2.ctr != op.ctr ||
            !same_id(&op2.left, &op.left) || !same_id(&op2.right, &op.right) ||
            !same_id(&op2.target, &op.target) ||
            op2.coll_len != op.coll_len ||
            memcmp(op2.coll, op.coll, op.coll_len) != 0)
            abort();
    }
    /* the standalone form needs no context */
    if (crdt__op_encode(&s, &op) == CRDT_OK && crdt__enc_ok(&s) == CRDT_OK) {
        crdt__mp m3 = { (unsigned char *)s.sb.data,
                        (unsigned char *)s.sb.data + s.sb.size };
        if (crdt__op_decode(&op3, &m3) != CRDT_OK || m3.p != m3.end ||
            !same_id(&op3.left, &op.left) || !same_id(&op3.right, &op.right))
            abort();
    }
    crdt__enc_free(&e);
    crdt__enc_free(&s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crdt__mp m = { data, data + size };
    crdt_op op;
    crdt__enc e;
    int rc;

    if (size > 1 << 20)
        return 0;
    in_change(data, size);
    rc = crdt__op_decode(&op, &m);
    if (rc != CRDT_OK && rc != CRDT_EPROTO)
        abort();
    if (rc != CRDT_OK || op.kind < CRDT_OP_TINS)
        return 0;
    inside(op.coll, op.coll_len, data, size);
    inside(op.doc, op.doc_len, data, size);
    inside(op.field, op.field_len, data, size);
    if (op.kind == CRDT_OP_TINS) {
        uint64_t cps = 0;
        inside(op.text, op.text_len, data, size);
        if (!crdt__utf8_valid(op.text, op.text_len) ||
            memchr(op.text, 0, op.text_len) != NULL)
            abort();
        for (size_t i = 0; i < op.text_len; i++)
            cps += ((unsigned char)op.text[i] & 0xc0) != 0x80;
        if (cps != op.len || cps == 0)
            abort();
    }
    if (op.kind == CRDT_OP_TDEL || op.kind == CRDT_OP_LDEL) {
        crdt_op_ranges it;
        crdt_seq_range r;
        uint64_t n = 0;

        inside(op.ranges, op.ranges_len, data, size);
        crdt_op_ranges_init(&it, &op);
        while ((rc = crdt_op_ranges_next(&r, &it)) == CRDT_OK) {
            if (r.len == 0 || r.ctr == 0 || ++n > 1000000)
                abort();
        }
        if (rc != CRDT_ENOTFOUND)
            abort(); /* the decoder checked every range */
    }
    crdt__enc_init(&e);
    if (crdt__op_encode(&e, &op) == CRDT_OK && crdt__enc_ok(&e) == CRDT_OK) {
        crdt__mp m2 = { (unsigned char *)e.sb.data,
                        (unsigned char *)e.sb.data + e.sb.size };
        crdt_op op2;
        crdt__enc e2;

        if (crdt__op_decode(&op2, &m2) != CRDT_OK || m2.p != m2.end ||
            op2.kind != op.kind || op2.pos != op.pos || op2.len != op.len ||
            op2.ctr != op.ctr || op2.left.ctr != op.left.ctr ||
            op2.right.ctr != op.right.ctr || op2.target.ctr != op.target.ctr)
            abort();
        crdt__enc_init(&e2);
        if (crdt__op_encode(&e2, &op2) != CRDT_OK || e2.sb.size != e.sb.size ||
            memcmp(e2.sb.data, e.sb.data, e.sb.size) != 0)
            abort();
        crdt__enc_free(&e2);
    }
    crdt__enc_free(&e);
    return 0;
}
