/* static_path.h — the pure, security-critical half of static file serving.
 *
 * Owns: turning a raw URL path into an open fd of a regular file that provably lies inside the
 * static root (a decoded `..` or `%2f` is 403 even inside it; symlinks out are refused), plus
 * the helpers the response layer
 * needs around it: MIME type by extension, "already compressed" test, Keryx-style ETag, and
 * RFC 9110 HTTP dates.
 *
 * Called by: static.c / dispatch.c (the HTTP layer), which does all socket I/O, conditional
 * requests (304), HEAD, headers and sendfile. It maps results to statuses with
 * kx_static_result_status().
 *
 * Never: reads file contents, writes to a socket, allocates on the heap, logs, or follows a
 * lookup out of the root. Every byte the caller can read comes from the returned fd, and that
 * fd names a regular file beneath the root (openat2 RESOLVE_BENEATH, or in the fallback a
 * component-by-component walk that checks where each step landed via /proc/self/fd).
 *
 * Path rules, in order of precedence (the first that applies decides):
 *   400 BAD_REQUEST  raw path not starting with '/'; a raw NUL; '%' not followed by two hex
 *                    digits; %00; decoded bytes that are not valid UTF-8 (overlong forms such
 *                    as %c0%ae, surrogates, > U+10FFFF, stray continuation bytes).
 *   404 NOT_FOUND    decoded path longer than KX_STATIC_PATH_MAX bytes (no such file can exist).
 *   403 FORBIDDEN    an encoded slash (%2f/%2F); any decoded ".." segment, even one that would
 *                    stay inside; a symlink anywhere on the path that lands outside the root.
 *   404 NOT_FOUND    a segment starting with '.' (dotfiles: .env, .git, also "." and "...."),
 *                    a segment containing a backslash (raw or %5c), nothing at that name, a
 *                    directory without index.html, anything that is not a regular file,
 *                    permission denied, a dangling symlink.
 * Percent-encoding is decoded exactly once: "%252e%252e" becomes the literal name "%2e%2e".
 * Empty segments collapse ("//test.txt" is "/test.txt", as nginx merge_slashes). "" and "/"
 * mean index.html; a trailing '/' means <dir>/index.html; a path naming a directory serves
 * <dir>/index.html, so /subdir and /subdir/ answer the same. Symlinks that stay inside the root
 * are followed (nginx default, disable_symlinks off). */
#ifndef KX_STATIC_PATH_H
#define KX_STATIC_PATH_H

#include "common.h"
#include <stdbool.h>
#include <sys/stat.h>
#include <time.h>

/* Size of every path buffer here: a decoded path plus "/index.html" must fit (Linux PATH_MAX). */
#define KX_STATIC_PATH_MAX 4096
/* Enough for the longest ETag kx_static_etag writes (two quotes, signed base36 int64 x2). */
#define KX_STATIC_ETAG_MAX 32
/* "Sun, 06 Nov 1994 08:49:37 GMT" is 29 bytes; room for a 5-digit year and the NUL. */
#define KX_HTTP_DATE_MAX 32

typedef enum {
    KX_STATIC_OK = 0,      /* *out_fd is a regular file inside the root */
    KX_STATIC_NOT_FOUND,   /* 404 */
    KX_STATIC_FORBIDDEN,   /* 403: traversal attempt or symlink out of the root */
    KX_STATIC_BAD_REQUEST, /* 400: malformed path */
    KX_STATIC_ERROR,       /* 500: the system failed (EMFILE, ENOMEM, EIO, rel_cap too small) */
} kx_static_result_t;

/* Tests only: when true, kx_static_open never uses openat2 and always takes the /proc-checked
 * fallback walk, so both resolution paths run under the same attack table. Production code
 * leaves it false; the fallback is then used only when openat2 is missing (ENOSYS/EPERM). */
extern bool kx_static_force_fallback;

/* HTTP status for a result: 200, 404, 403, 400 or 500. */
int kx_static_result_status(kx_static_result_t r);

/* The lexical half of kx_static_open, with no file-system access: validates and decodes
 * raw_path[0..len) once and writes the root-relative name to open (no leading '/', duplicate
 * slashes collapsed, "index.html" appended for ""/"/"/trailing '/') into out (NUL-terminated).
 * Returns KX_STATIC_OK, BAD_REQUEST, FORBIDDEN or NOT_FOUND (also when it does not fit cap). */
kx_static_result_t kx_static_normalize(const char *raw_path, size_t len, char *out, size_t cap);

/* root_fd: an O_PATH|O_DIRECTORY fd of the static root, opened once at boot by the caller.
 * raw_path: the URL path exactly as received (no query string), NOT decoded; need not be
 * NUL-terminated. On KX_STATIC_OK: *out_fd is an open O_RDONLY|O_CLOEXEC fd the caller must
 * close, *st its fstat, and rel (if non-NULL) the root-relative name actually opened
 * (e.g. "subdir/index.html", for kx_static_mime). On any other result *out_fd is -1 and nothing
 * is left open. */
kx_static_result_t kx_static_open(int root_fd, const char *raw_path, size_t len, int *out_fd, struct stat *st,
                                  char *rel, size_t rel_cap);

/* Content-Type by the extension of name (case-insensitive, text types carry
 * "; charset=utf-8"); no or unknown extension → "application/octet-stream". Never NULL. */
const char *kx_static_mime(const char *name);

/* True for already-compressed types (parameters ignored): every image type except SVG, every
 * video and audio type, zip/gzip/bzip2/xz/zstd/7z/rar, wasm, font/woff(2). The response layer
 * skips gzip for them. */
bool kx_static_mime_compressed(const char *mime);

/* Keryx's ETag, quotes included: "<mtime in ms, base36>-<size, base36>" (JS toString(36),
 * lower case). Writes "" when it does not fit cap (KX_STATIC_ETAG_MAX always fits). */
void kx_static_etag(const struct stat *st, char *buf, size_t cap);

/* RFC 9110 IMF-fixdate of t ("Sun, 06 Nov 1994 08:49:37 GMT"), locale-independent. Writes ""
 * when t cannot be represented or cap is too small (KX_HTTP_DATE_MAX always fits). */
void kx_http_date_format(time_t t, char *buf, size_t cap);

/* Parses an HTTP date: IMF-fixdate, and the obsolete rfc850-date ("Sunday, 06-Nov-94 ...",
 * two-digit years read as within 50 years of now per RFC 9110 §5.6.7) and asctime-date
 * ("Sun Nov  6 08:49:37 1994"). Surrounding spaces/tabs are tolerated; the weekday name must
 * be a real one but is not checked against the date. Returns KX_OK with *t, or KX_EINVAL. */
int kx_http_date_parse(const char *s, size_t len, time_t *t);

#endif
