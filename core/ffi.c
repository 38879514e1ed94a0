/* ffi.c - the mt_* functions Lua calls. */
#include "ffi.h"

#include "runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * Marks this FFI call as running until it returns, so that anything it
 * reaches that would run Lua is stopped by the script host instead of
 * corrupting the VM (script.h). Used by every entry point that reaches
 * past plain memory; the series and clock accessors touch nothing else.
 */
#define MT_FFI_GUARD(rt)                                                                        \
    mt_script_guard_t ffi_guard_ __attribute__((cleanup(mt_script_guard_leave), unused)) =     \
        mt_script_guard_enter(&(rt)->script, __func__)

/* Every definition below is exported for the FFI; declare them visible. */
#pragma GCC visibility push(default)

_Static_assert((int)MT_FFI_OK == MT_OK && (int)MT_FFI_ERROR == MT_ERROR &&
                   (int)MT_FFI_AGAIN == MT_AGAIN && (int)MT_FFI_DECLINED == MT_DECLINED &&
                   MT_FFI_CLOSE_REASON_MAX == MT_CLOSE_REASON_MAX &&
                   MT_FFI_GROUP_NAME_MAX == MT_GROUP_NAME_MAX &&
                   MT_FFI_REDIS_HEADER_VERSION == MT_REDIS_HEADER_VERSION,
               "status codes and limits shared with Lua");

static mt_conn_t *live_conn(mt_runtime_t *rt, uint64_t id)
{
    mt_conn_t *c = mt_conn_get(&rt->conns, id);
    return c && !c->closing && !c->closed ? c : NULL;
}

static int valid_group(const char *name, size_t len)
{
    return name && len > 0 && len <= MT_GROUP_NAME_MAX;
}

int mt_ffi_conn_send(uint64_t conn, const char *data, size_t len, int binary)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!data)
        return MT_ERROR;
    mt_conn_t *c = live_conn(rt, conn);
    if (!c)
        return MT_DECLINED;
    mt_frame_t *f = mt_frame_new(data, len, binary);
    mt_conn_enqueue(&rt->conns, c, f);
    mt_frame_unref(f);
    return MT_OK;
}

/* Codes an endpoint may put in a close frame (RFC 6455 7.4). */
static int valid_close_code(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int mt_ffi_conn_close(uint64_t conn, int code, const char *reason, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!valid_close_code(code) || (len && !reason) || len > MT_CLOSE_REASON_MAX)
        return MT_ERROR;
    mt_conn_t *c = live_conn(rt, conn);
    if (!c)
        return MT_DECLINED;
    return mt_conn_close(&rt->conns, c, code, reason, len, 0);
}

/* A header of the upgrade being authorized, by its lower-case name:
 * lws's own token for the names it parses, else its custom headers.
 * Returns the length copied to out[cap] (NUL-terminated), MT_DECLINED when
 * the request has no such header, MT_ERROR outside authorize. */
int mt_ffi_upgrade_header(const char *name, size_t len, char *out, int cap)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    struct lws *wsi = rt->ws.upgrade.wsi;
    if (!wsi || !name || !out || cap < 1 || len == 0 || len > 128)
        return MT_ERROR;
    for (int t = 0; t < WSI_TOKEN_COUNT; t++) {
        const unsigned char *s = lws_token_to_string((enum lws_token_indexes)t);
        if (s && strncasecmp((const char *)s, name, len) == 0 && s[len] == ':') {
            if (lws_hdr_total_length(wsi, (enum lws_token_indexes)t) <= 0)
                return MT_DECLINED;
            int n = lws_hdr_copy(wsi, out, cap, (enum lws_token_indexes)t);
            return n < 0 ? MT_ERROR : n;
        }
    }
    char key[132];
    memcpy(key, name, len);
    key[len] = ':';
    key[len + 1] = '\0';
    if (lws_hdr_custom_length(wsi, key, (int)len + 1) <= 0)
        return MT_DECLINED;
    int n = lws_hdr_custom_copy(wsi, out, cap, key, (int)len + 1);
    return n < 0 ? MT_ERROR : n;
}

