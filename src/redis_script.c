/* redis_script.c — EVALSHA with an EVAL fallback for lua/redis/<name>.lua (see redis_script.h). */
#include "redis_script.h"
#include "buf.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SCRIPTS 64
#define MAX_NAME 64

struct kx_redis_script {
    char name[MAX_NAME];
    char *text;
    size_t len;
    char sha[41];
};

static struct {
    kx_redis_script_t list[MAX_SCRIPTS];
    int n;
} S;

struct kx_redis_eval {
    kx_redis_conn_t *conn;
    const kx_redis_script_t *script;
    kx_redis_fn fn;
    void *ud;
    kx_redis_op_t *op;
    bool retried;    /* EVAL already sent after a NOSCRIPT */
    double deadline; /* kx_redis_now() time the whole call must end by */
    int argc;        /* including the 3 leading EVALSHA, sha, nkeys */
    const char **argv;
    size_t *lens;
    char nkeys[16];
};

/* ---- pure helpers ------------------------------------------------------------------------- */

void kx_redis_sha1_hex(const char *data, size_t n, char hex[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char digits[] = "0123456789abcdef";
    if (!EVP_Digest(data, n, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20) {
        memset(hex, '0', 40); /* cannot happen with a working libcrypto; the EVAL fallback still works */
        hex[40] = '\0';
        return;
    }
    for (unsigned int i = 0; i < 20; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[40] = '\0';
}

bool kx_redis_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/* ---- loading ------------------------------------------------------------------------------ */

/* "<name>.lua" with a name of letters, digits and '_' → the name's length, else 0. */
static size_t script_name_len(const char *file)
{
    size_t n = strlen(file);
    if (n <= 4 || n - 4 >= MAX_NAME || strcmp(file + n - 4, ".lua") != 0) return 0;
    for (size_t i = 0; i < n - 4; i++)
        if (!isalnum((unsigned char)file[i]) && file[i] != '_') return 0;
    return n - 4;
}

static int read_script(const char *path, kx_buf_t *b, char *err, size_t errcap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errcap, "cannot read the Redis script %s: %s", path, strerror(errno));
        return KX_EIO;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b->len <= KX_REDIS_SCRIPT_MAX_BYTES)
        kx_buf_append(b, chunk, n);
    bool bad = ferror(f) || b->len == 0 || b->len > KX_REDIS_SCRIPT_MAX_BYTES;
    fclose(f);
    if (bad) {
        snprintf(err, errcap, "cannot read the Redis script %s: empty, unreadable or over %d bytes", path,
                 KX_REDIS_SCRIPT_MAX_BYTES);
        return KX_EIO;
    }
    return KX_OK;
}

static int add_script(const char *dir, const char *file, size_t namelen, char *err, size_t errcap)
{
    if (S.n >= MAX_SCRIPTS) {
        snprintf(err, errcap, "too many Redis scripts in %s (max %d)", dir, MAX_SCRIPTS);
        return KX_EIO;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    kx_buf_t b = KX_BUF_INIT;
    if (read_script(path, &b, err, errcap) != KX_OK) {
        kx_buf_free(&b);
        return KX_EIO;
    }
    kx_redis_script_t *s = &S.list[S.n++];
    memcpy(s->name, file, namelen);
    s->name[namelen] = '\0';
    s->text = b.data;
    s->len = b.len;
    kx_redis_sha1_hex(s->text, s->len, s->sha);
    return KX_OK;
}

int kx_redis_scripts_load(const char *dir, char *err, size_t errcap)
{
    kx_redis_scripts_free();
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errcap, "cannot read the Redis scripts directory %s: %s", dir, strerror(errno));
        return KX_EIO;
    }
    int rc = KX_OK;
    for (struct dirent *e; rc == KX_OK && (e = readdir(d));) {
        size_t namelen = script_name_len(e->d_name);
        if (namelen) rc = add_script(dir, e->d_name, namelen, err, errcap);
    }
    closedir(d);
    if (rc != KX_OK) kx_redis_scripts_free();
    return rc;
}

void kx_redis_scripts_free(void)
{
    for (int i = 0; i < S.n; i++) free(S.list[i].text);
    memset(&S, 0, sizeof S);
}

const kx_redis_script_t *kx_redis_script_find(const char *name)
{
    for (int i = 0; i < S.n; i++)
        if (strcmp(S.list[i].name, name) == 0) return &S.list[i];
    return NULL;
}

const char *kx_redis_script_sha(const kx_redis_script_t *s)
{
    return s->sha;
}

/* ---- calls -------------------------------------------------------------------------------- */

static void on_reply(void *ud, redisReply *reply, const char *err);

static kx_redis_op_t *send(kx_redis_eval_t *e, bool full_text)
{
    e->argv[0] = full_text ? "EVAL" : "EVALSHA";
    e->lens[0] = full_text ? 4 : 7;
    e->argv[1] = full_text ? e->script->text : e->script->sha;
    e->lens[1] = full_text ? e->script->len : 40;
    return kx_redis_conn_command(e->conn, e->argc, e->argv, e->lens, e->deadline - kx_redis_now(), on_reply,
                                 e);
}

/* The op, its argv and lens arrays and the argument bytes are one allocation. */
static void eval_free(kx_redis_eval_t *e)
{
    free(e);
}

static void finish(kx_redis_eval_t *e, redisReply *reply, const char *err)
{
    kx_redis_fn fn = e->fn;
    void *ud = e->ud;
    eval_free(e);
    fn(ud, reply, err);
}

static void on_reply(void *ud, redisReply *reply, const char *err)
{
    kx_redis_eval_t *e = ud;
    e->op = NULL;
    if (!kx_redis_is_noscript(reply) || e->retried) {
        finish(e, reply, reply ? NULL : (err ? err : "closed"));
        return;
    }
    e->retried = true;
    if (e->deadline <= kx_redis_now()) {
        finish(e, NULL, "timeout");
        return;
    }
    e->op = send(e, true);
    if (!e->op) finish(e, NULL, "closed");
}

kx_redis_eval_t *kx_redis_eval(kx_redis_conn_t *conn, const kx_redis_script_t *s, int nkeys, int argc,
                               const char **argv, const size_t *lens, double wait, kx_redis_fn fn, void *ud)
{
    size_t n = (size_t)argc + 3, bytes = 0;
    for (int i = 0; i < argc; i++) bytes += lens[i];
    /* Pointers first, then sizes, then the bytes: every part stays aligned. */
    kx_redis_eval_t *e = kx_xcalloc(1, sizeof *e + n * (sizeof *e->argv + sizeof *e->lens) + bytes + 1);
    e->argv = (const char **)(e + 1);
    e->lens = (size_t *)(e->argv + n);
    char *p = (char *)(e->lens + n);
    e->conn = conn;
    e->script = s;
    e->fn = fn;
    e->ud = ud;
    e->deadline = kx_redis_now() + wait;
    e->argc = (int)n;
    snprintf(e->nkeys, sizeof e->nkeys, "%d", nkeys);
    e->argv[2] = e->nkeys;
    e->lens[2] = strlen(e->nkeys);
    for (int i = 0; i < argc; i++) {
        memcpy(p, argv[i], lens[i]);
        e->argv[i + 3] = p;
        e->lens[i + 3] = lens[i];
        p += lens[i];
    }
    e->op = send(e, false);
    if (!e->op) {
        eval_free(e);
        return NULL;
    }
    return e;
}

void kx_redis_eval_cancel(kx_redis_eval_t *e)
{
    if (!e) return;
    if (e->op) kx_redis_cancel(e->op);
    eval_free(e);
}
