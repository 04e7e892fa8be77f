-- fake_core.lua — a pure-Lua stand-in for the C module `keryx.core` (src/lua_bridge.c +
-- src/lua_api*.c), so the pipeline and its helpers run under busted without a server.
--
-- Preloaded as `keryx.core` by spec/helpers/unit_env.lua; `require "keryx.core"` and
-- `require "fake_core"` give the same table. Same function names and return shapes as C:
--
--   sleep(ms)         yields the running task; resumes with true, or nil, "aborted" when the
--                     task's timeout fires first (or the task was already aborted). Raises
--                     "keryx.sleep called outside a request" outside a task's own coroutine.
--   arm_timeout(ms)   (re)arms the running task's timeout; ms <= 0 disarms. Raises outside a task.
--   aborted()         true once the running task's timeout fired (false outside a task).
--   add_route(m, r, id)  raises like kx_router_add: bad method, route not starting with /,
--                     duplicate method + route, bad :param names, empty segments, more than
--                     32 segments or 16 :params.
--   log(level, msg)   records {level, msg} into fake.logs when log_enabled(level).
--   log_fields(level, msg, fields)  the same, with {…, fields} (as given) on the record.
--   log_enabled(lv)   lv >= fake.log_level (unknown names count as info; "off" disables all).
--   now_ms(), clock_ms(), pid(), uptime_ms(), rss(), list_dir(path)
--   config (real defaults for NODE_ENV=test), version, home, mode
--   redis_call / redis_pipeline: a tiny Redis (strings, sets, EXPIRE/PEXPIRE, INCR, and EVAL /
--                     EVALSHA running the real lua/redis scripts against the same store)
--   ws_* / channel_name_valid / publish: sockets and pub/sub (see the WebSocket section);
--                     ws_envelope is a Lua port of src/ws_envelope.c
--   req_header(name)  the current web request's header (any case) from fake.req_headers
--                     (lowercase name → value), like C reading the task's request; nil
--                     outside a task, for absent names, and once fake.req_gone is true (the
--                     client closed or the connection moved on to its next request).
--   metrics_action(name, ok, ms) / metrics_task(kind, action, ok)   recorded into fake.metrics
--                     ({fn = "action", name, ok, ms} / {fn = "task", kind, action, ok}); raise
--                     like C on a non-string name or action, a non-number ms, an unknown kind.
--   json_encode(v, array_mt, empty_array)  keryx.json's Lua encoder (nil where it fails)
--   stream_begin / stream_write / stream_event / stream_end   the web task's streamed answer
--                     (src/lua_api_http.c), recorded in fake.stream = {status, headers,
--                     content_type, framing, out = {pieces}, ended}; raise like C (outside a
--                     task, bad arguments, begun twice, write before begin or after end).
--                     fake.req_gone → writes answer nil, "closed"; fake.stream_pause_ms = n →
--                     each write parks the task n ms (a client catching up), so the task's
--                     timeout can fire meanwhile (nil, "aborted").
--
-- The clock is virtual: it moves only when the scheduler wakes a sleeper or a spec calls
-- fake.advance(ms). Scheduler: fake.run(fn, ...) runs fn as a task and then wakes sleeping
-- tasks in timer order until none is left, returning fn's results (its error is re-raised).
-- A timeout armed with arm_timeout fires like the C ev_timer: only while the task is
-- parked, and it wins a tie with the sleep's own timer. fake.abort_current() marks the
-- running task as timed out right now (the next sleep answers nil, "aborted").
--
-- fake.reset([node_env]) restores everything (config refilled IN PLACE, so modules that
-- captured `core.config` or its sub-tables at require time keep seeing the live values).
local M = {}

local unpack = unpack -- LuaJIT (the fake runs under luajit /usr/bin/busted)
local pack = function(...) return { n = select("#", ...), ... } end

local LEVELS = { trace = 1, debug = 2, info = 3, warn = 4, error = 5, fatal = 6, off = 7 }
local WALL_EPOCH = 1700000000000 -- now_ms() at clock 0 (2023-11-14T22:13:20Z)

-- The defaults come from their one source, the descriptor rows of src/config.c (shaped as
-- push_config shapes them): the fake cannot drift from the binary.
local defaults = require "config_defaults"

-- Makes dst equal to src without replacing dst or any nested table dst already has.
local function refill(dst, src)
    for k in pairs(dst) do
        if src[k] == nil then dst[k] = nil end
    end
    for k, v in pairs(src) do
        if type(v) == "table" then
            if type(dst[k]) ~= "table" then dst[k] = {} end
            refill(dst[k], v)
        else
            dst[k] = v
        end
    end
end

M.config = {}
M.version = "0.1.0"
M.home = os.getenv("PWD") or "."
M.mode = "server"

-- ---- state -----------------------------------------------------------------------------

local tasks, current

--- Restores the fake: config defaults for node_env (default "test"), empty captures, clock 0.
function M.reset(node_env)
    refill(M.config, defaults(node_env or "test"))
    M.logs = {}          -- { {level=, msg=}, ... } in call order
    M.routes = {}        -- { {method=, route=, id=}, ... } in registration order
    M.timeouts = {}      -- every ms passed to arm_timeout, in call order
    M.log_level = "info" -- what the C logger was started with
    M.clock = 0          -- clock_ms(); now_ms() is WALL_EPOCH + clock
    M.rss_bytes = 8 * 1024 * 1024
    M.dirs = {}          -- list_dir overrides: path -> list of names (else the real disk)
    M.store = {}         -- the fake Redis: key -> string value (GET/SET/DEL/EXPIRE/INCR)
    M.ttl = {}           -- key -> seconds given to the last EXPIRE/SET EX
    M.redis_up = true    -- false: every call answers nil, "closed"
    M.redis_log = {}     -- every command, as a list of its arguments
    M.next_id = 0
    M.req_headers = {}   -- req_header: lowercase name -> value of the current web request
    M.req_gone = false   -- true: the web task's connection closed / moved on (req_header → nil)
    M.stream = nil       -- the streamed answer once stream_begin ran (see the header)
    M.stream_pause_ms = nil -- every stream write parks this long (backpressure)
    M.everys = {}        -- core.every registrations: { {ms=, fn=}, ... }
    M.draining_now = false -- core.draining()
    M.metrics = {}       -- metrics_action / metrics_task calls: {fn=, ...arguments} in order
    M.ws_envelope_off = false -- true: ws_envelope takes nothing (every message to json.decode)
    M.ws_envelopes = 0   -- how many texts ws_envelope took
    tasks, current = {}, nil
