/* cors.c — CORS header decision (see cors.h). */
#include "cors.h"

bool kx_cors_origin_allowed(const kx_config_t *c, const char *origin, size_t len)
{
    if (c->origins_any) return true;
    for (int i = 0; i < c->n_origins; i++)
        if (strlen(c->origins[i]) == len && memcmp(c->origins[i], origin, len) == 0) return true;
    return false;
}

void kx_cors_append(const kx_config_t *c, const char *origin, size_t len, kx_buf_t *out, bool *vary_origin)
{
    *vary_origin = false;
    if (c->origins_any) {
        kx_buf_puts(out, "Access-Control-Allow-Origin: *\r\n");
    } else if (origin && kx_cors_origin_allowed(c, origin, len)) {
        kx_buf_puts(out, "Access-Control-Allow-Origin: ");
        kx_buf_append(out, origin, len);
        kx_buf_puts(out, "\r\nAccess-Control-Allow-Credentials: true\r\n");
        *vary_origin = true;
    } else if (c->n_origins > 0) {
        /* The answer still depends on Origin: caches must not reuse it across origins. */
        *vary_origin = true;
    }
    kx_buf_puts(out, "Access-Control-Allow-Methods: ");
    kx_buf_puts(out, c->allowed_methods);
    kx_buf_puts(out, "\r\nAccess-Control-Allow-Headers: ");
    kx_buf_puts(out, c->allowed_headers);
    kx_buf_puts(out, "\r\n");
}
