/* channels.c — local channel subscriptions and the fan-out of broadcasts (see channels.h). */
#include "channels.h"
#include "channel_name.h"
#include "ws.h"
#include <stdlib.h>
#include <string.h>

typedef struct chan chan_t;

struct chan {
    char *name;
    size_t len;
    uint32_t hash;
    kx_conn_t **subs;
    int n, cap;
    bool walking; /* a delivery is walking subs: an empty channel is freed after it */
    chan_t *next;
};

/* One socket's subscriptions, kept in the socket's kx_ws_user slot. */
typedef struct {
    chan_t **chans;
    int n_chans, cap_chans;
    bool batched; /* in this loop iteration's batch (B.conns) */
} subs_t;

static struct {
    chan_t **buckets;
    size_t nbuckets, nchans;
} C;

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static subs_t *subs_of(kx_conn_t *c, bool create)
{
    void **slot = kx_ws_user(c);
    if (!slot) return NULL;
    if (!*slot && create) *slot = kx_xcalloc(1, sizeof(subs_t));
    return *slot;
}

static chan_t *chan_find(const char *name, size_t len, bool create)
{
    if (C.nbuckets == 0) {
        if (!create) return NULL;
        C.nbuckets = 256;
        C.buckets = kx_xcalloc(C.nbuckets, sizeof *C.buckets);
    }
    uint32_t h = fnv1a(name, len);
    for (chan_t *ch = C.buckets[h % C.nbuckets]; ch; ch = ch->next)
        if (ch->hash == h && ch->len == len && memcmp(ch->name, name, len) == 0) return ch;
    if (!create) return NULL;
    if (C.nchans >= C.nbuckets) { /* grow: keep chains short */
        size_t nb = C.nbuckets * 2;
        chan_t **nbk = kx_xcalloc(nb, sizeof *nbk);
        for (size_t i = 0; i < C.nbuckets; i++) {
            for (chan_t *ch = C.buckets[i], *next; ch; ch = next) {
                next = ch->next;
                ch->next = nbk[ch->hash % nb];
                nbk[ch->hash % nb] = ch;
            }
        }
        free(C.buckets);
        C.buckets = nbk;
        C.nbuckets = nb;
    }
    chan_t *ch = kx_xcalloc(1, sizeof *ch);
    ch->name = kx_xstrndup(name, len);
    ch->len = len;
    ch->hash = h;
    ch->next = C.buckets[h % C.nbuckets];
    C.buckets[h % C.nbuckets] = ch;
    C.nchans++;
    return ch;
}

static void chan_drop_if_empty(chan_t *ch)
{
    if (ch->n > 0 || ch->walking) return;
    chan_t **p = &C.buckets[ch->hash % C.nbuckets];
    while (*p && *p != ch) p = &(*p)->next;
    if (*p) *p = ch->next;
    C.nchans--;
    free(ch->subs);
    free(ch->name);
    free(ch);
}

static int find_sub(const subs_t *ws, const char *name, size_t len)
{
    for (int i = 0; i < ws->n_chans; i++)
        if (ws->chans[i]->len == len && memcmp(ws->chans[i]->name, name, len) == 0) return i;
    return -1;
}

bool kx_channels_is_subscribed(kx_conn_t *c, const char *channel, size_t len)
{
    subs_t *ws = subs_of(c, false);
    return ws && find_sub(ws, channel, len) >= 0;
}

int kx_channels_count(kx_conn_t *c)
{
    subs_t *ws = subs_of(c, false);
    return ws ? ws->n_chans : 0;
}

int kx_channels_subscribe(kx_conn_t *c, const char *channel, size_t len)
{
    if (!kx_ws_user(c) || c->closed || !kx_channel_name_valid(channel, len)) return KX_EINVAL;
    subs_t *ws = subs_of(c, true);
    if (find_sub(ws, channel, len) >= 0) return KX_OK;
    int64_t max = kx_srv->cfg->ws_max_subscriptions;
    if (max > 0 && ws->n_chans >= max) return KX_ELIMIT;
    chan_t *ch = chan_find(channel, len, true);
    if (ch->n == ch->cap) {
        ch->cap = ch->cap ? ch->cap * 2 : 4;
        ch->subs = kx_xrealloc(ch->subs, sizeof *ch->subs * (size_t)ch->cap);
    }
    ch->subs[ch->n++] = c;
    if (ws->n_chans == ws->cap_chans) {
        ws->cap_chans = ws->cap_chans ? ws->cap_chans * 2 : 4;
        ws->chans = kx_xrealloc(ws->chans, sizeof *ws->chans * (size_t)ws->cap_chans);
    }
    ws->chans[ws->n_chans++] = ch;
    return KX_OK;
}

static void detach(const kx_conn_t *c, subs_t *ws, int idx)
{
    chan_t *ch = ws->chans[idx];
    for (int i = 0; i < ch->n; i++) {
        if (ch->subs[i] == c) {
            ch->subs[i] = ch->subs[--ch->n];
            break;
        }
    }
    ws->chans[idx] = ws->chans[--ws->n_chans];
    chan_drop_if_empty(ch);
}

int kx_channels_unsubscribe(kx_conn_t *c, const char *channel, size_t len)
{
    if (!kx_ws_user(c) || !kx_channel_name_valid(channel, len)) return KX_EINVAL;
    subs_t *ws = subs_of(c, false);
    int idx = ws ? find_sub(ws, channel, len) : -1;
    if (idx >= 0) detach(c, ws, idx);
    return KX_OK;
}

void kx_channels_drop(kx_conn_t *c)
{
    void **slot = kx_ws_user(c);
    subs_t *ws = slot ? *slot : NULL;
    if (!ws) return;
    while (ws->n_chans > 0) detach(c, ws, ws->n_chans - 1);
    free(ws->chans);
    free(ws);
    *slot = NULL;
}

