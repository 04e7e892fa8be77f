/* crypto.c — random ids, scrypt password hashes and the worker pool. See crypto.h.
 *
 * Pool design: jobs move todo list → (a worker computes) → done list → (loop thread) fn →
 * freed. Only the loop thread allocates and frees jobs, so a cancel never races a free: a
 * cancelled job still travels to the done list (a worker that pops it skips the work) and
 * is reclaimed there. The `cancelled` flag is the only field both sides touch, always under
 * the mutex. Each live job holds an ev_ref on the loop, so ev_run() returns once every
 * posted, uncancelled job has been answered. */
#include "crypto.h"
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#define ID_BYTES 32
#define SALT_BYTES 16
#define KEY_BYTES 32
#define MIN_FIELD_BYTES 16
#define MAX_FIELD_BYTES 64
/* scrypt needs 128*r*(N+2) + 128*r*p bytes; with the caps in crypto.h that stays below. */
#define SCRYPT_MAXMEM ((uint64_t)129 << 20)

/* ---- base64url (unpadded, canonical) ------------------------------------------------------- */

static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Writes ceil(4n/3) characters and a NUL; returns the characters written. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    return kx_crypto_b64url(in, n, out);
}

size_t kx_crypto_b64url(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = B64URL[(acc >> bits) & 63];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0) out[o++] = B64URL[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return o;
}

/* Strict decode: only the url alphabet, no padding, and leftover bits must be zero, so each
 * byte string has exactly one accepted spelling. */
static bool b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap, size_t *outlen)
{
    if (n % 4 == 1) return false;
    if (n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap) return false;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
        acc &= (1u << bits) - 1;
    }
    if (acc != 0) return false;
    *outlen = o;
    return true;
}

/* ---- ids ----------------------------------------------------------------------------------- */

int kx_crypto_random_id(char *out, size_t cap)
{
    if (!out) return KX_EINVAL;
    if (cap) out[0] = '\0';
    if (cap < KX_CRYPTO_ID_LEN + 1) return KX_EINVAL;
    unsigned char raw[ID_BYTES];
    if (RAND_bytes(raw, ID_BYTES) != 1) return KX_EIO;
    b64url_encode(raw, ID_BYTES, out);
    OPENSSL_cleanse(raw, sizeof raw);
    return KX_OK;
}

bool kx_crypto_valid_id(const char *s, size_t len)
{
    if (!s || len != KX_CRYPTO_ID_LEN) return false;
    for (size_t i = 0; i < len; i++)
        if (b64url_value((unsigned char)s[i]) < 0) return false;
    /* 43 sextets carry 258 bits for 256: the last one's two low bits are padding. */
    return (b64url_value((unsigned char)s[len - 1]) & 3) == 0;
}

/* ---- password hashes ----------------------------------------------------------------------- */

typedef struct {
    uint64_t n, r, p;
    unsigned char salt[MAX_FIELD_BYTES];
    size_t salt_len;
    unsigned char hash[MAX_FIELD_BYTES];
    size_t hash_len;
} stored_t;

static bool valid_password(const char *pw, size_t len)
{
    return pw && len >= 1 && len <= KX_CRYPTO_PW_MAX;
}

/* Decimal without sign or leading zeros (we never write them), at most `max`. */
static bool parse_uint(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    if (n == 0 || n > 8 || s[0] == '0') return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max) return false;
    *out = v;
    return true;
}

static bool parse_field_bytes(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
    return b64url_decode(s, n, out, MAX_FIELD_BYTES, outlen) && *outlen >= MIN_FIELD_BYTES;
}

/* Splits `scrypt$N$r$p$salt$hash` and range-checks every part. */
static bool parse_stored(const char *s, size_t n, stored_t *st)
{
    if (!s || n == 0 || n >= KX_CRYPTO_HASH_MAX) return false;
    const char *f[6];
    size_t fl[6];
    int nf = 0;
    const char *cur = s, *end = s + n;
    for (;;) {
        if (nf == 6) return false; /* a seventh field */
        const char *d = memchr(cur, '$', (size_t)(end - cur));
        f[nf] = cur;
        fl[nf] = (size_t)((d ? d : end) - cur);
        nf++;
        if (!d) break;
        cur = d + 1;
    }
    if (nf != 6) return false;
    if (fl[0] != 6 || memcmp(f[0], "scrypt", 6) != 0) return false;
    if (!parse_uint(f[1], fl[1], 1u << 20, &st->n) || st->n < (1u << 10) || (st->n & (st->n - 1)))
        return false;
    if (!parse_uint(f[2], fl[2], 32, &st->r) || !parse_uint(f[3], fl[3], 16, &st->p)) return false;
    if (st->n * st->r > KX_CRYPTO_MAX_NR || st->n * st->r * st->p > KX_CRYPTO_MAX_NRP) return false;
    return parse_field_bytes(f[4], fl[4], st->salt, &st->salt_len) &&
           parse_field_bytes(f[5], fl[5], st->hash, &st->hash_len);
}

