-- prom_text.lua — a strict parser of the Prometheus text exposition format 0.0.4, for the
-- metrics specs. Strict means it raises on anything a conforming scraper could misread:
--
--   * every line ends with "\n" (the last one too) and is one of
--       # HELP <name> <text>        (at most once per family)
--       # TYPE <name> <type>        (once per family, before any of its samples;
--                                    counter | gauge | histogram | summary | untyped)
--       <name>[{<label>="<value>",…}] <value>
--     no blank lines, no other comments;
--   * names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*, a label name
--     appears once per sample; label values are double-quoted with only \\, \" and \n escapes;
--   * a value is a decimal float, +Inf, -Inf or NaN (no timestamps: keryx writes none);
--   * each sample belongs to the family declared by the last TYPE line (a histogram's samples
--     are <name>_bucket with an le label, <name>_sum and <name>_count); a family's lines are
--     contiguous; the same sample name with the same labels appears once;
--   * counters are >= 0; histogram buckets of one label set have increasing le, cumulative
--     (non-decreasing) counts, end with le="+Inf", and _count equals that +Inf bucket, with a
--     _sum present.
--
--   local prom = require "prom_text"
--   local m = prom.parse(text)       → { families = { [name] = {type, help, samples} }, order }
--   prom.value(m, "keryx_http_requests_total", { method = "GET" }) → the sample's value, or nil
--   prom.sum(m, name, labels)        → sum of every sample whose labels include `labels`
local M = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"
local TYPES = { counter = true, gauge = true, histogram = true, summary = true, untyped = true }

local function fail(lineno, line, why)
    error(("metrics text line %d: %s: %q"):format(lineno, why, line), 0)
end

local function parse_value(s)
    if s == "+Inf" then return math.huge end
    if s == "-Inf" then return -math.huge end
    if s == "NaN" then return 0 / 0 end
    if not s:match("^[-+]?%d+%.?%d*$") and not s:match("^[-+]?%d*%.%d+$") and
        not s:match("^[-+]?%d+%.?%d*[eE][-+]?%d+$") then
        return nil
    end
    return tonumber(s)
end

