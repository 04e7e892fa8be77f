-- keryx.params: percent-decoding, urlencoded parsing and the request → raw params merge
-- (route > body > query, no merging across sources, arrays only within one source).
local params = require "keryx.params"
local json = require "keryx.json"
local errors = require "keryx.errors"

local function formatting_error(p, err)
    assert.is_nil(p)
    assert.is_true(errors.is(err))
    assert.are.equal("CONNECTION_ACTION_PARAM_FORMATTING", err.type)
    assert.are.equal(400, errors.status(err.type))
    return err
end

describe("params.unescape", function()
    it("decodes %XX escapes, upper and lower case hex", function()
        assert.are.equal("a b/c", params.unescape("a%20b%2fc"))
        assert.are.equal("\0\255", params.unescape("%00%FF"))
        assert.are.equal("é", params.unescape("%C3%A9"))
    end)

    it("turns '+' into a space only when plus is true", function()
        assert.are.equal("a b", params.unescape("a+b", true))
        assert.are.equal("a+b", params.unescape("a+b", false))
        assert.are.equal("a+b", params.unescape("a+b"))
    end)

    it("decodes an escaped plus after the plus→space step, so %2B stays a literal +", function()
        assert.are.equal("a+b c", params.unescape("a%2Bb+c", true))
    end)

    it("leaves invalid or truncated escapes literal", function()
        assert.are.equal("%zz", params.unescape("%zz"))
        assert.are.equal("100%", params.unescape("100%"))
        assert.are.equal("%2", params.unescape("%2"))
        assert.are.equal("%g1x", params.unescape("%g1x"))
        assert.are.equal("%A", params.unescape("%%41"))
    end)

    it("does not decode twice", function()
        assert.are.equal("%41", params.unescape("%2541"))
    end)
end)

describe("params.parse_urlencoded", function()
    it("parses pairs and turns a repeated key into an array in order", function()
        local t = params.parse_urlencoded("a=1&b=x&a=2&a=3")
        assert.are.same({ a = { "1", "2", "3" }, b = "x" }, t)
    end)

    it("gives an empty string for an empty value and for a key without '='", function()
        assert.are.same({ a = "", b = "" }, params.parse_urlencoded("a=&b"))
    end)

    it("skips empty pairs and keeps '=' inside values", function()
        assert.are.same({ a = "1=2", c = "3" }, params.parse_urlencoded("&&a=1=2&&c=3&"))
    end)

    it("decodes keys and values, '+' as space", function()
        assert.are.same({ ["first name"] = "Ada Lovelace", ["x&y"] = "1+1" },
            params.parse_urlencoded("first+name=Ada+Lovelace&x%26y=1%2B1"))
    end)

    it("adds into a given table", function()
        local into = { keep = "me" }
        local t = params.parse_urlencoded("a=1", into)
        assert.are.equal(into, t)
        assert.are.same({ keep = "me", a = "1" }, t)
    end)

    it("returns an empty table for an empty string", function()
        assert.are.same({}, params.parse_urlencoded(""))
    end)

    describe("MAX_PARAMS", function()
        local saved
        before_each(function() saved = params.MAX_PARAMS end)
        after_each(function() params.MAX_PARAMS = saved end)

        it("defaults to 1000", function()
            assert.are.equal(1000, saved)
        end)

        it("accepts exactly MAX_PARAMS pairs and refuses one more with nil, err", function()
            params.MAX_PARAMS = 3
            assert.are.same({ a = "1", b = "2", c = "3" }, params.parse_urlencoded("a=1&b=2&c=3"))
            local t, err = params.parse_urlencoded("a=1&b=2&c=3&d=4")
            assert.is_nil(t)
            assert.are.equal("too many parameters (max 3)", err)
        end)

        it("counts repeated keys too (an array cannot grow past the cap)", function()
            params.MAX_PARAMS = 2
            local t, err = params.parse_urlencoded("a=1&a=2&a=3")
            assert.is_nil(t)
            assert.matches("too many parameters", err)
        end)

        it("does not count empty pairs", function()
            params.MAX_PARAMS = 1
            assert.are.same({ a = "1" }, params.parse_urlencoded("&&&a=1&&&"))
        end)

        it("refuses a 1001-pair query with the real default", function()
            local parts = {}
            for i = 1, 1001 do parts[i] = "k" .. i .. "=v" end
            local t, err = params.parse_urlencoded(table.concat(parts, "&"))
            assert.is_nil(t)
            assert.matches("max 1000", err)
        end)
    end)
end)

