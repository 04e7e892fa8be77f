/* prodcheck.h — the production self-check: which settings of a finished configuration are
 * unsafe in production.
 *
 * Owns: the list of checks (README "Production self-check"): the Production
 * checklist of the README — SESSION_COOKIE_SECURE (the cookie not Secure), WEB_SERVER_ALLOWED_ORIGINS "*",
 * RATE_LIMIT_ENABLED false, WEB_SERVER_INCLUDE_STACK_IN_ERRORS true, an empty WEB_SECURITY_*
 * header — and keryx's own: neither TLS (WEB_SERVER_TLS_CERT) nor an https APPLICATION_URL,
 * and with MCP on an MCP_ALLOWED_ORIGINS entry that is not an https origin. CLI stacks
 * (CLI_INCLUDE_STACK_IN_ERRORS) are not checked: a CLI error reaches only its operator.
 * Callers: main.c at start-up when NODE_ENV=production (warn, or refuse with
 * KERYX_STRICT_PRODUCTION=true) and for `keryx check` (the configuration built as
 * NODE_ENV=production would build it).
 * Never: reads the environment or prints: a pure function of the configuration. */
#ifndef KX_PRODCHECK_H
#define KX_PRODCHECK_H
#include "config.h"

#define KX_PRODCHECK_MAX 16

typedef struct {
    const char *var; /* the variable to change, e.g. "SESSION_COOKIE_SECURE" */
    char line[320];  /* one line naming it (and, for a switch, the safe value) */
} kx_prodcheck_item_t;

/* Fills items with one entry per unsafe setting of c (after kx_config_finish), in a fixed
 * order; returns how many (0: nothing unsafe). At most KX_PRODCHECK_MAX. */
int kx_prodcheck(const kx_config_t *c, kx_prodcheck_item_t items[KX_PRODCHECK_MAX]);

#endif
