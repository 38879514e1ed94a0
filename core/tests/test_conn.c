/* test_conn.c - connections: the send queue's bound and both policies,
 * close requests, and what the owner is told through the hooks. */
#include "check.h"
#include "conn.h"

#include <stdlib.h>

static int wants, overflows;
static size_t overflow_bytes;
static uint32_t overflow_frames;

static void want_write(void *ud, mt_conn_t *c)
{
    CHECK(ud == &wants);
    CHECK(c != NULL);
    wants++;
}

static void overflow(void *ud, mt_conn_t *c, size_t bytes, uint32_t frames)
{
    (void)ud;
    (void)c;
    overflows++;
    overflow_bytes = bytes;
    overflow_frames = frames;
}

static mt_frame_t *frame(size_t len)
{
    char *data = calloc(1, len + 1);
    mt_frame_t *f = mt_frame_new(data, len, 0);
    free(data);
    return f;
}

/* Queues a frame of len bytes, dropping this test's reference. */
static void send_bytes(mt_conns_t *cs, mt_conn_t *c, size_t len)
{
    mt_frame_t *f = frame(len);
    mt_conn_enqueue(cs, c, f);
    mt_frame_unref(f);
}

static void test_close_policy(void)
{
    mt_stats_t stats = {0};
    mt_conn_hooks_t hooks = {want_write, overflow, &wants};
    mt_conns_t cs = {0};
    mt_conns_init(&cs, 100, 0, &stats, &hooks);
    mt_conn_t *c = mt_conn_new(&cs);
    CHECK(c->id != 0 && mt_conn_get(&cs, c->id) == c && mt_conns_count(&cs) == 1);

    wants = overflows = 0;
    send_bytes(&cs, c, 40);
    send_bytes(&cs, c, 40);
    CHECK(wants == 2 && c->q.len == 2 && c->q.bytes == 80);
    send_bytes(&cs, c, 40); /* 120 > 100: the connection is closed at once */
    CHECK(overflows == 1 && overflow_bytes == 80 && overflow_frames == 2);
    CHECK(c->closing && c->kill_due && c->close_code == 1013);
    CHECK_STR(c->close_reason, "send queue overflow");
    CHECK(c->q.len == 0 && c->q.bytes == 0); /* the peer is not reading: dropped */
    CHECK(stats.errors[MT_ERR_SEND_QUEUE_OVERFLOW] == 1);
    CHECK(stats.send_queue_dropped_frames == 3);
    CHECK(wants == 3); /* the owner is told to act on the close */

    send_bytes(&cs, c, 1); /* closing: nothing more is queued */
    CHECK(c->q.len == 0 && wants == 3);
    CHECK(mt_conn_close(&cs, c, 1000, "", 0, 0) == MT_DECLINED);

    uint64_t id = c->id;
    mt_conn_free(&cs, c);
    CHECK(mt_conn_get(&cs, id) == NULL && mt_conns_count(&cs) == 0);
    mt_conn_free(&cs, NULL);
    mt_conns_free(&cs);
}

static void test_drop_oldest(void)
{
    mt_stats_t stats = {0};
    mt_conn_hooks_t hooks = {want_write, overflow, &wants};
    mt_conns_t cs = {0};
    mt_conns_init(&cs, 100, 1, &stats, &hooks);
    mt_conn_t *c = mt_conn_new(&cs);
    overflows = 0;
    for (int i = 0; i < 3; i++)
        send_bytes(&cs, c, 30);
    send_bytes(&cs, c, 50); /* 140 > 100: the two oldest go */
    CHECK(!c->closing && c->q.len == 2 && c->q.bytes == 80);
    CHECK(stats.send_queue_dropped_frames == 2);
    CHECK(stats.errors[MT_ERR_SEND_QUEUE_OVERFLOW] == 1);
    CHECK(overflows == 0);
    send_bytes(&cs, c, 101); /* larger than the bound itself: close 1013 */
    CHECK(c->closing && c->close_code == 1013 && overflows == 1);
    mt_conn_free(&cs, c);
    mt_conns_free(&cs);
}

