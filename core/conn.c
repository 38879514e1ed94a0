/* conn.c - connection objects. */
#include "conn.h"

#include <stdlib.h>
#include <string.h>

mt_conn_t *mt_conn_new(mt_handles_t *conns)
{
    mt_conn_t *c = mt_xcalloc(1, sizeof *c);
    c->fd = -1;
    c->id = mt_handles_put(conns, c);
    return c;
}

void mt_conn_free(mt_handles_t *conns, mt_conn_t *c)
{
    if (!c)
        return;
    mt_handles_del(conns, c->id);
    mt_sendq_clear(&c->q);
    mt_buf_free(&c->rx);
    mt_wsframe_free(&c->scan);
    if (c->groups != &c->group0)
        free(c->groups);
    free(c->close_reason);
    free(c->request_id);
    free(c->user_agent);
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
        "connection_id", "session_uuid", "request_id", "remote_addr", "user_agent"};
    char text[512];
    for (int f = 0; f < MT_CONN__FIELDS; f++) {
        if (f == MT_CONN_USER_AGENT && !c->user_agent)
            continue;
        if (mt_conn_field(c, f, text, sizeof text) > 0)
            mt_json_kv_cstr(b, names[f], text);
    }
}
