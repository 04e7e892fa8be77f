/* static_path.c — static file path resolution, MIME, ETag and HTTP dates (see static_path.h). */
#include "static_path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#define HAVE_OPENAT2_H 1
#endif
#endif

#ifndef HAVE_OPENAT2_H
/* Old headers: the ABI is fixed, so declare it ourselves; the runtime probe decides. */
struct open_how {
    uint64_t flags;
    /* cppcheck-suppress unusedStructMember ; the kernel reads it: this is openat2(2)'s ABI */
    uint64_t mode;
    uint64_t resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif

#ifndef SYS_openat2
#define SYS_openat2 437 /* same number on every architecture (unified syscall table) */
#endif

bool kx_static_force_fallback = false;

#define INDEX_NAME "index.html"
#define INDEX_SUFFIX "/" INDEX_NAME

int kx_static_result_status(kx_static_result_t r)
{
    switch (r) {
    case KX_STATIC_OK: return 200;
    case KX_STATIC_NOT_FOUND: return 404;
    case KX_STATIC_FORBIDDEN: return 403;
    case KX_STATIC_BAD_REQUEST: return 400;
    case KX_STATIC_ERROR: break;
    }
    return 500;
}

/* ---- lexical part: decode once, validate, normalise ------------------------------------- */

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Streaming UTF-8 validator (RFC 3629 table): the allowed range of the next byte narrows
 * after E0/ED/F0/F4 so overlongs, surrogates and code points above U+10FFFF never pass. */
typedef struct {
    int need;
    unsigned char lo, hi;
} utf8_state_t;

static bool utf8_lead(utf8_state_t *s, unsigned char c)
{
    s->lo = 0x80;
    s->hi = 0xBF;
    if (c < 0x80) return true;
    if (c >= 0xC2 && c <= 0xDF) {
        s->need = 1;
        return true;
    }
    if (c == 0xE0) {
        s->need = 2;
        s->lo = 0xA0;
        return true;
    }
    if (c == 0xED) {
        s->need = 2;
        s->hi = 0x9F;
        return true;
    }
    if (c >= 0xE1 && c <= 0xEF) {
        s->need = 2;
        return true;
    }
    if (c == 0xF0) {
        s->need = 3;
        s->lo = 0x90;
        return true;
    }
    if (c == 0xF4) {
        s->need = 3;
        s->hi = 0x8F;
        return true;
    }
    if (c >= 0xF1 && c <= 0xF3) {
        s->need = 3;
        return true;
    }
    return false; /* C0, C1, F5..FF, or a continuation byte with no lead */
}

static bool utf8_step(utf8_state_t *s, unsigned char c)
{
    if (s->need == 0) return utf8_lead(s, c);
    if (c < s->lo || c > s->hi) return false;
    s->need--;
    s->lo = 0x80;
    s->hi = 0xBF;
    return true;
}

/* Decodes raw once into dec (at most cap bytes). Every 400 condition is checked over the
 * whole input, even past cap, so a long path cannot hide a malformed tail. */
static kx_static_result_t decode_once(const char *raw, size_t len, char *dec, size_t cap, size_t *dlen,
                                      bool *enc_slash)
{
    utf8_state_t u = { 0, 0x80, 0xBF };
    size_t n = 0;
    bool too_long = false;

    *enc_slash = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\0') return KX_STATIC_BAD_REQUEST;
        if (c == '%') {
            if (len - i < 3) return KX_STATIC_BAD_REQUEST;
            int hi = hexval((unsigned char)raw[i + 1]);
            int lo = hexval((unsigned char)raw[i + 2]);
            if (hi < 0 || lo < 0) return KX_STATIC_BAD_REQUEST;
            c = (unsigned char)(hi << 4 | lo);
            if (c == '\0') return KX_STATIC_BAD_REQUEST;
            if (c == '/') *enc_slash = true;
            i += 2;
        }
        if (!utf8_step(&u, c)) return KX_STATIC_BAD_REQUEST;
        if (n < cap) dec[n++] = (char)c;
        else too_long = true;
    }
    if (u.need != 0) return KX_STATIC_BAD_REQUEST; /* truncated sequence at the end */
    if (too_long) return KX_STATIC_NOT_FOUND;
    *dlen = n;
    return KX_STATIC_OK;
}

/* True when any '/'-separated segment of dec[0..n) is exactly "..". */
static bool any_dotdot(const char *dec, size_t n)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && dec[i] != '/') continue;
        if (i - start == 2 && dec[start] == '.' && dec[start + 1] == '.') return true;
        start = i + 1;
    }
    return false;
}

