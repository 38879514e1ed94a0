/*
 * runtime.h - the root of a moontide process: one struct that owns all
 * state, wires the layers together, and the lifecycle around one libuv
 * loop.
 *
 * Owns: config, logger, randomness, counters, the process facts, the
 * connection and timer tables, the groups, the Redis service, the channel
 * layer, the script host, the edges (WebSocket, HTTP, health,
 * instruments), the lws context and the loop's own handles (signals,
 * timers). Each part gets pointers to what it uses, below it, at start;
 * what reports upward (the services, the edges) reports to callbacks set
 * here, and only here (core/README.md draws the layers). The FFI entry
 * points and recv(), which get no user pointer, reach this struct through
 * mt_runtime_current().
 *
 * Lifecycle: zero the struct and set proc.started_at/started_mono as
 * early as the process can, mt_runtime_init (config is taken over) →
 * mt_runtime_run (listens, serves until a signal ends the drain) →
 * mt_runtime_free. Non-goals: more than one runtime per process; threads.
 */
#ifndef MT_RUNTIME_H
#define MT_RUNTIME_H

#include "admin.h"
#include "board.h"
#include "channel.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "control.h"
#include "group.h"
#include "health.h"
#include "http.h"
#include "instruments.h"
#include "listen.h"
#include "log.h"
#include "mesh.h"
#include "notify.h"
#include "metrics.h"
#include "process.h"
#include "rand.h"
#include "redis.h"
#include "report.h"
#include "request.h"
#include "script.h"
#include "stats.h"
#include "static.h"
#include "status.h"
#include "timer.h"
#include "tls.h"
#include "watch.h"
#include "ws.h"

#include <libwebsockets.h>
#include <uv.h>

/* What a worker of a server of several gets from its supervisor
 * (supervisor.h): its number, the mesh and board shared by all workers,
 * and its end of the control socket. */
typedef struct mt_worker {
    int index; /* 1..n */
    int n;
    mt_mesh_t *mesh;
    mt_board_t *board;
    int control;
} mt_worker_t;

#define MT_RUNTIME_ADMIN_WAIT 16 /* admin reloads waiting for the supervisor */

typedef struct mt_runtime {
    /* base */
    mt_config_t cfg;
    mt_log_t log;
    mt_rand_t rand;
    mt_stats_t stats;
    mt_metrics_t metrics;
    mt_process_t proc;
    /* objects */
    mt_conns_t conns;
    mt_groups_t groups;
    /* services */
    mt_timers_t timers;
    mt_watch_t watch;
    mt_listen_t listener;
    mt_redis_t redis; /* started only with redis_url */
    mt_tls_t tls;     /* used only with tls_cert */
    mt_static_t files; /* static_dir; off when unset or absent */
    mt_notify_t notify; /* systemd's NOTIFY_SOCKET (one process; fd -1: none) */
    /* channel layer, script host */
    mt_channel_t channel;
    mt_script_t script;
    /* edges */
    mt_health_t health;
    mt_instruments_t ins;
    mt_report_t report;
    mt_admin_t admin;
    mt_requests_t rq;
    mt_http_t http;
    mt_ws_t ws;

    uv_loop_t loop;
    struct lws_context *lws;
    struct lws_vhost *vhost;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer; /* graceful_shutdown_timeout */
    uv_timer_t drain_step;  /* closes a batch every 50 ms; then lets Redis settle */
    double settle_started;  /* monotonic: the drain closed its last connection */
    uv_timer_t sweep;       /* heartbeats, every second */

    int listen_port;
    uint64_t redis_requests; /* ids of scripts' Redis commands */
    /* A worker of a server of several (NULL: one process). */
    mt_worker_t *worker;
    uv_poll_t control_poll;
    uint32_t next_request; /* ids of reloads this worker asks for */
    struct {
        uint32_t id;
        uint64_t ticket;
    } admin_wait[MT_RUNTIME_ADMIN_WAIT];
    /* What the in-process alerts read: the server's metrics in a worker
     * (rebuilt before each evaluation), else NULL for this registry. */
    mt_metrics_t *metrics_view;
    mt_metrics_t agg;
    int finishing;
    int exit_code;
} mt_runtime_t;

/** The process's runtime, for entry points that get no user pointer. */
mt_runtime_t *mt_runtime_current(void);
/** Makes rt the current runtime without starting it (tests, fuzzing). */
void mt_runtime_bind(mt_runtime_t *rt);

/**
 * Sets up logging (JSON lines to log_fd), the loop and every layer, wired,
 * and loads the scripts, taking over cfg; listens on nothing and starts no
 * timers of its own. The first half of mt_runtime_init; alone, for C tests
 * and fuzz targets that drive the layers without sockets. Returns 0, or -1
 * after logging why (then call mt_runtime_free).
 */
int mt_runtime_assemble(mt_runtime_t *rt, mt_config_t *cfg, int log_fd);
/**
 * mt_runtime_assemble, logging to stdout, then the lws context on the
 * configured port, signals, the sweep and the script watch. Returns 0, or
 * -1 after logging why (then call mt_runtime_free).
 */
int mt_runtime_init(mt_runtime_t *rt, mt_config_t *cfg);
/** mt_runtime_init for worker w of a server of several (supervisor.h):
 *  listens on the shared port, joins the mesh, answers the supervisor. */
int mt_runtime_init_worker(mt_runtime_t *rt, mt_config_t *cfg, mt_worker_t *w);
/** Serves until the process is told to stop; returns the exit status. */
int mt_runtime_run(mt_runtime_t *rt);
/** Releases everything; safe after a failed init. */
void mt_runtime_free(mt_runtime_t *rt);

/**
 * Reloads the scripts (trigger: "watch", "signal", "admin"), listing the
 * script set afresh; changed holds n NUL-terminated names (may be 0).
 * Top of an event only. 0 or -1 (the running generation stays).
 */
int mt_runtime_reload(mt_runtime_t *rt, const char *trigger, const char *changed, int n);

#endif
