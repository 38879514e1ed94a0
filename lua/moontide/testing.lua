--- moontide.testing: run handlers in-process, without a server, for specs.
--
--   local testing = require "moontide.testing"
--   local rt = testing.new()                        -- routes.lua + handlers
--   local alice = assert(rt:connect("/ws/chat/lobby/"))
--   local bob = rt:connect("/ws/chat/lobby/")
--   alice:send_json({ type = "message", text = "hi" })
--   assert.same("hi", bob:receive().text)           -- next frame, decoded
--   assert.is_nil(bob:receive())                    -- nothing more queued
--   rt:advance(30)                                  -- fire timers due in 30 s
--   rt:reload()                                     -- as a script change would
--   alice:close(1000)                               -- runs on_close
--
-- Events run synchronously, with the real dispatcher (moontide.host) and
-- library: only the core beneath them is a fake that records frames, group
-- memberships, closes, counters and log lines. As on the server, an error
-- in a handler does not propagate: it lands in rt.errors (and a failed
-- on_open closes the connection with 1011); rt:assert_no_errors() checks.
-- One runtime is active at a time (new() rebinds the library).
local cjson = require "cjson.safe"

local host = require "moontide.host"

local setmetatable, pairs, ipairs, type, error = setmetatable, pairs, ipairs, type, error
local table_remove, table_sort = table.remove, table.sort
local traceback = debug.traceback

local const = require("moontide.cdef").const
local OK, ERROR, DECLINED = const.MT_FFI_OK, const.MT_FFI_ERROR, const.MT_FFI_DECLINED
local CLOSE_REASON_MAX = const.MT_FFI_CLOSE_REASON_MAX
local LEVEL_NAMES = { [10] = "DEBUG", [20] = "INFO", [30] = "WARNING", [40] = "ERROR",
    [50] = "CRITICAL" }

local _M = {}

local Runtime = {}
Runtime.__index = Runtime

local Client = {}
Client.__index = Client

