/* lua_api_ws.c — what keryx.ws and keryx.channels (Lua) may do to sockets, by id:
 *   core.ws_send(id, text [, text2 [, text3]]) → true | nil, "closed"   (one frame: the texts joined)
 *   core.ws_hold_json(value, array_mt, empty_array) → true | nil   (JSON kept in C)
 *   core.ws_send_held(id, head)       → true | nil, "closed"   (one frame: head, held JSON, "}")
 *   core.ws_send_held_for(id, message_id, array_mt, empty_array) → the same, head written in C
 *                                       (false: message_id left to json.lua, nothing sent)
 *   core.ws_close(id, code, reason)
 *   core.ws_subscribe(id, channel)    → true | nil, "limit" | "invalid" | "closed"
 *   core.ws_unsubscribe(id, channel)  → true | nil, "invalid" | "closed"
 *   core.ws_is_subscribed(id, channel), core.ws_subscription_count(id), core.ws_count()
 *   core.channel_name_valid(name)     → ^[a-zA-Z0-9:._-]{1,200}$, checked in C
 *   core.publish(payload)             → true | nil, "closed"   (PUBLISH keryx:pubsub)
 *   core.ws_envelope(text)            → messageType, action, messageId, channel, params JSON
 *                                       (each nil when absent) | nothing: not a simple
 *                                       envelope (ws_envelope.h), json.decode must read it
 * None of these yield. */
#include "lua_api.h"
#include "pubsub.h"
#include "ws.h"
#include "channels.h"
#include "ws_envelope.h"
#include <lauxlib.h>

static kx_conn_t *arg_ws(lua_State *L)
{
    lua_Number n = luaL_checknumber(L, 1);
    if (n < 1) return NULL;
    return kx_ws_find((uint64_t)n);
}

static int closed(lua_State *L)
{
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
}

/* The text may come in up to three pieces (nil ones skipped): a reply's head, the action's
 * JSON and the closing brace go out as one frame without a Lua string joining them. */
