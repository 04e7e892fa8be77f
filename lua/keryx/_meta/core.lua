---@meta keryx.core
-- _meta/core.lua — LuaCATS description of the C module `keryx.core`, as Lua sees it: the
-- functions and fields that src/lua_bridge.c `open_core` and the `kx_lua_open_*` functions of
-- src/lua_api_*.c put in the table `require "keryx.core"` returns. Never loaded at run time:
-- it is for readers and language servers (lua-language-server reads `---@meta` files), and
-- the contract specs hold the real module and the unit tests' fake to exactly these names:
--   spec/unit/fake_core_contract_spec.lua       spec/helpers/fake_core.lua defines them all
--   spec/integration/core_contract_spec.lua     the real binary's keryx.core defines them all
-- When a binding is added, removed or renamed in C, change this file in the same commit.
--
-- Conventions (README, lua/keryx/redis.lua): a function that waits yields the calling task
-- and must run inside a request ("... called outside a request" is raised otherwise); a
-- programmer error raises; a runtime failure returns nil, reason ("closed", "timeout",
-- "aborted" when the action's own timeout fired meanwhile).

---@class keryx.core
local core = {}

-- ---- tasks and routes (src/lua_bridge.c) ----------------------------------------------------

--- Parks the running task for `ms` milliseconds (negative counts as 0). Yields.
---@param ms number
---@return true|nil ok
---@return "aborted"|nil err   the task's timeout fired first, or had already fired
function core.sleep(ms) end

--- Parks the running task until a job is enqueued anywhere (the tasks signal on pub/sub), `ms`
--- pass, or the process starts draining. Yields.
---@param ms number
---@return "signal"|"timeout"|"drain"|nil why
---@return "aborted"|nil err
function core.task_wait(ms) end

--- Wakes every core.task_wait of this process now (as the tasks signal does).
function core.tasks_signal() end

--- Whether the process is draining (SIGTERM/SIGINT received).
---@return boolean
function core.draining() end

--- Runs fn(...) as a background task of its own, started once the caller yields or returns.
---@param fn function
---@param ... any
function core.spawn(fn, ...) end

--- Runs fn as a background task every `ms` milliseconds (at least 1), skipping a tick while
--- the previous run is still going; the timers stop when the process drains.
---@param ms number
---@param fn function
function core.every(ms, fn) end

--- Runs fn(...) as a job task of its own (its own action timeout, Redis budget and abort flag)
--- and parks the caller until it ends. Yields.
---@param fn function
---@param ... any
---@return any result        fn's first return value (nil when the task itself failed)
---@return boolean cut       the job was aborted because the process is shutting down
---@return string|nil why    when the task itself failed
function core.run_job(fn, ...) end

--- (Re)arms the running task's timeout; `ms <= 0` disarms it. Raises outside a task.
---@param ms number
function core.arm_timeout(ms) end

--- True once the running task's timeout has fired (false outside a task).
---@return boolean
function core.aborted() end

--- Registers `method route` for action number `id` in the C router. Raises on a bad method,
--- a route not starting with "/", a duplicate, bad `:param` names, empty segments, too many
--- segments or params (src/router.c kx_router_add).
--- With `absolute` true the route is a path of its own, outside the API prefix (framework
--- actions: the OAuth endpoints), else it is registered under WEB_SERVER_API_ROUTE.
---@param method string
---@param route string
---@param id integer
---@param absolute boolean?
function core.add_route(method, route, id, absolute) end

---@type "server"|"cli"   how the process was started (`keryx start` or `keryx run`)
core.mode = "server"

-- ---- the current HTTP request (src/lua_api_http.c) ------------------------------------------

--- The value of the current web request's header `name` (any case; the first one when it is
--- repeated), read lazily from C. nil outside a web task, once its connection closed or moved
--- on to another request, and when the header is absent.
---@param name string
---@return string|nil value
function core.req_header(name) end

