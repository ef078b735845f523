/*
 * peer_pipe.h: a crdtnet_peer over two file descriptors, and starting
 * the command of `sync --via` (peer_pipe.c).
 */
#ifndef STRATA_PEER_PIPE_H
#define STRATA_PEER_PIPE_H

#include <sys/types.h>

#include "crdtnet/peer.h"

/**
 * Run @p p reading @p in_fd and writing @p out_fd until it is done, the
 * other side hangs up, or nothing moved for @p idle_ms.
 * @return crdtnet_peer_result()'s code, with @p rep filled.
 */
int cli_peer_pipe(crdtnet_peer *p, int in_fd, int out_fd, int idle_ms,
                  crdtnet_report *rep);

/** Start `/bin/sh -c COMMAND` with pipes to its stdin and from its
 *  stdout (its stderr is ours). 0 on success, -1 with errno. */
int cli_spawn_sh(pid_t *pid_out, int *to_child, int *from_child,
                 const char *command);

/** Wait up to @p wait_ms for @p pid, then SIGTERM it. Its exit status,
 *  or -1. */
int cli_reap(pid_t pid, int wait_ms);

#endif
