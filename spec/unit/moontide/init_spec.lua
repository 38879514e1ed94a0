-- The handler library: arguments, logging, timers, groups.
local testing = require "moontide.testing"
local moontide = require "moontide"

describe("moontide", function()
    local rt, conn, client

    before_each(function()
        rt = testing.new()
        client = rt:connect("/ws/chat/lobby/")
        conn = client.conn
    end)

    it("sends tables as JSON and strings as they are", function()
        assert.is_true(conn:send({ a = 1 }))
        assert.is_true(conn:send("raw"))
        assert.same({ a = 1 }, client:receive())
        assert.equal("raw", client:receive_raw())
    end)

    it("raises on a bad message argument", function()
        assert.has_error(function() conn:send(42) end,
            'bad "message" argument: expected a table or a string, got number')
        assert.has_error(function() conn:send({ f = print }) end)
    end)

    it("returns nil, closed once the connection is closing", function()
        assert.is_true(conn:close(4000, "bye"))
        local ok, err = conn:send("late")
        assert.is_nil(ok)
        assert.equal("closed", err)
        assert.equal(4000, client.close_code)
        assert.equal("bye", client.close_reason)
    end)

    it("rejects close codes an endpoint may not send", function()
        assert.has_error(function() conn:close(1006) end)
        assert.has_error(function() conn:close(1000, ("x"):rep(124)) end)
    end)

    it("logs with fields and the connection's identity", function()
        local log = moontide.logger("spec")
        log.warning("something happened", { conn = conn, n = 3, level = "forged" })
        local line = rt.logs[#rt.logs]
        assert.equal("something happened", line.message)
        assert.equal("spec", line.logger)
        assert.equal("WARNING", line.level) -- the name, as on the server
        assert.equal(3, line.n)
        assert.equal(conn.id, line.connection_id)
        assert.equal(conn.session_uuid, line.session_uuid)
    end)

    it("logs the connection's identity from on_open, as the server does", function()
        package.preload["routes"] = function()
            return { { path = "/ws/greet/", handler = "handlers.greet" } }
        end
        package.preload["handlers.greet"] = function()
            local log = moontide.logger("handlers.greet")
            return {
                on_open = function(c) log.info("joined", { conn = c }) end,
                on_close = function(c, code) log.info("left", { conn = c, code = code }) end,
            }
        end
        finally(function()
            package.preload["routes"], package.preload["handlers.greet"] = nil, nil
            package.loaded["routes"], package.loaded["handlers.greet"] = nil, nil
        end)
        rt = testing.new()
        local greeted = assert(rt:connect("/ws/greet/"))
        assert.is_false(greeted.closed)
        greeted:close(1000)
        rt:assert_no_errors()
        local joined, left = rt.logs[#rt.logs - 1], rt.logs[#rt.logs]
        assert.same({ "joined", "INFO", greeted.conn.id }, { joined.message, joined.level,
            joined.connection_id })
        assert.same({ "left", 1000, greeted.conn.id }, { left.message, left.code,
            left.connection_id })
    end)

    it("drops log lines below the threshold", function()
        rt = testing.new({ log_level = 30 })
        local before = #rt.logs
        moontide.logger("spec").info("hidden")
        assert.equal(before, #rt.logs)
    end)

    it("runs timers after their delay and repeats them until cancelled", function()
        local once, every = 0, 0
        moontide.timer.after(5, function() once = once + 1 end)
        local t = moontide.timer.every(2, function() every = every + 1 end)
        rt:advance(4)
        assert.equal(0, once)
        assert.equal(2, every)
        rt:advance(1)
        assert.equal(1, once)
        assert.is_true(t:cancel())
        rt:advance(10)
        assert.equal(2, every)
        assert.equal(1, once)
        assert.is_nil(t:cancel())
    end)

    it("raises on bad timer arguments", function()
        assert.has_error(function() moontide.timer.after(-1, print) end)
        assert.has_error(function() moontide.timer.every(0, print) end)
        assert.has_error(function() moontide.timer.after(1, "nope") end)
    end)

    it("adds, counts, sends to and discards group members", function()
        local other = rt:connect("/ws/chat/other/")
        assert.is_true(moontide.groups.add("team", conn))
        assert.is_true(moontide.groups.add("team", other.conn))
        assert.equal(2, moontide.groups.size("team"))
        assert.equal(2, moontide.groups.send("team", { hi = true }))
        assert.same({ hi = true }, other:receive())
        assert.is_true(moontide.groups.discard("team", conn))
        local ok, err = moontide.groups.discard("team", conn)
        assert.is_nil(ok)
        assert.equal("not_member", err)
        assert.has_error(function() moontide.groups.add("", conn) end)
        assert.has_error(function() moontide.groups.add("x", {}) end)
    end)

    it("counts errors and messages of known types only", function()
        moontide.count_error("rate_limited")
        assert.equal(1, rt.counters.errors.rate_limited)
        assert.has_error(function() moontide.count_error("made_up") end)
        assert.has_error(function() moontide.count_message("made_up") end)
    end)
end)

describe("moontide.redis", function()
    it("round-trips a command to its callback", function()
        local rt = testing.new({ redis = true })
        local got
        assert.is_true(moontide.redis.command({ "SET", "k", 42 }))
        assert.is_true(moontide.redis.command({ "GET", "k" }, function(v, err) got = { v, err } end))
        rt:connect("/ws/chat/x/") -- replies arrive after an event
        assert.same({ "42" }, got)
    end)

    it("reports errors as values", function()
        local rt = testing.new({ redis = true })
        local err
        moontide.redis.command({ "NOPE" }, function(_, e) err = e end)
        rt:connect("/ws/chat/x/")
        assert.matches("unknown command", err)
        rt.redis_down = true
        local ok, why = moontide.redis.command({ "GET", "k" })
        assert.is_nil(ok)
        assert.equal("redis unavailable", why)
    end)

    it("says when Redis is not configured, and checks its arguments", function()
        testing.new()
        local ok, why = moontide.redis.command({ "GET", "k" })
        assert.is_nil(ok)
        assert.equal("redis not configured", why)
        assert.is_false(moontide.redis.available())
        assert.has_error(function() moontide.redis.command({}) end)
        assert.has_error(function() moontide.redis.command({ "GET", {} }) end)
        assert.equal("moontide:chat:x", moontide.redis.key("chat", "x"))
    end)
end)
