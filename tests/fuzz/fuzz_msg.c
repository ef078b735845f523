/*
 * fuzz_msg.c: decrypted sync messages from a peer -> a fresh
 * crdtnet_session on a small fixed replica (docs/testing.md, "Fuzzing"):
 * the typed message decoder and validator, and what it drives (merge,
 * epoch records, snapshot reset, FIN).
 *
 * The replica A lives on tmpfs and is made once per process, with
 * deterministic randomness and clock, so every run makes the same bytes.
 * Two peers of its space are recorded once, at start-up, syncing with
 * A: B in the same epoch, and C one migration ahead (A resets into C's
 * snapshot). A holds C's epoch records from the start.
 *
 * Input: byte 0 is a set of flags, the rest the message(s).
 *   bits 0-2  what genuine messages are fed first, so the fuzz message
 *             meets the later states of the protocol:
 *             0 nothing          1 B's HELLO
 *             2 B's HELLO, CHANGES and DONE (B's FIN is what is due)
 *             3 C's HELLO        4 C's HELLO and SNAP_BEGIN
 *             5 C's messages up to SNAP_END (a reset is open)
 *             6 C's messages up to and with SNAP_END (A has reset)
 *             7 all of B's messages (the session has finished or is live)
 *   bit 3     live session (stays open after FIN)
 *   bit 4     several messages: the rest is a list of 2-byte big-endian
 *             lengths, each followed by that many bytes; else the rest
 *             is ONE message
 *   bit 5     signed ops (without bit 4): the rest is the op array of a
 *             change that the harness wraps in B's first change header
 *             and signs with B's key, as a malicious member could; it
 *             is sent as CHANGES, so the fuzzer reaches merge and the
 *             state behind the signature check
 * A's output is drained after every message.
 * Checked: no crash or sanitizer report; feed answers CRDT_OK or a
 * negative code (a peer's ERROR may carry its own code, -1..-100), and
 * a failure is sticky; output messages are msgpack arrays of a known
 * type within CRDTNET_SESSION_MSG_MAX; A's state hash changes only if
 * some fuzz message was accepted (CRDT_OK). After an input that changed
 * what A holds (stats, version vector, quarantine, migration marker),
 * and every 256 inputs, A is put back to its start bytes and must open
 * again: every input meets the same replica and the file stays small.
 *
 * Reproducers of the bugs it found: tests/fuzz/crashes/fuzz_msg/.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_msg` writes the corpus (the recorded
 * messages at every stage, ERROR/BUSY/REJECT, and the bombs of
 * docs/testing.md B3, B4 inside messages) into DIR and exits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "crdt/raw.h"
#include "crdtnet/session.h"
#include "epoch/epoch.h"
#include "support/fuzz_util.h"
#include "support/fuzz_rng.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSGS 64
#define BLAKE2B_BYTES 32

typedef struct {
    unsigned char *p[MAX_MSGS];
    size_t len[MAX_MSGS];
    int type[MAX_MSGS];
    size_t n;
} transcript;

static char tmpdir[4096], apath[4200];
static crdt_replica *rep; /* A */
static unsigned char *pristine;
static size_t pristine_len;
static transcript from_b, from_c; /* what B and C sent A */
static size_t prefix_n[8];        /* messages of the prefix, per mode */
static const transcript *prefix_of[8];
static unsigned long runs;
static crdt_change b_first;       /* header of B's first change */
static unsigned char b_first_bytes[4096];
static size_t b_first_len;
/* C's first change, folded into its epoch: inside the cut a CUT fills */
static unsigned char c_first_bytes[4096];
static size_t c_first_len;
static unsigned char b_sk[64];

/* ---- deterministic randomness and clock ------------------------------ */


static uint64_t clock_ms = 1700000000000ULL;

static uint64_t
fixed_clock(void *ctx)
{
    (void)ctx;
    return clock_ms;
}

/* ---- replicas -------------------------------------------------------- */

