/*
 * summary.c: the heads summary of sync protocol 4 (summary.h,
 * docs/protocol.md "Summaries").
 *
 * Keeps: (1) our entries are the snapshot taken for HELLO, in strictly
 * increasing actor order, for the whole session: every digest we send
 * is of that snapshot, so both sides compare the same two sets;
 * (2) both sides derive the nodes of each round from the same two
 * messages (ours and the peer's), so they agree on every round's
 * layout without naming a node on the wire; (3) nothing the peer sent
 * is used before the rebuilt peer heads hash to the peer's root.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "summary.h"
#include "net_internal.h"
#include "internal.h" /* libcrdt: bounded msgpack reader, encoder */

#define ENTRY CRDTNET__SUM_ENTRY
#define DIG CRDTNET__SUM_DIGEST
#define FAN CRDTNET__SUM_FANOUT
#define MAX_DEPTH 16 /* nibbles in an 8-byte actor id */

typedef struct {
    unsigned depth;          /* nibbles of the prefix */
    unsigned char prefix[8]; /* nibbles past depth are zero */
} node;

typedef struct {
    node *v;
    size_t n, cap;
} node_list;

/* One round message of ours, waiting to be sent. */
typedef struct {
    unsigned char *sums, *heads;
    size_t sums_len, heads_len;
} round_msg;

/* The peer may answer a round before we sent ours, and its last round
 * ends the summary: ours of that round and of the next wait here. */
#define QUEUE 2

struct crdtnet__sum {
    unsigned char *mine; /* n_mine entries (1) */
    size_t n_mine;
    unsigned char my_root[CRDTNET__SUM_ROOT];
    unsigned char peer_root[CRDTNET__SUM_ROOT];
    uint64_t peer_n;
    unsigned char key[32]; /* node digests of this session */
    unsigned leaf_depth;
    int started, done;
    node_list expand, leaves; /* this round's nodes */
    unsigned char *my_sums;   /* FAN digests per expand node */
    round_msg queue[QUEUE];   /* ours, not yet taken, oldest first */
    size_t n_queue;
    round_msg taken;          /* the one crdtnet__sum_round_take() gave */
    unsigned rounds;
    unsigned char *drop; /* per entry of ours: inside a leaf */
    unsigned char *peer; /* the peer's entries in every leaf so far */
    size_t n_peer, cap_peer;
    /* once done, the peer's whole heads are ours outside every leaf
     * (drop) and its own inside (peer, sorted): merged_next() walks
     * them, no copy is made */
};

static unsigned
nibble(const unsigned char *actor, unsigned i)
{
    return i % 2 == 0 ? actor[i / 2] >> 4 : actor[i / 2] & 0x0f;
}

static void
set_nibble(unsigned char *actor, unsigned i, unsigned v)
{
    if (i % 2 == 0)
        actor[i / 2] = (unsigned char)((actor[i / 2] & 0x0f) | (v << 4));
    else
        actor[i / 2] = (unsigned char)((actor[i / 2] & 0xf0) | v);
}

