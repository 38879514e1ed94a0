-- The FFI declarations in Lua are exactly those of core/ffi.h.
describe("moontide.ffi", function()
    local function normalize(s)
        return (s:gsub("/%*.-%*/", ""):gsub("%s+", " "):gsub("^ ", ""):gsub(" $", ""))
    end

    local function lua_cdef()
        -- read the string without running the module: its cdef would need
        -- the server's exported symbols
        local f = assert(io.open("lua/moontide/ffi.lua"))
        local text = f:read("*a")
        f:close()
        local cdef = text:match("_M%.cdef = %[%[\n(.-)%]%]")
        assert.is_string(cdef)
        return cdef
    end

    it("matches the block between FFI-BEGIN and FFI-END in core/ffi.h", function()
        local f = assert(io.open("core/ffi.h"))
        local header = f:read("*a")
        f:close()
        local block = assert(header:match("/%* FFI%-BEGIN %*/\n(.-)/%* FFI%-END %*/"))
        assert.equal(normalize(block), normalize(lua_cdef()))
    end)

    it("parses with LuaJIT's FFI", function()
        local ffi = require "ffi"
        assert.has_no_error(function() ffi.cdef(lua_cdef()) end)
    end)
end)
