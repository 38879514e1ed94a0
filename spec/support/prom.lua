--- spec.support.prom: read an exposition, run promtool, run Prometheus.
--
--   local prom = require "spec.support.prom"
--   local m = prom.parse(text)
--   prom.value(m, "websocket_messages_total", { type = "received" }) -> number
--   prom.check(text) -> ok, output                       (promtool check metrics)
--   local p = prom.server({ targets = { "127.0.0.1:1234" } }); p:query("up"); p:stop()
local cjson = require "cjson.safe"
local server = require "spec.support.server"
local client = require "spec.support.client"
local util = require "spec.support.util"

local _M = {}

--- Parses samples into a list of { name, labels = {k = v}, value }.
function _M.parse(text)
    local samples = {}
    for line in text:gmatch("[^\n]+") do
        if line:sub(1, 1) ~= "#" then
            local name, labels, value = line:match("^([%w_:]+)(%b{}) (%S+)$")
            if not name then
                name, value = line:match("^([%w_:]+) (%S+)$")
                labels = "{}"
            end
            assert(name, "unparsable sample line: " .. line)
            local l = {}
            for k, v in labels:gmatch('([%w_]+)="(.-[^\\]?)"') do
                l[k] = v
            end
            samples[#samples + 1] = { name = name, labels = l, value = tonumber(value) or value }
        end
    end
    return samples
end

--- The value of the one sample with that name whose labels include want.
function _M.value(samples, name, want)
    local found
    for _, s in ipairs(samples) do
        if s.name == name then
            local ok = true
            for k, v in pairs(want or {}) do
                if s.labels[k] ~= v then
                    ok = false
                end
            end
            if ok then
                assert(found == nil, "more than one sample matches " .. name)
                found = s.value
            end
        end
    end
    return found
end

--- Runs promtool check metrics on text; returns ok and its output.
function _M.check(text)
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    local status, out = util.run("promtool check metrics < " .. path)
    os.remove(path)
    return status == 0, out
end


local Prom = {}
Prom.__index = Prom

--- Starts a Prometheus server scraping targets every second.
function _M.server(opts)
    local dir = assert(io.popen("mktemp -d /tmp/moontide-prom-XXXXXX")):read("*l")
    local port = server.free_port()
    local targets = {}
    for _, t in ipairs(opts.targets) do
        targets[#targets + 1] = "'" .. t .. "'"
    end
    local f = assert(io.open(dir .. "/prometheus.yml", "w"))
    f:write(([[
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: moontide
    static_configs:
      - targets: [%s]
]]):format(table.concat(targets, ", ")))
    f:close()
    local pid = server.spawn("prometheus", {
        "--config.file=" .. dir .. "/prometheus.yml",
        "--storage.tsdb.path=" .. dir .. "/data",
        "--web.listen-address=127.0.0.1:" .. port,
    }, dir .. "/prometheus.log")
    return setmetatable({ port = port, proc = server.adopt(pid, dir, dir .. "/prometheus.log") },
        Prom)
end

--- Runs an instant query; returns the result list (may be empty).
function Prom:query(q)
    local url = ("http://127.0.0.1:%d/api/v1/query?query=%s"):format(self.port,
        (q:gsub("[^%w_]", function(c) return ("%%%02X"):format(c:byte()) end)))
    local ok, res = pcall(client.http, url)
    if not ok or res.status ~= 200 then
        return nil
    end
    local body = cjson.decode(res.body)
    return body and body.data and body.data.result
end

function Prom:stop()
    return self.proc:stop()
end

return _M
