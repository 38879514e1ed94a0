-- Every log line is one JSON object with the promised fields, whatever
-- clients send.
local server = require "spec.support.server"
local client = require "spec.support.client"

describe("structured logs #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ config = { trusted_proxies = { "127.0.0.1" } } })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
    end)

    it("writes only JSON lines with timestamp, level, logger, message and color", function()
        client.http(srv:url("/healthz"), { headers = { ["user-agent"] = 'evil "agent"\\ \1\127' } })
        client.http(srv:url("/%22%0a%7b"))
        local ws = assert(client.ws(srv:ws_url("/ws/chat/logs/")))
        ws:send("not json \"\\")
        ws:receive()
        ws:close()
        srv:wait_log(function(l) return l.message == "WebSocket disconnected" end)
        local lines = srv:logs() -- raises on a line that is not JSON
        assert.is_true(#lines >= 6)
        for _, l in ipairs(lines) do
            assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", l.timestamp)
            assert.truthy(({ DEBUG = 1, INFO = 1, WARNING = 1, ERROR = 1, CRITICAL = 1 })[l.level])
            assert.is_string(l.logger)
            assert.is_string(l.message)
            assert.equal("blue", l.color)
        end
        local evil = srv:wait_log(function(l) return l.message == "request" and l.path == "/healthz" end)
        assert.equal('evil "agent"\\ \1\127', evil.user_agent)
    end)

    it("writes durations and timestamps to the microsecond, without float noise", function()
        local ws = assert(client.ws(srv:ws_url("/ws/chat/timing/")))
        ws:close()
        client.http(srv:url("/healthz"))
        srv:wait_log(function(l) return l.message == "WebSocket disconnected" end)
        local raw = srv:log_text()
        local seen = 0
        for key, value in raw:gmatch('"([%w_]*duration[%w_]*)":([%d%.e%-]+)') do
            seen = seen + 1
            assert.matches("^%d+%.?%d?%d?%d?%d?%d?%d?$", value, key .. " = " .. value)
        end
        for key, value in raw:gmatch('"([%w_]*_seconds)":([%d%.e%-]+)') do
            seen = seen + 1
            assert.matches("^%d+%.?%d?%d?%d?%d?%d?%d?$", value, key .. " = " .. value)
        end
        assert.is_true(seen >= 3)
        local health = client.http(srv:url("/healthz")).body
        assert.matches('"timestamp":%d+%.?%d?%d?%d?%d?%d?%d?[,}]', health)
    end)

    it("gives connection lines the connection's identity", function()
        local ws = assert(client.ws(srv:ws_url("/ws/chat/ids/"), {
            ["x-request-id"] = "req-ws-1", ["user-agent"] = "spec-agent/1.0",
        }))
        ws:close()
        local open = srv:wait_log(function(l)
            return l.message == "WebSocket connected" and l.request_id == "req-ws-1"
        end)
        assert.equal("INFO", open.level)
        assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", open.connection_id)
        assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", open.session_uuid)
        assert.equal("127.0.0.1", open.remote_addr)
        assert.equal("spec-agent/1.0", open.user_agent)
        assert.equal("/ws/chat/ids/", open.path)
        local close = srv:wait_log(function(l)
            return l.message == "WebSocket disconnected" and l.connection_id == open.connection_id
        end)
        assert.equal(1000, close.code)
        assert.equal("client", close.initiator)
        assert.equal("req-ws-1", close.request_id)
    end)

    it("takes the client address from X-Forwarded-For only from a trusted proxy", function()
        client.http(srv:url("/healthz"), { headers = {
            ["x-forwarded-for"] = "198.51.100.7, 127.0.0.1", ["x-request-id"] = "xff-1",
        } })
        local line = srv:wait_log(function(l) return l.request_id == "xff-1" end)
        assert.equal("198.51.100.7", line.remote_addr)
    end)
end)

describe("X-Forwarded-For from an untrusted peer #integration", function()
    it("is ignored", function()
        local srv = server.start({ config = { trusted_proxies = { "10.0.0.0/8" } } })
        client.http(srv:url("/healthz"), { headers = {
            ["x-forwarded-for"] = "198.51.100.7", ["x-request-id"] = "xff-2",
        } })
        local line = srv:wait_log(function(l) return l.request_id == "xff-2" end)
        assert.equal("127.0.0.1", line.remote_addr)
        assert.equal(0, srv:stop())
    end)
end)
