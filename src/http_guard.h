/* http_guard.h — strict HTTP/1.1 request framing: head terminator, head validator, chunked
 * body decoder. This is what keeps keryx safe against request smuggling, because Debian's
 * llhttp 8.1 accepts a bare CR in the head, obs-fold lines, missing/duplicate Host, HTTP/0.9
 * and HTTP/2.0 request lines, `TE: identity, chunked`, and skips any 2 bytes after chunk data
 * (each such shape gets 400 and the connection closed).
 *
 * Owns: nothing on the heap. Pure functions over caller-owned bytes, plus a fixed-size chunk
 * decoder state. Called by: lua_bridge.c (response header pieces from Lua) and http.c, in
 * this order per request:
 *   1. kx_head_parser_feed on every read, until it returns > 0 (or KX_EPROTO → 400 + close):
 *      one pass that finds the head's end and checks each line as soon as it is complete;
 *   2. kx_head_parser_result — only a head it accepts is used: http.c takes the spans the
 *      parser recorded (llhttp's, see kx_head_field_t), or has llhttp tokenise the head when
 *      its method is not one of the common ones;
 *   3. the body: Content-Length bytes read by http.c itself, or kx_chunk_decoder_feed for
 *      chunked. llhttp never sees body bytes.
 * The parser gives exactly the verdicts of the two-step reference, kx_http_head_end(_from)
 * then kx_http_guard_head on [0, end): same end, same status and reason, same info
 * (tests/test_http_guard.c and tests/fuzz/fuzz_http.c compare them, whole and byte by byte).
 * Never: allocates, logs, does I/O, or keeps pointers into the caller's buffers.
 *
 * Every failure here means the byte stream can no longer be framed safely: the caller answers
 * the given status once and closes the connection (RFC 9112 §6.1, §6.3). The reason strings are
 * static and contain no request bytes, so they are safe to log and to put in the JSON error. */
#ifndef KX_HTTP_GUARD_H
#define KX_HTTP_GUARD_H

#include "common.h"

/* RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) before the request line
 * (some clients send a CRLF after a POST body). We skip up to this many CRLF pairs — bounded so
 * that a client cannot make every read rescan a long run of them; one more is KX_EPROTO. The
 * skipped bytes are part of the head (the offsets returned include them); llhttp also skips
 * them, and kx_head_info_t.head_start says where the request line begins. */
#define KX_HTTP_MAX_LEADING_EMPTY_LINES 8
/* More header lines than this → 431 "too many headers". */
#define KX_HTTP_MAX_HEADERS 100
/* Chunked body caps (RFC 9112 §7.1.1 says a server ought to limit extensions). */
#define KX_CHUNK_MAX_EXT_BYTES 4096     /* all chunk-extension bytes in one message */
#define KX_CHUNK_MAX_TRAILER_BYTES 8192 /* the whole trailer section incl. its final CRLF */
#define KX_CHUNK_MAX_SIZE ((uint64_t)1 << 62)

/* Finds the end of a request head in buf[0..len). Returns the offset just past the terminating
 * CRLFCRLF (> 0), 0 if not complete yet, or KX_EPROTO if the bytes seen so far can never be a
 * valid head: a bare LF ("\n\n", "\r\n\n", an LF line ending anywhere), a CR followed by
 * anything but LF, or more than KX_HTTP_MAX_LEADING_EMPTY_LINES leading empty lines. Other
 * defects are left to kx_http_guard_head. The caller enforces the head size cap (431). */
long kx_http_head_end(const char *buf, size_t len);

/* The same, resumable, so a client trickling one byte per read costs O(n) in total instead of
 * O(n^2): *scanned must be 0 for a new head and is carried between calls on the same buffer
 * (the buffer may grow at the end but the bytes before len must not change). */
long kx_http_head_end_from(const char *buf, size_t len, size_t *scanned);

typedef enum { KX_TE_NONE = 0, KX_TE_CHUNKED } kx_te_t;