/* The fields of a connection Lua reads on demand (moontide.CORE_FIELDS). */
int mt_ffi_conn_field(uint64_t conn, int field, char *buf, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    mt_conn_t *c = mt_conn_get(&rt->conns, conn);
    if (!c)
        return MT_DECLINED;
    if (!buf)
        return MT_ERROR;
    char text[512];
    int n = mt_conn_field(c, field, text, sizeof text);
    if (n < 0)
        return MT_ERROR;
    if ((size_t)n > len)
        n = (int)len;
    memcpy(buf, text, (size_t)n);
    return n;
}

int mt_ffi_group_add(const char *name, size_t len, uint64_t conn)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!valid_group(name, len))
        return MT_ERROR;
    mt_conn_t *c = live_conn(rt, conn);
    if (!c)
        return MT_DECLINED;
    mt_channel_join(&rt->channel, name, len, c);
    return MT_OK;
}

int mt_ffi_group_discard(const char *name, size_t len, uint64_t conn)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!valid_group(name, len))
        return MT_ERROR;
    mt_conn_t *c = mt_conn_get(&rt->conns, conn);
    if (!c || mt_channel_leave(&rt->channel, name, len, c) < 0)
        return MT_DECLINED;
    return MT_OK;
}

int mt_ffi_group_send(const char *name, size_t len, const char *data, size_t dlen, int binary)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!valid_group(name, len) || !data)
        return MT_ERROR;
    mt_frame_t *f = mt_frame_new(data, dlen, binary);
    rt->stats.messages[MT_MSG_BROADCAST]++;
    size_t n = mt_channel_group_send(&rt->channel, name, len, f);
    mt_frame_unref(f);
    return (int)(n > (size_t)INT32_MAX ? INT32_MAX : n);
}

int mt_ffi_group_size(const char *name, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!valid_group(name, len))
        return MT_ERROR;
    mt_group_t *g = mt_groups_find(&rt->groups, name, len);
    return g ? (int)g->n : 0;
}

int mt_ffi_log_threshold(void)
{
    return mt_runtime_current()->log.threshold; /* a read: no guard needed */
}

void mt_ffi_log_write(int level, const char *logger, size_t llen, const char *msg, size_t mlen,
                      uint64_t conn, const char *fields, size_t flen)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    char name[128];
    if (llen >= sizeof name)
        llen = sizeof name - 1;
    memcpy(name, logger ? logger : "", logger ? llen : 0);
    name[logger ? llen : 0] = '\0';
    mt_buf_t *b = mt_log_begin(&rt->log, level, name, msg ? msg : "", msg ? mlen : 0);
    if (!b)
        return;
    mt_conn_t *c = conn ? mt_conn_get(&rt->conns, conn) : NULL;
    if (c)
        mt_conn_log_fields(c, b);
    /* fields is a JSON object encoded by Lua: splice its members in. */
    if (fields && flen > 2 && fields[0] == '{' && fields[flen - 1] == '}') {
        mt_buf_addc(b, ',');
        mt_buf_add_utf8(b, fields + 1, flen - 2);
    }
    mt_log_end(&rt->log);
}

int mt_ffi_count_error(const char *type, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    int t = type ? mt_error_type_parse(type, len) : -1;
    if (t < 0)
        return MT_ERROR;
    rt->stats.errors[t]++;
    return MT_OK;
}

int mt_ffi_count_message(const char *type, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    int t = type ? mt_message_type_parse(type, len) : -1;
    if (t < 0)
        return MT_ERROR;
    rt->stats.messages[t]++;
    return MT_OK;
}

double mt_ffi_time_now(void)
{
    return mt_now();
}

double mt_ffi_time_monotonic(void)
{
    return mt_mono();
}

double mt_ffi_timer_start(double delay, double repeat)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    return (double)mt_timers_start(&rt->timers, delay, repeat);
}

int mt_ffi_timer_stop(uint64_t timer)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    return mt_timers_stop(&rt->timers, timer);
}

