/**
 * @file crdtnet/handshake.h
 * The authenticated key exchange that opens every connection, sans-I/O:
 * feed it frame payloads from the peer, send the frame payloads it
 * produces, and when it is done take the encrypted channel.
 *
 * What this layer promises the one above: when crdtnet_hs_done() is true
 * the peer proved it holds the Ed25519 secret key of
 * crdtnet_hs_peer_key(), your is_member callback (or, on a server, the
 * invite_ok callback) accepted that key for crdtnet_hs_space(), both
 * sides hold fresh session keys, and neither identity crossed the wire
 * in plaintext. The server proves its key first; the client sends its
 * own (encrypted) only to a server it accepted. A server answers a first
 * message only when it carries a MAC made with the space id it serves,
 * and does no X25519 before that MAC verifies. The bytes are specified in
 * docs/protocol.md ("Handshake").
 *
 * Typical client loop (the server's is the same without the first send,
 * and it first matches the hello with crdtnet_hs_hello_is_for()):
 * @code
 *   crdtnet_hs_new(&hs, &cfg);
 *   for (;;) {
 *       while (crdtnet_hs_next_out(hs, &p, &n) == CRDT_OK)
 *           send_frame(p, n);
 *       if (crdtnet_hs_done(hs) || crdtnet_hs_failed(hs))
 *           break;
 *       read_frame(&p, &n);
 *       crdtnet_hs_feed(hs, p, n);
 *   }
 *   if (crdtnet_hs_done(hs))
 *       crdtnet_hs_take_channel(&ch, hs);
 *   else
 *       log("%s", crdtnet_hs_reason(hs));
 *   crdtnet_hs_free(hs);
 * @endcode
 */
#ifndef CRDTNET_HANDSHAKE_H
#define CRDTNET_HANDSHAKE_H

#include <stddef.h>

#include "crdt/error.h"
#include "crdtnet/channel.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The protocol version this library speaks. */
#define CRDTNET_PROTO_VERSION 2
/** Bytes in a space id. */
#define CRDTNET_SPACE_ID_BYTES 16
/** Bytes in an Ed25519 public key. */
#define CRDTNET_PK_BYTES 32
/** Bytes in an Ed25519 secret key (libsodium layout: seed || pk). */
#define CRDTNET_SK_BYTES 64
/** Bytes in an invitation's one-time secret. */
#define CRDTNET_INVITE_SECRET_BYTES 32
/**
 * Largest handshake frame payload accepted. Set your framer's maximum to
 * this until the handshake is done, so an unauthenticated peer can make
 * you buffer at most this much.
 */
#define CRDTNET_HS_MSG_MAX ((size_t)4096)

/** Which end of the connection this state machine plays. */
typedef enum {
    CRDTNET_HS_CLIENT = 1, /**< the side that connected; speaks first */
    CRDTNET_HS_SERVER = 2  /**< the side that accepted */
} crdtnet_hs_role;

/** Handshake state for one connection. Opaque. */
typedef struct crdtnet_hs crdtnet_hs;

/**
 * Decides whether a key may join a space. Return nonzero to accept.
 * Called from inside crdtnet_hs_feed(); it must not call back into the
 * same handshake.
 */
typedef int (*crdtnet_hs_member_cb)(const unsigned char pk[CRDTNET_PK_BYTES],
                                    void *ctx);
/**
 * Server only: return nonzero if this server serves @p space_id. Called
 * from inside crdtnet_hs_feed(); it must not call back into the same
 * handshake.
 */
typedef int (*crdtnet_hs_space_cb)(
    const unsigned char space_id[CRDTNET_SPACE_ID_BYTES], void *ctx);

/**
 * Server only, optional: the client presents an invitation. Return
 * nonzero to accept @p pk (having made it a member); otherwise write a
 * short reason for the client into @p why (@p why_size bytes, NUL
 * terminated), for instance "invitation already used". Called after the
 * client proved @p pk; it must not call back into the same handshake.
 */
typedef int (*crdtnet_hs_invite_cb)(
    const unsigned char pk[CRDTNET_PK_BYTES],
    const unsigned char secret[CRDTNET_INVITE_SECRET_BYTES], char *why,
    size_t why_size, void *ctx);

/**
 * Signs @p len bytes at @p msg with the identity whose public key is
 * crdtnet_hs_config.pk, writing 64 bytes to @p sig; 0 on success. With
 * a replica: crdt_replica_sign(), so the secret key stays in libcrdt.
 */
