--- bench-reload: the loop pause of a script reload under open connections.
-- Usage: luajit scripts/bench-reload.lua [connections] [reloads]
-- Starts a release moontide, opens the connections (chat rooms of 100),
-- reloads through /admin/reload and prints one JSON line with the pause
-- the server measured for each reload (min, median, max).
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local server = require "support.server"
local client = require "support.client"

local n = tonumber(arg[1]) or 10000
local reloads = tonumber(arg[2]) or 20

local srv = server.start({ config = { log_level = "INFO", max_connections = n + 100 } })
local conns = {}
for i = 1, n do
    conns[i] = assert(client.ws(srv:ws_url("/ws/chat/room" .. (i % (n / 100)) .. "/")))
    if i % 2000 == 0 then
        io.stderr:write(("bench-reload: %d connections open\n"):format(i))
    end
end
local pauses = {}
for i = 1, reloads do
    local res = client.http(srv:url("/admin/reload"), { method = "POST" })
    assert(res.status == 200, "reload failed: " .. tostring(res.body))
    pauses[i] = res.json.pause_seconds
end
local active = client.http(srv:url("/status")).json.active_connections
table.sort(pauses)
-- every connection still answers after the reloads
for i = 1, n, 97 do
    conns[i]:send_json({ type = "heartbeat" })
    assert(conns[i]:receive_json().type == "heartbeat_ack")
end
print(('{"bench":"reload_pause","connections":%d,"reloads":%d,"min_ms":%.3f,'
    .. '"median_ms":%.3f,"max_ms":%.3f}'):format(active, reloads, pauses[1] * 1e3,
    pauses[math.ceil(reloads / 2)] * 1e3, pauses[reloads] * 1e3))
for i = 1, n do
    conns[i].ws:close(1000, "", 0)
end
srv:stop()
