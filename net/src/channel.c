/*
 * channel.c: the post-handshake encrypted channel.
 *
 *   OPEN --seal_final--> SENT_FINAL (we may still open)
 *   OPEN --open(FINAL)--> PEER_CLOSED (we may still seal)
 *   any --open fails--> DEAD (only seal_final still works)
 *
 * Invariants:
 *  (1) Each direction is one crypto_secretstream: its built-in counter
 *      makes replayed, reordered and dropped frames fail the MAC, so no
 *      nonce bookkeeping lives here.
 *  (2) After the k-th message in a direction (k a multiple of
 *      rekey_every), the sender rekeys its push state right after sealing
 *      and the receiver its pull state right after opening: both sides
 *      count the same messages, so they stay in step.
 *  (3) A failed open is sticky: a peer that sent one bad frame gets no
 *      second chance to probe us.
 *  (4) Plaintext buffers are wiped before they are freed or replaced.
 */
#include <stdlib.h>
#include <string.h>

#include "crdtnet/frame.h"
#include "net_internal.h"

_Static_assert(CRDTNET_CHANNEL_ABYTES ==
                   crypto_secretstream_xchacha20poly1305_ABYTES,
               "channel.h must match libsodium");

struct crdtnet_channel {
    crdtnet__stream push;
    crdtnet__stream pull;
    uint64_t sent;
    uint64_t received;
    uint64_t rekey_every;
    size_t max_plain;
    unsigned char *out; /* last sealed payload */
    size_t out_cap;
    unsigned char *in; /* last opened plaintext */
    size_t in_cap;
    int err; /* sticky receive failure, keeps (3) */
    int sent_final;
    int got_final;
};

int
crdtnet__channel_new(crdtnet_channel **out, const crdtnet__stream *push,
                     const crdtnet__stream *pull, size_t frame_max)
{
    crdtnet_channel *ch;

    if (frame_max == 0)
        frame_max = CRDTNET_FRAME_MAX_DEFAULT;
    ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return CRDT_ENOMEM;
    memcpy(&ch->push, push, sizeof ch->push);
    memcpy(&ch->pull, pull, sizeof ch->pull);
    ch->rekey_every = CRDTNET_CHANNEL_REKEY_INTERVAL;
    ch->max_plain = frame_max - CRDTNET_CHANNEL_ABYTES;
    *out = ch;
    return CRDT_OK;
}

void
crdtnet__channel_set_rekey_interval(crdtnet_channel *ch, uint64_t n)
{
    ch->rekey_every = n == 0 ? CRDTNET_CHANNEL_REKEY_INTERVAL : n;
}

void
crdtnet__channel_set_counters(crdtnet_channel *ch, uint64_t sent,
                              uint64_t received)
{
    ch->sent = sent;
    ch->received = received;
}

/* Keeps (4): the old buffer may hold plaintext, so wipe it, never realloc. */
static int
reserve(unsigned char **buf, size_t *cap, size_t want)
{
    unsigned char *p;
    size_t n = *cap == 0 ? 256 : *cap;

    if (want <= *cap && *buf != NULL)
        return CRDT_OK;
    while (n < want)
        n *= 2;
    p = malloc(n);
    if (p == NULL)
        return CRDT_ENOMEM;
    if (*buf != NULL) {
        sodium_memzero(*buf, *cap);
        free(*buf);
    }
    *buf = p;
    *cap = n;
    return CRDT_OK;
}

