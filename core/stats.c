/* stats.c - label values of the core's counters. */
#include "stats.h"

#include <string.h>

static const char *const error_names[MT_ERR__COUNT] = {
    "connection_failed", "json_decode_error",   "handler_error",  "message_too_large",
    "send_queue_overflow", "redis_unavailable", "rate_limited", "heartbeat_timeout",
    "protocol_error", "bad_handshake",
};

static const char *const message_names[MT_MSG__COUNT] = {"received", "sent", "heartbeat",
                                                         "broadcast"};

const char *mt_error_type_name(mt_error_type_t t)
{
    return (unsigned)t < MT_ERR__COUNT ? error_names[t] : "unknown";
}

static int find(const char *const *names, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
            return i;
    return -1;
}

int mt_error_type_parse(const char *name, size_t len)
{
    return find(error_names, MT_ERR__COUNT, name, len);
}

const char *mt_message_type_name(mt_message_type_t t)
{
    return (unsigned)t < MT_MSG__COUNT ? message_names[t] : "unknown";
}

int mt_message_type_parse(const char *name, size_t len)
{
    return find(message_names, MT_MSG__COUNT, name, len);
}