describe("params.from_request", function()
    it("returns an empty table for a bare request", function()
        assert.are.same({}, params.from_request({}))
        assert.are.same({}, params.from_request({ query = "", body = "" }))
    end)

    it("takes route params over body over query, without merging sources into arrays", function()
        local p = params.from_request({
            query = "a=q&b=q&c=q&d=1&d=2",
            content_type = "application/json",
            body = '{"a":"body","b":"body","d":"body"}',
            params = { a = "route" },
        })
        assert.are.same({ a = "route", b = "body", c = "q", d = "body" }, p)
    end)

    it("keeps a query array when nothing higher has the key", function()
        assert.are.same({ tag = { "x", "y" } }, params.from_request({ query = "tag=x&tag=y" }))
    end)

    for _, ct in ipairs { "application/json", "application/json; charset=utf-8",
        "application/vnd.api+json", "Application/JSON", "  application/json ;charset=UTF-8" } do
        it("parses a JSON body for content type '" .. ct .. "'", function()
            local p = params.from_request({ content_type = ct, body = '{"n":42,"ok":true,"s":"x","o":{"k":[1,2]}}' })
            assert.are.same({ n = 42, ok = true, s = "x", o = { k = { 1, 2 } } }, p)
        end)
    end

    it("answers a typed formatting error for malformed JSON", function()
        local p, err = params.from_request({ content_type = "application/json", body = '{"a":' })
        formatting_error(p, err)
        assert.matches("^cannot parse request body: ", err.message)
    end)

    for _, body in ipairs { "[1,2]", '["a"]', "[null]", "42", '"str"', "true", "null" } do
        it("answers a formatting error for a non-object JSON body " .. body, function()
            local p, err = params.from_request({ content_type = "application/json", body = body })
            formatting_error(p, err)
            assert.are.equal("request body must be a JSON object", err.message)
        end)
    end

    it("answers a formatting error for an empty JSON array body []", function()
        local p, err = params.from_request({ content_type = "application/json", body = "[]" })
        formatting_error(p, err)
    end)

    it("accepts an empty JSON object and string keys that look like numbers", function()
        assert.are.same({}, params.from_request({ content_type = "application/json", body = "{}" }))
        assert.are.same({ ["1"] = "a" },
            params.from_request({ content_type = "application/json", body = '{"1":"a"}' }))
    end)

    it("drops top-level JSON null values (absent) but keeps nested ones", function()
        local p = params.from_request({ content_type = "application/json", body = '{"a":null,"b":1,"c":{"d":null}}' })
        assert.is_nil(p.a)
        assert.are.equal(1, p.b)
        assert.are.equal(json.null, p.c.d)
    end)

    it("parses a form body, repeated keys becoming an array", function()
        local p = params.from_request({
            content_type = "application/x-www-form-urlencoded; charset=UTF-8",
            body = "name=Ada+L&tag=a&tag=b&empty=",
        })
        assert.are.same({ name = "Ada L", tag = { "a", "b" }, empty = "" }, p)
    end)

    it("takes a form body over the query, key by key", function()
        local p = params.from_request({
            query = "a=q&b=q",
            content_type = "application/x-www-form-urlencoded",
            body = "a=f",
        })
        assert.are.same({ a = "f", b = "q" }, p)
    end)

    it("ignores bodies of other or missing content types", function()
        for _, ct in ipairs { "text/plain", "multipart/form-data; boundary=x", "application/jsonp", false } do
            local req = { query = "q=1", body = '{"a":1}', content_type = ct or nil }
            assert.are.same({ q = "1" }, params.from_request(req))
        end
    end)

    it("answers a formatting error when the query or a form exceeds MAX_PARAMS", function()
        local saved = params.MAX_PARAMS
        params.MAX_PARAMS = 2
        local ok, e = pcall(function()
            formatting_error(params.from_request({ query = "a=1&b=2&c=3" }))
            formatting_error(params.from_request({
                content_type = "application/x-www-form-urlencoded", body = "a=1&b=2&c=3",
            }))
        end)
        params.MAX_PARAMS = saved
        assert(ok, e)
    end)

    it("percent-decodes route params, leaving '+' alone", function()
        local p = params.from_request({ params = { id = "a%20b+c", path = "x%2Fy", bad = "%zz" } })
        assert.are.same({ id = "a b+c", path = "x/y", bad = "%zz" }, p)
    end)

    it("does not let a JSON body smuggle a value over a route param", function()
        local p = params.from_request({
            content_type = "application/json",
            body = '{"id":"999","user_id":"1"}',
            params = { id = "7" },
        })
        assert.are.equal("7", p.id)
        assert.are.equal("1", p.user_id)
    end)
end)
