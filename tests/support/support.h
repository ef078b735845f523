/* Helpers shared by the Check tests. */
#ifndef TEST_SUPPORT_H
#define TEST_SUPPORT_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

/** Defined by each test file. */
Suite *test_suite(void);

/** Make a fresh directory under $TMPDIR (or /tmp); 0 on success. */
int test_tmpdir(char *buf, size_t size);

/** Remove a directory tree; errors are ignored. */
void test_rmtree(const char *path);

/** A TCP socket listening on 127.0.0.1 at a free port (checked). */
int test_listen_local(int *port);

/** A small deterministic PRNG (splitmix64) for seeded tests. */
uint64_t test_rand(uint64_t *state);

/** Seed from $STRATA_SEED if set, else from the clock; printed. */
uint64_t test_seed(const char *what);

#endif
