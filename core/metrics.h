/*
 * metrics.h - the Prometheus metrics registry and exposition writer.
 *
 * A family (counter, gauge or histogram) declares its label names once.
 * Every series carries the instance's `color` label first, added by the
 * registry. A label set resolves once to an mt_series_t handle; updating
 * it is one add or store (histograms: a bucket search over a handful of
 * bounds), with no allocation, formatting or hashing. Series live as long
 * as the registry, so handles never dangle (Lua may keep them).
 *
 * Budget: at most max_series series in all and max_per_family per family.
 * A label set past the budget resolves to the family's sink, a series that
 * accepts updates and is never rendered, and `dropped` counts the refusal:
 * callers never check for NULL and serving is never slowed.
 *
 * Exposition: Prometheus text format 0.0.4, or OpenMetrics 1.0 (counter
 * families named without _total, `# EOF` at the end). Families render in
 * name order, series in creation order; label strings are escaped and
 * pre-rendered when a series is created, so rendering is mostly copying.
 *
 * Owns: families, series and their strings. Lifecycle: mt_metrics_init,
 * families and series at any time, mt_metrics_free.
 */
#ifndef MT_METRICS_H
#define MT_METRICS_H

#include "buf.h"

#include <stddef.h>
#include <stdint.h>

typedef enum { MT_METRIC_COUNTER, MT_METRIC_GAUGE, MT_METRIC_HISTOGRAM } mt_metric_type_t;

/* How a gauge's values from several workers make the server's: summed
 * (connections, memory), or the least or greatest (readiness, lag). */
typedef enum { MT_MERGE_SUM, MT_MERGE_MIN, MT_MERGE_MAX } mt_merge_t;

struct mt_family;

typedef struct mt_series {
    double value;       /* counter, gauge; histogram: sum */
    uint64_t count;     /* histogram: observations */
    uint64_t *buckets;  /* histogram: per-bound counts (not cumulative) */
    struct mt_family *family;
    char *labels;       /* rendered: color="blue",type="x" */
    uint32_t labels_len;
    uint32_t hash;
    uint8_t merged;         /* a merge gave it a value (mt_metrics_merge) */
    struct mt_series *next; /* hash chain */
} mt_series_t;

typedef struct mt_family {
    char *name;
    char *help;
    mt_metric_type_t type;
    char **label_names; /* without color */
    int nlabels;
    double *bounds; /* histogram: finite upper bounds, increasing */
    int nbounds;
    mt_series_t **series; /* creation order */
    uint32_t nseries, capseries;
    mt_series_t **hash;
    uint32_t nhash;
    mt_series_t sink;
    int warned; /* budget warning logged */
    mt_merge_t merge; /* gauges, across workers */
} mt_family_t;

typedef struct mt_metrics {
    mt_family_t **families; /* sorted by name */
    uint32_t nfamilies, capfamilies;
    uint32_t total_series, max_series, max_per_family;
    uint64_t dropped;     /* label sets refused by the budget */
    char *color_label;    /* rendered color="..." */
} mt_metrics_t;

/** The default histogram bounds: 0.005 ... 10 seconds. */
extern const double mt_metrics_default_bounds[];
extern const int mt_metrics_default_nbounds;

/** Sets up an empty registry; can't fail. */
void mt_metrics_init(mt_metrics_t *m, const char *color, uint32_t max_series,
                     uint32_t max_per_family);
void mt_metrics_free(mt_metrics_t *m);

/**
 * Declares a family, or returns the existing one when name, type, help,
 * labels and bounds are the same. bounds NULL: the defaults (histograms).
 * Returns 0 with *out set, or -1 with the reason in err (bad name, bad
 * label, conflicting redefinition) and nothing registered.
 */
int mt_metrics_family(mt_metrics_t *m, mt_metric_type_t type, const char *name,
                      const char *help, const char *const *labels, int nlabels,
                      const double *bounds, int nbounds, mt_family_t **out, char *err,
                      size_t errlen);
/** The family of that name, or NULL. */
mt_family_t *mt_metrics_find(const mt_metrics_t *m, const char *name);

/**
 * The series for the given label values (one per declared label, color
 * excluded), created on first use; never NULL (the sink past the budget).
 */
mt_series_t *mt_metrics_series(mt_metrics_t *m, mt_family_t *f, const char *const *values,
                               const size_t *lens);

static inline void mt_metric_add(mt_series_t *s, double v)
{
    s->value += v;
}
static inline void mt_metric_set(mt_series_t *s, double v)
{
    s->value = v;
}
void mt_metric_observe(mt_series_t *s, double v);

/* What mt_metrics_sum adds up. */
#define MT_READ_VALUE 0  /* counters, gauges; histograms: the sum */
#define MT_READ_COUNT 1  /* histograms: observations */
#define MT_READ_BUCKET 2 /* histograms: cumulative count at bound le */

/**
 * Adds up `what` over the family's series whose labels include every
 * pair of match (n rendered pairs such as type="received"). For
 * MT_READ_BUCKET, le must be one of the bounds or +Inf. Returns the sum,
 * or NAN if the family does not exist or no series matches.
 */
double mt_metrics_sum(const mt_metrics_t *m, const char *name, const char *const *match, int n,
                      int what, double le);

/** Appends the exposition of every family. */
void mt_metrics_render(const mt_metrics_t *m, mt_buf_t *out, int openmetrics);

#define MT_METRICS_CT_TEXT "text/plain; version=0.0.4; charset=utf-8"
#define MT_METRICS_CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

/**
 * Content negotiation for a scrape: 1 (OpenMetrics) when the Accept header
 * (may be NULL) names application/openmetrics-text, else 0 (the text
 * format). *content_type gets the matching Content-Type.
 */
int mt_metrics_negotiate(const char *accept, const char **content_type);

/** Renders a label pair as series labels hold it: key="escaped value". */
void mt_metrics_label_pair(mt_buf_t *out, const char *key, size_t klen, const char *value,
                           size_t vlen);

/**
 * Appends a snapshot of every family and series (not the sinks) to out,
 * in a binary form mt_metrics_merge reads: how a worker shows its
 * registry to the worker that answers a scrape.
 */
void mt_metrics_snapshot(const mt_metrics_t *m, mt_buf_t *out);
/**
 * Adds a snapshot into m: families are declared as the snapshot has them
 * (one m holds differently is skipped and counted in *conflicts, may be
 * NULL), series matched by their labels. Counters and histograms add up;
 * gauges combine by their family's merge rule; counters_only skips the
 * gauges (what an exited worker leaves behind). 0, or -1 for a snapshot
 * that is not one (nothing more is read from it).
 */
int mt_metrics_merge(mt_metrics_t *m, const void *snap, size_t len, int counters_only,
                     uint32_t *conflicts);

/** Appends a sample value as the exposition writes it (NaN, +Inf, ...). */
void mt_metrics_format_value(mt_buf_t *out, double v);

#endif
