/* ws_frame.h — following a client's WebSocket byte stream frame by frame (RFC 6455 §5.2),
 * before the bytes reach wslay.
 *
 * Owns: kx_ws_frames_t, the position in the stream (inside a header, inside a payload,
 * inside a fragmented message), and the checks wslay makes too late or not at all: a frame
 * header announcing more than the payload limit is refused as soon as the header is complete
 * (1009, without waiting for a payload that may never come, up to a 64-bit length), a close
 * frame with a 1-byte payload is a protocol error (1002), a 64-bit length with its top bit set
 * is a protocol error (1002).
 * Callers: ws.c (on every byte handed to wslay), tests/test_ws_frame.c, tests/fuzz/fuzz_ws.c.
 * Never: allocates, reads past n, or accepts bytes after a violation (sticky). */
#ifndef KX_WS_FRAME_H
#define KX_WS_FRAME_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t hdr[14];
    uint8_t hdr_len, need;
    uint64_t left;      /* payload bytes of the current frame still to come */
    bool in_message;    /* a fragmented data message is open */
    uint16_t violation; /* close code once the stream broke a rule, else 0 */
} kx_ws_frames_t;

/* Follows p[0..n). Returns how many bytes may be handed on: all n, or, once a header breaks a
 * rule, the bytes before that header's first byte in this piece (fr->violation then says the
 * close code; every later call returns 0). max_payload 0 means no limit. */
size_t kx_ws_frames_feed(kx_ws_frames_t *fr, const uint8_t *p, size_t n, uint64_t max_payload);
/* True between frames with no fragmented message open: wslay holds nothing for this stream. */
bool kx_ws_frames_idle(const kx_ws_frames_t *fr);

#endif
