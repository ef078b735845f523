/*
 * fuzz_stored.c: the corrupted-store path (docs/testing.md B17;
 * bad input B17). The input becomes one stored record of a small replica
 * on tmpfs, then the replica is read, exported, merged into and written
 * through the public API. Every call must answer a code, never crash.
 *
 * Input: byte 0 picks the database, byte 1 the key, the rest is the value
 * (for STATE with a literal key: 1 length byte, the key, then the value).
 *   byte 0 % 5: 0 LOG (a stored change), 1 STATE (a materialized state
 *     entry, installed with crdt_raw_spare_put + crdt_raw_swap_state,
 *     since crdt_raw_put refuses the state databases), 2 PENDING (a
 *     parked change), 3 HEADS (an actor's chain head), 4 EPOCHS (the
 *     record of the current epoch; with byte 1 bit 0 the value is a
 *     record BODY the harness signs, as any member could);
 *   byte 1 % 5 for LOG, PENDING, HEADS: 0 an existing key (byte 1 / 5
 *     picks which), 1 our actor + 8 seq bytes from the input, 2 the
 *     peer's actor + 8 bytes, 3 the key after the peer's next changes,
 *     4 raw bytes from the input (HEADS keys are the actor alone: 8
 *     bytes, no seq);
 *   byte 1 bit 0 for STATE: overwrite an existing entry (byte 1 / 2 picks
 *     which), else a literal key.
 * Then: every export (lacking all, and lacking all but the first op) is
 * decoded, iterated and verified; the version vector, stats and every
 * document, field and collection are read; the log is replayed in an
 * aborted raw txn; two genuine changes of the peer are merged; a sync
 * session answers the peer's HELLO; each kind of local write touches
 * the corrupted document in an aborted txn; the epoch chain is read.
 * After each input the replica is put back from a pristine copy of its
 * file (every input starts from the same bytes) and must open again.
 * Checked: no crash or sanitizer report; codes are documented ones.
 * With STRATA_FUZZ_STRICT=1 also B17's "never serve garbage to peers":
 * an export or a sync message may only carry changes that decode and
 * verify (off by default: the library does not promise it today).
 * Reproducers of the bugs it found: tests/fuzz/crashes/fuzz_stored/.
 *
 * Seeds: `STRATA_FUZZ_SEEDS=DIR fuzz_stored` writes the corpus (every
 * stored record of the replica, each as an input of its database, plus
 * the bombs of docs/testing.md B3, B4) into DIR and exits.
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

enum { M_LOG, M_STATE, M_PENDING, M_HEADS, M_EPOCHS, M__COUNT };

#define MAX_KEYS 64

typedef struct {
    unsigned char k[512], *v;
    size_t kl, vl;
} entry;

/* Version 3 sessions: the peer's HELLO is its first message, sent at
 * once (version 4 first offers itself with an empty message). */
static const crdtnet_session_options v3 = { .version = 2,
                                            .sync_proto = 3 };
static char tmpdir[4096], rpath[4200], ppath[4200];
static crdt_replica *rep;             /* the replica under test */
static unsigned char *pristine;       /* its data.mdb at the start */
static size_t pristine_len;
static crdt_stats pristine_stats;
static crdt_actor own, peer;
static unsigned char genesis[32];
static unsigned char peer_hello[4096], *peer_changes[2];
static size_t peer_hello_len, peer_changes_len[2], peer_next_key_seq;
static entry log_keys[MAX_KEYS], state_keys[MAX_KEYS], pend_keys[MAX_KEYS],
    head_keys[MAX_KEYS];
static size_t n_log, n_state, n_pend, n_head;
static unsigned char signer_pk[32], signer_sk[64];
static int strict;

/* ---- deterministic randomness and clock ------------------------------ */


/* ---- files ----------------------------------------------------------- */

static void
cleanup(void)
{
    crdt_replica_close(rep);
    rep = NULL;
    if (tmpdir[0])
        fuzz_dir_remove(tmpdir);
}

static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (b = malloc((size_t)n)) == NULL ||
        fread(b, 1, (size_t)n, f) != (size_t)n)
        abort();
    fclose(f);
    *len = (size_t)n;
    return b;
}

