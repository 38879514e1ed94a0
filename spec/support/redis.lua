--- spec.support.redis: a real redis-server for a spec, on a free port.
--
--   local redis = require "spec.support.redis"
--   local r = redis.start()      -- r.port, r.url
--   r:stop(); r:start()          -- stop by PID, start again on the same port
--   r:command("GET", "k")        -- one command over a plain socket
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

function Redis:start()
    local dir = assert(io.popen("mktemp -d /tmp/moontide-redis-XXXXXX")):read("*l")
    local pid = server.spawn("redis-server", {
        "--port", tostring(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--dir", dir, "--protected-mode", "no",
    }, dir .. "/redis.log")
    self.proc = server.adopt(pid, dir, dir .. "/redis.log")
    server.eventually(function()
        local ok, reply = pcall(self.command, self, "PING")
        return ok and reply == "+PONG"
    end, 10, "redis-server to answer PING")
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

--- A port where nothing listens (for "Redis absent").
function _M.absent()
    local port = server.free_port()
    return setmetatable({ port = port, url = "redis://127.0.0.1:" .. port }, Redis)
end

return _M
