/*
 * wsframe.h - RFC 6455 client frames as they arrive, before lws parses them.
 *
 * Debian's lws 4.1 is lenient or wrong about control frames and masking
 * (docs/STACK.md): it accepts unmasked frames, drops the socket without a
 * close frame for an oversized control frame or a close reason that is not
 * UTF-8, echoes close codes no endpoint may send, rewrites registered ones
 * (1012-1014) to 1002, keeps one pending pong, and goes on delivering data
 * after the peer's close. This scanner sees the bytes first and makes those
 * cases strict:
 *   - data frames (text, binary, continuation) pass through untouched: lws
 *     keeps fragmentation, reserved bits and the UTF-8 of messages;
 *   - control frames are taken out of the stream and reported (a ping's
 *     payload, a pong, a close's code and reason); a valid close is put
 *     back for lws when the callback says so (the ack of a close of ours,
 *     which lws is waiting for);
 *   - a violation (an unmasked frame, a reserved opcode, a fragmented or
 *     oversized control frame, a close payload of one byte, a close code an
 *     endpoint may not send, a close reason that is not UTF-8) is reported
 *     with its close code, and nothing from that frame on reaches lws;
 *   - after a close frame or a violation, only further close frames pass
 *     (the ack of a close of ours); all else is dropped.
 * Own mode (set s->own, and rsv1_ok, before the first byte on a connection
 * that negotiated permessage-deflate, which lws 4.1 cannot be given
 * safely): data frames do not reach lws either. The scanner checks their sequence (a continuation
 * needs a message under way, a new message needs none, RSV1 only with rsv1_ok, on a
 * message's first frame, RSV2/RSV3 never: 1002) and reports their payload,
 * unmasked, as MT_WSF_DATA chunks; the caller assembles, inflates and
 * validates messages.
 * Socket-free and incremental: a frame may be split anywhere across calls.
 *
 * Owns: the scan state, embedded in a connection (48 bytes), and the
 * payload of a control frame while it is being collected (at most 125
 * bytes, freed when the frame ends or by mt_wsframe_free). Can't fail.
 */
#ifndef MT_WSFRAME_H
#define MT_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

/* What a scan found, for the caller to act on (in stream order). */
typedef enum {
    MT_WSF_PING,      /* answer with a pong carrying payload */
    MT_WSF_PONG,      /* a pong arrived */
    MT_WSF_CLOSE,     /* a valid close: code (1005 when none), reason */
    MT_WSF_VIOLATION, /* fail the connection with code; reason says why */
    MT_WSF_DATA,      /* own mode: message bytes, unmasked; code: MT_WSF_* flags */
} mt_wsframe_event_t;

/* MT_WSF_DATA's flags: of the message (as its first frame said), and
 * whether these are its last bytes. */
#define MT_WSF_BINARY 1
#define MT_WSF_COMPRESSED 2 /* RSV1 on the first frame (permessage-deflate) */
#define MT_WSF_FINAL 4

/* Returns, for MT_WSF_CLOSE only, 1 to put the close back in the stream
 * for lws, 0 to keep it out. */
typedef int (*mt_wsframe_cb)(void *ud, mt_wsframe_event_t ev, int code, const uint8_t *payload,
                             size_t len);

typedef struct mt_wsframe {
    uint64_t remaining; /* payload bytes of the current frame still to come */
    uint8_t *ctl;       /* a control frame's payload, unmasked, while collected */
    uint8_t hdr[14];    /* the header being collected */
    uint8_t hlen;       /* header bytes collected; 0 between frames */
    uint8_t need;       /* header bytes this frame has (known after two) */
    uint8_t mode;       /* what happens to the current frame's bytes */
    uint8_t ctl_len;    /* control payload bytes collected */
    uint8_t closed;     /* a close came, or a violation: only closes pass now */
    uint8_t dead;       /* the stream cannot be parsed any more: drop it all */
    uint8_t own;        /* own mode: data frames are reported, not passed */
    uint8_t in_msg;     /* own mode: a fragmented message awaits continuations */
    uint8_t msg_flags;  /* own mode: the message's MT_WSF_BINARY | _COMPRESSED */
    uint8_t mask_at;    /* own mode: payload bytes of this frame unmasked, mod 4 */
    uint8_t empty;      /* own mode: this data frame has no payload */
    uint8_t rsv1_ok;    /* own mode: RSV1 marks a compressed message (deflate) */
} mt_wsframe_t;

/**
 * Scans the len bytes in buf, in place: control frames are removed (a
 * valid close is put back whole, for lws to answer), and nothing is kept
 * after a violation but closes. cap is what buf can hold (a close split
 * across calls is written back whole). Calls cb for each event, in order.
 * Returns how many bytes remain in buf, for lws.
 */
size_t mt_wsframe_scan(mt_wsframe_t *s, uint8_t *buf, size_t len, size_t cap, mt_wsframe_cb cb,
                       void *ud);
/** Frees a control payload being collected. Accepts a zeroed state. */
void mt_wsframe_free(mt_wsframe_t *s);

/** 1 if a close code may be received from a peer (RFC 6455 7.4, IANA). */
int mt_wsframe_valid_close_code(int code);

#endif
