-- The FFI declarations in Lua are exactly those of core/ffi.h.
describe("moontide.ffi", function()
    local function normalize(s)
        return (s:gsub("/%*.-%*/", ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
    end

    local function lua_cdef()
        return require("moontide.cdef").text
    end

    it("matches the block between FFI-BEGIN and FFI-END in core/ffi.h", function()
        local f = assert(io.open("core/ffi.h"))
        local header = f:read("*a")
        f:close()
        local block = assert(header:match("/%* FFI%-BEGIN %*/\n(.-)/%* FFI%-END %*/"))
        assert.equal(normalize(block), normalize(lua_cdef()))
    end)

    it("gives Lua the status codes and limits core/status.h defines", function()
        local const = require("moontide.cdef").const
        local f = assert(io.open("core/status.h"))
        local header = f:read("*a")
        f:close()
        assert.equal(tonumber(header:match("MT_CLOSE_REASON_MAX (%d+)")), const.MT_FFI_CLOSE_REASON_MAX)
        assert.equal(tonumber(header:match("MT_GROUP_NAME_MAX (%d+)")), const.MT_FFI_GROUP_NAME_MAX)
        assert.equal(-5, const.MT_FFI_DECLINED)
    end)

    it("parses with LuaJIT's FFI", function()
        local ffi = require "ffi"
        assert.has_no_error(function() ffi.cdef(lua_cdef()) end)
    end)
end)
