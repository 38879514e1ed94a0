-- The chat handler, run in-process with moontide.testing.
local testing = require "moontide.testing"

describe("handlers.chat", function()
    local rt

    before_each(function()
        rt = testing.new()
    end)

    after_each(function()
        rt:assert_no_errors()
    end)

    it("joins the room's group on open", function()
        local a = assert(rt:connect("/ws/chat/lobby/"))
        assert.same({ a }, rt:members("chat_lobby"))
        assert.equal("chat_lobby", a.conn.state.group)
    end)

    it("broadcasts a message to everyone in the room, sender included", function()
        local a = rt:connect("/ws/chat/lobby/")
        local b = rt:connect("/ws/chat/lobby/")
        local c = rt:connect("/ws/chat/lobby/")
        a:send_json({ type = "message", text = "hello" })
        local epoch
        for _, client in ipairs({ a, b, c }) do
            local m = client:receive()
            epoch = epoch or m.epoch
            assert.same({ type = "message", text = "hello", connection_id = a.conn.id,
                offset = 1, epoch = epoch }, m)
            assert.is_nil(client:receive())
        end
        assert.is_string(epoch)
        assert.equal(1, rt.counters.messages.broadcast)
    end)

    it("keeps rooms apart", function()
        local a = rt:connect("/ws/chat/lobby/")
        local other = rt:connect("/ws/chat/other/")
        a:send_json({ type = "message", text = "only lobby" })
        assert.is_nil(other:receive())
    end)

    it("answers a heartbeat and counts it", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive())
        assert.equal(1, rt.counters.messages.heartbeat)
    end)

    it("replies json_decode_error to invalid JSON and keeps the connection", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send("{not json")
        assert.same({ type = "error", error = "json_decode_error" }, a:receive())
        assert.equal(1, rt.counters.errors.json_decode_error)
        assert.is_false(a.closed)
        a:send_json({ type = "heartbeat" })
        assert.same({ type = "heartbeat_ack" }, a:receive())
    end)

    it("replies unknown_type to an unknown type", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send_json({ type = "dance" })
        assert.same({ type = "error", error = "unknown_type" }, a:receive())
    end)

    it("replies invalid_message to JSON that is not a message object", function()
        local a = rt:connect("/ws/chat/lobby/")
        a:send("42")
        assert.same({ type = "error", error = "invalid_message" }, a:receive())
        a:send_json({ type = "message", text = { nested = true } })
        assert.same({ type = "error", error = "invalid_message" }, a:receive())
        -- arrays decode to tables too, but are not objects
        for _, text in ipairs({ "[1,2]", " [] ", '[{"type":"message"}]', '"str"', "null" }) do
            a:send(text)
            assert.same({ type = "error", error = "invalid_message" }, a:receive(), text)
        end
        a:send("{}") -- an object without a type
        assert.same({ type = "error", error = "unknown_type" }, a:receive())
    end)

    it("stops delivering to a client that left", function()
        local a = rt:connect("/ws/chat/lobby/")
        local b = rt:connect("/ws/chat/lobby/")
        b:close(1000)
        a:send_json({ type = "message", text = "still here?" })
        assert.same(0, #b.inbox)
        assert.same({ a }, rt:members("chat_lobby"))
    end)

    it("refuses paths that are not chat rooms", function()
        local c, err = rt:connect("/ws/chat/")
        assert.is_nil(c)
        assert.equal("not_found", err)
        assert.is_nil(rt:connect("/ws/chat/a/b/"))
        assert.is_nil(rt:connect("/ws/chat/bad%20room/"))
    end)
end)

-- Routes for the chat handler with options (history bounds, presence events).
local function with_options(options)
    package.preload.routes = function()
        return { { path = "/ws/chat/{room}/", handler = "handlers.chat", options = options } }
    end
    finally(function()
        package.preload.routes, package.loaded.routes = nil, nil
    end)
end

