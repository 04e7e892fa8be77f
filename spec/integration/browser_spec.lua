-- End-to-end WebSocket specs in a real browser (headless Debian chromium) against the page
-- assets/ws-demo.html + assets/ws-demo.js (WebSocket Origin check, no inline scripts; security:
-- Cross-Site WebSocket Hijacking):
--   * the page, served with the default Content-Security-Policy, opens a socket to its own
--     server and subscribes to room:lobby;
--   * a page on another origin (server B, CSP off so the page may connect anywhere) is refused
--     by server A's allow-list: the browser's socket fails, A never sees a connection;
--   * the same foreign page does connect once A allows its origin (so the refusal above is the
--     Origin check, not the browser or the page);
--   * under the default CSP (connect-src 'self') the page cannot open a socket elsewhere.
local H = require "server"
local W = require "ws_client"
local socket = require "socket"
local cjson = require "cjson"

local CHROMIUM = "/usr/bin/chromium"
-- "https" under make test-integration-tls: the pages are https:// and their sockets wss://
-- (assets/ws-demo.js follows the page's scheme); chromium then accepts the throwaway
-- certificate (--ignore-certificate-errors: it has no copy of the throwaway CA).
local SCHEME = H.scheme()

local sh_quote, stop = H.sh_quote, H.stop

local function have_chromium()
    local f = io.open(CHROMIUM, "r")
    if f then f:close() end
    return f ~= nil
end

-- The page's socket works in real time, but --dump-dom with --virtual-time-budget dumps when
-- *virtual* time runs out, and WebSocket traffic does not hold virtual time: under load the DOM
-- was dumped at "connecting" or "open". So the specs drive one headless chromium over the
-- DevTools protocol (with the WebSocket client of these specs): navigate, poll the page's
-- data-state until it settles (or 8 s pass), then take the DOM.
local Browser = {}
Browser.__index = Browser

local function http_get(port, path)
    local c = assert(socket.tcp())
    c:settimeout(3)
    assert(c:connect("127.0.0.1", port))
    assert(c:send(H.build { path = path, headers = { { "Host", "127.0.0.1:" .. port } } }))
    local res = assert(H.read_response(c))
    c:close()
    return res
end

local function start_browser()
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. sh_quote(dir))
    local cmd = table.concat({
        "timeout 120", CHROMIUM, "--headless --no-sandbox --disable-gpu --disable-quic --no-first-run",
        "--disable-background-networking --disable-component-update --disable-sync",
        "--user-data-dir=" .. sh_quote(dir), "--remote-debugging-port=0",
        SCHEME == "https" and "--ignore-certificate-errors" or "", "about:blank",
        ">/dev/null 2>&1 & echo $!",
    }, " ")
    local p = io.popen(cmd)
    local pid = tonumber(p:read("*l"))
    p:close()
    local self = setmetatable({ pid = pid, dir = dir, seq = 0 }, Browser)
    local deadline = socket.gettime() + 15
    while not self.port and socket.gettime() < deadline do
        local port = tonumber((H.read_file(dir .. "/DevToolsActivePort"):match("^(%d+)")))
        if port then self.port = port else H.sleep(0.05) end
    end
    if not self.port then
        self:stop()
        error("chromium did not open its DevTools port")
    end
    local targets = cjson.decode(http_get(self.port, "/json/list").body)
    for _, t in ipairs(targets) do
        if t.type == "page" and t.url == "about:blank" then
            self.ws = W.connect(self.port, t.webSocketDebuggerUrl:match("^ws://[^/]+(/.*)$"))
        end
    end
    if not self.ws then
        self:stop()
        error("no page target in chromium")
    end
    return self
end

--- One DevTools command; returns its result (events arriving meanwhile are dropped).
function Browser:call(method, params)
    self.seq = self.seq + 1
    local id = self.seq
    assert(self.ws:send_json { id = id, method = method, params = params or {} })
    local reply, raw = self.ws:wait(function(v) return v.id == id end, 5)
    self.ws.held = {}
    assert.is_table(reply, "no DevTools reply to " .. method .. ": " .. tostring(raw))
    assert.is_nil(reply.error, raw)
    return reply.result
end

function Browser:eval(expr)
    local r = self:call("Runtime.evaluate", { expression = expr, returnByValue = true })
    return r.result and r.result.value
end

--- Navigates to url and returns the DOM once the page's data-state is `subscribed` or
--- `closed` (0.5 s after `error`; at most 8 s).
function Browser:load(url)
    self:call("Page.navigate", { url = url })
    local probe = ("(location.href === %s && document.body) ? (document.body.getAttribute('data-state') || '') : ''")
        :format(cjson.encode(url))
    local deadline = socket.gettime() + 8
    while socket.gettime() < deadline do
        local state = self:eval(probe)
        if state == "subscribed" or state == "closed" then break end
        -- a socket refused before it opened may report only the error: give close a moment
        if state == "error" then deadline = math.min(deadline, socket.gettime() + 0.5) end
        H.sleep(0.03)
    end
    return self:eval("document.documentElement.outerHTML")
