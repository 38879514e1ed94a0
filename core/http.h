/*
 * http.h - the plain HTTP side of the one listening port: health
 * endpoints, JSON errors, access logs, and the request facts (request id,
 * client address, user agent) that WebSocket upgrades share.
 *
 * Routes: GET|HEAD /healthz, /readyz, /status. A path that is a WebSocket
 * route asked for without an upgrade gets 426; any other path 404; any
 * other method on a known path 405 with Allow. Every response is JSON,
 * carries X-Request-ID, and is one INFO access-log line.
 *
 * Owns: one mt_http_txn_t per request in flight, hung on the wsi's opaque
 * user data from the HTTP callback until the transaction completes.
 */
#ifndef MT_HTTP_H
#define MT_HTTP_H

#include "buf.h"
#include "netaddr.h"

#include <libwebsockets.h>

struct mt_runtime;

#define MT_REQUEST_ID_MAX 64

/** lws callback reasons of plain HTTP; returns what lws expects. */
int mt_http_callback(struct mt_runtime *rt, struct lws *wsi, enum lws_callback_reasons reason,
                     void *in, size_t len);

/**
 * The client's X-Request-ID when it is sane (1-64 of [A-Za-z0-9._:-]),
 * else a new UUID v4, written into out[MT_REQUEST_ID_MAX + 1].
 */
void mt_http_request_id(struct mt_runtime *rt, struct lws *wsi, char *out);
/** 1 and the client's X-Request-ID in out[MT_REQUEST_ID_MAX + 1] when it
 *  sent a sane one, else 0. */
int mt_http_client_request_id(struct lws *wsi, char *out);
/** The client address: the peer, or X-Forwarded-For from a trusted proxy. */
void mt_http_client_addr(struct mt_runtime *rt, struct lws *wsi, char out[MT_ADDR_MAX]);
/** A copy of header tok (truncated to max bytes), or NULL when absent. */
char *mt_http_header_dup(struct lws *wsi, enum lws_token_indexes tok, size_t max);

/** The request's method ("OTHER" if lws knows none) and path. 0, or -1
 *  when there is no method lws knows or no path. */
int mt_http_request_line(struct lws *wsi, const char **method, char *path, size_t len);

/** Writes an HTTP error status with a JSON body and closes; for refused
 *  upgrades. extra_headers: more "name: value\r\n" lines, or NULL. */
void mt_http_refuse(struct mt_runtime *rt, struct lws *wsi, int status, const char *error,
                    const char *endpoint, const char *request_id, const char *extra_headers);

#endif
