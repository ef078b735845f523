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

/* Fail the @p n-th allocation from now (counting from 1). */
void oom_arm(long n);
/* Stop failing; 1 if the armed allocation was reached (and failed). */
int oom_disarm(void);
/* The allocator itself, never failed: for the test's own buffers. */
void *oom_real_malloc(size_t n);

#endif