end

function Browser:stop()
    if self.ws then pcall(self.ws.close, self.ws) end
    os.execute("kill -TERM " .. self.pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 5
    while io.open("/proc/" .. self.pid .. "/stat") and socket.gettime() < deadline do H.sleep(0.05) end
    os.execute("kill -KILL " .. self.pid .. " 2>/dev/null")
    os.execute("rm -rf " .. sh_quote(self.dir))
end

--- The lines the page wrote into <pre id="log">.
local function log_lines(dom)
    local text = dom:match('<pre id="log">(.-)</pre>')
    assert.is_string(text, "no log in the dumped DOM:\n" .. dom)
    local lines = {}
    for l in text:gmatch("[^\n]+") do lines[#lines + 1] = l end
    return lines
end

local function has(lines, pattern)
    for _, l in ipairs(lines) do
        if l:match(pattern) then return true end
    end
    return false
end

if not have_chromium() then
    describe("browser", function()
        pending("chromium is not installed (" .. CHROMIUM .. "): `make test` installs it")
    end)
    return
end

describe("browser WebSocket page", function()
    local A, B, port_a, port_b, browser

    local function dump_dom(url)
        return browser:load(url)
    end

    setup(function()
        port_a, port_b = H.free_port(), H.free_port()
        -- A allows its own origin and the page of B when B is reached as "localhost".
        A = H.start { env = {
            WEB_SERVER_PORT = tostring(port_a), PROCESS_NAME = "browser-a",
            WEB_SERVER_ALLOWED_ORIGINS = ("%s://127.0.0.1:%d,%s://localhost:%d"):format(SCHEME, port_a, SCHEME,
                port_b),
        } }
        B = H.start { env = { WEB_SERVER_PORT = tostring(port_b), WEB_SECURITY_CSP = "" } }
        browser = start_browser()
    end)
    teardown(function()
        if browser then browser:stop() end
        stop(A)
        stop(B)
    end)

    it("is served as files only: no inline script, default CSP on the page", function()
        local res = A:request("/ws-demo.html")
        assert.are.equal(200, res.status)
        assert.is_truthy(res.headers["content-security-policy"]:find("script-src 'self'", 1, true))
        assert.is_truthy(res.body:find('<script src="ws-demo.js"></script>', 1, true))
        local _, scripts = res.body:gsub("<script", "")
        assert.are.equal(1, scripts)
        assert.is_nil(res.body:find("%son%a+%s*="), "inline event handler in ws-demo.html")
        local js = A:request("/ws-demo.js")
        assert.are.equal(200, js.status)
        assert.is_truthy(js.headers["content-type"]:find("javascript", 1, true), js.headers["content-type"])
    end)

    it("refuses the socket of a page from a foreign origin (A never sees it)", function()
        local dom = dump_dom(("%s://127.0.0.1:%d/ws-demo.html?ws=127.0.0.1:%d"):format(SCHEME, port_b, port_a))
        local lines = log_lines(dom)
        assert.is_true(has(lines, "^error") or has(lines, "^closed"), "the socket did not fail:\n" .. dom)
        assert.is_false(has(lines, "^open"), dom)
        assert.is_false(has(lines, "^subscribed"), dom)
        local log = A:log()
        assert.is_nil(log:find("New websocket connection", 1, true), log)
        -- the page did run (so the failure is the socket's, not a blocked script)
        assert.is_truthy(dom:find('data-state="', 1, true), dom)
    end)

    it("connects the same foreign page once A allows its origin", function()
        local dom = dump_dom(("%s://localhost:%d/ws-demo.html?ws=127.0.0.1:%d"):format(SCHEME, port_b, port_a))
        local lines = log_lines(dom)
        assert.is_true(has(lines, "^open$"), dom)
        assert.is_true(has(lines, "^subscribed room:lobby$"), dom)
        assert.is_truthy(A:log():find("New websocket connection", 1, true))
    end)

    it("cannot connect elsewhere under the default CSP (connect-src 'self')", function()
        local dom = dump_dom(("%s://127.0.0.1:%d/ws-demo.html?ws=127.0.0.1:%d"):format(SCHEME, port_a, port_b))
        local lines = log_lines(dom)
        assert.is_true(has(lines, "^error"), dom)
        assert.is_false(has(lines, "^open"), dom)
        assert.is_nil(B:log():find("New websocket connection", 1, true), B:log())
    end)

    it("opens a socket to its own server and subscribes to room:lobby under the default CSP", function()
        local dom = dump_dom(("%s://127.0.0.1:%d/ws-demo.html"):format(SCHEME, port_a))
        local lines = log_lines(dom)
        assert.are.equal("open", lines[1], dom)
        assert.are.equal("subscribed room:lobby", lines[2], dom)
        assert.is_false(has(lines, "^error"), dom)
        assert.is_truthy(dom:find('data-state="subscribed"', 1, true) or dom:find('data-state="closed"', 1, true), dom)
    end)
end)
