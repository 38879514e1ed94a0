/*
 * report.h - GET /status: what this process is doing, as one JSON object
 * (observability.md lists its fields): colour, version, uptime,
 * connections, groups, the Redis link, the loaded scripts and the last
 * reload; with several workers the server's connections and a `workers`
 * list (pid, up, ready, connections, generation, restarts, last reload).
 *
 * An edge that only reads: every figure comes from a lower layer's state,
 * no Lua runs. Owns nothing; mt_report_t holds what it reads, set once by
 * the root.
 */
#ifndef MT_REPORT_H
#define MT_REPORT_H

#include "board.h"
#include "buf.h"
#include "channel.h"
#include "config.h"
#include "conn.h"
#include "group.h"
#include "process.h"
#include "script.h"
#include "tls.h"

typedef struct mt_report {
    const mt_config_t *cfg;
    const mt_process_t *proc;
    const mt_conns_t *conns;
    mt_groups_t *groups; /* walked, not changed */
    const mt_channel_t *channel;
    const mt_script_t *script;
    const mt_board_t *board; /* several workers: each one's row; NULL: one process */
    const mt_tls_t *tls;     /* the port speaks TLS; NULL: plain */
} mt_report_t;

/** Appends the JSON body of GET /status. */
void mt_report_status(const mt_report_t *r, mt_buf_t *out);

#endif
