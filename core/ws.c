/* ws.c - WebSocket upgrades, messages, send queues and closes. */
#include "ws.h"

#include "clock.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COALESCE_MAX (64 * 1024) /* bytes of small frames sent in one write */

/* Connections driven without a socket (the fuzz target) have no wsi. */
static void want_writable(mt_conn_t *c)
{
    if (c->wsi)
        lws_callback_on_writable(c->wsi);
}

/* Lists the connection for this turn's flush phase (once). */
static void want_flush(mt_ws_t *ws, mt_conn_t *c)
{
    if (c->flush_slot)
        return;
    if (ws->npending == ws->cappending) {
        ws->cappending = ws->cappending ? ws->cappending * 2 : 64;
        ws->pending = mt_xrealloc(ws->pending, ws->cappending * sizeof *ws->pending);
    }
    ws->pending[ws->npending++] = c;
    c->flush_slot = ws->npending;
}

/* A WebSocket's connection hangs on lws's opaque pointer: the protocol has
 * no per-session data, so lws allocates none for it. */
static mt_conn_t *conn_of(struct lws *wsi)
{
    return lws_get_opaque_user_data(wsi);
}

/* Registers an open WebSocket's socket for mt_ws_inspect. */
static void watch_fd(mt_ws_t *ws, mt_conn_t *c, int fd)
{
    if (fd < 0)
        return;
    if (fd >= ws->nfds) {
        int n = ws->nfds ? ws->nfds : 1024;
        while (n <= fd)
            n *= 2;
        ws->by_fd = mt_xrealloc(ws->by_fd, (size_t)n * sizeof *ws->by_fd);
        memset(ws->by_fd + ws->nfds, 0, (size_t)(n - ws->nfds) * sizeof *ws->by_fd);
        ws->nfds = n;
    }
    ws->by_fd[fd] = c;
    c->fd = fd;
}

struct inspecting {
    mt_ws_t *ws;
    mt_conn_t *c;
};

static void receive_own(mt_ws_t *ws, mt_conn_t *c, const uint8_t *p, size_t len, int flags);

/* The client broke the protocol: counted, logged, failed with code. */
static void protocol_violation(mt_ws_t *ws, mt_conn_t *c, int code, const char *why, size_t len)
{
    ws->stats->errors[MT_ERR_PROTOCOL]++;
    mt_buf_t *b =
        mt_log_begin(ws->log, MT_LOG_WARNING, "moontide.ws", "protocol violation: closing", 27);
    if (b) {
        mt_conn_log_fields(c, b);
        mt_json_kv_int(b, "code", code);
        mt_json_kv_str(b, "reason", why, len);
        mt_log_end(ws->log);
    }
    mt_conn_close(ws->conns, c, code, why, len, 1);
}

/* What the frame scanner found on a connection's incoming bytes. */
static int on_frame_event(void *ud, mt_wsframe_event_t ev, int code, const uint8_t *p,
                          size_t len)
{
    struct inspecting *in = ud;
    mt_ws_t *ws = in->ws;
    mt_conn_t *c = in->c;
    switch (ev) {
    case MT_WSF_PING: {
        /* Answered in order with the data frames around it, each one. */
        c->last_seen = mt_mono();
        mt_frame_t *f = mt_frame_pong(p, len);
        mt_conn_enqueue(ws->conns, c, f);
        mt_frame_unref(f);
        break;
    }
    case MT_WSF_PONG:
        c->last_seen = mt_mono();
        c->ping_sent = 0;
        break;
    case MT_WSF_CLOSE:
        /* The answer to a drain's close, which we wrote ourselves: the
         * handshake is complete, the connection goes (lws never saw our
         * close, so it must not see this one either). */
        if (c->close_sent) {
            c->peer_closed = 1;
            c->kill_due = 1;
            want_flush(ws, c);
            return 0;
        }
        /* The ack of a close of ours: lws is waiting for it. */
        if (c->closing || c->kill_due)
            return 1;
        /* The peer's close is answered here, once what was queued before
         * it is out (lws would drop the connection if it had output still
         * buffered when it saw the close, and rewrites close codes it does
         * not know): the flush phase sees to it. */
        c->peer_close_code = (uint16_t)code;
        if (len && !c->close_reason)
            c->close_reason = mt_xstrndup((const char *)p, len);
        c->close_held = 1;
        want_flush(ws, c);
        return 0;
    case MT_WSF_DATA:
        receive_own(ws, c, p, len, code);
        break;
    case MT_WSF_VIOLATION:
        protocol_violation(ws, c, code, (const char *)p, len);
        break;
    }
    return 0;
}

size_t mt_ws_inspect(mt_ws_t *ws, int fd, unsigned char *buf, size_t n, size_t cap)
{
    mt_conn_t *c = fd >= 0 && fd < ws->nfds ? ws->by_fd[fd] : NULL;
    if (!c)
        return n;
    struct inspecting in = {ws, c};
    return mt_wsframe_scan(&c->scan, buf, n, cap, on_frame_event, &in);
}

/* The connections' hooks (conn.h). A close request arms lws's close once:
 * the reason lws writes in its close frame, and, unless the close is at
 * once, a timer as backstop so that a peer which stops reading cannot
 * hold the connection open. lws writes that close frame when it closes
 * the connection (and cannot when it still holds output the peer has not
 * taken: then it flushes for up to 5 s and drops the socket). Only a
 * synchronous kill makes lws send it (a timed one is a "violent death"),
 * and that is unsafe inside lws's own callbacks: the flush phase does it
 * at the end of the turn, after the queued frames. */
