/*
 * test_authority.c: roles in merge (docs/security.md): only admins
 * change the member set, a removed key stays out, and a change whose
 * author was removed concurrently is refused the same way on every
 * replica, whatever order the changes arrive in, and kept in the
 * quarantine with its reason.
 */
#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "epoch/epoch.h"
#include "support/replica_util.h"
#include "support/support.h"

#define MAXR 6
static char dirs[MAXR][256];
static crdt_replica *reps[MAXR];
static int nreps;
static unsigned char space[CRDT_SPACE_ID_BYTES];

/* A replica of key @p seed in the test's space (a new incarnation). */
static crdt_replica *
open_as(const unsigned char *seed)
{
    int i = nreps++;

    ck_assert_int_lt(i, MAXR);
    reps[i] = tu_create_seeded(dirs[i], sizeof dirs[i], space, seed, NULL);
    return reps[i];
}

static crdt_replica *
open_owner(const unsigned char *seed)
{
    unsigned char nonce[CRDT_SPACE_NONCE_BYTES];
    int i = nreps++;

    ck_assert_int_lt(i, MAXR);
    tu_owner_space(space, nonce, seed);
    reps[i] = tu_create_seeded(dirs[i], sizeof dirs[i], space, seed, nonce);
    return reps[i];
}

static void
setup(void)
{
    nreps = 0;
}

static void
teardown(void)
{
    for (int i = 0; i < nreps; i++) {
        crdt_replica_close(reps[i]);
        test_rmtree(dirs[i]);
    }
}

static void
key_of(unsigned char *pk, const unsigned char *seed)
{
    unsigned char sk[64];
    crypto_sign_seed_keypair(pk, sk, seed);
}

/* A raw write to the member set, as a modified client could sign one. */
static int
put_member_field(crdt_replica *r, const unsigned char *pk, const char *field,
                 int yes)
{
    char hex[65];
    crdt_value v = crdt_value_bool(yes);
    crdt_txn *t;
    int rc;

    crdt_hex(hex, pk, 32);
    if ((rc = crdt_txn_begin(&t, r)) < 0)
        return rc;
    if ((rc = crdt_txn_put(t, CRDT_MEMBERS_COLL, hex, field, &v)) < 0) {
        crdt_txn_abort(t);
        return rc;
    }
    return crdt_txn_commit(t, NULL);
}

static crdt_role
role(crdt_replica *r, const unsigned char *pk)
{
    crdt_role out = CRDT_ROLE_NONE;
    ck_assert_int_eq(crdt_member_role(r, pk, &out), CRDT_OK);
    return out;
}

typedef struct {
    int authority, other;
    char last[200];
} why_ctx;

static int
count_why(const epoch_quarantined *q, void *p)
{
    why_ctx *c = p;

    if (strncmp(q->reason, "authority:", 10) == 0) {
        c->authority++;
        snprintf(c->last, sizeof c->last, "%s", q->reason);
    } else {
        c->other++;
    }
    return 0;
}

static why_ctx
refusals(crdt_replica *r)
{
    why_ctx c;
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(epoch_quarantine_list(r, count_why, &c), CRDT_OK);
    return c;
}

static void
assert_same(crdt_replica *x, crdt_replica *y)
{
    char hx[65], hy[65];
    tu_hash(hx, x);
    tu_hash(hy, y);
    ck_assert_str_eq(hx, hy);
}

typedef struct {
    unsigned char pk[8][32];
    crdt_role role[8];
    int n;
} seen_members;

static int
note_member(const unsigned char *pk, crdt_role r, void *ctx)
{
    seen_members *s = ctx;

    ck_assert_int_lt(s->n, 8);
    memcpy(s->pk[s->n], pk, 32);
    s->role[s->n++] = r;
    return 0;
}

static int
stop_at_first(const unsigned char *pk, crdt_role r, void *ctx)
{
    (void)pk;
    (void)r;
    ++*(int *)ctx;
    return 1;
}

