/* fuzz_mcp.c — libFuzzer harness for the header checks of the /mcp request path (mcp_guard.c):
 * never a crash; an accepted origin normalises to printable lower-case http(s)://host[:port]
 * that normalises to itself; a parsed Host is a lower-case name or IPv6 literal and a loopback
 * one really is one; an accepted bearer token lies inside the value and holds only b64token
 * bytes; only the three listed protocol versions pass. Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "mcp_guard.h"

static void check_origin(const char *s, size_t n)
{
    char out[KX_MCP_ORIGIN_MAX + 1];
    if (kx_mcp_origin_norm(s, n, out, sizeof out) != KX_OK) return;
    size_t len = strlen(out);
    if (len > n || (strncmp(out, "http://", 7) != 0 && strncmp(out, "https://", 8) != 0)) abort();
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)out[i] <= 0x20 || (unsigned char)out[i] >= 0x7f ||
            (out[i] >= 'A' && out[i] <= 'Z'))
            abort();
    if (strchr(out + 8, '/') || strchr(out, '@') || strchr(out, '?') || strchr(out, '#')) abort();
    char again[KX_MCP_ORIGIN_MAX + 1];
    if (kx_mcp_origin_norm(out, len, again, sizeof again) != KX_OK || strcmp(out, again) != 0) abort();
}

static void check_host(const char *s, size_t n)
{
    kx_mcp_host_t h;
    if (kx_mcp_host_parse(s, n, &h) != KX_OK) return;
    size_t len = strlen(h.host);
    if (len == 0 || len > n || h.port > 65535) abort();
    for (size_t i = 0; i < len; i++)
        if (h.host[i] >= 'A' && h.host[i] <= 'Z') abort();
    if (h.loopback != kx_mcp_is_loopback(h.host, len)) abort();
    if (h.loopback && strcmp(h.host, "localhost") != 0 && strncmp(h.host, "127.", 4) != 0 &&
        strcmp(h.host, "[::1]") != 0 && (len < 10 || strcmp(h.host + len - 10, ".localhost") != 0))
        abort();
}

static void check_bearer(const char *s, size_t n)
{
    size_t off, tl;
    if (kx_mcp_bearer(s, n, &off, &tl) != KX_OK) return;
    if (tl == 0 || tl > KX_MCP_TOKEN_MAX || off < 7 || off + tl > n) abort();
    for (size_t i = off; i < off + tl; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=", s[i]) ||
            s[i] == '\0')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_origin(s, size);
    check_host(s, size);
    check_bearer(s, size);
    if (kx_mcp_version_supported(s, size) &&
        !(size == 10 && (memcmp(s, "2025-03-26", 10) == 0 || memcmp(s, "2025-06-18", 10) == 0 ||
                         memcmp(s, "2025-11-25", 10) == 0)))
        abort();
    return 0;
}
