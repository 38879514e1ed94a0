/* instruments.c - the core's metric families and their collection. */
#include "instruments.h"

#include "clock.h"
#include "log.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define LAG_PROBE_MS 1000

static mt_family_t *family(mt_instruments_t *in, mt_metric_type_t type, const char *name,
                           const char *help, const char *label)
{
    mt_family_t *f;
    char err[256];
    const char *labels[] = {label};
    if (mt_metrics_family(in->metrics, type, name, help, labels, label ? 1 : 0, NULL, 0, &f, err,
                          sizeof err) != 0) {
        /* The core's own definitions are fixed: failing here is a bug. */
        mt_log_msg(in->log, MT_LOG_CRITICAL, "moontide.metrics", "%s", err);
        abort();
    }
    return f;
}

static mt_series_t *single(mt_instruments_t *in, mt_metric_type_t type, const char *name,
                           const char *help)
{
    return mt_metrics_series(in->metrics, family(in, type, name, help, NULL), NULL, NULL);
}

static mt_series_t *labelled(mt_instruments_t *in, mt_family_t *f, const char *value)
{
    const char *values[] = {value};
    return mt_metrics_series(in->metrics, f, values, NULL);
}

static void on_lag_probe(uv_timer_t *t)
{
    mt_instruments_t *in = t->data;
    double now = mt_mono();
    double lag = now - in->lag_expected;
    mt_metric_set(in->loop_lag, lag > 0 ? lag : 0);
    in->lag_expected = now + LAG_PROBE_MS / 1000.0;
}

