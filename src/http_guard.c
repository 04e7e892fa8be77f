/* http_guard.c — strict request-head validator and chunked decoder (see http_guard.h).
 *
 * A small hand-written scanner: one function per grammar piece of RFC 9112 / RFC 9110. It is
 * deliberately stricter than the RFCs where they allow leniency (bare LF, obs-fold, BWS in
 * chunk sizes, transfer-coding lists), because every leniency is a place where two parsers can
 * disagree about message boundaries. */
#include "http_guard.h"
#include <ctype.h>

/* ---- character classes ------------------------------------------------------------------ */

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}
static bool is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* Byte classes, one table lookup per byte on the head path (a strchr per punctuation byte
 * cost more than the rest of the line check). */
enum { C_TCHAR = 1, C_REG_NAME = 2 };
#define ALNUM_CLASSES(x)                                                                                    \
    ['0'] = (x), ['1'] = (x), ['2'] = (x), ['3'] = (x), ['4'] = (x), ['5'] = (x), ['6'] = (x), ['7'] = (x), \
    ['8'] = (x), ['9'] = (x), ['A'] = (x), ['B'] = (x), ['C'] = (x), ['D'] = (x), ['E'] = (x), ['F'] = (x), \
    ['G'] = (x), ['H'] = (x), ['I'] = (x), ['J'] = (x), ['K'] = (x), ['L'] = (x), ['M'] = (x), ['N'] = (x), \
    ['O'] = (x), ['P'] = (x), ['Q'] = (x), ['R'] = (x), ['S'] = (x), ['T'] = (x), ['U'] = (x), ['V'] = (x), \
    ['W'] = (x), ['X'] = (x), ['Y'] = (x), ['Z'] = (x), ['a'] = (x), ['b'] = (x), ['c'] = (x), ['d'] = (x), \
    ['e'] = (x), ['f'] = (x), ['g'] = (x), ['h'] = (x), ['i'] = (x), ['j'] = (x), ['k'] = (x), ['l'] = (x), \
    ['m'] = (x), ['n'] = (x), ['o'] = (x), ['p'] = (x), ['q'] = (x), ['r'] = (x), ['s'] = (x), ['t'] = (x), \
    ['u'] = (x), ['v'] = (x), ['w'] = (x), ['x'] = (x), ['y'] = (x), ['z'] = (x)
static const unsigned char byte_class[256] = {
    ALNUM_CLASSES(C_TCHAR | C_REG_NAME),
    /* tchar punctuation (RFC 9110 §5.6.2): ! # $ % & ' * + - . ^ _ ` | ~ */
    ['!'] = C_TCHAR | C_REG_NAME,
    ['#'] = C_TCHAR,
    ['$'] = C_TCHAR | C_REG_NAME,
    ['%'] = C_TCHAR | C_REG_NAME,
    ['&'] = C_TCHAR | C_REG_NAME,
    ['\''] = C_TCHAR | C_REG_NAME,
    ['*'] = C_TCHAR | C_REG_NAME,
    ['+'] = C_TCHAR | C_REG_NAME,
    ['-'] = C_TCHAR | C_REG_NAME,
    ['.'] = C_TCHAR | C_REG_NAME,
    ['^'] = C_TCHAR,
    ['_'] = C_TCHAR | C_REG_NAME,
    ['`'] = C_TCHAR,
    ['|'] = C_TCHAR,
    ['~'] = C_TCHAR | C_REG_NAME,
    /* reg-name only (RFC 3986 sub-delims): ( ) , ; = */
    ['('] = C_REG_NAME,
    [')'] = C_REG_NAME,
    [','] = C_REG_NAME,
    [';'] = C_REG_NAME,
    ['='] = C_REG_NAME,
};

/* RFC 9110 §5.6.2 tchar. */
static bool is_tchar(unsigned char c)
{
    return byte_class[c] & C_TCHAR;
}

/* RFC 9110 §5.5 field-vchar plus SP/HTAB: everything a field value may hold. */
static bool is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* RFC 3986 unreserved / pct-encoded / sub-delims: what a reg-name may hold. */
static bool is_reg_name_char(unsigned char c)
{
    return byte_class[c] & C_REG_NAME;
}

