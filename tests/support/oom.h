/*
 * Failing one allocation of our own code on purpose. Only for test
 * binaries linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc
 * and support/oom.c (tests/CMakeLists.txt): the calls of the objects in
 * that binary go through the wrappers; libc, LMDB, libsodium and
 * msgpack-c's own calls do not.
 */
#ifndef TEST_OOM_H
#define TEST_OOM_H

#include <stddef.h>

#include "crdt/replica.h"
#include "support/replica_util.h"

/* The pair fixture of an allocation test: as TU_PAIR_FIXTURE, and the
 * teardown stops failing first (a failed assertion may leave a loop
 * armed). */
#define OOM_PAIR_FIXTURE(open)                                                 \
    static char da[256], db[256];                                              \
    static crdt_replica *a, *b;                                                \
    static void setup(void) { open(&a, da, &b, db, sizeof da); }               \
    static void teardown(void)                                                 \
    {                                                                          \
        oom_disarm();                                                          \
        tu_pair_close(a, da, b, db);                                           \
    }

/* Fail the @p n-th allocation from now (counting from 1). */
void oom_arm(long n);
/* Stop failing; 1 if the armed allocation was reached (and failed). */
int oom_disarm(void);
/* The allocator itself, never failed: for the test's own buffers. */
void *oom_real_malloc(size_t n);

/* Fail each allocation of @p op(@p r, @p arg) in turn (at most
 * @p calls_max): every failed run must answer CRDT_ENOMEM and leave
 * every database of @p r byte for byte as it was, and then, when
 * @p check is given, @p check(@p r, @p arg) must answer 0 (what the
 * replica answers now is what it answered before: a cache the failure
 * may have left half built must not show). The first run that reaches
 * no armed allocation must answer CRDT_OK. Returns how many
 * allocations the operation made. With @p committed: a failure may come
 * after the operation committed (its later steps are txns of their
 * own); when the replica changed and @p committed(@p r, @p arg) says it
 * did, the operation is done and the loop ends. */
long oom_each_call(const char *what, crdt_replica *r,
                   int (*op)(crdt_replica *, void *), void *arg,
                   int (*check)(crdt_replica *, void *),
                   int (*committed)(crdt_replica *, void *), long calls_max);

/* For an operation that may absorb a failed allocation (a merge whose
 * second thread could not start does the work on one): each allocation
 * of @p op(r, @p arg) fails in turn (at most @p calls_max), each run on
 * a fresh byte copy of the closed replica under @p dir. A run must
 * answer CRDT_ENOMEM with the copy byte for byte as it was, or CRDT_OK
 * with the copy byte for byte as a run without failures leaves it.
 * Returns how many allocations the operation made. */
long oom_each_call_on_copy(const char *what, const char *dir,
                           int (*op)(crdt_replica *, void *), void *arg,
                           long calls_max);

#endif
