/*
 * log.h - structured JSON logging: one object per line.
 *
 * Every line carries timestamp (RFC 3339, UTC, milliseconds), level,
 * logger, message and the instance's color, in a server of several
 * workers the process's number (worker: 0 the supervisor, 1..N the
 * workers), then any fields the caller adds between mt_log_begin and
 * mt_log_end. Strings go through the JSON
 * writer, so a line always parses whatever a client sent.
 *
 * Owns: one reusable line buffer. Lines are written with write(2) to one
 * file descriptor (stdout), whole, in the order they are produced.
 * Lifecycle: mt_log_init, any number of lines, mt_log_free.
 * Non-goals: rotation, shipping, sampling; a blocking stdout blocks the
 * loop (run under a supervisor that drains it, as docker and systemd do).
 */
#ifndef MT_LOG_H
#define MT_LOG_H

#include "buf.h"

#include <time.h>

enum {
    MT_LOG_DEBUG = 10,
    MT_LOG_INFO = 20,
    MT_LOG_WARNING = 30,
    MT_LOG_ERROR = 40,
    MT_LOG_CRITICAL = 50,
};

typedef struct mt_log {
    int threshold;      /* lines below this level are not built at all */
    int fd;
    char color[16];
    int worker; /* -1: one process, no field */
    mt_buf_t line;
    int in_line;        /* between begin and end */
    time_t cached_sec;  /* the second ts_prefix was formatted for */
    char ts_prefix[24]; /* "YYYY-MM-DDTHH:MM:SS." */
    uint64_t lines;     /* lines written */
    uint64_t dropped;   /* lines lost to write errors */
} mt_log_t;

/** Sets up a logger writing to fd; can't fail. */
void mt_log_init(mt_log_t *log, int fd, int threshold, const char *color);
void mt_log_free(mt_log_t *log);

/** Parses DEBUG/INFO/WARNING/ERROR/CRITICAL (any case; WARN too); -1 if unknown. */
int mt_log_level_parse(const char *s);
/** The canonical upper-case name of a level. */
const char *mt_log_level_name(int level);

/**
 * Starts a line. Returns the buffer to add fields to with mt_json_kv_*,
 * or NULL when the level is below the threshold (then do not call
 * mt_log_end). A line begun inside another one is dropped (NULL).
 */
mt_buf_t *mt_log_begin(mt_log_t *log, int level, const char *logger, const char *msg,
                       size_t msg_len);
/** Ends and writes the line begun by mt_log_begin. */
void mt_log_end(mt_log_t *log);

/** A line with no fields; the message is printf-formatted. */
void mt_log_msg(mt_log_t *log, int level, const char *logger, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
