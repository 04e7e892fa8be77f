#!/usr/bin/env node
// resque-worker.js — the node-resque side of bench/tasks.sh (npm `node-resque`, pinned in
// bench/package.json): one node-resque Worker, in this process, on the bench's own Redis.
//
//   node resque-worker.js --port N [--queue bench] [--timeout 5000]
//
// It knows the two jobs of bench/tasks_app/actions/bench.lua under the same names:
//   bench:noop     does nothing (the jobs/s run);
//   bench:latency  args [{enqueued_at}] in CLOCK_MONOTONIC ms (process.hrtime, the clock keryx's
//                  core.clock_ms reads): RPUSHes now - enqueued_at onto bench:latency.
// --timeout is node-resque's own polling interval in ms (its default is 5000): how long the
// worker sleeps after finding every queue empty. A non-empty queue is drained job after job
// without sleeping. Writes "ready" on stdout once the worker polls; SIGTERM ends it cleanly.
'use strict';

const { Worker } = require('node-resque');

function arg(name, dflt) {
    const i = process.argv.indexOf('--' + name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

async function main() {
    const port = Number(arg('port'));
    if (!port) throw new Error('--port is required');
    const worker = new Worker(
        {
            connection: { host: '127.0.0.1', port, namespace: 'resque' },
            queues: [arg('queue', 'bench')],
            timeout: Number(arg('timeout', '5000')),
        },
        {
            'bench:noop': { perform: async () => ({}) },
            'bench:latency': {
                perform: async (inputs) => {
                    const waited = nowMs() - Number(inputs.enqueued_at);
                    await worker.connection.redis.rpush('bench:latency', waited.toFixed(3));
                    return {};
                },
            },
        },
    );
    worker.on('error', (err) => console.error('resque-worker error:', err));
    worker.on('failure', (queue, job, err) => console.error('resque-worker job failed:', err));
    await worker.connect();
    await worker.start();
    process.stdout.write('ready\n');
    let ending = false;
    process.on('SIGTERM', async () => {
        if (ending) return;
        ending = true;
        await worker.end();
        process.exit(0);
    });
}

main().catch((err) => {
    console.error(err);
    process.exit(1);
});
