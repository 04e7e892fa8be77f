/* oauth.h — the security checks of the OAuth 2.1 authorization server (README "OAuth 2.1
 * authorization server"), as pure functions.
 *
 * Owns: the redirect URI rules of client registration, PKCE S256 verification (RFC 7636) and
 * the one-way form under which codes and tokens are stored (SHA-256, unpadded base64url).
 * Callers: lua_api_crypto.c (core.oauth_redirect_check / pkce_s256_ok / oauth_hash), tests.
 * Never: allocates, does I/O, sees Lua; compares secrets in variable time. */
#ifndef KX_OAUTH_H
#define KX_OAUTH_H
#include "common.h"

#define KX_OAUTH_URI_MAX 2048 /* longer redirect URIs are refused */
#define KX_OAUTH_HASH_LEN 43  /* SHA-256 as unpadded base64url */
#define KX_OAUTH_ERR_CAP 160  /* room for any rule message (the URI is never quoted) */

/* KX_OK when uri is an acceptable redirect URI; else KX_EINVAL with the broken rule in why:
 * it must parse (scheme ":" then printable ASCII, an authority with a host for http/https),
 * carry no fragment, no userinfo, not use javascript:, data:, vbscript: or file:, and use https
 * unless its host is localhost, 127.0.0.1 or [::1]. Other schemes (vscode://, com.app:/cb)
 * are private-use schemes of native clients and pass. why starts with "Invalid URI" when the
 * text does not parse. */
int kx_oauth_redirect_check(const char *uri, size_t len, char *why, size_t cap);

/* True iff verifier is a well-formed PKCE verifier (43..128 of A-Z a-z 0-9 - . _ ~) whose
 * base64url(SHA-256) equals challenge, compared in constant time. */
bool kx_oauth_pkce_s256_ok(const char *verifier, size_t vlen, const char *challenge, size_t clen);

/* Writes base64url(SHA-256(s)) (KX_OAUTH_HASH_LEN chars + NUL) into out; cap must be at least
 * KX_OAUTH_HASH_LEN + 1. KX_OK, KX_EINVAL (cap), KX_EIO (OpenSSL failed). */
int kx_oauth_hash(const char *s, size_t len, char *out, size_t cap);

#endif
