/* router.c — route table (see router.h).
 *
 * Static routes (no parameter) live in an open-addressing hash keyed by method + path: one
 * lookup whatever the number of routes. Parameterised routes live in a segment tree: each node
 * has its literal children sorted by text (binary search), at most one `:param` child and at
 * most one `*rest` child; a route ends at a node as a terminal (method, registration order,
 * its parameter names). A match walks the tree once, trying the literal child, then the
 * parameter child, then the rest child, and keeps the terminal registered first — the rule
 * router.h states — so each tree node is visited at most once per match. The cost of a match
 * follows the path's length, not the number of routes. */
#include "router.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_SEGS 32
#define MAX_METHOD 16

typedef struct {
    const char *text; /* literal text, or the param name without ':' / '*' */
    size_t len;
    bool param;
    bool rest; /* "*name": the rest of the path (last segment only) */
} seg_t;

/* ---- static routes: open addressing, linear probing ------------------------------------------ */

typedef struct {
    char *key; /* "METHOD path"; NULL: empty slot */
    size_t key_len;
    uint32_t hash;
    int action_id;
} slot_t;

/* ---- dynamic routes: the segment tree --------------------------------------------------------- */

typedef struct node node_t;

typedef struct {
    char method[MAX_METHOD];
    int order; /* registration order: the first registered wins */
    int action_id;
    int nparams;
    char **names; /* parameter names in path order */
    size_t *name_lens;
} term_t;

struct node {
    char *text; /* this node's literal segment (NULL for param/rest nodes) */
    size_t len;
    node_t **lits; /* sorted by (len, bytes) */
    int nlits, caplits;
    node_t *param; /* ":x" child */
    node_t *rest;  /* "*x" child (a leaf) */
    term_t *terms;
    int nterms;
};

struct kx_router {
    slot_t *slots;
    size_t nslots, used; /* nslots: a power of two */
    node_t root;
    int order;
};

kx_router_t *kx_router_new(void)
{
    kx_router_t *r = kx_xcalloc(1, sizeof(kx_router_t));
    r->nslots = 64;
    r->slots = kx_xcalloc(r->nslots, sizeof(slot_t));
    return r;
}

static void node_free(node_t *n)
{
    for (int i = 0; i < n->nlits; i++) {
        node_free(n->lits[i]);
        free(n->lits[i]);
    }
    free(n->lits);
    if (n->param) node_free(n->param), free(n->param);
    if (n->rest) node_free(n->rest), free(n->rest);
    for (int i = 0; i < n->nterms; i++) {
        for (int p = 0; p < n->terms[i].nparams; p++) free(n->terms[i].names[p]);
        free(n->terms[i].names);
        free(n->terms[i].name_lens);
    }
    free(n->terms);
    free(n->text);
}

void kx_router_free(kx_router_t *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nslots; i++) free(r->slots[i].key);
    free(r->slots);
    node_free(&r->root);
    free(r);
}

/* ---- parsing a route ------------------------------------------------------------------------ */

static bool valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n >= MAX_METHOD) return false;
    for (size_t i = 0; i < n; i++)
        if (!isupper((unsigned char)m[i])) return false;
    return true;
}

static bool valid_param_name(const char *t, size_t n)
{
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)t[i]) && t[i] != '_') return false;
    return true;
}

