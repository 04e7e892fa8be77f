/* crypto.h — session/random ids and password hashing (ids are 256 bits from the CSPRNG).
 *
 * Owns: the 256-bit random id format (unpadded base64url from RAND_bytes), the stored
 * password-hash format `scrypt$N$r$p$<salt b64url>$<hash b64url>`, and a small pool of
 * worker threads that run scrypt off the event loop, handing results back through an
 * ev_async. Callers: lua_api_crypto.c (core.random_id / valid_id / hash_password /
 * verify_password), server.c (kx_crypto_start / kx_crypto_stop), tests.
 * Never: touches Lua; falls back to a weak RNG; calls a job's callback on a worker thread;
 * lets a stored hash choose an unbounded cost (memory and work are capped, below).
 *
 * Threads: everything here is for the loop thread, except the *_sync and id helpers, which
 * are thread-safe. A job's `fn` runs on the loop thread exactly once, unless the job is
 * cancelled first (then never). After `fn` has run, or after kx_crypto_cancel, or after
 * kx_crypto_stop, the job handle is gone: never pass it anywhere again. */
#ifndef KX_CRYPTO_H
#define KX_CRYPTO_H
#include <ev.h>
#include "common.h"

#define KX_CRYPTO_ID_LEN 43    /* 32 random bytes, unpadded base64url */
#define KX_CRYPTO_PW_MAX 4096  /* passwords are 1..4096 bytes */
#define KX_CRYPTO_HASH_MAX 256 /* buffer size that holds any stored hash we accept */
#define KX_CRYPTO_THREADS 2
#define KX_CRYPTO_MAX_JOBS 1024 /* posted but not yet finished (cancelled ones too) */

/* What a new hash uses; verification reads the parameters back from the stored string. */
#define KX_CRYPTO_SCRYPT_N 16384
#define KX_CRYPTO_SCRYPT_R 8
#define KX_CRYPTO_SCRYPT_P 1
/* Accepted stored parameters: N a power of two in 2^10..2^20, r 1..32, p 1..16, salt and hash
 * 16..64 bytes — and, so a tampered record cannot exhaust memory or pin a worker for
 * minutes, N*r <= 2^20 (128 MiB of scrypt memory) and N*r*p <= 2^21 (16x the default). */
#define KX_CRYPTO_MAX_NR (1u << 20)
#define KX_CRYPTO_MAX_NRP (1u << 21)

/* Writes 43 characters + NUL into out (cap >= 44). KX_OK; KX_EINVAL when cap is too small;
 * KX_EIO when the CSPRNG fails (out is then an empty string). */
int kx_crypto_random_id(char *out, size_t cap);
/* True iff s is exactly what kx_crypto_random_id produces: 43 chars of [A-Za-z0-9_-] whose
 * last character carries no stray bits (canonical encoding of 32 bytes). */
bool kx_crypto_valid_id(const char *s, size_t len);

/* Unpadded base64url of n bytes: writes ceil(4n/3) characters and a NUL into out (the caller
 * sizes it), returns the characters written. */
size_t kx_crypto_b64url(const unsigned char *in, size_t n, char *out);

/* Hashes pw (1..KX_CRYPTO_PW_MAX bytes) with a fresh 16-byte salt into out (NUL-terminated).
 * KX_OK; KX_EINVAL for a bad password length or a too-small out; KX_EIO if OpenSSL fails. */
int kx_crypto_hash_sync(const char *pw, size_t len, char *out, size_t cap);
/* True iff pw hashes to the stored value under its own parameters (constant-time compare).
 * Anything that cannot match is false: malformed or out-of-range stored strings, an empty or
 * over-long password. Never crashes on hostile input. */
bool kx_crypto_verify_sync(const char *pw, size_t len, const char *stored, size_t slen);

/* ---- the worker pool (loop thread only) ---------------------------------------------------- */

typedef struct kx_crypto_job kx_crypto_job_t;
/* status KX_OK: result is the hash string, or "1"/"0" for a verify. Otherwise (hash only)
 * KX_EINVAL (bad password length) or KX_EIO, and result is "". `result` is valid only during
 * the call. fn may post or cancel other jobs, but must not call kx_crypto_stop. */
typedef void (*kx_crypto_fn)(void *ud, int status, const char *result);

/* Starts the threads and the ev_async on `loop`. KX_OK, or KX_EIO when threads cannot be
 * created. The async watcher does not keep the loop alive by itself; each posted job that is
 * neither finished nor cancelled does. Calling it again while running is KX_EINVAL. */
int kx_crypto_start(struct ev_loop *loop);
/* Joins the threads (a job being computed finishes first, ~50 ms) and drops every pending
 * job without calling its fn. Safe to call when not started. Not from inside a job's fn. */
void kx_crypto_stop(void);
/* Post a job. NULL when the pool is not running or KX_CRYPTO_MAX_JOBS jobs are in flight
 * ("busy"). The password and stored string are copied; the caller's buffers may go. */
kx_crypto_job_t *kx_crypto_hash(const char *pw, size_t len, kx_crypto_fn fn, void *ud);
kx_crypto_job_t *kx_crypto_verify(const char *pw, size_t len, const char *stored, size_t slen,
                                  kx_crypto_fn fn, void *ud);
/* fn will never be called; the memory is reclaimed once no worker uses it. Only for a job
 * whose fn has not run yet. */
void kx_crypto_cancel(kx_crypto_job_t *job);
/* Jobs posted and not yet reclaimed (cancelled ones still being computed count). */
int kx_crypto_in_flight(void);

#endif
