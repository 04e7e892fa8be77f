/* fuzz_oauth.c — libFuzzer harness for the OAuth checks of oauth.c: never a crash; an accepted
 * redirect URI is printable ASCII with a scheme, holds no '#', is not javascript:/data:/
 * vbscript:/file:, and an http one names a loopback host; the message of a refused one always
 * fits; PKCE never accepts a verifier against a challenge that is not its hash. Run: make fuzz. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "oauth.h"

static void check_redirect(const char *s, size_t n)
{
    char why[KX_OAUTH_ERR_CAP];
    why[0] = 'x';
    if (kx_oauth_redirect_check(s, n, why, sizeof why) != KX_OK) {
        if (strnlen(why, sizeof why) == sizeof why) abort();
        return;
    }
    if (n == 0 || memchr(s, '#', n) || memchr(s, '\0', n)) abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) abort();
    static const char *const banned[] = { "javascript:", "data:", "vbscript:", "file:" };
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (n >= strlen(banned[i]) && strncasecmp(s, banned[i], strlen(banned[i])) == 0) abort();
    if (n >= 7 && strncasecmp(s, "http://", 7) == 0) {
        const char *h = s + 7;
        size_t hn = n - 7;
        bool loop = (hn >= 9 && strncasecmp(h, "localhost", 9) == 0) ||
                    (hn >= 9 && memcmp(h, "127.0.0.1", 9) == 0) || (hn >= 5 && memcmp(h, "[::1]", 5) == 0);
        if (!loop) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    check_redirect(s, size);
    /* Split in two: verifier | challenge. A match must mean challenge == hash(verifier). */
    size_t half = size / 2;
    if (kx_oauth_pkce_s256_ok(s, half, s + half, size - half)) {
        char h[KX_OAUTH_HASH_LEN + 1];
        if (kx_oauth_hash(s, half, h, sizeof h) != KX_OK || memcmp(h, s + half, KX_OAUTH_HASH_LEN) != 0)
            abort();
    }
    return 0;
}
