/* test_metrics.c - registry rules, budget and the exposition writer. */
#include "check.h"
#include "metrics.h"

#include <math.h>
#include <stdlib.h>

static char err[256];

static const char *render(mt_metrics_t *m, int om)
{
    static mt_buf_t b = MT_BUF_INIT;
    mt_buf_reset(&b);
    mt_metrics_render(m, &b, om);
    return mt_buf_cstr(&b);
}

static void test_counter_and_escaping(void)
{
    mt_metrics_t m;
    mt_metrics_init(&m, "blue", 100, 100);
    mt_family_t *f;
    const char *labels[] = {"type"};
    CHECK(mt_metrics_family(&m, MT_METRIC_COUNTER, "x_total", "Help with \\ and\nnewline",
                            labels, 1, NULL, 0, &f, err, sizeof err) == 0);
    const char *v1[] = {"a\"b\\c\nd"};
    mt_series_t *s = mt_metrics_series(&m, f, v1, NULL);
    mt_metric_add(s, 3);
    CHECK(mt_metrics_series(&m, f, v1, NULL) == s); /* resolves to the same handle */
    CHECK_STR(render(&m, 0), "# HELP x_total Help with \\\\ and\\nnewline\n"
                             "# TYPE x_total counter\n"
                             "x_total{color=\"blue\",type=\"a\\\"b\\\\c\\nd\"} 3\n");
    /* OpenMetrics: the family is named without _total; # EOF closes. */
    CHECK_STR(render(&m, 1), "# HELP x Help with \\\\ and\\nnewline\n"
                             "# TYPE x counter\n"
                             "x_total{color=\"blue\",type=\"a\\\"b\\\\c\\nd\"} 3\n"
                             "# EOF\n");
    mt_metrics_free(&m);
}

static void test_histogram(void)
{
    mt_metrics_t m;
    mt_metrics_init(&m, "green", 100, 100);
    mt_family_t *f;
    double bounds[] = {0.1, 1, 10};
    CHECK(mt_metrics_family(&m, MT_METRIC_HISTOGRAM, "d_seconds", "D.", NULL, 0, bounds, 3, &f,
                            err, sizeof err) == 0);
    mt_series_t *s = mt_metrics_series(&m, f, NULL, NULL);
    mt_metric_observe(s, 0.05);
    mt_metric_observe(s, 0.1); /* le is inclusive */
    mt_metric_observe(s, 5);
    mt_metric_observe(s, 50);
    CHECK_STR(render(&m, 0), "# HELP d_seconds D.\n"
                             "# TYPE d_seconds histogram\n"
                             "d_seconds_bucket{color=\"green\",le=\"0.1\"} 2\n"
                             "d_seconds_bucket{color=\"green\",le=\"1\"} 2\n"
                             "d_seconds_bucket{color=\"green\",le=\"10\"} 3\n"
                             "d_seconds_bucket{color=\"green\",le=\"+Inf\"} 4\n"
                             "d_seconds_sum{color=\"green\"} 55.15\n"
                             "d_seconds_count{color=\"green\"} 4\n");
    CHECK(strstr(render(&m, 1), "le=\"1.0\"} 2\n") != NULL);
    mt_metrics_free(&m);
}

static void test_values(void)
{
    mt_buf_t b = MT_BUF_INIT;
    mt_metrics_format_value(&b, NAN);
    mt_buf_addc(&b, ' ');
    mt_metrics_format_value(&b, INFINITY);
    mt_buf_addc(&b, ' ');
    mt_metrics_format_value(&b, -INFINITY);
    mt_buf_addc(&b, ' ');
    mt_metrics_format_value(&b, 0.1);
    mt_buf_addc(&b, ' ');
    mt_metrics_format_value(&b, 1e300);
    mt_buf_addc(&b, ' ');
    mt_metrics_format_value(&b, -2);
    CHECK_STR(mt_buf_cstr(&b), "NaN +Inf -Inf 0.1 1e+300 -2");
    mt_buf_free(&b);
}