static void test_close_request(void)
{
    mt_stats_t stats = {0};
    mt_conn_hooks_t hooks = {want_write, overflow, &wants};
    mt_conns_t cs = {0};
    mt_conns_init(&cs, 1000, 0, &stats, &hooks);
    mt_conn_t *c = mt_conn_new(&cs);
    send_bytes(&cs, c, 10);
    wants = 0;
    char reason[200];
    memset(reason, 'r', sizeof reason);
    CHECK(mt_conn_close(&cs, c, 4000, reason, sizeof reason, 0) == MT_OK);
    /* After the queued frames: they stay, and the reason is cut to fit. */
    CHECK(c->closing && !c->kill_due && c->q.len == 1 && wants == 1);
    CHECK(c->close_code == 4000 && strlen(c->close_reason) == MT_CLOSE_REASON_MAX);
    CHECK(mt_conn_close(&cs, c, 1000, NULL, 0, 1) == MT_DECLINED);
    CHECK(!c->kill_due); /* the first request stands */
    mt_conn_free(&cs, c);

    c = mt_conn_new(&cs);
    CHECK(mt_conn_close(&cs, c, 1000, NULL, 0, 0) == MT_OK && c->close_reason == NULL);
    mt_conn_free(&cs, c);
    mt_conns_free(&cs);
}

static void test_fields(void)
{
    mt_stats_t stats = {0};
    mt_conn_hooks_t hooks = {want_write, overflow, &wants};
    mt_conns_t cs = {0};
    mt_conns_init(&cs, 1000, 0, &stats, &hooks);
    mt_conn_t *c = mt_conn_new(&cs);
    mt_addr_parse(&c->remote_addr, "::ffff:10.0.0.7");
    char out[64];
    CHECK(mt_conn_field(c, MT_CONN_REMOTE_ADDR, out, sizeof out) == 8);
    CHECK_STR(out, "10.0.0.7");
    CHECK(mt_conn_field(c, MT_CONN_REQUEST_ID, out, sizeof out) == 36); /* the connection id */
    CHECK(mt_conn_field(c, MT_CONN__FIELDS, out, sizeof out) == -1);
    mt_buf_t b = MT_BUF_INIT;
    mt_conn_log_fields(c, &b);
    mt_buf_addc(&b, '\0');
    CHECK(strstr(b.data, "\"remote_addr\":\"10.0.0.7\"") != NULL);
    mt_buf_free(&b);
    mt_conn_free(&cs, c);
    mt_conns_free(&cs);
}

/* A frame sent directly (group NULL) or as a delivery of that group. */
static void send_text_frame(mt_conns_t *cs, mt_conn_t *c, const char *text, const char *group)
{
    mt_frame_t *f = mt_frame_new(text, strlen(text), 0);
    if (group)
        mt_conn_deliver(cs, c, f, group, strlen(group));
    else
        mt_conn_enqueue(cs, c, f);
    mt_frame_unref(f);
}

static void test_hold(void)
{
    mt_stats_t stats = {0};
    mt_conn_hooks_t hooks = {want_write, overflow, &wants};
    mt_conns_t cs = {0};
    mt_conns_init(&cs, 1000, 0, &stats, &hooks);
    mt_conn_t *c = mt_conn_new(&cs);
    CHECK(mt_conn_release(&cs, c, 0) == 0); /* not held: nothing */
    CHECK(mt_conn_hold(&cs, c, "room", 4) == MT_OK);
    CHECK(mt_conn_hold(&cs, c, "room", 4) == MT_DECLINED);
    send_text_frame(&cs, c, "{\"offset\":4,\"epoch\":\"e\"}", "room"); /* held */
    send_text_frame(&cs, c, "{\"type\":\"recovered\"}", NULL);         /* direct: goes out */
    send_text_frame(&cs, c, "{\"text\":\"\\\"offset\\\":1\",\"offset\":6}", "room");
    send_text_frame(&cs, c, "{\"no\":\"offset\"}", "room");
    send_text_frame(&cs, c, "{\"offset\":2}", "roo"); /* another group: goes out */
    CHECK(c->q.len == 2 && c->held->q.len == 3);
    /* The catch-up sent up to offset 5: 4 is dropped, 6 and the frame
     * without an offset follow, in order. */
    CHECK(mt_conn_release(&cs, c, 5) == 2);
    CHECK(c->held == NULL && c->q.len == 4);
    mt_frame_t *f = c->q.items[(c->q.head + 2) % c->q.cap];
    CHECK(mt_frame_offset(f) == 6);
    f = c->q.items[(c->q.head + 3) % c->q.cap];
    CHECK(mt_frame_offset(f) == -1);
    /* The bound covers both queues while held. */
    CHECK(mt_conn_hold(&cs, c, "room", 4) == MT_OK);
    char big[1000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    send_text_frame(&cs, c, big, "room");
    CHECK(c->closing && c->close_code == 1013);
    mt_conn_free(&cs, c); /* frees what is still held */
    mt_conns_free(&cs);
}

int main(void)
{
    test_hold();
    test_close_policy();
    test_drop_oldest();
    test_close_request();
    test_fields();
    return CHECK_DONE();
}
