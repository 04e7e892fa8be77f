#!/usr/bin/env node
// tasks-client.js — the enqueuer and meter of bench/tasks.sh. It talks to the bench's own
// Redis through node-resque's connection (ioredis), so it needs nothing beyond bench/package.json.
//
//   node tasks-client.js preload --port N --queue Q --n N
//       Resets resque:stat:processed and RPUSHes N copies of the trivial job
//       {"class":"bench:noop","queue":Q,"args":[{}]} (byte for byte what keryx.tasks.enqueue
//       and node-resque's Queue.enqueue write for it) onto bench:staging, which no worker reads.
//   node tasks-client.js release --port N --queue Q --n N [--timeout-s 300]
//       With the workers started and idle: in one MULTI, RENAMEs bench:staging to
//       resque:queue:Q, SADDs Q to resque:queues and PUBLISHes keryx:tasks (the signal every
//       keryx enqueue sends; node-resque ignores it); then polls resque:stat:processed every
//       5 ms until it reaches N. Prints {"ms":…,"processed":…,"left":…} — the time from the
//       release to the N-th job done, what the counter says 300 ms later (more than N = a job
//       ran twice) and what is left in the queue.
//   node tasks-client.js latency --port N --queue Q --n N --gap-ms G --via keryx|resque
//                               [--script lua/redis/task_enqueue.lua] [--wait-s 30]
//       N jobs bench:latency {enqueued_at: <CLOCK_MONOTONIC ms>}, one at a time, G ms apart
//       (±25% jitter, so the gaps never lock onto a poll period), without waiting for the
//       previous one: a job that runs in well under G ms leaves the server idle at each
//       enqueue, and a worker asleep in its poll finds several waiting. --via keryx: EVALSHA of keryx's own lua/redis/task_enqueue.lua (SADD, RPUSH
//       of the payload text keryx.tasks.payload builds, PUBLISH keryx:tasks — exactly what
//       keryx.tasks.enqueue sends); --via resque: node-resque's Queue.enqueue. The job itself
//       records now - enqueued_at (keryx: core.clock_ms, node: process.hrtime — both
//       CLOCK_MONOTONIC). Prints {"n":…,"p50":…,"p99":…,"max":…,"mean":…} in ms.
//
// Exit status 1 when a job is missing at the end (not all processed, or latencies not all in).
'use strict';

const fs = require('fs');
const { Queue } = require('node-resque');

function arg(name, dflt) {
    const i = process.argv.indexOf('--' + name);
    if (i > 0 && i + 1 < process.argv.length) return process.argv[i + 1];
    if (dflt === undefined) throw new Error('--' + name + ' is required');
    return dflt;
}

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted, p) {
    // nearest rank
    const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
    return sorted[i];
}

async function preload(redis, q, n) {
    const payload = JSON.stringify({ class: 'bench:noop', queue: q, args: [{}] });
    await redis.del('bench:staging', 'resque:stat:processed');
    const batch = 1000;
    for (let done = 0; done < n; done += batch) {
        const k = Math.min(batch, n - done);
        await redis.rpush('bench:staging', ...new Array(k).fill(payload));
    }
    const len = await redis.llen('bench:staging');
    if (len !== n) throw new Error(`staging holds ${len} jobs, not ${n}`);
    return { staged: len };
}

async function release(redis, q, n, timeoutS) {
    const t0 = nowMs();
    await redis.multi()
        .rename('bench:staging', 'resque:queue:' + q)
        .sadd('resque:queues', q)
        .publish('keryx:tasks', 'enqueued')
        .exec();
    const deadline = t0 + timeoutS * 1000;
    let processed = 0;
    for (;;) {
        processed = Number(await redis.get('resque:stat:processed')) || 0;
        if (processed >= n) break;
        if (nowMs() > deadline) break;
        await sleep(5);
    }
    const ms = nowMs() - t0;
    await sleep(300);
    const after = Number(await redis.get('resque:stat:processed')) || 0;
    const left = await redis.llen('resque:queue:' + q);
    return { ms: Number(ms.toFixed(1)), processed: after, left, complete: processed >= n };
}

async function latency(queue, redis, q, n, gapMs, via, script, waitS) {
    await redis.del('bench:latency');
    if (via === 'keryx') {
        redis.defineCommand('keryxEnqueue', { numberOfKeys: 0, lua: fs.readFileSync(script, 'utf8') });
    }
    for (let i = 0; i < n; i++) {
        await sleep(gapMs * (0.75 + Math.random() * 0.5));
        const at = nowMs();
        if (via === 'keryx') {
            // keryx.tasks.payload: class, queue, args with the inputs' keys sorted; compact.
            const payload = '{"class":"bench:latency","queue":' + JSON.stringify(q) +
                ',"args":[{"enqueued_at":' + at.toFixed(3) + '}]}';
            await redis.keryxEnqueue(q, payload);
        } else {
            await queue.enqueue(q, 'bench:latency', [{ enqueued_at: Number(at.toFixed(3)) }]);
        }
    }
    // Then wait for the last ones to start (a polling worker may still be asleep).
    const deadline = nowMs() + waitS * 1000;
    let started;
    while ((started = await redis.llen('bench:latency')) < n) {
        if (nowMs() > deadline) throw new Error(`only ${started} of ${n} jobs started within ${waitS} s`);
        await sleep(5);
    }
    const values = (await redis.lrange('bench:latency', 0, -1)).map(Number).sort((a, b) => a - b);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const r3 = (v) => Number(v.toFixed(3));
    return { n: values.length, p50: r3(percentile(values, 50)), p99: r3(percentile(values, 99)),
        max: r3(values[values.length - 1]), mean: r3(mean) };
}

async function main() {
    const mode = process.argv[2];
    const port = Number(arg('port'));
    const q = arg('queue', 'bench');
    const n = Number(arg('n'));
    const queue = new Queue({ connection: { host: '127.0.0.1', port, namespace: 'resque' } });
    queue.on('error', (err) => console.error('tasks-client redis error:', err));
    await queue.connect();
    const redis = queue.connection.redis;
    let out;
    if (mode === 'preload') out = await preload(redis, q, n);
    else if (mode === 'release') out = await release(redis, q, n, Number(arg('timeout-s', '300')));
    else if (mode === 'latency') {
        out = await latency(queue, redis, q, n, Number(arg('gap-ms', '20')), arg('via'),
            arg('script', 'lua/redis/task_enqueue.lua'), Number(arg('wait-s', '30')));
    } else throw new Error('mode must be preload, release or latency');
    await queue.end();
    process.stdout.write(JSON.stringify(out) + '\n');
    if (out.complete === false || (out.n !== undefined && out.n !== n)) process.exit(1);
}

main().catch((err) => {
    console.error(err.message || err);
    process.exit(1);
});
