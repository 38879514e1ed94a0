--- bench-deflate: what permessage-deflate costs and saves.
-- Usage: luajit scripts/bench-deflate.lua [connections] [members] [messages]
-- One server of one worker with permessage_deflate on. Memory: connections
-- WebSockets held open with the extension and as many without, the
-- resident memory each costs. Broadcast: a room of `members` with
-- compression and one of `members` without; `messages` chat messages of
-- ~2 KB sent to each room; server CPU per delivery and bytes on the wire
-- per delivery. Echo: one member alone in a room, the same messages
-- closed-loop, compressed and not: server CPU per message, where nothing
-- is shared and each message is inflated and compressed for one reader.
-- Prints one JSON line.
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local server = require "support.server"
local client = require "support.client"
local rawws = require "support.rawws"
local zlib = require "support.zlib"

local connections = tonumber(arg[1]) or 1000
local members = tonumber(arg[2]) or 200
local messages = tonumber(arg[3]) or 200
local OFFER = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"

-- A chat message of about 2 KB, different each time.
local function chat_message(i)
    local words = {}
    for k = 1, 260 do
        words[k] = ("w%d"):format((i * 7919 + k * 104729) % 5000)
    end
    return ('{"type":"message","text":"%s","n":%d}'):format(table.concat(words, " "), i)
end

local function open_count(srv, n)
    server.eventually(function()
        return client.http(srv:url("/status")).json.active_connections == n
    end, 30, "every connection open")
end

-- RSS per held connection: n raw WebSockets, with the offer or without.
local function per_connection(srv, offer)
    local before = srv:rss_kb()
    local held = {}
    for i = 1, connections do
        held[i] = assert(rawws.connect(srv.port, "/ws/chat/idle" .. (i % 50) .. "/", offer))
    end
    open_count(srv, connections)
    local after = srv:rss_kb()
    for _, c in ipairs(held) do
        c:close()
    end
    open_count(srv, 0)
    return (after - before) * 1024 / connections
end

-- A room of members (with the offer or not): server CPU and wire bytes per
-- delivery of `messages` chat messages sent by one more member.
local function broadcast(srv, room, offer)
    local list = {}
    for i = 1, members do
        list[i] = assert(rawws.connect(srv.port, "/ws/chat/" .. room .. "/", offer))
    end
    local sender = assert(rawws.connect(srv.port, "/ws/chat/" .. room .. "/", offer))
    open_count(srv, members + 1)
    server.nap(0.5) -- joins and greetings settle before the measured part
    for _, c in ipairs(list) do
        while c:read_frame(0.05) do end
        c.s:clearerr() -- cqueues keeps a timeout as the socket's error until cleared
    end
    local c0 = srv:cpu_seconds()
    local wire = 0
    for i = 1, messages do
        local text = chat_message(i)
        local payload = offer and zlib.compress(text) or text
        sender:send(rawws.frame({ opcode = 1, rsv = offer and 4 or 0, payload = payload }))
        -- read as the server sends, so no socket buffer fills
        for _, c in ipairs(list) do
            local got = 0
            while got < 1 do
                local f = assert(c:read_frame(10))
                if f.opcode == 1 then
                    got = got + 1
                    wire = wire + #f.payload
                end
            end
        end
    end
    local used = srv:cpu_seconds() - c0
    for _, c in ipairs(list) do
        c:close()
    end
    sender:close()
    open_count(srv, 0)
    local deliveries = members * messages
    return used * 1e6 / deliveries, wire / deliveries
end

-- One member alone in a room: server CPU per message, closed loop.
local function echo(srv, room, offer)
    local c = assert(rawws.connect(srv.port, "/ws/chat/" .. room .. "/", offer))
    open_count(srv, 1)
    server.nap(0.2)
    while c:read_frame(0.05) do end
    c.s:clearerr()
    local n = messages * 10
    local c0 = srv:cpu_seconds()
    for i = 1, n do
        local text = chat_message(i)
        c:send(rawws.frame({ opcode = 1, rsv = offer and 4 or 0,
            payload = offer and zlib.compress(text) or text }))
        repeat
            local f = assert(c:read_frame(10))
        until f.opcode == 1
    end
    local used = srv:cpu_seconds() - c0
    c:close()
    open_count(srv, 0)
    return used * 1e6 / n
end

local ok, err = xpcall(function()
    local function start()
        return server.start({ config = { permessage_deflate = true, workers = 1,
            max_connections = connections + members + 100, log_level = "INFO" } })
    end
    -- each on a fresh server: memory freed by one run would serve the next
    local srv = start()
    local plain_bytes = per_connection(srv, "")
    srv:stop()
    srv = start()
    local deflate_bytes = per_connection(srv, OFFER)
    local plain_us, plain_wire = broadcast(srv, "plain", nil)
    local deflate_us, deflate_wire = broadcast(srv, "deflate", OFFER)
    local plain_echo, deflate_echo = echo(srv, "echo-plain", nil), echo(srv, "echo-deflate", OFFER)
    srv:stop()
    print(('{"connections":%d,"bytes_per_plain_connection":%.0f,"bytes_per_deflate_connection":%.0f,'
        .. '"members":%d,"messages":%d,"message_bytes":%d,'
        .. '"plain_cpu_us_per_delivery":%.2f,"deflate_cpu_us_per_delivery":%.2f,'
        .. '"plain_wire_bytes_per_delivery":%.0f,"deflate_wire_bytes_per_delivery":%.0f,'
        .. '"plain_echo_cpu_us":%.1f,"deflate_echo_cpu_us":%.1f}')
        :format(connections, plain_bytes, deflate_bytes, members, messages, #chat_message(1),
            plain_us, deflate_us, plain_wire, deflate_wire, plain_echo, deflate_echo))
end, debug.traceback)
server.cleanup()
if not ok then
    io.stderr:write(err, "\n")
    os.exit(1)
end
