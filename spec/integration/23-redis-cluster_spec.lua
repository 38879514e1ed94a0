-- Redis Cluster: two instances over a real three-master cluster (made with
-- redis-cli --cluster create). Each room lives on the shard of its slot:
-- its sharded subscription, history and presence there; messages cross
-- instances exactly once; a script's command follows MOVED; a slot moved
-- under traffic (redis-cli --cluster reshard) is followed without a
-- restart and nothing arrives twice; a subscription made on a stale map
-- follows its MOVED at once.
local server = require "spec.support.server"
local client = require "spec.support.client"
local redis = require "spec.support.redis"

local function join(srv, room, query)
    return assert(client.ws(srv:ws_url("/ws/chat/" .. room .. "/" .. (query or ""))))
end

-- The slot of a chat room's group channel, moontide:group:{chat_<room>}.
local function room_slot(room)
    return redis.slot("chat_" .. room)
end

-- A name (prefix .. i) whose slot satisfies ok(slot).
local function name_where(prefix, slot_of, ok)
    for i = 1, 200000 do
        if ok(slot_of(prefix .. i)) then
            return prefix .. i
        end
    end
    error("no name found")
end

local function owner_of(masters, slot)
    for _, m in ipairs(masters) do
        for _, r in ipairs(m.ranges) do
            if slot >= r[1] and slot <= r[2] then
                return m
            end
        end
    end
end

local exactly_once = client.exactly_once