typedef int (*crdtnet_hs_sign_cb)(unsigned char sig[64], const void *msg,
                                  size_t len, void *ctx);

/** Handshake settings; start from CRDTNET_HS_CONFIG_INIT. */
typedef struct {
    unsigned int version; /**< first field, so the struct can grow */
    crdtnet_hs_role role;
    /**
     * Client: the space to join (16 bytes, copied). Server: the space the
     * client's hello was matched to with crdtnet_hs_hello_is_for(), or
     * NULL when it matched none (the handshake then fails silently, as
     * for any stranger).
     */
    const unsigned char *space_id;
    /** Our Ed25519 public key (32 bytes, copied). */
    const unsigned char *pk;
    /**
     * Our Ed25519 secret key (64 bytes, libsodium layout, copied; the
     * copy is wiped with sodium_memzero() by crdtnet_hs_free() or
     * crdtnet_hs_take_channel()). You may wipe yours once
     * crdtnet_hs_new() returns. Give either this or @c sign, not both.
     */
    const unsigned char *sk;
    /** Required: is the peer's key a member of the space? */
    crdtnet_hs_member_cb is_member;
    /**
     * Server: required; called with the matched space once the hello's
     * MAC verified; return nonzero if it is served here. Client: ignored.
     */
    crdtnet_hs_space_cb space_ok;
    /** Passed last to every callback. */
    void *ctx;
    /** The session's frame maximum, for the channel; 0 for the default. */
    size_t frame_max;
    /**
     * Client, optional: the one-time secret of an invitation (32 bytes,
     * copied, wiped like @c sk), sent encrypted to the server after it
     * proved its key. NULL for none.
     */
    const unsigned char *invite;
    /** Server, optional: judges an invitation; NULL refuses them all. */
    crdtnet_hs_invite_cb invite_ok;
    /**
     * Signs with our identity instead of @c sk, so the secret key never
     * leaves its owner (crdt_replica_sign() for a replica); called once,
     * with @c sign_ctx, when we prove our key. NULL when @c sk is given.
     */
    crdtnet_hs_sign_cb sign;
    /** Passed last to @c sign. */
    void *sign_ctx;
} crdtnet_hs_config;

/** Version 2 of crdtnet_hs_config, every other field empty. */
#define CRDTNET_HS_CONFIG_INIT                                              \
    { 2, (crdtnet_hs_role)0, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL,   \
      NULL, NULL, NULL }

/**
 * Server: whether the first frame @p p of a connection is a hello of
 * this protocol version for @p space_id (its MAC verifies under a key
 * derived from the space id). Costs one keyed BLAKE2b and no X25519, so
 * a server serving several spaces may try each before choosing the
 * identity to answer with; pass the match as crdtnet_hs_config.space_id.
 * @return 1 or 0 (also for NULL arguments or anything that is not such
 *         a hello).
 */
CRDTNET_API int crdtnet_hs_hello_is_for(
    const void *p, size_t n,
    const unsigned char space_id[CRDTNET_SPACE_ID_BYTES]);

/**
 * Start a handshake. A client queues its hello at once: drain it with
 * crdtnet_hs_next_out(). Initialises libsodium (sodium_init()). A server
 * makes its ephemeral key only once a hello's MAC verified.
 * @param[out] out  the handshake; release it with crdtnet_hs_free()
 * @param cfg       settings; the pointed-to bytes are copied, @p cfg need
 *                  not outlive this call
 * @return CRDT_OK; CRDT_EINVAL (missing field, unknown role, both or
 *         neither of @c sk and @c sign, @c sk does not match @c pk, bad
 *         frame_max); CRDT_ENOMEM; CRDT_ERROR
 *         (libsodium failed to initialise). On error no callback is ever
 *         called.
 */
CRDTNET_API int crdtnet_hs_new(crdtnet_hs **out, const crdtnet_hs_config *cfg);

/**
 * Feed one frame payload received from the peer. May queue frames to
 * send and may call the callbacks.
 * @param payload  one whole frame payload; not kept after the call
 * @return CRDT_OK (progress made; check crdtnet_hs_next_out() and
 *         crdtnet_hs_done()); CRDT_EPROTO (malformed, wrong types,
 *         trailing bytes, more than CRDTNET_HS_MSG_MAX bytes);
 *         CRDT_EVERSION (unsupported protocol version); CRDT_EAUTH
 *         (a hello not for the server's space, invalid ephemeral key,
 *         decryption failure, bad signature, not a member, a refused
 *         invitation, or the peer refused us);
 *         CRDT_EINVAL (called after the handshake is done). After a
 *         failure every call returns the same code; see
 *         crdtnet_hs_reason().
 */
