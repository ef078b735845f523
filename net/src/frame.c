/*
 * frame.c: length-prefixed frame reassembly, sans-I/O.
 *
 *   HEADER --4 bytes, 1..max--> BODY --len bytes--> READY --next()--> HEADER
 *     |
 *     +--length 0 or > max--> DEAD (sticky error)
 *
 * Invariants:
 *  (1) The payload buffer is sized from bytes that have arrived, never
 *      from the announced length alone: a peer that claims 1 MiB and
 *      sends 10 bytes costs us about 256 bytes, not 1 MiB.
 *  (2) Buffered bytes never exceed max + 4: feed() stops at the end of a
 *      frame until next() hands it out.
 *  (3) Once DEAD, every call returns the same error.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "net_internal.h"

/* Above this a buffer left over from a big frame is dropped when a
 * frame a quarter of its size arrives, so one big frame does not pin
 * memory for the connection's lifetime. */
#define KEEP_CAP ((size_t)64 * 1024)
#define FIRST_CAP ((size_t)256)

struct crdtnet_framer {
    size_t max;
    unsigned char hdr[CRDTNET_FRAME_HEADER_BYTES];
    size_t hdr_have;
    size_t need; /* payload length announced by the current header */
    size_t have; /* payload bytes received so far */
    unsigned char *buf;
    size_t cap;
    int ready; /* buf holds a whole frame not yet handed out */
    int err;   /* sticky; keeps (3) */
};

static int
max_ok(size_t max)
{
    return max == 0 ||
           (max >= CRDTNET_FRAME_MAX_MIN && max <= CRDTNET_FRAME_MAX_HARD);
}

int
crdtnet_frame_header(unsigned char out[CRDTNET_FRAME_HEADER_BYTES],
                     size_t len)
{
    if (out == NULL || len == 0 || len > CRDTNET_FRAME_MAX_HARD)
        return CRDT_EINVAL;
    out[0] = (unsigned char)(len >> 24);
    out[1] = (unsigned char)(len >> 16);
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    return CRDT_OK;
}

int
crdtnet_framer_new(crdtnet_framer **out, size_t max)
{
    crdtnet_framer *f;

    if (out == NULL || !max_ok(max))
        return CRDT_EINVAL;
    f = calloc(1, sizeof *f);
    if (f == NULL)
        return CRDT_ENOMEM;
    f->max = max == 0 ? CRDTNET_FRAME_MAX_DEFAULT : max;
    *out = f;
    return CRDT_OK;
}

int
crdtnet_framer_set_max(crdtnet_framer *f, size_t max)
{
    if (f == NULL || !max_ok(max))
        return CRDT_EINVAL;
    f->max = max == 0 ? CRDTNET_FRAME_MAX_DEFAULT : max;
    return CRDT_OK;
}

/* Grow geometrically towards f->need, keeping (1). */
static int
reserve(crdtnet_framer *f, size_t want)
{
    size_t cap;
    unsigned char *p;

    if (want <= f->cap)
        return CRDT_OK;
    cap = f->cap == 0 ? FIRST_CAP : f->cap;
    while (cap < want)
        cap *= 2;
    if (cap > f->need)
        cap = f->need;
    p = realloc(f->buf, cap);
    if (p == NULL)
        return CRDT_ENOMEM;
    f->buf = p;
    f->cap = cap;
    return CRDT_OK;
}

/* The header is complete: check it before any allocation (docs/testing.md B2). */
static int
start_body(crdtnet_framer *f)
{
    uint32_t n = ((uint32_t)f->hdr[0] << 24) | ((uint32_t)f->hdr[1] << 16) |
                 ((uint32_t)f->hdr[2] << 8) | (uint32_t)f->hdr[3];

    if (n == 0)
        return CRDT_EPROTO;
    if (n > f->max)
        return CRDT_ELIMIT;
    f->need = n;
    f->have = 0;
    if (f->cap > KEEP_CAP && f->need <= f->cap / 4) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
    return CRDT_OK;
}

int
crdtnet_framer_feed(crdtnet_framer *f, const void *bytes, size_t len,
                    size_t *used_out)
{
    const unsigned char *in = bytes;
    size_t used = 0;
    size_t take;
    int rc;

    if (f == NULL || used_out == NULL || (bytes == NULL && len > 0))
        return CRDT_EINVAL;
    if (f->err != 0)
        return f->err;

    while (used < len && !f->ready) {
        if (f->hdr_have < CRDTNET_FRAME_HEADER_BYTES) {
            take = CRDTNET_FRAME_HEADER_BYTES - f->hdr_have;
            if (take > len - used)
                take = len - used;
            memcpy(f->hdr + f->hdr_have, in + used, take);
            f->hdr_have += take;
            used += take;
            if (f->hdr_have < CRDTNET_FRAME_HEADER_BYTES)
                break;
            rc = start_body(f);
            if (rc < 0) {
                f->err = rc;
                return rc;
            }
            continue;
        }
        take = f->need - f->have;
        if (take > len - used)
            take = len - used;
        rc = reserve(f, f->have + take);
        if (rc < 0) {
            f->err = rc;
            return rc;
        }
        memcpy(f->buf + f->have, in + used, take);
        f->have += take;
        used += take;
        if (f->have == f->need)
            f->ready = 1;
    }
    assert(f->have <= f->need); /* keeps (2): a frame never overfills */
    *used_out = used;
    return CRDT_OK;
}

int
crdtnet_framer_next(crdtnet_framer *f, const unsigned char **payload_out,
                    size_t *len_out)
{
    if (f == NULL || payload_out == NULL || len_out == NULL)
        return CRDT_EINVAL;
    if (f->err != 0)
        return f->err;
    if (!f->ready)
        return CRDT_EAGAIN;
    *payload_out = f->buf;
    *len_out = f->need;
    /* The view stays valid: nothing writes buf until the next feed. */
    f->ready = 0;
    f->hdr_have = 0;
    f->need = 0;
    f->have = 0;
    return CRDT_OK;
}

void
crdtnet__framer_trim(crdtnet_framer *f)
{
    /* between frames only: a partial frame keeps its bytes */
    if (f == NULL || f->ready || f->hdr_have != 0 || f->have != 0)
        return;
    free(f->buf); /* ciphertext or handshake frames: nothing secret */
    f->buf = NULL;
    f->cap = 0;
}

size_t
crdtnet__framer_capacity(const crdtnet_framer *f)
{
    return f->cap;
}

void
crdtnet_framer_free(crdtnet_framer *f)
{
    if (f == NULL)
        return;
    free(f->buf);
    free(f);
}
