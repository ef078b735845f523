/*
 * Where injected failures landed, for the count of call sites reached
 * (scripts/fault_sites.sh). With STRATA_FAULT_SITES=DIR in the
 * environment, each distinct call site (a return address) that a
 * fault wrapper failed is appended, once per process, to
 * DIR/KIND.PID as "BINARY OFFSET" (for addr2line -e BINARY). Without
 * it, nothing is written.
 */
#ifndef TEST_FAULTSITES_H
#define TEST_FAULTSITES_H

/* Note that the wrapper of kind @p kind ("mdb", "alloc") failed the
 * call that returns to @p site. Thread-safe. */
void faultsites_note(const char *kind, const void *site);

#endif
