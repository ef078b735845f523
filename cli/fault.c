/*
 * fault.c: the last line against a damaged data file.
 *
 * The open checks the data file before LMDB reads it (libcrdt's
 * pagecheck.c: meta pages, length, and the pages of every B-tree up to a
 * budget), so a damaged file is normally refused with exit 6 before any
 * read. What those checks cannot see (damage past the budget, a value's
 * bytes inside a sound page, a file changed while we run) may still make
 * an LMDB read fault. Then this handler prints the corrupt-replica error
 * for the replica opened last and exits 6: no command, and no daemon,
 * dies by SIGSEGV or SIGBUS on a damaged file.
 *
 * Only async-signal-safe calls (write, _exit) run in the handler; it runs
 * on its own stack, so a fault from a deep recursion is reported too.
 * A fault that is not a read of the data file (a bug of ours) is
 * reported the same way: the message says which signal, and exit 6
 * still tells the caller that nothing was done.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static char fault_dir[1024] = "the replica";
static char alt_stack[64 * 1024];

void
cli_fault_set_dir(const char *dir)
{
    size_t n = strlen(dir);

    if (n >= sizeof fault_dir)
        n = sizeof fault_dir - 1;
    memcpy(fault_dir, dir, n);
    fault_dir[n] = '\0';
}

const char *
cli_fault_dir(void)
{
    return fault_dir;
}

static void
put(const char *s)
{
    size_t n = strlen(s);

    while (n > 0) {
        ssize_t k = write(STDERR_FILENO, s, n);
        if (k <= 0)
            return;
        s += k;
        n -= (size_t)k;
    }
}

static void
on_fault(int sig)
{
    put("strata: ");
    put(fault_dir);
    put(sig == SIGBUS ? ": corrupt replica: reading the data file failed "
                        "(SIGBUS: the file is shorter than its pages)"
                      : ": corrupt replica: reading the data file failed "
                        "(SIGSEGV: a damaged page)");
    put("; run strata verify ");
    put(fault_dir);
    put(", then strata restore BACKUP NEWDIR or strata rebuild ");
    put(fault_dir);
    put(" HOST:PORT (docs/operations.md)\n");
    _exit(CLI_EDATA);
}

void
cli_fault_install(void)
{
    struct sigaction sa;
    stack_t ss;

    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_fault;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
}
