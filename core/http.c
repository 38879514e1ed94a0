/* http.c - plain HTTP: routing, bodies read and dropped, responses. */
#include "http.h"

#include "clock.h"

#include <stdlib.h>
#include <string.h>

#define MAX_BODY (64 * 1024) /* request bodies we accept (and ignore) */
#define CT_JSON "application/json"

/* One per HTTP request in flight; hung on the wsi's session data. */
/* A request waiting for an answer that comes later. */
typedef struct mt_http_wait {
    uint64_t ticket;
    struct lws *wsi;
} mt_http_wait_t;

typedef struct mt_http_txn {
    mt_http_response_t resp;
    int headers_due; /* an answer that came later: headers at the next writable */
    size_t sent;
    int head; /* HEAD: headers only */
    int close_after;
    int awaiting_body;
    size_t body_seen;
    double t0;
    const char *method;
    char request_id[MT_REQUEST_ID_MAX + 1];
} mt_http_txn_t;

static void error(mt_http_response_t *resp, int status, const char *what)
{
    resp->status = status;
    mt_request_error_body(&resp->body, what, status);
}

/* The body of a finished reload: its outcome on this worker, and each
 * worker's when there are several. */
static void reload_body(const mt_script_t *s, int ok, const char *workers_json, mt_buf_t *b)
{
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", ok ? "ok" : "error");
    mt_json_kv_cstr(b, "result", ok ? "success" : "failure");
    mt_json_kv_int(b, "generation", (int64_t)s->generation);
    mt_json_kv_seconds(b, "pause_seconds", s->reload_pause);
    if (!ok && s->reload_error)
        mt_json_kv_cstr(b, "error", s->reload_error);
    if (workers_json) {
        mt_json_key(b, "workers");
        mt_buf_adds(b, workers_json);
    }
    mt_buf_addc(b, '}');
}

static void admin_reload(mt_http_t *h, const mt_http_request_t *req, mt_http_response_t *resp)
{
    if (strcmp(req->method, "POST") != 0) {
        resp->allow = "POST";
        error(resp, 405, "method_not_allowed");
        return;
    }
    if (!req->admin) {
        error(resp, 403, "forbidden");
        return;
    }
    uint64_t ticket = ++h->next_ticket;
    int rc = h->reload(h->ud, "admin", ticket);
    if (rc == 1) {
        resp->status = 0;
        resp->ticket = ticket;
        return;
    }
    resp->status = rc == 0 ? 200 : 500;
    reload_body(h->script, rc == 0, NULL, &resp->body);
}

/* A file under static_dir, counted under one endpoint label ("other" for
 * a path that is none, as without static files). */
static void serve_file(mt_http_t *h, const mt_http_request_t *req, mt_http_response_t *resp)
{
    mt_static_serve(h->files, req->path, req->if_none_match, req->if_modified_since, &resp->file,
                    &resp->body);
    snprintf(resp->endpoint, sizeof resp->endpoint, "%s",
             resp->file.status == 404 ? "other" : "static");
    resp->is_file = 1;
    resp->status = resp->file.status;
    if (resp->file.error)
        error(resp, resp->file.status, resp->file.error);
    else if (resp->file.status == 200)
        resp->content_type = resp->file.content_type;
}

enum { EP_HEALTHZ, EP_READYZ, EP_STATUS, EP_METRICS, EP_ALERTS, EP__COUNT };
static const char *const endpoints[EP__COUNT] = {"/healthz", "/readyz", "/status", "/metrics",
                                                 "/alerts"};

