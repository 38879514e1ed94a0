--- spec.support.zlib: raw DEFLATE as permessage-deflate uses it (RFC 7692),
-- through the system's zlib (LuaJIT FFI), so specs can build compressed
-- frames byte by byte and read the server's.
--
--   local zlib = require "spec.support.zlib"
--   zlib.compress(text)        -- DEFLATE, sync-flushed, 00 00 ff ff taken off
--   zlib.decompress(payload)   -- the reverse (the tail put back)
--   local s = zlib.stream()    -- one compressor kept across calls:
--   s:compress(text)           --   "context takeover", for specs that need it
local ffi = require "ffi"

ffi.cdef [[
typedef struct mt_spec_z_stream {
    const uint8_t *next_in; unsigned avail_in; unsigned long total_in;
    uint8_t *next_out; unsigned avail_out; unsigned long total_out;
    const char *msg; void *state;
    void *zalloc; void *zfree; void *opaque;
    int data_type; unsigned long adler; unsigned long reserved;
} mt_spec_z_stream;
const char *zlibVersion(void);
int deflateInit2_(mt_spec_z_stream *s, int level, int method, int window_bits, int mem_level,
                  int strategy, const char *version, int stream_size);
int deflate(mt_spec_z_stream *s, int flush);
int deflateEnd(mt_spec_z_stream *s);
int inflateInit2_(mt_spec_z_stream *s, int window_bits, const char *version, int stream_size);
int inflate(mt_spec_z_stream *s, int flush);
int inflateEnd(mt_spec_z_stream *s);
]]

local z = ffi.load("z")
local Z_SYNC_FLUSH, Z_OK, Z_STREAM_END, Z_BUF_ERROR = 2, 0, 1, -5
local SIZE = ffi.sizeof("mt_spec_z_stream")
local TAIL = "\0\0\255\255"

local _M = {}

local Stream = {}
Stream.__index = Stream

--- A compressor that keeps its window from one message to the next.
function _M.stream(level)
    local s = ffi.new("mt_spec_z_stream")
    assert(z.deflateInit2_(s, level or 6, 8, -15, 8, 0, z.zlibVersion(), SIZE) == Z_OK)
    ffi.gc(s, z.deflateEnd)
    return setmetatable({ s = s }, Stream)
end

--- One message, sync-flushed, its 4-byte tail removed (RFC 7692 7.2.1).
function Stream:compress(text)
    local s = self.s
    local cap = #text + 64
    local out = ffi.new("uint8_t[?]", cap)
    s.next_in, s.avail_in = text, #text
    s.next_out, s.avail_out = out, cap
    assert(z.deflate(s, Z_SYNC_FLUSH) == Z_OK and s.avail_in == 0 and s.avail_out > 0)
    local n = cap - s.avail_out
    assert(ffi.string(out + n - 4, 4) == TAIL)
    return ffi.string(out, n - 4)
end

function _M.compress(text, level)
    return _M.stream(level):compress(text)
end

function _M.decompress(payload)
    local s = ffi.new("mt_spec_z_stream")
    assert(z.inflateInit2_(s, -15, z.zlibVersion(), SIZE) == Z_OK)
    ffi.gc(s, z.inflateEnd)
    local input = payload .. TAIL
    local parts, chunk = {}, 65536
    local out = ffi.new("uint8_t[?]", chunk)
    s.next_in, s.avail_in = input, #input
    repeat
        s.next_out, s.avail_out = out, chunk
        local rc = z.inflate(s, Z_SYNC_FLUSH)
        assert(rc == Z_OK or rc == Z_STREAM_END or rc == Z_BUF_ERROR, "inflate failed: " .. rc)
        parts[#parts + 1] = ffi.string(out, chunk - s.avail_out)
    until s.avail_in == 0 and s.avail_out > 0 or rc == Z_STREAM_END
    return table.concat(parts)
end

return _M
