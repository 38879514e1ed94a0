/* health.c - readiness, decided at the top of events and kept. */
#include "health.h"

#include "clock.h"

#include <stdio.h>
#include <stdlib.h>

/* Open WebSockets: the server's when there are several workers. */
static uint32_t open_connections(const mt_health_t *h)
{
    return h->board ? atomic_load(mt_board_connections(h->board)) : mt_conns_count(h->conns);
}

void mt_health_facts(const mt_health_t *h, mt_script_facts_t *f)
{
    const char *reason;
    const mt_redis_t *r = h->channel->redis;
    f->draining = h->proc->draining;
    f->active_connections = open_connections(h);
    f->max_connections = (uint32_t)h->cfg->max_connections;
    f->channel_layer = h->channel->kind;
    f->channel_ready = mt_channel_ready(h->channel, &reason);
    f->redis_configured = r != NULL;
    f->redis_connected = r && mt_redis_up(r);
    f->redis_latency = r ? r->latency : 0;
    f->redis_down_seconds = r && r->down_since ? mt_mono() - r->down_since : 0;
}

/* The built-in rules, used when the scripts have no readiness policy or
 * it fails: not ready while draining, while the channel layer is down or
 * at the connection limit. */
static int builtin_readiness(const mt_health_t *h, mt_buf_t *checks, mt_buf_t *reasons)
{
    const char *channel_reason;
    int channel_ok = mt_channel_ready(h->channel, &channel_reason);
    int draining = h->proc->draining;
    int at_limit = open_connections(h) >= (uint32_t)h->cfg->max_connections;
    mt_buf_addc(checks, '{');
    mt_json_kv_cstr(checks, "draining", draining ? "draining" : "ok");
    mt_json_kv_cstr(checks, "channel_layer", channel_ok ? "ok" : channel_reason);
    mt_json_kv_cstr(checks, "connections", at_limit ? "connection limit reached" : "ok");
    mt_buf_addc(checks, '}');
    mt_buf_addc(reasons, '[');
    const char *list[3] = {draining ? "draining" : NULL, channel_ok ? NULL : channel_reason,
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

static int decide(mt_health_t *h, int use_policy)
{
    mt_buf_reset(&h->checks);
    mt_buf_reset(&h->reasons);
    int ready = 0, decided = 0;
    if (use_policy && h->script && h->script->L) {
        mt_script_facts_t facts;
        mt_health_facts(h, &facts);
        decided = mt_script_readiness(h->script, &facts, &ready, &h->checks, &h->reasons) == 0;
    }
    if (!decided) {
        mt_buf_reset(&h->checks);
        mt_buf_reset(&h->reasons);
        ready = builtin_readiness(h, &h->checks, &h->reasons);
    }
    h->ready = ready;
    h->decided_at = mt_mono();
    if (h->board)
        atomic_store(&mt_board_worker(h->board, h->self)->ready, (uint32_t)ready);
    mt_metric_set(h->gauge, ready);
    return ready;
}

void mt_health_init(mt_health_t *h, mt_metrics_t *metrics, mt_log_t *log, const mt_config_t *cfg,
                    const mt_process_t *proc, const mt_conns_t *conns, const mt_channel_t *channel,
                    mt_script_t *script)
{
    mt_family_t *f;
    char err[256];
    if (mt_metrics_family(metrics, MT_METRIC_GAUGE, "moontide_ready",
                          "1 when /readyz would answer 200, else 0", NULL, 0, NULL, 0, &f, err,
                          sizeof err) != 0) {
        /* A fixed definition of the core's: failing here is a bug. */
        mt_log_msg(log, MT_LOG_CRITICAL, "moontide.health", "%s", err);
        abort();
    }
    f->merge = MT_MERGE_MIN; /* the server is ready when every worker is */
    h->gauge = mt_metrics_series(metrics, f, NULL, NULL);
    h->cfg = cfg;
    h->proc = proc;
    h->conns = conns;
    h->channel = channel;
    h->script = script;
    decide(h, 0);
}

int mt_health_evaluate(mt_health_t *h)
{
    return decide(h, 1);
}

void mt_health_healthz(const mt_health_t *h, mt_buf_t *b)
{
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", "healthy");
    mt_json_kv_cstr(b, "color", h->cfg->color);
    mt_json_kv_seconds(b, "timestamp", mt_now());
    mt_buf_addc(b, '}');
}

int mt_health_readyz(mt_health_t *h, mt_buf_t *b)
{
    int ready = mt_health_evaluate(h);
    /* The other workers' last decisions, and whether they are up. */
    mt_buf_t others = MT_BUF_INIT;
    int n = h->board ? h->board->n : 0;
    for (int w = 0; w < n; w++) {
        if (w == h->self)
            continue;
        const mt_board_worker_t *row = mt_board_worker(h->board, w);
        const char *why = !atomic_load(&row->up)      ? "down"
                          : !atomic_load(&row->ready) ? "not ready"
                                                      : NULL;
        if (why) {
            char text[64];
            snprintf(text, sizeof text, "worker %d %s", w + 1, why);
            mt_buf_addc(&others, ',');
            mt_json_cstr(&others, text);
            ready = 0;
        }
    }
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", ready ? "ready" : "not_ready");
    mt_json_kv_cstr(b, "color", h->cfg->color);
    mt_json_kv_int(b, "active_connections", open_connections(h));
    mt_json_kv_seconds(b, "timestamp", mt_now());
    mt_json_key(b, "checks");
    mt_buf_add(b, h->checks.data, h->checks.len);
    if (h->board) { /* one more check: the workers */
        b->len--;   /* the checks object's } */
        mt_json_kv_cstr(b, "workers", others.len ? "not all ready" : "ok");
        mt_buf_addc(b, '}');
    }
    mt_json_key(b, "reasons");
    if (others.len && h->reasons.len > 2) { /* ["a","b"] + ,"worker 2 down" */
        mt_buf_add(b, h->reasons.data, h->reasons.len - 1);
        mt_buf_add(b, others.data, others.len);
        mt_buf_addc(b, ']');
    } else if (others.len) {
        mt_buf_addc(b, '[');
        mt_buf_add(b, others.data + 1, others.len - 1);
        mt_buf_addc(b, ']');
    } else {
        mt_buf_add(b, h->reasons.data, h->reasons.len);
    }
    mt_buf_addc(b, '}');
    mt_buf_free(&others);
    return ready ? 200 : 503;
}

void mt_health_free(mt_health_t *h)
{
    mt_buf_free(&h->checks);
    mt_buf_free(&h->reasons);
}
