/*
 * instruments.h - the core's own metrics: the seed's WebSocket, HTTP and
 * app families, process metrics, and moontide_* runtime metrics.
 *
 * Families are declared and their fixed label sets resolved to handles
 * once at start. The hot path touches only plain counters (stats.h) and
 * the message-duration histogram handle; everything else (active
 * connections, process figures, Lua memory, queue bytes) is read when
 * /metrics is rendered. HTTP series are resolved per request (never on
 * the message path); unknown paths share endpoint="other", so scanners
 * cannot grow the series count.
 *
 * An edge: collecting reads what lies below it (counters, connections,
 * the channel layer, the script host's cached figures) and never runs Lua,
 * so it is safe anywhere, a metric read through the FFI included.
 *
 * Owns: nothing beyond handles into the registry (metrics.h) and the
 * loop-lag probe's timer.
 */
#ifndef MT_INSTRUMENTS_H
#define MT_INSTRUMENTS_H

#include "board.h"
#include "channel.h"
#include "conn.h"
#include "metrics.h"
#include "process.h"
#include "script.h"
#include "stats.h"
#include "tls.h"

#include <uv.h>

typedef struct mt_instruments {
    mt_series_t *connections_total, *connections_active;
    mt_series_t *messages[MT_MSG__COUNT];
    mt_series_t *errors[MT_ERR__COUNT];
    mt_series_t *message_duration;
    mt_family_t *http_requests, *http_duration;
    mt_series_t *startup, *shutdown;
    mt_series_t *cpu, *rss, *vsize, *open_fds, *max_fds, *start_time;
    mt_series_t *lua_memory, *queue_bytes, *queue_dropped, *generation;
    mt_series_t *reloads_success, *reloads_failure;
    mt_series_t *channel_up, *loop_lag, *series_dropped, *render_seconds;
    mt_series_t *tls_expiry, *tls_reloads_ok, *tls_reloads_failed; /* NULL without TLS */
    const mt_tls_t *tls;
    uint64_t collected_at; /* loop time (ms) of the last collect */
    uv_timer_t lag_timer;
    double lag_expected; /* monotonic time the lag timer should fire */
    mt_metrics_t *metrics;
    mt_log_t *log;
    const mt_stats_t *stats;
    const mt_conns_t *conns;
    const mt_channel_t *channel;
    const mt_script_t *script;
    uv_loop_t *loop;
    /* In a server of several workers: the board, this worker's row
     * (0-based), and its last snapshot (mt_instruments_publish). */
    const mt_board_t *board;
    int self;
    mt_buf_t snap;
} mt_instruments_t;

/** Declares the core's families (message_buckets: the bounds of the
 *  message-duration histogram) and starts the loop-lag probe; can't fail.
 *  Everything passed must outlive the instruments. */
void mt_instruments_init(mt_instruments_t *in, uv_loop_t *loop, mt_metrics_t *metrics,
                         mt_log_t *log, const mt_stats_t *stats, const mt_process_t *proc,
                         const mt_conns_t *conns, const mt_channel_t *channel,
                         const mt_script_t *script, const mt_bounds_t *message_buckets);
/** Declares the TLS certificate's families (expiry, reloads) and reads
 *  them from tls at each collect; only when the port speaks TLS. */
void mt_instruments_use_tls(mt_instruments_t *in, const mt_tls_t *tls);
/** Stops the loop-lag probe (shutdown). */
void mt_instruments_close(mt_instruments_t *in);
/** Counts and times one HTTP response. */
void mt_instruments_http(mt_instruments_t *in, const char *method, const char *endpoint, int status,
                         double seconds);
/** Brings the gauges and copied counters up to date, at most once per
 *  loop iteration, from cached figures only. */
void mt_instruments_collect(mt_instruments_t *in);
/** Brings gauges up to date and appends the exposition: this process's,
 *  or with several workers the server's (mt_instruments_aggregate). */
void mt_instruments_render(mt_instruments_t *in, mt_buf_t *out, int openmetrics);
/** With several workers: collects and posts this worker's snapshot on
 *  the board, for the others' scrapes (once a second, from the sweep). */
void mt_instruments_publish(mt_instruments_t *in);
/**
 * With several workers: fills agg (initialised here; free it) with the
 * server's metrics: this worker's, fresh, and every other worker's last
 * snapshot, plus what exited workers had counted; counters and histograms
 * summed, gauges by their family's rule; and per-worker series
 * (moontide_worker_up, _connections, _restarts_total{worker}).
 */
void mt_instruments_aggregate(mt_instruments_t *in, mt_metrics_t *agg);
/** Frees the snapshot buffer. */
void mt_instruments_free(mt_instruments_t *in);

#endif
