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
-- memberships, closes, counters and log lines. The fake implements the
-- core's FFI functions themselves, with the core's rules, and
-- spec/unit/contract_spec.lua runs one set of cases against both. As on the server, an error
-- in a handler does not propagate: it lands in rt.errors (and a failed
-- on_open closes the connection with 1011); rt:assert_no_errors() checks.
-- One runtime is active at a time (new() rebinds the library).
local cjson = require "cjson.safe"

local host = require "moontide.host"

local setmetatable, pairs, ipairs, type, error = setmetatable, pairs, ipairs, type, error
local table_remove, table_sort = table.remove, table.sort
local traceback = debug.traceback

local ffi = require "ffi"
local const = require("moontide.cdef").const
local OK, ERROR, AGAIN, DECLINED = const.MT_FFI_OK, const.MT_FFI_ERROR, const.MT_FFI_AGAIN,
    const.MT_FFI_DECLINED
local CLOSE_REASON_MAX, GROUP_NAME_MAX = const.MT_FFI_CLOSE_REASON_MAX, const.MT_FFI_GROUP_NAME_MAX
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

local ERROR_TYPES = {
    connection_failed = true, json_decode_error = true, handler_error = true,
    message_too_large = true, send_queue_overflow = true, redis_unavailable = true,
    rate_limited = true, heartbeat_timeout = true, protocol_error = true, bad_handshake = true,
}

local COUNTER, HISTOGRAM = 0, 2
local KIND_NAMES = { [0] = "counter", "gauge", "histogram" }
local DEFAULT_BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    7.5, 10.0 }
local TIMER_MAX = 1e7 -- seconds, as core/timer.c takes them

-- A tiny Redis with the list and string commands handlers use most;
-- replies arrive after the current event, as they would over the wire.
local REDIS_COMMANDS = {}
function REDIS_COMMANDS.LPUSH(db, key, ...)
    local list = db[key] or {}
    db[key] = list
    for _, v in ipairs({ ... }) do
        table.insert(list, 1, v)
    end
    return #list