static void on_want_write(void *ud, mt_conn_t *c)
{
    mt_ws_t *ws = ud;
    if (c->drain_close && !c->kill_due) {
        want_flush(ws, c); /* the queue, then our close (send_close) */
        return;
    }
    if (c->closing && !c->close_armed && c->wsi) {
        c->close_armed = 1;
        lws_close_reason(c->wsi, (enum lws_close_status)c->close_code,
                         (unsigned char *)c->close_reason,
                         c->close_reason ? strlen(c->close_reason) : 0);
        if (!c->kill_due)
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, (int)(ws->cfg->heartbeat_timeout + 1));
    }
    if (c->closing && !c->kill_due && !c->q.len) {
        want_writable(c);
        return;
    }
    want_flush(ws, c);
    /* No read pausing (lws_rx_flow_control): on Debian's lws 4.1,
     * re-enabling reads from the writable callback closes the connection
     * (seen here; lws issues 1550, 1558). A client that sends faster than
     * it reads meets the queue bound and its policy instead, and the
     * optional rate limit. */
}

static void on_overflow(void *ud, mt_conn_t *c, size_t queued_bytes, uint32_t queued_frames)
{
    mt_ws_t *ws = ud;
    mt_buf_t *b =
        mt_log_begin(ws->log, MT_LOG_WARNING, "moontide.ws", "send queue overflow: closing", 28);
    if (b) {
        mt_conn_log_fields(c, b);
        mt_json_kv_int(b, "queued_bytes", (int64_t)queued_bytes);
        mt_json_kv_int(b, "queued_frames", queued_frames);
        mt_log_end(ws->log);
    }
}

mt_conn_hooks_t mt_ws_conn_hooks(mt_ws_t *ws)
{
    mt_conn_hooks_t h = {on_want_write, on_overflow, ws};
    return h;
}

struct drain_step {
    mt_ws_t *ws;
    uint32_t left;   /* closes this step may still start */
    uint32_t open;   /* connections not yet closing, after this step */
};

static void drain_one(void *obj, void *ud)
{
    mt_conn_t *c = obj;
    struct drain_step *ds = ud;
    mt_ws_t *ws = ds->ws;
    if (c->closing || c->closed)
        return;
    if (!ds->left) {
        ds->open++;
        return;
    }
    /* A jittered hint, so clients do not all reconnect to the other
     * colour in the same instant. */
    char reason[64];
    int n = snprintf(reason, sizeof reason, "{\"reconnect_after_ms\":%d}",
                     (int)(mt_rand_unit(ws->rand) * ws->cfg->drain_reconnect_jitter * 1000));
    c->drain_close = 1;
    mt_conn_close(ws->conns, c, ws->cfg->drain_close_code, reason, (size_t)n, 0);
    ds->left--;
}

uint32_t mt_ws_drain_step(mt_ws_t *ws)
{
    struct drain_step ds = {ws, (uint32_t)ws->cfg->drain_batch_size, 0};
    mt_handles_each(&ws->conns->handles, drain_one, &ds);
    return ds.open;
}

/*
 * Subprotocols (RFC 6455 4.2.2). lws 4.1 binds an upgrade that offers
 * Sec-WebSocket-Protocol to the first offered name that equals the name of
 * one of its lws protocols, drops the socket without a response when none
 * does, and answers with that lws protocol's name. moontide decides per
 * route instead (routes.lua: protocols = {...}), so before lws looks:
 * the route's choice is made here, and the spare lws protocol
 * MT_WS_OFFER_PROTOCOL (lws keeps its own copy of the protocol table, in
 * its heap) is renamed to the client's first offer, found with lws's own
 * tokenizer and flags, so that lws binds it. The answer lws then writes is
 * corrected in ADD_HEADERS: the chosen subprotocol, or no header at all
 * when the route accepts none of the offers (the client decides what to do,
 * as the RFC says). Lists lws cannot take (over 126 bytes, a first name of
 * 64 or more, malformed) would be dropped by it: they get 400 here.
 */
static int take_offer(struct lws *wsi, mt_ws_upgrade_t *up)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
    if (total <= 0)
        return 0;
    if (total >= (int)sizeof up->offer - 1 ||
        lws_hdr_copy(wsi, up->offer, sizeof up->offer, WSI_TOKEN_PROTOCOL) < 0)
        return -1;
    up->offered = 1;
    if (!up->pcol)
        up->pcol = (struct lws_protocols *)lws_vhost_name_to_protocol(lws_get_vhost(wsi),
                                                                        MT_WS_OFFER_PROTOCOL);
    if (!up->pcol)
        return -1;
    struct lws_tokenize ts;
    lws_tokenize_init(&ts, up->offer,
                      LWS_TOKENIZE_F_COMMA_SEP_LIST | LWS_TOKENIZE_F_MINUS_NONTERM |
                          LWS_TOKENIZE_F_DOT_NONTERM | LWS_TOKENIZE_F_RFC7230_DELIMS);
    ts.len = strlen(up->offer);
    for (;;) {
        lws_tokenize_elem e = lws_tokenize(&ts);
        if (e == LWS_TOKZE_DELIMITER)
            continue;
        if (e != LWS_TOKZE_TOKEN ||
            lws_tokenize_cstr(&ts, up->pcol_name, sizeof up->pcol_name) != 0)
            return -1;
        up->pcol->name = up->pcol_name;
        return 0;
    }
}

