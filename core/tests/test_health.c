/* test_health.c - readiness on an assembled runtime: the facts gathered,
 * the policy's decision and the built-in rules it falls back to, and the
 * moontide_ready gauge that keeps the last answer.
 *
 * Usage: test_health LUA_DIR */
#include "check.h"
#include "fixture.h"

#include <lauxlib.h>
#include <math.h>

static mt_runtime_t rt;

static void settings(mt_config_t *cfg)
{
    cfg->max_connections = 2;
}

static double ready_gauge(void)
{
    return mt_metrics_sum(&rt.metrics, "moontide_ready", NULL, 0, MT_READ_VALUE, 0);
}

/* mt_buf_t holds bytes, not a C string. */
static int buf_has(const mt_buf_t *b, const char *needle)
{
    return memmem(b->data, b->len, needle, strlen(needle)) != NULL;
}

static const char *body(mt_buf_t *b)
{
    mt_buf_addc(b, '\0');
    return b->data;
}

int main(int argc, char **argv)
{
    int rc = fixture_main(&rt, argc, argv, settings);
    if (rc != 0)
        return rc;
    mt_health_t *h = &rt.health;
    mt_script_facts_t f;
    mt_conn_t *a = fixture_open(&rt, "/ws/chat/h/");
    mt_health_facts(h, &f);
    CHECK(!f.draining && f.active_connections == 1 && f.max_connections == 2);
    CHECK_STR(f.channel_layer, "memory");
    CHECK(f.channel_ready && !f.redis_configured && !f.redis_connected);

    CHECK(mt_health_evaluate(h) == 1 && h->ready && ready_gauge() == 1);
    mt_conn_t *b = fixture_open(&rt, "/ws/chat/h/");
    CHECK(mt_health_evaluate(h) == 0 && ready_gauge() == 0); /* at the limit */
    mt_buf_t out = MT_BUF_INIT;
    CHECK(mt_health_readyz(h, &out) == 503);
    CHECK(strstr(body(&out), "connection limit reached") != NULL);
    fixture_close(&rt, b);

    rt.proc.draining = 1;
    mt_buf_reset(&out);
    CHECK(mt_health_readyz(h, &out) == 503);
    CHECK(strstr(body(&out), "\"reasons\":[\"draining\"]") != NULL);
    rt.proc.draining = 0;

    /* A policy that fails: the built-in rules decide, and say so in the log. */
    CHECK(luaL_dostring(rt.script.L, "package.loaded['policies.health'].readiness = "
                                     "function() error('policy broke') end") == 0);
    CHECK(mt_health_evaluate(h) == 1);
    CHECK(buf_has(&h->checks, "\"channel_layer\":\"ok\""));
    CHECK(!buf_has(&h->checks, "\"redis\"")); /* the policy's own check */
    CHECK(fixture_logged("policy broke"));

    /* The gauge keeps the last decision: reads never decide. */
    rt.proc.draining = 1;
    CHECK(ready_gauge() == 1);
    CHECK(mt_health_evaluate(h) == 0 && ready_gauge() == 0);
    rt.proc.draining = 0;

    mt_buf_reset(&out);
    mt_health_healthz(h, &out);
    CHECK(strstr(body(&out), "\"status\":\"healthy\"") != NULL);
    mt_buf_free(&out);
    fixture_close(&rt, a);
    mt_runtime_free(&rt);
    return CHECK_DONE();
}