-- Labels between { and }: returns the table and the position after '}', or raises.
local function parse_labels(line, i, lineno)
    local labels, seen = {}, 0
    if line:sub(i, i) ~= "{" then return labels, i end
    i = i + 1
    if line:sub(i, i) == "}" then return labels, i + 1 end
    while true do
        local name, after = line:match("^([^=]*)=()", i)
        if not name or not name:match(LABEL) then fail(lineno, line, "bad label name") end
        if labels[name] ~= nil then fail(lineno, line, "label " .. name .. " repeated") end
        i = after
        if line:sub(i, i) ~= '"' then fail(lineno, line, "label value not quoted") end
        i = i + 1
        local out = {}
        while true do
            local ch = line:sub(i, i)
            if ch == "" then fail(lineno, line, "unterminated label value") end
            if ch == '"' then break end
            if ch == "\\" then
                local nx = line:sub(i + 1, i + 1)
                if nx == "\\" then out[#out + 1] = "\\"
                elseif nx == '"' then out[#out + 1] = '"'
                elseif nx == "n" then out[#out + 1] = "\n"
                else fail(lineno, line, "bad escape in label value") end
                i = i + 2
            else
                out[#out + 1] = ch
                i = i + 1
            end
        end
        labels[name] = table.concat(out)
        seen = seen + 1
        i = i + 1
        local sep = line:sub(i, i)
        if sep == "}" then return labels, i + 1 end
        if sep ~= "," then fail(lineno, line, "expected , or } after a label") end
        i = i + 1
    end
end

-- The family a sample name belongs to, given the family being read.
local function family_of(fam, sample)
    if fam.type ~= "histogram" then return sample == fam.name end
    return sample == fam.name .. "_bucket" or sample == fam.name .. "_sum" or sample == fam.name .. "_count"
end

local function key_of(labels, skip)
    local ks = {}
    for k, v in pairs(labels) do
        if k ~= skip then ks[#ks + 1] = k .. "=" .. v end
    end
    table.sort(ks)
    return table.concat(ks, "\0")
end

local function check_histogram(fam)
    local sets = {}
    for _, s in ipairs(fam.samples) do
        local key = key_of(s.labels, "le")
        local set = sets[key] or { buckets = {} }
        sets[key] = set
        if s.name == fam.name .. "_bucket" then
            if not s.labels.le then error(fam.name .. ": a bucket without le", 0) end
            local le = parse_value(s.labels.le)
            if not le then error(fam.name .. ": bad le " .. s.labels.le, 0) end
            set.buckets[#set.buckets + 1] = { le = le, value = s.value }
        elseif s.name == fam.name .. "_sum" then
            set.sum = s.value
        else
            set.count = s.value
        end
    end
    for key, set in pairs(sets) do
        local where = fam.name .. "{" .. key:gsub("%z", ",") .. "}"
        local b = set.buckets
        if #b == 0 then error(where .. ": no buckets", 0) end
        for i = 2, #b do
            if b[i].le <= b[i - 1].le or b[i].le ~= b[i].le then error(where .. ": le not increasing", 0) end
            if b[i].value < b[i - 1].value then error(where .. ": buckets not cumulative", 0) end
        end
        if b[#b].le ~= math.huge then error(where .. ": last bucket is not +Inf", 0) end
        if set.count ~= b[#b].value then error(where .. ": _count differs from the +Inf bucket", 0) end
        if set.sum == nil then error(where .. ": no _sum", 0) end
    end
end

function M.parse(text)
    if text == "" then return { families = {}, order = {} } end
    if text:sub(-1) ~= "\n" then error("metrics text does not end with a line feed", 0) end
    local families, order, done, current = {}, {}, {}, nil
    local seen_samples = {}
    local function family(name)
        local fam = families[name]
        if not fam then
            if done[name] then error("family " .. name .. " is not contiguous", 0) end
            fam = { name = name, samples = {} }
            families[name] = fam
            order[#order + 1] = name
        end
        return fam
    end
    local lineno = 0
    for line in text:gmatch("([^\n]*)\n") do
        lineno = lineno + 1
        if line == "" then fail(lineno, line, "blank line") end
        if line:sub(1, 1) == "#" then
            local kind, name, rest = line:match("^# (%u+) (%S+) (.*)$")
            if not kind or (kind ~= "HELP" and kind ~= "TYPE") then fail(lineno, line, "not a HELP or TYPE line") end
            if not name:match(NAME) then fail(lineno, line, "bad metric name") end
            if families[name] and families[name] ~= current then fail(lineno, line, "family not contiguous") end
            if current and current.name ~= name then done[current.name] = true end
            local fam = family(name)
            current = fam
            if kind == "HELP" then
                if fam.help then fail(lineno, line, "second HELP") end
                fam.help = rest
            else
                if fam.type then fail(lineno, line, "second TYPE") end
                if #fam.samples > 0 then fail(lineno, line, "TYPE after samples") end
                if not TYPES[rest] then fail(lineno, line, "unknown type") end
                fam.type = rest
            end
        else
            local name, i = line:match("^([^{ ]+)()")
            if not name or not name:match(NAME) then fail(lineno, line, "bad sample name") end
            local labels
            labels, i = parse_labels(line, i, lineno)
            local vs = line:match("^ (%S+)$", i)
            if not vs then fail(lineno, line, "expected one space and a value") end
            local value = parse_value(vs)
            if not value then fail(lineno, line, "bad value") end
            if not current or not current.type or not family_of(current, name) then
                fail(lineno, line, "sample outside its family (no TYPE before it)")
            end
            local key = name .. "{" .. key_of(labels) .. "}"
            if seen_samples[key] then fail(lineno, line, "duplicate sample") end
            seen_samples[key] = true
            if current.type == "counter" and (value < 0 or value ~= value) then
                fail(lineno, line, "negative or NaN counter")
            end
            current.samples[#current.samples + 1] = { name = name, labels = labels, value = value }
        end
    end
    for _, name in ipairs(order) do
        local fam = families[name]
        if not fam.type then error("family " .. name .. " has no TYPE", 0) end
        if fam.type == "histogram" then check_histogram(fam) end
    end
    return { families = families, order = order }
end

local function matches(sample_labels, want)
    for k, v in pairs(want or {}) do
        if sample_labels[k] ~= v then return false end
    end
    return true
end

--- The value of the one sample named `name` whose labels equal `labels` exactly; nil if none.
function M.value(m, name, labels)
    labels = labels or {}
    for _, fam in pairs(m.families) do
        for _, s in ipairs(fam.samples) do
            if s.name == name and key_of(s.labels) == key_of(labels) then return s.value end
        end
    end
    return nil
end

--- The sum of the samples named `name` whose labels include `labels` (0 when none).
function M.sum(m, name, labels)
    local total = 0
    for _, fam in pairs(m.families) do
        for _, s in ipairs(fam.samples) do
            if s.name == name and matches(s.labels, labels) then total = total + s.value end
        end
    end
    return total
end

return M