static bool append(char *out, size_t cap, size_t *o, const char *p, size_t n)
{
    if (cap - *o <= n) return false; /* keep one byte for the NUL */
    memcpy(out + *o, p, n);
    *o += n;
    return true;
}

/* Joins the non-empty segments of dec with '/', refusing dotfiles and backslashes. */
static kx_static_result_t join_segments(const char *dec, size_t n, char *out, size_t cap, size_t *olen)
{
    size_t o = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && dec[i] != '/') continue;
        const char *seg = dec + start;
        size_t slen = i - start;
        start = i + 1;
        if (slen == 0) continue; /* "//" collapses, as nginx merge_slashes */
        if (seg[0] == '.') return KX_STATIC_NOT_FOUND;
        if (memchr(seg, '\\', slen)) return KX_STATIC_NOT_FOUND;
        if (o > 0 && !append(out, cap, &o, "/", 1)) return KX_STATIC_NOT_FOUND;
        if (!append(out, cap, &o, seg, slen)) return KX_STATIC_NOT_FOUND;
    }
    *olen = o;
    return KX_STATIC_OK;
}

static kx_static_result_t normalize(const char *raw, size_t len, char *out, size_t cap, bool *index_added)
{
    char dec[KX_STATIC_PATH_MAX];
    size_t n = 0, o = 0;
    bool enc_slash;

    *index_added = false;
    if (!out || cap == 0) return KX_STATIC_NOT_FOUND;
    out[0] = '\0';
    if (len > 0 && raw[0] != '/') return KX_STATIC_BAD_REQUEST;

    kx_static_result_t r = decode_once(raw, len, dec, sizeof dec, &n, &enc_slash);
    if (r != KX_STATIC_OK) return r;
    if (enc_slash || any_dotdot(dec, n)) return KX_STATIC_FORBIDDEN;

    r = join_segments(dec, n, out, cap, &o);
    if (r != KX_STATIC_OK) return r;
    if (o == 0 || dec[n - 1] == '/') {
        if (o > 0 && !append(out, cap, &o, "/", 1)) return KX_STATIC_NOT_FOUND;
        if (!append(out, cap, &o, INDEX_NAME, sizeof INDEX_NAME - 1)) return KX_STATIC_NOT_FOUND;
        *index_added = true;
    }
    out[o] = '\0';
    return KX_STATIC_OK;
}

kx_static_result_t kx_static_normalize(const char *raw_path, size_t len, char *out, size_t cap)
{
    bool index_added;
    return normalize(raw_path, len, out, cap, &index_added);
}

/* ---- opening beneath the root -------------------------------------------------------------- */

/* System failures are 500s; every other errno means "nothing servable there". */
static kx_static_result_t map_errno(int e)
{
    switch (e) {
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case ENOBUFS:
    case EIO:
    case EBADF:
    case EFAULT:
    case EINVAL:
    case E2BIG:
    case EINTR:
    case EAGAIN: return KX_STATIC_ERROR;
    default: return KX_STATIC_NOT_FOUND;
    }
}

static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = flags;
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
}

#define RESOLVE_FLAGS (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

/* 0 unknown, 1 usable, -1 missing (old kernel, or a seccomp filter answering ENOSYS/EPERM). */
static int openat2_state = 0;

static bool openat2_usable(int root_fd)
{
    int s = __atomic_load_n(&openat2_state, __ATOMIC_RELAXED);
    if (s != 0) return s > 0;
    int fd = sys_openat2(root_fd, ".", O_PATH | O_CLOEXEC, RESOLVE_FLAGS);
    if (fd >= 0) {
        close(fd);
        __atomic_store_n(&openat2_state, 1, __ATOMIC_RELAXED);
        return true;
    }
    if (errno == ENOSYS || errno == EPERM || errno == E2BIG || errno == EINVAL) {
        __atomic_store_n(&openat2_state, -1, __ATOMIC_RELAXED);
        return false;
    }
    return true; /* e.g. EBADF: let the real call report it */
}

/* Result of opening one name: a regular file (fd), a directory (no fd), or a refusal. */
typedef struct {
    kx_static_result_t r;
    bool is_dir;
    bool escaped; /* openat2 said EXDEV: the lookup left the root somewhere */
    int fd;
    struct stat st;
} open_res_t;