static int
seal(crdtnet_channel *ch, unsigned char tag, const void *plain, size_t len,
     const unsigned char **payload_out, size_t *len_out)
{
    unsigned long long clen;
    int rc;

    if (ch == NULL || (plain == NULL && len > 0) || payload_out == NULL ||
        len_out == NULL)
        return CRDT_EINVAL;
    if (ch->sent_final)
        return CRDT_ECLOSED;
    if (len > ch->max_plain)
        return CRDT_ELIMIT;
    /* 2^64 messages will not happen, but never let the count wrap. */
    if (ch->sent == UINT64_MAX)
        return CRDT_ELIMIT;
    rc = reserve(&ch->out, &ch->out_cap, len + CRDTNET_CHANNEL_ABYTES);
    if (rc < 0)
        return rc;
    if (crypto_secretstream_xchacha20poly1305_push(
            &ch->push, ch->out, &clen, plain, len, NULL, 0, tag) != 0)
        return CRDT_ERROR;
    ch->sent++;
    if (ch->sent % ch->rekey_every == 0) /* keeps (2) */
        crypto_secretstream_xchacha20poly1305_rekey(&ch->push);
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        ch->sent_final = 1;
    *payload_out = ch->out;
    *len_out = (size_t)clen;
    return CRDT_OK;
}

int
crdtnet_channel_seal(crdtnet_channel *ch, const void *plain, size_t len,
                     const unsigned char **payload_out, size_t *len_out)
{
    if (ch != NULL && ch->err != 0)
        return ch->err;
    return seal(ch, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, plain,
                len, payload_out, len_out);
}

int
crdtnet_channel_seal_final(crdtnet_channel *ch, const void *plain,
                           size_t len, const unsigned char **payload_out,
                           size_t *len_out)
{
    return seal(ch, crypto_secretstream_xchacha20poly1305_TAG_FINAL, plain,
                len, payload_out, len_out);
}

static int
die(crdtnet_channel *ch, int rc)
{
    ch->err = rc;
    if (ch->in != NULL)
        sodium_memzero(ch->in, ch->in_cap);
    return rc;
}

int
crdtnet_channel_open(crdtnet_channel *ch, const void *payload, size_t len,
                     const unsigned char **plain_out, size_t *len_out)
{
    unsigned long long mlen;
    unsigned char tag;
    int rc;

    if (ch == NULL || (payload == NULL && len > 0) || plain_out == NULL ||
        len_out == NULL)
        return CRDT_EINVAL;
    if (ch->err != 0)
        return ch->err;
    if (ch->got_final)
        return CRDT_ECLOSED;
    if (len < CRDTNET_CHANNEL_ABYTES ||
        len - CRDTNET_CHANNEL_ABYTES > ch->max_plain || ch->received ==
        UINT64_MAX)
        return die(ch, CRDT_EAUTH);
    rc = reserve(&ch->in, &ch->in_cap, len - CRDTNET_CHANNEL_ABYTES + 1);
    if (rc < 0)
        return rc;
    if (crypto_secretstream_xchacha20poly1305_pull(&ch->pull, ch->in, &mlen,
                                                   &tag, payload, len, NULL,
                                                   0) != 0)
        return die(ch, CRDT_EAUTH);
    ch->received++;
    if (ch->received % ch->rekey_every == 0) /* keeps (2) */
        crypto_secretstream_xchacha20poly1305_rekey(&ch->pull);
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL)
        ch->got_final = 1;
    else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        return die(ch, CRDT_EPROTO); /* we never send PUSH or REKEY */
    *plain_out = ch->in;
    *len_out = (size_t)mlen;
    return CRDT_OK;
}

int
crdtnet_channel_peer_closed(const crdtnet_channel *ch)
{
    return ch != NULL && ch->got_final;
}

size_t
crdtnet_channel_max_plain(const crdtnet_channel *ch)
{
    return ch == NULL ? 0 : ch->max_plain;
}

void
crdtnet__channel_trim(crdtnet_channel *ch)
{
    if (ch == NULL)
        return;
    if (ch->in != NULL) { /* plaintext: wiped, keeps (4) */
        sodium_memzero(ch->in, ch->in_cap);
        free(ch->in);
        ch->in = NULL;
        ch->in_cap = 0;
    }
    free(ch->out);
    ch->out = NULL;
    ch->out_cap = 0;
}

void
crdtnet_channel_free(crdtnet_channel *ch)
{
    if (ch == NULL)
        return;
    if (ch->in != NULL)
        sodium_memzero(ch->in, ch->in_cap);
    free(ch->in);
    free(ch->out); /* ciphertext only: nothing secret */
    sodium_memzero(ch, sizeof *ch);
    free(ch);
}
