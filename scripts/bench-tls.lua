--- bench-tls: what TLS costs on the one port.
-- Usage: luajit scripts/bench-tls.lua [connections] [seconds]
-- A server of one worker with a P-256 certificate (made for the run):
-- full handshakes per second from `openssl s_time -new` over `seconds` and
-- the server CPU per handshake; then `connections` WebSockets held open
-- over TLS and, on a plain server, over TCP: the resident memory each
-- costs. Prints one JSON line.
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local server = require "support.server"
local client = require "support.client"
local rawws = require "support.rawws"
local tls = require "support.tls"

local connections = tonumber(arg[1]) or 1000
local seconds = tonumber(arg[2]) or 5

-- RSS per held connection on srv: n raw WebSockets (over TLS with ctx).
local function per_connection(srv, ctx)
    local before = srv:rss_kb()
    local held = {}
    for i = 1, connections do
        held[i] = assert(rawws.connect(srv.port, "/ws/chat/bench/", nil, ctx))
    end
    server.eventually(function()
        return client.http((ctx and "https" or "http") .. "://127.0.0.1:" .. srv.port .. "/status",
            { ctx = ctx }).json.active_connections == connections
    end, 30, "every connection open")
    local after = srv:rss_kb()
    for _, c in ipairs(held) do
        c:close()
    end
    return (after - before) * 1024 / connections
end

-- Servers this run started are stopped by PID whatever happens.
local ok, err = xpcall(function()
    local ca = tls.ca()
    local pair = ca:issue("bench")
    local srv = server.start({ config = { tls_cert = pair.cert, tls_key = pair.key, workers = 1,
        max_connections = connections + 100, log_level = "INFO" } })
    local c0 = srv:cpu_seconds()
    local f = assert(io.popen(("openssl s_time -connect 127.0.0.1:%d -new -time %d -CAfile %s 2>&1")
        :format(srv.port, seconds, ca.path)))
    local out = f:read("*a")
    f:close()
    local used = srv:cpu_seconds() - c0
    local n, secs = out:match("(%d+) connections in ([%d.]+) real seconds")
    n, secs = tonumber(n), tonumber(secs)
    assert(n and n > 0, out)
    local ctx = client.tls_context(ca.pem)
    local tls_bytes = per_connection(srv, ctx)
    srv:stop()
    local plain = server.start({ config = { workers = 1, max_connections = connections + 100,
        log_level = "INFO" } })
    local plain_bytes = per_connection(plain)
    plain:stop()
    ca:remove()
    print(('{"handshakes_per_s":%.0f,"cpu_us_per_handshake":%.0f,"connections":%d,'
        .. '"bytes_per_tls_connection":%.0f,"bytes_per_plain_connection":%.0f}')
        :format(n / secs, used * 1e6 / n, connections, tls_bytes, plain_bytes))
end, debug.traceback)
server.cleanup()
if not ok then
    io.stderr:write(err, "\n")
    os.exit(1)
end