int kx_crypto_hash_sync(const char *pw, size_t len, char *out, size_t cap)
{
    if (!out || cap == 0) return KX_EINVAL;
    out[0] = '\0';
    if (!valid_password(pw, len)) return KX_EINVAL;
    char head[48];
    int hn = snprintf(head, sizeof head, "scrypt$%d$%d$%d$", KX_CRYPTO_SCRYPT_N, KX_CRYPTO_SCRYPT_R,
                      KX_CRYPTO_SCRYPT_P);
    size_t need = (size_t)hn + (SALT_BYTES * 4 + 2) / 3 + 1 + (KEY_BYTES * 4 + 2) / 3 + 1;
    if (cap < need) return KX_EINVAL;
    unsigned char salt[SALT_BYTES], key[KEY_BYTES];
    if (RAND_bytes(salt, SALT_BYTES) != 1) return KX_EIO;
    if (EVP_PBE_scrypt(pw, len, salt, SALT_BYTES, KX_CRYPTO_SCRYPT_N, KX_CRYPTO_SCRYPT_R, KX_CRYPTO_SCRYPT_P,
                       SCRYPT_MAXMEM, key, KEY_BYTES) != 1) {
        OPENSSL_cleanse(key, sizeof key);
        return KX_EIO;
    }
    memcpy(out, head, (size_t)hn);
    size_t o = (size_t)hn;
    o += b64url_encode(salt, SALT_BYTES, out + o);
    out[o++] = '$';
    b64url_encode(key, KEY_BYTES, out + o);
    OPENSSL_cleanse(key, sizeof key);
    return KX_OK;
}

bool kx_crypto_verify_sync(const char *pw, size_t len, const char *stored, size_t slen)
{
    if (!valid_password(pw, len)) return false;
    stored_t st;
    if (!parse_stored(stored, slen, &st)) return false;
    unsigned char key[MAX_FIELD_BYTES];
    bool ok = EVP_PBE_scrypt(pw, len, st.salt, st.salt_len, st.n, st.r, st.p, SCRYPT_MAXMEM, key,
                             st.hash_len) == 1 &&
              CRYPTO_memcmp(key, st.hash, st.hash_len) == 0;
    OPENSSL_cleanse(key, sizeof key);
    return ok;
}

/* ---- worker pool --------------------------------------------------------------------------- */

typedef enum { JOB_HASH, JOB_VERIFY } job_kind_t;

struct kx_crypto_job {
    kx_crypto_job_t *next;
    job_kind_t kind;
    char *pw; /* NULL when the password was out of range: the job just fails */
    size_t pw_len;
    char *stored;
    size_t stored_len;
    kx_crypto_fn fn;
    void *ud;
    bool cancelled; /* under P.mu */
    int status;     /* written by the worker, read on the loop after the handoff */
    char result[KX_CRYPTO_HASH_MAX];
};

typedef struct {
    kx_crypto_job_t *head, *tail;
} job_list_t;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_list_t todo, done; /* under mu */
    bool stopping;         /* under mu */
    /* loop thread only: */
    struct ev_loop *loop;
    ev_async async;
    pthread_t threads[KX_CRYPTO_THREADS];
    int nthreads;
    bool running;
    int in_flight; /* allocated jobs */
    int live;      /* jobs holding a loop ref: posted, not cancelled, not answered */
} P = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static void list_push(job_list_t *l, kx_crypto_job_t *j)
{
    j->next = NULL;
    if (l->tail) l->tail->next = j;
    else l->head = j;
    l->tail = j;
}

static kx_crypto_job_t *list_pop(job_list_t *l)
{
    kx_crypto_job_t *j = l->head;
    if (!j) return NULL;
    l->head = j->next;
    if (!l->head) l->tail = NULL;
    return j;
}

static kx_crypto_job_t *list_take_all(job_list_t *l)
{
    kx_crypto_job_t *j = l->head;
    l->head = l->tail = NULL;
    return j;
}

static void job_free(kx_crypto_job_t *j)
{
    if (j->pw) OPENSSL_cleanse(j->pw, j->pw_len);
    free(j->pw);
    free(j->stored);
    free(j);
    P.in_flight--;
}

static void run_job(kx_crypto_job_t *j)
{
    if (j->kind == JOB_HASH) {
        j->status = kx_crypto_hash_sync(j->pw, j->pw_len, j->result, sizeof j->result);
        if (j->status != KX_OK) j->result[0] = '\0';
        return;
    }
    bool ok = kx_crypto_verify_sync(j->pw, j->pw_len, j->stored, j->stored_len);
    j->status = KX_OK;
    memcpy(j->result, ok ? "1" : "0", 2);
}

