/*
 * handshake_internal.h: the handshake's codec, the server's hello
 * matcher and the test hooks; shared by crdtnet's .c files, its tests and
 * fuzz targets, never installed (docs/protocol.md, "Handshake").
 */
#ifndef CRDTNET_HANDSHAKE_INTERNAL_H
#define CRDTNET_HANDSHAKE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "crdtnet/handshake.h"

/* Bytes of an X25519 key, a hello MAC, a secretstream header, a secret. */
#define CRDTNET__EPH_BYTES 32
#define CRDTNET__MAC_BYTES 32
#define CRDTNET__HDR_BYTES 24
#define CRDTNET__SIG_BYTES 64
#define CRDTNET__INVITE_SECRET_BYTES 32

/*
 * Handshake messages, decoded. One struct for all kinds keeps the codec
 * and the fuzz round trip small; which fields mean something depends on
 * kind. HELLO, REPLY and ERROR are frame payloads; SAUTH and CAUTH are
 * the plaintexts sealed in REPLY's box and in the client's auth frame.
 */
enum {
    CRDTNET__MSG_HELLO = 1, /* [ "strata", version, eph, mac ] */
    CRDTNET__MSG_REPLY,     /* [ eph, box ] */
    CRDTNET__MSG_SAUTH,     /* [ pk, sig, header ] */
    CRDTNET__MSG_CAUTH,     /* [ pk, sig, header ] or [ ..., invite ] */
    CRDTNET__MSG_ERROR      /* [ "strata-error", code, reason ] */
};

#define CRDTNET__REASON_WIRE_MAX 255 /* bytes of reason we send or read */

typedef struct {
    int kind;
    uint64_t version;
    unsigned char eph[CRDTNET__EPH_BYTES];
    unsigned char mac[CRDTNET__MAC_BYTES];
    const unsigned char *box; /* REPLY: a view into the decoded bytes */
    size_t box_len;
    unsigned char pk[CRDTNET_PK_BYTES];
    unsigned char sig[CRDTNET__SIG_BYTES];
    unsigned char hdr[CRDTNET__HDR_BYTES];
    int has_invite;
    unsigned char invite[CRDTNET__INVITE_SECRET_BYTES];
    int64_t code;
    size_t reason_len;
    char reason[CRDTNET__REASON_WIRE_MAX + 1]; /* NUL added */
} crdtnet__hs_msg;

/*
 * Decode @p p as one of the kinds set in the bit mask @p accept
 * (1 << CRDTNET__MSG_*), with libcrdt's bounded reader: never allocates,
 * never trusts a count beyond the bytes present, nothing may follow the
 * array. CRDT_EVERSION when a hello has another version (the rest is not
 * parsed: its layout may differ); CRDT_EPROTO otherwise.
 */
int crdtnet__hs_decode(crdtnet__hs_msg *out, unsigned accept,
                       const unsigned char *p, size_t n);

/* Encode @p m canonically into @p buf (CRDTNET_HS_MSG_MAX is plenty). */
int crdtnet__hs_encode(unsigned char *buf, size_t cap, size_t *len_out,
                       const crdtnet__hs_msg *m);

/*
 * TESTS AND FUZZING ONLY. Reusing an ephemeral key across connections
 * destroys forward secrecy; the transcript overrides exist to show that
 * a peer hashing another version or space cannot complete.
 */
typedef struct {
    const unsigned char *ephemeral_sk; /* 32 bytes, or NULL: random */
    unsigned transcript_version;       /* 0: CRDTNET_PROTO_VERSION */
    const unsigned char *transcript_space; /* NULL: the real space id */
} crdtnet__hs_test;

/* crdtnet_hs_new() with the hooks in @p t (NULL: none). */
int crdtnet__hs_new_test(crdtnet_hs **out, const crdtnet_hs_config *cfg,
                         const crdtnet__hs_test *t);

/* X25519 operations this handshake has done (key pairs and exchanges). */
unsigned crdtnet__hs_x25519_count(const crdtnet_hs *hs);

#endif
