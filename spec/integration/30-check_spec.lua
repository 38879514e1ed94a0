-- moontide check, like nginx -t: the settings and the whole script set
-- loaded as the server would, every error printed as file:line: message,
-- exit 0 or 1; a misspelt MOONTIDE_ variable is an error there and a
-- warning when serving.
local server = require "spec.support.server"
local client = require "spec.support.client"

-- Runs `moontide check` on an app made from opts; returns the exit status
-- and what it printed (stdout and stderr).
local function check(opts, env)
    local dir = server.app(opts)
    local vars = {}
    for k, v in pairs(env or {}) do
        vars[#vars + 1] = ("%s='%s'"):format(k, v)
    end
    local p = assert(io.popen(("env %s %s check --config %s/moontide.lua 2>&1; echo \"exit=$?\"")
        :format(table.concat(vars, " "), server.BINARY, dir)))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf '" .. dir .. "'")
    return tonumber(out:match("exit=(%d+)")), out
end

local ROUTES = [[return {
    { path = "/ws/chat/{room}/", handler = "handlers.chat" },
    { path = "/ws/a/", handler = "handlers.a" },
    { path = "/ws/b/", handler = "handlers.b" },
}]]

describe("moontide check #integration", function()
    it("passes the project's own app", function()
        local status, out = check({})
        assert.equal(0, status, out)
        assert.truthy(out:find("moontide check: ok", 1, true))
    end)

    it("names every file that does not compile, with its line", function()
        local status, out = check({ files = { ["routes.lua"] = ROUTES,
            ["handlers/a.lua"] = "local x =\nreturn {}\n",
            ["handlers/b.lua"] = "local _M = {}\n\nfunction _M.on_message(conn\nreturn _M\n" } })
        assert.equal(1, status, out)
        assert.truthy(out:find("/lua/handlers/a.lua:2: unexpected symbol near 'return'", 1, true), out)
        assert.truthy(out:find("/lua/handlers/b.lua:4: ", 1, true), out)
        assert.falsy(out:find("stack traceback", 1, true), out)
        assert.truthy(out:find("moontide check: FAILED", 1, true))
    end)

    it("runs module code: an error at load time is reported where it happens", function()
        local status, out = check({ files = { ["routes.lua"] = ROUTES,
            ["handlers/a.lua"] = "local _M = {}\nlocal t = nil\nt.x = 1\nreturn _M\n",
            ["handlers/b.lua"] = "return {}\n" } })
        assert.equal(1, status, out)
        assert.truthy(out:find("/lua/handlers/a.lua:3: attempt to index local 't'", 1, true), out)
    end)

    it("reports a bad route with its file and number, and a missing handler", function()
        local status, out = check({ files = { ["routes.lua"] =
            'return { { path = "/ws/chat/{room}/", handler = "handlers.chat" }, { path = "ws/x" } }' } })
        assert.equal(1, status, out)
        assert.truthy(out:find("/lua/routes.lua: route 2: needs path and handler", 1, true), out)
        status, out = check({ files = { ["routes.lua"] =
            'return { { path = "ws/x", handler = "handlers.chat" } }' } })
        assert.equal(1, status, out)
        assert.truthy(out:find("/lua/routes.lua: route 1: path must be a string starting with /", 1,
            true), out)
        status, out = check({ files = { ["routes.lua"] =
            'return { { path = "/ws/x/", handler = "handlers.nowhere" } }' } })
        assert.equal(1, status, out)
        assert.truthy(out:find("handlers.nowhere", 1, true), out)
    end)

    it("reports a bad setting, and an unknown MOONTIDE_ variable with what was meant", function()
        local status, out = check({ config = { max_message_bytes = "lots" } })
        assert.equal(1, status, out)
        assert.truthy(out:find("max_message_bytes", 1, true), out)
        status, out = check({}, { MOONTIDE_MAX_CONECTIONS = "10", MOONTIDE_KEEP = "1" })
        assert.equal(1, status, out)
        assert.truthy(out:find("MOONTIDE_MAX_CONECTIONS: not a setting; did you mean "
            .. "MOONTIDE_MAX_CONNECTIONS", 1, true), out)
        assert.falsy(out:find("MOONTIDE_KEEP", 1, true), out) -- a tool's variable, not a typo
    end)

    it("a server warns about the misspelt variable at start, and serves", function()
        local srv = server.start({ env = { MOONTIDE_HEARTBEAT_INTERVALL = "5" } })
        local l = srv:wait_log(function(x) return x.message == "unknown MOONTIDE_ variable: ignored" end)
        assert.same({ "WARNING", "MOONTIDE_HEARTBEAT_INTERVALL", "MOONTIDE_HEARTBEAT_INTERVAL" },
            { l.level, l.variable, l.did_you_mean })
        assert.equal(200, client.http(srv:url("/healthz")).status)
        assert.equal(0, srv:stop())
    end)
end)
