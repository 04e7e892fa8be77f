-- Black-box HTTP/1.1 framing and request-smuggling checks against the real keryx binary
-- (src/http_guard.c: what Debian's llhttp 8.1 alone would let through).
--
-- Every hostile shape is sent over a raw socket together with a second, valid request in the
-- same write. The server must answer the shape once (400, or 501/505 where the guard says so),
-- close the connection, and never answer the second request: if it did, the two parsers in
-- front of and inside keryx could disagree about where a request ends.
local socket = require "socket"
local cjson = require "cjson"
local H = require "server"
local A = require "http_assert"

-- ---- helpers (the shared ones are in spec/helpers/http_assert.lua) --------------------------

local drain, exchange, parse_all, assert_envelope = A.drain, A.exchange, A.parse_all, A.assert_envelope

-- How many HTTP status lines appear anywhere in the stream (independent of parse_all's framing).
local function count_status_lines(raw)
    return H.count_matches(raw, "HTTP/1%.[01] %d%d%d ")
end

local HOST = A.HOST
-- The request a smuggler would like answered. Its answer would contain "Hello, SMUGGLED!".
local TAIL = "GET /api/hello?name=SMUGGLED HTTP/1.1\r\n" .. HOST .. "\r\n"

-- ---- the hostile shapes -------------------------------------------------------------------

local function get(headers, body)
    return "GET /api/status HTTP/1.1\r\n" .. headers .. "\r\n" .. (body or "")
end
local function chunked(body)
    return get(HOST .. "Transfer-Encoding: chunked\r\n", body)
end

local SHAPES = {
    -- head-terminator confusion
    { "bare CR in the head (\\r\\n\\rX)",
      "GET / HTTP/1.1\r\n" .. HOST .. "\rXGET /smuggled HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "bare CR inside a header value", get(HOST .. "X-A: a\rb\r\n"), 400 },
    { "bare LF line endings", "GET /api/status HTTP/1.1\nHost: localhost\n\n", 400 },
    { "bare LF after the request line only", "GET /api/status HTTP/1.1\n" .. HOST .. "\r\n", 400 },
    { "bare LF ending one header line", get("X-A: a\n" .. HOST), 400 },
    { "more than 8 empty lines before the request line", string.rep("\r\n", 9) .. get(HOST), 400 },
    -- obs-fold
    { "obs-fold (SP) hiding a Content-Length",
      get(HOST .. "X: y\r\n Content-Length: " .. #TAIL .. "\r\n"), 400 },
    { "obs-fold (HTAB) hiding a Content-Length",
      get(HOST .. "X: y\r\n\tContent-Length: " .. #TAIL .. "\r\n"), 400 },
    { "obs-fold continuing the Host header", get(HOST .. " evil.example\r\n"), 400 },
    -- chunk framing
    { "chunk data followed by 2 bytes other than CRLF", chunked("1\r\nAXX0\r\n\r\n"), 400 },
    { "chunk data followed by a bare LF", chunked("1\r\nA\n0\r\n\r\n"), 400 },
    { "chunk data followed by nothing but the next size", chunked("1\r\nA0\r\n\r\n"), 400 },
    { "chunk size -1", chunked("-1\r\nA\r\n0\r\n\r\n"), 400 },
    { "chunk size with a space before CRLF (BWS)", chunked("1 \r\nA\r\n0\r\n\r\n"), 400 },
    { "chunk size 0x1", chunked("0x1\r\nA\r\n0\r\n\r\n"), 400 },
    { "chunk size not hex (g)", chunked("g\r\nA\r\n0\r\n\r\n"), 400 },
    { "empty chunk size line", chunked("\r\nA\r\n0\r\n\r\n"), 400 },
    { "chunk size overflowing 64 bits", chunked("1ffffffffffffffff\r\nA\r\n0\r\n\r\n"), 400 },
    { "chunk size line ending in a bare LF", chunked("1\nA\r\n0\r\n\r\n"), 400 },
    { "chunk extension over 4 KiB", chunked("1;" .. string.rep("a", 5000) .. "\r\nA\r\n0\r\n\r\n"), 400 },
    { "last chunk followed by a bare-CR trailer", chunked("0\r\nX: y\rZ\r\n\r\n"), 400 },
    -- CL.TE / TE.CL
    { "Content-Length then Transfer-Encoding",
      get(HOST .. "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400 },
    { "Transfer-Encoding then Content-Length",
      get(HOST .. "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), 400 },
    -- CL.CL and invalid Content-Length values
    { "two equal Content-Lengths", get(HOST .. "Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), 400 },
    { "two different Content-Lengths", get(HOST .. "Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400 },
    { "Content-Length list 5, 5", get(HOST .. "Content-Length: 5, 5\r\n", "hello"), 400 },
    { "Content-Length +1", get(HOST .. "Content-Length: +1\r\n", "a"), 400 },
    { "Content-Length -1", get(HOST .. "Content-Length: -1\r\n", "a"), 400 },
    { "Content-Length 0x1", get(HOST .. "Content-Length: 0x1\r\n", "a"), 400 },
    { "empty Content-Length", get(HOST .. "Content-Length: \r\n"), 400 },
    { "Content-Length 1 1", get(HOST .. "Content-Length: 1 1\r\n", "ab"), 400 },
    { "Content-Length overflowing 64 bits", get(HOST .. "Content-Length: 18446744073709551617\r\n", "a"), 400 },
    { "Content-Length of 19 digits", get(HOST .. "Content-Length: 1000000000000000000\r\n", "a"), 400 },
    -- TE.TE obfuscation and unsupported codings
    { "TE identity, chunked", get(HOST .. "Transfer-Encoding: identity, chunked\r\n", "0\r\n\r\n"), 400 },
    { "TE chunked, chunked", get(HOST .. "Transfer-Encoding: chunked, chunked\r\n", "0\r\n\r\n"), 400 },
    { "TE gzip, chunked", get(HOST .. "Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 400 },
    { "TE chunked with a parameter", get(HOST .. "Transfer-Encoding: chunked;q=1\r\n", "0\r\n\r\n"), 400 },
    { "two Transfer-Encoding headers",
      get(HOST .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400 },
    { "Transfer-Encoding with a space before the colon",
      get(HOST .. "Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400 },
    { "empty Transfer-Encoding", get(HOST .. "Transfer-Encoding: \r\n", "0\r\n\r\n"), 400 },
    { "TE xchunked (unknown coding)", get(HOST .. "Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 501 },
    { "TE identity alone", get(HOST .. "Transfer-Encoding: identity\r\n", "0\r\n\r\n"), 501 },
    { "Transfer-Encoding on HTTP/1.0",
      "GET /api/status HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
    -- Host
    { "HTTP/1.1 without Host", "GET /api/status HTTP/1.1\r\n\r\n", 400 },
    { "two Host headers", get(HOST .. "Host: evil.example\r\n"), 400 },
    { "Host with userinfo", get("Host: user@localhost\r\n"), 400 },
    { "empty Host", get("Host: \r\n"), 400 },
    -- header names and values
    { "header name with a space", get(HOST .. "X Y: z\r\n"), 400 },
    { "empty header name", get(HOST .. ": z\r\n"), 400 },
    { "space before the colon", get("Host : localhost\r\n"), 400 },
    { "header line without a colon", get(HOST .. "X-No-Colon\r\n"), 400 },
    { "NUL in a header value", get(HOST .. "X-A: a\0b\r\n"), 400 },
    { "non-token byte in a header name", get(HOST .. "X(Y): z\r\n"), 400 },
    -- request line
    { "HTTP/0.9 request line (GET /)", "GET /\r\n" .. TAIL, 400 },
    { "HTTP/2.0 request line", "GET /api/status HTTP/2.0\r\n" .. HOST .. "\r\n", 505 },
    { "HTTP/1.2 request line", "GET /api/status HTTP/1.2\r\n" .. HOST .. "\r\n", 505 },
    { "lower-case http/1.1", "GET /api/status http/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "HTTP/1.10", "GET /api/status HTTP/1.10\r\n" .. HOST .. "\r\n", 400 },
    { "TAB between method and target", "GET\t/api/status HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "TAB before the version", "GET /api/status\tHTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "TAB inside the target", "GET /api/st\tatus HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "two spaces after the method", "GET  /api/status HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "two spaces before the version", "GET /api/status  HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "trailing space after the version", "GET /api/status HTTP/1.1 \r\n" .. HOST .. "\r\n", 400 },
    { "leading space before the method", " GET /api/status HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "fragment in the target", "GET /api/status#x HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "asterisk-form with GET", "GET * HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
    { "absolute-form with userinfo", "GET http://user@localhost/api/status HTTP/1.1\r\n" .. HOST .. "\r\n", 400 },
}

describe("HTTP framing (request smuggling)", function()
    local srv
    setup(function() srv = H.start() end)
    teardown(function() srv:stop() end)

    it("answers a valid request and the one pipelined after it (control for the checks below)", function()
        local raw, how = exchange(srv, get(HOST) .. "GET /api/hello?name=SMUGGLED HTTP/1.1\r\n" .. HOST ..
            "Connection: close\r\n\r\n")
        local list = parse_all(raw)
        assert.are.equal(2, #list)
        assert.are.equal(200, list[1].status)
        assert.are.equal(200, list[2].status)
        assert.is_truthy(raw:find("Hello, SMUGGLED!", 1, true))
        assert.are.equal("closed", how)
    end)

    for _, case in ipairs(SHAPES) do
        local name, bytes, status = case[1], case[2], case[3]
        it(("%s → %d, closed, the pipelined request never answered"):format(name, status), function()
            local raw, how = exchange(srv, bytes .. TAIL)
            local list = parse_all(raw)
            assert.are.equal(1, #list, "expected exactly one response, got:\n" .. raw)
            assert.are.equal(1, count_status_lines(raw), raw)
            assert_envelope(list[1], status, status == 400 and "CONNECTION_BAD_REQUEST" or nil)
            assert.are.equal("close", list[1].headers["connection"])
            assert.is_nil(raw:find("SMUGGLED", 1, true), "the smuggled request was answered")
            assert.are.equal("closed", how, "connection not closed after the error")
        end)
    end

    it("refuses the bare-CR shape even when the CR arrives in a later read", function()
        local c = srv:connect(2)
        assert(c:send("GET / HTTP/1.1\r\n" .. HOST .. "\r"))
        socket.sleep(0.05)
        assert(c:send("XGET /smuggled HTTP/1.1\r\n" .. HOST .. "\r\n" .. TAIL))
        local raw, how = drain(c)
        local list = parse_all(raw)
        assert.are.equal(1, #list, raw)
        assert_envelope(list[1], 400, "CONNECTION_BAD_REQUEST")
        assert.are.equal("closed", how)
    end)

    it("refuses chunk data followed by the wrong bytes when they arrive in a later read", function()
        local c = srv:connect(2)
        assert(c:send(chunked("3\r\nabc")))
        socket.sleep(0.05)
        assert(c:send("XX0\r\n\r\n" .. TAIL))
        local raw, how = drain(c)
        local list = parse_all(raw)
        assert.are.equal(1, #list, raw)
        assert_envelope(list[1], 400, "CONNECTION_BAD_REQUEST")
        assert.is_nil(raw:find("SMUGGLED", 1, true))
        assert.are.equal("closed", how)
    end)

    -- ---- valid framing is still served ------------------------------------------------------

    it("serves a valid chunked request (extension, trailer) and frames the next one after it", function()
        local raw, how = exchange(srv,
            "GET /api/hello?name=First HTTP/1.1\r\n" .. HOST .. "Transfer-Encoding: chunked\r\n\r\n" ..
            "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" ..
            "GET /api/hello?name=Second HTTP/1.1\r\n" .. HOST .. "Connection: close\r\n\r\n")
        local list = parse_all(raw)
        assert.are.equal(2, #list, raw)
        assert.are.equal(200, list[1].status)
        assert.are.same({ message = "Hello, First!" }, cjson.decode(list[1].body))
        assert.are.equal(200, list[2].status)
        assert.are.same({ message = "Hello, Second!" }, cjson.decode(list[2].body))
        assert.are.equal("closed", how)
    end)

    it("serves an upper-case hex chunk size and a chunked body to an unknown path as 404, not 400", function()
        local raw = exchange(srv, "GET /no-such-file HTTP/1.1\r\n" .. HOST .. "Connection: close\r\n" ..
            "Transfer-Encoding: CHUNKED\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n")
        local list = parse_all(raw)
        assert.are.equal(1, #list)
        assert_envelope(list[1], 404, "CONNECTION_ACTION_NOT_FOUND")
    end)

    it("frames a Content-Length body and answers the request pipelined after it", function()
        local raw = exchange(srv,
            "GET /api/hello?name=A HTTP/1.1\r\n" .. HOST .. "Content-Length: 5\r\n\r\nhello" ..
            "GET /api/hello?name=B HTTP/1.1\r\n" .. HOST .. "Content-Length: 0\r\nConnection: close\r\n\r\n")
        local list = parse_all(raw)
        assert.are.equal(2, #list, raw)
        assert.are.same({ message = "Hello, A!" }, cjson.decode(list[1].body))
        assert.are.same({ message = "Hello, B!" }, cjson.decode(list[2].body))
    end)

    it("skips up to 8 empty lines before a request line", function()
        local raw = exchange(srv, string.rep("\r\n", 8) .. get(HOST .. "Connection: close\r\n"))
        local list = parse_all(raw)
        assert.are.equal(1, #list)
        assert.are.equal(200, list[1].status)
    end)

    it("accepts an absolute-form target naming a host", function()
        local raw = exchange(srv, "GET http://localhost/api/hello?name=Abs HTTP/1.1\r\n" .. HOST ..
            "Connection: close\r\n\r\n")
        local list = parse_all(raw)
        assert.are.equal(1, #list)
        assert.are.equal(200, list[1].status)
        assert.are.same({ message = "Hello, Abs!" }, cjson.decode(list[1].body))
    end)

    it("answers 3 pipelined GETs sent in one write with 3 responses in order", function()
        local reqs = {}
        for i = 1, 3 do
            reqs[i] = "GET /api/hello?name=P" .. i .. " HTTP/1.1\r\n" .. HOST ..
                (i == 3 and "Connection: close\r\n" or "") .. "\r\n"
        end
        local raw, how = exchange(srv, table.concat(reqs))
        local list = parse_all(raw)
        assert.are.equal(3, #list, raw)
        for i = 1, 3 do
            assert.are.equal(200, list[i].status)
            assert.are.same({ message = "Hello, P" .. i .. "!" }, cjson.decode(list[i].body))
        end
        assert.are.equal("closed", how)
    end)

    it("reuses a keep-alive connection for sequential requests", function()
        local c = srv:connect(2)
        for i = 1, 3 do
            assert(c:send("GET /api/hello?name=K" .. i .. " HTTP/1.1\r\n" .. HOST .. "\r\n"))
            local res = assert(H.read_response(c))
            assert.are.equal(200, res.status)
            assert.are.same({ message = "Hello, K" .. i .. "!" }, cjson.decode(res.body))
            assert.is_nil(res.headers["connection"])
        end
        c:close()
    end)

    it("closes an HTTP/1.0 connection after the response by default", function()
        local raw, how = exchange(srv, "GET /api/status HTTP/1.0\r\n\r\n")
        local list = parse_all(raw)
        assert.are.equal(1, #list)
        assert.are.equal(200, list[1].status)
        assert.is_truthy(list[1].status_line:match("^HTTP/1%.1 200"))
        assert.are.equal("close", list[1].headers["connection"])
        assert.are.equal("closed", how)
    end)

    it("keeps an HTTP/1.0 connection alive with Connection: keep-alive", function()
        local c = srv:connect(2)
        assert(c:send("GET /api/hello?name=Ten HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.are.equal("keep-alive", res.headers["connection"])
        assert(c:send("GET /api/hello?name=Again HTTP/1.0\r\n\r\n"))
        local raw, how = drain(c)
        local list = parse_all(raw)
        assert.are.equal(1, #list)
        assert.are.same({ message = "Hello, Again!" }, cjson.decode(list[1].body))
        assert.are.equal("close", list[1].headers["connection"])
        assert.are.equal("closed", how)
    end)

    it("closes an HTTP/1.1 connection after Connection: close", function()
        local raw, how = exchange(srv, get(HOST .. "Connection: close\r\n") .. TAIL)
        local list = parse_all(raw)
        assert.are.equal(1, #list, raw)
        assert.are.equal(200, list[1].status)
        assert.are.equal("close", list[1].headers["connection"])
        assert.is_nil(raw:find("SMUGGLED", 1, true))
        assert.are.equal("closed", how)
    end)

    it("sends 100 Continue before the final response when the client expects it", function()
        local c = srv:connect(2)
        assert(c:send("GET /api/hello?name=Cont HTTP/1.1\r\n" .. HOST ..
            "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"))
        c:settimeout(1)
        assert.are.equal("HTTP/1.1 100 Continue", c:receive("*l"))
        assert.are.equal("", c:receive("*l"))
        assert(c:send("hello"))
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.are.same({ message = "Hello, Cont!" }, cjson.decode(res.body))
        c:close()
    end)

    it("sends no 100 Continue to an HTTP/1.0 client", function()
        local c = srv:connect(2)
        assert(c:send("GET /api/hello?name=Old HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"))
        c:settimeout(0.3)
        local early, err, partial = c:receive(1)
        assert.are.equal("timeout", err)
        assert.is_nil(early)
        assert.are.equal("", partial)
        assert(c:send("hello"))
        local raw = drain(c)
        local list = parse_all(raw)
        assert.are.equal(1, #list, raw)
        assert.are.equal(200, list[1].status)
    end)
end)