/* Splits route (starting with '/') into segs pointing into it; *dynamic when any is a param. */
static int split_route(const char *route, seg_t *segs, int *nsegs, bool *dynamic, char *err, size_t errcap)
{
    const char *p = route + 1;
    int n = 0, nparams = 0;
    *dynamic = false;
    *nsegs = 0;
    if (*p == '\0') return KX_OK; /* "/" */
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if ((p[0] == ':' || p[0] == '*') && nparams == KX_ROUTE_MAX_PARAMS) {
            snprintf(err, errcap, "invalid route \"%s\": more than %d parameters", route,
                     KX_ROUTE_MAX_PARAMS);
            return KX_EINVAL;
        }
        if (len == 0 || n == MAX_SEGS) {
            snprintf(err, errcap, "invalid route \"%s\": empty segment or too many segments", route);
            return KX_EINVAL;
        }
        seg_t *s = &segs[n++];
        s->rest = p[0] == '*';
        if (s->rest && slash) {
            snprintf(err, errcap, "invalid route \"%s\": a *rest segment must be the last", route);
            return KX_EINVAL;
        }
        s->param = p[0] == ':' || s->rest;
        s->text = s->param ? p + 1 : p;
        s->len = s->param ? len - 1 : len;
        if (s->param) {
            if (!valid_param_name(s->text, s->len)) {
                snprintf(err, errcap, "invalid route \"%s\": parameter names are [A-Za-z0-9_]+", route);
                return KX_EINVAL;
            }
            *dynamic = true;
            nparams++;
        }
        if (!slash) break;
        p = slash + 1;
    }
    *nsegs = n;
    return KX_OK;
}

/* ---- the static hash ---------------------------------------------------------------------- */

static uint32_t hash_bytes(uint32_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u; /* FNV-1a */
    return h;
}

static uint32_t hash_key(const char *m, size_t mlen, const char *path, size_t plen)
{
    uint32_t h = hash_bytes(2166136261u, m, mlen);
    h = hash_bytes(h, " ", 1);
    return hash_bytes(h, path, plen);
}

static slot_t *find_slot(const kx_router_t *r, uint32_t h, const char *m, size_t mlen, const char *path,
                         size_t plen)
{
    size_t mask = r->nslots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot_t *s = &r->slots[i];
        if (!s->key) return s;
        if (s->hash == h && s->key_len == mlen + 1 + plen && memcmp(s->key, m, mlen) == 0 &&
            s->key[mlen] == ' ' && memcmp(s->key + mlen + 1, path, plen) == 0)
            return s;
    }
}

static void grow_slots(kx_router_t *r)
{
    slot_t *old = r->slots;
    size_t n = r->nslots;
    r->nslots = n * 2;
    r->slots = kx_xcalloc(r->nslots, sizeof(slot_t));
    for (size_t i = 0; i < n; i++) {
        if (!old[i].key) continue;
        size_t mask = r->nslots - 1, j = old[i].hash & mask;
        while (r->slots[j].key) j = (j + 1) & mask;
        r->slots[j] = old[i];
    }
    free(old);
}

static int add_static(kx_router_t *r, const char *method, const char *full, const char *route, int action_id,
                      char *err, size_t errcap)
{
    size_t mlen = strlen(method), plen = strlen(full);
    uint32_t h = hash_key(method, mlen, full, plen);
    slot_t *s = find_slot(r, h, method, mlen, full, plen);
    if (s->key) {
        snprintf(err, errcap, "duplicate route %s %s", method, route);
        return KX_EINVAL;
    }
    s->key = kx_xmalloc(mlen + 1 + plen + 1);
    memcpy(s->key, method, mlen);
    s->key[mlen] = ' ';
    memcpy(s->key + mlen + 1, full, plen + 1);
    s->key_len = mlen + 1 + plen;
    s->hash = h;
    s->action_id = action_id;
    if (++r->used * 2 > r->nslots) grow_slots(r);
    return KX_OK;
}

/* ---- the segment tree --------------------------------------------------------------------- */

static int lit_cmp(const char *a, size_t al, const char *b, size_t bl)
{
    if (al != bl) return al < bl ? -1 : 1;
    return memcmp(a, b, al);
}

/* Index of the literal child `t`, or -(insertion point) - 1. */
static int find_lit(const node_t *n, const char *t, size_t len)
{
    int lo = 0, hi = n->nlits - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        int c = lit_cmp(n->lits[mid]->text, n->lits[mid]->len, t, len);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -lo - 1;
}

static node_t *lit_child(node_t *n, const char *t, size_t len)
{
    int at = find_lit(n, t, len);
    if (at >= 0) return n->lits[at];
    at = -at - 1;
    if (n->nlits == n->caplits) {
        n->caplits = n->caplits ? n->caplits * 2 : 4;
        n->lits = kx_xrealloc(n->lits, sizeof *n->lits * (size_t)n->caplits);
    }
    memmove(n->lits + at + 1, n->lits + at, sizeof *n->lits * (size_t)(n->nlits - at));
    node_t *c = kx_xcalloc(1, sizeof *c);
    c->text = kx_xstrndup(t, len);
    c->len = len;
    n->lits[at] = c;
    n->nlits++;
    return c;
}

