-- GET /swagger without internet: swagger-ui (npm swagger-ui-dist, pinned by vendor-npm/, copied
-- into lua/keryx/www/swagger-ui/ by `make swagger-ui`, never committed) is served by keryx, and
-- the CDN page is the fallback only while that copy is absent (a KERYX_HOME without it here).
-- A headless Debian chromium with the network cut (every name but 127.0.0.1 unresolvable, and
-- everything not loopback sent to a dead proxy) renders the page: the operations of
-- /api/swagger are listed; the CDN page, under the same cut, lists none (so the cut is real).
local H = require "server"
local cjson = require "cjson"

local CHROMIUM = "/usr/bin/chromium"
local LOCAL_UI = H.ROOT .. "/lua/keryx/www/swagger-ui"
local sh = H.sh_quote

local function pinned_version()
    local pkg = cjson.decode(H.read_file(H.ROOT .. "/vendor-npm/package.json"))
    return pkg.dependencies["swagger-ui-dist"]
end

-- A KERYX_HOME like the checkout's, but whose www/ has the pages and not swagger-ui/: every
-- other entry of lua/ and lua/keryx/ is a symlink to the real one; the pages are copied (a
-- symlink out of www/ would be refused by the static path rules).
local function home_without_local_ui()
    local dir = os.tmpname()
    os.remove(dir)
    local src = H.ROOT .. "/lua"
    local rc = os.execute(table.concat({
        "set -e",
        "mkdir -p " .. sh(dir .. "/lua/keryx/www"),
        "for e in " .. sh(src) .. "/*; do [ \"$(basename \"$e\")\" = keryx ] || ln -s \"$e\" " .. sh(dir .. "/lua/") .. "; done",
        "for e in " .. sh(src .. "/keryx") .. "/*; do [ \"$(basename \"$e\")\" = www ] || ln -s \"$e\" "
            .. sh(dir .. "/lua/keryx/") .. "; done",
        "cp " .. sh(src .. "/keryx/www") .. "/*.html " .. sh(dir .. "/lua/keryx/www/"),
    }, "\n"))
    assert(rc == 0 or rc == true, "could not build a KERYX_HOME in " .. dir)
    return dir
end

