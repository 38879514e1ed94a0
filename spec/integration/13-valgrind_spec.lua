-- A short run under valgrind's memcheck: no invalid access, no
-- uninitialised value used, no definite leak.
local server = require "spec.support.server"
local client = require "spec.support.client"

describe("under valgrind #integration #slow", function()
    it("serves chat, HTTP and a drain with no memory errors", function()
        local vglog = os.tmpname()
        local srv = server.start({
            wrapper = { "valgrind", "--error-exitcode=99", "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--log-file=" .. vglog },
            timeout = 60,
        })
        local a = assert(client.ws(srv:ws_url("/ws/chat/vg/")))
        local b = assert(client.ws(srv:ws_url("/ws/chat/vg/")))
        a:send_json({ type = "message", text = "hello" })
        assert.equal("hello", b:receive_json().text)
        assert.equal("hello", a:receive_json().text)
        a:send("{broken")
        assert.equal("json_decode_error", a:receive_json().error)
        a:send(string.rep("x", 2 * 1024 * 1024))
        assert.equal(1009, a:expect_close())
        for _, path in ipairs({ "/healthz", "/readyz", "/status", "/metrics", "/nope" }) do
            client.http(srv:url(path))
        end
        assert.equal(200, client.http(srv:url("/admin/reload"), { method = "POST" }).status)
        assert.equal(0, srv:stop(60))
        local f = assert(io.open(vglog))
        local report = f:read("*a")
        f:close()
        os.remove(vglog)
        assert.matches("ERROR SUMMARY: 0 errors", report)
    end)
end)