/* Classifies an fd opened for reading: keeps regular files, reports directories. */
static void classify(open_res_t *res, int fd)
{
    if (fstat(fd, &res->st) != 0) {
        res->r = map_errno(errno);
        close(fd);
        return;
    }
    if (S_ISDIR(res->st.st_mode)) {
        res->is_dir = true;
        close(fd);
        return;
    }
    if (!S_ISREG(res->st.st_mode)) {
        res->r = KX_STATIC_NOT_FOUND;
        close(fd);
        return;
    }
    res->fd = fd;
}

static void open_with_openat2(int root_fd, const char *rel, open_res_t *res)
{
    /* O_NONBLOCK so a FIFO or device planted in the root cannot stall the event loop. */
    uint64_t flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_LARGEFILE;
    int fd = -1;
    for (int tries = 0; tries < 4; tries++) {
        fd = sys_openat2(root_fd, rel, flags, RESOLVE_FLAGS);
        /* EAGAIN: the kernel saw a concurrent rename and could not vouch for the walk. */
        if (fd >= 0 || (errno != EAGAIN && errno != EINTR)) break;
    }
    if (fd < 0) {
        res->escaped = errno == EXDEV;
        res->r = res->escaped ? KX_STATIC_FORBIDDEN : map_errno(errno);
        return;
    }
    classify(res, fd);
    if (res->fd >= 0) {
        int fl = fcntl(res->fd, F_GETFL);
        if (fl >= 0) (void)fcntl(res->fd, F_SETFL, fl & ~O_NONBLOCK);
    }
}

/* The path /proc/self/fd/<fd> names, i.e. where that fd actually is. */
static bool fd_path(int fd, char *buf, size_t cap, size_t *n)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, buf, cap);
    if (k <= 0 || (size_t)k >= cap) return false; /* missing /proc, or possibly truncated */
    buf[k] = '\0';
    *n = (size_t)k;
    return buf[0] == '/'; /* "anon_inode:…", "(unreachable)…": cannot judge */
}

typedef struct {
    char path[KX_STATIC_PATH_MAX + 1];
    size_t len;
} root_path_t;

/* OK when fd lies at or beneath root; FORBIDDEN otherwise; ERROR when /proc cannot tell. */
static kx_static_result_t check_beneath(int fd, const root_path_t *root)
{
    char p[KX_STATIC_PATH_MAX + 64];
    size_t n;
    if (!fd_path(fd, p, sizeof p, &n)) return KX_STATIC_ERROR;
    if (root->len == 1) return KX_STATIC_OK; /* the root is "/" */
    if (n < root->len || memcmp(p, root->path, root->len) != 0) return KX_STATIC_FORBIDDEN;
    if (n > root->len && p[root->len] != '/') return KX_STATIC_FORBIDDEN; /* /www vs /www2 */
    return KX_STATIC_OK;
}

/* Opens one component relative to dirfd (symlinks followed by the kernel), then checks where
 * it landed before anything else uses it. Only O_PATH: nothing outside is opened for I/O. */
static int open_component(int dirfd, const char *name, size_t nlen, bool want_dir, const root_path_t *root,
                          kx_static_result_t *r)
{
    char comp[NAME_MAX + 1];
    if (nlen > NAME_MAX) {
        *r = KX_STATIC_NOT_FOUND;
        return -1;
    }
    memcpy(comp, name, nlen);
    comp[nlen] = '\0';
    int fd = openat(dirfd, comp, O_PATH | O_CLOEXEC | (want_dir ? O_DIRECTORY : 0));
    if (fd < 0) {
        *r = map_errno(errno);
        return -1;
    }
    *r = check_beneath(fd, root);
    if (*r != KX_STATIC_OK) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reopens a checked O_PATH fd for reading without a second lookup by name. */
static void reopen_regular(int path_fd, open_res_t *res)
{
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", path_fd);
    int fd = open(link, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        res->r = map_errno(errno);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_dev != res->st.st_dev || st.st_ino != res->st.st_ino) {
        close(fd);
        res->r = KX_STATIC_ERROR;
        return;
    }
    res->st = st;
    res->fd = fd;
}

/* Without openat2: walk rel one component at a time from the root, checking after every step
 * (via /proc/self/fd) that the kernel's symlink resolution kept us beneath the root. */
static void open_with_fallback(int root_fd, const char *rel, open_res_t *res)
{
    root_path_t root;
    if (!fd_path(root_fd, root.path, sizeof root.path, &root.len)) {
        res->r = KX_STATIC_ERROR;
        return;
    }
    int cur = root_fd;
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t nlen = slash ? (size_t)(slash - p) : strlen(p);
        kx_static_result_t r;
        int fd = open_component(cur, p, nlen, slash != NULL, &root, &r);
        if (cur != root_fd) close(cur);
        if (fd < 0) {
            res->r = r;
            return;
        }
        if (!slash) {
            cur = fd;
            break;
        }
        cur = fd;
        p = slash + 1;
    }
    if (fstat(cur, &res->st) != 0) {
        res->r = map_errno(errno);
    } else if (S_ISDIR(res->st.st_mode)) {
        res->is_dir = true;
    } else if (!S_ISREG(res->st.st_mode)) {
        res->r = KX_STATIC_NOT_FOUND;
    } else {
        reopen_regular(cur, res);
    }
    close(cur);
}

