/* oom.c: the allocation wrappers of support/oom.h. */
#include "support/oom.h"

#include <check.h>
#include <string.h>

#include "crdt/crdt.h"

#include "support/faultsites.h"
#include "support/replica_util.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static long fail_at = -1, calls;

static int
inject(void)
{
    return fail_at > 0 && ++calls == fail_at;
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
    calls = 0;
    fail_at = n;
}

int
oom_disarm(void)
{
    int hit = fail_at > 0 && calls >= fail_at;

    fail_at = -1;
    return hit;
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