static void
cleanup(void)
{
    crdt_replica_close(rep);
    rep = NULL;
    if (tmpdir[0])
        fuzz_dir_remove(tmpdir);
}

static crdt_replica *
open_replica(const char *path, int create, unsigned char seed_byte)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char seed[32], space[16];
    crdt_replica *r;

    memset(seed, seed_byte, sizeof seed);
    memset(space, 0x5a, sizeof space);
    rng = seed_byte; /* the same identity whatever was made before */
    o.create = create;
    o.no_sync = 1;
    o.space_id = space;
    o.seed = seed;
    if (crdt_replica_open(&r, path, &o) != CRDT_OK || epoch_attach(r) != 0)
        abort(); /* also: A must open after every input */
    return r;
}

/* A back to its start bytes; it must open. */
static void
reset_replica(void)
{
    char path[4300];
    int fd;

    crdt_replica_close(rep);
    snprintf(path, sizeof path, "%s/data.mdb", apath);
    fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, pristine, pristine_len) != (ssize_t)pristine_len ||
        close(fd) != 0)
        abort();
    rep = open_replica(apath, 0, 0x11);
}

static void
stats(crdt_stats *st)
{
    crdt_read *rd;

    if (crdt_read_begin(&rd, rep) != CRDT_OK ||
        crdt_read_stats(st, rd) != CRDT_OK)
        abort();
    crdt_read_end(rd);
}

/* What A holds, logically: stats, version vector, quarantine, marker.
 * (The txn id is no guide: a HELLO rewrites the records it carries.) */
typedef struct {
    crdt_stats st;
    unsigned char vv[BLAKE2B_BYTES];
    uint64_t quarantined;
    int marker;
} fingerprint;

static fingerprint start; /* A at its start bytes */

static void
take_fingerprint(fingerprint *f)
{
    crdt_read *rd;
    crdt_vv *vv;
    unsigned char *b;
    size_t len;
    epoch_marker m;

    memset(f, 0, sizeof *f);
    stats(&f->st);
    if (crdt_read_begin(&rd, rep) != CRDT_OK ||
        crdt_read_vv(&vv, rd) != CRDT_OK)
        abort();
    crdt_read_end(rd);
    if (crdt_vv_encode(&b, &len, vv) != CRDT_OK)
        abort();
    crypto_generichash(f->vv, sizeof f->vv, b, len, NULL, 0);
    free(b);
    crdt_vv_free(vv);
    if (epoch_quarantine_count(&f->quarantined, rep) != CRDT_OK)
        abort();
    f->marker = epoch_marker_get(&m, rep) == CRDT_OK;
    if (f->marker)
        epoch_marker_clear(&m);
}

/* ---- the target ------------------------------------------------------ */

static void
check_out(const unsigned char *m, size_t len)
{
    int type;

    if (len < 2 || len > CRDTNET_SESSION_MSG_MAX || (m[0] & 0xf0) != 0x90)
        abort(); /* a fixarray: no message has more than 8 elements */
    type = m[1];
    /* 13: PACKED; 14 (SUMMARY) is version 4's, never sent here; 15: CUT,
     * from a giver */
    if (type < 1 || type > 15 || type == 14 || (m[0] & 0x0f) == 0)
        abort();
}

static void
drain(crdtnet_session *s)
{
    const unsigned char *m;
    size_t len;
    int rc, n = 0;

    while (n++ < 256 && (rc = crdtnet_session_next_out(s, &m, &len)) ==
                            CRDT_OK)
        check_out(m, len);
}

static int
feed(crdtnet_session *s, const unsigned char *msg, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1); /* exactly len for ASan */
    int rc, again;

    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, msg, len);
    rc = crdtnet_session_feed(s, copy, len);
    if (rc > 0 || rc < -100)
        abort();
    if (rc < 0) { /* sticky: every later feed says the same */
        again = crdtnet_session_feed(s, copy, len);
        if (again != rc && !(again == CRDT_ECLOSED &&
                             crdtnet_session_error(s) == CRDT_OK))
            abort();
    }
    free(copy);
    drain(s);
    return rc;
}