static void open_name(int root_fd, const char *rel, open_res_t *res)
{
    memset(res, 0, sizeof *res);
    res->r = KX_STATIC_OK;
    res->fd = -1;
    if (kx_static_force_fallback || !openat2_usable(root_fd)) {
        open_with_fallback(root_fd, rel, res);
        return;
    }
    open_with_openat2(root_fd, rel, res);
    if (!res->escaped) return;
    /* RESOLVE_BENEATH also refuses absolute symlinks and "../root/x" detours that end inside
     * the root; the checked walk decides those. If it cannot check, the escape stands. */
    memset(res, 0, sizeof *res);
    res->r = KX_STATIC_OK;
    res->fd = -1;
    open_with_fallback(root_fd, rel, res);
    if (res->r == KX_STATIC_ERROR) res->r = KX_STATIC_FORBIDDEN;
}

kx_static_result_t kx_static_open(int root_fd, const char *raw_path, size_t len, int *out_fd, struct stat *st,
                                  char *rel, size_t rel_cap)
{
    char path[KX_STATIC_PATH_MAX];
    bool index_added;
    open_res_t res;

    *out_fd = -1;
    if (rel && rel_cap > 0) rel[0] = '\0';
    /* Leave room to append "/index.html" when the name turns out to be a directory. */
    kx_static_result_t r = normalize(raw_path, len, path, sizeof path - (sizeof INDEX_SUFFIX - 1),
                                     &index_added);
    if (r != KX_STATIC_OK) return r;

    open_name(root_fd, path, &res);
    if (res.r == KX_STATIC_OK && res.is_dir) {
        if (index_added) return KX_STATIC_NOT_FOUND; /* "x/index.html" is itself a directory */
        memcpy(path + strlen(path), INDEX_SUFFIX, sizeof INDEX_SUFFIX);
        open_name(root_fd, path, &res);
        if (res.r == KX_STATIC_OK && res.is_dir) return KX_STATIC_NOT_FOUND;
    }
    if (res.r != KX_STATIC_OK) return res.r;

    size_t plen = strlen(path);
    if (rel && plen >= rel_cap) {
        close(res.fd);
        return KX_STATIC_ERROR;
    }
    if (rel) memcpy(rel, path, plen + 1);
    *st = res.st;
    *out_fd = res.fd;
    return KX_STATIC_OK;
}

/* ---- MIME -------------------------------------------------------------------------------- */

typedef struct {
    const char *ext;
    const char *mime;
} mime_entry_t;