/* Length of the run of field bytes at the start of p[0..n). Header values are most of a head's
 * bytes, so they go eight at a time while a word holds no byte below 0x20 and no DEL; from the
 * first word that does (an HTAB, or the offending byte), byte by byte. The word test: a byte
 * b < 0x20 borrows in b - 0x20 and so sets its top bit, which ~b keeps (b < 0x80); a byte of
 * 0x20 or more (below 0x80) does not, and one of 0x80 or more is cleared by ~b. A borrow can
 * only set a wrong top bit above a byte that was already flagged, so "any top bit set" is
 * exact; DEL is the same test on x ^ 0x7f..7f for a zero byte. test_field_bytes_every_position
 * tries every byte value at every position. */
static size_t field_run(const char *p, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, del;
        memcpy(&x, p + i, 8);
        del = x ^ (ones * 0x7f);
        if ((((x - ones * 0x20) & ~x) | ((del - ones) & ~del)) & highs) break;
    }
    while (i < n && is_field_byte((unsigned char)p[i])) i++;
    return i;
}

static int hex_value(unsigned char c)
{
    if (is_digit(c)) return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

static size_t token_len(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i])) i++;
    return i;
}

bool kx_http_token_valid(const char *p, size_t n)
{
    return n > 0 && token_len(p, n) == n;
}

bool kx_http_field_value_valid(const char *p, size_t n)
{
    return field_run(p, n) == n;
}

bool kx_correlation_id_valid(const char *p, size_t n)
{
    if (n == 0 || n > KX_CORRELATION_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '_' && p[i] != ':' && p[i] != '-')
            return false;
    return true;
}

static void trim_ows(const char **p, size_t *n)
{
    while (*n && is_ows((unsigned char)(*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n && is_ows((unsigned char)(*p)[*n - 1])) (*n)--;
}

/* p[0..n) equals the lower-case ASCII literal lit[0..k) ignoring ASCII case (RFC 9110 §5.1
 * names, §7.8 protocol names, tokens): a counted loop, no strlen nor locale call per header. */
static bool lit_caseeq(const char *p, size_t n, const char *lit, size_t k)
{
    if (n != k) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 'A' && c <= 'Z') c = (unsigned char)(c + ('a' - 'A'));
        if (c != (unsigned char)lit[i]) return false;
    }
    return true;
}
#define CASEEQ(p, n, lit) lit_caseeq((p), (n), "" lit, sizeof(lit) - 1)
#define HAS_PREFIX_CI(p, n, lit) ((n) >= sizeof(lit) - 1 && CASEEQ((p), sizeof(lit) - 1, lit))

/* ---- head terminator --------------------------------------------------------------------- */

/* Returns the number of leading CRLF bytes, or KX_EPROTO when there are too many. */
static long skip_empty_lines(const char *buf, size_t len)
{
    size_t i = 0, lines = 0;
    while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n') {
        if (++lines > KX_HTTP_MAX_LEADING_EMPTY_LINES) return KX_EPROTO;
        i += 2;
    }
    return (long)i;
}

long kx_http_head_end_from(const char *buf, size_t len, size_t *scanned)
{
    long skip = skip_empty_lines(buf, len);
    if (skip < 0) return skip;
    size_t start = (size_t)skip;
    size_t i = *scanned > start ? *scanned : start;

    for (; i < len; i++) {
        char c = buf[i];
        if (c == '\r') {
            if (i + 1 == len) break; /* its LF may come with the next read */
            if (buf[i + 1] != '\n') return KX_EPROTO;
        } else if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r') return KX_EPROTO;
            /* Only a CRLFCRLF that starts inside the request counts, not the skipped lines. */
            if (i >= start + 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r') return (long)(i + 1);
        }
    }
    *scanned = i;
    return 0;
}

long kx_http_head_end(const char *buf, size_t len)
{
    size_t scanned = 0;
    return kx_http_head_end_from(buf, len, &scanned);
}

/* ---- head validator ---------------------------------------------------------------------- */

/* The checks' state lives in kx_head_checks_t (http_guard.h) so that the one-pass parser can
 * carry it from one read to the next. */
