--- handlers.chat: the chat room consumer.
--
-- Protocol (JSON text frames), one room per path /ws/chat/<room>/:
--   {"type":"message","text":"..."} -> everyone in the room, sender too,
--       receives {"type":"message","text":"...","connection_id":"<sender>"}
--   {"type":"heartbeat"}             -> {"type":"heartbeat_ack"}
--   not JSON                          -> {"type":"error","error":"json_decode_error"}
--   JSON but not an object, or a message without a string text
--                                     -> {"type":"error","error":"invalid_message"}
--   any other type                    -> {"type":"error","error":"unknown_type"}
-- Errors keep the connection open. With Redis, the room keeps its last
-- HISTORY messages and a client that joins first receives
--   {"type":"history","messages":[<message>, ...]}   (oldest first)
local moontide = require "moontide"

local type = type
local json_decode, json_encode = moontide.json.decode, moontide.json.encode
local redis = moontide.redis
local groups = moontide.groups
local count_error, count_message = moontide.count_error, moontide.count_message
local log = moontide.logger("handlers.chat")

local _M = {}

local HISTORY = 50

local HEARTBEAT_ACK = '{"type":"heartbeat_ack"}'
local ERR_JSON = '{"type":"error","error":"json_decode_error"}'
local ERR_INVALID = '{"type":"error","error":"invalid_message"}'
local ERR_UNKNOWN = '{"type":"error","error":"unknown_type"}'

function _M.on_open(conn, request)
    local room = request.params.room -- conn.params would keep a table per connection
    local group = "chat_" .. room
    if #group > moontide.limits.group_name then
        return conn:close(1008, "room name too long")
    end
    conn.state.group = group
    groups.add(group, conn)
    if redis.available() then
        conn.state.history_key = redis.key("chat", "history", room)
        redis.command({ "LRANGE", conn.state.history_key, 0, HISTORY - 1 }, function(list)
            if type(list) ~= "table" or #list == 0 or conn.closed then
                return
            end
            local messages = {}
            for i = #list, 1, -1 do -- stored newest first
                messages[#messages + 1] = json_decode(list[i])
            end
            conn:send({ type = "history", messages = messages })
        end)
    end
end

function _M.on_message(conn, text)
    local msg, err = json_decode(text)
    if msg == nil then
        count_error("json_decode_error")
        log.debug("invalid JSON from client", { conn = conn, error = err })
        return conn:send(ERR_JSON)
    end
    if type(msg) ~= "table" then
        return conn:send(ERR_INVALID)
    end
    local kind = msg.type
    if kind == "message" then
        if type(msg.text) ~= "string" then
            return conn:send(ERR_INVALID)
        end
        local out = json_encode({ type = "message", text = msg.text, connection_id = conn.id })
        groups.send(conn.state.group, out)
        local key = conn.state.history_key
        if key and redis.command({ "LPUSH", key, out }) then
            redis.command({ "LTRIM", key, 0, HISTORY - 1 })
        end
    elseif kind == "heartbeat" then
        count_message("heartbeat")
        conn:send(HEARTBEAT_ACK)
    elseif kind == nil and text:find("^%s*%[") then
        conn:send(ERR_INVALID) -- cjson decodes an array to a table too
    else
        conn:send(ERR_UNKNOWN)
    end
end

return _M