end

local function check(fname, i, v, want)
    if type(v) ~= want then
        error(("bad argument #%d to '%s' (%s expected, got %s)"):format(i, fname, want, type(v)), 3)
    end
    return v
end

-- ---- tasks and the scheduler -----------------------------------------------------------

local function resume(t, ...)
    current = t
    local res = pack(coroutine.resume(t.co, ...))
    current = nil
    if coroutine.status(t.co) == "dead" then
        t.done = true
        if res[1] then
            t.results = pack(unpack(res, 2, res.n))
        else
            t.err = debug.traceback(t.co, tostring(res[2]))
        end
    end
end

--- Queues fn(...) as a task; M.drain() (or M.run) runs it. Returns the task record.
function M.spawn(fn, ...)
    local t = { co = coroutine.create(fn), start_args = pack(...), aborted = false }
    tasks[#tasks + 1] = t
    return t
end

-- The next timer event: the earliest of each parked task's sleep end and timeout.
local function next_event()
    local best, when, is_timeout
    for _, t in ipairs(tasks) do
        if not t.done and t.sleeping then
            local fires = t.deadline ~= nil and t.deadline <= t.wake
            local at = fires and t.deadline or t.wake
            if not when or at < when then best, when, is_timeout = t, at, fires end
        end
    end
    return best, when, is_timeout
end

--- Runs every spawned task until all are done, advancing the clock from timer to timer.
function M.drain()
    for _, t in ipairs(tasks) do
        if not t.started then
            t.started = true
            resume(t, unpack(t.start_args, 1, t.start_args.n))
        end
    end
    while true do
        local t, when, is_timeout = next_event()
        if not t then break end
        if when > M.clock then M.clock = when end
        t.sleeping = false
        if is_timeout or t.aborted then
            t.aborted = true
            resume(t, nil, "aborted")
        else
            resume(t, true)
        end
    end
    for _, t in ipairs(tasks) do
        if not t.done then error("fake_core: task never finished (yielded outside keryx.core.sleep)", 2) end
    end
    tasks = {}
end

--- Runs fn(...) as a task to the end; returns its results, re-raises its error.
function M.run(fn, ...)
    local t = M.spawn(fn, ...)
    M.drain()
    if t.err then error(t.err, 0) end
    return unpack(t.results, 1, t.results.n)
end

--- Marks the running task as timed out now, as if its ev_timer had just fired.
function M.abort_current()
    if not current then error("fake_core.abort_current called outside a task", 2) end
    current.aborted = true
end

--- Moves both clocks forward (CPU time spent inside an action). Fires no timers, like C.
function M.advance(ms)
    M.clock = M.clock + ms
end

-- ---- task functions (lua_bridge.c) -----------------------------------------------------

function M.sleep(ms)
    ms = check("sleep", 1, ms, "number")
    local t = current
    if not t or coroutine.running() ~= t.co then error("keryx.sleep called outside a request", 2) end
    if t.aborted then return nil, "aborted" end
    if ms < 0 then ms = 0 end
    t.sleeping, t.wake = true, M.clock + ms
    return coroutine.yield()
end

-- core.correlation_id_valid: src/http_guard.c's rule.
function M.correlation_id_valid(v)
    return type(v) == "string" and #v <= 128 and v:match("^[%w._:-]+$") ~= nil
end

-- core.queue_name_valid: src/config.c's rule.
function M.queue_name_valid(v)
    return type(v) == "string" and #v <= 100 and v:match("^[%w_.:-]+$") ~= nil
end

-- core.task_wait: nothing signals in the fake; it waits like sleep and says "timeout".
function M.task_wait(ms)
    if M.draining_now then return "drain" end
    local ok, err = M.sleep(ms)
    if not ok then return nil, err end
    return "timeout"
end

function M.tasks_signal() end

M.draining_now = false
function M.draining()
    return M.draining_now
end

M.everys = {}
function M.every(ms, fn)
    check("every", 1, ms, "number")
    check("every", 2, fn, "function")
    M.everys[#M.everys + 1] = { ms = ms, fn = fn }
end

-- core.run_job: the job runs inline in the caller's task (one timeout for both in the fake).
function M.run_job(fn, ...)
    check("run_job", 1, fn, "function")
    return fn(...), false
end

function M.arm_timeout(ms)
    ms = check("arm_timeout", 1, ms, "number")
    if not current then error("arm_timeout called outside a request", 2) end
    M.timeouts[#M.timeouts + 1] = ms
    current.deadline = ms > 0 and (M.clock + ms) or nil
end

function M.aborted()
    return current ~= nil and current.aborted
end

local ROUTE_METHOD = "^%u+$"
local MAX_ROUTE_SEGS, MAX_ROUTE_PARAMS = 32, 16 -- src/router.c MAX_SEGS, router.h KX_ROUTE_MAX_PARAMS

function M.add_route(method, route, id, absolute)
    check("add_route", 1, method, "string")
    check("add_route", 2, route, "string")
    check("add_route", 3, id, "number")
    if not method:match(ROUTE_METHOD) or #method >= 16 then
        error(('invalid method "%s" (expected GET, POST, PUT, PATCH, DELETE, ...)'):format(method), 2)
    end
    if route:sub(1, 1) ~= "/" then error(('invalid route "%s": must start with /'):format(route), 2) end
    for _, r in ipairs(M.routes) do
        if r.method == method and r.route == route then
            error(("duplicate route %s %s"):format(method, route), 2)
        end
    end
    if route ~= "/" then
        local nsegs, nparams = 0, 0
        for seg in (route:sub(2) .. "/"):gmatch("([^/]*)/") do
            if seg:sub(1, 1) == ":" then
                if nparams == MAX_ROUTE_PARAMS then
                    error(('invalid route "%s": more than %d parameters'):format(route, MAX_ROUTE_PARAMS), 2)
                end
                nparams = nparams + 1
            end
            nsegs = nsegs + 1
            if seg == "" or nsegs > MAX_ROUTE_SEGS then
                error(('invalid route "%s": empty segment or too many segments'):format(route), 2)
            end
            if seg:sub(1, 1) == ":" and not seg:sub(2):match("^[%w_]+$") then
                error(('invalid route "%s": parameter names are [A-Za-z0-9_]+'):format(route), 2)
            end
        end
    end
    M.routes[#M.routes + 1] = { method = method, route = route, id = id, absolute = absolute or nil }
end

-- ---- util functions (lua_api_util.c) ---------------------------------------------------

function M.log_enabled(level)
    check("log_enabled", 1, level, "string")
    local lv = LEVELS[level:lower()] or LEVELS.info
    local min = LEVELS[M.log_level] or LEVELS.info
    return lv >= min and lv < LEVELS.off
end

function M.log(level, msg)
    check("log", 1, level, "string")
    if type(msg) == "number" then msg = tostring(msg) end
    check("log", 2, msg, "string")
    local lv = level:lower()
    if not LEVELS[lv] or lv == "off" then error(("unknown log level '%s'"):format(level), 2) end
    if M.log_enabled(lv) then M.logs[#M.logs + 1] = { level = lv, msg = msg } end
end

-- Records {level, msg, fields} (fields as given) into fake.logs, as log does.
function M.log_fields(level, msg, fields)
    M.log(level, msg)
    local last = M.logs[#M.logs]
    if last and last.msg == msg and fields ~= nil then last.fields = fields end
end

function M.now_ms() return WALL_EPOCH + math.floor(M.clock) end
function M.clock_ms() return M.clock end
function M.pid() return 4242 end
function M.uptime_ms() return M.clock end
function M.rss() return M.rss_bytes end

local function lua_files(names)
    local out = {}
    for _, n in ipairs(names) do
        if n:sub(1, 1) ~= "." and #n >= 5 and n:sub(-4) == ".lua" then out[#out + 1] = n end
    end
    table.sort(out)
    return out
end

function M.list_dir(path)
    check("list_dir", 1, path, "string")
    if M.dirs[path] then return lua_files(M.dirs[path]) end
    local ok, lfs = pcall(require, "lfs")
    if not ok or lfs.attributes(path, "mode") ~= "directory" then
        return nil, ("cannot open %s: No such file or directory"):format(path)
    end
    local names = {}
    for n in lfs.dir(path) do names[#names + 1] = n end
    return lua_files(names)
end

-- ---- Redis (a tiny in-memory stand-in for src/lua_api_redis.c; no yield needed) -------------

M.redis_null = nil -- the C module pushes a NULL lightuserdata; cjson.null is the same value
do
    local ok, cjson = pcall(require, "cjson")
    if ok then M.redis_null = cjson.null end
end

local run_command

local WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"

-- Sets live in M.store as tables { [member] = true }; an emptied set disappears, as in Redis.
local function set_of(k, create)
    local v = M.store[k]
    if v == nil then
        if not create then return nil end
        v = {}
        M.store[k] = v
    end
    if type(v) ~= "table" then return false end
    return v
end

local function drop_if_empty(k, set)
    if next(set) == nil then M.store[k], M.ttl[k] = nil, nil end
end

-- The `redis` object a script sees: call raises on error replies, as inside Redis.
local script_redis = {
    call = function(...)
        local v, err = run_command({ ... }, true)
        if v == false then error(err, 2) end
        return v
    end,
    error_reply = function(msg) return { err = msg } end,
    status_reply = function(msg) return { ok = msg } end,
}

-- Redis' Lua → RESP conversion: numbers truncate to integers, true → 1, false/nil → nil
-- reply, {err=} → error reply, {ok=} → status, tables → arrays (up to the first nil).
local function from_script(v)
    local t = type(v)
    if t == "number" then return v >= 0 and math.floor(v) or math.ceil(v) end
    if t == "string" then return v end
    if t == "boolean" then return v and 1 or M.redis_null end
    if t == "table" then
        if v.err then return false, v.err end
        if v.ok then return v.ok end
        local out = {}
        for i = 1, #v do
            local x = from_script(v[i])
            out[i] = x
        end
        return out
    end
    return M.redis_null
end

local function run_script(text, nkeys, rest)
    nkeys = tonumber(nkeys)
    if not nkeys or nkeys < 0 or nkeys > #rest then
        return false, "ERR Number of keys can't be greater than number of args"
    end
    local keys, argv = {}, {}
    for i = 1, nkeys do keys[i] = tostring(rest[i]) end
    for i = nkeys + 1, #rest do argv[#argv + 1] = tostring(rest[i]) end
    local chunk, cerr = loadstring(text, "=script")
    if not chunk then return false, "ERR Error compiling script " .. tostring(cerr) end
    setfenv(chunk, { KEYS = keys, ARGV = argv, redis = script_redis, tonumber = tonumber, tostring = tostring,
        type = type, math = math, string = string, table = table, pairs = pairs, ipairs = ipairs })
    local ok, v = pcall(chunk)
    if not ok then return false, "ERR Error running script: " .. tostring(v) end
    return from_script(v)
end

function run_command(args, in_script)
    if not in_script then M.redis_log[#M.redis_log + 1] = args end
    local cmd, k = tostring(args[1]):upper(), args[2]
    if type(M.store[k]) == "table" and (cmd == "GET" or cmd == "GETEX" or cmd == "INCR") then
        return false, WRONGTYPE
    end
    if cmd == "SADD" or cmd == "SREM" or cmd == "SCARD" or cmd == "SMEMBERS" or cmd == "SISMEMBER" then
        local set = set_of(k, cmd == "SADD")
        if set == false then return false, WRONGTYPE end
        if cmd == "SCARD" or cmd == "SMEMBERS" then
            local list = {}
            for m in pairs(set or {}) do list[#list + 1] = m end
            table.sort(list)
            if cmd == "SCARD" then return #list end
            return list
        end
        if cmd == "SISMEMBER" then return (set and set[tostring(args[3])]) and 1 or 0 end
        local n = 0
        for i = 3, #args do
            local m = tostring(args[i])
            if cmd == "SADD" and not set[m] then set[m], n = true, n + 1
            elseif cmd == "SREM" and set and set[m] then set[m], n = nil, n + 1 end
        end
        if set then drop_if_empty(k, set) end
        return n
    elseif cmd == "PEXPIRE" then
        if M.store[k] == nil then return 0 end
        M.pttl[k] = tonumber(args[3])
        return 1
    elseif cmd == "EVAL" or cmd == "EVALSHA" then
        local text = k
        if cmd == "EVALSHA" then
            text = M.scripts[tostring(k)]
            if not text then return false, "NOSCRIPT No matching script. Please use EVAL." end
        else
            M.scripts[M.sha1_hex(text)] = text
        end
        return run_script(text, args[3], { select(4, unpack(args)) })
    elseif cmd == "RPUSH" then
        local list = M.store[k]
        if list == nil then list = { __list = true }; M.store[k] = list end
        for i = 3, #args do list[#list + 1] = tostring(args[i]) end
        return #list
    elseif cmd == "PUBLISH" then
        M.published = M.published or {}
        M.published[#M.published + 1] = { k, tostring(args[3]) }
        return 0
    elseif cmd == "GETEX" then
        local v = M.store[k]
        if v == nil then return M.redis_null end
        if args[3] and tostring(args[3]):upper() == "EX" then M.ttl[k] = tonumber(args[4]) end
        return v
    elseif cmd == "GET" then
        local v = M.store[k]
        if v == nil then return M.redis_null end
        return v
    elseif cmd == "SET" then
        M.store[k] = tostring(args[3])
        if args[4] and tostring(args[4]):upper() == "EX" then M.ttl[k] = tonumber(args[5]) end
        return "OK"
    elseif cmd == "DEL" then
        local n = M.store[k] ~= nil and 1 or 0
        M.store[k], M.ttl[k] = nil, nil
        return n
    elseif cmd == "EXPIRE" then
        if M.store[k] == nil then return 0 end
        M.ttl[k] = tonumber(args[3])
        return 1
    elseif cmd == "INCR" then
        M.store[k] = tostring((tonumber(M.store[k]) or 0) + 1)
        return tonumber(M.store[k])
    end
    return false, "ERR unknown command '" .. cmd .. "' (fake)"
end

function M.redis_call(...)
    if not M.redis_up then return nil, "closed" end
    return run_command({ ... })
end

-- core.redis_script as redis_script.c does it: EVALSHA of the file's SHA-1, EVAL once on
-- NOSCRIPT (both logged in redis_log, so specs see the fallback); a name with no file raises.
local script_files = {}
function M.redis_script(name, keys, args)
    check("redis_script", 1, name, "string")
    check("redis_script", 2, keys, "table")
    local s = script_files[name]
    if not s then
        local f = name:match("^[%w_]+$") and io.open("lua/redis/" .. name .. ".lua", "rb")
        if not f then error("keryx.scripts: no script lua/redis/" .. name .. ".lua", 2) end
        s = { text = f:read("*a") }
        f:close()
        s.sha = M.sha1_hex(s.text)
        script_files[name] = s
    end
    if not M.redis_up then return nil, "closed" end
    local cmd = { "EVALSHA", s.sha, #keys }
    for i = 1, #keys do cmd[#cmd + 1] = keys[i] end
    for i = 1, #(args or {}) do cmd[#cmd + 1] = args[i] end
    local v, err = run_command(cmd)
    if v == false and tostring(err):sub(1, 8) == "NOSCRIPT" then
        local again = { "EVAL", s.text }
        for i = 3, #cmd do again[i] = cmd[i] end
        return run_command(again)
    end
    return v, err
end

-- Named connections share the one fake store.
function M.redis_open(label)
    check("redis_open", 1, label, "string")
    return { label = label, open = true }
end

function M.redis_conn_call(conn, _, ...)
    check("redis_conn_call", 1, conn, "table")
    return M.redis_call(...)
end

function M.redis_conn_script(conn, name, keys, args)
    check("redis_conn_script", 1, conn, "table")
    return M.redis_script(name, keys, args)
end

function M.redis_conn_up(conn)
    return conn.open and M.redis_up
end

function M.redis_conn_close(conn)
    conn.open = false
end

function M.redis_pipeline(cmds)
    check("redis_pipeline", 1, cmds, "table")
    if not M.redis_up then return nil, "closed" end
    local out = {}
    for i, c in ipairs(cmds) do
        local v, err = run_command(c)
        if v == false then v = { err = err } end
        out[i] = v
    end
    return out
end

function M.redis_ready() return M.redis_up end

-- ---- sessions (src/session.c, src/crypto.c) -------------------------------------------------

local ID_TAIL = "AEIMQUYcgkosw048"

--- Deterministic, well-formed 43-char ids (the C one is 256 random bits).
function M.random_id()
    M.next_id = M.next_id + 1
    local body = ("%042d"):format(M.next_id):gsub("%d", function(d) return string.char(65 + tonumber(d)) end)
    return body .. "A"
end

local function id_valid(id)
    return #id == 43 and id:match("^[%w_-]+$") ~= nil and ID_TAIL:find(id:sub(-1), 1, true) ~= nil
end

-- The Set-Cookie line is written in C from a web answer's session operation (src/session.c):
-- specs check the operation ({set = id} | {expire = true}) and the integration suite the line.

-- ---- the request of a web task (src/lua_api_http.c) -----------------------------------------

function M.req_header(name)
    check("req_header", 1, name, "string")
    if not current or M.req_gone then return nil end
    return M.req_headers[name:lower()]
end

local FRAMING_HEADERS = { ["content-length"] = true, ["transfer-encoding"] = true, connection = true }

local function stream_task(fname)
    if not current then error(fname .. ": only a web request can stream its response", 3) end
    return current
end

function M.stream_begin(status, headers, content_type, framing)
    stream_task("stream_begin")
    check("stream_begin", 1, status, "number")
    if status < 200 or status > 599 then error("stream_begin: status must be 200..599", 2) end
    if framing ~= "sse" and framing ~= "chunked" then
        error('stream_begin: framing must be "sse" or "chunked"', 2)
    end
    if content_type ~= nil and type(content_type) ~= "string" then
        error("stream_begin: content_type must be a string", 2)
    end
    if framing == "chunked" and (content_type == nil or content_type == "" or content_type:find("[%c]")) then
        error(content_type == nil and "stream_begin: a chunked stream needs a content_type"
            or "stream_begin: invalid content_type", 2)
    end
    if M.stream then error("stream_begin: the response was already begun", 2) end
    if headers ~= nil then
        if type(headers) ~= "table" then error("stream_begin: headers must be a table of name, value pairs", 2) end
        if #headers % 2 == 1 then error("stream_begin: headers: odd number of entries", 2) end
        for i = 1, #headers, 2 do
            local n, v = headers[i], headers[i + 1]
            if type(n) ~= "string" or type(v) ~= "string" or not n:match("^[%w!#$%%&'*+.^_`|~-]+$")
                or v:find("[%z-\8-W]") then
                error("stream_begin: headers: invalid header name or value", 2)
            end
            if FRAMING_HEADERS[n:lower()] then
                error("stream_begin: headers: Content-Length, Transfer-Encoding and Connection belong to the stream", 2)
            end
        end
    end
    M.stream = { status = status, headers = headers, content_type = framing == "chunked" and content_type or nil,
        framing = framing, out = {}, ended = false }
    if M.req_gone then return nil, "closed" end
    return true
end

local function stream_send(fname, piece)
    local t = current
    if not t or coroutine.running() ~= t.co then error(fname .. " called outside a request", 3) end
    if not M.stream then error(fname .. ": no stream was begun (core.stream_begin)", 3) end
    if M.stream.ended then error(fname .. ": the stream has ended", 3) end
    if t.aborted then return nil, "aborted" end
    if M.req_gone then return nil, "closed" end
    local out = M.stream.out
    out[#out + 1] = piece
    if not M.stream_pause_ms then return true end
    t.sleeping, t.wake = true, M.clock + M.stream_pause_ms
    local ok, err = coroutine.yield()
    if ok and M.req_gone then return nil, "closed" end
    return ok, err
end

function M.stream_write(data)
    check("stream_write", 1, data, "string")
    return stream_send("stream_write", data)
end

function M.stream_event(event, data)
    if event ~= nil then check("stream_event", 1, event, "string") end
    check("stream_event", 2, data, "string")
    if event and event:find("[%z\r\n]") then error("stream_event: the event name contains CR, LF or NUL", 2) end
    if M.stream and M.stream.framing ~= "sse" then error("stream_event: the stream is not SSE", 2) end
    local text = event and event ~= "" and ("event: " .. event .. "\n") or ""
    -- As src/response.c: a line ends at CRLF, CR or LF; a trailing break opens no new line.
    local lines = data:gsub("\r\n?", "\n"):gsub("(.)\n$", "%1")
    if lines == "\n" then lines = "" end
    for line in (lines .. "\n"):gmatch("([^\n]*)\n") do text = text .. "data: " .. line .. "\n" end
    return stream_send("stream_event", text .. "\n")
end

function M.stream_end()
    stream_task("stream_end")
    if not M.stream then error("stream_end: no stream was begun", 2) end
    M.stream.ended = true
end

-- ---- rate limiting (src/lua_api_ratelimit.c running lua/redis/ratelimit.lua) -----------------
--
-- rate_limit(identifier, limit, window_ms, prefix) runs the REAL Redis script against the fake
-- store (TIME = the fake wall clock, MGET/INCR/PEXPIRE on M.store), so specs exercise the true
-- algorithm. Raises like C on bad arguments or outside a task; answers nil, "aborted" once the
-- task timed out, nil, "closed" while M.redis_up is false, nil, M.rate_limit_failure when a
-- spec sets that ("timeout", "OOM …"). Every call is recorded in M.rate_limit_calls; PEXPIRE
-- milliseconds land in M.pttl.

local RL_SCRIPT_PATH = "lua/redis/ratelimit.lua"
local rl_chunk

local function rl_valid(s)
    return #s >= 1 and #s <= 256 and not s:find("[%z\r\n{}]")
end

local function rl_int(fname, i, v, min, max, what)
    check(fname, i, v, "number")
    if v ~= math.floor(v) or v < min or v > max then
        error(("keryx.rate_limit: %s must be an integer in [%d, %d]"):format(what, min, max), 3)
    end
end

local fake_redis = {
    call = function(cmd, ...)
        local args = { ... }
        cmd = cmd:upper()
        if cmd == "TIME" then
            local now = M.now_ms()
            return { ("%d"):format(math.floor(now / 1000)), ("%d"):format((now % 1000) * 1000) }
        elseif cmd == "MGET" then
            local out = {}
            for i, k in ipairs(args) do
                local v = M.store[k]
                if v == nil then out[i] = false else out[i] = v end
            end
            return out
        elseif cmd == "INCR" then
            M.store[args[1]] = tostring((tonumber(M.store[args[1]]) or 0) + 1)
            return tonumber(M.store[args[1]])
        elseif cmd == "PEXPIRE" then
            M.pttl[args[1]] = tonumber(args[2])
            return 1
        end
        error("fake redis: command " .. cmd .. " not supported in scripts")
    end,
    error_reply = function(msg) return { err = msg } end,
}

function M.rate_limit(identifier, limit, window_ms, prefix)
    check("rate_limit", 1, identifier, "string")
    rl_int("rate_limit", 2, limit, 0, 1000000000, "limit")
    rl_int("rate_limit", 3, window_ms, 1, 366 * 24 * 3600 * 1000, "window_ms")
    check("rate_limit", 4, prefix, "string")
    if not rl_valid(identifier) then
        error("keryx.rate_limit: identifier must be 1..256 bytes without CR, LF, NUL, '{' or '}'", 2)
    end
    if not rl_valid(prefix) then
        error("keryx.rate_limit: key prefix must be 1..256 bytes without CR, LF, NUL, '{' or '}'", 2)
    end
    local t = current
    if not t or coroutine.running() ~= t.co then error("keryx.rate_limit called outside a request", 2) end
    if t.aborted then return nil, "aborted" end
    M.rate_limit_calls[#M.rate_limit_calls + 1] = { identifier = identifier, limit = limit,
        window_ms = window_ms, prefix = prefix }
    if not M.redis_up then return nil, "closed" end
    if M.rate_limit_failure then return nil, M.rate_limit_failure end
    rl_chunk = rl_chunk or assert(loadfile(RL_SCRIPT_PATH))
    setfenv(rl_chunk, {
        KEYS = { prefix .. ":{" .. identifier .. "}" }, ARGV = { tostring(limit), tostring(window_ms) },
        redis = fake_redis, math = math, string = string, tonumber = tonumber, table = table,
    })
    local r = rl_chunk()
    if type(r) == "table" and r.err then return nil, r.err end
    -- A batch of one answers "now_ms code" (src/ratelimit.c reads it the same way), and
    -- src/ratelimit.c derives the window's end and the retry delay from now_ms.
    local now_s, code_s = r:match("^(%d+) (%-?%d+)$")
    assert(now_s, "ratelimit.lua answered " .. tostring(r))
    local now_ms, code = tonumber(now_s), tonumber(code_s)
    local w = math.floor(now_ms / window_ms)
    local retry = math.max(1, math.ceil((window_ms - (now_ms - w * window_ms)) / 1000))
    return code >= 0, limit, code >= 0 and code or 0, math.ceil((w + 1) * window_ms / 1000),
        code >= 0 and 0 or retry
end

-- ---- WebSocket sockets and pub/sub (src/lua_api_ws.c over src/ws.c, src/pubsub.c) ------------
--
-- Sockets exist once a spec calls fake.ws_connect(id) and until fake.ws_disconnect(id) (which,
-- as C does on close, drops the socket's subscriptions). Every text ws_send accepted lands in
-- fake.ws_sent[id]; ws_close records {code, reason} in fake.ws_closed[id] and, like C, refuses
-- further sends. publish() checks the payload prefix exactly as kx_pubsub_channel_of and queues
-- the payload in fake.published; fake.deliver() then hands every queued payload, wrapped as
-- {"message":<payload>}, to the sockets subscribed to its channel, as the subscriber's fan-out
-- does later in the event loop (never synchronously inside publish).

local function check_id(fname, id)
    check(fname, 1, id, "number")
    local s = M.ws_sockets[id]
    if id < 1 or not s or s.gone then return nil end
    return s
end

function M.channel_name_valid(name)
    return type(name) == "string" and #name >= 1 and #name <= 200 and name:find("^[%w:._-]+$") ~= nil
end

function M.ws_connect(id)
    M.ws_sockets[id] = { subs = {}, n = 0 }
    M.ws_sent[id] = {}
end

function M.ws_disconnect(id)
    local s = M.ws_sockets[id]
    if s then s.gone, s.subs, s.n = true, {}, 0 end
end

--- The text frames sent to socket id so far (and forgets them).
function M.ws_take(id)
    local out = M.ws_sent[id] or {}
    M.ws_sent[id] = {}
    return out
end

function M.ws_send(id, text, text2, text3)
    local s = check_id("ws_send", id)
    check("ws_send", 2, text, "string")
    -- Like C: up to three pieces, nil ones skipped, sent as one frame.
    if text2 ~= nil then check("ws_send", 3, text2, "string"); text = text .. text2 end
    if text3 ~= nil then check("ws_send", 4, text3, "string"); text = text .. text3 end
    if not s or s.closing then return nil, "closed" end
    local list = M.ws_sent[id]
    list[#list + 1] = text
    return true
end

-- Like C: the JSON waits for ws_send_held (json_encode's, here).
function M.ws_hold_json(value)
    M._held = M.json_encode(value)
    return M._held ~= nil or nil
end

function M.ws_send_held(id, head)
    local held = M._held or ""
    M._held = nil
    return M.ws_send(id, head, held, "}")
end

-- Like C, but every messageId goes through json_encode (C leaves none to json.lua here).
function M.ws_send_held_for(id, message_id)
    local head = '{"response":'
    if message_id ~= nil then
        local mid = M.json_encode(message_id)
        if mid == nil then return false end
        head = '{"messageId":' .. mid .. ',"response":'
    end
    return M.ws_send_held(id, head)
end

function M.ws_close(id, code, reason)
    local s = check_id("ws_close", id)
    code = code or 1000
    reason = reason or ""
    if code < 1000 or code > 4999 or code == 1005 or code == 1006 or code == 1015 then
        error(("ws_close: invalid close code %d"):format(code), 2)
    end
    if #reason > 123 then error("ws_close: reason longer than 123 bytes", 2) end
    if s and not s.closing then
        s.closing = true
        M.ws_closed[id] = { code = code, reason = reason }
    end
end

function M.ws_subscribe(id, channel)
    local s = check_id("ws_subscribe", id)
    check("ws_subscribe", 2, channel, "string")
    if not s then return nil, "closed" end
    if not M.channel_name_valid(channel) then return nil, "invalid" end
    if s.subs[channel] then return true end
    local max = M.config.server.web.websocket.maxSubscriptions
    if max > 0 and s.n >= max then return nil, "limit" end
    s.subs[channel], s.n = true, s.n + 1
    return true
end

function M.ws_unsubscribe(id, channel)
    local s = check_id("ws_unsubscribe", id)
    check("ws_unsubscribe", 2, channel, "string")
    if not s then return nil, "closed" end
    if not M.channel_name_valid(channel) then return nil, "invalid" end
    if s.subs[channel] then s.subs[channel], s.n = nil, s.n - 1 end
    return true
end

function M.ws_is_subscribed(id, channel)
    local s = check_id("ws_is_subscribed", id)
    check("ws_is_subscribed", 2, channel, "string")
    return s ~= nil and s.subs[channel] == true
end

function M.ws_subscription_count(id)
    local s = check_id("ws_subscription_count", id)
    return s and s.n or 0
end

function M.ws_count()
    local n = 0
    for _, s in pairs(M.ws_sockets) do
        if not s.gone then n = n + 1 end
    end
    return n
end

-- kx_pubsub_channel_of: exactly {"channel":"<valid name>", at the start.
local function channel_of(payload)
    local name = payload:match('^{"channel":"([^"]*)",')
    if name and M.channel_name_valid(name) then return name end
    return nil
end

-- Like C (src/ws_envelope.c): the simple envelope's fields, params as its JSON text; nothing
-- for any other text. Bytes below 0x20 (and 0x7f: Lua's %c) in keys and strings say no.
local ENVELOPE_KEYS = { messageType = true, action = true, messageId = true, channel = true, params = true }
local WS = "[ \t\n\r]*"

local function envelope_object(text, i) -- text:sub(i, i) == "{": the end of the object, or nil
    local depth, n, byte = 0, #text, string.byte
    while i <= n do
        local c = byte(text, i)
        if c == 0 then return nil
        elseif c == 123 or c == 91 then -- { [
            depth = depth + 1
            if depth > 64 then return nil end
        elseif c == 125 or c == 93 then -- } ]
            depth = depth - 1
            if depth == 0 then return c == 125 and i or nil end
        elseif c == 34 then -- a string: to its closing quote, escapes skipped
            i = i + 1
            while true do
                c = byte(text, i)
                if c == nil or c == 0 then return nil end
                if c == 34 then break end
                if c == 92 then
                    i = i + 1
                    c = byte(text, i)
                    if c == nil or c == 0 then return nil end
                end
                i = i + 1
            end
        end
        i = i + 1
    end
    return nil
end

function M.ws_envelope(text)
    if M.ws_envelope_off or type(text) ~= "string" then return end
    local v = {}
    local i = text:match("^" .. WS .. "{()")
    if not i or text:match("^" .. WS .. "}", i) then return end
    while true do
        local key, j = text:match('^' .. WS .. '"([^"\\%c]*)"' .. WS .. ':' .. WS .. '()', i)
        if not ENVELOPE_KEYS[key] or v[key] ~= nil then return end
        local c, val = text:sub(j, j), nil
        if c == '"' and key ~= "params" then
            val, i = text:match('^"([^"\\%c]*)"()', j)
        elseif key == "messageId" then
            local digits
            digits, i = text:match("^(-?%d+)()[ \t\n\r,}]", j)
            if digits and #digits:gsub("^-", "") <= 15 and not digits:match("^-?0%d") then
                val = tonumber(digits)
            end
        elseif key == "params" and c == "{" then
            local e = envelope_object(text, j)
            if e then val, i = text:sub(j, e), e + 1 end
        end
        if val == nil then return end
        v[key] = val
        local sep, after = text:match("^" .. WS .. "([,}])()", i)
        if not sep then return end
        i = after
        if sep == "}" then break end
    end
    if not text:match("^" .. WS .. "$", i) or v.messageType == nil then return end
    M.ws_envelopes = M.ws_envelopes + 1
    return v.messageType, v.action, v.messageId, v.channel, v.params
end

function M.publish(payload)
    check("publish", 1, payload, "string")
    if not channel_of(payload) then
        error('publish: payload must start with {"channel":"<valid name>",', 2)
    end
    if not M.redis_up then return nil, "closed" end
    M.published[#M.published + 1] = payload
    M.pending[#M.pending + 1] = payload
    if M.feed and M.feed.readers > 0 then
        M.feed.seq = M.feed.seq + 1
        M.feed[M.feed.seq] = payload
    end
    return true
end

--- Fans out every payload published since the last call; returns how many frames were sent.
function M.deliver()
    local sent = 0
    local pending = M.pending
    M.pending = {}
    for _, payload in ipairs(pending) do
        local name = channel_of(payload)
        local ids = {}
        for id, s in pairs(M.ws_sockets) do
            if not s.gone and not s.closing and s.subs[name] then ids[#ids + 1] = id end
        end
        table.sort(ids)
        for _, id in ipairs(ids) do
            local list = M.ws_sent[id]
            list[#list + 1] = '{"message":' .. payload .. "}"
            sent = sent + 1
        end
    end
    return sent
end

do
    local base_reset = M.reset
    function M.reset(node_env)
        base_reset(node_env)
        M.rate_limit_calls = {} -- { {identifier=, limit=, window_ms=, prefix=}, ... }
        M.rate_limit_failure = nil
        M.pttl = {}             -- key -> ms given to the last PEXPIRE
        M.scripts = {}          -- sha1 -> text of the scripts EVAL has cached
        M.ws_sockets = {}       -- id -> { subs = {channel = true}, n, closing, gone }
        M.ws_sent = {}          -- id -> { text frame, ... }
        M.ws_closed = {}        -- id -> { code, reason }
        M.published = {}        -- every payload publish() accepted, in order
        M.pending = {}          -- published, not yet delivered
        M.feed = { seq = 0, readers = 0 } -- the MCP broadcast feed (seq -> payload)
    end
end

--- SHA-1 as lowercase hex (src/lua_api_ratelimit.c uses OpenSSL; here the test client's).
-- ---- metrics (src/lua_api_metrics.c) -----------------------------------------------------

function M.metrics_action(name, ok, ms)
    check("metrics_action", 1, name, "string")
    check("metrics_action", 3, ms, "number")
    M.metrics[#M.metrics + 1] = { fn = "action", name = name, ok = not not ok, ms = ms }
end

function M.metrics_task(kind, action, ok)
    check("metrics_task", 1, kind, "string")
    check("metrics_task", 2, action, "string")
    if kind ~= "enqueued" and kind ~= "executed" then
        error(("metrics_task: kind must be \"enqueued\" or \"executed\", got \"%s\""):format(kind), 2)
    end
    M.metrics[#M.metrics + 1] = { fn = "task", kind = kind, action = action, ok = not not ok }
end

-- core.json_encode: src/lua_api_json.c writes what keryx.json's Lua encoder writes (held to it
-- byte for byte by tests/test_json_encode.c); the fake is that encoder, nil where it fails.
function M.json_encode(value)
    return (require("keryx.json")._encode_lua(value))
end

function M.sha1_hex(text)
    check("sha1_hex", 1, text, "string")
    local raw = require("ws_client").sha1(text)
    return (raw:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- core.valid_id (src/crypto.c): the rule session ids follow too.
function M.valid_id(id)
    return type(id) == "string" and id_valid(id)
end

--- OAuth stand-ins: the real checks are C (src/oauth.c, tested by tests/test_oauth.c and the
--- oauth integration specs); these keep the shapes for specs of the Lua glue.
function M.oauth_hash(secret)
    check("oauth_hash", 1, secret, "string")
    return "h" .. M.sha1_hex(secret)
end

function M.pkce_s256_ok(verifier, challenge)
    check("pkce_s256_ok", 1, verifier, "string")
    check("pkce_s256_ok", 2, challenge, "string")
    return #verifier >= 43 and M.oauth_hash(verifier) == challenge
end

function M.oauth_redirect_check(uri)
    check("oauth_redirect_check", 1, uri, "string")
    if uri:find("#", 1, true) then return false, "Redirect URI must not contain a fragment" end
    if not uri:match("^%a[%w+.-]*:") then return false, "Invalid URI: no scheme" end
    return true
end

--- The broadcast feed of the MCP GET streams (src/channels.c): M.publish appends to it while a
--- reader is registered.
M.feed = { seq = 0, readers = 0 }

function M.mcp_feed_open()
    M.feed.readers = M.feed.readers + 1
    return M.feed.seq
end

function M.mcp_feed_close()
    M.feed.readers = math.max(0, M.feed.readers - 1)
end

function M.mcp_feed(after)
    check("mcp_feed", 1, after, "number")
    local out = {}
    for i = math.max(after + 1, M.feed.seq - 255), M.feed.seq do
        if M.feed[i] then out[#out + 1] = M.feed[i] end
    end
    return out, M.feed.seq
end

--- MCP header-check stand-ins: the real ones are C (src/mcp_guard.c, tested by
--- tests/test_mcp_guard.c and the mcp integration specs); these keep the shapes.
function M.mcp_origin(value)
    check("mcp_origin", 1, value, "string")
    local o = value:lower():match("^(https?://[%w.-]+)$") or value:lower():match("^(https?://[%w.-]+:%d+)$")
    return o
end

-- The same allow-list as src/cors.c kx_cors_mcp_init, over the fake's config.
function M.mcp_origin_allowed(value)
    check("mcp_origin_allowed", 1, value, "string")
    local o = M.mcp_origin(value)
    if not o then return false end
    local web, mcp = M.config.server.web, M.config.server.mcp or {}
    for _, list in ipairs { web.applicationUrl or "", mcp.allowedOrigins or "", web.allowedOrigins or "" } do
        for item in list:gmatch("[^,%s]+") do
            local u = item:match("^(%a[%w+.-]*://[^/?#%s]+)")
            if u and M.mcp_origin(u) == o then return true end
        end
    end
    return false
end

-- As src/cors.c kx_cors_mcp_host_allowed, over the fake's APPLICATION_URL.
function M.mcp_host_allowed(value)
    check("mcp_host_allowed", 1, value, "string")
    local h, p, loopback = M.mcp_host(value)
    if not h then return false end
    local app = (M.config.server.web.applicationUrl or ""):match("^%a[%w+.-]*://([^/?#%s]+)") or "localhost"
    local ah, ap, aloop = M.mcp_host(app)
    if not ah then return false end
    if aloop then return loopback end
    ap = ap or (M.config.server.web.applicationUrl or ""):match("^https:") and 443 or 80
    return h == ah and (not p or p == ap)
end

function M.mcp_host(value)
    check("mcp_host", 1, value, "string")
    local h, p = value:lower():match("^([%w.-]+):?(%d*)$")
    if not h or h == "" then return nil end
    return h, tonumber(p) or false, h == "localhost" or h:match("^127%.") ~= nil
end

function M.mcp_bearer(value)
    check("mcp_bearer", 1, value, "string")
    return value:match("^[Bb][Ee][Aa][Rr][Ee][Rr] +([%w%-._~+/]+=*) *$")
end

function M.mcp_version_ok(value)
    check("mcp_version_ok", 1, value, "string")
    return value == "2025-03-26" or value == "2025-06-18" or value == "2025-11-25"
end

--- Password hashing stand-ins (the real ones are scrypt on a thread pool and yield): a
--- reversible tag is enough for specs of the Lua glue; never used outside busted.
function M.hash_password(pw)
    check("hash_password", 1, pw, "string")
    if #pw == 0 or #pw > 4096 then return nil, "invalid password" end
    return "fake$" .. M.sha1_hex(pw)
end

function M.verify_password(pw, stored)
    check("verify_password", 1, pw, "string")
    check("verify_password", 2, stored, "string")
    return stored == "fake$" .. M.sha1_hex(pw)
end

M.reset()
return M
