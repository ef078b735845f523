/*
 * net_internal.h: shared between crdtnet's .c files and its tests and
 * fuzz targets; never installed. Names use the crdtnet__ prefix.
 */
#ifndef CRDTNET_NET_INTERNAL_H
#define CRDTNET_NET_INTERNAL_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "crdtnet/channel.h"
#include "crdtnet/frame.h"
#include "crdtnet/handshake.h"

/* A growable array's storage with room for one more of @p elem bytes:
 * @p v reallocated to twice *@p cap (16 at first), *@p cap updated.
 * @return the new storage, or NULL (out of memory, @p v left as it was). */
static inline void *
crdtnet__grow(void *v, size_t *cap, size_t elem)
{
    size_t n = *cap ? 2 * *cap : 16;
    void *nv;

    if (n > SIZE_MAX / elem)
        return NULL;
    if ((nv = realloc(v, n * elem)) != NULL)
        *cap = n;
    return nv;
}

/* Tests only: bytes the framer holds allocated for payloads. */
size_t crdtnet__framer_capacity(const crdtnet_framer *f);

/* Idle: free the payload buffer if no frame is partly received (the
 * next frame allocates again). */
void crdtnet__framer_trim(crdtnet_framer *f);

typedef crypto_secretstream_xchacha20poly1305_state crdtnet__stream;

/*
 * Build a channel from the handshake's two stream states (copied; the
 * caller wipes its own). @p frame_max bounds payloads.
 */
int crdtnet__channel_new(crdtnet_channel **out, const crdtnet__stream *push,
                         const crdtnet__stream *pull, size_t frame_max);

/* Idle: free the buffers of the last sealed and opened messages (the
 * plaintext wiped first); views handed out before are invalid. */
void crdtnet__channel_trim(crdtnet_channel *ch);

/* Idle, between next_out() calls: free the message encoder's buffer
 * (msgpack's 8 KiB at least; the next message allocates it again). */
struct crdtnet_session;
void crdtnet__session_trim(struct crdtnet_session *s);

/* The transport has sent everything and waits for the peer: a session
 * that offered protocol 4 and waits for the peer's first message reads
 * and hashes its heads for HELLO now, so that both sides build their
 * HELLOs at once instead of one after the other. */
void crdtnet__session_idle(struct crdtnet_session *s);

/* Tests only: rekey every @p n messages (both sides must agree). */
void crdtnet__channel_set_rekey_interval(crdtnet_channel *ch, uint64_t n);

/* Tests only: pretend @p sent and @p received messages went by. */
void crdtnet__channel_set_counters(crdtnet_channel *ch, uint64_t sent,
                                   uint64_t received);

/* The handshake's codec and test hooks. */
#include "handshake_internal.h"
/* Invitations, as the drivers use them. */
#include "invite_internal.h"

#endif
