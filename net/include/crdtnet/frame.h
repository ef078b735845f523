/**
 * @file crdtnet/frame.h
 * Length-prefixed frames: a 4-byte big-endian payload length, then the
 * payload. Sans-I/O: the framer reassembles frames from bytes you read;
 * it never touches a socket.
 *
 * What this layer promises the one above: every payload handed out is
 * complete, non-empty and no longer than the framer's maximum, and memory
 * held for a peer never exceeds that maximum plus the 4 header bytes, so
 * an oversized length is refused before anything is allocated for it.
 */
#ifndef CRDTNET_FRAME_H
#define CRDTNET_FRAME_H

#include <stddef.h>

#include "crdt/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes in the length prefix. */
#define CRDTNET_FRAME_HEADER_BYTES 4
/** Default maximum payload size: 1 MiB. */
#define CRDTNET_FRAME_MAX_DEFAULT ((size_t)1024 * 1024)
/** Smallest maximum a framer accepts. */
#define CRDTNET_FRAME_MAX_MIN ((size_t)64)
/** Largest maximum a framer accepts, whatever the caller asks: 16 MiB. */
#define CRDTNET_FRAME_MAX_HARD ((size_t)16 * 1024 * 1024)

/** A frame reassembler for one direction of one connection. Opaque. */
typedef struct crdtnet_framer crdtnet_framer;

/**
 * Write the length prefix for a payload of @p len bytes.
 * @param[out] out  caller provides CRDTNET_FRAME_HEADER_BYTES bytes
 * @param len       payload length, 1 to CRDTNET_FRAME_MAX_HARD
 * @return CRDT_OK; CRDT_EINVAL (@p len is 0 or above the hard maximum).
 */
CRDTNET_API int crdtnet_frame_header(unsigned char out[CRDTNET_FRAME_HEADER_BYTES],
                         size_t len);

/**
 * Create a framer that accepts payloads of at most @p max bytes.
 * @param[out] out  the framer; release it with crdtnet_framer_free()
 * @param max       0 for CRDTNET_FRAME_MAX_DEFAULT, else from
 *                  CRDTNET_FRAME_MAX_MIN to CRDTNET_FRAME_MAX_HARD
 * @return CRDT_OK; CRDT_EINVAL (@p max out of range); CRDT_ENOMEM.
 */
CRDTNET_API int crdtnet_framer_new(crdtnet_framer **out, size_t max);

/**
 * Change the maximum payload size, for instance from CRDTNET_HS_MSG_MAX
 * during the handshake to the session's limit afterwards. It applies to
 * frames whose header has not been read completely yet.
 * @return CRDT_OK; CRDT_EINVAL (@p max out of range, as for
 *         crdtnet_framer_new()).
 */
CRDTNET_API int crdtnet_framer_set_max(crdtnet_framer *f, size_t max);

/**
 * Give the framer bytes read from the wire. It takes bytes up to the end
 * of the current frame and stops there: call crdtnet_framer_next(), then
 * feed the rest (`bytes + *used_out`). Any split works, one byte at a
 * time included. The bytes are copied; @p bytes is not kept.
 * @param[out] used_out  how many of the @p len bytes were taken; 0 while
 *                       a complete frame waits for crdtnet_framer_next()
 * @return CRDT_OK; CRDT_ELIMIT (a header announced more than the maximum:
 *         nothing was allocated for it); CRDT_EPROTO (a zero length);
 *         CRDT_ENOMEM. After an error the framer is dead: every later
 *         feed and next returns the same error, and the connection
 *         should be closed.
 */
CRDTNET_API int crdtnet_framer_feed(crdtnet_framer *f, const void *bytes, size_t len,
                        size_t *used_out);

/**
 * Take the next complete frame, if there is one.
 * @param[out] payload_out  borrowed view into the framer; valid until the
 *                          next crdtnet_framer_feed(), crdtnet_framer_next()
 *                          or crdtnet_framer_free(); do not free
 * @param[out] len_out      payload length, 1 to the framer's maximum
 * @return CRDT_OK; CRDT_EAGAIN (no complete frame yet); or the framer's
 *         error (CRDT_ELIMIT, CRDT_EPROTO, CRDT_ENOMEM) once it is dead.
 */
CRDTNET_API int crdtnet_framer_next(crdtnet_framer *f, const unsigned char **payload_out,
                        size_t *len_out);

/** Release @p f and its buffer. Passing NULL does nothing. */
CRDTNET_API void crdtnet_framer_free(crdtnet_framer *f);

#ifdef __cplusplus
}
#endif

#endif
