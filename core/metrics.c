/* metrics.c - families, series, budget and the exposition writer. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double mt_metrics_default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25,
                                            0.5,   0.75, 1.0,   2.5,  5.0,   7.5, 10.0};
const int mt_metrics_default_nbounds =
    (int)(sizeof mt_metrics_default_bounds / sizeof mt_metrics_default_bounds[0]);

static void escape_label_value(mt_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\')
            mt_buf_add(b, "\\\\", 2);
        else if (c == '"')
            mt_buf_add(b, "\\\"", 2);
        else if (c == '\n')
            mt_buf_add(b, "\\n", 2);
        else
            mt_buf_addc(b, c);
    }
}

void mt_metrics_init(mt_metrics_t *m, const char *color, uint32_t max_series,
                     uint32_t max_per_family)
{
    memset(m, 0, sizeof *m);
    m->max_series = max_series;
    m->max_per_family = max_per_family;
    mt_buf_t b = MT_BUF_INIT;
    mt_buf_adds(&b, "color=\"");
    escape_label_value(&b, color, strlen(color));
    mt_buf_addc(&b, '"');
    m->color_label = mt_xstrdup(mt_buf_cstr(&b));
    mt_buf_free(&b);
}

static void free_series(mt_series_t *s)
{
    free(s->labels);
    free(s->buckets);
}

static void free_family(mt_family_t *f)
{
    for (uint32_t i = 0; i < f->nseries; i++) {
        free_series(f->series[i]);
        free(f->series[i]);
    }
    free_series(&f->sink);
    for (int i = 0; i < f->nlabels; i++)
        free(f->label_names[i]);
    free(f->label_names);
    free(f->series);
    free(f->hash);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void mt_metrics_free(mt_metrics_t *m)
{
    for (uint32_t i = 0; i < m->nfamilies; i++)
        free_family(m->families[i]);
    free(m->families);
    free(m->color_label);
    memset(m, 0, sizeof *m);
}

static int valid_name(const char *s, int colons)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (colons && c == ':') || (p > s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static const char *type_name(mt_metric_type_t t)
{
    return t == MT_METRIC_COUNTER ? "counter" : t == MT_METRIC_GAUGE ? "gauge" : "histogram";
}

mt_family_t *mt_metrics_find(const mt_metrics_t *m, const char *name)
{
    uint32_t lo = 0, hi = m->nfamilies;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        int c = strcmp(m->families[mid]->name, name);
        if (c == 0)
            return m->families[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int same_family(const mt_family_t *f, mt_metric_type_t type, const char *help,
                       const char *const *labels, int nlabels, const double *bounds,
                       int nbounds)
{
    if (f->type != type || strcmp(f->help, help) != 0 || f->nlabels != nlabels)
        return 0;
    for (int i = 0; i < nlabels; i++)
        if (strcmp(f->label_names[i], labels[i]) != 0)
            return 0;
    if (type == MT_METRIC_HISTOGRAM) {
        if (f->nbounds != nbounds)
            return 0;
        for (int i = 0; i < nbounds; i++)
            if (f->bounds[i] != bounds[i])
                return 0;
    }
    return 1;
}

static void init_series(mt_family_t *f, mt_series_t *s)
{
    s->family = f;
    if (f->type == MT_METRIC_HISTOGRAM)
        s->buckets = mt_xcalloc((size_t)f->nbounds, sizeof *s->buckets);
}

int mt_metrics_family(mt_metrics_t *m, mt_metric_type_t type, const char *name,
                      const char *help, const char *const *labels, int nlabels,
                      const double *bounds, int nbounds, mt_family_t **out, char *err,
                      size_t errlen)
{
    if (type == MT_METRIC_HISTOGRAM && !bounds) {
        bounds = mt_metrics_default_bounds;
        nbounds = mt_metrics_default_nbounds;
    }
    if (!valid_name(name, 1)) {
        snprintf(err, errlen, "bad metric name \"%.80s\": expected [a-zA-Z_:][a-zA-Z0-9_:]*",
                 name ? name : "");
        return -1;
    }
    size_t nl = strlen(name);
    if (type == MT_METRIC_COUNTER && (nl < 7 || strcmp(name + nl - 6, "_total") != 0)) {
        snprintf(err, errlen, "counter %s: a counter's name must end in _total", name);
        return -1;
    }
    if (!help) {
        snprintf(err, errlen, "metric %s: help text is required", name);
        return -1;
    }
    if (nlabels < 0 || nlabels > 16) {
        snprintf(err, errlen, "metric %s: at most 16 labels", name);
        return -1;
    }
    for (int i = 0; i < nlabels; i++) {
        if (!valid_name(labels[i], 0) || strncmp(labels[i], "__", 2) == 0) {
            snprintf(err, errlen, "metric %s: bad label name \"%.60s\"", name,
                     labels[i] ? labels[i] : "");
            return -1;
        }
        if (strcmp(labels[i], "color") == 0 ||
            (type == MT_METRIC_HISTOGRAM && strcmp(labels[i], "le") == 0)) {
            snprintf(err, errlen, "metric %s: label \"%s\" is reserved", name, labels[i]);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(labels[i], labels[j]) == 0) {
                snprintf(err, errlen, "metric %s: label \"%s\" given twice", name, labels[i]);
                return -1;
            }
    }
    if (type == MT_METRIC_HISTOGRAM) {
        if (nbounds < 1 || nbounds > 64) {
            snprintf(err, errlen, "histogram %s: 1 to 64 buckets", name);
            return -1;
        }
        for (int i = 0; i < nbounds; i++)
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) {
                snprintf(err, errlen,
                         "histogram %s: bucket bounds must be finite and increasing", name);
                return -1;
            }
    }
    mt_family_t *old = mt_metrics_find(m, name);
    if (old) {
        if (!same_family(old, type, help, labels, nlabels, bounds, nbounds)) {
            snprintf(err, errlen,
                     "metric %s is already defined as a %s with other help, labels or "
                     "buckets",
                     name, type_name(old->type));
            return -1;
        }
        *out = old;
        return 0;
    }
    mt_family_t *f = mt_xcalloc(1, sizeof *f);
    f->name = mt_xstrdup(name);
    f->help = mt_xstrdup(help);
    f->type = type;
    f->nlabels = nlabels;
    f->label_names = mt_xcalloc((size_t)(nlabels ? nlabels : 1), sizeof *f->label_names);
    for (int i = 0; i < nlabels; i++)
        f->label_names[i] = mt_xstrdup(labels[i]);
    if (type == MT_METRIC_HISTOGRAM) {
        f->nbounds = nbounds;
        f->bounds = mt_xmalloc((size_t)nbounds * sizeof *f->bounds);
        memcpy(f->bounds, bounds, (size_t)nbounds * sizeof *f->bounds);
    }
    init_series(f, &f->sink);
    if (m->nfamilies == m->capfamilies) {
        m->capfamilies = m->capfamilies ? m->capfamilies * 2 : 32;
        m->families = mt_xrealloc(m->families, m->capfamilies * sizeof *m->families);
    }
    uint32_t pos = m->nfamilies;
    while (pos > 0 && strcmp(m->families[pos - 1]->name, name) > 0) {
        m->families[pos] = m->families[pos - 1];
        pos--;
    }
    m->families[pos] = f;
    m->nfamilies++;
    *out = f;
    return 0;
}

static void rehash(mt_family_t *f)
{
    uint32_t n = f->nhash ? f->nhash * 2 : 16;
    mt_series_t **h = mt_xcalloc(n, sizeof *h);
    for (uint32_t i = 0; i < f->nseries; i++) {
        mt_series_t *s = f->series[i];
        s->next = h[s->hash & (n - 1)];
        h[s->hash & (n - 1)] = s;
    }
    free(f->hash);
    f->hash = h;
    f->nhash = n;
}

/* The series with this rendered label string, made if new; NULL when the
 * series budget is spent (counted in dropped). */