local function valid_close_code(code)
    return (code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
        or (code >= 3000 and code <= 4999)
end

-- The fake core: the same functions moontide.core offers.
local function new_backend(rt)
    local b = {}

    function b.send(handle, data, binary)
        local c = rt.clients[handle]
        if not c or c.closing then
            return DECLINED
        end
        c.inbox[#c.inbox + 1] = { data = data, binary = binary or false }
        rt.counters.messages.sent = rt.counters.messages.sent + 1
        return OK
    end

    function b.close(handle, code, reason)
        if not valid_close_code(code) or #reason > CLOSE_REASON_MAX then
            return ERROR
        end
        local c = rt.clients[handle]
        if not c or c.closing then
            return DECLINED
        end
        c.closing = true
        rt:_closed(c, code, reason, "server")
        return OK
    end

    function b.conn_field(handle, field)
        local c = rt.clients[handle]
        return c and c.fields[field]
    end

    function b.group_add(name, handle)
        local c = rt.clients[handle]
        if not c or c.closing then
            return DECLINED
        end
        local g = rt.groups[name] or {}
        rt.groups[name] = g
        g[handle] = true
        return OK
    end

    function b.group_discard(name, handle)
        local g = rt.groups[name]
        if not g or not g[handle] then
            return DECLINED
        end
        g[handle] = nil
        if next(g) == nil then
            rt.groups[name] = nil
        end
        return OK
    end

    function b.group_send(name, data, binary)
        rt.counters.messages.broadcast = rt.counters.messages.broadcast + 1
        local g = rt.groups[name]
        if not g then
            return 0
        end
        local n = 0
        for handle in pairs(g) do
            if b.send(handle, data, binary) == OK then
                n = n + 1
            end
        end
        return n
    end

    function b.group_size(name)
        local n = 0
        for _ in pairs(rt.groups[name] or {}) do
            n = n + 1
        end
        return n
    end

    function b.log_threshold()
        return rt.log_threshold
    end

    function b.log_write(level, logger, msg, handle, fields)
        local line = fields and cjson.decode(fields) or {}
        line.level, line.logger, line.message = LEVEL_NAMES[level] or level, logger, msg
        -- as the core does: the connection's identity, from on_open (the
        -- host's object) to on_close (the client's, once the host let go)
        local client = handle and rt.clients[handle]
        local conn = handle and (host.connection(handle) or client and client.conn)
        if conn then
            line.connection_id, line.session_uuid = conn.id, conn.session_uuid
            line.request_id, line.remote_addr = conn.request_id, conn.remote_addr
            line.user_agent = conn.user_agent
        end
        rt.logs[#rt.logs + 1] = line
    end

    local ERROR_TYPES = {
        connection_failed = true, json_decode_error = true, handler_error = true,
        message_too_large = true, send_queue_overflow = true, redis_unavailable = true,
        rate_limited = true, heartbeat_timeout = true, protocol_error = true, bad_handshake = true,
    }

    function b.count_error(kind)
        if not ERROR_TYPES[kind] then
            return ERROR
        end
        rt.counters.errors[kind] = (rt.counters.errors[kind] or 0) + 1
        return OK
    end

    function b.count_message(kind)
        if rt.counters.messages[kind] == nil then
            return ERROR
        end
        rt.counters.messages[kind] = rt.counters.messages[kind] + 1
        return OK
    end

    -- A small registry with the core's rules that matter to handlers.
    function b.metric_define(kind, name, help, labels, buckets)
        if not name:match("^[%a_:][%w_:]*$") then
            return nil, 'bad metric name "' .. name .. '"'
        end
        if kind == 0 and not name:match("_total$") then
            return nil, "counter " .. name .. ": a counter's name must end in _total"
        end
        local sig = kind .. "|" .. help .. "|" .. table.concat(labels, ",") .. "|"
            .. table.concat(buckets or {}, ",")
        local f = rt.metrics[name]
        if f then
            if f.sig ~= sig then
                return nil, "metric " .. name .. " is already defined with other help, labels or buckets"
            end
            return f
        end
        f = { name = name, kind = kind, sig = sig, series = {}, labels = labels }
        rt.metrics[name] = f
        return f
    end

    function b.metric_series(f, key)
        local s = f.series[key]
        if not s then
            s = { value = 0, count = 0, kind = f.kind }
            f.series[key] = s
        end
        return s
    end

    function b.metric_add(s, v)
        if s.kind == 0 and (v ~= v or v < 0) then -- NaN too
            return ERROR
        end
        s.value = s.value + v
        return OK
    end

    function b.metric_set(s, v)
        s.value = v
    end

    function b.metric_observe(s, v)
        s.value = s.value + v
        s.count = s.count + 1
    end

    function b.metric_get(s)
        return s.value
    end

    -- A tiny Redis with the list and string commands handlers use most;
    -- replies arrive after the current event, as they would over the wire.
    local COMMANDS = {}
    function COMMANDS.LPUSH(db, key, ...)
        local list = db[key] or {}
        db[key] = list
        for _, v in ipairs({ ... }) do
            table.insert(list, 1, v)
        end
        return #list
    end
    function COMMANDS.RPUSH(db, key, ...)
        local list = db[key] or {}
        db[key] = list
        for _, v in ipairs({ ... }) do
            list[#list + 1] = v
        end
        return #list
    end
    local function range(list, first, last)
        first, last = tonumber(first), tonumber(last)
        if first < 0 then first = #list + first end
        if last < 0 then last = #list + last end
        return math.max(first, 0) + 1, math.min(last, #list - 1) + 1
    end
    function COMMANDS.LRANGE(db, key, first, last)
        local list, out = db[key] or {}, {}
        local i, j = range(list, first, last)
        for k = i, j do
            out[#out + 1] = list[k]
        end
        return out
    end
    function COMMANDS.LTRIM(db, key, first, last)
        db[key] = COMMANDS.LRANGE(db, key, first, last)
        return "OK"
    end
    function COMMANDS.SET(db, key, value)
        db[key] = value
        return "OK"
    end
    function COMMANDS.GET(db, key)
        return db[key]
    end
    function COMMANDS.DEL(db, ...)
        local n = 0
        for _, k in ipairs({ ... }) do
            if db[k] ~= nil then
                n = n + 1
            end
            db[k] = nil
        end
        return n
    end
    function COMMANDS.INCR(db, key)
        db[key] = tostring((tonumber(db[key]) or 0) + 1)
        return tonumber(db[key])
    end

    function b.redis_command(args)
        if not rt.redis then
            return nil, "redis not configured"
        end
        if rt.redis_down then
            return nil, "redis unavailable"
        end
        rt.next_redis = rt.next_redis + 1
        local f = COMMANDS[tostring(args[1]):upper()]
        local reply
        if f then
            local strs = {}
            for i = 2, #args do
                strs[#strs + 1] = tostring(args[i])
            end
            reply = { f(rt.redis, unpack(strs)) }
        else
            reply = { nil, "ERR unknown command '" .. tostring(args[1]) .. "'" }
        end
        rt.redis_replies[#rt.redis_replies + 1] = { id = rt.next_redis, reply = reply }
        return rt.next_redis
    end

    function b.redis_state()
        return not rt.redis and 0 or rt.redis_down and 1 or 2
    end

    function b.now()
        return rt.clock
    end

    function b.monotonic()
        return rt.clock
    end

    function b.timer_start(delay, rep)
        rt.next_timer = rt.next_timer + 1
        rt.timers[rt.next_timer] = { due = rt.clock + delay, every = rep, seq = rt.next_timer }
        return rt.next_timer
    end

    function b.timer_stop(id)
        if not rt.timers[id] then
            return DECLINED
        end
        rt.timers[id] = nil
        return OK
    end

    return b
end

--- Creates a runtime and loads the scripts (routes.lua and its handlers)
-- from package.path. opts.log_level: threshold for rt.logs (default 10,
-- DEBUG). opts.clock: the starting time (default 1700000000). opts.redis:
-- true for a small in-memory Redis (LPUSH, RPUSH, LRANGE, LTRIM, GET, SET,
-- DEL, INCR) behind moontide.redis; rt.redis_down = true makes it
-- unavailable.
function _M.new(opts)
    opts = opts or {}
    local rt = setmetatable({
        clients = {},  -- handle -> Client
        groups = {},   -- name -> set of handles
        logs = {},
        errors = {},
        timers = {},
        next_timer = 0,
        next_handle = 0,
        clock = opts.clock or 1700000000,
        log_threshold = opts.log_level or 10,
        metrics = {},   -- name -> family, as handlers defined them
        redis = opts.redis and {} or nil, -- key -> value of the fake Redis
        redis_replies = {},
        next_redis = 0,
        counters = {
            messages = { received = 0, sent = 0, heartbeat = 0, broadcast = 0 },
            errors = {},
            connections_total = 0,
        },
    }, Runtime)
    host.start({ backend = new_backend(rt), redis_prefix = "moontide:" })
    return rt
end

-- Runs a host event as the core does: errors are recorded, not raised.
function Runtime:_call(event, client, f, ...)
    local ok, err = xpcall(f, traceback, ...)
    if not ok then
        self.errors[#self.errors + 1] = { event = event, error = err,
            connection_id = client and client.conn and client.conn.id }
        self.counters.errors.handler_error = (self.counters.errors.handler_error or 0) + 1
    end
    return ok
end

function Runtime:_closed(c, code, reason, initiator)
    c.close_code, c.close_reason, c.close_initiator = code, reason, initiator
    -- as in the core, the close event runs after the current one
    self.pending_closes = self.pending_closes or {}
    self.pending_closes[#self.pending_closes + 1] = c
    if not self.in_event then
        self:_flush_closes()
    end
end

function Runtime:_flush_closes()
    local list = self.pending_closes or {}
    self.pending_closes = {}
    for _, c in ipairs(list) do
        if not c.closed then
            c.closed = true
            for name, g in pairs(self.groups) do
                g[c.handle] = nil
                if next(g) == nil then
                    self.groups[name] = nil
                end
            end
            self:_call("on_close", c, host.close, c.handle, c.close_code, c.close_reason)
            self.clients[c.handle] = nil
        end
    end
end

function Runtime:_event(event, client, f, ...)
    self.in_event = true
    local ok = self:_call(event, client, f, ...)
    self.in_event = false
    self:_flush_closes()
    self:_flush_redis()
    return ok
end

-- Delivers queued Redis replies, each as its own event.
function Runtime:_flush_redis()
    while #self.redis_replies > 0 do
        local r = table_remove(self.redis_replies, 1)
        self.in_event = true
        self:_call("redis reply", nil, host.redis_reply, r.id, r.reply[1], r.reply[2])
        self.in_event = false
        self:_flush_closes()
    end
end

--- Opens a connection to path. Returns the client, or nil and "not_found"
-- when no route matches. info may set remote_addr, user_agent, origin,
-- request_id, query, and protocols (the subprotocols the client offers;
-- the route's choice is then conn.protocol, as on the server).
function Runtime:connect(path, info)
    info = info or {}
    local offered = info.protocols and table.concat(info.protocols, ", ")
    local route, protocol = host.match(path, offered)
    if not route then
        self.counters.errors.connection_failed = (self.counters.errors.connection_failed or 0) + 1
        return nil, "not_found"
    end
    self.next_handle = self.next_handle + 1
    local handle = self.next_handle
    local id = ("00000000-0000-4000-8000-%012d"):format(handle)
    -- what the core keeps for each connection (moontide.CORE_FIELDS)
    local fields = { [0] = id, ("11111111-0000-4000-8000-%012d"):format(handle),
        info.request_id or id, info.remote_addr or "127.0.0.1", info.user_agent or "moontide.testing" }
    local c = setmetatable({ rt = self, handle = handle, inbox = {}, closed = false,
        fields = fields }, Client)
    self.clients[handle] = c
    self.counters.connections_total = self.counters.connections_total + 1
    local ok = self:_event("on_open", c, host.open, handle, path, info.query or "", info.origin,
        protocol)
    c.conn = host.connection(handle)
    if not ok and not c.closing then
        c.closing = true
        self:_closed(c, 1011, "internal error", "server")
    end
    return c
end

--- Reloads the scripts as the server does on a change (see
-- moontide.host). Returns the new generation, or nil and the error with
-- the running generation kept.
function Runtime:reload()
    local ok, res = pcall(host.reload)
    if not ok then
        return nil, res
    end
    self:_flush_closes()
    return res
end

--- Advances the fake clock, firing due timers in order of due time.
function Runtime:advance(seconds)
    local target = self.clock + seconds
    while true do
        local due = {}
        for id, t in pairs(self.timers) do
            if t.due <= target then
                due[#due + 1] = { id = id, t = t }
            end
        end
        if #due == 0 then
            break
        end
        table_sort(due, function(a, b)
            if a.t.due ~= b.t.due then
                return a.t.due < b.t.due
            end
            return a.t.seq < b.t.seq
        end)
        local first = due[1]
        self.clock = first.t.due
        if first.t.every > 0 then
            first.t.due = first.t.due + first.t.every
        else
            self.timers[first.id] = nil
        end
        self:_event("timer", nil, host.timer, first.id)
    end
    self.clock = target
end

--- The value of a handler-defined metric series (a histogram: sum and
-- count), or nil if it does not exist. Label values in declaration order.
function Runtime:metric(name, ...)
    local f = self.metrics[name]
    local s = f and f.series[table.concat({ ... }, "\0")]
    if not s then
        return nil
    end
    if f.kind == 2 then
        return s.value, s.count
    end
    return s.value
end

--- Members (client objects) of a group.
function Runtime:members(group)
    local list = {}
    for handle in pairs(self.groups[group] or {}) do
        list[#list + 1] = self.clients[handle]
    end
    return list
end

--- Raises with every recorded handler error, if there is any.
function Runtime:assert_no_errors()
    if #self.errors > 0 then
        local parts = {}
        for i, e in ipairs(self.errors) do
            parts[i] = e.event .. ": " .. e.error
        end
        error("handler errors:\n" .. table.concat(parts, "\n"), 2)
    end
end

--- Sends a text (or binary) message to the handler, as a client would.
function Client:send(data, binary)
    if self.closed or self.closing then
        return nil, "closed"
    end
    if type(data) ~= "string" then
        error('bad "data" argument: expected a string', 2)
    end
    self.rt.counters.messages.received = self.rt.counters.messages.received + 1
    self.rt:_event("on_message", self, host.message, self.handle, data, binary or false)
    return true
end

--- Sends a table as JSON text.
function Client:send_json(tbl)
    return self:send(assert(cjson.encode(tbl)))
end

--- The oldest frame sent to this client, decoded from JSON (raw text if it
-- is not JSON), and removed from the inbox; nil when there is none.
function Client:receive()
    local f = table_remove(self.inbox, 1)
    if not f then
        return nil
    end
    local v = cjson.decode(f.data)
    if v == nil then
        return f.data
    end
    return v
end

--- The oldest frame as sent (string), removed from the inbox.
function Client:receive_raw()
    local f = table_remove(self.inbox, 1)
    return f and f.data
end

--- Every frame not yet received, decoded; empties the inbox.
function Client:drain()
    local list = {}
    while #self.inbox > 0 do
        list[#list + 1] = self:receive()
    end
    return list
end

--- Closes from the client side (default 1000); runs on_close.
function Client:close(code, reason)
    if self.closed or self.closing then
        return nil, "closed"
    end
    self.closing = true
    self.rt:_closed(self, code or 1000, reason or "", "client")
    return true
end

return _M