--- The DOM of url after chromium ran it with the network cut (virtual time: the page's
--- fetch of /api/swagger holds it, so the dump comes after rendering).
local function offline_dom(url)
    local profile = os.tmpname()
    os.remove(profile)
    local cmd = table.concat({
        "timeout 90", CHROMIUM, "--headless --no-sandbox --disable-gpu --no-first-run --disable-quic",
        "--disable-background-networking --disable-component-update --disable-sync",
        "--user-data-dir=" .. sh(profile),
        "--proxy-server=http://127.0.0.1:9", -- nothing listens there: any non-loopback request fails
        sh("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
        "--virtual-time-budget=20000 --dump-dom", sh(url), "2>/dev/null",
    }, " ")
    local p = io.popen(cmd)
    local dom = p:read("*a")
    p:close()
    os.execute("rm -rf " .. sh(profile))
    return dom
end

-- The "METHOD path" operations the rendered page lists.
local function listed(dom)
    local out = {}
    for block in dom:gmatch('<div class="opblock%-summary">(.-)</button>') do
        local method = block:match('class="opblock%-summary%-method">(%a+)<')
        local path = block:match('data%-path="([^"]+)"')
        if method and path then out[#out + 1] = method .. " " .. path end
    end
    table.sort(out)
    return out
end

describe("Swagger UI (GET /swagger)", function()
    local srv

    setup(function()
        assert(io.open(LOCAL_UI .. "/swagger-ui-bundle.js", "rb"),
            "lua/keryx/www/swagger-ui is missing: run `make swagger-ui`")
        srv = H.start {}
    end)
    teardown(function() H.stop(srv) end)

    it("serves swagger-ui from keryx when `make` installed it: no CDN, no inline script", function()
        local res = H.get(srv, "/swagger")
        assert.are.equal(200, res.status)
        assert.truthy(res.headers["content-type"]:find("^text/html"))
        assert.is_nil(res.body:find("cdn.jsdelivr.net", 1, true))
        assert.truthy(res.body:find('<script src="/swagger/swagger-ui/swagger-ui-bundle.js"></script>', 1, true))
        assert.truthy(res.body:find('href="/swagger/swagger-ui/swagger-ui.css"', 1, true))
        local _, inline = res.body:gsub("<script>", "")
        assert.are.equal(0, inline)
        local js = H.get(srv, "/swagger/swagger-ui/swagger-ui-bundle.js")
        assert.are.equal(200, js.status)
        assert.truthy(js.headers["content-type"]:find("javascript", 1, true))
        assert.are.equal(H.read_file(LOCAL_UI .. "/swagger-ui-bundle.js"), js.body)
        local css = H.get(srv, "/swagger/swagger-ui/swagger-ui.css")
        assert.are.equal(200, css.status)
        assert.truthy(css.headers["content-type"]:find("^text/css"))
    end)

    it("serves the copy with the static files' path rules", function()
        assert.are.equal(404, H.get(srv, "/swagger/swagger-ui/.keryx-lock").status) -- dotfile
        assert.are.equal(403, H.get(srv, "/swagger/swagger-ui/../swagger-cdn.html").status)
        assert.are.equal(403, H.get(srv, "/swagger/swagger-ui/%2e%2e/swagger-cdn.html").status)
        assert.are.equal(403, H.get(srv, "/swagger/swagger-ui%2fswagger-ui.css").status)
        assert.are.equal(404, H.get(srv, "/swagger/swagger-ui/swagger-ui-bundle.js.map").status) -- not copied
    end)

    it("falls back to the CDN page, at the pinned version, when the copy is absent", function()
        local home = home_without_local_ui()
        local cdn = H.start { env = { KERYX_HOME = home } }
        local ok, err = pcall(function()
            local res = H.get(cdn, "/swagger")
            assert.are.equal(200, res.status)
            local base = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@" .. pinned_version() .. "/"
            assert.truthy(res.body:find('<script src="' .. base .. 'swagger-ui-bundle.js"', 1, true), res.body)
            assert.truthy(res.body:find('href="' .. base .. 'swagger-ui.css"', 1, true), res.body)
            assert.is_nil(res.body:find("/swagger/swagger-ui/", 1, true))
            assert.are.equal(404, H.get(cdn, "/swagger/swagger-ui/swagger-ui-bundle.js").status)
            -- The default CSP lets the CDN page load its scripts and styles.
            local csp = res.headers["content-security-policy"] or ""
            assert.truthy(csp:find("script-src 'self' https://cdn.jsdelivr.net", 1, true), csp)
            if io.open(CHROMIUM, "rb") then
                -- Offline the CDN page lists nothing: the network cut below is real.
                assert.are.same({}, listed(offline_dom(cdn:url("/swagger"))))
            end
        end)
        H.stop(cdn)
        os.execute("rm -rf " .. sh(home))
        assert(ok, err)
    end)

    it("with the network cut, chromium renders the page and lists every operation", function()
        assert(io.open(CHROMIUM, "rb"), "chromium is missing: make test-deps")
        local doc = cjson.decode(H.get(srv, "/api/swagger").body)
        local expected = {}
        for path, item in pairs(doc.paths) do
            for method in pairs(item) do expected[#expected + 1] = method:upper() .. " " .. path end
        end
        table.sort(expected)
        assert.is_true(#expected >= 10)
        local dom = offline_dom(srv:url("/swagger"))
        assert.are.same(expected, listed(dom))
        assert.truthy(dom:find("/api/swagger", 1, true)) -- the document it loaded, shown in its top bar
    end)
end)
