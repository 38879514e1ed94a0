--- spec.support.client: real HTTP and WebSocket clients (lua-http).
--
--   local client = require "spec.support.client"
--   local res = client.http(srv:url("/healthz"), { method = "GET", headers = {...} })
--   res.status, res.headers["x-request-id"], res.body, res.json
--   local ws = assert(client.ws(srv:ws_url("/ws/chat/lobby/")))
--   ws:send_json({ type = "heartbeat" }); ws:receive_json() -> table
--   ws:expect_close() -> code, reason
--   ws:receive_message(), ws:drain() -> chat messages (history frames unwrapped)
--   client.exactly_once(a, b, n, tag) -> n messages from a reach a and b once each
--   client.raw(port, "GET / HTTP/1.1\r\n...") -> everything the server wrote
--       until it closed (or timeout), for exact status lines and bytes
local cjson = require "cjson.safe"
local request = require "http.request"
local websocket = require "http.websocket"

local _M = {}

_M.TIMEOUT = 5

--- A TLS client context that trusts only the CA in ca_pem (a PEM string),
-- verifying the server's certificate: for https:// and wss:// URLs.
function _M.tls_context(ca_pem)
    local ctx = require("http.tls").new_client_context()
    local store = require("openssl.x509.store").new()
    store:add(require("openssl.x509").new(ca_pem, "PEM"))
    ctx:setStore(store)
    ctx:setVerify(require("openssl.ssl.context").VERIFY_PEER)
    return ctx
end

--- Makes one HTTP request. Returns { status, headers, body, json }.
-- opts: method, headers, body, timeout, ctx (a TLS context: tls_context).
function _M.http(url, opts)
    opts = opts or {}
    local req = request.new_from_uri(url)
    req.ctx = opts.ctx or req.ctx
    req.follow_redirects = false -- a 3xx (a 304 too) is the answer under test
    req.headers:upsert(":method", opts.method or "GET")
    for k, v in pairs(opts.headers or {}) do
        req.headers:upsert(k, v)
    end
    if opts.body then
        req:set_body(opts.body)
    end
    local headers, stream = req:go(opts.timeout or _M.TIMEOUT)
    if not headers then
        error("HTTP request to " .. url .. " failed: " .. tostring(stream), 2)
    end
    local res = { status = tonumber(headers:get(":status")), headers = {} }
    for k, v in headers:each() do
        res.headers[k] = v
    end
    if (opts.method or "GET") ~= "HEAD" then
        res.body = stream:get_body_as_string(opts.timeout or _M.TIMEOUT) or ""
    end
    stream:shutdown()
    res.json = res.body and cjson.decode(res.body) or nil
    return res
end