/* Corrects lws's Sec-WebSocket-Protocol answer (see take_offer). */
static int answer_offer(const mt_ws_upgrade_t *up, struct lws_process_html_args *args)
{
    static const char name[] = "\r\nSec-WebSocket-Protocol: ";
    size_t nl = sizeof name - 1;
    /* lws wrote it shortly before args->p: only the accept key's line and
     * the extensions come between. */
    char *at = NULL;
    for (char *q = args->p - nl; q >= args->p - 512 && !at; q--)
        if (memcmp(q, name, nl) == 0)
            at = q;
    if (!at)
        return -1;
    char *value = at + nl;
    char *eol = memchr(value, '\r', (size_t)(args->p - value));
    if (!eol)
        return -1;
    size_t tail = (size_t)(args->p - eol);
    if (!up->protocol[0]) { /* none accepted: no header */
        memmove(at, eol, tail);
        args->p -= eol - at;
        args->max_len += (int)(eol - at);
        return 0;
    }
    int grow = (int)strlen(up->protocol) - (int)(eol - value);
    if (grow > args->max_len)
        return -1;
    memmove(eol + grow, eol, tail);
    memcpy(value, up->protocol, strlen(up->protocol));
    args->p += grow;
    args->max_len -= grow;
    return 0;
}

/* Names permessage-deflate in the 101 (lws, not given the extension,
 * would not): one more header line where lws lets us add them. */
static int answer_deflate(struct lws_process_html_args *args)
{
    static const char line[] = "Sec-WebSocket-Extensions: " MT_DEFLATE_RESPONSE "\r\n";
    if (args->max_len < (int)sizeof line)
        return -1;
    memcpy(args->p, line, sizeof line - 1);
    args->p += sizeof line - 1;
    args->max_len -= (int)sizeof line - 1;
    return 0;
}

/* Ends the handshake's use of the upgrade record. */
static void upgrade_done(mt_ws_upgrade_t *up)
{
    up->wsi = NULL;
    if (up->pcol)
        up->pcol->name = MT_WS_OFFER_PROTOCOL;
}

/* Refuses an upgrade before the handshake with an HTTP error response,
 * counted as kind; returns what CONFIRM_UPGRADE expects after a response
 * was written. extra: more header lines, or NULL. */
static int refuse(mt_ws_t *ws, struct lws *wsi, int status, const char *error, const char *endpoint,
                  mt_error_type_t kind, const char *extra)
{
    char rid[MT_REQUEST_ID_MAX + 1];
    mt_request_id(ws->rq, wsi, rid);
    ws->stats->errors[kind]++;
    mt_request_refuse(ws->rq, wsi, status, error, endpoint, rid, extra);
    upgrade_done(&ws->upgrade);
    return 1;
}

/* 1 if the comma-separated header holds the token (any case). */
static int has_token(struct lws *wsi, enum lws_token_indexes h, const char *token)
{
    char v[256];
    if (lws_hdr_copy(wsi, v, sizeof v, h) <= 0)
        return 0;
    size_t n = strlen(token);
    for (char *p = v; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t k = strcspn(p, ",");
        size_t t = k;
        while (t && (p[t - 1] == ' ' || p[t - 1] == '\t'))
            t--;
        if (t == n && strncasecmp(p, token, n) == 0)
            return 1;
        p += k;
    }
    return 0;
}

/* A Sec-WebSocket-Key is 16 bytes in base64 (RFC 6455 4.1): 24 chars, ==. */
static int valid_key(struct lws *wsi)
{
    char k[64];
    if (lws_hdr_copy(wsi, k, sizeof k, WSI_TOKEN_KEY) != 24 || strcmp(k + 22, "==") != 0)
        return 0;
    for (int i = 0; i < 22; i++)
        if (!(isalnum((unsigned char)k[i]) || k[i] == '+' || k[i] == '/'))
            return 0;
    return 1;
}

/* What is wrong with an upgrade request (RFC 6455 4.2.1), lws being lenient
 * about it or dropping it without a response; NULL if nothing. */
static const char *handshake_problem(struct lws *wsi, const char *method, int *status,
                                     const char **extra)
{
    char version[8];
    *extra = NULL;
    *status = 400;
    if (strcmp(method, "GET") != 0) {
        *status = 405;
        *extra = "allow: GET\r\n";
        return "method_not_allowed";
    }
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HOST) <= 0)
        return "missing_host";
    if (!has_token(wsi, WSI_TOKEN_CONNECTION, "upgrade"))
        return "connection_not_upgrade";
    if (lws_hdr_copy(wsi, version, sizeof version, WSI_TOKEN_VERSION) <= 0 ||
        strcmp(version, "13") != 0) {
        *status = 426;
        *extra = "sec-websocket-version: 13\r\n";
        return "unsupported_websocket_version";
    }
    if (!valid_key(wsi))
        return "bad_websocket_key";
    return NULL;
}

/* The route's authorize(request), while the upgrade is still HTTP: a
 * refusal is a real HTTP response (401/403/429...), an error a 500. */
static int authorize(mt_ws_t *ws, struct lws *wsi, const char *path, const char *pattern)
{
    mt_ws_upgrade_t *up = &ws->upgrade;
    char query[512] = "", remote[MT_ADDR_MAX], reason[128];
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS) > 0)
        lws_hdr_copy(wsi, query, sizeof query, WSI_TOKEN_HTTP_URI_ARGS);
    mt_request_client_addr(ws->rq, wsi, remote);
    char *origin = mt_request_header(wsi, WSI_TOKEN_ORIGIN, 256);
    int status = 403;
    int rc = mt_script_authorize(ws->script, path, query, origin, remote,
                                 ws->cfg->allowed_origins.n > 0, lws_is_ssl(wsi), &up->auth,
                                 up->user_id, sizeof up->user_id, &status, reason, sizeof reason);
    free(origin);
    if (rc < 0)
        return refuse(ws, wsi, 500, "authorize_failed", pattern, MT_ERR_CONNECTION_FAILED, NULL);
    if (rc > 0)
        return refuse(ws, wsi, status >= 400 && status <= 599 ? status : 403,
                      reason[0] ? reason : "forbidden", pattern, MT_ERR_CONNECTION_FAILED, NULL);
    return 0;
}