static unsigned char *
put_be(unsigned char *q, uint64_t v, int bytes)
{
    for (int i = bytes - 1; i >= 0; i--)
        *q++ = (unsigned char)(v >> (8 * i));
    return q;
}

/* [7, [change]] where change = B's first header + @p ops, signed by B */
static unsigned char *
signed_changes(size_t *len_out, const uint8_t *ops, size_t n)
{
    static const char ctx[] = "strata-change-v1";
    const crdt_change *h = &b_first;
    unsigned char *m = malloc(n + 512), *q, *body, *clen;
    unsigned char hash[32], msg[sizeof ctx - 1 + 32];
    size_t bl, cl;

    if (m == NULL)
        abort();
    q = m;
    *q++ = 0x92, *q++ = 0x07, *q++ = 0x91;
    *q++ = 0xc6, clen = q, q += 4; /* the change: bin32 */
    *q++ = 0x92, *q++ = 0xc6, q += 4; /* its body: bin32 */
    body = q;
    *q++ = 0x99, *q++ = 0x01;
    *q++ = 0xc4, *q++ = 16, memcpy(q, h->space_id, 16), q += 16;
    *q++ = 0xc4, *q++ = 32, memcpy(q, h->epoch_id, 32), q += 32;
    *q++ = 0xc4, *q++ = 32, memcpy(q, h->pubkey, 32), q += 32;
    *q++ = 0xc4, *q++ = 8, memcpy(q, h->incarnation, 8), q += 8;
    *q++ = 0xcf, q = put_be(q, h->seq, 8);
    *q++ = 0xcf, q = put_be(q, h->hlc, 8);
    *q++ = 0xc4, *q++ = 32, memcpy(q, h->prev, 32), q += 32;
    memcpy(q, ops, n);
    q += n;
    bl = (size_t)(q - body);
    put_be(body - 4, bl, 4);
    crypto_generichash(hash, sizeof hash, body, bl, NULL, 0);
    memcpy(msg, ctx, sizeof ctx - 1);
    memcpy(msg + sizeof ctx - 1, hash, 32);
    *q++ = 0xc4, *q++ = 64;
    crypto_sign_detached(q, NULL, msg, sizeof msg, b_sk);
    q += 64;
    cl = (size_t)(q - (clen + 4));
    put_be(clen, cl, 4);
    *len_out = (size_t)(q - m);
    return m;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    crdtnet_session *s;
    crdt_stats before, after;
    const transcript *pre;
    fingerprint now;
    unsigned mode;
    int accepted = 0, rc;

    if (size < 1)
        return 0;
    mode = data[0] & 7;
    o.live = (data[0] >> 3) & 1;
    o.sync_proto = 3; /* the recorded peers speak version 3 (HELLO at
                       * once); fuzz_summary covers version 4's summary */
    if (crdtnet_session_new(&s, rep, &o) != CRDT_OK)
        abort();
    drain(s); /* our HELLO */
    pre = prefix_of[mode];
    for (size_t i = 0; pre != NULL && i < prefix_n[mode]; i++)
        if (feed(s, pre->p[i], pre->len[i]) != CRDT_OK)
            abort(); /* the recorded exchange must replay */
    stats(&before);
    if (data[0] & 0x10) {
        const uint8_t *p = data + 1, *end = data + size;
        while (end - p >= 2) {
            size_t n = (size_t)p[0] << 8 | p[1];
            p += 2;
            if (n > (size_t)(end - p))
                n = (size_t)(end - p);
            if ((rc = feed(s, p, n)) == CRDT_OK)
                accepted = 1;
            p += n;
        }
    } else if (data[0] & 0x20) {
        size_t len;
        unsigned char *m = signed_changes(&len, data + 1, size - 1);
        if (feed(s, m, len) == CRDT_OK)
            accepted = 1;
        free(m);
    } else if (feed(s, data + 1, size - 1) == CRDT_OK) {
        accepted = 1;
    }
    crdtnet_session_free(s);
    stats(&after);
    if (!accepted && memcmp(before.state_hash, after.state_hash, 32) != 0) {
        fprintf(stderr, "fuzz_msg: a refused message changed the state\n");
        abort(); /* only an accepted message may change the state */
    }
    take_fingerprint(&now);
    if (memcmp(&now, &start, sizeof now) != 0 || ++runs % 256 == 0)
        reset_replica(); /* also proves that it opens */
    return 0;
}

