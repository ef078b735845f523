/*
 * replica.c: opening a replica, creating one, and its identity.
 *
 * Identity: an Ed25519 key pair, random or from a 32-byte seed (which a
 * recovery phrase derives). Each replica also draws a random 8-byte
 * incarnation when it is created; the actor id is BLAKE2b-64(pubkey ||
 * incarnation). A replica recovered from the phrase or restored from a
 * backup gets a new incarnation, hence a new actor id, so it never
 * reuses an (actor, seq) that peers have already seen.
 */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "mergeaid.h"
#include "seq.h"

/* Written in the txn that creates the store (crdt__store_open), with
 * the format record: a replica is never left with one and not the
 * other, and creating one costs one commit, which the first durable
 * commit after it syncs (store_lmdb.c (6)). */
int
crdt__genesis_put(MDB_txn *txn, crdt_replica *r, const crdt_open_options *o)
{
    unsigned char pk[32], sk[64], seed[32], inc[8], space[16], id[32];
    unsigned char zero[32] = { 0 };
    int rc;

    if (o->seed != NULL)
        memcpy(seed, o->seed, sizeof seed);
    else
        randombytes_buf(seed, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_memzero(seed, sizeof seed);
    randombytes_buf(inc, sizeof inc);
    if (o->space_id != NULL)
        memcpy(space, o->space_id, sizeof space);
    else
        randombytes_buf(space, sizeof space);
    {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, sizeof id);
        crypto_generichash_update(&st, (const unsigned char *)"strata-genesis",
                                  14);
        crypto_generichash_update(&st, space, sizeof space);
        crypto_generichash_final(&st, id, sizeof id);
    }

    if ((rc = crdt__meta_put(txn, r, "space", space, 16)) < 0 ||
        (rc = crdt__meta_put(txn, r, "pk", pk, 32)) < 0 ||
        (rc = crdt__meta_put(txn, r, "sk", sk, 64)) < 0 ||
        (rc = crdt__meta_put(txn, r, "inc", inc, 8)) < 0 ||
        (rc = crdt__meta_put(txn, r, "epoch_id", id, 32)) < 0 ||
        (rc = crdt__meta_put(txn, r, "genesis_id", id, 32)) < 0 ||
        (rc = crdt__meta_put_u64(txn, r, "epoch_num", 0)) < 0 ||
        (rc = crdt__meta_put_u64(txn, r, "slot", 0)) < 0 ||
        (rc = crdt__meta_put(txn, r, "hash0", zero, 32)) < 0 ||
        (rc = crdt__meta_put(txn, r, "hash1", zero, 32)) < 0) {
        sodium_memzero(sk, sizeof sk);
        return rc;
    }
    sodium_memzero(sk, sizeof sk);
    return CRDT_OK;
}

static int
load_identity(crdt_replica *r)
{
    MDB_txn *txn;
    MDB_val v;
    int rc;

    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
#define LOAD(key, dst)                                                    \
    do {                                                                  \
        rc = crdt__meta_get(txn, r, key, &v);                             \
        if (rc == CRDT_OK && v.mv_size != sizeof(dst))                    \
            rc = CRDT_ECORRUPT;                                           \
        if (rc < 0)                                                       \
            goto done;                                                    \
        memcpy(dst, v.mv_data, sizeof(dst));                              \
    } while (0)
    LOAD("space", r->space_id);
    LOAD("pk", r->pk);
    LOAD("sk", r->sk);
    LOAD("inc", r->incarnation);
#undef LOAD
    crdt__actor_of(&r->actor, r->pk, r->incarnation);
done:
    crdt__txn_end(r, txn, 0);
    return rc == CRDT_ENOTFOUND ? CRDT_ECORRUPT : rc;
}

int
crdt_replica_open(crdt_replica **out, const char *path,
                  const crdt_open_options *opts)
{
    crdt_open_options defaults = CRDT_OPEN_OPTIONS_INIT;
    crdt_replica *r;
    int rc, created = 0;

    if (out == NULL || path == NULL || path[0] == '\0')
        return CRDT_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return CRDT_ENOMEM;
    r->path = strdup(path);
    if (r->path == NULL) {
        free(r);
        return CRDT_ENOMEM;
    }
    r->map_statm_fd = -1;
    pthread_rwlock_init(&r->grow_lock, NULL);
    pthread_mutex_init(&r->txns_lock, NULL);
    pthread_mutex_init(&r->map_lock, NULL);
    pthread_mutex_init(&r->feed_lock, NULL);
    pthread_mutex_init(&r->seq_lock, NULL);
    pthread_mutex_init(&r->sync_lock, NULL);
    pthread_cond_init(&r->sync_cond, NULL);
    pthread_mutex_init(&r->wq_lock, NULL);
    pthread_cond_init(&r->wq_lead_cond, NULL);
    r->read_only = opts->read_only;
    r->max_map_size = opts->max_map_size;
    r->max_drift_ms = opts->max_drift_ms ? opts->max_drift_ms : 300000;
    r->pending_max_actor = opts->pending_max_actor ? opts->pending_max_actor
                                                   : 1024;
    r->pending_max = opts->pending_max ? opts->pending_max : 65536;
    r->pending_max_gap = opts->pending_max_gap ? opts->pending_max_gap
                                               : (uint64_t)1 << 20;

    rc = crdt__store_open(r, path, opts, &created); /* and the genesis */
    if (rc == CRDT_OK)
        rc = load_identity(r);
    if (rc == CRDT_OK) /* a crash right after a reset may have left it */
        rc = crdt_replica_check_incarnation(NULL, r);
    if (rc < 0) {
        crdt_replica_close(r);
        return rc;
    }
    *out = r;
    return CRDT_OK;
}

