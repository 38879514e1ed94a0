--- spec.support.server: start the real moontide binary for a spec.
--
--   local server = require "spec.support.server"
--   local srv = server.start({ config = { max_message_bytes = 1024 },
--                              files = { ["handlers/x.lua"] = "return {}" } })
--   srv.port, srv.url("/healthz"), srv.ws_url("/ws/chat/lobby/")
--   srv:logs()        -- every log line, parsed (raises if one is not JSON)
--   srv:wait_log(function(line) return line.message == "..." end)
--   srv:subscribed()  -- every local group's Redis subscription confirmed
--   srv:stop()        -- SIGTERM, wait for the exit; returns the exit status
--
-- Each server gets a temporary directory holding a copy of lua/ (plus
-- `files`, written over it), a generated config and its log. It listens
-- on 127.0.0.1 at a port the kernel picks (port 0): the port is read from
-- the "listening" log line, so specs never race for ports. Processes are
-- ended by PID only.
local cjson = require "cjson.safe"
local signal = require "posix.signal"
local unistd = require "posix.unistd"
local wait = require "posix.sys.wait"
local ptime = require "posix.time"
local fcntl = require "posix.fcntl"
local util = require "spec.support.util"
local client = require "spec.support.client"

local _M = {}

_M.ROOT = os.getenv("MOONTIDE_ROOT") or "."
_M.BINARY = os.getenv("MOONTIDE_BINARY") or (_M.ROOT .. "/build/moontide")

local Server = {}
Server.__index = Server

-- Every process a spec started, so that a spec which fails before its own
-- stop() leaves nothing running (spec/support/helper.lua calls cleanup()
-- when each spec file ends).
local started = {}

--- Sleeps for a short poll interval (polling with a deadline, not as
-- synchronisation).
function _M.nap(seconds)
    local s = math.floor(seconds)
    ptime.nanosleep({ tv_sec = s, tv_nsec = math.floor((seconds - s) * 1e9) })
end

--- Monotonic seconds (for measuring how long something took).
function _M.now()
    local t = ptime.clock_gettime(ptime.CLOCK_MONOTONIC)
    return t.tv_sec + t.tv_nsec / 1e9
end

--- Polls fn until it returns a truthy value or timeout seconds pass.
-- Returns fn's values, or raises with what (a description) on timeout,
-- and the second value fn last returned (why it was not yet true).
function _M.eventually(fn, timeout, what)
    local deadline = os.time() + (timeout or 10)
    while true do
        local v = { fn() }
        if v[1] then
            return unpack(v, 1, table.maxn(v))
        end
        if os.time() > deadline then
            -- fn may say why it is not yet true as its second value
            local why = v[2] ~= nil and (": " .. tostring(v[2])) or ""
            error("timed out waiting for " .. (what or "a condition") .. why, 2)
        end
        _M.nap(0.02)
    end
end