static crdt_replica *
open_replica(const char *path, int create, unsigned char seed_byte)
{
    crdt_open_options o = CRDT_OPEN_OPTIONS_INIT;
    unsigned char seed[32], space[16];
    crdt_replica *r;

    memset(seed, seed_byte, sizeof seed);
    memset(space, 0x5a, sizeof space);
    o.create = create;
    o.no_sync = 1;
    o.space_id = space;
    o.seed = seed;
    if (crdt_replica_open(&r, path, &o) != CRDT_OK || epoch_attach(r) != 0)
        abort(); /* also: the replica must open after every input */
    return r;
}

/* Put the replica back to the pristine bytes; it must open. */
static void
reset_replica(void)
{
    char path[4300];
    int fd;

    crdt_replica_close(rep);
    snprintf(path, sizeof path, "%s/data.mdb", rpath);
    fd = open(path, O_WRONLY | O_TRUNC);
    if (fd < 0 || write(fd, pristine, pristine_len) != (ssize_t)pristine_len ||
        close(fd) != 0)
        abort();
    rep = open_replica(rpath, 0, 0x11);
}

/* ---- checks ---------------------------------------------------------- */

static void
check_code(int rc)
{
    /* a crdt_err; CRDT_EINVAL too: names taken from a corrupted key, or
     * listed from a corrupted state, may be invalid */
    if (rc > 0 || rc < CRDT_EPERM)
        abort();
}

static int
served_ok(const unsigned char *p, size_t len)
{
    crdt_change c;
    crdt_op_iter it;
    crdt_op op;
    int rc;

    if (crdt_change_decode(&c, p, len) != CRDT_OK)
        return 0;
    crdt_op_iter_init(&it, &c);
    while ((rc = crdt_op_iter_next(&op, &it)) == CRDT_OK)
        ;
    if (rc != CRDT_ENOTFOUND)
        return 0;
    return crdt_change_verify(&c) == CRDT_OK;
}

static void
served(const unsigned char *p, size_t len)
{
    if (!served_ok(p, len) && strict) {
        fprintf(stderr, "fuzz_stored: a corrupted change was served\n");
        abort();
    }
}

static void
export_all(const crdt_vv *lacks)
{
    const unsigned char *p;
    crdt_export *e;
    size_t len, n = 0;
    int rc;

    rc = crdt_export_begin(&e, rep, lacks);
    check_code(rc);
    if (rc < 0)
        return;
    while ((rc = crdt_export_next(e, &p, &len)) == CRDT_OK && n++ < 10000)
        served(p, len);
    check_code(rc);
    crdt_export_end(e);
}

static int
field_cb(const crdt_field *f, void *ctx)
{
    size_t *count = ctx;

    if (f->name == NULL || strlen(f->name) == 0 ||
        strlen(f->name) > CRDT_NAME_MAX)
        abort();
    if (f->kind == CRDT_FIELD_SET && f->n_elems > 0 && f->elems == NULL)
        abort();
    for (size_t i = 1; f->kind == CRDT_FIELD_SET && i < f->n_elems; i++)
        if (crdt_value_cmp(&f->elems[i - 1], &f->elems[i]) > 0)
            abort(); /* documented: sorted */
    (*count)++;
    return 0;
}

typedef struct {
    crdt_read *rd;
    const char *coll;
    int depth;
} walk_ctx;

static int
name_cb(const char *name, size_t len, void *ctx)
{
    walk_ctx *w = ctx;
    char buf[CRDT_NAME_MAX + 1];
    size_t count = 0;
    int rc;

    if (len == 0 || len > CRDT_NAME_MAX || strlen(name) != len)
        abort();
    memcpy(buf, name, len + 1);
    if (w->depth == 0) { /* a collection: its documents */
        walk_ctx docs = {w->rd, buf, 1};
        rc = crdt_read_docs(w->rd, buf, name_cb, &docs);
    } else { /* a document: its fields */
        rc = crdt_read_doc(w->rd, w->coll, buf, field_cb, &count);
    }
    check_code(rc);
    return 0;
}

/* Read everything: stats, vv, every collection, document and field, and
 * the one document the input names. */
