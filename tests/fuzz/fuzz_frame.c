/*
 * fuzz_frame.c: raw bytes -> framer -> handshake message decoder
 * (docs/testing.md, "Fuzzing").
 *
 * Input: byte 0 seeds the chunking, so frames arrive split at arbitrary
 * boundaries; byte 1 picks the framer maximum; the rest is the stream.
 * Checked: frames are 1..max bytes; a framer error is sticky; every
 * decoded message re-encodes canonically and decodes to the same thing
 * (decode -> encode -> decode, as msgpack-c's own fuzzer does).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"
#include "net_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same(const crdtnet__hs_msg *x, const crdtnet__hs_msg *y)
{
    return x->kind == y->kind && x->version == y->version &&
           memcmp(x->eph, y->eph, sizeof x->eph) == 0 &&
           memcmp(x->mac, y->mac, sizeof x->mac) == 0 &&
           x->box_len == y->box_len &&
           (x->box_len == 0 || memcmp(x->box, y->box, x->box_len) == 0) &&
           memcmp(x->pk, y->pk, sizeof x->pk) == 0 &&
           memcmp(x->sig, y->sig, sizeof x->sig) == 0 &&
           memcmp(x->hdr, y->hdr, sizeof x->hdr) == 0 &&
           x->has_invite == y->has_invite &&
           memcmp(x->invite, y->invite, sizeof x->invite) == 0 &&
           x->code == y->code && x->reason_len == y->reason_len &&
           memcmp(x->reason, y->reason, x->reason_len) == 0;
}

static void
round_trip(const unsigned char *p, size_t n)
{
    static const unsigned accepts[] = {
        1u << CRDTNET__MSG_HELLO,
        (1u << CRDTNET__MSG_REPLY) | (1u << CRDTNET__MSG_ERROR),
        1u << CRDTNET__MSG_SAUTH,
        1u << CRDTNET__MSG_CAUTH,
        1u << CRDTNET__MSG_ERROR,
    };
    unsigned char e1[CRDTNET_HS_MSG_MAX + 16], e2[CRDTNET_HS_MSG_MAX + 16];
    char reason[CRDTNET_REASON_MAX];
    crdtnet__hs_msg m1, m2;
    size_t i, l1, l2;
    int code;

    for (i = 0; i < sizeof accepts / sizeof accepts[0]; i++) {
        if (crdtnet__hs_decode(&m1, accepts[i], p, n) != CRDT_OK)
            continue;
        if (crdtnet__hs_encode(e1, sizeof e1, &l1, &m1) != CRDT_OK ||
            crdtnet__hs_decode(&m2, accepts[i], e1, l1) != CRDT_OK ||
            !same(&m1, &m2) ||
            crdtnet__hs_encode(e2, sizeof e2, &l2, &m2) != CRDT_OK ||
            l1 != l2 || memcmp(e1, e2, l1) != 0 || l1 > n)
            abort(); /* canonical form is never longer than the input */
    }
    if (crdtnet_hs_parse_error(p, n, &code, reason, sizeof reason) ==
        CRDT_OK) {
        for (i = 0; reason[i] != '\0'; i++)
            if (reason[i] < 0x20 || reason[i] > 0x7e)
                abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[4] = {CRDTNET_FRAME_MAX_MIN, CRDTNET_HS_MSG_MAX,
                                    70000, CRDTNET_FRAME_MAX_DEFAULT};
    crdtnet_framer *f;
    const unsigned char *p;
    uint64_t st;
    size_t max, off = 2, chunk, used, n;
    int rc = CRDT_OK, dead = 0;

    if (size < 2)
        return 0;
    st = data[0] * 0x9e3779b97f4a7c15ULL + 1;
    max = maxes[data[1] & 3];
    if (crdtnet_framer_new(&f, max) != CRDT_OK)
        abort();
    while (off < size && !dead) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        chunk = 1 + (size_t)(st >> 33) % ((st >> 20) & 1 ? 7 : 300);
        if (chunk > size - off)
            chunk = size - off;
        rc = crdtnet_framer_feed(f, data + off, chunk, &used);
        if (rc < 0) {
            dead = 1;
            break;
        }
        if (used > chunk)
            abort();
        off += used;
        while ((rc = crdtnet_framer_next(f, &p, &n)) == CRDT_OK) {
            if (n == 0 || n > max)
                abort();
            round_trip(p, n);
        }
        if (rc != CRDT_EAGAIN) {
            dead = 1;
            break;
        }
    }
    if (dead) { /* frame.c invariant (3): sticky */
        if ((rc != CRDT_ELIMIT && rc != CRDT_EPROTO) ||
            crdtnet_framer_next(f, &p, &n) != rc ||
            crdtnet_framer_feed(f, data, size, &used) != rc)
            abort();
    }
    crdtnet_framer_free(f);
    return 0;
}
