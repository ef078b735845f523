/*
 * sim.c: strata-sim, the deterministic multi-replica simulator.
 *
 *   strata-sim --first-seed S --seeds N [--steps K] [--verbose]
 *              [--check-determinism] [--merge-aid]
 *
 * Each seed builds a world (3 to 7 replicas on real LMDB), runs a chaos
 * phase (writes of every type, syncs with delays and resets, partitions,
 * crashes, migrations with random lenses, custom migrations, interrupted
 * migrations, forks, a backup restored into two replicas that both
 * write, a replica's directory copied and both copies writing; the
 * copies are off with STRATA_SIM_OFF=copy, the clones alone with
 * STRATA_SIM_CLONES=0), heals, and checks the oracle (sim_oracle.c). A
 * failing seed is printed with the finding; `--first-seed S --seeds 1`
 * replays it exactly. With --merge-aid every merge, however small, gets
 * the second thread a large merge gets (libcrdt/src/mergeaid.h): the
 * outcome must not change. Exit 0 when every seed passes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mergeaid.h"
#include "sim.h"

static int
run_seed(uint64_t seed, int steps, int verbose, uint64_t *trace_out,
         char *finding, size_t fsize, sim_world *stats)
{
    sim_world w;
    int rc;

    rc = sim_world_init(&w, seed, verbose);
    if (rc == CRDT_OK)
        rc = sim_chaos(&w, steps);
    /* STRATA_SIM_NOHEAL (with STRATA_SIM_KEEP): the world as step K
     * left it, for a look at the replicas' files (docs/testing.md) */
    if (rc == CRDT_OK && getenv("STRATA_SIM_NOHEAL") != NULL)
        ;
    else if (rc == CRDT_OK && (rc = sim_heal(&w)) == CRDT_OK)
        rc = sim_oracle(&w);
    if (rc != CRDT_OK && w.finding[0] == 0)
        snprintf(w.finding, sizeof w.finding, "%s", crdt_strerror(rc));
    snprintf(finding, fsize, "%s", w.finding);
    *trace_out = w.trace;
    *stats = w;
    stats->commits = NULL;
    sim_world_free(&w);
    return rc;
}

/* Each seed runs in a child: a crash or sanitizer abort in one seed is
 * reported as that seed's failure, and every seed starts from a clean
 * process (libsodium's randomness and the clock are per process). */
static int
run_isolated(uint64_t seed, int steps, int verbose, uint64_t *trace,
             char *finding, size_t fsize, sim_world *stats)
{
    int pipefd[2], status;
    pid_t pid;
    struct {
        int rc;
        uint64_t trace;
        char finding[512];
        sim_world stats;
    } res;

    if (pipe(pipefd) != 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(pipefd[0]);
        memset(&res, 0, sizeof res);
        res.rc = run_seed(seed, steps, verbose, &res.trace, res.finding,
                          sizeof res.finding, &res.stats);
        if (write(pipefd[1], &res, sizeof res) != (ssize_t)sizeof res)
            _exit(3);
        _exit(0);
    }
    close(pipefd[1]);
    memset(&res, 0, sizeof res);
    ssize_t got = read(pipefd[0], &res, sizeof res);
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof res || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        snprintf(finding, fsize, "the simulation crashed (status %d)",
                 status);
        return -1;
    }
    *trace = res.trace;
    snprintf(finding, fsize, "%s", res.finding);
    *stats = res.stats;
    return res.rc;
}

int
main(int argc, char **argv)
{
    uint64_t first = 1, n = 1, failed = 0;
    uint64_t tot_ops = 0, tot_mig = 0, tot_crash = 0, tot_reset = 0;
    uint64_t tot_reject = 0, tot_sync = 0, tot_abort = 0, tot_seq = 0;
    uint64_t tot_copies = 0, tot_forked = 0, tot_unverified = 0, tot_cut = 0;
    int steps = 400, verbose = 0, determinism = 0;
    struct timespec t0, t1;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--first-seed") && i + 1 < argc)
            first = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--verbose"))
            verbose = 1;
        else if (!strcmp(argv[i], "--check-determinism"))
            determinism = 1;
        else if (!strcmp(argv[i], "--merge-aid")) {
            crdt__mergeaid_min_bytes = 0;
            crdt__mergeaid_split_min = 0;
        }
        else {
            fprintf(stderr, "usage: strata-sim --first-seed S --seeds N "
                            "[--steps K] [--verbose] [--check-determinism] "
                            "[--merge-aid]\n");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint64_t seed = first; seed < first + n; seed++) {
        char finding[512];
        uint64_t trace = 0, trace2 = 0;
        sim_world st;
        int rc = run_isolated(seed, steps, verbose, &trace, finding,
                              sizeof finding, &st);

        if (rc == 0 && determinism) {
            char f2[512];
            sim_world st2;
            rc = run_isolated(seed, steps, 0, &trace2, f2, sizeof f2, &st2);
            if (rc == 0 && trace2 != trace) {
                snprintf(finding, sizeof finding,
                         "not deterministic: trace %016" PRIx64 " then %016"
                         PRIx64, trace, trace2);
                rc = 1;
            }
        }
        if (rc != 0) {
            failed++;
            printf("seed %" PRIu64 " FAILED: %s\n  replay: strata-sim "
                   "--first-seed %" PRIu64 " --seeds 1 --steps %d\n",
                   seed, finding, seed, steps);
            fflush(stdout);
            continue;
        }
        tot_ops += st.ops;
        tot_mig += st.migrations;
        tot_crash += st.crashes;
        tot_reset += st.resets;
        tot_reject += st.rejects;
        tot_sync += st.syncs_ok;
        tot_abort += st.aborted_links;
        tot_seq += st.seq_ops;
        tot_copies += (uint64_t)(st.clones + st.restores);
        tot_forked += st.forked_ops;
        tot_unverified += st.unverified;
        tot_cut += st.cut_changes;
        if (verbose)
            printf("seed %" PRIu64 " ok: %d replicas, %" PRIu64 " ops\n",
                   seed, st.n, st.ops);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("strata-sim: seeds %" PRIu64 "..%" PRIu64 ": ops %" PRIu64
           " (text and list %" PRIu64 "), migrations %" PRIu64 ", crashes %" PRIu64 ", resets %" PRIu64
           ", rejects %" PRIu64 ", syncs %" PRIu64 ", broken links %" PRIu64
           ", %.1f s\n", first, first + n - 1, tot_ops, tot_seq, tot_mig, tot_crash,
           tot_reset, tot_reject, tot_sync, tot_abort,
           (double)(t1.tv_sec - t0.tv_sec) +
               (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    printf("strata-sim: copies (clones and double restores) %" PRIu64
           ", ops of a losing fork %" PRIu64 ", ops held by seq only %"
           PRIu64 ", changes of an epoch's cut fetched before a reset %"
           PRIu64 "\n", tot_copies, tot_forked, tot_unverified, tot_cut);
    printf("%" PRIu64 " passed, %" PRIu64 " failed\n", n - failed, failed);
    return failed == 0 ? 0 : 1;
}
