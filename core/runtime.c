/* runtime.c - the root: wiring, the loop, lws on it, signals and drain. */
#include "runtime.h"

#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

static mt_runtime_t *current;

mt_runtime_t *mt_runtime_current(void)
{
    return current;
}

void mt_runtime_bind(mt_runtime_t *rt)
{
    current = rt;
}

/* lws's log hook takes no user pointer: it reaches the runtime through
 * the one process-wide pointer. Its lines become ours, so stdout and
 * stderr carry JSON only. */
static void lws_log_emit(int level, const char *line)
{
    /* Messages lws reports as errors for situations that are routine for
     * a server and that moontide logs itself with context: input still
     * arriving on a socket we have just closed (an oversize message). */
    static const char *const routine[] = {"Unhandled state LRS_DEAD_SOCKET"};
    mt_runtime_t *rt = current;
    if (!rt)
        return;
    int ours = level & LLL_ERR ? MT_LOG_ERROR : level & LLL_WARN ? MT_LOG_WARNING : MT_LOG_DEBUG;
    for (size_t i = 0; i < sizeof routine / sizeof routine[0]; i++)
        if (strstr(line, routine[i]))
            ours = MT_LOG_DEBUG;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    if (mt_log_begin(&rt->log, ours, "lws", line, n))
        mt_log_end(&rt->log);
}

/* The one lws protocol callback: WebSocket reasons to the WebSocket edge,
 * the rest to the HTTP edge. */
static int install_tls(mt_runtime_t *rt, void *ssl_ctx);

