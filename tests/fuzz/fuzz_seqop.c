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
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "internal.h"

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crdt__mp m = { data, data + size };
    crdt_op op;
    crdt__enc e;
    int rc;

    if (size > 1 << 20)
        return 0;
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
