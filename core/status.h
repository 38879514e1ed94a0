/*
 * status.h - status codes and limits, defined once and shared with Lua.
 *
 * Functions that can fail return MT_OK or a negative code; the FFI block
 * of ffi.h repeats these values (ffi.c asserts they agree) and Lua reads
 * them from there (lua/moontide/cdef.lua), so no other file spells them.
 */
#ifndef MT_STATUS_H
#define MT_STATUS_H

enum {
    MT_OK = 0,
    MT_ERROR = -1,    /* a bad argument */
    MT_AGAIN = -2,    /* not now: try later */
    MT_DECLINED = -5, /* the target is gone or closing */
};

/* The most a close reason may hold: a close frame's payload is at most
 * 125 bytes, two of them the code (RFC 6455 5.5). */
#define MT_CLOSE_REASON_MAX 123
/* The longest group (room) name, in bytes. */
#define MT_GROUP_NAME_MAX 200
/* The first byte of a group message on Redis (redis.h), so that other
 * writers of the channel (moontide.stream's script) write the same. */
#define MT_REDIS_HEADER_VERSION 77 /* 'M' */

#endif
