local json = require "keryx.json"

describe("keryx.json", function()
    describe("encode", function()
        it("encodes the empty_array sentinel as []", function()
            assert.are.equal("[]", json.encode(json.empty_array))
            assert.are.equal('{"a":[]}', json.encode({ a = json.empty_array }))
        end)

        it("encodes a plain empty table as {}", function()
            assert.are.equal("{}", json.encode({}))
            assert.are.equal('{"a":{}}', json.encode({ a = {} }))
        end)

        it("encodes tables marked with array() as arrays, even when empty", function()
            assert.are.equal("[]", json.encode(json.array()))
            assert.are.equal("[]", json.encode(json.array({})))
            assert.are.equal("[1,2,3]", json.encode(json.array({ 1, 2, 3 })))
            assert.are.equal('[[],{},[[]]]', json.encode({ json.array(), {}, { json.empty_array } }))
        end)

        it("encodes special tables nested deep inside ordinary ones", function()
            local v = { a = { b = { c = { json.array(), "x" } } } }
            local s = assert(json.encode(v))
            assert.are.equal('{"a":{"b":{"c":[[],"x"]}}}', s)
        end)

        it("keeps marked arrays with holes as arrays with null", function()
            local t = json.array()
            t[1], t[3] = "a", "c"
            assert.are.equal('["a",null,"c"]', json.encode(t))
        end)

        it("refuses to let anyone fill the shared empty_array", function()
            assert.has_error(function() json.empty_array[1] = 1 end)
            assert.is_nil(next(json.empty_array))
        end)

        it("rejects array() of a non-table or a table with another metatable", function()
            assert.has_error(function() json.array("x") end)
            assert.has_error(function() json.array(setmetatable({}, {})) end)
        end)

        it("reports is_array for marked tables and the sentinel only", function()
            assert.is_true(json.is_array(json.empty_array))
            assert.is_true(json.is_array(json.array()))
            assert.is_false(json.is_array({}))
            assert.is_false(json.is_array({ 1, 2 }))
            assert.is_false(json.is_array("[]"))
        end)

        it("does not escape forward slashes", function()
            assert.are.equal('"/api/status"', json.encode("/api/status"))
            assert.are.equal('{"url":"http://x/y"}', json.encode({ url = "http://x/y" }))
        end)

        it("keeps backslashes next to slashes correct", function()
            -- a backslash followed by a slash: \ is escaped, / is not
            assert.are.equal('"\\\\/"', json.encode("\\/"))
            assert.are.equal('"a\\\\\\\\/b"', json.encode("a\\\\/b"))
            for _, s in ipairs({ "\\/", "\\\\/", "/\\", "\\", "//", "\\\"/", "x\\/\\/y" }) do
                local out = json.encode(s)
                -- with the escaped backslashes removed, no "\/" escape may remain
                local without_pairs = out:gsub("\\\\", "")
                assert.is_nil(without_pairs:find("\\/", 1, true), out)
                assert.are.equal(s, json.decode(out))
            end
        end)

        it("slash fixing only rewrites real \\/ escapes", function()
            assert.are.equal('"\\\\/"', json._fix_slashes('"\\\\\\/"'))
            assert.are.equal('"a/b"', json._fix_slashes('"a\\/b"'))
            -- an escaped backslash followed by a raw slash must stay as it is
            assert.are.equal('"\\\\/"', json._fix_slashes('"\\\\/"'))
            assert.are.equal('"\\n\\t\\u0001"', json._fix_slashes('"\\n\\t\\u0001"'))
        end)

        it("encodes NaN and infinities as null instead of raising", function()
            assert.are.equal("[null,null,null]", json.encode({ 0 / 0, math.huge, -math.huge }))
            assert.are.equal("null", json.encode(0 / 0))
        end)

        it("prints integers beyond 14 digits exactly", function()
            assert.are.equal("123456789012345", json.encode(123456789012345))
            assert.are.equal('{"id":9007199254740994}', json.encode({ id = 2 ^ 53 + 2 }))
            assert.are.equal('[9007199254740992,-9007199254740992]', json.encode({ 2 ^ 53, -2 ^ 53 }))
            assert.are.equal('{"123456789012345":1}', json.encode({ [123456789012345] = 1 }))
            local ms = 1712345678901
            assert.are.equal(tostring(ms), json.encode(ms))
        end)

        it("round-trips ordinary numbers", function()
            for _, n in ipairs({ 0, 1, -1, 0.5, 3.25, 1e-7, 99999999999999 }) do
                assert.are.equal(n, json.decode(json.encode(n)))
            end
        end)

        it("encodes sparse arrays without raising", function()
            local s = assert(json.encode({ [1] = "a", [1000] = "b" }))
            local back = json.decode(s)
            assert.are.equal("a", back["1"])
            assert.are.equal("b", back["1000"])
            assert.are.equal("[1,null,3]", json.encode({ 1, nil, 3 }))
        end)

        it("returns nil, err for values JSON cannot hold", function()
            local s, err = json.encode({ f = print })
            assert.is_nil(s)
            assert.is_string(err)
            s, err = json.encode({ [{}] = 1, x = json.array() })
            assert.is_nil(s)
            assert.is_string(err)
        end)

        it("returns nil, err for cycles instead of recursing forever", function()
            local t = {}
            t.self = t
            local s, err = json.encode(t)
            assert.is_nil(s)
            assert.matches("nesting", err)
            local u = json.array()
            u[1] = u
            s, err = json.encode(u)
            assert.is_nil(s)
            assert.matches("nesting", err)
        end)

        it("encodes json.null as null and strings with control bytes escaped", function()
            assert.are.equal('{"a":null}', json.encode({ a = json.null }))
            assert.are.equal('"a\\nb\\u0000"', json.encode("a\nb\0"))
        end)
    end)

    describe("encode through keryx.core.json_encode", function()
        local cases = dofile("spec/unit/json_cases.lua") -- not a spec: the cases C is tested on too

        it("gives the Lua encoder's result for every case (the C side: tests/test_json_encode.c)", function()
            local core = require "keryx.core"
            local r = cases.compare(json, core.json_encode, 2000)
            assert.are.same({}, r.mismatches)
            assert.is_true(r.checked > 2000)
        end)

        it("falls back to the Lua encoder when keryx.core is absent or has no json_encode", function()
            local saved_core, saved_json = package.loaded["keryx.core"], package.loaded["keryx.json"]
            local saved_preload = package.preload["keryx.core"]
            finally(function()
                package.loaded["keryx.core"], package.loaded["keryx.json"] = saved_core, saved_json
                package.preload["keryx.core"] = saved_preload
            end)
            for _, core in ipairs({ {}, false }) do
                package.loaded["keryx.json"] = nil
                package.loaded["keryx.core"] = nil
                package.preload["keryx.core"] = core and function() return core end or nil
                local plain = require "keryx.json"
                assert.are_not.equal(json, plain)
                assert.are.equal('[[],"/x",12.34,123456789012345]',
                    plain.encode({ plain.empty_array, "/x", 12.34, 123456789012345 }))
                local s, err = plain.encode({ f = print })
                assert.is_nil(s)
                assert.are.equal("Cannot serialise function: type not supported", err)
            end
        end)

        it("hands values back to the Lua encoder when C returns nil", function()
            local calls = 0
            local saved_core, saved_json = package.loaded["keryx.core"], package.loaded["keryx.json"]
            finally(function()
                package.loaded["keryx.core"], package.loaded["keryx.json"] = saved_core, saved_json
            end)
            package.loaded["keryx.json"] = nil
            package.loaded["keryx.core"] = { json_encode = function() calls = calls + 1 return nil end }
            local j = require "keryx.json"
            assert.are.equal("[1,2]", j.encode(j.array({ 1, 2 })))
            assert.are.equal(1, calls)
        end)
    end)

    describe("decode", function()
        it("decodes objects, arrays and null", function()
            local v = json.decode('{"a":[1,2,{"b":null}],"c":"/x"}')
            assert.are.equal(2, v.a[2])
            assert.are.equal(json.null, v.a[3].b)
            assert.are.equal("/x", v.c)
            assert.are.equal(json.null, json.decode("null"))
        end)

        it("returns nil, err for malformed JSON without raising", function()
            for _, s in ipairs({ "", "{", "[1,", '{"a":}', "nul", "{'a':1}", '"abc', "[1]x" }) do
                local v, err = json.decode(s)
                assert.is_nil(v, s)
                assert.is_string(err, s)
            end
        end)

        it("returns nil, err for non-strings", function()
            for _, x in ipairs({ 1, true, {} }) do
                local v, err = json.decode(x)
                assert.is_nil(v)
                assert.matches("string", err)
            end
            local v, err = json.decode(nil)
            assert.is_nil(v)
            assert.is_string(err)
        end)

        it("rejects non-JSON number literals", function()
            for _, s in ipairs({ "NaN", "Infinity", "-Infinity", "0x10", "[0x1f]" }) do
                assert.is_nil((json.decode(s)), s)
            end
        end)

        it("fails cleanly on 10000 nested brackets", function()
            local v, err = json.decode(string.rep("[", 10000))
            assert.is_nil(v)
            assert.matches("nested", err)
            v, err = json.decode(string.rep("[", 10000) .. string.rep("]", 10000))
            assert.is_nil(v)
            assert.is_string(err)
            v, err = json.decode(string.rep('{"a":', 5000) .. "1" .. string.rep("}", 5000))
            assert.is_nil(v)
            assert.is_string(err)
        end)

        it("accepts escaped slashes and unicode escapes", function()
            assert.are.equal("a/b", json.decode('"a\\/b"'))
            assert.are.equal("\xc3\xa9", json.decode('"\\u00e9"'))
        end)

        it("round-trips a nested structure", function()
            local v = { list = { "a", "b" }, n = 3, ok = true, obj = { x = "/y" } }
            local back = json.decode(json.encode(v))
            assert.are.same(v, back)
        end)
    end)
end)
