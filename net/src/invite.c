/*
 * invite.c: invitation tokens, their records in the inviter's replica,
 * and their one-time redemption by the daemon serving that replica
 * (crdtnet/invite.h, docs/security.md "Invitations").
 *
 * Token (94 bytes, base64url without padding: 126 characters):
 *   version (1, = 1) | space_id (16) | inviter_pk (32) | secret (32) |
 *   role (1) | expires (8, BE Unix seconds) | check (4)
 * with check = BLAKE2b-128(the 90 bytes before)[0..4], so a mistyped or
 * cut token is refused at once rather than failing later as a handshake.
 *
 * Record, meta key "invite/" | BLAKE2b-256("strata-invite" | secret):
 *   format (1, = 1) | role (1) | expires (8, BE) | used (1) | joiner (32)
 * Only the hash of the secret is stored, so a copy of the inviter's
 * store does not hold usable invitations.
 *
 * Invariants:
 *  (1) A record goes from unused to used in one write transaction, which
 *      LMDB serialises: two connections presenting the same secret cannot
 *      both get in.
 *  (2) The role and expiry that count are the record's, never the
 *      token's: the joiner cannot raise its own role.
 *  (3) A record is marked used before the member-set change is made, and
 *      marked unused again if that change fails, so an invitation admits
 *      at most one key.
 */
#include <sodium.h>
#include <string.h>

#include "crdt/raw.h"
#include "crdtnet/conn.h"
#include "crdtnet/invite.h"
#include "invite_internal.h"

#define TOKEN_VERSION 1
#define TOKEN_BYTES 94
#define TOKEN_BODY 90
#define REC_FORMAT 1
#define REC_BYTES 43
#define REC_PREFIX "invite/"
#define REC_KEY_BYTES (sizeof REC_PREFIX - 1 + 32)
#define HASH_LABEL "strata-invite"

static void
put64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t
get64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void
record_key(unsigned char key[REC_KEY_BYTES],
           const unsigned char secret[CRDTNET_INVITE_SECRET_BYTES])
{
    crypto_generichash_state st;

    memcpy(key, REC_PREFIX, sizeof REC_PREFIX - 1);
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const unsigned char *)HASH_LABEL,
                              sizeof HASH_LABEL - 1);
    crypto_generichash_update(&st, secret, CRDTNET_INVITE_SECRET_BYTES);
    crypto_generichash_final(&st, key + sizeof REC_PREFIX - 1, 32);
}

static int
role_ok(crdt_role role)
{
    return role == CRDT_ROLE_READER || role == CRDT_ROLE_WRITER ||
           role == CRDT_ROLE_ADMIN;
}

/* May this replica's key give @p role? Checked early so that no token
 * is made that can never be redeemed. */
static int
may_invite(crdt_replica *r, crdt_role role)
{
    unsigned char pk[CRDT_PUBKEY_BYTES];
    crdt_role self;
    int owned = crdt_members_owner(r, NULL);

    if (owned < 0)
        return owned;
    crdt_replica_public_key(r, pk);
    if (crdt_member_role(r, pk, &self) != CRDT_OK)
        return CRDT_EIO;
    return crdt_role_may_grant(self, role, owned) ? CRDT_OK : CRDT_EPERM;
}