CRDTNET_API int crdtnet_hs_feed(crdtnet_hs *hs, const void *payload, size_t len);

/**
 * Take the next frame payload to send to the peer. After a failure this
 * may still yield frames queued before it, then the one error frame
 * telling the peer why (if any), then the failure code.
 * @param[out] payload_out  borrowed view into @p hs; valid until the next
 *                          call on @p hs; do not free
 * @param[out] len_out      its length, 1 to CRDTNET_HS_MSG_MAX
 * @return CRDT_OK; CRDT_EAGAIN (nothing to send now); the failure code
 *         once the handshake has failed and everything is sent.
 */
CRDTNET_API int crdtnet_hs_next_out(crdtnet_hs *hs, const unsigned char **payload_out,
                        size_t *len_out);

/** Nonzero once both sides are authenticated and keys are ready. */
CRDTNET_API int crdtnet_hs_done(const crdtnet_hs *hs);

/** 0 while the handshake is fine; its failure code (< 0) after. */
CRDTNET_API int crdtnet_hs_failed(const crdtnet_hs *hs);

/**
 * Why the handshake failed, for a clear error message: for instance
 * "not a member of this space", or "peer: invitation already used" when
 * the peer sent the reason. "" while it has not failed. Points into @p hs; valid
 * until crdtnet_hs_free(); do not free. Never NULL.
 */
CRDTNET_API const char *crdtnet_hs_reason(const crdtnet_hs *hs);

/**
 * The peer's authenticated Ed25519 public key.
 * @param[out] pk_out  caller provides CRDTNET_PK_BYTES bytes
 * @return CRDT_OK; CRDT_EAGAIN (not done yet); the failure code.
 */
CRDTNET_API int crdtnet_hs_peer_key(const crdtnet_hs *hs,
                        unsigned char pk_out[CRDTNET_PK_BYTES]);

/**
 * The space this connection is for: the client's own, or the one whose
 * MAC the server verified in the client's hello.
 * @param[out] space_out  caller provides CRDTNET_SPACE_ID_BYTES bytes
 * @return CRDT_OK; CRDT_EAGAIN (server before a hello was accepted).
 */
CRDTNET_API int crdtnet_hs_space(const crdtnet_hs *hs,
                     unsigned char space_out[CRDTNET_SPACE_ID_BYTES]);

/**
 * Hand the session's encrypted channel over, and wipe the keys left in
 * @p hs. Call once, when done and every frame from crdtnet_hs_next_out()
 * was sent (a client's last one carries its authentication; its channel
 * messages may follow at once).
 * @param[out] out  the channel; release it with crdtnet_channel_free()
 * @return CRDT_OK; CRDT_EAGAIN (not done, or frames still to send);
 *         CRDT_EINVAL (already taken); the failure code; CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_hs_take_channel(crdtnet_channel **out, crdtnet_hs *hs);

/** Release @p hs, wiping its secrets with sodium_memzero(). NULL is ok. */
CRDTNET_API void crdtnet_hs_free(crdtnet_hs *hs);

/** Bytes a reason from crdtnet_hs_parse_error() may fill, with its NUL. */
#define CRDTNET_REASON_MAX 256

/**
 * Parse an error message [ "strata-error", code, reason ]. A client meets
 * one as the plaintext of the first, final channel message when the
 * server refused it (not a member, a refused invitation) after the
 * client finished its side of the handshake.
 * @param[out] code_out    the peer's code (a crdt_err value)
 * @param[out] reason_out  caller provides @p reason_size bytes (at least
 *                         1); gets the NUL-terminated reason, cut to fit,
 *                         with bytes outside printable ASCII replaced by
 *                         '?'
 * @return CRDT_OK; CRDT_EPROTO (not an error message); CRDT_EINVAL.
 */
CRDTNET_API int crdtnet_hs_parse_error(const void *msg, size_t len, int *code_out,
                           char *reason_out, size_t reason_size);

#ifdef __cplusplus
}
#endif

#endif
