/*
 * net_internal.h: shared between crdtnet's .c files and its tests and
 * fuzz targets; never installed. Names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_NET_INTERNAL_H
#define CRDTNET_NET_INTERNAL_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>

#include "crdtnet/channel.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"

/* Tests only: bytes the framer holds allocated for payloads. */
size_t crdtnet__framer_capacity(const crdtnet_framer *f);

typedef crypto_secretstream_xchacha20poly1305_state crdtnet__stream;

/*
 * Build a channel from the handshake's two stream states (copied; the
 * caller wipes its own). @p frame_max bounds payloads.
 */
int crdtnet__channel_new(crdtnet_channel **out, const crdtnet__stream *push,
                         const crdtnet__stream *pull, size_t frame_max);

/* Tests only: rekey every @p n messages (both sides must agree). */
void crdtnet__channel_set_rekey_interval(crdtnet_channel *ch, uint64_t n);

/* Tests only: pretend @p sent and @p received messages went by. */
void crdtnet__channel_set_counters(crdtnet_channel *ch, uint64_t sent,
                                   uint64_t received);

/*
 * Handshake messages, decoded. One struct for all kinds keeps the codec
 * and the fuzz round trip small; which fields mean something depends on
 * kind.
 */
enum {
    CRDTNET__MSG_HELLO = 1, /* [ "strata", version, space, eph ] */
    CRDTNET__MSG_ACK,       /* [ "strata", version, eph ] */
    CRDTNET__MSG_AUTH,      /* [ pk, sig ] */
    CRDTNET__MSG_ERROR      /* [ "strata-error", code, reason ] */
};

#define CRDTNET__REASON_WIRE_MAX 255 /* bytes of reason we send or read */

typedef struct {
    int kind;
    uint64_t version;
    unsigned char space[CRDTNET_SPACE_ID_BYTES];
    unsigned char eph[32];
    unsigned char pk[CRDTNET_PK_BYTES];
    unsigned char sig[64];
    int64_t code;
    size_t reason_len;
    char reason[CRDTNET__REASON_WIRE_MAX + 1]; /* raw bytes, NUL added */
} crdtnet__hs_msg;

/*
 * Decode @p p as one of the kinds set in the bit mask @p accept
 * (1 << CRDTNET__MSG_*). Bounded: never allocates, never trusts a count
 * beyond the bytes present. CRDT_EVERSION when a "strata" message has
 * another version (the rest is not parsed: its layout may differ).
 */
int crdtnet__hs_decode(crdtnet__hs_msg *out, unsigned accept,
                       const unsigned char *p, size_t n);

/* Encode @p m canonically into @p buf (CRDTNET_HS_MSG_MAX is plenty). */
int crdtnet__hs_encode(unsigned char *buf, size_t cap, size_t *len_out,
                       const crdtnet__hs_msg *m);

#endif
