/*
 * request.h - HTTP requests on lws, as both edges see them: the request
 * line and headers, the client's address and request id, JSON error
 * bodies, status lines with their reason phrases, refusals and the access
 * log (one INFO line and http_requests_total per response).
 *
 * Below the edges that answer requests (http.c for plain HTTP, ws.c for
 * upgrades), above the base. Owns nothing; mt_requests_t holds what the
 * helpers share, set once by the root.
 */
#ifndef MT_REQUEST_H
#define MT_REQUEST_H

#include "buf.h"
#include "instruments.h"
#include "log.h"
#include "netaddr.h"
#include "rand.h"

#include <libwebsockets.h>

#define MT_REQUEST_ID_MAX 64

typedef struct mt_requests {
    mt_log_t *log;
    mt_rand_t *rand;                      /* request ids for clients that send none */
    mt_instruments_t *ins;                /* http_requests_total, its histogram */
    const mt_cidr_set_t *trusted_proxies; /* whose X-Forwarded-For counts */
} mt_requests_t;

/* An HTTP method lws knows. */
typedef struct mt_method {
    enum lws_token_indexes tok; /* the token that holds the path */
    const char *name;
    int has_body;
} mt_method_t;

/** The request's method, or NULL when lws knows none. */
const mt_method_t *mt_request_method(struct lws *wsi);
/** The request's method ("OTHER" if lws knows none) and path. 0, or -1
 *  when there is no method lws knows or no path. */
int mt_request_line(struct lws *wsi, const char **method, char *path, size_t len);
/** A copy of header tok (truncated to max bytes), or NULL when absent. */
char *mt_request_header(struct lws *wsi, enum lws_token_indexes tok, size_t max);
/** 1 and the client's X-Request-ID in out[MT_REQUEST_ID_MAX + 1] when it
 *  sent a sane one (1-64 of [A-Za-z0-9._:-]), else 0. */
int mt_request_client_id(struct lws *wsi, char *out);
/** The client's X-Request-ID when sane, else a new UUID v4, written into
 *  out[MT_REQUEST_ID_MAX + 1]. */
void mt_request_id(const mt_requests_t *rq, struct lws *wsi, char *out);
/** The client address: the peer, or X-Forwarded-For from a trusted proxy. */
void mt_request_client_addr(const mt_requests_t *rq, struct lws *wsi, char out[MT_ADDR_MAX]);

/** The reason phrase of a status moontide answers with (RFC 9110). */
const char *mt_request_reason_phrase(int status);
/** Appends {"status":"error","error":...,"code":...}. */
void mt_request_error_body(mt_buf_t *b, const char *error, int status);
/* A header line to add: name with its colon ("etag:"), value. */
typedef struct mt_header {
    const char *name, *value;
} mt_header_t;

/** Writes status line and headers (extra[n] added; "cache-control:" among
 *  them replaces the default no-store); 0, or -1 if lws refused them. */
int mt_request_write_headers(struct lws *wsi, int status, const char *content_type, size_t body_len,
                             const char *request_id, const char *allow, int close_after,
                             const mt_header_t *extra, int n);
/** Counts and logs one response (t0: monotonic time the request came). */
void mt_request_log(const mt_requests_t *rq, struct lws *wsi, const char *method, const char *path,
                    const char *endpoint, int status, double t0, const char *request_id);
/** Writes an HTTP error status with a JSON body and closes; for refused
 *  upgrades. extra_headers: more "name: value\r\n" lines, or NULL. */
void mt_request_refuse(const mt_requests_t *rq, struct lws *wsi, int status, const char *error,
                       const char *endpoint, const char *request_id, const char *extra_headers);

#endif
