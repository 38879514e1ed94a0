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

    it("chooses a subprotocol the route accepts, in the client's order", function()
        package.preload.routes = function()
            return {
                { path = "/ws/v/{room}/", handler = "handlers.chat",
                  protocols = { "chat.v2", "chat.v1" } },
                { path = "/ws/plain/{room}/", handler = "handlers.chat" },
            }
        end
        finally(function()
            package.preload.routes, package.loaded.routes = nil, nil
        end)
        local rt = testing.new()
        local v, plain = "/ws/v/{room}/", "/ws/plain/{room}/"
        assert.same({ v, "chat.v1" }, { host.match("/ws/v/a/", "chat.v1, chat.v2") })
        assert.same({ v, "chat.v2" }, { host.match("/ws/v/a/", "x,chat.v2") })
        assert.same({ v }, { host.match("/ws/v/a/", "x, y") })
        assert.same({ plain }, { host.match("/ws/plain/a/", "chat.v1") })
        assert.equal("chat.v2", rt:connect("/ws/v/a/", { protocols = { "chat.v2" } }).conn.protocol)
        assert.is_nil(rt:connect("/ws/v/a/", { protocols = { "other" } }).conn.protocol)
        assert.is_nil(rt:connect("/ws/v/a/").conn.protocol)
        rt:assert_no_errors()
    end)

    it("refuses routes whose protocols are not subprotocol names", function()
        package.preload.routes = function()
            return { { path = "/ws/v/{room}/", handler = "handlers.chat", protocols = { "a b" } } }
        end
        finally(function()
            package.preload.routes, package.loaded.routes = nil, nil
        end)
        assert.has_error(function() testing.new() end, "route 1: a b is not a subprotocol name")
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

describe("moontide.host reload", function()
    local moontide = require "moontide"

    it("keeps connections and their state, and moves them to the new code", function()
        local rt = testing.new()
        local a = rt:connect("/ws/chat/lobby/")
        a.conn.state.note = "kept"
        local old_handler = a.conn._route.handler
        local g1 = rt:reload()
        local g2 = rt:reload()
        assert.equal(g1 + 1, g2)
        assert.equal("kept", a.conn.state.note)
        assert.is_not.equal(old_handler, a.conn._route.handler)
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive())
        assert.same({ a }, rt:members("chat_lobby"))
        rt:assert_no_errors()
    end)

    it("cancels the timers of the old generation", function()
        local rt = testing.new()
        local fired = 0
        moontide.timer.every(1, function() fired = fired + 1 end)
        rt:advance(2)
        assert.equal(2, fired)
        assert.is_number(rt:reload())
        rt:advance(5)
        assert.equal(2, fired)
    end)

    it("keeps the running generation when the new routes fail to load", function()
        local rt = testing.new()
        local a = rt:connect("/ws/chat/lobby/")
        -- require("routes") finds a preload before the file
        package.preload.routes = function() error("broken routes") end
        local ok, err = rt:reload()
        package.preload.routes = nil
        assert.is_nil(ok)
        assert.matches("broken routes", err)
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive())
        assert.equal("/ws/chat/{room}/", host.match("/ws/chat/x/"))
    end)

    it("prepares a generation without switching to it; commit switches, abort drops it", function()
        local rt = testing.new()
        local a = rt:connect("/ws/chat/lobby/")
        local old_handler = a.conn._route.handler
        package.preload.routes = function()
            return { { path = "/ws/new/{room}/", handler = "handlers.chat" } }
        end
        finally(function()
            package.preload.routes, package.loaded.routes = nil, nil
        end)
        host.prepare()
        -- prepared, not switched: the old routes and code still serve
        assert.equal("/ws/chat/{room}/", host.match("/ws/chat/x/"))
        assert.is_nil(host.match("/ws/new/x/"))
        assert.equal(old_handler, a.conn._route.handler)
        host.abort()
        assert.equal("/ws/chat/{room}/", host.match("/ws/chat/x/"))
        host.abort() -- nothing prepared: nothing to do
        assert.has_error(function() host.commit() end, "no generation prepared")

        host.prepare()
        local g = host.commit()
        assert.is_number(g)
        assert.equal("/ws/new/{room}/", host.match("/ws/new/x/"))
        assert.is_nil(host.match("/ws/chat/x/"))
        assert.equal(1012, a.close_code) -- its route is gone
    end)

    it("runs timers of the running generation until the commit", function()
        local rt = testing.new()
        local fired = 0
        moontide.timer.every(1, function() fired = fired + 1 end)
        host.prepare()
        rt:advance(2)
        assert.equal(2, fired) -- still the running generation's
        host.commit()
        rt:advance(2)
        assert.equal(2, fired) -- cancelled with its generation
    end)
end)