--- Begins the current web request's answer as a stream: writes the status line and headers
--- now, with chunked framing (close-delimited for HTTP/1.0). `headers` are flat name, value
--- pairs checked like the web result's (a token name, a value without CR/LF/CTL; not
--- Content-Length, Transfer-Encoding or Connection). framing "sse": Content-Type
--- text/event-stream and Cache-Control: no-cache (content_type is ignored); "chunked":
--- content_type is required. Never sets the session cookie. From then on the web epilogue
--- sends nothing and ends the stream if the action did not. Raises outside a web task, on a
--- bad argument, and when the response was already begun.
---@param status integer 200..599
---@param headers string[]|nil { name1, value1, name2, value2, … }
---@param content_type string|nil
---@param framing "sse"|"chunked"
---@return true|nil ok
---@return "closed"|nil err   the client is already gone (later writes answer the same)
function core.stream_begin(status, headers, content_type, framing) end

--- Queues `data` as one chunk of the begun stream. Yields while the client is more than
--- 256 KiB behind, until it caught up; a write that would put it more than 4 MiB behind
--- drops the client. Raises outside the web task's own coroutine, before stream_begin and
--- after stream_end.
---@param data string
---@return true|nil ok
---@return "closed"|"aborted"|nil err   the client left or was dropped; the action timed out
function core.stream_write(data) end

--- One Server-Sent Event on an SSE stream: `event: <event>` when given, and `data` split into
--- `data:` lines at CR, LF or CRLF. Waits and fails like stream_write; raises on a non-SSE
--- stream and on an event name with CR, LF or NUL.
---@param event string|nil
---@param data string
---@return true|nil ok
---@return "closed"|"aborted"|nil err
function core.stream_event(event, data) end

--- Ends the begun stream (the chunked terminator) and hands the connection back for its next
--- request. Does nothing when already ended or when the client is gone; raises outside a web
--- task and before stream_begin.
function core.stream_end() end

-- ---- utilities (src/lua_api_util.c) -----------------------------------------------------------

--- Writes one log line through the C logger. Raises on an unknown level name.
---@param level "trace"|"debug"|"info"|"warn"|"error"|"fatal"
---@param msg string
function core.log(level, msg) end

--- One log line with structured fields: in the JSON format (LOG_FORMAT=json) each string,
--- number or boolean of `fields` (names of letters, digits and _, at most 16; timestamp, level,
--- message and pid are reserved) sits beside "message"; the text format writes `msg` alone,
--- as core.log. Raises on an unknown level name.
---@param level "trace"|"debug"|"info"|"warn"|"error"|"fatal"
---@param msg string
---@param fields table<string, string|number|boolean>?
function core.log_fields(level, msg, fields) end

--- Whether a line at `level` would be written (unknown names count as "info").
---@param level string
---@return boolean
function core.log_enabled(level) end

--- Wall clock, milliseconds since the Unix epoch.
---@return number
function core.now_ms() end

--- Monotonic clock in milliseconds (sub-millisecond precision), for durations.
---@return number
function core.clock_ms() end

---@return integer pid
function core.pid() end

--- Milliseconds since the server started.
---@return number
function core.uptime_ms() end

--- Resident set size in bytes (sampled at most every 250 ms).
---@return number
function core.rss() end

--- Sorted names of the `*.lua` files in directory `path` (hidden files skipped).
---@param path string
---@return string[]|nil names
---@return string|nil err   "cannot open <path>: <reason>"
function core.list_dir(path) end

--- The resolved configuration (defaults < config.lua < environment), as a nested table keyed
--- like config.lua (src/config.c descs[]): ints are numbers, booleans booleans, unset strings
--- "". Also `nodeEnv`.
---@type table<string, any>
core.config = {}

---@type string   the keryx version (src/common.h KX_VERSION)
core.version = ""

