--- spec.support.redis: a real redis-server for a spec, on a free port.
--
--   local redis = require "spec.support.redis"
--   local r = redis.start()      -- r.port, r.url
--   r:stop(); r:start()          -- stop by PID, start again on the same port
--   r:command("GET", "k")        -- one command over a plain socket
--   local g = redis.sentinel_group()  -- a master, a replica and three sentinels
--   g.sentinels, g.master_name, g:master_port(), g:kill_master(), g:stop()
--   local c = redis.cluster(3)   -- three masters made with redis-cli --cluster create
--   c.addrs, redis.slot(key), c:owner(slot), c:move_slot(slot, to_port), c:cli(port, ...)
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

-- -- Cluster ------------------------------------------------------------------

local Cluster = {}
Cluster.__index = Cluster

--- Redis Cluster's slot of a key (CRC16/XMODEM of its {hash tag}).
function _M.slot(key)
    local bit = require "bit"
    local tag = key:match("{([^}]+)}")
    if tag and key:find("{", 1, true) == key:find("{" .. tag .. "}", 1, true) then
        key = tag
    end
    local crc = 0
    for i = 1, #key do
        crc = bit.bxor(crc, bit.lshift(key:byte(i), 8))
        for _ = 1, 8 do
            crc = bit.band(bit.band(crc, 0x8000) ~= 0 and bit.bxor(bit.lshift(crc, 1), 0x1021)
                or bit.lshift(crc, 1), 0xffff)
        end
    end
    return crc % 16384
end

--- redis-cli against one node; returns its output (raises on failure).
function Cluster.cli(_, port, ...)
    local args = { "redis-cli", "-p", tostring(port) }
    for _, a in ipairs({ ... }) do
        args[#args + 1] = "'" .. tostring(a):gsub("'", "'\\''") .. "'"
    end
    local f = assert(io.popen(table.concat(args, " ") .. " 2>&1"))
    local out = f:read("*a")
    assert(f:close(), out)
    return out
end

-- id, port and slot ranges of each master, from CLUSTER NODES.
function Cluster:masters()
    local out = {}
    for line in self:cli(self.nodes[1].port, "CLUSTER", "NODES"):gmatch("[^\n]+") do
        local id, port, flags, rest = line:match("^(%x+) [%d.]+:(%d+)@%d+ (%S+) %S+ %S+ %S+ %S+ %S+ ?(.*)$")
        if id and flags:find("master") then
            local m = { id = id, port = tonumber(port), ranges = {} }
            for lo, hi in rest:gmatch("(%d+)%-?(%d*)") do
                m.ranges[#m.ranges + 1] = { tonumber(lo), tonumber(hi ~= "" and hi or lo) }
            end
            out[#out + 1] = m
        end
    end
    return out
end

--- The port of the master that owns slot (as node 1 sees it).
function Cluster:owner(slot)
    for _, m in ipairs(self:masters()) do
        for _, r in ipairs(m.ranges) do
            if slot >= r[1] and slot <= r[2] then
                return m.port, m
            end
        end
    end
end

--- Moves the lowest slot of its owner (the one redis-cli --cluster reshard
-- picks first) to the master on to_port, keys and all.
function Cluster:move_lowest(from_port, to_port)
    local from, to
    for _, m in ipairs(self:masters()) do
        from = m.port == from_port and m or from
        to = m.port == to_port and m or to
    end
    return self:cli(from_port, "--cluster", "reshard", "127.0.0.1:" .. from_port, "--cluster-from",
        from.id, "--cluster-to", to.id, "--cluster-slots", 1, "--cluster-yes")
end

--- Every node says the cluster is ok and agrees on who owns slot.
function Cluster:settled(slot)
    return server.eventually(function()
        local owner
        for _, n in ipairs(self.nodes) do
            if not self:cli(n.port, "CLUSTER", "INFO"):find("cluster_state:ok", 1, true) then
                return false
            end
            local line = self:cli(n.port, "CLUSTER", "COUNTKEYSINSLOT", slot or 0)
            if not line:match("^%d") then
                return false
            end
        end
        owner = self:owner(slot or 0)
        return owner or false
    end, 30, "the cluster to settle")
end

-- A free port whose cluster bus port (port + 10 000) is free too: an
-- ephemeral port above 55 535 has none, and redis-server would not start.
local function cluster_port()
    local socket = require "cqueues.socket"
    for _ = 1, 100 do
        local port = server.free_port()
        if port + 10000 <= 65535 then
            local s = socket.listen("127.0.0.1", port + 10000)
            local ok, bound = pcall(s.listen, s)
            s:close()
            if ok and bound then
                return port
            end
        end
    end
    error("no port with a free cluster bus port")
end

--- n masters (no replicas) on free ports, made into a cluster.
function _M.cluster(n)
    local c = setmetatable({ nodes = {}, addrs = {} }, Cluster)
    for i = 1, n or 3 do
        local r = setmetatable({ port = cluster_port() }, Redis)
        r:start({ "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", "2000" })
        c.nodes[i] = r
        c.addrs[i] = "127.0.0.1:" .. r.port
    end
    local args = { "--cluster", "create" }
    for _, a in ipairs(c.addrs) do
        args[#args + 1] = a
    end
    args[#args + 1] = "--cluster-yes"
    c:cli(c.nodes[1].port, unpack(args))
    c:settled()
    return c
end

function Cluster:stop()
    for _, r in ipairs(self.nodes) do
        r:stop()
    end
end

--- A port where nothing listens (for "Redis absent").
function _M.absent()
    local port = server.free_port()
    return setmetatable({ port = port, url = "redis://127.0.0.1:" .. port }, Redis)
end

return _M
