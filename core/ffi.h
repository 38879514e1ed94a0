/*
 * ffi.h - the narrow API Lua calls through the LuaJIT FFI.
 *
 * lua/moontide/ffi.lua declares exactly the block between FFI-BEGIN and
 * FFI-END below (a spec compares them). The rules, after lua-resty-core:
 * only scalars, handles and (pointer, length) pairs cross; C copies what
 * it is handed and Lua keeps no pointer C owns; every function returns a
 * status (MT_OK 0, MT_ERROR -1 for a bad argument, MT_DECLINED -5 when the
 * target is gone or closing) and none calls back into Lua, so what must
 * run Lua (a close) is deferred to a later callback.
 * Handles (connections, timers) are 53-bit integers that fit a double;
 * functions return them as double so LuaJIT does not box them.
 * Metric families and series are never freed, so Lua may keep their
 * pointers; label names and values cross NUL-separated in one string.
 * The functions reach the runtime through mt_runtime_current().
 */
#ifndef MT_FFI_H
#define MT_FFI_H

#include <stddef.h>
#include <stdint.h>

#define MT_API __attribute__((visibility("default")))

/* FFI-BEGIN */
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
/* FFI-END */

#endif