/* ---- set-up: A, B, C and the recorded exchanges ---------------------- */

/* See fuzz_record.c: the raw delete works around UB in run_dels()
 * (txn.c:475, NULL + 0) that aborts a commit under UBSan. */
static void
commit(crdt_txn *t)
{
    if (crdt_txn_raw_del(t, CRDT_DB_QUARANTINE, "fuzz", 4) != CRDT_OK ||
        crdt_txn_commit(t, NULL) != CRDT_OK)
        abort();
}

static void
write_ops(crdt_replica *r, int variant)
{
    char doc[8];
    crdt_value s = crdt_value_str(variant ? "Grace" : "Ada", variant ? 5 : 3);
    crdt_value red = crdt_value_str("red", 3), n = crdt_value_int(variant);
    crdt_txn *t;

    snprintf(doc, sizeof doc, "p%d", variant);
    if (crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_put(t, "people", "p1", "name", &s) != CRDT_OK ||
        crdt_txn_put(t, "people", doc, "name", &s) != CRDT_OK ||
        crdt_txn_incr(t, "stats", "s", "hits", 5 + variant) != CRDT_OK ||
        crdt_txn_sadd(t, "tags", "t1", "colors", &red) != CRDT_OK ||
        crdt_txn_sadd(t, "tags", "t1", "colors", &n) != CRDT_OK)
        abort();
    commit(t);
    if (crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_srem(t, "tags", "t1", "colors", &red) != CRDT_OK ||
        crdt_txn_del_field(t, "people", doc, "name") != CRDT_OK ||
        crdt_txn_del_doc(t, "stats", "s") != CRDT_OK)
        abort();
    commit(t);
}

static void
record(transcript *tr, const unsigned char *m, size_t len)
{
    if (tr->n == MAX_MSGS)
        abort();
    tr->p[tr->n] = malloc(len);
    memcpy(tr->p[tr->n], m, len);
    tr->len[tr->n] = len;
    tr->type[tr->n] = len > 1 ? m[1] : 0;
    tr->n++;
}

/* Run A and a peer to the end; keep what the peer sent A. */
static void
exchange(crdt_replica *peer, transcript *tr)
{
    crdtnet_session *sa, *sp;
    crdtnet_session_options o = CRDTNET_SESSION_OPTIONS_INIT;
    const unsigned char *m;
    size_t len;
    unsigned char *copy;

    o.batch_bytes = 512; /* several CHANGES and SNAP_CHUNK messages */
    o.sync_proto = 3;
    if (crdtnet_session_new(&sa, rep, &o) != CRDT_OK ||
        crdtnet_session_new(&sp, peer, &o) != CRDT_OK)
        abort();
    for (int round = 0; round < 1000; round++) {
        int moved = 0;
        while (crdtnet_session_next_out(sa, &m, &len) == CRDT_OK) {
            copy = malloc(len);
            memcpy(copy, m, len);
            crdtnet_session_feed(sp, copy, len);
            free(copy);
            moved = 1;
        }
        while (crdtnet_session_next_out(sp, &m, &len) == CRDT_OK) {
            record(tr, m, len);
            copy = malloc(len);
            memcpy(copy, m, len);
            if (crdtnet_session_feed(sa, copy, len) != CRDT_OK)
                abort();
            free(copy);
            moved = 1;
        }
        if (!moved)
            break;
    }
    if (!crdtnet_session_finished(sa) || crdtnet_session_error(sa) != 0)
        abort();
    crdtnet_session_free(sa);
    crdtnet_session_free(sp);
}

