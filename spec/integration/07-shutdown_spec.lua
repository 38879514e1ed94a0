-- SIGTERM drains: clients get 1001, the process exits 0.
local server = require "spec.support.server"
local client = require "spec.support.client"
local signal = require "posix.signal"
local rawws = require "spec.support.rawws"
local redis = require "spec.support.redis"

describe("graceful shutdown #integration", function()
    it("closes every connection with 1001 and exits 0 on SIGTERM", function()
        local srv = server.start()
        local conns = {}
        for i = 1, 20 do
            conns[i] = assert(client.ws(srv:ws_url("/ws/chat/drain/")))
        end
        srv:kill(signal.SIGTERM)
        for i = 1, 20 do
            assert.equal(1001, conns[i]:expect_close())
        end
        assert.equal(0, srv:wait_exit(10))
        local line = srv:wait_log(function(l) return l.message == "shutdown" end)
        assert.equal("drained", line.reason)
        assert.equal(0, line.connections_left)
        assert.is_number(line.shutdown_seconds)
        assert.same({}, srv:error_lines())
        srv:stop()
    end)

    it("handles what a client sent before it saw the drain's close, then closes on its answer", function()
        local r = redis.start()
        local config = { redis_url = r.url, log_level = "INFO" }
        local s1, s2 = server.start({ config = config }), server.start({ config = config })
        finally(function()
            s1:stop()
            s2:stop()
            r:stop()
        end)
        local b = assert(client.ws(s2:ws_url("/ws/chat/crossing/")))
        local a = assert(rawws.connect(s1.port, "/ws/chat/crossing/"))
        server.subscribed(s1, s2)
        s1:kill(signal.SIGTERM)
        local f
        repeat
            f = assert(a:read_frame())
        until f.opcode == 8
        assert.equal(1001, f.payload:byte(1) * 256 + f.payload:byte(2))
        assert.is_number(require("cjson").decode(f.payload:sub(3)).reconnect_after_ms)
        -- sent after the server's close, before ours: it still counts
        a:send(rawws.frame({ opcode = 1, payload = '{"type":"message","text":"crossing"}' }))
        assert.equal("crossing", b:receive_message().text)
        a:send(rawws.frame({ opcode = 8, payload = f.payload:sub(1, 2) }))
        assert.is_true(a:wait_tcp_close(5)) -- our answer ends it: no second close frame
        assert.equal(0, s1:wait_exit(10))
        b:close()
    end)

    it("drops a drained client that never answers the close, after a few seconds", function()
        local srv = server.start()
        local a = assert(rawws.connect(srv.port, "/ws/chat/mute/"))
        server.eventually(function()
            return client.http(srv:url("/status")).json.active_connections == 1
        end, 5, "the connection")
        local t0 = server.now()
        srv:kill(signal.SIGTERM)
        assert.equal(0, srv:wait_exit(10)) -- without an answer from a
        local took = server.now() - t0
        assert.is_true(took < 6, ("took %.1f s"):format(took))
        a:close()
        srv:stop()
    end)

    it("exits 0 at once on SIGINT with no connections", function()
        local srv = server.start()
        srv:kill(signal.SIGINT)
        assert.equal(0, srv:wait_exit(10))
        srv:stop()
    end)
end)
