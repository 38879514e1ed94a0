--- bench-redis: group sends across two instances through a real Redis.
-- Usage: luajit scripts/bench-redis.lua [members] [messages]
-- One sender on instance A, `members` receivers on instance B, all in one
-- room; A publishes `messages` messages. Prints one JSON line: deliveries
-- per second seen by the (single-threaded Lua) receiving client, and the
-- server CPU each instance spent per message / per delivery.
package.path = "spec/?.lua;lua/?.lua;lua/?/init.lua;" .. package.path

local server = require "support.server"
local client = require "support.client"
local redis = require "support.redis"

local members = tonumber(arg[1]) or 100
local messages = tonumber(arg[2]) or 2000

local function now()
    local t = require("posix.time").clock_gettime(require("posix.time").CLOCK_MONOTONIC)
    return t.tv_sec + t.tv_nsec / 1e9
end

local r = redis.start()
local cfg = { redis_url = r.url, log_level = "INFO", max_send_queue_bytes = "64M" }
local a = server.start({ config = cfg })
local b = server.start({ config = cfg })
local sender = assert(client.ws(a:ws_url("/ws/chat/bench/")))
local rx = {}
for i = 1, members do
    rx[i] = assert(client.ws(b:ws_url("/ws/chat/bench/")))
end
server.eventually(function()
    for _, srv in ipairs({ a, b }) do
        local g = client.http(srv:url("/status")).json.groups
        if g.subscribed ~= g["local"] then
            return false
        end
    end
    return true
end, 10, "subscriptions")

local cpu_a, cpu_b = a:cpu_seconds(), b:cpu_seconds()
local t0 = now()
local payload = '{"type":"message","text":"' .. string.rep("x", 64) .. '"}'
for _ = 1, messages do
    sender:send(payload)
end
for i = 1, members do
    for _ = 1, messages do
        assert(rx[i]:receive(10), "a delivery went missing")
    end
end
local elapsed = now() - t0
cpu_a, cpu_b = a:cpu_seconds() - cpu_a, b:cpu_seconds() - cpu_b
local deliveries = members * messages
print(('{"bench":"redis_broadcast","members":%d,"messages":%d,"deliveries":%d,'
    .. '"seconds":%.3f,"deliveries_per_s":%.0f,"sender_cpu_us_per_msg":%.2f,'
    .. '"receiver_cpu_us_per_delivery":%.3f}'):format(members, messages, deliveries, elapsed,
    deliveries / elapsed, cpu_a / messages * 1e6, cpu_b / deliveries * 1e6))
a:stop()
b:stop()
r:stop()
