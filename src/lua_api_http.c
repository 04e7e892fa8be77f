/* lua_api_http.c — a web task's HTTP request and streamed response, from C:
 *   core.req_header(name) → the value of the first header called `name` (any case), or nil
 *   core.stream_begin(status, headers, content_type, framing) → true | nil, "closed"
 *   core.stream_write(data)          → true | nil, "closed" | "aborted"   (may yield)
 *   core.stream_event(event, data)   → true | nil, "closed" | "aborted"   (may yield)
 *   core.stream_end()
 *
 * Owns: the wait record of a stream write paused on backpressure (stream_wait_t).
 * Callers: keryx.conn (conn:header, conn:stream). Never: reads or writes a request the task
 * no longer answers: outside a web task (CLI, WebSocket events) req_header is nil and the
 * stream functions raise; once the client closed, or the connection moved on to its next
 * request, reads are nil and writes answer nil, "closed". A streamed response never carries
 * Set-Cookie (keryx.conn refuses a pending session cookie before it begins).
 *
 * Backpressure (src/response.c): a write the client is behind on returns KX_EAGAIN with its
 * bytes queued; the binding then parks the task until kx_http_on_resume's callback runs
 * (drained → true; closed → nil, "closed"), or the action timeout cancels the wait (the
 * bridge wakes the task with nil, "aborted"). A write that would put the client more than
 * KX_CONN_OUTPUT_CAP behind drops it (nil, "closed"). A piece of KX_HTTP_LEND_MIN bytes or
 * more is lent to the write queue rather than copied (kx_lua_lend_*: the string is anchored
 * while the queue holds it). */
#include "lua_api.h"
#include <lauxlib.h>
#include <stdlib.h>
#include <strings.h>

static int l_req_header(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    kx_conn_t *c = kx_task_web_conn(kx_lua_current_task());
    const kx_header_t *h = c ? kx_http_header(c->req, name) : NULL;
    if (!h) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushlstring(L, h->value, h->value_len);
    return 1;
}

/* ---- streamed responses -------------------------------------------------------------------- */

/* The web task running fn; raises for any other kind of task and outside a task. */
static kx_task_t *web_task(lua_State *L, const char *fn)
{
    kx_task_t *t = kx_lua_current_task();
    if (!kx_task_is_web(t)) luaL_error(L, "%s: only a web request can stream its response", fn);
    return t;
}

/* The connection of the task's open stream, or NULL when the client is gone (or the
 * connection moved on). Raises when no stream was begun or it was ended: a programming error. */
static kx_conn_t *stream_conn(lua_State *L, kx_task_t *t, const char *fn)
{
    kx_stream_t s = kx_task_stream(t);
    if (s == KX_STREAM_NONE) luaL_error(L, "%s: no stream was begun (core.stream_begin)", fn);
    if (s == KX_STREAM_ENDED) luaL_error(L, "%s: the stream has ended", fn);
    return kx_task_web_conn(t);
}

/* Names the stream writer must own: an action header repeating them would break the framing. */
static bool framing_header(const char *name, size_t n)
{
    return (n == 14 && strncasecmp(name, "Content-Length", n) == 0) ||
           (n == 17 && strncasecmp(name, "Transfer-Encoding", n) == 0) ||
           (n == 10 && strncasecmp(name, "Connection", n) == 0);
}

/* headers = nil | { name1, value1, … } at idx, the web result's shape: each name must be a
 * token and each value a field value (the same checks as the web epilogue). Appends
 * "Name: value\r\n" lines to out; NULL, or why the table was refused. */
static const char *header_lines(lua_State *L, int idx, kx_buf_t *out)
{
    if (lua_isnoneornil(L, idx)) return NULL;
    if (!lua_istable(L, idx)) return "headers must be a table of name, value pairs";
    int n = (int)lua_objlen(L, idx);
    if (n % 2) return "headers: odd number of entries";
    const char *why = NULL;
    for (int i = 1; i <= n && !why; i += 2) {
        lua_rawgeti(L, idx, i);
        lua_rawgeti(L, idx, i + 1);
        size_t nl = 0, vl = 0;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nl) : NULL;
        const char *value = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &vl) : NULL;
        if (!name || !value || !kx_http_token_valid(name, nl) || !kx_http_field_value_valid(value, vl))
            why = "headers: invalid header name or value";
        else if (framing_header(name, nl))
            why = "headers: Content-Length, Transfer-Encoding and Connection belong to the stream";
        else {
            kx_buf_append(out, name, nl);
            kx_buf_append(out, ": ", 2);
            kx_buf_append(out, value, vl);
            kx_buf_append(out, "\r\n", 2);
        }
        lua_pop(L, 2);
    }
    return why;
}

static kx_framing_t check_framing(lua_State *L, int idx)
{
    const char *f = luaL_checkstring(L, idx);
    if (strcmp(f, "sse") == 0) return KX_FRAMING_SSE;
    if (strcmp(f, "chunked") == 0) return KX_FRAMING_CHUNKED;
    luaL_error(L, "stream_begin: framing must be \"sse\" or \"chunked\"");
    return KX_FRAMING_CHUNKED;
}

/* content_type at idx: ignored for SSE (always text/event-stream), required for chunked. */
static const char *check_ctype(lua_State *L, int idx, kx_framing_t framing)
{
    size_t n = 0;
    const char *ct = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
    if (!ct && !lua_isnoneornil(L, idx)) luaL_error(L, "stream_begin: content_type must be a string");
    if (framing == KX_FRAMING_SSE) return NULL;
    if (!ct) luaL_error(L, "stream_begin: a chunked stream needs a content_type");
    if (n == 0 || !kx_http_field_value_valid(ct, n)) luaL_error(L, "stream_begin: invalid content_type");
    return ct;
}

