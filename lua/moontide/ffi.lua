--- moontide.ffi: the C API, declared once per Lua state.
--
-- The core requires this module once at start; a reload never runs it
-- again (LuaJIT raises on a redefined struct and silently keeps the first
-- signature of a redefined function). The declarations are moontide.cdef's.
-- Every function is resolved here, so a missing export fails at start,
-- not at the first call.
local ffi = require "ffi"

local _M = {}

local cdef = require "moontide.cdef"
_M.cdef = cdef.text
cdef.declare()

_M.C = ffi.C

-- Resolve every declared function now.
for name in _M.cdef:gmatch("[%w_]+%s+%*?(mt_[%w_]+)%s*%(") do
    local ok, err = pcall(function() return ffi.C[name] end)
    if not ok then
        error("moontide.ffi: " .. name .. " is not exported by the core: " .. tostring(err))
    end
end

return _M
