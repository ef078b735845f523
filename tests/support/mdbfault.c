/* mdbfault.c: the LMDB wrappers of support/mdbfault.h. */
#define _GNU_SOURCE /* dladdr() */
#include <dlfcn.h>
#include <execinfo.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include "support/mdbfault.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>

#include <check.h>

#include "crdt/error.h"
#include "support/epoch_util.h"
#include "support/faultsites.h"
#include "support/replica_util.h"
#include "support/support.h"

int __real_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags,
                         MDB_txn **txn);
int __real_mdb_txn_commit(MDB_txn *txn);
void __real_mdb_txn_abort(MDB_txn *txn);
int __real_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __real_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
                   unsigned int flags);
int __real_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __real_mdb_drop(MDB_txn *txn, MDB_dbi dbi, int del);
int __real_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int __real_mdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data,
                          MDB_cursor_op op);
int __real_mdb_cursor_put(MDB_cursor *cursor, MDB_val *key, MDB_val *data,
                          unsigned int flags);
int __real_mdb_cursor_del(MDB_cursor *cursor, unsigned int flags);

int __wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags,
                         MDB_txn **txn);
int __wrap_mdb_txn_commit(MDB_txn *txn);
void __wrap_mdb_txn_abort(MDB_txn *txn);
int __wrap_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
                   unsigned int flags);
int __wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data);
int __wrap_mdb_drop(MDB_txn *txn, MDB_dbi dbi, int del);
int __wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor);
int __wrap_mdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data,
                          MDB_cursor_op op);
int __wrap_mdb_cursor_put(MDB_cursor *cursor, MDB_val *key, MDB_val *data,
                          unsigned int flags);
int __wrap_mdb_cursor_del(MDB_cursor *cursor, unsigned int flags);

#define FAILED_MAX 64  /* txns that met an error and are not ended yet */
#define SITES_MAX 4096 /* distinct call sites failed */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long fail_at = -1, calls, misuses;
static const void *misuse_site, *failed_site;
#define STACK_MAX 8
static void *failed_stack[STACK_MAX], *misuse_stack[STACK_MAX];
static int failed_depth, misuse_depth;
static MDB_txn *failed[FAILED_MAX];
static const void *sites[SITES_MAX];
static long n_sites;
static int spare_reads; /* read txns' begins pass, uncounted */
static int fail_code = EIO, fail_which = MDBFAULT_ANY;

/* What a wrapped call is, for mdbfault_arm_code()'s @c which. */
enum { K_READ_BEGIN, K_WRITE_BEGIN, K_WRITE, K_OTHER };

static int
counted(int kind)
{
    switch (fail_which) {
    case MDBFAULT_WRITES: return kind == K_WRITE;
    case MDBFAULT_READ_BEGINS: return kind == K_READ_BEGIN;
    case MDBFAULT_BEGINS:
        return kind == K_READ_BEGIN || kind == K_WRITE_BEGIN;
    default: return 1;
    }
}

/* Read txns begun under mdbfault_spare_reads(1): their calls pass. */
static MDB_txn *spare[FAILED_MAX];

/* The two sets of txns above, each FAILED_MAX slots (under lock). */
static int
txn_in(MDB_txn *const *set, const MDB_txn *txn)
{
    for (int i = 0; i < FAILED_MAX; i++)
        if (txn != NULL && set[i] == txn)
            return 1;
    return 0;
}

static void
txn_mark(MDB_txn **set, MDB_txn *txn, int on)
{
    for (int i = 0; i < FAILED_MAX; i++) {
        if (on && set[i] == NULL) {
            set[i] = txn;
            return;
        }
        if (!on && set[i] == txn)
            set[i] = NULL;
    }
}

static void
note_site(const void *site)
{
    faultsites_note("mdb", site);
    for (long i = 0; i < n_sites; i++)
        if (sites[i] == site)
            return;
    if (n_sites < SITES_MAX)
        sites[n_sites++] = site;
}

/* 0: make the real call; otherwise the error to answer instead. @p txn
 * is the call's txn (NULL for a txn's begin). */
