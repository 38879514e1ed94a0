/* test_wsframe.c - the client-frame scanner in front of lws. */
#include "check.h"
#include "wsframe.h"

#include <stdlib.h>

typedef struct {
    int n;
    mt_wsframe_event_t ev[16];
    int code[16];
    char payload[16][128];
} events_t;

static int pass_closes = 1; /* what record answers for a close */

static int record(void *ud, mt_wsframe_event_t ev, int code, const uint8_t *p, size_t len)
{
    events_t *e = ud;
    if (e->n == 16)
        return pass_closes;
    e->ev[e->n] = ev;
    e->code[e->n] = code;
    memcpy(e->payload[e->n], p ? (const char *)p : "", len);
    e->payload[e->n][len] = '\0';
    e->n++;
    return pass_closes;
}

/* Appends a client frame to out: masked unless masked is 0. */
static size_t frame(uint8_t *out, int fin, int opcode, const void *payload, size_t n, int masked)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t at = 0;
    out[at++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    uint8_t m = masked ? 0x80 : 0;
    if (n < 126) {
        out[at++] = (uint8_t)(m | n);
    } else {
        out[at++] = m | 126;
        out[at++] = (uint8_t)(n >> 8);
        out[at++] = (uint8_t)n;
    }
    if (masked) {
        memcpy(out + at, key, 4);
        at += 4;
    }
    for (size_t i = 0; i < n; i++)
        out[at + i] = ((const uint8_t *)payload)[i] ^ (masked ? key[i & 3] : 0);
    return at + n;
}

/* Scans in pieces of chop bytes; returns the bytes kept, joined. */
static size_t scan(mt_wsframe_t *s, const uint8_t *in, size_t n, size_t chop, uint8_t *kept,
                   events_t *e)
{
    size_t total = 0;
    for (size_t at = 0; at < n; at += chop) {
        uint8_t buf[512];
        size_t k = n - at < chop ? n - at : chop;
        memcpy(buf, in + at, k);
        size_t left = mt_wsframe_scan(s, buf, k, sizeof buf, record, e);
        memcpy(kept + total, buf, left);
        total += left;
    }
    return total;
}

static void test_data_passes_and_controls_are_taken_out(void)
{
    uint8_t in[512], kept[1024];
    size_t n = 0, text = frame(in, 1, 1, "hello", 5, 1);
    n = text;
    n += frame(in + n, 1, 9, "ping!", 5, 1);
    size_t at_bin = n;
    n += frame(in + n, 0, 2, "\1\2", 2, 1);
    n += frame(in + n, 1, 10, "", 0, 1);
    size_t at_cont = n;
    n += frame(in + n, 1, 0, "\3", 1, 1);
    for (size_t chop = 1; chop <= n; chop++) {
        mt_wsframe_t s = {0};
        events_t e = {0};
        size_t k = scan(&s, in, n, chop, kept, &e);
        /* what lws sees: the text, the binary start and the continuation */
        CHECK(k == text + (at_cont - at_bin - 6) + (n - at_cont));
        CHECK(memcmp(kept, in, text) == 0);
        CHECK(memcmp(kept + text, in + at_bin, 8) == 0);
        CHECK(e.n == 2 && e.ev[0] == MT_WSF_PING && e.ev[1] == MT_WSF_PONG);
        CHECK_STR(e.payload[0], "ping!");
        mt_wsframe_free(&s);
    }
}