/* Splits a NUL-separated list into at most max pointers/lengths. */
static int split(const char *s, size_t len, const char **items, size_t *lens, int max)
{
    int n = 0;
    size_t start = 0;
    if (len == 0)
        return 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '\0') {
            if (n == max)
                return -1;
            items[n] = s + start;
            lens[n++] = i - start;
            start = i + 1;
        }
    }
    return n;
}

int mt_ffi_metric_define(int type, const char *name, size_t nlen, const char *help, size_t hlen,
                         const char *labels, size_t llen, const double *bounds, int nbounds,
                         mt_family_t **out, char *err, size_t errlen)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (type < MT_METRIC_COUNTER || type > MT_METRIC_HISTOGRAM || !name || !help || !out) {
        snprintf(err, errlen, "bad metric type or arguments");
        return MT_ERROR;
    }
    const char *items[17];
    size_t lens[17];
    int n = split(labels, llen, items, lens, 16);
    if (n < 0) {
        snprintf(err, errlen, "metric %.*s: at most 16 labels", (int)(nlen > 80 ? 80 : nlen),
                 name);
        return MT_ERROR;
    }
    char *copies[16];
    for (int i = 0; i < n; i++)
        copies[i] = mt_xstrndup(items[i], lens[i]);
    char *cname = mt_xstrndup(name, nlen), *chelp = mt_xstrndup(help, hlen);
    int rc = mt_metrics_family(&rt->metrics, (mt_metric_type_t)type, cname, chelp,
                               (const char *const *)copies, n, nbounds > 0 ? bounds : NULL,
                               nbounds, out, err, errlen);
    for (int i = 0; i < n; i++)
        free(copies[i]);
    free(cname);
    free(chelp);
    return rc == 0 ? MT_OK : MT_ERROR;
}

int mt_ffi_metric_series(mt_family_t *family, const char *values, size_t vlen, mt_series_t **out)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    const char *items[17];
    size_t lens[17];
    if (!family || !out)
        return MT_ERROR;
    int n = 0;
    if (family->nlabels == 1 && vlen == 0) {
        items[0] = ""; /* one empty value: split() would see no values */
        lens[0] = 0;
        n = 1;
    } else if (family->nlabels) {
        n = split(values, vlen, items, lens, 16);
    }
    if (n != family->nlabels)
        return MT_ERROR;
    *out = mt_metrics_series(&rt->metrics, family, items, lens);
    return MT_OK;
}

int mt_ffi_series_add(mt_series_t *s, double v)
{
    if (s->family->type == MT_METRIC_COUNTER && !(v >= 0))
        return MT_ERROR; /* counters only go up (NaN refused too) */
    s->value += v;
    return MT_OK;
}

void mt_ffi_series_set(mt_series_t *s, double v)
{
    s->value = v;
}

void mt_ffi_series_observe(mt_series_t *s, double v)
{
    mt_metric_observe(s, v);
}

double mt_ffi_series_get(const mt_series_t *s)
{
    return s->value;
}

int mt_ffi_redis_command(int argc, const char **argv, const size_t *argvlen, double *out_id)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (argc < 1 || argc > 1024 || !argv || !argvlen)
        return MT_ERROR;
    if (!rt->channel.redis)
        return MT_DECLINED;
    /* out_id NULL: nobody waits for the reply, which Lua then never sees. */
    uint64_t id = out_id ? ++rt->redis_requests : 0;
    if (mt_redis_send_command(&rt->redis, argc, argv, argvlen, id) != 0) {
        rt->stats.errors[MT_ERR_REDIS_UNAVAILABLE]++;
        return MT_AGAIN;
    }
    if (out_id)
        *out_id = (double)id;
    return MT_OK;
}

int mt_ffi_redis_sync(const char *group, size_t len, double *out_id)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!out_id || !group)
        return MT_ERROR;
    if (!rt->channel.redis)
        return MT_DECLINED;
    uint64_t id = ++rt->redis_requests;
    if (mt_redis_sync(&rt->redis, id, group, len) != 0)
        return MT_AGAIN;
    *out_id = (double)id;
    return MT_OK;
}

int mt_ffi_redis_state(void)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    return !rt->channel.redis ? 0 : mt_redis_up(&rt->redis) ? 2 : 1;
}