/* Routes an upgrade by path while it is still HTTP, so a refusal is a
 * proper HTTP response and no WebSocket ever exists for it. */
static int on_confirm_upgrade(mt_ws_t *ws, struct lws *wsi)
{
    mt_ws_upgrade_t *up = &ws->upgrade;
    up->wsi = wsi;
    up->offered = 0;
    up->protocol[0] = up->offer[0] = up->user_id[0] = '\0';
    up->auth = 0;
    up->deflate = 0;
    const char *method, *extra, *problem;
    int status;
    char path[512];
    if (mt_request_line(wsi, &method, path, sizeof path) != 0)
        return refuse(ws, wsi, 400, "bad_request", "other", MT_ERR_BAD_HANDSHAKE, NULL);
    if (take_offer(wsi, up) != 0)
        return refuse(ws, wsi, 400, "bad_protocol_header", "other", MT_ERR_BAD_HANDSHAKE, NULL);
    char pattern[64];
    int deflate = -1;
    if (!mt_script_match(ws->script, path, strlen(path), up->offered ? up->offer : NULL, pattern,
                         sizeof pattern, up->protocol, sizeof up->protocol, &deflate))
        return refuse(ws, wsi, 404, "not_found", "other", MT_ERR_CONNECTION_FAILED, NULL);
    if (deflate < 0)
        deflate = strcmp(ws->cfg->permessage_deflate, "true") == 0;
    if (deflate) {
        char *offers = mt_request_header(wsi, WSI_TOKEN_EXTENSIONS, 1024);
        up->deflate = mt_deflate_offer_ok(offers);
        free(offers);
    }
    if ((problem = handshake_problem(wsi, method, &status, &extra)))
        return refuse(ws, wsi, status, problem, pattern, MT_ERR_BAD_HANDSHAKE, extra);
    if (ws->cfg->allowed_origins.n) {
        char *origin = mt_request_header(wsi, WSI_TOKEN_ORIGIN, 256);
        int ok = mt_strlist_contains(&ws->cfg->allowed_origins, origin);
        free(origin);
        if (!ok)
            return refuse(ws, wsi, 403, "origin_not_allowed", pattern, MT_ERR_CONNECTION_FAILED,
                          NULL);
    }
    if (ws->proc->draining)
        return refuse(ws, wsi, 503, "draining", pattern, MT_ERR_CONNECTION_FAILED, NULL);
    uint32_t open = ws->server_conns ? atomic_load(ws->server_conns) : mt_conns_count(ws->conns);
    if (open >= (uint32_t)ws->cfg->max_connections)
        return refuse(ws, wsi, 503, "connection_limit", pattern, MT_ERR_CONNECTION_FAILED, NULL);
    return authorize(ws, wsi, path, pattern);
}

static void on_established(mt_ws_t *ws, struct lws *wsi)
{
    mt_conn_t *c = mt_conn_new(ws->conns);
    lws_set_opaque_user_data(wsi, c);
    c->wsi = wsi;
    watch_fd(ws, c, lws_get_socket_fd(wsi));
    if (ws->upgrade.wsi == wsi && ws->upgrade.deflate)
        c->deflate = c->scan.own = c->scan.rsv1_ok = 1; /* its data frames are ours (ws.h) */
    c->opened_at = c->last_seen = c->tokens_at = mt_mono();
    c->tokens = ws->cfg->rate_limit_burst > 0 ? ws->cfg->rate_limit_burst : ws->cfg->rate_limit;
    mt_rand_uuid(ws->rand, &c->connection_id);
    mt_rand_uuid(ws->rand, &c->session_uuid);
    const mt_ws_upgrade_t *authed = ws->upgrade.wsi == wsi ? &ws->upgrade : NULL;
    if (authed && authed->user_id[0])
        c->user_id = mt_xstrdup(authed->user_id);
    char text[MT_REQUEST_ID_MAX + 1];
    if (mt_request_client_id(wsi, text))
        c->request_id = mt_xstrdup(text);
    mt_request_client_addr(ws->rq, wsi, text);
    mt_addr_parse(&c->remote_addr, text);
    c->user_agent = mt_request_header(wsi, WSI_TOKEN_HTTP_USER_AGENT, 256);
    ws->stats->connections_total++;
    if (ws->server_conns) {
        atomic_fetch_add(ws->server_conns, 1);
        atomic_fetch_add(ws->own_conns, 1);
    }

    char path[512] = "", query[512] = "";
    lws_hdr_copy(wsi, path, sizeof path, WSI_TOKEN_GET_URI);
    lws_hdr_copy(wsi, query, sizeof query, WSI_TOKEN_HTTP_URI_ARGS);
    char *origin = mt_request_header(wsi, WSI_TOKEN_ORIGIN, 256);

    const mt_ws_upgrade_t *up = ws->upgrade.wsi == wsi ? &ws->upgrade : NULL;
    const char *protocol = up ? up->protocol : "";
    mt_buf_t *b = mt_log_begin(ws->log, MT_LOG_INFO, "moontide.ws", "WebSocket connected", 19);
    if (b) {
        mt_conn_log_fields(c, b);
        mt_json_kv_cstr(b, "path", path);
        if (protocol[0])
            mt_json_kv_cstr(b, "protocol", protocol);
        else if (up && up->offered) /* none accepted: the client decides */
            mt_json_kv_cstr(b, "protocols_not_accepted", up->offer);
        mt_log_end(ws->log);
    }
    int rc = mt_script_open(ws->script, c, path, query, origin, protocol, up ? up->auth : 0);
    upgrade_done(&ws->upgrade);
    if (rc != 0)
        mt_conn_close(ws->conns, c, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "internal error", 14, 0);
    free(origin);
}