static void
read_all(const char *coll, const char *doc, const char *field)
{
    crdt_read *rd;
    crdt_stats st;
    crdt_vv *vv = NULL;
    crdt_field f;
    walk_ctx w;
    uint64_t n;
    size_t count = 0;
    int rc;

    if (crdt_read_begin(&rd, rep) != CRDT_OK)
        abort();
    check_code(crdt_read_stats(&st, rd));
    rc = crdt_read_vv(&vv, rd);
    check_code(rc);
    w.rd = rd;
    w.coll = NULL;
    w.depth = 0;
    check_code(crdt_read_collections(rd, name_cb, &w));
    check_code(crdt_read_doc_count(&n, rd));
    check_code(crdt_read_doc(rd, coll, doc, field_cb, &count));
    check_code(crdt_read_docs(rd, coll, NULL, NULL));
    if (field != NULL)
        check_code(crdt_read_field(&f, rd, coll, doc, field));
    crdt_read_end(rd);
    if (rc == CRDT_OK) { /* export what a peer holding all but 1 lacks */
        crdt_actor a;
        uint64_t seq;
        crdt_vv *lacks;
        if (crdt_vv_new(&lacks) != CRDT_OK)
            abort();
        for (size_t i = 0; i < crdt_vv_count(vv); i++) {
            crdt_vv_entry(vv, i, &a, &seq);
            crdt_vv_set(lacks, &a, seq > 1 ? 1 : 0);
        }
        export_all(lacks);
        crdt_vv_free(lacks);
    }
    crdt_vv_free(vv);
}

/* Each kind of local write on the corrupted document, never committed. */
static void
local_writes(const char *coll, const char *doc, const char *field)
{
    crdt_value v = crdt_value_str("x", 1);
    crdt_txn *t;
    int rc;

    for (int k = 0; k < 6; k++) {
        rc = crdt_txn_begin(&t, rep);
        check_code(rc);
        if (rc < 0)
            return;
        switch (k) {
        case 0: rc = crdt_txn_put(t, coll, doc, field, &v); break;
        case 1: rc = crdt_txn_incr(t, coll, doc, field, 3); break;
        case 2: rc = crdt_txn_sadd(t, coll, doc, field, &v); break;
        case 3: rc = crdt_txn_srem(t, coll, doc, field, &v); break;
        case 4: rc = crdt_txn_del_field(t, coll, doc, field); break;
        default: rc = crdt_txn_del_doc(t, coll, doc); break;
        }
        check_code(rc);
        crdt_txn_abort(t);
    }
}

/* What a peer's session gets from us after its HELLO. */
static void
sync_with_peer(void)
{
    crdtnet_session *s;
    const unsigned char *msg;
    size_t len;
    int rc, n = 0;

    if (crdtnet_session_new(&s, rep, &v3) != CRDT_OK)
        abort();
    rc = crdtnet_session_feed(s, peer_hello, peer_hello_len);
    check_code(rc);
    while (n++ < 64 && crdtnet_session_next_out(s, &msg, &len) == CRDT_OK) {
        /* CHANGES: [7, [bin...]]: check what we serve */
        if (len > 2 && msg[0] == 0x92 && msg[1] == 0x07) {
            const unsigned char *p = msg + 2, *end = msg + len;
            uint32_t cnt = 0, i;
            if ((*p & 0xf0) == 0x90) {
                cnt = *p & 0x0f;
                p++;
            } else if (*p == 0xdc && end - p >= 3) {
                cnt = (uint32_t)p[1] << 8 | p[2];
                p += 3;
            }
            for (i = 0; i < cnt && p < end; i++) {
                uint32_t l;
                if (*p == 0xc4 && end - p >= 2) {
                    l = p[1];
                    p += 2;
                } else if (*p == 0xc5 && end - p >= 3) {
                    l = (uint32_t)p[1] << 8 | p[2];
                    p += 3;
                } else if (*p == 0xc6 && end - p >= 5) {
                    l = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 |
                        (uint32_t)p[3] << 8 | p[4];
                    p += 5;
                } else {
                    abort(); /* we encode every change as bin */
                }
                if (l > (size_t)(end - p))
                    abort();
                served(p, l);
                p += l;
            }
        }
    }
    crdtnet_session_free(s);
}

