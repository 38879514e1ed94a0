-- A handler that raises is logged with its traceback, counted, and
-- harms nobody else.
local server = require "spec.support.server"
local client = require "spec.support.client"

describe("handler errors #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ files = server.fixture("faulty", "faulty") })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
    end)

    it("logs an error in on_message with file:line and traceback; the connection lives", function()
        local ws = assert(client.ws(srv:ws_url("/ws/faulty/echo/")))
        local chat = assert(client.ws(srv:ws_url("/ws/chat/calm/")))
        ws:send("boom")
        local line = srv:wait_log(function(l) return l.message == "handler error" end)
        assert.equal("ERROR", line.level)
        assert.equal("on_message", line.event)
        assert.matches("handlers/faulty%.lua:%d+: boom: the handler raised", line.error)
        assert.matches("stack traceback", line.traceback)
        assert.matches("in function 'explode'", line.traceback)
        assert.is_string(line.connection_id)
        -- the same connection still works, and so does everyone else
        ws:send("still here")
        assert.equal("still here", ws:receive())
        chat:send_json({ type = "message", text = "unaffected" })
        assert.equal("unaffected", chat:receive_json().text)
        ws:send("nil")
        srv:wait_log(function(l)
            return l.message == "handler error" and l.error:match("attempt to index")
        end)
        ws:close()
        chat:close()
    end)

    it("closes with 1011 when on_open raises", function()
        local ws = assert(client.ws(srv:ws_url("/ws/faulty/open/")))
        assert.equal(1011, ws:expect_close())
        local line = srv:wait_log(function(l)
            return l.message == "handler error" and l.event == "on_open"
        end)
        assert.matches("failing on open as asked", line.error)
    end)

    it("keeps serving HTTP", function()
        assert.equal(200, client.http(srv:url("/healthz")).status)
    end)
end)
