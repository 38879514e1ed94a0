/* conn.c - connection objects. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

void mt_conns_init(mt_conns_t *cs, size_t max_queue_bytes, int drop_oldest, mt_stats_t *stats,
                   const mt_conn_hooks_t *hooks)
{
    cs->max_queue_bytes = max_queue_bytes;
    cs->drop_oldest = drop_oldest;
    cs->stats = stats;
    cs->hooks = *hooks;
}

void mt_conns_free(mt_conns_t *cs)
{
    mt_handles_free(&cs->handles);
}

mt_conn_t *mt_conn_new(mt_conns_t *cs)
{
    mt_conn_t *c = mt_xcalloc(1, sizeof *c);
    c->fd = -1;
    c->id = mt_handles_put(&cs->handles, c);
    return c;
}

/* The drop_oldest policy: make room by dropping the oldest queued frames.
 * Returns 1 when f now fits, 0 when it is larger than the whole bound. */
static int drop_oldest(mt_conns_t *cs, mt_conn_t *c, const mt_frame_t *f)
{
    if (f->len > cs->max_queue_bytes)
        return 0;
    uint32_t dropped = 0;
    while (c->q.len && c->q.bytes + f->len > cs->max_queue_bytes) {
        mt_sendq_pop(&c->q);
        dropped++;
    }
    cs->stats->errors[MT_ERR_SEND_QUEUE_OVERFLOW]++;
    cs->stats->send_queue_dropped_frames += dropped;
    return 1;
}

static void hold_free(mt_hold_t *h)
{
    mt_sendq_clear(&h->q);
    free(h);
}

void mt_conn_deliver(mt_conns_t *cs, mt_conn_t *c, mt_frame_t *f, const char *group, size_t len)
{
    mt_hold_t *h = c->held;
    if (!h || h->len != len || memcmp(h->group, group, len) != 0) {
        mt_conn_enqueue(cs, c, f);
        return;
    }
    if (c->closing || c->closed || c->peer_closed)
        return;
    /* Held: the bound applies to both queues together. */
    if (c->q.bytes + h->q.bytes + f->len > cs->max_queue_bytes) {
        cs->stats->errors[MT_ERR_SEND_QUEUE_OVERFLOW]++;
        cs->stats->send_queue_dropped_frames += h->q.len + 1;
        cs->hooks.overflow(cs->hooks.ud, c, c->q.bytes + h->q.bytes, h->q.len);
        mt_conn_close(cs, c, 1013 /* try again later */, "send queue overflow", 19, 1);
        return;
    }
    mt_sendq_push(&h->q, f);
}

void mt_conn_enqueue(mt_conns_t *cs, mt_conn_t *c, mt_frame_t *f)
{
    if (c->closing || c->closed || c->peer_closed)
        return;
    if (c->q.bytes + f->len > cs->max_queue_bytes && !(cs->drop_oldest && drop_oldest(cs, c, f))) {
        cs->stats->errors[MT_ERR_SEND_QUEUE_OVERFLOW]++;
        cs->stats->send_queue_dropped_frames += c->q.len + 1;
        cs->hooks.overflow(cs->hooks.ud, c, c->q.bytes, c->q.len);
        mt_conn_close(cs, c, 1013 /* try again later */, "send queue overflow", 19, 1);
        return;
    }
    mt_sendq_push(&c->q, f);
    cs->hooks.want_write(cs->hooks.ud, c);
}

int mt_conn_close(mt_conns_t *cs, mt_conn_t *c, int code, const char *reason, size_t len, int now)
{
    if (c->closing || c->closed)
        return MT_DECLINED;
    c->closing = 1;
    c->close_code = (uint16_t)code;
    if (len > MT_CLOSE_REASON_MAX)
        len = MT_CLOSE_REASON_MAX;
    free(c->close_reason);
    c->close_reason = len ? mt_xstrndup(reason, len) : NULL;
    if (now) {
        mt_sendq_clear(&c->q);
        c->kill_due = 1;
    }
    cs->hooks.want_write(cs->hooks.ud, c);
    return MT_OK;
}

