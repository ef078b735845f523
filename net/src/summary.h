/*
 * summary.h: the heads summary of sync protocol 4 (docs/protocol.md,
 * "Summaries"), internal to crdtnet.
 *
 * Instead of its whole version vector and heads, a side sends a digest
 * of them (HELLO) and then, round by round, only what differs: the
 * actors are the leaves of a trie on their id's nibbles (16 children a
 * node); each round both sides send the digests of the children of the
 * nodes found different, and their entries of the small nodes found
 * different. When no node is left, each side holds the peer's entries
 * wherever they differ from its own, and so the peer's whole version
 * vector and every head it needs for the fork check.
 *
 * An entry is actor (8 bytes) || seq (8, big-endian) || chain hash (32):
 * CRDTNET__SUM_ENTRY bytes, in actor order.
 */
#ifndef CRDTNET_SUMMARY_H
#define CRDTNET_SUMMARY_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "crdt/crdt.h"

#define CRDTNET__SUM_ENTRY 48      /* one entry on the wire */
#define CRDTNET__SUM_DIGEST 8      /* one node digest */
#define CRDTNET__SUM_FANOUT 16     /* children of a node: one nibble */
#define CRDTNET__SUM_ROOT 32       /* the digest of all heads (HELLO) */
#define CRDTNET__SUM_MAX 65536     /* actors a side may hold */
#define CRDTNET__SUM_LEAF_AVG 4    /* entries a leaf holds on average */
#define CRDTNET__SUM_SMALL 64      /* up to this many heads travel whole
                                      in HELLO; on both sides: no round */

typedef struct crdtnet__sum crdtnet__sum;

/* Our side from a heads blob as crdt_heads_export() makes it.
 * CRDT_OK; CRDT_EPROTO; CRDT_ELIMIT (more than CRDTNET__SUM_MAX);
 * CRDT_ENOMEM. */
int crdtnet__sum_new(crdtnet__sum **out, const unsigned char *heads,
                     size_t len);
/* The same from @p n entries (CRDTNET__SUM_ENTRY bytes each, strictly
 * increasing actors) as crdt_read_heads() gives them; @p entries is
 * taken over (freed on failure too). CRDT_OK; CRDT_EPROTO (out of
 * order); CRDT_ELIMIT; CRDT_ENOMEM. */
int crdtnet__sum_new_entries(crdtnet__sum **out, unsigned char *entries,
                             size_t n);
void crdtnet__sum_free(crdtnet__sum *s);

/* What HELLO carries: the root digest and the number of actors. */
void crdtnet__sum_root(const crdtnet__sum *s,
                       unsigned char root[CRDTNET__SUM_ROOT], uint64_t *n);

/* HELLO's entries: all of ours when we hold at most CRDTNET__SUM_SMALL
 * heads, else none (a view; @p len 0). */
void crdtnet__sum_hello_entries(const crdtnet__sum *s,
                                const unsigned char **p, size_t *len);

/* The peer's HELLO: its root, count and entries (all of them when
 * @p peer_n <= CRDTNET__SUM_SMALL, else none). Equal roots, or few heads
 * on both sides, end it at once (the entries must hash to the root).
 * CRDT_OK; CRDT_EPROTO; CRDT_ELIMIT (@p peer_n above CRDTNET__SUM_MAX);
 * CRDT_ENOMEM. */
int crdtnet__sum_start(crdtnet__sum *s,
                       const unsigned char peer_root[CRDTNET__SUM_ROOT],
                       uint64_t peer_n, const unsigned char *entries,
                       size_t entries_len);

/* 1 once both sides hold what they need (no round left); our last
 * round may still be due. */
int crdtnet__sum_done(const crdtnet__sum *s);
/* 1 when a round message of ours is due (at most two wait: the peer
 * may answer a round before ours went out). */
int crdtnet__sum_round_due(const crdtnet__sum *s);
/* Our oldest due round message's two parts (views valid until the next
 * call of this function or crdtnet__sum_free()); it counts as sent. */
void crdtnet__sum_round_take(crdtnet__sum *s, const unsigned char **sums,
                             size_t *sums_len, const unsigned char **heads,
                             size_t *heads_len);
/*
 * The peer's round message: @p sums, CRDTNET__SUM_FANOUT digests per
 * node being expanded (exactly), and @p heads, its entries in the
 * leaves of this round (a multiple of CRDTNET__SUM_ENTRY, in actor
 * order, each inside one of the leaves). When it was the last round,
 * the peer's heads rebuilt from ours and its entries must hash to its
 * root. CRDT_OK; CRDT_EPROTO (malformed, out of order, or the summary
 * does not match the root); CRDT_ELIMIT; CRDT_ENOMEM.
 */
int crdtnet__sum_round_feed(crdtnet__sum *s, const unsigned char *sums,
                            size_t sums_len, const unsigned char *heads,
                            size_t heads_len);
/* Round messages received so far. */
unsigned crdtnet__sum_rounds(const crdtnet__sum *s);

/* Our head of @p a as HELLO summarised it: CRDT_OK; CRDT_ENOTFOUND. */
int crdtnet__sum_own_head(const crdtnet__sum *s, const crdt_actor *a,
                          uint64_t *seq, unsigned char hash[32]);
/* Our seq of @p a as HELLO summarised it; 0 if we held none. */
uint64_t crdtnet__sum_own_seq(const crdtnet__sum *s, const crdt_actor *a);
/* Once done: the peer's seq of @p a as its HELLO summarised it; 0 if
 * it held none (or the summary is not done). */
uint64_t crdtnet__sum_peer_seq(const crdtnet__sum *s, const crdt_actor *a);
/* Once done: the peer's head of @p a as its HELLO summarised it (seq
 * and chain hash). CRDT_OK; CRDT_ENOTFOUND (none, or not done). */
int crdtnet__sum_peer_head(const crdtnet__sum *s, const crdt_actor *a,
                           uint64_t *seq, unsigned char hash[32]);
/* Once done: the peer's version vector (all its actors). */
int crdtnet__sum_peer_vv(const crdtnet__sum *s, crdt_vv **out);
/* Once done: the peer's heads that differ from ours, as a heads blob
 * (crdt_heads_export() format) for crdt_forks_find(); free with free(). */
int crdtnet__sum_peer_heads(const crdtnet__sum *s, unsigned char **out,
                            size_t *len);

/* FIN of protocol 4: the digest of the vv is BLAKE2b-256 of actor ||
 * seq (8 bytes, big-endian) for every head in actor order. Hashed from
 * heads entries (crdt_read_heads(), crdt_read_heads_after()) a piece at
 * a time: crypto_generichash_init(st, NULL, 0, 32), then this for each
 * piece of @p n entries (their actor || seq, the first 16 bytes of
 * each), then crypto_generichash_final(st, out, 32). */
void crdtnet__vv_digest_add(crypto_generichash_state *st,
                            const unsigned char *e, size_t n);

#endif