static int l_ws_send(lua_State *L)
{
    struct iovec v[3];
    int n = 0;
    kx_conn_t *c = arg_ws(L);
    for (int i = 2; i <= 4; i++) {
        if (i > 2 && lua_isnoneornil(L, i)) continue;
        v[n].iov_base = (void *)luaL_checklstring(L, i, &v[n].iov_len);
        n++;
    }
    if (!c || kx_ws_send_pieces(c, v, n) != KX_OK) return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* An action's response JSON, kept in C between core.ws_hold_json and core.ws_send_held: a
 * long Lua string would be hashed and interned only to be copied into the frame. */
static kx_buf_t held = KX_BUF_INIT;
#define HELD_KEEP (1u << 20) /* a buffer grown past this is given back after use */

static void drop_held(void)
{
    held.len = 0;
    if (held.cap > HELD_KEEP) kx_buf_free(&held);
}

/* core.ws_hold_json(value, array_mt, empty_array) → true | nil (the C encoder cannot: the
 * caller uses json.encode). Replaces what was held. */
static int l_ws_hold_json(lua_State *L)
{
    lua_settop(L, 3);
    drop_held();
    if (kx_lua_json_encode_into(L, 1, 2, 3, &held)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    drop_held();
    lua_pushnil(L);
    return 1;
}

/* core.ws_send_held(id, head) → true | nil, "closed": one frame head .. held JSON .. "}"; the
 * held JSON is dropped either way. */
static int l_ws_send_held(lua_State *L)
{
    size_t n;
    kx_conn_t *c = arg_ws(L);
    const char *head = luaL_checklstring(L, 2, &n);
    struct iovec v[3] = { { (void *)head, n }, { held.data, held.len }, { (void *)"}", 1 } };
    int rc = c ? kx_ws_send_pieces(c, v, 3) : KX_ECLOSED;
    drop_held();
    if (rc != KX_OK) return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.ws_send_held_for(id, message_id, array_mt, empty_array) → true | nil, "closed" | false:
 * core.ws_send_held with the head {"messageId":<message_id>,"response": (or {"response": for a
 * nil message_id) written here, not joined in Lua. false: the C encoder refuses message_id,
 * nothing was sent and the JSON is still held (the caller sends with a head of its own). */
static int l_ws_send_held_for(lua_State *L)
{
    static kx_buf_t head = KX_BUF_INIT;
    lua_settop(L, 4);
    kx_conn_t *c = arg_ws(L);
    head.len = 0;
    if (lua_isnil(L, 2)) {
        kx_buf_puts(&head, "{\"response\":");
    } else {
        kx_buf_puts(&head, "{\"messageId\":");
        if (!kx_lua_json_encode_into(L, 2, 3, 4, &head)) {
            if (head.cap > HELD_KEEP) kx_buf_free(&head);
            lua_pushboolean(L, 0);
            return 1;
        }
        kx_buf_puts(&head, ",\"response\":");
    }
    struct iovec v[3] = { { head.data, head.len }, { held.data, held.len }, { (void *)"}", 1 } };
    int rc = c ? kx_ws_send_pieces(c, v, 3) : KX_ECLOSED;
    drop_held();
    if (head.cap > HELD_KEEP) kx_buf_free(&head);
    if (rc != KX_OK) return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ws_close(lua_State *L)
{
    kx_conn_t *c = arg_ws(L);
    int code = (int)luaL_optinteger(L, 2, 1000);
    const char *reason = luaL_optstring(L, 3, "");
    if (code < 1000 || code > 4999 || code == 1005 || code == 1006 || code == 1015)
        return luaL_error(L, "ws_close: invalid close code %d", code);
    if (strlen(reason) > 123) return luaL_error(L, "ws_close: reason longer than 123 bytes");
    if (c) kx_ws_close(c, (uint16_t)code, reason);
    return 0;
}

static int l_ws_subscribe(lua_State *L)
{
    size_t n;
    kx_conn_t *c = arg_ws(L);
    const char *ch = luaL_checklstring(L, 2, &n);
    if (!c) return closed(L);
    int rc = kx_channels_subscribe(c, ch, n);
    if (rc == KX_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushnil(L);
    lua_pushstring(L, rc == KX_ELIMIT ? "limit" : "invalid");
    return 2;
}

static int l_ws_unsubscribe(lua_State *L)
{
    size_t n;
    kx_conn_t *c = arg_ws(L);
    const char *ch = luaL_checklstring(L, 2, &n);
    if (!c) return closed(L);
    if (kx_channels_unsubscribe(c, ch, n) != KX_OK) {
        lua_pushnil(L);
        lua_pushliteral(L, "invalid");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_ws_is_subscribed(lua_State *L)
{
    size_t n;
    kx_conn_t *c = arg_ws(L);
    const char *ch = luaL_checklstring(L, 2, &n);
    lua_pushboolean(L, c && kx_channels_is_subscribed(c, ch, n));
    return 1;
}

static int l_ws_subscription_count(lua_State *L)
{
    kx_conn_t *c = arg_ws(L);
    lua_pushinteger(L, c ? kx_channels_count(c) : 0);
    return 1;
}

static int l_ws_count(lua_State *L)
{
    lua_pushinteger(L, kx_ws_count());
    return 1;
}

static int l_channel_name_valid(lua_State *L)
{
    return kx_lua_push_valid(L, kx_channel_name_valid);
}

static int l_publish(lua_State *L)
{
    size_t n;
    const char *payload = luaL_checklstring(L, 1, &n);
    const char *name;
    size_t nlen;
    if (!kx_pubsub_channel_of(payload, n, &name, &nlen))
        return luaL_error(L, "publish: payload must start with {\"channel\":\"<valid name>\",");
    if (kx_pubsub_publish(payload, n) != KX_OK) return closed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* core.mcp_feed_open() → the feed's newest number: registers a reader (the feed keeps copies). */
static int l_mcp_feed_open(lua_State *L)
{
    kx_channels_feed_readers(1);
    lua_pushnumber(L, (lua_Number)kx_channels_feed_seq());
    return 1;
}

static int l_mcp_feed_close(lua_State *L)
{
    (void)L;
    kx_channels_feed_readers(-1);
    return 0;
}

/* core.mcp_feed(after) → { payload, … }, newest number: the broadcasts after `after` still in
 * the ring, oldest first (older ones were overwritten: best effort, like pub/sub itself). */
static int l_mcp_feed(lua_State *L)
{
    lua_Number after = luaL_checknumber(L, 1);
    uint64_t last = kx_channels_feed_seq();
    uint64_t from = after < 0 ? 1 : (uint64_t)after + 1;
    if (last >= KX_CHANNELS_FEED_SIZE && from <= last - KX_CHANNELS_FEED_SIZE)
        from = last - KX_CHANNELS_FEED_SIZE + 1;
    lua_newtable(L);
    int n = 0;
    for (uint64_t s = from; s <= last; s++) {
        const char *p;
        size_t len;
        if (!kx_channels_feed_get(s, &p, &len)) continue;
        lua_pushlstring(L, p, len);
        lua_rawseti(L, -2, ++n);
    }
    lua_pushnumber(L, (lua_Number)last);
    return 2;
}

static void push_span(lua_State *L, kx_ws_span_t sp)
{
    if (sp.p) lua_pushlstring(L, sp.p, sp.len);
    else lua_pushnil(L);
}

/* core.ws_envelope(text): a message's envelope read without building its table (the params
 * object stays JSON text, for keryx.json's decode); nothing when the text is not the simple
 * shape ws_envelope.c takes, or not a string. */
static int l_ws_envelope(lua_State *L)
{
    size_t len;
    kx_ws_envelope_t e;
    if (lua_type(L, 1) != LUA_TSTRING) return 0;
    const char *text = lua_tolstring(L, 1, &len);
    if (!kx_ws_envelope_scan(text, len, &e)) return 0;
    push_span(L, e.type);
    push_span(L, e.action);
    if (e.mid == KX_WS_MID_NUMBER) lua_pushnumber(L, e.mid_number);
    else push_span(L, e.mid_string);
    push_span(L, e.channel);
    push_span(L, e.params);
    return 5;
}

static const luaL_Reg fns[] = {
    { "mcp_feed_open", l_mcp_feed_open },
    { "mcp_feed_close", l_mcp_feed_close },
    { "mcp_feed", l_mcp_feed },
    { "ws_send", l_ws_send },
    { "ws_hold_json", l_ws_hold_json },
    { "ws_send_held", l_ws_send_held },
    { "ws_send_held_for", l_ws_send_held_for },
    { "ws_close", l_ws_close },
    { "ws_subscribe", l_ws_subscribe },
    { "ws_unsubscribe", l_ws_unsubscribe },
    { "ws_is_subscribed", l_ws_is_subscribed },
    { "ws_subscription_count", l_ws_subscription_count },
    { "ws_count", l_ws_count },
    { "channel_name_valid", l_channel_name_valid },
    { "publish", l_publish },
    { "ws_envelope", l_ws_envelope },
    { NULL, NULL },
};

void kx_lua_open_ws(lua_State *L)
{
    luaL_register(L, NULL, fns);
}
