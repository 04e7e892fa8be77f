-- The OAuth 2.1 authorization server's endpoints (README "OAuth 2.1 authorization server"):
-- internal actions on absolute paths, loaded by keryx.boot only with MCP_SERVER_ENABLED (off,
-- the paths are plain 404s). Hidden from swagger and `keryx actions`, never MCP tools, never
-- runnable by name. No answer here sets the session cookie: these conns never touch the session.
-- The logic and the Redis layout are keryx.oauth's; each action only picks the answer.
local keryx = require "keryx"
local core = require "keryx.core"
local oauth = require "keryx.oauth"
local conn_mod = require "keryx.conn"
local pipeline = require "keryx.pipeline"
local session = require "keryx.session"

local route = core.config.server.mcp.route
local HTML = "text/html; charset=utf-8"

-- def.limit: "ip" (the unauthenticated per-IP limit) or "register" (its own, per IP) is
-- checked before the endpoint runs; the metadata endpoints have none.
local function endpoint(def)
    def.internal = true
    def.web.absolute = true
    local run, limit = def.run, def.limit
    def.limit = nil
    if limit then
        def.run = function(p, conn)
            local limited = oauth.limit(conn, limit == "register")
            if limited then return limited end
            return run(p, conn)
        end
    end
    return keryx.action(def)
end

local function protected_resource(_, conn)
    local origin = oauth.origin(conn)
    return { resource = oauth.resource(conn), authorization_servers = { origin }, scopes_supported = { "mcp" },
        bearer_methods_supported = { "header" } }
end

local function html(conn, status, body)
    conn.status = status
    conn:set_content_type(HTML)
    conn:set_header("Cache-Control", "no-store")
    return body
end

local function sign_in_page(conn, p, err)
    local login, signup = oauth.flagged(pipeline.registry.list)
    return html(conn, 200, oauth.page(p, login, signup, err))
end

-- Introspection and revocation name their client; a missing id is refused alike.
local function client_id_of(p, conn)
    local id = oauth.param(p, "client_id")
    if not id then return nil, oauth.fail(conn, 401, "invalid_client", "client_id is required", true) end
    return id
end

-- Runs the flagged login / signup action through the pipeline as the posting client (its
-- rate limits count against that address); returns the user id or nil, a message to show.
local function sign_in(p, conn)
    local login, signup = oauth.flagged(pipeline.registry.list)
    local action = p.mode == "signup" and signup or login
    if not action then
        return nil, p.mode == "signup" and "No signup action configured" or "No login action configured"
    end
    local inner = conn_mod.new { type = "oauth", identifier = conn.identifier, correlation_id = conn.correlation_id,
        method = "POST" }
    local response, err = pipeline.act(action, oauth.action_fields(p), inner)
    -- A login action may start a session; nobody holds its id (no cookie here), so drop it.
    local sid = rawget(inner, "session_id")
    if sid then session.delete(sid) end
    if err then return nil, err.message end
    local user = type(response) == "table" and response.user
    local id = type(user) == "table" and user.id
    if type(id) ~= "number" then return nil, "The sign-in action did not return a user" end
    return id
end

