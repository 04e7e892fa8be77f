-- The strict Prometheus text parser the metrics specs rely on (spec/helpers/prom_text.lua):
-- it must accept well-formed exposition text and refuse each malformed shape, or the
-- integration specs would pass on output a real scraper misreads.
local prom = require "prom_text"

local GOOD = table.concat({
    "# HELP a_total Things.",
    "# TYPE a_total counter",
    'a_total{x="1",y="q\\"u\\\\o\\nte"} 3',
    "a_total 0",
    "# TYPE g gauge",
    "g -2.5",
    "# HELP h_seconds Time.",
    "# TYPE h_seconds histogram",
    'h_seconds_bucket{r="a",le="0.1"} 1',
    'h_seconds_bucket{r="a",le="1"} 2',
    'h_seconds_bucket{r="a",le="+Inf"} 3',
    'h_seconds_sum{r="a"} 12.5',
    'h_seconds_count{r="a"} 3',
}, "\n") .. "\n"

describe("prom_text", function()
    it("parses well-formed text, unescaping label values", function()
        local m = prom.parse(GOOD)
        assert.are.equal(3, prom.value(m, "a_total", { x = "1", y = 'q"u\\o\nte' }))
        assert.are.equal(0, prom.value(m, "a_total"))
        assert.are.equal(-2.5, prom.value(m, "g"))
        assert.are.equal(3, prom.value(m, "h_seconds_count", { r = "a" }))
        assert.are.equal(3, prom.sum(m, "a_total", {}))
        assert.are.same({ "a_total", "g", "h_seconds" }, m.order)
    end)

    local bad = {
        ["no final line feed"] = GOOD:sub(1, -2),
        ["a blank line"] = GOOD .. "\n",
        ["a sample before its TYPE"] = "x 1\n# TYPE x counter\n",
        ["a stray comment"] = "# hello\n",
        ["a second TYPE"] = "# TYPE x counter\n# TYPE x counter\n",
        ["an unknown type"] = "# TYPE x thing\n",
        ["a bad value"] = "# TYPE x gauge\nx one\n",
        ["a timestamp or extra field"] = "# TYPE x gauge\nx 1 2\n",
        ["two spaces"] = "# TYPE x gauge\nx  1\n",
        ["an unquoted label value"] = "# TYPE x gauge\nx{a=1} 1\n",
        ["a bad escape"] = '# TYPE x gauge\nx{a="\\t"} 1\n',
        ["an unterminated label"] = '# TYPE x gauge\nx{a="1} 1\n',
        ["a repeated label"] = '# TYPE x gauge\nx{a="1",a="2"} 1\n',
        ["a duplicate sample"] = '# TYPE x gauge\nx{a="1"} 1\nx{a="1"} 2\n',
        ["a bad metric name"] = "# TYPE 1x gauge\n1x 1\n",
        ["a negative counter"] = "# TYPE x_total counter\nx_total -1\n",
        ["a sample of another family"] = "# TYPE x gauge\ny 1\n",
        ["a family split in two"] = "# TYPE x gauge\nx 1\n# TYPE y gauge\ny 1\n# HELP x again\n",
        ["buckets not cumulative"] = '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\n' ..
            "h_sum 1\nh_count 1\n",
        ["no +Inf bucket"] = '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
        ["_count differing from +Inf"] = '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
        ["no _sum"] = '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
        ["le not increasing"] = '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="0.5"} 1\n' ..
            'h_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    }
    for what, text in pairs(bad) do
        it("refuses " .. what, function()
            assert.has_error(function() prom.parse(text) end)
        end)
    end
end)