/* The per-connection token bucket; 1 if the message may go on. */
static int within_rate(const mt_ws_t *ws, mt_conn_t *c, double now)
{
    double rate = ws->cfg->rate_limit;
    double burst = ws->cfg->rate_limit_burst > 0 ? ws->cfg->rate_limit_burst : rate;
    c->tokens += (now - c->tokens_at) * rate;
    if (c->tokens > burst)
        c->tokens = burst;
    c->tokens_at = now;
    if (c->tokens >= 1) {
        c->tokens -= 1;
        return 1;
    }
    return 0;
}

/* t0: when the message's last piece arrived (monotonic). */
static void dispatch(mt_ws_t *ws, mt_conn_t *c, const char *data, size_t len, int binary, double t0)
{
    ws->stats->messages[MT_MSG_RECEIVED]++;
    if (binary && !c->binary_ok) {
        mt_conn_close(ws->conns, c, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                      "binary messages not accepted", 28, 0);
        return;
    }
    if (ws->cfg->rate_limit > 0 && !within_rate(ws, c, t0)) {
        static const char reply[] = "{\"type\":\"error\",\"error\":\"rate_limited\"}";
        ws->stats->errors[MT_ERR_RATE_LIMITED]++;
        if (ws->cfg->rate_limit_action[0] == 'c') {
            mt_conn_close(ws->conns, c, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limited", 12, 0);
        } else {
            mt_frame_t *f = mt_frame_new(reply, sizeof reply - 1, 0);
            mt_conn_enqueue(ws->conns, c, f);
            mt_frame_unref(f);
        }
        return;
    }
    int close_code = mt_script_message(ws->script, c, data, len, binary);
    if (close_code)
        mt_conn_close(ws->conns, c, close_code, "handler exceeded its budget", 27, 0);
    mt_metric_observe(ws->message_duration, mt_mono() - t0);
}

/* A message passed max_message_bytes (total: its size as far as known):
 * closed 1009, and the rest of it dropped unread. */
static void too_large(mt_ws_t *ws, mt_conn_t *c, size_t total, int final)
{
    ws->stats->errors[MT_ERR_MESSAGE_TOO_LARGE]++;
    mt_buf_t *b =
        mt_log_begin(ws->log, MT_LOG_WARNING, "moontide.ws", "message too large: closing", 26);
    if (b) {
        mt_conn_log_fields(c, b);
        mt_json_kv_int(b, "bytes_at_least", (int64_t)total);
        mt_json_kv_int(b, "max_message_bytes", ws->cfg->max_message_bytes);
        mt_log_end(ws->log);
    }
    mt_buf_free(&c->rx);
    c->rx_discard = !final;
    mt_conn_close(ws->conns, c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large", 17, 0);
}

/* Message bytes came at now: the peer is alive. 0 if they are to be
 * dropped (closing, or the rest of an oversize message). */
static int rx_heard(mt_conn_t *c, int final, double now)
{
    c->last_seen = now;
    c->ping_sent = 0;
    if (c->drain_close && !c->peer_closed && !c->rx_discard)
        return 1; /* sent before the client saw our close: handled (send_close) */
    if (c->closing || c->peer_closed || c->rx_discard) {
        if (final)
            c->rx_discard = 0;
        return 0;
    }
    return 1;
}

/* A large one-off message should not pin its buffer for the life of the
 * connection. */
static void rx_done(mt_conn_t *c)
{
    if (c->rx.cap > 64 * 1024)
        mt_buf_free(&c->rx);
    else
        mt_buf_reset(&c->rx);
}

/* A connection with compression: its message bytes, from the scanner in
 * own mode (lws sees none of them). Assembled, inflated when the message
 * came compressed, checked (lws checks the UTF-8 of the others), and
 * dispatched like any message. */
static void receive_own(mt_ws_t *ws, mt_conn_t *c, const uint8_t *p, size_t len, int flags)
{
    int final = (flags & MT_WSF_FINAL) != 0, binary = (flags & MT_WSF_BINARY) != 0;
    double now = mt_mono();
    if (!rx_heard(c, final, now))
        return;
    size_t max = (size_t)ws->cfg->max_message_bytes;
    if (c->rx.len + len > max) {
        too_large(ws, c, c->rx.len + len, final);
        return;
    }
    const char *data = (const char *)p;
    size_t n = len;
    if (!final || c->rx.len) {
        mt_buf_add(&c->rx, p, len);
        if (!final)
            return;
        data = c->rx.data;
        n = c->rx.len;
    }
    if (flags & MT_WSF_COMPRESSED) {
        mt_inflate_result_t rc = mt_deflate_inflate(&ws->deflate, data, n, max);
        if (rc != MT_INFLATE_OK) {
            rx_done(c);
            if (rc == MT_INFLATE_TOO_LARGE)
                too_large(ws, c, max + 1, 1);
            else
                protocol_violation(ws, c, LWS_CLOSE_STATUS_INVALID_PAYLOAD,
                                   "invalid compressed data", 23);
            return;
        }
        data = ws->deflate.inflated.data;
        n = ws->deflate.inflated.len;
    }
    if (!binary && !mt_utf8_valid(data, n)) {
        rx_done(c);
        protocol_violation(ws, c, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "text is not UTF-8", 17);
        return;
    }
    dispatch(ws, c, data, n, binary, now);
    rx_done(c);
}

void mt_ws_receive(mt_ws_t *ws, mt_conn_t *c, const char *in, size_t len, int final,
                   size_t remaining, int binary)
{
    double now = mt_mono();
    if (!rx_heard(c, final, now))
        return;
    size_t total = c->rx.len + len + remaining;
    if (total > (size_t)ws->cfg->max_message_bytes) {
        too_large(ws, c, total, final);
        return;
    }
    if (final && c->rx.len == 0) {
        dispatch(ws, c, in, len, binary, now); /* the common case: no copy */
        return;
    }
    mt_buf_add(&c->rx, in, len);
    if (!final)
        return;
    dispatch(ws, c, c->rx.data, c->rx.len, binary, now);
    rx_done(c);
}

/* A server (unmasked) frame's header (RFC 6455 5.2) into h; its length. */
static size_t frame_header(unsigned char h[10], const mt_frame_t *f)
{
    size_t hl = 2;
    h[0] = (unsigned char)(0x80 | (f->rsv1 ? 0x40 : 0) | f->opcode);
    if (f->len < 126) {
        h[1] = (unsigned char)f->len;
    } else if (f->len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(f->len >> 8);
        h[3] = (unsigned char)f->len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)f->len >> (56 - 8 * i));
        hl = 10;
    }
    return hl;
}