static node_t *child_for(node_t *n, const seg_t *s)
{
    node_t **slot = s->rest ? &n->rest : s->param ? &n->param : NULL;
    if (!slot) return lit_child(n, s->text, s->len);
    if (!*slot) *slot = kx_xcalloc(1, sizeof **slot);
    return *slot;
}

static int add_dynamic(kx_router_t *r, const char *method, const seg_t *segs, int nsegs, const char *route,
                       int action_id, char *err, size_t errcap)
{
    node_t *n = &r->root;
    for (int i = 0; i < nsegs; i++) n = child_for(n, &segs[i]);
    for (int i = 0; i < n->nterms; i++) {
        if (strcmp(n->terms[i].method, method) != 0) continue;
        /* The same shape and names is the same route; other names would shadow each other. */
        snprintf(err, errcap, "duplicate route %s %s", method, route);
        return KX_EINVAL;
    }
    n->terms = kx_xrealloc(n->terms, sizeof *n->terms * (size_t)(n->nterms + 1));
    term_t *t = &n->terms[n->nterms++];
    memset(t, 0, sizeof *t);
    snprintf(t->method, sizeof t->method, "%s", method);
    t->order = r->order++;
    t->action_id = action_id;
    for (int i = 0; i < nsegs; i++) t->nparams += segs[i].param;
    t->names = kx_xcalloc((size_t)t->nparams, sizeof *t->names);
    t->name_lens = kx_xcalloc((size_t)t->nparams, sizeof *t->name_lens);
    for (int i = 0, p = 0; i < nsegs; i++) {
        if (!segs[i].param) continue;
        t->names[p] = kx_xstrndup(segs[i].text, segs[i].len);
        t->name_lens[p++] = segs[i].len;
    }
    return KX_OK;
}

/* ---- adding ------------------------------------------------------------------------------- */

int kx_router_add(kx_router_t *r, const char *method, const char *route, int action_id, char *err,
                  size_t errcap)
{
    return kx_router_add_under(r, "", method, route, action_id, err, errcap);
}

int kx_router_add_under(kx_router_t *r, const char *prefix, const char *method, const char *route,
                        int action_id, char *err, size_t errcap)
{
    if (!valid_method(method)) {
        snprintf(err, errcap, "invalid method \"%s\" (expected GET, POST, PUT, PATCH, DELETE, ...)", method);
        return KX_EINVAL;
    }
    if (route[0] != '/') {
        snprintf(err, errcap, "invalid route \"%s\": must start with /", route);
        return KX_EINVAL;
    }
    /* The prefix is a path of its own ("/api"); "/" and "" add nothing. */
    size_t pl = strlen(prefix);
    if (pl == 1 && prefix[0] == '/') pl = 0;
    char *full = kx_xmalloc(pl + strlen(route) + 1);
    memcpy(full, prefix, pl);
    strcpy(full + pl, route);
    seg_t segs[MAX_SEGS];
    int nsegs;
    bool dynamic;
    /* The action's own route is checked first, so errors name what the app wrote. */
    int rc = split_route(route, segs, &nsegs, &dynamic, err, errcap);
    if (rc == KX_OK && pl) rc = split_route(full, segs, &nsegs, &dynamic, err, errcap);
    if (rc == KX_OK) {
        rc = dynamic ? add_dynamic(r, method, segs, nsegs, route, action_id, err, errcap)
                     : add_static(r, method, full, route, action_id, err, errcap);
    }
    free(full);
    return rc;
}

/* ---- matching ----------------------------------------------------------------------------- */

static bool method_is(const term_t *t, const char *m, size_t mlen)
{
    return strlen(t->method) == mlen && memcmp(t->method, m, mlen) == 0;
}