describe("redis cluster #integration #redis", function()
    local c, s1, s2

    lazy_setup(function()
        c = redis.cluster(3)
        local config = { redis_cluster = { c.addrs[1] }, log_level = "INFO" } -- one seed is enough
        s1 = server.start({ config = config, files = server.fixture("redis", "rediscmd") })
        s2 = server.start({ config = config, files = server.fixture("redis", "rediscmd") })
        for _, srv in ipairs({ s1, s2 }) do
            server.eventually(function()
                return client.http(srv:url("/readyz")).status == 200
            end, 15, "ready on the cluster")
        end
    end)

    lazy_teardown(function()
        for _, srv in ipairs({ s1, s2 }) do
            local log = srv:log_text()
            assert.same({}, srv:error_lines())
            assert.equal(0, srv:stop(), log)
        end
        c:stop()
    end)

    it("puts each room on its shard and delivers across instances exactly once", function()
        local l = s1:wait_log(function(x) return x.message == "redis cluster map" end)
        assert.same({ 3, 16384 }, { l.masters, l.slots })
        local masters = c:masters()
        for _, m in ipairs(masters) do
            local room = name_where("shard", room_slot, function(s)
                return owner_of(masters, s) == m
            end)
            local a, b = join(s1, room), join(s2, room)
            server.subscribed(s1, s2)
            -- subscribed on that master only (sharded pub/sub)
            local channel = "moontide:group:{chat_" .. room .. "}"
            for _, other in ipairs(masters) do
                local listed = c:cli(other.port, "PUBSUB", "SHARDCHANNELS"):find(channel, 1, true)
                assert.equal(other == m, listed ~= nil, channel .. " on " .. other.port)
            end
            exactly_once(a, b, 20, room .. " a ")
            exactly_once(b, a, 20, room .. " b ")
            a:close()
            b:close()
        end
    end)

    it("keeps a room's history and presence on its shard", function()
        local room = "kept"
        local a = join(s1, room)
        for i = 1, 5 do
            a:send_json({ type = "message", text = "h" .. i })
        end
        local last
        for _ = 1, 5 do
            last = a:receive_message()
        end
        local b = join(s2, room)
        for i = 1, 5 do -- history sent on joining (the other instance)
            assert.equal("h" .. i, b:receive_message().text)
        end
        b:send_json({ type = "presence" })
        local p
        repeat
            p = b:receive_json()
        until p.type == "presence" and p.members
        assert.equal(2, #p.members)
        -- resume across instances, from the shard's stream
        a:close()
        b:send_json({ type = "message", text = "missed" })
        assert.equal("missed", b:receive_message().text)
        local back = join(s2, room, ("?epoch=%s&offset=%d"):format(last.epoch, last.offset))
        local r = back:receive_json()
        assert.same({ "recovered", true, 1 }, { r.type, r.ok, r.missed })
        assert.equal("missed", back:receive_json().text)
        local port = owner_of(c:masters(), room_slot(room)).port
        assert.is_true(tonumber(c:cli(port, "CLUSTER", "COUNTKEYSINSLOT", room_slot(room))) >= 3)
        b:close()
        back:close()
    end)

    it("follows MOVED for a script's command", function()
        local masters = c:masters()
        local lowest = masters[1].ranges[1][1]
        local key = name_where("k", redis.slot, function(s) return s == lowest end)
        local from, to = masters[1].port, masters[2].port
        local ws = assert(client.ws(s1:ws_url("/ws/redis/")))
        ws:send_json({ "SET", key, "v1" })
        assert.equal("OK", ws:receive_json().reply)
        local function cluster()
            return client.http(s1:url("/status")).json.redis.cluster
        end
        -- right after a periodic read of the map (every 10 s), so that the
        -- next one cannot come before the GET: only MOVED can lead it on
        server.eventually(function() return cluster().map_age_seconds < 1 end, 12, "a map read")
        local before = cluster().redirects
        c:move_lowest(from, to) -- s1's map still names the old master
        assert.equal(to, c:owner(lowest))
        ws:send_json({ "GET", key })
        assert.equal("v1", ws:receive_json().reply)
        local st = cluster()
        assert.is_true(st.redirects > before) -- it went to the old owner, and on
        assert.same({ 3, true }, { st.masters, st.slots_known })
        ws:close()
    end)

    it("subscribes where a MOVED says when its map is stale, without waiting for the next map", function()
        local function cluster()
            return client.http(s2:url("/status")).json.redis.cluster
        end
        server.eventually(function() return cluster().map_age_seconds < 1 end, 12, "a map read")
        local before = cluster().redirects
        local masters = c:masters()
        local from, to = masters[3], masters[1]
        local lowest = from.ranges[1][1]
        c:move_lowest(from.port, to.port) -- s2's map still names the old master
        local room = name_where("stale", room_slot, function(s) return s == lowest end)
        local a = join(s2, room)
        -- within 5 s, while the next periodic map read is 9 s or more away
        s2:subscribed(5)
        assert.is_true(cluster().map_age_seconds < 9)
        assert.is_true(cluster().redirects > before)
        local b = join(s1, room)
        server.subscribed(s1)
        exactly_once(a, b, 10, "stale ")
        a:close()
        b:close()
    end)

    it("follows a slot moved under traffic: delivery resumes, nothing twice", function()
        local masters = c:masters()
        local from, to = masters[2], masters[3]
        local lowest = from.ranges[1][1]
        local room = name_where("moving", room_slot, function(s) return s == lowest end)
        local a, b = join(s1, room), join(s2, room)
        server.subscribed(s1, s2)
        exactly_once(a, b, 10, "before ")
        -- 20 000 more keys in the slot, so that moving it takes a while
        local fill = os.tmpname()
        local f = assert(io.open(fill, "w"))
        for i = 1, 20000 do
            local k = ("fill:{chat_%s}:%d"):format(room, i)
            f:write(("*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nx\r\n"):format(#k, k))
        end
        f:close()
        assert(os.execute(("redis-cli -p %d --pipe < %s > /dev/null"):format(from.port, fill)))
        os.remove(fill)
        -- reshard in the background while a keeps sending
        local done = os.tmpname()
        os.execute(("(redis-cli -p %d --cluster reshard 127.0.0.1:%d --cluster-from %s"
            .. " --cluster-to %s --cluster-slots 1 --cluster-yes > %s.out 2>&1;"
            .. " echo $? > %s) &"):format(from.port, from.port, from.id, to.id, done, done))
        local sent = 0
        server.eventually(function()
            sent = sent + 1
            a:send_json({ type = "message", text = "during " .. sent })
            server.nap(0.002)
            local d = io.open(done)
            local status = d and d:read("*l")
            if d then
                d:close()
            end
            return status and status ~= "" and status
        end, 30, "the reshard")
        os.remove(done)
        os.remove(done .. ".out")
        assert.equal(to.port, c:owner(lowest))
        -- both instances listen on the new owner again, unaided
        local channel = "moontide:group:{chat_" .. room .. "}"
        server.eventually(function()
            return c:cli(to.port, "PUBSUB", "SHARDNUMSUB", channel):match("\n2") ~= nil
        end, 15, "resubscribed on the new owner")
        server.subscribed(s1, s2)
        -- what was sent meanwhile arrived at most once
        local arrived = {}
        for i, ws in ipairs({ a, b }) do
            local seen, got = {}, ws:drain()
            for _, m in ipairs(got) do
                assert.is_nil(seen[m.text], "twice: " .. m.text)
                seen[m.text] = true
            end
            arrived[i] = #got
        end
        io.stderr:write(("\n  (slot %d moved with 20 000 keys; of %d messages sent meanwhile %d"
            .. " and %d arrived)\n"):format(lowest, sent, arrived[1], arrived[2]))
        exactly_once(a, b, 20, "after ")
        exactly_once(b, a, 20, "back ")
        a:close()
        b:close()
    end)
end)
