-- OAuth 2.1 authorization server, every rule broken on purpose against the
-- real binary and Redis: each redirect URI rule at registration, the 6th registration from one
-- address, the authorize request checked before any page or redirect, code reuse (and the
-- revocation of what it issued), a wrong verifier, `plain` PKCE, a wrong redirect_uri, another
-- client's code, refresh reuse (the family revoked), another client's introspection and
-- revocation, an RFC 8707 resource mismatch, proxy headers ignored unless trusted, and
-- oversized and malformed bodies.
local H = require "server"
local O = require "oauth_client"
local cjson = require "cjson"

local function oauth_error(res, status, code)
    assert.are.equal(status, res.status, res.body)
    local b = cjson.decode(res.body)
    assert.are.equal(code, b.error, res.body)
    return b.error_description
end

describe("oauth rules", function()
    local R, srv

    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env { WEB_MAX_BODY_SIZE = "8192" } }
        O.create_user(srv)
    end)
    teardown(function() H.stop(srv) end)

    describe("registration: redirect URIs", function()
        local cases = {
            { "not a url", "Invalid URI" },
            { "/relative/callback", "Invalid URI" },
            { "https://", "Invalid URI" },
            { "https://app.example.com/cb#frag", "Redirect URI must not contain a fragment" },
            { "https://user:pw@app.example.com/cb", "Redirect URI must not contain userinfo" },
            { "http://localhost@evil.example/cb", "Redirect URI must not contain userinfo" },
            { "javascript:alert(1)", 'Redirect URI scheme "javascript:" is not allowed' },
            { "data:text/html,hi", 'Redirect URI scheme "data:" is not allowed' },
            { "vbscript:msgbox(1)", 'Redirect URI scheme "vbscript:" is not allowed' },
            { "file:///etc/passwd", 'Redirect URI scheme "file:" is not allowed' },
            { "http://app.example.com/cb", "Redirect URI must use HTTPS for non-localhost URIs" },
            { "http://localhost.evil.example/cb", "Redirect URI must use HTTPS for non-localhost URIs" },
        }
        for _, case in ipairs(cases) do
            it("refuses " .. case[1] .. " naming the rule", function()
                local why = oauth_error(O.register(srv, { redirect_uris = { O.REDIRECT, case[1] } }), 400,
                    "invalid_redirect_uri")
                assert.are.equal(case[2], why:sub(1, #case[2]))
            end)
        end

        it("accepts https, loopback http and private-use schemes", function()
            for _, uri in ipairs { "https://app.example.com/cb?x=1", "http://localhost:3000/cb", "http://127.0.0.1/cb",
                "http://[::1]:8080/cb", "vscode://publisher.ext/callback", "com.example.app:/oauth" } do
                assert.are.equal(201, O.register(srv, { redirect_uris = { uri } }).status, uri)
            end
        end)

        it("refuses a missing, empty or non-string redirect_uris and bad metadata", function()
            assert.are.equal("redirect_uris is required", oauth_error(O.register(srv, { client_name = "x" }), 400,
                "invalid_request"))
            assert.are.equal("redirect_uris is required",
                oauth_error(O.register(srv, '{"redirect_uris":[]}'), 400, "invalid_request"))
            assert.are.equal("Each redirect_uri must be a string",
                oauth_error(O.register(srv, { redirect_uris = { 42 } }), 400, "invalid_request"))
            oauth_error(O.register(srv, { redirect_uris = { O.REDIRECT }, application_type = "desktop" }), 400,
                "invalid_client_metadata")
            local many = {}
            for i = 1, 11 do many[i] = O.REDIRECT .. "/" .. i end
            oauth_error(O.register(srv, { redirect_uris = many }), 400, "invalid_request")
        end)
    end)

    describe("authorize request, checked before rendering or redirecting", function()
        local client_id
        setup(function() client_id = O.client(srv) end)

        local function refused(over, msg)
            for _, send in ipairs { O.authorize_page, O.sign_in } do
                local res = send(srv, O.authorize_params(client_id, over))
                assert.are.equal(400, res.status, res.body)
                assert.is_nil(res.headers["location"])
                assert.matches("^text/html", res.headers["content-type"])
                assert.is_truthy(res.body:find(msg, 1, true), res.body)
                assert.is_nil(res.body:find('name="password"', 1, true)) -- no form to fill in
            end
        end

        it("an unknown client", function() refused({ client_id = "x" .. client_id:sub(2) }, "Unknown client") end)
        it("a redirect_uri not registered (exact match: no prefix, no extra query, no other port)", function()
            refused({ redirect_uri = "https://evil.example/cb" }, "Invalid redirect URI")
            refused({ redirect_uri = O.REDIRECT .. "/more" }, "Invalid redirect URI")
            refused({ redirect_uri = O.REDIRECT .. "?x=1" }, "Invalid redirect URI")
            refused({ redirect_uri = "http://localhost:3001/callback" }, "Invalid redirect URI")
            refused({ redirect_uri = false }, "Invalid redirect URI")
        end)
        it("no code_challenge", function() refused({ code_challenge = false }, "code_challenge is required") end)
        it("plain PKCE", function()
            refused({ code_challenge_method = "plain", code_challenge = O.VERIFIER }, "code_challenge_method must be S256")
            refused({ code_challenge_method = false }, "code_challenge_method must be S256")
        end)
        it("a resource other than the MCP resource URL (RFC 8707)", function()
            refused({ resource = "https://other.example/mcp" }, "resource must be " .. O.ORIGIN .. "/mcp")
        end)
        it("a response_type other than code", function()
            refused({ response_type = "token" }, "response_type must be &quot;code&quot;")
        end)
    end)

    describe("token: authorization codes", function()
        it("are single use, and a second use revokes the tokens issued from the first", function()
            local client_id, code = O.code(srv)
            local t = cjson.decode(O.exchange(srv, client_id, code).body)
            assert.is_true(O.introspect(srv, client_id, t.access_token).active)
            local why = oauth_error(O.exchange(srv, client_id, code), 400, "invalid_grant")
            assert.matches("already used", why)
            assert.is_false(O.introspect(srv, client_id, t.access_token).active)
            assert.is_false(O.introspect(srv, client_id, t.refresh_token).active)
            oauth_error(O.refresh(srv, client_id, t.refresh_token), 400, "invalid_grant")
        end)

        it("need the right verifier, and a failed attempt burns the code", function()
            local client_id, code = O.code(srv)
            local wrong = O.VERIFIER:sub(1, -2) .. "l"
            assert.are.equal("PKCE verification failed",
                oauth_error(O.exchange(srv, client_id, code, { code_verifier = wrong }), 400, "invalid_grant"))
            oauth_error(O.exchange(srv, client_id, code), 400, "invalid_grant")
        end)

        it("refuse `plain` PKCE: the challenge itself as verifier fails", function()
            local client_id, code = O.code(srv)
            oauth_error(O.exchange(srv, client_id, code, { code_verifier = O.CHALLENGE }), 400, "invalid_grant")
        end)

        it("need the exact redirect_uri of the code", function()
            local client_id, code = O.code(srv)
            assert.are.equal("redirect_uri mismatch", oauth_error(O.exchange(srv, client_id, code,
                { redirect_uri = O.REDIRECT .. "/" }), 400, "invalid_grant"))
            local _, code2 = O.code(srv, client_id)
            oauth_error(O.exchange(srv, client_id, code2, { redirect_uri = false }), 400, "invalid_grant")
        end)

        it("belong to the client they were issued to", function()
            local _, code = O.code(srv)
            local other = O.client(srv)
            assert.are.equal("client_id mismatch", oauth_error(O.exchange(srv, other, code), 400, "invalid_grant"))
        end)

        it("refuse a resource other than the MCP resource URL (RFC 8707)", function()
            local client_id, code = O.code(srv)
            oauth_error(O.exchange(srv, client_id, code, { resource = "https://other.example/mcp" }), 400,
                "invalid_target")
            local _, code2 = O.code(srv, client_id)
            assert.are.equal(200, O.exchange(srv, client_id, code2, { resource = O.ORIGIN .. "/mcp" }).status)
        end)

        it("refuse unknown codes, missing parameters and other grant types", function()
            local client_id = O.client(srv)
            oauth_error(O.exchange(srv, client_id, "A" .. O.VERIFIER:sub(2)), 400, "invalid_grant")
            oauth_error(O.exchange(srv, client_id, "x", { code = false }), 400, "invalid_request")
            oauth_error(O.post_form(srv, "/oauth/token", { grant_type = "password" }), 400, "unsupported_grant_type")
            oauth_error(O.post_form(srv, "/oauth/token", { grant_type = "client_credentials" }), 400,
                "unsupported_grant_type")
        end)
    end)

    describe("token: refresh", function()
        it("rotates, and presenting a rotated token revokes the whole family", function()
            local client_id, t = O.tokens(srv)
            local t2 = cjson.decode(O.refresh(srv, client_id, t.refresh_token).body)
            assert.is_true(O.introspect(srv, client_id, t2.access_token).active)
            local why = oauth_error(O.refresh(srv, client_id, t.refresh_token), 400, "invalid_grant")
            assert.matches("revoked", why)
            assert.is_false(O.introspect(srv, client_id, t2.access_token).active)
            assert.is_false(O.introspect(srv, client_id, t2.refresh_token).active)
            oauth_error(O.refresh(srv, client_id, t2.refresh_token), 400, "invalid_grant")
        end)

        it("belongs to its client: another client gets client_id mismatch and nothing changes", function()
            local client_id, t = O.tokens(srv)
            local other = O.client(srv)
            assert.are.equal("client_id mismatch", oauth_error(O.refresh(srv, other, t.refresh_token), 400,
                "invalid_grant"))
            assert.are.equal(200, O.refresh(srv, client_id, t.refresh_token).status)
        end)
    end)

    describe("introspection and revocation", function()
        it("tell a client about its own tokens only", function()
            local client_id, t = O.tokens(srv)
            local other = O.client(srv)
            assert.are.same({ active = false }, O.introspect(srv, other, t.access_token))
            assert.are.same({ active = false }, O.introspect(srv, other, t.refresh_token))
            assert.is_true(O.introspect(srv, client_id, t.access_token).active)
        end)

        it("refuse an unknown or missing client_id with 401 invalid_client", function()
            local _, t = O.tokens(srv)
            local _, res = O.introspect(srv, "x", t.access_token)
            oauth_error(res, 401, "invalid_client")
            oauth_error(O.post_form(srv, "/oauth/introspect", { token = t.access_token }), 401, "invalid_client")
        end)

        it("revocation by another client changes nothing (and still answers 200)", function()
            local client_id, t = O.tokens(srv)
            local other = O.client(srv)
            local res = O.post_form(srv, "/oauth/revoke", { client_id = other, token = t.refresh_token })
            assert.are.equal(200, res.status)
            assert.is_true(O.introspect(srv, client_id, t.access_token).active)
            O.post_form(srv, "/oauth/revoke", { client_id = client_id, token = t.refresh_token })
            assert.is_false(O.introspect(srv, client_id, t.access_token).active)
        end)
    end)

    describe("bodies", function()
        it("over WEB_MAX_BODY_SIZE are refused with 413 before any OAuth code runs", function()
            local big = O.form { grant_type = "authorization_code", code = ("x"):rep(9000) }
            assert.are.equal(413, O.post_form(srv, "/oauth/token", big).status)
            local res = srv:request { method = "POST", path = "/oauth/register",
                headers = { { "Content-Type", "application/json" } },
                body = '{"redirect_uris":["' .. ("a"):rep(9000) .. '"]}' }
            assert.are.equal(413, res.status)
        end)

        it("that are malformed are a 400, never a client or a token", function()
            for _, body in ipairs { "{", '{"redirect_uris": [', "[1,2]", '"just a string"', "\0\1\2" } do
                local res = srv:request { method = "POST", path = "/oauth/register",
                    headers = { { "Content-Type", "application/json" } }, body = body }
                assert.are.equal(400, res.status, body)
            end
            local res = O.post_form(srv, "/oauth/token", "grant_type=authorization_code&code=a&code=b&code_verifier=x")
            assert.are.equal(400, res.status)
            res = O.post_form(srv, "/oauth/token", "%%%&&&===")
            assert.are.equal(400, res.status)
        end)

        it("a repeated authorize parameter is refused, never picked", function()
            local client_id = O.client(srv)
            local q = O.form(O.authorize_params(client_id)) .. "&redirect_uri=" .. O.enc("https://evil.example/cb")
            local res = H.get(srv, "/oauth/authorize?" .. q)
            assert.are.equal(400, res.status)
            assert.is_nil(res.headers["location"])
        end)
    end)
end)

describe("oauth: registration rate limit", function()
    local R, srv
    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env { RATE_LIMIT_ENABLED = "true" } }
    end)
    teardown(function() H.stop(srv) end)

    it("the 6th registration from one address in the window is a 429 with Retry-After", function()
        for i = 1, 5 do assert.are.equal(201, O.register(srv).status, "registration " .. i) end
        local res = O.register(srv)
        assert.are.equal("Rate limit exceeded",
            oauth_error(res, 429, "rate_limit_exceeded"):match("^Rate limit exceeded"))
        assert.is_truthy(tonumber(res.headers["retry-after"]))
        assert.are.equal("0", res.headers["x-ratelimit-remaining"])
        -- its own counter: the other endpoints still answer
        assert.are.equal(200, H.get(srv, "/.well-known/oauth-authorization-server").status)
        assert.is_truthy(R.cli("--scan", "--pattern", "ratelimit:oauth-register*"):find("ip:127.0.0.1", 1, true))
    end)

    it("the other endpoints count against the per-IP unauthenticated limit", function()
        local seen429
        for _ = 1, 25 do
            local res = O.post_form(srv, "/oauth/token", { grant_type = "refresh_token", refresh_token = "x",
                client_id = "y" })
            if res.status == 429 then
                seen429 = res
                break
            end
        end
        assert.is_truthy(seen429, "no 429 within 25 token requests (RATE_LIMIT_UNAUTH_LIMIT is 20)")
        oauth_error(seen429, 429, "rate_limit_exceeded")
        assert.is_truthy(seen429.headers["retry-after"])
    end)
