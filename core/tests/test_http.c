/* test_http.c - routing of plain HTTP on an assembled runtime: each
 * endpoint's status, body and headers, methods, unknown paths, WebSocket
 * routes asked for without an upgrade, and the admin reload.
 *
 * Usage: test_http LUA_DIR */
#include "check.h"
#include "fixture.h"

static mt_runtime_t rt;

/* Routes one request; returns the response (body NUL-terminated). */
static mt_http_response_t *route(const char *method, const char *path, const char *accept,
                                 int admin)
{
    static mt_http_response_t resp;
    mt_buf_free(&resp.body);
    memset(&resp, 0, sizeof resp);
    mt_http_request_t req = {.method = method, .path = path, .accept = accept, .admin = admin};
    mt_http_route(&rt.http, &req, &resp);
    mt_buf_addc(&resp.body, '\0');
    return &resp;
}

static int has(const mt_http_response_t *r, const char *needle)
{
    return strstr(r->body.data, needle) != NULL;
}

int main(int argc, char **argv)
{
    int rc = fixture_main(&rt, argc, argv, NULL);
    if (rc != 0)
        return rc;
    mt_http_response_t *r = route("GET", "/healthz", NULL, 0);
    CHECK(r->status == 200 && has(r, "\"status\":\"healthy\"") && has(r, "\"color\":\"blue\""));
    CHECK_STR(r->content_type, "application/json");
    CHECK_STR(r->endpoint, "/healthz");

    r = route("HEAD", "/readyz", NULL, 0);
    CHECK(r->status == 200 && has(r, "\"status\":\"ready\""));
    rt.proc.draining = 1;
    r = route("GET", "/readyz", NULL, 0);
    CHECK(r->status == 503 && has(r, "\"reasons\":[\"draining\"]"));
    r = route("GET", "/status", NULL, 0);
    CHECK(r->status == 200 && has(r, "\"status\":\"draining\"") &&
          has(r, "\"channel_layer\":\"memory\"") && has(r, "\"generation\":1"));
    rt.proc.draining = 0;

    r = route("GET", "/metrics", NULL, 0);
    CHECK(r->status == 200 && has(r, "# TYPE websocket_connections_active gauge"));
    CHECK_STR(r->content_type, MT_METRICS_CT_TEXT);
    CHECK(!has(r, "# EOF"));
    r = route("GET", "/metrics", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5", 0);
    CHECK_STR(r->content_type, MT_METRICS_CT_OPENMETRICS);
    CHECK(has(r, "# EOF"));

    r = route("GET", "/alerts", NULL, 0);
    CHECK(r->status == 200 && has(r, "\"alerts\""));

    r = route("POST", "/healthz", NULL, 0);
    CHECK(r->status == 405 && r->allow && has(r, "method_not_allowed"));
    CHECK_STR(r->allow, "GET, HEAD");
    r = route("OTHER", "/metrics", NULL, 0);
    CHECK(r->status == 405);

    r = route("GET", "/ws/chat/lobby/", NULL, 0);
    CHECK(r->status == 426 && has(r, "upgrade_required"));
    CHECK_STR(r->endpoint, "/ws/chat/{room}/");
    r = route("GET", "/nope", NULL, 0);
    CHECK(r->status == 404 && has(r, "not_found"));
    CHECK_STR(r->endpoint, "other");

    r = route("GET", "/admin/reload", NULL, 1);
    CHECK(r->status == 405);
    CHECK_STR(r->allow, "POST");
    r = route("POST", "/admin/reload", NULL, 0);
    CHECK(r->status == 403 && has(r, "forbidden"));
    CHECK(rt.script.generation == 1);
    r = route("POST", "/admin/reload", NULL, 1);
    CHECK(r->status == 200 && has(r, "\"result\":\"success\"") && has(r, "\"generation\":2"));
    CHECK(rt.script.generation == 2 && rt.script.reloads_ok == 1);
    CHECK(fixture_logged("\"trigger\":\"admin\""));

    mt_buf_free(&r->body);
    mt_runtime_free(&rt);
    return CHECK_DONE();
}