-- The same history and recovery cases in memory and over (the fake) Redis.
for _, layer in ipairs({ "memory", "redis" }) do
    describe("handlers.chat history and recovery, " .. layer, function()
        local function runtime()
            return testing.new({ redis = layer == "redis" })
        end

        it("numbers messages per room and sends a fresh join the last 50", function()
            local rt = runtime()
            local a = rt:connect("/ws/chat/hist/")
            for i = 1, 60 do
                a:send_json({ type = "message", text = tostring(i) })
            end
            local other = rt:connect("/ws/chat/elsewhere/")
            other:send_json({ type = "message", text = "x" })
            assert.equal(1, other:receive().offset) -- rooms count apart
            local history = rt:connect("/ws/chat/hist/"):receive()
            assert.equal("history", history.type)
            assert.equal(50, #history.messages)
            assert.same({ "11", 11 }, { history.messages[1].text, history.messages[1].offset })
            assert.same({ "60", 60 }, { history.messages[50].text, history.messages[50].offset })
            assert.equal(a.conn.id, history.messages[1].connection_id)
            rt:assert_no_errors()
        end)

        it("sends nothing to a fresh join of a room without messages", function()
            local rt = runtime()
            assert.is_nil(rt:connect("/ws/chat/empty/"):receive())
        end)

        it("recovers exactly what a client missed, then live messages", function()
            local rt = runtime()
            local a = rt:connect("/ws/chat/resume/")
            local b = rt:connect("/ws/chat/resume/")
            a:send_json({ type = "message", text = "seen" })
            local last = b:receive()
            b:close(1001)
            for i = 1, 5 do
                a:send_json({ type = "message", text = "missed " .. i })
            end
            local b2 = rt:connect("/ws/chat/resume/",
                { query = ("epoch=%s&offset=%d"):format(last.epoch, last.offset) })
            local r = b2:receive()
            assert.same({ type = "recovered", ok = true, epoch = last.epoch, offset = 6,
                missed = 5 }, r)
            for i = 1, 5 do
                local m = b2:receive()
                assert.same({ "missed " .. i, last.offset + i }, { m.text, m.offset })
            end
            assert.is_nil(b2:receive())
            a:send_json({ type = "message", text = "live" })
            assert.same({ "live", 7 }, { b2:receive().text, b2:receive() == nil and 7 or 0 })
            rt:assert_no_errors()
        end)

        it("says when the history no longer reaches back, and sends the rest", function()
            with_options({ history = 3 })
            local rt = runtime()
            local a = rt:connect("/ws/chat/trim/")
            for i = 1, 10 do
                a:send_json({ type = "message", text = tostring(i) })
            end
            local m = a:drain()[10]
            local b = rt:connect("/ws/chat/trim/",
                { query = ("epoch=%s&offset=2"):format(m.epoch) })
            local r = b:receive()
            assert.is_false(r.ok)
            assert.equal("history trimmed", r.reason)
            local got = b:drain()
            assert.is_true(#got >= 3 and #got < 8) -- what is left, about 3
            assert.equal(10, got[#got].offset)
        end)

        it("says when the epoch changed, and sends this epoch's history", function()
            local rt = runtime()
            local a = rt:connect("/ws/chat/epoch/")
            a:send_json({ type = "message", text = "one" })
            local b = rt:connect("/ws/chat/epoch/", { query = "epoch=0000&offset=40" })
            local r = b:receive()
            assert.same({ false, "epoch changed", 1 }, { r.ok, r.reason, r.missed })
            assert.equal("one", b:receive().text)
        end)
    end)
end

describe("handlers.chat presence", function()
    it("lists every member of the room, and drops one that left", function()
        local rt = testing.new()
        local a = rt:connect("/ws/chat/who/")
        local b = rt:connect("/ws/chat/who/")
        rt:connect("/ws/chat/elsewhere/")
        a:send_json({ type = "presence" })
        local p = a:receive()
        assert.equal("presence", p.type)
        local ids = {}
        for _, m in ipairs(p.members) do
            ids[m.connection_id] = true
        end
        assert.same({ [a.conn.id] = true, [b.conn.id] = true }, ids)
        b:close(1000)
        a:send_json({ type = "presence" })
        assert.same({ { connection_id = a.conn.id } }, a:receive().members)
        rt:assert_no_errors()
    end)

    it("tells members of joins and leaves when the route asks for it", function()
        with_options({ presence_events = true })
        local rt = testing.new()
        local a = rt:connect("/ws/chat/ev/")
        local b = rt:connect("/ws/chat/ev/")
        assert.same({ type = "presence", event = "join", member = { connection_id = b.conn.id } },
            a:receive())
        b:close(1000)
        assert.same({ type = "presence", event = "leave", member = { connection_id = b.conn.id } },
            a:receive())
    end)

    it("lists members over Redis, without those of an instance whose lease lapsed", function()
        local rt = testing.new({ redis = true })
        local a = rt:connect("/ws/chat/lease/")
        rt:advance(1) -- the lease is taken once a second
        -- a member filed by another instance that has since died: no lease
        rt.redis["moontide:presence:chat_lease"]["ghost"] =
            '{"connection_id":"ghost","instance":"00dead00"}'
        a:send_json({ type = "presence" })
        assert.same({ { connection_id = a.conn.id } }, a:receive().members)
        assert.is_nil(rt.redis["moontide:presence:chat_lease"]["ghost"]) -- cleaned up
        rt:assert_no_errors()
    end)
end)

describe("handlers.chat with Redis", function()
    it("still chats when Redis is down", function()
        local rt = testing.new({ redis = true })
        rt.redis_down = true
        local a = rt:connect("/ws/chat/down/")
        local refused = rt.counters.errors.redis_unavailable -- the join's reads
        a:send_json({ type = "message", text = "hi" })
        local m = a:receive()
        assert.equal("hi", m.text)
        assert.is_nil(m.offset) -- not numbered, not kept
        assert.equal(refused + 1, rt.counters.errors.redis_unavailable) -- once
        rt:assert_no_errors()
    end)
end)

describe("handlers.chat, authenticated (options.auth)", function()
    local jwt = require "moontide.jwt"
    local SECRET = "chat-secret"
    local rt

    before_each(function()
        package.preload.routes = function()
            return { { path = "/ws/chat/{room}/", handler = "handlers.chat",
                options = { auth = { secret = SECRET, audience = "chat" } } } }
        end
        rt = testing.new()
    end)

    after_each(function()
        package.preload.routes, package.loaded.routes = nil, nil
    end)

    local function bearer(claims)
        return { authorization = "Bearer " .. jwt.sign(claims, { secret = SECRET }) }
    end

    it("lets a valid token in as its user: messages and presence carry user_id", function()
        local claims = { sub = "ada", name = "Ada", aud = "chat", exp = rt.clock + 60 }
        local a = assert(rt:connect("/ws/chat/lab/", { headers = bearer(claims) }))
        assert.same({ user_id = "ada", name = "Ada" }, a.conn.user)
        assert.equal("ada", a.conn.user_id) -- the core's field, in its log lines too
        a:send_json({ type = "message", text = "hi" })
        local m = a:receive()
        assert.same({ "hi", "ada", "Ada" }, { m.text, m.user_id, m.name })
        assert.is_nil(m.connection_id)
        a:send_json({ type = "presence" })
        assert.equal("ada", a:receive().members[1].user_id)
        rt:assert_no_errors()
    end)

    it("takes the token from the query parameter too", function()
        local t = jwt.sign({ sub = "bob", aud = "chat" }, { secret = SECRET })
        local b = assert(rt:connect("/ws/chat/lab/", { query = "token=" .. t }))
        assert.equal("bob", b.conn.user.user_id)
    end)

    it("refuses no token, a bad one, an expired one, the wrong audience: 401", function()
        local cases = {
            { {}, "token_required" },
            { { authorization = "Bearer x.y.z" }, "invalid_token" },
            { bearer({ sub = "ada", aud = "chat", exp = rt.clock - 1 }), "invalid_token" },
            { bearer({ sub = "ada", aud = "billing" }), "invalid_token" },
            { { authorization = "Bearer " .. jwt.sign({ sub = "ada", aud = "chat" },
                { secret = "other" }) }, "invalid_token" },
        }
        for i, case in ipairs(cases) do
            local c, status, reason = rt:connect("/ws/chat/lab/", { headers = case[1] })
            assert.same({ nil, 401, case[2] }, { c, status, reason }, "case " .. i)
        end
        assert.equal(#cases, rt.counters.errors.connection_failed)
        assert.same({}, rt:members("chat_lab"))
        local c, status, reason = rt:connect("/ws/chat/lab/", { headers = bearer({ aud = "chat" }) })
        assert.same({ nil, 403, "token_names_no_user" }, { c, status, reason })
    end)
end)

describe("authorize (moontide.host)", function()
    local rt

    local function routes(handler, extra)
        package.preload["handlers.authz"] = function() return handler end
        package.preload.routes = function()
            local r = { path = "/ws/a/", handler = "handlers.authz" }
            for k, v in pairs(extra or {}) do
                r[k] = v
            end
            return { r, { path = "/ws/plain/{room}/", handler = "handlers.chat" } }
        end
        rt = testing.new()
    end

    after_each(function()
        package.preload.routes, package.loaded.routes = nil, nil
        package.preload["handlers.authz"], package.loaded["handlers.authz"] = nil, nil
    end)

    it("gives the request's path, query, headers, cookies and address", function()
        local seen
        routes({ authorize = function(req)
            seen = { req.path, req.args.x, req.headers["x-api-key"], req.headers.absent,
                req.remote_addr, req.tls }
            return { user_id = 7, role = "admin" }
        end, on_open = function(conn) conn:send({ user = conn.user.role }) end })
        local c = assert(rt:connect("/ws/a/", { query = "x=a%20b", headers = { ["X-Api-Key"] = "k1" },
            remote_addr = "10.0.0.9" }))
        assert.same({ "/ws/a/", "a b", "k1", nil, "10.0.0.9", false }, seen)
        assert.same({ user = "admin" }, c:receive())
        assert.equal("7", c.conn.user_id)
    end)

    it("refuses with the status and reason authorize returns", function()
        routes({ authorize = function() return nil, 429, "slow_down" end })
        assert.same({ nil, 429, "slow_down" }, { rt:connect("/ws/a/") })
        assert.equal(1, rt.counters.errors.connection_failed)
    end)

    it("answers 500 when authorize raises, and carries on", function()
        routes({ authorize = function() error("boom") end })
        assert.same({ nil, 500, "authorize_failed" }, { rt:connect("/ws/a/") })
        assert.equal(1, #rt.errors)
        assert.truthy(rt.errors[1].error:find("boom"))
        rt.errors = {}
        assert.truthy(rt:connect("/ws/plain/r/")) -- a route without options.auth: unchanged
    end)

    it("refuses a foreign Origin when authorize read cookies (CSWSH)", function()
        routes({ authorize = function(req)
            return req.cookies.session == "s1" and { user_id = "u" } or nil
        end }, { origins = { "https://app.example" } })
        local cookie = { cookie = "a=1; session=s1", host = "chat.example:8000" }
        assert.same({ nil, 403, "origin_not_allowed" },
            { rt:connect("/ws/a/", { headers = cookie, origin = "https://evil.example" }) })
        assert.truthy(rt:connect("/ws/a/", { headers = cookie, origin = "http://chat.example:8000" }))
        assert.truthy(rt:connect("/ws/a/", { headers = cookie, origin = "https://app.example" }))
        assert.truthy(rt:connect("/ws/a/", { headers = cookie })) -- no Origin: not a browser
    end)

    it("does not check the Origin when authorize reads no cookie", function()
        routes({ authorize = function(req) return { user_id = req.headers["x-user"] } end })
        assert.truthy(rt:connect("/ws/a/", { headers = { ["x-user"] = "u" },
            origin = "https://elsewhere.example" }))
    end)

    it("keeps conn.user across a reload", function()
        routes({ authorize = function() return { user_id = "kept" } end })
        local c = assert(rt:connect("/ws/a/"))
        assert(rt:reload())
        assert.equal("kept", c.conn.user.user_id)
    end)
end)