/* Appends a server frame: header, then payload. */
static void add_frame(mt_buf_t *b, const mt_frame_t *f)
{
    unsigned char h[10];
    mt_buf_add(b, h, frame_header(h, f));
    mt_buf_add(b, f->data + LWS_PRE, f->len);
}

/* The frame as it goes to c: with compression, its compressed twin when
 * that is smaller (made once, shared by every recipient). */
static mt_frame_t *on_wire(mt_ws_t *ws, const mt_conn_t *c, mt_frame_t *f)
{
    return c->deflate ? mt_deflate_frame(&ws->deflate, f) : f;
}

/*
 * Writes the queued frames, oldest first, while lws holds nothing back
 * for the connection: a lone frame as it is (lws writes its header in the
 * frame's headroom, so a shared broadcast frame is not copied), several
 * coalesced into one LWS_WRITE_RAW write of up to COALESCE_MAX (headers
 * built here). When the kernel takes only part of a write, lws keeps the
 * rest and asks for POLLOUT itself; the rest of the queue then waits for
 * the writable callback. Returns 0, or -1 on a write error.
 */
static int write_queue(mt_ws_t *ws, struct lws *wsi, mt_conn_t *c)
{
    while (c->q.len && !lws_partial_buffered(wsi)) {
        mt_frame_t *f = on_wire(ws, c, mt_sendq_peek(&c->q));
        uint32_t n = 1;
        if (c->q.len > 1 && f->len + 10 <= COALESCE_MAX) {
            mt_buf_t *b = &ws->coalesce;
            mt_buf_reset(b);
            mt_buf_reserve(b, LWS_PRE + COALESCE_MAX);
            b->len = LWS_PRE;
            for (n = 0; n < c->q.len; n++) {
                const mt_frame_t *g = on_wire(ws, c, c->q.items[(c->q.head + n) % c->q.cap]);
                if (b->len - LWS_PRE + g->len + 10 > COALESCE_MAX)
                    break;
                add_frame(b, g);
            }
            size_t len = b->len - LWS_PRE;
            if (lws_write(wsi, (unsigned char *)b->data + LWS_PRE, len, LWS_WRITE_RAW) < (int)len)
                return -1;
        } else if (f->rsv1) {
            /* lws cannot set RSV1: the header goes in the headroom, the
             * same bytes for every recipient of a shared frame. */
            unsigned char h[10];
            size_t hl = frame_header(h, f);
            unsigned char *start = mt_frame_payload(f) - hl;
            memcpy(start, h, hl);
            if (lws_write(wsi, start, hl + f->len, LWS_WRITE_RAW) < (int)(hl + f->len))
                return -1;
        } else if (lws_write(wsi, mt_frame_payload(f), f->len,
                             f->opcode == MT_FRAME_PONG     ? LWS_WRITE_PONG
                             : f->opcode == MT_FRAME_BINARY ? LWS_WRITE_BINARY
                                                            : LWS_WRITE_TEXT) < (int)f->len) {
            return -1;
        }
        for (uint32_t i = 0; i < n; i++)
            mt_sendq_pop(&c->q);
        ws->stats->messages[MT_MSG_SENT] += n;
    }
    return 0;
}

/* After writing: what is left (frames the kernel did not take, a ping, a
 * close) continues in the writable callback. */
static void continue_later(mt_conn_t *c)
{
    if (c->q.len || c->ping_due || c->closing || c->close_held)
        lws_callback_on_writable(c->wsi);
}

/* Answers the peer's close with its code (RFC 6455 5.5.1), then closes
 * the TCP connection: both closes are done, so lws sends no close of its
 * own. Called once the queue and lws's own buffer are empty; frees c. */
static void write_close(mt_conn_t *c, int code, const char *reason)
{
    /* A server frame built here (lws keeps LWS_WRITE_CLOSE to itself). */
    unsigned char buf[LWS_PRE + 2 + 125], *f = buf + LWS_PRE;
    size_t n = 2;
    f[0] = 0x88;
    f[1] = 0;
    if (code && code != LWS_CLOSE_STATUS_NO_STATUS) {
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 123)
            rl = 123;
        f[1] = (unsigned char)(2 + rl);
        f[2] = (unsigned char)(code >> 8);
        f[3] = (unsigned char)code;
        if (rl)
            memcpy(f + 4, reason, rl);
        n = 4 + rl;
    }
    lws_write(c->wsi, f, n, LWS_WRITE_RAW);
}

static void answer_close(mt_conn_t *c)
{
    c->close_held = 0;
    write_close(c, c->peer_close_code, NULL);
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
}

/* Seconds a client has to answer a drain's close before the connection
 * is dropped anyway. */
#define CLOSE_ANSWER_TIMEOUT 3

