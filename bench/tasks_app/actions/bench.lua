-- The app of bench/tasks.sh (`keryx --app bench/tasks_app start`): the two jobs it times.
-- bench/resque-worker.js knows the same two jobs under the same names for node-resque.
--   bench:noop     does nothing: the jobs/s run measures the queue, not the job.
--   bench:latency  enqueued_at = CLOCK_MONOTONIC ms at enqueue (bench/tasks-client.js reads
--                  process.hrtime); RPUSHes now - enqueued_at onto bench:latency.
local keryx = require "keryx"
-- clock_ms: CLOCK_MONOTONIC with sub-ms precision (keryx.now_ms is wall clock, whole ms).
local clock_ms = require("keryx.core").clock_ms
local z = keryx.schema

return {
    keryx.action {
        name = "bench:noop",
        description = "Do nothing (the jobs/s job)",
        run = function() return {} end,
    },
    keryx.action {
        name = "bench:latency",
        description = "Record how long after enqueued_at this job started",
        inputs = z.object { enqueued_at = z.number() },
        run = function(params)
            local waited = clock_ms() - params.enqueued_at
            keryx.redis.ok(keryx.redis.call("RPUSH", "bench:latency", ("%.3f"):format(waited)))
            return {}
        end,
    },
}
