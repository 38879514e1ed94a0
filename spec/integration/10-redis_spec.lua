-- The Redis channel layer with a real redis-server: groups across
-- instances, faults, the command API and chat history.
local server = require "spec.support.server"
local client = require "spec.support.client"
local redis = require "spec.support.redis"
local prom = require "spec.support.prom"

local function start(r, extra)
    local config = { redis_url = r.url, log_level = "INFO" }
    for k, v in pairs(extra or {}) do
        config[k] = v
    end
    return server.start({ config = config, files = server.fixture("redis", "rediscmd") })
end

local function ready(srv)
    return client.http(srv:url("/readyz"))
end

local function wait_ready(srv)
    return server.eventually(function() return ready(srv).status == 200 end, 15, "/readyz 200")
end

local function join(srv, room)
    return assert(client.ws(srv:ws_url("/ws/chat/" .. room .. "/")))
end

local subscribed = server.subscribed

local function counter(srv, error_type)
    local m = prom.parse(client.http(srv:url("/metrics")).body)
    return prom.value(m, "websocket_errors_total", { error_type = error_type })
end

describe("redis channel layer #integration #redis", function()
    local r, s1, s2

    lazy_setup(function()
        r = redis.start()
        s1 = start(r)
        s2 = start(r)
        wait_ready(s1)
        wait_ready(s2)
    end)

    lazy_teardown(function()
        assert.same({}, s1:error_lines())
        assert.same({}, s2:error_lines())
        assert.equal(0, s1:stop())
        assert.equal(0, s2:stop())
        r:stop()
    end)

    it("delivers every message exactly once to clients on both instances", function()
        local a = join(s1, "shared")
        local b = join(s2, "shared")
        -- the first messages may race the subscriptions; wait until b hears a
        subscribed(s1, s2)
        for i = 1, 20 do
            local from = i % 2 == 0 and a or b
            from:send_json({ type = "message", text = "n" .. i })
        end
        for _, ws in ipairs({ a, b }) do
            local seen = {}
            for _ = 1, 20 do
                local msg = ws:receive_message()
                assert.is_nil(seen[msg.text], "duplicate " .. msg.text)
                seen[msg.text] = true
            end
            assert.is_true(ws:nothing(0.3)) -- nothing more: exactly once
        end
        a:close()
        b:close()
    end)

    it("keeps one sender's messages in order across instances", function()
        local a = join(s1, "ordered")
        local b = join(s2, "ordered")
        subscribed(s1, s2)
        for i = 1, 100 do
            a:send_json({ type = "message", text = tostring(i) })
        end
        for i = 1, 100 do
            assert.equal(tostring(i), b:receive_message().text)
        end
        a:close()
        b:close()
    end)

    it("reaches a 1000-member room split over two instances, once each", function()
        local members = {}
        for i = 1, 1000 do
            members[i] = join(i % 2 == 0 and s1 or s2, "big")
        end
        subscribed(s1, s2)
        members[1]:send_json({ type = "message", text = "to all 1000" })
        for i = 1, 1000 do
            assert.equal("to all 1000", members[i]:receive_message().text)
        end
        for i = 1, 1000, 100 do
            assert.is_true(members[i]:nothing(0.05))
        end
        for i = 1, 1000 do
            members[i]:close()
        end
    end)

    it("round-trips the command API and reports errors as values", function()
        local ws = assert(client.ws(s1:ws_url("/ws/redis/")))
        ws:send('["SET","spec:key","v1"]')
        assert.same({ reply = "OK" }, ws:receive_json())
        ws:send('["GET","spec:key"]')
        assert.same({ reply = "v1" }, ws:receive_json())
        ws:send('["RPUSH","spec:list","a","b"]')
        assert.same({ reply = 2 }, ws:receive_json())
        ws:send('["LRANGE","spec:list",0,-1]')
        assert.same({ reply = { "a", "b" } }, ws:receive_json())
        ws:send('["GET","spec:missing"]')
        assert.same({}, ws:receive_json())
        ws:send('["NOSUCHCOMMAND"]')
        assert.matches("^ERR", ws:receive_json().error)
        ws:close()
    end)

    it("replays the room's history to a client that joins", function()
        local a = join(s1, "history")
        a:send_json({ type = "message", text = "first" })
        a:receive_json()
        a:send_json({ type = "message", text = "second" })
        a:receive_json()
        local b = join(s2, "history")
        local h = b:receive_json()
        assert.equal("history", h.type)
        assert.equal("first", h.messages[#h.messages - 1].text)
        assert.equal("second", h.messages[#h.messages].text)
        a:close()
        b:close()
    end)

    it("survives Redis going away and coming back", function()
        local a = join(s1, "outage")
        local b = join(s2, "outage")
        subscribed(s1, s2)

        r:stop()
        server.eventually(function() return ready(s1).status == 503 end, 15, "/readyz 503")
        local res = ready(s1)
        assert.equal("not_ready", res.json.status)
        assert.equal("redis unavailable", res.json.checks.redis)
        local before = counter(s1, "redis_unavailable")
        -- local members still hear their own instance
        a:send_json({ type = "message", text = "during outage" })
        assert.equal("during outage", a:receive_json().text)
        assert.is_true(counter(s1, "redis_unavailable") > before)
        assert.equal(200, client.http(s1:url("/healthz")).status)

        r:start()
        wait_ready(s1)
        wait_ready(s2)
        subscribed(s1, s2) -- resubscribed by themselves
        a:send_json({ type = "message", text = "after" })
        assert.equal("after", b:receive_json().text)
        assert.equal("after", a:receive_json().text)
        a:close()
        b:close()
    end)
end)

describe("redis absent at start #integration #redis", function()
    it("serves local traffic, is not ready, and becomes ready when Redis appears", function()
        local r = redis.absent()
        local srv = start(r)
        local res = ready(srv)
        assert.equal(503, res.status)
        assert.same({ "redis unavailable", "channel layer unavailable" }, res.json.reasons)
        local a = join(srv, "solo")
        a:send_json({ type = "message", text = "local only" })
        assert.equal("local only", a:receive_json().text)
        r:start()
        wait_ready(srv)
        a:close()
        assert.equal(0, srv:stop())
        r:stop()
    end)
end)
