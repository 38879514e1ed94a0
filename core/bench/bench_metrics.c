/*
 * bench_metrics.c - the cost of metric updates and of rendering.
 *
 * Prints one JSON line: ns per counter increment and per histogram
 * observation through a resolved handle, ns to resolve a label set that
 * exists, and ms to render N series (default 10 000) in the text format.
 * Usage: bench_metrics [series]
 */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int nseries = argc > 1 ? atoi(argv[1]) : 10000;
    mt_metrics_t m;
    char err[256];
    mt_metrics_init(&m, "blue", (uint32_t)nseries + 10, (uint32_t)nseries + 10);
    mt_family_t *counter, *hist, *wide;
    const char *one[] = {"type"};
    mt_metrics_family(&m, MT_METRIC_COUNTER, "bench_total", "Bench.", one, 1, NULL, 0, &counter,
                      err, sizeof err);
    mt_metrics_family(&m, MT_METRIC_HISTOGRAM, "bench_seconds", "Bench.", NULL, 0, NULL, 0, &hist,
                      err, sizeof err);
    const char *lab[] = {"id", "route"};
    mt_metrics_family(&m, MT_METRIC_GAUGE, "bench_series", "Many series.", lab, 2, NULL, 0, &wide,
                      err, sizeof err);
    const char *v[] = {"received"};
    mt_series_t *c = mt_metrics_series(&m, counter, v, NULL);
    mt_series_t *h = mt_metrics_series(&m, hist, NULL, NULL);

    const long iters = 100000000;
    double t0 = now();
    for (long i = 0; i < iters; i++)
        mt_metric_add(c, 1);
    double inc_ns = (now() - t0) / (double)iters * 1e9;

    const long hiters = 20000000;
    t0 = now();
    for (long i = 0; i < hiters; i++)
        mt_metric_observe(h, (double)(i & 1023) * 1e-5);
    double observe_ns = (now() - t0) / (double)hiters * 1e9;

    char id[32];
    const char *vals[] = {id, "/ws/chat/{room}/"};
    for (int i = 0; i < nseries - 2; i++) {
        snprintf(id, sizeof id, "%d", i);
        mt_metric_set(mt_metrics_series(&m, wide, vals, NULL), i);
    }
    const long riters = 1000000;
    snprintf(id, sizeof id, "%d", 42);
    t0 = now();
    for (long i = 0; i < riters; i++)
        mt_metrics_series(&m, wide, vals, NULL);
    double resolve_ns = (now() - t0) / (double)riters * 1e9;

    mt_buf_t out = MT_BUF_INIT;
    const int renders = 20;
    t0 = now();
    for (int i = 0; i < renders; i++) {
        mt_buf_reset(&out);
        mt_metrics_render(&m, &out, 0);
    }
    double render_ms = (now() - t0) / renders * 1e3;

    printf("{\"bench\":\"metrics\",\"increment_ns\":%.2f,\"observe_ns\":%.2f,"
           "\"resolve_ns\":%.1f,\"series\":%u,\"render_ms\":%.3f,\"render_bytes\":%zu,"
           "\"check\":%.0f}\n",
           inc_ns, observe_ns, resolve_ns, m.total_series, render_ms, out.len, c->value);
    mt_buf_free(&out);
    mt_metrics_free(&m);
    return 0;
}
