--- moontide.core: the runtime library's backend on the real server.
--
-- Thin wrappers over the FFI functions with Lua-friendly arguments. The
-- library (moontide/init.lua) calls these through whatever backend it is
-- bound to; moontide.testing binds a fake with the same functions.
-- Every function returns the core's status code (0 ok, -1 bad argument,
-- -5 declined: the connection or timer is gone).
local ffi = require "ffi"
local C = require("moontide.ffi").C

local tonumber, pairs = tonumber, pairs

local _M = {}

function _M.send(handle, data, binary)
    return C.mt_ffi_conn_send(handle, data, #data, binary and 1 or 0)
end

function _M.close(handle, code, reason)
    return C.mt_ffi_conn_close(handle, code, reason, #reason)
end

local field_buf = ffi.new("char[?]", 512)

--- A field the core keeps for a connection (moontide.CORE_FIELDS), or nil
-- once the connection is gone.
function _M.conn_field(handle, field)
    local n = C.mt_ffi_conn_field(handle, field, field_buf, 512)
    if n < 0 then
        return nil
    end
    return ffi.string(field_buf, n)
end

function _M.group_add(name, handle)
    return C.mt_ffi_group_add(name, #name, handle)
end

function _M.group_discard(name, handle)
    return C.mt_ffi_group_discard(name, #name, handle)
end

function _M.group_send(name, data, binary)
    return C.mt_ffi_group_send(name, #name, data, #data, binary and 1 or 0)
end

function _M.group_size(name)
    return C.mt_ffi_group_size(name, #name)
end

function _M.log_threshold()
    return C.mt_ffi_log_threshold()
end

function _M.log_write(level, logger, msg, handle, fields)
    C.mt_ffi_log_write(level, logger, #logger, msg, #msg, handle or 0, fields, fields and #fields or 0)
end

function _M.count_error(kind)
    return C.mt_ffi_count_error(kind, #kind)
end

function _M.count_message(kind)
    return C.mt_ffi_count_message(kind, #kind)
end

function _M.now()
    return C.mt_ffi_time_now()
end

function _M.monotonic()
    return C.mt_ffi_time_monotonic()
end

function _M.timer_start(delay, rep)
    return tonumber(C.mt_ffi_timer_start(delay, rep))
end

function _M.timer_stop(id)
    return C.mt_ffi_timer_stop(id)
end

local family_out = ffi.new("mt_family_t *[1]")
local series_out = ffi.new("mt_series_t *[1]")
local ERR_LEN = 256
local err_buf = ffi.new("char[?]", ERR_LEN)

--- Declares a metric family; returns its handle, or nil and the reason.
function _M.metric_define(kind, name, help, labels, buckets)
    local names = table.concat(labels, "\0")
    local bounds, nbounds = nil, 0
    if buckets then
        nbounds = #buckets
        bounds = ffi.new("double[?]", nbounds, buckets)
    end
    local rc = C.mt_ffi_metric_define(kind, name, #name, help, #help, names, #names, bounds,
        nbounds, family_out, err_buf, ERR_LEN)
    if rc ~= 0 then
        return nil, ffi.string(err_buf)
    end
    return family_out[0]
end

--- Resolves a label set (values joined by NUL) to a series handle.
function _M.metric_series(family, values)
    if C.mt_ffi_metric_series(family, values, #values, series_out) ~= 0 then
        return nil, "wrong number of label values"
    end
    return series_out[0]
end

function _M.metric_add(series, v)
    return C.mt_ffi_series_add(series, v)
end

function _M.metric_set(series, v)
    C.mt_ffi_series_set(series, v)
end

function _M.metric_observe(series, v)
    C.mt_ffi_series_observe(series, v)
end

function _M.metric_get(series)
    return C.mt_ffi_series_get(series)
end

local read_out = ffi.new("double[1]")
local bounds_out = ffi.new("double[64]")

--- The sum of what (0 value, 1 count, 2 bucket at le) over the series of
-- metric whose labels include labels; nil if the metric does not exist.
function _M.metric_read(metric, labels, what, le)
    local match = {}
    for k, v in pairs(labels or {}) do
        match[#match + 1] = k .. "=" .. v
    end
    local m = table.concat(match, "\0")
    if C.mt_ffi_metric_read(metric, #metric, m, #m, what or 0, le or 0, read_out) ~= 0 then
        return nil
    end
    return read_out[0]
end

--- The finite bucket bounds of a histogram, or nil.
function _M.metric_bounds(metric)
    local n = C.mt_ffi_metric_bounds(metric, #metric, bounds_out, 64)
    if n < 0 then
        return nil
    end
    local list = {}
    for i = 0, n - 1 do
        list[#list + 1] = bounds_out[i]
    end
    return list
end

local id_out = ffi.new("double[1]")

--- Sends a command (a list of strings and numbers). Returns the request
-- id, or nil and "redis not configured" / "redis unavailable".
function _M.redis_command(args)
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
    local rc = C.mt_ffi_redis_command(n, argv, lens, id_out)
    strs[0] = nil -- the table stays live up to here
    if rc == 0 then
        return id_out[0]
    elseif rc == -5 then
        return nil, "redis not configured"
    elseif rc == -2 then
        return nil, "redis unavailable"
    end
    return nil, "bad redis command"
end

--- 0: not configured, 1: configured but down, 2: up.
function _M.redis_state()
    return C.mt_ffi_redis_state()
end

return _M
