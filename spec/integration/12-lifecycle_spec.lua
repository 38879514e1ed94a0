-- Heartbeats, graceful drain, limits and hostile input: each has a
-- defined outcome, a log line and a metric; everyone else is unharmed.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"
local signal = require "posix.signal"
local cjson = require "cjson"

local function errors(srv, kind)
    local m = prom.parse(client.http(srv:url("/metrics")).body)
    return prom.value(m, "websocket_errors_total", { error_type = kind })
end

local function chat(srv, room, headers)
    return client.ws(srv:ws_url("/ws/chat/" .. room .. "/"), headers)
end

describe("heartbeats #integration", function()
    it("closes a client that never answers pings, and keeps one that does", function()
        local srv = server.start({ config = { heartbeat_interval = 1, heartbeat_timeout = 1 } })
        local silent = assert(chat(srv, "hb")) -- never reads, so never pongs
        local alive = assert(chat(srv, "hb"))
        local line = server.eventually(function()
            alive:receive(0.1) -- reading answers pings (lua-http pongs automatically)
            for _, l in ipairs(srv:logs()) do
                if l.message == "heartbeat timeout: closing" then
                    return l
                end
            end
        end, 10, "the heartbeat timeout")
        assert.is_true(line.silent_seconds >= 2)
        assert.equal(1, errors(srv, "heartbeat_timeout"))
        local status = client.http(srv:url("/status")).json
        assert.equal(1, status.active_connections)
        alive:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, alive:receive_json())
        silent.ws:close(1000, "", 0)
        alive:close()
        assert.equal(0, srv:stop())
    end)
end)

describe("graceful drain #integration #slow", function()
    it("closes 500 connections with 1001 and a reconnect hint, then exits 0", function()
        local srv = server.start({ config = {
            log_level = "INFO", drain_batch_size = 100, drain_reconnect_jitter = 2,
            graceful_shutdown_timeout = 10,
        } })
        local conns = {}
        for i = 1, 500 do
            conns[i] = assert(chat(srv, "drain" .. (i % 5)))
        end
        srv:kill(signal.SIGTERM)
        srv:wait_log(function(l) return l.message == "draining" end)
        local refused = select(2, chat(srv, "late")) -- upgrades are refused from then on
        assert.matches("101", tostring(refused))
        for i = 1, 500 do
            local code, reason = conns[i]:expect_close()
            assert.equal(1001, code)
            local hint = cjson.decode(reason).reconnect_after_ms
            assert.is_true(hint >= 0 and hint <= 2000)
        end
        assert.equal(0, srv:wait_exit(10))
        local line = srv:wait_log(function(l) return l.message == "shutdown" end)
        assert.equal("drained", line.reason)
        assert.is_true(line.shutdown_seconds < 10)
        assert.same({}, srv:error_lines())
        srv:stop()
    end)

    it("uses the configured close code", function()
        local srv = server.start({ config = { drain_close_code = 1012 } })
        local ws = assert(chat(srv, "restart"))
        srv:kill(signal.SIGTERM)
        ws:expect_close() -- lua-http reports 1012 as reserved: read the server's log
        local line = srv:wait_log(function(l) return l.message == "WebSocket disconnected" end)
        assert.equal(1012, line.code)
        assert.equal(0, srv:wait_exit(10))
        srv:stop()
    end)
end)

