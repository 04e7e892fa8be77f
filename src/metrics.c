/* metrics.c — counters in shared memory and their Prometheus rendering (see metrics.h). */
#include "metrics.h"
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

/* Request and action durations, seconds (Prometheus' default buckets, plus 1 ms). */
static const double bounds[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
#define NB 12

static const char *const methods[] = { "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other" };
#define NM 8

/* The statuses keryx and usual apps answer get their own label; any other counts under its
 * class ("4xx"), so the table stays fixed. */
static const uint16_t codes[] = { 100, 101, 200, 201, 202, 204, 206, 301, 302, 303, 304, 307,
                                  308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 413, 415,
                                  422, 426, 429, 431, 500, 501, 502, 503, 504, 505 };
#define NC 34
#define NS (NC + 5)

typedef struct {
    uint64_t b[NB + 1]; /* per bucket (not cumulative); b[NB] is above the last bound */
    uint64_t sum_us;
} hist_t;

typedef struct {
    int n; /* published with release order after the row is written */
    uint8_t len[KX_METRICS_MAX_ROUTES];
    char name[KX_METRICS_MAX_ROUTES][KX_METRICS_NAME_MAX];
} names_t;

typedef struct {
    int lock; /* label registration only */
    names_t routes, actions;
    uint64_t http[KX_METRICS_MAX_ROUTES][NM][NS];
    hist_t http_dur[KX_METRICS_MAX_ROUTES];
    uint64_t action_runs[KX_METRICS_MAX_ACTIONS][2]; /* [ok ? 0 : 1] */
    hist_t action_dur[KX_METRICS_MAX_ACTIONS];
    uint64_t task_enqueued[KX_METRICS_MAX_ACTIONS];
    uint64_t task_executed[KX_METRICS_MAX_ACTIONS][2];
    uint64_t counters[KX_METRIC_N_COUNTERS];
    struct {
        int pid;
        int64_t g[KX_GAUGE_N];
    } procs[KX_METRICS_PROCS];
} region_t;

_Static_assert(KX_METRICS_MAX_ACTIONS <= KX_METRICS_MAX_ROUTES, "names_t holds both label tables");

static region_t *R;
static uint8_t status_slot[600];
static int my_slot = -1; /* this process's gauge slot; -1 unclaimed, -2 none left */

#define ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)

/* ---- set-up ------------------------------------------------------------------------------- */

static void forget_slot(void)
{
    my_slot = -1; /* a forked child counts its own connections */
}

static void add_fixed(names_t *t, const char *name)
{
    size_t n = strlen(name);
    memcpy(t->name[t->n], name, n);
    t->len[t->n] = (uint8_t)n;
    t->n++;
}

int kx_metrics_init(char *err, size_t errcap)
{
    if (R) return KX_OK;
    void *p = mmap(NULL, sizeof(region_t), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errcap, "cannot map the metrics memory (%zu bytes): %s", sizeof(region_t),
                 strerror(errno));
        return KX_EIO;
    }
    R = p; /* zero-filled by the kernel */
    add_fixed(&R->routes, "unknown");
    add_fixed(&R->routes, "static");
    add_fixed(&R->routes, "other");
    add_fixed(&R->actions, "other");
    for (int s = 0; s < 600; s++) status_slot[s] = (uint8_t)(NC + (s >= 100 ? s / 100 - 1 : 4));
    for (int i = 0; i < NC; i++) status_slot[codes[i]] = (uint8_t)i;
    pthread_atfork(NULL, NULL, forget_slot);
    return KX_OK;
}

bool kx_metrics_enabled(void)
{
    return R != NULL;
}

/* ---- labels ------------------------------------------------------------------------------- */