typedef kx_head_checks_t guard_t;

static int fail(guard_t *g, int status, const char *reason)
{
    g->status = status;
    g->reason = reason;
    return KX_EPROTO;
}

/* Every CR must start a CRLF and every LF must end one: this alone closes the bare-CR and
 * bare-LF head-terminator confusions (CVE-2023-30589 class). */
static int check_line_endings(guard_t *g, const char *head, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (head[i] == '\r' && (i + 1 == len || head[i + 1] != '\n'))
            return fail(g, 400, "bare CR in request head");
        if (head[i] == '\n' && (i == 0 || head[i - 1] != '\r'))
            return fail(g, 400, "bare LF in request head");
    }
    return KX_OK;
}

/* Takes the next CRLF-terminated line (without the CRLF). Line endings are already checked,
 * so the first CR is the line end. */
static bool next_line(const char **p, const char *end, const char **line, size_t *n)
{
    const char *cr = memchr(*p, '\r', (size_t)(end - *p));
    if (!cr || cr + 1 >= end) return false;
    *line = *p;
    *n = (size_t)(cr - *p);
    *p = cr + 2;
    return true;
}

/* host = IP-literal / IPv4address / reg-name, then [ ":" port ]. Stricter than RFC 3986 in
 * that the host must be non-empty: an http(s) URI always names one. No '@' (userinfo), '/',
 * space or CTL can pass. */
static bool valid_authority(const char *p, size_t n)
{
    size_t i = 0;
    if (n && p[0] == '[') {
        for (i = 1; i < n && p[i] != ']'; i++)
            if (hex_value((unsigned char)p[i]) < 0 && p[i] != ':' && p[i] != '.') return false;
        if (i == n || i == 1) return false;
        i++; /* past ']' */
    } else {
        while (i < n && is_reg_name_char((unsigned char)p[i])) {
            if (p[i] == '%' && (i + 2 >= n || hex_value((unsigned char)p[i + 1]) < 0 ||
                                hex_value((unsigned char)p[i + 2]) < 0))
                return false;
            i++;
        }
        if (i == 0) return false;
    }
    if (i == n) return true;
    if (p[i] != ':') return false;
    size_t digits = n - i - 1;
    if (digits > 5) return false;
    for (i++; i < n; i++)
        if (!is_digit((unsigned char)p[i])) return false;
    return true;
}

/* absolute-form: "http://" or "https://" authority [ path-abempty [ "?" query ] ]. */
static int check_absolute_form(guard_t *g, const char *t, size_t n)
{
    size_t skip = HAS_PREFIX_CI(t, n, "http://") ? 7 : 8;
    const char *a = t + skip;
    size_t alen = 0;
    while (skip + alen < n && a[alen] != '/' && a[alen] != '?') alen++;
    if (!valid_authority(a, alen)) return fail(g, 400, "invalid authority in request target");
    g->absolute_form = true;
    return KX_OK;
}

static int check_target(guard_t *g, const char *method, size_t mlen, const char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f) return fail(g, 400, "invalid character in request target");
        if (c == '#') return fail(g, 400, "fragment in request target");
    }
    if (t[0] == '/') return KX_OK;
    if (n == 1 && t[0] == '*') {
        if (mlen == 7 && memcmp(method, "OPTIONS", 7) == 0) return KX_OK;
        return fail(g, 400, "asterisk-form target without OPTIONS");
    }
    if (HAS_PREFIX_CI(t, n, "http://") || HAS_PREFIX_CI(t, n, "https://"))
        return check_absolute_form(g, t, n);
    return fail(g, 400, "invalid request target");
}

/* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 §2.3). */
static int check_version(guard_t *g, const char *v, size_t n)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || !is_digit((unsigned char)v[5]) || v[6] != '.' ||
        !is_digit((unsigned char)v[7]))
        return fail(g, 400, "invalid HTTP version");
    if (v[5] != '1' || v[7] > '1') return fail(g, 505, "unsupported HTTP version");
    g->http_minor = v[7] - '0';
    return KX_OK;
}

