/*
 * stats.h - the core's own counters, incremented on the hot path.
 *
 * Plain integers in the runtime struct: an increment is one add, with no
 * lookup, allocation or formatting. The metrics endpoint reads them when
 * it renders; nothing else does.
 * Lifecycle: zeroed with the runtime; never reset.
 */
#ifndef MT_STATS_H
#define MT_STATS_H

#include <stddef.h>
#include <stdint.h>

/* error_type label values of websocket_errors_total, in exposition order. */
typedef enum {
    MT_ERR_CONNECTION_FAILED,
    MT_ERR_JSON_DECODE,
    MT_ERR_HANDLER,
    MT_ERR_MESSAGE_TOO_LARGE,
    MT_ERR_SEND_QUEUE_OVERFLOW,
    MT_ERR_REDIS_UNAVAILABLE,
    MT_ERR_RATE_LIMITED,
    MT_ERR_HEARTBEAT_TIMEOUT,
    MT_ERR_PROTOCOL,       /* a client broke RFC 6455: closed 1002 or 1007 */
    MT_ERR_BAD_HANDSHAKE,  /* an upgrade request that is not a valid handshake */
    MT_ERR__COUNT
} mt_error_type_t;

/* type label values of websocket_messages_total. */
typedef enum {
    MT_MSG_RECEIVED,
    MT_MSG_SENT,
    MT_MSG_HEARTBEAT,
    MT_MSG_BROADCAST,
    MT_MSG__COUNT
} mt_message_type_t;

typedef struct mt_stats {
    uint64_t connections_total;
    uint64_t messages[MT_MSG__COUNT];
    uint64_t errors[MT_ERR__COUNT];
    uint64_t send_queue_dropped_frames;
} mt_stats_t;

/** The label value for an error type, e.g. "json_decode_error". */
const char *mt_error_type_name(mt_error_type_t t);
/** The error type of a label value; -1 if it is not one. */
int mt_error_type_parse(const char *name, size_t len);
const char *mt_message_type_name(mt_message_type_t t);
/** The message type of a label value; -1 if it is not one. */
int mt_message_type_parse(const char *name, size_t len);

#endif
