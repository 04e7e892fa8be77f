/* session.c — session cookie parsing and Set-Cookie (see session.h). */
#include "session.h"
#include "crypto.h"
#include <stdio.h>

/* Session ids are crypto.c's random ids: one rule, kept there. */
bool kx_session_id_valid(const char *s, size_t len)
{
    return kx_crypto_valid_id(s, len);
}

/* Scans one Cookie header value ("a=b; name=value; c=d"), counting occurrences of `name`
 * and keeping the first value in *val. */
static void scan(const char *v, size_t n, const char *name, int *count, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ';')) i++;
        size_t start = i;
        while (i < n && v[i] != ';') i++;
        size_t end = i;
        const char *eq = memchr(v + start, '=', end - start);
        if (!eq) continue;
        size_t klen = (size_t)(eq - (v + start));
        while (klen > 0 && (v[start + klen - 1] == ' ' || v[start + klen - 1] == '\t')) klen--;
        if (klen != nl || memcmp(v + start, name, nl) != 0) continue;
        const char *value = eq + 1;
        size_t len = (size_t)(v + end - value);
        while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) len--;
        if (len >= 2 && value[0] == '"' && value[len - 1] == '"') value++, len -= 2;
        if ((*count)++ == 0) {
            *val = value;
            *vlen = len;
        }
    }
}

/* Two cookies with the session's name make the request ambiguous (a cookie planted from a
 * sibling subdomain or a narrower Path would otherwise pick the session): no session then. */
bool kx_session_from_request(const kx_request_t *r, const char *name, char *out)
{
    int count = 0;
    const char *val = NULL;
    size_t vlen = 0;
    for (int i = 0; i < r->n_headers; i++) {
        const kx_header_t *h = &r->headers[i];
        if (kx_strcaseeq_n(h->name, h->name_len, "Cookie"))
            scan(h->value, h->value_len, name, &count, &val, &vlen);
    }
    if (count != 1 || !kx_session_id_valid(val, vlen)) return false;
    memcpy(out, val, vlen);
    out[vlen] = '\0';
    return true;
}

void kx_session_set_cookie(const kx_config_t *cfg, const char *id, kx_buf_t *out)
{
    static const char *same_site[] = { "Strict", "Lax", "None" };
    bool secure = cfg->session_cookie_secure || strncmp(cfg->application_url, "https://", 8) == 0;
    kx_buf_printf(out, "Set-Cookie: %s=%s; Max-Age=%lld; Path=/%s; SameSite=%s%s\r\n",
                  cfg->session_cookie_name, id ? id : "", id ? (long long)cfg->session_ttl : 0LL,
                  cfg->session_cookie_http_only ? "; HttpOnly" : "", same_site[cfg->session_cookie_same_site],
                  secure ? "; Secure" : "");
}