/* request-line = method SP request-target SP HTTP-version: exactly one SP each, nothing else. */
static int parse_request_line(guard_t *g, const char *line, size_t n, size_t *method_len, size_t *target_len)
{
    size_t mlen = token_len(line, n);
    if (mlen == n) return fail(g, 400, "invalid request line");
    if (mlen == 0 || line[mlen] != ' ') return fail(g, 400, "invalid method");

    const char *t = line + mlen + 1;
    size_t rest = n - mlen - 1;
    const char *sp = memchr(t, ' ', rest);
    if (!sp) return fail(g, 400, "missing HTTP version");
    size_t tlen = (size_t)(sp - t);
    if (tlen == 0) return fail(g, 400, "empty request target");
    int rc = check_target(g, line, mlen, t, tlen);
    if (rc != KX_OK) return rc;
    *method_len = mlen;
    *target_len = tlen;
    return check_version(g, sp + 1, rest - tlen - 1);
}

/* Content-Length = 1*DIGIT, capped at 18 digits so the value always fits (and a 10^18-byte
 * body is refused long before by the body cap anyway). */
static int header_content_length(guard_t *g, const char *v, size_t n)
{
    if (++g->content_lengths > 1) return fail(g, 400, "duplicate Content-Length");
    if (n == 0) return fail(g, 400, "invalid Content-Length");
    if (n > 18) return fail(g, 400, "Content-Length too large");
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)v[i])) return fail(g, 400, "invalid Content-Length");
        value = value * 10 + (uint64_t)(v[i] - '0');
    }
    g->content_length = value;
    return KX_OK;
}

/* Only a lone "chunked" is accepted. A list ("gzip, chunked", "chunked, chunked") or
 * parameters are 400 — never guess at the final coding. A single other coding is 501. */
static int header_transfer_encoding(guard_t *g, const char *v, size_t n)
{
    if (++g->transfer_encodings > 1) return fail(g, 400, "duplicate Transfer-Encoding");
    if (CASEEQ(v, n, "chunked")) {
        g->chunked = true;
        return KX_OK;
    }
    if (n > 0 && token_len(v, n) == n) return fail(g, 501, "unsupported transfer coding");
    return fail(g, 400, "invalid Transfer-Encoding");
}

static int header_host(guard_t *g, const char *v, size_t n)
{
    if (++g->hosts > 1) return fail(g, 400, "duplicate Host header");
    if (!valid_authority(v, n)) return fail(g, 400, "invalid Host header");
    return KX_OK;
}

/* Calls fn on each non-empty, OWS-trimmed element of a comma-separated list (RFC 9110 §5.6.1
 * lets senders include empty elements). */
static void for_each_element(guard_t *g, const char *v, size_t n,
                             void (*fn)(guard_t *g, const char *e, size_t len))
{
    while (n > 0) {
        const char *comma = memchr(v, ',', n);
        size_t len = comma ? (size_t)(comma - v) : n;
        const char *e = v;
        size_t elen = len;
        trim_ows(&e, &elen);
        if (elen) fn(g, e, elen);
        if (!comma) break;
        v += len + 1;
        n -= len + 1;
    }
}

static void connection_option(guard_t *g, const char *e, size_t n)
{
    if (CASEEQ(e, n, "close")) g->conn_close = true;
    else if (CASEEQ(e, n, "keep-alive")) g->conn_keep_alive = true;
    else if (CASEEQ(e, n, "upgrade")) g->conn_upgrade = true;
}

/* protocol-name [ "/" version ]: the websocket upgrade is registered without a version. */
static void upgrade_protocol(guard_t *g, const char *e, size_t n)
{
    if (CASEEQ(e, n, "websocket")) g->upgrade_websocket = true;
}

/* The header names the checks act on. Names are compared case-insensitively (RFC 9110 §5.1);
 * the length picks the one candidate, so most lines cost no comparison at all. */
typedef enum {
    H_OTHER,
    H_CONTENT_LENGTH,
    H_TRANSFER_ENCODING,
    H_HOST,
    H_CONNECTION,
    H_UPGRADE,
    H_EXPECT
} header_t;