static void test_rules_and_order(void)
{
    mt_metrics_t m;
    mt_metrics_init(&m, "blue", 100, 100);
    mt_family_t *f, *g;
    const char *lab[] = {"k"};
    CHECK(mt_metrics_family(&m, MT_METRIC_COUNTER, "no_suffix", "h", NULL, 0, NULL, 0, &f, err,
                            sizeof err) == -1 && strstr(err, "_total"));
    CHECK(mt_metrics_family(&m, MT_METRIC_GAUGE, "9bad", "h", NULL, 0, NULL, 0, &f, err,
                            sizeof err) == -1);
    const char *reserved[] = {"color"};
    CHECK(mt_metrics_family(&m, MT_METRIC_GAUGE, "g", "h", reserved, 1, NULL, 0, &f, err,
                            sizeof err) == -1 && strstr(err, "reserved"));
    double bad[] = {1, 1};
    CHECK(mt_metrics_family(&m, MT_METRIC_HISTOGRAM, "h", "h", NULL, 0, bad, 2, &f, err,
                            sizeof err) == -1 && strstr(err, "increasing"));
    CHECK(mt_metrics_family(&m, MT_METRIC_GAUGE, "zeta", "h", lab, 1, NULL, 0, &f, err,
                            sizeof err) == 0);
    CHECK(mt_metrics_family(&m, MT_METRIC_GAUGE, "zeta", "h", lab, 1, NULL, 0, &g, err,
                            sizeof err) == 0 && f == g); /* same definition: same family */
    CHECK(mt_metrics_family(&m, MT_METRIC_GAUGE, "zeta", "other help", lab, 1, NULL, 0, &g, err,
                            sizeof err) == -1 && strstr(err, "already defined"));
    CHECK(mt_metrics_family(&m, MT_METRIC_GAUGE, "alpha", "h", NULL, 0, NULL, 0, &g, err,
                            sizeof err) == 0);
    mt_metrics_series(&m, g, NULL, NULL);
    const char *v[] = {"1"};
    mt_metrics_series(&m, f, v, NULL);
    const char *out = render(&m, 0);
    CHECK(strstr(out, "alpha") < strstr(out, "zeta")); /* families in name order */
    CHECK(mt_metrics_find(&m, "alpha") == g && mt_metrics_find(&m, "nope") == NULL);
    mt_metrics_free(&m);
}

static void test_budget(void)
{
    mt_metrics_t m;
    mt_metrics_init(&m, "blue", 5, 3);
    mt_family_t *a, *b;
    const char *lab[] = {"id"};
    mt_metrics_family(&m, MT_METRIC_GAUGE, "a", "h", lab, 1, NULL, 0, &a, err, sizeof err);
    mt_metrics_family(&m, MT_METRIC_GAUGE, "b", "h", lab, 1, NULL, 0, &b, err, sizeof err);
    char id[16];
    const char *v[] = {id};
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "%d", i);
        mt_metric_set(mt_metrics_series(&m, a, v, NULL), i);
    }
    CHECK(a->nseries == 3 && m.dropped == 2); /* per-family cap */
    mt_series_t *sink = mt_metrics_series(&m, a, v, NULL);
    CHECK(sink == &a->sink);
    mt_metric_set(sink, 99); /* accepted, never rendered */
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "%d", i);
        mt_metrics_series(&m, b, v, NULL);
    }
    CHECK(m.total_series == 5 && b->nseries == 2); /* total cap */
    CHECK(strstr(render(&m, 0), "99") == NULL);
    mt_metrics_free(&m);
}

/* One worker's registry: a counter, two gauges, a histogram. */
static void worker_registry(mt_metrics_t *m, double conns, double lag, double obs)
{
    mt_metrics_init(m, "blue", 100, 100);
    mt_family_t *c, *g, *lagf, *h;
    const char *lab[] = {"type"};
    CHECK(mt_metrics_family(m, MT_METRIC_COUNTER, "sent_total", "h", lab, 1, NULL, 0, &c, err,
                            sizeof err) == 0);
    CHECK(mt_metrics_family(m, MT_METRIC_GAUGE, "conns", "h", NULL, 0, NULL, 0, &g, err,
                            sizeof err) == 0);
    CHECK(mt_metrics_family(m, MT_METRIC_GAUGE, "lag", "h", NULL, 0, NULL, 0, &lagf, err,
                            sizeof err) == 0);
    lagf->merge = MT_MERGE_MAX;
    double bounds[] = {1, 2};
    CHECK(mt_metrics_family(m, MT_METRIC_HISTOGRAM, "dur", "h", NULL, 0, bounds, 2, &h, err,
                            sizeof err) == 0);
    const char *x[] = {"x"}, *y[] = {"y"};
    mt_metric_add(mt_metrics_series(m, c, x, NULL), 3);
    mt_metric_add(mt_metrics_series(m, c, y, NULL), 1);
    mt_metric_set(mt_metrics_series(m, g, NULL, NULL), conns);
    mt_metric_set(mt_metrics_series(m, lagf, NULL, NULL), lag);
    mt_metric_observe(mt_metrics_series(m, h, NULL, NULL), obs);
}

