/* http.c - health endpoints, JSON errors and access logs. */
#include "http.h"

#include "buf.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64 * 1024) /* request bodies we accept (and ignore) */

/* One per HTTP request in flight; hung on the wsi's session data. */
typedef struct mt_http_txn {
    mt_buf_t body; /* response body */
    size_t sent;
    int status;
    int head; /* HEAD: headers only */
    int close_after;
    int awaiting_body;
    size_t body_seen;
    double t0;
    const char *method;
    char endpoint[64];
    char request_id[MT_REQUEST_ID_MAX + 1];
    const char *allow; /* Allow header for 405 */
    const char *content_type;
} mt_http_txn_t;

#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

static const struct {
    enum lws_token_indexes tok;
    const char *name;
    int has_body;
} methods[] = {
    {WSI_TOKEN_GET_URI, "GET", 0},     {WSI_TOKEN_HEAD_URI, "HEAD", 0},
    {WSI_TOKEN_POST_URI, "POST", 1},   {WSI_TOKEN_PUT_URI, "PUT", 1},
    {WSI_TOKEN_PATCH_URI, "PATCH", 1}, {WSI_TOKEN_DELETE_URI, "DELETE", 0},
    {WSI_TOKEN_OPTIONS_URI, "OPTIONS", 0},
};

static int method_index(struct lws *wsi)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
            return (int)i;
    return -1;
}

char *mt_http_header_dup(struct lws *wsi, enum lws_token_indexes tok, size_t max)
{
    int n = lws_hdr_total_length(wsi, tok);
    if (n <= 0)
        return NULL;
    char *s = mt_xmalloc((size_t)n + 1);
    if (lws_hdr_copy(wsi, s, n + 1, tok) < 0) {
        free(s);
        return NULL;
    }
    if (strlen(s) > max)
        s[max] = '\0';
    return s;
}

static int sane_request_id(const char *s, size_t n)
{
    if (n == 0 || n > MT_REQUEST_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return 0;
    }
    return 1;
}

int mt_http_client_request_id(struct lws *wsi, char *out)
{
    static const char name[] = "x-request-id:";
    int n = lws_hdr_custom_length(wsi, name, (int)sizeof name - 1);
    return n > 0 && n <= MT_REQUEST_ID_MAX &&
           lws_hdr_custom_copy(wsi, out, MT_REQUEST_ID_MAX + 1, name, (int)sizeof name - 1) >= 0 &&
           sane_request_id(out, strlen(out));
}

void mt_http_request_id(mt_runtime_t *rt, struct lws *wsi, char *out)
{
    if (!mt_http_client_request_id(wsi, out))
        mt_rand_uuid4(&rt->rand, out);
}

void mt_http_client_addr(mt_runtime_t *rt, struct lws *wsi, char out[MT_ADDR_MAX])
{
    char peer[MT_ADDR_MAX] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    char *xff = rt->cfg.trusted_proxies.n
                    ? mt_http_header_dup(wsi, WSI_TOKEN_X_FORWARDED_FOR, 1024)
                    : NULL;
    mt_client_addr(&rt->cfg.trusted_proxies, peer, xff, out);
    free(xff);
}

static void access_log(mt_runtime_t *rt, struct lws *wsi, const char *method, const char *path,
                       const char *endpoint, int status, double t0, const char *request_id)
{
    double took = mt_mono() - t0;
    mt_instruments_http(rt, method, endpoint, status, took);
    int level = status >= 500 ? MT_LOG_WARNING : MT_LOG_INFO;
    mt_buf_t *b = mt_log_begin(&rt->log, level, "moontide.http", "request", 7);
    if (!b)
        return;
    char addr[MT_ADDR_MAX];
    mt_http_client_addr(rt, wsi, addr);
    char *ua = mt_http_header_dup(wsi, WSI_TOKEN_HTTP_USER_AGENT, 256);
    mt_json_kv_cstr(b, "request_id", request_id);
    mt_json_kv_cstr(b, "method", method);
    mt_json_kv_cstr(b, "path", path);
    mt_json_kv_cstr(b, "endpoint", endpoint);
    mt_json_kv_int(b, "status", status);
    mt_json_kv_seconds(b, "duration", took);
    mt_json_kv_cstr(b, "remote_addr", addr);
    if (ua)
        mt_json_kv_cstr(b, "user_agent", ua);
    free(ua);
    mt_log_end(&rt->log);
}

