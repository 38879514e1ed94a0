--- bench-history: a room's history, in memory and in Redis.
-- Usage: luajit scripts/bench-history.lua [messages] [missed]
-- For each layer (memory, redis), on a server of one worker: one sender and
-- one receiver in a room send `messages` messages as fast as the (Lua)
-- client goes, with history on (kept: 20 000) and off (history = 0): the
-- rate the room took and the server CPU per message, whose difference is
-- the cost of numbering and keeping a message. Then a client resumes
-- `missed` messages back: the time until the last one arrived and the
-- bytes it received. Prints one JSON line per layer.
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local server = require "support.server"
local client = require "support.client"
local redis = require "support.redis"
local cjson = require "cjson"

local messages = tonumber(arg[1]) or 20000
local missed = tonumber(arg[2]) or 10000

local function now()
    local t = require("posix.time").clock_gettime(require("posix.time").CLOCK_MONOTONIC)
    return t.tv_sec + t.tv_nsec / 1e9
end

local function start(cfg, history)
    cfg.log_level = "INFO"
    cfg.workers = 1
    cfg.max_send_queue_bytes = "64M"
    return server.start({ config = cfg, files = { ["routes.lua"] = ([[
return { { path = "/ws/chat/{room}/", handler = "handlers.chat", options = { history = %d } } }
]]):format(history) } })
end

-- Sends `messages` messages through a room; returns msgs/s, CPU us/msg and
-- the last message received.
local function run(srv)
    local sender = assert(client.ws(srv:ws_url("/ws/chat/h/")))
    local rx = assert(client.ws(srv:ws_url("/ws/chat/h/")))
    local payload = '{"type":"message","text":"' .. string.rep("x", 64) .. '"}'
    local c0, t0 = srv:cpu_seconds(), now()
    local last
    for i = 1, messages do
        sender:send(payload)
        if i % 1000 == 0 then -- keep the client's own buffers bounded
            for _ = 1, 1000 do
                last = assert(rx:receive(10))
            end
        end
    end
    local elapsed, used = now() - t0, srv:cpu_seconds() - c0
    sender:close()
    rx:close()
    return messages / elapsed, used / messages * 1e6, cjson.decode(last)
end

local function layer(name, cfg)
    local plain = start(cfg, 0)
    local rate0, cpu0 = run(plain)
    plain:stop()
    local srv = start(cfg, 20000)
    local rate, cpu1, last = run(srv)
    -- A client that got up to offset (last - missed) comes back.
    local t0 = now()
    local back = assert(client.ws(srv:ws_url(("/ws/chat/h/?epoch=%s&offset=%d")
        :format(last.epoch, last.offset - missed))))
    local bytes, n = 0, 0
    local first = assert(back:receive(10))
    bytes = bytes + #first
    while n < missed do
        local m = assert(back:receive(10))
        bytes = bytes + #m
        n = n + 1
    end
    local took = now() - t0
    back:close()
    srv:stop()
    print(('{"bench":"history","layer":"%s","messages":%d,"msgs_per_s":%.0f,'
        .. '"msgs_per_s_without":%.0f,"cpu_us_per_msg":%.2f,"cpu_us_per_msg_without":%.2f,'
        .. '"history_us_per_msg":%.2f,"resume_messages":%d,"resume_seconds":%.3f,'
        .. '"resume_bytes":%d}'):format(name, messages, rate, rate0, cpu1, cpu0, cpu1 - cpu0,
        missed, took, bytes))
end

layer("memory", {})
local r = redis.start()
layer("redis", { redis_url = r.url })
r:stop()