void mt_http_route(mt_http_t *h, const mt_http_request_t *req, mt_http_response_t *resp)
{
    int which = -1;
    resp->content_type = CT_JSON;
    resp->allow = NULL;
    if (strcmp(req->path, "/admin/reload") == 0) {
        snprintf(resp->endpoint, sizeof resp->endpoint, "/admin/reload");
        admin_reload(h, req, resp);
        return;
    }
    for (int i = 0; i < EP__COUNT; i++)
        if (strcmp(req->path, endpoints[i]) == 0)
            which = i;
    if (which < 0) {
        char pattern[64];
        if (mt_script_match(h->script, req->path, strlen(req->path), NULL, pattern, sizeof pattern,
                            NULL, 0, NULL)) {
            snprintf(resp->endpoint, sizeof resp->endpoint, "%s", pattern);
            error(resp, 426, "upgrade_required");
        } else if (h->files && mt_static_on(h->files) &&
                   (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)) {
            serve_file(h, req, resp);
        } else {
            snprintf(resp->endpoint, sizeof resp->endpoint, "other");
            error(resp, 404, "not_found");
        }
        return;
    }
    snprintf(resp->endpoint, sizeof resp->endpoint, "%s", endpoints[which]);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->allow = "GET, HEAD";
        error(resp, 405, "method_not_allowed");
        return;
    }
    resp->status = 200;
    switch (which) {
    case EP_HEALTHZ:
        mt_health_healthz(h->health, &resp->body);
        break;
    case EP_READYZ:
        resp->status = mt_health_readyz(h->health, &resp->body);
        break;
    case EP_STATUS:
        mt_report_status(h->report, &resp->body);
        break;
    case EP_METRICS: {
        int om = mt_metrics_negotiate(req->accept, &resp->content_type);
        mt_health_evaluate(h->health); /* a scrape sees readiness as of now */
        mt_instruments_render(h->ins, &resp->body, om);
        break;
    }
    default:
        if (!h->alerts_on) {
            mt_buf_adds(&resp->body, MT_ALERTS_OFF_JSON);
        } else if (h->board && !h->alerts_here) {
            mt_buf_t blob = MT_BUF_INIT;
            if (mt_board_read(h->board, MT_BLOB_ALERTS, 0, &blob) == 0)
                mt_buf_add(&resp->body, blob.data, blob.len);
            else
                mt_buf_adds(&resp->body,
                            "{\"enabled\":true,\"alerts\":[],\"rules\":0,\"evaluated_at\":null}");
            mt_buf_free(&blob);
        } else {
            mt_script_alerts_json(h->script, &resp->body);
        }
        break;
    }
}

static void wait_forget(mt_http_t *h, struct lws *wsi)
{
    for (uint32_t i = 0; i < h->nwaiting; i++)
        if (h->waiting[i].wsi == wsi) {
            h->waiting[i] = h->waiting[--h->nwaiting];
            return;
        }
}

void mt_http_reload_done(mt_http_t *h, uint64_t ticket, int ok, const char *workers_json)
{
    for (uint32_t i = 0; i < h->nwaiting; i++) {
        if (h->waiting[i].ticket != ticket)
            continue;
        struct lws *wsi = h->waiting[i].wsi;
        h->waiting[i] = h->waiting[--h->nwaiting];
        mt_http_txn_t **slot = (mt_http_txn_t **)lws_wsi_user(wsi);
        if (!slot || !*slot)
            return;
        mt_http_txn_t *txn = *slot;
        txn->resp.status = ok ? 200 : 500;
        reload_body(h->script, ok, workers_json, &txn->resp.body);
        txn->headers_due = 1;
        lws_callback_on_writable(wsi);
        return;
    }
}

void mt_http_free(mt_http_t *h)
{
    free(h->waiting);
    h->waiting = NULL;
    h->nwaiting = h->capwaiting = 0;
}

/* The admin rule applied to this request (admin.h); a refusal is logged. */
static int admin_check(mt_http_t *h, struct lws *wsi, const char *request_id, const char *path)
{
    char peer[MT_ADDR_MAX] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    char *auth = mt_request_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, 512);
    int ok = mt_admin_allowed(h->admin, peer,
                              lws_hdr_total_length(wsi, WSI_TOKEN_X_FORWARDED_FOR) > 0, auth);
    free(auth);
    if (!ok) {
        char addr[MT_ADDR_MAX];
        mt_request_client_addr(h->rq, wsi, addr);
        mt_buf_t *l =
            mt_log_begin(h->rq->log, MT_LOG_WARNING, "moontide.http", "admin request refused", 21);
        if (l) {
            mt_json_kv_cstr(l, "request_id", request_id);
            mt_json_kv_cstr(l, "remote_addr", addr);
            mt_json_kv_cstr(l, "path", path);
            mt_log_end(h->rq->log);
        }
    }
    return ok;
}

static void txn_free(mt_http_txn_t *txn)
{
    if (!txn)
        return;
    mt_buf_free(&txn->resp.body);
    free(txn);
}

