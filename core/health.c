/* health.c - readiness, decided at the top of events and kept. */
#include "health.h"

#include "runtime.h"

#include <stdlib.h>

/* The built-in rules, used when the scripts have no readiness policy or
 * it fails: not ready while draining, while the channel layer is down or
 * at the connection limit. */
static int builtin_readiness(mt_runtime_t *rt, mt_buf_t *checks, mt_buf_t *reasons)
{
    const char *channel_reason;
    int channel_ok = mt_channel_ready(rt, &channel_reason);
    int at_limit = mt_runtime_active(rt) >= (uint32_t)rt->cfg.max_connections;
    mt_buf_addc(checks, '{');
    mt_json_kv_cstr(checks, "draining", rt->draining ? "draining" : "ok");
    mt_json_kv_cstr(checks, "channel_layer", channel_ok ? "ok" : channel_reason);
    mt_json_kv_cstr(checks, "connections", at_limit ? "connection limit reached" : "ok");
    mt_buf_addc(checks, '}');
    mt_buf_addc(reasons, '[');
    const char *list[3] = {rt->draining ? "draining" : NULL, channel_ok ? NULL : channel_reason,
                           at_limit ? "connection limit reached" : NULL};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        if (!list[i])
            continue;
        if (n++)
            mt_buf_addc(reasons, ',');
        mt_json_cstr(reasons, list[i]);
    }
    mt_buf_addc(reasons, ']');
    return n == 0;
}

static int decide(mt_runtime_t *rt, int use_policy)
{
    mt_health_t *h = &rt->health;
    mt_buf_reset(&h->checks);
    mt_buf_reset(&h->reasons);
    int ready;
    if (!use_policy || mt_script_readiness(rt, &ready, &h->checks, &h->reasons) != 0) {
        mt_buf_reset(&h->checks);
        mt_buf_reset(&h->reasons);
        ready = builtin_readiness(rt, &h->checks, &h->reasons);
    }
    h->ready = ready;
    h->decided_at = mt_mono();
    mt_metric_set(h->gauge, ready);
    return ready;
}

void mt_health_init(mt_runtime_t *rt)
{
    mt_family_t *f;
    char err[256];
    if (mt_metrics_family(&rt->metrics, MT_METRIC_GAUGE, "moontide_ready",
                          "1 when /readyz would answer 200, else 0", NULL, 0, NULL, 0, &f, err,
                          sizeof err) != 0) {
        /* A fixed definition of the core's: failing here is a bug. */
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.health", "%s", err);
        abort();
    }
    rt->health.gauge = mt_metrics_series(&rt->metrics, f, NULL, NULL);
    decide(rt, 0);
}

int mt_health_evaluate(mt_runtime_t *rt)
{
    return decide(rt, 1);
}

void mt_health_free(mt_runtime_t *rt)
{
    mt_buf_free(&rt->health.checks);
    mt_buf_free(&rt->health.reasons);
}
