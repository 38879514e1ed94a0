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
--   moontide.redis.command({...}, fn(reply, err)) .available() .key(...)
--   moontide.metrics.counter(name, help, labels) / .gauge / .histogram(..., buckets)
--       family:labels(v1, ...) -> series with :inc(n) :dec(n) :set(v) :observe(v) :get()
--
-- Bad arguments raise (`error(..., 2)`); runtime failures return nil, err.
-- Handlers do all their I/O through this library, the one layer between
-- them and C: it calls the core's FFI functions (core/ffi.h) directly, on
-- whichever C it is bound to: the server's exports, or moontide.testing's
-- fake, which implements the same functions (spec/unit/contract_spec.lua
-- holds the two to one behaviour). Handlers can't tell which.
local cjson = require "cjson.safe"
local ffi = require "ffi"

local type, tostring, pairs, ipairs, error, select = type, tostring, pairs, ipairs, error, select
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local json_encode, json_decode = cjson.encode, cjson.decode

local _M = { _VERSION = "0.1.0" }

local C -- the FFI functions, bound by moontide.host
local threshold = 20

local const = require("moontide.cdef").const
local STATUS = { OK = const.MT_FFI_OK, ERROR = const.MT_FFI_ERROR, AGAIN = const.MT_FFI_AGAIN,
    DECLINED = const.MT_FFI_DECLINED }
_M.STATUS = STATUS

--- Limits the core enforces, defined once in core/status.h.
local CLOSE_REASON_MAX, GROUP_NAME_MAX = const.MT_FFI_CLOSE_REASON_MAX, const.MT_FFI_GROUP_NAME_MAX
_M.limits = { close_reason = CLOSE_REASON_MAX, group_name = GROUP_NAME_MAX }

-- Out-parameters and buffers of the FFI calls, made once (at the first
-- bind: the types are declared by then).
local field_buf, family_out, series_out, err_buf, read_out, bounds_out, id_out
local FIELD_LEN, ERR_LEN, BOUNDS_MAX = 512, 256, 64

--- Binds the library to the C functions (the core's, or a test fake's
-- with the same names and behaviour). Internal.
function _M._bind(c)
    require("moontide.cdef").declare()
    if not field_buf then
        field_buf = ffi.new("char[?]", FIELD_LEN)
        family_out = ffi.new("mt_family_t *[1]")
        series_out = ffi.new("mt_series_t *[1]")
        err_buf = ffi.new("char[?]", ERR_LEN)
        read_out = ffi.new("double[1]")
        bounds_out = ffi.new("double[?]", BOUNDS_MAX)
        id_out = ffi.new("double[1]")
    end
    C = c
    threshold = c.mt_ffi_log_threshold()
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

-- A connection object is small, whatever the number of connections: it
-- holds its handle, its route and its path (a string every connection on
-- that path shares). Identity is read from the core the first time a
-- handler asks for it and kept from then on; `state` and `params` are
-- made on first use. Per idle chat connection that is about 300 bytes of
-- Lua heap instead of 1.2 KB.
local Connection = {}
_M.Connection = Connection

-- Fields the core keeps for each connection, by the number it knows them by.
local CORE_FIELDS = { id = 0, session_uuid = 1, request_id = 2, remote_addr = 3, user_agent = 4,
    user_id = 5 }
_M.CORE_FIELDS = CORE_FIELDS

function Connection.__index(self, k)
    local method = Connection[k]
    if method ~= nil then
        return method
    end
    local field = CORE_FIELDS[k]
    if field then
        local n = C.mt_ffi_conn_field(rawget(self, "_handle"), field, field_buf, FIELD_LEN)
        if n < 0 then
            return nil -- the connection is gone
        end
        local v = ffi.string(field_buf, n)
        if v == "" and k == "user_id" then
            return nil -- none
        end
        rawset(self, k, v)
        return v
    elseif k == "state" then
        local state = {}
        rawset(self, "state", state)
        return state
    elseif k == "params" then
        local route = rawget(self, "_route")
        local params = route and route.params_of(rawget(self, "path")) or {}
        rawset(self, "params", params)
        return params
    elseif k == "route" then
        local route = rawget(self, "_route")
        return route and route.path
    elseif k == "options" then -- the route's options = {...} (routes.lua)
        local route = rawget(self, "_route")
        return route and route.options or {}
    elseif k == "closed" or k == "query" then
        return k == "query" and "" or false
    end
    return nil
