/*
 * runtime.h - the root of a moontide process: one struct that owns all
 * state, and the lifecycle around one libuv loop.
 *
 * Owns: config, logger, randomness, counters, the connection and timer
 * tables, the groups, the channel layer, the script host, the lws context
 * and the loop's own handles (signals, timers). Nothing else in the core
 * holds mutable state; the FFI entry points and lws's log hook (which get
 * no user pointer) reach this struct through mt_runtime_current().
 *
 * Lifecycle: zero the struct and set started_at/started_mono as early as
 * the process can, mt_runtime_init (config is taken over) → mt_runtime_run
 * (listens, serves until a signal ends the drain) → mt_runtime_free.
 * Non-goals: more than one runtime per process; threads.
 */
#ifndef MT_RUNTIME_H
#define MT_RUNTIME_H

#include "channel.h"
#include "clock.h"
#include "config.h"
#include "group.h"
#include "handle.h"
#include "health.h"
#include "instruments.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "rand.h"
#include "script.h"
#include "stats.h"
#include "timer.h"
#include "status.h"
#include "watch.h"
#include "ws.h"

#include <libwebsockets.h>
#include <uv.h>

typedef struct mt_runtime {
    mt_config_t cfg;
    mt_log_t log;
    mt_rand_t rand;
    mt_stats_t stats;
    mt_metrics_t metrics;
    mt_instruments_t ins;
    mt_health_t health;
    mt_handles_t conns;  /* mt_conn_t by handle */
    mt_timers_t timers;
    mt_groups_t groups;
    mt_channel_t channel;
    mt_redis_t redis;
    mt_script_t script;
    mt_watch_t watch;

    uv_loop_t loop;
    struct lws_context *lws;
    struct lws_vhost *vhost;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer; /* graceful_shutdown_timeout */
    uv_timer_t drain_step;  /* closes a batch every 50 ms */
    uv_timer_t sweep;       /* heartbeats, every second */

    double started_at;   /* wall clock, process start */
    double started_mono; /* monotonic, process start */
    double startup_seconds;
    int listen_port;
    mt_ws_t ws;
    uint64_t redis_requests; /* ids of scripts' Redis commands */
    double drain_started;    /* monotonic */
    int draining;
    int finishing;
    int exit_code;
} mt_runtime_t;

/** The process's runtime, for entry points that get no user pointer. */
mt_runtime_t *mt_runtime_current(void);
/** Makes rt the current runtime without starting it (tests, fuzzing). */
void mt_runtime_bind(mt_runtime_t *rt);

/**
 * Sets up logging, the loop, the script host and the lws context, taking
 * over cfg. Returns 0, or -1 after logging why (then call mt_runtime_free).
 */
int mt_runtime_init(mt_runtime_t *rt, mt_config_t *cfg);
/** Serves until the process is told to stop; returns the exit status. */
int mt_runtime_run(mt_runtime_t *rt);
/** Called when the last connection of a drain has closed. */
void mt_runtime_drained(mt_runtime_t *rt);
/** Releases everything; safe after a failed init. */
void mt_runtime_free(mt_runtime_t *rt);

/** Active WebSocket connections. */
static inline uint32_t mt_runtime_active(const mt_runtime_t *rt)
{
    return rt->conns.count;
}

#endif