static mt_series_t *series_by_labels(mt_metrics_t *m, mt_family_t *f, const char *labels,
                                     uint32_t len)
{
    uint32_t h = mt_hash(labels, len);
    if (f->nhash)
        for (mt_series_t *s = f->hash[h & (f->nhash - 1)]; s; s = s->next)
            if (s->hash == h && s->labels_len == len && memcmp(s->labels, labels, len) == 0)
                return s;
    if (f->nseries >= m->max_per_family || m->total_series >= m->max_series) {
        m->dropped++;
        return NULL;
    }
    mt_series_t *s = mt_xcalloc(1, sizeof *s);
    init_series(f, s);
    s->labels = mt_xstrndup(labels, len);
    s->labels_len = len;
    s->hash = h;
    if (f->nseries == f->capseries) {
        f->capseries = f->capseries ? f->capseries * 2 : 8;
        f->series = mt_xrealloc(f->series, f->capseries * sizeof *f->series);
    }
    f->series[f->nseries++] = s;
    m->total_series++;
    if (f->nseries > f->nhash) {
        rehash(f);
    } else {
        s->next = f->hash[h & (f->nhash - 1)];
        f->hash[h & (f->nhash - 1)] = s;
    }
    return s;
}

mt_series_t *mt_metrics_series(mt_metrics_t *m, mt_family_t *f, const char *const *values,
                               const size_t *lens)
{
    mt_buf_t key = MT_BUF_INIT;
    mt_buf_adds(&key, m->color_label);
    for (int i = 0; i < f->nlabels; i++) {
        mt_buf_addc(&key, ',');
        mt_buf_adds(&key, f->label_names[i]);
        mt_buf_add(&key, "=\"", 2);
        escape_label_value(&key, values[i], lens ? lens[i] : strlen(values[i]));
        mt_buf_addc(&key, '"');
    }
    mt_series_t *s = series_by_labels(m, f, key.data, (uint32_t)key.len);
    mt_buf_free(&key);
    return s ? s : &f->sink;
}

