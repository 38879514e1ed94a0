-- A server of several workers on one port: rooms span the workers without
-- Redis, a killed worker comes back without the others noticing, reloads
-- switch every worker or none, /metrics, /status and /readyz speak for the
-- whole server, SIGTERM drains them all.
local server = require "spec.support.server"
local client = require "spec.support.client"
local prom = require "spec.support.prom"
local signal = require "posix.signal"
local cjson = require "cjson"

local LOADGEN = server.ROOT .. "/build/loadgen"

local function loadgen(srv, args)
    local p = assert(io.popen(("%s --port %d %s 2>/dev/null"):format(LOADGEN, srv.port, args)))
    local out = p:read("*a")
    p:close()
    return cjson.decode(out)
end

local function status(srv)
    return client.http(srv:url("/status")).json
end

local function metrics(srv)
    return prom.parse(client.http(srv:url("/metrics")).body)
end

-- The server's metrics once every worker has posted its latest figures:
-- the same counts seen over more than a second (each worker posts its
-- figures once a second; a scrape sees the others' last post).
local function settled(srv)
    local seen, since, m
    server.eventually(function()
        m = metrics(srv)
        local key = prom.value(m, "websocket_messages_total", { type = "received" }) .. "/"
            .. prom.value(m, "websocket_connections_total")
        local t = require("posix.time").clock_gettime(require("posix.time").CLOCK_MONOTONIC)
        local now = t.tv_sec + t.tv_nsec / 1e9
        if key ~= seen then
            seen, since = key, now
        end
        return now - since > 1.2
    end, 10, "settled metrics")
    return m
end

-- Opens n chat clients in room; returns them.
local function clients(srv, room, n)
    local list = {}
    for i = 1, n do
        list[i] = assert(client.ws(srv:ws_url("/ws/chat/" .. room .. "/")))
    end
    return list
end

local function close_all(list)
    for _, ws in ipairs(list) do
        pcall(ws.close, ws)
    end
end

describe("workers #integration", function()
    describe("two workers", function()
        local srv

        lazy_setup(function()
            srv = server.start({ config = { workers = 2, log_level = "INFO",
                admin_token = "s3cret" } })
        end)

        lazy_teardown(function()
            if srv then
                srv:stop()
            end
        end)

        it("run under one supervisor, each with its pid, up and ready", function()
            local st = status(srv)
            assert.equal(2, #st.workers)
            for i, w in ipairs(st.workers) do
                assert.equal(i, w.worker)
                assert.is_true(w.up and w.ready)
                assert.is_true(w.pid > 0 and w.pid ~= srv.pid)
                assert.equal(1, w.generation)
            end
            assert.equal(200, client.http(srv:url("/readyz")).status)
            -- every line says which process wrote it: 0 the supervisor
            for _, l in ipairs(srv:logs()) do
                assert.is_number(l.worker, cjson.encode(l))
            end
        end)

        it("deliver a room's messages once each, in order per sender, across workers", function()
            local r = loadgen(srv, "--mode broadcast --conns 200 --senders 10 --rate 200 "
                .. "--duration 2 --room spread")
            assert.equal(200, r.members)
            assert.is_true(r.sent > 300)
            assert.equal(r.expected, r.received)
            assert.equal(0, r.out_of_order)
            assert.equal(0, r.skipped)
        end)

        it("spread connections over both and count them for the server", function()
            local list = clients(srv, "count", 20)
            local st = server.eventually(function()
                local s = status(srv)
                return s.active_connections == 20 and s
            end, 5, "20 connections counted")
            assert.equal(20, st.workers[1].connections + st.workers[2].connections)
            assert.is_true(st.workers[1].connections > 0 and st.workers[2].connections > 0)
            close_all(list)
            server.eventually(function() return status(srv).active_connections == 0 end, 5,
                "connections closed")
        end)

        it("sum their counters in one /metrics that promtool accepts", function()
            local before = settled(srv)
            local received0 = prom.value(before, "websocket_messages_total", { type = "received" })
            local total0 = prom.value(before, "websocket_connections_total")
            local list = clients(srv, "metered", 10)
            for _, ws in ipairs(list) do
                for _ = 1, 3 do
                    ws:send_json({ type = "heartbeat" })
                    assert.equal("heartbeat_ack", ws:receive_json().type)
                end
            end
            -- each worker posts its figures once a second
            server.eventually(function()
                local m = metrics(srv)
                return prom.value(m, "websocket_messages_total", { type = "received" })
                    == received0 + 30
                    and prom.value(m, "websocket_connections_total") == total0 + 10
                    and prom.value(m, "websocket_connections_active") == 10
            end, 5, "the sum of both workers")
            local text = client.http(srv:url("/metrics")).body
            local ok, out = prom.check(text)
            assert.is_true(ok, out)
            local m = prom.parse(text)
            assert.equal(1, prom.value(m, "moontide_worker_up", { worker = "1" }))
            assert.equal(1, prom.value(m, "moontide_worker_up", { worker = "2" }))
            assert.equal(1, prom.value(m, "moontide_ready"))
            close_all(list)
        end)

        it("reload every worker, with 1 000 connections open, dropping none", function()
            local list = clients(srv, "reload", 1000)
            for i = 1, 3 do
                local res = client.http(srv:url("/admin/reload"), { method = "POST",
                    headers = { authorization = "Bearer s3cret" } })
                assert.equal(200, res.status, res.body)
                assert.equal(2, #res.json.workers)
                for _, w in ipairs(res.json.workers) do
                    assert.equal("success", w.result)
                    assert.equal(1 + i, w.generation)
                end
            end
            for _, ws in ipairs(list) do
                ws:send_json({ type = "heartbeat" })
            end
            for _, ws in ipairs(list) do
                assert.equal("heartbeat_ack", ws:receive_json().type)
            end
            for _, w in ipairs(status(srv).workers) do
                assert.equal(4, w.generation)
            end
            close_all(list)
        end)

        it("refuse a reload in every worker when one cannot load it", function()
            -- a handler that fails to load in one worker only: the one whose
            -- pid has a marker file
            local victim = status(srv).workers[2]
            local handler = srv.dir .. "/lua/handlers/chat.lua"
            local f = assert(io.open(handler))
            local original = f:read("*a")
            f:close()
            local marker = srv.dir .. "/fail-" .. victim.pid
            assert(io.open(marker, "w")):close()
            f = assert(io.open(handler, "w"))
            f:write(([[
local stat = io.open("/proc/self/stat")
local pid = stat:read("*n")
stat:close()
if io.open(%q .. pid) then error("planted failure") end
]]):format(srv.dir .. "/fail-") .. original)
            f:close()
            finally(function()
                os.remove(marker)
                local g = assert(io.open(handler, "w"))
                g:write(original)
                g:close()
            end)
            local gen = status(srv).workers[1].generation
            local res = server.eventually(function()
                local r = client.http(srv:url("/admin/reload"), { method = "POST",
                    headers = { authorization = "Bearer s3cret" } })
                -- the file watch may be reloading already: wait for ours
                return r.status == 500 and r
            end, 5, "the refused reload")
            local by = {}
            for _, w in ipairs(res.json.workers) do
                by[w.worker] = w
            end
            assert.equal("failure", by[2].result)
            assert.matches("planted failure", by[2].error)
            assert.equal("failure", by[1].result)
            assert.matches("worker 2: .*planted failure", by[1].error)
            for _, w in ipairs(status(srv).workers) do
                assert.equal(gen, w.generation) -- nobody switched
            end
            local l = srv:wait_log(function(x)
                return x.message == "script reload failed: every worker kept its generation"
            end)
            assert.equal(0, l.worker)
        end)

        it("answer /readyz for the server: not ready while one worker is not", function()
            local victim = status(srv).workers[2]
            local policy = srv.dir .. "/lua/policies/health.lua"
            local f = assert(io.open(policy))
            local original = f:read("*a")
            f:close()
            local marker = srv.dir .. "/unready-" .. victim.pid
            f = assert(io.open(policy, "w"))
            f:write(([[
local stat = io.open("/proc/self/stat")
local pid = stat:read("*n")
stat:close()
local policy = (function() %s end)()
local readiness = policy.readiness
function policy.readiness(facts)
    if io.open(%q .. pid) then
        return false, { planted = "no" }, { "planted" }
    end
    return readiness(facts)
end
return policy
]]):format(original, srv.dir .. "/unready-"))
            f:close()
            finally(function()
                os.remove(marker)
                local g = assert(io.open(policy, "w"))
                g:write(original)
                g:close()
            end)
            server.eventually(function()
                local r = client.http(srv:url("/admin/reload"), { method = "POST",
                    headers = { authorization = "Bearer s3cret" } })
                return r.status == 200
            end, 5, "the policy loaded")
            assert.equal(200, client.http(srv:url("/readyz")).status)
            assert(io.open(marker, "w")):close()
            -- whichever worker answers, the server is not ready
            local res = server.eventually(function()
                local r = client.http(srv:url("/readyz"))
                return r.status == 503 and r
            end, 5, "503 from the server")
            assert.equal("not_ready", res.json.status)
            os.remove(marker)
            server.eventually(function()
                return client.http(srv:url("/readyz")).status == 200
                    and client.http(srv:url("/readyz")).status == 200
            end, 5, "ready again")
        end)

        it("restart a killed worker; its clients reconnect, the others never notice", function()
            local list = clients(srv, "crash", 20)
            local st = server.eventually(function()
                local s = status(srv)
                return s.active_connections == 20 and s
            end, 5, "20 connections")
            local victim = st.workers[1]
            local on_victim = victim.connections
            signal.kill(victim.pid, signal.SIGKILL)
            -- the victim's clients see their connection end (no close frame)
            local dropped, alive = {}, {}
            for _, ws in ipairs(list) do
                ws:send_json({ type = "heartbeat" })
                local msg = ws:receive(2)
                if msg then
                    alive[#alive + 1] = ws
                else
                    dropped[#dropped + 1] = ws
                end
            end
            assert.equal(on_victim, #dropped)
            assert.equal(20 - on_victim, #alive)
            -- the others chat on, undisturbed
            alive[1]:send_json({ type = "message", text = "still here" })
            for _, ws in ipairs(alive) do
                assert.equal("still here", ws:receive_json().text)
            end
            -- the supervisor restarts it, says so, counts it
            srv:wait_log(function(l)
                return l.message == "worker exited" and l.worker_index == 1
                    and l.signal == "Killed"
            end)
            local back = server.eventually(function()
                local s = status(srv)
                local w = s.workers[1]
                return w.up and w.pid ~= victim.pid and w
            end, 10, "worker 1 back")
            assert.equal(1, back.restarts)
            server.eventually(function()
                local m = metrics(srv)
                return prom.value(m, "moontide_worker_restarts_total", { worker = "1" }) == 1
            end, 5, "the restart counted")
            -- reconnecting works (a fresh join may first get the room's
            -- history: none if the killed worker held the room's stream)
            local again = clients(srv, "crash", #dropped)
            again[1]:send_json({ type = "message", text = "back" })
            for _, ws in ipairs(again) do
                local m = ws:receive_json()
                if m.type == "history" then
                    m = ws:receive_json()
                end
                assert.equal("back", m.text)
            end
            close_all(alive)
            close_all(again)
        end)

        it("drain every worker on SIGTERM: 1001 for all, exit 0", function()
            local list = clients(srv, "drain", 20)
            server.eventually(function() return status(srv).active_connections == 20 end, 5,
                "20 connections")
            srv:kill(signal.SIGTERM)
            for _, ws in ipairs(list) do
                assert.equal(1001, ws:expect_close())
            end
            assert.equal(0, srv:wait_exit(15))
            local l = srv:wait_log(function(x) return x.message == "shutdown" and x.worker == 0 end)
            assert.equal(0, l.exit_status)
            srv:stop()
            srv = nil
        end)
    end)

    it("runs three workers on two cores", function()
        local srv = server.start({ config = { workers = 3, log_level = "INFO" } })
        finally(function() srv:stop() end)
        assert.equal(3, #status(srv).workers)
        local r = loadgen(srv, "--mode broadcast --conns 60 --senders 6 --rate 120 --duration 1 "
            .. "--room three")
        assert.equal(r.expected, r.received)
        assert.equal(0, r.out_of_order)
        assert.equal(0, r.skipped)
    end)

    it("refuses to start when a worker cannot, and exits 1", function()
        local srv = server.start({ config = { workers = 2 }, wait = false,
            files = { ["routes.lua"] = "return {" } })
        finally(function() srv:stop() end)
        assert.equal(1, srv:wait_exit(10))
        srv:wait_log(function(l) return l.message == "worker 1 failed to start: stopping"
            or l.message == "worker 2 failed to start: stopping" end)
    end)
end)