static size_t
index_of(const transcript *tr, int type)
{
    for (size_t i = 0; i < tr->n; i++)
        if (tr->type[i] == type)
            return i;
    abort();
}

static void
setup(void)
{
    const char *base = getenv("STRATA_FUZZ_TMP");
    char path[4300];
    crdt_replica *b, *c;
    epoch_builder *bl;
    epoch_lens *lens;
    epoch_info *all;
    size_t n;
    static const char LENS[] =
        "collection people 1 -> 2\nrename name -> full_name\n";

    if (fuzz_dir_make(tmpdir, sizeof tmpdir, base, "msg") < 0)
        abort();
    atexit(cleanup);
    snprintf(apath, sizeof apath, "%s/a", tmpdir);

    rep = open_replica(apath, 1, 0x11);
    write_ops(rep, 0);
    snprintf(path, sizeof path, "%s/b", tmpdir);
    b = open_replica(path, 1, 0x22);
    write_ops(b, 1);
    write_ops(b, 2);
    {
        const unsigned char *p;
        unsigned char seed[32], pk[32];
        crdt_export *e;
        size_t len;
        if (crdt_export_begin(&e, b, NULL) != CRDT_OK ||
            crdt_export_next(e, &p, &len) != CRDT_OK ||
            len > sizeof b_first_bytes)
            abort();
        memcpy(b_first_bytes, p, len);
        b_first_len = len;
        crdt_export_end(e);
        if (crdt_change_decode(&b_first, b_first_bytes, len) != CRDT_OK)
            abort();
        memset(seed, 0x22, sizeof seed);
        crypto_sign_seed_keypair(pk, b_sk, seed);
        if (memcmp(pk, b_first.pubkey, 32) != 0)
            abort();
    }
    snprintf(path, sizeof path, "%s/c", tmpdir);
    c = open_replica(path, 1, 0x33);
    write_ops(c, 3);
    if (epoch_lens_parse(&lens, LENS, sizeof LENS - 1, NULL) != CRDT_OK ||
        epoch_builder_new(&bl, c) != CRDT_OK ||
        epoch_builder_add_lens(bl, lens) != CRDT_OK ||
        epoch_builder_commit(NULL, bl) != CRDT_OK)
        abort();
    epoch_builder_free(bl);
    epoch_lens_free(lens);
    clock_ms += 1000;
    write_ops(c, 4); /* C's log beyond the epoch's base: SNAP_LOG */
    {   /* from C's archive, as a giver reads a cut */
        const unsigned char *h, *p;
        size_t hl, len;
        crdt_vv *upto;
        epoch_info cur;
        crdt_export *e;
        if (epoch_current(&cur, c) != CRDT_OK ||
            epoch_record_heads(&h, &hl, &cur) != CRDT_OK ||
            crdt_heads_vv(&upto, h, hl) != CRDT_OK ||
            crdt_export_begin_archive(&e, c, 0, NULL, upto) != CRDT_OK ||
            crdt_export_next(e, &p, &len) != CRDT_OK ||
            len > sizeof c_first_bytes)
            abort();
        memcpy(c_first_bytes, p, len);
        c_first_len = len;
        crdt_export_end(e);
        crdt_vv_free(upto);
        epoch_info_clear(&cur);
    }

    /* A holds C's records from the start: HELLO from C stores nothing */
    if (epoch_all(&all, &n, c) != CRDT_OK)
        abort();
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r = all[i].raw;
        size_t l = all[i].raw_len;
        if (r != NULL && epoch_store_records(rep, &r, &l, 1) != CRDT_OK)
            abort();
    }
    epoch_chain_free(all, n);

    crdt_replica_close(rep);
    snprintf(path, sizeof path, "%s/data.mdb", apath);
    {
        FILE *f = fopen(path, "rb");
        long len;
        if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) <= 0 ||
            fseek(f, 0, SEEK_SET) != 0 ||
            (pristine = malloc((size_t)len)) == NULL ||
            fread(pristine, 1, (size_t)len, f) != (size_t)len)
            abort();
        fclose(f);
        pristine_len = (size_t)len;
    }
    rep = open_replica(apath, 0, 0x11);

    take_fingerprint(&start);
    exchange(b, &from_b);
    reset_replica();
    exchange(c, &from_c);
    reset_replica();
    crdt_replica_close(b);
    crdt_replica_close(c);

    /* the prefixes: message types are those of session.c */
    prefix_of[1] = prefix_of[2] = prefix_of[7] = &from_b;
    prefix_of[3] = prefix_of[4] = prefix_of[5] = prefix_of[6] = &from_c;
    prefix_n[1] = 1;
    prefix_n[2] = index_of(&from_b, 8) + 1;  /* through DONE */
    prefix_n[7] = from_b.n;
    prefix_n[3] = 1;
    prefix_n[4] = index_of(&from_c, 4) + 1;  /* through SNAP_BEGIN */
    prefix_n[5] = index_of(&from_c, 6);      /* before SNAP_END */
    prefix_n[6] = index_of(&from_c, 6) + 1;  /* through SNAP_END */
}

