local z = require "keryx.schema"
local json = require "keryx.json"

-- parse a single field `v` and return value, err
local function one(schema, raw)
    return z.object({ v = schema }):parse({ v = raw })
end

local function msg(schema, raw)
    local value, err = one(schema, raw)
    assert.is_nil(value)
    return err.message
end

describe("keryx.schema", function()
    describe("required and absent values", function()
        it("reports a missing required field", function()
            local value, err = z.object({ name = z.string() }):parse({})
            assert.is_nil(value)
            assert.are.same({ key = "name", message = "Missing required param: name", secret = false }, err)
        end)

        it("treats nil raw params as an empty table", function()
            assert.are.same({}, z.object({ a = z.string():optional() }):parse(nil))
            local _, err = z.object({ a = z.string() }):parse(nil)
            assert.are.equal("Missing required param: a", err.message)
        end)

        it("treats JSON null as absent", function()
            local _, err = z.object({ a = z.integer() }):parse({ a = json.null })
            assert.are.equal("Missing required param: a", err.message)
            assert.is_nil(err.value)
            assert.are.same({ a = 7 }, z.object({ a = z.integer():default(7) }):parse({ a = json.null }))
            assert.are.same({}, z.object({ a = z.integer():optional() }):parse({ a = json.null }))
        end)

        it("rejects params that are not a table", function()
            local value, err = z.object({}):parse("nope")
            assert.is_nil(value)
            assert.are.equal("params must be an object", err.message)
            assert.is_nil(err.key)
        end)

        it("leaves optional fields out and applies defaults", function()
            local s = z.object({
                a = z.string():optional(),
                b = z.integer():default(5),
                c = z.boolean():default(false),
            })
            assert.are.same({ b = 5, c = false }, s:parse({}))
            assert.are.same({ a = "x", b = 6, c = true }, s:parse({ a = "x", b = "6", c = "true" }))
        end)

        it("copies table defaults so one request cannot change the next", function()
            local s = z.object({ tags = z.array(z.string()):default({ "a" }) })
            local first = s:parse({})
            first.tags[1] = "changed"
            assert.are.same({ "a" }, s:parse({}).tags)
            -- an empty array default stays an array in JSON
            local e = z.object({ tags = z.array(z.string()):default(json.array()) })
            assert.are.equal('{"tags":[]}', json.encode(e:parse({})))
        end)
    end)

    describe("objects", function()
        it("returns a new table with only declared keys", function()
            local raw = { name = "bob", admin = true, __proto__ = "x" }
            local value = z.object({ name = z.string() }):parse(raw)
            assert.are.same({ name = "bob" }, value)
            assert.are_not.equal(raw, value)
            assert.are.equal(true, raw.admin)
        end)

        it("reports the first failure in sorted key order", function()
            local s = z.object({ zeta = z.string(), alpha = z.string(), mid = z.integer() })
            local _, err = s:parse({ zeta = 1, mid = "x" })
            assert.are.equal("alpha", err.key)
            _, err = s:parse({ alpha = "ok", zeta = 1, mid = "x" })
            assert.are.equal("mid", err.key)
            assert.are.equal("mid must be an integer", err.message)
            _, err = s:parse({ alpha = "ok", zeta = 1, mid = 3 })
            assert.are.equal("zeta must be a string", err.message)
        end)

        it("echoes the raw value of the failing field", function()
            local _, err = z.object({ age = z.integer():max(150) }):parse({ age = "200" })
            assert.are.same({ key = "age", message = "age must be <= 150", value = "200", secret = false }, err)
        end)

        it("validates nested objects with dotted names", function()
            local s = z.object({ address = z.object({ city = z.string():min(2), zip = z.string() }) })
            assert.are.same({ address = { city = "Oslo", zip = "0150" } },
                s:parse({ address = { city = "Oslo", zip = "0150", extra = 1 } }))
            local _, err = s:parse({ address = { city = "O", zip = "1" } })
            assert.are.equal("address", err.key)
            assert.are.equal("address.city must be at least 2 characters", err.message)
            _, err = s:parse({ address = { city = "Oslo" } })
            assert.are.equal("Missing required param: address.zip", err.message)
            _, err = s:parse({ address = "Oslo" })
            assert.are.equal("address must be an object", err.message)
        end)

        it("lists keys sorted and exposes field metadata", function()
            local s = z.object({
                b = z.string():describe("B field"),
                a = z.integer():optional(),
                c = z.string():default("x"),
                d = z.string():secret(),
            })
            assert.are.same({ "a", "b", "c", "d" }, s:keys())
            assert.are.equal("B field", s:field("b").description)
            assert.is_true(s:field("b").required)
            assert.is_false(s:field("a").required)
            assert.is_false(s:field("c").required)
            assert.is_true(s:field("d").is_secret)
            assert.is_false(s:field("b").is_secret)
            assert.is_nil(s:field("zzz"))
            assert.are.equal("integer", s:field("a").kind)
        end)

        it("keys() returns a copy", function()
            local s = z.object({ a = z.string() })
            local keys = s:keys()
            keys[1] = "hacked"
            assert.are.same({ "a" }, s:keys())
        end)
    end)

    describe("strings", function()
        it("refuses non-strings without coercion", function()
            assert.are.equal("v must be a string", msg(z.string(), 42))
            assert.are.equal("v must be a string", msg(z.string(), true))
            assert.are.equal("v must be a string", msg(z.string(), { "a" }))
        end)

        it("accepts the empty string as present", function()
            assert.are.same({ v = "" }, one(z.string(), ""))
        end)

        it("checks min and max length", function()
            assert.are.equal("v must be at least 3 characters", msg(z.string():min(3), "ab"))
            assert.are.equal("v must be at most 5 characters", msg(z.string():max(5), "abcdef"))
            assert.are.same({ v = "abc" }, one(z.string():min(3):max(3), "abc"))
        end)

        it("counts UTF-8 characters, not bytes", function()
            local s = z.string():min(3):max(3)
            assert.are.same({ v = "h\xc3\xa9j" }, one(s, "h\xc3\xa9j"))   -- 4 bytes, 3 chars
            assert.are.same({ v = "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac" }, one(s, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"))
            assert.are.equal("v must be at most 2 characters", msg(z.string():max(2), "\xf0\x9f\x98\x80ab"))
        end)

        it("validates emails pragmatically", function()
            local s = z.string():email()
            for _, good in ipairs({ "a@b.co", "first.last+tag@example.co.uk", "x_y@sub.domain.org" }) do
                assert.are.same({ v = good }, one(s, good), good)
            end
            local bad = { "", "plain", "@b.co", "a@", "a@b", "a@@b.co", "a@b@c.co", "a b@c.co", "a@b .co",
                "a@.b.co", "a@b.co.", "a@b..co", ".a@b.co", "a.@b.co", "a..b@c.co", "a\n@b.co",
                "<a>@b.co", string.rep("a", 65) .. "@b.co", "a@" .. string.rep("b", 250) .. ".co" }
            for _, v in ipairs(bad) do
                assert.are.equal("v must be a valid email", msg(s, v), v)
            end
        end)

        it("matches Lua patterns", function()
            local s = z.string():pattern("^[%w_]+$")
            assert.are.same({ v = "abc_1" }, one(s, "abc_1"))
            assert.are.equal("v does not match the required pattern", msg(s, "abc-1"))
            assert.are.equal("v does not match the required pattern", msg(s, ""))
        end)

        it("treats a pattern that fails at run time as a mismatch", function()
            -- %1 refers to no capture: Lua raises at match time; validation must not
            local s = z.string():pattern("%1")
            assert.are.equal("v does not match the required pattern", msg(s, "x"))
        end)

        it("refuses malformed patterns when defining the schema", function()
            for _, p in ipairs({ "%", "[a", "(a", "a)", "%b", "%fa", "x[%" }) do
                assert.has_error(function() z.string():pattern(p) end, nil, p)
            end
        end)

        it("checks enums with the list in the message", function()
            local s = z.string():enum({ "asc", "desc" })
            assert.are.same({ v = "desc" }, one(s, "desc"))
            assert.are.equal("v must be one of: asc, desc", msg(s, "ASC"))
            assert.are.equal("v must be a string", msg(s, 1))
        end)

        it("runs checks in the order they were chained", function()
            assert.are.equal("v must be a valid email", msg(z.string():email():min(50), "x"))
            assert.are.equal("v must be at least 50 characters", msg(z.string():min(50):email(), "x"))
        end)
    end)

    describe("numbers and integers", function()
        it("coerces decimal strings", function()
            assert.are.same({ v = 42 }, one(z.number(), "42"))
            assert.are.same({ v = -4.5 }, one(z.number(), "-4.5"))
            assert.are.same({ v = 1000 }, one(z.number(), "1e3"))
            assert.are.same({ v = 7 }, one(z.integer(), "007"))
            assert.are.same({ v = 42 }, one(z.integer(), 42))
        end)

        it("refuses anything that is not a plain decimal", function()
            for _, v in ipairs({ "abc", "", " 42 ", "42 ", "0x10", "+5", "1,5", "inf", "nan", "Infinity",
                "1e999", ".5", "5.", "--1", true, { 1 } }) do
                assert.are.equal("v must be a number", msg(z.number(), v), tostring(v))
            end
        end)

        it("refuses non-finite numbers", function()
            assert.are.equal("v must be a number", msg(z.number(), math.huge))
            assert.are.equal("v must be a number", msg(z.number(), 0 / 0))
        end)

        it("requires whole numbers for integers", function()
            assert.are.equal("v must be an integer", msg(z.integer(), "4.5"))
            assert.are.equal("v must be an integer", msg(z.integer(), 4.5))
            assert.are.equal("v must be an integer", msg(z.integer(), "abc"))
            assert.are.equal("v must be an integer", msg(z.integer(), 2 ^ 60))
            assert.are.same({ v = 4 }, one(z.integer(), "4.0"))
        end)

        it("normalises -0 to 0", function()
            local value = one(z.integer(), "-0")
            assert.are.equal("0", json.encode(value.v))
        end)

        it("checks bounds with the number in the message", function()
            assert.are.equal("v must be >= 1", msg(z.integer():min(1), "0"))
            assert.are.equal("v must be <= 100", msg(z.integer():max(100), 101))
            assert.are.equal("v must be >= 0.5", msg(z.number():min(0.5), "0.25"))
            assert.are.equal("v must be >= -3", msg(z.number():min(-3), -4))
            assert.are.same({ v = 100 }, one(z.integer():min(1):max(100), "100"))
        end)
    end)

    describe("booleans", function()
        it("accepts booleans and their string forms", function()
            local cases = { [true] = true, [false] = false, ["true"] = true, ["TRUE"] = true, ["False"] = false,
                ["1"] = true, ["0"] = false }
            for raw, want in pairs(cases) do
                assert.are.same({ v = want }, one(z.boolean(), raw), tostring(raw))
            end
        end)

        it("refuses everything else", function()
            for _, v in ipairs({ "yes", "no", "", "2", " true", 1, 0, { true } }) do
                assert.are.equal("v must be a boolean", msg(z.boolean(), v), tostring(v))
            end
        end)
    end)

    describe("arrays", function()
        it("validates and coerces items into a JSON array", function()
            local value = one(z.array(z.integer()), { "1", 2 })
            assert.are.same({ 1, 2 }, value.v)
            assert.is_true(json.is_array(value.v))
            local empty = one(z.array(z.string()), {})
            assert.are.equal('{"v":[]}', json.encode(empty))
        end)

        it("wraps a single value into a one-element array", function()
            assert.are.same({ v = { "a" } }, one(z.array(z.string()), "a"))
            assert.are.same({ v = { 5 } }, one(z.array(z.integer()), "5"))
        end)

        it("refuses object tables", function()
            assert.are.equal("v must be an array", msg(z.array(z.string()), { a = 1 }))
            assert.are.equal("v must be an array", msg(z.array(z.string()), { [1] = "a", [3] = "c" }))
        end)

        it("checks item counts", function()
            assert.are.equal("v must have at least 2 items", msg(z.array(z.string()):min(2), "a"))
            assert.are.equal("v must have at most 1 items", msg(z.array(z.string()):max(1), { "a", "b" }))
        end)

        it("reports item errors with a 1-based index and the top-level key", function()
            local value, err = one(z.array(z.integer():max(9)), { 1, "x" })
            assert.is_nil(value)
            assert.are.equal("v", err.key)
            assert.are.equal("v[2] must be an integer", err.message)
            local _
            _, err = one(z.array(z.integer():max(9)), { 1, 10 })
            assert.are.equal("v[2] must be <= 9", err.message)
            _, err = one(z.array(z.string()), { "a", json.null })
            assert.are.equal("v[2] must be a string", err.message)
        end)

        it("validates arrays of objects", function()
            local s = z.array(z.object({ id = z.integer() }))
            assert.are.same({ v = { { id = 1 } } }, one(s, { { id = "1", junk = true } }))
            local _, err = one(s, { { id = 1 }, {} })
            assert.are.equal("Missing required param: v[2].id", err.message)
        end)
    end)

    describe("secrets", function()
        it("never echoes a secret value in errors", function()
            local s = z.object({ password = z.string():min(8):secret() })
            local value, err = s:parse({ password = "hunter2" })
            assert.is_nil(value)
            assert.are.equal("password", err.key)
            assert.are.equal("password must be at least 8 characters", err.message)
            assert.is_nil(err.value)
            assert.is_true(err.secret)
            assert.is_nil(json.encode(err):find("hunter2", 1, true))
        end)

        it("hides values of fields containing a nested secret", function()
            local s = z.object({ creds = z.object({ user = z.string(), pin = z.string():min(4):secret() }) })
            local _, err = s:parse({ creds = { user = "bob", pin = "12" } })
            assert.are.equal("creds.pin must be at least 4 characters", err.message)
            assert.is_nil(err.value)
            assert.is_true(err.secret)
            local list = z.object({ keys = z.array(z.string():min(10):secret()) })
            _, err = list:parse({ keys = { "short" } })
            assert.is_nil(err.value)
            assert.is_true(err.secret)
        end)

        it("still returns secret values on success", function()
            local s = z.object({ password = z.string():secret() })
            assert.are.same({ password = "pw" }, s:parse({ password = "pw" }))
        end)
    end)

    describe("redact", function()
        local s = z.object({
            password = z.string():secret(),
            name = z.string(),
            note = z.string():optional(),
        })

        it("replaces secret keys and keeps keys outside the schema", function()
            local raw = { password = "hunter2", name = "bob", extra = 5 }
            local out = s:redact(raw)
            assert.are.same({ password = "[[secret]]", name = "bob", extra = 5 }, out)
            assert.are.equal("hunter2", raw.password)
        end)

        it("truncates long values with the original length", function()
            local long = string.rep("x", 150)
            local out = s:redact({ note = long })
            assert.are.equal(string.rep("x", 100) .. "... (truncated, original length: 150)", out.note)
            out = s:redact({ note = long }, 10)
            assert.are.equal(string.rep("x", 10) .. "... (truncated, original length: 150)", out.note)
            assert.are.equal(string.rep("x", 100), s:redact({ note = string.rep("x", 100) }).note)
        end)

        it("measures tables by their JSON encoding", function()
            local out = s:redact({ extra = { a = "0123456789" } }, 5)
            assert.are.equal('{"a":... (truncated, original length: 18)', out.extra)
            local small = { 1 }
            assert.are.equal(small, s:redact({ extra = small }, 5).extra)
        end)

        it("cuts on UTF-8 character boundaries", function()
            local out = s:redact({ note = string.rep("\xc3\xa9", 5) }, 3)
            assert.are.equal(string.rep("\xc3\xa9", 3) .. "... (truncated, original length: 5)", out.note)
        end)

        it("does not truncate when max_len is 0 and copes with odd input", function()
            local long = string.rep("y", 500)
            assert.are.equal(long, s:redact({ note = long }, 0).note)
            assert.are.same({}, s:redact(nil))
            assert.are.same({ password = "[[secret]]" }, s:redact({ password = 12345 }, 0))
        end)
    end)

    describe("json_schema", function()
        it("describes an object with properties, required and constraints", function()
            local s = z.object({
                name = z.string():min(3):max(20):describe("Display name"),
                email = z.string():email(),
                age = z.integer():min(0):max(150):optional(),
                score = z.number():default(1.5),
                role = z.string():enum({ "admin", "user" }),
                tags = z.array(z.string()):max(3):optional(),
                ok = z.boolean():optional(),
            })
            local js = s:json_schema()
            assert.are.equal("object", js.type)
            assert.is_false(js.additionalProperties)
            assert.are.same({ "email", "name", "role" }, js.required)
            assert.are.same({ type = "string", minLength = 3, maxLength = 20, description = "Display name" },
                js.properties.name)
            assert.are.same({ type = "string", format = "email" }, js.properties.email)
            assert.are.same({ type = "integer", minimum = 0, maximum = 150 }, js.properties.age)
            assert.are.same({ type = "number", default = 1.5 }, js.properties.score)
            assert.are.same({ type = "string", enum = { "admin", "user" } }, js.properties.role)
            assert.are.same({ type = "array", maxItems = 3, items = { type = "string" } }, js.properties.tags)
            assert.are.same({ type = "boolean" }, js.properties.ok)
        end)

        it("encodes to JSON with arrays where JSON Schema wants arrays", function()
            local s = z.object({ role = z.string():enum({ "a" }), name = z.string() })
            local back = json.decode(json.encode(s:json_schema()))
            assert.are.same({ "name", "role" }, back.required)
            assert.are.same({ "a" }, back.properties.role.enum)
            local text = json.encode(s:json_schema())
            assert.truthy(text:find('"required":["name","role"]', 1, true))
        end)

        it("omits required when nothing is required and keeps properties an object", function()
            local text = json.encode(z.object({}):json_schema())
            local back = json.decode(text)
            assert.is_nil(back.required)
            assert.truthy(text:find('"properties":{}', 1, true))
            assert.is_nil(z.object({ a = z.string():optional() }):json_schema().required)
        end)

        it("marks secrets as write-only passwords", function()
            local js = z.object({ pw = z.string():secret() }):json_schema()
            assert.are.same({ type = "string", format = "password", writeOnly = true }, js.properties.pw)
        end)

        it("translates simple Lua patterns to ECMAScript regexes", function()
            local cases = {
                ["^[%w_%-]+$"] = "^[\\-0-9A-Z_a-z]+$",
                ["^%d%d%d$"] = "^[0-9][0-9][0-9]$",
                ["a.b"] = "a[\\s\\S]b",
                ["%."] = "\\.",
                ["x*y-z?"] = "x*y*?z?",
                ["^[^%s]+$"] = "^[^\\x09-\\x0d ]+$",
                ["a$b"] = "a\\$b",
                ["[]]"] = "\\]",
                ["^*"] = "^\\*",
                ["{x}|/"] = "\\{x\\}\\|\\/",
                ["(ab)+"] = "(ab)\\+", -- a quantifier after ")" is a literal in Lua
            }
            for lua_pat, regex in pairs(cases) do
                assert.are.equal(regex, z._lua_pattern_to_regex(lua_pat), lua_pat)
                local js = z.object({ v = z.string():pattern(lua_pat) }):json_schema()
                assert.are.equal(regex, js.properties.v.pattern, lua_pat)
            end
        end)

        it("puts untranslatable patterns in the description instead", function()
            for _, p in ipairs({ "%bxy", "%f[%w]%w+", "(a)%1", "caf\xc3\xa9" }) do
                local js = z.string():pattern(p):describe("Word"):json_schema()
                assert.is_nil(js.pattern, p)
                assert.are.equal("Word (Must match Lua pattern: " .. p .. ")", js.description)
            end
            assert.are.equal("Must match Lua pattern: %bxy", z.string():pattern("%bxy"):json_schema().description)
        end)

        it("uses allOf for several patterns and the tightest bounds", function()
            local js = z.string():pattern("^a"):pattern("b$"):min(2):min(4):max(9):max(7):json_schema()
            assert.are.same({ { pattern = "^a" }, { pattern = "b$" } }, js.allOf)
            assert.are.equal(4, js.minLength)
            assert.are.equal(7, js.maxLength)
        end)

        it("describes nested objects and arrays of objects", function()
            local js = z.object({ items = z.array(z.object({ id = z.integer() })):min(1) }):json_schema()
            local items = js.properties.items
            assert.are.equal(1, items.minItems)
            assert.are.equal("object", items.items.type)
            assert.are.same({ "id" }, items.items.required)
        end)
    end)

    describe("pagination and extend", function()
        it("gives page and limit with defaults and bounds", function()
            local s = z.object(z.extend(z.pagination(), { q = z.string():optional() }))
            assert.are.same({ "limit", "page", "q" }, s:keys())
            assert.are.same({ page = 1, limit = 25 }, s:parse({}))
            assert.are.same({ page = 3, limit = 100, q = "x" }, s:parse({ page = "3", limit = "100", q = "x" }))
            local _, err = s:parse({ limit = "101" })
            assert.are.equal("limit must be <= 100", err.message)
            _, err = s:parse({ page = "0" })
            assert.are.equal("page must be >= 1", err.message)
            _, err = s:parse({ page = "1.5" })
            assert.are.equal("page must be an integer", err.message)
        end)

        it("honours custom limits", function()
            local s = z.object(z.pagination({ default_limit = 10, max_limit = 50 }))
            assert.are.same({ page = 1, limit = 10 }, s:parse({}))
            local _, err = s:parse({ limit = 51 })
            assert.are.equal("limit must be <= 50", err.message)
            assert.has_error(function() z.pagination({ default_limit = 60, max_limit = 50 }) end)
        end)

        it("lets later tables win and accepts object schemas", function()
            local base = z.object({ a = z.string(), b = z.string() })
            local fields = z.extend(base, { b = z.integer() })
            assert.are.equal("integer", fields.b.kind)
            assert.are.equal("string", fields.a.kind)
            assert.are.equal("string", base:field("b").kind)
            assert.has_error(function() z.extend(z.string()) end)
        end)
    end)

    describe("definition misuse", function()
        it("raises clear errors for bad definitions", function()
            assert.has_error(function() z.object({ a = "string" }) end, nil)
            assert.has_error(function() z.object({ [1] = z.string() }) end)
            assert.has_error(function() z.object("x") end)
            assert.has_error(function() z.array("x") end)
            assert.has_error(function() z.string():min("3") end)
            assert.has_error(function() z.string():min(-1) end)
            assert.has_error(function() z.string():min(1.5) end)
            assert.has_error(function() z.number():max(0 / 0) end)
            assert.has_error(function() z.boolean():min(1) end)
            assert.has_error(function() z.integer():email() end)
            assert.has_error(function() z.string():enum({}) end)
            assert.has_error(function() z.string():enum({ "a", 2 }) end)
            assert.has_error(function() z.string():pattern(5) end)
            assert.has_error(function() z.string():default(nil) end)
            assert.has_error(function() z.string():describe(5) end)
            assert.has_error(function() z.string():keys() end)
        end)

        it("names the problem in the message", function()
            local ok, err = pcall(z.object, { a = "string" })
            assert.is_false(ok)
            assert.matches("field 'a' is not a schema", err, 1, true)
            ok, err = pcall(function() return z.boolean():min(1) end)
            assert.is_false(ok)
            assert.matches("not available on boolean", err, 1, true)
        end)

        it("keeps schemas immutable when refined", function()
            local base = z.string():min(3)
            local strict = base:max(5):secret()
            local opt = base:optional()
            assert.is_true(base.required)
            assert.is_false(base.is_secret)
            assert.are.equal("v must be at most 5 characters", msg(strict, "abcdef"))
            assert.are.same({ v = "abcdef" }, one(base, "abcdef"))
            assert.is_false(opt.required)
            assert.are.same({}, z.object({ v = opt }):parse({}))
        end)

        it("parses single non-object schemas too", function()
            assert.are.equal(5, z.integer():parse("5"))
            local v, err = z.integer():parse("x")
            assert.is_nil(v)
            assert.are.equal("value must be an integer", err.message)
            assert.are.equal("x", err.value)
            v, err = z.string():secret():parse(1)
            assert.is_nil(v)
            assert.is_nil(err.value)
        end)
    end)

    describe("field_docs", function()
        it("describes each field, sorted: type, required, default, description, secret, constraints", function()
            local docs = z.object {
                name = z.string():min(3):max(10):describe("Who"),
                email = z.string():email(),
                password = z.string():min(8):secret(),
                n = z.integer():min(1):default(5),
                kind = z.string():enum { "a", "b" }:optional(),
                tags = z.array(z.string()):max(3):optional(),
            }:field_docs()
            assert.are.same({
                { name = "email", type = "string", required = true, secret = false, constraints = "an email address" },
                { name = "kind", type = "string", required = false, secret = false, constraints = "one of a, b" },
                { name = "n", type = "integer", required = false, default = 5, secret = false, constraints = ">= 1" },
                { name = "name", type = "string", required = true, description = "Who", secret = false,
                    constraints = "length 3..10" },
                { name = "password", type = "string", required = true, secret = true, constraints = "length >= 8" },
                { name = "tags", type = "array", required = false, secret = false, constraints = "items <= 3" },
            }, docs)
        end)

        it("needs an object schema", function()
            assert.has_error(function() z.string():field_docs() end,
                "keryx.schema: field_docs() needs an object schema")
        end)
    end)
end)
