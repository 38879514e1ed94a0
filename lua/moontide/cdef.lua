--- moontide.cdef: the C API's declarations, as text, and its constants.
--
-- `text` must stay identical to the block between FFI-BEGIN and FFI-END
-- in core/ffi.h (a spec checks it). Loading this module declares nothing,
-- so tools can read the constants (status codes and limits, defined once
-- in core/status.h); declare() declares the text.
local _M = {}

_M.text = [[
enum {
    MT_FFI_OK = 0,
    MT_FFI_ERROR = -1,
    MT_FFI_AGAIN = -2,
    MT_FFI_DECLINED = -5,
    MT_FFI_CLOSE_REASON_MAX = 123,
    MT_FFI_GROUP_NAME_MAX = 200,
    MT_FFI_REDIS_HEADER_VERSION = 77
};
int mt_ffi_conn_send(uint64_t conn, const char *data, size_t len, int binary);
int mt_ffi_conn_close(uint64_t conn, int code, const char *reason, size_t len);
int mt_ffi_conn_field(uint64_t conn, int field, char *buf, size_t len);
int mt_ffi_group_add(const char *name, size_t len, uint64_t conn);
int mt_ffi_group_discard(const char *name, size_t len, uint64_t conn);
int mt_ffi_group_send(const char *name, size_t len, const char *data, size_t dlen, int binary);
int mt_ffi_group_size(const char *name, size_t len);
int mt_ffi_log_threshold(void);
void mt_ffi_log_write(int level, const char *logger, size_t llen, const char *msg, size_t mlen,
                      uint64_t conn, const char *fields, size_t flen);
int mt_ffi_count_error(const char *type, size_t len);
int mt_ffi_count_message(const char *type, size_t len);
double mt_ffi_time_now(void);
double mt_ffi_time_monotonic(void);
double mt_ffi_timer_start(double delay, double repeat);
int mt_ffi_timer_stop(uint64_t timer);
typedef struct mt_family mt_family_t;
typedef struct mt_series mt_series_t;
int mt_ffi_metric_define(int type, const char *name, size_t nlen, const char *help, size_t hlen,
                         const char *labels, size_t llen, const double *bounds, int nbounds,
                         mt_family_t **out, char *err, size_t errlen);
int mt_ffi_metric_series(mt_family_t *family, const char *values, size_t vlen, mt_series_t **out);
int mt_ffi_series_add(mt_series_t *s, double v);
void mt_ffi_series_set(mt_series_t *s, double v);
void mt_ffi_series_observe(mt_series_t *s, double v);
double mt_ffi_series_get(const mt_series_t *s);
int mt_ffi_redis_command(int argc, const char **argv, const size_t *argvlen, double *out_id);
int mt_ffi_redis_sync(const char *group, size_t len, double *out_id);
int mt_ffi_redis_state(void);
int mt_ffi_metric_read(const char *name, size_t nlen, const char *match, size_t mlen, int what,
                       double le, double *out);
int mt_ffi_metric_bounds(const char *name, size_t nlen, double *out, int max);
int mt_ffi_conn_hold(uint64_t conn, const char *group, size_t len);
int mt_ffi_upgrade_header(const char *name, size_t len, char *out, int cap);
double mt_ffi_conn_held_first(uint64_t conn);
int mt_ffi_conn_release(uint64_t conn, double after);
int mt_ffi_worker_index(void);
int mt_ffi_worker_count(void);
int mt_ffi_mesh_send(int worker, const char *data, size_t len);
int mt_ffi_group_ready(const char *name, size_t len);
]]

local declared = false

--- Declares the API to the FFI, once per Lua state (LuaJIT raises on a
-- redefined type). Functions are resolved only when called: the fake of
-- moontide.testing declares them without the server's symbols.
function _M.declare()
    if not declared then
        require("ffi").cdef(_M.text)
        declared = true
    end
end

-- name = value pairs of the enum block
_M.const = {}
for name, value in _M.text:gmatch("(MT_FFI_[%w_]+) = (%-?%d+)") do
    _M.const[name] = tonumber(value)
end

return _M