typedef struct {
    int http_minor; /* 0 or 1 (HTTP/1.0 or HTTP/1.1) */
    bool has_content_length;
    uint64_t content_length; /* at most 18 digits, so < 10^18 */
    kx_te_t transfer_encoding;
    bool keep_alive;        /* 1.1: no "close" token; 1.0: "keep-alive" token and no "close" */
    bool upgrade_websocket; /* HTTP/1.1, Upgrade lists "websocket" (any case), Connection has
                                  token "upgrade"; always false on 1.0 (RFC 9110 §7.8) */
    bool expect_continue;   /* HTTP/1.1 and Expect: 100-continue (1.0 ignores it, §10.1.1) */
    bool absolute_form;     /* target was http(s)://authority/...; the path is what counts */
    size_t head_start;      /* offset of the request line (after skipped empty lines) */
} kx_head_info_t;

/* Validates a complete head (len = the value returned by kx_http_head_end, so it ends with the
 * first CRLFCRLF). On success fills *info, sets *status = 0 and *reason = NULL, returns KX_OK.
 * On failure returns KX_EPROTO, sets *status to 400, 431 (too many headers), 501 (a single
 * unknown transfer coding) or 505 (HTTP version other than 1.0/1.1), and *reason to a static
 * string such as "bare CR in request head", "obs-fold header line", "Content-Length with
 * Transfer-Encoding", "duplicate Content-Length", "missing Host header". status and reason may
 * be NULL. What is accepted:
 *   request line  METHOD SP target SP HTTP/1.x CRLF; method 1*tchar; target visible ASCII with
 *                 no '#', origin-form "/...", "*" with OPTIONS only, or http(s)://host[:port]...
 *   header line   1*tchar ":" OWS value OWS CRLF; value bytes HTAB, SP, 0x21-0x7E, 0x80-0xFF
 *   Content-Length  one header, 1-18 digits;   Transfer-Encoding  one header, exactly "chunked"
 *                 (any case, OWS), never with Content-Length nor on HTTP/1.0
 *   Host          exactly one on HTTP/1.1 (optional on 1.0), non-empty reg-name / IPv4 /
 *                 [IPv6] with an optional numeric port; no userinfo, path, space or CTL. */
int kx_http_guard_head(const char *head, size_t len, kx_head_info_t *info, int *status, const char **reason);

/* What the head checks have found so far (http_guard.c's; callers never read it). */
typedef struct {
    int status;         /* first failure, 0 while none */
    const char *reason; /* static */
    int http_minor;
    unsigned headers;
    unsigned hosts, content_lengths, transfer_encodings;
    uint64_t content_length;
    bool chunked;
    bool absolute_form;
    bool conn_close, conn_keep_alive, conn_upgrade;
    bool upgrade_websocket, expect_continue;
} kx_head_checks_t;

/* One header line of an accepted head, as offsets into the caller's buffer: the name, and the
 * value from its first non-OWS byte to the end of the line (trailing OWS kept; empty: length
 * 0) — the spans llhttp 8.1 hands over, so callers see the same bytes as with llhttp. */
typedef struct {
    uint32_t name, name_len;
    uint32_t value, value_len;
} kx_head_field_t;

/* The one-pass head parser. State carried between reads of one head; all-zero bytes (calloc,
 * memset, kx_head_parser_init) are a fresh parser. Offsets are from the start of the caller's
 * buffer, which may grow at the end between calls (the bytes before len must not change). */
typedef struct {
    size_t line;       /* offset of the first byte of the line being read */
    size_t scanned;    /* bytes [line, scanned) hold no CR and no LF */
    size_t head_start; /* offset of the request line */
    unsigned empty_lines;
    bool in_headers; /* the request line has been read */
    kx_head_checks_t checks;
    /* Once kx_head_parser_result accepted the head: the method and the request target (the
     * bytes between the two spaces of the request line), and checks.headers fields. */
    uint32_t method, method_len, target, target_len;
    kx_head_field_t fields[KX_HTTP_MAX_HEADERS]; /* last: init leaves it alone */
} kx_head_parser_t;

void kx_head_parser_init(kx_head_parser_t *hp);

