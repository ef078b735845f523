/* oom.c: the allocation wrappers of support/oom.h. */
#include "support/oom.h"

#include <check.h>
#include <string.h>

#include "crdt/crdt.h"

#include "support/epoch_util.h"
#include "support/faultsites.h"
#include "support/replica_util.h"
#include "support/support.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long fail_at = -1, calls;

/* Atomic: a merge's aid and a migration's reader allocate on threads of
 * their own, and each allocation must get a number of its own. */
static int
inject(void)
{
    long at = __atomic_load_n(&fail_at, __ATOMIC_RELAXED);

    return at > 0 && __atomic_add_fetch(&calls, 1, __ATOMIC_RELAXED) == at;
}

/* The allocation returning to @p site fails: counted for
 * scripts/fault_sites.sh. */
static void *
failed(const void *site)
{
    faultsites_note("alloc", site);
    return NULL;
}

#define SITE __builtin_return_address(0)

void *
__wrap_malloc(size_t n)
{
    return inject() ? failed(SITE) : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return inject() ? failed(SITE) : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
    return inject() ? failed(SITE) : __real_realloc(p, n);
}

void
oom_arm(long n)
{
    __atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&fail_at, n, __ATOMIC_RELAXED);
}

int
oom_disarm(void)
{
    long at = __atomic_exchange_n(&fail_at, -1, __ATOMIC_RELAXED);

    return at > 0 && __atomic_load_n(&calls, __ATOMIC_RELAXED) >= at;
}

void *
oom_real_malloc(size_t n)
{
    return __real_malloc(n);
}

long
oom_each_call(const char *what, crdt_replica *r,
              int (*op)(crdt_replica *, void *), void *arg,
              int (*check)(crdt_replica *, void *),
              int (*committed)(crdt_replica *, void *), long calls_max)
{
    unsigned char before[32], after[32];
    long n;

    tu_digest_all(r, before);
    for (n = 1; n < calls_max; n++) {
        int rc, hit;

        oom_arm(n);
        rc = op(r, arg);
        hit = oom_disarm();
        if (!hit) {
            ck_assert_msg(rc == CRDT_OK, "%s: no allocation failed, the "
                          "call said %s", what, crdt_strerror(rc));
            return n - 1;
        }
        ck_assert_msg(rc == CRDT_ENOMEM, "%s: allocation %ld failed, the "
                      "call said %s (%d)", what, n, crdt_strerror(rc), rc);
        tu_digest_all(r, after);
        if (committed != NULL && memcmp(after, before, 32) != 0 &&
            committed(r, arg))
            return n;
        ck_assert_msg(memcmp(after, before, 32) == 0, "%s: allocation %ld "
                      "failed, the replica changed", what, n);
        if (check != NULL)
            ck_assert_msg(check(r, arg) == 0, "%s: allocation %ld failed, "
                          "then the replica answered otherwise", what, n);
    }
    ck_abort_msg("%s: still failing after %ld allocations", what, calls_max);
    return -1;
}

long
oom_each_call_on_copy(const char *what, const char *dir,
                      int (*op)(crdt_replica *, void *), void *arg,
                      long calls_max)
{
    unsigned char before[32], clean[32], got[32];

    for (long n = 0; n < calls_max; n++) {
        char copy[256];
        crdt_replica *r;
        int rc, hit;

        tu_copy_dir(dir, copy, sizeof copy);
        r = tu_open_dir(copy);
        tu_digest_all(r, before);
        oom_arm(n); /* 0: none fails, the clean run */
        rc = op(r, arg);
        hit = oom_disarm();
        tu_digest_all(r, got);
        crdt_replica_close(r);
        test_rmtree(copy);
        if (n == 0) {
            ck_assert_msg(rc == CRDT_OK, "%s: the clean run said %s", what,
                          crdt_strerror(rc));
            memcpy(clean, got, 32);
            continue;
        }
        if (!hit) {
            ck_assert_msg(rc == CRDT_OK && memcmp(got, clean, 32) == 0,
                          "%s: no allocation failed, the call said %s",
                          what, crdt_strerror(rc));
            return n - 1;
        }
        ck_assert_msg(rc == CRDT_OK || rc == CRDT_ENOMEM, "%s: allocation "
                      "%ld failed, the call said %s (%d)", what, n,
                      crdt_strerror(rc), rc);
        ck_assert_msg(memcmp(got, rc == CRDT_OK ? clean : before, 32) == 0,
                      "%s: allocation %ld failed, the call said %s and left "
                      "the replica otherwise", what, n, crdt_strerror(rc));
    }
    ck_abort_msg("%s: still failing after %ld allocations", what, calls_max);
    return -1;
}