void
crdt_replica_close(crdt_replica *r)
{
    if (r == NULL)
        return;
    if (r->hook.release != NULL)
        r->hook.release(r->hook_ctx);
    crdt__store_close(r);
    sodium_memzero(r->sk, sizeof r->sk);
    pthread_rwlock_destroy(&r->grow_lock);
    pthread_mutex_destroy(&r->txns_lock);
    free(r->txns);
    crdt__applyq_free(&r->applyq);
    free(r->merge_buf);
    if (r->merge_run != NULL)
        crdt__logrun_free(r->merge_run);
    free(r->merge_run);
    crdt__mergeaid_free(r->merge_aid);
    pthread_mutex_destroy(&r->map_lock);
    while (r->subs != NULL) /* left subscribed: freed with the replica */
        crdt_feed_unsubscribe(r->subs);
    pthread_mutex_destroy(&r->feed_lock);
    free(r->notify_path);
    crdt__seq_cache_free(r);
    pthread_mutex_destroy(&r->seq_lock);
    pthread_cond_destroy(&r->sync_cond);
    pthread_cond_destroy(&r->wq_lead_cond);
    pthread_mutex_destroy(&r->wq_lock);
    pthread_mutex_destroy(&r->sync_lock);
    free(r->path);
    free(r);
}

int
crdt_replica_mark_damaged(crdt_replica *r)
{
    if (r == NULL)
        return 0;
    return __atomic_exchange_n(&r->damaged, 1, __ATOMIC_SEQ_CST) == 0;
}

int
crdt_replica_damaged(const crdt_replica *r)
{
    return r != NULL && __atomic_load_n(&r->damaged, __ATOMIC_SEQ_CST);
}

int
crdt_replica_failed(crdt_replica *r)
{
    return r != NULL && crdt__store_failed(r);
}

const char *
crdt_replica_path(const crdt_replica *r)
{
    return r->path;
}

void
crdt_replica_space_id(const crdt_replica *r, unsigned char *out)
{
    memcpy(out, r->space_id, CRDT_SPACE_ID_BYTES);
}

void
crdt_replica_public_key(const crdt_replica *r, unsigned char *out)
{
    memcpy(out, r->pk, CRDT_PUBKEY_BYTES);
}

int
crdt_replica_sign(unsigned char *sig, const crdt_replica *r, const void *msg,
                  size_t len)
{
    if (sig == NULL || r == NULL || (msg == NULL && len > 0))
        return CRDT_EINVAL;
    crypto_sign_detached(sig, NULL, msg != NULL ? msg : (const void *)"",
                         len, r->sk);
    return CRDT_OK;
}

void
crdt_free(void *p)
{
    free(p);
}

int
crdt_replica_create_like(crdt_replica **out, const crdt_replica *from,
                         const char *dir, const crdt_open_options *o)
{
    crdt_open_options opts = CRDT_OPEN_OPTIONS_INIT;
    unsigned char seed[CRDT_SEED_BYTES], space[CRDT_SPACE_ID_BYTES];
    int rc;

    if (out == NULL || from == NULL || dir == NULL)
        return CRDT_EINVAL;
    if (o != NULL)
        opts = *o;
    if (opts.seed != NULL || opts.read_only)
        return CRDT_EINVAL;
    /* libsodium's Ed25519 secret key is seed | public key */
    memcpy(seed, from->sk, CRDT_SEED_BYTES);
    if (opts.space_id == NULL) {
        memcpy(space, from->space_id, CRDT_SPACE_ID_BYTES);
        opts.space_id = space;
    }
    opts.create = 1;
    opts.seed = seed;
    rc = crdt_replica_open(out, dir, &opts);
    sodium_memzero(seed, sizeof seed);
    return rc;
}

