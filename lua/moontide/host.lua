--- moontide.host: the dispatcher between the core and the handlers.
--
-- The core calls start() once, reload() on a trigger, and
-- match/open/message/close/timer for events, each under lua_pcall: an
-- error raised here or in a handler is logged by the core with its
-- traceback and counted as handler_error. The host owns every connection
-- object and its `state` table, so handler modules keep no per-connection
-- state of their own and a reload swaps code under live connections.
--
-- Reload: every .lua file of the script set is compiled, then routes.lua
-- and its handlers are loaded afresh (app modules are dropped from
-- package.loaded first; the runtime library moontide.* is never
-- reloaded). Any failure restores the running generation untouched. On
-- success, between two events: the new routes take over, timers of the
-- old generation are cancelled (old code never runs again), each open
-- connection moves to its route's new handler and that handler's
-- on_reload(conn) runs (the place to migrate conn.state or restart
-- timers); a connection whose route is gone is closed with 1012. The two
-- halves are separate (prepare, then commit or abort) so that a server of
-- several workers switches all of them or none; reload() does both.
--
-- Routes come from the `routes` module in the scripts directory: a list
-- of { path = "/ws/chat/{room}/", handler = "handlers.chat" } (add
-- binary = true to accept binary messages; otherwise they close 1003;
-- permessage_deflate = true or false overrides the server's setting of
-- that name for the route; add
-- protocols = { "chat.v2", "chat.v1" } to accept those subprotocols: a
-- client offering Sec-WebSocket-Protocol gets the first of its offers the
-- route accepts, as conn.protocol, or none, per RFC 6455). A `{name}`
-- segment matches unreserved URL characters ([%w_.~-]+) and is passed to
-- the handler in conn.params.name; options = {...} is the handler's own
-- settings for the route, as conn.options; origins = { "https://app.example" }
-- are the Origins a route whose authorize reads cookies accepts besides its
-- own (see authorize). A handler module returns a table with any of
-- authorize(request), on_open(conn, request), on_message(conn, data,
-- is_binary) and on_close(conn, code, reason).
--
-- authorize(request) runs during the upgrade, while it is still HTTP:
-- request.path, .params, .query, .args (the query decoded), .headers (by
-- lower-case name), .cookies, .remote_addr, .origin, .options, .tls. It
-- returns the identity (a table with at least user_id: conn.user in every
-- event, user_id in the connection's log lines), true (go on, anonymous),
-- or nil, status, reason: the client gets that HTTP status (401, 403,
-- 429...) and no WebSocket. An error is a 500. A route whose authorize
-- read request.cookies refuses (403 origin_not_allowed) an Origin other
-- than its own host's, the route's origins and allowed_origins: browsers
-- send cookies with cross-site upgrades (cross-site WebSocket hijacking).
--
-- The readiness policy and the in-process alerts are their own modules
-- (moontide.readiness, moontide.alerts); the host loads them with the
-- other scripts and passes the core's calls on.
local moontide = require "moontide"
local readiness = require "moontide.readiness"
local alerts = require "moontide.alerts"

local type, error, pairs, ipairs, require = type, error, pairs, ipairs, require
local setmetatable, rawget, rawset = setmetatable, rawget, rawset
local package_loaded = package.loaded

local _M = {}

local routes = {}  -- compiled route table, in declaration order
local conns = {}   -- handle -> connection object
local generation = 0
local scripts_dir  -- prefix of app modules' files
local log = moontide.logger("moontide.host")

local PARAM_CHARS = "[%w_%.~%-]+"

-- A route's Lua pattern, and the function that reads its {name}
-- parameters out of a matching path (a new table each call).
local function compile(path)
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" then
        error("path must be a string starting with /", 0)
    end
    local names = {}
    local pattern = path:gsub("([%^%$%(%)%%%.%[%]%*%+%-%?])", "%%%1")
    pattern = pattern:gsub("{([%w_]+)}", function(name)
        names[#names + 1] = name
        return "(" .. PARAM_CHARS .. ")"
    end)
    pattern = "^" .. pattern .. "$"
    local function params_of(p)
        local params, caps = {}, { (p or ""):match(pattern) }
        for i, name in ipairs(names) do
            params[name] = caps[i]
        end
        return params
    end
    return pattern, params_of
end

local function load_handler(name)
    package_loaded[name] = nil
    local mod = require(name)
    if type(mod) ~= "table" then
        error("handler " .. name .. " must return a table of event functions", 0)
    end
    for _, event in ipairs({ "on_open", "on_message", "on_close" }) do
        if mod[event] ~= nil and type(mod[event]) ~= "function" then
            error("handler " .. name .. ": " .. event .. " must be a function", 0)
        end
    end
    return mod
end

local health -- the readiness policy module, if the scripts have one

-- A route's subprotocols as a set; raises unless each is an RFC 7230 token.
local function protocol_set(protocols, i)
    if protocols == nil then
        return nil
    end
    if type(protocols) ~= "table" then
        error("route " .. i .. ": protocols must be a list of subprotocol names", 0)
    end
    local set = {}
    for _, name in ipairs(protocols) do
        if type(name) ~= "string" or not name:find("^[!#$%%&'*+%-.^_`|~%w]+$") then
            error("route " .. i .. ": " .. tostring(name) .. " is not a subprotocol name", 0)
        end
        set[name] = true
    end
    return set
end

--- Loads the route table and every handler it names; returns them
-- compiled, or raises with the offending file in the message.
local function load_routes()
    package_loaded.routes = nil
    local file = package.searchpath("routes", package.path) or "routes.lua"
    local spec = require("routes")
    if type(spec) ~= "table" then
        error(file .. ": must return a list of routes", 0)
    end
    local function bad(i, why)
        error(("%s: route %d: %s"):format(file, i, why), 0)
    end
    local compiled = {}
    for i, r in ipairs(spec) do
        if type(r) ~= "table" or type(r.handler) ~= "string" then
            bad(i, "needs path and handler")
        end
        local ok, pattern, params_of = pcall(compile, r.path)
        if not ok then
            bad(i, pattern)
        end
        if r.permessage_deflate ~= nil and type(r.permessage_deflate) ~= "boolean" then
            bad(i, "permessage_deflate must be true or false")
        end
        compiled[#compiled + 1] = {
            path = r.path,
            pattern = pattern,
            params_of = params_of,
            handler_name = r.handler,
            binary = r.binary,
            permessage_deflate = r.permessage_deflate,
            protocols = protocol_set(r.protocols, i),
            options = type(r.options) == "table" and r.options or {},
            origins = type(r.origins) == "table" and r.origins or {},
            handler = load_handler(r.handler),
        }
    end
    return compiled
end

-- Is module name one of the app's (under the scripts directory, and not
-- the runtime library)?
local function is_app_module(name)
    if name == "moontide" or name:sub(1, 9) == "moontide." then
        return false
    end
    if not scripts_dir then
        return name == "routes" or name:sub(1, 9) == "handlers." or name:sub(1, 9) == "policies."
    end
    local path = package.searchpath(name, package.path)
    return path ~= nil and path:sub(1, #scripts_dir) == scripts_dir
end

-- App modules are compiled with the JIT off, recursively, so the core's
-- budget hook can interrupt them (a JIT-compiled loop never reaches a
-- hook); the runtime library keeps the JIT. This searcher runs before
-- the standard one for modules under the scripts directory.
local function app_searcher(name)
    if not scripts_dir or not is_app_module(name) then
        return nil
    end
    local path = package.searchpath(name, package.path)
    local chunk, err = loadfile(path)
    if not chunk then
        error(err, 0)
    end
    if jit then
        jit.off(chunk, true)
    end
    return chunk
end
table.insert(package.loaders, 2, app_searcher)

-- Every file is compiled before anything runs; the error names each file
-- that does not compile, one "file:line: message" per line.
local function compile_all(files)
    local errors = {}
    for _, file in ipairs(files or {}) do
        local ok, err = loadfile(file)
        if not ok then
            errors[#errors + 1] = err
        end
    end
    if #errors > 0 then
        error(table.concat(errors, "\n"), 0)
    end
end

--- Binds the library to the C functions and loads the scripts. Returns
-- the script generation (1). opts.C defaults to the core's FFI exports
-- (moontide.testing passes its fake); opts.scripts is the scripts
-- directory; opts.files the .lua files of the script set, each compiled
-- first.
function _M.start(opts)
    opts = opts or {}
    moontide._bind(opts.C or require("moontide.ffi").C)
    moontide._reset_timers()
    scripts_dir = opts.scripts and (opts.scripts:gsub("/*$", "") .. "/") or nil
    conns = {}
    generation = generation + 1
    moontide._set_generation(generation)
    moontide._set_redis_prefix(opts.redis_prefix or "moontide:", opts.redis_cluster)
    compile_all(opts.files)
    routes = load_routes()
    health = readiness.load()
    alerts.use(alerts.load())
    return generation
end

local function run_on_reload(conn)
    local f = conn._route.handler.on_reload
    if not f then
        return
    end
    local ok, err = xpcall(f, debug.traceback, conn)
    if not ok then
        moontide.count_error("handler_error")
        log.error("on_reload failed", { conn = conn, error = err })
    end
end

-- A generation loaded by prepare() and not yet switched to.
local pending

-- Puts back the app modules a failed or abandoned load replaced.
local function restore(saved)
    for name in pairs(package.loaded) do
        if is_app_module(name) then
            package.loaded[name] = nil
        end
    end
    for name, mod in pairs(saved) do
        package.loaded[name] = mod
    end
    moontide._cancel_timers_except(generation) -- any the new load started
    moontide._set_generation(generation)
end

--- Loads the script set as the next generation without switching to it:
-- the running one keeps serving until commit(). files: the .lua files to
-- compile first. Raises with the failure (file:line: message) and changes
-- nothing. A prepared generation not yet committed is abandoned first.
function _M.prepare(files)
    if pending then
        _M.abort()
    end
    local saved = {}
    for name, mod in pairs(package.loaded) do
        if is_app_module(name) then
            saved[name] = mod
            package.loaded[name] = nil
        end
    end
    moontide._set_generation(generation + 1)
    local new_health, new_alerts
    local ok, new_routes = pcall(function()
        compile_all(files)
        local r = load_routes()
        new_health = readiness.load()
        new_alerts = alerts.load()
        return r
    end)
    if not ok then
        restore(saved)
        error(new_routes, 0)
    end
    -- Events until the commit run the running generation's code.
    moontide._set_generation(generation)
    pending = { routes = new_routes, health = new_health, alerts = new_alerts, saved = saved }
end

--- Drops the prepared generation; the running one stays.
function _M.abort()
    if pending then
        local p = pending
        pending = nil
        restore(p.saved)
    end
end

--- Switches to the prepared generation, between two events: see the
-- module comment. Returns the new generation.
function _M.commit()
    local p = assert(pending, "no generation prepared")
    pending = nil
    generation = generation + 1
    moontide._set_generation(generation)
    routes = p.routes
    health = p.health
    alerts.use(p.alerts)
    moontide._cancel_timers_except(generation)
    local by_path = {}
    for _, r in ipairs(routes) do
        by_path[r.path] = r
    end
    for _, conn in pairs(conns) do
        local r = by_path[conn.route]
        if r then
            conn._route = r
            run_on_reload(conn)
        else
            conn:close(1012, "route removed by a reload")
        end
    end
    return generation
end

--- Loads the script set as a new generation and switches to it at once
-- (prepare, then commit). Returns the new generation, or raises with the
-- failure and changes nothing.
function _M.reload(files)
    _M.prepare(files)
    return _M.commit()
end

local function find(path)
    for _, r in ipairs(routes) do
        if path:find(r.pattern) then
            return r
        end
    end
end

-- The request on_open gets: origin here, the rest read through to the
-- connection; params made afresh (the connection's are kept only if a
-- handler asks the connection for them).
local Request = {}
function Request.__index(t, k)
    local conn = rawget(t, "_conn")
    if k == "params" then
        local params = conn._route.params_of(conn.path)
        rawset(t, "params", params)
        return params
    end
    return conn[k]
end

-- -- authorize ----------------------------------------------------------------

-- request.headers: each read asks the core for the upgrade's header (valid
-- while authorize runs), then keeps it.
local function headers_proxy()
    return setmetatable({}, {
        __index = function(t, name)
            if type(name) ~= "string" then
                return nil
            end
            name = name:lower()
            local v = moontide._upgrade_header(name)
            rawset(t, name, v or false)
            return v
        end,
    })
end

local function unescape(s)
    return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_pairs(text, sep)
    local out = {}
    for part in (text or ""):gmatch("[^" .. sep .. "]+") do
        local k, v = part:match("^%s*([^=]-)%s*=%s*(.-)%s*$")
        if k and k ~= "" and out[k] == nil then
            out[k] = v
        end
    end
    return out
end

local AuthRequest = {}
function AuthRequest.__index(t, k)
    local v
    if k == "params" then
        v = rawget(t, "_route").params_of(rawget(t, "path"))
    elseif k == "headers" then -- made on first use: most authorize read none
        v = headers_proxy()
    elseif k == "args" then
        v = {}
        for key, value in pairs(parse_pairs(rawget(t, "query"), "&")) do
            v[unescape(key)] = unescape(value)
        end
    elseif k == "cookies" then
        rawset(t, "_cookies_read", true)
        v = parse_pairs(t.headers.cookie, ";")
    else
        return nil
    end
    rawset(t, k, v)
    return v
end

-- Is origin the page of the host the request came to, or one the route or
-- the server lists?
local function origin_allowed(r, origin, host, listed)
    if listed then
        return true
    end
    local o = origin:lower():gsub("^https?://", "")
    if host and o == host:lower() then
        return true
    end
    for _, allowed in ipairs(r.origins) do
        if origin:lower() == allowed:lower() then
            return true
        end
    end
    return false
end

-- The identity authorize gave the upgrade in progress: the core opens the
-- connection right after, in the same event (a newer upgrade replaces an
-- unused one).
local authorized = { id = 0 }
local next_auth = 0

--- Runs the route's authorize (see the module comment). Returns true, the
-- identity's id for open (0: none) and its user_id; or false, the HTTP
-- status and a reason.
function _M.authorize(path, query, origin, remote, origin_listed, tls)
    local r = find(path)
    local f = r and r.handler.authorize
    if not f then
        return true, 0, nil
    end
    local request = setmetatable({ path = path, query = query, origin = origin,
        remote_addr = remote, options = r.options, tls = tls == true,
        _route = r }, AuthRequest)
    local identity, status, reason = f(request)
    if not identity then
        return false, tonumber(status) or 403, reason and tostring(reason) or "forbidden"
    end
    if rawget(request, "_cookies_read") and origin
        and not origin_allowed(r, origin, request.headers.host, origin_listed) then
        return false, 403, "origin_not_allowed"
    end
    if identity == true then
        return true, 0, nil
    end
    if type(identity) ~= "table" or identity.user_id == nil then
        error("authorize must return a table with user_id, true, or nil, status, reason", 0)
    end
    next_auth = next_auth + 1
    authorized = { id = next_auth, identity = identity }
    return true, next_auth, tostring(identity.user_id)
end

--- The route pattern a path matches, or nil. With offered (the client's
-- Sec-WebSocket-Protocol list), also the subprotocol chosen for it: the
-- first offered name the route accepts, or nil. Third: the route's
-- permessage_deflate (nil: the server's setting decides).
function _M.match(path, offered)
    local r = find(path)
    if not r then
        return nil
    end
    if offered and r.protocols then
        for name in offered:gmatch("[^,%s]+") do
            if r.protocols[name] then
                return r.path, name, r.permessage_deflate
            end
        end
    end
    return r.path, nil, r.permessage_deflate
end

--- A connection was established: make its object, run on_open. Returns
-- whether the route accepts binary messages (route field binary = true).
-- protocol: the subprotocol chosen for it, or nil.
function _M.open(handle, path, query, origin, protocol, auth)
    local r = find(path)
    if not r then
        error("no route for " .. path .. " (routes changed during the handshake)", 0)
    end
    local conn = moontide._connection(handle, r, path)
    if auth and auth ~= 0 and authorized.id == auth then
        rawset(conn, "user", authorized.identity)
        authorized = { id = 0 }
    end
    if query ~= "" then
        rawset(conn, "query", query)
    end
    if protocol then
        rawset(conn, "protocol", protocol)
    end
    conns[handle] = conn
    local on_open = r.handler.on_open
    if on_open then
        on_open(conn, setmetatable({ _conn = conn, origin = origin }, Request))
    end
    return r.binary == true
end

--- One complete message arrived.
function _M.message(handle, data, binary)
    local conn = conns[handle]
    if not conn then
        return
    end
    local f = conn._route.handler.on_message
    if f then
        f(conn, data, binary)
    end
end

--- The connection closed; its object is dropped after on_close.
function _M.close(handle, code, reason)
    local conn = conns[handle]
    if not conn then
        return
    end
    conns[handle] = nil
    moontide._settle(conn)
    local f = conn._route.handler.on_close
    if f then
        local ok, err = xpcall(f, debug.traceback, conn, code, reason)
        moontide._closed(conn) -- the library's cleanup runs whatever the handler did
        if not ok then
            error(err, 0)
        end
        return
    end
    moontide._closed(conn)
end

--- A timer fired.
function _M.timer(id)
    moontide._fire(id)
end

--- A reply to a script's Redis command came (or the link dropped).
function _M.redis_reply(id, value, err)
    moontide._redis_reply(id, value, err)
end

--- Decides readiness from the core's facts (moontide.readiness).
function _M.readiness(facts)
    return readiness.decide(health, facts)
end

--- The in-process alerts (moontide.alerts): evaluated when due, and the
-- body of GET /alerts.
_M.alerts_json = alerts.json

--- Once a second: the library's periodic work, and the alerts when asked
-- (one worker of a server evaluates them).
function _M.tick(now, with_alerts)
    moontide._tick(now)
    if with_alerts then
        alerts.tick(now)
    end
end

--- A message from another worker's Lua (moontide._mesh_send).
function _M.mesh(from, data)
    moontide._mesh_message(from, data)
end

--- The connection object for a handle (tests and tools).
function _M.connection(handle)
    return conns[handle]
end

return _M
