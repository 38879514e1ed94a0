-- The write path: frames are written at the end of the loop turn that
-- queued them; what the kernel refuses waits, in order, for the writable
-- callback; a close follows the frames queued before it.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"
local util = require "spec.support.util"
local signal = require "posix.signal"

local ROUTES = [[
return {
    { path = "/ws/chat/{room}/", handler = "handlers.chat" },
    { path = "/ws/burst/", handler = "handlers.burst" },
}
]]

describe("the write path #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({
            config = { max_send_queue_bytes = "64M", log_level = "INFO" },
            files = {
                ["routes.lua"] = ROUTES,
                ["handlers/burst.lua"] = util.read("spec/fixtures/handlers/burst.lua"),
            },
        })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
        assert.same({}, srv:error_lines())
    end)

    it("resumes what the kernel refused, in order, while others are served", function()
        local reader = assert(client.ws(srv:ws_url("/ws/burst/")))
        local other = assert(client.ws(srv:ws_url("/ws/burst/")))
        -- 24 MB, more than loopback's socket buffers hold: the rest waits
        -- in the send queue while this client reads nothing.
        assert(reader:send("burst 768 32768"))
        local queued = server.eventually(function()
            local m = prom.parse(client.http(srv:url("/metrics")).body)
            local v = prom.value(m, "moontide_send_queue_bytes")
            return v and v > 0 and v
        end, 10, "frames waiting in the send queue")
        assert.is_true(queued > 0)
        for i = 1, 20 do -- the loop is not held up by the stalled reader
            assert(other:send("ping " .. i))
            assert.equal("ping " .. i, other:receive())
        end
        for i = 1, 768 do
            local data = assert(reader:receive(10))
            assert.equal(32768, #data)
            assert.equal(("%08d"):format(i), data:sub(1, 8))
        end
        local m = prom.parse(client.http(srv:url("/metrics")).body)
        assert.equal(0, prom.value(m, "moontide_send_queue_bytes"))
        reader:close()
        other:close()
    end)

    it("sends the close after the frames queued before it", function()
        local ws = assert(client.ws(srv:ws_url("/ws/burst/")))
        assert(ws:send("bye 500"))
        for i = 1, 500 do
            assert.equal(("%08d"):format(i), ws:receive())
        end
        local code, reason = ws:expect_close()
        assert.equal(4000, code)
        assert.equal("done", reason)
    end)

    it("answers in the same loop turn, without asking the poller for POLLOUT", function()
        -- Each POLLOUT request is an epoll DEL + ADD on libuv: count them
        -- with strace attached to the server while 200 replies go out.
        local ws = assert(client.ws(srv:ws_url("/ws/chat/turn/")))
        ws:send_json({ type = "heartbeat" })
        ws:receive_json()
        local trace = os.tmpname()
        local tracer = server.adopt(server.spawn("strace", { "-e", "trace=epoll_ctl", "-o", trace,
            "-p", tostring(srv.pid) }, trace .. ".err"))
        server.eventually(function()
            local ok, text = pcall(util.read, trace .. ".err")
            return ok and text:find("attached")
        end, 10, "strace to attach")
        for _ = 1, 200 do
            ws:send_json({ type = "heartbeat" })
            assert.same({ type = "heartbeat_ack" }, ws:receive_json())
        end
        tracer:kill(signal.SIGINT)
        tracer:wait_exit(10)
        local calls = select(2, util.read(trace):gsub("epoll_ctl%(", ""))
        os.remove(trace)
        os.remove(trace .. ".err")
        assert.is_true(calls <= 2, calls .. " epoll_ctl calls for 200 replies")
        ws:close()
    end)
end)
