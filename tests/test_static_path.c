/* test_static_path.c — static path resolution against a real directory tree and a table of
 * traversal attacks, run once through openat2 and once through the forced /proc fallback;
 * plus MIME, ETag and HTTP date tests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "static_path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Layout built in setup (base = mkdtemp):
 *   base/secret.txt              outside the root
 *   base/outside/x               outside the root
 *   base/root2/secret2.txt       a sibling whose name shares the root's prefix
 *   base/root/                   the static root
 */
static char base[PATH_MAX];
static int root_fd = -1;

#define SECRET "TOP-SECRET-OUTSIDE"

static void write_file(const char *rel, const char *content)
{
    char p[2 * PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fputs(content, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *rel)
{
    char p[2 * PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static void make_link(const char *target, const char *rel)
{
    char p[2 * PATH_MAX];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    assert_int_equal(symlink(target, p), 0);
}

static int setup_tree(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/kx_static_test_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    /* realpath: /tmp may itself be a symlink, and the fallback compares real paths. */
    assert_non_null(realpath(tmpl, base));

    write_file("secret.txt", SECRET);
    make_dir("outside");
    write_file("outside/x", SECRET "-x");
    write_file("outside/index.html", SECRET "-index");
    make_dir("root2");
    write_file("root2/secret2.txt", SECRET "-2");

    make_dir("root");
    write_file("root/index.html", "root index");
    write_file("root/test.txt", "test file");
    make_dir("root/subdir");
    write_file("root/subdir/index.html", "sub index");
    write_file("root/.env", "DB_PASSWORD=hunter2");
    make_dir("root/.git");
    write_file("root/.git/config", "[core]");
    write_file("root/a b.txt", "space name");
    write_file("root/%41.txt", "literal percent name");
    write_file("root/\xc3\xa9.txt", "e acute");
    write_file("root/back\\slash.txt", "backslash name");
    make_dir("root/emptydir");
    make_dir("root/deep");
    make_dir("root/deep/index.html"); /* an index.html that is a directory */

    char abs[PATH_MAX + 64];
    make_link("../secret.txt", "root/link-out");
    snprintf(abs, sizeof abs, "%s/secret.txt", base);
    make_link(abs, "root/link-out-abs");
    make_link("test.txt", "root/link-in");
    snprintf(abs, sizeof abs, "%s/root/test.txt", base);
    make_link(abs, "root/link-in-abs");
    make_link("../test.txt", "root/subdir/up-in");
    make_link("../outside", "root/dirlink-out");
    make_link("subdir", "root/dirlink-in");
    make_link("../root2/secret2.txt", "root/link-sibling");
    make_link("../nonexistent", "root/dangling-out");
    make_link("loop-b", "root/loop-a");
    make_link("loop-a", "root/loop-b");
    make_link("/proc/self/root/etc/passwd", "root/magic");

    char fifo[PATH_MAX + 16];
    snprintf(fifo, sizeof fifo, "%s/root/fifo", base);
    assert_int_equal(mkfifo(fifo, 0644), 0);

    char rootp[PATH_MAX + 8];
    snprintf(rootp, sizeof rootp, "%s/root", base);
    root_fd = open(rootp, O_PATH | O_DIRECTORY | O_CLOEXEC);
    assert_true(root_fd >= 0);
    return 0;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown_tree(void **state)
{
    (void)state;
    kx_static_force_fallback = false;
    if (root_fd >= 0) close(root_fd);
    root_fd = -1;
    nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d) return -1;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

typedef struct {
    const char *path; /* NUL-terminated raw path */
    kx_static_result_t want;
    const char *content; /* for OK: the bytes the fd must yield */
    const char *rel;     /* for OK: the relative name reported */
} case_t;

#define OK_(p, c, r)          \
    {                         \
        p, KX_STATIC_OK, c, r \
    }
#define NF(p)                              \
    {                                      \
        p, KX_STATIC_NOT_FOUND, NULL, NULL \
    }
#define FB(p)                              \
    {                                      \
        p, KX_STATIC_FORBIDDEN, NULL, NULL \
    }
#define BR(p)                                \
    {                                        \
        p, KX_STATIC_BAD_REQUEST, NULL, NULL \
    }

static const case_t cases[] = {
    /* plain serving */
    OK_("/", "root index", "index.html"),
    OK_("", "root index", "index.html"),
    OK_("/index.html", "root index", "index.html"),
    OK_("/test.txt", "test file", "test.txt"),
    OK_("/subdir", "sub index", "subdir/index.html"),
    OK_("/subdir/", "sub index", "subdir/index.html"),
    OK_("/subdir//", "sub index", "subdir/index.html"),
    OK_("/a%20b.txt", "space name", "a b.txt"),
    OK_("/%c3%a9.txt", "e acute", "\xc3\xa9.txt"),
    OK_("/\xc3\xa9.txt", "e acute", "\xc3\xa9.txt"),
    /* duplicate slashes collapse (nginx merge_slashes) */
    OK_("//test.txt", "test file", "test.txt"),
    OK_("/subdir///index.html", "sub index", "subdir/index.html"),
    /* decoded exactly once: %2541 is the literal name "%41.txt", never "A.txt" */
    OK_("/%2541.txt", "literal percent name", "%41.txt"),
    NF("/A.txt"),
    /* symlinks that stay inside are followed, relative or absolute */
    OK_("/link-in", "test file", "link-in"),
    OK_("/link-in-abs", "test file", "link-in-abs"),
    OK_("/subdir/up-in", "test file", "subdir/up-in"),
    OK_("/dirlink-in/", "sub index", "dirlink-in/index.html"),
    OK_("/dirlink-in", "sub index", "dirlink-in/index.html"),

    /* dot-dot in every spelling: 403, even when it would stay inside */
    FB("/../secret.txt"),
    FB("/.."),
    FB("/../"),
    FB("/%2e%2e/secret.txt"),
    FB("/%2E%2E/secret.txt"),
    FB("/.%2e/secret.txt"),
    FB("/%2e./secret.txt"),
    FB("/subdir/../test.txt"),
    FB("/subdir/.."),
    FB("/subdir/%2e%2e/test.txt"),
    FB("/../../../../../../etc/passwd"),
    FB("/a/b/../../../secret.txt"),
    /* encoded slashes */
    FB("/..%2fsecret.txt"),
    FB("/..%2Fsecret.txt"),
    FB("/subdir/..%2F..%2Fsecret.txt"),
    FB("/subdir%2findex.html"),
    FB("/%2F"),
    /* symlinks out of the root */
    FB("/link-out"),
    FB("/link-out-abs"),
    FB("/dirlink-out/x"),
    FB("/dirlink-out/"),
    FB("/dirlink-out"),
    FB("/dirlink-out/nonexistent"),
    FB("/link-sibling"), /* base/root2 shares the prefix "base/root" */
    FB("/magic"),

    /* plain 404s */
    NF("/%252e%252e/secret.txt"), /* literal "%2e%2e" after one decode */
    NF("/%252e%252e%252fsecret.txt"),
    NF("/....//....//secret.txt"),
    NF("/..\\..\\secret.txt"),
    NF("/%5c..%5csecret.txt"),
    NF("/back\\slash.txt"), /* exists, but backslash names are never served */
    NF("/back%5cslash.txt"),
    NF("/..;/secret.txt"),
    NF("/.env"),
    NF("/%2eenv"),
    NF("/.git/config"),
    NF("/subdir/.hidden"),
    NF("/."),
    NF("/./test.txt"),
    NF("/%2e"),
    NF("/..."),
    NF("/nope"),
    NF("/nope/"),
    NF("/test.txt/"),
    NF("/test.txt/x"),
    NF("/emptydir"),
    NF("/emptydir/"),
    NF("/deep"),
    NF("/deep/"),
    NF("/fifo"), /* not a regular file; must not block either */
    NF("/dangling-out"),
    NF("/loop-a"),
    NF("/secret.txt"),

    /* malformed: 400 */
    BR("/%00"),
    BR("/test.txt%00.html"),
    BR("/%"),
    BR("/%4"),
    BR("/%zz"),
    BR("/%g0"),
    BR("/test%"),
    BR("/%%32%65%%32%65/secret.txt"), /* CVE-2021-42013 */
    BR("/%c0%ae%c0%ae/secret.txt"),   /* overlong '.' */
    BR("/%c0%af"),                    /* overlong '/' */
    BR("/%e0%80%ae"),                 /* 3-byte overlong '.' */
    BR("/%f0%80%80%ae"),              /* 4-byte overlong '.' */
    BR("/%ed%a0%80"),                 /* surrogate U+D800 */
    BR("/%ed%bf%bf"),                 /* surrogate U+DFFF */
    BR("/%f4%90%80%80"),              /* U+110000 */
    BR("/%f5%80%80%80"),
    BR("/%ff"),
    BR("/%80"),
    BR("/%c3"), /* truncated sequence */
    BR("/%e2%82"),
    BR("/\xc0\xae\xc0\xae/secret.txt"), /* raw overlong bytes */
    BR("/%2f%00"),                      /* 400 wins over 403 */
    BR("/../%00"),
    BR("test.txt"), /* not origin-form */
    BR("../secret.txt"),
    BR("*"),
};

static void read_all(int fd, char *buf, size_t cap, size_t *n)
{
    *n = 0;
    for (;;) {
        ssize_t k = read(fd, buf + *n, cap - *n);
        assert_true(k >= 0);
        if (k == 0) break;
        *n += (size_t)k;
        assert_true(*n < cap);
    }
}

static void run_case(const case_t *c)
{
    int fd = 12345;
    struct stat st;
    char rel[KX_STATIC_PATH_MAX];
    memset(rel, 'X', sizeof rel);

    kx_static_result_t r = kx_static_open(root_fd, c->path, strlen(c->path), &fd, &st, rel, sizeof rel);
    if (r != c->want) {
        fail_msg("path \"%s\": got %d, want %d (fallback=%d)", c->path, (int)r, (int)c->want,
                 (int)kx_static_force_fallback);
    }
    if (r != KX_STATIC_OK) {
        assert_int_equal(fd, -1);
        return;
    }
    assert_true(fd >= 0);
    assert_string_equal(rel, c->rel);
    assert_true(S_ISREG(st.st_mode));
    int fl = fcntl(fd, F_GETFL);
    assert_int_equal(fl & O_ACCMODE, O_RDONLY);
    assert_int_equal(fl & O_NONBLOCK, 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    char buf[256];
    size_t n;
    read_all(fd, buf, sizeof buf, &n);
    assert_int_equal(n, strlen(c->content));
    assert_memory_equal(buf, c->content, n);
    assert_int_equal((size_t)st.st_size, n);
    assert_null(memmem(buf, n, SECRET, strlen(SECRET)));
    close(fd);
}

static void run_table(void)
{
    int before = count_fds();
    /* A blocking open (the FIFO case without O_NONBLOCK) would hang: SIGALRM kills the run. */
    alarm(20);
    for (size_t i = 0; i < KX_ARRAY_LEN(cases); i++) run_case(&cases[i]);
    alarm(0);
    assert_int_equal(count_fds(), before); /* nothing leaked, whatever the outcome */
}

static bool openat2_works(void)
{
    struct {
        /* cppcheck-suppress unusedStructMember ; openat2(2)'s ABI, read by the kernel */
        uint64_t flags, mode, resolve;
    } how = { O_PATH, 0, 0x08 };
    int fd = (int)syscall(SYS_openat2, root_fd, ".", &how, sizeof how);
    if (fd < 0) return false;
    close(fd);
    return true;
}

static void test_attacks_openat2(void **state)
{
    (void)state;
    if (!openat2_works()) skip();
    kx_static_force_fallback = false;
    run_table();
}

static void test_attacks_fallback(void **state)
{
    (void)state;
    kx_static_force_fallback = true;
    run_table();
    kx_static_force_fallback = false;
}

static void expect(const char *raw, size_t len, kx_static_result_t want)
{
    int fd = 7;
    struct stat st;
    char rel[KX_STATIC_PATH_MAX];
    kx_static_result_t r = kx_static_open(root_fd, raw, len, &fd, &st, rel, sizeof rel);
    assert_int_equal(r, want);
    if (r == KX_STATIC_OK) close(fd);
    else assert_int_equal(fd, -1);
}

static void long_paths(void)
{
    static char p[20000];

    /* 5000 bytes of name: nothing that long can exist */
    p[0] = '/';
    memset(p + 1, 'a', 4999);
    expect(p, 5000, KX_STATIC_NOT_FOUND);

    /* many short segments, 5000 bytes */
    for (size_t i = 0; i < 5000; i += 2) memcpy(p + i, "/a", 2);
    expect(p, 5000, KX_STATIC_NOT_FOUND);

    /* one segment longer than NAME_MAX but a short path */
    p[0] = '/';
    memset(p + 1, 'b', 300);
    expect(p, 301, KX_STATIC_NOT_FOUND);

    /* 15000 raw bytes decoding to 5000 */
    p[0] = '/';
    for (size_t i = 0; i < 4999; i++) memcpy(p + 1 + 3 * i, "%41", 3);
    expect(p, 1 + 3 * 4999, KX_STATIC_NOT_FOUND);

    /* a malformed tail far beyond the buffer is still a 400 */
    p[0] = '/';
    memset(p + 1, 'a', 9000);
    memcpy(p + 9001, "%zz", 3);
    expect(p, 9004, KX_STATIC_BAD_REQUEST);
    memcpy(p + 9001, "%00", 3);
    expect(p, 9004, KX_STATIC_BAD_REQUEST);
    memcpy(p + 9001, "%c0", 3);
    expect(p, 9004, KX_STATIC_BAD_REQUEST);

    /* traversal plus padding to 5000 bytes: never served */
    memcpy(p, "/../", 4);
    memset(p + 4, 'a', 4996);
    kx_static_result_t r;
    int fd = 9;
    struct stat st;
    r = kx_static_open(root_fd, p, 5000, &fd, &st, NULL, 0);
    assert_true(r == KX_STATIC_NOT_FOUND || r == KX_STATIC_FORBIDDEN);
    assert_int_equal(fd, -1);

    /* the longest path that still fits: a directory chain is fine, just not there */
    p[0] = '/';
    for (size_t i = 1; i < 4080; i++) p[i] = (i % 200 == 0) ? '/' : 'c';
    expect(p, 4080, KX_STATIC_NOT_FOUND);
    p[4079] = '/';
    expect(p, 4080, KX_STATIC_NOT_FOUND);
}

static void test_long_paths(void **state)
{
    (void)state;
    int before = count_fds();
    kx_static_force_fallback = false;
    long_paths();
    kx_static_force_fallback = true;
    long_paths();
    kx_static_force_fallback = false;
    assert_int_equal(count_fds(), before);
}

static void test_counted_input(void **state)
{
    (void)state;
    /* raw_path is counted, not NUL-terminated: bytes past len are never looked at */
    const char buf[] = "/test.txt/../../secret.txt";
    int fd = -5;
    struct stat st;
    char rel[64];
    assert_int_equal(kx_static_open(root_fd, buf, 9, &fd, &st, rel, sizeof rel), KX_STATIC_OK);
    assert_string_equal(rel, "test.txt");
    assert_int_equal(st.st_size, 9);
    close(fd);

    /* a NUL inside the counted range is a 400 even though strlen would stop there */
    const char nul[] = "/test.txt\0.html";
    expect(nul, sizeof nul - 1, KX_STATIC_BAD_REQUEST);
}

static void test_rel_cap(void **state)
{
    (void)state;
    int before = count_fds();
    int fd = 3;
    struct stat st;
    char rel[8]; /* "test.txt" needs 9 */
    assert_int_equal(kx_static_open(root_fd, "/test.txt", 9, &fd, &st, rel, sizeof rel), KX_STATIC_ERROR);
    assert_int_equal(fd, -1);
    assert_int_equal(count_fds(), before);

    /* rel is optional */
    assert_int_equal(kx_static_open(root_fd, "/test.txt", 9, &fd, &st, NULL, 0), KX_STATIC_OK);
    assert_true(fd >= 0);
    close(fd);
}

static void test_bad_root(void **state)
{
    (void)state;
    int fd = 4;
    struct stat st;
    kx_static_force_fallback = false;
    assert_int_equal(kx_static_open(-1, "/test.txt", 9, &fd, &st, NULL, 0), KX_STATIC_ERROR);
    assert_int_equal(fd, -1);
    kx_static_force_fallback = true;
    assert_int_equal(kx_static_open(-1, "/test.txt", 9, &fd, &st, NULL, 0), KX_STATIC_ERROR);
    assert_int_equal(fd, -1);
    kx_static_force_fallback = false;
}

static void test_normalize(void **state)
{
    (void)state;
    char out[64];
    assert_int_equal(kx_static_normalize("/a//b/", 6, out, sizeof out), KX_STATIC_OK);
    assert_string_equal(out, "a/b/index.html");
    assert_int_equal(kx_static_normalize("/", 1, out, sizeof out), KX_STATIC_OK);
    assert_string_equal(out, "index.html");
    assert_int_equal(kx_static_normalize("/x%2Fy", 6, out, sizeof out), KX_STATIC_FORBIDDEN);
    assert_int_equal(kx_static_normalize("/%41%42", 7, out, sizeof out), KX_STATIC_OK);
    assert_string_equal(out, "AB");
    /* does not fit: refused, never truncated into another name */
    char small[4];
    assert_int_equal(kx_static_normalize("/abcdef", 7, small, sizeof small), KX_STATIC_NOT_FOUND);
    assert_int_equal(kx_static_normalize("/abcd", 5, small, sizeof small), KX_STATIC_NOT_FOUND);
    assert_int_equal(kx_static_normalize("/abc", 4, small, sizeof small), KX_STATIC_OK);
    assert_string_equal(small, "abc");
    assert_int_equal(kx_static_normalize("//a//b", 6, small, sizeof small), KX_STATIC_OK);
    assert_string_equal(small, "a/b");
    assert_int_equal(kx_static_normalize("/", 1, small, sizeof small), KX_STATIC_NOT_FOUND);

    assert_int_equal(kx_static_result_status(KX_STATIC_OK), 200);
    assert_int_equal(kx_static_result_status(KX_STATIC_NOT_FOUND), 404);
    assert_int_equal(kx_static_result_status(KX_STATIC_FORBIDDEN), 403);
    assert_int_equal(kx_static_result_status(KX_STATIC_BAD_REQUEST), 400);
    assert_int_equal(kx_static_result_status(KX_STATIC_ERROR), 500);
}

/* Every single byte after "/" and every %XX: the result is one of the four, fds never leak,
 * and nothing outside is served. */
static void test_fuzz_bytes(void **state)
{
    (void)state;
    int before = count_fds();
    for (int mode = 0; mode < 2; mode++) {
        kx_static_force_fallback = mode == 1;
        for (int b = 0; b < 256; b++) {
            char p[8];
            int fd;
            struct stat st;
            p[0] = '/';
            p[1] = (char)b;
            kx_static_result_t r = kx_static_open(root_fd, p, 2, &fd, &st, NULL, 0);
            if (b == 0 || b == '%' || b >= 0x80) assert_int_equal(r, KX_STATIC_BAD_REQUEST);
            else if (b == '/') assert_int_equal(r, KX_STATIC_OK); /* "//" is the index */
            else assert_int_equal(r, KX_STATIC_NOT_FOUND);
            if (r == KX_STATIC_OK) close(fd);

            snprintf(p, sizeof p, "/%%%02x", b);
            r = kx_static_open(root_fd, p, 4, &fd, &st, NULL, 0);
            if (b == 0 || b >= 0x80) assert_int_equal(r, KX_STATIC_BAD_REQUEST);
            else if (b == '/') assert_int_equal(r, KX_STATIC_FORBIDDEN);
            else assert_int_equal(r, KX_STATIC_NOT_FOUND);
        }
    }
    kx_static_force_fallback = false;
    assert_int_equal(count_fds(), before);
}

/* ---- MIME ---------------------------------------------------------------------------------- */

static void test_mime(void **state)
{
    (void)state;
    assert_string_equal(kx_static_mime("index.html"), "text/html; charset=utf-8");
    assert_string_equal(kx_static_mime("subdir/index.html"), "text/html; charset=utf-8");
    assert_string_equal(kx_static_mime("A.HTM"), "text/html; charset=utf-8");
    assert_string_equal(kx_static_mime("s.css"), "text/css; charset=utf-8");
    assert_string_equal(kx_static_mime("app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(kx_static_mime("m.MJS"), "text/javascript; charset=utf-8");
    assert_string_equal(kx_static_mime("d.json"), "application/json");
    assert_string_equal(kx_static_mime("r.txt"), "text/plain; charset=utf-8");
    assert_string_equal(kx_static_mime("i.svg"), "image/svg+xml");
    assert_string_equal(kx_static_mime("i.png"), "image/png");
    assert_string_equal(kx_static_mime("i.jpg"), "image/jpeg");
    assert_string_equal(kx_static_mime("i.JPEG"), "image/jpeg");
    assert_string_equal(kx_static_mime("i.gif"), "image/gif");
    assert_string_equal(kx_static_mime("i.webp"), "image/webp");
    assert_string_equal(kx_static_mime("i.avif"), "image/avif");
    assert_string_equal(kx_static_mime("favicon.ico"), "image/x-icon");
    assert_string_equal(kx_static_mime("f.woff"), "font/woff");
    assert_string_equal(kx_static_mime("f.woff2"), "font/woff2");
    assert_string_equal(kx_static_mime("f.ttf"), "font/ttf");
    assert_string_equal(kx_static_mime("f.otf"), "font/otf");
    assert_string_equal(kx_static_mime("app.js.map"), "application/json");
    assert_string_equal(kx_static_mime("feed.xml"), "application/xml");
    assert_string_equal(kx_static_mime("doc.pdf"), "application/pdf");
    assert_string_equal(kx_static_mime("m.wasm"), "application/wasm");
    assert_string_equal(kx_static_mime("v.mp4"), "video/mp4");
    assert_string_equal(kx_static_mime("v.webm"), "video/webm");
    assert_string_equal(kx_static_mime("a.mp3"), "audio/mpeg");
    assert_string_equal(kx_static_mime("a.ogg"), "audio/ogg");
    assert_string_equal(kx_static_mime("z.zip"), "application/zip");
    assert_string_equal(kx_static_mime("x.tar.gz"), "application/gzip");
    /* no usable extension */
    assert_string_equal(kx_static_mime("README"), "application/octet-stream");
    assert_string_equal(kx_static_mime(".env"), "application/octet-stream");
    assert_string_equal(kx_static_mime("dir/.html"), "application/octet-stream");
    assert_string_equal(kx_static_mime("a."), "application/octet-stream");
    assert_string_equal(kx_static_mime("v1.2/LICENSE"), "application/octet-stream");
    assert_string_equal(kx_static_mime("x.exe"), "application/octet-stream");
    assert_string_equal(kx_static_mime("x.htmlx"), "application/octet-stream");
    assert_string_equal(kx_static_mime("x.ht"), "application/octet-stream");
    assert_string_equal(kx_static_mime(""), "application/octet-stream");
    assert_string_equal(kx_static_mime(NULL), "application/octet-stream");
}

static void test_mime_compressed(void **state)
{
    (void)state;
    assert_true(kx_static_mime_compressed("image/png"));
    assert_true(kx_static_mime_compressed("IMAGE/JPEG"));
    assert_true(kx_static_mime_compressed("image/webp; q=1"));
    assert_true(kx_static_mime_compressed("image/x-icon"));
    assert_true(kx_static_mime_compressed("video/mp4"));
    assert_true(kx_static_mime_compressed("audio/mpeg"));
    assert_true(kx_static_mime_compressed("application/zip"));
    assert_true(kx_static_mime_compressed("application/gzip"));
    assert_true(kx_static_mime_compressed("application/x-bzip2"));
    assert_true(kx_static_mime_compressed("application/x-7z-compressed"));
    assert_true(kx_static_mime_compressed("application/x-rar-compressed"));
    assert_true(kx_static_mime_compressed("application/wasm"));
    assert_true(kx_static_mime_compressed("font/woff2"));
    assert_true(kx_static_mime_compressed("font/woff"));
    assert_false(kx_static_mime_compressed("image/svg+xml"));
    assert_false(kx_static_mime_compressed("image/svg+xml; charset=utf-8"));
    assert_false(kx_static_mime_compressed("text/html; charset=utf-8"));
    assert_false(kx_static_mime_compressed("application/json"));
    assert_false(kx_static_mime_compressed("text/javascript; charset=utf-8"));
    assert_false(kx_static_mime_compressed("font/ttf"));
    assert_false(kx_static_mime_compressed("application/octet-stream"));
    assert_false(kx_static_mime_compressed("application/zipx"));
    assert_false(kx_static_mime_compressed("image"));
    assert_false(kx_static_mime_compressed(""));
    assert_false(kx_static_mime_compressed(NULL));
    /* consistent with the table: what kx_static_mime names for these is compressed */
    const char *bin[] = { "a.png", "a.jpg", "a.gif", "a.webp", "a.avif",  "a.ico",
                          "a.mp4", "a.mp3", "a.zip", "a.gz",   "a.woff2", "a.wasm" };
    for (size_t i = 0; i < KX_ARRAY_LEN(bin); i++)
        assert_true(kx_static_mime_compressed(kx_static_mime(bin[i])));
    const char *text[] = { "a.html", "a.css", "a.js", "a.json", "a.txt", "a.svg", "a.xml", "a.map", "a" };
    for (size_t i = 0; i < KX_ARRAY_LEN(text); i++)
        assert_false(kx_static_mime_compressed(kx_static_mime(text[i])));
}

/* ---- ETag ---------------------------------------------------------------------------------- */

static void test_etag(void **state)
{
    (void)state;
    struct stat st;
    char buf[KX_STATIC_ETAG_MAX];

    memset(&st, 0, sizeof st);
    st.st_mtim.tv_sec = 1700000000;
    st.st_mtim.tv_nsec = 123456789; /* 1700000000123 ms, sub-ms dropped */
    st.st_size = 12345;
    kx_static_etag(&st, buf, sizeof buf);
    /* node -e '(1700000000123).toString(36)' → loyw3v5n, (12345).toString(36) → 9ix */
    assert_string_equal(buf, "\"loyw3v5n-9ix\"");

    st.st_mtim.tv_sec = 0;
    st.st_mtim.tv_nsec = 0;
    st.st_size = 0;
    kx_static_etag(&st, buf, sizeof buf);
    assert_string_equal(buf, "\"0-0\"");

    st.st_mtim.tv_sec = -2;
    st.st_mtim.tv_nsec = 500000000; /* -1.5 s → (-1500).toString(36) = -15o */
    st.st_size = 35;
    kx_static_etag(&st, buf, sizeof buf);
    assert_string_equal(buf, "\"-15o-z\"");

    /* the widest values still fit KX_STATIC_ETAG_MAX */
    st.st_mtim.tv_sec = INT64_MAX / 1000 - 1;
    st.st_mtim.tv_nsec = 999999999;
    st.st_size = INT64_MAX;
    kx_static_etag(&st, buf, sizeof buf);
    assert_true(strlen(buf) > 20);
    assert_int_equal(buf[0], '"');
    assert_int_equal(buf[strlen(buf) - 1], '"');
    assert_non_null(strstr(buf, "-1y2p0ij32e8e7\""));

    /* ms overflow: refused rather than wrapped */
    st.st_mtim.tv_sec = INT64_MAX / 10;
    kx_static_etag(&st, buf, sizeof buf);
    assert_string_equal(buf, "");

    /* too small a buffer: empty, never a truncated tag */
    st.st_mtim.tv_sec = 1700000000;
    st.st_mtim.tv_nsec = 123456789;
    st.st_size = 12345;
    char tiny[8];
    memset(tiny, 'Z', sizeof tiny);
    kx_static_etag(&st, tiny, sizeof tiny);
    assert_string_equal(tiny, "");
    char exact[15]; /* 14 chars + NUL */
    kx_static_etag(&st, exact, sizeof exact);
    assert_string_equal(exact, "\"loyw3v5n-9ix\"");
    kx_static_etag(&st, exact, 14);
    assert_string_equal(exact, "");
}

static void test_etag_real_file(void **state)
{
    (void)state;
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/root/test.txt", base);
    struct timespec ts[2] = { { 1700000000, 123456789 }, { 1700000000, 123456789 } };
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);

    int fd;
    struct stat st;
    assert_int_equal(kx_static_open(root_fd, "/test.txt", 9, &fd, &st, NULL, 0), KX_STATIC_OK);
    close(fd);
    char buf[KX_STATIC_ETAG_MAX];
    kx_static_etag(&st, buf, sizeof buf);
    assert_string_equal(buf, "\"loyw3v5n-9\""); /* "test file" is 9 bytes */
}

/* ---- HTTP dates ---------------------------------------------------------------------------- */

static void test_date_format(void **state)
{
    (void)state;
    char buf[KX_HTTP_DATE_MAX];
    kx_http_date_format(784111777, buf, sizeof buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    kx_http_date_format(0, buf, sizeof buf);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    kx_http_date_format(951782400, buf, sizeof buf); /* leap day 2000 */
    assert_string_equal(buf, "Tue, 29 Feb 2000 00:00:00 GMT");
    kx_http_date_format(253402300799, buf, sizeof buf);
    assert_string_equal(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    kx_http_date_format(253402300800, buf, sizeof buf); /* year 10000: no 4-digit form */
    assert_string_equal(buf, "");

    /* independent oracle: strftime in the C locale */
    for (time_t t = -2208988800; t < 4102444800; t += 7777777 + 13) {
        struct tm tm;
        char want[64];
        assert_non_null(gmtime_r(&t, &tm));
        strftime(want, sizeof want, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        kx_http_date_format(t, buf, sizeof buf);
        assert_string_equal(buf, want);
    }

    char small[29]; /* one short of the NUL */
    memset(small, 'Z', sizeof small);
    kx_http_date_format(784111777, small, sizeof small);
    assert_string_equal(small, "");
    char exact[30];
    kx_http_date_format(784111777, exact, sizeof exact);
    assert_string_equal(exact, "Sun, 06 Nov 1994 08:49:37 GMT");
}

static time_t parse_ok(const char *s)
{
    time_t t = -1;
    int rc = kx_http_date_parse(s, strlen(s), &t);
    if (rc != KX_OK) fail_msg("date \"%s\" rejected", s);
    return t;
}

static void parse_bad(const char *s, size_t len)
{
    time_t t = 42;
    int rc = kx_http_date_parse(s, len, &t);
    if (rc != KX_EINVAL) fail_msg("date \"%.*s\" accepted", (int)len, s);
    assert_int_equal(t, 42);
}

static void test_date_parse(void **state)
{
    (void)state;
    assert_int_equal(parse_ok("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
    assert_int_equal(parse_ok("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
    assert_int_equal(parse_ok("Sun Nov  6 08:49:37 1994"), 784111777);
    assert_int_equal(parse_ok("Sun Nov 06 08:49:37 1994"), 784111777);
    assert_int_equal(parse_ok("  Sun, 06 Nov 1994 08:49:37 GMT\t "), 784111777);
    assert_int_equal(parse_ok("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
    assert_int_equal(parse_ok("Wed, 31 Dec 1969 23:59:59 GMT"), -1);
    assert_int_equal(parse_ok("Thu, 29 Feb 2024 12:00:00 GMT"), 1709208000);
    assert_int_equal(parse_ok("Tue, 29 Feb 2000 00:00:00 GMT"), 951782400);
    /* the weekday must be a name, but is not cross-checked (RFC 9110 leaves that open) */
    assert_int_equal(parse_ok("Mon, 06 Nov 1994 08:49:37 GMT"), 784111777);
    /* leap second rolls over */
    assert_int_equal(parse_ok("Sat, 31 Dec 2016 23:59:60 GMT"), 1483228800);
    /* rfc850 two-digit years stay within 50 years of now */
    time_t t94 = parse_ok("Sunday, 06-Nov-94 08:49:37 GMT");
    assert_true(t94 == 784111777); /* 2094 would be > 50 years ahead */

    /* round trip: format → parse is the identity over 1900..2100 */
    for (time_t t = -2208988800; t < 4102444800; t += 3333331) {
        char buf[KX_HTTP_DATE_MAX];
        kx_http_date_format(t, buf, sizeof buf);
        assert_int_equal(parse_ok(buf), t);
    }
}

static void test_date_parse_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        " ",
        "garbage",
        "784111777",
        "Sun, 6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 94 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 UTC",
        "Sun, 06 Nov 1994 08:49:37 gmt",
        "Sun, 06 Nov 1994 08:49:37",
        "sun, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 nov 1994 08:49:37 GMT",
        "Xyz, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Foo 1994 08:49:37 GMT",
        "Sun, 00 Nov 1994 08:49:37 GMT",
        "Sun, 31 Nov 1994 08:49:37 GMT",
        "Sun, 32 Dec 1994 08:49:37 GMT",
        "Thu, 29 Feb 2023 08:49:37 GMT",
        "Thu, 29 Feb 1900 08:49:37 GMT",
        "Sun, 06 Nov 1994 24:00:00 GMT",
        "Sun, 06 Nov 1994 08:60:00 GMT",
        "Sun, 06 Nov 1994 08:49:61 GMT",
        "Sun, 06 Nov 1994 8:49:37 GMT",
        "Sun, 06 Nov 1994 08-49-37 GMT",
        "Sun,06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov 1994  08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:37 GMTx",
        "Sun, 06 Nov 1994 08:49:37 GMT GMT",
        "Sun, -6 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nov +994 08:49:37 GMT",
        "Sun, 0x Nov 1994 08:49:37 GMT",
        "Sun, 06-Nov-94 08:49:37 GMT", /* rfc850 needs the long day name */
        "Sunday, 06-Nov-1994 08:49:37 GMT",
        "Sunday, 06 Nov 1994 08:49:37 GMT",
        "Sun Nov 6 08:49:37 1994",
        "Sun Nov  6 08:49:37 94",
        "Sun Nov  6 08:49:37 1994 GMT",
    };
    for (size_t i = 0; i < KX_ARRAY_LEN(bad); i++) parse_bad(bad[i], strlen(bad[i]));

    /* every truncation of a valid date is invalid */
    const char *good = "Sun, 06 Nov 1994 08:49:37 GMT";
    for (size_t n = 0; n < strlen(good); n++) parse_bad(good, n);
    /* an embedded NUL inside the counted length */
    const char nul[] = "Sun, 06 Nov 1994 08:49:37 GMT\0";
    parse_bad(nul, sizeof nul - 1);
    const char nul2[] = "Sun, 06 Nov\0994 08:49:37 GMT";
    parse_bad(nul2, sizeof nul2 - 1);
    assert_int_equal(kx_http_date_parse(NULL, 0, &(time_t){ 0 }), KX_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tree_tests[] = {
        cmocka_unit_test(test_attacks_openat2), cmocka_unit_test(test_attacks_fallback),
        cmocka_unit_test(test_long_paths),      cmocka_unit_test(test_counted_input),
        cmocka_unit_test(test_rel_cap),         cmocka_unit_test(test_bad_root),
        cmocka_unit_test(test_fuzz_bytes),      cmocka_unit_test(test_etag_real_file),
    };
    const struct CMUnitTest pure_tests[] = {
        cmocka_unit_test(test_normalize),       cmocka_unit_test(test_mime),
        cmocka_unit_test(test_mime_compressed), cmocka_unit_test(test_etag),
        cmocka_unit_test(test_date_format),     cmocka_unit_test(test_date_parse),
        cmocka_unit_test(test_date_parse_bad),
    };
    int failed = cmocka_run_group_tests_name("static_path (tree)", tree_tests, setup_tree, teardown_tree);
    failed += cmocka_run_group_tests_name("static_path (pure)", pure_tests, NULL, NULL);
    return failed;
}