describe("limits #integration", function()
    it("closes a slow reader with 1013 while fast readers keep receiving", function()
        local srv = server.start({ config = { max_send_queue_bytes = "64K", log_level = "INFO" } })
        local slow = assert(chat(srv, "flood"))
        local fast = assert(chat(srv, "flood"))
        local big = string.rep("z", 32 * 1024)
        local closed = false
        for i = 1, 400 do
            fast:send_json({ type = "message", text = big .. i })
            assert.equal(big .. i, fast:receive_json().text)
            local l = srv:logs()
            if i % 20 == 0 and l[#l].message == "WebSocket disconnected" then
                closed = true
                break
            end
        end
        local line = srv:wait_log(function(l) return l.message == "send queue overflow: closing" end)
        assert.is_true(line.queued_bytes > 0)
        assert.is_true(errors(srv, "send_queue_overflow") >= 1)
        assert.is_true(closed or srv:wait_log(function(l)
            return l.message == "WebSocket disconnected" and l.code == 1013
        end) ~= nil)
        fast:send_json({ type = "message", text = "after" })
        assert.equal("after", fast:receive_json().text)
        pcall(slow.ws.close, slow.ws, 1000, "", 0) -- the server has reset it
        fast:close()
        assert.equal(0, srv:stop())
    end)

    it("drops the oldest frames of a slow reader with the drop_oldest policy", function()
        local srv = server.start({ config = {
            max_send_queue_bytes = "64K", send_queue_policy = "drop_oldest",
        } })
        local slow = assert(chat(srv, "drop"))
        local fast = assert(chat(srv, "drop"))
        local big = string.rep("y", 32 * 1024)
        for i = 1, 300 do
            fast:send_json({ type = "message", text = big .. i })
            fast:receive_json()
        end
        assert.is_true(errors(srv, "send_queue_overflow") >= 1)
        local m = prom.parse(client.http(srv:url("/metrics")).body)
        assert.is_true(prom.value(m, "moontide_send_queue_dropped_frames_total") >= 1)
        assert.equal(2, client.http(srv:url("/status")).json.active_connections)
        slow.ws:close(1000, "", 0)
        fast:close()
        assert.equal(0, srv:stop())
    end)

    it("rate-limits messages with an error reply, or a close", function()
        local srv = server.start({ config = { rate_limit = 5, rate_limit_burst = 5 } })
        local ws = assert(chat(srv, "rate"))
        for _ = 1, 20 do
            ws:send_json({ type = "heartbeat" })
        end
        local acks, limited = 0, 0
        for _ = 1, 20 do
            local msg = ws:receive_json()
            if msg.type == "heartbeat_ack" then
                acks = acks + 1
            elseif msg.error == "rate_limited" then
                limited = limited + 1
            end
        end
        assert.is_true(acks >= 5 and acks < 20)
        assert.equal(20, acks + limited)
        assert.equal(limited, errors(srv, "rate_limited"))
        ws:close()
        assert.equal(0, srv:stop())

        srv = server.start({ config = { rate_limit = 2, rate_limit_action = "close" } })
        ws = assert(chat(srv, "rate"))
        for _ = 1, 10 do
            ws:send_json({ type = "heartbeat" })
        end
        assert.equal(1008, ws:expect_close())
        assert.equal(0, srv:stop())
    end)

    it("accepts only allowed origins", function()
        local srv = server.start({ config = { allowed_origins = { "https://good.example" } } })
        local ok = assert(chat(srv, "o", { origin = "https://good.example" }))
        local bad, err = chat(srv, "o", { origin = "https://evil.example" })
        assert.is_nil(bad)
        assert.matches("101", err)
        local line = srv:wait_log(function(l) return l.message == "request" and l.status == 403 end)
        assert.equal("/ws/chat/{room}/", line.endpoint)
        assert.is_nil((chat(srv, "o"))) -- no Origin at all
        ok:close()
        assert.equal(0, srv:stop())
    end)

    it("closes a socket that says nothing within the handshake timeout", function()
        local srv = server.start({ config = { handshake_timeout = 1 } })
        local socket = require "cqueues.socket"
        local s = socket.connect("127.0.0.1", srv.port)
        s:setmode("b", "b")
        local data, err = s:read(1) -- blocks until the server hangs up
        assert.is_nil(data)
        assert.is_nil(err) -- EOF, not an error
        s:close()
        assert.equal(200, client.http(srv:url("/healthz")).status)
        assert.equal(0, srv:stop())
    end)
end)

describe("malformed input #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start()
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
    end)

    it("closes with 1003 on a binary message where the route takes none", function()
        local ws = assert(chat(srv, "bin"))
        ws.ws:send("\0\1\2", "binary")
        assert.equal(1003, ws:expect_close())
    end)

    it("closes with 1007 on invalid UTF-8 in a text frame", function()
        local ws = assert(chat(srv, "utf"))
        ws.ws:send_frame({ opcode = 1, FIN = true, MASK = true, data = "\xff\xfe\xfd" })
        assert.equal(1007, ws:expect_close())
    end)

    it("closes with 1002 on a fragmented control frame", function()
        local ws = assert(chat(srv, "proto"))
        ws.ws:send_frame({ opcode = 9, FIN = false, MASK = true, data = "x" })
        assert.equal(1002, ws:expect_close())
    end)

    it("refuses an oversized header without harm", function()
        local ok, res = pcall(client.http, srv:url("/healthz"),
            { headers = { ["x-huge"] = string.rep("h", 16 * 1024) } })
        assert.is_true(not ok or res.status >= 400)
        assert.equal(200, client.http(srv:url("/healthz")).status)
        local chatter = assert(chat(srv, "after"))
        chatter:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, chatter:receive_json())
        chatter:close()
        srv:logs() -- every line still parses
    end)
end)
