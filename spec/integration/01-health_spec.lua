-- Health endpoints, HTTP errors and request ids against the real binary.
local server = require "spec.support.server"
local client = require "spec.support.client"

describe("health endpoints #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ config = { color = "green", max_connections = 3 } })
    end)

    lazy_teardown(function()
        assert.same({}, srv:error_lines())
        assert.equal(0, srv:stop())
    end)

    it("/healthz answers 200 healthy with color and timestamp", function()
        local before = os.time()
        local res = client.http(srv:url("/healthz"))
        assert.equal(200, res.status)
        assert.equal("application/json", res.headers["content-type"])
        assert.equal("healthy", res.json.status)
        assert.equal("green", res.json.color)
        assert.is_number(res.json.timestamp)
        assert.is_true(res.json.timestamp >= before - 1 and res.json.timestamp <= os.time() + 1)
    end)

    it("/readyz answers 200 ready with active connections and checks", function()
        local res = client.http(srv:url("/readyz"))
        assert.equal(200, res.status)
        assert.equal("ready", res.json.status)
        assert.equal("green", res.json.color)
        assert.equal(0, res.json.active_connections)
        assert.is_number(res.json.timestamp)
        assert.same({ draining = "ok", channel_layer = "ok", connections = "ok", redis = "ok" },
            res.json.checks)
    end)

    it("/readyz answers 503 not_ready with the reason at the connection limit", function()
        local held = {}
        for i = 1, 3 do
            held[i] = assert(client.ws(srv:ws_url("/ws/chat/limit/")))
        end
        local res = client.http(srv:url("/readyz"))
        assert.equal(503, res.status)
        assert.equal("not_ready", res.json.status)
        assert.equal(3, res.json.active_connections)
        assert.same({ "connection limit reached" }, res.json.reasons)
        local refused, err = client.ws(srv:ws_url("/ws/chat/limit/"))
        assert.is_nil(refused)
        assert.matches("101", err)
        for _, ws in ipairs(held) do
            ws:close()
        end
        server.eventually(function()
            return client.http(srv:url("/readyz")).status == 200
        end, 5, "readiness after the connections closed")
    end)

    it("/status reports settings, version, uptime and the script generation", function()
        local res = client.http(srv:url("/status"))
        assert.equal(200, res.status)
        local s = res.json
        assert.equal("running", s.status)
        assert.equal("green", s.color)
        assert.equal(0, s.active_connections)
        assert.equal(30, s.heartbeat_interval)
        assert.equal(10, s.graceful_shutdown_timeout)
        assert.is_number(s.timestamp)
        assert.matches("^%d+%.%d+%.%d+$", s.version)
        assert.is_true(s.uptime >= 0)
        assert.equal(1, s.scripts.generation)
        assert.equal("memory", s.channel_layer)
    end)

    it("answers HEAD with headers only", function()
        local res = client.http(srv:url("/healthz"), { method = "HEAD" })
        assert.equal(200, res.status)
        assert.is_true(tonumber(res.headers["content-length"]) > 0)
    end)

    it("answers unknown paths 404 with a JSON body", function()
        local res = client.http(srv:url("/nope?x=1"))
        assert.equal(404, res.status)
        assert.same({ status = "error", error = "not_found", code = 404 }, res.json)
    end)

    it("answers other methods 405 with Allow", function()
        for _, method in ipairs({ "POST", "PUT", "DELETE" }) do
            local res = client.http(srv:url("/healthz"), { method = method, body = "x=1" })
            assert.equal(405, res.status)
            assert.equal("GET, HEAD", res.headers["allow"])
            assert.equal("method_not_allowed", res.json.error)
        end
    end)

    it("answers 426 to a plain GET on a WebSocket route", function()
        local res = client.http(srv:url("/ws/chat/lobby/"))
        assert.equal(426, res.status)
        assert.equal("upgrade_required", res.json.error)
    end)

    it("gives every status line its reason phrase", function()
        local function status_line(request)
            return (client.raw(srv.port, request)):match("^([^\r]*)\r\n")
        end
        assert.equal("HTTP/1.1 426 Upgrade Required",
            status_line("GET /ws/chat/lobby/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        assert.equal("HTTP/1.1 405 Method Not Allowed",
            status_line("DELETE /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        assert.equal("HTTP/1.1 404 Not Found",
            status_line("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        assert.equal("HTTP/1.1 200 OK",
            status_line("GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
    end)

    it("echoes a sane X-Request-ID and replaces an insane one", function()
        local res = client.http(srv:url("/healthz"), { headers = { ["x-request-id"] = "req-123" } })
        assert.equal("req-123", res.headers["x-request-id"])
        res = client.http(srv:url("/healthz"), { headers = { ["x-request-id"] = "bad id<script>" } })
        assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", res.headers["x-request-id"])
        local line = srv:wait_log(function(l)
            return l.message == "request" and l.request_id == "req-123"
        end)
        assert.equal("GET", line.method)
        assert.equal("/healthz", line.path)
        assert.equal(200, line.status)
        assert.is_number(line.duration)
    end)
end)