void mt_instruments_init(mt_instruments_t *in, uv_loop_t *loop, mt_metrics_t *metrics,
                         mt_log_t *log, const mt_stats_t *stats, const mt_process_t *proc,
                         const mt_conns_t *conns, const mt_channel_t *channel,
                         const mt_script_t *script, const mt_bounds_t *message_buckets)
{
    in->loop = loop;
    in->metrics = metrics;
    in->stats = stats;
    in->conns = conns;
    in->channel = channel;
    in->script = script;
    in->log = log;
    in->connections_total = single(in, MT_METRIC_COUNTER, "websocket_connections_total",
                                   "Total number of WebSocket connections");
    in->connections_active = single(in, MT_METRIC_GAUGE, "websocket_connections_active",
                                    "Number of active WebSocket connections");
    mt_family_t *f = family(in, MT_METRIC_COUNTER, "websocket_messages_total",
                            "Total WebSocket messages by type", "type");
    for (int i = 0; i < MT_MSG__COUNT; i++)
        in->messages[i] = labelled(in, f, mt_message_type_name((mt_message_type_t)i));
    f = family(in, MT_METRIC_COUNTER, "websocket_errors_total", "WebSocket errors by type",
               "error_type");
    for (int i = 0; i < MT_ERR__COUNT; i++)
        in->errors[i] = labelled(in, f, mt_error_type_name((mt_error_type_t)i));
    mt_family_t *md;
    char merr[256];
    if (mt_metrics_family(metrics, MT_METRIC_HISTOGRAM, "websocket_message_duration_seconds",
                          "Time spent processing a received WebSocket message (decode, handler, "
                          "enqueue)",
                          NULL, 0, message_buckets->v, message_buckets->n, &md, merr,
                          sizeof merr) != 0) {
        mt_log_msg(log, MT_LOG_CRITICAL, "moontide.metrics", "%s", merr);
        abort();
    }
    in->message_duration = mt_metrics_series(metrics, md, NULL, NULL);

    char err[256];
    const char *http_labels[] = {"method", "endpoint", "status"};
    if (mt_metrics_family(metrics, MT_METRIC_COUNTER, "http_requests_total", "Total HTTP requests",
                          http_labels, 3, NULL, 0, &in->http_requests, err, sizeof err) != 0 ||
        mt_metrics_family(metrics, MT_METRIC_HISTOGRAM, "http_request_duration_seconds",
                          "HTTP request duration", http_labels, 2, NULL, 0, &in->http_duration, err,
                          sizeof err) != 0) {
        mt_log_msg(log, MT_LOG_CRITICAL, "moontide.metrics", "%s", err);
        abort();
    }
    in->startup = single(in, MT_METRIC_GAUGE, "app_startup_time_seconds",
                         "Seconds from process start to listening");
    in->shutdown = single(in, MT_METRIC_GAUGE, "app_shutdown_time_seconds",
                          "Seconds the last graceful drain took");

    in->cpu = single(in, MT_METRIC_COUNTER, "process_cpu_seconds_total",
                     "Total user and system CPU time spent in seconds");
    in->rss = single(in, MT_METRIC_GAUGE, "process_resident_memory_bytes",
                     "Resident memory size in bytes");
    in->vsize =
        single(in, MT_METRIC_GAUGE, "process_virtual_memory_bytes", "Virtual memory size in bytes");
    in->open_fds =
        single(in, MT_METRIC_GAUGE, "process_open_fds", "Number of open file descriptors");
    in->max_fds =
        single(in, MT_METRIC_GAUGE, "process_max_fds", "Maximum number of open file descriptors");
    in->start_time = single(in, MT_METRIC_GAUGE, "process_start_time_seconds",
                            "Start time of the process since unix epoch in seconds");
    mt_metric_set(in->start_time, proc->started_at);

    in->lua_memory = single(in, MT_METRIC_GAUGE, "moontide_lua_memory_bytes",
                            "Bytes of memory the Lua state uses");
    in->queue_bytes = single(in, MT_METRIC_GAUGE, "moontide_send_queue_bytes",
                             "Bytes queued for sending, all connections");
    in->queue_dropped = single(in, MT_METRIC_COUNTER, "moontide_send_queue_dropped_frames_total",
                               "Frames dropped from send queues by the overflow policy");
    in->generation = single(in, MT_METRIC_GAUGE, "moontide_script_generation",
                            "Generation of the loaded scripts (1 at start, +1 per reload)");
    f = family(in, MT_METRIC_COUNTER, "moontide_script_reloads_total", "Script reloads by result",
               "result");
    in->reloads_success = labelled(in, f, "success");
    in->reloads_failure = labelled(in, f, "failure");
    f = family(in, MT_METRIC_GAUGE, "moontide_channel_layer_up",
               "1 when the channel layer can carry traffic, by kind", "kind");
    in->channel_up = labelled(in, f, channel->kind ? channel->kind : "memory");
    in->loop_lag = single(in, MT_METRIC_GAUGE, "moontide_event_loop_lag_seconds",
                          "How late the loop ran a 1 s timer, last probe");
    in->series_dropped = single(in, MT_METRIC_COUNTER, "moontide_metrics_series_dropped_total",
                                "Label sets refused by the metrics series budget");
    in->render_seconds = single(in, MT_METRIC_GAUGE, "moontide_metrics_render_seconds",
                                "Seconds the previous /metrics render took");

    /* How a gauge from several workers makes the server's (counters and
     * histograms add up): connections, memory and queues add up (the
     * default); these do not. */
    in->startup->family->merge = MT_MERGE_MAX;
    in->shutdown->family->merge = MT_MERGE_MAX;
    in->start_time->family->merge = MT_MERGE_MIN;
    in->generation->family->merge = MT_MERGE_MIN;
    in->channel_up->family->merge = MT_MERGE_MIN;
    in->loop_lag->family->merge = MT_MERGE_MAX;
    in->render_seconds->family->merge = MT_MERGE_MAX;

    uv_timer_init(loop, &in->lag_timer);
    in->lag_timer.data = in;
    uv_unref((uv_handle_t *)&in->lag_timer);
    in->lag_expected = mt_mono() + LAG_PROBE_MS / 1000.0;
    uv_timer_start(&in->lag_timer, on_lag_probe, LAG_PROBE_MS, LAG_PROBE_MS);
}

void mt_instruments_close(mt_instruments_t *in)
{
    if (!in->lag_timer.loop) /* never started */
        return;
    uv_timer_stop(&in->lag_timer);
    if (!uv_is_closing((uv_handle_t *)&in->lag_timer))
        uv_close((uv_handle_t *)&in->lag_timer, NULL);
}

