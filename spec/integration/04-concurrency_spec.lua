-- Many connections at once: every one is served, none is lost.
local server = require "spec.support.server"
local client = require "spec.support.client"

describe("1000 concurrent connections #integration #slow", function()
    local srv
    local N = 1000

    lazy_setup(function()
        srv = server.start({ config = { log_level = "INFO" } })
    end)

    lazy_teardown(function()
        assert.same({}, srv:error_lines())
        assert.equal(0, srv:stop())
    end)

    it("holds 1000 connections, broadcasts to all and answers each", function()
        local conns = {}
        for i = 1, N do
            conns[i] = assert(client.ws(srv:ws_url("/ws/chat/crowd/")))
        end
        local status = client.http(srv:url("/status")).json
        assert.equal(N, status.active_connections)

        conns[1]:send_json({ type = "message", text = "to everyone" })
        for i = 1, N do
            local msg = conns[i]:receive_json()
            assert.equal("to everyone", msg.text)
        end
        -- every connection gets its own answer
        for i = 1, N do
            conns[i]:send_json({ type = "heartbeat" })
        end
        for i = 1, N do
            assert.same({ type = "heartbeat_ack" }, conns[i]:receive_json())
        end
        for i = 1, N do
            conns[i]:close()
        end
        server.eventually(function()
            return client.http(srv:url("/status")).json.active_connections == 0
        end, 10, "all connections to close")
        local opened, closed = 0, 0
        for _, l in ipairs(srv:logs()) do
            if l.message == "WebSocket connected" then
                opened = opened + 1
            elseif l.message == "WebSocket disconnected" then
                closed = closed + 1
            end
        end
        assert.equal(N, opened)
        assert.equal(N, closed)
    end)
end)
