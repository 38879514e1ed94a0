-- /metrics against the real binary: values follow the traffic, the
-- exposition passes promtool, and a real Prometheus scrapes it.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"

describe("metrics #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({
            config = { metrics_max_series_per_family = 50 },
            files = server.fixture("metered", "metered"),
        })
    end)

    lazy_teardown(function()
        assert.same({}, srv:error_lines())
        assert.equal(0, srv:stop())
    end)

    local function scrape(headers)
        local res = client.http(srv:url("/metrics"), { headers = headers })
        assert.equal(200, res.status)
        return res, prom.parse(res.body)
    end

    -- The bucket bounds (le) of a histogram, in order.
    local function bounds(samples, name)
        local les = {}
        for _, x in ipairs(samples) do
            if x.name == name .. "_bucket" then
                les[#les + 1] = x.labels.le
            end
        end
        return les
    end

    it("times messages in buckets from 10 us to 10 s, or in the ones configured", function()
        local _, m = scrape()
        local les = bounds(m, "websocket_message_duration_seconds")
        assert.same({ "1e-05", "2.5e-05", "5e-05", "0.0001" }, { les[1], les[2], les[3], les[4] })
        assert.same({ "10", "+Inf" }, { les[#les - 1], les[#les] })
        local other = server.start({ config = { message_duration_buckets = { 0.001, 0.5 } } })
        local res = client.http(other:url("/metrics"))
        assert.same({ "0.001", "0.5", "+Inf" },
            bounds(prom.parse(res.body), "websocket_message_duration_seconds"))
        assert.equal(0, other:stop())
    end)

    it("counts a known sequence of connections, messages, errors and requests", function()
        local _, before = scrape()
        local base = {
            conns = prom.value(before, "websocket_connections_total", { color = "blue" }),
            received = prom.value(before, "websocket_messages_total", { type = "received" }),
            count = prom.value(before, "websocket_message_duration_seconds_count"),
        }
        local a = assert(client.ws(srv:ws_url("/ws/chat/m/")))
        local b = assert(client.ws(srv:ws_url("/ws/chat/m/")))
        a:send_json({ type = "message", text = "one" })
        a:receive_json()
        b:receive_json()
        a:send_json({ type = "heartbeat" })
        a:receive_json()
        b:send("{bad json")
        b:receive_json()
        for _ = 1, 3 do
            client.http(srv:url("/healthz"))
        end
        client.http(srv:url("/no/such/path"))
        client.http(srv:url("/another/random/path"))

        local _, m = scrape()
        assert.equal(base.conns + 2, prom.value(m, "websocket_connections_total"))
        assert.equal(2, prom.value(m, "websocket_connections_active"))
        assert.equal(base.received + 3, prom.value(m, "websocket_messages_total", { type = "received" }))
        assert.equal(1, prom.value(m, "websocket_messages_total", { type = "heartbeat" }))
        assert.equal(1, prom.value(m, "websocket_messages_total", { type = "broadcast" }))
        -- one broadcast to two members, one ack, one error reply
        assert.equal(4, prom.value(m, "websocket_messages_total", { type = "sent" }))
        assert.equal(1, prom.value(m, "websocket_errors_total", { error_type = "json_decode_error" }))
        assert.equal(0, prom.value(m, "websocket_errors_total", { error_type = "handler_error" }))
        assert.equal(base.count + 3, prom.value(m, "websocket_message_duration_seconds_count"))
        assert.equal(base.count + 3, prom.value(m, "websocket_message_duration_seconds_bucket",
            { le = "+Inf" }))
        assert.equal(3, prom.value(m, "http_requests_total",
            { method = "GET", endpoint = "/healthz", status = "200" }))
        -- unknown paths share one series, whatever the path
        assert.equal(2, prom.value(m, "http_requests_total",
            { method = "GET", endpoint = "other", status = "404" }))
        assert.equal(3, prom.value(m, "http_request_duration_seconds_count",
            { method = "GET", endpoint = "/healthz" }))
        assert.is_true(prom.value(m, "app_startup_time_seconds") > 0)
        for _, s in ipairs(m) do
            assert.equal("blue", s.labels.color, s.name .. " lacks color")
        end

        a:close()
        b:close()
        server.eventually(function()
            local _, after = scrape()
            return prom.value(after, "websocket_connections_active") == 0
        end, 5, "the active gauge back to 0")
    end)

    it("passes promtool check metrics", function()
        local res = scrape()
        assert.equal("text/plain; version=0.0.4; charset=utf-8", res.headers["content-type"])
        local ok, out = prom.check(res.body)
        assert.is_true(ok, out)
        assert.equal("", out)
    end)

    it("exports process and runtime metrics", function()
        local _, m = scrape()
        assert.is_true(prom.value(m, "process_resident_memory_bytes") > 1e6)
        assert.is_true(prom.value(m, "process_open_fds") > 0)
        assert.is_true(prom.value(m, "process_max_fds") >= prom.value(m, "process_open_fds"))
        assert.is_true(prom.value(m, "process_start_time_seconds") > 1.6e9)
        assert.is_true(prom.value(m, "process_cpu_seconds_total") >= 0)
        assert.is_true(prom.value(m, "moontide_lua_memory_bytes") > 0)
        assert.equal(1, prom.value(m, "moontide_script_generation"))
        assert.equal(1, prom.value(m, "moontide_channel_layer_up", { kind = "memory" }))
        assert.equal(0, prom.value(m, "moontide_script_reloads_total", { result = "failure" }))
        assert.is_number(prom.value(m, "moontide_event_loop_lag_seconds"))
        assert.is_number(prom.value(m, "moontide_metrics_render_seconds"))
    end)

    it("serves OpenMetrics when the scraper asks for it", function()
        local res = scrape({ accept = "application/openmetrics-text; version=1.0.0" })
        assert.matches("^application/openmetrics%-text", res.headers["content-type"])
        assert.matches("# EOF\n$", res.body)
        assert.matches("# TYPE websocket_connections counter\n", res.body)
        assert.matches("\nwebsocket_connections_total{color=\"blue\"} %d+\n", res.body)
    end)

    it("exports metrics defined by handlers, keeping the series budget", function()
        local ws = assert(client.ws(srv:ws_url("/ws/metered/")))
        ws:send("alpha")
        ws:receive()
        ws:send("alpha")
        ws:receive()
        ws:send("beta")
        ws:receive()
        ws:send("series 80") -- the family may hold 50
        ws:receive()
        local res, m = scrape()
        assert.equal(2, prom.value(m, "metered_messages_total", { kind = "alpha" }))
        assert.equal(1, prom.value(m, "metered_messages_total", { kind = "beta" }))
        assert.equal(3, prom.value(m, "metered_message_bytes_count"))
        assert.equal(3, prom.value(m, "metered_message_bytes_bucket", { le = "10" }))
        local many = 0
        for _, s in ipairs(m) do
            if s.name == "metered_many" then
                many = many + 1
            end
        end
        assert.equal(50, many)
        assert.equal(30, prom.value(m, "moontide_metrics_series_dropped_total"))
        assert.is_true(prom.check(res.body))
        ws:close()
    end)
end)

describe("a real Prometheus server #integration #slow", function()
    it("scrapes the instance and returns the seed's series with their labels", function()
        local srv = server.start({ config = { color = "green" } })
        local ws = assert(client.ws(srv:ws_url("/ws/chat/p/")))
        ws:send_json({ type = "heartbeat" })
        ws:receive_json()
        local p = prom.server({ targets = { "127.0.0.1:" .. srv.port } })
        local result = server.eventually(function()
            local r = p:query('websocket_messages_total{type="heartbeat"}')
            return r and r[1] and r
        end, 60, "Prometheus to scrape the instance")
        assert.equal("green", result[1].metric.color)
        assert.equal("moontide", result[1].metric.job)
        assert.equal("1", result[1].value[2])
        local up = p:query("up")
        assert.equal("1", up[1].value[2])
        local active = p:query("websocket_connections_active")
        assert.equal("green", active[1].metric.color)
        p:stop()
        ws:close()
        assert.equal(0, srv:stop())
    end)
end)
