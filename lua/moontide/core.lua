--- moontide.core: the runtime library's backend on the real server.
--
-- Thin wrappers over the FFI functions with Lua-friendly arguments. The
-- library (moontide/init.lua) calls these through whatever backend it is
-- bound to; moontide.testing binds a fake with the same functions.
-- Every function returns the core's status code (0 ok, -1 bad argument,
-- -5 declined: the connection or timer is gone).
local ffi = require "ffi"
local C = require("moontide.ffi").C

local tonumber = tonumber

local _M = {}

function _M.send(handle, data, binary)
    return C.mt_conn_send(handle, data, #data, binary and 1 or 0)
end

function _M.close(handle, code, reason)
    return C.mt_conn_close(handle, code, reason, #reason)
end

function _M.group_add(name, handle)
    return C.mt_group_add(name, #name, handle)
end

function _M.group_discard(name, handle)
    return C.mt_group_discard(name, #name, handle)
end

function _M.group_send(name, data, binary)
    return C.mt_group_send(name, #name, data, #data, binary and 1 or 0)
end

function _M.group_size(name)
    return C.mt_group_size(name, #name)
end

function _M.log_threshold()
    return C.mt_log_threshold()
end

function _M.log_write(level, logger, msg, handle, fields)
    C.mt_log_write(level, logger, #logger, msg, #msg, handle or 0, fields, fields and #fields or 0)
end

function _M.count_error(kind)
    return C.mt_count_error(kind, #kind)
end

function _M.count_message(kind)
    return C.mt_count_message(kind, #kind)
end

function _M.now()
    return C.mt_time_now()
end

function _M.monotonic()
    return C.mt_time_monotonic()
end

function _M.timer_start(delay, rep)
    return tonumber(C.mt_timer_start(delay, rep))
end

function _M.timer_stop(id)
    return C.mt_timer_stop(id)
end

_M.ffi = ffi

return _M