static void test_a_valid_close_is_reported_and_put_back(void)
{
    uint8_t in[256], kept[512], payload[] = {0x03, 0xf4, 'b', 'y', 'e'}; /* 1012 */
    size_t n = frame(in, 1, 8, payload, sizeof payload, 1);
    n += frame(in + n, 1, 1, "after", 5, 1); /* dropped: after the close */
    n += frame(in + n, 1, 9, "", 0, 1);      /* dropped too */
    for (size_t chop = 1; chop <= n; chop++) {
        mt_wsframe_t s = {0};
        events_t e = {0};
        size_t k = scan(&s, in, n, chop, kept, &e);
        CHECK(e.n == 1 && e.ev[0] == MT_WSF_CLOSE && e.code[0] == 1012);
        CHECK_STR(e.payload[0], "bye");
        CHECK(k == 6 + sizeof payload); /* the close, masked with a zero key */
        CHECK(kept[0] == 0x88 && kept[1] == (0x80 | sizeof payload));
        CHECK(memcmp(kept + 6, payload, sizeof payload) == 0);
        mt_wsframe_free(&s);
    }
    /* Kept out when the callback says so, and all after it dropped. */
    pass_closes = 0;
    mt_wsframe_t s = {0};
    events_t e = {0};
    CHECK(scan(&s, in, n, 3, kept, &e) == 0);
    CHECK(e.n == 1 && e.ev[0] == MT_WSF_CLOSE);
    pass_closes = 1;
}

static void test_violations(void)
{
    static const struct {
        int opcode, fin, masked;
        const char *payload;
        size_t len;
        int code;
    } cases[] = {
        {1, 1, 0, "unmasked", 8, 1002},
        {9, 1, 0, "p", 1, 1002},
        {8, 1, 1, "x", 1, 1002},              /* a one-byte close payload */
        {8, 1, 1, "\x13\x88", 2, 1002},       /* 5000 */
        {8, 1, 1, "\x03\xed", 2, 1002},       /* 1005 */
        {8, 1, 1, "\x03\xe8\xed\xa0\x80", 5, 1007}, /* a surrogate in the reason */
        {9, 0, 1, "frag", 4, 1002},
        {3, 1, 1, "", 0, 1002},
        {11, 1, 1, "", 0, 1002},
    };
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        uint8_t in[256], kept[512];
        size_t n = frame(in, 1, 1, "ok", 2, 1);
        n += frame(in + n, cases[t].fin, cases[t].opcode, cases[t].payload, cases[t].len,
                   cases[t].masked);
        n += frame(in + n, 1, 1, "never", 5, 1);
        mt_wsframe_t s = {0};
        events_t e = {0};
        size_t k = scan(&s, in, n, 1, kept, &e);
        CHECK(e.n == 1 && e.ev[0] == MT_WSF_VIOLATION && e.code[0] == cases[t].code);
        CHECK(k >= 8 && memcmp(kept, in, 8) == 0); /* the frame before it passed */
        CHECK(memmem(kept, k, "never", 5) == NULL);
        mt_wsframe_free(&s);
    }
    /* A control frame of 126 bytes: its 16-bit length is parsed, then refused. */
    uint8_t big[300], in[512], kept[512];
    memset(big, 'b', sizeof big);
    size_t n = frame(in, 1, 9, big, 126, 1);
    n += frame(in + n, 1, 8, "\x03\xe8", 2, 1); /* the client's close ack still passes */
    mt_wsframe_t s = {0};
    events_t e = {0};
    size_t k = scan(&s, in, n, 7, kept, &e);
    CHECK(e.n == 1 && e.ev[0] == MT_WSF_VIOLATION && e.code[0] == 1002);
    CHECK(k == 8 && kept[0] == 0x88);
    mt_wsframe_free(&s);
    /* A 64-bit length with its top bit set: nothing can be parsed after. */
    uint8_t bad[] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 'x'};
    mt_wsframe_t d = {0};
    e.n = 0;
    k = scan(&d, bad, sizeof bad, sizeof bad, kept, &e);
    CHECK(e.n == 1 && e.code[0] == 1002);
    CHECK(mt_wsframe_scan(&d, bad, sizeof bad, sizeof bad, record, &e) == 0);
}

/* Own mode: a message's bytes, joined, and the flags of its last chunk. */
typedef struct {
    char data[512];
    size_t len;
    int flags, finals, violation;
} own_t;