/* ---- the fan-out batch ---------------------------------------------------------------------
 * Every frame delivered during a loop iteration is queued on its sockets, and each socket
 * that got any is written once, just before the loop polls again (an ev_prepare watcher runs
 * after every callback of the iteration). Several messages from one read of the subscriber
 * connection (a burst of PUBLISHes) then cost each socket one write instead of one per
 * message: the send, not our code, is most of a broadcast's cost (bench/README.md,
 * "WebSockets"). */

static struct {
    kx_conn_t **conns; /* each held by a reference until flushed */
    int n, cap;
    ev_prepare prepare;
    bool init;
} B;

/* Past this many sockets, the list's memory goes back after the flush. */
#define BATCH_KEEP 1024

static void batch_flush(void)
{
    /* A flush never delivers, so the list does not grow while it is walked. */
    for (int i = 0; i < B.n; i++) {
        kx_conn_t *c = B.conns[i];
        if (!c->closed) { /* a closed socket's subscriptions (and flag) are gone */
            subs_of(c, false)->batched = false;
            kx_ws_flush(c);
        }
        kx_conn_unref(c);
    }
    B.n = 0;
    if (B.cap > BATCH_KEEP) {
        free(B.conns);
        B.conns = NULL;
        B.cap = 0;
    }
    ev_prepare_stop(kx_srv->loop, &B.prepare);
}

static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    batch_flush();
}

static void batch_add(kx_conn_t *c, subs_t *ws)
{
    if (ws->batched) return;
    if (!B.init) {
        ev_prepare_init(&B.prepare, on_prepare);
        B.init = true;
    }
    if (B.n == B.cap) {
        B.cap = B.cap ? B.cap * 2 : 64;
        B.conns = kx_xrealloc(B.conns, sizeof *B.conns * (size_t)B.cap);
    }
    ws->batched = true;
    kx_conn_ref(c);
    B.conns[B.n++] = c;
    if (!ev_is_active(&B.prepare)) ev_prepare_start(kx_srv->loop, &B.prepare);
}

/* Queuing can close a socket (more than the output cap behind), which detaches it from
 * ch->subs by moving the last subscriber into its place: that one is then visited at the same
 * index (only c itself ever leaves). The channel is kept until the walk ends. */
static int deliver_frame(chan_t *ch, kx_ws_frame_t *f)
{
    int sent = 0;
    ch->walking = true;
    for (int i = 0; i < ch->n;) {
        kx_conn_t *c = ch->subs[i];
        int n = ch->n;
        batch_add(c, subs_of(c, false)); /* before queuing: c may be gone after it */
        if (kx_ws_queue_frame(c, f) == KX_OK) sent++;
        /* cppcheck-suppress knownConditionTrueFalse ; false positive: a drop while queuing detaches c */
        if (ch->n == n) i++; /* else c left, and index i holds the next one */
    }
    ch->walking = false;
    chan_drop_if_empty(ch);
    return sent;
}

int kx_channels_deliver(const char *channel, size_t clen, const char *payload, size_t len)
{
    chan_t *ch = chan_find(channel, clen, false);
    if (!ch) return 0;
    kx_ws_frame_t *f = kx_ws_frame_text(payload, len);
    int sent = deliver_frame(ch, f);
    kx_ws_frame_unref(f);
    return sent;
}


/* ---- the feed of the MCP GET streams ------------------------------------------------------ */

static struct {
    char *p[KX_CHANNELS_FEED_SIZE];
    size_t len[KX_CHANNELS_FEED_SIZE];
    uint64_t seq; /* number of the newest entry (0: none yet) */
    int readers;
} F;

static void feed_clear(void)
{
    for (int i = 0; i < KX_CHANNELS_FEED_SIZE; i++) {
        free(F.p[i]);
        F.p[i] = NULL;
    }
}

void kx_channels_feed_readers(int delta)
{
    F.readers += delta;
    if (F.readers <= 0) {
        F.readers = 0;
        feed_clear(); /* nobody reads: hold no copies */
    }
}

uint64_t kx_channels_feed_seq(void)
{
    return F.seq;
}

bool kx_channels_feed_get(uint64_t seq, const char **payload, size_t *len)
{
    if (seq == 0 || seq > F.seq || F.seq - seq >= KX_CHANNELS_FEED_SIZE) return false;
    size_t i = (size_t)(seq % KX_CHANNELS_FEED_SIZE);
    if (!F.p[i]) return false;
    *payload = F.p[i];
    *len = F.len[i];
    return true;
}

static void feed_push(const char *payload, size_t len)
{
    if (F.readers <= 0) return;
    F.seq++;
    size_t i = (size_t)(F.seq % KX_CHANNELS_FEED_SIZE);
    free(F.p[i]);
    F.p[i] = NULL;
    if (len > KX_CHANNELS_FEED_MAX) return;
    F.p[i] = malloc(len ? len : 1);
    if (!F.p[i]) return; /* out of memory: this one is lost, like a pub/sub message */
    memcpy(F.p[i], payload, len);
    F.len[i] = len;
}

void kx_channels_on_publish(const char *payload, size_t len)
{
    const char *name;
    size_t nlen;
    if (!kx_pubsub_channel_of(payload, len, &name, &nlen)) return;
    kx_buf_t frame = KX_BUF_INIT;
    kx_buf_puts(&frame, "{\"message\":");
    kx_buf_append(&frame, payload, len);
    kx_buf_puts(&frame, "}");
    kx_channels_deliver(name, nlen, frame.data, frame.len);
    kx_buf_free(&frame);
    feed_push(payload, len);
}
