/**
 * @file crdtnet/channel.h
 * The encrypted channel that follows a successful handshake, sans-I/O:
 * seal plaintext into frame payloads, open frame payloads into plaintext.
 * Each direction is one XChaCha20-Poly1305 secretstream keyed by the
 * handshake (docs/protocol.md, "Encrypted channel").
 *
 * What this layer promises the one above: a message opened successfully
 * was sealed by the authenticated peer, unchanged, exactly once, in the
 * order it was sent, and no earlier message is missing. Any frame that
 * is tampered with, replayed, reordered, dropped before a later one or
 * truncated fails with CRDT_EAUTH and the channel is dead.
 *
 * A channel is created only by crdtnet_hs_take_channel().
 */
#ifndef CRDTNET_CHANNEL_H
#define CRDTNET_CHANNEL_H

#include <stddef.h>

#include "crdt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes a sealed payload adds to its plaintext (tag and MAC). */
#define CRDTNET_CHANNEL_ABYTES 17
/**
 * Both sides rekey a direction after every this many messages sent in
 * it (counting from the first message after the handshake).
 */
#define CRDTNET_CHANNEL_REKEY_INTERVAL ((unsigned long)1 << 20)

/** One connection's encrypted channel, both directions. Opaque. */
typedef struct crdtnet_channel crdtnet_channel;

/**
 * Encrypt @p len bytes as the next message to the peer.
 * @param plain         may be NULL when @p len is 0
 * @param[out] payload_out  the frame payload to send; owned by @p ch,
 *                      valid until the next seal on @p ch or
 *                      crdtnet_channel_free(); do not free
 * @param[out] len_out  @p len + CRDTNET_CHANNEL_ABYTES
 * @return CRDT_OK; CRDT_ELIMIT (@p len above crdtnet_channel_max_plain());
 *         CRDT_ECLOSED (we already sent the final message); CRDT_EAUTH or
 *         CRDT_EPROTO (the channel died on a bad incoming frame);
 *         CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_channel_seal(crdtnet_channel *ch, const void *plain, size_t len,
                         const unsigned char **payload_out, size_t *len_out);

/**
 * Like crdtnet_channel_seal(), but marks the message as the last one we
 * send: the peer sees crdtnet_channel_peer_closed() become true. The
 * plaintext may be empty, or say why (for instance an error message as
 * in crdtnet_hs_parse_error()). Allowed on a channel that died on a bad
 * incoming frame, so you can tell the peer before closing.
 * @return as crdtnet_channel_seal(); later seals return CRDT_ECLOSED.
 */
CRDTNET_API int crdtnet_channel_seal_final(crdtnet_channel *ch, const void *plain,
                               size_t len, const unsigned char **payload_out,
                               size_t *len_out);

/**
 * Decrypt and authenticate the next frame payload from the peer.
 * @param[out] plain_out  borrowed view into @p ch; valid until the next
 *                        open on @p ch or crdtnet_channel_free(); do not
 *                        free. Never NULL on success, even when empty.
 * @param[out] len_out    plaintext length
 * @return CRDT_OK (if it was the peer's final message,
 *         crdtnet_channel_peer_closed() is now true); CRDT_EAUTH (forged,
 *         tampered, replayed, reordered or truncated; the channel is now
 *         dead); CRDT_EPROTO (authentic but with a tag this protocol never
 *         sends; dead); CRDT_ECLOSED (the peer already sent its final
 *         message); CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_channel_open(crdtnet_channel *ch, const void *payload, size_t len,
                         const unsigned char **plain_out, size_t *len_out);

/** Nonzero once the peer's final message was opened. */
CRDTNET_API int crdtnet_channel_peer_closed(const crdtnet_channel *ch);

/** Largest plaintext one message may carry: frame max - ABYTES. */
CRDTNET_API size_t crdtnet_channel_max_plain(const crdtnet_channel *ch);

/**
 * Release @p ch, wiping keys, stream states and plaintext buffers with
 * sodium_memzero(). Passing NULL does nothing.
 */
CRDTNET_API void crdtnet_channel_free(crdtnet_channel *ch);

#ifdef __cplusplus
}
#endif

#endif
