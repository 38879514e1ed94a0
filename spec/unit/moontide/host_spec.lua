-- The dispatcher: routes, connection objects, handler errors.
local testing = require "moontide.testing"
local host = require "moontide.host"

describe("moontide.host", function()
    it("matches route patterns with parameters", function()
        testing.new()
        assert.equal("/ws/chat/{room}/", host.match("/ws/chat/lobby/"))
        assert.equal("/ws/chat/{room}/", host.match("/ws/chat/a-b_c.d~e/"))
        assert.is_nil(host.match("/ws/chat/lobby"))
        assert.is_nil(host.match("/ws/chat//"))
        assert.is_nil(host.match("/ws/chat/a/b/"))
        assert.is_nil(host.match("/other"))
    end)

    it("gives the handler its params, request and a state table", function()
        local rt = testing.new()
        local c = rt:connect("/ws/chat/room42/", { remote_addr = "203.0.113.7",
            user_agent = "spec", origin = "https://example.com", query = "a=1" })
        assert.equal("room42", c.conn.params.room)
        assert.equal("203.0.113.7", c.conn.remote_addr)
        assert.equal("a=1", c.conn.query)
        assert.is_table(c.conn.state)
        assert.equal(c.conn, host.connection(c.handle))
    end)

    it("records a handler error without raising, and closes 1011 when on_open fails", function()
        local rt = testing.new()
        local chat = require "handlers.chat"
        local original = chat.on_open
        chat.on_open = function() error("boom in open") end
        local c = rt:connect("/ws/chat/lobby/")
        chat.on_open = original
        assert.equal(1, #rt.errors)
        assert.matches("boom in open", rt.errors[1].error)
        assert.matches("stack traceback", rt.errors[1].error)
        assert.equal(1011, c.close_code)
        assert.is_true(c.closed)
    end)

    it("forgets a connection after on_close", function()
        local rt = testing.new()
        local c = rt:connect("/ws/chat/lobby/")
        c:close(1001, "going")
        assert.is_nil(host.connection(c.handle))
        assert.same({}, rt:members("chat_lobby"))
    end)
end)