--- Writes bytes to a fresh loopback connection and returns all the
-- server sends back until it closes the connection or timeout seconds
-- pass (then also true as a second value). The server may close before
-- taking all the bytes.
function _M.raw(port, bytes, timeout)
    local socket = require "cqueues.socket"
    local s = assert(socket.connect("127.0.0.1", port))
    s:setmode("b", "b")
    s:settimeout(timeout or _M.TIMEOUT)
    -- A server may answer and close before it has read everything (a
    -- header block over its limit): the write then fails with EPIPE or
    -- ECONNRESET, and what it answered is still there to read.
    local ok, werr = s:xwrite(bytes, "bn")
    if not ok and werr ~= 32 and werr ~= 104 then
        error("write failed: " .. tostring(werr))
    end
    local chunks, data, err = {}
    repeat
        data, err = s:read(-4096)
        chunks[#chunks + 1] = data
    until not data
    s:close()
    return table.concat(chunks), err ~= nil
end

local WS = {}
WS.__index = WS

--- Opens a WebSocket, offering protocols (a list of subprotocols) if
-- given; ctx: a TLS context for wss:// (tls_context). Returns the client
-- (ws.ws.protocol: the one the server chose), or nil and the error (e.g.
-- "status code not 101").
function _M.ws(url, headers, protocols, ctx)
    local ws = websocket.new_from_uri(url, protocols)
    ws.request.ctx = ctx or ws.request.ctx
    for k, v in pairs(headers or {}) do
        ws.request.headers:upsert(k, v)
    end
    local ok, err = ws:connect(_M.TIMEOUT)
    if not ok then
        return nil, err
    end
    return setmetatable({ ws = ws }, WS)
end

function WS:send(text)
    return self.ws:send(text)
end

function WS:send_json(tbl)
    return self.ws:send(assert(cjson.encode(tbl)))
end

--- The next text message, or nil, err, code (a close gives its code).
function WS:receive(timeout)
    return self.ws:receive(timeout or _M.TIMEOUT)
end

--- The next message decoded as JSON; raises if none comes.
function WS:receive_json(timeout)
    local data, err, code = self:receive(timeout)
    if not data then
        error("no message: " .. tostring(err) .. " " .. tostring(code), 2)
    end
    return cjson.decode(data)
end

--- The next chat message ({"type":"message",...}); raises if none comes.
-- A member that joins while messages are published may get them in the
-- history frame it is sent on joining instead of live (each in one or the
-- other): those are returned first, in order. Frames of other types
-- (presence, ...) are skipped.
function WS:receive_message(timeout)
    self.early = self.early or {}
    for _ = 1, 10 do
        if #self.early > 0 then
            return table.remove(self.early, 1)
        end
        local m = self:receive_json(timeout)
        if m.type == "message" then
            return m
        elseif m.type == "history" then
            self.early = m.messages
        end
    end
    error("no message among the next 10 frames", 2)
end

--- The chat messages that arrive until none comes for quiet seconds
-- (default 0.5), those waiting from a history frame first; other frames
-- are skipped.
function WS:drain(quiet)
    local out = {}
    self.early = self.early or {}
    while true do
        if #self.early > 0 then
            out[#out + 1] = table.remove(self.early, 1)
        else
            local data = self.ws:receive(quiet or 0.5)
            if not data then
                return out
            end
            local m = cjson.decode(data)
            if m.type == "message" then
                out[#out + 1] = m
            elseif m.type == "history" then
                self.early = m.messages
            end
        end
    end
end

--- Asserts that nothing arrives within timeout seconds (nor waits unread
-- from a history frame).
function WS:nothing(timeout)
    if self.early and #self.early > 0 then
        return false
    end
    local data = self.ws:receive(timeout or 0.3)
    return data == nil
end

--- Waits for the server's close; returns the code and reason. Messages
-- that arrive first are skipped.
function WS:expect_close(timeout)
    local deadline = os.time() + (timeout or _M.TIMEOUT)
    while os.time() <= deadline do
        local data, reason, code = self.ws:receive(timeout or _M.TIMEOUT)
        if not data then
            if type(code) ~= "number" or code < 1000 then -- an errno, not a close
                error("no close from the server: " .. tostring(reason), 2)
            end
            return code, reason
        end
    end
    error("the server did not close the connection", 2)
end

function WS:close(code, reason)
    return self.ws:close(code or 1000, reason or "", 2)
end

--- Sends n chat messages from a ("<tag>1" ...) and asserts that a and b
-- (members of the same room, on one instance or two) each get every one
-- exactly once, and nothing more.
function _M.exactly_once(a, b, n, tag)
    local check = require "luassert"
    for i = 1, n do
        a:send_json({ type = "message", text = tag .. i })
    end
    for _, ws in ipairs({ a, b }) do
        local seen = {}
        for _ = 1, n do
            local m = ws:receive_message()
            check.is_nil(seen[m.text], "duplicate " .. tostring(m.text))
            seen[m.text] = true
        end
        for i = 1, n do
            check.is_true(seen[tag .. i], "lost " .. tag .. i)
        end
        check.is_true(ws:nothing(0.3))
    end
end

return _M
