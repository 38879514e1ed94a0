--- spec.support.redis: a real redis-server for a spec, on a free port.
--
--   local redis = require "spec.support.redis"
--   local r = redis.start()      -- r.port, r.url
--   r:stop(); r:start()          -- stop by PID, start again on the same port
--   r:command("GET", "k")        -- one command over a plain socket
--   local g = redis.sentinel_group()  -- a master, a replica and three sentinels
--   g.sentinels, g.master_name, g:master_port(), g:kill_master(), g:stop()
local server = require "spec.support.server"

local _M = {}

local Redis = {}
Redis.__index = Redis

--- Sends one command and returns the raw reply line(s).
function Redis:command(...)
    local socket = require "cqueues.socket"
    local s = socket.connect("127.0.0.1", self.port)
    s:setmode("b", "b") -- text mode would turn \n into \r\n
    local args = { ... }
    local parts = { "*" .. #args .. "\r\n" }
    for _, a in ipairs(args) do
        a = tostring(a)
        parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
    end
    local ok = s:write(table.concat(parts))
    local line = ok and s:read("*l")
    line = line and line:gsub("\r$", "")
    s:close()
    return line
end

-- Waits until r answers PING.
local function answering(r, what)
    server.eventually(function()
        local ok, reply = pcall(r.command, r, "PING")
        return ok and reply == "+PONG"
    end, 10, what .. " to answer PING")
end

function Redis:start(extra)
    local dir = assert(io.popen("mktemp -d /tmp/moontide-redis-XXXXXX")):read("*l")
    local args = {
        "--port", tostring(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", dir, "--protected-mode", "no",
    }
    for _, a in ipairs(extra or self.extra or {}) do
        args[#args + 1] = a
    end
    self.extra = extra or self.extra
    local pid = server.spawn("redis-server", args, dir .. "/redis.log")
    self.proc = server.adopt(pid, dir, dir .. "/redis.log")
    answering(self, "redis-server")
    return self
end

function Redis:stop()
    if self.proc then
        self.proc:stop()
        self.proc = nil
    end
end

--- Starts redis-server on a free loopback port.
function _M.start()
    local port = server.free_port()
    local r = setmetatable({ port = port, url = "redis://127.0.0.1:" .. port }, Redis)
    return r:start()
end

-- -- Sentinel ---------------------------------------------------------------

local Group = {}
Group.__index = Group

-- A sentinel: redis-server in sentinel mode, with a config file it may
-- rewrite (sentinels record what they learn in it).
local function start_sentinel(master_port, name)
    local port = server.free_port()
    local dir = assert(io.popen("mktemp -d /tmp/moontide-sentinel-XXXXXX")):read("*l")
    local conf = dir .. "/sentinel.conf"
    local f = assert(io.open(conf, "w"))
    f:write(("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n"
        .. "sentinel monitor %s 127.0.0.1 %d 2\n"
        .. "sentinel down-after-milliseconds %s 1000\n"
        .. "sentinel failover-timeout %s 5000\n"
        .. "sentinel parallel-syncs %s 1\n"):format(port, dir, name, master_port, name, name, name))
    f:close()
    local pid = server.spawn("redis-server", { conf, "--sentinel" }, dir .. "/sentinel.log")
    local s = setmetatable({ port = port }, Redis)
    s.proc = server.adopt(pid, dir, dir .. "/sentinel.log")
    answering(s, "redis sentinel")
    return s
end

--- A master, its replica and three sentinels (quorum 2, a node is down
-- after 1 s), all on free loopback ports.
function _M.sentinel_group(name)
    name = name or "mymaster"
    local master = _M.start()
    local replica = setmetatable({ port = server.free_port() }, Redis)
    replica:start({ "--replicaof", "127.0.0.1", tostring(master.port) })
    server.eventually(function()
        return replica:command("INFO", "replication") ~= nil
            and master:command("WAIT", 1, 100) == ":1"
    end, 10, "the replica to sync")
    local g = setmetatable({ master_name = name, nodes = { master, replica }, sentinels = {},
        sentinel_procs = {} }, Group)
    for i = 1, 3 do
        local s = start_sentinel(master.port, name)
        g.sentinel_procs[i] = s
        g.sentinels[i] = "127.0.0.1:" .. s.port
    end
    return g
end

--- The port the sentinels name as master now.
function Group:master_port()
    local s = self.sentinel_procs[1]
    local socket = require "cqueues.socket"
    local c = socket.connect("127.0.0.1", s.port)
    c:setmode("b", "b")
    c:write("SENTINEL get-master-addr-by-name " .. self.master_name .. "\r\n")
    local lines = {}
    for _ = 1, 5 do
        lines[#lines + 1] = c:read("*l")
    end
    c:close()
    return tonumber((lines[5] or ""):match("%d+"))
end

--- kill -9 of the current master; returns its port.
function Group:kill_master()
    local port = self:master_port()
    for _, n in ipairs(self.nodes) do
        if n.port == port and n.proc then
            require("posix.signal").kill(n.proc.pid, require("posix.signal").SIGKILL)
            n.proc:wait_exit(5)
            n.proc:stop()
            n.proc = nil
        end
    end
    return port
end

function Group:stop()
    for _, s in ipairs(self.sentinel_procs) do
        s:stop()
    end
    for _, n in ipairs(self.nodes) do
        n:stop()
    end
end

--- A port where nothing listens (for "Redis absent").
function _M.absent()
    local port = server.free_port()
    return setmetatable({ port = port, url = "redis://127.0.0.1:" .. port }, Redis)
end

return _M