static int find(const names_t *t, const char *s, size_t len)
{
    int n = __atomic_load_n(&t->n, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (t->len[i] == len && memcmp(t->name[i], s, len) == 0) return i;
    return -1;
}

/* Found, or added under the lock (another process may add the same name meanwhile). */
static int intern(names_t *t, int max, int other, const char *s, size_t len)
{
    if (len >= KX_METRICS_NAME_MAX) len = KX_METRICS_NAME_MAX - 1;
    int i = find(t, s, len);
    if (i >= 0) return i;
    while (__atomic_exchange_n(&R->lock, 1, __ATOMIC_ACQUIRE)) sched_yield();
    i = find(t, s, len);
    if (i < 0 && t->n < max) {
        i = t->n;
        memcpy(t->name[i], s, len);
        t->len[i] = (uint8_t)len;
        __atomic_store_n(&t->n, i + 1, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&R->lock, 0, __ATOMIC_RELEASE);
    return i < 0 ? other : i;
}

int kx_metrics_route(const char *pattern)
{
    if (!R) return KX_METRICS_ROUTE_UNKNOWN;
    return intern(&R->routes, KX_METRICS_MAX_ROUTES, KX_METRICS_ROUTE_OTHER, pattern, strlen(pattern));
}

/* ---- counting ----------------------------------------------------------------------------- */

static int method_slot(const char *m, size_t n)
{
    for (int i = 0; i < NM - 1; i++)
        if (strlen(methods[i]) == n && memcmp(methods[i], m, n) == 0) return i;
    return NM - 1;
}

static void observe(hist_t *h, double seconds)
{
    if (!(seconds >= 0)) seconds = 0; /* NaN or negative (a clock step) */
    if (seconds > 1e6) seconds = 1e6; /* the cast below must stay in range */
    int i = 0;
    while (i < NB && seconds > bounds[i]) i++;
    ADD(&h->b[i], 1);
    ADD(&h->sum_us, (uint64_t)(seconds * 1e6 + 0.5));
}

void kx_metrics_http(const char *method, size_t mlen, int route, int status, double seconds)
{
    if (!R) return;
    if (route < 0 || route >= KX_METRICS_MAX_ROUTES) route = KX_METRICS_ROUTE_OTHER;
    int s = status >= 0 && status < 600 ? status_slot[status] : NC + 4;
    ADD(&R->http[route][method ? method_slot(method, mlen) : NM - 1][s], 1);
    if (seconds >= 0) observe(&R->http_dur[route], seconds);
}

static int action_slot(const char *name, size_t len)
{
    return intern(&R->actions, KX_METRICS_MAX_ACTIONS, 0, name, len);
}

void kx_metrics_action(const char *name, size_t len, bool ok, double seconds)
{
    if (!R) return;
    int a = action_slot(name, len);
    ADD(&R->action_runs[a][ok ? 0 : 1], 1);
    observe(&R->action_dur[a], seconds);
}

void kx_metrics_task(kx_metric_task_t kind, const char *action, size_t len, bool ok)
{
    if (!R) return;
    int a = action_slot(action, len);
    if (kind == KX_TASK_ENQUEUED) ADD(&R->task_enqueued[a], 1);
    else ADD(&R->task_executed[a][ok ? 0 : 1], 1);
}

void kx_metrics_count(kx_metric_counter_t which)
{
    if (!R || which >= KX_METRIC_N_COUNTERS) return;
    ADD(&R->counters[which], 1);
}

static bool alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* This process's slot: its own, else a free one or one of a process that is gone. */
static int claim_slot(void)
{
    int me = getpid();
    for (int i = 0; i < KX_METRICS_PROCS; i++)
        if (LOAD(&R->procs[i].pid) == me) return i;
    for (int i = 0; i < KX_METRICS_PROCS; i++) {
        int p = LOAD(&R->procs[i].pid);
        if (p != 0 && alive(p)) continue;
        if (!__atomic_compare_exchange_n(&R->procs[i].pid, &p, me, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            continue;
        for (int g = 0; g < KX_GAUGE_N; g++) __atomic_store_n(&R->procs[i].g[g], 0, __ATOMIC_RELAXED);
        return i;
    }
    return -2;
}

void kx_metrics_gauge_add(kx_metric_gauge_t which, int delta)
{
    if (!R || which >= KX_GAUGE_N) return;
    if (my_slot == -1) my_slot = claim_slot();
    if (my_slot < 0) return;
    ADD(&R->procs[my_slot].g[which], delta);
}

/* ---- rendering ---------------------------------------------------------------------------- */

static void family(kx_buf_t *b, const char *name, const char *type, const char *help)
{
    kx_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and line feed escaped (format 0.0.4). */
static void label_value(kx_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\') kx_buf_append(b, "\\\\", 2);
        else if (s[i] == '"') kx_buf_append(b, "\\\"", 2);
        else if (s[i] == '\n') kx_buf_append(b, "\\n", 2);
        else kx_buf_append(b, &s[i], 1);
    }
}

static void label(kx_buf_t *b, const char *key, const names_t *t, int i)
{
    kx_buf_printf(b, "%s=\"", key);
    label_value(b, t->name[i], t->len[i]);
    kx_buf_puts(b, "\"");
}

static void status_label(kx_buf_t *b, int s)
{
    if (s < NC) kx_buf_printf(b, "status=\"%u\"", codes[s]);
    else kx_buf_printf(b, "status=\"%dxx\"", s - NC + 1);
}

/* Buckets cumulative up to +Inf; _count is the +Inf bucket read here, so the two always agree. */
static void histogram(kx_buf_t *b, const char *name, const char *key, const names_t *t, const hist_t *h,
                      int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t cum = 0, per[NB + 1];
        for (int k = 0; k <= NB; k++) cum += per[k] = LOAD(&h[i].b[k]);
        if (cum == 0) continue;
        cum = 0;
        for (int k = 0; k <= NB; k++) {
            cum += per[k];
            kx_buf_printf(b, "%s_bucket{", name);
            label(b, key, t, i);
            if (k < NB) kx_buf_printf(b, ",le=\"%g\"} %llu\n", bounds[k], (unsigned long long)cum);
            else kx_buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        kx_buf_printf(b, "%s_sum{", name);
        label(b, key, t, i);
        kx_buf_printf(b, "} %.6f\n%s_count{", (double)LOAD(&h[i].sum_us) / 1e6, name);
        label(b, key, t, i);
        kx_buf_printf(b, "} %llu\n", (unsigned long long)cum);
    }
}

static void render_http(kx_buf_t *b, int nroutes)
{
    family(b, "keryx_http_requests_total", "counter", "HTTP responses by method, route pattern and status.");
    for (int r = 0; r < nroutes; r++)
        for (int m = 0; m < NM; m++)
            for (int s = 0; s < NS; s++) {
                uint64_t v = LOAD(&R->http[r][m][s]);
                if (!v) continue;
                kx_buf_printf(b, "keryx_http_requests_total{method=\"%s\",", methods[m]);
                label(b, "route", &R->routes, r);
                kx_buf_puts(b, ",");
                status_label(b, s);
                kx_buf_printf(b, "} %llu\n", (unsigned long long)v);
            }
    family(b, "keryx_http_request_duration_seconds", "histogram",
           "Time from a request's head to the end of its response, by route pattern.");
    histogram(b, "keryx_http_request_duration_seconds", "route", &R->routes, R->http_dur, nroutes);
}

static void render_actions(kx_buf_t *b, int nactions)
{
    static const char *const outcome[] = { "success", "error" }, *const task_outcome[] = { "success",
                                                                                           "failure" };
    family(b, "keryx_action_executions_total", "counter", "Actions run, by action and outcome.");
    for (int a = 0; a < nactions; a++)
        for (int k = 0; k < 2; k++) {
            uint64_t v = LOAD(&R->action_runs[a][k]);
            if (!v) continue;
            kx_buf_puts(b, "keryx_action_executions_total{");
            label(b, "action", &R->actions, a);
            kx_buf_printf(b, ",status=\"%s\"} %llu\n", outcome[k], (unsigned long long)v);
        }
    family(b, "keryx_action_duration_seconds", "histogram", "Action run time, by action.");
    histogram(b, "keryx_action_duration_seconds", "action", &R->actions, R->action_dur, nactions);
    family(b, "keryx_task_enqueued_total", "counter", "Background tasks enqueued, by action.");
    for (int a = 0; a < nactions; a++) {
        uint64_t v = LOAD(&R->task_enqueued[a]);
        if (!v) continue;
        kx_buf_puts(b, "keryx_task_enqueued_total{");
        label(b, "action", &R->actions, a);
        kx_buf_printf(b, "} %llu\n", (unsigned long long)v);
    }
    family(b, "keryx_task_executed_total", "counter", "Background tasks run, by action and outcome.");
    for (int a = 0; a < nactions; a++)
        for (int k = 0; k < 2; k++) {
            uint64_t v = LOAD(&R->task_executed[a][k]);
            if (!v) continue;
            kx_buf_puts(b, "keryx_task_executed_total{");
            label(b, "action", &R->actions, a);
            kx_buf_printf(b, ",status=\"%s\"} %llu\n", task_outcome[k], (unsigned long long)v);
        }
}

static void render_plain(kx_buf_t *b)
{
    static const struct {
        const char *name, *help;
    } counters[KX_METRIC_N_COUNTERS] = {
        { "keryx_ws_messages_total", "WebSocket messages received." },
        { "keryx_rate_limit_refusals_total", "Requests refused by the rate limiter." },
        { "keryx_redis_errors_total", "Redis commands that failed (error reply, timeout, connection down)." },
    };
    for (int i = 0; i < KX_METRIC_N_COUNTERS; i++) {
        family(b, counters[i].name, "counter", counters[i].help);
        kx_buf_printf(b, "%s %llu\n", counters[i].name, (unsigned long long)LOAD(&R->counters[i]));
    }
    static const struct {
        const char *name, *help;
    } gauges[KX_GAUGE_N] = {
        { "keryx_system_connections", "Open client connections (HTTP, WebSocket included)." },
        { "keryx_ws_connections", "Open WebSocket connections." },
    };
    int64_t sums[KX_GAUGE_N] = { 0 };
    for (int i = 0; i < KX_METRICS_PROCS; i++) {
        if (!alive(LOAD(&R->procs[i].pid))) continue;
        for (int g = 0; g < KX_GAUGE_N; g++) sums[g] += LOAD(&R->procs[i].g[g]);
    }
    for (int g = 0; g < KX_GAUGE_N; g++) {
        family(b, gauges[g].name, "gauge", gauges[g].help);
        kx_buf_printf(b, "%s %lld\n", gauges[g].name, (long long)sums[g]);
    }
}

void kx_metrics_render(kx_buf_t *out)
{
    if (!R) return;
    render_http(out, __atomic_load_n(&R->routes.n, __ATOMIC_ACQUIRE));
    render_actions(out, __atomic_load_n(&R->actions.n, __ATOMIC_ACQUIRE));
    render_plain(out);
}

/* ---- Basic auth --------------------------------------------------------------------------- */

static int b64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

/* Standard base64, padding optional; returns the decoded length or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    while (n > 0 && in[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap) return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return (long)o;
}

/* Equal in constant time whatever the lengths: the SHA-256 of each side are compared. */
static bool same(const void *a, size_t alen, const char *b)
{
    unsigned char da[32], db[32];
    unsigned int la = 0, lb = 0;
    if (!EVP_Digest(a, alen, da, &la, EVP_sha256(), NULL) ||
        !EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL))
        return false;
    return la == 32 && lb == 32 && CRYPTO_memcmp(da, db, 32) == 0;
}

bool kx_metrics_auth_ok(const char *header, size_t len, const char *user, const char *password)
{
    if (!header || len < 6 || strncasecmp(header, "Basic ", 6) != 0) return false;
    const char *p = header + 6, *end = header + len;
    while (p < end && *p == ' ') p++;
    while (end > p && end[-1] == ' ') end--;
    unsigned char raw[512];
    long n = b64_decode(p, (size_t)(end - p), raw, sizeof raw);
    if (n <= 0) return false;
    unsigned char *colon = memchr(raw, ':', (size_t)n);
    if (!colon) return false;
    size_t ulen = (size_t)(colon - raw);
    /* Both compared, so the time does not say which one was wrong. */
    bool u = same(raw, ulen, user), pw = same(colon + 1, (size_t)n - ulen - 1, password);
    return u & pw;
}
