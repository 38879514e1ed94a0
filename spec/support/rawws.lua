--- spec.support.rawws: a raw RFC 6455 client for conformance specs.
--
--   local rawws = require "spec.support.rawws"
--   local c = assert(rawws.connect(port, "/ws/echo/"))
--   c:send(rawws.frame({ opcode = 1, payload = "hi" }))     -- masked, FIN
--   c:send(bytes, 1)                                         -- chopped: 1 byte per write
--   c:read_frame(timeout) -> { fin, rsv, opcode, masked, payload } | nil, "closed"|"timeout"
--   c:expect_close(timeout) -> code, reason  (then asserts the TCP close)
--
-- Frames are built byte by byte, so a spec can send what no sane client
-- would: unmasked frames, reserved bits and opcodes, oversize control
-- frames, any length encoding. The server's frames are parsed strictly:
-- a masked server frame is an error.
local socket = require "cqueues.socket"
local bit = require "bit"

local band, bor, bxor, rshift = bit.band, bit.bor, bit.bxor, bit.rshift
local char, byte, concat = string.char, string.byte, table.concat

local _M = {}

local Client = {}
Client.__index = Client

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="

--- Opens a WebSocket to path on the loopback port; extra: more request
-- header lines ("Name: value\r\n"); ctx: a TLS client context (wss).
-- Returns the client (c.head: the response head, for its headers), or nil
-- and the response head when the server did not answer 101.
function _M.connect(port, path, extra, ctx)
    local s = assert(socket.connect("127.0.0.1", port))
    if ctx then
        assert(s:starttls(ctx))
    end
    s:setmode("b", "b")
    s:settimeout(5)
    assert(s:xwrite(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        .. "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n")
        :format(path, port, KEY, extra or ""), "bn"))
    local head = {}
    while true do
        local line = s:read("*l")
        if not line then
            break
        end
        if line == "" or line == "\r" then
            break
        end
        head[#head + 1] = line
    end
    local text = concat(head, "\n")
    if not text:find("^HTTP/1.1 101 ") then
        s:close()
        return nil, text
    end
    return setmetatable({ s = s, head = text }, Client)
end

local ffi = require "ffi"

-- XOR with the 4-byte key (RFC 6455 5.3), fast enough for megabytes.
local function mask_bytes(payload, key)
    local n = #payload
    local out = ffi.new("uint8_t[?]", n)
    ffi.copy(out, payload, n)
    local k = { byte(key, 1, 4) }
    for i = 0, n - 1 do
        out[i] = bxor(out[i], k[i % 4 + 1])
    end
    return ffi.string(out, n)
end

--- A frame as bytes. opts: payload (""), opcode (1), fin (true), rsv
-- (0-7), masked (true), key (4 bytes), len (the length to claim, default
-- #payload), len_bytes (force 7-bit, 16- or 64-bit length: 0, 2 or 8).
function _M.frame(opts)
    local payload = opts.payload or ""
    local fin = opts.fin ~= false
    local masked = opts.masked ~= false
    local n = opts.len or #payload
    local b0 = bor(fin and 0x80 or 0, bit.lshift(opts.rsv or 0, 4), opts.opcode or 1)
    local parts = { char(b0) }
    local lb = opts.len_bytes or (n < 126 and 0 or n < 65536 and 2 or 8)
    local m = masked and 0x80 or 0
    if lb == 0 then
        parts[#parts + 1] = char(bor(m, n))
    elseif lb == 2 then
        parts[#parts + 1] = char(bor(m, 126), band(rshift(n, 8), 255), band(n, 255))
    else
        local hi, lo = math.floor(n / 2 ^ 32), n % 2 ^ 32
        parts[#parts + 1] = char(bor(m, 127), band(rshift(hi, 24), 255), band(rshift(hi, 16), 255),
            band(rshift(hi, 8), 255), band(hi, 255), band(rshift(lo, 24), 255),
            band(rshift(lo, 16), 255), band(rshift(lo, 8), 255), band(lo, 255))
    end
    if masked then
        local key = opts.key or "\x37\xfa\x21\x3d"
        parts[#parts + 1] = key
        parts[#parts + 1] = mask_bytes(payload, key)
    else
        parts[#parts + 1] = payload
    end
    return concat(parts)
end

--- A close frame's payload: the code (2 bytes) and a reason.
function _M.close_payload(code, reason)
    return char(band(rshift(code, 8), 255), band(code, 255)) .. (reason or "")
end

--- Writes bytes, all at once or in pieces of chop bytes (each flushed,
-- so they reach the server as separate segments). Returns true, or nil
-- and the error (the server may have closed already).
function Client:send(bytes, chop)
    if not chop then
        return self.s:xwrite(bytes, "bn")
    end
    for i = 1, #bytes, chop do
        local ok, err = self.s:xwrite(bytes:sub(i, i + chop - 1), "bn")
        if not ok then
            return nil, err
        end
        self.s:flush("n")
    end
    return true
end

-- Reads exactly n bytes; nil and "closed" or "timeout" otherwise.
function Client:take(n)
    if n == 0 then
        return ""
    end
    local data, err = self.s:read(n)
    if data and #data == n then
        return data
    end
    if err and tostring(err):find("timed out") or err == 110 then
        return nil, "timeout"
    end
    return nil, "closed"
end

--- The next frame from the server, or nil and "closed" / "timeout".
function Client:read_frame(timeout)
    self.s:settimeout(timeout or 5)
    local h, err = self:take(2)
    if not h then
        return nil, err
    end
    local b0, b1 = byte(h, 1, 2)
    local f = { fin = band(b0, 0x80) ~= 0, rsv = rshift(band(b0, 0x70), 4), opcode = band(b0, 15),
        masked = band(b1, 0x80) ~= 0 }
    local n = band(b1, 127)
    if n == 126 then
        local x = assert(self:take(2))
        n = byte(x, 1) * 256 + byte(x, 2)
    elseif n == 127 then
        local x = assert(self:take(8))
        n = 0
        for i = 1, 8 do
            n = n * 256 + byte(x, i)
        end
    end
    local key
    if f.masked then
        key = assert(self:take(4))
    end
    f.payload, err = self:take(n)
    if not f.payload then
        return nil, err
    end
    if key then
        f.payload = mask_bytes(f.payload, key)
    end
    return f
end

--- The next data message (frames reassembled), answering nothing; control
-- frames that arrive first are returned as they are.
function Client:read_message(timeout)
    local parts, first = {}, nil
    while true do
        local f, err = self:read_frame(timeout)
        if not f then
            return nil, err
        end
        if f.opcode >= 8 then
            return f
        end
        first = first or f
        parts[#parts + 1] = f.payload
        if f.fin then
            return { opcode = first.opcode, payload = concat(parts), fin = true, rsv = first.rsv,
                masked = f.masked }
        end
    end
end

--- Reads until the server's close frame; returns its code (1005 when it
-- has none) and reason, then waits for the server to close the TCP
-- connection (raises if it does not within timeout). Data frames that
-- arrive before the close are skipped.
function Client:expect_close(timeout)
    while true do
        local f, err = self:read_frame(timeout)
        if not f then
            error("expected a close frame, got " .. tostring(err), 2)
        end
        if f.masked then
            error("the server sent a masked frame", 2)
        end
        if f.opcode == 8 then
            local code = #f.payload >= 2 and byte(f.payload, 1) * 256 + byte(f.payload, 2) or 1005
            -- answer the close, as a client does, then expect the TCP close
            self:send(_M.frame({ opcode = 8, payload = f.payload:sub(1, 2) }))
            local closed = self:wait_tcp_close(timeout)
            if not closed then
                error("the server did not close the TCP connection after its close frame", 2)
            end
            return code, f.payload:sub(3)
        end
    end
end

--- True once the server has closed the connection (reads to EOF).
function Client:wait_tcp_close(timeout)
    self.s:settimeout(timeout or 5)
    local deadline = os.time() + (timeout or 5) + 1
    while os.time() <= deadline do
        local data, err = self.s:read(-65536)
        if not data then
            return err == nil or not tostring(err):find("timed out")
        end
    end
    return false
end

function Client:close()
    self.s:close()
end

return _M