static void error_body(mt_buf_t *b, const char *error, int status)
{
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", "error");
    mt_json_kv_cstr(b, "error", error);
    mt_json_kv_int(b, "code", status);
    mt_buf_addc(b, '}');
}

/* The reason phrase of every status moontide answers with (RFC 9110). */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

/* lws 4.1 knows reason phrases for 400-417 and 500-505 only and writes
 * "HTTP/1.1 426 " for the rest: put ours after the status code. start is
 * where the status line begins, *p the end of what was written. */
static int complete_status_line(unsigned char *start, unsigned char **p, unsigned char *end,
                                int status)
{
    unsigned char *eol = memchr(start, '\r', (size_t)(*p - start));
    if (!eol || eol - start < 4 || eol[-1] != ' ')
        return 0; /* a phrase is there already */
    const char *phrase = reason_phrase(status);
    size_t n = strlen(phrase);
    if ((size_t)(end - *p) < n)
        return -1;
    memmove(eol + n, eol, (size_t)(*p - eol));
    memcpy(eol, phrase, n);
    *p += n;
    return 0;
}

/* Writes status line and headers; 0, or -1 if lws refused them. */
static int write_headers(struct lws *wsi, int status, const char *content_type, size_t body_len,
                         const char *request_id, const char *allow, int close_after)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    if (lws_add_http_common_headers(wsi, (unsigned)status, content_type, body_len, &p, end) ||
        complete_status_line(start, &p, end, status) != 0)
        return -1;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"x-request-id:",
                                    (const unsigned char *)request_id, (int)strlen(request_id),
                                    &p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end))
        return -1;
    if (allow && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
                                             (const unsigned char *)allow, (int)strlen(allow),
                                             &p, end))
        return -1;
    if (close_after && lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                                   (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

int mt_http_request_line(struct lws *wsi, const char **method, char *path, size_t len)
{
    int mi = method_index(wsi);
    *method = mi >= 0 ? methods[mi].name : "OTHER";
    path[0] = '\0';
    return mi >= 0 && lws_hdr_copy(wsi, path, (int)len, methods[mi].tok) > 0 ? 0 : -1;
}

void mt_http_refuse(mt_runtime_t *rt, struct lws *wsi, int status, const char *error,
                    const char *endpoint, const char *request_id, const char *extra_headers)
{
    /* Written raw: while an upgrade is being confirmed lws has not yet
     * recorded the request's HTTP version and would answer HTTP/1.0, which
     * WebSocket clients reject as invalid. */
    double t0 = mt_mono();
    mt_buf_t body = MT_BUF_INIT, out = MT_BUF_INIT;
    error_body(&body, error, status);
    mt_buf_reserve(&out, LWS_PRE + 256 + body.len);
    out.len = LWS_PRE;
    mt_buf_addf(&out,
                "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                "x-request-id: %s\r\ncache-control: no-store\r\nconnection: close\r\n%s\r\n",
                status, reason_phrase(status), body.len, request_id,
                extra_headers ? extra_headers : "");
    mt_buf_add(&out, body.data, body.len);
    lws_write(wsi, (unsigned char *)out.data + LWS_PRE, out.len - LWS_PRE, LWS_WRITE_HTTP_FINAL);
    const char *method;
    char path[256];
    mt_http_request_line(wsi, &method, path, sizeof path);
    access_log(rt, wsi, method, path, endpoint, status, t0, request_id);
    mt_buf_free(&body);
    mt_buf_free(&out);
}

static void body_healthz(mt_runtime_t *rt, mt_buf_t *b)
{
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", "healthy");
    mt_json_kv_cstr(b, "color", rt->cfg.color);
    mt_json_kv_seconds(b, "timestamp", mt_now());
    mt_buf_addc(b, '}');
}

/* Readiness as the policy decides from the core's facts; 200 or 503. */
static int body_readyz(mt_runtime_t *rt, mt_buf_t *b)
{
    int ready = mt_health_evaluate(rt);
    const mt_health_t *h = &rt->health;
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", ready ? "ready" : "not_ready");
    mt_json_kv_cstr(b, "color", rt->cfg.color);
    mt_json_kv_int(b, "active_connections", mt_runtime_active(rt));
    mt_json_kv_seconds(b, "timestamp", mt_now());
    mt_json_key(b, "checks");
    mt_buf_add(b, h->checks.data, h->checks.len);
    mt_json_key(b, "reasons");
    mt_buf_add(b, h->reasons.data, h->reasons.len);
    mt_buf_addc(b, '}');
    return ready ? 200 : 503;
}

static void count_subscribed(mt_group_t *g, void *ud)
{
    *(uint32_t *)ud += g->subscribed != 0;
}

static void body_status(mt_runtime_t *rt, mt_buf_t *b)
{
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", rt->draining ? "draining" : "running");
    mt_json_kv_cstr(b, "color", rt->cfg.color);
    mt_json_kv_int(b, "active_connections", mt_runtime_active(rt));
    mt_json_kv_seconds(b, "heartbeat_interval", rt->cfg.heartbeat_interval);
    mt_json_kv_seconds(b, "graceful_shutdown_timeout", rt->cfg.graceful_shutdown_timeout);
    mt_json_kv_seconds(b, "timestamp", mt_now());
    mt_json_kv_cstr(b, "version", MT_VERSION);
    mt_json_kv_seconds(b, "uptime", mt_mono() - rt->started_mono);
    mt_json_kv_cstr(b, "channel_layer", rt->channel.kind);
    uint32_t subscribed = 0;
    mt_groups_each(&rt->groups, count_subscribed, &subscribed);
    mt_json_key(b, "groups");
    mt_buf_addc(b, '{');
    mt_json_kv_int(b, "local", rt->groups.count);
    mt_json_kv_int(b, "subscribed", subscribed);
    mt_buf_addc(b, '}');
    if (rt->redis.configured) {
        mt_json_key(b, "redis");
        mt_buf_addc(b, '{');
        mt_json_kv_bool(b, "connected", mt_redis_up(&rt->redis));
        mt_json_kv_seconds(b, "latency_seconds", rt->redis.latency);
        mt_json_kv_seconds(b, "down_seconds",
                       rt->redis.down_since ? mt_mono() - rt->redis.down_since : 0);
        mt_buf_addc(b, '}');
    }
    const mt_script_t *s = &rt->script;
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
    mt_buf_add(b, "}}", 2);
}

/* The exposition, in OpenMetrics when the scraper asks for it. */
static void body_metrics(mt_runtime_t *rt, mt_http_txn_t *txn, struct lws *wsi)
{
    char *accept = mt_http_header_dup(wsi, WSI_TOKEN_HTTP_ACCEPT, 1024);
    int om = accept && strstr(accept, "application/openmetrics-text") != NULL;
    free(accept);
    txn->content_type = om ? CT_OPENMETRICS : CT_PROM;
    mt_health_evaluate(rt); /* a scrape sees readiness as of now */
    mt_instruments_render(rt, &txn->body, om);
}

/* Constant-time comparison, so response timing does not leak the token. */
static int same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

/* Admin requests: from loopback without a proxy in between, or with the
 * configured bearer token. A request that came through a proxy (it has
 * X-Forwarded-For) is not local even when the proxy runs on this host. */
static int admin_allowed(mt_runtime_t *rt, struct lws *wsi)
{
    if (rt->cfg.admin_token) {
        char *auth = mt_http_header_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 512);
        int ok = auth && strncmp(auth, "Bearer ", 7) == 0 &&
                 same_secret(auth + 7, rt->cfg.admin_token);
        free(auth);
        if (ok)
            return 1;
    }
    char peer[MT_ADDR_MAX] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    mt_cidr_set_t loopback = {NULL, 0};
    mt_cidr_set_add(&loopback, "127.0.0.0/8");
    mt_cidr_set_add(&loopback, "::1");
    int local = mt_cidr_set_contains(&loopback, peer) &&
                lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) <= 0;
    mt_cidr_set_free(&loopback);
    return local;
}