static void
merge_peer(void)
{
    crdt_bytes b[2] = {{peer_changes[0], peer_changes_len[0]},
                       {peer_changes[1], peer_changes_len[1]}};
    crdt_merge_report mr;
    crdt_raw *t;
    int rc;

    check_code(crdt_merge(&mr, rep, b, 2));
    if (crdt_raw_begin(&t, rep, 1) != CRDT_OK)
        abort();
    rc = crdt_raw_replay_log(&mr, t, 0);
    check_code(rc);
    crdt_raw_abort(t);
}

static void
read_epochs(void)
{
    epoch_info e, *chain = NULL;
    epoch_relation rel;
    size_t n = 0;
    int rc;

    rc = epoch_current(&e, rep);
    check_code(rc);
    if (rc == CRDT_OK)
        epoch_info_clear(&e);
    rc = epoch_chain(&chain, &n, rep);
    check_code(rc);
    if (rc == CRDT_OK)
        epoch_chain_free(chain, n);
    rc = epoch_all(&chain, &n, rep);
    check_code(rc);
    if (rc == CRDT_OK)
        epoch_chain_free(chain, n);
    rc = epoch_relate(&rel, NULL, rep, genesis, NULL);
    check_code(rc);
}

/* ---- installing the input -------------------------------------------- */

static unsigned char *
sign_body(size_t *len_out, const unsigned char *body, size_t bl)
{
    crypto_generichash_state st;
    unsigned char id[32], msg[40], *out, *q;
    const uint64_t ms = 1700000000000ULL;

    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)"strata-epoch-v1",
                              15);
    crypto_generichash_update(&st, body, bl);
    crypto_generichash_final(&st, id, 32);
    memcpy(msg, id, 32);
    for (int i = 0; i < 8; i++)
        msg[32 + i] = (unsigned char)(ms >> (56 - 8 * i));
    out = malloc(bl + 128);
    if (out == NULL)
        abort();
    q = out;
    *q++ = 0x94;
    *q++ = 0xc6;
    for (int i = 0; i < 4; i++)
        *q++ = (unsigned char)(bl >> (24 - 8 * i));
    memcpy(q, body, bl);
    q += bl;
    *q++ = 0xc4, *q++ = 32, memcpy(q, signer_pk, 32), q += 32;
    *q++ = 0xcf;
    memcpy(q, msg + 32, 8);
    q += 8;
    *q++ = 0xc4, *q++ = 64;
    crypto_sign_detached(q, NULL, msg, sizeof msg, signer_sk);
    q += 64;
    *len_out = (size_t)(q - out);
    return out;
}

/* Key for LOG, PENDING, HEADS from byte 1 and the input. */
static int
pick_key(unsigned char *k, size_t *kl, const entry *keys, size_t n_keys,
         size_t width, unsigned sel, const uint8_t **p, size_t *left)
{
    const unsigned char *actor = NULL;

    switch (sel % 5) {
    case 0:
        if (n_keys == 0)
            return -1;
        memcpy(k, keys[(sel / 5) % n_keys].k, keys[(sel / 5) % n_keys].kl);
        *kl = keys[(sel / 5) % n_keys].kl;
        return 0;
    case 1: actor = own.b; break;
    case 2: actor = peer.b; break;
    case 3:
        memcpy(k, peer.b, 8);
        for (int i = 0; i < 8; i++)
            k[8 + i] = (unsigned char)(peer_next_key_seq >> (56 - 8 * i));
        *kl = width;
        return 0;
    default:
        if (*left < width)
            return -1;
        memcpy(k, *p, width);
        *kl = width;
        *p += width;
        *left -= width;
        return 0;
    }
    memcpy(k, actor, 8);
    if (width > 8) {
        if (*left < 8)
            return -1;
        memcpy(k + 8, *p, 8);
        *p += 8;
        *left -= 8;
    }
    *kl = width;
    return 0;
}