void mt_instruments_http(mt_instruments_t *in, const char *method, const char *endpoint, int status,
                         double seconds)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    const char *values[] = {method, endpoint, code};
    mt_metric_add(mt_metrics_series(in->metrics, in->http_requests, values, NULL), 1);
    mt_metric_observe(mt_metrics_series(in->metrics, in->http_duration, values, NULL), seconds);
}

/* Reads CPU time and memory from /proc/self/stat; leaves them on error. */
static void collect_process(mt_instruments_t *in)
{
    FILE *f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* Fields after the parenthesised command name, which may hold spaces. */
        char *p = strrchr(buf, ')');
        unsigned long utime, stime, vsize;
        long rss;
        if (p && sscanf(p + 2,
                        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
                        "%*d %*d %*u %lu %ld",
                        &utime, &stime, &vsize, &rss) == 4) {
            double tick = (double)sysconf(_SC_CLK_TCK);
            mt_metric_set(in->cpu, (double)(utime + stime) / tick);
            mt_metric_set(in->vsize, (double)vsize);
            mt_metric_set(in->rss, (double)rss * (double)sysconf(_SC_PAGESIZE));
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int count = 0;
        struct dirent *e;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                count++;
        closedir(d);
        mt_metric_set(in->open_fds, count - 1); /* not the directory's own */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        mt_metric_set(in->max_fds, (double)rl.rlim_cur);
}

static void add_queue(void *obj, void *ud)
{
    *(double *)ud += (double)((mt_conn_t *)obj)->q.bytes;
}

void mt_instruments_collect(mt_instruments_t *in)
{
    uint64_t now = uv_now(in->loop) + 1; /* +1: never equal to the initial 0 */
    if (in->collected_at == now)
        return;
    in->collected_at = now;
    const mt_stats_t *st = in->stats;
    mt_metric_set(in->connections_total, (double)st->connections_total);
    mt_metric_set(in->connections_active, mt_conns_count(in->conns));
    for (int i = 0; i < MT_MSG__COUNT; i++)
        mt_metric_set(in->messages[i], (double)st->messages[i]);
    for (int i = 0; i < MT_ERR__COUNT; i++)
        mt_metric_set(in->errors[i], (double)st->errors[i]);
    collect_process(in);
    mt_metric_set(in->lua_memory, (double)in->script->memory);
    double queued = 0;
    mt_handles_each(&in->conns->handles, add_queue, &queued);
    mt_metric_set(in->queue_bytes, queued);
    mt_metric_set(in->queue_dropped, (double)st->send_queue_dropped_frames);
    mt_metric_set(in->generation, (double)in->script->generation);
    mt_metric_set(in->reloads_success, (double)in->script->reloads_ok);
    mt_metric_set(in->reloads_failure, (double)in->script->reloads_failed);
    const char *reason;
    mt_metric_set(in->channel_up, mt_channel_ready(in->channel, &reason));
    mt_metric_set(in->series_dropped, (double)in->metrics->dropped);
    if (in->tls) {
        mt_metric_set(in->tls_expiry, in->tls->not_after);
        mt_metric_set(in->tls_reloads_ok, (double)in->tls->reloads_ok);
        mt_metric_set(in->tls_reloads_failed, (double)in->tls->reloads_failed);
    }
}

void mt_instruments_use_tls(mt_instruments_t *in, const mt_tls_t *tls)
{
    in->tls = tls;
    in->tls_expiry =
        single(in, MT_METRIC_GAUGE, "moontide_tls_certificate_expiry_timestamp_seconds",
               "When the TLS certificate in use expires, unix seconds");
    in->tls_expiry->family->merge = MT_MERGE_MIN; /* the soonest of the workers' */
    mt_family_t *f =
        family(in, MT_METRIC_COUNTER, "moontide_tls_certificate_reloads_total",
               "TLS certificate reloads by result (a refused pair keeps the old one)", "result");
    in->tls_reloads_ok = labelled(in, f, "success");
    in->tls_reloads_failed = labelled(in, f, "failure");
}

void mt_instruments_render(mt_instruments_t *in, mt_buf_t *out, int openmetrics)
{
    double t0 = mt_mono();
    in->collected_at = 0; /* a scrape always sees fresh values */
    if (in->board) {
        mt_metrics_t agg;
        mt_instruments_aggregate(in, &agg);
        mt_metrics_render(&agg, out, openmetrics);
        mt_metrics_free(&agg);
    } else {
        mt_instruments_collect(in);
        mt_metrics_render(in->metrics, out, openmetrics);
    }
    mt_metric_set(in->render_seconds, mt_mono() - t0);
}

void mt_instruments_publish(mt_instruments_t *in)
{
    if (!in->board)
        return;
    mt_instruments_collect(in);
    mt_buf_reset(&in->snap);
    mt_metrics_snapshot(in->metrics, &in->snap);
    if (mt_board_publish(in->board, MT_BLOB_METRICS, in->self, in->snap.data, in->snap.len) != 0)
        mt_log_msg(in->log, MT_LOG_WARNING, "moontide.metrics",
                   "metrics snapshot of %zu bytes does not fit the board: not published",
                   in->snap.len);
}

/* A per-worker family of the aggregate: its series for each worker. */
static void per_worker(mt_metrics_t *agg, mt_metric_type_t type, const char *name, const char *help,
                       double (*value)(const mt_board_worker_t *), const mt_board_t *b)
{
    mt_family_t *f;
    char err[128];
    const char *labels[] = {"worker"};
    if (mt_metrics_family(agg, type, name, help, labels, 1, NULL, 0, &f, err, sizeof err) != 0)
        return;
    for (int w = 0; w < b->n; w++) {
        char id[16];
        snprintf(id, sizeof id, "%d", w + 1);
        const char *values[] = {id};
        mt_metric_set(mt_metrics_series(agg, f, values, NULL), value(mt_board_worker(b, w)));
    }
}

static double row_up(const mt_board_worker_t *r)
{
    return atomic_load(&r->up);
}

static double row_connections(const mt_board_worker_t *r)
{
    return atomic_load(&r->connections);
}

static double row_restarts(const mt_board_worker_t *r)
{
    return atomic_load(&r->restarts);
}

void mt_instruments_aggregate(mt_instruments_t *in, mt_metrics_t *agg)
{
    const mt_metrics_t *m = in->metrics;
    const mt_board_t *b = in->board;
    mt_metrics_init(agg, "", m->max_series, m->max_per_family);
    free(agg->color_label); /* the same color label as every worker's */
    agg->color_label = mt_xstrdup(m->color_label);
    mt_instruments_collect(in);
    mt_buf_reset(&in->snap);
    mt_metrics_snapshot(m, &in->snap);
    uint32_t conflicts = 0;
    mt_metrics_merge(agg, in->snap.data, in->snap.len, 0, &conflicts);
    mt_buf_t blob = MT_BUF_INIT;
    for (int w = 0; w < b->n; w++) {
        if (w != in->self && atomic_load(&mt_board_worker(b, w)->up) &&
            mt_board_read(b, MT_BLOB_METRICS, w, &blob) == 0)
            mt_metrics_merge(agg, blob.data, blob.len, 0, &conflicts);
        if (mt_board_read(b, MT_BLOB_RETIRED, w, &blob) == 0)
            mt_metrics_merge(agg, blob.data, blob.len, 1, &conflicts);
    }
    mt_buf_free(&blob);
    per_worker(agg, MT_METRIC_GAUGE, "moontide_worker_up", "1 while the worker serves its socket",
               row_up, b);
    per_worker(agg, MT_METRIC_GAUGE, "moontide_worker_connections",
               "Open WebSocket connections of each worker", row_connections, b);
    per_worker(agg, MT_METRIC_COUNTER, "moontide_worker_restarts_total",
               "Times the supervisor restarted the worker", row_restarts, b);
    if (conflicts)
        mt_log_msg(in->log, MT_LOG_WARNING, "moontide.metrics",
                   "%u metric families are defined differently on different workers: "
                   "this worker's definition is shown",
                   conflicts);
}

void mt_instruments_free(mt_instruments_t *in)
{
    mt_buf_free(&in->snap);
}
