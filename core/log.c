/* log.c - structured JSON log lines on one file descriptor. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const struct {
    int level;
    const char *name;
} levels[] = {
    {MT_LOG_DEBUG, "DEBUG"}, {MT_LOG_INFO, "INFO"},         {MT_LOG_WARNING, "WARNING"},
    {MT_LOG_ERROR, "ERROR"}, {MT_LOG_CRITICAL, "CRITICAL"},
};

void mt_log_init(mt_log_t *log, int fd, int threshold, const char *color)
{
    memset(log, 0, sizeof *log);
    log->fd = fd;
    log->threshold = threshold;
    snprintf(log->color, sizeof log->color, "%s", color ? color : "");
    log->worker = -1;
    log->cached_sec = (time_t)-1;
}

void mt_log_free(mt_log_t *log)
{
    mt_buf_free(&log->line);
}

int mt_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (strcasecmp(s, levels[i].name) == 0)
            return levels[i].level;
    if (strcasecmp(s, "WARN") == 0)
        return MT_LOG_WARNING;
    return -1;
}

const char *mt_log_level_name(int level)
{
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if (levels[i].level == level)
            return levels[i].name;
    return level < MT_LOG_INFO ? "DEBUG" : "CRITICAL";
}

/* Formats the date and time once a second; the milliseconds every line. */
static void add_timestamp(mt_log_t *log)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != log->cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(log->ts_prefix, sizeof log->ts_prefix, "%Y-%m-%dT%H:%M:%S.", &tm);
        log->cached_sec = ts.tv_sec;
    }
    char ms[5] = {(char)('0' + ts.tv_nsec / 100000000), (char)('0' + ts.tv_nsec / 10000000 % 10),
                  (char)('0' + ts.tv_nsec / 1000000 % 10), 'Z', '"'};
    mt_buf_adds(&log->line, "{\"timestamp\":\"");
    mt_buf_adds(&log->line, log->ts_prefix);
    mt_buf_add(&log->line, ms, sizeof ms);
}

mt_buf_t *mt_log_begin(mt_log_t *log, int level, const char *logger, const char *msg,
                       size_t msg_len)
{
    if (level < log->threshold || log->in_line)
        return NULL;
    log->in_line = 1;
    mt_buf_reset(&log->line);
    add_timestamp(log);
    mt_json_kv_cstr(&log->line, "level", mt_log_level_name(level));
    mt_json_kv_cstr(&log->line, "logger", logger);
    mt_json_kv_str(&log->line, "message", msg, msg_len);
    if (log->color[0])
        mt_json_kv_cstr(&log->line, "color", log->color);
    if (log->worker >= 0)
        mt_json_kv_int(&log->line, "worker", log->worker);
    return &log->line;
}

void mt_log_end(mt_log_t *log)
{
    if (!log->in_line)
        return;
    log->in_line = 0;
    mt_buf_add(&log->line, "}\n", 2);
    const char *p = log->line.data;
    size_t left = log->line.len;
    while (left > 0) {
        ssize_t n = write(log->fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            log->dropped++;
            return;
        }
        p += n;
        left -= (size_t)n;
    }
    log->lines++;
}

void mt_log_msg(mt_log_t *log, int level, const char *logger, const char *fmt, ...)
{
    if (level < log->threshold)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    if (mt_log_begin(log, level, logger, msg, (size_t)n))
        mt_log_end(log);
}
