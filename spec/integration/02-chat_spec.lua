-- The chat protocol over real WebSockets.
local server = require "spec.support.server"
local client = require "spec.support.client"

describe("chat #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ config = { max_message_bytes = 4096 } })
    end)

    lazy_teardown(function()
        assert.same({}, srv:error_lines())
        assert.equal(0, srv:stop())
    end)

    local function join(room)
        return assert(client.ws(srv:ws_url("/ws/chat/" .. room .. "/")))
    end

    it("broadcasts a message to all three clients in a room", function()
        local a, b, c = join("lobby"), join("lobby"), join("lobby")
        a:send_json({ type = "message", text = "hello room" })
        local ids = {}
        for _, ws in ipairs({ a, b, c }) do
            local msg = ws:receive_json()
            assert.equal("message", msg.type)
            assert.equal("hello room", msg.text)
            ids[#ids + 1] = msg.connection_id
        end
        assert.matches("^%x+%-%x+%-4%x+%-%x+%-%x+$", ids[1])
        assert.same({ ids[1], ids[1] }, { ids[2], ids[3] })
        for _, ws in ipairs({ a, b, c }) do
            ws:close()
        end
    end)

    it("keeps rooms isolated", function()
        local a, other = join("red"), join("blue")
        a:send_json({ type = "message", text = "red only" })
        assert.equal("red only", a:receive_json().text)
        assert.is_true(other:nothing(0.3))
        a:close()
        other:close()
    end)

    it("delivers one sender's messages in order", function()
        local a, b = join("order"), join("order")
        for i = 1, 200 do
            a:send_json({ type = "message", text = tostring(i) })
        end
        for i = 1, 200 do
            assert.equal(tostring(i), b:receive_json().text)
        end
        a:close()
        b:close()
    end)

    it("answers heartbeat with heartbeat_ack", function()
        local a = join("hb")
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive_json())
        a:close()
    end)

    it("answers invalid JSON with json_decode_error and keeps the connection", function()
        local a = join("bad")
        a:send("{this is not json")
        assert.same({ type = "error", error = "json_decode_error" }, a:receive_json())
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive_json())
        a:close()
    end)

    it("answers an unknown type with unknown_type", function()
        local a = join("unknown")
        a:send_json({ type = "teleport" })
        assert.same({ type = "error", error = "unknown_type" }, a:receive_json())
        a:close()
    end)

    it("closes with 1009 on a message over max_message_bytes; others carry on", function()
        local big, bystander = join("big"), join("big")
        big:send(string.rep("x", 5000))
        assert.equal(1009, big:expect_close())
        bystander:send_json({ type = "message", text = "still fine" })
        assert.equal("still fine", bystander:receive_json().text)
        local line = srv:wait_log(function(l) return l.message == "message too large: closing" end)
        assert.equal(4096, line.max_message_bytes)
        bystander:close()
    end)

    it("reassembles a message sent in fragments", function()
        local a = join("frag")
        local ws = a.ws
        local text = '{"type":"message","text":"' .. string.rep("y", 3000) .. '"}'
        -- a text frame without FIN, then continuation frames
        assert(ws:send_frame({ opcode = 1, FIN = false, MASK = true, data = text:sub(1, 1000) }))
        assert(ws:send_frame({ opcode = 0, FIN = false, MASK = true, data = text:sub(1001, 2000) }))
        assert(ws:send_frame({ opcode = 0, FIN = true, MASK = true, data = text:sub(2001) }))
        assert.equal(string.rep("y", 3000), a:receive_json().text)
        a:close()
    end)

    it("refuses an unknown WebSocket path with 404 before the upgrade", function()
        local ws, err = client.ws(srv:ws_url("/ws/nowhere/"))
        assert.is_nil(ws)
        assert.matches("101", err)
        local line = srv:wait_log(function(l)
            return l.message == "request" and l.path == "/ws/nowhere/"
        end)
        assert.equal(404, line.status)
    end)

    it("runs on_close and leaves the group when a client goes", function()
        local a, b = join("leave"), join("leave")
        b:close()
        srv:wait_log(function(l) return l.message == "WebSocket disconnected" and l.code == 1000 end)
        a:send_json({ type = "message", text = "alone" })
        assert.equal("alone", a:receive_json().text)
        a:close()
    end)
end)
