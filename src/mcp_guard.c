/* mcp_guard.c — see mcp_guard.h. Every function reads exactly len bytes (no NUL needed) and
 * refuses any byte outside the grammar, so no control byte or NUL reaches a comparison. */
#include "mcp_guard.h"
#include <string.h>
#include <strings.h>

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool is_name_char(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.';
}

static bool is_v6_char(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

/* Length of the host at s (a name, or "[" v6 "]"), 0 when none is there. */
static size_t host_len(const char *s, size_t len)
{
    size_t i = 0;
    if (len > 0 && s[0] == '[') {
        for (i = 1; i < len && is_v6_char((unsigned char)s[i]); i++) {}
        if (i == 1 || i >= len || s[i] != ']') return 0;
        i++;
    } else {
        while (i < len && is_name_char((unsigned char)s[i])) i++;
    }
    return i <= KX_MCP_HOST_MAX ? i : 0;
}

/* ":port" at s (exactly len bytes): the port 1..65535, or 0 when malformed. */
static unsigned port_of(const char *s, size_t len)
{
    if (len < 2 || len > 6 || s[0] != ':') return 0;
    unsigned p = 0;
    for (size_t i = 1; i < len; i++) {
        if (!is_digit((unsigned char)s[i])) return 0;
        p = p * 10 + (unsigned)(s[i] - '0');
    }
    return p <= 65535 ? p : 0;
}

static bool dotted_127(const char *h, size_t len)
{
    if (len < 7 || memcmp(h, "127.", 4) != 0) return false;
    int parts = 2; /* "127" and the one starting after its dot */
    unsigned v = 0;
    size_t digits = 0;
    for (size_t i = 4; i < len; i++) {
        if (h[i] == '.') {
            if (digits == 0) return false;
            parts++;
            v = 0;
            digits = 0;
        } else if (is_digit((unsigned char)h[i]) && digits < 3) {
            v = v * 10 + (unsigned)(h[i] - '0');
            digits++;
            if (v > 255) return false;
        } else {
            return false;
        }
    }
    return parts == 4 && digits > 0;
}

bool kx_mcp_is_loopback(const char *h, size_t len)
{
    static const char suffix[] = ".localhost";
    size_t sl = sizeof suffix - 1;
    if (len == 9 && strncasecmp(h, "localhost", 9) == 0) return true;
    if (len > sl && strncasecmp(h + len - sl, suffix, sl) == 0) return true;
    if (len == 5 && memcmp(h, "[::1]", 5) == 0) return true;
    return dotted_127(h, len);
}

int kx_mcp_origin_norm(const char *in, size_t len, char *out, size_t cap)
{
    size_t skip;
    unsigned def;
    if (len >= 8 && strncasecmp(in, "https://", 8) == 0) {
        skip = 8;
        def = 443;
    } else if (len >= 7 && strncasecmp(in, "http://", 7) == 0) {
        skip = 7;
        def = 80;
    } else {
        return KX_EINVAL;
    }
    size_t hl = host_len(in + skip, len - skip);
    if (hl == 0) return KX_EINVAL;
    size_t rest = len - skip - hl;
    unsigned port = 0;
    if (rest > 0 && (port = port_of(in + skip + hl, rest)) == 0) return KX_EINVAL;
    size_t keep = skip + hl + ((port != 0 && port != def) ? rest : 0);
    if (keep + 1 > cap) return KX_EINVAL;
    for (size_t i = 0; i < keep; i++) out[i] = lower(in[i]);
    out[keep] = '\0';
    return KX_OK;
}

int kx_mcp_host_parse(const char *in, size_t len, kx_mcp_host_t *out)
{
    size_t hl = host_len(in, len);
    if (hl == 0) return KX_EINVAL;
    unsigned port = 0;
    if (len > hl && (port = port_of(in + hl, len - hl)) == 0) return KX_EINVAL;
    for (size_t i = 0; i < hl; i++) out->host[i] = lower(in[i]);
    out->host[hl] = '\0';
    out->port = port;
    out->loopback = kx_mcp_is_loopback(out->host, hl);
    return KX_OK;
}

static bool is_token_char(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int kx_mcp_bearer(const char *v, size_t len, size_t *off, size_t *toklen)
{
    if (len < 8 || strncasecmp(v, "bearer ", 7) != 0) return KX_EINVAL;
    size_t i = 7;
    while (i < len && v[i] == ' ') i++;
    size_t start = i;
    while (i < len && is_token_char((unsigned char)v[i])) i++;
    if (i == start) return KX_EINVAL;
    while (i < len && v[i] == '=') i++;
    size_t end = i;
    while (i < len && v[i] == ' ') i++;
    if (i != len || end - start > KX_MCP_TOKEN_MAX) return KX_EINVAL;
    *off = start;
    *toklen = end - start;
    return KX_OK;
}

bool kx_mcp_version_supported(const char *s, size_t len)
{
    static const char *const versions[] = { "2025-03-26", "2025-06-18", "2025-11-25" };
    if (len != 10) return false;
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++)
        if (memcmp(s, versions[i], 10) == 0) return true;
    return false;
}