static const mime_entry_t mime_table[] = {
    { "html", "text/html; charset=utf-8" },
    { "htm", "text/html; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "cjs", "text/javascript; charset=utf-8" },
    { "json", "application/json" },
    { "map", "application/json" },
    { "webmanifest", "application/manifest+json" },
    { "txt", "text/plain; charset=utf-8" },
    { "md", "text/markdown; charset=utf-8" },
    { "csv", "text/csv; charset=utf-8" },
    { "xml", "application/xml" },
    { "svg", "image/svg+xml" },
    { "png", "image/png" },
    { "jpg", "image/jpeg" },
    { "jpeg", "image/jpeg" },
    { "gif", "image/gif" },
    { "webp", "image/webp" },
    { "avif", "image/avif" },
    { "bmp", "image/bmp" },
    { "ico", "image/x-icon" },
    { "woff", "font/woff" },
    { "woff2", "font/woff2" },
    { "ttf", "font/ttf" },
    { "otf", "font/otf" },
    { "pdf", "application/pdf" },
    { "wasm", "application/wasm" },
    { "mp4", "video/mp4" },
    { "webm", "video/webm" },
    { "ogv", "video/ogg" },
    { "mp3", "audio/mpeg" },
    { "ogg", "audio/ogg" },
    { "oga", "audio/ogg" },
    { "wav", "audio/wav" },
    { "flac", "audio/flac" },
    { "zip", "application/zip" },
    { "gz", "application/gzip" },
    { "tgz", "application/gzip" },
    { "bz2", "application/x-bzip2" },
    { "xz", "application/x-xz" },
    { "zst", "application/zstd" },
    { "7z", "application/x-7z-compressed" },
    { "rar", "application/x-rar-compressed" },
    { "tar", "application/x-tar" },
};

#define MIME_DEFAULT "application/octet-stream"

const char *kx_static_mime(const char *name)
{
    if (!name) return MIME_DEFAULT;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strrchr(base, '.');
    /* ".env" has no extension; "a." has an empty one. */
    if (!dot || dot == base || dot[1] == '\0') return MIME_DEFAULT;
    const char *ext = dot + 1;
    size_t elen = strlen(ext);
    for (size_t i = 0; i < KX_ARRAY_LEN(mime_table); i++) {
        if (kx_strcaseeq_n(ext, elen, mime_table[i].ext)) return mime_table[i].mime;
    }
    return MIME_DEFAULT;
}

static const char *const compressed_types[] = {
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-bzip2",
    "application/x-xz",
    "application/zstd",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "application/vnd.rar",
    "application/wasm",
    "font/woff",
    "font/woff2",
};

static bool has_prefix_ci(const char *s, size_t n, const char *prefix)
{
    size_t pl = strlen(prefix);
    return n >= pl && kx_strcaseeq_n(s, pl, prefix);
}

bool kx_static_mime_compressed(const char *mime)
{
    if (!mime) return false;
    size_t n = strcspn(mime, ";");
    while (n > 0 && (mime[n - 1] == ' ' || mime[n - 1] == '\t')) n--;
    if (has_prefix_ci(mime, n, "image/")) return !kx_strcaseeq_n(mime, n, "image/svg+xml");
    if (has_prefix_ci(mime, n, "video/") || has_prefix_ci(mime, n, "audio/")) return true;
    for (size_t i = 0; i < KX_ARRAY_LEN(compressed_types); i++) {
        if (kx_strcaseeq_n(mime, n, compressed_types[i])) return true;
    }
    return false;
}

/* ---- ETag -------------------------------------------------------------------------------- */

/* JavaScript's Number.prototype.toString(36) for an integer: lower case, leading '-'. */
static size_t base36(int64_t v, char *out)
{
    static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    char tmp[16];
    size_t n = 0, o = 0;
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = alphabet[m % 36];
        m /= 36;
    } while (m);
    if (v < 0) out[o++] = '-';
    while (n) out[o++] = tmp[--n];
    return o;
}

void kx_static_etag(const struct stat *st, char *buf, size_t cap)
{
    char tmp[KX_STATIC_ETAG_MAX];
    int64_t ms;
    size_t o = 0;

    if (!buf || cap == 0) return;
    buf[0] = '\0';
    if (__builtin_mul_overflow((int64_t)st->st_mtim.tv_sec, 1000, &ms) ||
        __builtin_add_overflow(ms, (int64_t)(st->st_mtim.tv_nsec / 1000000), &ms))
        return;
    tmp[o++] = '"';
    o += base36(ms, tmp + o);
    tmp[o++] = '-';
    o += base36((int64_t)st->st_size, tmp + o);
    tmp[o++] = '"';
    if (o >= cap) return;
    memcpy(buf, tmp, o);
    buf[o] = '\0';
}

/* ---- HTTP dates (RFC 9110 §5.6.7) -------------------------------------------------------- */