end)

describe("oauth: a sign-in through the page counts against the address that posted it", function()
    local R, srv
    setup(function()
        R = H.redis()
        R.cli("FLUSHALL")
        srv = H.start { env = O.env { RATE_LIMIT_ENABLED = "true" } }
        O.create_user(srv)
    end)
    teardown(function() H.stop(srv) end)

    local function post_from(from, path, body)
        local c = srv:connect(5, from)
        assert(c:send(H.build { method = "POST", path = path, body = body,
            headers = { { "Content-Type", "application/x-www-form-urlencoded" } } }))
        local res, err = H.read_response(c, "POST")
        c:close()
        return assert(res, err)
    end

    it("the login action's per-IP counter is the poster's, never one shared identifier", function()
        local client_id = O.client(srv)
        local form = O.authorize_params(client_id)
        form.mode, form.email, form.password = "signin", O.EMAIL, O.PASSWORD
        local res = post_from("127.0.0.9", "/oauth/authorize", O.form(form))
        assert.are.equal(302, res.status, res.body)
        local keys = R.cli("--scan", "--pattern", "ratelimit:{ip:*")
        assert.is_truthy(keys:find("ratelimit:{ip:127.0.0.9}", 1, true), keys)
        assert.is_nil(keys:find("oauth", 1, true), keys)
        -- the endpoint's own check (19 left), then the login action's middleware: the next
        -- request from that address sees 17 left, one from another address a fresh budget
        assert.are.equal("19", res.headers["x-ratelimit-remaining"])
        res = post_from("127.0.0.9", "/oauth/token", "grant_type=refresh_token&refresh_token=x&client_id=y")
        assert.are.equal("17", res.headers["x-ratelimit-remaining"])
        res = post_from("127.0.0.10", "/oauth/token", "grant_type=refresh_token&refresh_token=x&client_id=y")
        assert.are.equal("19", res.headers["x-ratelimit-remaining"])
    end)
end)

describe("oauth: the issuer is never taken from request headers unless trusted", function()
    local srv
    setup(function() srv = H.start { env = O.env { MCP_OAUTH_TRUST_PROXY = "true" } } end)
    teardown(function() H.stop(srv) end)

    it("with MCP_OAUTH_TRUST_PROXY=true the proxy's X-Forwarded-Proto/Host name the issuer", function()
        local res = H.get(srv, "/.well-known/oauth-authorization-server",
            { { "X-Forwarded-Proto", "https" }, { "X-Forwarded-Host", "proxy.example.net" } })
        assert.are.equal("https://proxy.example.net", cjson.decode(res.body).issuer)
        -- a forwarded host that is not a host falls back to APPLICATION_URL's origin
        res = H.get(srv, "/.well-known/oauth-authorization-server",
            { { "X-Forwarded-Proto", "https" }, { "X-Forwarded-Host", "evil.example/path?" } })
        assert.are.equal(O.ORIGIN, cjson.decode(res.body).issuer)
    end)
end)
