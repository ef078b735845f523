/*
 * Failing one LMDB call of our own code on purpose. Only for test
 * binaries linked with support/mdbfault.c and the linker's --wrap for
 * each call below (tests/CMakeLists.txt, MDBFAULT_CALLS): the calls that
 * the libraries' objects in that binary make go through the wrappers.
 *
 * The armed call answers EIO without doing anything (a commit aborts its
 * txn first, as LMDB's failed commit frees it). From then on the txn it
 * belonged to behaves as LMDB's does after an error: every further call
 * on it answers MDB_BAD_TXN until it is aborted, and each such call is
 * counted as a misuse (after an error, only an abort may follow).
 */
#ifndef TEST_MDBFAULT_H
#define TEST_MDBFAULT_H

#include "crdt/replica.h"

/* Fail the @p n-th wrapped call from now (counting from 1), with EIO. */
void mdbfault_arm(long n);
/* Which calls mdbfault_arm_code() counts (the others pass, uncounted):
 * every one; those that write pages (puts, deletes, drops and the
 * commit: where LMDB answers MDB_MAP_FULL or MDB_TXN_FULL); read txns'
 * begins (where it answers MDB_READERS_FULL); every txn's begin (where
 * it answers MDB_MAP_RESIZED). */
enum { MDBFAULT_ANY, MDBFAULT_WRITES, MDBFAULT_READ_BEGINS, MDBFAULT_BEGINS };
/* Fail the @p n-th call of kind @p which from now with @p code (an
 * MDB_* code or an errno). */
void mdbfault_arm_code(long n, int code, int which);
/* 1: read-only txns begun from now on, and every call on them, are
 * never failed nor counted: for an operation that takes a failed read
 * txn as "no reader slot free" and does the work another way (a
 * migration reads the base on a second thread only if it can begin a
 * txn for it, and otherwise reads it in its write txn). Their own
 * failures are the read tests' business. 0: the default again. */
void mdbfault_spare_reads(int on);
/* Stop failing; 1 if the armed call was reached (and failed). */
int mdbfault_disarm(void);
/* Calls made on a txn after its injected error, since the last arm. */
long mdbfault_misuses(void);
/* Where the last misuse was called from (a return address), or NULL. */
const void *mdbfault_misuse_site(void);
/* Where the armed call was made from (a return address), or NULL. */
const void *mdbfault_failed_site(void);
/* @p site as "FILE OFFSET" for addr2line -f -e FILE OFFSET. */
const char *mdbfault_where(const void *site);
/* The call stacks (offsets for addr2line -f -i -e BINARY) of the armed
 * call and of the last misuse, for a survey of what to mend. */
const char *mdbfault_stacks(void);
/* Distinct call sites (return addresses) failed since the process
 * began: how many different places the loops reached. */
long mdbfault_sites(void);

/* ---- the loops' verdicts (Check assertions) ---- */

/* MDBFAULT_SURVEY=1 in the environment: a wrong answer is printed (with
 * mdbfault_stacks()) and the loop goes on, for a list of every place to
 * mend instead of the first one. */
int mdbfault_survey(void);
#define MDBFAULT_EXPECT(cond, ...)                                             \
    do {                                                                       \
        if (mdbfault_survey() && !(cond))                                      \
            mdbfault_print(__VA_ARGS__);                                       \
        else                                                                   \
            ck_assert_msg(cond, __VA_ARGS__);                                  \
    } while (0)
void mdbfault_print(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* The verdict on one armed run of @p what that answered @p rc (after
 * mdbfault_arm(@p n)): disarms, then 1 when it succeeded without
 * reaching the armed call (the loop is done); 0 when it failed as it
 * should: CRDT_EIO, and no call on the failed txn but its abort. In a
 * survey, 2 for a success that should have failed (the loop goes on
 * from the replica as it is now). */
int mdbfault_judge(int rc, long n, const char *what);
/* In a survey, how far a loop went: @p n - 1 calls, and the call sites
 * failed so far in this process. */
void mdbfault_reach(const char *test, long n);

/* Fail each LMDB call of @p op(@p r, @p arg) in turn (at most
 * @p calls_max): every failure must answer as mdbfault_judge() says and
 * leave every database of @p r byte for byte as it was; returns how many
 * calls the operation made, once a run reaches no armed call. With
 * @p committed: a failure may come after the operation committed (its
 * later steps are txns of their own); when @p committed(@p r, @p arg)
 * says it did, the operation is done and the loop ends. */
long mdbfault_each_call(const char *what, crdt_replica *r,
                        int (*op)(crdt_replica *, void *), void *arg,
                        int (*committed)(crdt_replica *, void *),
                        long calls_max);

/* MDB_MAP_FULL at each call of @p op(r, @p arg) that writes pages, in
 * turn (at most @p calls_max), each run on a fresh byte copy of the
 * replica under @p dir (closed): every run must answer CRDT_OK, the map
 * grown and the work redone, with no call on the failed txn but its
 * abort, and leave what a run without the failure leaves: with @p same
 * MDBFAULT_SAME_BYTES, every database byte for byte (for an operation
 * whose result depends on nothing else); MDBFAULT_SAME_STATE, the state
 * hash (a migration: its epoch record holds the time it was made);
 * 0: not compared (a local write: its stamps are the clock's). Returns
 * how many such calls the operation made. */
enum { MDBFAULT_SAME_BYTES = 1, MDBFAULT_SAME_STATE = 2 };
long mdbfault_each_write_full(const char *what, const char *dir,
                              int (*op)(crdt_replica *, void *), void *arg,
                              int same, long calls_max);
/* The same loop for another answer the library must absorb: @p code at
 * each call of kind @p which (mdbfault_arm_code()) in turn. E.g.
 * MDB_MAP_RESIZED at each txn's begin (another process grew the map):
 * the size is adopted and the txn begun again. */
long mdbfault_each_absorbed(const char *what, const char *dir, int code,
                            int which, int (*op)(crdt_replica *, void *),
                            void *arg, int same, long calls_max);

#endif