int
crdtnet_invite_create(crdt_replica *r, crdt_role role, uint64_t ttl_seconds,
                      uint64_t now, char *token_out, size_t token_size)
{
    unsigned char tok[TOKEN_BYTES], key[REC_KEY_BYTES], rec[REC_BYTES];
    unsigned char check[16];
    crdt_raw *t;
    int rc;

    if (r == NULL || token_out == NULL ||
        token_size < CRDTNET_INVITE_TOKEN_LEN + 1 || !role_ok(role) ||
        ttl_seconds == 0 || ttl_seconds > CRDTNET_INVITE_TTL_MAX ||
        now > UINT64_MAX - ttl_seconds)
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    if ((rc = may_invite(r, role)) < 0)
        return rc;
    tok[0] = TOKEN_VERSION;
    crdt_replica_space_id(r, tok + 1);
    crdt_replica_public_key(r, tok + 17);
    randombytes_buf(tok + 49, CRDTNET_INVITE_SECRET_BYTES);
    tok[81] = (unsigned char)role;
    put64(tok + 82, now + ttl_seconds);
    crypto_generichash(check, sizeof check, tok, TOKEN_BODY, NULL, 0);
    memcpy(tok + TOKEN_BODY, check, 4);

    record_key(key, tok + 49);
    memset(rec, 0, sizeof rec);
    rec[0] = REC_FORMAT;
    rec[1] = (unsigned char)role;
    put64(rec + 2, now + ttl_seconds);
    if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
        goto out;
    rc = crdt_raw_put(t, CRDT_DB_META, key, sizeof key, rec, sizeof rec);
    if (rc < 0) {
        crdt_raw_abort(t);
        goto out;
    }
    if ((rc = crdt_raw_commit(t)) < 0)
        goto out;
    sodium_bin2base64(token_out, token_size, tok, sizeof tok,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
out:
    sodium_memzero(tok, sizeof tok);
    return rc;
}

int
crdtnet_invite_parse(const char *token, crdtnet_invite *out)
{
    unsigned char tok[TOKEN_BYTES], check[16];
    size_t n;
    int rc = CRDT_EINVAL;

    if (token == NULL || out == NULL ||
        strlen(token) != CRDTNET_INVITE_TOKEN_LEN)
        return CRDT_EINVAL;
    if (sodium_init() < 0)
        return CRDT_ERROR;
    if (sodium_base642bin(tok, sizeof tok, token, CRDTNET_INVITE_TOKEN_LEN,
                          NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != sizeof tok)
        return CRDT_EINVAL;
    crypto_generichash(check, sizeof check, tok, TOKEN_BODY, NULL, 0);
    if (tok[0] == TOKEN_VERSION && role_ok((crdt_role)tok[81]) &&
        sodium_memcmp(check, tok + TOKEN_BODY, 4) == 0) {
        memcpy(out->space_id, tok + 1, sizeof out->space_id);
        memcpy(out->inviter_pk, tok + 17, sizeof out->inviter_pk);
        memcpy(out->secret, tok + 49, sizeof out->secret);
        out->role = (crdt_role)tok[81];
        out->expires = get64(tok + 82);
        rc = CRDT_OK;
    }
    sodium_memzero(tok, sizeof tok);
    return rc;
}

int
crdtnet_invite_keep(crdt_replica *r, const crdtnet_invite *inv)
{
    unsigned char sid[CRDT_SPACE_ID_BYTES];
    crdt_raw *t;
    int rc;

    if (r == NULL || inv == NULL)
        return CRDT_EINVAL;
    crdt_replica_space_id(r, sid);
    if (sodium_memcmp(sid, inv->space_id, sizeof sid) != 0)
        return CRDT_EINVAL;
    if ((rc = crdt_raw_begin(&t, r, 1)) < 0)
        return rc;
    rc = crdt_raw_put(t, CRDT_DB_META, CRDTNET_PIN_META,
                      sizeof CRDTNET_PIN_META - 1, inv->inviter_pk,
                      CRDTNET_PK_BYTES);
    if (rc == CRDT_OK)
        rc = crdt_raw_put(t, CRDT_DB_META, CRDTNET_INVITE_META,
                          sizeof CRDTNET_INVITE_META - 1, inv->secret,
                          CRDTNET_INVITE_SECRET_BYTES);
    if (rc < 0) {
        crdt_raw_abort(t);
        return rc;
    }
    return crdt_raw_commit(t);
}

int
crdtnet__invite_pending(crdt_replica *r,
                        unsigned char secret[CRDTNET_INVITE_SECRET_BYTES])
{
    const void *v;
    size_t vl;
    uint64_t members;
    crdt_raw *t;
    int found = 0;

    if (crdtnet_member_count(r, &members) != CRDT_OK || members != 0)
        return 0;
    if (crdt_raw_begin(&t, r, 0) < 0)
        return 0;
    if (crdt_raw_get(t, CRDT_DB_META, CRDTNET_INVITE_META,
                     sizeof CRDTNET_INVITE_META - 1, &v, &vl) == CRDT_OK &&
        vl == CRDTNET_INVITE_SECRET_BYTES) {
        memcpy(secret, v, CRDTNET_INVITE_SECRET_BYTES);
        found = 1;
    }
    crdt_raw_abort(t);
    return found;
}

static void
say(char *why, size_t size, const char *text)
{
    if (why != NULL && size > 0) {
        strncpy(why, text, size - 1);
        why[size - 1] = '\0';
    }
}

/* Mark the record used by @p pk (used = 1) or unused again (used = 0);
 * with used = 1 it must be unused and not expired (keeps (1)). The role
 * in @p role_out. */
static int
mark(crdt_replica *r, const unsigned char key[REC_KEY_BYTES],
     const unsigned char *pk, int used, uint64_t now, crdt_role *role_out,
     const char **why)
{
    unsigned char rec[REC_BYTES];
    const void *v;
    size_t vl;
    crdt_raw *t;
    int rc;

    if ((rc = crdt_raw_begin(&t, r, 1)) < 0) {
        *why = "invitation: the inviter's replica cannot be written";
        return rc;
    }
    rc = crdt_raw_get(t, CRDT_DB_META, key, REC_KEY_BYTES, &v, &vl);
    if (rc < 0 || vl != REC_BYTES || ((const unsigned char *)v)[0] != REC_FORMAT) {
        crdt_raw_abort(t);
        *why = "unknown invitation (not made on the replica this daemon "
               "serves)";
        return CRDT_ENOTFOUND;
    }
    memcpy(rec, v, sizeof rec);
    if (used && rec[10] != 0) {
        crdt_raw_abort(t);
        *why = "invitation already used";
        return CRDT_EEXISTS;
    }
    if (used && now >= get64(rec + 2)) {
        crdt_raw_abort(t);
        *why = "invitation expired";
        return CRDT_EINVAL;
    }
    rec[10] = (unsigned char)used;
    if (used)
        memcpy(rec + 11, pk, CRDTNET_PK_BYTES);
    else
        memset(rec + 11, 0, CRDTNET_PK_BYTES);
    *role_out = (crdt_role)rec[1];
    rc = crdt_raw_put(t, CRDT_DB_META, key, REC_KEY_BYTES, rec, sizeof rec);
    if (rc < 0) {
        crdt_raw_abort(t);
        *why = "invitation: the inviter's replica cannot be written";
        return rc;
    }
    rc = crdt_raw_commit(t);
    if (rc < 0)
        *why = "invitation: the inviter's replica cannot be written";
    return rc;
}

int
crdtnet__invite_redeem(crdt_replica *r, const unsigned char *pk,
                       const unsigned char *secret, uint64_t now, char *why,
                       size_t why_size)
{
    unsigned char key[REC_KEY_BYTES];
    const char *text = "";
    crdt_role role, ignored;
    crdt_txn *t;
    int rc;

    if (r == NULL || pk == NULL || secret == NULL)
        return 0;
    record_key(key, secret);
    if (mark(r, key, pk, 1, now, &role, &text) < 0) {
        say(why, why_size, text);
        return 0;
    }
    /* Signed by this replica's key: the inviter's (keeps (3)). */
    rc = crdt_txn_begin(&t, r);
    if (rc == CRDT_OK) {
        rc = crdt_txn_member_set(t, pk, role);
        if (rc == CRDT_OK)
            rc = crdt_txn_commit(t, NULL);
        else
            crdt_txn_abort(t);
    }
    if (rc < 0) {
        (void)mark(r, key, pk, 0, now, &ignored, &text);
        say(why, why_size,
            rc == CRDT_EPERM ? "invitation: the inviter may no longer add "
                               "this member"
                             : "invitation: the member set cannot be "
                               "written");
        return 0;
    }
    return 1;
}
