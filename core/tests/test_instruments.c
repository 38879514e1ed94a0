/* test_instruments.c - the core's metrics on an assembled runtime:
 * collection copies the counters and reads cached figures (never the Lua
 * state), at most once per loop turn, and a render is always fresh.
 *
 * Usage: test_instruments LUA_DIR */
#include "check.h"
#include "fixture.h"

static mt_runtime_t rt;

static double value(const char *family, const char *pair)
{
    const char *match[] = {pair};
    return mt_metrics_sum(&rt.metrics, family, pair ? match : NULL, pair ? 1 : 0, MT_READ_VALUE,
                          0);
}

int main(int argc, char **argv)
{
    int rc = fixture_main(&rt, argc, argv, NULL);
    if (rc != 0)
        return rc;
    mt_instruments_t *in = &rt.ins;
    mt_conn_t *c = fixture_open(&rt, "/ws/chat/i/");
    rt.stats.errors[MT_ERR_JSON_DECODE] = 3;
    rt.stats.messages[MT_MSG_SENT] = 7;
    mt_frame_t *f = mt_frame_new("0123456789", 10, 0);
    mt_conn_enqueue(&rt.conns, c, f);
    mt_frame_unref(f);

    mt_instruments_collect(in);
    CHECK(value("websocket_connections_active", NULL) == 1);
    CHECK(value("websocket_errors_total", "error_type=\"json_decode_error\"") == 3);
    CHECK(value("websocket_messages_total", "type=\"sent\"") == 7);
    CHECK(value("moontide_send_queue_bytes", NULL) == 10);
    CHECK(value("moontide_script_generation", NULL) == 1);
    CHECK(value("moontide_channel_layer_up", "kind=\"memory\"") == 1);
    CHECK(value("process_open_fds", NULL) > 0);
    CHECK(value("process_start_time_seconds", NULL) == rt.proc.started_at);
    /* The Lua state's size is the one sampled outside FFI calls. */
    CHECK(rt.script.memory > 0);
    CHECK(value("moontide_lua_memory_bytes", NULL) == (double)rt.script.memory);

    /* Once per loop turn: a second collect in the same turn reads nothing. */
    rt.stats.messages[MT_MSG_SENT] = 8;
    mt_instruments_collect(in);
    CHECK(value("websocket_messages_total", "type=\"sent\"") == 7);
    mt_buf_t out = MT_BUF_INIT;
    mt_instruments_render(in, &out, 0); /* a scrape is always fresh */
    CHECK(value("websocket_messages_total", "type=\"sent\"") == 8);
    mt_buf_addc(&out, '\0');
    CHECK(strstr(out.data, "websocket_messages_total{color=\"blue\",type=\"sent\"} 8") != NULL);
    CHECK(strstr(out.data, "# TYPE http_requests_total counter") != NULL);

    mt_instruments_http(in, "GET", "/healthz", 200, 0.002);
    CHECK(value("http_requests_total", "endpoint=\"/healthz\"") == 1);

    mt_buf_free(&out);
    fixture_close(&rt, c);
    mt_runtime_free(&rt);
    return CHECK_DONE();
}