static int l_stream_begin(lua_State *L)
{
    kx_task_t *t = web_task(L, "stream_begin");
    lua_Integer status = luaL_checkinteger(L, 1);
    if (status < 200 || status > 599) return luaL_error(L, "stream_begin: status must be 200..599");
    kx_framing_t framing = check_framing(L, 4);
    const char *ctype = check_ctype(L, 3, framing);
    if (kx_task_stream(t) != KX_STREAM_NONE)
        return luaL_error(L, "stream_begin: the response was already begun");
    kx_buf_t h = KX_BUF_INIT;
    const char *why = header_lines(L, 2, &h);
    if (why) {
        kx_buf_free(&h);
        return luaL_error(L, "stream_begin: %s", why);
    }
    /* From here on the epilogue must not answer: even a client that is already gone means the
     * action's later writes see nil, "closed" rather than "no stream was begun". */
    kx_task_set_stream(t, KX_STREAM_OPEN);
    kx_conn_t *c = kx_task_web_conn(t);
    if (c) kx_http_begin(c, (int)status, ctype, h.data, h.len, framing, 0, KX_R_CORS);
    kx_buf_free(&h);
    if (!c || c->closed) return kx_lua_push_fail(L, "closed");
    lua_pushboolean(L, 1);
    return 1;
}

/* One paused write: the task and the connection whose on_resume callback it registered. */
typedef struct {
    kx_task_t *task;
    kx_conn_t *conn;
} stream_wait_t;

/* kx_http_on_resume's callback: the client caught up (true) or the connection closed. */
static void stream_resumed(kx_conn_t *c, void *ud)
{
    stream_wait_t *w = ud;
    kx_task_t *t = w->task;
    free(w);
    kx_http_on_resume(c, NULL, NULL);
    kx_task_set_wait(t, NULL, NULL);
    lua_State *co = kx_task_thread(t);
    if (c->closed) {
        lua_pushnil(co);
        lua_pushliteral(co, "closed");
        kx_task_wake(t, 2);
        return;
    }
    lua_pushboolean(co, 1);
    kx_task_wake(t, 1);
}

/* The action timeout gives up the wait; the task holds its connection, so c is still valid. */
static void stream_wait_cancel(void *ud)
{
    stream_wait_t *w = ud;
    kx_http_on_resume(w->conn, NULL, NULL);
    free(w);
}

/* What a write's C result means to Lua; KX_EAGAIN parks the task (its bytes are queued). */
static int write_result(lua_State *L, kx_task_t *t, kx_conn_t *c, int rc)
{
    if (rc == KX_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (rc != KX_EAGAIN) return kx_lua_push_fail(L, "closed");
    stream_wait_t *w = kx_xcalloc(1, sizeof *w);
    w->task = t;
    w->conn = c;
    kx_http_on_resume(c, stream_resumed, w);
    kx_task_set_wait(t, stream_wait_cancel, w);
    return lua_yield(L, 0);
}

static int l_stream_write(lua_State *L)
{
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    kx_task_t *t = kx_lua_require_task(L, "stream_write");
    web_task(L, "stream_write");
    kx_conn_t *c = stream_conn(L, t, "stream_write");
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    if (!c) return kx_lua_push_fail(L, "closed");
    if (n < KX_HTTP_LEND_MIN) return write_result(L, t, c, kx_http_write(c, p, n));
    /* A large piece goes out from the Lua string itself (anchored while a slow client holds it). */
    kx_lua_lend_t *l = kx_lua_lend_new(t);
    int rc = kx_http_write_lent(c, p, n, kx_lua_lend_release, l);
    kx_lua_lend_keep(l, L, 1);
    return write_result(L, t, c, rc);
}

static int l_stream_event(lua_State *L)
{
    size_t elen = 0, n;
    const char *event = lua_isnoneornil(L, 1) ? NULL : luaL_checklstring(L, 1, &elen);
    const char *data = luaL_checklstring(L, 2, &n);
    if (event && (elen != strlen(event) || strpbrk(event, "\r\n")))
        return luaL_error(L, "stream_event: the event name contains CR, LF or NUL");
    kx_task_t *t = kx_lua_require_task(L, "stream_event");
    web_task(L, "stream_event");
    kx_conn_t *c = stream_conn(L, t, "stream_event");
    if (kx_task_aborted(t)) return kx_lua_push_fail(L, "aborted");
    if (!c) return kx_lua_push_fail(L, "closed");
    if (c->req->out.framing != KX_FRAMING_SSE) return luaL_error(L, "stream_event: the stream is not SSE");
    return write_result(L, t, c, kx_http_sse_event(c, event, data, n));
}

/* Ends the response (the chunked terminator) and hands the connection back for keep-alive;
 * a second call, or one after the client left, does nothing. */
static int l_stream_end(lua_State *L)
{
    kx_task_t *t = web_task(L, "stream_end");
    if (kx_task_stream(t) == KX_STREAM_NONE) return luaL_error(L, "stream_end: no stream was begun");
    if (kx_task_stream(t) == KX_STREAM_ENDED) return 0;
    kx_task_set_stream(t, KX_STREAM_ENDED);
    kx_conn_t *c = kx_task_web_conn(t);
    if (c) kx_http_end(c);
    return 0;
}

static const luaL_Reg fns[] = {
    { "req_header", l_req_header },     { "stream_begin", l_stream_begin },
    { "stream_write", l_stream_write }, { "stream_event", l_stream_event },
    { "stream_end", l_stream_end },     { NULL, NULL },
};

void kx_lua_open_http(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