/* first entry whose actor is >= @p key (8 bytes) */
static size_t
lower_bound(const unsigned char *e, size_t n, const unsigned char *key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (memcmp(e + mid * ENTRY, key, 8) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* [*lo, *hi): our entries under @p nd */
static void
node_range(const crdtnet__sum *s, const node *nd, size_t *lo, size_t *hi)
{
    unsigned char first[8], last[8];

    memcpy(first, nd->prefix, 8);
    memcpy(last, nd->prefix, 8);
    for (unsigned i = nd->depth; i < MAX_DEPTH; i++)
        set_nibble(last, i, 0x0f);
    *lo = lower_bound(s->mine, s->n_mine, first);
    *hi = *lo;
    while (*hi < s->n_mine && memcmp(s->mine + *hi * ENTRY, last, 8) <= 0)
        (*hi)++;
}

static int
in_node(const node *nd, const unsigned char *actor)
{
    for (unsigned i = 0; i < nd->depth; i++)
        if (nibble(actor, i) != nibble(nd->prefix, i))
            return 0;
    return 1;
}

static int
push_node(node_list *l, const node *nd)
{
    if (l->n == l->cap) {
        node *v = crdtnet__grow(l->v, &l->cap, sizeof *v);
        if (v == NULL)
            return CRDT_ENOMEM;
        l->v = v;
    }
    l->v[l->n++] = *nd;
    return CRDT_OK;
}

static void
hash_entries(unsigned char root[CRDTNET__SUM_ROOT], const unsigned char *e,
             size_t n)
{
    crypto_generichash(root, CRDTNET__SUM_ROOT, e, n * ENTRY, NULL, 0);
}

int
crdtnet__sum_new_entries(crdtnet__sum **out, unsigned char *entries,
                         size_t n)
{
    crdtnet__sum *s;

    *out = NULL;
    if (n > CRDTNET__SUM_MAX) {
        free(entries);
        return CRDT_ELIMIT;
    }
    for (size_t i = 1; i < n; i++) /* (1) */
        if (memcmp(entries + (i - 1) * ENTRY, entries + i * ENTRY, 8) >= 0) {
            free(entries);
            return CRDT_EPROTO;
        }
    s = calloc(1, sizeof *s);
    if (s == NULL) {
        free(entries);
        return CRDT_ENOMEM;
    }
    s->mine = entries;
    s->n_mine = n;
    s->drop = calloc(n ? n : 1, 1);
    if (s->mine == NULL || s->drop == NULL) {
        crdtnet__sum_free(s);
        return CRDT_ENOMEM;
    }
    hash_entries(s->my_root, s->mine, s->n_mine);
    *out = s;
    return CRDT_OK;
}

int
crdtnet__sum_new(crdtnet__sum **out, const unsigned char *heads, size_t len)
{
    crdt__mp m = { heads, heads + len };
    unsigned char *mine;
    uint32_t n = 0;

    *out = NULL;
    if (len > 0 && (heads == NULL || crdt__mp_array(&m, &n) < 0 ||
                    n % 3 != 0))
        return CRDT_EPROTO;
    if (n / 3 > CRDTNET__SUM_MAX)
        return CRDT_ELIMIT;
    mine = malloc(n / 3 ? (size_t)(n / 3) * ENTRY : 1);
    if (mine == NULL)
        return CRDT_ENOMEM;
    for (size_t i = 0; i < n / 3; i++) {
        unsigned char *e = mine + i * ENTRY;
        uint64_t seq;
        if (crdt__mp_bin_fixed(&m, e, 8) < 0 || crdt__mp_uint(&m, &seq) < 0 ||
            crdt__mp_bin_fixed(&m, e + 16, 32) < 0) {
            free(mine);
            return CRDT_EPROTO;
        }
        crdt__be64(e + 8, seq);
    }
    if (m.p != m.end) {
        free(mine);
        return CRDT_EPROTO;
    }
    return crdtnet__sum_new_entries(out, mine, n / 3);
}

void
crdtnet__sum_free(crdtnet__sum *s)
{
    if (s == NULL)
        return;
    free(s->mine);
    free(s->drop);
    free(s->expand.v);
    free(s->leaves.v);
    free(s->my_sums);
    for (size_t i = 0; i < s->n_queue; i++) {
        free(s->queue[i].sums);
        free(s->queue[i].heads);
    }
    free(s->taken.sums);
    free(s->taken.heads);
    free(s->peer);
    free(s);
}

void
crdtnet__sum_root(const crdtnet__sum *s,
                  unsigned char root[CRDTNET__SUM_ROOT], uint64_t *n)
{
    memcpy(root, s->my_root, CRDTNET__SUM_ROOT);
    *n = s->n_mine;
}

/* The digest of our entries [lo, hi), keyed for this session; 0 only
 * for no entry, so a zero digest says "empty" (summary.h). */
static void
digest(const crdtnet__sum *s, size_t lo, size_t hi, unsigned char *out)
{
    static const unsigned char zero[DIG];

    if (lo == hi) {
        memset(out, 0, DIG);
        return;
    }
    crypto_generichash(out, DIG, s->mine + lo * ENTRY, (hi - lo) * ENTRY,
                       s->key, sizeof s->key);
    if (memcmp(out, zero, DIG) == 0)
        out[DIG - 1] = 1;
}

/* Our message for this round's nodes: digests of the children of each
 * node to expand, entries of each leaf (which the peer's replace). */
static int
prepare_round(crdtnet__sum *s)
{
    size_t total = 0, at = 0, sl = s->expand.n * FAN * DIG;
    round_msg *q;

    if (s->n_queue == QUEUE) /* the peer ran two rounds ahead */
        return CRDT_EPROTO;
    q = &s->queue[s->n_queue];
    free(s->my_sums);
    s->my_sums = malloc(sl ? sl : 1);
    if (s->my_sums == NULL)
        return CRDT_ENOMEM;
    for (size_t i = 0; i < s->expand.n; i++) {
        const node *nd = &s->expand.v[i];
        unsigned char *out = s->my_sums + i * FAN * DIG;
        size_t lo, hi, a;

        node_range(s, nd, &lo, &hi);
        a = lo;
        for (unsigned c = 0; c < FAN; c++) {
            size_t b = a;
            while (b < hi && nibble(s->mine + b * ENTRY, nd->depth) == c)
                b++;
            digest(s, a, b, out + c * DIG);
            a = b;
        }
    }
    for (size_t i = 0; i < s->leaves.n; i++) {
        size_t lo, hi;
        node_range(s, &s->leaves.v[i], &lo, &hi);
        total += hi - lo;
    }
    q->sums = malloc(sl ? sl : 1);
    q->heads = malloc(total ? total * ENTRY : 1);
    if (q->sums == NULL || q->heads == NULL) {
        free(q->sums);
        free(q->heads);
        return CRDT_ENOMEM;
    }
    memcpy(q->sums, s->my_sums, sl);
    q->sums_len = sl;
    for (size_t i = 0; i < s->leaves.n; i++) {
        size_t lo, hi;
        node_range(s, &s->leaves.v[i], &lo, &hi);
        memcpy(q->heads + at * ENTRY, s->mine + lo * ENTRY,
               (hi - lo) * ENTRY);
        memset(s->drop + lo, 1, hi - lo);
        at += hi - lo;
    }
    q->heads_len = total * ENTRY;
    s->n_queue++;
    return CRDT_OK;
}

void
crdtnet__sum_hello_entries(const crdtnet__sum *s, const unsigned char **p,
                           size_t *len)
{
    *p = s->mine;
    *len = s->n_mine <= CRDTNET__SUM_SMALL ? s->n_mine * ENTRY : 0;
}

static int finish(crdtnet__sum *s);

int
crdtnet__sum_start(crdtnet__sum *s,
                   const unsigned char peer_root[CRDTNET__SUM_ROOT],
                   uint64_t peer_n, const unsigned char *entries,
                   size_t entries_len)
{
    unsigned char both[2 * CRDTNET__SUM_ROOT];
    uint64_t most, cap = CRDTNET__SUM_LEAF_AVG;
    node root;
    int lo;

    if (s->started)
        return CRDT_EPROTO;
    if (peer_n > CRDTNET__SUM_MAX)
        return CRDT_ELIMIT;
    /* few heads travel whole in HELLO, many never */
    if (entries_len != (peer_n <= CRDTNET__SUM_SMALL ? peer_n * ENTRY : 0))
        return CRDT_EPROTO;
    s->started = 1;
    memcpy(s->peer_root, peer_root, CRDTNET__SUM_ROOT);
    s->peer_n = peer_n;
    if (peer_n == s->n_mine &&
        memcmp(peer_root, s->my_root, CRDTNET__SUM_ROOT) == 0) {
        s->done = 1; /* the same heads: nothing to learn */
        return CRDT_OK;
    }
    if (peer_n <= CRDTNET__SUM_SMALL && s->n_mine <= CRDTNET__SUM_SMALL) {
        /* both HELLOs hold every entry: no round */
        for (size_t i = 0; i < peer_n; i++)
            if (i > 0 && memcmp(entries + (i - 1) * ENTRY,
                                entries + i * ENTRY, 8) >= 0)
                return CRDT_EPROTO;
        s->peer = malloc(peer_n ? peer_n * ENTRY : 1);
        if (s->peer == NULL)
            return CRDT_ENOMEM;
        memcpy(s->peer, entries, peer_n * ENTRY);
        s->n_peer = s->cap_peer = peer_n;
        memset(s->drop, 1, s->n_mine);
        return finish(s);
    }
    /* the key depends on both sides' heads: nobody can grind changes
     * whose node digests collide before the session exists */
    lo = memcmp(s->my_root, peer_root, CRDTNET__SUM_ROOT) < 0;
    memcpy(both, lo ? s->my_root : peer_root, CRDTNET__SUM_ROOT);
    memcpy(both + CRDTNET__SUM_ROOT, lo ? peer_root : s->my_root,
           CRDTNET__SUM_ROOT);
    crypto_generichash(s->key, sizeof s->key, both, sizeof both, NULL, 0);
    most = peer_n > s->n_mine ? peer_n : s->n_mine;
    while (s->leaf_depth < MAX_DEPTH && most > cap) {
        s->leaf_depth++;
        cap *= FAN;
    }
    memset(&root, 0, sizeof root);
    if (s->leaf_depth == 0 || peer_n == 0 || s->n_mine == 0) {
        if (push_node(&s->leaves, &root) < 0)
            return CRDT_ENOMEM;
    } else if (push_node(&s->expand, &root) < 0) {
        return CRDT_ENOMEM;
    }
    return prepare_round(s);
}

int
crdtnet__sum_done(const crdtnet__sum *s)
{
    return s->done;
}

int
crdtnet__sum_round_due(const crdtnet__sum *s)
{
    return s->n_queue > 0;
}

void
crdtnet__sum_round_take(crdtnet__sum *s, const unsigned char **sums,
                        size_t *sums_len, const unsigned char **heads,
                        size_t *heads_len)
{
    free(s->taken.sums);
    free(s->taken.heads);
    memset(&s->taken, 0, sizeof s->taken);
    if (s->n_queue > 0) {
        s->taken = s->queue[0];
        memmove(s->queue, s->queue + 1, (QUEUE - 1) * sizeof *s->queue);
        s->n_queue--;
    }
    *sums = s->taken.sums;
    *sums_len = s->taken.sums_len;
    *heads = s->taken.heads;
    *heads_len = s->taken.heads_len;
}

unsigned
crdtnet__sum_rounds(const crdtnet__sum *s)
{
    return s->rounds;
}

static int
cmp_entry(const void *a, const void *b)
{
    return memcmp(a, b, 8);
}

/* The peer's next head in actor order, from ours outside every leaf
 * (*i) and its own inside (*j); NULL after the last. */
static const unsigned char *
merged_next(const crdtnet__sum *s, size_t *i, size_t *j)
{
    while (*i < s->n_mine && s->drop[*i])
        (*i)++;
    if (*j == s->n_peer && *i == s->n_mine)
        return NULL;
    if (*j == s->n_peer ||
        (*i < s->n_mine &&
         memcmp(s->mine + *i * ENTRY, s->peer + *j * ENTRY, 8) < 0))
        return s->mine + (*i)++ * ENTRY;
    return s->peer + (*j)++ * ENTRY;
}

#define GATHER 64 /* entries hashed at a time */

/* The peer's heads: ours outside every leaf, its own inside (3); they
 * must be in order and hash to its root, walked without a copy. */
static int
finish(crdtnet__sum *s)
{
    crypto_generichash_state st;
    unsigned char root[CRDTNET__SUM_ROOT], buf[GATHER * ENTRY], last[8];
    const unsigned char *e;
    size_t i = 0, j = 0, k = 0, at = 0, kept = 0;

    /* each round's leaves are in order, but a later round's may lie
     * before an earlier one's */
    if (s->n_peer > 1)
        qsort(s->peer, s->n_peer, ENTRY, cmp_entry);

    for (size_t a = 0; a < s->n_mine; a++)
        kept += !s->drop[a];
    if (kept + s->n_peer != s->peer_n)
        return CRDT_EPROTO;
    crypto_generichash_init(&st, NULL, 0, CRDTNET__SUM_ROOT);
    while ((e = merged_next(s, &i, &j)) != NULL) {
        if (k > 0 && memcmp(last, e, 8) >= 0)
            return CRDT_EPROTO; /* an entry of the peer outside its leaf */
        memcpy(last, e, 8);
        if (at == GATHER) {
            crypto_generichash_update(&st, buf, sizeof buf);
            at = 0;
        }
        memcpy(buf + at++ * ENTRY, e, ENTRY);
        k++;
    }
    crypto_generichash_update(&st, buf, at * ENTRY);
    crypto_generichash_final(&st, root, sizeof root);
    if (sodium_memcmp(root, s->peer_root, sizeof root) != 0)
        return CRDT_EPROTO;
    s->done = 1;
    return CRDT_OK;
}

int
crdtnet__sum_round_feed(crdtnet__sum *s, const unsigned char *sums,
                        size_t sums_len, const unsigned char *heads,
                        size_t heads_len)
{
    node_list expand = { NULL, 0, 0 }, leaves = { NULL, 0, 0 };
    size_t n, leaf = 0;
    int rc = CRDT_OK;

    if (!s->started || s->done)
        return CRDT_EPROTO; /* no round is open */
    if (sums_len != s->expand.n * FAN * DIG || heads_len % ENTRY != 0)
        return CRDT_EPROTO;
    n = heads_len / ENTRY;
    if (n > CRDTNET__SUM_MAX - s->n_peer)
        return CRDT_ELIMIT;
    for (size_t i = 0; i < n; i++) { /* in order, each inside a leaf */
        const unsigned char *e = heads + i * ENTRY;
        if (i > 0 && memcmp(e - ENTRY, e, 8) >= 0)
            return CRDT_EPROTO;
        while (leaf < s->leaves.n && !in_node(&s->leaves.v[leaf], e))
            leaf++;
        if (leaf == s->leaves.n)
            return CRDT_EPROTO;
    }
    if (n > 0) {
        if (s->n_peer + n > s->cap_peer) {
            size_t cap = s->n_peer + n + s->cap_peer;
            unsigned char *p;
            if (cap > CRDTNET__SUM_MAX)
                cap = CRDTNET__SUM_MAX;
            p = realloc(s->peer, cap * ENTRY);
            if (p == NULL)
                return CRDT_ENOMEM;
            s->peer = p;
            s->cap_peer = cap;
        }
        memcpy(s->peer + s->n_peer * ENTRY, heads, heads_len);
        s->n_peer += n;
    }
    for (size_t i = 0; i < s->expand.n && rc == CRDT_OK; i++) {
        for (unsigned c = 0; c < FAN && rc == CRDT_OK; c++) {
            const unsigned char *mine = s->my_sums + (i * FAN + c) * DIG;
            const unsigned char *theirs = sums + (i * FAN + c) * DIG;
            static const unsigned char zero[DIG];
            node child = s->expand.v[i];

            if (memcmp(mine, theirs, DIG) == 0)
                continue;
            set_nibble(child.prefix, child.depth, c);
            child.depth++;
            if (child.depth >= s->leaf_depth || child.depth == MAX_DEPTH ||
                memcmp(mine, zero, DIG) == 0 || memcmp(theirs, zero, DIG) == 0)
                rc = push_node(&leaves, &child);
            else
                rc = push_node(&expand, &child);
        }
    }
    if (rc < 0) {
        free(expand.v);
        free(leaves.v);
        return rc;
    }
    free(s->expand.v);
    free(s->leaves.v);
    s->expand = expand;
    s->leaves = leaves;
    s->rounds++;
    if (expand.n == 0 && leaves.n == 0)
        return finish(s);
    return prepare_round(s);
}

int
crdtnet__sum_peer_vv(const crdtnet__sum *s, crdt_vv **out)
{
    const unsigned char *e;
    size_t i = 0, j = 0;
    crdt_vv *vv;
    int rc;

    if (!s->done)
        return CRDT_EINVAL;
    if ((rc = crdt_vv_new(&vv)) < 0)
        return rc;
    /* finish() counted the peer's heads: peer_n, at most SUM_MAX */
    if ((rc = crdt_vv_reserve(vv, s->peer_n)) < 0) {
        crdt_vv_free(vv);
        return rc;
    }
    while ((e = merged_next(s, &i, &j)) != NULL) {
        crdt_actor a;
        memcpy(a.b, e, 8);
        if ((rc = crdt_vv_set(vv, &a, crdt__rd64(e + 8))) < 0) {
            crdt_vv_free(vv);
            return rc;
        }
    }
    *out = vv;
    return CRDT_OK;
}

int
crdtnet__sum_own_head(const crdtnet__sum *s, const crdt_actor *a,
                      uint64_t *seq, unsigned char hash[32])
{
    size_t i = lower_bound(s->mine, s->n_mine, a->b);

    if (i == s->n_mine || memcmp(s->mine + i * ENTRY, a->b, 8) != 0)
        return CRDT_ENOTFOUND;
    *seq = crdt__rd64(s->mine + i * ENTRY + 8);
    memcpy(hash, s->mine + i * ENTRY + 16, 32);
    return CRDT_OK;
}

/* The seq of @p a in @p n entries @p e; 0 if absent. */
static uint64_t
seq_in(const unsigned char *e, size_t n, const crdt_actor *a)
{
    size_t i = lower_bound(e, n, a->b);

    if (i == n || memcmp(e + i * ENTRY, a->b, 8) != 0)
        return 0;
    return crdt__rd64(e + i * ENTRY + 8);
}

uint64_t
crdtnet__sum_own_seq(const crdtnet__sum *s, const crdt_actor *a)
{
    return seq_in(s->mine, s->n_mine, a);
}

int
crdtnet__sum_peer_head(const crdtnet__sum *s, const crdt_actor *a,
                       uint64_t *seq, unsigned char hash[32])
{
    const unsigned char *e;
    size_t i;

    if (!s->done)
        return CRDT_ENOTFOUND;
    /* ours outside every leaf is the peer's too, else the peer's own */
    i = lower_bound(s->mine, s->n_mine, a->b);
    if (i < s->n_mine && memcmp(s->mine + i * ENTRY, a->b, 8) == 0 &&
        !s->drop[i]) {
        e = s->mine + i * ENTRY;
    } else {
        i = lower_bound(s->peer, s->n_peer, a->b);
        if (i == s->n_peer || memcmp(s->peer + i * ENTRY, a->b, 8) != 0)
            return CRDT_ENOTFOUND;
        e = s->peer + i * ENTRY;
    }
    *seq = crdt__rd64(e + 8);
    memcpy(hash, e + 16, 32);
    return CRDT_OK;
}

uint64_t
crdtnet__sum_peer_seq(const crdtnet__sum *s, const crdt_actor *a)
{
    size_t i;

    if (!s->done)
        return 0;
    /* ours outside every leaf, else the peer's own (or none) */
    i = lower_bound(s->mine, s->n_mine, a->b);
    if (i < s->n_mine && memcmp(s->mine + i * ENTRY, a->b, 8) == 0 &&
        !s->drop[i])
        return crdt__rd64(s->mine + i * ENTRY + 8);
    return seq_in(s->peer, s->n_peer, a);
}

int
crdtnet__sum_peer_heads(const crdtnet__sum *s, unsigned char **out,
                        size_t *len)
{
    crdt__enc e;

    if (!s->done)
        return CRDT_EINVAL;
    /* s->peer was sorted by finish() */
    crdt__enc_init(&e);
    msgpack_pack_array(&e.pk, 3 * s->n_peer);
    for (size_t i = 0; i < s->n_peer; i++) {
        const unsigned char *p = s->peer + i * ENTRY;
        crdt__enc_bin(&e, p, 8);
        msgpack_pack_uint64(&e.pk, crdt__rd64(p + 8));
        crdt__enc_bin(&e, p + 16, 32);
    }
    if (crdt__enc_ok(&e) < 0) {
        crdt__enc_free(&e);
        return CRDT_ENOMEM;
    }
    *out = malloc(e.sb.size ? e.sb.size : 1);
    if (*out == NULL) {
        crdt__enc_free(&e);
        return CRDT_ENOMEM;
    }
    memcpy(*out, e.sb.data, e.sb.size);
    *len = e.sb.size;
    crdt__enc_free(&e);
    return CRDT_OK;
}

void
crdtnet__vv_digest_add(crypto_generichash_state *st, const unsigned char *e,
                       size_t n)
{
    unsigned char b[16 * GATHER];
    size_t k = 0;

    /* the first 16 bytes of an entry are actor || seq (big-endian):
     * what the digest hashes per actor; gathered so that the hash runs
     * over whole blocks */
    for (size_t i = 0; i < n; i++) {
        memcpy(b + k, e + i * ENTRY, 16);
        k += 16;
        if (k == sizeof b) {
            crypto_generichash_update(st, b, k);
            k = 0;
        }
    }
    crypto_generichash_update(st, b, k);
}
