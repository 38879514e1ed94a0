-- Hot reload: code changes under live connections, none is dropped.
local server = require "spec.support.server"
local client = require "spec.support.client"
local signal = require "posix.signal"
local util = require "spec.support.util"
local read = util.read

-- Writes a file the way editors do: a temporary file renamed over it.
local function write_renamed(path, text)
    local tmp = path:gsub("([^/]+)$", ".%1.tmp")
    local f = assert(io.open(tmp, "w"))
    f:write(text)
    f:close()
    assert(os.rename(tmp, path))
end

local CHAT = read("lua/handlers/chat.lua")
local ACK = [[local HEARTBEAT_ACK = '{"type":"heartbeat_ack"}']]
assert(CHAT:find(ACK, 1, true), "chat.lua's heartbeat reply changed: update this spec")

local function chat_version(v)
    local ack = ([[local HEARTBEAT_ACK = '{"type":"heartbeat_ack","v":%d}']]):format(v)
    return (CHAT:gsub(ACK:gsub("%p", "%%%0"), ack))
end

local function versioned(v)
    return (read("spec/fixtures/handlers/versioned.lua"):gsub("__VERSION__", v))
end

local function status(srv)
    return client.http(srv:url("/status")).json
end

local function wait_generation(srv, g)
    return server.eventually(function()
        local s = status(srv)
        return s.scripts.generation == g and s
    end, 10, "script generation " .. g)
end

