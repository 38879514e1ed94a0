--- moontide: the library handlers use.
--
--   local moontide = require "moontide"
--   conn:send(tbl_or_string)        conn:close(code, reason)
--   conn.state                      per-connection table; survives reloads
--   conn.id, conn.session_uuid, conn.params, conn.path, conn.query
--   moontide.groups.add(name, conn) .discard(name, conn) .send(name, msg) .size(name)
--   moontide.logger(name).info(message, fields)   (debug/info/warning/error/critical)
--   moontide.timer.after(s, fn) / .every(s, fn) -> timer with :cancel()
--   moontide.json.encode(v) / .decode(s) -> value | nil, err
--   moontide.now(), moontide.monotonic(), moontide.count_error(type)
--
-- Bad arguments raise (`error(..., 2)`); runtime failures return nil, err.
-- Handlers do all their I/O through this library: it is bound to the
-- server's core or to moontide.testing's fake, and handlers can't tell.
local cjson = require "cjson.safe"

local type, tostring, pairs, error = type, tostring, pairs, error
local setmetatable, getmetatable = setmetatable, getmetatable
local json_encode, json_decode = cjson.encode, cjson.decode

local _M = { _VERSION = "0.1.0" }

local backend -- bound by moontide.host
local threshold = 20

local STATUS = { OK = 0, ERROR = -1, AGAIN = -2, DECLINED = -5 }
_M.STATUS = STATUS

--- Binds the library to a backend (the core, or a test fake). Internal.
function _M._bind(b)
    backend = b
    threshold = b.log_threshold()
end

-- JSON -----------------------------------------------------------------

_M.json = {
    encode = json_encode,
    decode = json_decode,
}

local function encode_message(msg, what)
    local t = type(msg)
    if t == "string" then
        return msg
    elseif t == "table" then
        local text, err = json_encode(msg)
        if not text then
            error("cannot encode " .. what .. " as JSON: " .. tostring(err), 3)
        end
        return text
    end
    error('bad "message" argument: expected a table or a string, got ' .. t, 3)
end

-- Connections ----------------------------------------------------------

local Connection = {}
Connection.__index = Connection
_M.Connection = Connection

--- Creates the object a handler sees for one connection. Internal: the
-- host makes one per connection and keeps it, with its state, until close.
function _M._connection(handle, fields)
    local conn = setmetatable(fields, Connection)
    conn._handle = handle
    conn.state = {}
    conn.closed = false
    return conn
end

--- Queues a message: a table is sent as JSON text, a string as is.
-- Returns true, or nil and "closed" when the connection is closing.
function Connection:send(msg, binary)
    local data = encode_message(msg, "message")
    local rc = backend.send(self._handle, data, binary)
    if rc == STATUS.OK then
        return true
    end
    return nil, "closed"
end

--- Closes with a code (default 1000) and reason once queued frames are out.
-- Returns true, or nil and "closed" if it is already closing.
function Connection:close(code, reason)
    code = code or 1000
    reason = reason or ""
    if type(code) ~= "number" then
        error('bad "code" argument: expected a number', 2)
    end
    if type(reason) ~= "string" or #reason > 123 then
        error('bad "reason" argument: expected a string of at most 123 bytes', 2)
    end
    local rc = backend.close(self._handle, code, reason)
    if rc == STATUS.ERROR then
        error('bad "code" argument: ' .. code .. " is not a close code an endpoint may send", 2)
    end
    if rc == STATUS.OK then
        return true
    end
    return nil, "closed"
end

-- Groups ---------------------------------------------------------------

local groups = {}
_M.groups = groups

local function check_group(name)
    if type(name) ~= "string" or #name == 0 or #name > 200 then
        error('bad "group" argument: expected a name of 1 to 200 bytes', 3)
    end
end

local function check_conn(conn)
    if getmetatable(conn) ~= Connection then
        error('bad "conn" argument: expected a connection', 3)
    end
end

--- Adds a connection to a group (created on first use). Returns true, or
-- nil and "closed".
function groups.add(name, conn)
    check_group(name)
    check_conn(conn)
    if backend.group_add(name, conn._handle) == STATUS.OK then
        return true
    end
    return nil, "closed"
end

--- Removes a connection from a group. Returns true, or nil and "not_member".
function groups.discard(name, conn)
    check_group(name)
    check_conn(conn)
    if backend.group_discard(name, conn._handle) == STATUS.OK then
        return true
    end
    return nil, "not_member"