int mt_ffi_metric_read(const char *name, size_t nlen, const char *match, size_t mlen, int what,
                       double le, double *out)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    const char *items[17];
    size_t lens[17];
    if (!name || !out || what < MT_READ_VALUE || what > MT_READ_BUCKET)
        return MT_ERROR;
    int n = split(match, mlen, items, lens, 16);
    if (n < 0)
        return MT_ERROR;
    mt_buf_t pairs[16];
    const char *rendered[16];
    for (int i = 0; i < n; i++) {
        const char *eq = memchr(items[i], '=', lens[i]);
        pairs[i] = (mt_buf_t)MT_BUF_INIT;
        if (eq)
            mt_metrics_label_pair(&pairs[i], items[i], (size_t)(eq - items[i]), eq + 1,
                                  lens[i] - (size_t)(eq - items[i]) - 1);
        rendered[i] = mt_buf_cstr(&pairs[i]);
    }
    /* The registry as the last collection left it (the sweep collects
     * once a second, before the in-process alerts read): collecting here
     * would read the Lua state from inside an FFI call. */
    char *cname = mt_xstrndup(name, nlen);
    *out = mt_metrics_sum(rt->metrics_view ? rt->metrics_view : &rt->metrics, cname, rendered, n,
                          what, le);
    free(cname);
    for (int i = 0; i < n; i++)
        mt_buf_free(&pairs[i]);
    return isnan(*out) ? MT_DECLINED : MT_OK;
}

int mt_ffi_metric_bounds(const char *name, size_t nlen, double *out, int max)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    char *cname = mt_xstrndup(name, nlen);
    const mt_family_t *f =
        mt_metrics_find(rt->metrics_view ? rt->metrics_view : &rt->metrics, cname);
    free(cname);
    if (!f || f->type != MT_METRIC_HISTOGRAM)
        return MT_DECLINED;
    int n = f->nbounds < max ? f->nbounds : max;
    memcpy(out, f->bounds, (size_t)n * sizeof *out);
    return n;
}

/* Holding and releasing a connection's frames while it catches up. */
int mt_ffi_conn_hold(uint64_t conn, const char *group, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!group || len == 0 || len > MT_GROUP_NAME_MAX)
        return MT_ERROR;
    mt_conn_t *c = live_conn(rt, conn);
    return c ? mt_conn_hold(&rt->conns, c, group, len) : MT_DECLINED;
}

double mt_ffi_conn_held_first(uint64_t conn)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    mt_conn_t *c = mt_conn_get(&rt->conns, conn);
    return c ? mt_conn_held_first(c) : -1;
}

int mt_ffi_conn_release(uint64_t conn, double after)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    mt_conn_t *c = mt_conn_get(&rt->conns, conn);
    if (!c)
        return MT_DECLINED;
    return (int)mt_conn_release(&rt->conns, c, after);
}

/* This worker's number (1..n), or 0 in a server of one process. */
int mt_ffi_worker_index(void)
{
    mt_runtime_t *rt = mt_runtime_current();
    return rt->worker ? rt->worker->index : 0;
}

int mt_ffi_worker_count(void)
{
    mt_runtime_t *rt = mt_runtime_current();
    return rt->worker ? rt->worker->n : 1;
}

/* A message to another worker's Lua (worker: 1..n); MT_DECLINED when it
 * is down or this is one process. */
int mt_ffi_mesh_send(int worker, const char *data, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!data || worker < 1)
        return MT_ERROR;
    if (!rt->worker || worker > rt->worker->n || worker == rt->worker->index)
        return MT_DECLINED;
    return mt_mesh_send(rt->worker->mesh, worker - 1, MT_MESH_LUA, data, len, NULL, 0) == 0
               ? MT_OK
               : MT_DECLINED;
}

/* 1 when a group send made from now on reaches this instance's members. */
int mt_ffi_group_ready(const char *name, size_t len)
{
    mt_runtime_t *rt = mt_runtime_current();
    MT_FFI_GUARD(rt);
    if (!valid_group(name, len))
        return MT_ERROR;
    return mt_channel_group_ready(&rt->channel, name, len);
}

#pragma GCC visibility pop