static header_t header_kind(const char *name, size_t n)
{
    switch (n) {
    case 4: return CASEEQ(name, n, "host") ? H_HOST : H_OTHER;
    case 6: return CASEEQ(name, n, "expect") ? H_EXPECT : H_OTHER;
    case 7: return CASEEQ(name, n, "upgrade") ? H_UPGRADE : H_OTHER;
    case 10: return CASEEQ(name, n, "connection") ? H_CONNECTION : H_OTHER;
    case 14: return CASEEQ(name, n, "content-length") ? H_CONTENT_LENGTH : H_OTHER;
    case 17: return CASEEQ(name, n, "transfer-encoding") ? H_TRANSFER_ENCODING : H_OTHER;
    default: return H_OTHER;
    }
}

/* Dispatches the headers that decide framing or connection handling; the others are left to
 * the HTTP layer. */
static int apply_header(guard_t *g, header_t kind, const char *v, size_t vlen)
{
    switch (kind) {
    case H_CONTENT_LENGTH: return header_content_length(g, v, vlen);
    case H_TRANSFER_ENCODING: return header_transfer_encoding(g, v, vlen);
    case H_HOST: return header_host(g, v, vlen);
    case H_CONNECTION: for_each_element(g, v, vlen, connection_option); break;
    case H_UPGRADE: for_each_element(g, v, vlen, upgrade_protocol); break;
    case H_EXPECT:
        if (CASEEQ(v, vlen, "100-continue")) g->expect_continue = true;
        break;
    case H_OTHER: break;
    }
    return KX_OK;
}

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 §5). */
static int parse_header_line(guard_t *g, const char *line, size_t n, size_t *name_len, size_t *value_at)
{
    if (++g->headers > KX_HTTP_MAX_HEADERS) return fail(g, 431, "too many headers");
    if (is_ows((unsigned char)line[0])) return fail(g, 400, "obs-fold header line");

    size_t nlen = token_len(line, n);
    if (nlen == n) return fail(g, 400, "missing colon in header line");
    if (nlen > 0 && is_ows((unsigned char)line[nlen])) {
        size_t i = nlen;
        while (i < n && is_ows((unsigned char)line[i])) i++;
        /* "Name : v" is the classic TE.TE obfuscation; "X Y: v" is just a bad name. */
        if (i < n && line[i] == ':') return fail(g, 400, "whitespace before colon");
    }
    if (nlen == 0 || line[nlen] != ':') return fail(g, 400, "invalid header name");

    const char *v = line + nlen + 1;
    size_t vlen = n - nlen - 1;
    if (field_run(v, vlen) != vlen) return fail(g, 400, "invalid character in header value");
    /* A tab around a framing value is legal OWS, but parsers disagree on it (llhttp 8.1 does
     * not see "chunked\t" as chunked): a front proxy could frame it differently. Refuse. */
    header_t kind = header_kind(line, nlen);
    if ((kind == H_TRANSFER_ENCODING || kind == H_CONTENT_LENGTH) && memchr(v, '\t', vlen))
        return fail(g, 400, "tab in a framing header");
    trim_ows(&v, &vlen);
    *name_len = nlen;
    *value_at = vlen ? (size_t)(v - line) : n; /* the value runs to the line's end */
    return apply_header(g, kind, v, vlen);
}

/* Checks that need the whole header section (RFC 9112 §3.2, §6.1). */
static int check_framing(guard_t *g)
{
    if (g->transfer_encodings && g->content_lengths)
        return fail(g, 400, "Content-Length with Transfer-Encoding");
    if (g->transfer_encodings && g->http_minor == 0)
        return fail(g, 400, "Transfer-Encoding in HTTP/1.0 request");
    if (g->http_minor == 1 && g->hosts == 0) return fail(g, 400, "missing Host header");
    return KX_OK;
}

static void fill_info(const guard_t *g, kx_head_info_t *info, size_t head_start)
{
    bool v11 = g->http_minor == 1;
    memset(info, 0, sizeof *info);
    info->http_minor = g->http_minor;
    info->has_content_length = g->content_lengths == 1;
    info->content_length = g->content_length;
    info->transfer_encoding = g->chunked ? KX_TE_CHUNKED : KX_TE_NONE;
    info->keep_alive = !g->conn_close && (v11 || g->conn_keep_alive);
    info->upgrade_websocket = v11 && g->conn_upgrade && g->upgrade_websocket;
    info->expect_continue = v11 && g->expect_continue;
    info->absolute_form = g->absolute_form;
    info->head_start = head_start;
}

