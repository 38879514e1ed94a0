/* report.c - the /status document. */
#include "report.h"

#include "clock.h"

static void count_subscribed(mt_group_t *g, void *ud)
{
    *(uint32_t *)ud += g->subscribed != 0;
}

/* Appends "workers": [...] from the board. */
static void workers(const mt_board_t *board, mt_buf_t *b)
{
    mt_json_key(b, "workers");
    mt_buf_addc(b, '[');
    for (int w = 0; w < board->n; w++) {
        const mt_board_worker_t *row = mt_board_worker(board, w);
        if (w)
            mt_buf_addc(b, ',');
        mt_buf_addc(b, '{');
        mt_json_kv_int(b, "worker", w + 1);
        mt_json_kv_int(b, "pid", atomic_load(&row->pid));
        mt_json_kv_bool(b, "up", atomic_load(&row->up) != 0);
        mt_json_kv_bool(b, "ready", atomic_load(&row->ready) != 0);
        mt_json_kv_int(b, "connections", atomic_load(&row->connections));
        mt_json_kv_int(b, "generation", (int64_t)atomic_load(&row->generation));
        mt_json_kv_int(b, "restarts", atomic_load(&row->restarts));
        mt_json_kv_seconds(b, "started_at", (double)atomic_load(&row->started_ms) / 1000);
        uint64_t at = atomic_load(&row->reload_ms);
        mt_json_key(b, "last_reload");
        if (at) {
            mt_buf_addc(b, '{');
            mt_json_kv_seconds(b, "at", (double)at / 1000);
            mt_json_kv_cstr(b, "result", atomic_load(&row->reload_ok) ? "success" : "failure");
            mt_buf_addc(b, '}');
        } else {
            mt_buf_add(b, "null", 4);
        }
        mt_buf_addc(b, '}');
    }
    mt_buf_addc(b, ']');
}

void mt_report_status(const mt_report_t *r, mt_buf_t *b)
{
    const mt_config_t *cfg = r->cfg;
    mt_buf_addc(b, '{');
    int draining = r->proc->draining || (r->board && atomic_load(mt_board_draining(r->board)));
    mt_json_kv_cstr(b, "status", draining ? "draining" : "running");
    mt_json_kv_cstr(b, "color", cfg->color);
    mt_json_kv_int(b, "active_connections",
                   r->board ? atomic_load(mt_board_connections(r->board))
                            : mt_conns_count(r->conns));
    mt_json_kv_seconds(b, "heartbeat_interval", cfg->heartbeat_interval);
    mt_json_kv_seconds(b, "graceful_shutdown_timeout", cfg->graceful_shutdown_timeout);
    mt_json_kv_seconds(b, "timestamp", mt_now());
    mt_json_kv_cstr(b, "version", MT_VERSION);
    mt_json_kv_seconds(b, "uptime", mt_mono() - r->proc->started_mono);
    mt_json_kv_cstr(b, "channel_layer", r->channel->kind);
    uint32_t subscribed = 0;
    mt_groups_each(r->groups, count_subscribed, &subscribed);
    mt_json_key(b, "groups");
    mt_buf_addc(b, '{');
    mt_json_kv_int(b, "local", r->groups->count);
    mt_json_kv_int(b, "subscribed", subscribed);
    mt_buf_addc(b, '}');
    const mt_redis_t *redis = r->channel->redis;
    if (redis) {
        mt_json_key(b, "redis");
        mt_buf_addc(b, '{');
        mt_json_kv_bool(b, "connected", mt_redis_up(redis));
        mt_json_kv_seconds(b, "latency_seconds", redis->latency);
        mt_json_kv_seconds(b, "down_seconds",
                           redis->down_since ? mt_mono() - redis->down_since : 0);
        if (redis->cluster) {
            mt_json_key(b, "cluster");
            mt_buf_addc(b, '{');
            mt_json_kv_int(b, "masters", redis->cluster->masters);
            mt_json_kv_bool(b, "slots_known", redis->cluster->known);
            mt_json_kv_seconds(b, "map_age_seconds",
                               redis->cluster->map_at ? mt_mono() - redis->cluster->map_at : 0);
            mt_json_kv_int(b, "redirects", (int64_t)redis->cluster->redirects);
            mt_buf_addc(b, '}');
        }
        mt_buf_addc(b, '}');
    }
    if (r->tls) {
        mt_json_key(b, "tls");
        mt_buf_addc(b, '{');
        mt_json_kv_cstr(b, "subject", r->tls->subject);
        mt_json_kv_seconds(b, "not_after", r->tls->not_after);
        mt_json_kv_seconds(b, "expires_in_seconds", r->tls->not_after - mt_now());
        mt_json_kv_int(b, "reloads", (int64_t)r->tls->reloads_ok);
        mt_json_kv_int(b, "reloads_refused", (int64_t)r->tls->reloads_failed);
        if (r->tls->last_error[0])
            mt_json_kv_cstr(b, "last_error", r->tls->last_error);
        mt_buf_addc(b, '}');
    }
    const mt_script_t *s = r->script;
    mt_json_key(b, "scripts");
    mt_buf_addc(b, '{');
    mt_json_kv_int(b, "generation", (int64_t)s->generation);
    mt_json_kv_seconds(b, "loaded_at", s->loaded_at);
    mt_json_key(b, "last_reload");
    if (s->reload_at > 0) {
        mt_buf_addc(b, '{');
        mt_json_kv_seconds(b, "at", s->reload_at);
        mt_json_kv_cstr(b, "result", s->reload_result);
        mt_json_kv_cstr(b, "trigger", s->reload_trigger);
        mt_json_kv_seconds(b, "pause_seconds", s->reload_pause);
        mt_json_kv_cstr(b, "error", s->reload_error);
        mt_buf_addc(b, '}');
    } else {
        mt_buf_add(b, "null", 4);
    }
    mt_buf_addc(b, '}');
    if (r->board)
        workers(r->board, b);
    mt_buf_addc(b, '}');
}
