/*
 * supervisor.h - a server of several workers: the process the user starts
 * when workers > 1. It does no request work. It holds the port, creates
 * what the workers share (the mesh of rings, the board), forks the
 * workers, restarts one that dies (with backoff, counted and logged with
 * its exit status or signal), and speaks for the server as a whole:
 *
 * - SIGTERM/SIGINT: every worker drains (their connections get 1001 or
 *   1012); it exits once all have, or kills the rest at
 *   graceful_shutdown_timeout + 5 s. A second signal ends them at once.
 * - Reload (a script change it watches, SIGHUP to it or to any worker,
 *   POST /admin/reload to any worker): every worker prepares the new
 *   generation; if all can, all switch; if one cannot, none does. The
 *   worker that was asked answers with each worker's result.
 * - What exited workers had counted stays in /metrics (board.h).
 *
 * Why processes, not threads: a crash (a C bug, a LuaJIT abort) ends one
 * worker, not the server, and the supervisor restarts it; each worker has
 * its own lws context (lws keeps process-wide state and Debian's build has
 * no SMP support), its own LuaJIT state and heap, so nothing is locked on
 * the request path; memory a worker leaks or fragments goes with it.
 *
 * Owns: the reserved port, the mesh, the board, the workers' control
 * sockets and the counters of their earlier lives. Lifecycle: one call.
 */
#ifndef MT_SUPERVISOR_H
#define MT_SUPERVISOR_H

#include "config.h"

/**
 * Runs a server of cfg->workers (> 1) workers until it is told to stop;
 * takes over cfg. started_*: when the process started. Returns the exit
 * status: 0 after a drain, 1 when it could not start or was stopped
 * twice.
 */
int mt_supervisor_run(mt_config_t *cfg, double started_at, double started_mono);

#endif
