/*
 * http.h - the plain HTTP side of the one listening port: routing.
 *
 * Routes: GET|HEAD /healthz and /readyz (health.h), /status (report.h),
 * /metrics (instruments.h; OpenMetrics when Accept asks for it), /alerts
 * (the script host's in-process alerts); POST /admin/reload (admin.h
 * decides who may; the reload itself is the owner's, through a hook). A
 * path that is a WebSocket route asked for without an upgrade gets 426;
 * any other path 404; any other method on a known path 405 with Allow; a
 * body over 64 KiB 413. Every response is JSON (but /metrics), carries
 * X-Request-ID and no-store, and is one access-log line (request.h).
 *
 * Routing (mt_http_route) is socket-free; mt_http_callback is the lws
 * side: it gathers the request, routes it, reads and drops any body, and
 * writes the response in chunks.
 *
 * Owns: one transaction per request in flight, hung on the wsi's session
 * data from the HTTP callback until the response is written.
 */
#ifndef MT_HTTP_H
#define MT_HTTP_H

#include "admin.h"
#include "board.h"
#include "buf.h"
#include "health.h"
#include "instruments.h"
#include "report.h"
#include "request.h"
#include "script.h"
#include "static.h"

#include <libwebsockets.h>

typedef struct mt_http {
    mt_requests_t *rq;
    const mt_admin_t *admin;
    mt_health_t *health;
    mt_instruments_t *ins;
    const mt_report_t *report;
    mt_script_t *script; /* WebSocket routes (426) and /alerts */
    const mt_static_t *files; /* static_dir, served for other GET and HEAD paths */
    /* Reloads the scripts (POST /admin/reload): 0 or -1 when done (the
     * outcome is read back from script), or 1 when the answer comes later
     * through mt_http_reload_done with the same ticket (a server of
     * several workers reloads them all). */
    int (*reload)(void *ud, const char *trigger, uint64_t ticket);
    void *ud;
    /* Several workers: /alerts is the evaluating worker's, from the board. */
    const mt_board_t *board;
    int alerts_here;
    int alerts_on; /* in_process_alerts: else /alerts says they are off */
    /* Requests waiting for their answer (a reload across workers). */
    struct mt_http_wait *waiting;
    uint32_t nwaiting, capwaiting;
    uint64_t next_ticket;
} mt_http_t;

/* GET /alerts when in_process_alerts is off. */
#define MT_ALERTS_OFF_JSON "{\"enabled\":false,\"alerts\":[],\"rules\":0,\"evaluated_at\":null}"

/* A request as routing sees it. */
typedef struct mt_http_request {
    const char *method; /* "GET", ... or "OTHER" */
    const char *path;
    const char *accept; /* the Accept header, or NULL */
    const char *if_none_match, *if_modified_since; /* or NULL */
    int admin;          /* it may use admin endpoints (admin.h) */
} mt_http_request_t;

/* The response routing decided on. */
typedef struct mt_http_response {
    int status; /* 0: the answer comes later (ticket) */
    uint64_t ticket;
    mt_buf_t body;
    const char *content_type;
    const char *allow; /* Allow header for 405, or NULL */
    char endpoint[64]; /* the endpoint label: a route, or "other" */
    mt_static_answer_t file; /* headers of a static file's answer (etag, ...) */
    int is_file;
} mt_http_response_t;

/** Decides the response to req: status, body, headers. Runs Lua for
 *  /readyz, /alerts, /admin/reload and WebSocket route matching, so only
 *  at the top of an event. */
void mt_http_route(mt_http_t *h, const mt_http_request_t *req, mt_http_response_t *resp);

/**
 * Answers the request waiting on ticket (POST /admin/reload across
 * workers): ok, and workers_json (a JSON array of each worker's result,
 * may be NULL). It is written from lws's writable callback; a request
 * whose client has gone is forgotten.
 */
void mt_http_reload_done(mt_http_t *h, uint64_t ticket, int ok, const char *workers_json);
/** Frees what waits. */
void mt_http_free(mt_http_t *h);

/** lws callback reasons of plain HTTP; returns what lws expects. */
int mt_http_callback(mt_http_t *h, struct lws *wsi, enum lws_callback_reasons reason, void *in,
                     size_t len);

#endif