/* Ends the transaction: access log, then keep-alive or close. */
static int finish(mt_http_t *h, struct lws *wsi, mt_http_txn_t **slot)
{
    mt_http_txn_t *txn = *slot;
    const char *method;
    char path[256];
    mt_request_line(wsi, &method, path, sizeof path);
    mt_request_log(h->rq, wsi, txn->method, path, txn->resp.endpoint, txn->resp.status, txn->t0,
                   txn->request_id);
    int close_after = txn->close_after;
    txn_free(txn);
    *slot = NULL;
    if (close_after)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int respond(mt_http_t *h, struct lws *wsi, mt_http_txn_t **slot)
{
    mt_http_txn_t *txn = *slot;
    mt_header_t extra[4];
    int n = 0;
    const mt_static_answer_t *f = &txn->resp.file;
    if (txn->resp.is_file && (f->status == 200 || f->status == 304)) {
        extra[n++] = (mt_header_t){"etag:", f->etag};
        extra[n++] = (mt_header_t){"last-modified:", f->last_modified};
        extra[n++] = (mt_header_t){"cache-control:", "no-cache"}; /* revalidate: a 304 */
    } else if (txn->resp.is_file && f->status == 301) {
        extra[n++] = (mt_header_t){"location:", f->location};
    }
    if (mt_request_write_headers(wsi, txn->resp.status, txn->resp.content_type, txn->resp.body.len,
                                 txn->request_id, txn->resp.allow, txn->close_after, extra,
                                 n) != 0) {
        txn_free(txn);
        *slot = NULL;
        return -1;
    }
    if (txn->head || txn->resp.body.len == 0)
        return finish(h, wsi, slot);
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_request(mt_http_t *h, struct lws *wsi, mt_http_txn_t **slot, const char *path)
{
    txn_free(*slot);
    mt_http_txn_t *txn = *slot = mt_xcalloc(1, sizeof *txn);
    txn->t0 = mt_mono();
    const mt_method_t *m = mt_request_method(wsi);
    txn->method = m ? m->name : "OTHER";
    txn->head = m && strcmp(m->name, "HEAD") == 0;
    mt_request_id(h->rq, wsi, txn->request_id);
    mt_http_request_t req = {.method = txn->method, .path = path};
    char *accept = mt_request_header(wsi, WSI_TOKEN_HTTP_ACCEPT, 1024);
    char *inm = mt_request_header(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH, 512);
    char *ims = mt_request_header(wsi, WSI_TOKEN_HTTP_IF_MODIFIED_SINCE, 64);
    req.accept = accept;
    req.if_none_match = inm;
    req.if_modified_since = ims;
    if (strcmp(path, "/admin/reload") == 0 && strcmp(txn->method, "POST") == 0)
        req.admin = admin_check(h, wsi, txn->request_id, path);
    mt_http_route(h, &req, &txn->resp);
    free(accept);
    free(inm);
    free(ims);
    if (txn->resp.status == 0) { /* answered later: mt_http_reload_done */
        if (h->nwaiting == h->capwaiting) {
            h->capwaiting = h->capwaiting ? h->capwaiting * 2 : 4;
            h->waiting = mt_xrealloc(h->waiting, h->capwaiting * sizeof *h->waiting);
        }
        h->waiting[h->nwaiting++] = (mt_http_wait_t){txn->resp.ticket, wsi};
        return 0;
    }
    if (m && m->has_body) {
        /* Read (and drop) the body before answering, so keep-alive does
         * not parse it as the next request; too large: close. */
        char cl[24] = "";
        lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH);
        long n = atol(cl);
        if (n > MAX_BODY) {
            mt_buf_reset(&txn->resp.body);
            txn->resp.allow = NULL;
            txn->resp.content_type = CT_JSON;
            txn->close_after = 1;
            error(&txn->resp, 413, "payload_too_large");
        } else if (n > 0) {
            txn->awaiting_body = 1;
            return 0;
        }
    }
    return respond(h, wsi, slot);
}

int mt_http_callback(mt_http_t *h, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                     size_t len)
{
    mt_http_txn_t **slot = (mt_http_txn_t **)lws_wsi_user(wsi);
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (!slot)
            return -1;
        return on_request(h, wsi, slot, in ? (const char *)in : "/");
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
            return respond(h, wsi, slot);
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE: {
        if (!slot || !*slot)
            return 0;
        mt_http_txn_t *txn = *slot;
        if (txn->resp.status == 0)
            return 0; /* still waiting for its answer */
        if (txn->headers_due) {
            txn->headers_due = 0;
            return respond(h, wsi, slot);
        }
        /* Writes in chunks so one large body cannot hold the loop. */
        unsigned char chunk[LWS_PRE + 16384];
        const mt_buf_t *body = &txn->resp.body;
        size_t left = body->len - txn->sent;
        size_t n = left < sizeof chunk - LWS_PRE ? left : sizeof chunk - LWS_PRE;
        memcpy(chunk + LWS_PRE, body->data + txn->sent, n);
        int final = n == left;
        if (lws_write(wsi, chunk + LWS_PRE, n, final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) <
            (int)n)
            return -1;
        txn->sent += n;
        if (final)
            return finish(h, wsi, slot);
        lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        wait_forget(h, wsi);
        if (slot) {
            txn_free(*slot);
            *slot = NULL;
        }
        return 0;
    default:
        return 0;
    }
}
