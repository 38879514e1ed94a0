/* test_deflate.c - permessage-deflate negotiation, compression, inflation. */
#include "check.h"
#include "deflate.h"

#include <stdlib.h>

static void test_offers(void)
{
    static const struct {
        const char *offer;
        int ok;
    } cases[] = {
        {"permessage-deflate", 1},
        {"permessage-deflate; client_max_window_bits", 1},
        {"Permessage-Deflate ;client_max_window_bits=10", 1},
        {"permessage-deflate; server_max_window_bits=15", 1},
        {"permessage-deflate; client_max_window_bits=\"9\"; server_no_context_takeover", 1},
        {"permessage-deflate; server_max_window_bits=10", 0},
        {"permessage-deflate; server_max_window_bits", 0},
        {"permessage-deflate; client_max_window_bits=7", 0},
        {"permessage-deflate; client_max_window_bits=16", 0},
        {"permessage-deflate; client_max_window_bits=1a", 0},
        {"permessage-deflate; client_no_context_takeover=1", 0},
        {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", 0},
        {"permessage-deflate; mystery", 0},
        {"x-webkit-deflate-frame", 0},
        {"", 0},
        {"foo, permessage-deflate; server_max_window_bits=9, permessage-deflate", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (mt_deflate_offer_ok(cases[i].offer) != cases[i].ok) {
            fprintf(stderr, "offer \"%s\": want %d\n", cases[i].offer, cases[i].ok);
            check_failures++;
        }
    CHECK(mt_deflate_offer_ok(NULL) == 0);
}

static void test_round_trip_and_sharing(void)
{
    mt_deflate_t d;
    mt_deflate_init(&d);
    char text[4000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "moontide chat "[i % 14];
    mt_frame_t *f = mt_frame_new(text, sizeof text, 0);
    mt_frame_t *z = mt_deflate_frame(&d, f);
    CHECK(z != f && z->rsv1 && z->opcode == MT_FRAME_TEXT && z->len < 200);
    CHECK(mt_deflate_frame(&d, f) == z); /* made once, shared */
    CHECK(mt_deflate_frame(&d, z) == z);
    CHECK(mt_deflate_inflate(&d, mt_frame_payload(z), z->len, sizeof text) == MT_INFLATE_OK);
    CHECK(d.inflated.len == sizeof text && memcmp(d.inflated.data, text, sizeof text) == 0);
    /* One byte under: refused as too large. */
    CHECK(mt_deflate_inflate(&d, mt_frame_payload(z), z->len, sizeof text - 1) ==
          MT_INFLATE_TOO_LARGE);
    mt_frame_unref(f); /* frees the twin too (ASan would say otherwise) */

    /* Short, incompressible, pongs: as they are. */
    mt_frame_t *s = mt_frame_new("{\"type\":\"message\"}", 18, 0);
    CHECK(mt_deflate_frame(&d, s) == s);
    mt_frame_unref(s);
    unsigned char noise[1000];
    srand(7);
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)rand();
    mt_frame_t *n = mt_frame_new(noise, sizeof noise, 1);
    CHECK(mt_deflate_frame(&d, n) == n && n->deflated == NULL);
    mt_frame_unref(n);
    mt_frame_t *p = mt_frame_pong(text, 100);
    CHECK(mt_deflate_frame(&d, p) == p);
    mt_frame_unref(p);

    /* Garbage is corrupt; a bomb stops at the limit. */
    CHECK(mt_deflate_inflate(&d, "\xff\xff\xff garbage", 11, 1 << 20) == MT_INFLATE_CORRUPT);
    size_t big = 8u << 20;
    char *zeros = calloc(1, big);
    mt_frame_t *b = mt_frame_new(zeros, big, 1);
    mt_frame_t *bz = mt_deflate_frame(&d, b);
    CHECK(bz != b && bz->len < 64 * 1024);
    CHECK(mt_deflate_inflate(&d, mt_frame_payload(bz), bz->len, 64 * 1024) == MT_INFLATE_TOO_LARGE);
    CHECK(d.inflated.len <= 64 * 1024 + 1);
    CHECK(mt_deflate_inflate(&d, mt_frame_payload(bz), bz->len, big) == MT_INFLATE_OK);
    CHECK(d.inflated.len == big);
    mt_frame_unref(b);
    free(zeros);
    /* Empty input: an empty message. */
    CHECK(mt_deflate_inflate(&d, "", 0, 10) == MT_INFLATE_OK && d.inflated.len == 0);
    mt_deflate_free(&d);
}

int main(void)
{
    test_offers();
    test_round_trip_and_sharing();
    return CHECK_DONE();
}
