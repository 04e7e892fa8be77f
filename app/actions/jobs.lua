-- Background jobs of the example app (README, "Background tasks"):
--   messages:prune      recurring (hourly): drops chat messages older than max_age_ms
--   user:welcome        one job per user: records when the user was welcomed
--   users:welcome       POST /api/users/welcome — fans out user:welcome to every user, carrying
--                       the request's correlation id into each job's log line
--   users:welcome_status GET /api/users/welcome/:id — how far the fan-out got
local keryx = require "keryx"
local z = keryx.schema

local redis, json = keryx.redis, keryx.json
local PRUNE_BATCH = 1000

local Welcomed = z.object { welcomed = z.boolean(), user_id = z.integer():optional() }
-- The inputs a user:welcome job ran with (fan-out bookkeeping included).
local WelcomeParams = z.object {
    user_id = z.integer(), _fanOutId = z.string(), _correlationId = z.string():optional(),
}

return {
    keryx.action {
        name = "messages:prune",
        description = "Drop chat messages older than max_age_ms (runs every hour)",
        inputs = z.object {
            max_age_ms = z.integer():min(0):default(7 * 24 * 3600 * 1000):describe("Oldest message kept, in ms"),
        },
        outputs = z.object { pruned = z.integer():min(0) },
        task = { queue = "default", frequency = 3600 * 1000 },
        run = function(params)
            local cutoff = keryx.now_ms() - params.max_age_ms
            local pruned = 0
            -- The list is newest first: the oldest sit at its tail.
            while pruned < PRUNE_BATCH do
                local last = redis.ok(redis.call("LINDEX", "messages", -1))
                local m = last ~= redis.null and json.decode(last) or nil
                if type(m) ~= "table" or (tonumber(m.created_at) or 0) >= cutoff then break end
                redis.ok(redis.call("RPOP", "messages"))
                pruned = pruned + 1
            end
            if pruned > 0 then keryx.log.info(("pruned %d old message(s)"):format(pruned)) end
            return { pruned = pruned }
        end,
    },
    keryx.action {
        name = "user:welcome",
        description = "Welcome one user (a background job)",
        inputs = z.object { user_id = z.integer():min(1) },
        outputs = Welcomed,
        run = function(params)
            local key = "user:" .. params.user_id
            if redis.ok(redis.call("EXISTS", key)) == 0 then return { welcomed = false } end
            redis.ok(redis.call("HSET", key, "welcomed_at", keryx.now_ms()))
            return { welcomed = true, user_id = params.user_id }
        end,
    },
    keryx.action {
        name = "users:welcome",
        description = "Welcome every user, one background job each",
        outputs = z.object {
            fan_out_id = z.string(),
            enqueued = z.integer(),
            errors = z.array(z.object { index = z.integer(), error = z.string() }),
        },
        web = { route = "/users/welcome", method = "POST" },
        middleware = { keryx.middleware.session_required },
        run = function(_, conn)
            local last = tonumber(redis.ok(redis.call("GET", "users:next_id")) or 0) or 0
            local inputs = {}
            for id = 1, last do inputs[#inputs + 1] = { user_id = id } end
            local res, err = keryx.tasks.fan_out("user:welcome", inputs, nil,
                { correlation_id = conn.correlation_id })
            if not res then redis.ok(nil, err) end
            return res
        end,
    },
    keryx.action {
        name = "users:welcome_status",
        description = "How far a welcome fan-out got",
        inputs = z.object { id = z.string():max(64) },
        outputs = z.object {
            total = z.integer(), completed = z.integer(), failed = z.integer(),
            results = z.array(z.object { params = WelcomeParams, result = Welcomed }),
            errors = z.array(z.object { params = WelcomeParams, error = z.string() }),
        },
        web = { route = "/users/welcome/:id", method = "GET" },
        middleware = { keryx.middleware.session_required },
        run = function(params)
            return redis.ok(keryx.tasks.fan_out_status(params.id))
        end,
    },
}
