-- RFC 6455 conformance, after the Autobahn testsuite's sections 1-7 and 9
-- (Autobahn itself needs Python 2: these cases are written from the RFC and
-- Autobahn's case descriptions). Raw frames go to an echo route; each case
-- asserts the strict outcome: the echo, or the right close code in a close
-- frame followed by the TCP close.
local server = require "spec.support.server"
local rawws = require "spec.support.rawws"

local F, CLOSE = rawws.frame, rawws.close_payload
local TEXT, BINARY, CONT, CLOSE_OP, PING, PONG = 1, 2, 0, 8, 9, 10

local ROUTES = [[
return { { path = "/ws/echo/", handler = "handlers.echo", binary = true } }
]]
local ECHO = require("spec.support.util").read(server.ROOT .. "/spec/fixtures/handlers/echo.lua")

describe("RFC 6455 conformance #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({
            config = { max_message_bytes = "16M", max_send_queue_bytes = "64M", log_level = "INFO" },
            files = { ["routes.lua"] = ROUTES, ["handlers/echo.lua"] = ECHO },
        })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
        assert.same({}, srv:error_lines())
    end)

    local function open()
        return assert(rawws.connect(srv.port, "/ws/echo/"))
    end

    -- The next message must be this one.
    local function echoed(c, opcode, payload)
        local m = assert(c:read_message(10))
        assert.is_false(m.masked, "a server frame must not be masked")
        assert.equal(opcode, m.opcode)
        assert.equal(#payload, #m.payload)
        assert.is_true(m.payload == payload, "payload differs")
    end

    -- Ends a case that should leave the connection healthy.
    local function clean_close(c)
        c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000) }))
        assert.equal(1000, (c:expect_close()))
    end

    local function fails(c, code)
        assert.equal(code, (c:expect_close()))
    end

    local function bytes(n, seed)
        local t = {}
        for i = 1, n do
            t[i] = string.char((i * 7 + (seed or 0)) % 256)
        end
        return table.concat(t)
    end

    describe("1 framing", function()
        for _, n in ipairs({ 0, 125, 126, 127, 128, 65535, 65536 }) do
            it("1.1 echoes a text message of " .. n .. " bytes", function()
                local c = open()
                local text = ("*"):rep(n)
                c:send(F({ opcode = TEXT, payload = text }))
                echoed(c, TEXT, text)
                clean_close(c)
            end)
            it("1.2 echoes a binary message of " .. n .. " bytes", function()
                local c = open()
                local data = bytes(n)
                c:send(F({ opcode = BINARY, payload = data }))
                echoed(c, BINARY, data)
                clean_close(c)
            end)
        end
        it("1.1.8 echoes 65 536 bytes sent in chops of 997", function()
            local c = open()
            local text = ("*"):rep(65536)
            c:send(F({ opcode = TEXT, payload = text }), 997)
            echoed(c, TEXT, text)
            clean_close(c)
        end)
        it("takes a short length sent in the 16- and 64-bit encodings", function()
            local c = open()
            c:send(F({ opcode = TEXT, payload = "hello", len_bytes = 2 }))
            echoed(c, TEXT, "hello")
            c:send(F({ opcode = TEXT, payload = "hello", len_bytes = 8 }))
            echoed(c, TEXT, "hello")
            clean_close(c)
        end)
    end)

    describe("2 pings and pongs", function()
        local payloads = { [""] = "2.1 an empty ping", ["Hello, world!"] = "2.2 a text ping",
            ["\0\255\254\253\252\251\0\255"] = "2.3 a binary ping", [("*"):rep(125)] = "2.4 a 125-byte ping" }
        for payload, name in pairs(payloads) do
            it(name .. " gets a pong with its payload", function()
                local c = open()
                c:send(F({ opcode = PING, payload = payload }))
                local f = assert(c:read_frame())
                assert.equal(PONG, f.opcode)
                assert.equal(payload, f.payload)
                clean_close(c)
            end)
        end
        it("2.5 a 126-byte ping fails with 1002", function()
            local c = open()
            c:send(F({ opcode = PING, payload = ("*"):rep(126) }))
            fails(c, 1002)
        end)
        it("2.6 a 125-byte ping sent a byte at a time gets its pong", function()
            local c = open()
            c:send(F({ opcode = PING, payload = ("*"):rep(125) }), 1)
            local f = assert(c:read_frame())
            assert.equal(PONG, f.opcode)
            assert.equal(125, #f.payload)
            clean_close(c)
        end)
        it("2.7/2.8 ignores unsolicited pongs", function()
            local c = open()
            c:send(F({ opcode = PONG }))
            c:send(F({ opcode = PONG, payload = "unsolicited pong payload" }))
            c:send(F({ opcode = TEXT, payload = "after" }))
            echoed(c, TEXT, "after")
            clean_close(c)
        end)
        it("2.9 answers a ping after an unsolicited pong", function()
            local c = open()
            c:send(F({ opcode = PONG, payload = "unsolicited" }) .. F({ opcode = PING, payload = "ping" }))
            local f = assert(c:read_frame())
            assert.same({ PONG, "ping" }, { f.opcode, f.payload })
            clean_close(c)
        end)
        for _, chop in ipairs({ false, 1 }) do
            local how = chop and ", sent a byte at a time" or ""
            it("2.10/2.11 answers ten pings in order" .. how, function()
                local c = open()
                local all = {}
                for i = 1, 10 do
                    all[i] = F({ opcode = PING, payload = "payload-" .. i })
                end
                c:send(table.concat(all), chop or nil)
                for i = 1, 10 do
                    local f = assert(c:read_frame())
                    assert.same({ PONG, "payload-" .. i }, { f.opcode, f.payload })
                end
                clean_close(c)
            end)
        end
    end)

    describe("3 reserved bits", function()
        local cases = {
            { "3.1 RSV1 on a text frame", F({ opcode = TEXT, payload = "x", rsv = 4 }) },
            { "3.2 RSV2 on a text frame after a good one", F({ opcode = TEXT, payload = "x", rsv = 2 }),
                "good" },
            { "3.3 RSV3 on a text frame", F({ opcode = TEXT, payload = "x", rsv = 1 }) },
            { "3.4 RSV1+RSV2 on a text frame", F({ opcode = TEXT, payload = "x", rsv = 6 }) },
            { "3.5 RSV1+RSV3 on a binary frame", F({ opcode = BINARY, payload = "\1\2", rsv = 5 }) },
            { "3.6 RSV2+RSV3 on a ping", F({ opcode = PING, payload = "p", rsv = 3 }) },
            { "3.7 all RSV bits on a close", F({ opcode = CLOSE_OP, payload = CLOSE(1000), rsv = 7 }) },
        }
        for _, case in ipairs(cases) do
            it(case[1] .. " fails with 1002", function()
                local c = open()
                if case[3] then
                    c:send(F({ opcode = TEXT, payload = case[3] }))
                    echoed(c, TEXT, case[3])
                end
                c:send(case[2])
                fails(c, 1002)
            end)
        end
    end)

    describe("4 opcodes", function()
        for _, op in ipairs({ 3, 4, 5, 6, 7, 11, 12, 13, 14, 15 }) do
            it(("4.%d reserved opcode %d fails with 1002"):format(op < 8 and 1 or 2, op), function()
                local c = open()
                c:send(F({ opcode = TEXT, payload = "first" }))
                echoed(c, TEXT, "first")
                c:send(F({ opcode = op, payload = op % 2 == 0 and "reserved" or "" }))
                c:send(F({ opcode = PING, payload = "after" }))
                fails(c, 1002) -- and no pong for the ping after it
            end)
        end
    end)

    describe("5 fragmentation", function()
        it("5.1 a fragmented ping fails with 1002", function()
            local c = open()
            c:send(F({ opcode = PING, payload = "frag1", fin = false })
                .. F({ opcode = CONT, payload = "frag2" }))
            fails(c, 1002)
        end)
        it("5.2 a fragmented pong fails with 1002", function()
            local c = open()
            c:send(F({ opcode = PONG, payload = "frag1", fin = false })
                .. F({ opcode = CONT, payload = "frag2" }))
            fails(c, 1002)
        end)
        for _, chop in ipairs({ false, 1 }) do
            local how = chop and ", chopped" or ""
            it("5.3/5.4 reassembles a text message in two fragments" .. how, function()
                local c = open()
                c:send(F({ opcode = TEXT, payload = "fragment1", fin = false })
                    .. F({ opcode = CONT, payload = "fragment2" }), chop or nil)
                echoed(c, TEXT, "fragment1fragment2")
                clean_close(c)
            end)
            it("5.6/5.7 answers a ping between fragments, then the message" .. how, function()
                local c = open()
                c:send(F({ opcode = TEXT, payload = "fragment1", fin = false })
                    .. F({ opcode = PING, payload = "between" })
                    .. F({ opcode = CONT, payload = "fragment2" }), chop or nil)
                local f = assert(c:read_frame())
                assert.same({ PONG, "between" }, { f.opcode, f.payload })
                echoed(c, TEXT, "fragment1fragment2")
                clean_close(c)
            end)
        end
        it("5.8 answers pings between fragments sent with pauses", function()
            local c = open()
            c:send(F({ opcode = TEXT, payload = "a", fin = false }))
            c:send(F({ opcode = PING, payload = "p1" }))
            assert.equal("p1", assert(c:read_frame()).payload)
            c:send(F({ opcode = CONT, payload = "b", fin = false }))
            c:send(F({ opcode = PING, payload = "p2" }))
            assert.equal("p2", assert(c:read_frame()).payload)
            c:send(F({ opcode = CONT, payload = "c" }))
            echoed(c, TEXT, "abc")
            clean_close(c)
        end)
        local bad = {
            { "5.9 a continuation without a message", F({ opcode = CONT, payload = "x" }) },
            { "5.12 an unfinished continuation without a message",
                F({ opcode = CONT, payload = "x", fin = false })
                .. F({ opcode = CONT, payload = "y" }) },
            { "5.15 a second message's continuation after a finished one",
                F({ opcode = TEXT, payload = "a", fin = false }) .. F({ opcode = CONT, payload = "b" })
                .. F({ opcode = CONT, payload = "c", fin = false }) .. F({ opcode = TEXT, payload = "d" }),
                "ab" },
            { "5.18 a new text frame inside a fragmented message",
                F({ opcode = TEXT, payload = "a", fin = false }) .. F({ opcode = TEXT, payload = "b" }) },
            { "a new binary frame inside a fragmented message",
                F({ opcode = BINARY, payload = "a", fin = false }) .. F({ opcode = BINARY, payload = "b" }) },
        }
        for _, case in ipairs(bad) do
            for _, chop in ipairs({ false, 1 }) do
                it(case[1] .. " fails with 1002" .. (chop and ", chopped" or ""), function()
                    local c = open()
                    c:send(case[2], chop or nil)
                    if case[3] then
                        echoed(c, TEXT, case[3])
                    end
                    fails(c, 1002)
                end)
            end
        end
        it("5.19/5.20 answers pings between many fragments, then the message", function()
            local c = open()
            local parts, expect = {}, {}
            for i = 1, 5 do
                parts[#parts + 1] = F({ opcode = i == 1 and TEXT or CONT, payload = "fragment" .. i,
                    fin = i == 5 })
                expect[#expect + 1] = "fragment" .. i
                if i < 5 then
                    parts[#parts + 1] = F({ opcode = PING, payload = "pongme " .. i })
                end
            end
            c:send(table.concat(parts))
            for i = 1, 4 do
                local f = assert(c:read_frame())
                assert.same({ PONG, "pongme " .. i }, { f.opcode, f.payload })
            end
            echoed(c, TEXT, table.concat(expect))
            clean_close(c)
        end)
    end)

    describe("6 UTF-8", function()
        local valid = {
            { "6.1 an empty text message", "" },
            { "6.2 Greek kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5" },
            { "6.3 the first and last code points of each length",
                "\x00\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf0\x90\x80\x80\xf4\x8f\xbf\xbf" },
            { "6.4 the edges of the surrogate range", "\xed\x9f\xbf\xee\x80\x80" },
            { "6.5 noncharacters U+FFFE and U+FFFF", "\xef\xbf\xbe\xef\xbf\xbf" },
        }
        for _, case in ipairs(valid) do
            it(case[1] .. " is echoed", function()
                local c = open()
                c:send(F({ opcode = TEXT, payload = case[2] }))
                echoed(c, TEXT, case[2])
                clean_close(c)
            end)
        end
        it("6.2 valid UTF-8 split across fragments at every byte is reassembled", function()
            local text = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf0\x90\x80\x80"
            local c = open()
            for cut = 1, #text - 1 do
                c:send(F({ opcode = TEXT, payload = text:sub(1, cut), fin = false })
                    .. F({ opcode = CONT, payload = text:sub(cut + 1) }))
                echoed(c, TEXT, text)
            end
            local frames = {}
            for i = 1, #text do
                frames[i] = F({ opcode = i == 1 and TEXT or CONT, payload = text:sub(i, i),
                    fin = i == #text })
            end
            c:send(table.concat(frames))
            echoed(c, TEXT, text)
            clean_close(c)
        end)
        local invalid = {
            { "6.6 kosme then a surrogate",
                "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited" },
            { "6.7 a code point past U+10FFFF", "\xf4\x90\x80\x80" },
            { "6.8 a five-byte sequence", "\xf8\x88\x80\x80\x80" },
            { "6.9 a lone continuation byte", "\x80" },
            { "6.10 a start byte without its continuation", "\xc2 " },
            { "6.11 an overlong slash", "\xc0\xaf" },
            { "6.12 an overlong three-byte NUL", "\xe0\x80\x80" },
            { "6.13 the bytes FE and FF", "\xfe\xff" },
            { "6.14 a high surrogate", "\xed\xa0\x80" },
            { "6.15 a low surrogate", "\xed\xbf\xbf" },
            { "6.16 a sequence cut off at the end", "ok\xe0\xa0" },
        }
        for _, case in ipairs(invalid) do
            it(case[1] .. " fails with 1007", function()
                local c = open()
                c:send(F({ opcode = TEXT, payload = case[2] }))
                fails(c, 1007)
            end)
        end
        it("6.4 fails fast: invalid bytes in the first fragment close before the rest comes", function()
            local c = open()
            c:send(F({ opcode = TEXT,
                payload = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80",
                fin = false }))
            fails(c, 1007) -- the rest of the message is never sent
        end)
        it("fails a message whose last fragment leaves a sequence unfinished", function()
            local c = open()
            c:send(F({ opcode = TEXT, payload = "ok", fin = false })
                .. F({ opcode = CONT, payload = "\xe2\x82" }))
            fails(c, 1007)
        end)
    end)

    describe("7 close", function()
        it("7.1.1 echoes a message, then answers a close with 1000", function()
            local c = open()
            c:send(F({ opcode = TEXT, payload = "Hello World!" }))
            echoed(c, TEXT, "Hello World!")
            clean_close(c)
        end)
        it("7.1.2-7.1.4 ignores what follows a close: a second close, a ping, a message", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000) })
                .. F({ opcode = CLOSE_OP, payload = CLOSE(1000) })
                .. F({ opcode = PING, payload = "x" }) .. F({ opcode = TEXT, payload = "y" }))
            local f = assert(c:read_frame())
            assert.equal(CLOSE_OP, f.opcode)
            assert.is_true(c:wait_tcp_close())
        end)
        it("7.1.5 drops an unfinished message when a close comes", function()
            local c = open()
            c:send(F({ opcode = TEXT, payload = "fragment1", fin = false })
                .. F({ opcode = CLOSE_OP, payload = CLOSE(1000) })
                .. F({ opcode = CONT, payload = "fragment2" }))
            local f = assert(c:read_frame())
            assert.equal(CLOSE_OP, f.opcode)
            assert.is_true(c:wait_tcp_close())
        end)
        it("7.1.6 sends a large echo before answering the close behind it", function()
            local c = open()
            local big = ("BAsd7&jh23"):rep(26214)
            c:send(F({ opcode = TEXT, payload = big }) .. F({ opcode = CLOSE_OP, payload = CLOSE(1000) }))
            echoed(c, TEXT, big)
            assert.equal(1000, (c:expect_close()))
        end)
        it("7.3.1 answers a close without a payload", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP }))
            local code = c:expect_close()
            assert.is_true(code == 1000 or code == 1005, "code " .. code)
        end)
        it("7.3.2 fails a close with a 1-byte payload with 1002", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP, payload = "a" }))
            fails(c, 1002)
        end)
        it("7.3.3/7.3.4 answers a close with a code, with and without a reason", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000) }))
            assert.equal(1000, (c:expect_close()))
            c = open()
            c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000, "Hello World!") }))
            assert.equal(1000, (c:expect_close()))
        end)
        it("7.3.5 answers a close with a 123-byte reason", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000, ("*"):rep(123)) }))
            assert.equal(1000, (c:expect_close()))
        end)
        it("7.3.6 fails a close with a 124-byte reason (a 126-byte control frame) with 1002", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000, ("*"):rep(124)) }))
            fails(c, 1002)
        end)
        it("7.5.1 fails a close whose reason is not UTF-8 with 1007", function()
            local c = open()
            c:send(F({ opcode = CLOSE_OP, payload = CLOSE(1000, "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                .. "\xed\xa0\x80edited") }))
            fails(c, 1007)
        end)
        for _, code in ipairs({ 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                3000, 3999, 4000, 4999 }) do
            it("7.7 echoes the valid close code " .. code, function()
                local c = open()
                c:send(F({ opcode = CLOSE_OP, payload = CLOSE(code) }))
                assert.equal(code, (c:expect_close()))
            end)
        end
        for _, code in ipairs({ 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 }) do
            it("7.9 fails the close code " .. code .. " with 1002", function()
                local c = open()
                c:send(F({ opcode = CLOSE_OP, payload = CLOSE(code) }))
                fails(c, 1002)
            end)
        end
    end)

    describe("masking", function()
        for _, case in ipairs({ { "an unmasked text frame", TEXT, "hello" },
                { "an unmasked binary frame", BINARY, "\1\2\3" }, { "an unmasked ping", PING, "p" },
                { "an unmasked close", CLOSE_OP, CLOSE(1000) } }) do
            it(case[1] .. " fails with 1002", function()
                local c = open()
                c:send(F({ opcode = TEXT, payload = "masked" }))
                echoed(c, TEXT, "masked")
                c:send(F({ opcode = case[2], payload = case[3], masked = false }))
                fails(c, 1002)
            end)
        end
    end)

    describe("9 large messages", function()
        for _, n in ipairs({ 65536, 262144, 1048576, 4194304 }) do
            it(("9.1/9.2 echoes %d bytes of text and of binary"):format(n), function()
                local c = open()
                local text = ("x"):rep(n)
                c:send(F({ opcode = TEXT, payload = text }))
                echoed(c, TEXT, text)
                local data = bytes(n, 3)
                c:send(F({ opcode = BINARY, payload = data }))
                echoed(c, BINARY, data)
                clean_close(c)
            end)
        end
        for _, size in ipairs({ 64, 256, 1024, 4096, 16384, 65536 }) do
            it(("9.3/9.4 reassembles 1 MiB sent in %d-byte fragments"):format(size), function()
                local c = open()
                local data = bytes(1048576, size)
                local frames = {}
                for i = 1, #data, size do
                    frames[#frames + 1] = F({ opcode = i == 1 and BINARY or CONT,
                        payload = data:sub(i, i + size - 1), fin = i + size > #data })
                end
                c:send(table.concat(frames))
                echoed(c, BINARY, data)
                clean_close(c)
            end)
        end
        for _, chop in ipairs({ 64, 1024, 65536 }) do
            it(("9.5/9.6 echoes 1 MiB written in chops of %d bytes"):format(chop), function()
                local c = open()
                local text = ("y"):rep(1048576)
                c:send(F({ opcode = TEXT, payload = text }), chop)
                echoed(c, TEXT, text)
                clean_close(c)
            end)
        end
        it("closes a message past max_message_bytes with 1009", function()
            local c = open()
            c:send(F({ opcode = BINARY, payload = "", len = 17 * 1024 * 1024, len_bytes = 8 })
                .. ("z"):rep(65536))
            fails(c, 1009)
        end)
    end)
end)
