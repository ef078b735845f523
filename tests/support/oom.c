/* oom.c: the allocation wrappers of support/oom.h. */
#include "support/oom.h"

#include "support/faultsites.h"

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