static void test_snapshot_merge(void)
{
    mt_metrics_t w1, w2, all;
    worker_registry(&w1, 10, 0.5, 0.5);
    worker_registry(&w2, 20, 0.1, 1.5);
    mt_buf_t s1 = MT_BUF_INIT, s2 = MT_BUF_INIT;
    mt_metrics_snapshot(&w1, &s1);
    mt_metrics_snapshot(&w2, &s2);
    mt_metrics_init(&all, "blue", 100, 100);
    uint32_t conflicts = 0;
    CHECK(mt_metrics_merge(&all, s1.data, s1.len, 0, &conflicts) == 0);
    CHECK(mt_metrics_merge(&all, s2.data, s2.len, 0, &conflicts) == 0);
    CHECK(conflicts == 0);
    const char *tx[] = {"type=\"x\""};
    CHECK(mt_metrics_sum(&all, "sent_total", tx, 1, MT_READ_VALUE, 0) == 6);
    CHECK(mt_metrics_sum(&all, "sent_total", NULL, 0, MT_READ_VALUE, 0) == 8);
    CHECK(mt_metrics_sum(&all, "conns", NULL, 0, MT_READ_VALUE, 0) == 30); /* summed */
    CHECK(mt_metrics_sum(&all, "lag", NULL, 0, MT_READ_VALUE, 0) == 0.5);  /* the greatest */
    CHECK(mt_metrics_sum(&all, "dur", NULL, 0, MT_READ_COUNT, 0) == 2);
    CHECK(mt_metrics_sum(&all, "dur", NULL, 0, MT_READ_VALUE, 0) == 2.0);
    CHECK(mt_metrics_sum(&all, "dur", NULL, 0, MT_READ_BUCKET, 1) == 1);
    CHECK(mt_metrics_sum(&all, "dur", NULL, 0, MT_READ_BUCKET, 2) == 2);
    const char *text = render(&all, 0);
    CHECK(strstr(text, "sent_total{color=\"blue\",type=\"x\"} 6") != NULL);

    /* What an exited worker leaves: its counters and histograms only. */
    mt_metrics_t retired;
    mt_metrics_init(&retired, "blue", 100, 100);
    CHECK(mt_metrics_merge(&retired, s1.data, s1.len, 1, NULL) == 0);
    CHECK(mt_metrics_find(&retired, "conns") == NULL);
    CHECK(mt_metrics_sum(&retired, "sent_total", NULL, 0, MT_READ_VALUE, 0) == 4);

    /* A family defined otherwise here is skipped, and counted. */
    mt_metrics_t other;
    mt_metrics_init(&other, "blue", 100, 100);
    mt_family_t *f;
    CHECK(mt_metrics_family(&other, MT_METRIC_GAUGE, "sent_total", "other", NULL, 0, NULL, 0, &f,
                            err, sizeof err) == 0);
    conflicts = 0;
    CHECK(mt_metrics_merge(&other, s1.data, s1.len, 0, &conflicts) == 0 && conflicts == 1);
    CHECK(mt_metrics_sum(&other, "conns", NULL, 0, MT_READ_VALUE, 0) == 10);

    /* Not a snapshot, or a cut one. */
    CHECK(mt_metrics_merge(&other, "junk", 4, 0, NULL) == -1);
    CHECK(mt_metrics_merge(&other, s1.data, s1.len / 2, 0, NULL) == -1);

    mt_buf_free(&s1);
    mt_buf_free(&s2);
    mt_metrics_free(&w1);
    mt_metrics_free(&w2);
    mt_metrics_free(&all);
    mt_metrics_free(&retired);
    mt_metrics_free(&other);
}

int main(void)
{
    test_snapshot_merge();
    test_counter_and_escaping();
    test_histogram();
    test_values();
    test_rules_and_order();
    test_budget();
    return CHECK_DONE();
}
