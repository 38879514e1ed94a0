/* conn.c - connection objects. */
#include "conn.h"

#include <stdlib.h>

mt_conn_t *mt_conn_new(mt_handles_t *conns)
{
    mt_conn_t *c = mt_xcalloc(1, sizeof *c);
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
    free(c->groups);
    free(c->close_reason);
    free(c->user_agent);
    free(c);
}

void mt_conn_log_fields(const mt_conn_t *c, mt_buf_t *b)
{
    mt_json_kv_cstr(b, "connection_id", c->connection_id);
    mt_json_kv_cstr(b, "session_uuid", c->session_uuid);
    if (c->request_id[0])
        mt_json_kv_cstr(b, "request_id", c->request_id);
    if (c->remote_addr[0])
        mt_json_kv_cstr(b, "remote_addr", c->remote_addr);
    if (c->user_agent)
        mt_json_kv_cstr(b, "user_agent", c->user_agent);
}