end
function REDIS_COMMANDS.RPUSH(db, key, ...)
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
function REDIS_COMMANDS.LRANGE(db, key, first, last)
    local list, out = db[key] or {}, {}
    local i, j = range(list, first, last)
    for k = i, j do
        out[#out + 1] = list[k]
    end
    return out
end
function REDIS_COMMANDS.LTRIM(db, key, first, last)
    db[key] = REDIS_COMMANDS.LRANGE(db, key, first, last)
    return "OK"
end
-- The runtime a fake Redis belongs to (its clock, its groups).
local db_runtime = setmetatable({}, { __mode = "k" })
local expiries = setmetatable({}, { __mode = "k" }) -- db -> { key -> clock }

-- A key past its time to live is gone.
local function live(db, key)
    local e = expiries[db] and expiries[db][key]
    if e and e <= db_runtime[db].clock then
        db[key] = nil
        expiries[db][key] = nil
    end
    return db[key]
end

local function expire_at(db, key, at)
    expiries[db] = expiries[db] or {}
    expiries[db][key] = at
end

function REDIS_COMMANDS.SET(db, key, value, opt, n)
    db[key] = value
    if opt and opt:upper() == "PX" then
        expire_at(db, key, db_runtime[db].clock + tonumber(n) / 1000)
    elseif opt and opt:upper() == "EX" then
        expire_at(db, key, db_runtime[db].clock + tonumber(n))
    elseif expiries[db] then
        expiries[db][key] = nil
    end
    return "OK"
end
function REDIS_COMMANDS.GET(db, key)
    return live(db, key)
end
function REDIS_COMMANDS.EXISTS(db, key)
    return live(db, key) ~= nil and 1 or 0
end
function REDIS_COMMANDS.EXPIRE(db, key, seconds)
    if live(db, key) == nil then
        return 0
    end
    expire_at(db, key, db_runtime[db].clock + tonumber(seconds))
    return 1
end
function REDIS_COMMANDS.HSET(db, key, field, value)
    local h = live(db, key) or {}
    db[key] = h
    local new = h[field] == nil
    h[field] = value
    return new and 1 or 0
end
function REDIS_COMMANDS.HDEL(db, key, ...)
    local h, n = live(db, key), 0
    for _, f in ipairs({ ... }) do
        if h and h[f] ~= nil then
            h[f] = nil
            n = n + 1
        end
    end
    return n
end
function REDIS_COMMANDS.HGETALL(db, key)
    local out = {}
    for f, v in pairs(live(db, key) or {}) do
        out[#out + 1] = f
        out[#out + 1] = v
    end
    return out
end
function REDIS_COMMANDS.TIME(db)
    local t = db_runtime[db].clock
    return { tostring(math.floor(t)), tostring(math.floor(t % 1 * 1e6)) }
end
-- Streams with explicit IDs of the form 0-N (what moontide.stream writes).
local function stream_seq(id)
    return tonumber(tostring(id):match("-(%d+)$")) or tonumber(id) or 0
end
function REDIS_COMMANDS.XADD(db, key, ...)
    local args = { ... }
    local s = live(db, key) or { entries = {} }
    db[key] = s
    local i, maxlen = 1, nil
    if args[1] and args[1]:upper() == "MAXLEN" then
        i = args[2] == "~" and 4 or 3
        maxlen = tonumber(args[i - 1])
    end
    local id = args[i]
    local fields = {}
    for k = i + 1, #args do
        fields[#fields + 1] = args[k]
    end
    s.entries[#s.entries + 1] = { id, fields }
    while maxlen and #s.entries > maxlen do
        table.remove(s.entries, 1)
    end
    return id
end
local function xrange(db, key, from, to, count)
    local s = live(db, key)
    local out = {}
    local lo = from == "-" and -math.huge or stream_seq(from)
    local hi = to == "+" and math.huge or stream_seq(to)
    for _, e in ipairs(s and s.entries or {}) do
        local seq = stream_seq(e[1])
        if seq >= lo and seq <= hi then
            out[#out + 1] = e
        end
    end
    return out, count and tonumber(count)
end
function REDIS_COMMANDS.XRANGE(db, key, from, to, _, count)
    local out, n = xrange(db, key, from, to, count)
    while n and #out > n do
        table.remove(out)
    end
    return out
end
function REDIS_COMMANDS.XREVRANGE(db, key, to, from, _, count)
    local out, n = xrange(db, key, from, to, count)
    local rev = {}
    for i = #out, 1, -1 do
        rev[#rev + 1] = out[i]
    end
    while n and #rev > n do
        table.remove(rev)
    end
    return rev
end
-- PUBLISH on a group's channel reaches the group's members, as the
-- channel layer delivers it (core/redis.h: a 10-byte header, then the
-- payload).
function REDIS_COMMANDS.SPUBLISH(db, channel, message)
    return REDIS_COMMANDS.PUBLISH(db, channel, message)
end
function REDIS_COMMANDS.PUBLISH(db, channel, message)
    local rt = db_runtime[db]
    local group = channel:match("group:(.*)$")
    if group and #message >= 10 and message:byte(1) == const.MT_FFI_REDIS_HEADER_VERSION then
        rt:_deliver(group, message:sub(11), message:byte(2) % 2 == 1)
    end
    return 0
end
-- Scripts run here in Lua 5.1, as in Redis, against these commands.
function REDIS_COMMANDS.EVAL(db, script, nkeys, ...)
    local args, keys, argv = { ... }, {}, {}
    for i = 1, #args do
        if i <= tonumber(nkeys) then
            keys[#keys + 1] = args[i]
        else
            argv[#argv + 1] = args[i]
        end
    end
    local env = {
        KEYS = keys, ARGV = argv, string = string, math = math, table = table, type = type,
        tonumber = tonumber, tostring = tostring, ipairs = ipairs, pairs = pairs, unpack = unpack,
        redis = {
            call = function(cmd, ...)
                local f = REDIS_COMMANDS[cmd:upper()]
                if not f then
                    error("ERR unknown command '" .. cmd .. "'")
                end
                local strs = {}
                for i, v in ipairs({ ... }) do
                    strs[i] = tostring(v)
                end
                local r = f(db, unpack(strs))
                if r == nil then
                    return false -- as Redis hands a nil reply to a script
                end
                return r
            end,
        },
    }
    local chunk = assert(loadstring(script, "=script"))
    setfenv(chunk, env)
    local ok, r = pcall(chunk)
    if not ok then
        return nil, "ERR " .. tostring(r)
    end
    return r
end
function REDIS_COMMANDS.DEL(db, ...)
    local n = 0
    for _, k in ipairs({ ... }) do
        if db[k] ~= nil then
            n = n + 1
        end
        db[k] = nil
    end
    return n
end
function REDIS_COMMANDS.INCR(db, key)
    db[key] = tostring((tonumber(db[key]) or 0) + 1)
    return tonumber(db[key])
end

-- The fake core: the FFI functions of core/ffi.h, with the same arguments,
-- status codes and rules, over plain Lua tables (spec/unit/contract_spec.lua
-- runs the same cases here and on the server). Family and series handles
-- are small integers cast to the pointer types the library stores.
local function new_fake_c(rt)
    local C = {}
    local families, series = {}, {} -- id -> table, for the handles given out
    if rt.redis then
        db_runtime[rt.redis] = rt
    end

    local function conn_of(handle)
        local c = rt.clients[tonumber(handle)]
        if c and not c.closing then
            return c
        end
    end

    function C.mt_ffi_conn_send(handle, data, len, binary)
        if data == nil then
            return ERROR
        end
        local c = conn_of(handle)
        if not c then
            return DECLINED
        end
        c.inbox[#c.inbox + 1] = { data = data:sub(1, tonumber(len)), binary = binary ~= 0 }
        rt.counters.messages.sent = rt.counters.messages.sent + 1
        return OK
    end

    function C.mt_ffi_conn_close(handle, code, reason, len)
        if not valid_close_code(code) or len > CLOSE_REASON_MAX or (len > 0 and reason == nil) then
            return ERROR
        end
        local c = conn_of(handle)
        if not c then
            return DECLINED
        end
        c.closing = true
        rt:_closed(c, code, reason:sub(1, tonumber(len)), "server")
        return OK
    end

    -- v into buf[len], cut and NUL-terminated as the core does; its length.
    local function copy_out(v, buf, len)
        local n = math.min(#v, tonumber(len) - 1)
        ffi.copy(buf, v, n)
        buf[n] = 0
        return n
    end

    function C.mt_ffi_upgrade_header(name, len, buf, cap)
        local v = rt.upgrade_headers and rt.upgrade_headers[ffi.string(name, len)]
        if rt.upgrade_headers == nil then
            return ERROR
        elseif v == nil then
            return DECLINED
        end
        return copy_out(v, buf, cap)
    end

    function C.mt_ffi_conn_field(handle, field, buf, len)
        local c = rt.clients[tonumber(handle)]
        local v = c and c.fields[field]
        if v == nil then
            return ERROR
        end
        return copy_out(v, buf, len)
    end

    local function valid_group(name, len)
        return name ~= nil and len > 0 and len <= GROUP_NAME_MAX
    end

    function C.mt_ffi_group_add(name, len, handle)
        if not valid_group(name, len) then
            return ERROR
        end
        local c = conn_of(handle)
        if not c then
            return DECLINED
        end
        local g = rt.groups[name] or {}
        rt.groups[name] = g
        g[c.handle] = true
        return OK
    end

    function C.mt_ffi_group_discard(name, len, handle)
        if not valid_group(name, len) then
            return ERROR
        end
        local g = rt.groups[name]
        handle = tonumber(handle)
        if not g or not g[handle] then
            return DECLINED
        end
        g[handle] = nil
        if next(g) == nil then
            rt.groups[name] = nil
        end
        return OK
    end

    -- A group's frame for a member: queued, or held while it catches up.
    local function deliver(handle, group, data, dlen, binary)
        local c = conn_of(handle)
        if c and c.held and c.held_group == group then
            c.held[#c.held + 1] = { data = data:sub(1, tonumber(dlen)), binary = binary ~= 0 }
            return OK
        end
        return C.mt_ffi_conn_send(handle, data, dlen, binary)
    end

    function rt._deliver(_, group, data, binary)
        for handle in pairs(rt.groups[group] or {}) do
            deliver(handle, group, data, #data, binary and 1 or 0)
        end
    end

    function C.mt_ffi_group_send(name, len, data, dlen, binary)
        if not valid_group(name, len) or data == nil then
            return ERROR
        end
        rt.counters.messages.broadcast = rt.counters.messages.broadcast + 1
        if rt.redis and rt.redis_down then -- not published: here only, counted
            C.mt_ffi_count_error("redis_unavailable")
        end
        local n = 0
        for handle in pairs(rt.groups[name] or {}) do
            if deliver(handle, name, data, dlen, binary) == OK then
                n = n + 1
            end
        end
        return n
    end

    function C.mt_ffi_group_ready(name, len)
        return valid_group(name, len) and 1 or ERROR
    end

    function C.mt_ffi_conn_hold(handle, group, len)
        if not valid_group(group, len) then
            return ERROR
        end
        local c = conn_of(handle)
        if not c or c.held then
            return DECLINED
        end
        c.held, c.held_group = {}, group
        return OK
    end

    -- The last "offset":N in a frame's text, as the core reads it.
    local function frame_offset(data)
        local off
        for digits in data:gmatch('"offset":(%d+)') do
            off = tonumber(digits)
        end
        return off
    end

    function C.mt_ffi_conn_held_first(handle)
        local c = rt.clients[tonumber(handle)]
        for _, f in ipairs(c and c.held or {}) do
            local off = frame_offset(f.data)
            if off then
                return off
            end
        end
        return -1
    end

    function C.mt_ffi_conn_release(handle, after)
        local c = rt.clients[tonumber(handle)]
        if not c then
            return DECLINED
        end
        local held, n = c.held or {}, 0
        c.held = nil
        for _, f in ipairs(held) do
            local off = frame_offset(f.data)
            if not off or off > after then
                C.mt_ffi_conn_send(handle, f.data, #f.data, f.binary and 1 or 0)
                n = n + 1
            end
        end
        return n
    end

    -- One process: no other worker.
    function C.mt_ffi_worker_index()
        return 0
    end

    function C.mt_ffi_worker_count()
        return 1
    end

    function C.mt_ffi_mesh_send(worker)
        return worker < 1 and ERROR or DECLINED
    end

    function C.mt_ffi_group_size(name, len)
        if not valid_group(name, len) then
            return ERROR
        end
        local n = 0
        for _ in pairs(rt.groups[name] or {}) do
            n = n + 1
        end
        return n
    end

    function C.mt_ffi_log_threshold()
        return rt.log_threshold
    end

    function C.mt_ffi_log_write(level, logger, _, msg, _, handle, fields, _)
        if level < rt.log_threshold then
            return
        end
        local line = fields and cjson.decode(fields) or {}
        line.level, line.logger, line.message = LEVEL_NAMES[level] or level, logger, msg
        -- as the core does: the connection's identity, from on_open (the
        -- host's object) to on_close (the client's, once the host let go)
        handle = tonumber(handle)
        local client = handle ~= 0 and rt.clients[handle]
        local conn = handle ~= 0 and (host.connection(handle) or client and client.conn)
        if conn then
            line.connection_id, line.session_uuid = conn.id, conn.session_uuid
            line.request_id, line.remote_addr = conn.request_id, conn.remote_addr
            line.user_agent = conn.user_agent
        end
        rt.logs[#rt.logs + 1] = line
    end

    function C.mt_ffi_count_error(kind)
        if not ERROR_TYPES[kind] then
            return ERROR
        end
        rt.counters.errors[kind] = (rt.counters.errors[kind] or 0) + 1
        return OK
    end

    function C.mt_ffi_count_message(kind)
        if rt.counters.messages[kind] == nil then
            return ERROR
        end
        rt.counters.messages[kind] = rt.counters.messages[kind] + 1
        return OK
    end

    function C.mt_ffi_time_now()
        return rt.clock
    end

    function C.mt_ffi_time_monotonic()
        return rt.clock
    end

    function C.mt_ffi_timer_start(delay, rep)
        if not (delay >= 0 and delay <= TIMER_MAX and rep >= 0 and rep <= TIMER_MAX) then
            return 0
        end
        rt.next_timer = rt.next_timer + 1
        rt.timers[rt.next_timer] = { due = rt.clock + delay, every = rep, seq = rt.next_timer }
        return rt.next_timer
    end

    function C.mt_ffi_timer_stop(id)
        id = tonumber(id)
        if not rt.timers[id] then
            return DECLINED
        end
        rt.timers[id] = nil
        return OK
    end

    -- The registry's rules, as core/metrics.c has them.
    local function split(list)
        local items = {}
        if #list > 0 then
            for item in (list .. "\0"):gmatch("([^%z]*)%z") do
                items[#items + 1] = item
            end
        end
        return items
    end

    local function family_error(kind, name, help, labels, bounds)
        if not name:match("^[%a_:][%w_:]*$") then
            return 'bad metric name "' .. name:sub(1, 80) .. '": expected [a-zA-Z_:][a-zA-Z0-9_:]*'
        end
        if kind == COUNTER and not (#name >= 7 and name:sub(-6) == "_total") then
            return "counter " .. name .. ": a counter's name must end in _total"
        end
        if help == nil then
            return "metric " .. name .. ": help text is required"
        end
        if #labels > 16 then
            return "metric " .. name .. ": at most 16 labels"
        end
        for i, l in ipairs(labels) do
            if not l:match("^[%a_][%w_]*$") or l:sub(1, 2) == "__" then
                return "metric " .. name .. ': bad label name "' .. l:sub(1, 60) .. '"'
            end
            if l == "color" or (kind == HISTOGRAM and l == "le") then
                return "metric " .. name .. ': label "' .. l .. '" is reserved'
            end
            for j = 1, i - 1 do
                if labels[j] == l then
                    return "metric " .. name .. ': label "' .. l .. '" given twice'
                end
            end
        end
        if kind == HISTOGRAM then
            if #bounds < 1 or #bounds > 64 then
                return "histogram " .. name .. ": 1 to 64 buckets"
            end
            for i, b in ipairs(bounds) do
                if b ~= b or b == math.huge or b == -math.huge or (i > 1 and b <= bounds[i - 1]) then
                    return "histogram " .. name .. ": bucket bounds must be finite and increasing"
                end
            end
        end
    end

    local function put_error(err, errlen, text)
        local n = math.min(#text, tonumber(errlen) - 1)
        ffi.copy(err, text, n)
        err[n] = 0
    end

    function C.mt_ffi_metric_define(kind, name, _, help, _, labels, _, bounds, nbounds, out, err,
                                    errlen)
        if kind < COUNTER or kind > HISTOGRAM or name == nil or help == nil then
            put_error(err, errlen, "bad metric type or arguments")
            return ERROR
        end
        local label_list = split(labels)
        local bound_list = {}
        if kind == HISTOGRAM then
            if nbounds > 0 then
                for i = 0, nbounds - 1 do
                    bound_list[#bound_list + 1] = bounds[i]
                end
            else
                bound_list = DEFAULT_BUCKETS
            end
        end
        local e = family_error(kind, name, help, label_list, bound_list)
        if e then
            put_error(err, errlen, e)
            return ERROR
        end
        local sig = kind .. "|" .. help .. "|" .. table.concat(label_list, ",") .. "|"
            .. table.concat(bound_list, ",")
        local f = rt.metrics[name]
        if f then
            if f.sig ~= sig then
                put_error(err, errlen, "metric " .. name .. " is already defined as a "
                    .. KIND_NAMES[f.kind] .. " with other help, labels or buckets")
                return ERROR
            end
        else
            families[#families + 1] = true
            f = { id = #families, name = name, kind = kind, sig = sig, series = {},
                labels = label_list, bounds = bound_list }
            families[f.id] = f
            rt.metrics[name] = f
        end
        out[0] = ffi.cast("mt_family_t *", f.id)
        return OK
    end

    local function handle_id(p)
        return tonumber(ffi.cast("uintptr_t", p))
    end

    function C.mt_ffi_metric_series(family, values, _, out)
        local f = family ~= nil and families[handle_id(family)]
        if not f then
            return ERROR
        end
        local nvalues = #f.labels == 1 and 1 or #split(values) -- "" is one empty value
        if #f.labels > 0 and nvalues ~= #f.labels then
            return ERROR
        end
        local key = #f.labels == 0 and "" or values
        local s = f.series[key]
        if not s then
            series[#series + 1] = true
            s = { id = #series, value = 0, count = 0, kind = f.kind, family = f,
                buckets = {} }
            series[s.id] = s
            f.series[key] = s
        end
        out[0] = ffi.cast("mt_series_t *", s.id)
        return OK
    end

    function C.mt_ffi_series_add(p, v)
        local s = series[handle_id(p)]
        if s.kind == COUNTER and (v < 0 or v ~= v) then -- NaN refused too
            return ERROR
        end
        s.value = s.value + v
        return OK
    end

    function C.mt_ffi_series_set(p, v)
        series[handle_id(p)].value = v
    end

    function C.mt_ffi_series_observe(p, v)
        local s = series[handle_id(p)]
        s.value = s.value + v
        s.count = s.count + 1
        for i, b in ipairs(s.family.bounds) do
            if v <= b then
                s.buckets[i] = (s.buckets[i] or 0) + 1
            end
        end
    end

    function C.mt_ffi_series_get(p)
        return series[handle_id(p)].value
    end

    function C.mt_ffi_metric_read(name, _, match, _, what, le, out)
        local f = rt.metrics[name]
        if not f or what < 0 or what > 2 then
            return f and ERROR or DECLINED
        end
        local want = {}
        for _, pair in ipairs(split(match)) do
            local k, v = pair:match("^([^=]*)=(.*)$")
            want[k] = v
        end
        local sum, found = 0, false
        for key, s in pairs(f.series) do
            local values, ok = split(key), true
            for i, l in ipairs(f.labels) do
                if want[l] ~= nil and want[l] ~= values[i] then
                    ok = false
                end
            end
            if ok then
                found = true
                if what == 0 then
                    sum = sum + s.value
                elseif what == 1 then
                    sum = sum + s.count
                else
                    local n = le == math.huge and s.count or 0
                    for i, b in ipairs(f.bounds) do
                        if b == le then
                            n = s.buckets[i] or 0
                        end
                    end
                    sum = sum + n
                end
            end
        end
        if not found then
            return DECLINED
        end
        out[0] = sum
        return OK
    end

    function C.mt_ffi_metric_bounds(name, _, out, max)
        local f = rt.metrics[name]
        if not f or f.kind ~= HISTOGRAM then
            return DECLINED
        end
        local n = math.min(#f.bounds, max)
        for i = 1, n do
            out[i - 1] = f.bounds[i]
        end
        return n
    end

    function C.mt_ffi_redis_command(argc, argv, lens, out_id)
        if argc < 1 or argc > 1024 then
            return ERROR
        end
        if not rt.redis then
            return DECLINED
        end
        if rt.redis_down then
            C.mt_ffi_count_error("redis_unavailable") -- as the core counts it
            return AGAIN
        end
        local args = {}
        for i = 0, argc - 1 do
            args[i + 1] = ffi.string(argv[i], lens[i])
        end
        rt.next_redis = rt.next_redis + 1
        local f = REDIS_COMMANDS[args[1]:upper()]
        local reply
        if f then
            reply = { f(rt.redis, unpack(args, 2)) }
        else
            reply = { nil, "ERR unknown command '" .. args[1] .. "'" }
        end
        if out_id ~= nil then -- nil: nobody waits for the reply
            rt.redis_replies[#rt.redis_replies + 1] = { id = rt.next_redis, reply = reply }
            out_id[0] = rt.next_redis
        end
        return OK
    end

    -- The fake Redis delivers group messages at once: the barrier is just
    -- a reply in turn.
    function C.mt_ffi_redis_sync(_, _, out_id)
        if not rt.redis then
            return DECLINED
        end
        if rt.redis_down then
            return AGAIN
        end
        rt.next_redis = rt.next_redis + 1
        rt.redis_replies[#rt.redis_replies + 1] = { id = rt.next_redis, reply = { { "subscribe" } } }
        out_id[0] = rt.next_redis
        return OK
    end

    function C.mt_ffi_redis_state()
        return not rt.redis and 0 or rt.redis_down and 1 or 2
    end

    return C
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
        next_tick = (opts.clock or 1700000000) + 1,
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
    for _, name in ipairs({ "moontide.stream", "moontide.presence" }) do
        if package.loaded[name] then -- library state of an earlier runtime
            package.loaded[name]._reset()
        end
    end
    host.start({ C = new_fake_c(rt), redis_prefix = "moontide:" })
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
-- when no route matches, or nil, status and reason when the route's
-- authorize refuses (500, "authorize_failed" when it raises). info may set
-- remote_addr, user_agent, origin, request_id, query, headers (name ->
-- value, for authorize) and protocols (the subprotocols the client offers;
-- the route's choice is then conn.protocol, as on the server).
function Runtime:connect(path, info)
    info = info or {}
    local offered = info.protocols and table.concat(info.protocols, ", ")
    local route, protocol = host.match(path, offered)
    if not route then
        self.counters.errors.connection_failed = (self.counters.errors.connection_failed or 0) + 1
        return nil, "not_found"
    end
    -- the route's authorize, with the request's headers (lower-case names)
    self.upgrade_headers = {}
    for k, v in pairs(info.headers or {}) do
        self.upgrade_headers[k:lower()] = v
    end
    local ok_auth, allowed, auth, user_id = xpcall(host.authorize, traceback, path,
        info.query or "", info.origin, info.remote_addr or "127.0.0.1", false, info.tls == true)
    self.upgrade_headers = nil
    if not ok_auth then -- as the core: logged and counted, then a 500
        self.errors[#self.errors + 1] = { event = "authorize", error = allowed }
        self.counters.errors.handler_error = (self.counters.errors.handler_error or 0) + 1
        self.counters.errors.connection_failed = (self.counters.errors.connection_failed or 0) + 1
        return nil, 500, "authorize_failed"
    elseif not allowed then
        self.counters.errors.connection_failed = (self.counters.errors.connection_failed or 0) + 1
        return nil, auth, user_id -- the status and the reason
    end
    self.next_handle = self.next_handle + 1
    local handle = self.next_handle
    local id = ("00000000-0000-4000-8000-%012d"):format(handle)
    -- what the core keeps for each connection (moontide.CORE_FIELDS)
    local fields = { [0] = id, ("11111111-0000-4000-8000-%012d"):format(handle),
        info.request_id or id, info.remote_addr or "127.0.0.1", info.user_agent or "moontide.testing",
        user_id or "" }
    local c = setmetatable({ rt = self, handle = handle, inbox = {}, closed = false,
        fields = fields }, Client)
    self.clients[handle] = c
    self.counters.connections_total = self.counters.connections_total + 1
    local ok = self:_event("on_open", c, host.open, handle, path, info.query or "", info.origin,
        protocol, auth)
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
        -- The core's once-a-second tick (presence leases, alerts), in turn.
        local tick_first = self.next_tick <= target
        for _, d in ipairs(due) do
            if d.t.due < self.next_tick then
                tick_first = false
            end
        end
        if tick_first then
            self.clock = self.next_tick
            self.next_tick = self.next_tick + 1
            self:_event("tick", nil, host.tick, self.clock, true)
            due = nil
        end
        if due and #due == 0 then
            break
        end
        if not due then
            goto continue
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
        ::continue::
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