return {
    endpoint {
        name = "oauth:protected-resource",
        description = "RFC 9728 protected resource metadata",
        web = { method = "GET", route = "/.well-known/oauth-protected-resource" },
        run = protected_resource,
    },
    endpoint {
        name = "oauth:protected-resource-mcp",
        description = "RFC 9728 protected resource metadata of the MCP route",
        web = { method = "GET", route = "/.well-known/oauth-protected-resource" .. route },
        run = protected_resource,
    },
    endpoint {
        name = "oauth:authorization-server",
        description = "RFC 8414 authorization server metadata",
        web = { method = "GET", route = "/.well-known/oauth-authorization-server" },
        run = function(_, conn)
            local o = oauth.origin(conn)
            return {
                issuer = o,
                authorization_endpoint = o .. "/oauth/authorize",
                token_endpoint = o .. "/oauth/token",
                registration_endpoint = o .. "/oauth/register",
                introspection_endpoint = o .. "/oauth/introspect",
                revocation_endpoint = o .. "/oauth/revoke",
                response_types_supported = { "code" },
                grant_types_supported = { "authorization_code", "refresh_token" },
                code_challenge_methods_supported = { "S256" },
                token_endpoint_auth_methods_supported = { "none" },
                introspection_endpoint_auth_methods_supported = { "none" },
                revocation_endpoint_auth_methods_supported = { "none" },
                scopes_supported = { "mcp" },
                authorization_response_iss_parameter_supported = true,
                client_id_metadata_document_supported = false,
            }
        end,
    },
    endpoint {
        name = "oauth:register",
        description = "RFC 7591 dynamic client registration",
        web = { method = "POST", route = "/oauth/register" },
        limit = "register",
        run = function(p, conn)
            local client, code, why = oauth.register(p)
            if not client then return oauth.fail(conn, 400, code, why) end
            return oauth.answer(conn, 201, client, true)
        end,
    },
    endpoint {
        name = "oauth:authorize-page",
        description = "OAuth authorize: the sign-in / sign-up page",
        web = { method = "GET", route = "/oauth/authorize" },
        limit = "ip",
        run = function(p, conn)
            local client, why = oauth.check_authorize(conn, p)
            if not client then return html(conn, 400, oauth.error_page(why)) end
            return sign_in_page(conn, p)
        end,
    },
    endpoint {
        name = "oauth:authorize",
        description = "OAuth authorize: sign in, then redirect to the client with a code",
        web = { method = "POST", route = "/oauth/authorize" },
        limit = "ip",
        run = function(p, conn)
            local client, why = oauth.check_authorize(conn, p)
            if not client then return html(conn, 400, oauth.error_page(why)) end
            local user_id, err = sign_in(p, conn)
            if not user_id then return sign_in_page(conn, p, err) end
            conn.status = 302
            conn:set_header("Location", oauth.issue_code(conn, p, user_id))
            conn:set_header("Cache-Control", "no-store")
            conn:set_content_type("text/plain; charset=utf-8")
            return ""
        end,
    },
    endpoint {
        name = "oauth:token",
        description = "OAuth token endpoint (authorization_code, refresh_token)",
        web = { method = "POST", route = "/oauth/token" },
        limit = "ip",
        run = function(p, conn)
            local grant = oauth.param(p, "grant_type")
            local body, code, why
            if grant == "authorization_code" then
                body, code, why = oauth.exchange_code(conn, p)
            elseif grant == "refresh_token" then
                body, code, why = oauth.refresh(conn, p)
            else
                return oauth.answer(conn, 400, { error = "unsupported_grant_type" }, true)
            end
            if not body then return oauth.fail(conn, 400, code, why, true) end
            return oauth.answer(conn, 200, body, true)
        end,
    },
    endpoint {
        name = "oauth:introspect",
        description = "RFC 7662 token introspection (a client's own tokens)",
        web = { method = "POST", route = "/oauth/introspect" },
        limit = "ip",
        run = function(p, conn)
            local id, refused = client_id_of(p, conn)
            if not id then return refused end
            if not oauth.client(id) then return oauth.fail(conn, 401, "invalid_client", "Unknown client", true) end
            return oauth.answer(conn, 200, oauth.introspect(p), true)
        end,
    },
    endpoint {
        name = "oauth:revoke",
        description = "RFC 7009 token revocation",
        web = { method = "POST", route = "/oauth/revoke" },
        limit = "ip",
        run = function(p, conn)
            local id, refused = client_id_of(p, conn)
            if not id then return refused end
            if oauth.param(p, "token") then oauth.revoke(p) end
            conn:set_content_type("text/plain; charset=utf-8")
            return oauth.answer(conn, 200, "", true)
        end,
    },
}