/* Install the state entry k -> v with the public two-slot calls. */
static int
install_state(const unsigned char *k, size_t kl, const unsigned char *v,
              size_t vl)
{
    crdt_raw *t;
    int rc;

    if ((rc = crdt_raw_begin(&t, rep, 1)) < 0)
        abort();
    rc = crdt_raw_spare_clear(t);
    for (size_t i = 0; rc == CRDT_OK && i < n_state; i++)
        if (state_keys[i].kl != kl || memcmp(state_keys[i].k, k, kl) != 0)
            rc = crdt_raw_spare_put(t, state_keys[i].k, state_keys[i].kl,
                                    state_keys[i].v, state_keys[i].vl);
    if (rc == CRDT_OK)
        rc = crdt_raw_spare_put(t, k, kl, v, vl);
    if (rc == CRDT_OK)
        rc = crdt_raw_swap_state(t);
    if (rc < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    return crdt_raw_commit(t);
}

/* The coll, doc and field a state key names (coll 0 doc 0 field 0 ...),
 * or the seeds' document. */
static void
names_of(char *coll, char *doc, char *field, const unsigned char *k,
         size_t kl)
{
    char *out[3] = {coll, doc, field};
    size_t at = 0;

    strcpy(coll, "people");
    strcpy(doc, "p1");
    strcpy(field, "name");
    for (int i = 0; i < 3 && at < kl; i++) {
        const unsigned char *z = memchr(k + at, 0, kl - at);
        size_t n = z ? (size_t)(z - (k + at)) : kl - at;
        if (n == 0 || n > CRDT_NAME_MAX)
            break;
        memcpy(out[i], k + at, n);
        out[i][n] = 0;
        at += n + 1;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const crdt_db dbs[M__COUNT] = {CRDT_DB_LOG, 0, CRDT_DB_PENDING,
                                          CRDT_DB_HEADS, CRDT_DB_EPOCHS};
    unsigned char key[512], *val = NULL;
    char coll[CRDT_NAME_MAX + 1], doc[CRDT_NAME_MAX + 1],
        field[CRDT_NAME_MAX + 1];
    const uint8_t *p;
    size_t kl = 0, vl, left;
    unsigned mode, sel;
    crdt_raw *t;
    int rc;

    if (size < 2)
        return 0;
    mode = data[0] % M__COUNT;
    sel = data[1];
    p = data + 2;
    left = size - 2;
    switch (mode) {
    case M_LOG:
        rc = pick_key(key, &kl, log_keys, n_log, 16, sel, &p, &left);
        break;
    case M_PENDING:
        rc = pick_key(key, &kl, pend_keys, n_pend, 16, sel, &p, &left);
        break;
    case M_HEADS:
        rc = pick_key(key, &kl, head_keys, n_head, 8, sel, &p, &left);
        break;
    case M_EPOCHS:
        memcpy(key, genesis, 32);
        kl = 32;
        rc = 0;
        break;
    default: /* STATE */
        if (sel & 1) {
            const entry *e = &state_keys[(sel / 2) % n_state];
            memcpy(key, e->k, e->kl);
            kl = e->kl;
        } else {
            if (left < 1 || (kl = p[0]) > left - 1)
                return 0;
            memcpy(key, p + 1, kl);
            p += 1 + kl;
            left -= 1 + kl;
        }
        rc = 0;
        break;
    }
    if (rc < 0)
        return 0;
    if (mode == M_EPOCHS && (sel & 1)) {
        val = sign_body(&vl, p, left);
    } else {
        vl = left;
        val = malloc(vl ? vl : 1);
        if (val == NULL)
            return 0;
        if (vl)
            memcpy(val, p, vl);
    }

    if (mode == M_STATE) {
        rc = install_state(key, kl, val, vl);
    } else {
        if (crdt_raw_begin(&t, rep, 1) != CRDT_OK)
            abort();
        rc = crdt_raw_put(t, dbs[mode], key, kl, val, vl);
        if (rc == CRDT_OK)
            rc = crdt_raw_commit(t);
        else
            crdt_raw_abort(t);
    }
    free(val);
    if (rc != CRDT_OK) { /* e.g. a key LMDB refuses: nothing stored */
        check_code(rc);
        return 0;
    }

    names_of(coll, doc, field, mode == M_STATE ? key : NULL,
             mode == M_STATE ? kl : 0);
    export_all(NULL);
    read_all(coll, doc, field);
    merge_peer();
    read_all(coll, doc, field);
    sync_with_peer();
    local_writes(coll, doc, field);
    read_epochs();
    reset_replica();
    return 0;
}

/* ---- set-up ----------------------------------------------------------- */

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
    crdt_value s = crdt_value_str(variant ? "Grace" : "Ada", variant ? 5 : 3);
    crdt_value red = crdt_value_str("red", 3), seven = crdt_value_int(7);
    crdt_txn *t;

    if (crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_put(t, "people", "p1", "name", &s) != CRDT_OK ||
        crdt_txn_incr(t, "stats", "s", "hits", 5 + variant) != CRDT_OK ||
        crdt_txn_sadd(t, "tags", "t1", "colors", &red) != CRDT_OK ||
        crdt_txn_sadd(t, "tags", "t1", "colors", &seven) != CRDT_OK)
        abort();
    commit(t);
    if (crdt_txn_begin(&t, r) != CRDT_OK ||
        crdt_txn_srem(t, "tags", "t1", "colors", &red) != CRDT_OK ||
        crdt_txn_put(t, "people", "p2", "name", &s) != CRDT_OK ||
        crdt_txn_del_field(t, "people", "p2", "name") != CRDT_OK ||
        crdt_txn_put(t, "people", "p3", "age", &seven) != CRDT_OK ||
        crdt_txn_del_doc(t, "people", "p3") != CRDT_OK)
        abort();
    commit(t);
}

/* Copy what export gives into owned buffers. */
static size_t
export_copy(crdt_replica *r, const crdt_vv *lacks, unsigned char **out,
            size_t *lens, size_t max)
{
    const unsigned char *p;
    crdt_export *e;
    size_t len, n = 0;

    if (crdt_export_begin(&e, r, lacks) != CRDT_OK)
        abort();
    while (n < max && crdt_export_next(e, &p, &len) == CRDT_OK) {
        out[n] = malloc(len);
        memcpy(out[n], p, len);
        lens[n++] = len;
    }
    crdt_export_end(e);
    return n;
}

static size_t
collect(entry *out, crdt_db db, int state)
{
    const void *k, *v;
    size_t kl, vl, n = 0;
    crdt_raw_cursor *c;
    crdt_raw *t;
    int rc;

    if (crdt_raw_begin(&t, rep, 0) != CRDT_OK)
        abort();
    if (state)
        db = crdt_raw_state_db(t, 0);
    if (crdt_raw_cursor_open(&c, t, db) != CRDT_OK)
        abort();
    rc = crdt_raw_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
    while (rc == CRDT_OK && n < MAX_KEYS) {
        if (kl > sizeof out[n].k)
            abort();
        memcpy(out[n].k, k, kl);
        out[n].kl = kl;
        out[n].v = malloc(vl ? vl : 1);
        memcpy(out[n].v, v, vl);
        out[n].vl = vl;
        n++;
        rc = crdt_raw_cursor_next(c, &k, &kl, &v, &vl);
    }
    crdt_raw_cursor_close(c);
    crdt_raw_abort(t);
    return n;
}

static void
setup(void)
{
    const char *base = getenv("STRATA_FUZZ_TMP");
    unsigned char *chg[16], seed[32];
    size_t lens[16], n;
    crdt_replica *p;
    crdtnet_session *s;
    const unsigned char *msg;
    size_t len;
    crdt_read *rd;
    char path[4300];

    if (fuzz_dir_make(tmpdir, sizeof tmpdir, base, "stored") < 0)
        abort();
    atexit(cleanup);
    snprintf(rpath, sizeof rpath, "%s/r", tmpdir);
    snprintf(ppath, sizeof ppath, "%s/p", tmpdir);
    memset(seed, 0x33, sizeof seed);
    crypto_sign_seed_keypair(signer_pk, signer_sk, seed);

    /* the peer writes 4 changes; we get the first 2 */
    rep = open_replica(rpath, 1, 0x11);
    p = open_replica(ppath, 1, 0x22);
    write_ops(rep, 0);
    write_ops(p, 1);
    write_ops(p, 2);
    n = export_copy(p, NULL, chg, lens, 16);
    if (n != 4)
        abort();
    {
        crdt_bytes b[2] = {{chg[0], lens[0]}, {chg[1], lens[1]}};
        if (crdt_merge(NULL, rep, b, 2) != CRDT_OK)
            abort();
    }
    peer_changes[0] = chg[2];
    peer_changes[1] = chg[3];
    peer_changes_len[0] = lens[2];
    peer_changes_len[1] = lens[3];
    free(chg[0]);
    free(chg[1]);
    own = crdt_replica_actor(rep);
    peer = crdt_replica_actor(p);
    {
        crdt_change c;
        if (crdt_change_decode(&c, chg[3], lens[3]) != CRDT_OK)
            abort();
        peer_next_key_seq = c.seq + c.n_ops; /* the first seq after */
    }
    /* the peer's HELLO */
    if (crdtnet_session_new(&s, p, &v3) != CRDT_OK ||
        crdtnet_session_next_out(s, &msg, &len) != CRDT_OK ||
        len > sizeof peer_hello)
        abort();
    memcpy(peer_hello, msg, len);
    peer_hello_len = len;
    crdtnet_session_free(s);
    crdt_replica_close(p);

    /* a parked change: the peer's 4th, keyed actor | first seq */
    {
        crdt_change c;
        unsigned char k[16];
        crdt_raw *t;
        if (crdt_change_decode(&c, chg[3], lens[3]) != CRDT_OK)
            abort();
        memcpy(k, c.actor.b, 8);
        for (int i = 0; i < 8; i++)
            k[8 + i] = (unsigned char)(c.seq >> (56 - 8 * i));
        if (crdt_raw_begin(&t, rep, 1) != CRDT_OK ||
            crdt_raw_put(t, CRDT_DB_PENDING, k, 16, chg[3], lens[3]) !=
                CRDT_OK ||
            crdt_raw_commit(t) != CRDT_OK)
            abort();
    }
    if (crdt_read_begin(&rd, rep) != CRDT_OK ||
        crdt_read_stats(&pristine_stats, rd) != CRDT_OK)
        abort();
    crdt_read_end(rd);
    memcpy(genesis, pristine_stats.epoch_id, 32);
    n_log = collect(log_keys, CRDT_DB_LOG, 0);
    n_state = collect(state_keys, 0, 1);
    n_pend = collect(pend_keys, CRDT_DB_PENDING, 0);
    n_head = collect(head_keys, CRDT_DB_HEADS, 0);
    if (n_log == 0 || n_state == 0 || n_pend == 0 || n_head == 0)
        abort();
    crdt_replica_close(rep);
    snprintf(path, sizeof path, "%s/data.mdb", rpath);
    pristine = slurp(path, &pristine_len);
    rep = open_replica(rpath, 0, 0x11);
}

/* ---- seeds ----------------------------------------------------------- */

static void
put_seed(const char *dir, const char *name, unsigned m, unsigned sel,
         const void *pre, size_t pl, const void *v, size_t vl)
{
    char path[4096];
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || fputc((int)m, f) == EOF || fputc((int)sel, f) == EOF ||
        fwrite(pre, 1, pl, f) != pl || fwrite(v, 1, vl, f) != vl ||
        fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void
write_seeds(const char *dir)
{
    unsigned char *b = malloc(100001);
    char name[64];
    size_t k;
    unsigned char kl;

    if (b == NULL)
        exit(1);
    /* every stored record as an overwrite of itself, and some variants */
    for (size_t i = 0; i < n_log && i < 2; i++) {
        snprintf(name, sizeof name, "log_change_%zu", i);
        put_seed(dir, name, M_LOG, (unsigned)(i * 5), "", 0, log_keys[i].v,
                 log_keys[i].vl);
    }
    snprintf(name, sizeof name, "log_truncated");
    put_seed(dir, name, M_LOG, 0, "", 0, log_keys[0].v, log_keys[0].vl / 2);
    put_seed(dir, "log_peer_next", M_LOG, 3, "", 0, peer_changes[0],
             peer_changes_len[0]);
    for (size_t i = 0; i < n_state && i < 3; i++) {
        snprintf(name, sizeof name, "state_entry_%zu", i);
        put_seed(dir, name, M_STATE, (unsigned)(1 + i * 2), "", 0,
                 state_keys[i].v, state_keys[i].vl);
    }
    kl = (unsigned char)state_keys[0].kl;
    b[0] = kl;
    memcpy(b + 1, state_keys[0].k, kl);
    put_seed(dir, "state_literal_key", M_STATE, 0, b, 1u + kl,
             state_keys[0].v, state_keys[0].vl);
    /* the collection's kept lens defaults (n = "-"), whole and cut short:
     * every document read meets them */
    {
        const char *c = (const char *)state_keys[0].k;
        size_t cl = strnlen(c, state_keys[0].kl);
        static const unsigned char pairs[] = { 1, 'n', 0, 2, 0xa1, '-' };

        b[0] = (unsigned char)(2 + cl);
        b[1] = 0;
        b[2] = 'V';
        memcpy(b + 3, c, cl);
        put_seed(dir, "state_kept_defaults", M_STATE, 0, b, 3 + cl, pairs,
                 sizeof pairs);
        put_seed(dir, "state_kept_defaults_short", M_STATE, 0, b, 3 + cl,
                 pairs, sizeof pairs - 1);
    }
    put_seed(dir, "pending_change", M_PENDING, 0, "", 0, pend_keys[0].v,
             pend_keys[0].vl);
    put_seed(dir, "heads_entry", M_HEADS, 0, "", 0, head_keys[0].v,
             head_keys[0].vl);
    put_seed(dir, "heads_short", M_HEADS, 5, "", 0, head_keys[0].v, 20);
    /* epoch record bodies: parent genesis, no schema; number 1, and
     * 2^64-1 (an epoch chain of that length) */
    for (int huge = 0; huge < 2; huge++) {
        unsigned char body[200], *q = body;
        *q++ = 0x98, *q++ = 0x01;
        if (huge)
            *q++ = 0xcf, memset(q, 0xff, 8), q += 8;
        else
            *q++ = 0x01;
        *q++ = 0xc4, *q++ = 32, memcpy(q, genesis, 32), q += 32;
        *q++ = 0x80, *q++ = 0xa0, *q++ = 0xa0;
        *q++ = 0xc4, *q++ = 0x01, *q++ = 0x90;
        *q++ = 0xc4, *q++ = 32, memcpy(q, pristine_stats.state_hash, 32);
        q += 32;
        put_seed(dir, huge ? "epochs_assisted_huge_number"
                           : "epochs_assisted_body",
                 M_EPOCHS, 1, "", 0, body, (size_t)(q - body));
    }
    /* the bombs, as a stored change and as a state value */
    for (unsigned m = 0; m < 2; m++) {
        const char *pre = m == M_LOG ? "log" : "state";
        unsigned sel = m == M_LOG ? 0 : 1;
#define PUT(nm, v, vl)                                                       \
    do {                                                                     \
        snprintf(name, sizeof name, "%s_bomb_%s", pre, nm);                  \
        put_seed(dir, name, m, sel, "", 0, v, vl);                           \
    } while (0)
        PUT("array32_dd_ff000000",
            ((const unsigned char[]){0xdd, 0xff, 0x00, 0x00, 0x00}), 5);
        memset(b, 0x91, 100000);
        b[100000] = 0xc0;
        PUT("nesting_91x100000", b, m == M_LOG ? 100001 : 60000);
        for (k = 0; k + 3 <= 3000; k += 3) {
            b[k] = 0xdc;
            b[k + 1] = 0xff;
            b[k + 2] = 0xff;
        }
        if (m == M_STATE)
            continue; /* the rest only as a change: 20 seeds at most */
        PUT("array16_chain", b, k);
        PUT("bin32_ffffffff",
            ((const unsigned char[]){0x92, 0xc6, 0xff, 0xff, 0xff, 0xff}),
            6);
#undef PUT
    }
    free(b);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *s = getenv("STRATA_FUZZ_STRICT");

    (void)argc;
    (void)argv;
    strict = s != NULL && *s == '1';
    fuzz_init_signing();
    setup();
    return fuzz_seeds_if_asked(write_seeds);
}