void mt_metrics_label_pair(mt_buf_t *out, const char *key, size_t klen, const char *value,
                           size_t vlen)
{
    mt_buf_add(out, key, klen);
    mt_buf_add(out, "=\"", 2);
    escape_label_value(out, value, vlen);
    mt_buf_addc(out, '"');
}

/* Does the rendered label string hold the pair (at the start or after a
 * comma, so a="x" does not match ba="x")? */
static int has_pair(const mt_series_t *s, const char *pair)
{
    size_t n = strlen(pair);
    const char *p = s->labels;
    while ((p = strstr(p, pair)) != NULL) {
        if ((p == s->labels || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
        p++;
    }
    return 0;
}

double mt_metrics_sum(const mt_metrics_t *m, const char *name, const char *const *match, int n,
                      int what, double le)
{
    const mt_family_t *f = mt_metrics_find(m, name);
    if (!f)
        return NAN;
    int bucket = -1;
    if (what == MT_READ_BUCKET && f->type == MT_METRIC_HISTOGRAM && !isinf(le))
        for (int k = 0; k < f->nbounds; k++)
            if (f->bounds[k] == le)
                bucket = k;
    double sum = 0;
    int matched = 0;
    for (uint32_t i = 0; i < f->nseries; i++) {
        const mt_series_t *s = f->series[i];
        int ok = 1;
        for (int j = 0; j < n && ok; j++)
            ok = has_pair(s, match[j]);
        if (!ok)
            continue;
        matched++;
        if (what == MT_READ_VALUE || f->type != MT_METRIC_HISTOGRAM) {
            sum += s->value;
        } else if (what == MT_READ_COUNT || bucket < 0) {
            sum += (double)s->count;
        } else {
            uint64_t cum = 0;
            for (int k = 0; k <= bucket; k++)
                cum += s->buckets[k];
            sum += (double)cum;
        }
    }
    return matched ? sum : NAN; /* no series: no data, as in PromQL */
}

void mt_metric_observe(mt_series_t *s, double v)
{
    const mt_family_t *f = s->family;
    int lo = 0, hi = f->nbounds;
    /* first bound >= v; past the last: only +Inf (count) holds it */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (f->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < f->nbounds)
        s->buckets[lo]++;
    s->count++;
    s->value += v;
}

void mt_metrics_format_value(mt_buf_t *out, double v)
{
    if (isnan(v)) {
        mt_buf_add(out, "NaN", 3);
    } else if (isinf(v)) {
        mt_buf_adds(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        mt_buf_addf(out, "%.0f", v);
    } else {
        mt_json_num(out, v); /* shortest exact form */
    }
}

static void add_help(mt_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            mt_buf_add(b, "\\\\", 2);
        else if (*s == '\n')
            mt_buf_add(b, "\\n", 2);
        else
            mt_buf_addc(b, *s);
    }
}

static void sample(mt_buf_t *b, const char *name, const char *suffix, const mt_series_t *s,
                   const char *extra, double v)
{
    mt_buf_adds(b, name);
    mt_buf_adds(b, suffix);
    mt_buf_addc(b, '{');
    mt_buf_add(b, s->labels, s->labels_len);
    if (extra)
        mt_buf_adds(b, extra);
    mt_buf_add(b, "} ", 2);
    mt_metrics_format_value(b, v);
    mt_buf_addc(b, '\n');
}

static void render_family(const mt_family_t *f, mt_buf_t *b, int openmetrics)
{
    size_t nl = strlen(f->name);
    /* OpenMetrics names a counter family without its _total suffix. */
    int strip = openmetrics && f->type == MT_METRIC_COUNTER;
    char famname[256];
    snprintf(famname, sizeof famname, "%.*s", (int)(strip ? nl - 6 : nl), f->name);
    mt_buf_adds(b, "# HELP ");
    mt_buf_adds(b, famname);
    mt_buf_addc(b, ' ');
    add_help(b, f->help);
    mt_buf_adds(b, "\n# TYPE ");
    mt_buf_adds(b, famname);
    mt_buf_addc(b, ' ');
    mt_buf_adds(b, type_name(f->type));
    mt_buf_addc(b, '\n');
    /* The le="..." label of each bucket, formatted once per family. */
    mt_buf_t lb = MT_BUF_INIT;
    size_t offsets[65];
    for (int k = 0; k < f->nbounds; k++) {
        offsets[k] = lb.len;
        mt_buf_adds(&lb, ",le=\"");
        mt_metrics_format_value(&lb, f->bounds[k]);
        if (openmetrics && f->bounds[k] == floor(f->bounds[k]))
            mt_buf_add(&lb, ".0", 2); /* OpenMetrics: canonical float */
        mt_buf_addc(&lb, '"');
        mt_buf_addc(&lb, '\0');
    }
    const char *les[64];
    for (int k = 0; k < f->nbounds; k++)
        les[k] = lb.data + offsets[k];
    for (uint32_t i = 0; i < f->nseries; i++) {
        const mt_series_t *s = f->series[i];
        if (f->type != MT_METRIC_HISTOGRAM) {
            sample(b, f->name, "", s, NULL, s->value);
            continue;
        }
        uint64_t cum = 0;
        for (int k = 0; k < f->nbounds; k++) {
            cum += s->buckets[k];
            sample(b, f->name, "_bucket", s, les[k], (double)cum);
        }
        sample(b, f->name, "_bucket", s, ",le=\"+Inf\"", (double)s->count);
        sample(b, f->name, "_sum", s, NULL, s->value);
        sample(b, f->name, "_count", s, NULL, (double)s->count);
    }
    mt_buf_free(&lb);
}

void mt_metrics_render(const mt_metrics_t *m, mt_buf_t *out, int openmetrics)
{
    for (uint32_t i = 0; i < m->nfamilies; i++)
        render_family(m->families[i], out, openmetrics);
    if (openmetrics)
        mt_buf_add(out, "# EOF\n", 6);
}

int mt_metrics_negotiate(const char *accept, const char **content_type)
{
    int om = accept && strstr(accept, "application/openmetrics-text") != NULL;
    *content_type = om ? MT_METRICS_CT_OPENMETRICS : MT_METRICS_CT_TEXT;
    return om;
}

/* -- Snapshots ---------------------------------------------------------- */

#define SNAP_MAGIC 0x3153544du /* "MTS1" */

static void put_u32(mt_buf_t *b, uint32_t v)
{
    mt_buf_add(b, &v, sizeof v);
}

static void put_bytes(mt_buf_t *b, const void *p, uint32_t n)
{
    put_u32(b, n);
    mt_buf_add(b, p, n);
}

void mt_metrics_snapshot(const mt_metrics_t *m, mt_buf_t *out)
{
    put_u32(out, SNAP_MAGIC);
    put_u32(out, m->nfamilies);
    for (uint32_t i = 0; i < m->nfamilies; i++) {
        const mt_family_t *f = m->families[i];
        put_u32(out, (uint32_t)f->type | (uint32_t)f->merge << 8);
        put_bytes(out, f->name, (uint32_t)strlen(f->name));
        put_bytes(out, f->help, (uint32_t)strlen(f->help));
        put_u32(out, (uint32_t)f->nlabels);
        for (int k = 0; k < f->nlabels; k++)
            put_bytes(out, f->label_names[k], (uint32_t)strlen(f->label_names[k]));
        put_u32(out, (uint32_t)f->nbounds);
        mt_buf_add(out, f->bounds, (size_t)f->nbounds * sizeof *f->bounds);
        put_u32(out, f->nseries);
        for (uint32_t j = 0; j < f->nseries; j++) {
            const mt_series_t *s = f->series[j];
            put_bytes(out, s->labels, s->labels_len);
            mt_buf_add(out, &s->value, sizeof s->value);
            mt_buf_add(out, &s->count, sizeof s->count);
            mt_buf_add(out, s->buckets, (size_t)f->nbounds * sizeof *s->buckets);
        }
    }
}

/* A reader over a snapshot; any read past its end sets bad. */
typedef struct reader {
    const uint8_t *p, *end;
    int bad;
} reader_t;

static const void *take(reader_t *r, size_t n)
{
    if (r->bad || (size_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const void *at = r->p;
    r->p += n;
    return at;
}

static uint32_t get_u32(reader_t *r)
{
    uint32_t v = 0;
    const void *p = take(r, sizeof v);
    if (p)
        memcpy(&v, p, sizeof v);
    return v;
}

/* A length-prefixed string, copied NUL-terminated into a new buffer. */
static char *get_str(reader_t *r)
{
    uint32_t n = get_u32(r);
    const char *p = take(r, n);
    return p ? mt_xstrndup(p, n) : NULL;
}

static void merge_gauge(mt_series_t *s, mt_merge_t rule, double v)
{
    if (!s->merged || rule == MT_MERGE_SUM)
        s->value = s->merged ? s->value + v : v;
    else if (rule == MT_MERGE_MIN ? v < s->value : v > s->value)
        s->value = v;
    s->merged = 1;
}

int mt_metrics_merge(mt_metrics_t *m, const void *snap, size_t len, int counters_only,
                     uint32_t *conflicts)
{
    reader_t r = {snap, (const uint8_t *)snap + len, 0};
    if (get_u32(&r) != SNAP_MAGIC)
        return -1;
    uint32_t nfamilies = get_u32(&r);
    for (uint32_t i = 0; i < nfamilies && !r.bad; i++) {
        uint32_t kind = get_u32(&r);
        mt_metric_type_t type = (mt_metric_type_t)(kind & 0xff);
        mt_merge_t rule = (mt_merge_t)(kind >> 8);
        char *name = get_str(&r), *help = get_str(&r);
        uint32_t nlabels = get_u32(&r);
        char *labels[16] = {0};
        for (uint32_t k = 0; k < nlabels && k < 16; k++)
            labels[k] = get_str(&r);
        uint32_t nbounds = get_u32(&r);
        const double *bounds = take(&r, (size_t)nbounds * sizeof(double));
        uint32_t nseries = get_u32(&r);
        mt_family_t *f = NULL;
        char err[160];
        int skip = r.bad || nlabels > 16 || type > MT_METRIC_HISTOGRAM ||
                   (counters_only && type == MT_METRIC_GAUGE);
        if (!skip) {
            /* Copied: the snapshot's bytes need not be aligned for doubles. */
            double copy[64];
            int nb = nbounds <= 64 ? (int)nbounds : 64;
            if (bounds)
                memcpy(copy, bounds, (size_t)nb * sizeof(double));
            if (mt_metrics_family(m, type, name, help, (const char *const *)labels, (int)nlabels,
                                  type == MT_METRIC_HISTOGRAM ? copy : NULL, nb, &f, err,
                                  sizeof err) != 0) {
                f = NULL;
                if (conflicts)
                    (*conflicts)++;
            } else {
                f->merge = rule;
            }
        }
        for (uint32_t j = 0; j < nseries && !r.bad; j++) {
            uint32_t llen = get_u32(&r);
            const char *lab = take(&r, llen);
            double v;
            uint64_t count;
            const void *pv = take(&r, sizeof v), *pc = take(&r, sizeof count);
            const uint8_t *pb = take(&r, (size_t)nbounds * sizeof(uint64_t));
            if (r.bad || !f)
                continue;
            memcpy(&v, pv, sizeof v);
            memcpy(&count, pc, sizeof count);
            mt_series_t *s = series_by_labels(m, f, lab, llen);
            if (!s)
                continue;
            if (type == MT_METRIC_GAUGE) {
                merge_gauge(s, rule, v);
                continue;
            }
            s->value += v;
            s->count += count;
            for (int k = 0; k < f->nbounds && (uint32_t)k < nbounds; k++) {
                uint64_t c;
                memcpy(&c, pb + (size_t)k * sizeof c, sizeof c);
                s->buckets[k] += c;
            }
            s->merged = 1;
        }
        free(name);
        free(help);
        for (uint32_t k = 0; k < 16; k++)
            free(labels[k]);
    }
    return r.bad ? -1 : 0;
}
