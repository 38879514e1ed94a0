/*
 * fuzz_wsframe.c - libFuzzer target for the client-frame scanner that sees
 * every byte a client sends before lws does (wsframe.h). The first byte of
 * the input picks where the stream is split (low 6 bits) and own mode
 * (bit 6: data frames reported, as for compression), the rest is the
 * stream: a reported data chunk must lie in the buffer; the
 * scanner must never write past its buffer (ASan), never claim more bytes
 * than the buffer holds, close only with 1002 or 1007, and report at most
 * one violation.
 */
#include "wsframe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int violations;
static const uint8_t *buf_lo, *buf_hi; /* the buffer being scanned */

static int count(void *ud, mt_wsframe_event_t ev, int code, const uint8_t *p, size_t len)
{
    (void)ud;
    if (ev == MT_WSF_DATA && (p < buf_lo || p + len > buf_hi))
        abort();
    if (ev == MT_WSF_VIOLATION) {
        violations++;
        if (code != 1002 && code != 1007)
            abort();
    }
    return ev == MT_WSF_CLOSE ? (code & 1) : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chop = (size_t)data[0] % 64 + 1;
    mt_wsframe_t s = {0};
    s.own = (data[0] & 0x40) != 0;
    data++;
    size--;
    violations = 0;
    for (size_t at = 0; at < size; at += chop) {
        size_t n = size - at < chop ? size - at : chop;
        size_t cap = n + 131; /* room for a close put back whole */
        uint8_t *buf = malloc(cap);
        memcpy(buf, data + at, n);
        buf_lo = buf;
        buf_hi = buf + n;
        if (mt_wsframe_scan(&s, buf, n, cap, count, NULL) > cap)
            abort();
        free(buf);
    }
    if (violations > 1)
        abort();
    mt_wsframe_free(&s);
    return 0;
}
