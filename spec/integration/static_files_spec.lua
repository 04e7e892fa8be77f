-- Black-box checks of static file serving: a decoded `..` or `%2f` is 403, bad encoding 400,
-- and no request ever returns a byte from outside the static directory.
--
-- setup() copies spec/fixtures/assets to a temporary directory laid out as
--   <tmp>/secret.txt            a copy of spec/fixtures/secret.txt, one level above the root
--   <tmp>/assets/               the static root (WEB_SERVER_STATIC_DIRECTORY)
--   <tmp>/assets/escape.txt     symlink → <repo>/spec/fixtures/secret.txt (absolute, outside)
--   <tmp>/assets/escape-rel.txt symlink → ../secret.txt (relative, outside)
--   <tmp>/assets/up             symlink → .. (a directory outside)
--   <tmp>/assets/inside.txt     symlink → test.txt (stays inside: served)
-- so every traversal has a real file to reach. Its content must never appear in a response.
local cjson = require "cjson"
local H = require "server"
local A = require "http_assert"

-- ---- helpers (the shared ones are in spec/helpers/http_assert.lua) --------------------------

local sh_quote = H.sh_quote
local exchange, parse_one = A.exchange, A.parse_one
local assert_security_headers, assert_envelope = A.assert_security_headers, A.assert_envelope

local function sh(cmd)
    local ok = os.execute(cmd)
    assert(ok == 0 or ok == true, "command failed: " .. cmd)
end

