-- Authentication at the upgrade, against the real server: a route's
-- authorize(request) refuses with a real HTTP status and no WebSocket, or
-- lets the client in as its identity (conn.user; user_id in the log lines);
-- the chat handler's JWT mode; cookie routes refuse foreign Origins; an
-- authorize that raises is a 500 and the server carries on.
local server = require "spec.support.server"
local client = require "spec.support.client"
local jwt = require "moontide.jwt"
local cjson = require "cjson"

local SECRET = "spec-secret"

local ROUTES = [[
return {
    { path = "/ws/chat/{room}/", handler = "handlers.chat",
      options = { auth = { secret = "spec-secret", audience = "chat" } } },
    { path = "/ws/open/{room}/", handler = "handlers.chat" },
    { path = "/ws/cookie/", handler = "handlers.cookie", origins = { "https://app.example" } },
    { path = "/ws/broken/", handler = "handlers.broken" },
}
]]

local COOKIE = [[
local _M = {}
function _M.authorize(request)
    local s = request.cookies.session
    if s ~= "good" then
        return nil, 401, "no_session"
    end
    return { user_id = "cookie-user", via = request.headers["x-via"] }
end
function _M.on_open(conn)
    conn:send({ user = conn.user.user_id, via = conn.user.via })
end
function _M.on_message(conn)
    conn:send({ user = conn.user and conn.user.user_id })
end
return _M
]]

local BROKEN = [[
return { authorize = function() error("authorize blew up") end }
]]

-- The raw HTTP answer to an upgrade request.
local function upgrade(srv, path, headers)
    local lines = { ("GET %s HTTP/1.1"):format(path), "Host: 127.0.0.1:" .. srv.port,
        "Upgrade: websocket", "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13" }
    for k, v in pairs(headers or {}) do
        lines[#lines + 1] = k .. ": " .. v
    end
    local raw = client.raw(srv.port, table.concat(lines, "\r\n") .. "\r\n\r\n", 1)
    return tonumber(raw:match("^HTTP/1.1 (%d+) ")), raw
end

local function token(claims)
    return jwt.sign(claims, { secret = SECRET })
end

describe("authorize #integration", function()
    local srv

    lazy_setup(function()
        srv = server.start({ config = { log_level = "INFO" }, files = {
            ["routes.lua"] = ROUTES,
            ["handlers/cookie.lua"] = COOKIE,
            ["handlers/broken.lua"] = BROKEN,
        } })
    end)

    lazy_teardown(function()
        local log = srv:log_text()
        assert.equal(0, srv:stop(), log)
    end)

    it("lets a valid JWT in as its user: messages carry user_id, so do log lines", function()
        local t = token({ sub = "ada", name = "Ada", aud = "chat", exp = os.time() + 60 })
        local ws = assert(client.ws(srv:ws_url("/ws/chat/lab/"), { authorization = "Bearer " .. t }))
        ws:send_json({ type = "message", text = "hi" })
        local m = ws:receive_message()
        assert.same({ "hi", "ada", "Ada" }, { m.text, m.user_id, m.name })
        local l = srv:wait_log(function(x)
            return x.message == "WebSocket connected" and x.user_id == "ada"
        end)
        assert.equal("/ws/chat/lab/", l.path)
        ws:close()
    end)

    it("takes the token from the query string", function()
        local t = token({ sub = "bob", aud = "chat" })
        local ws = assert(client.ws(srv:ws_url("/ws/chat/query/?token=" .. t)))
        ws:send_json({ type = "message", text = "q" })
        assert.equal("bob", ws:receive_message().user_id)
        ws:close()
    end)

    it("answers 401 with no WebSocket for a missing, bad, expired or foreign token", function()
        local cases = {
            { {}, "token_required" },
            { { Authorization = "Bearer nonsense" }, "invalid_token" },
            { { Authorization = "Bearer " .. token({ sub = "a", aud = "chat", exp = os.time() - 10 }) },
                "invalid_token" },
            { { Authorization = "Bearer " .. token({ sub = "a", aud = "other" }) }, "invalid_token" },
            { { Authorization = "Bearer " .. jwt.sign({ sub = "a", aud = "chat" }, { secret = "x" }) },
                "invalid_token" },
        }
        for i, case in ipairs(cases) do
            local status, raw = upgrade(srv, "/ws/chat/lab/", case[1])
            assert.equal(401, status, "case " .. i .. ": " .. raw)
            assert.is_nil(raw:lower():find("sec%-websocket%-accept"))
            local body = cjson.decode(raw:match("\r\n\r\n(.*)$"))
            assert.equal(case[2], body.error)
        end
        local l = srv:wait_log(function(x) return x.message == "upgrade refused: invalid token" end)
        assert.equal("token expired", srv:wait_log(function(x)
            return x.message == "upgrade refused: invalid token" and x.error == "token expired"
        end).error)
        assert.is_string(l.error)
    end)

    it("leaves a route without options.auth as it was", function()
        local ws = assert(client.ws(srv:ws_url("/ws/open/anon/")))
        ws:send_json({ type = "message", text = "anyone" })
        local m = ws:receive_message()
        assert.is_string(m.connection_id)
        assert.is_nil(m.user_id)
        ws:close()
    end)

    it("reads cookies and headers; refuses a foreign Origin on a cookie route", function()
        local good = { Cookie = "theme=dark; session=good", ["X-Via"] = "spec" }
        local ws = assert(client.ws(srv:ws_url("/ws/cookie/"), good))
        assert.same({ user = "cookie-user", via = "spec" }, ws:receive_json())
        ws:close()
        local status = upgrade(srv, "/ws/cookie/", { Cookie = "session=good",
            Origin = "https://evil.example" })
        assert.equal(403, status)
        assert.equal(101, (upgrade(srv, "/ws/cookie/", { Cookie = "session=good",
            Origin = "https://app.example" })))
        assert.equal(101, (upgrade(srv, "/ws/cookie/", { Cookie = "session=good",
            Origin = "http://127.0.0.1:" .. srv.port })))
        assert.equal(401, (upgrade(srv, "/ws/cookie/", { Cookie = "session=bad" })))
    end)

    it("answers 500 when authorize raises, logs it, and serves on", function()
        local status, raw = upgrade(srv, "/ws/broken/")
        assert.equal(500, status, raw)
        local l = srv:wait_log(function(x)
            return x.level == "ERROR" and tostring(x.error):find("authorize blew up", 1, true)
        end)
        assert.is_string(l.error)
        assert.equal(200, client.http(srv:url("/healthz")).status)
        assert.truthy(client.ws(srv:ws_url("/ws/open/x/")))
    end)

    it("keeps conn.user across a reload", function()
        local ws = assert(client.ws(srv:ws_url("/ws/cookie/"), { Cookie = "session=good" }))
        ws:receive_json()
        local res = client.http(srv:url("/admin/reload"), { method = "POST" })
        assert.equal(200, res.status, res.body)
        ws:send("x")
        assert.same({ user = "cookie-user" }, ws:receive_json())
        ws:close()
    end)
end)
