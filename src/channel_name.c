/* channel_name.c — channel name rules (see channel_name.h). */
#include "channel_name.h"

static bool channel_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.' || c == '_' || c == '-';
}

bool kx_channel_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > KX_CHANNEL_NAME_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if (!channel_char((unsigned char)s[i])) return false;
    return true;
}

bool kx_pubsub_channel_of(const char *payload, size_t len, const char **name, size_t *nlen)
{
    static const char prefix[] = "{\"channel\":\"";
    const size_t plen = sizeof prefix - 1;
    if (!payload || len < plen || memcmp(payload, prefix, plen) != 0) return false;
    const char *s = payload + plen;
    size_t avail = len - plen, n = 0;
    /* The name can only end at a quote: every allowed character differs from '"', so the
     * first non-name byte must be that quote, followed by a comma. */
    while (n < avail && n <= KX_CHANNEL_NAME_MAX && channel_char((unsigned char)s[n])) n++;
    if (n == 0 || n > KX_CHANNEL_NAME_MAX) return false;
    if (avail - n < 2 || s[n] != '"' || s[n + 1] != ',') return false;
    *name = s;
    *nlen = n;
    return true;
}
