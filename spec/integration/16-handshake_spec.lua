-- The HTTP side of the WebSocket handshake: subprotocol negotiation, and
-- malformed upgrades answered with the right status, counted and logged.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"

local ROUTES = [[
return {
    { path = "/ws/v/{room}/", handler = "handlers.proto", protocols = { "chat.v2", "chat.v1" } },
    { path = "/ws/plain/{room}/", handler = "handlers.proto" },
}
]]

-- Tells the client which subprotocol its connection object says it has.
local HANDLER = [[
local _M = {}
function _M.on_open(conn, request)
    conn:send({ protocol = conn.protocol or "none", seen = request.protocol or "none" })
end
return _M
]]

local function upgrade(port, path, extra)
    return (client.raw(port, ("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        .. "Sec-WebSocket-Version: 13\r\n%s\r\n"):format(path, extra or ""), 0.5))
end

describe("subprotocols #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ files = { ["routes.lua"] = ROUTES, ["handlers/proto.lua"] = HANDLER } })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
        assert.same({}, srv:error_lines())
    end)

    it("answers with the first offered subprotocol the route accepts", function()
        local ws = assert(client.ws(srv:ws_url("/ws/v/a/"), nil, { "chat.v1", "chat.v2" }))
        assert.equal("chat.v1", ws.ws.protocol)
        assert.same({ protocol = "chat.v1", seen = "chat.v1" }, ws:receive_json())
        ws:close()
        ws = assert(client.ws(srv:ws_url("/ws/v/a/"), nil, { "other", "chat.v2" }))
        assert.equal("chat.v2", ws.ws.protocol)
        assert.same({ protocol = "chat.v2", seen = "chat.v2" }, ws:receive_json())
        ws:close()
        local line = srv:wait_log(function(l)
            return l.message == "WebSocket connected" and l.protocol == "chat.v2"
        end)
        assert.equal("/ws/v/a/", line.path)
    end)

    it("accepts an offer it cannot take without choosing, instead of dropping the client", function()
        for _, path in ipairs({ "/ws/v/a/", "/ws/plain/a/" }) do
            local ws = assert(client.ws(srv:ws_url(path), nil, { "mqtt", "chat.v9" }))
            assert.is_nil(ws.ws.protocol)
            assert.same({ protocol = "none", seen = "none" }, ws:receive_json())
            ws:close()
        end
        local raw = upgrade(srv.port, "/ws/plain/b/", "Sec-WebSocket-Protocol: chat.v1\r\n")
        assert.matches("^HTTP/1.1 101 ", raw)
        assert.is_nil(raw:lower():find("sec%-websocket%-protocol"))
        srv:wait_log(function(l)
            return l.message == "WebSocket connected" and l.protocols_not_accepted == "mqtt,chat.v9"
        end)
    end)

    it("takes offers spread over several header lines, with odd spacing", function()
        local raw = upgrade(srv.port, "/ws/v/a/",
            "Sec-WebSocket-Protocol: x-y\r\nSec-WebSocket-Protocol:   chat.v2 ,chat.v1\r\n")
        assert.matches("^HTTP/1.1 101 ", raw)
        assert.matches("\r\nSec%-WebSocket%-Protocol: chat%.v2\r\n", raw)
        raw = upgrade(srv.port, "/ws/v/a/", "Sec-WebSocket-Protocol: a/b, (c)\r\n")
        assert.matches("^HTTP/1.1 101 ", raw)
        assert.is_nil(raw:lower():find("sec%-websocket%-protocol"))
    end)

    it("answers an offer it cannot read with 400, logged and counted", function()
        local before = prom.value(prom.parse(client.http(srv:url("/metrics")).body),
            "websocket_errors_total", { error_type = "bad_handshake" }) or 0
        local raw = upgrade(srv.port, "/ws/v/a/", "Sec-WebSocket-Protocol: "
            .. ("p"):rep(130) .. "\r\n")
        assert.matches("^HTTP/1.1 400 Bad Request\r\n", raw)
        assert.matches('"error":"bad_protocol_header"', raw)
        local after = prom.value(prom.parse(client.http(srv:url("/metrics")).body),
            "websocket_errors_total", { error_type = "bad_handshake" })
        assert.equal(before + 1, after)
        srv:wait_log(function(l) return l.message == "request" and l.status == 400 end)
    end)
end)

describe("malformed upgrades #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ config = { log_level = "INFO" } })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
        assert.same({}, srv:error_lines())
    end)

    local KEY = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    local UPGRADE = "Upgrade: websocket\r\nConnection: Upgrade\r\n"

    local function bad_handshakes()
        local m = prom.parse(client.http(srv:url("/metrics")).body)
        return prom.value(m, "websocket_errors_total", { error_type = "bad_handshake" }) or 0
    end

    local cases = {
        { "a version other than 13 gets 426 with the version spoken", "GET", "Host: x\r\n" .. UPGRADE
            .. KEY .. "Sec-WebSocket-Version: 8\r\n", 426, "sec%-websocket%-version: 13\r\n" },
        { "a missing version gets 426", "GET", "Host: x\r\n" .. UPGRADE .. KEY, 426,
            "sec%-websocket%-version: 13\r\n" },
        { "a missing key gets 400", "GET", "Host: x\r\n" .. UPGRADE .. "Sec-WebSocket-Version: 13\r\n",
            400 },
        { "a key that is not 16 bytes in base64 gets 400", "GET", "Host: x\r\n" .. UPGRADE
            .. "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n", 400 },
        { "a method other than GET gets 405 with Allow", "POST", "Host: x\r\n" .. UPGRADE .. KEY
            .. "Sec-WebSocket-Version: 13\r\nContent-Length: 0\r\n", 405, "allow: get\r\n" },
        { "Upgrade without Connection: upgrade gets 400", "GET", "Host: x\r\nUpgrade: websocket\r\n"
            .. KEY .. "Sec-WebSocket-Version: 13\r\n", 400 },
        { "a missing Host gets 400", "GET", UPGRADE .. KEY .. "Sec-WebSocket-Version: 13\r\n", 400 },
    }
    for _, case in ipairs(cases) do
        it(case[1] .. ", no WebSocket, counted and logged", function()
            local before = bad_handshakes()
            local raw = client.raw(srv.port, ("%s /ws/chat/a/ HTTP/1.1\r\n%s\r\n"):format(case[2], case[3]))
            local status = tonumber(raw:match("^HTTP/1.1 (%d+) "))
            assert.equal(case[4], status, raw)
            assert.is_nil(raw:lower():find("sec%-websocket%-accept"))
            if case[5] then
                assert.matches(case[5], raw:lower())
            end
            assert.equal(before + 1, bad_handshakes())
            local line = srv:wait_log(function(l)
                return l.message == "request" and l.status == case[4] and l.method == case[2]
            end)
            assert.equal("/ws/chat/{room}/", line.endpoint)
        end)
    end

    it("refuses a request line that is garbage; the server carries on", function()
        -- lws answers it itself, before any callback: HTTP/1.0 403 (its URI
        -- sanitation). Not counted or logged by moontide (docs/STACK.md).
        local raw = client.raw(srv.port, "GARBAGE\1\2 nonsense\r\n\r\n", 2)
        assert.is_true(raw == "" or raw:find("^HTTP/1.%d 4%d%d ") ~= nil, raw)
        assert.equal(200, client.http(srv:url("/healthz")).status)
    end)

    it("answers a header block over the limit with 431, or closes; the server carries on", function()
        local raw = client.raw(srv.port, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
            .. ("a"):rep(9000) .. "\r\n\r\n", 2)
        assert.is_true(raw == "" or raw:find("^HTTP/1.1 4%d%d ") ~= nil, raw)
        assert.equal(200, client.http(srv:url("/healthz")).status)
    end)
end)