-- One request (exact bytes) on a fresh connection that the request itself asks to close.
local function request(srv, method, path, headers)
    local lines = { method .. " " .. path .. " HTTP/1.1", "Host: localhost", "Connection: close" }
    for _, kv in ipairs(headers or {}) do lines[#lines + 1] = kv[1] .. ": " .. kv[2] end
    local raw = exchange(srv, table.concat(lines, "\r\n") .. "\r\n\r\n")
    local res, rest = parse_one(raw, method == "HEAD")
    res.raw, res.rest = raw, rest
    return res
end

local FIXTURES = H.ROOT .. "/spec/fixtures"
local SECRET = H.read_file(FIXTURES .. "/secret.txt")
local SECRET_MARK = "TOP-SECRET-c0ffee-7f3a9c"
local ENV_MARK = "env-file-must-never-be-served"
local BIG = H.read_file(FIXTURES .. "/assets/big.txt")

-- Raw request targets (sent byte for byte) and what each must get. Lua "\\" is one backslash.
local TRAVERSAL = {
    { "/../secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/../../secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/%2e%2e/secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/%2E%2E/secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/.%2e/secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/..%2fsecret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/subdir/..%2F..%2Fsecret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/subdir/../test.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/subdir/%2e%2e/%2e%2e/secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/subdir%2findex.html", 403, "CONNECTION_FORBIDDEN" },
    { "/escape.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/escape-rel.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/up/secret.txt", 403, "CONNECTION_FORBIDDEN" },
    { "/%252e%252e/secret.txt", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/%%32%65%%32%65/secret.txt", 400, "CONNECTION_BAD_REQUEST" },
    { "/....//....//secret.txt", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/..\\..\\secret.txt", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/subdir\\..\\..\\secret.txt", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/.env", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/%2eenv", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/subdir/.env", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/secret.txt", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/etc/passwd", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "//etc/passwd", 404, "CONNECTION_ACTION_NOT_FOUND" },
    { "/%00", 400, "CONNECTION_BAD_REQUEST" },
    { "/test.txt%00.html", 400, "CONNECTION_BAD_REQUEST" },
    { "/%zz", 400, "CONNECTION_BAD_REQUEST" },
    { "/test.txt%2", 400, "CONNECTION_BAD_REQUEST" },
    { "/%c0%ae%c0%ae/secret.txt", 400, "CONNECTION_BAD_REQUEST" },
    { "/%e0%80%ae%e0%80%ae/secret.txt", 400, "CONNECTION_BAD_REQUEST" },
    { "/%ff", 400, "CONNECTION_BAD_REQUEST" },
}

describe("static files", function()
    local srv, tmp

    setup(function()
        local p = io.popen("mktemp -d")
        tmp = p:read("*l")
        p:close()
        assert(tmp and #tmp > 1)
        sh("cp -R " .. sh_quote(FIXTURES .. "/assets") .. " " .. sh_quote(tmp .. "/assets"))
        sh("cp " .. sh_quote(FIXTURES .. "/secret.txt") .. " " .. sh_quote(tmp .. "/secret.txt"))
        local a = tmp .. "/assets/"
        sh("ln -sf " .. sh_quote(FIXTURES .. "/secret.txt") .. " " .. sh_quote(a .. "escape.txt"))
        sh("ln -sf ../secret.txt " .. sh_quote(a .. "escape-rel.txt"))
        sh("ln -sfn .. " .. sh_quote(a .. "up"))
        sh("ln -sf test.txt " .. sh_quote(a .. "inside.txt"))
        -- The fixture must really reach the secret, or the traversal checks prove nothing.
        assert.are.equal(SECRET, H.read_file(a .. "escape.txt"))
        assert.are.equal(SECRET, H.read_file(a .. "up/secret.txt"))
        assert.is_truthy(SECRET:find(SECRET_MARK, 1, true))
        -- Over 1 MiB: streamed from the file in chunks rather than read into memory.
        sh("head -c 3000000 /dev/urandom > " .. sh_quote(a .. "large.bin"))
        srv = H.start { env = { WEB_SERVER_STATIC_DIRECTORY = tmp .. "/assets" } }
    end)

    it("streams a file larger than 1 MiB byte for byte, also to a slow reader, and HEAD matches", function()
        local want = H.read_file(tmp .. "/assets/large.bin")
        local function md5(cmd)
            local p = io.popen(cmd .. " | md5sum")
            local out = p:read("*l")
            p:close()
            return out
        end
        local url = H.curl_args() .. " " .. sh_quote(srv:url("/large.bin"))
        local expected = md5("cat " .. sh_quote(tmp .. "/assets/large.bin"))
        assert.are.equal(expected, md5("curl -s " .. url))
        assert.are.equal(expected, md5("curl -s --limit-rate 4M " .. url))
        local head = srv:request { method = "HEAD", path = "/large.bin" }
        assert.are.equal(200, head.status)
        assert.are.equal(tostring(#want), head.headers["content-length"])
        assert.are.equal("", head.body)
        assert.are.equal(200, srv:request("/api/status").status)
    end)

    teardown(function()
        if srv then srv:stop() end
        if tmp and tmp:match("^/tmp/") then sh("rm -rf " .. sh_quote(tmp)) end
    end)

    describe("serving", function()
        it("serves index.html for /", function()
            local res = request(srv, "GET", "/")
            assert.are.equal(200, res.status)
            assert.are.equal("root index", res.body)
            assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
        end)

        it("serves subdir/index.html for /subdir and /subdir/", function()
            for _, path in ipairs({ "/subdir", "/subdir/", "/subdir/index.html", "//subdir//" }) do
                local res = request(srv, "GET", path)
                assert.are.equal(200, res.status, path)
                assert.are.equal("subdir index", res.body, path)
            end
        end)

        it("serves a text file with validators, cache headers and security headers", function()
            local res = request(srv, "GET", "/test.txt")
            assert.are.equal(200, res.status)
            assert.are.equal("hello static", res.body)
            assert.are.equal("", res.rest)
            assert.are.equal("text/plain; charset=utf-8", res.headers["content-type"])
            assert.are.equal("12", res.headers["content-length"])
            -- ETag: "<mtime ms base36>-<size base36>"; 12 bytes is "c" in base 36.
            assert.is_truthy(res.headers["etag"]:match('^"[0-9a-z]+%-c"$'), res.headers["etag"])
            assert.is_truthy(res.headers["last-modified"]:match(
                "^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$"), res.headers["last-modified"])
            assert.are.equal("public, max-age=3600", res.headers["cache-control"])
            assert.are.equal("keryx-example", res.headers["x-server-name"])
            assert_security_headers(res)
            assert.is_nil(res.headers["set-cookie"])
            assert.is_nil(res.headers["access-control-allow-origin"])
            assert.is_nil(res.headers["content-encoding"])
        end)

        it("serves the target of a symlink that stays inside the root", function()
            local res = request(srv, "GET", "/inside.txt")
            assert.are.equal(200, res.status)
            assert.are.equal("hello static", res.body)
        end)

        it("types .css as text/css and an unknown extension as application/octet-stream", function()
            local css = request(srv, "GET", "/style.css")
            assert.are.equal(200, css.status)
            assert.are.equal("text/css; charset=utf-8", css.headers["content-type"])
            assert.are.equal("body { color: #333; }\n", css.body)
            local blob = request(srv, "GET", "/blob.kxunknown")
            assert.are.equal(200, blob.status)
            assert.are.equal("application/octet-stream", blob.headers["content-type"])
        end)

        it("answers a missing file with the 404 envelope", function()
            assert_envelope(request(srv, "GET", "/no-such-file.txt"), 404, "CONNECTION_ACTION_NOT_FOUND")
            assert_envelope(request(srv, "GET", "/subdir/missing/"), 404, "CONNECTION_ACTION_NOT_FOUND")
        end)

        it("does not serve static files for POST", function()
            local res = request(srv, "POST", "/test.txt", { { "Content-Length", "0" } })
            assert_envelope(res, 404, "CONNECTION_ACTION_NOT_FOUND")
            assert.is_nil(res.body:find("hello static", 1, true))
        end)

        it("answers HEAD with the headers and Content-Length of GET but no body", function()
            local res = request(srv, "HEAD", "/test.txt")
            assert.are.equal(200, res.status)
            assert.are.equal("12", res.headers["content-length"])
            assert.are.equal("text/plain; charset=utf-8", res.headers["content-type"])
            assert.is_truthy(res.headers["etag"])
            assert.are.equal("", res.rest, "HEAD response carried body bytes")
            local big = request(srv, "HEAD", "/big.txt")
            assert.are.equal(tostring(#BIG), big.headers["content-length"])
            assert.are.equal("", big.rest)
        end)
    end)

    describe("conditional requests", function()
        it("answers If-None-Match with the current ETag with an empty 304 without Cache-Control", function()
            local first = request(srv, "GET", "/test.txt")
            local res = request(srv, "GET", "/test.txt", { { "If-None-Match", first.headers["etag"] } })
            assert.are.equal(304, res.status)
            assert.are.equal("", res.rest, "304 carried a body")
            assert.are.equal(first.headers["etag"], res.headers["etag"])
            assert.are.equal(first.headers["last-modified"], res.headers["last-modified"])
            assert.is_nil(res.headers["cache-control"])
            assert_security_headers(res)
        end)

        it("answers a bogus If-None-Match with the full 200", function()
            local res = request(srv, "GET", "/test.txt", { { "If-None-Match", '"bogus"' } })
            assert.are.equal(200, res.status)
            assert.are.equal("hello static", res.body)
        end)

        it("answers If-Modified-Since at Last-Modified with 304, and an older date with 200", function()
            local first = request(srv, "GET", "/test.txt")
            local res = request(srv, "GET", "/test.txt", { { "If-Modified-Since", first.headers["last-modified"] } })
            assert.are.equal(304, res.status)
            assert.are.equal("", res.rest)
            assert.is_nil(res.headers["cache-control"])
            local old = request(srv, "GET", "/test.txt", { { "If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT" } })
            assert.are.equal(200, old.status)
            assert.are.equal("hello static", old.body)
        end)

        it("lets a non-matching If-None-Match win over a matching If-Modified-Since", function()
            local first = request(srv, "GET", "/test.txt")
            local res = request(srv, "GET", "/test.txt", {
                { "If-None-Match", '"bogus"' }, { "If-Modified-Since", first.headers["last-modified"] } })
            assert.are.equal(200, res.status)
        end)
    end)

    describe("compression", function()
        it("gzips a 2 KB+ text file for Accept-Encoding: gzip, and it round-trips", function()
            assert.is_true(#BIG > 2048)
            local res = request(srv, "GET", "/big.txt", { { "Accept-Encoding", "gzip, deflate" } })
            assert.are.equal(200, res.status)
            assert.are.equal("gzip", res.headers["content-encoding"])
            assert.is_truthy((res.headers["vary"] or ""):find("Accept-Encoding", 1, true))
            assert.are.equal(tostring(#res.body), res.headers["content-length"])
            assert.is_true(#res.body < #BIG)
            assert.are.equal("\31\139", res.body:sub(1, 2)) -- gzip magic
            local gz = os.tmpname()
            local f = assert(io.open(gz, "wb"))
            f:write(res.body)
            f:close()
            local p = io.popen("gzip -dc < " .. sh_quote(gz))
            local plain = p:read("*a")
            p:close()
            os.remove(gz)
            assert.are.equal(BIG, plain)
        end)

        it("does not gzip for gzip;q=0, identity, or no Accept-Encoding", function()
            for _, ae in ipairs({ "gzip;q=0", "gzip; q=0.000", "identity", false }) do
                local res = request(srv, "GET", "/big.txt", ae and { { "Accept-Encoding", ae } } or nil)
                assert.are.equal(200, res.status)
                assert.is_nil(res.headers["content-encoding"], tostring(ae))
                assert.are.equal(BIG, res.body, tostring(ae))
            end
        end)

        it("does not gzip a file below the 1024-byte threshold", function()
            local res = request(srv, "GET", "/test.txt", { { "Accept-Encoding", "gzip" } })
            assert.is_nil(res.headers["content-encoding"])
            assert.are.equal("hello static", res.body)
        end)
    end)

    describe("traversal (raw bytes, no client normalisation)", function()
        for _, case in ipairs(TRAVERSAL) do
            local path, status, typ = case[1], case[2], case[3]
            it(("GET %s → %d %s, no secret in the response"):format(path, status, typ), function()
                local raw = exchange(srv, "GET " .. path .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                assert.is_nil(raw:find(SECRET_MARK, 1, true), "secret leaked:\n" .. raw)
                assert.is_nil(raw:find(ENV_MARK, 1, true), ".env leaked:\n" .. raw)
                assert.is_nil(raw:find("root:", 1, true), "/etc/passwd leaked")
                local res = parse_one(raw)
                assert_envelope(res, status, typ)
            end)
        end

        it("gives the same answers to HEAD (and never a body)", function()
            for _, case in ipairs(TRAVERSAL) do
                local raw = exchange(srv, "HEAD " .. case[1] .. " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                assert.is_nil(raw:find(SECRET_MARK, 1, true), case[1])
                local res = parse_one(raw, true)
                assert.are.equal(case[2], res.status, case[1])
            end
        end)

        it("gives a real client (curl --path-as-is) the same answers", function()
            local out = os.tmpname()
            for _, case in ipairs(TRAVERSAL) do
                local url = srv:url(case[1])
                local p = io.popen("curl -s --path-as-is " .. H.curl_args() .. " -o " .. sh_quote(out) .. " -w '%{http_code}' " .. sh_quote(url))
                local code = p:read("*a")
                p:close()
                local body = H.read_file(out)
                assert.are.equal(tostring(case[2]), code, case[1])
                assert.is_nil(body:find(SECRET_MARK, 1, true), "secret leaked via curl for " .. case[1])
                assert.is_nil(body:find(ENV_MARK, 1, true), case[1])
                assert.are.equal(case[3], cjson.decode(body).error.type, case[1])
            end
            os.remove(out)
        end)
    end)
end)
