-- A handler that never returns or allocates without bound is stopped;
-- everyone else keeps chatting.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"

describe("runaway scripts #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({
            config = { handler_timeout = 1, lua_memory_limit = "32M" },
            files = server.fixture("lifecycle", "runaway"),
        })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
    end)

    local function handler_errors()
        local m = prom.parse(client.http(srv:url("/metrics")).body)
        return prom.value(m, "websocket_errors_total", { error_type = "handler_error" })
    end

    for _, case in ipairs({
        { msg = "loop", err = "time budget" },
        { msg = "alloc", err = "memory limit" },
    }) do
        it("stops a handler that " .. (case.msg == "loop" and "loops forever" or
            "allocates forever") .. " and closes its connection with 1011", function()
            local before = handler_errors()
            local chat = assert(client.ws(srv:ws_url("/ws/chat/calm-" .. case.msg .. "/")))
            local bad = assert(client.ws(srv:ws_url("/ws/runaway/")))
            bad:send(case.msg)
            assert.equal(1011, bad:expect_close())
            local line = srv:wait_log(function(l)
                return l.message == "handler error" and l.error:match(case.err)
            end)
            assert.equal("on_message", line.event)
            assert.equal(before + 1, handler_errors())
            chat:send_json({ type = "message", text = "still chatting" })
            assert.equal("still chatting", chat:receive_json().text)
            local ok = assert(client.ws(srv:ws_url("/ws/runaway/")))
            ok:send("work")
            assert.equal("done 500500", ok:receive())
            ok:close()
            chat:close()
        end)
    end
end)