/* The terminal of n for this method (HEAD also takes GET's), or NULL. */
static const term_t *term_for(const node_t *n, const char *m, size_t mlen)
{
    const term_t *head_get = NULL;
    for (int i = 0; i < n->nterms; i++) {
        const term_t *t = &n->terms[i];
        if (method_is(t, m, mlen)) return t;
        if (mlen == 4 && memcmp(m, "HEAD", 4) == 0 && strcmp(t->method, "GET") == 0) head_get = t;
    }
    return head_get;
}

typedef struct {
    const char *method;
    size_t mlen;
    const char *end; /* end of the path */
    const char *spans[KX_ROUTE_MAX_PARAMS];
    size_t span_lens[KX_ROUTE_MAX_PARAMS];
    int nspans; /* captured values of the current walk */
    const term_t *best;
    const char *best_spans[KX_ROUTE_MAX_PARAMS];
    size_t best_lens[KX_ROUTE_MAX_PARAMS];
} walk_t;

static void offer(walk_t *w, const term_t *t)
{
    if (!t || (w->best && w->best->order <= t->order) || t->nparams != w->nspans) return;
    w->best = t;
    for (int i = 0; i < w->nspans; i++) {
        w->best_spans[i] = w->spans[i];
        w->best_lens[i] = w->span_lens[i];
    }
}

/* p: the start of the next segment (just past a '/'), depth: segments taken so far. */
static void walk(walk_t *w, const node_t *n, const char *p, int depth)
{
    if (p > w->end) { /* the whole path was consumed */
        offer(w, term_for(n, w->method, w->mlen));
        return;
    }
    if (depth == MAX_SEGS) return;
    const char *slash = memchr(p, '/', (size_t)(w->end - p));
    const char *se = slash ? slash : w->end;
    size_t len = (size_t)(se - p);
    if (len == 0) return; /* empty segment (or a trailing slash): never a match */
    const char *next = slash ? slash + 1 : w->end + 1;
    int at = find_lit(n, p, len);
    if (at >= 0) walk(w, n->lits[at], next, depth + 1);
    if (n->param && w->nspans < KX_ROUTE_MAX_PARAMS) {
        w->spans[w->nspans] = p;
        w->span_lens[w->nspans++] = len;
        walk(w, n->param, next, depth + 1);
        w->nspans--;
    }
    if (n->rest && w->nspans < KX_ROUTE_MAX_PARAMS) { /* the rest of the path, slashes included */
        w->spans[w->nspans] = p;
        w->span_lens[w->nspans++] = (size_t)(w->end - p);
        offer(w, term_for(n->rest, w->method, w->mlen));
        w->nspans--;
    }
}

int kx_router_match(const kx_router_t *r, const char *method, size_t mlen, const char *path, size_t plen,
                    int *action_id, kx_route_param_t *params, int *nparams)
{
    *nparams = 0;
    if (plen == 0 || path[0] != '/') return KX_ENOTFOUND;
    if (mlen == 0 || mlen >= MAX_METHOD) return KX_ENOTFOUND;
    slot_t *s = find_slot(r, hash_key(method, mlen, path, plen), method, mlen, path, plen);
    if (!s->key && mlen == 4 && memcmp(method, "HEAD", 4) == 0)
        s = find_slot(r, hash_key("GET", 3, path, plen), "GET", 3, path, plen);
    if (s->key) {
        *action_id = s->action_id;
        return KX_OK;
    }
    if (r->root.nlits == 0 && !r->root.param && !r->root.rest) return KX_ENOTFOUND;
    walk_t w;
    w.method = method;
    w.mlen = mlen;
    w.end = path + plen;
    w.nspans = 0;
    w.best = NULL;
    walk(&w, &r->root, path + 1, 0);
    if (!w.best) return KX_ENOTFOUND;
    for (int i = 0; i < w.best->nparams; i++)
        params[i] = (kx_route_param_t){ w.best->names[i], w.best->name_lens[i], w.best_spans[i],
                                        w.best_lens[i] };
    *nparams = w.best->nparams;
    *action_id = w.best->action_id;
    return KX_OK;
}