static int guard_head(guard_t *g, const char *head, size_t len, size_t *head_start)
{
    int rc = check_line_endings(g, head, len);
    if (rc != KX_OK) return rc;
    long skip = skip_empty_lines(head, len);
    if (skip < 0) return fail(g, 400, "too many empty lines before request line");
    *head_start = (size_t)skip;
    const char *p = head + skip, *end = head + len;

    const char *line;
    size_t n;
    if (!next_line(&p, end, &line, &n) || n == 0) return fail(g, 400, "incomplete request head");
    size_t a, b; /* spans: only the one-pass parser keeps them */
    if ((rc = parse_request_line(g, line, n, &a, &b)) != KX_OK) return rc;
    for (;;) {
        if (!next_line(&p, end, &line, &n)) return fail(g, 400, "incomplete request head");
        if (n == 0) break;
        if ((rc = parse_header_line(g, line, n, &a, &b)) != KX_OK) return rc;
    }
    /* The caller passes the length kx_http_head_end returned, so the empty line ends it. */
    if (p != end) return fail(g, 400, "data after request head");
    return check_framing(g);
}

int kx_http_guard_head(const char *head, size_t len, kx_head_info_t *info, int *status, const char **reason)
{
    guard_t g;
    memset(&g, 0, sizeof g);
    size_t head_start = 0;
    int rc = guard_head(&g, head, len, &head_start);
    if (rc == KX_OK) fill_info(&g, info, head_start);
    if (status) *status = rc == KX_OK ? 0 : g.status;
    if (reason) *reason = rc == KX_OK ? NULL : g.reason;
    return rc;
}

/* ---- one-pass head parser ---------------------------------------------------------------- */

/* The reference above reads a head twice (kx_http_head_end, then kx_http_guard_head's line
 * endings and lines) before llhttp reads it a third time. This driver runs the same line
 * checks in the same order, but each line as soon as its CRLF arrives, while searching for
 * the head's end: every byte is searched for CR/LF once, over all the reads of a head. Its
 * verdicts are the reference's (see http_guard.h), including which one wins: a bare CR/LF or
 * the size cap anywhere in the head beat a failed line check, so a failure is kept, not
 * reported, until the head ends. */

void kx_head_parser_init(kx_head_parser_t *hp)
{
    memset(hp, 0, offsetof(kx_head_parser_t, fields)); /* fields[] is written before it is read */
}

long kx_head_parser_feed(kx_head_parser_t *hp, const char *buf, size_t len)
{
    size_t i = hp->scanned;
    for (;;) {
        /* The next CR, and no LF before it: an LF the search meets is bare (a CR's LF is
         * stepped over with its CR below). Two memchr per line cost less than a byte loop. */
        if (i == len) break; /* nothing new (buf may even be NULL then) */
        const char *cr = memchr(buf + i, '\r', len - i);
        size_t stop = cr ? (size_t)(cr - buf) : len;
        if (memchr(buf + i, '\n', stop - i)) return KX_EPROTO;
        i = stop;
        if (i + 1 >= len) { /* no CR yet, or a CR whose LF may come with the next read */
            hp->scanned = i;
            return 0;
        }
        if (buf[i + 1] != '\n') return KX_EPROTO;
        if (i >= UINT32_MAX) return KX_EPROTO; /* spans are 32-bit offsets (http.c caps heads at 16 KiB) */
        size_t start = hp->line, n = i - start;
        i += 2;
        hp->line = hp->scanned = i;
        /* A check that failed once is not run again: only the end of the head is looked for. */
        size_t a = 0, b = 0;
        if (n > 0 && !hp->in_headers) {
            hp->in_headers = true;
            hp->head_start = start;
            if (!hp->checks.status && parse_request_line(&hp->checks, buf + start, n, &a, &b) == KX_OK) {
                hp->method = (uint32_t)start;
                hp->method_len = (uint32_t)a;
                hp->target = (uint32_t)(start + a + 1);
                hp->target_len = (uint32_t)b;
            }
        } else if (n > 0) {
            if (!hp->checks.status && parse_header_line(&hp->checks, buf + start, n, &a, &b) == KX_OK) {
                /* headers counts lines, at most KX_HTTP_MAX_HEADERS once the check passed */
                kx_head_field_t *f = &hp->fields[hp->checks.headers - 1];
                f->name = (uint32_t)start;
                f->name_len = (uint32_t)a;
                f->value = (uint32_t)(start + b);
                f->value_len = (uint32_t)(n - b);
            }
        } else if (!hp->in_headers) {
            /* RFC 9112 §2.2: empty lines before the request line, a bounded number of them. */
            if (++hp->empty_lines > KX_HTTP_MAX_LEADING_EMPTY_LINES) return KX_EPROTO;
        } else {
            if (!hp->checks.status) check_framing(&hp->checks);
            return (long)i;
        }
    }
    hp->scanned = i;
    return 0;
}