/* Reads buf[0..len) on from where the last call stopped (bytes already searched for CR/LF are
 * not searched again, so a head trickled byte by byte costs O(n)) and checks each complete
 * line once, when its CRLF arrives. Returns the offset just past the head's final CRLF
 * (> 0), 0 if the head is not complete yet, or KX_EPROTO on what kx_http_head_end refuses
 * (bare CR or LF, too many leading empty lines; also a line ending 4 GiB into buf, as the
 * spans are 32-bit offsets — http.c refuses heads over 16 KiB long before). A line failing a check is not reported before
 * the head ends (the reference's order of verdicts): its status comes from
 * kx_head_parser_result, and the lines after it are only searched for CR/LF. The caller
 * enforces the head size cap (431) first, as with kx_http_head_end. */
long kx_head_parser_feed(kx_head_parser_t *hp, const char *buf, size_t len);

/* After kx_head_parser_feed returned > 0: the verdict of kx_http_guard_head on the same head
 * (same return, *info, *status and *reason). */
int kx_head_parser_result(const kx_head_parser_t *hp, kx_head_info_t *info, int *status, const char **reason);

/* Response header pieces, checked one at a time by whoever serialises headers handed over by
 * app code (lua_bridge.c), so no action can split a response (CWE-113).
 * kx_http_token_valid: 1*tchar (RFC 9110 §5.6.2), the shape of a field name.
 * kx_http_field_value_valid: HTAB, SP, VCHAR and obs-text only — no CR, LF, NUL or other CTL,
 * no DEL; may be empty. */
bool kx_http_token_valid(const char *p, size_t n);
bool kx_http_field_value_valid(const char *p, size_t n);

/* A correlation id keryx will log and echo: 1..KX_CORRELATION_ID_MAX letters, digits and
 * . _ : - (nothing that could start a log line or a header). The one rule for the request
 * header (http.c) and for the id a background job carries in its inputs (keryx.tasks, through
 * core.correlation_id_valid). */
#define KX_CORRELATION_ID_MAX 128
bool kx_correlation_id_valid(const char *p, size_t n);

/* Streaming strict decoder for a chunked request body (RFC 9112 §7.1). Accepted framing:
 *   chunk        1*16HEXDIG [ ";" ext ] CRLF data CRLF      (no BWS, no sign, size ≤ 2^62)
 *   last-chunk   1*16HEXDIG(=0) [ ";" ext ] CRLF
 *   trailers     *( tchar-name ":" value CRLF ) CRLF          (consumed and discarded)
 * ext bytes are HTAB, SP, VCHAR or obs-text; at most KX_CHUNK_MAX_EXT_BYTES per message.
 * Trailers are never merged into the headers and never change framing. */
typedef struct {
    int state;
    int error;          /* sticky KX_E* once failed */
    const char *reason; /* static; why it failed (for logs) */
    uint64_t max_body;  /* 0 = no limit */
    uint64_t total;     /* decoded bytes delivered so far */
    uint64_t size;      /* chunk size being parsed */
    uint64_t remaining; /* data bytes left in the current chunk */
    unsigned size_digits;
    size_t ext_bytes;
    size_t trailer_bytes;
} kx_chunk_decoder_t;

void kx_chunk_decoder_init(kx_chunk_decoder_t *d, uint64_t max_body /* 0 = no limit */);

/* Feeds bytes. Decoded data is delivered through on_data (may be called several times; may be
 * NULL to discard). *consumed = bytes of p that belong to this message (less than n when the
 * message ends inside p: the rest is the next pipelined request). Returns KX_OK (call again
 * with more bytes unless kx_chunk_decoder_done), KX_EPROTO for bad framing (400 + close),
 * KX_ELIMIT when the decoded body would exceed max_body (413 + close; raised as soon as a chunk
 * size says so, before its data is delivered). Errors are sticky. Feeding a finished decoder
 * consumes nothing and returns KX_OK. */
int kx_chunk_decoder_feed(kx_chunk_decoder_t *d, const char *p, size_t n, size_t *consumed,
                          void (*on_data)(void *ud, const char *p, size_t n), void *ud);
bool kx_chunk_decoder_done(const kx_chunk_decoder_t *d);
/* Static reason of the last failure, or NULL. */
const char *kx_chunk_decoder_reason(const kx_chunk_decoder_t *d);

#endif