static void body_reload(mt_runtime_t *rt, mt_http_txn_t *txn, struct lws *wsi)
{
    mt_buf_t *b = &txn->body;
    if (!admin_allowed(rt, wsi)) {
        char addr[MT_ADDR_MAX];
        mt_http_client_addr(rt, wsi, addr);
        mt_buf_t *l = mt_log_begin(&rt->log, MT_LOG_WARNING, "moontide.http",
                                   "admin request refused", 21);
        if (l) {
            mt_json_kv_cstr(l, "request_id", txn->request_id);
            mt_json_kv_cstr(l, "remote_addr", addr);
            mt_json_kv_cstr(l, "path", "/admin/reload");
            mt_log_end(&rt->log);
        }
        txn->status = 403;
        error_body(b, "forbidden", 403);
        return;
    }
    int rc = mt_script_reload(rt, "admin", NULL, 0);
    txn->status = rc == 0 ? 200 : 500;
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", rc == 0 ? "ok" : "error");
    mt_json_kv_cstr(b, "result", rt->script.reload_result);
    mt_json_kv_int(b, "generation", (int64_t)rt->script.generation);
    mt_json_kv_seconds(b, "pause_seconds", rt->script.reload_pause);
    if (rt->script.reload_error)
        mt_json_kv_cstr(b, "error", rt->script.reload_error);
    mt_buf_addc(b, '}');
}