int mt_conn_hold(mt_conns_t *cs, mt_conn_t *c, const char *group, size_t len)
{
    (void)cs;
    if (c->closing || c->closed || c->held)
        return MT_DECLINED;
    mt_hold_t *h = mt_xcalloc(1, sizeof *h + len + 1);
    memcpy(h->group, group, len);
    h->len = len;
    c->held = h;
    return MT_OK;
}

double mt_frame_offset(mt_frame_t *f)
{
    static const char key[] = "\"offset\":";
    const size_t klen = sizeof key - 1;
    const char *p = (const char *)mt_frame_payload(f);
    if (f->len < klen + 1)
        return -1;
    /* Appended last by the stream that numbered it: look from the end. */
    for (size_t i = f->len - klen + 1; i-- > 0;)
        if (p[i] == '"' && memcmp(p + i, key, klen) == 0) {
            char num[24];
            size_t n = 0, at = i + klen;
            while (at < f->len && n < sizeof num - 1 && p[at] >= '0' && p[at] <= '9')
                num[n++] = p[at++];
            num[n] = '\0';
            return n ? strtod(num, NULL) : -1;
        }
    return -1;
}

double mt_conn_held_first(const mt_conn_t *c)
{
    if (!c->held)
        return -1;
    const mt_sendq_t *q = &c->held->q;
    for (uint32_t i = 0; i < q->len; i++) {
        double off = mt_frame_offset(q->items[(q->head + i) % q->cap]);
        if (off >= 0)
            return off;
    }
    return -1;
}

uint32_t mt_conn_release(mt_conns_t *cs, mt_conn_t *c, double after)
{
    mt_hold_t *h = c->held;
    if (!h)
        return 0;
    c->held = NULL;
    uint32_t passed = 0;
    while (h->q.len) {
        mt_frame_t *f = mt_sendq_peek(&h->q);
        double off = mt_frame_offset(f);
        if (off < 0 || off > after) {
            mt_conn_enqueue(cs, c, f);
            passed++;
        }
        mt_sendq_pop(&h->q);
    }
    hold_free(h);
    return passed;
}

void mt_conn_free(mt_conns_t *cs, mt_conn_t *c)
{
    if (!c)
        return;
    mt_handles_del(&cs->handles, c->id);
    if (c->held)
        hold_free(c->held);
    mt_sendq_clear(&c->q);
    mt_buf_free(&c->rx);
    mt_wsframe_free(&c->scan);
    if (c->groups != &c->group0)
        free(c->groups);
    free(c->close_reason);
    free(c->request_id);
    free(c->user_agent);
    free(c->user_id);
    free(c);
}

int mt_conn_field(const mt_conn_t *c, int f, char *out, size_t len)
{
    char text[MT_ADDR_MAX > MT_UUID_LEN + 1 ? MT_ADDR_MAX : MT_UUID_LEN + 1];
    const char *v = text;
    switch (f) {
    case MT_CONN_ID:
        mt_uuid_format(&c->connection_id, text);
        break;
    case MT_CONN_SESSION_UUID:
        mt_uuid_format(&c->session_uuid, text);
        break;
    case MT_CONN_REQUEST_ID:
        if (c->request_id)
            v = c->request_id;
        else
            mt_uuid_format(&c->connection_id, text);
        break;
    case MT_CONN_REMOTE_ADDR:
        mt_addr_format(&c->remote_addr, text);
        break;
    case MT_CONN_USER_AGENT:
        v = c->user_agent ? c->user_agent : "";
        break;
    case MT_CONN_USER_ID:
        v = c->user_id ? c->user_id : "";
        break;
    default:
        return -1;
    }
    size_t n = strlen(v);
    if (len == 0)
        return (int)n;
    if (n >= len)
        n = len - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return (int)n;
}

void mt_conn_log_fields(const mt_conn_t *c, mt_buf_t *b)
{
    static const char *const names[MT_CONN__FIELDS] = {
        "connection_id", "session_uuid", "request_id", "remote_addr", "user_agent", "user_id"};
    char text[512];
    for (int f = 0; f < MT_CONN__FIELDS; f++) {
        if ((f == MT_CONN_USER_AGENT && !c->user_agent) || (f == MT_CONN_USER_ID && !c->user_id))
            continue;
        if (mt_conn_field(c, f, text, sizeof text) > 0)
            mt_json_kv_cstr(b, names[f], text);
    }
}
