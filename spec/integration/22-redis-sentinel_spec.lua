-- Redis Sentinel: two instances find the master through three sentinels,
-- follow a failover after the master is killed, say so in /readyz, and
-- deliver exactly once again without help. Real redis-server processes:
-- a master, a replica and three sentinels on loopback.
local server = require "spec.support.server"
local client = require "spec.support.client"
local redis = require "spec.support.redis"
local prom = require "spec.support.prom"

local now = server.now

local function ready(srv)
    return client.http(srv:url("/readyz"))
end

local function join(srv, room)
    return assert(client.ws(srv:ws_url("/ws/chat/" .. room .. "/")))
end

local function unavailable(srv)
    local m = prom.parse(client.http(srv:url("/metrics")).body)
    return prom.value(m, "websocket_errors_total", { error_type = "redis_unavailable" }) or 0
end

-- The messages ws gets until nothing comes for a while: text -> times.
local function drain(ws)
    local got = {}
    for _, m in ipairs(ws:drain()) do
        got[m.text] = (got[m.text] or 0) + 1
    end
    return got
end

local subscribed = server.subscribed

local exactly_once = client.exactly_once

describe("redis sentinel #integration #redis", function()
    local g, s1, s2

    lazy_setup(function()
        g = redis.sentinel_group("moontide-master")
        local config = { redis_sentinels = g.sentinels, redis_master_name = g.master_name,
            log_level = "INFO" }
        s1 = server.start({ config = config })
        s2 = server.start({ config = config })
        for _, srv in ipairs({ s1, s2 }) do
            server.eventually(function() return ready(srv).status == 200 end, 15, "ready")
        end
    end)

    lazy_teardown(function()
        g:stop()
        for _, srv in ipairs({ s1, s2 }) do -- neither died on the way
            local log = srv:log_text()
            assert.equal(0, srv:stop(), log)
        end
    end)

    it("finds the master through the sentinels and delivers across instances", function()
        local l = s1:wait_log(function(x) return x.message == "redis master" end)
        assert.equal(g:master_port(), l.port)
        assert.equal("moontide-master", l.master_name)
        local a, b = join(s1, "before"), join(s2, "before")
        subscribed(s1, s2)
        exactly_once(a, b, 20, "before ")
        a:close()
        b:close()
    end)

    it("follows a failover: 503 while it looks, 200 again unaided, exactly once after", function()
        local a, b = join(s1, "after"), join(s2, "after")
        subscribed(s1, s2)
        local lost_before = unavailable(s1)
        local old = g:kill_master()
        local t0 = now()
        for i = 1, 10 do -- sent while the master is gone
            a:send_json({ type = "message", text = "during " .. i })
        end
        -- both notice: not ready, and why
        for _, srv in ipairs({ s1, s2 }) do
            local r = server.eventually(function()
                local res = ready(srv)
                return res.status == 503 and res
            end, 10, "503 during the failover")
            assert.is_true(#r.json.reasons > 0)
        end
        -- the sentinels promote the replica...
        local promoted = server.eventually(function()
            local p = g:master_port()
            return p and p ~= old and now()
        end, 30, "the sentinels' failover")
        -- ...and both instances follow within 2 s of it
        for _, srv in ipairs({ s1, s2 }) do
            server.eventually(function() return ready(srv).status == 200 end, 10, "200 again")
        end
        local lag = now() - promoted
        io.stderr:write(("\n  (failover: promoted %.1f s after the kill; ready %.1f s after that)\n")
            :format(promoted - t0, lag))
        assert.is_true(lag <= 2, "followed " .. lag .. " s after the promotion")
        for _, srv in ipairs({ s1, s2 }) do
            local l = srv:wait_log(function(x)
                return x.message == "redis master" and x.port ~= old
            end)
            assert.equal(g:master_port(), l.port)
        end
        subscribed(s1, s2)
        -- what was sent meanwhile: never twice; each delivered across
        -- instances or counted as redis_unavailable
        local at_a, at_b = drain(a), drain(b)
        local crossed = 0
        for i = 1, 10 do
            local t = "during " .. i
            assert.is_true((at_a[t] or 0) <= 1 and (at_b[t] or 0) <= 1, t .. " twice")
            crossed = crossed + (at_b[t] or 0)
        end
        local counted = unavailable(s1) - lost_before
        io.stderr:write(("  (sent during the failover: %d of 10 crossed, %d counted lost)\n")
            :format(crossed, counted))
        assert.is_true(crossed + counted >= 10)
        exactly_once(a, b, 20, "after ")
        exactly_once(b, a, 20, "back ")
        a:close()
        b:close()
        assert.same({}, s1:error_lines())
    end)
end)