/* Fills txn's status and body for method mi on path. */
static void route(mt_runtime_t *rt, mt_http_txn_t *txn, int mi, const char *path,
                  struct lws *wsi)
{
    static const char *const endpoints[] = {"/healthz", "/readyz", "/status", "/metrics",
                                            "/alerts"};
    int which = -1;
    txn->content_type = CT_JSON;
    if (strcmp(path, "/admin/reload") == 0) {
        snprintf(txn->endpoint, sizeof txn->endpoint, "/admin/reload");
        if (mi < 0 || strcmp(methods[mi].name, "POST") != 0) {
            txn->status = 405;
            txn->allow = "POST";
            error_body(&txn->body, "method_not_allowed", 405);
        } else {
            body_reload(rt, txn, wsi);
        }
        return;
    }
    for (int i = 0; i < 5; i++)
        if (strcmp(path, endpoints[i]) == 0)
            which = i;
    if (which < 0) {
        char pattern[64];
        if (mt_script_match(rt, path, strlen(path), NULL, pattern, sizeof pattern, NULL, 0)) {
            snprintf(txn->endpoint, sizeof txn->endpoint, "%s", pattern);
            txn->status = 426;
            error_body(&txn->body, "upgrade_required", 426);
        } else {
            snprintf(txn->endpoint, sizeof txn->endpoint, "other");
            txn->status = 404;
            error_body(&txn->body, "not_found", 404);
        }
        return;
    }
    snprintf(txn->endpoint, sizeof txn->endpoint, "%s", endpoints[which]);
    if (mi < 0 || (strcmp(methods[mi].name, "GET") != 0 && strcmp(methods[mi].name, "HEAD") != 0)) {
        txn->status = 405;
        txn->allow = "GET, HEAD";
        error_body(&txn->body, "method_not_allowed", 405);
        return;
    }
    txn->status = 200;
    if (which == 0)
        body_healthz(rt, &txn->body);
    else if (which == 1)
        txn->status = body_readyz(rt, &txn->body);
    else if (which == 2)
        body_status(rt, &txn->body);
    else if (which == 3)
        body_metrics(rt, txn, wsi);
    else
        mt_script_alerts_json(rt, &txn->body);
}