int kx_head_parser_result(const kx_head_parser_t *hp, kx_head_info_t *info, int *status, const char **reason)
{
    const guard_t *g = &hp->checks;
    if (!g->status) fill_info(g, info, hp->head_start);
    if (status) *status = g->status;
    if (reason) *reason = g->status ? g->reason : NULL;
    return g->status ? KX_EPROTO : KX_OK;
}

/* ---- chunked decoder --------------------------------------------------------------------- */

enum {
    CH_SIZE,    /* hex digits of chunk-size */
    CH_EXT,     /* after ';' until CR */
    CH_SIZE_LF, /* CR of the size line seen */
    CH_DATA,
    CH_DATA_CR, /* chunk data done: exactly CRLF must follow */
    CH_DATA_LF,
    CH_TRAILER_START, /* start of a trailer line, or of the final empty line */
    CH_TRAILER_NAME,
    CH_TRAILER_VALUE,
    CH_TRAILER_LF, /* CR of a trailer line seen */
    CH_END_LF,     /* CR of the final empty line seen */
    CH_DONE,
    CH_ERROR,
};

void kx_chunk_decoder_init(kx_chunk_decoder_t *d, uint64_t max_body)
{
    memset(d, 0, sizeof *d);
    d->state = CH_SIZE;
    d->max_body = max_body;
}

bool kx_chunk_decoder_done(const kx_chunk_decoder_t *d)
{
    return d->state == CH_DONE;
}

const char *kx_chunk_decoder_reason(const kx_chunk_decoder_t *d)
{
    return d->reason;
}

static int chunk_fail(kx_chunk_decoder_t *d, int err, const char *reason)
{
    d->state = CH_ERROR;
    d->error = err;
    d->reason = reason;
    return err;
}

static int size_byte(kx_chunk_decoder_t *d, unsigned char c)
{
    int h = hex_value(c);
    if (h >= 0) {
        if (d->size_digits == 16) return chunk_fail(d, KX_EPROTO, "chunk size too long");
        d->size = d->size * 16 + (uint64_t)h;
        d->size_digits++;
        if (d->size > KX_CHUNK_MAX_SIZE) return chunk_fail(d, KX_EPROTO, "chunk size too large");
        return KX_OK;
    }
    /* No BWS: "1 ;x" and "1 " are refused although RFC 9112 tolerates them. */
    if (d->size_digits == 0 || (c != ';' && c != '\r')) return chunk_fail(d, KX_EPROTO, "invalid chunk size");
    if (c == '\r') {
        d->state = CH_SIZE_LF;
        return KX_OK;
    }
    d->state = CH_EXT;
    d->ext_bytes++; /* the ';' counts towards the cap */
    return KX_OK;
}

static int ext_byte(kx_chunk_decoder_t *d, unsigned char c)
{
    if (c == '\r') {
        d->state = CH_SIZE_LF;
        return KX_OK;
    }
    if (!is_field_byte(c)) return chunk_fail(d, KX_EPROTO, "invalid chunk extension");
    if (++d->ext_bytes > KX_CHUNK_MAX_EXT_BYTES) return chunk_fail(d, KX_EPROTO, "chunk extensions too long");
    return KX_OK;
}