/* The set's walk gives keys and roles; callers never read its fields. */
START_TEST(test_members_each_gives_keys_and_roles)
{
    unsigned char so[32], po[32], pw[32] = { 1 }, pr[32] = { 2 },
                                  pa[32] = { 3 }, px[32] = { 4 };
    seen_members s = { .n = 0 };
    crdt_replica *o;
    uint64_t n = 99;
    int calls = 0;

    randombytes_buf(so, 32);
    key_of(po, so);
    o = open_owner(so);
    ck_assert_int_eq(tu_set_role(o, pw, CRDT_ROLE_WRITER), CRDT_OK);
    ck_assert_int_eq(tu_set_role(o, pr, CRDT_ROLE_READER), CRDT_OK);
    ck_assert_int_eq(tu_set_role(o, pa, CRDT_ROLE_ADMIN), CRDT_OK);
    ck_assert_int_eq(tu_set_role(o, px, CRDT_ROLE_WRITER), CRDT_OK);
    ck_assert_int_eq(tu_remove_key(o, px), CRDT_OK);
    ck_assert_int_eq(crdt_members_each(o, 0, note_member, &s), CRDT_OK);
    ck_assert_int_eq(s.n, 5); /* owner, three members, one removed */
    for (int i = 0; i < s.n; i++) {
        crdt_role want = memcmp(s.pk[i], po, 32) == 0   ? CRDT_ROLE_OWNER
                         : memcmp(s.pk[i], pw, 32) == 0 ? CRDT_ROLE_WRITER
                         : memcmp(s.pk[i], pr, 32) == 0 ? CRDT_ROLE_READER
                         : memcmp(s.pk[i], pa, 32) == 0 ? CRDT_ROLE_ADMIN
                                                        : CRDT_ROLE_REMOVED;
        ck_assert_int_eq(s.role[i], want);
        if (want == CRDT_ROLE_REMOVED)
            ck_assert_mem_eq(s.pk[i], px, 32);
        if (i > 0) /* key order */
            ck_assert_int_lt(memcmp(s.pk[i - 1], s.pk[i], 32), 0);
    }
    ck_assert_int_eq(crdt_members_count(&n, o), CRDT_OK);
    ck_assert_uint_eq(n, 4); /* the removed key is not let in */
    ck_assert_int_eq(crdt_role_admits(CRDT_ROLE_REMOVED), 0);
    ck_assert_int_eq(crdt_role_admits(CRDT_ROLE_NONE), 0);
    ck_assert_int_eq(crdt_role_admits(CRDT_ROLE_READER), 1);
    /* a callback's non-zero return stops the walk */
    ck_assert_int_eq(crdt_members_each(o, 0, stop_at_first, &calls),
                     CRDT_OK);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(crdt_members_each(NULL, 0, note_member, &s),
                     CRDT_EINVAL);
    ck_assert_int_eq(crdt_members_count(NULL, o), CRDT_EINVAL);
}
END_TEST

START_TEST(test_writer_cannot_change_member_set)
{
    unsigned char so[32], sw[32], pw[32], px[32] = { 7 };
    crdt_replica *o, *w, *fake;
    crdt_merge_report rep;
    tu_batch b;

    randombytes_buf(so, 32);
    randombytes_buf(sw, 32);
    key_of(pw, sw);
    o = open_owner(so);
    ck_assert_int_eq(tu_set_role(o, pw, CRDT_ROLE_WRITER), CRDT_OK);
    w = open_as(sw);
    ck_assert_int_eq(tu_sync_one_way(w, o), CRDT_OK);
    ck_assert_int_eq(role(w, pw), CRDT_ROLE_WRITER);
    /* its own replica refuses the write at once */
    ck_assert_int_eq(tu_set_role(w, px, CRDT_ROLE_WRITER), CRDT_EPERM);
    ck_assert_int_eq(put_member_field(w, px, "member", 1), CRDT_EPERM);
    /* a replica of the same key that never learned the owner signs it */
    fake = open_as(sw);
    ck_assert_int_eq(put_member_field(fake, px, "member", 1), CRDT_OK);
    ck_assert_int_eq(put_member_field(fake, pw, "admin", 1), CRDT_OK);
    b = tu_export_all(fake);
    ck_assert_int_eq(crdt_merge(&rep, o, b.v, b.n), CRDT_OK);
    ck_assert_uint_eq(rep.unauthorized_ops, 2);
    ck_assert_uint_eq(rep.changes_applied, 2); /* logged: nothing lost */
    tu_batch_free(&b);
    ck_assert_int_eq(role(o, px), CRDT_ROLE_NONE);
    ck_assert_int_eq(role(o, pw), CRDT_ROLE_WRITER);
    ck_assert_int_eq(refusals(o).authority, 2);
    ck_assert_ptr_nonnull(strstr(refusals(o).last, "admin"));
    /* and a replica that hears it from w judges it the same */
    ck_assert_int_eq(tu_sync_one_way(w, o), CRDT_OK);
    ck_assert_int_eq(role(w, px), CRDT_ROLE_NONE);
    ck_assert_int_eq(refusals(w).authority, 2);
    assert_same(o, w);
}
END_TEST