describe("hot reload #integration #slow", function()
    local srv

    lazy_setup(function()
        srv = server.start({
            config = { log_level = "INFO", admin_token = "s3cret" },
            files = {
                ["routes.lua"] = read("spec/fixtures/routes_versioned.lua"),
                ["handlers/versioned.lua"] = versioned("v1"),
            },
        })
    end)

    lazy_teardown(function()
        assert.equal(0, srv:stop())
    end)

    it("swaps the code under 1000 connections 20 times without a disconnect", function()
        local N = 1000
        local conns = {}
        for i = 1, N do
            conns[i] = assert(client.ws(srv:ws_url("/ws/chat/reload" .. (i % 10) .. "/")))
        end
        local gen = status(srv).scripts.generation
        for v = 1, 20 do
            write_renamed(srv.dir .. "/lua/handlers/chat.lua", chat_version(v))
            gen = gen + 1
            wait_generation(srv, gen)
            for i = 1, N do
                conns[i]:send_json({ type = "heartbeat" })
            end
            for i = 1, N do
                assert.same({ type = "heartbeat_ack", v = v }, conns[i]:receive_json())
            end
        end
        local s = status(srv)
        assert.equal(N, s.active_connections)
        assert.equal("success", s.scripts.last_reload.result)
        assert.equal("watch", s.scripts.last_reload.trigger)
        for _, l in ipairs(srv:logs()) do
            assert.is_not.equal("WebSocket disconnected", l.message)
        end
        local reloads = 0
        for _, l in ipairs(srv:logs()) do
            if l.message == "scripts reloaded" then
                reloads = reloads + 1
                assert.same({ "handlers/chat.lua" }, l.files)
            end
        end
        assert.equal(20, reloads)
        for i = 1, N do
            conns[i]:close()
        end
    end)

    it("keeps the running code when the new code has a syntax error", function()
        local ws = assert(client.ws(srv:ws_url("/ws/versioned/plain/")))
        local gen = status(srv).scripts.generation
        write_renamed(srv.dir .. "/lua/handlers/versioned.lua", "local x = = 1\nreturn {}")
        local line = srv:wait_log(function(l)
            return l.message == "script reload failed: running generation kept"
        end)
        assert.equal("ERROR", line.level)
        assert.matches("handlers/versioned%.lua:1:", line.error)
        local s = status(srv)
        assert.equal(gen, s.scripts.generation)
        assert.equal("failure", s.scripts.last_reload.result)
        assert.matches("versioned%.lua:1:", s.scripts.last_reload.error)
        ws:send("count")
        assert.equal("v1:1:nil", ws:receive())
        ws:close()
    end)

    it("keeps the running code when the new code raises while loading", function()
        local ws = assert(client.ws(srv:ws_url("/ws/versioned/plain/")))
        local res = client.http(srv:url("/admin/reload"), { method = "POST" })
        assert.equal(500, res.status) -- the broken file is still on disk
        write_renamed(srv.dir .. "/lua/handlers/versioned.lua", "error('refusing to load')")
        srv:wait_log(function(l)
            return l.error and l.error:match("refusing to load")
        end)
        res = client.http(srv:url("/admin/reload"), { method = "POST" })
        assert.equal(500, res.status)
        assert.equal("failure", res.json.result)
        assert.matches("versioned%.lua:1: refusing to load", res.json.error)
        ws:send("count")
        assert.equal("v1:1:nil", ws:receive())
        local m = client.http(srv:url("/metrics")).body
        assert.matches('moontide_script_reloads_total{color="blue",result="failure"} [3-9]', m)
        ws:close()
    end)

    it("keeps conn.state across a reload and runs on_reload", function()
        write_renamed(srv.dir .. "/lua/handlers/versioned.lua", versioned("v2"))
        wait_generation(srv, status(srv).scripts.generation + 1)
        local ws = assert(client.ws(srv:ws_url("/ws/versioned/plain/")))
        ws:send("count")
        assert.equal("v2:1:nil", ws:receive())
        ws:send("x")
        local gen = status(srv).scripts.generation
        write_renamed(srv.dir .. "/lua/handlers/versioned.lua", versioned("v3"))
        wait_generation(srv, gen + 1)
        ws:send("count")
        assert.equal("v3:3:v3", ws:receive()) -- state kept, on_reload migrated it
        ws:close()
    end)

    it("never fires a timer of the old code after a reload", function()
        local ws = assert(client.ws(srv:ws_url("/ws/versioned/ticks/")))
        assert.equal("tick v3", ws:receive())
        local gen = status(srv).scripts.generation
        write_renamed(srv.dir .. "/lua/handlers/versioned.lua", versioned("v4"))
        wait_generation(srv, gen + 1)
        -- drain what was in flight, then only the new code's ticks
        server.eventually(function() return ws:receive() == "tick v4" end, 5, "a v4 tick")
        for _ = 1, 5 do
            assert.equal("tick v4", ws:receive())
        end
        ws:close()
    end)

    it("reloads on SIGHUP", function()
        local gen = status(srv).scripts.generation
        srv:kill(signal.SIGHUP)
        local s = wait_generation(srv, gen + 1)
        assert.equal("signal", s.scripts.last_reload.trigger)
    end)

    it("reloads on POST /admin/reload from loopback and answers with the generation", function()
        local gen = status(srv).scripts.generation
        local res = client.http(srv:url("/admin/reload"), { method = "POST" })
        assert.equal(200, res.status)
        assert.equal("success", res.json.result)
        assert.equal(gen + 1, res.json.generation)
        assert.is_number(res.json.pause_seconds)
    end)

    it("refuses a proxied caller without the token, and accepts the token", function()
        local gen = status(srv).scripts.generation
        local proxied = { ["x-forwarded-for"] = "203.0.113.9" }
        local res = client.http(srv:url("/admin/reload"), { method = "POST", headers = proxied })
        assert.equal(403, res.status)
        assert.equal("forbidden", res.json.error)
        srv:wait_log(function(l) return l.message == "admin request refused" end)
        proxied.authorization = "Bearer wrong"
        assert.equal(403, client.http(srv:url("/admin/reload"),
            { method = "POST", headers = proxied }).status)
        proxied.authorization = "Bearer s3cret"
        assert.equal(200, client.http(srv:url("/admin/reload"),
            { method = "POST", headers = proxied }).status)
        assert.equal(gen + 1, status(srv).scripts.generation)
        res = client.http(srv:url("/admin/reload"))
        assert.equal(405, res.status)
        assert.equal("POST", res.headers.allow)
    end)

    it("picks up a new file and a removed route", function()
        local ws = assert(client.ws(srv:ws_url("/ws/versioned/plain/")))
        local gen = status(srv).scripts.generation
        write_renamed(srv.dir .. "/lua/routes.lua",
            'return { { path = "/ws/chat/{room}/", handler = "handlers.chat" } }')
        wait_generation(srv, gen + 1)
        -- 1012 (service restart); lua-http calls it reserved, so read the log
        assert.is_number(ws:expect_close())
        local line = srv:wait_log(function(l)
            return l.message == "WebSocket disconnected" and l.path == nil and l.code == 1012
        end)
        assert.equal("server", line.initiator)
        assert.is_nil((client.ws(srv:ws_url("/ws/versioned/plain/"))))
    end)
end)