/* The size line is complete: start the data, or the trailer section after the last chunk.
 * max_body is enforced here, before any byte of an oversized chunk is delivered. */
static int size_line_done(kx_chunk_decoder_t *d)
{
    if (d->size == 0) {
        d->state = CH_TRAILER_START;
        return KX_OK;
    }
    if (d->max_body && d->size > d->max_body - d->total)
        return chunk_fail(d, KX_ELIMIT, "chunked body too large");
    d->remaining = d->size;
    d->size = 0;
    d->size_digits = 0;
    d->state = CH_DATA;
    return KX_OK;
}

static int expect_byte(kx_chunk_decoder_t *d, unsigned char c, unsigned char want, int next,
                       const char *reason)
{
    if (c != want) return chunk_fail(d, KX_EPROTO, reason);
    d->state = next;
    return KX_OK;
}

/* Trailer fields are parsed only to find where they end; their content is dropped. */
static int trailer_byte(kx_chunk_decoder_t *d, unsigned char c)
{
    if (++d->trailer_bytes > KX_CHUNK_MAX_TRAILER_BYTES)
        return chunk_fail(d, KX_EPROTO, "chunked trailer too long");
    switch (d->state) {
    case CH_TRAILER_START:
        if (c == '\r') d->state = CH_END_LF;
        else if (is_ows(c)) return chunk_fail(d, KX_EPROTO, "obs-fold in chunked trailer");
        else if (is_tchar(c)) d->state = CH_TRAILER_NAME;
        else return chunk_fail(d, KX_EPROTO, "invalid chunked trailer");
        return KX_OK;
    case CH_TRAILER_NAME:
        if (c == ':') d->state = CH_TRAILER_VALUE;
        else if (!is_tchar(c)) return chunk_fail(d, KX_EPROTO, "invalid chunked trailer");
        return KX_OK;
    case CH_TRAILER_VALUE:
        if (c == '\r') d->state = CH_TRAILER_LF;
        else if (!is_field_byte(c)) return chunk_fail(d, KX_EPROTO, "invalid chunked trailer");
        return KX_OK;
    case CH_TRAILER_LF: return expect_byte(d, c, '\n', CH_TRAILER_START, "bare CR in chunked trailer");
    default: /* CH_END_LF */ return expect_byte(d, c, '\n', CH_DONE, "bare CR after chunked trailer");
    }
}

/* One framing byte (everything but chunk data). */
static int framing_byte(kx_chunk_decoder_t *d, unsigned char c)
{
    switch (d->state) {
    case CH_SIZE: return size_byte(d, c);
    case CH_EXT: return ext_byte(d, c);
    case CH_SIZE_LF:
        if (c != '\n') return chunk_fail(d, KX_EPROTO, "bare CR in chunk size line");
        return size_line_done(d);
    case CH_DATA_CR: return expect_byte(d, c, '\r', CH_DATA_LF, "chunk data not followed by CRLF");
    case CH_DATA_LF: return expect_byte(d, c, '\n', CH_SIZE, "chunk data not followed by CRLF");
    default: return trailer_byte(d, c);
    }
}

int kx_chunk_decoder_feed(kx_chunk_decoder_t *d, const char *p, size_t n, size_t *consumed,
                          void (*on_data)(void *ud, const char *p, size_t n), void *ud)
{
    size_t i = 0;
    *consumed = 0;
    if (d->state == CH_ERROR) return d->error;
    while (i < n && d->state != CH_DONE) {
        if (d->state == CH_DATA) {
            size_t take = n - i;
            if ((uint64_t)take > d->remaining) take = (size_t)d->remaining;
            if (on_data) on_data(ud, p + i, take);
            d->total += take;
            d->remaining -= take;
            i += take;
            if (d->remaining == 0) d->state = CH_DATA_CR;
            continue;
        }
        int rc = framing_byte(d, (unsigned char)p[i]);
        if (rc != KX_OK) {
            *consumed = i;
            return rc;
        }
        i++;
    }
    *consumed = i;
    return KX_OK;
}
