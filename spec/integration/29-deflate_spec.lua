-- permessage-deflate (RFC 7692): negotiated per server and per route, each
-- message compressed on its own (no context takeover either way), a
-- broadcast compressed once for all its recipients, and every way a
-- compressed message can be wrong closed with the right code: a zip bomb
-- 1009, bad DEFLATE data or bad UTF-8 inside 1007, RSV1 where it may not
-- be 1002. The last case is an independent implementation (Node's ws, as
-- browsers speak it) with 200 clients and messages of 2-130 KB: not one
-- corrupted.
local server = require "spec.support.server"
local client = require "spec.support.client"
local rawws = require "spec.support.rawws"
local zlib = require "spec.support.zlib"
local prom = require "spec.support.prom"
local cjson = require "cjson.safe"

local F = rawws.frame
local TEXT, BINARY, CONT, PING = 1, 2, 0, 9
local OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
local RESPONSE = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

local ROUTES = [[
return {
    { path = "/ws/echo/", handler = "handlers.echo", binary = true },
    { path = "/ws/plain/", handler = "handlers.echo", permessage_deflate = false },
    { path = "/ws/room/{name}/", handler = "handlers.room" },
}
]]
local ECHO = require("spec.support.util").read(server.ROOT .. "/spec/fixtures/handlers/echo.lua")
local ROOM = [[
local moontide = require "moontide"
local _M = {}
function _M.on_open(conn)
    moontide.groups.add("room:" .. conn.params.name, conn)
end
function _M.on_message(conn, data)
    moontide.groups.send("room:" .. conn.params.name, data)
end
return _M
]]

local big = ("{\"type\":\"message\",\"text\":\"%s\"}"):format(("moontide "):rep(200))

local function extensions(head)
    return head:lower():match("\nsec%-websocket%-extensions: ([^\r\n]*)")
end

