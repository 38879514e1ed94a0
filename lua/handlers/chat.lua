--- handlers.chat: the chat room consumer.
--
-- Protocol (JSON text frames), one room per path /ws/chat/<room>/:
--   {"type":"message","text":"..."} -> everyone in the room, sender too,
--       receives {"type":"message","text":"...","connection_id":"<sender>",
--                 "offset":N,"epoch":"E"}
--       (offset counts the room's messages; epoch changes when the room's
--       history was lost and offsets start again)
--   {"type":"heartbeat"}             -> {"type":"heartbeat_ack"}
--   {"type":"presence"}              -> {"type":"presence","members":[{"connection_id":...}, ...]}
--       (every member, on every worker and instance)
--   not JSON                          -> {"type":"error","error":"json_decode_error"}
--   JSON but not an object, or a message without a string text
--                                     -> {"type":"error","error":"invalid_message"}
--   any other type                    -> {"type":"error","error":"unknown_type"}
-- Errors keep the connection open.
--
-- Joining: a client that connects afresh gets the room's last messages
--   {"type":"history","messages":[<message>, ...]}   (oldest first; none: no frame)
-- then live ones: each message in the history or live, never both.
-- A client that reconnects with the last epoch and offset it received
-- (/ws/chat/<room>/?epoch=E&offset=N) gets instead
--   {"type":"recovered","ok":true|false,"reason":...,"epoch":E,"offset":N,"missed":K}
-- then every message it missed, then live ones: none lost, none twice
-- (ok is false, with the reason, when the history no longer reaches back).
--
-- Route options (routes.lua, options = { ... }): history = N messages a
-- room keeps (default 1000; 0: none, and messages carry no offset),
-- history_ttl = S seconds it keeps them after
-- its last message (default 86400), presence_events = true to tell members
-- of joins and leaves: {"type":"presence","event":"join"|"leave",
-- "member":{"connection_id":...}} (at most 10 a second a room).
--
-- Authenticated mode: options.auth = { secret = ... } (or public_key, and
-- any of audience, issuer, leeway: moontide.jwt.verify's options; query =
-- the query parameter a token may come in, default "token"; cookie = a
-- cookie it may come in). The upgrade then needs a valid JWT (Authorization:
-- Bearer, the query parameter or the cookie) whose sub (or user_id) names
-- the user: without one the client gets 401 and no WebSocket. Messages then
-- carry "user_id" (and the token's "name", if any) instead of
-- "connection_id", and so do presence members.
local moontide = require "moontide"
local jwt = require "moontide.jwt"
local presence = require "moontide.presence"
local stream = require "moontide.stream"

local type = type
local json_decode, json_encode = moontide.json.decode, moontide.json.encode
local groups = moontide.groups
local count_error, count_message = moontide.count_error, moontide.count_message
local log = moontide.logger("handlers.chat")

local _M = {}

local HISTORY = 50 -- messages a fresh join is sent

local HEARTBEAT_ACK = '{"type":"heartbeat_ack"}'
local ERR_JSON = '{"type":"error","error":"json_decode_error"}'
local ERR_INVALID = '{"type":"error","error":"invalid_message"}'
local ERR_UNKNOWN = '{"type":"error","error":"unknown_type"}'

-- The room's stream, or nil when the route keeps no history (history = 0).
local function room_stream(conn)
    local options = conn.options
    if options.history == 0 then
        return nil
    end
    return stream.open(conn.state.group, { size = options.history, ttl = options.history_ttl })
end

-- epoch and offset from a query string such as "epoch=ab12&offset=42".
local function resume_point(query)
    local epoch = query:match("[?&]?epoch=([%w]+)")
    local offset = tonumber(query:match("[?&]?offset=(%d+)"))
    return epoch, offset
end

local function history_frame(texts)
    return '{"type":"history","messages":[' .. table.concat(texts, ",") .. "]}"
end

--- Authenticated mode (options.auth): the JWT's user, or a 401.
function _M.authorize(request)
    local auth = request.options.auth
    if not auth then
        return true
    end
    local token = jwt.from_request(request, { query = auth.query or "token", cookie = auth.cookie })
    if not token then
        return nil, 401, "token_required"
    end
    local claims, err = jwt.verify(token, auth)
    if not claims then
        log.info("upgrade refused: invalid token", { error = err, path = request.path })
        return nil, 401, "invalid_token"
    end
    local user = claims.sub or claims.user_id
    if type(user) ~= "string" and type(user) ~= "number" then
        return nil, 403, "token_names_no_user"
    end
    return { user_id = tostring(user), name = type(claims.name) == "string" and claims.name or nil }
end

function _M.on_open(conn, request)
    local room = request.params.room -- conn.params would keep a table per connection
    local group = "chat_" .. room
    if #group > moontide.limits.group_name then
        return conn:close(1008, "room name too long")
    end
    conn.state.group = group
    -- announced to the others, then a member
    local user = conn.user
    presence.join(group, conn, user and { user_id = user.user_id, name = user.name },
        { events = conn.options.presence_events })
    groups.add(group, conn)
    local s = room_stream(conn)
    if not s then
        return
    end
    local epoch, offset = resume_point(conn.query)
    if epoch and offset then
        return s:resume(conn, epoch, offset)
    end
    s:greet(conn, HISTORY, history_frame)
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
        local user = conn.user
        local out = user and { type = "message", text = msg.text, user_id = user.user_id,
            name = user.name } or { type = "message", text = msg.text, connection_id = conn.id }
        local s = room_stream(conn)
        if s then
            s:publish(out)
        else
            groups.send(conn.state.group, out)
        end
    elseif kind == "heartbeat" then
        count_message("heartbeat")
        conn:send(HEARTBEAT_ACK)
    elseif kind == "presence" then
        presence.list(conn.state.group, function(members, perr)
            if conn.closed then
                return
            end
            if not members then
                return conn:send({ type = "error", error = "presence_unavailable", reason = perr })
            end
            local list = {} -- cjson would write an empty table as {}
            for i, m in ipairs(members) do
                list[i] = json_encode(m)
            end
            conn:send('{"type":"presence","members":[' .. table.concat(list, ",") .. "]}")
        end)
    elseif kind == nil and text:find("^%s*%[") then
        conn:send(ERR_INVALID) -- cjson decodes an array to a table too
    else
        conn:send(ERR_UNKNOWN)
    end
end

return _M