/* A drain's close, once the queue is out: our close frame, then the
 * client's answer awaited (RFC 6455 7.1.1: the server closes TCP after
 * the handshake). Until it comes, what the client sent before it saw our
 * close is still handled: a chat message it typed reaches its room and
 * the history it resumes from, instead of being dropped unseen. */
static void send_close(mt_conn_t *c)
{
    if (c->close_sent)
        return;
    c->close_sent = 1;
    c->ping_sent = mt_mono(); /* closing: no pings; the sweep times the answer */
    write_close(c, c->close_code, c->close_reason);
}

/* Seconds of writing one flush phase may take before the loop goes round
 * again to read. Under light load every connection is written in the turn
 * that gave it frames; when writing would take longer (a large room at a
 * high rate: one send per member per turn), the rest waits for the next
 * turn, in order, and meanwhile gathers more frames, so each write carries
 * more of them: the cost per delivery falls as the load rises. */
#define FLUSH_BUDGET 0.002

static void on_behind(uv_idle_t *h)
{
    (void)h; /* its being active keeps the poll from blocking */
}

/* The flush phase: runs once per loop turn, after the I/O callbacks, and
 * writes what each connection was given (see FLUSH_BUDGET). */
static void on_flush(uv_check_t *h)
{
    mt_ws_t *ws = h->data;
    double deadline = mt_mono() + FLUSH_BUDGET;
    uint32_t i = 0;
    for (; i < ws->npending; i++) {
        if ((i & 63) == 63 && mt_mono() > deadline)
            break;
        mt_conn_t *c = ws->pending[i];
        if (!c)
            continue; /* closed since it was listed */
        c->flush_slot = 0;
        if (!c->wsi || c->closed)
            continue;
        if (c->kill_due) {
            c->kill_due = 0;
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC); /* may free c */
            continue;
        }
        if (c->close_held)
            c->peer_closed = 1; /* nothing more goes out but what was queued */
        if (write_queue(ws, c->wsi, c) != 0) {
            /* The socket failed: lws closes it on its next pass. */
            mt_buf_t *b =
                mt_log_begin(ws->log, MT_LOG_WARNING, "moontide.ws", "write failed: closing", 21);
            if (b) {
                mt_conn_log_fields(c, b);
                mt_json_kv_int(b, "queued_frames", c->q.len);
                mt_log_end(ws->log);
            }
            mt_sendq_clear(&c->q);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        if (c->close_held && !c->q.len && !lws_partial_buffered(c->wsi)) {
            answer_close(c); /* may free c */
            continue;
        }
        if (c->drain_close && !c->q.len && !lws_partial_buffered(c->wsi)) {
            send_close(c);
            continue;
        }
        continue_later(c);
    }
    uint32_t left = ws->npending - i;
    if (left) {
        memmove(ws->pending, ws->pending + i, left * sizeof *ws->pending);
        for (uint32_t j = 0; j < left; j++)
            if (ws->pending[j])
                ws->pending[j]->flush_slot = j + 1;
        uv_idle_start(&ws->behind, on_behind);
    } else {
        uv_idle_stop(&ws->behind);
    }
    ws->npending = left;
}

void mt_ws_start(mt_ws_t *ws, uv_loop_t *loop)
{
    uv_check_init(loop, &ws->flush);
    ws->flush.data = ws;
    uv_check_start(&ws->flush, on_flush);
    uv_unref((uv_handle_t *)&ws->flush);
    uv_idle_init(loop, &ws->behind);
    uv_unref((uv_handle_t *)&ws->behind);
}

void mt_ws_stop(mt_ws_t *ws)
{
    uv_handle_t *h = (uv_handle_t *)&ws->flush;
    if (!h->loop || uv_is_closing(h))
        return;
    uv_check_stop(&ws->flush);
    uv_close(h, NULL);
    uv_idle_stop(&ws->behind);
    uv_close((uv_handle_t *)&ws->behind, NULL);
}

void mt_ws_forget(mt_ws_t *ws, mt_conn_t *c)
{
    if (c->flush_slot)
        ws->pending[c->flush_slot - 1] = NULL;
    c->flush_slot = 0;
    if (c->fd >= 0 && c->fd < ws->nfds && ws->by_fd[c->fd] == c)
        ws->by_fd[c->fd] = NULL;
    c->fd = -1;
}

void mt_ws_free(mt_ws_t *ws)
{
    free(ws->by_fd);
    ws->by_fd = NULL;
    ws->nfds = 0;
    free(ws->pending);
    ws->pending = NULL;
    ws->npending = ws->cappending = 0;
    mt_buf_free(&ws->coalesce);
    mt_deflate_free(&ws->deflate);
}