crdt_actor
crdt_replica_actor(const crdt_replica *r)
{
    return r->actor;
}

void
crdt_replica_set_epoch_hook(crdt_replica *r, const crdt_epoch_hook *hook,
                            void *ctx)
{
    if (r->hook.release != NULL)
        r->hook.release(r->hook_ctx);
    if (hook != NULL)
        r->hook = *hook;
    else
        memset(&r->hook, 0, sizeof r->hook);
    r->hook_ctx = ctx;
}

int
crdt_seed_from_phrase(unsigned char *seed_out, const char *phrase,
                      size_t len)
{
    /* A fixed salt: the phrase alone must give the same identity on any
     * machine. Argon2id's cost is what resists guessing. */
    static const unsigned char salt[crypto_pwhash_SALTBYTES] =
        "strata-identity";

    if (seed_out == NULL || phrase == NULL || len < 8)
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    if (crypto_pwhash(seed_out, CRDT_SEED_BYTES, phrase, len, salt,
                      crypto_pwhash_OPSLIMIT_INTERACTIVE,
                      crypto_pwhash_MEMLIMIT_INTERACTIVE,
                      crypto_pwhash_ALG_ARGON2ID13) != 0)
        return CRDT_ENOMEM;
    return CRDT_OK;
}

void
crdt_hex(char *out, const unsigned char *bin, size_t len)
{
    static const char d[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = d[bin[i] >> 4];
        out[2 * i + 1] = d[bin[i] & 15];
    }
    out[2 * len] = 0;
}

static int
nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
crdt_unhex(unsigned char *out, size_t len, const char *hex)
{
    if (hex == NULL || strlen(hex) != 2 * len)
        return CRDT_EINVAL;
    for (size_t i = 0; i < len; i++) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return CRDT_EINVAL;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return CRDT_OK;
}

int
crdt_replica_new_incarnation(crdt_replica *r)
{
    unsigned char inc[8];
    MDB_txn *txn;
    int rc;

    if (r == NULL)
        return CRDT_EINVAL;
    randombytes_buf(inc, sizeof inc);
    if ((rc = crdt__txn_begin(r, 1, &txn)) < 0)
        return rc;
    if ((rc = crdt__meta_put(txn, r, "inc", inc, sizeof inc)) < 0) {
        crdt__txn_end(r, txn, 0);
        return rc;
    }
    if ((rc = crdt__txn_end(r, txn, 1)) < 0)
        return rc;
    memcpy(r->incarnation, inc, sizeof inc);
    crdt__actor_of(&r->actor, r->pk, r->incarnation);
    return CRDT_OK;
}

uint64_t
crdt_replica_last_txn(crdt_replica *r)
{
    MDB_envinfo info;

    if (r == NULL || r->env == NULL || mdb_env_info(r->env, &info) != 0)
        return 0;
    return (uint64_t)info.me_last_txnid;
}

int
crdt__actor_stale(MDB_txn *txn, crdt_replica *r)
{
    MDB_val v;
    crdt__head h;
    uint64_t issued = 0;
    int rc, mine = 0;

    rc = crdt__meta_get(txn, r, "own_seq", &v);
    if (rc == CRDT_OK && v.mv_size == 16 &&
        memcmp(v.mv_data, r->actor.b, 8) == 0) {
        issued = crdt__rd64((const unsigned char *)v.mv_data + 8);
        mine = 1;
    }
    if (rc == CRDT_OK || rc == CRDT_ENOTFOUND)
        rc = crdt__head_get(txn, r, &r->actor, &h);
    if (rc < 0 && rc != CRDT_ENOTFOUND && rc != CRDT_ECORRUPT)
        return rc; /* the disk failed: not a verdict */
    /* behind what we issued: our own changes are parked after a reset;
     * ahead of it (or a head where we never wrote): someone else signs
     * as this actor — a copy of this directory, or its original. An
     * unreadable head is verify's business, not this check's. */
    if (mine)
        return rc == CRDT_ENOTFOUND || (rc == CRDT_OK && h.seq != issued);
    return rc == CRDT_OK;
}

int
crdt_replica_check_incarnation(int *renewed_out, crdt_replica *r)
{
    MDB_txn *txn;
    int rc;

    if (renewed_out)
        *renewed_out = 0;
    if (r == NULL)
        return CRDT_EINVAL;
    if (r->read_only)
        return CRDT_OK;
    if ((rc = crdt__txn_begin(r, 0, &txn)) < 0)
        return rc;
    rc = crdt__actor_stale(txn, r);
    crdt__txn_end(r, txn, 0);
    if (rc <= 0)
        return rc;
    rc = crdt_replica_new_incarnation(r);
    if (rc == CRDT_OK && renewed_out)
        *renewed_out = 1;
    return rc;
}