static int record_own(void *ud, mt_wsframe_event_t ev, int code, const uint8_t *p, size_t len)
{
    own_t *o = ud;
    if (ev == MT_WSF_DATA) {
        memcpy(o->data + o->len, p, len);
        o->len += len;
        o->flags = code;
        o->finals += (code & MT_WSF_FINAL) != 0;
    } else if (ev == MT_WSF_VIOLATION) {
        o->violation = code;
    }
    return 1;
}

static void test_own_mode(void)
{
    uint8_t in[256], buf[256];
    /* A compressed binary message in three fragments (one empty), a ping
     * between: the data is reported unmasked, nothing reaches lws. */
    size_t n = frame(in, 0, 2, "abc", 3, 1);
    in[0] |= 0x40; /* RSV1 */
    n += frame(in + n, 1, 9, "p", 1, 1);
    n += frame(in + n, 0, 0, "", 0, 1);
    n += frame(in + n, 1, 0, "defgh", 5, 1);
    for (size_t chop = 1; chop <= n; chop++) {
        mt_wsframe_t s = {0};
        s.own = s.rsv1_ok = 1;
        own_t o = {0};
        size_t kept = 0;
        for (size_t at = 0; at < n; at += chop) {
            size_t k = n - at < chop ? n - at : chop;
            memcpy(buf, in + at, k);
            kept += mt_wsframe_scan(&s, buf, k, sizeof buf, record_own, &o);
        }
        CHECK(kept == 0);
        CHECK(o.len == 8 && memcmp(o.data, "abcdefgh", 8) == 0);
        CHECK(o.finals == 1 && o.flags == (MT_WSF_BINARY | MT_WSF_COMPRESSED | MT_WSF_FINAL));
        CHECK(o.violation == 0);
        mt_wsframe_free(&s);
    }
    /* An empty final text frame is still a message. */
    mt_wsframe_t s = {0};
    s.own = 1;
    own_t o = {0};
    n = frame(in, 1, 1, "", 0, 1);
    memcpy(buf, in, n);
    CHECK(mt_wsframe_scan(&s, buf, n, sizeof buf, record_own, &o) == 0);
    CHECK(o.finals == 1 && o.flags == MT_WSF_FINAL && o.len == 0);
    /* Sequence rules: each case's second frame is a violation (1002). */
    static const struct {
        int op1, fin1, rsv1, op2, rsv2;
    } bad[] = {
        {1, 0, 0x40, 0, 0x40}, /* RSV1 on a continuation */
        {1, 1, 0, 1, 0x20},    /* RSV2 */
        {1, 1, 0, 0, 0},       /* a continuation with no message */
        {1, 0, 0, 2, 0},       /* a new message before the last ended */
    };
    for (size_t t = 0; t < sizeof bad / sizeof bad[0]; t++) {
        mt_wsframe_t v = {0};
        v.own = v.rsv1_ok = 1;
        own_t w = {0};
        n = frame(in, bad[t].fin1, bad[t].op1, "a", 1, 1);
        in[0] |= (uint8_t)bad[t].rsv1;
        size_t second = n;
        n += frame(in + n, 1, bad[t].op2, "b", 1, 1);
        in[second] |= (uint8_t)bad[t].rsv2;
        memcpy(buf, in, n);
        mt_wsframe_scan(&v, buf, n, sizeof buf, record_own, &w);
        CHECK(w.violation == 1002);
        CHECK(w.len == 1 && w.data[0] == 'a'); /* the violating frame is not reported */
    }
}

int main(void)
{
    test_data_passes_and_controls_are_taken_out();
    test_a_valid_close_is_reported_and_put_back();
    test_violations();
    test_own_mode();
    CHECK(mt_wsframe_valid_close_code(1000) && mt_wsframe_valid_close_code(4999));
    CHECK(!mt_wsframe_valid_close_code(1015) && !mt_wsframe_valid_close_code(2999));
    return CHECK_DONE();
}