static int on_writable(mt_ws_t *ws, struct lws *wsi, mt_conn_t *c)
{
    if (c->ping_due && !c->closing && !c->close_held && !c->peer_closed) {
        /* A payload, because lws 4.1 reports no RECEIVE_PONG for an empty
         * pong (it logs "received pong" and stops there). */
        unsigned char ping[LWS_PRE + 2] = {0};
        memcpy(ping + LWS_PRE, "mt", 2);
        c->ping_due = 0;
        if (lws_write(wsi, ping + LWS_PRE, 2, LWS_WRITE_PING) < 0)
            return -1;
    }
    if (write_queue(ws, wsi, c) != 0)
        return -1;
    if (c->q.len || lws_partial_buffered(wsi)) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    if (c->close_held) {
        answer_close(c);
        return 0;
    }
    if (c->drain_close) {
        send_close(c);
        return 0;
    }
    if (c->closing) {
        /* The reason was stored when the close started. Debian's lws (a
         * _DEBUG build) sends no close frame when a callback returns -1;
         * a synchronous kill through the timeout path does. */
        lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
    return 0;
}

/* lws is about to echo the peer's close payload from in. It rewrites
 * registered codes it does not know (1012-1014) to 1002 first: put back
 * the code the scanner saw, which it has already validated. */
static void on_peer_close(mt_conn_t *c, unsigned char *in, size_t len)
{
    c->peer_closed = 1;
    if (len >= 2 && c->peer_close_code) {
        in[0] = (unsigned char)(c->peer_close_code >> 8);
        in[1] = (unsigned char)c->peer_close_code;
        return;
    }
    if (len >= 2)
        c->peer_close_code = (uint16_t)((in[0] << 8) | in[1]);
    else
        c->peer_close_code = LWS_CLOSE_STATUS_NO_STATUS;
    if (len > 2 && !c->close_reason)
        c->close_reason = mt_xstrndup((const char *)in + 2, len - 2 > MT_CLOSE_REASON_MAX ? MT_CLOSE_REASON_MAX : len - 2);
}

static void on_closed(mt_ws_t *ws, mt_conn_t *c, struct lws *wsi)
{
    c->closed = 1;
    /* The code of whoever closed first: ours when we asked to close. */
    int code = c->close_code        ? c->close_code
               : c->peer_close_code ? c->peer_close_code
                                    : LWS_CLOSE_STATUS_ABNORMAL_CLOSE;
    mt_channel_leave_all(ws->channel, c);
    mt_script_close(ws->script, c, code, c->close_reason);
    mt_buf_t *b = mt_log_begin(ws->log, MT_LOG_INFO, "moontide.ws", "WebSocket disconnected", 22);
    if (b) {
        mt_conn_log_fields(c, b);
        mt_json_kv_int(b, "code", code);
        mt_json_kv_cstr(b, "initiator", c->close_code        ? "server"
                                         : c->peer_close_code ? "client"
                                                              : "network");
        mt_json_kv_seconds(b, "duration", mt_mono() - c->opened_at);
        mt_log_end(ws->log);
    }
    lws_set_opaque_user_data(wsi, NULL);
    mt_ws_forget(ws, c);
    mt_conn_free(ws->conns, c);
    if (ws->server_conns) {
        atomic_fetch_sub(ws->server_conns, 1);
        atomic_fetch_sub(ws->own_conns, 1);
    }
    if (ws->proc->draining && mt_conns_count(ws->conns) == 0)
        ws->drained(ws->ud);
}

struct sweep {
    mt_ws_t *ws;
    double now;
};

static void sweep_one(void *obj, void *ud)
{
    mt_conn_t *c = obj;
    struct sweep *sw = ud;
    mt_ws_t *ws = sw->ws;
    if (c->close_sent && !c->kill_due && !c->closed &&
        sw->now - c->ping_sent > CLOSE_ANSWER_TIMEOUT) {
        c->kill_due = 1; /* no answer to the drain's close: dropped */
        want_flush(ws, c);
        return;
    }
    if (c->closing || c->closed)
        return;
    if (c->ping_sent) {
        if (sw->now - c->ping_sent <= ws->cfg->heartbeat_timeout)
            return;
        ws->stats->errors[MT_ERR_HEARTBEAT_TIMEOUT]++;
        mt_buf_t *b =
            mt_log_begin(ws->log, MT_LOG_WARNING, "moontide.ws", "heartbeat timeout: closing", 26);
        if (b) {
            mt_conn_log_fields(c, b);
            mt_json_kv_seconds(b, "silent_seconds", sw->now - c->last_seen);
            mt_log_end(ws->log);
        }
        /* The peer reads nothing: what is queued would never drain. */
        mt_conn_close(ws->conns, c, LWS_CLOSE_STATUS_GOINGAWAY, "heartbeat timeout", 17, 1);
        return;
    }
    if (sw->now - c->last_seen >= ws->cfg->heartbeat_interval) {
        c->ping_sent = sw->now;
        c->ping_due = 1;
        want_writable(c);
    }
}

void mt_ws_sweep(mt_ws_t *ws)
{
    struct sweep sw = {ws, mt_mono()};
    mt_handles_each(&ws->conns->handles, sweep_one, &sw);
}

int mt_ws_callback(mt_ws_t *ws, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                   size_t len)
{
    mt_conn_t *c;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return on_confirm_upgrade(ws, wsi);
    case LWS_CALLBACK_ADD_HEADERS:
        if (ws->upgrade.wsi == wsi && ws->upgrade.offered && answer_offer(&ws->upgrade, in) != 0) {
            mt_log_msg(ws->log, MT_LOG_ERROR, "moontide.ws",
                       "cannot answer the subprotocol offer: upgrade refused");
            return -1;
        }
        if (ws->upgrade.wsi == wsi && ws->upgrade.deflate)
            return answer_deflate(in);
        return 0;
    case LWS_CALLBACK_ESTABLISHED:
        on_established(ws, wsi);
        return 0;
    case LWS_CALLBACK_RECEIVE:
        if ((c = conn_of(wsi)))
            mt_ws_receive(ws, c, in, len,
                          lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0,
                          lws_remaining_packet_payload(wsi), lws_frame_is_binary(wsi));
        return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if ((c = conn_of(wsi)))
            return on_writable(ws, wsi, c);
        return 0;
    case LWS_CALLBACK_RECEIVE_PONG:
        if ((c = conn_of(wsi))) {
            c->last_seen = mt_mono();
            c->ping_sent = 0;
        }
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if ((c = conn_of(wsi)))
            on_peer_close(c, in, len);
        return 0;
    case LWS_CALLBACK_CLOSED:
        if ((c = conn_of(wsi)))
            on_closed(ws, c, wsi);
        return 0;
    default:
        return 0;
    }
}
