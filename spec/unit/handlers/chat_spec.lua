-- The chat handler, run in-process with moontide.testing.
local testing = require "moontide.testing"

describe("handlers.chat", function()
    local rt

    before_each(function()
        rt = testing.new()
    end)

    after_each(function()
        rt:assert_no_errors()
    end)

    it("joins the room's group on open", function()
        local a = assert(rt:connect("/ws/chat/lobby/"))
        assert.same({ a }, rt:members("chat_lobby"))
        assert.equal("chat_lobby", a.conn.state.group)
    end)

    it("broadcasts a message to everyone in the room, sender included", function()
        local a = rt:connect("/ws/chat/lobby/")
        local b = rt:connect("/ws/chat/lobby/")
        local c = rt:connect("/ws/chat/lobby/")
        a:send_json({ type = "message", text = "hello" })
        for _, client in ipairs({ a, b, c }) do
            assert.same({ type = "message", text = "hello", connection_id = a.conn.id },
                client:receive())
            assert.is_nil(client:receive())
        end
        assert.equal(1, rt.counters.messages.broadcast)
    end)

    it("keeps rooms apart", function()
        local a = rt:connect("/ws/chat/lobby/")
        local other = rt:connect("/ws/chat/other/")
        a:send_json({ type = "message", text = "only lobby" })
        assert.is_nil(other:receive())
    end)

    it("answers a heartbeat and counts it", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive())
        assert.equal(1, rt.counters.messages.heartbeat)
    end)

    it("replies json_decode_error to invalid JSON and keeps the connection", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send("{not json")
        assert.same({ type = "error", error = "json_decode_error" }, a:receive())
        assert.equal(1, rt.counters.errors.json_decode_error)
        assert.is_false(a.closed)
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive())
    end)

    it("replies unknown_type to an unknown type", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send_json({ type = "dance" })
        assert.same({ type = "error", error = "unknown_type" }, a:receive())
    end)

    it("replies invalid_message to JSON that is not a message object", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send("42")
        assert.same({ type = "error", error = "invalid_message" }, a:receive())
        a:send_json({ type = "message", text = { nested = true } })
        assert.same({ type = "error", error = "invalid_message" }, a:receive())
        -- arrays decode to tables too, but are not objects
        for _, text in ipairs({ "[1,2]", " [] ", '[{"type":"message"}]', '"str"', "null" }) do
            a:send(text)
            assert.same({ type = "error", error = "invalid_message" }, a:receive(), text)
        end
        a:send("{}") -- an object without a type
        assert.same({ type = "error", error = "unknown_type" }, a:receive())
    end)

    it("stops delivering to a client that left", function()
        local a = rt:connect("/ws/chat/lobby/")
        local b = rt:connect("/ws/chat/lobby/")
        b:close(1000)
        a:send_json({ type = "message", text = "still here?" })
        assert.same(0, #b.inbox)
        assert.same({ a }, rt:members("chat_lobby"))
    end)

    it("refuses paths that are not chat rooms", function()
        local c, err = rt:connect("/ws/chat/")
        assert.is_nil(c)
        assert.equal("not_found", err)
        assert.is_nil(rt:connect("/ws/chat/a/b/"))
        assert.is_nil(rt:connect("/ws/chat/bad%20room/"))
    end)
end)

describe("handlers.chat with Redis", function()
    it("replays the room's history, oldest first, to a client that joins", function()
        local rt = testing.new({ redis = true })
        local a = rt:connect("/ws/chat/hist/")
        for i = 1, 3 do
            a:send_json({ type = "message", text = "m" .. i })
        end
        local b = rt:connect("/ws/chat/hist/")
        local history = b:receive()
        assert.equal("history", history.type)
        assert.same({ "m1", "m2", "m3" }, {
            history.messages[1].text, history.messages[2].text, history.messages[3].text,
        })
        assert.equal(a.conn.id, history.messages[1].connection_id)
        rt:assert_no_errors()
    end)

    it("keeps at most 50 messages per room", function()
        local rt = testing.new({ redis = true })
        local a = rt:connect("/ws/chat/long/")
        for i = 1, 60 do
            a:send_json({ type = "message", text = tostring(i) })
        end
        local history = rt:connect("/ws/chat/long/"):receive()
        assert.equal(50, #history.messages)
        assert.equal("11", history.messages[1].text)
        assert.equal("60", history.messages[50].text)
    end)

    it("still chats when Redis is down", function()
        local rt = testing.new({ redis = true })
        rt.redis_down = true
        local a = rt:connect("/ws/chat/down/")
        a:send_json({ type = "message", text = "hi" })
        assert.equal("hi", a:receive().text)
        rt:assert_no_errors()
    end)
end)