static const char *const wday_short[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const wday_long[] = { "Sunday",   "Monday", "Tuesday", "Wednesday",
                                         "Thursday", "Friday", "Saturday" };
static const char *const month_short[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

void kx_http_date_format(time_t t, char *buf, size_t cap)
{
    struct tm tm;
    if (!buf || cap == 0) return;
    buf[0] = '\0';
    if (!gmtime_r(&t, &tm)) return;
    if (tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) return; /* not a 4-digit year */
    /* Own name tables: strftime's %a/%b follow the locale, HTTP dates never do. */
    int n = snprintf(buf, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday_short[tm.tm_wday], tm.tm_mday,
                     month_short[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n < 0 || (size_t)n >= cap) buf[0] = '\0';
}

typedef struct {
    const char *p;
    const char *end;
} cursor_t;

static bool lit(cursor_t *c, const char *s)
{
    size_t n = strlen(s);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, s, n) != 0) return false;
    c->p += n;
    return true;
}

static bool digits(cursor_t *c, int n, int *out)
{
    int v = 0;
    if (c->end - c->p < n) return false;
    for (int i = 0; i < n; i++) {
        unsigned char d = (unsigned char)c->p[i];
        if (d < '0' || d > '9') return false;
        v = v * 10 + (d - '0');
    }
    c->p += n;
    *out = v;
    return true;
}

/* Case-sensitive, as the grammar's %s"…" strings are. Returns the index or -1. */
static int name(cursor_t *c, const char *const *names, int count)
{
    for (int i = 0; i < count; i++) {
        if (lit(c, names[i])) return i;
    }
    return -1;
}

typedef struct {
    int year, mon, mday, hour, min, sec; /* mon 0..11 */
} date_parts_t;

static bool time_of_day(cursor_t *c, date_parts_t *d)
{
    return digits(c, 2, &d->hour) && lit(c, ":") && digits(c, 2, &d->min) && lit(c, ":") &&
           digits(c, 2, &d->sec);
}

static bool parse_imf(cursor_t c, date_parts_t *d)
{
    return name(&c, wday_short, 7) >= 0 && lit(&c, ", ") && digits(&c, 2, &d->mday) && lit(&c, " ") &&
           (d->mon = name(&c, month_short, 12)) >= 0 && lit(&c, " ") && digits(&c, 4, &d->year) &&
           lit(&c, " ") && time_of_day(&c, d) && lit(&c, " GMT") && c.p == c.end;
}

/* Two-digit years: the most recent matching year not more than 50 years ahead (§5.6.7). */
static int full_year(int yy)
{
    time_t now = time(NULL);
    struct tm tm;
    int cur = gmtime_r(&now, &tm) ? tm.tm_year + 1900 : 2000;
    int y = cur / 100 * 100 + yy;
    if (y > cur + 50) y -= 100;
    else if (y < cur - 49) y += 100;
    return y;
}

static bool parse_rfc850(cursor_t c, date_parts_t *d)
{
    int yy;
    bool ok = name(&c, wday_long, 7) >= 0 && lit(&c, ", ") && digits(&c, 2, &d->mday) && lit(&c, "-") &&
              (d->mon = name(&c, month_short, 12)) >= 0 && lit(&c, "-") && digits(&c, 2, &yy) &&
              lit(&c, " ") && time_of_day(&c, d) && lit(&c, " GMT") && c.p == c.end;
    if (ok) d->year = full_year(yy);
    return ok;
}

static bool parse_asctime(cursor_t c, date_parts_t *d)
{
    if (name(&c, wday_short, 7) < 0 || !lit(&c, " ")) return false;
    if ((d->mon = name(&c, month_short, 12)) < 0 || !lit(&c, " ")) return false;
    if (!(lit(&c, " ") ? digits(&c, 1, &d->mday) : digits(&c, 2, &d->mday))) return false;
    return lit(&c, " ") && time_of_day(&c, d) && lit(&c, " ") && digits(&c, 4, &d->year) && c.p == c.end;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool parts_valid(const date_parts_t *d)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int max = mdays[d->mon] + (d->mon == 1 && leap(d->year));
    return d->mday >= 1 && d->mday <= max && d->hour <= 23 && d->min <= 59 && d->sec <= 60;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil): no
 * timegm, no TZ environment, no locale. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int kx_http_date_parse(const char *s, size_t len, time_t *t)
{
    if (!s) return KX_EINVAL;
    cursor_t c = { s, s + len };
    while (c.p < c.end && (*c.p == ' ' || *c.p == '\t')) c.p++;
    while (c.end > c.p && (c.end[-1] == ' ' || c.end[-1] == '\t')) c.end--;

    date_parts_t d;
    memset(&d, 0, sizeof d);
    if (!parse_imf(c, &d) && !parse_rfc850(c, &d) && !parse_asctime(c, &d)) return KX_EINVAL;
    if (!parts_valid(&d)) return KX_EINVAL;
    int64_t days = days_from_civil(d.year, d.mon + 1, d.mday);
    *t = (time_t)(days * 86400 + d.hour * 3600 + d.min * 60 + d.sec);
    return KX_OK;
}
