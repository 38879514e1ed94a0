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
 * Owns: nothing beyond handles into the registry (metrics.h).
 */
#ifndef MT_INSTRUMENTS_H
#define MT_INSTRUMENTS_H

#include "metrics.h"
#include "stats.h"

#include <uv.h>

struct mt_runtime;

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
    uint64_t collected_at; /* loop time (ms) of the last collect */
    uv_timer_t lag_timer;
    double lag_expected; /* monotonic time the lag timer should fire */
} mt_instruments_t;

/** Declares the core's families and starts the loop-lag probe; can't fail. */
void mt_instruments_init(struct mt_runtime *rt);
/** Stops the loop-lag probe (shutdown). */
void mt_instruments_close(struct mt_runtime *rt);
/** Counts and times one HTTP response. */
void mt_instruments_http(struct mt_runtime *rt, const char *method, const char *endpoint,
                         int status, double seconds);
/** Brings the gauges and copied counters up to date, at most once per
 *  loop iteration. Reads the Lua state's size, so call it only at the top
 *  of an event (never from anything reached through the FFI): a render,
 *  the sweep before the in-process alerts read their snapshot. */
void mt_instruments_collect(struct mt_runtime *rt);
/** Brings gauges up to date and appends the exposition. */
void mt_instruments_render(struct mt_runtime *rt, mt_buf_t *out, int openmetrics);

#endif