--- A free loopback port (the kernel's pick; closed again before use), for
-- servers that cannot report the port they bound.
function _M.free_port()
    local socket = require "cqueues.socket"
    local s = assert(socket.listen("127.0.0.1", 0))
    assert(s:listen())
    local _, _, port = s:localname()
    s:close()
    return port
end

local function sh(cmd)
    local ok = os.execute(cmd)
    if ok ~= true and ok ~= 0 then
        error("command failed: " .. cmd)
    end
end

local function write_file(path, text)
    local dir = path:match("^(.*)/[^/]+$")
    if dir then
        sh("mkdir -p '" .. dir .. "'")
    end
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
end

local function lua_literal(v)
    if type(v) == "string" then
        return ("%q"):format(v)
    elseif type(v) == "table" then
        local parts = {}
        for _, x in ipairs(v) do
            parts[#parts + 1] = lua_literal(x)
        end
        return "{" .. table.concat(parts, ", ") .. "}"
    end
    return tostring(v)
end

--- The files of a fixture app, for start()'s opts.files: routes.lua from
-- spec/fixtures/routes_<routes>.lua and each named handler from
-- spec/fixtures/handlers/<name>.lua (beside the shipped chat handler).
function _M.fixture(routes, ...)
    local files = { ["routes.lua"] = util.read(_M.ROOT .. "/spec/fixtures/routes_" .. routes .. ".lua") }
    for _, name in ipairs({ ... }) do
        files["handlers/" .. name .. ".lua"] =
            util.read(_M.ROOT .. "/spec/fixtures/handlers/" .. name .. ".lua")
    end
    return files
end

--- Starts prog with argv, stdout and stderr to log_path, env added to the
-- environment. Returns the PID.
function _M.spawn(prog, argv, log_path, env)
    local pid = assert(unistd.fork())
    if pid == 0 then
        local fd = fcntl.open(log_path, fcntl.O_WRONLY + fcntl.O_CREAT + fcntl.O_TRUNC, 420)
        unistd.dup2(fd, 1)
        unistd.dup2(fd, 2)
        for name, value in pairs(env or {}) do
            require("posix.stdlib").setenv(name, value)
        end
        unistd.execp(prog, argv)
        unistd._exit(127)
    end
    return pid
end

--- A handle (kill, exited, wait_exit, stop) on a process spawned for a
-- spec; dir, if given, is removed by stop().
function _M.adopt(pid, dir, log_path)
    local h = setmetatable({ pid = pid, dir = dir, log_path = log_path }, Server)
    started[#started + 1] = h
    return h
end

--- Stops, by PID, every process started through this module that is
-- still running (a spec that failed before stopping its own).
function _M.cleanup()
    for _, h in ipairs(started) do
        if not h.status then
            pcall(h.stop, h, 5)
        end
    end
    started = {}
end

--- An app in a new temporary directory, as start() runs one: dir/lua (the
-- project's scripts, opts.files written over them) and dir/moontide.lua
-- (opts.config over the spec defaults). Returns dir.
function _M.app(opts)
    local dir = assert(io.popen("mktemp -d /tmp/moontide-spec-XXXXXX")):read("*l")
    sh("cp -r '" .. _M.ROOT .. "/lua' '" .. dir .. "/lua'")
    for path, text in pairs(opts.files or {}) do
        write_file(dir .. "/lua/" .. path, text)
    end
    -- One process unless a spec asks for more (spec/integration/20-workers).
    local settings = {
        host = "127.0.0.1", port = 0, scripts = dir .. "/lua", log_level = "DEBUG", workers = 1,
    }
    for k, v in pairs(opts.config or {}) do
        settings[k] = v
    end
    local lines = { "return {" }
    for k, v in pairs(settings) do
        lines[#lines + 1] = ("  %s = %s,"):format(k, lua_literal(v))
    end
    lines[#lines + 1] = "}"
    write_file(dir .. "/moontide.lua", table.concat(lines, "\n"))
    return dir
end

--- Starts a server. opts: config (table of settings), files (path under
-- the scripts directory -> content), env (name -> value), args (extra
-- argv), wrapper (a command to run the binary under, as a list), wait
-- (false: do not wait for "listening"), timeout (seconds to wait).
function _M.start(opts)
    opts = opts or {}
    local dir = _M.app(opts)
    local self = setmetatable({ dir = dir, log_path = dir .. "/moontide.log" }, Server)
    local argv = { "--config", dir .. "/moontide.lua" }
    for _, a in ipairs(opts.args or {}) do
        argv[#argv + 1] = a
    end
    local prog = _M.BINARY
    if opts.wrapper then -- e.g. { "valgrind", "--log-file=..." }
        prog = opts.wrapper[1]
        local wrapped = {}
        for i = 2, #opts.wrapper do
            wrapped[#wrapped + 1] = opts.wrapper[i]
        end
        wrapped[#wrapped + 1] = _M.BINARY
        for _, a in ipairs(argv) do
            wrapped[#wrapped + 1] = a
        end
        argv = wrapped
    end
    self.pid = _M.spawn(prog, argv, self.log_path, opts.env)
    started[#started + 1] = self
    if opts.wait ~= false then
        -- With several workers, the supervisor's line: every worker listens.
        local line = self:wait_log(function(l)
            return l.message == "listening" and (l.worker == nil or l.worker == 0)
        end, opts.timeout or 10)
        self.port = line.port
    end
    return self
end

--- The raw text of the log so far.
function Server:log_text()
    local f = io.open(self.log_path)
    if not f then
        return ""
    end
    local text = f:read("*a")
    f:close()
    return text
end

--- Every complete log line, decoded. Raises if any line is not JSON.
function Server:logs()
    local list = {}
    for line in self:log_text():gmatch("([^\n]*)\n") do
        local v, err = cjson.decode(line)
        if type(v) ~= "table" then
            error("log line is not a JSON object (" .. tostring(err) .. "): " .. line, 2)
        end
        list[#list + 1] = v
    end
    return list
end

--- Waits for a log line pred accepts; returns it.
function Server:wait_log(pred, timeout)
    return _M.eventually(function()
        for _, l in ipairs(self:logs()) do
            if pred(l) then
                return l
            end
        end
        local done = self:exited()
        if done then
            error("server exited (" .. tostring(self.status) .. ") before the log line came:\n"
                .. self:log_text(), 0)
        end
    end, timeout or 10, "a log line")
end

--- Log lines at ERROR or CRITICAL.
function Server:error_lines()
    local list = {}
    for _, l in ipairs(self:logs()) do
        if l.level == "ERROR" or l.level == "CRITICAL" then
            list[#list + 1] = l
        end
    end
    return list
end

function Server:url(path)
    return ("http://127.0.0.1:%d%s"):format(self.port, path or "/")
end

function Server:ws_url(path)
    return ("ws://127.0.0.1:%d%s"):format(self.port, path or "/")
end

--- Waits until every local group of this server has a confirmed Redis
-- subscription, so nothing sent afterwards can race a SUBSCRIBE.
function Server:subscribed(timeout)
    _M.eventually(function()
        local g = client.http(self:url("/status")).json.groups
        if g["local"] > 0 and g.subscribed == g["local"] then
            return true
        end
        return false, ("%d of %d groups on port %d"):format(g.subscribed, g["local"], self.port)
    end, timeout or 10, "subscriptions")
end

--- srv:subscribed() for each server given.
function _M.subscribed(...)
    for _, srv in ipairs({ ... }) do
        srv:subscribed()
    end
end

--- Sends a signal to the server process.
function Server:kill(sig)
    if not self.status then
        signal.kill(self.pid, sig or signal.SIGTERM)
    end
end

--- True once the process has exited (reaps it; sets self.status).
function Server:exited()
    if self.status then
        return true
    end
    local pid, how, code = wait.wait(self.pid, wait.WNOHANG)
    if pid == self.pid then
        self.status = how == "exited" and code or ("killed by signal " .. tostring(code))
        return true
    end
    return false
end

--- Waits up to timeout seconds for the exit; returns the status or nil.
function Server:wait_exit(timeout)
    local ok = pcall(_M.eventually, function() return self:exited() end, timeout or 10, "exit")
    return ok and self.status or nil
end

--- Stops the server (SIGTERM; SIGKILL if it has not exited in timeout
-- seconds) and returns its exit status. Removes its directory unless
-- MOONTIDE_KEEP is set.
function Server:stop(timeout)
    if not self.status then
        self:kill(signal.SIGTERM)
        if not self:wait_exit(timeout or 15) then
            signal.kill(self.pid, signal.SIGKILL)
            self:wait_exit(5)
        end
    end
    if not os.getenv("MOONTIDE_KEEP") and self.dir then
        sh("rm -rf '" .. self.dir .. "'")
        self.dir = nil
    end
    return self.status
end

--- Bytes of resident memory (for sanity checks, never timing).
function Server:rss_kb()
    local f = io.open("/proc/" .. self.pid .. "/status")
    if not f then
        return nil
    end
    local text = f:read("*a")
    f:close()
    return tonumber(text:match("VmRSS:%s*(%d+)"))
end

--- CPU seconds (user + system) the process has used.
function Server:cpu_seconds()
    local f = assert(io.open("/proc/" .. self.pid .. "/stat"))
    local stat = f:read("*a")
    f:close()
    local fields = {}
    for x in stat:gsub("^.*%) ", ""):gmatch("%S+") do
        fields[#fields + 1] = x
    end
    return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

return _M
