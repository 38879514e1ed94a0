/* request.c - HTTP request facts, JSON errors and access logs on lws. */
#include "request.h"

#include "clock.h"

#include <stdlib.h>
#include <string.h>

static const mt_method_t methods[] = {
    {WSI_TOKEN_GET_URI, "GET", 0},         {WSI_TOKEN_HEAD_URI, "HEAD", 0},
    {WSI_TOKEN_POST_URI, "POST", 1},       {WSI_TOKEN_PUT_URI, "PUT", 1},
    {WSI_TOKEN_PATCH_URI, "PATCH", 1},     {WSI_TOKEN_DELETE_URI, "DELETE", 0},
    {WSI_TOKEN_OPTIONS_URI, "OPTIONS", 0},
};

const mt_method_t *mt_request_method(struct lws *wsi)
{
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
        if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
            return &methods[i];
    return NULL;
}

int mt_request_line(struct lws *wsi, const char **method, char *path, size_t len)
{
    const mt_method_t *m = mt_request_method(wsi);
    *method = m ? m->name : "OTHER";
    path[0] = '\0';
    return m && lws_hdr_copy(wsi, path, (int)len, m->tok) > 0 ? 0 : -1;
}

char *mt_request_header(struct lws *wsi, enum lws_token_indexes tok, size_t max)
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

int mt_request_client_id(struct lws *wsi, char *out)
{
    static const char name[] = "x-request-id:";
    int n = lws_hdr_custom_length(wsi, name, (int)sizeof name - 1);
    return n > 0 && n <= MT_REQUEST_ID_MAX &&
           lws_hdr_custom_copy(wsi, out, MT_REQUEST_ID_MAX + 1, name, (int)sizeof name - 1) >= 0 &&
           sane_request_id(out, strlen(out));
}

void mt_request_id(const mt_requests_t *rq, struct lws *wsi, char *out)
{
    if (!mt_request_client_id(wsi, out))
        mt_rand_uuid4(rq->rand, out);
}

void mt_request_client_addr(const mt_requests_t *rq, struct lws *wsi, char out[MT_ADDR_MAX])
{
    char peer[MT_ADDR_MAX] = "";
    lws_get_peer_simple(wsi, peer, sizeof peer);
    char *xff =
        rq->trusted_proxies->n ? mt_request_header(wsi, WSI_TOKEN_X_FORWARDED_FOR, 1024) : NULL;
    mt_client_addr(rq->trusted_proxies, peer, xff, out);
    free(xff);
}

void mt_request_log(const mt_requests_t *rq, struct lws *wsi, const char *method, const char *path,
                    const char *endpoint, int status, double t0, const char *request_id)
{
    double took = mt_mono() - t0;
    mt_instruments_http(rq->ins, method, endpoint, status, took);
    int level = status >= 500 ? MT_LOG_WARNING : MT_LOG_INFO;
    mt_buf_t *b = mt_log_begin(rq->log, level, "moontide.http", "request", 7);
    if (!b)
        return;
    char addr[MT_ADDR_MAX];
    mt_request_client_addr(rq, wsi, addr);
    char *ua = mt_request_header(wsi, WSI_TOKEN_HTTP_USER_AGENT, 256);
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
    mt_log_end(rq->log);
}

void mt_request_error_body(mt_buf_t *b, const char *error, int status)
{
    mt_buf_addc(b, '{');
    mt_json_kv_cstr(b, "status", "error");
    mt_json_kv_cstr(b, "error", error);
    mt_json_kv_int(b, "code", status);
    mt_buf_addc(b, '}');
}

const char *mt_request_reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 500 ? "Client Error" : "Server Error";
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
    const char *phrase = mt_request_reason_phrase(status);
    size_t n = strlen(phrase);
    if ((size_t)(end - *p) < n)
        return -1;
    memmove(eol + n, eol, (size_t)(*p - eol));
    memcpy(eol, phrase, n);
    *p += n;
    return 0;
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

int mt_request_write_headers(struct lws *wsi, int status, const char *content_type, size_t body_len,
                             const char *request_id, const char *allow, int close_after,
                             const mt_header_t *extra, int n)
{
    unsigned char buf[LWS_PRE + 2048];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf;
    if (lws_add_http_common_headers(wsi, (unsigned)status, content_type, body_len, &p, end) ||
        complete_status_line(start, &p, end, status) != 0)
        return -1;
    int cache_given = 0;
    for (int i = 0; i < n; i++) {
        cache_given |= strcmp(extra[i].name, "cache-control:") == 0;
        if (add_header(wsi, extra[i].name, extra[i].value, &p, end))
            return -1;
    }
    if (add_header(wsi, "x-request-id:", request_id, &p, end) ||
        (!cache_given && add_header(wsi, "cache-control:", "no-store", &p, end)))
        return -1;
    if (allow && lws_add_http_header_by_name(
                     wsi, (const unsigned char *)"allow:", (const unsigned char *)allow,
                     (int)strlen(allow), &p, end))
        return -1;
    if (close_after && lws_add_http_header_by_name(wsi, (const unsigned char *)"connection:",
                                                   (const unsigned char *)"close", 5, &p, end))
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

void mt_request_refuse(const mt_requests_t *rq, struct lws *wsi, int status, const char *error,
                       const char *endpoint, const char *request_id, const char *extra_headers)
{
    /* Written raw: while an upgrade is being confirmed lws has not yet
     * recorded the request's HTTP version and would answer HTTP/1.0, which
     * WebSocket clients reject as invalid. */
    double t0 = mt_mono();
    mt_buf_t body = MT_BUF_INIT, out = MT_BUF_INIT;
    mt_request_error_body(&body, error, status);
    mt_buf_reserve(&out, LWS_PRE + 256 + body.len);
    out.len = LWS_PRE;
    mt_buf_addf(&out,
                "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n"
                "x-request-id: %s\r\ncache-control: no-store\r\nconnection: close\r\n%s\r\n",
                status, mt_request_reason_phrase(status), body.len, request_id,
                extra_headers ? extra_headers : "");
    mt_buf_add(&out, body.data, body.len);
    lws_write(wsi, (unsigned char *)out.data + LWS_PRE, out.len - LWS_PRE, LWS_WRITE_HTTP_FINAL);
    const char *method;
    char path[256];
    mt_request_line(wsi, &method, path, sizeof path);
    mt_request_log(rq, wsi, method, path, endpoint, status, t0, request_id);
    mt_buf_free(&body);
    mt_buf_free(&out);
}