static void *worker_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&P.mu);
    for (;;) {
        while (!P.stopping && !P.todo.head) pthread_cond_wait(&P.cv, &P.mu);
        if (P.stopping) break;
        kx_crypto_job_t *j = list_pop(&P.todo);
        bool skip = j->cancelled;
        pthread_mutex_unlock(&P.mu);
        if (!skip) run_job(j);
        pthread_mutex_lock(&P.mu);
        list_push(&P.done, j);
        /* After this unlock the job belongs to the loop thread again; not touched below. */
        pthread_mutex_unlock(&P.mu);
        ev_async_send(P.loop, &P.async);
        pthread_mutex_lock(&P.mu);
    }
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

static void drop_live_ref(void)
{
    P.live--;
    ev_unref(P.loop);
}

static void on_async(struct ev_loop *loop, ev_async *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    pthread_mutex_lock(&P.mu);
    kx_crypto_job_t *j = list_take_all(&P.done);
    pthread_mutex_unlock(&P.mu);
    while (j) {
        kx_crypto_job_t *next = j->next;
        /* A fn may cancel a job further down this batch: the flag is re-read per job. */
        if (!j->cancelled) {
            drop_live_ref();
            j->fn(j->ud, j->status, j->result);
        }
        job_free(j);
        j = next;
    }
}

static void join_workers(void)
{
    pthread_mutex_lock(&P.mu);
    P.stopping = true;
    pthread_cond_broadcast(&P.cv);
    pthread_mutex_unlock(&P.mu);
    for (int i = 0; i < P.nthreads; i++) pthread_join(P.threads[i], NULL);
    P.nthreads = 0;
}

int kx_crypto_start(struct ev_loop *loop)
{
    if (P.running || !loop) return KX_EINVAL;
    P.loop = loop;
    P.stopping = false;
    ev_async_init(&P.async, on_async);
    ev_async_start(loop, &P.async);
    ev_unref(loop); /* idle pool: let ev_run return */
    P.running = true;
    /* Workers block every signal so SIGTERM/SIGINT reach the loop thread's handlers. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < KX_CRYPTO_THREADS; i++) {
        if (pthread_create(&P.threads[i], NULL, worker_main, NULL) != 0) break;
        P.nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (P.nthreads < KX_CRYPTO_THREADS) {
        kx_crypto_stop();
        return KX_EIO;
    }
    return KX_OK;
}

void kx_crypto_stop(void)
{
    if (!P.running) return;
    join_workers();
    /* Every job is now in one of the two lists; none will be answered. */
    kx_crypto_job_t *j;
    while ((j = list_pop(&P.todo))) job_free(j);
    while ((j = list_pop(&P.done))) job_free(j);
    while (P.live > 0) drop_live_ref();
    ev_ref(P.loop);
    ev_async_stop(P.loop, &P.async);
    P.running = false;
    P.stopping = false;
}

static kx_crypto_job_t *post(job_kind_t kind, const char *pw, size_t len, const char *stored, size_t slen,
                             kx_crypto_fn fn, void *ud)
{
    if (!P.running || !fn || P.in_flight >= KX_CRYPTO_MAX_JOBS) return NULL;
    kx_crypto_job_t *j = kx_xcalloc(1, sizeof *j);
    j->kind = kind;
    j->fn = fn;
    j->ud = ud;
    if (valid_password(pw, len)) {
        j->pw = kx_xmalloc(len);
        memcpy(j->pw, pw, len);
        j->pw_len = len;
    }
    if (stored && slen > 0 && slen < KX_CRYPTO_HASH_MAX) {
        j->stored = kx_xmalloc(slen);
        memcpy(j->stored, stored, slen);
        j->stored_len = slen;
    }
    P.in_flight++;
    P.live++;
    ev_ref(P.loop);
    pthread_mutex_lock(&P.mu);
    list_push(&P.todo, j);
    pthread_cond_signal(&P.cv);
    pthread_mutex_unlock(&P.mu);
    return j;
}

kx_crypto_job_t *kx_crypto_hash(const char *pw, size_t len, kx_crypto_fn fn, void *ud)
{
    return post(JOB_HASH, pw, len, NULL, 0, fn, ud);
}

kx_crypto_job_t *kx_crypto_verify(const char *pw, size_t len, const char *stored, size_t slen,
                                  kx_crypto_fn fn, void *ud)
{
    return post(JOB_VERIFY, pw, len, stored, slen, fn, ud);
}

void kx_crypto_cancel(kx_crypto_job_t *job)
{
    if (!job) return;
    pthread_mutex_lock(&P.mu);
    bool was = job->cancelled;
    job->cancelled = true;
    pthread_mutex_unlock(&P.mu);
    if (!was) drop_live_ref();
}

int kx_crypto_in_flight(void)
{
    return P.in_flight;
}
