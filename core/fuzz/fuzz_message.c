/*
 * fuzz_message.c - libFuzzer target for the inbound message path:
 * reassembly of a message from pieces (mt_ws_receive), the size limit,
 * JSON decoding and dispatch to the chat handler, group sends and
 * logging; and the JSON string writer on the raw bytes.
 *
 * Input: byte 0 picks the number of pieces (1-4) and the binary flag; the
 * rest is the message, cut into that many pieces. Run from the repository
 * root (the scripts are loaded from ./lua). No socket: the connection has
 * no wsi, and what it would send is dropped after each input.
 */
#include "conn.h"
#include "runtime.h"
#include "ws.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static mt_runtime_t rt;
static mt_conn_t *conn;

static mt_conn_t *open_conn(void)
{
    mt_conn_t *c = mt_conn_new(&rt.conns);
    mt_rand_uuid(&rt.rand, &c->connection_id);
    mt_rand_uuid(&rt.rand, &c->session_uuid);
    c->binary_ok = 1;
    if (mt_script_open(&rt.script, c, "/ws/chat/fuzz/", "", NULL, NULL, 0) != 0)
        abort();
    return c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    mt_config_t cfg;
    mt_config_init(&cfg);
    cfg.max_message_bytes = 4096;
    cfg.log_level = MT_LOG_DEBUG;
    if (mt_runtime_assemble(&rt, &cfg, open("/dev/null", O_WRONLY)) != 0)
        abort();
    conn = open_conn();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int pieces = data[0] % 4 + 1;
    int binary = (data[0] >> 2) & 1;
    const char *msg = (const char *)data + 1;
    size_t len = size - 1;

    mt_buf_t json = MT_BUF_INIT;
    mt_json_str(&json, msg, len);
    for (size_t i = 0; i < json.len; i++)
        if ((unsigned char)json.data[i] < 0x20)
            abort(); /* a control character escaped the writer */
    mt_buf_free(&json);

    size_t at = 0;
    for (int i = 0; i < pieces; i++) {
        size_t n = i == pieces - 1 ? len - at : len / (size_t)pieces;
        mt_ws_receive(&rt.ws, conn, msg + at, n, i == pieces - 1, 0, binary);
        at += n;
    }
    mt_sendq_clear(&conn->q);
    if (conn->closing) { /* too large, or a handler closed it: start over */
        mt_channel_leave_all(&rt.channel, conn);
        mt_script_close(&rt.script, conn, conn->close_code, conn->close_reason);
        mt_ws_forget(&rt.ws, conn);
        mt_conn_free(&rt.conns, conn);
        conn = open_conn();
    }
    return 0;
}