START_TEST(test_removed_member_cannot_readd_itself)
{
    unsigned char so[32], sw[32], pw[32], px[32] = { 8 };
    crdt_replica *o, *w, *fake, *late;
    crdt_merge_report rep;
    char buf[32];
    tu_batch b;

    randombytes_buf(so, 32);
    randombytes_buf(sw, 32);
    key_of(pw, sw);
    o = open_owner(so);
    ck_assert_int_eq(tu_set_role(o, pw, CRDT_ROLE_ADMIN), CRDT_OK);
    w = open_as(sw);
    ck_assert_int_eq(tu_sync_one_way(w, o), CRDT_OK);
    ck_assert_int_eq(tu_put_int(w, "c", "d", "f", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(o, w), CRDT_OK);
    ck_assert_int_eq(tu_remove_key(o, pw), CRDT_OK);
    ck_assert_int_eq(role(o, pw), CRDT_ROLE_REMOVED);
    /* the owner's own replica will not re-add a removed key either */
    ck_assert_int_eq(tu_set_role(o, pw, CRDT_ROLE_WRITER), CRDT_EPERM);
    /* w, before hearing of it, grants a key and writes; an admin may
     * not touch an admin's record, its own included */
    ck_assert_int_eq(put_member_field(w, pw, "member", 1), CRDT_EPERM);
    ck_assert_int_eq(put_member_field(w, px, "member", 1), CRDT_OK);
    ck_assert_int_eq(tu_put_int(w, "c", "d", "f", 2), CRDT_OK);
    /* a fresh replica of the same key tries too */
    fake = open_as(sw);
    ck_assert_int_eq(put_member_field(fake, pw, "member", 1), CRDT_OK);
    b = tu_export_all(fake);
    ck_assert_int_eq(crdt_merge(&rep, o, b.v, b.n), CRDT_OK);
    ck_assert_uint_eq(rep.unauthorized_ops, 1);
    tu_batch_free(&b);
    ck_assert_int_eq(tu_sync_one_way(o, w), CRDT_OK);
    ck_assert_int_eq(role(o, pw), CRDT_ROLE_REMOVED);
    ck_assert_int_eq(role(o, px), CRDT_ROLE_NONE);
    tu_field_str(buf, sizeof buf, o, "c", "d", "f");
    ck_assert_str_eq(buf, "1"); /* the write before the removal stays */
    ck_assert_int_eq(refusals(o).authority, 3);
    ck_assert_ptr_nonnull(strstr(refusals(o).last, "removed"));
    /* a replica that gets w's changes before the removal ends the same */
    late = open_as(so);
    ck_assert_int_eq(tu_sync_one_way(late, w), CRDT_OK);
    tu_field_str(buf, sizeof buf, late, "c", "d", "f");
    ck_assert_str_eq(buf, "2");
    ck_assert_int_eq(tu_sync_one_way(late, o), CRDT_OK);
    tu_field_str(buf, sizeof buf, late, "c", "d", "f");
    ck_assert_str_eq(buf, "1");
    ck_assert_int_eq(role(late, pw), CRDT_ROLE_REMOVED);
    ck_assert_int_eq(role(late, px), CRDT_ROLE_NONE);
    ck_assert_int_eq(refusals(late).authority, 3);
    assert_same(o, late);
    /* and w itself, once it hears, agrees and may not write again */
    ck_assert_int_eq(tu_sync_one_way(w, o), CRDT_OK);
    assert_same(o, w);
    ck_assert_int_eq(tu_put_int(w, "c", "d", "f", 3), CRDT_EPERM);
}
END_TEST

/* The removal and the removed writer's change are concurrent: every
 * delivery order gives the same state and the same refusals. */
START_TEST(test_concurrent_removal_same_everywhere)
{
    unsigned char so[32], sa[32], sw[32], pa[32], pw[32];
    crdt_replica *o, *a, *w, *p1, *p2;
    char buf[32];

    randombytes_buf(so, 32);
    randombytes_buf(sa, 32);
    randombytes_buf(sw, 32);
    key_of(pa, sa);
    key_of(pw, sw);
    o = open_owner(so);
    ck_assert_int_eq(tu_set_role(o, pa, CRDT_ROLE_ADMIN), CRDT_OK);
    a = open_as(sa);
    ck_assert_int_eq(tu_sync_one_way(a, o), CRDT_OK);
    /* an admin adds a writer; it may not make admins */
    ck_assert_int_eq(tu_set_role(a, pw, CRDT_ROLE_WRITER), CRDT_OK);
    ck_assert_int_eq(tu_set_role(a, pw, CRDT_ROLE_ADMIN), CRDT_EPERM);
    w = open_as(sw);
    ck_assert_int_eq(tu_sync_one_way(w, a), CRDT_OK);
    ck_assert_int_eq(role(w, pw), CRDT_ROLE_WRITER);
    ck_assert_int_eq(tu_put_int(w, "c", "x", "f", 1), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(a, w), CRDT_OK);
    /* a removes w having seen x=1; w concurrently writes x=2 and y */
    ck_assert_int_eq(tu_remove_key(a, pw), CRDT_OK);
    ck_assert_int_eq(tu_put_int(w, "c", "x", "f", 2), CRDT_OK);
    ck_assert_int_eq(tu_put_int(w, "c", "y", "f", 5), CRDT_OK);
    p1 = open_as(so);
    p2 = open_as(so);
    ck_assert_int_eq(tu_sync_one_way(p1, a), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(p1, w), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(p2, w), CRDT_OK);
    ck_assert_int_eq(tu_sync_one_way(p2, a), CRDT_OK);
    for (crdt_replica *p = p1; p != NULL; p = p == p1 ? p2 : NULL) {
        tu_field_str(buf, sizeof buf, p, "c", "x", "f");
        ck_assert_str_eq(buf, "1");
        tu_field_str(buf, sizeof buf, p, "c", "y", "f");
        ck_assert_str_eq(buf, "");
        ck_assert_int_eq(role(p, pw), CRDT_ROLE_REMOVED);
        ck_assert_int_eq(refusals(p).authority, 2);
        ck_assert_int_eq(refusals(p).other, 0);
    }
    assert_same(p1, p2);
    /* the owner removes the admin: a's later grants no longer count */
    ck_assert_int_eq(tu_sync_one_way(o, a), CRDT_OK);
    ck_assert_int_eq(tu_remove_key(o, pa), CRDT_OK);
    {
        unsigned char px[32] = { 9 };
        ck_assert_int_eq(tu_set_role(a, px, CRDT_ROLE_WRITER), CRDT_OK);
        ck_assert_int_eq(tu_sync_one_way(p1, a), CRDT_OK);
        ck_assert_int_eq(role(p1, px), CRDT_ROLE_WRITER);
        ck_assert_int_eq(tu_sync_one_way(p1, o), CRDT_OK);
        ck_assert_int_eq(role(p1, px), CRDT_ROLE_NONE);
        ck_assert_int_eq(role(p1, pa), CRDT_ROLE_REMOVED);
        ck_assert_int_eq(tu_sync_one_way(p2, o), CRDT_OK);
        ck_assert_int_eq(tu_sync_one_way(p2, a), CRDT_OK);
        ck_assert_int_eq(role(p2, px), CRDT_ROLE_NONE);
        assert_same(p1, p2);
    }
}
END_TEST

/* A space made without an owner keeps the rules it always had. */
START_TEST(test_space_without_owner_unchanged)
{
    unsigned char s1[32], s2[32], p2[32];
    crdt_replica *x, *y;
    crdt_merge_report rep;
    tu_batch b;

    randombytes_buf(s1, 32);
    randombytes_buf(s2, 32);
    randombytes_buf(space, sizeof space);
    key_of(p2, s2);
    x = open_as(s1);
    y = open_as(s2);
    ck_assert_int_eq(crdt_members_owner(x, NULL), 0);
    ck_assert_int_eq(put_member_field(y, p2, "member", 1), CRDT_OK);
    b = tu_export_all(y);
    ck_assert_int_eq(crdt_merge(&rep, x, b.v, b.n), CRDT_OK);
    ck_assert_uint_eq(rep.unauthorized_ops, 0);
    tu_batch_free(&b);
    ck_assert_int_eq(role(x, p2), CRDT_ROLE_ADMIN);
}
END_TEST

Suite *
test_suite(void)
{
    Suite *s = suite_create("authority");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_members_each_gives_keys_and_roles);
    tcase_add_test(tc, test_writer_cannot_change_member_set);
    tcase_add_test(tc, test_removed_member_cannot_readd_itself);
    tcase_add_test(tc, test_concurrent_removal_same_everywhere);
    tcase_add_test(tc, test_space_without_owner_unchanged);
    suite_add_tcase(s, tc);
    return s;
}
