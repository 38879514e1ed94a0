-- SIGTERM drains: clients get 1001, the process exits 0.
local server = require "spec.support.server"
local client = require "spec.support.client"
local signal = require "posix.signal"

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

    it("exits 0 at once on SIGINT with no connections", function()
        local srv = server.start()
        srv:kill(signal.SIGINT)
        assert.equal(0, srv:wait_exit(10))
        srv:stop()
    end)
end)