/* ---- seeds ----------------------------------------------------------- */

static void
put_seed(const char *dir, const char *name, unsigned flags, const void *a,
         size_t al, const void *b, size_t bl)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fputc((int)flags, f) == EOF ||
        fwrite(a, 1, al, f) != al || fwrite(b, 1, bl, f) != bl ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void
put_msg(const char *dir, const char *name, unsigned flags,
        const transcript *tr, size_t i)
{
    put_seed(dir, name, flags, tr->p[i], tr->len[i], "", 0);
}

/* C's HELLO first, then C's FORKS and a CUT [15, [change]] (or, with
 * @p pack, [13, 15, packed]) of the @p len bytes at @p change. */
static void
put_cut_seed(const char *dir, const char *name, const unsigned char *change,
             size_t len, int pack)
{
    size_t fi = index_of(&from_c, 12), at = 0, body;
    unsigned char *packed = NULL, *list;
    size_t plen = 0;
    crdt_bytes one = { change, len };

    if (pack && crdt_changes_pack(&packed, &plen, &one, 1) != CRDT_OK)
        exit(1);
    body = pack ? plen : len;
    list = malloc(from_c.len[fi] + body + 16);
    if (list == NULL || from_c.len[fi] > 0xffff || body + 6 > 0xffff)
        exit(1);
    list[at++] = (unsigned char)(from_c.len[fi] >> 8);
    list[at++] = (unsigned char)from_c.len[fi];
    memcpy(list + at, from_c.p[fi], from_c.len[fi]);
    at += from_c.len[fi];
    list[at++] = (unsigned char)((body + 6) >> 8);
    list[at++] = (unsigned char)(body + 6);
    if (pack) { /* [13, 15, bin16] */
        list[at++] = 0x93;
        list[at++] = 0x0d;
        list[at++] = 0x0f;
    } else { /* [15, [bin16]] */
        list[at++] = 0x92;
        list[at++] = 0x0f;
        list[at++] = 0x91;
    }
    list[at++] = 0xc5;
    list[at++] = (unsigned char)(body >> 8);
    list[at++] = (unsigned char)body;
    memcpy(list + at, pack ? packed : change, body);
    at += body;
    put_seed(dir, name, 3 | 0x10, list, at, "", 0);
    crdt_free(packed);
    free(list);
}

