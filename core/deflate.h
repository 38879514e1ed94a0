/*
 * deflate.h - permessage-deflate (RFC 7692), one message at a time.
 *
 * moontide answers an acceptable offer with server_no_context_takeover and
 * client_no_context_takeover (RFC 7692 7.1.1: a server may add both to
 * any offer): each message is compressed, and inflated, on its own. That
 * is the whole design:
 *   - one compressor and one decompressor serve every connection of the
 *     process: a connection with compression costs no zlib memory (lws's
 *     own extension keeps ~29 KB per connection, measured);
 *   - a group message is compressed once, and the same bytes go to every
 *     recipient with compression (cached on the frame), where a
 *     per-connection context would compress it once per recipient;
 *   - the price is the ratio on small, similar messages (no dictionary
 *     from the previous one): chat JSON still shrinks 2-4x from a few
 *     hundred bytes up; below MT_DEFLATE_MIN_BYTES, or when the result is
 *     not smaller, a message goes uncompressed (RSV1 clear), as RFC 7692
 *     allows per message.
 * Offers asking for server_max_window_bits below 15 are declined (zlib
 * cannot make an 8-bit window; the others would need a compressor each):
 * the client then gets no extension and works uncompressed.
 *
 * Owns: the two zlib streams (~300 KB per process) and the buffer the
 * last message was inflated into (reused; a large one is let go).
 * Single-threaded, like the loop.
 */
#ifndef MT_DEFLATE_H
#define MT_DEFLATE_H

#include "buf.h"
#include "frame.h"

#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

/* The Sec-WebSocket-Extensions value answering an accepted offer. */
#define MT_DEFLATE_RESPONSE                                                                        \
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/* Messages shorter than this go uncompressed: a deflate block's framing
 * eats what so few bytes could save. */
#define MT_DEFLATE_MIN_BYTES 64

typedef struct mt_deflate {
    z_stream out; /* compressor: raw deflate, 15-bit window */
    z_stream in;  /* decompressor: raw inflate, 15-bit window */
    int out_ready, in_ready;
    mt_buf_t inflated; /* the last message inflated */
    /* Totals for /status: message bytes before compression and bytes on
     * the wire, each way (only messages that went compressed). */
    uint64_t sent_bytes, sent_wire_bytes, received_bytes, received_wire_bytes;
} mt_deflate_t;

typedef enum {
    MT_INFLATE_OK = 0,
    MT_INFLATE_CORRUPT = -1,   /* not a valid DEFLATE stream (1007) */
    MT_INFLATE_TOO_LARGE = -2, /* inflates past the limit (1009) */
} mt_inflate_result_t;

/**
 * 1 if a Sec-WebSocket-Extensions request value (NULL: none) holds a
 * permessage-deflate offer moontide can accept: well-formed, with no
 * parameter twice, no unknown one, and server_max_window_bits (if any) 15.
 */
int mt_deflate_offer_ok(const char *header);

/** Zeroes d; the zlib streams are made on first use (abort if zlib cannot). */
void mt_deflate_init(mt_deflate_t *d);
void mt_deflate_free(mt_deflate_t *d);

/**
 * The frame to send on a connection with compression: f's compressed twin
 * (RSV1 set; made on first use and kept with f, so every recipient shares
 * it), or f itself when compression would not help (a pong, a short or
 * incompressible message). Can't fail.
 */
mt_frame_t *mt_deflate_frame(mt_deflate_t *d, mt_frame_t *f);

/**
 * Inflates one message's payload (the RFC 7692 7.2.2 tail is added here)
 * into d->inflated, stopping as soon as it would pass max bytes: a small
 * payload that would inflate to gigabytes costs at most max bytes of work.
 */
mt_inflate_result_t mt_deflate_inflate(mt_deflate_t *d, const void *p, size_t len, size_t max);

#endif