---@type string   the directory holding lua/keryx (KERYX_HOME, else the binary's directory)
core.home = ""

-- ---- Redis (src/lua_api_redis.c) --------------------------------------------------------------

--- The value a Redis nil reply is converted to: a NULL light userdata (equal to cjson.null).
---@type lightuserdata
core.redis_null = nil

--- Whether v is a correlation id keryx may log and echo: a string of 1..128 letters, digits
--- and . _ : - (src/http_guard.c, the rule the request header is held to). Never raises.
---@param v any
---@return boolean
function core.correlation_id_valid(v) end

--- Whether v names a task queue: a string of 1..100 letters, digits and _ - . : (src/config.c,
--- the rule TASK_QUEUES is held to). Never raises.
---@param v any
---@return boolean
function core.queue_name_valid(v) end

--- Sends one command and yields until Redis answers. Arguments are strings or numbers.
---@param cmd string
---@param ... string|number
---@return any value          success (nil reply → core.redis_null; status → string)
---@return string|nil err     with value false: the Redis error text ("ERR …");
---                           with value nil: "closed" | "timeout" | "aborted"
function core.redis_call(cmd, ...) end

--- Sends a list of commands ({{"GET", k}, …}, at most 1000) and yields until all answered.
---@param cmds (string|number)[][]
---@return any[]|nil replies  one entry per command: its value, or {err = "…"} for an error reply
---@return string|nil err     "closed" | "timeout" | "aborted"
function core.redis_pipeline(cmds) end

--- Whether the shared Redis connection is up.
---@return boolean
function core.redis_ready() end

--- Runs lua/redis/<name>.lua (src/redis_script.c: EVALSHA, EVAL once on NOSCRIPT) and yields
--- until it answers; results as core.redis_call. Raises for a name with no script file.
---@param name string
---@param keys (string|number)[]
---@param args (string|number)[]|nil
---@return any value
---@return string|nil err
function core.redis_script(name, keys, args) end

--- A Redis connection of its own (a task processor's), closed by core.redis_conn_close or
--- when collected. Never waits (it connects in the background, with the usual backoff).
---@param label string  starts its log lines ("Redis task processor 1 unreachable at …")
---@return userdata conn
function core.redis_open(label) end

--- One command on a connection of its own; `block_s` is how long the command may block in
--- Redis (BLMOVE's timeout): the reply is awaited that long plus REDIS_COMMAND_TIMEOUT_MS.
---@param conn userdata
---@param block_s number|nil
---@param cmd string
---@param ... string|number
---@return any value
---@return string|nil err
function core.redis_conn_call(conn, block_s, cmd, ...) end

--- core.redis_script on a connection of its own.
---@param conn userdata
---@param name string
---@param keys (string|number)[]
---@param args (string|number)[]|nil
---@return any value
---@return string|nil err
function core.redis_conn_script(conn, name, keys, args) end

--- Whether that connection is up.
---@param conn userdata
---@return boolean
function core.redis_conn_up(conn) end

--- Closes that connection (pending commands answer nil, "closed").
---@param conn userdata
function core.redis_conn_close(conn) end

-- ---- ids and passwords (src/lua_api_crypto.c) -------------------------------------------------

--- A new random id (session ids, message ids) from the system CSPRNG.
---@return string
function core.random_id() end

--- Whether `id` has the shape random_id produces (any non-string: false).
---@param id any
---@return boolean
function core.valid_id(id) end

--- The redirect URI rules of OAuth client registration (src/oauth.c): true, or false and the
--- rule the URI breaks ("Invalid URI: …", "Redirect URI must not contain a fragment", …).
---@param uri string
---@return boolean ok
---@return string? why
function core.oauth_redirect_check(uri) end

--- PKCE S256 (RFC 7636): base64url(SHA-256(verifier)) equals challenge, compared in constant
--- time; false for a malformed verifier.
---@param verifier string
---@param challenge string
---@return boolean
function core.pkce_s256_ok(verifier, challenge) end

--- base64url(SHA-256(secret)), 43 characters: the only form OAuth codes and tokens are stored in.
---@param secret string
---@return string
function core.oauth_hash(secret) end

--- Registers a reader of the broadcast feed (src/channels.c: the last 256 broadcasts of any
--- keryx process, kept only while a reader is registered); returns the newest entry's number.
---@return number
function core.mcp_feed_open() end

--- Unregisters a reader (the feed frees its copies when none is left).
function core.mcp_feed_close() end

--- The payloads ({"channel","message","sender"} JSON text) of the broadcasts numbered after
--- `after` still in the feed, oldest first, and the newest number.
---@param after number
---@return string[] payloads
---@return number newest
function core.mcp_feed(after) end

-- ---- /mcp header checks (src/lua_api_mcp.c); none of these yield --------------------------------

--- The normalised origin ("scheme://host[:port]", http/https, lower case, default port
--- dropped) of an Origin header or a configured origin (src/mcp_guard.c), or nil when malformed.
---@param value string
---@return string?
function core.mcp_origin(value) end

--- Whether an Origin header may reach /mcp: its normalised origin is APPLICATION_URL's, in
--- MCP_ALLOWED_ORIGINS, or named in WEB_SERVER_ALLOWED_ORIGINS (never through `*`). The allow-list
--- is src/cors.c's, built at boot, the same the CORS grant of /mcp uses.
---@param value string
---@return boolean
function core.mcp_origin_allowed(value) end

--- Whether a Host header names this server as APPLICATION_URL does (src/cors.c): its host and
--- port (the scheme's default when it names none); any loopback name on any port when
--- APPLICATION_URL is a loopback one.
---@param value string
---@return boolean
function core.mcp_host_allowed(value) end

--- A Host header value parsed (src/mcp_guard.c): host (lower case), port (false when none) and
--- whether the host is a loopback name; nil when malformed.
---@param value string
---@return string? host
---@return integer|false|nil port
---@return boolean? loopback
function core.mcp_host(value) end

--- The token of an `Authorization: Bearer <token>` value (src/mcp_guard.c), or nil.
---@param value string
---@return string?
function core.mcp_bearer(value) end

--- Whether `value` is an MCP protocol version this server speaks (src/mcp_guard.c).
---@param value string
---@return boolean
function core.mcp_version_ok(value) end

--- scrypt-hashes `password` on the crypto threads; yields.
---@param password string
---@return string|nil hash
---@return "invalid password"|"busy"|"aborted"|"failed"|nil err
function core.hash_password(password) end

--- Checks `password` against a stored hash on the crypto threads; yields.
---@param password string
---@param stored string
---@return boolean|nil match
---@return "busy"|"aborted"|nil err
function core.verify_password(password, stored) end

-- ---- WebSockets and channels (src/lua_api_ws.c); none of these yield -------------------------

---@param id number   socket id
---@param text string
---@param text2? string  further pieces of the same frame (nil ones skipped): the frame's
---@param text3? string  payload is text .. text2 .. text3, joined in C
---@return true|nil ok
---@return "closed"|nil err
function core.ws_send(id, text, text2, text3) end

--- Encodes value as core.json_encode would and keeps the JSON in C for the next
--- core.ws_send_held (replacing what was kept); nil where core.json_encode answers nil.
---@param value any
---@param array_mt table
---@param empty_array table
---@return true|nil ok
function core.ws_hold_json(value, array_mt, empty_array) end

--- Sends one text frame to socket `id`: head, the JSON core.ws_hold_json kept, then "}"; the
--- kept JSON is dropped either way.
---@param id number
---@param head string
---@return true|nil ok
---@return "closed"|nil err
function core.ws_send_held(id, head) end

--- core.ws_send_held with the head '{"messageId":<message_id>,"response":' ('{"response":' for
--- nil) written in C. false when the C encoder refuses message_id: nothing was sent and the JSON
--- is still held.
---@param id number
---@param message_id any
---@param array_mt table
---@param empty_array table
---@return boolean|nil ok
---@return "closed"|nil err
function core.ws_send_held_for(id, message_id, array_mt, empty_array) end

--- Closes socket `id` (code 1000..4999 except 1005/1006/1015, reason ≤ 123 bytes; raises
--- otherwise). An unknown id is ignored.
---@param id number
---@param code? integer   default 1000
---@param reason? string  default ""
function core.ws_close(id, code, reason) end

---@param id number
---@param channel string
---@return true|nil ok
---@return "limit"|"invalid"|"closed"|nil err
function core.ws_subscribe(id, channel) end

---@param id number
---@param channel string
---@return true|nil ok
---@return "invalid"|"closed"|nil err
function core.ws_unsubscribe(id, channel) end

---@param id number
---@param channel string
---@return boolean
function core.ws_is_subscribed(id, channel) end

---@param id number
---@return integer   0 for an unknown id
function core.ws_subscription_count(id) end

--- Open WebSocket connections in this process.
---@return integer
function core.ws_count() end

--- The channel-name rule ^[a-zA-Z0-9:._-]{1,200}$, checked in C (any non-string: false).
---@param name any
---@return boolean
function core.channel_name_valid(name) end

--- PUBLISHes `payload` on keryx:pubsub for every process. Raises unless the payload starts
--- with {"channel":"<valid name>",.
---@param payload string
---@return true|nil ok
---@return "closed"|nil err
function core.publish(payload) end

--- A WebSocket message's envelope read in C without building its table, for the simple shape
--- (src/ws_envelope.h): one JSON object whose keys are among messageType (present), action,
--- messageId, channel and params, strings without escapes, messageId a string or an integer of
--- at most 15 digits, params an object (returned as its JSON text, undecoded). Nothing at all
--- for any other text: json.decode must read it. What it returns is what json.decode gives for
--- the same fields.
---@param text string
---@return string|nil message_type
---@return string|nil action
---@return string|number|nil message_id
---@return string|nil channel
---@return string|nil params_json
function core.ws_envelope(text) end

-- ---- rate limiting (src/lua_api_ratelimit.c) --------------------------------------------------

--- One atomic sliding-window check in Redis; yields. Five values rather than a table, so the
--- caller (keryx.rate_limit) builds the only table a check makes. Raises outside a request, on a
--- non-integer or out-of-range limit/window, or an identifier/prefix that is empty, over 256
--- bytes, or holds CR, LF, NUL, '{' or '}'.
---@param identifier string
---@param limit integer
---@param window_ms integer
---@param prefix string
---@return boolean|nil allowed   nil on failure
---@return number|string limit  the limit; on failure the error: "closed" | "timeout" |
---                             "aborted" | a Redis error ("ERR …")
---@return number remaining     requests left in the window after this one (0 when refused)
---@return number reset_at      unix seconds when the current fixed window ends
---@return number retry_after   seconds; 0 when allowed
function core.rate_limit(identifier, limit, window_ms, prefix) end

--- 40 lowercase hex digits: the SHA-1 Redis caches a script under.
---@param text string
---@return string
function core.sha1_hex(text) end

-- ---- metrics (src/lua_api_metrics.c over src/metrics.c) ----------------------------------------

--- Counts one action run through the pipeline (any transport) for the Prometheus metrics:
--- keryx_action_executions_total{action, status = success|error} and the
--- keryx_action_duration_seconds histogram. Does nothing while OTEL_METRICS_ENABLED is false.
--- Raises when name is not a string or ms not a number.
---@param name string
---@param ok boolean
---@param ms number   run time in milliseconds
function core.metrics_action(name, ok, ms) end

--- Counts a background task: "enqueued" (keryx_task_enqueued_total{action}) or "executed"
--- (keryx_task_executed_total{action, status = success|failure}, ok saying which). Does nothing
--- while OTEL_METRICS_ENABLED is false. Raises on another kind or a non-string action.
---@param kind "enqueued"|"executed"
---@param action string
---@param ok boolean|nil
function core.metrics_task(kind, action, ok) end

-- ---- JSON (src/lua_api_json.c) -------------------------------------------------------------

--- keryx.json's encoder in C: the bytes keryx.json's Lua encoder gives value, or nil where that
--- encoder must answer (a value it refuses, with its error message; a table with a metatable
--- other than array_mt). Never raises. Called by keryx.json.encode only.
---@param value any
---@param array_mt table   the metatable keryx.json.array sets
---@param empty_array table keryx.json.empty_array
---@return string|nil
function core.json_encode(value, array_mt, empty_array) end

return core