static int
verdict(MDB_txn *txn, const void *site, int kind)
{
    int rc = 0;

    pthread_mutex_lock(&lock);
    if (txn_in(spare, txn)) {
        rc = 0;
    } else if (txn_in(failed, txn)) {
        misuses++;
        misuse_site = site;
        misuse_depth = backtrace(misuse_stack, STACK_MAX);
        rc = MDB_BAD_TXN;
    } else if (fail_at > 0 && counted(kind) && ++calls == fail_at) {
        note_site(site);
        failed_site = site;
        failed_depth = backtrace(failed_stack, STACK_MAX);
        if (txn != NULL)
            txn_mark(failed, txn, 1);
        rc = fail_code;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static void
ended(MDB_txn *txn)
{
    pthread_mutex_lock(&lock);
    txn_mark(failed, txn, 0);
    txn_mark(spare, txn, 0);
    pthread_mutex_unlock(&lock);
}

#define SITE __builtin_return_address(0)

int
__wrap_mdb_txn_begin(MDB_env *env, MDB_txn *parent, unsigned int flags,
                     MDB_txn **txn)
{
    int rc;

    if ((flags & MDB_RDONLY) && spare_reads) {
        rc = __real_mdb_txn_begin(env, parent, flags, txn);
        if (rc == 0) {
            pthread_mutex_lock(&lock);
            txn_mark(spare, *txn, 1);
            pthread_mutex_unlock(&lock);
        }
        return rc;
    }
    rc = verdict(parent, SITE,
                 (flags & MDB_RDONLY) ? K_READ_BEGIN : K_WRITE_BEGIN);
    return rc ? rc : __real_mdb_txn_begin(env, parent, flags, txn);
}

int
__wrap_mdb_txn_commit(MDB_txn *txn)
{
    int rc = verdict(txn, SITE, K_WRITE);

    if (rc) { /* LMDB's failed commit frees the txn: so does this one */
        ended(txn);
        __real_mdb_txn_abort(txn);
        return rc;
    }
    ended(txn);
    return __real_mdb_txn_commit(txn);
}

void
__wrap_mdb_txn_abort(MDB_txn *txn)
{
    ended(txn);
    __real_mdb_txn_abort(txn);
}

int
__wrap_mdb_get(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    int rc = verdict(txn, SITE, K_OTHER);

    return rc ? rc : __real_mdb_get(txn, dbi, key, data);
}

int
__wrap_mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data,
               unsigned int flags)
{
    int rc = verdict(txn, SITE, K_WRITE);

    return rc ? rc : __real_mdb_put(txn, dbi, key, data, flags);
}

int
__wrap_mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    int rc = verdict(txn, SITE, K_WRITE);

    return rc ? rc : __real_mdb_del(txn, dbi, key, data);
}

int
__wrap_mdb_drop(MDB_txn *txn, MDB_dbi dbi, int del)
{
    int rc = verdict(txn, SITE, K_WRITE);

    return rc ? rc : __real_mdb_drop(txn, dbi, del);
}

int
__wrap_mdb_cursor_open(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cursor)
{
    int rc = verdict(txn, SITE, K_OTHER);

    return rc ? rc : __real_mdb_cursor_open(txn, dbi, cursor);
}

int
__wrap_mdb_cursor_get(MDB_cursor *cursor, MDB_val *key, MDB_val *data,
                      MDB_cursor_op op)
{
    int rc = verdict(mdb_cursor_txn(cursor), SITE, K_OTHER);

    return rc ? rc : __real_mdb_cursor_get(cursor, key, data, op);
}

int
__wrap_mdb_cursor_put(MDB_cursor *cursor, MDB_val *key, MDB_val *data,
                      unsigned int flags)
{
    int rc = verdict(mdb_cursor_txn(cursor), SITE, K_WRITE);

    return rc ? rc : __real_mdb_cursor_put(cursor, key, data, flags);
}

int
__wrap_mdb_cursor_del(MDB_cursor *cursor, unsigned int flags)
{
    int rc = verdict(mdb_cursor_txn(cursor), SITE, K_WRITE);

    return rc ? rc : __real_mdb_cursor_del(cursor, flags);
}

