/* test_ws.c - the WebSocket edge's socket-free parts on an assembled
 * runtime: reassembly and the size limit, dispatch, binary refusal, the
 * rate limit, a runaway handler's close, heartbeats and drain steps.
 *
 * Usage: test_ws LUA_DIR */
#include "check.h"
#include "fixture.h"

#include <lauxlib.h>

static mt_runtime_t rt;

static void settings(mt_config_t *cfg)
{
    cfg->max_message_bytes = 64;
    cfg->rate_limit = 2;
    cfg->rate_limit_burst = 3;
    cfg->heartbeat_interval = 5;
    cfg->heartbeat_timeout = 2;
    cfg->drain_batch_size = 2;
    cfg->drain_close_code = 1012;
    cfg->handler_timeout = 0.05;
}

static void receive(mt_conn_t *c, const char *text, int final, size_t remaining)
{
    mt_ws_receive(&rt.ws, c, text, strlen(text), final, remaining, 0);
}

static void test_messages(void)
{
    mt_conn_t *c = fixture_open(&rt, "/ws/chat/a/");
    CHECK(c != NULL);
    uint64_t received = rt.stats.messages[MT_MSG_RECEIVED];
    receive(c, "{\"type\":\"heart", 0, 0);
    receive(c, "beat\"}", 1, 0); /* reassembled: one message */
    CHECK(rt.stats.messages[MT_MSG_RECEIVED] == received + 1);
    CHECK(c->q.len == 1);
    CHECK_STR(fixture_frame(c, 0), "{\"type\":\"heartbeat_ack\"}");
    CHECK(c->rx.len == 0);

    /* Too large, known from the frame header before it all arrives: the
     * rest is dropped unread and the connection closed with 1009. */
    receive(c, "{\"type\":\"message\",\"text\":\"", 0, 100);
    CHECK(c->closing && c->close_code == 1009 && c->rx_discard);
    CHECK(rt.stats.errors[MT_ERR_MESSAGE_TOO_LARGE] == 1);
    CHECK(fixture_logged("message too large: closing"));
    receive(c, "rest", 1, 0);
    CHECK(!c->rx_discard && rt.stats.messages[MT_MSG_RECEIVED] == received + 1);
    fixture_close(&rt, c);

    /* Binary on a route that takes none: 1003. */
    c = fixture_open(&rt, "/ws/chat/a/");
    c->binary_ok = 0;
    mt_ws_receive(&rt.ws, c, "\x01", 1, 1, 0, 1);
    CHECK(c->closing && c->close_code == 1003);
    fixture_close(&rt, c);
}

static void test_rate_limit(void)
{
    mt_conn_t *c = fixture_open(&rt, "/ws/chat/b/");
    for (int i = 0; i < 4; i++)
        receive(c, "{\"type\":\"heartbeat\"}", 1, 0);
    /* A burst of 3, then the fourth is answered with an error frame. */
    CHECK(c->q.len == 4);
    CHECK_STR(fixture_frame(c, 3), "{\"type\":\"error\",\"error\":\"rate_limited\"}");
    CHECK(rt.stats.errors[MT_ERR_RATE_LIMITED] == 1);
    CHECK(!c->closing);
    fixture_close(&rt, c);
}

static void test_runaway(void)
{
    /* A handler that never returns is stopped by its budget, and its
     * connection closed with 1011; others go on. */
    CHECK(luaL_dostring(rt.script.L, "local spin = function() while true do end end\n"
                                     "jit.off(spin)\n" /* as the host loads handlers */
                                     "package.loaded['handlers.chat'].on_message = spin") == 0);
    mt_conn_t *c = fixture_open(&rt, "/ws/chat/c/");
    receive(c, "{}", 1, 0);
    CHECK(c->closing && c->close_code == 1011);
    CHECK_STR(c->close_reason, "handler exceeded its budget");
    fixture_close(&rt, c);
    CHECK(mt_runtime_reload(&rt, "test", NULL, 0) == 0); /* the real handler back */
}

static void test_heartbeats(void)
{
    mt_conn_t *quiet = fixture_open(&rt, "/ws/chat/d/");
    mt_conn_t *gone = fixture_open(&rt, "/ws/chat/d/");
    double now = mt_mono();
    quiet->last_seen = now - 6; /* past heartbeat_interval: pinged */
    gone->last_seen = now - 10;
    gone->ping_sent = now - 3; /* past heartbeat_timeout: closed at once */
    mt_ws_sweep(&rt.ws);
    CHECK(quiet->ping_due && quiet->ping_sent > 0 && !quiet->closing);
    CHECK(gone->closing && gone->kill_due && gone->close_code == 1001);
    CHECK(rt.stats.errors[MT_ERR_HEARTBEAT_TIMEOUT] == 1);
    /* A frame from the peer counts as life. */
    receive(quiet, "{\"type\":\"heartbeat\"}", 1, 0);
    CHECK(quiet->ping_sent == 0);
    fixture_close(&rt, quiet);
    fixture_close(&rt, gone);
}

static void test_drain(void)
{
    mt_conn_t *c[5];
    for (int i = 0; i < 5; i++)
        c[i] = fixture_open(&rt, "/ws/chat/e/");
    CHECK(mt_ws_drain_step(&rt.ws) == 3); /* batches of 2 */
    CHECK(mt_ws_drain_step(&rt.ws) == 1);
    CHECK(mt_ws_drain_step(&rt.ws) == 0);
    for (int i = 0; i < 5; i++) {
        CHECK(c[i]->closing && c[i]->close_code == 1012);
        CHECK(c[i]->close_reason && strncmp(c[i]->close_reason, "{\"reconnect_after_ms\":", 22) == 0);
        fixture_close(&rt, c[i]);
    }
    CHECK(mt_conns_count(&rt.conns) == 0);
}

int main(int argc, char **argv)
{
    int rc = fixture_main(&rt, argc, argv, settings);
    if (rc != 0)
        return rc;
    test_messages();
    test_rate_limit();
    test_runaway();
    test_heartbeats();
    test_drain();
    mt_runtime_free(&rt);
    return CHECK_DONE();
}
