/* ws_frame.h — following a client's WebSocket byte stream frame by frame (RFC 6455 §5.2),
 * before the bytes reach wslay.
 *
 * Owns: kx_ws_frames_t, the position in the stream (inside a header, inside a payload,
 * inside a fragmented message), and the checks wslay makes too late or not at all: a frame
 * header announcing more than the payload limit is refused as soon as the header is complete
 * (1009, without waiting for a payload that may never come, up to a 64-bit length), a close
 * frame with a 1-byte payload is a protocol error (1002), a 64-bit length with its top bit set
 * is a protocol error (1002).
 * Also the test for the frames ws.c takes without wslay (its direct path) and their unmasking:
 * here, so that tests/fuzz/fuzz_ws.c can hold them to what wslay makes of the same bytes.
 * Callers: ws.c (on every byte handed to wslay or taken directly), tests/test_ws_frame.c,
 * tests/fuzz/fuzz_ws.c.
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

enum { KX_WS_DIRECT_NO, KX_WS_DIRECT_WAIT, KX_WS_DIRECT_YES };
/* Whether p[0..avail) (avail >= 1) starts with a frame ws.c may take without wslay: FIN and
 * text with no RSV bit, masked, a 7-bit or minimal 16-bit length within max_payload (0: no
 * limit), header and payload all there — YES, with *hlen (mask included) and *plen. WAIT: it
 * may still become one, more bytes are needed. NO: wslay's (every other frame, and a length
 * over the limit, which the tracker refuses with 1009). */
int kx_ws_direct_frame(const uint8_t *p, size_t avail, uint64_t max_payload, size_t *hlen, size_t *plen);
/* XORs p[0..n) with the masking key, in place (RFC 6455 §5.3). */
void kx_ws_unmask(uint8_t *p, size_t n, const uint8_t key[4]);

#endif