void
mdbfault_spare_reads(int on)
{
    pthread_mutex_lock(&lock);
    spare_reads = on;
    pthread_mutex_unlock(&lock);
}

void
mdbfault_arm(long n)
{
    mdbfault_arm_code(n, EIO, MDBFAULT_ANY);
}

void
mdbfault_arm_code(long n, int code, int which)
{
    pthread_mutex_lock(&lock);
    fail_code = code;
    fail_which = which;
    calls = 0;
    misuses = 0;
    misuse_site = NULL;
    failed_site = NULL;
    misuse_depth = failed_depth = 0;
    fail_at = n;
    pthread_mutex_unlock(&lock);
}

int
mdbfault_disarm(void)
{
    int hit;

    pthread_mutex_lock(&lock);
    hit = fail_at > 0 && calls >= fail_at;
    fail_at = -1;
    pthread_mutex_unlock(&lock);
    return hit;
}

long
mdbfault_misuses(void)
{
    long n;

    pthread_mutex_lock(&lock);
    n = misuses;
    pthread_mutex_unlock(&lock);
    return n;
}

const void *
mdbfault_misuse_site(void)
{
    const void *s;

    pthread_mutex_lock(&lock);
    s = misuse_site;
    pthread_mutex_unlock(&lock);
    return s;
}

const void *
mdbfault_failed_site(void)
{
    const void *s;

    pthread_mutex_lock(&lock);
    s = failed_site;
    pthread_mutex_unlock(&lock);
    return s;
}

long
mdbfault_sites(void)
{
    long n;

    pthread_mutex_lock(&lock);
    n = n_sites;
    pthread_mutex_unlock(&lock);
    return n;
}

const char *
mdbfault_where(const void *site)
{
    static _Thread_local char buf[512];
    Dl_info info;

    if (site == NULL)
        return "nowhere";
    if (dladdr(site, &info) == 0 || info.dli_fname == NULL)
        snprintf(buf, sizeof buf, "%p", site);
    else /* addr2line -f -e FILE OFFSET names the line */
        snprintf(buf, sizeof buf, "%s %#lx", info.dli_fname,
                 (unsigned long)((const char *)site -
                                 (const char *)info.dli_fbase));
    return buf;
}

static void
stack_text(char *buf, size_t size, void **stack, int depth)
{
    size_t at = 0;

    buf[0] = 0;
    for (int i = 2; i < depth && at + 1 < size; i++) { /* past ours */
        Dl_info info;
        int n;

        if (dladdr(stack[i], &info) == 0 || info.dli_fname == NULL)
            continue;
        n = snprintf(buf + at, size - at, " %#lx",
                     (unsigned long)((char *)stack[i] -
                                     (char *)info.dli_fbase) - 1);
        if (n < 0)
            break;
        at += (size_t)n;
    }
}

const char *
mdbfault_stacks(void)
{
    static _Thread_local char buf[1024];
    char a[400], b[400];

    pthread_mutex_lock(&lock);
    stack_text(a, sizeof a, failed_stack, failed_depth);
    stack_text(b, sizeof b, misuse_stack, misuse_depth);
    pthread_mutex_unlock(&lock);
    snprintf(buf, sizeof buf, "failed at:%s; misused at:%s", a, b);
    return buf;
}

int
mdbfault_survey(void)
{
    return getenv("MDBFAULT_SURVEY") != NULL;
}

void
mdbfault_print(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " [%s]\n", mdbfault_stacks());
}

int
mdbfault_judge(int rc, long n, const char *what)
{
    int hit = mdbfault_disarm();
    char at[600];

    snprintf(at, sizeof at, "%s", mdbfault_where(mdbfault_failed_site()));
    if (rc == CRDT_OK) {
        MDBFAULT_EXPECT(!hit, "%s: LMDB call %ld (from %s) failed, the call "
                        "said OK", what, n, at);
        return hit ? 2 : 1;
    }
    MDBFAULT_EXPECT(hit, "%s: %s with no failed LMDB call", what,
                    crdt_strerror(rc));
    MDBFAULT_EXPECT(rc == CRDT_EIO, "%s: LMDB call %ld (from %s) failed "
                    "with EIO, the call said %s", what, n, at,
                    crdt_strerror(rc));
    MDBFAULT_EXPECT(mdbfault_misuses() == 0, "%s: LMDB call %ld (from %s) "
                    "failed, then %ld more calls on its txn (last from %s)",
                    what, n, at, mdbfault_misuses(),
                    mdbfault_where(mdbfault_misuse_site()));
    return 0;
}