static void
write_seeds(const char *dir)
{
    static const unsigned char error[] = {0x93, 0x0a, 0xf5, 0xa3, 'b', 'y',
                                          'e'};
    static const unsigned char busy[] = {0x92, 0x02, 0xcd, 0x03, 0xe8};
    static const unsigned char reject[] = {0x92, 0x03, 0xa6, 'p', 'o',
                                           'l', 'i', 'c', 'y'};
    static const unsigned char changes_dd[] = {0x92, 0x07, 0xdd, 0xff,
                                               0x00, 0x00, 0x00};
    static const unsigned char changes_bin32[] = {0x92, 0x07, 0x91, 0xc6,
                                                  0xff, 0xff, 0xff, 0xff};
    unsigned char *b = malloc(100010), list[4096];
    size_t k, i, at = 0;

    if (b == NULL)
        exit(1);
    put_msg(dir, "raw_hello_b", 0, &from_b, 0);
    put_msg(dir, "raw_hello_c", 0, &from_c, 0);
    put_msg(dir, "b_changes", 1, &from_b, 1);
    put_msg(dir, "b_fin", 2, &from_b, from_b.n - 1);
    put_msg(dir, "b_fin_live", 2 | 8, &from_b, from_b.n - 1);
    put_msg(dir, "c_snap_begin", 3, &from_c, prefix_n[4] - 1);
    put_msg(dir, "c_snap_chunk", 4, &from_c, prefix_n[4]);
    put_msg(dir, "c_snap_end", 5, &from_c, prefix_n[5]);
    put_msg(dir, "c_after_reset", 6, &from_c, prefix_n[6]);
    put_msg(dir, "b_after_fin_live", 7 | 8, &from_b, 1);
    put_seed(dir, "b_error", 1, error, sizeof error, "", 0);
    put_seed(dir, "signed_ops_b_first", 1 | 0x20, b_first.ops,
             b_first.ops_len, "", 0);
    put_seed(dir, "raw_busy", 0, busy, sizeof busy, "", 0);
    put_seed(dir, "b_reject", 1, reject, sizeof reject, "", 0);
    /* several: B's CHANGES, DONE and FIN after B's HELLO */
    for (i = 1; i < from_b.n && at + 2 + from_b.len[i] <= sizeof list; i++) {
        list[at++] = (unsigned char)(from_b.len[i] >> 8);
        list[at++] = (unsigned char)from_b.len[i];
        memcpy(list + at, from_b.p[i], from_b.len[i]);
        at += from_b.len[i];
    }
    put_seed(dir, "b_several", 1 | 0x10, list, at, "", 0);
    put_seed(dir, "b_changes_truncated", 1, from_b.p[1], from_b.len[1] / 2,
             "", 0);
    /* CUT after C's FORKS (A is C's taker, before SNAP_BEGIN): C's first
     * change (inside the cut), as a plain CUT and as a PACKED one; and
     * B's first change, beyond the cut (refused) */
    put_cut_seed(dir, "c_cut", c_first_bytes, c_first_len, 0);
    put_cut_seed(dir, "c_cut_packed", c_first_bytes, c_first_len, 1);
    put_cut_seed(dir, "c_cut_beyond", b_first_bytes, b_first_len, 0);
    /* bombs inside messages, and 100,000 x 0x91 as a whole message */
    put_seed(dir, "bomb_changes_array32_dd", 1, changes_dd,
             sizeof changes_dd, "", 0);
    put_seed(dir, "bomb_changes_bin32", 1, changes_bin32,
             sizeof changes_bin32, "", 0);
    b[0] = 0x92;
    b[1] = 0x05;
    for (k = 2; k + 3 <= 3002; k += 3) { /* SNAP_CHUNK of array16 chains */
        b[k] = 0xdc;
        b[k + 1] = 0xff;
        b[k + 2] = 0xff;
    }
    put_seed(dir, "bomb_snap_chunk_array16_chain", 4, b, k, "", 0);
    memset(b, 0x91, 100000);
    b[100000] = 0xc0;
    put_seed(dir, "bomb_nesting_91x100000", 0, b, 100001, "", 0);
    free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("STRATA_FUZZ_SEEDS");

    (void)argc;
    (void)argv;
    fuzz_rng_install();
    crdt_set_clock(fixed_clock, NULL);
    if (sodium_init() < 0)
        abort();
    setup();
    if (dir != NULL && *dir != '\0') {
        write_seeds(dir);
        exit(0);
    }
    return 0;
}
