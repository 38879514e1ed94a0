/* test_log.c - log lines: fields, order, threshold, one line each. */
#include "check.h"
#include "log.h"

#include <stdlib.h>
#include <unistd.h>

static char out[8192];

static const char *drain(int fd)
{
    ssize_t n = read(fd, out, sizeof out - 1);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

int main(void)
{
    int p[2];
    CHECK(pipe(p) == 0);
    mt_log_t log;
    mt_log_init(&log, p[1], MT_LOG_INFO, "green");

    mt_buf_t *b = mt_log_begin(&log, MT_LOG_INFO, "test", "hello \"world\"\n", 14);
    CHECK(b != NULL);
    mt_json_kv_int(b, "n", 7);
    mt_log_end(&log);
    const char *line = drain(p[0]);
    CHECK(strncmp(line, "{\"timestamp\":\"", 14) == 0);
    /* 2026-11-24T07:34:51.123Z: RFC 3339, UTC, milliseconds. */
    CHECK(strlen(line) > 38 && line[14 + 10] == 'T' && line[14 + 19] == '.' && line[14 + 23] == 'Z');
    CHECK(strstr(line, "\"level\":\"INFO\",\"logger\":\"test\","
                       "\"message\":\"hello \\\"world\\\"\\n\",\"color\":\"green\",\"n\":7}\n") !=
          NULL);
    CHECK(strchr(line, '\n') == line + strlen(line) - 1);

    CHECK(mt_log_begin(&log, MT_LOG_DEBUG, "test", "hidden", 6) == NULL);
    mt_log_msg(&log, MT_LOG_ERROR, "test", "count=%d", 3);
    CHECK(strstr(drain(p[0]), "\"level\":\"ERROR\",\"logger\":\"test\",\"message\":\"count=3\"") !=
          NULL);

    CHECK(mt_log_level_parse("warning") == MT_LOG_WARNING);
    CHECK(mt_log_level_parse("WARN") == MT_LOG_WARNING);
    CHECK(mt_log_level_parse("Critical") == MT_LOG_CRITICAL);
    CHECK(mt_log_level_parse("loud") == -1);
    CHECK_STR(mt_log_level_name(MT_LOG_DEBUG), "DEBUG");
    CHECK(log.lines == 2);
    CHECK(strstr(line, "worker") == NULL); /* one process: no field */
    log.worker = 2;
    mt_log_msg(&log, MT_LOG_INFO, "test", "from a worker");
    CHECK(strstr(drain(p[0]), "\"color\":\"green\",\"worker\":2}") != NULL);
    mt_log_free(&log);
    return CHECK_DONE();
}
