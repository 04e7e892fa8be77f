/* oauth.c — redirect URI rules, PKCE S256 and token hashing (see oauth.h). */
#include "oauth.h"
#include "crypto.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <strings.h>

static int refuse(char *why, size_t cap, const char *msg)
{
    snprintf(why, cap, "%s", msg);
    return KX_EINVAL;
}

/* RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ':'. Returns its length. */
static size_t scheme_len(const char *s, size_t len)
{
    if (len == 0 || !((s[0] | 0x20) >= 'a' && (s[0] | 0x20) <= 'z')) return 0;
    size_t i = 1;
    while (i < len && (((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
                       s[i] == '+' || s[i] == '-' || s[i] == '.'))
        i++;
    return i < len && s[i] == ':' ? i : 0;
}

static bool printable_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return false;
    return true;
}

static bool scheme_is(const char *s, size_t n, const char *name)
{
    return n == strlen(name) && strncasecmp(s, name, n) == 0;
}

/* The host of an authority (after userinfo was refused): "[v6]" kept whole, port dropped. */
static size_t host_len(const char *a, size_t alen)
{
    if (alen > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', alen);
        return close ? (size_t)(close - a) + 1 : 0;
    }
    const char *colon = memchr(a, ':', alen);
    return colon ? (size_t)(colon - a) : alen;
}

static bool is_loopback_host(const char *h, size_t n)
{
    return scheme_is(h, n, "localhost") || scheme_is(h, n, "127.0.0.1") || scheme_is(h, n, "[::1]");
}

/* The authority of "scheme://authority/…": up to the first '/', '?' (a '#' was refused). */
static size_t authority_len(const char *a, size_t alen)
{
    size_t i = 0;
    while (i < alen && a[i] != '/' && a[i] != '?') i++;
    return i;
}

int kx_oauth_redirect_check(const char *uri, size_t len, char *why, size_t cap)
{
    if (len == 0 || len > KX_OAUTH_URI_MAX || !printable_ascii(uri, len))
        return refuse(why, cap, "Invalid URI: not a URL of printable ASCII up to 2048 bytes");
    size_t sl = scheme_len(uri, len);
    if (sl == 0) return refuse(why, cap, "Invalid URI: no scheme");
    const char *rest = uri + sl + 1;
    size_t rlen = len - sl - 1;
    bool has_authority = rlen >= 2 && rest[0] == '/' && rest[1] == '/';
    const char *auth = rest + 2;
    size_t alen = has_authority ? authority_len(auth, rlen - 2) : 0;
    bool web = scheme_is(uri, sl, "http") || scheme_is(uri, sl, "https");
    if (web && (!has_authority || host_len(auth, alen) == 0))
        return refuse(why, cap, "Invalid URI: an http(s) URI needs a host");
    if (memchr(uri, '#', len)) return refuse(why, cap, "Redirect URI must not contain a fragment");
    if (has_authority && memchr(auth, '@', alen))
        return refuse(why, cap, "Redirect URI must not contain userinfo");
    static const char *const banned[] = { "javascript", "data", "vbscript", "file" };
    for (size_t i = 0; i < KX_ARRAY_LEN(banned); i++)
        if (scheme_is(uri, sl, banned[i])) {
            snprintf(why, cap, "Redirect URI scheme \"%s:\" is not allowed", banned[i]);
            return KX_EINVAL;
        }
    if (scheme_is(uri, sl, "http") && !is_loopback_host(auth, host_len(auth, alen)))
        return refuse(why, cap, "Redirect URI must use HTTPS for non-localhost URIs");
    return KX_OK;
}

int kx_oauth_hash(const char *s, size_t len, char *out, size_t cap)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    if (cap < KX_OAUTH_HASH_LEN + 1) return KX_EINVAL;
    if (EVP_Digest(s, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != sizeof md) {
        out[0] = '\0';
        return KX_EIO;
    }
    kx_crypto_b64url(md, sizeof md, out);
    return KX_OK;
}

static bool pkce_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

bool kx_oauth_pkce_s256_ok(const char *verifier, size_t vlen, const char *challenge, size_t clen)
{
    if (vlen < 43 || vlen > 128 || clen != KX_OAUTH_HASH_LEN) return false;
    for (size_t i = 0; i < vlen; i++)
        if (!pkce_char(verifier[i])) return false;
    char computed[KX_OAUTH_HASH_LEN + 1];
    if (kx_oauth_hash(verifier, vlen, computed, sizeof computed) != KX_OK) return false;
    return CRYPTO_memcmp(computed, challenge, KX_OAUTH_HASH_LEN) == 0;
}