static void txn_free(mt_http_txn_t *txn)
{
    if (!txn)
        return;
    mt_buf_free(&txn->body);
    free(txn);
}

/* Ends the transaction: access log, then keep-alive or close. */
static int finish(mt_runtime_t *rt, struct lws *wsi, mt_http_txn_t **slot)
{
    mt_http_txn_t *txn = *slot;
    char path[256] = "";
    if (lws_hdr_copy(wsi, path, sizeof path, methods[0].tok) < 0 || !path[0])
        for (size_t i = 1; i < sizeof methods / sizeof methods[0] && !path[0]; i++)
            lws_hdr_copy(wsi, path, sizeof path, methods[i].tok);
    access_log(rt, wsi, txn->method, path, txn->endpoint, txn->status, txn->t0,
               txn->request_id);
    int close_after = txn->close_after;
    txn_free(txn);
    *slot = NULL;
    if (close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int respond(mt_runtime_t *rt, struct lws *wsi, mt_http_txn_t **slot)
{
    mt_http_txn_t *txn = *slot;
    if (write_headers(wsi, txn->status, txn->content_type, txn->body.len, txn->request_id,
                      txn->allow, txn->close_after) != 0) {
        txn_free(txn);
        *slot = NULL;
        return -1;
    }
    if (txn->head || txn->body.len == 0)
        return finish(rt, wsi, slot);
    lws_callback_on_writable(wsi);
    return 0;
}

int mt_http_callback(mt_runtime_t *rt, struct lws *wsi, enum lws_callback_reasons reason,
                     void *in, size_t len)
{
    mt_http_txn_t **slot = (mt_http_txn_t **)lws_wsi_user(wsi);
    switch (reason) {
    case LWS_CALLBACK_HTTP: {
        if (!slot)
            return -1;
        txn_free(*slot);
        mt_http_txn_t *txn = *slot = mt_xcalloc(1, sizeof *txn);
        txn->t0 = mt_mono();
        int mi = method_index(wsi);
        txn->method = mi >= 0 ? methods[mi].name : "OTHER";
        txn->head = mi >= 0 && strcmp(methods[mi].name, "HEAD") == 0;
        mt_http_request_id(rt, wsi, txn->request_id);
        route(rt, txn, mi, in ? (const char *)in : "/", wsi);
        if (mi >= 0 && methods[mi].has_body) {
            /* Read (and drop) the body before answering, so keep-alive
             * does not parse it as the next request; too large: close. */
            char cl[24] = "";
            lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
            long n = atol(cl);
            if (n > MAX_BODY) {
                mt_buf_reset(&txn->body);
                txn->status = 413;
                txn->allow = NULL;
                txn->close_after = 1;
                error_body(&txn->body, "payload_too_large", 413);
            } else if (n > 0) {
                txn->awaiting_body = 1;
                return 0;
            }
        }
        return respond(rt, wsi, slot);
    }
    case LWS_CALLBACK_HTTP_BODY:
        if (slot && *slot) {
            (*slot)->body_seen += len;
            if ((*slot)->body_seen > MAX_BODY)
                return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        if (slot && *slot && (*slot)->awaiting_body) {
            (*slot)->awaiting_body = 0;
            return respond(rt, wsi, slot);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!slot || !*slot)
            return 0;
        mt_http_txn_t *txn = *slot;
        /* Writes in chunks so one large body cannot hold the loop. */
        unsigned char chunk[LWS_PRE + 16384];
        size_t left = txn->body.len - txn->sent;
        size_t n = left < sizeof chunk - LWS_PRE ? left : sizeof chunk - LWS_PRE;
        memcpy(chunk + LWS_PRE, txn->body.data + txn->sent, n);
        int final = n == left;
        if (lws_write(wsi, chunk + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
            (int)n)
            return -1;
        txn->sent += n;
        if (final)
            return finish(rt, wsi, slot);
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (slot) {
            txn_free(*slot);
            *slot = NULL;
        }
        return 0;
    default:
        return 0;
    }
}