static int on_lws(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
    /* user: WebSockets use the opaque pointer and HTTP its own slot; only
     * the vhost's TLS set-up gets something here (its SSL_CTX). */
    mt_runtime_t *rt = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        return install_tls(rt, user);
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    case LWS_CALLBACK_ADD_HEADERS:
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_RECEIVE_PONG:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        return mt_ws_callback(&rt->ws, wsi, reason, in, len);
    default:
        return mt_http_callback(&rt->http, wsi, reason, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    {.name = "http", .callback = on_lws, .per_session_data_size = sizeof(void *)},
    /* Frames arrive in rx_buffer_size pieces; messages are reassembled.
     * lws allocates that buffer per connection, and an idle connection
     * costs lws ~1.4 KB besides (measured with massif: the wsi 864 B, its
     * ws state 204 B, a uv_poll 146 B): 128 bytes holds a typical chat
     * message, and longer ones are reassembled (copied once). 4 KB -> 1 KB
     * took RSS per idle connection from 7.3 KB to 4.3 KB. Without
     * tx_packet_size lws also caps each send() at rx_buffer_size: 64 KB
     * sends take far fewer syscalls for large frames. */
    {.name = "moontide",
     .callback = on_lws,
     .per_session_data_size = 0,
     .rx_buffer_size = 128,
     .tx_packet_size = 64 * 1024},
    /* The same again under a name no client can send: upgrades that offer
     * subprotocols are bound to it (ws.c explains why). */
    {.name = MT_WS_OFFER_PROTOCOL,
     .callback = on_lws,
     .per_session_data_size = 0,
     .rx_buffer_size = 128,
     .tx_packet_size = 64 * 1024},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

/* Makes "moontide" the protocol of every upgrade, whatever the client
 * asks for: routing is by path, in on_filter. */
static const struct lws_protocol_vhost_options pvo_default = {NULL, NULL, "default", "1"};
static const struct lws_protocol_vhost_options pvo = {NULL, &pvo_default, "moontide", ""};

/* No lws validity pings or hang-ups: heartbeats are ours (ws.c sweeps
 * every connection once a second). Without a policy lws applies a default
 * one that keeps a timer per connection in a sorted list, an O(n) insert
 * that made connecting slow to 2 400/s near 20 000 connections. */
static const lws_retry_bo_t no_validity = {.secs_since_valid_ping = 0,
                                           .secs_since_valid_hangup = 0};

static void finish(mt_runtime_t *rt, const char *why);

/* -- TLS: the certificate pair ------------------------------------------- */

static void log_certificate(mt_runtime_t *rt, int level, const char *message, const char *error)
{
    mt_buf_t *b = mt_log_begin(&rt->log, level, "moontide.tls", message, strlen(message));
    if (b) {
        mt_json_kv_cstr(b, "subject", rt->tls.subject);
        mt_json_kv_seconds(b, "not_after", rt->tls.not_after);
        mt_json_kv_cstr(b, "cert", rt->tls.cert_path);
        if (error)
            mt_json_kv_cstr(b, "error", error);
        mt_log_end(&rt->log);
    }
}

/* lws's vhost set-up hands us its SSL_CTX: the pair goes in. */
static int install_tls(mt_runtime_t *rt, void *ssl_ctx)
{
    if (!rt->cfg.tls_cert)
        return 0;
    char err[256];
    if (mt_tls_install(&rt->tls, ssl_ctx, err, sizeof err) != 0) {
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.tls", "cannot use the certificate: %s",
                   err);
        return -1;
    }
    log_certificate(rt, MT_LOG_INFO, "tls certificate", NULL);
    return 0;
}

/* The files changed and settled (checked every second), or a reload was
 * asked for: a good new pair serves the next handshakes; a bad one is
 * refused and the old one serves on. */
static void reload_tls(mt_runtime_t *rt, int forced)
{
    if (!rt->tls.ssl_ctx || (!forced && !mt_tls_poll(&rt->tls)))
        return;
    if (mt_tls_reload(&rt->tls) == 1)
        log_certificate(rt, MT_LOG_INFO, "tls certificate reloaded", NULL);
    else
        log_certificate(rt, MT_LOG_ERROR, "tls certificate refused: the old one serves on",
                        rt->tls.last_error);
}

int mt_runtime_reload(mt_runtime_t *rt, const char *trigger, const char *changed, int n)
{
    mt_notify_send(&rt->notify, "RELOADING=1");
    reload_tls(rt, 1);
    mt_buf_t files = MT_BUF_INIT;
    int nfiles = mt_watch_scan(rt->cfg.scripts, &files, NULL);
    int rc = mt_script_reload(&rt->script, trigger, files.data, nfiles, changed, n);
    mt_buf_free(&files);
    mt_notify_send(&rt->notify, rc == 0 ? "READY=1\nSTATUS=serving; scripts reloaded"
                                        : "READY=1\nSTATUS=serving; a script reload failed");
    return rc;
}

/* -- What the layers report upward --------------------------------------- */

/* Files of the script set changed (and settled). */
static void on_scripts_changed(void *ud, const char *changed, int n)
{
    mt_runtime_reload(ud, "watch", changed, n);
}

/* -- A worker and its supervisor ----------------------------------------- */

/* Asks the supervisor to reload every worker; ticket: an admin request
 * waiting for the outcome (0: none). */
static int request_reload(mt_runtime_t *rt, const char *trigger, uint64_t ticket)
{
    uint32_t id = ++rt->next_request;
    if (ticket) {
        int slot = -1;
        for (int i = 0; i < MT_RUNTIME_ADMIN_WAIT && slot < 0; i++)
            if (!rt->admin_wait[i].id)
                slot = i;
        if (slot < 0)
            return -1; /* too many waiting: answered at once, as failed */
        rt->admin_wait[slot].id = id;
        rt->admin_wait[slot].ticket = ticket;
    }
    if (mt_control_send(rt->worker->control, MT_CTL_RELOAD_REQUEST, id, 1, 0, 0, trigger,
                        strlen(trigger)) != 0) {
        for (int i = 0; i < MT_RUNTIME_ADMIN_WAIT; i++)
            if (rt->admin_wait[i].id == id)
                rt->admin_wait[i].id = 0;
        return -1;
    }
    return 1;
}

static int on_admin_reload(void *ud, const char *trigger, uint64_t ticket)
{
    mt_runtime_t *rt = ud;
    if (rt->worker)
        return request_reload(rt, trigger, ticket);
    return mt_runtime_reload(rt, trigger, NULL, 0);
}

/* Posts this worker's scripts and last reload on the board. */
static void post_reload(mt_runtime_t *rt)
{
    mt_board_worker_t *row = mt_board_worker(rt->worker->board, rt->worker->index - 1);
    atomic_store(&row->generation, rt->script.generation);
    if (rt->script.reload_at > 0) {
        atomic_store(&row->reload_ok,
                     rt->script.reload_result && strcmp(rt->script.reload_result, "success") == 0);
        atomic_store(&row->reload_ms, (uint64_t)(rt->script.reload_at * 1000));
    }
}

/* The outcome of a reload step on this worker, to the supervisor. */
static void reply(mt_runtime_t *rt, uint32_t type, uint32_t id, int ok)
{
    const char *err = ok ? NULL : rt->script.reload_error;
    mt_control_send(rt->worker->control, type, id, ok, rt->script.generation,
                    rt->script.reload_pause, err, err ? strlen(err) : 0);
}

static void start_drain(mt_runtime_t *rt, const char *signame);

static void on_control_msg(mt_runtime_t *rt, const mt_control_msg_t *m)
{
    switch (m->type) {
    case MT_CTL_PREPARE: {
        /* text: the trigger, then the changed files, NUL-separated */
        const char *trigger = m->text;
        const char *changed = trigger + strlen(trigger) + 1;
        int n = 0;
        for (const char *p = changed; p < m->text + m->len; p += strlen(p) + 1)
            n++;
        /* The trigger must outlive the message: keep one of the known ones. */
        static const char *const triggers[] = {"watch", "signal", "admin"};
        const char *kept = "admin";
        for (size_t i = 0; i < sizeof triggers / sizeof triggers[0]; i++)
            if (strcmp(trigger, triggers[i]) == 0)
                kept = triggers[i];
        mt_buf_t files = MT_BUF_INIT;
        int nfiles = mt_watch_scan(rt->cfg.scripts, &files, NULL);
        int rc = mt_script_prepare(&rt->script, kept, files.data, nfiles, changed, n);
        mt_buf_free(&files);
        if (rc != 0)
            post_reload(rt);
        reply(rt, MT_CTL_PREPARED, m->id, rc == 0);
        break;
    }
    case MT_CTL_COMMIT: {
        reload_tls(rt, 1);
        int rc = mt_script_commit(&rt->script);
        post_reload(rt);
        reply(rt, MT_CTL_DONE, m->id, rc == 0);
        break;
    }
    case MT_CTL_ABORT:
        mt_script_abort(&rt->script, m->text);
        post_reload(rt);
        reply(rt, MT_CTL_DONE, m->id, 0);
        break;
    case MT_CTL_REPORT:
        for (int i = 0; i < MT_RUNTIME_ADMIN_WAIT; i++)
            if (rt->admin_wait[i].id && rt->admin_wait[i].id == m->id) {
                rt->admin_wait[i].id = 0;
                mt_http_reload_done(&rt->http, rt->admin_wait[i].ticket, m->ok,
                                    m->len ? m->text : NULL);
            }
        break;
    default:
        break;
    }
}

static void on_control(uv_poll_t *h, int status, int events)
{
    mt_runtime_t *rt = h->data;
    (void)events;
    static mt_control_msg_t m;
    int rc = status < 0 ? -1 : 0;
    while (rc == 0 && (rc = mt_control_recv(rt->worker->control, &m)) == 1) {
        on_control_msg(rt, &m);
        rc = 0;
    }
    if (rc < 0) { /* the supervisor is gone: leave as a drain would */
        uv_poll_stop(h);
        mt_log_msg(&rt->log, MT_LOG_ERROR, "moontide.runtime", "the supervisor is gone: draining");
        if (!rt->proc.draining && !rt->finishing)
            start_drain(rt, "supervisor gone");
    }
}

/* A message from another worker. */
static void on_mesh(void *ud, int from, int type, const void *data, size_t len)
{
    mt_runtime_t *rt = ud;
    (void)from;
    if (type == MT_MESH_GROUP)
        mt_channel_mesh_message(&rt->channel, data, len);
    else if (type == MT_MESH_LUA)
        mt_script_mesh(&rt->script, from + 1, data, len);
}

/* Once a second, in a worker: its row and metrics on the board, and in
 * worker 1 the in-process alerts over the server's metrics. */
static void worker_sweep(mt_runtime_t *rt)
{
    mt_instruments_publish(&rt->ins);
    if (rt->worker->index != 1) {
        mt_script_tick(&rt->script, 0);
        return;
    }
    mt_instruments_aggregate(&rt->ins, &rt->agg);
    rt->metrics_view = &rt->agg;
    mt_script_tick(&rt->script, rt->http.alerts_on);
    rt->metrics_view = NULL;
    mt_metrics_free(&rt->agg);
    mt_buf_t json = MT_BUF_INIT;
    mt_script_alerts_json(&rt->script, &json);
    mt_board_publish(rt->worker->board, MT_BLOB_ALERTS, 0, json.data, json.len);
    mt_buf_free(&json);
}

/* A script's timer fired. */
static void on_timer(void *ud, uint64_t id)
{
    mt_runtime_t *rt = ud;
    mt_script_timer(&rt->script, id);
}

static void on_redis_message(void *ud, const char *group, size_t len, const void *payload,
                             size_t plen, int binary)
{
    mt_runtime_t *rt = ud;
    mt_channel_remote_message(&rt->channel, group, len, payload, plen, binary);
}

static void on_redis_subscribed(void *ud, const char *group, size_t len)
{
    mt_runtime_t *rt = ud;
    mt_channel_redis_subscribed(&rt->channel, group, len);
}

static void on_redis_link(void *ud, int subscriber, int up)
{
    mt_runtime_t *rt = ud;
    mt_channel_redis_link(&rt->channel, subscriber, up);
}

static void on_redis_reply(void *ud, uint64_t id, void *reply)
{
    mt_runtime_t *rt = ud;
    mt_script_redis_reply(&rt->script, id, reply);
}

#define SETTLE_MS 10
#define SETTLE_MAX 2.0 /* seconds */

/* After the last connection: Redis commands still in flight (a chat
 * message handled just before its sender's close, its EVAL not yet
 * answered) finish before the process goes, for up to SETTLE_MAX. */
static void on_settle(uv_timer_t *t)
{
    mt_runtime_t *rt = t->data;
    if (!mt_redis_busy(&rt->redis) || mt_mono() - rt->settle_started > SETTLE_MAX)
        finish(rt, "drained");
}

/* The last connection of a drain closed. */
static void on_drained(void *ud)
{
    mt_runtime_t *rt = ud;
    if (!mt_redis_busy(&rt->redis)) {
        finish(rt, "drained");
        return;
    }
    rt->settle_started = mt_mono();
    uv_timer_start(&rt->drain_step, on_settle, SETTLE_MS, SETTLE_MS);
}

static void on_drain_timeout(uv_timer_t *t)
{
    mt_runtime_t *rt = t->data;
    mt_log_msg(&rt->log, MT_LOG_WARNING, "moontide.runtime",
               "graceful shutdown timeout: closing %u connections", mt_conns_count(&rt->conns));
    finish(rt, "timeout");
}

#define DRAIN_STEP_MS 50
#define SWEEP_MS 1000

static void on_drain_step(uv_timer_t *t)
{
    mt_runtime_t *rt = t->data;
    if (mt_ws_drain_step(&rt->ws) == 0)
        uv_timer_stop(t);
}

/* Every second: heartbeats; readiness decided afresh; the Lua state's size
 * sampled; then the registry is collected once, and the in-process
 * alerts, when due, read that snapshot (their metric reads never collect
 * or run Lua themselves). */
static void on_sweep(uv_timer_t *t)
{
    mt_runtime_t *rt = t->data;
    mt_ws_sweep(&rt->ws);
    reload_tls(rt, 0);
    mt_health_evaluate(&rt->health);
    mt_script_sample(&rt->script);
    if (rt->worker) {
        worker_sweep(rt);
        return;
    }
    mt_instruments_collect(&rt->ins);
    mt_script_tick(&rt->script, rt->http.alerts_on);
}

static void start_drain(mt_runtime_t *rt, const char *signame)
{
    mt_notify_send(&rt->notify, "STOPPING=1\nSTATUS=draining");
    rt->proc.draining = 1;
    rt->proc.drain_started = mt_mono();
    mt_health_evaluate(&rt->health);
    mt_buf_t *b = mt_log_begin(&rt->log, MT_LOG_INFO, "moontide.runtime", "draining", 8);
    if (b) {
        mt_json_kv_cstr(b, "signal", signame);
        mt_json_kv_int(b, "active_connections", mt_conns_count(&rt->conns));
        mt_json_kv_seconds(b, "graceful_shutdown_timeout", rt->cfg.graceful_shutdown_timeout);
        mt_log_end(&rt->log);
    }
    if (mt_conns_count(&rt->conns) == 0) {
        finish(rt, "drained");
        return;
    }
    uv_timer_start(&rt->drain_step, on_drain_step, 0, DRAIN_STEP_MS);
    uv_timer_start(&rt->drain_timer, on_drain_timeout,
                   (uint64_t)(rt->cfg.graceful_shutdown_timeout * 1000), 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
    mt_runtime_t *rt = h->data;
    if (signum == SIGHUP) {
        if (rt->finishing)
            return;
        if (rt->worker)
            request_reload(rt, "signal", 0); /* every worker reloads, or none */
        else
            mt_runtime_reload(rt, "signal", NULL, 0);
        return;
    }
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (!rt->proc.draining) {
        start_drain(rt, name);
        return;
    }
    mt_log_msg(&rt->log, MT_LOG_WARNING, "moontide.runtime",
               "second %s during drain: exiting now", name);
    rt->exit_code = 1;
    finish(rt, "signal");
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* First phase of the two-phase lws shutdown: close our handles and ask
 * lws to destroy its context; uv_run returns once all are closed. */
static void finish(mt_runtime_t *rt, const char *why)
{
    if (rt->finishing)
        return;
    rt->finishing = 1;
    double took = rt->proc.draining ? mt_mono() - rt->proc.drain_started : 0;
    if (rt->proc.draining)
        mt_metric_set(rt->ins.shutdown, took);
    mt_buf_t *b = mt_log_begin(&rt->log, MT_LOG_INFO, "moontide.runtime", "shutdown", 8);
    if (b) {
        mt_json_kv_cstr(b, "reason", why);
        mt_json_kv_seconds(b, "shutdown_seconds", took);
        mt_json_kv_int(b, "connections_left", mt_conns_count(&rt->conns));
        mt_log_end(&rt->log);
    }
    uv_timer_stop(&rt->drain_timer);
    close_handle((uv_handle_t *)&rt->drain_timer);
    close_handle((uv_handle_t *)&rt->drain_step);
    close_handle((uv_handle_t *)&rt->sweep);
    close_handle((uv_handle_t *)&rt->sig_term);
    close_handle((uv_handle_t *)&rt->sig_int);
    close_handle((uv_handle_t *)&rt->sig_hup);
    mt_listen_stop(&rt->listener);
    mt_ws_stop(&rt->ws);
    mt_timers_stop_all(&rt->timers);
    mt_instruments_close(&rt->ins);
    mt_watch_stop(&rt->watch);
    mt_redis_stop(&rt->redis);
    mt_notify_stop(&rt->notify);
    if (rt->worker) {
        mt_board_worker_t *row = mt_board_worker(rt->worker->board, rt->worker->index - 1);
        atomic_store(&row->up, 0);
        mt_mesh_detach(rt->worker->mesh);
        if (rt->control_poll.loop)
            close_handle((uv_handle_t *)&rt->control_poll);
    }
    if (rt->lws)
        lws_context_destroy(rt->lws);
}

/* In a worker: the edges read the server's figures from the board, and
 * group sends reach the other workers through the mesh. */
static void wire_worker(mt_runtime_t *rt)
{
    mt_worker_t *w = rt->worker;
    int self = w->index - 1;
    rt->log.worker = w->index;
    rt->ws.server_conns = mt_board_connections(w->board);
    rt->ws.own_conns = &mt_board_worker(w->board, self)->connections;
    rt->health.board = w->board;
    rt->health.self = self;
    rt->ins.board = w->board;
    rt->ins.self = self;
    rt->report.board = w->board;
    rt->http.board = w->board;
    rt->http.alerts_here = w->index == 1;
    mt_channel_use_mesh(&rt->channel, w->mesh);
}

/* Gives each layer what it uses, bottom up, and the owner's callbacks. */
static int wire(mt_runtime_t *rt)
{
    mt_config_t *cfg = &rt->cfg;
    mt_metrics_init(&rt->metrics, cfg->color, (uint32_t)cfg->metrics_max_series,
                    (uint32_t)cfg->metrics_max_series_per_family);
    mt_conn_hooks_t hooks = mt_ws_conn_hooks(&rt->ws);
    mt_conns_init(&rt->conns, (size_t)cfg->max_send_queue_bytes,
                  strcmp(cfg->send_queue_policy, "drop_oldest") == 0, &rt->stats, &hooks);
    mt_timers_init(&rt->timers, &rt->loop, on_timer, rt);
    mt_redis_t *redis = NULL;
    if (cfg->redis_url || cfg->redis_sentinels.n || cfg->redis_cluster.n) {
        char err[256];
        if (cfg->redis_url &&
            mt_redis_parse_url(&rt->redis, cfg->redis_url, err, sizeof err) != 0) {
            mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.channel", "%s", err);
            return -1;
        }
        if (cfg->redis_sentinels.n)
            mt_redis_use_sentinels(&rt->redis, cfg->redis_sentinels.items,
                                   (int)cfg->redis_sentinels.n, cfg->redis_master_name);
        if (cfg->redis_cluster.n)
            mt_redis_use_cluster(&rt->redis, cfg->redis_cluster.items, (int)cfg->redis_cluster.n);
        mt_redis_events_t ev = {on_redis_message, on_redis_subscribed, on_redis_link,
                                on_redis_reply, rt};
        mt_redis_start(&rt->redis, &rt->loop, cfg->redis_prefix, &rt->log, &rt->rand, &rt->stats,
                       &ev);
        redis = &rt->redis;
    }
    mt_channel_init(&rt->channel, &rt->groups, &rt->conns, redis, &rt->log, &rt->stats);
    mt_instruments_init(&rt->ins, &rt->loop, &rt->metrics, &rt->log, &rt->stats, &rt->proc,
                        &rt->conns, &rt->channel, &rt->script, &cfg->message_duration_buckets);
    if (cfg->tls_cert)
        mt_instruments_use_tls(&rt->ins, &rt->tls);
    mt_health_init(&rt->health, &rt->metrics, &rt->log, cfg, &rt->proc, &rt->conns, &rt->channel,
                   &rt->script);

    mt_buf_t files = MT_BUF_INIT;
    int nfiles = mt_watch_scan(cfg->scripts, &files, NULL);
    int rc = mt_script_init(&rt->script, cfg, &rt->log, &rt->stats, &rt->conns, files.data, nfiles);
    mt_buf_free(&files);
    if (rc != 0)
        return -1;
    mt_script_sample(&rt->script);

    rt->report = (mt_report_t){.cfg = cfg,
                               .proc = &rt->proc,
                               .conns = &rt->conns,
                               .groups = &rt->groups,
                               .channel = &rt->channel,
                               .script = &rt->script,
                               .tls = cfg->tls_cert ? &rt->tls : NULL};
    mt_admin_init(&rt->admin, cfg->admin_token);
    rt->rq = (mt_requests_t){&rt->log, &rt->rand, &rt->ins, &cfg->trusted_proxies};
    char err[256];
    if (mt_static_init(&rt->files, cfg->static_dir, (size_t)cfg->static_max_bytes, err,
                       sizeof err) != 0) {
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.http", "%s", err);
        return -1;
    }
    rt->http = (mt_http_t){.rq = &rt->rq,
                           .admin = &rt->admin,
                           .health = &rt->health,
                           .ins = &rt->ins,
                           .report = &rt->report,
                           .script = &rt->script,
                           .files = &rt->files,
                           .reload = on_admin_reload,
                           .alerts_on = strcmp(cfg->in_process_alerts, "true") == 0,
                           .ud = rt};
    mt_ws_t *ws = &rt->ws;
    ws->cfg = cfg;
    ws->proc = &rt->proc;
    ws->log = &rt->log;
    ws->stats = &rt->stats;
    ws->rand = &rt->rand;
    ws->conns = &rt->conns;
    ws->channel = &rt->channel;
    ws->script = &rt->script;
    ws->rq = &rt->rq;
    ws->message_duration = rt->ins.message_duration;
    ws->drained = on_drained;
    ws->ud = rt;
    if (rt->worker)
        wire_worker(rt);
    return 0;
}

/* A connection our listener accepted: lws serves it from here on. */
static void on_accept(void *ud, int fd)
{
    mt_runtime_t *rt = ud;
    if (!lws_adopt_socket_vhost(rt->vhost, fd)) /* it closed fd */
        rt->stats.errors[MT_ERR_CONNECTION_FAILED]++;
}

int mt_runtime_assemble(mt_runtime_t *rt, mt_config_t *cfg, int log_fd)
{
    current = rt;
    rt->listener.fd = -1;
    rt->notify.fd = -1; /* no systemd until mt_notify_start */
    rt->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    struct rlimit rl;
    mt_config_resolve(&rt->cfg, getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (long)rl.rlim_cur : 1024);
    mt_log_init(&rt->log, log_fd, rt->cfg.log_level, rt->cfg.color);
    /* lws's INFO level writes several lines per frame (the slow-reader
     * spec logged 57 000): even at DEBUG, only its notices come through.
     * What lws does not emit costs one mask test per call. */
    lws_set_log_level(LLL_ERR | LLL_WARN | (rt->cfg.log_level <= MT_LOG_DEBUG ? LLL_NOTICE : 0),
                      lws_log_emit);
    mt_rand_seed(&rt->rand);
    signal(SIGPIPE, SIG_IGN);

    if (uv_loop_init(&rt->loop) != 0) {
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.runtime", "cannot create the loop");
        return -1;
    }
    rt->loop.data = rt;
    return wire(rt);
}

int mt_runtime_init_worker(mt_runtime_t *rt, mt_config_t *cfg, mt_worker_t *w)
{
    rt->worker = w;
    return mt_runtime_init(rt, cfg);
}

/* A worker serves: on the mesh, answering its supervisor, on the board. */
static void worker_start(mt_runtime_t *rt)
{
    mt_worker_t *w = rt->worker;
    mt_board_worker_t *row = mt_board_worker(w->board, w->index - 1);
    mt_mesh_attach(w->mesh, w->index - 1, &rt->loop, on_mesh, rt);
    uv_poll_init(&rt->loop, &rt->control_poll, w->control);
    rt->control_poll.data = rt;
    uv_poll_start(&rt->control_poll, UV_READABLE, on_control);
    uv_unref((uv_handle_t *)&rt->control_poll);
    atomic_store(&row->pid, (int32_t)getpid());
    atomic_store(&row->started_ms, (uint64_t)(rt->proc.started_at * 1000));
    atomic_store(&row->ready, (uint32_t)rt->health.ready);
    post_reload(rt);
    mt_instruments_publish(&rt->ins);
    atomic_store(&row->up, 1);
    mt_control_send(w->control, MT_CTL_READY, 0, 1, rt->script.generation, 0, NULL, 0);
}

int mt_runtime_init(mt_runtime_t *rt, mt_config_t *cfg)
{
    if (mt_runtime_assemble(rt, cfg, 1) != 0)
        return -1;
    uv_timer_init(&rt->loop, &rt->drain_timer);
    rt->drain_timer.data = rt;
    uv_timer_init(&rt->loop, &rt->drain_step);
    rt->drain_step.data = rt;
    uv_timer_init(&rt->loop, &rt->sweep);
    rt->sweep.data = rt;
    uv_unref((uv_handle_t *)&rt->sweep);
    uv_timer_start(&rt->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    mt_ws_start(&rt->ws, &rt->loop);
    uv_signal_t *sigs[] = {&rt->sig_term, &rt->sig_int, &rt->sig_hup};
    int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&rt->loop, sigs[i]);
        sigs[i]->data = rt;
        uv_signal_start(sigs[i], on_signal, signums[i]);
    }

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    void *loops[] = {&rt->loop};
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                   LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE;
    info.foreign_loops = loops;
    info.pcontext = &rt->lws;
    /* lws listens on nothing: the port is ours (listen.h), each accepted
     * socket adopted. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.pvo = &pvo;
    info.user = rt;
    info.pt_serv_buf_size = 64 * 1024;
    /* Headers and the upgrade must complete within this; a socket that
     * says nothing is closed. Heartbeats are ours (ws.c), not lws's. */
    info.timeout_secs = (unsigned)rt->cfg.handshake_timeout;
    info.retry_and_idle_policy = &no_validity;
    info.vhost_name = "default";
    if (rt->cfg.tls_cert) {
        /* Our pair goes into the vhost's SSL_CTX at its set-up (install_tls),
         * read and checked by us, so reloads can swap it. The global SSL
         * init must be asked for, or the port silently serves plaintext.
         * HTTP/1.1 only: clients must not wander into h2. */
        char err[256];
        if (mt_tls_init(&rt->tls, rt->cfg.tls_cert, rt->cfg.tls_key, err, sizeof err) != 0) {
            mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.tls", "%s", err);
            return -1;
        }
        info.options |=
            LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT | LWS_SERVER_OPTION_CREATE_VHOST_SSL_CTX;
        if (strcmp(rt->cfg.tls_allow_plain, "true") == 0) /* lws peeks at the first byte */
            info.options |= LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT |
                            LWS_SERVER_OPTION_ALLOW_HTTP_ON_HTTPS_LISTENER;
        info.alpn = "http/1.1";
    }
    char err[256];
    if (mt_listen_open(&rt->listener, rt->cfg.host, rt->cfg.port, err, sizeof err) != 0) {
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.runtime", "%s", err);
        return -1;
    }
    rt->lws = lws_create_context(&info);
    rt->vhost = rt->lws ? lws_get_vhost_by_name(rt->lws, "default") : NULL;
    if (!rt->vhost) {
        mt_log_msg(&rt->log, MT_LOG_CRITICAL, "moontide.runtime", "cannot start libwebsockets");
        return -1;
    }
    mt_listen_start(&rt->listener, &rt->loop, &rt->log, on_accept, rt);
    rt->listen_port = rt->listener.port;
    if (rt->worker) /* the supervisor watches the scripts for all */
        worker_start(rt);
    else
        mt_watch_start(&rt->watch, &rt->loop, rt->cfg.scripts, &rt->log, on_scripts_changed, rt);
    rt->proc.startup_seconds = mt_mono() - rt->proc.started_mono;
    mt_metric_set(rt->ins.startup, rt->proc.startup_seconds);

    mt_buf_t *b = mt_log_begin(&rt->log, MT_LOG_INFO, "moontide.runtime", "listening", 9);
    if (b) {
        mt_json_kv_cstr(b, "host", rt->cfg.host);
        mt_json_kv_int(b, "port", rt->listen_port);
        mt_json_kv_cstr(b, "version", MT_VERSION);
        mt_json_kv_cstr(b, "scripts", rt->cfg.scripts);
        mt_json_kv_cstr(b, "config", rt->cfg.config_path);
        mt_json_kv_cstr(b, "channel_layer", rt->channel.kind);
        if (rt->files.root)
            mt_json_kv_cstr(b, "static_dir", rt->files.root);
        mt_json_kv_int(b, "max_connections", rt->cfg.max_connections);
        mt_json_kv_seconds(b, "startup_seconds", rt->proc.startup_seconds);
        mt_log_end(&rt->log);
    }
    if (!rt->worker) { /* a worker's supervisor speaks to systemd */
        mt_notify_start(&rt->notify, &rt->loop);
        mt_notify_send(&rt->notify, "READY=1\nSTATUS=serving");
    }
    return 0;
}

int mt_runtime_run(mt_runtime_t *rt)
{
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    return rt->exit_code;
}

void mt_runtime_free(mt_runtime_t *rt)
{
    if (rt->lws) {
        /* Second phase: lws frees what it deferred, then the loop runs once
         * more to deliver the close callbacks. */
        lws_context_destroy(rt->lws);
        rt->lws = NULL;
    }
    if (rt->loop.data) {
        /* After a failed start, finish() never ran: close what did start. */
        mt_listen_stop(&rt->listener);
        mt_ws_stop(&rt->ws);
        mt_timers_stop_all(&rt->timers);
        mt_instruments_close(&rt->ins);
        mt_watch_stop(&rt->watch);
        mt_redis_stop(&rt->redis);
        if (rt->worker) {
            mt_mesh_detach(rt->worker->mesh);
            if (rt->control_poll.loop)
                close_handle((uv_handle_t *)&rt->control_poll);
        }
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        uv_loop_close(&rt->loop);
        rt->loop.data = NULL;
    }
    mt_script_free(&rt->script);
    mt_health_free(&rt->health);
    mt_redis_free(&rt->redis);
    mt_tls_free(&rt->tls);
    mt_static_free(&rt->files);
    mt_admin_free(&rt->admin);
    mt_timers_free(&rt->timers);
    mt_conns_free(&rt->conns);
    mt_groups_free(&rt->groups);
    mt_metrics_free(&rt->metrics);
    mt_ws_free(&rt->ws);
    mt_http_free(&rt->http);
    mt_instruments_free(&rt->ins);
    mt_config_free(&rt->cfg);
    mt_log_free(&rt->log);
    current = NULL;
}
