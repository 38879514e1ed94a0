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
-- Errors keep the connection open.
local moontide = require "moontide"

local type = type
local json_decode = moontide.json.decode
local groups = moontide.groups
local count_error, count_message = moontide.count_error, moontide.count_message
local log = moontide.logger("handlers.chat")

local _M = {}

local HEARTBEAT_ACK = '{"type":"heartbeat_ack"}'
local ERR_JSON = '{"type":"error","error":"json_decode_error"}'
local ERR_INVALID = '{"type":"error","error":"invalid_message"}'
local ERR_UNKNOWN = '{"type":"error","error":"unknown_type"}'

function _M.on_open(conn)
    local group = "chat_" .. conn.params.room
    if #group > 200 then
        return conn:close(1008, "room name too long")
    end
    conn.state.group = group
    groups.add(group, conn)
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
        groups.send(conn.state.group, {
            type = "message",
            text = msg.text,
            connection_id = conn.id,
        })
    elseif kind == "heartbeat" then
        count_message("heartbeat")
        conn:send(HEARTBEAT_ACK)
    else
        conn:send(ERR_UNKNOWN)
    end
end

return _M