describe("permessage-deflate #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({
            config = { permessage_deflate = true, max_message_bytes = "256K", log_level = "INFO" },
            files = { ["routes.lua"] = ROUTES, ["handlers/echo.lua"] = ECHO,
                ["handlers/room.lua"] = ROOM },
        })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
        assert.same({}, srv:error_lines())
    end)

    local function open(path, offer)
        local c = assert(rawws.connect(srv.port, path or "/ws/echo/", offer == nil and OFFER or offer))
        return c, extensions(c.head)
    end

    local function errors(kind)
        local text = client.http(srv:url("/metrics")).body
        return prom.value(prom.parse(text), "websocket_errors_total", { error_type = kind }) or 0
    end

    describe("negotiation", function()
        it("accepts the offer browsers make, with both no_context_takeover", function()
            local c, ext = open()
            assert.equal(RESPONSE, ext)
            c:close()
        end)

        it("takes the first offer it can accept, and declines the rest", function()
            for offer, accepted in pairs({
                ["permessage-deflate"] = true,
                ["permessage-deflate; server_max_window_bits=15; client_max_window_bits=\"12\""] = true,
                ["permessage-deflate; server_no_context_takeover; client_no_context_takeover"] = true,
                ["permessage-deflate; server_max_window_bits=10"] = false, -- a smaller window: declined
                ["permessage-deflate; client_max_window_bits=16"] = false,
                ["permessage-deflate; no_such_parameter"] = false,
                ["permessage-deflate; server_no_context_takeover; server_no_context_takeover"] = false,
                ["permessage-deflate; server_no_context_takeover=1"] = false,
                ["x-webkit-deflate-frame"] = false,
                ["permessage-deflate; server_max_window_bits=9, permessage-deflate"] = true,
            }) do
                local c, ext = open(nil, "Sec-WebSocket-Extensions: " .. offer .. "\r\n")
                assert.equal(accepted and RESPONSE or nil, ext, offer)
                c:close()
            end
        end)

        it("is off for a route that says so, and for a client that does not offer it", function()
            local c, ext = open("/ws/plain/")
            assert.is_nil(ext)
            c:close()
            c, ext = open(nil, "")
            assert.is_nil(ext)
            -- and that client's frames are lws's as ever: RSV1 is a violation
            c:send(F({ opcode = TEXT, rsv = 4, payload = zlib.compress("hello") }))
            assert.equal(1002, (c:expect_close()))
        end)

        it("is on for a route that says so on a server where it is off", function()
            local other = server.start({
                config = { log_level = "INFO" },
                files = { ["routes.lua"] = [[return {
                    { path = "/ws/echo/", handler = "handlers.echo" },
                    { path = "/ws/z/", handler = "handlers.echo", permessage_deflate = true } }]],
                    ["handlers/echo.lua"] = ECHO },
            })
            local a = assert(rawws.connect(other.port, "/ws/echo/", OFFER))
            local b = assert(rawws.connect(other.port, "/ws/z/", OFFER))
            assert.is_nil(extensions(a.head))
            assert.equal(RESPONSE, extensions(b.head))
            a:close()
            b:close()
            assert.equal(0, other:stop())
        end)
    end)

    describe("messages", function()
        it("inflates what the client compressed and compresses the answer", function()
            local c = open()
            c:send(F({ opcode = TEXT, rsv = 4, payload = zlib.compress(big) }))
            local f = assert(c:read_frame())
            assert.same({ TEXT, 4, true }, { f.opcode, f.rsv, f.fin })
            assert.is_true(#f.payload < #big / 10)
            assert.equal(big, zlib.decompress(f.payload))
            c:close()
        end)

        it("sends short or incompressible messages as they are (RSV1 clear)", function()
            local c = open()
            c:send(F({ opcode = TEXT, rsv = 4, payload = zlib.compress("short") }))
            local f = assert(c:read_frame())
            assert.same({ 0, "short" }, { f.rsv, f.payload })
            local noise = {}
            for i = 1, 512 do
                noise[i] = string.char(math.random(0, 255))
            end
            noise = table.concat(noise)
            c:send(F({ opcode = BINARY, rsv = 4, payload = zlib.compress(noise) }))
            f = assert(c:read_frame())
            assert.same({ BINARY, 0, noise }, { f.opcode, f.rsv, f.payload })
            -- and an uncompressed message on the same connection is fine too
            c:send(F({ opcode = TEXT, payload = "plain" }))
            assert.equal("plain", assert(c:read_frame()).payload)
            c:close()
        end)

        it("assembles a compressed message from fragments, pings between them answered", function()
            local c = open()
            local z = zlib.compress(big)
            local third = math.floor(#z / 3)
            c:send(F({ opcode = TEXT, rsv = 4, fin = false, payload = z:sub(1, third) }))
            c:send(F({ opcode = PING, payload = "between" }))
            c:send(F({ opcode = CONT, fin = false, payload = z:sub(third + 1, 2 * third) }))
            c:send(F({ opcode = CONT, payload = z:sub(2 * third + 1) }), 7) -- in 7-byte pieces
            local pong = assert(c:read_frame())
            assert.same({ 10, "between" }, { pong.opcode, pong.payload })
            local f = assert(c:read_message())
            assert.equal(big, zlib.decompress(f.payload))
            c:close()
        end)

        it("compresses a broadcast once: the same bytes to every member with compression", function()
            local a, b = open("/ws/room/z/"), open("/ws/room/z/")
            local plain = assert(rawws.connect(srv.port, "/ws/room/z/", ""))
            a:send(F({ opcode = TEXT, rsv = 4, payload = zlib.compress(big) }))
            local fa, fb, fp = assert(a:read_frame()), assert(b:read_frame()), assert(plain:read_frame())
            assert.same({ 4, 4, 0 }, { fa.rsv, fb.rsv, fp.rsv })
            assert.equal(fa.payload, fb.payload)
            assert.equal(big, zlib.decompress(fa.payload))
            assert.equal(big, fp.payload)
            a:close()
            b:close()
            plain:close()
        end)
    end)

    describe("bad compressed input", function()
        local function refused(frames, code, kind)
            local before = errors(kind)
            local c = open()
            for _, f in ipairs(frames) do
                c:send(f)
            end
            assert.equal(code, (c:expect_close()))
            assert.equal(before + 1, errors(kind))
            -- and the server serves the next client
            local ok = open()
            ok:send(F({ opcode = TEXT, payload = "still here" }))
            assert.equal("still here", assert(ok:read_frame()).payload)
            ok:close()
        end

        it("closes a zip bomb with 1009 after at most max_message_bytes of work", function()
            local bomb = zlib.compress(("\0"):rep(64 * 1024 * 1024), 9) -- 64 MB in ~64 KB
            assert.is_true(#bomb < 128 * 1024)
            refused({ F({ opcode = BINARY, rsv = 4, payload = bomb }) }, 1009, "message_too_large")
            local l = srv:wait_log(function(x) return x.message == "message too large: closing" end)
            assert.equal(256 * 1024, l.max_message_bytes)
        end)

        it("closes DEFLATE data that is not, with 1007", function()
            refused({ F({ opcode = TEXT, rsv = 4, payload = "\255\255\255 not deflate" }) }, 1007,
                "protocol_error")
        end)

        it("closes compressed text that is not UTF-8, with 1007", function()
            refused({ F({ opcode = TEXT, rsv = 4, payload = zlib.compress("caf\xc3") }) }, 1007,
                "protocol_error")
        end)

        it("closes a message that leans on the last one's window (no context takeover), 1007", function()
            local s = zlib.stream()
            local first = s:compress(big)
            local second = s:compress(big) -- refers back into the first
            local c = open()
            c:send(F({ opcode = TEXT, rsv = 4, payload = first }))
            assert.equal(big, zlib.decompress(assert(c:read_frame()).payload))
            c:send(F({ opcode = TEXT, rsv = 4, payload = second }))
            assert.equal(1007, (c:expect_close()))
        end)

        it("closes RSV1 on a continuation, RSV2/RSV3, and frames out of sequence, with 1002", function()
            local z = zlib.compress(big)
            refused({ F({ opcode = TEXT, rsv = 4, fin = false, payload = z:sub(1, 10) }),
                F({ opcode = CONT, rsv = 4, payload = z:sub(11) }) }, 1002, "protocol_error")
            refused({ F({ opcode = TEXT, rsv = 2, payload = "x" }) }, 1002, "protocol_error")
            refused({ F({ opcode = CONT, payload = "x" }) }, 1002, "protocol_error")
            refused({ F({ opcode = TEXT, fin = false, payload = "x" }),
                F({ opcode = TEXT, payload = "y" }) }, 1002, "protocol_error")
        end)
    end)

    it("200 clients of Node's ws, 2-130 KB messages: nothing corrupted, nothing lost", function()
        local load = server.ROOT .. "/spec/support/deflate-load.cjs"
        local cmd = ("node %s %d 200 4 2048 133120 2>&1"):format(load, srv.port)
        local p = assert(io.popen(cmd))
        local out = p:read("*a")
        p:close()
        local r = cjson.decode(out:match("{.*}") or "")
        assert.is_table(r, out)
        io.stderr:write(("\n  (%d messages, %.1f MB each way; negotiated by %d of %d)\n"):format(
            r.received, r.bytes / 1e6, r.negotiated, r.clients))
        assert.same({ 200, 200, 800, 0, 0 },
            { r.clients, r.negotiated, r.received, r.corrupted, r.errors }, out)
    end)
end)