end

--- Sends a message to every member of a group: encoded once, shared by
-- every recipient. Returns the number of members reached on this instance.
function groups.send(name, msg, binary)
    check_group(name)
    local data = encode_message(msg, "group message")
    return backend.group_send(name, data, binary)
end

--- The number of members a group has on this instance.
function groups.size(name)
    check_group(name)
    return backend.group_size(name)
end

-- Logging --------------------------------------------------------------

local LEVELS = { debug = 10, info = 20, warning = 30, error = 40, critical = 50 }
local RESERVED = { timestamp = true, level = true, logger = true, message = true, color = true }

local function write_log(level, name, message, fields)
    if level < threshold then
        return
    end
    if type(message) ~= "string" then
        message = tostring(message)
    end
    local handle, text
    if fields then
        local copy, n = {}, 0
        for k, v in pairs(fields) do
            if k == "conn" then
                handle = type(v) == "table" and v._handle or nil
            elseif type(k) == "string" and not RESERVED[k] then
                local tv = type(v)
                if tv == "function" or tv == "userdata" or tv == "thread" or tv == "cdata" then
                    v = tostring(v)
                end
                copy[k] = v
                n = n + 1
            end
        end
        if n > 0 then
            text = json_encode(copy) or json_encode({ fields_error = "unencodable fields" })
        end
    end
    backend.log_write(level, name, message, handle, text)
end

local loggers = {}

--- A logger whose lines carry `logger = name`. `fields` is a table of
-- extra fields; `fields.conn = conn` adds the connection's identity.
function _M.logger(name)
    if type(name) ~= "string" then
        error('bad "name" argument: expected a string', 2)
    end
    local l = loggers[name]
    if l then
        return l
    end
    l = {}
    for lname, level in pairs(LEVELS) do
        l[lname] = function(message, fields)
            return write_log(level, name, message, fields)
        end
    end
    loggers[name] = l
    return l
end

_M.log = _M.logger("lua")

-- Time and timers ------------------------------------------------------

--- Seconds since the epoch, with fraction.
function _M.now()
    return backend.now()
end

--- Monotonic seconds, for measuring durations.
function _M.monotonic()
    return backend.monotonic()
end

local timer = {}
_M.timer = timer
local timers = {} -- id -> Timer, while it may fire

local Timer = {}
Timer.__index = Timer

--- Stops the timer. Returns true, or nil and "gone" if it already ended.
function Timer:cancel()
    if not timers[self.id] then
        return nil, "gone"
    end
    timers[self.id] = nil
    backend.timer_stop(self.id)
    return true
end

local function start(delay, rep, fn)
    if type(delay) ~= "number" or delay < 0 then
        error('bad "delay" argument: expected seconds >= 0', 3)
    end
    if type(fn) ~= "function" then
        error('bad "callback" argument: expected a function', 3)
    end
    local id = backend.timer_start(delay, rep)
    if not id or id == 0 then
        error('bad "delay" argument: out of range', 3)
    end
    local t = setmetatable({ id = id, fn = fn, repeating = rep > 0 }, Timer)
    timers[id] = t
    return t
end

--- Runs fn once after delay seconds.
function timer.after(delay, fn)
    return start(delay, 0, fn)
end

--- Runs fn every interval seconds until cancelled.
function timer.every(interval, fn)
    if type(interval) ~= "number" or interval <= 0 then
        error('bad "interval" argument: expected seconds > 0', 2)
    end
    return start(interval, interval, fn)
end

--- Runs the callback of a timer that fired. Internal: called by the host.
function _M._fire(id)
    local t = timers[id]
    if not t then
        return
    end
    if not t.repeating then
        timers[id] = nil
    end
    t.fn(t)
end

--- Forgets every timer (a new runtime in tests). Internal.
function _M._reset_timers()
    timers = {}
end

-- Counters -------------------------------------------------------------

--- Counts an error in websocket_errors_total{error_type=kind}; kind is one
-- of the core's types (json_decode_error, handler_error, ...).
function _M.count_error(kind)
    if backend.count_error(kind) ~= STATUS.OK then
        error('bad "kind" argument: unknown error type ' .. tostring(kind), 2)
    end
end

--- Counts a message in websocket_messages_total{type=kind}.
function _M.count_message(kind)
    if backend.count_message(kind) ~= STATUS.OK then
        error('bad "kind" argument: unknown message type ' .. tostring(kind), 2)
    end
end

return _M