void
mdbfault_reach(const char *test, long n)
{
    if (mdbfault_survey())
        fprintf(stderr, "%s: %ld LMDB calls, %ld call sites failed so far\n",
                test, n - 1, mdbfault_sites());
}

long
mdbfault_each_call(const char *what, crdt_replica *r,
                   int (*op)(crdt_replica *, void *), void *arg,
                   int (*committed)(crdt_replica *, void *), long calls_max)
{
    unsigned char before[32], after[32];
    long n;
    int done = 0;

    tu_digest_all(r, before);
    for (n = 1; n < calls_max && !done; n++) {
        mdbfault_arm(n);
        done = mdbfault_judge(op(r, arg), n, what);
        if (done == 2) /* a survey: it went through, so it is done */
            break;
        if (done)
            break;
        tu_digest_all(r, after);
        if (committed != NULL && memcmp(after, before, 32) != 0 &&
            committed(r, arg)) {
            done = 1;
            break;
        }
        MDBFAULT_EXPECT(memcmp(after, before, 32) == 0, "%s: LMDB call %ld "
                        "failed, the replica changed", what, n);
    }
    ck_assert_msg(done, "%s: still failing after %ld calls", what,
                  calls_max);
    mdbfault_reach(what, n);
    return n - 1;
}

long
mdbfault_each_write_full(const char *what, const char *dir,
                         int (*op)(crdt_replica *, void *), void *arg,
                         int same, long calls_max)
{
    return mdbfault_each_absorbed(what, dir, MDB_MAP_FULL, MDBFAULT_WRITES,
                                  op, arg, same, calls_max);
}

long
mdbfault_each_absorbed(const char *what, const char *dir, int code,
                       int which, int (*op)(crdt_replica *, void *),
                       void *arg, int same, long calls_max)
{
    const char *name = mdb_strerror(code);
    unsigned char want[32], got[32];
    long n;
    int done = 0;

    for (n = 0; n < calls_max && !done; n++) {
        char copy[256];
        crdt_replica *r;
        int rc, hit;

        tu_copy_dir(dir, copy, sizeof copy);
        r = tu_open_dir(copy);
        mdbfault_arm_code(n, code, which); /* 0: none */
        rc = op(r, arg);
        hit = mdbfault_disarm();
        MDBFAULT_EXPECT(rc == CRDT_OK, "%s: %s at call %ld (from %s), the "
                        "call said %s (%d)", what, name, n,
                        mdbfault_where(mdbfault_failed_site()),
                        crdt_strerror(rc), rc);
        MDBFAULT_EXPECT(mdbfault_misuses() == 0, "%s: %s at call %ld (from "
                        "%s), then %ld more calls on its txn (last from %s)",
                        what, name, n,
                        mdbfault_where(mdbfault_failed_site()),
                        mdbfault_misuses(),
                        mdbfault_where(mdbfault_misuse_site()));
        if (same == MDBFAULT_SAME_STATE) {
            char h[65];
            tu_hash(h, r);
            memcpy(n == 0 ? want : got, h, 32); /* the first half: enough */
        } else if (same == MDBFAULT_SAME_BYTES) {
            tu_digest_all(r, n == 0 ? want : got);
        }
        if (same != 0) {
            MDBFAULT_EXPECT(n == 0 || memcmp(got, want, 32) == 0, "%s: %s at "
                            "call %ld (from %s), the result differs", what,
                            name, n,
                            mdbfault_where(mdbfault_failed_site()));
        }
        crdt_replica_close(r);
        test_rmtree(copy);
        done = n > 0 && !hit;
    }
    ck_assert_msg(done, "%s: still failing after %ld calls", what,
                  calls_max);
    mdbfault_reach(what, n - 1);
    return n - 2;
}
