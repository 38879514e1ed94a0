-- Presence and history: who is in a room, on every instance and worker,
-- without ghosts; and a client that reconnects with its last epoch and
-- offset gets exactly what it missed, then live messages. Against a real
-- redis-server and two instances, and against the in-memory layer (one
-- process, and two workers).
local server = require "spec.support.server"
local client = require "spec.support.client"
local redis = require "spec.support.redis"
local signal = require "posix.signal"

local now = server.now

local function routes(options)
    local parts = {}
    for k, v in pairs(options or {}) do
        parts[#parts + 1] = ("%s = %s"):format(k, tostring(v))
    end
    return ('return { { path = "/ws/chat/{room}/", handler = "handlers.chat", options = { %s } } }')
        :format(table.concat(parts, ", "))
end

local function start(config, options)
    config.log_level = config.log_level or "INFO"
    return server.start({ config = config, files = { ["routes.lua"] = routes(options) } })
end

local function join(srv, room, query)
    return assert(client.ws(srv:ws_url("/ws/chat/" .. room .. "/" .. (query or ""))))
end

-- The resume case, the same against every layer: a client leaves after
-- offset N, n messages are sent meanwhile, it comes back with its epoch and
-- offset while a sender keeps sending; it must get recovered(ok), then
-- offsets N+1 ... in order, each once, through the live ones.
local function resume_case(a_srv, b_srv, room, n, during)
    local sender = join(b_srv, room)
    local leaver = join(a_srv, room)
    if a_srv ~= b_srv then -- across instances: both hear the room first
        a_srv:subscribed()
        b_srv:subscribed()
    end
    sender:send_json({ type = "message", text = "before" })
    local last = leaver:receive_message()
    assert.equal("before", last.text)
    leaver:close()
    for i = 1, n do
        sender:send_json({ type = "message", text = "missed " .. i })
    end
    local back = join(a_srv, room, ("?epoch=%s&offset=%d"):format(last.epoch, last.offset))
    for i = 1, during do -- while it catches up
        sender:send_json({ type = "message", text = "during " .. i })
    end
    local r = back:receive_json()
    assert.equal("recovered", r.type)
    assert.is_true(r.ok, r.reason)
    assert.equal(last.epoch, r.epoch)
    -- (what the sender sent may still be arriving: the rest comes live)
    for i = 1, n + during do
        local m = back:receive_json()
        assert.equal("message", m.type)
        assert.equal(last.offset + i, m.offset)
        assert.equal(i <= n and ("missed " .. i) or ("during " .. (i - n)), m.text)
    end
    assert.is_true(back:nothing(0.3)) -- each once
    sender:send_json({ type = "message", text = "live" })
    local live = back:receive_json()
    assert.same({ "live", last.offset + n + during + 1 }, { live.text, live.offset })
    back:close()
    sender:close()
end

-- A member joins while messages are being sent: its history frame and the
-- live messages after it must meet exactly, none twice, none missed.
local function greet_case(a_srv, b_srv, room, before, after)
    local sender = join(b_srv, room)
    for i = 1, before do
        sender:send_json({ type = "message", text = "early " .. i })
    end
    local joiner = join(a_srv, room) -- while those are still under way
    for i = 1, after do
        sender:send_json({ type = "message", text = "late " .. i })
    end
    local first = joiner:receive_json()
    local expect
    if first.type == "history" then
        assert.is_true(#first.messages > 0)
        for _, m in ipairs(first.messages) do -- consecutive: the last 50 kept
            assert.equal(first.messages[1].offset + _ - 1, m.offset)
        end
        expect = first.messages[#first.messages].offset + 1
    else
        assert.equal(1, first.offset) -- joined before the first message
        expect = 2
    end
    while expect <= before + after do
        local m = joiner:receive_json()
        assert.equal("message", m.type)
        assert.equal(expect, m.offset)
        expect = expect + 1
    end
    assert.is_true(joiner:nothing(0.3))
    joiner:close()
    sender:close()
end

describe("presence and history #integration #redis", function()
    local r, s1, s2

    lazy_setup(function()
        r = redis.start()
        s1 = start({ redis_url = r.url }, { history = 2000 })
        s2 = start({ redis_url = r.url }, { history = 2000 })
    end)

    lazy_teardown(function()
        assert.same({}, s1:error_lines())
        assert.equal(0, s1:stop())
        if s2 then
            s2:stop()
        end
        r:stop()
    end)

    it("recovers 1 000 missed messages across instances, then live ones, while senders send", function()
        resume_case(s1, s2, "resume", 1000, 200)
    end)

    it("meets history and live messages exactly for a member joining mid-stream", function()
        for i = 1, 3 do
            greet_case(s1, s2, "greet" .. i, 150, 150)
        end
    end)

    it("says the history no longer reaches back, and sends what is left", function()
        local small = start({ redis_url = r.url }, { history = 50 })
        finally(function() small:stop() end)
        local a = join(small, "trimmed")
        for i = 1, 200 do
            a:send_json({ type = "message", text = tostring(i) })
        end
        local last
        for _ = 1, 200 do
            last = a:receive_message()
        end
        local b = join(small, "trimmed", ("?epoch=%s&offset=10"):format(last.epoch))
        local rec = b:receive_json()
        assert.same({ false, "history trimmed", 200 }, { rec.ok, rec.reason, rec.offset })
        local first = b:receive_json()
        assert.is_true(first.offset > 11 and first.offset <= 151) -- about the last 50 kept
        local m = first
        while m.offset < 200 do
            local nxt = b:receive_json()
            assert.equal(m.offset + 1, nxt.offset)
            m = nxt
        end
        a:close()
        b:close()
    end)

    it("tells a client the history was lost when Redis comes back empty", function()
        local a = join(s1, "lost")
        a:send_json({ type = "message", text = "old" })
        local old = a:receive_message()
        a:close()
        r:stop() -- no persistence: it comes back empty
        r:start()
        for _, srv in ipairs({ s1, s2 }) do
            server.eventually(function()
                return client.http(srv:url("/readyz")).status == 200
            end, 15, "ready again")
        end
        local b = join(s1, "lost", ("?epoch=%s&offset=%d"):format(old.epoch, old.offset))
        local rec = b:receive_json()
        assert.same({ false, "epoch changed" }, { rec.ok, rec.reason })
        b:send_json({ type = "message", text = "new" })
        local new = b:receive_message()
        assert.is_true(new.epoch ~= old.epoch)
        assert.equal(1, new.offset) -- a new epoch counts from 1
        b:close()
    end)

    it("lists a room's members on every instance, and across a reload", function()
        local a = join(s1, "who")
        local b = join(s2, "who")
        local ids = {}
        for _, ws in ipairs({ a, b }) do
            ws:send_json({ type = "message", text = "id" })
        end
        for _ = 1, 2 do
            ids[a:receive_message().connection_id] = true
        end
        local function members(ws)
            ws:send_json({ type = "presence" })
            for _ = 1, 10 do
                local m = ws:receive_json()
                if m.type == "presence" then
                    local set = {}
                    for _, x in ipairs(m.members) do
                        set[x.connection_id] = true
                    end
                    return set
                end
            end
        end
        -- (after an outage each instance files its members again within a second)
        server.eventually(function()
            local seen = members(a)
            for id in pairs(ids) do
                if not seen[id] then
                    return false
                end
            end
            return true
        end, 5, "both members listed")
        assert.same(ids, members(a))
        assert.same(ids, members(b))
        assert.equal(200, client.http(s1:url("/admin/reload"), { method = "POST" }).status)
        assert.same(ids, members(a)) -- library state survives a reload
        a:close()
        b:close()
    end)

    it("drops a killed instance's members within the lease", function()
        local watcher = join(s1, "lease")
        local members = {} -- kept: a collected client closes its connection
        for i = 1, 100 do
            members[i] = join(s2, "lease")
        end
        local function count()
            watcher:send_json({ type = "presence" })
            for _ = 1, 10 do
                local m = watcher:receive_json()
                if m.type == "presence" then
                    return #m.members
                end
            end
        end
        -- (each join is filed in Redis by its own instance, asynchronously)
        server.eventually(function() return count() == #members + 1 end, 10, "all 101 listed")
        s2:kill(signal.SIGKILL)
        s2:wait_exit(5)
        s2 = nil
        local t0 = now()
        server.eventually(function() return count() == 1 end, 10, "the dead instance's members gone")
        local took = now() - t0
        -- the lease is 5 s, renewed each second: gone within about 6 s
        assert.is_true(took < 7, "took " .. took .. " s")
        io.stderr:write(("\n  (members of a killed instance gone from the list after %.1f s)\n")
            :format(took))
        watcher:close()
    end)
end)

describe("history in memory #integration", function()
    it("recovers 1 000 missed messages in one process", function()
        local srv = start({}, { history = 2000 })
        finally(function() srv:stop() end)
        resume_case(srv, srv, "mem", 1000, 200)
    end)

    it("recovers across two workers (one holds the room's stream)", function()
        local srv = start({ workers = 2 }, { history = 2000 })
        finally(function() srv:stop() end)
        resume_case(srv, srv, "mesh", 1000, 200)
    end)

    it("meets history and live messages exactly across two workers", function()
        local srv = start({ workers = 2 }, { history = 2000 })
        finally(function() srv:stop() end)
        for i = 1, 3 do
            greet_case(srv, srv, "greet" .. i, 150, 150)
        end
    end)

    it("lists presence across two workers", function()
        local srv = start({ workers = 2 })
        finally(function() srv:stop() end)
        local first = join(srv, "wholist")
        local members = { first } -- kept: a collected client closes its connection
        for i = 2, 20 do
            members[i] = join(srv, "wholist")
        end
        local st = client.http(srv:url("/status")).json
        assert.is_true(st.workers[1].connections > 0 and st.workers[2].connections > 0)
        first:send_json({ type = "presence" })
        local m = first:receive_json()
        assert.equal("presence", m.type)
        assert.equal(#members, #m.members)
        for _, ws in ipairs(members) do
            ws:close()
        end
    end)
end)