end

--- Creates the object a handler sees for one connection. Internal: the
-- host makes one per connection and keeps it, with its state, until close.
-- route is the host's compiled route (path, params_of(path)).
function _M._connection(handle, route, path)
    return setmetatable({ _handle = handle, _route = route, path = path }, Connection)
end

--- Keeps every field the core holds, for a connection that is closing:
-- the core forgets it after on_close, handlers may still look. Internal.
function _M._settle(conn)
    for k in pairs(CORE_FIELDS) do
        local _ = conn[k]
    end
    rawset(conn, "closed", true)
end

--- Queues a message: a table is sent as JSON text, a string as is.
-- Returns true, or nil and "closed" when the connection is closing.
function Connection:send(msg, binary)
    local data = encode_message(msg, "message")
    local rc = C.mt_ffi_conn_send(self._handle, data, #data, binary and 1 or 0)
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
    if type(reason) ~= "string" or #reason > CLOSE_REASON_MAX then
        error('bad "reason" argument: expected a string of at most ' .. CLOSE_REASON_MAX .. " bytes", 2)
    end
    local rc = C.mt_ffi_conn_close(self._handle, code, reason, #reason)
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
    if type(name) ~= "string" or #name == 0 or #name > GROUP_NAME_MAX then
        error('bad "group" argument: expected a name of 1 to ' .. GROUP_NAME_MAX .. " bytes", 3)
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
    if C.mt_ffi_group_add(name, #name, conn._handle) == STATUS.OK then
        return true
    end
    return nil, "closed"
end

--- Removes a connection from a group. Returns true, or nil and "not_member".
function groups.discard(name, conn)
    check_group(name)
    check_conn(conn)
    if C.mt_ffi_group_discard(name, #name, conn._handle) == STATUS.OK then
        return true
    end
    return nil, "not_member"
end

--- Sends a message to every member of a group: encoded once, shared by
-- every recipient. Returns the number of members reached on this instance.
function groups.send(name, msg, binary)
    check_group(name)
    local data = encode_message(msg, "group message")
    return C.mt_ffi_group_send(name, #name, data, #data, binary and 1 or 0)
end

--- The number of members a group has on this instance.
function groups.size(name)
    check_group(name)
    return C.mt_ffi_group_size(name, #name)
end

--- True when a group send made from now on reaches this instance's
-- members of the group (with Redis: once its subscription is confirmed).
function groups.ready(name)
    check_group(name)
    return C.mt_ffi_group_ready(name, #name) == 1
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
    C.mt_ffi_log_write(level, name, #name, message, #message, handle or 0, text,
        text and #text or 0)
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
    return C.mt_ffi_time_now()
end

--- Monotonic seconds, for measuring durations.
function _M.monotonic()
    return C.mt_ffi_time_monotonic()
end

local timer = {}
_M.timer = timer
local timers = {} -- id -> Timer, while it may fire
local generation = 0 -- script generation whose code is running

local Timer = {}
Timer.__index = Timer

--- Stops the timer. Returns true, or nil and "gone" if it already ended.
function Timer:cancel()
    if not timers[self.id] then
        return nil, "gone"
    end
    timers[self.id] = nil
    C.mt_ffi_timer_stop(self.id)
    return true
end

local function start(delay, rep, fn)
    if type(delay) ~= "number" or delay < 0 then
        error('bad "delay" argument: expected seconds >= 0', 3)
    end
    if type(fn) ~= "function" then
        error('bad "callback" argument: expected a function', 3)
    end
    local id = tonumber(C.mt_ffi_timer_start(delay, rep))
    if id == 0 then
        error('bad "delay" argument: out of range', 3)
    end
    local t = setmetatable({ id = id, fn = fn, repeating = rep > 0, generation = generation },
        Timer)
    timers[id] = t
    return t
end

--- Runs fn once after delay seconds.
function timer.after(delay, fn)
    return start(delay, 0, fn)
end

--- A timer of the runtime library's own: a reload does not cancel it
-- (library state survives reloads). Internal.
function _M._after(delay, fn)
    local t = start(delay, 0, fn)
    t.library = true
    return t
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

--- Sets the generation that timers started from now on belong to. Internal.
function _M._set_generation(g)
    generation = g
end

--- Cancels the timers of every generation but keep: after a reload, code
-- of an older generation never runs again. Returns how many. Internal.
function _M._cancel_timers_except(keep)
    local n = 0
    for id, t in pairs(timers) do
        if t.generation ~= keep and not t.library then
            timers[id] = nil
            C.mt_ffi_timer_stop(id)
            n = n + 1
        end
    end
    return n
end

-- Metrics --------------------------------------------------------------

local COUNTER, GAUGE, HISTOGRAM = 0, 1, 2
local KIND_NAMES = { [COUNTER] = "counter", [GAUGE] = "gauge", [HISTOGRAM] = "histogram" }
local SERIES_CACHE_MAX = 10000

local metrics = {}
_M.metrics = metrics

local Family = {}
Family.__index = Family

local Series = {}
Series.__index = Series

local function define(kind, name, help, labels, buckets)
    if type(name) ~= "string" then
        error('bad "name" argument: expected a string', 3)
    end
    if type(help) ~= "string" then
        error('bad "help" argument: expected a string', 3)
    end
    labels = labels or {}
    if type(labels) ~= "table" then
        error('bad "labels" argument: expected a list of label names', 3)
    end
    for i = 1, #labels do
        if type(labels[i]) ~= "string" then
            error('bad "labels" argument: label names must be strings', 3)
        end
    end
    if buckets ~= nil and type(buckets) ~= "table" then
        error('bad "buckets" argument: expected a list of upper bounds', 3)
    end
    local names = table.concat(labels, "\0")
    local bounds, nbounds = nil, 0
    if buckets then
        nbounds = #buckets
        bounds = ffi.new("double[?]", nbounds, buckets)
    end
    if C.mt_ffi_metric_define(kind, name, #name, help, #help, names, #names, bounds, nbounds,
            family_out, err_buf, ERR_LEN) ~= STATUS.OK then
        error(ffi.string(err_buf), 3)
    end
    return setmetatable({ name = name, kind = KIND_NAMES[kind], label_names = labels,
        _kind = kind, _h = family_out[0], _cache = {}, _cached = 0 }, Family)
end

--- A counter family (its name must end in _total). Defining it again with
-- the same help and labels (as a reloaded script does) gives the same
-- family and keeps its values; other help or labels raise.
function metrics.counter(name, help, labels)
    return define(COUNTER, name, help, labels)
end

--- A gauge family.
function metrics.gauge(name, help, labels)
    return define(GAUGE, name, help, labels)
end

--- A histogram family; buckets default to 0.005 ... 10 (seconds).
function metrics.histogram(name, help, labels, buckets)
    return define(HISTOGRAM, name, help, labels, buckets)
end

--- The series for one value per label, in declaration order. Cache it
-- in a local: updating it is then one FFI call.
function Family:labels(...)
    local n = select("#", ...)
    if n ~= #self.label_names then
        error(("bad label values: %s takes %d, got %d"):format(self.name, #self.label_names, n), 2)
    end
    local values = { ... }
    for i = 1, n do
        local v = values[i]
        if type(v) == "number" then
            values[i] = tostring(v)
        elseif type(v) ~= "string" or v:find("\0", 1, true) then
            error(("bad label value for %s: expected a string without NUL"):format(
                self.label_names[i]), 2)
        end
    end
    local key = table.concat(values, "\0")
    local s = self._cache[key]
    if s then
        return s
    end
    if C.mt_ffi_metric_series(self._h, key, #key, series_out) ~= STATUS.OK then
        error(("bad label values for %s"):format(self.name), 2)
    end
    s = setmetatable({ _h = series_out[0], _kind = self._kind }, Series)
    if self._cached < SERIES_CACHE_MAX then
        self._cache[key] = s
        self._cached = self._cached + 1
    end
    return s
end

--- Adds n (default 1) to a counter or gauge.
function Series:inc(n)
    n = n or 1
    if self._kind == HISTOGRAM or type(n) ~= "number" then
        error("inc: counters and gauges take a number", 2)
    end
    if C.mt_ffi_series_add(self._h, n) ~= STATUS.OK then
        error("inc: a counter cannot decrease", 2)
    end
end

--- Subtracts n (default 1) from a gauge.
function Series:dec(n)
    if self._kind ~= GAUGE then
        error("dec: only gauges go down", 2)
    end
    C.mt_ffi_series_add(self._h, -(n or 1))
end

--- Sets a gauge.
function Series:set(v)
    if self._kind ~= GAUGE or type(v) ~= "number" then
        error("set: only gauges are set, to a number", 2)
    end
    C.mt_ffi_series_set(self._h, v)
end

--- Records one observation in a histogram.
function Series:observe(v)
    if self._kind ~= HISTOGRAM or type(v) ~= "number" then
        error("observe: only histograms observe, a number", 2)
    end
    C.mt_ffi_series_observe(self._h, v)
end

--- The current value (a histogram: the sum of observations).
function Series:get()
    return C.mt_ffi_series_get(self._h)
end

-- Families without labels act as their only series.
for _, method in ipairs({ "inc", "dec", "set", "observe", "get" }) do
    Family[method] = function(self, ...)
        if #self.label_names > 0 then
            error(method .. ": " .. self.name .. " has labels; use :labels(...)", 2)
        end
        local s = self:labels()
        return s[method](s, ...)
    end
end

-- Redis ----------------------------------------------------------------

local redis = { null = cjson.null }
_M.redis = redis
local redis_pending = {} -- request id -> { fn, generation }
local redis_prefix = "moontide:"
local redis_cluster = false

--- Sends a command asynchronously: redis.command({"LPUSH", key, value}, fn).
-- fn(reply, err) runs when the reply comes: reply is a string, number or
-- list (a nil element is redis.null), err the server's error text or
-- "redis connection lost". Returns true, or nil and "redis not
-- configured" / "redis unavailable" (then fn never runs). A reply that
-- arrives after a reload is dropped: old code never runs again.
function redis.command(args, fn)
    if type(args) ~= "table" or #args == 0 then
        error('bad "args" argument: expected a list of strings', 2)
    end
    for i = 1, #args do
        local t = type(args[i])
        if t ~= "string" and t ~= "number" then
            error('bad "args" argument: element ' .. i .. " is a " .. t, 2)
        end
    end
    if fn ~= nil and type(fn) ~= "function" then
        error('bad "callback" argument: expected a function', 2)
    end
    local n = #args
    local argv = ffi.new("const char *[?]", n)
    local lens = ffi.new("size_t[?]", n)
    -- argv points into these strings: keep them referenced until the call
    -- returns (hiredis copies them into its output buffer).
    local strs = {}
    for i = 1, n do
        strs[i] = tostring(args[i])
        argv[i - 1] = strs[i]
        lens[i - 1] = #strs[i]
    end
    -- Without a callback, the reply is not brought back to Lua at all.
    local rc = C.mt_ffi_redis_command(n, argv, lens, fn and id_out or nil)
    strs[0] = nil -- the table stays live up to here
    if rc == STATUS.DECLINED then
        return nil, "redis not configured"
    elseif rc == STATUS.AGAIN then
        return nil, "redis unavailable"
    elseif rc ~= STATUS.OK then
        return nil, "bad redis command"
    end
    if fn then
        redis_pending[id_out[0]] = { fn = fn, generation = generation }
    end
    return true
end

--- Calls fn(true) once every message of the group named Redis published
-- before this call reached it has been delivered here, or fn(nil, err) if the link
-- dropped first. A command's reply travels another link and can arrive
-- before messages published ahead of it: a reader that must see a message
-- either in a reply or live, never both, waits for this after the reply.
-- Returns true, or nil and "redis not configured" / "redis unavailable".
-- Internal (moontide.stream).
function redis._sync(group, fn)
    local rc = C.mt_ffi_redis_sync(group, #group, id_out)
    if rc == STATUS.DECLINED then
        return nil, "redis not configured"
    elseif rc ~= STATUS.OK then
        return nil, "redis unavailable"
    end
    redis_pending[id_out[0]] = {
        fn = function(reply, err)
            fn(reply ~= nil or nil, reply == nil and (err or "redis connection lost") or nil)
        end,
        generation = generation,
    }
    return true
end

--- True when Redis is configured and connected.
function redis.available()
    return C.mt_ffi_redis_state() == 2
end

--- True when the server was given a redis_url.
function redis.configured()
    return C.mt_ffi_redis_state() ~= 0
end

--- n random bytes from the kernel as hex (identifiers: an instance, an
-- epoch); a read of /dev/urandom, so not for per-message use. Internal.
function _M._random_hex(n)
    local f = io.open("/dev/urandom", "rb")
    local bytes = f and f:read(n) or tostring(os.time()) .. tostring({})
    if f then
        f:close()
    end
    return (bytes:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

local header_buf -- for _upgrade_header, made on first use

--- A header of the upgrade being authorized, by lower-case name, or nil.
-- Internal (moontide.host's request.headers).
function _M._upgrade_header(name)
    header_buf = header_buf or ffi.new("char[?]", 8192)
    local n = C.mt_ffi_upgrade_header(name, #name, header_buf, 8192)
    return n >= 0 and ffi.string(header_buf, n) or nil
end

--- A key in this app's namespace (redis_prefix): redis.key("chat", room)
-- is "moontide:chat:<room>". With Redis Cluster the second part is a hash
-- tag, "moontide:chat:{<room>}", so that a room's keys, its channel and
-- its stream live on one shard (and one script may use them all).
function redis.key(kind, name, ...)
    if redis_cluster and name ~= nil then
        local rest = select("#", ...) > 0 and ":" .. table.concat({ ... }, ":") or ""
        return redis_prefix .. kind .. ":{" .. name .. "}" .. rest
    end
    return redis_prefix .. table.concat({ kind, name, ... }, ":")
end

--- True when the server speaks to a Redis Cluster (redis_cluster).
function redis.cluster()
    return redis_cluster
end

--- Sets the key namespace. Internal: the host passes redis_prefix and
-- whether Redis is a cluster.
function _M._set_redis_prefix(prefix, cluster)
    redis_prefix, redis_cluster = prefix, cluster == true
end

--- Delivers a reply to the command's callback. Internal.
function _M._redis_reply(id, value, err)
    local p = redis_pending[id]
    redis_pending[id] = nil
    if p and p.fn and p.generation == generation then
        p.fn(value, err)
    end
end

-- Workers and the library's own events ---------------------------------

--- This process's worker number (1..count) and the server's number of
-- workers; 0 and 1 for a server of one process.
function _M.worker()
    return C.mt_ffi_worker_index(), C.mt_ffi_worker_count()
end

local tick_hooks, close_hooks, mesh_hooks = {}, {}, {}

--- Runs fn(now) once a second (library modules' periodic work). Internal.
function _M._on_tick(fn)
    tick_hooks[#tick_hooks + 1] = fn
end

--- Runs fn(conn) once a connection has closed, after its on_close. Internal.
function _M._on_close(fn)
    close_hooks[#close_hooks + 1] = fn
end

--- Routes messages of kind from other workers to fn(from, msg). Internal.
function _M._on_mesh(kind, fn)
    mesh_hooks[kind] = fn
end

--- Sends msg (a table, JSON-encoded, msg.k = kind) to worker to's Lua;
-- true, or nil when it is down or this is one process. Internal.
function _M._mesh_send(to, kind, msg)
    msg.k = kind
    local data = json_encode(msg)
    return C.mt_ffi_mesh_send(to, data, #data) == STATUS.OK or nil
end

-- Called by the host; errors in one hook do not stop the others.
local function run_hooks(list, ...)
    for _, fn in ipairs(list) do
        local ok, err = pcall(fn, ...)
        if not ok then
            _M.log.error("library hook failed", { error = err })
        end
    end
end

--- Internal: the host's once-a-second call.
function _M._tick(now)
    run_hooks(tick_hooks, now)
end

--- Internal: a connection's close, after its handler's on_close.
function _M._closed(conn)
    run_hooks(close_hooks, conn)
end

--- Internal: a message from another worker's Lua.
function _M._mesh_message(from, data)
    local msg = json_decode(data)
    local fn = type(msg) == "table" and mesh_hooks[msg.k]
    if fn then
        fn(from, msg)
    end
end

--- Holds back the deliveries of one group to this connection while it
-- catches up on the group's stream (moontide.stream). Internal.
function Connection:_hold(group)
    return C.mt_ffi_conn_hold(self._handle, group, #group) == STATUS.OK
end

--- The stream offset of the first held delivery that has one, or -1.
-- Internal.
function Connection:_held_first()
    return C.mt_ffi_conn_held_first(self._handle)
end

--- Lets the held deliveries through but those whose stream offset is not
-- above after. Internal.
function Connection:_release(after)
    return C.mt_ffi_conn_release(self._handle, after or -1)
end

-- Counters -------------------------------------------------------------

local function count(fn, kind, what)
    if type(kind) ~= "string" or C[fn](kind, #kind) ~= STATUS.OK then
        error('bad "kind" argument: unknown ' .. what .. " type " .. tostring(kind), 3)
    end
end

--- Counts an error in websocket_errors_total{error_type=kind}; kind is one
-- of the core's types (json_decode_error, handler_error, ...).
function _M.count_error(kind)
    count("mt_ffi_count_error", kind, "error")
end

--- Counts a message in websocket_messages_total{type=kind}.
function _M.count_message(kind)
    count("mt_ffi_count_message", kind, "message")
end

-- Reading metrics (the in-process alerts) ------------------------------

--- The sum of what (0 value, 1 count, 2 bucket at le) over the series of
-- metric whose labels include labels; nil if the metric does not exist.
-- Reads the registry as the core last collected it. Internal.
function _M._metric_read(metric, labels, what, le)
    local match = {}
    for k, v in pairs(labels or {}) do
        match[#match + 1] = k .. "=" .. v
    end
    local m = table.concat(match, "\0")
    if C.mt_ffi_metric_read(metric, #metric, m, #m, what or 0, le or 0, read_out) ~= STATUS.OK then
        return nil
    end
    return read_out[0]
end

--- The finite bucket bounds of a histogram, or nil. Internal.
function _M._metric_bounds(metric)
    local n = C.mt_ffi_metric_bounds(metric, #metric, bounds_out, BOUNDS_MAX)
    if n < 0 then
        return nil
    end
    local list = {}
    for i = 0, n - 1 do
        list[#list + 1] = bounds_out[i]
    end
    return list
end

return _M
