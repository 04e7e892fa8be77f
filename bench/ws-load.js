#!/usr/bin/env node
// ws-load.js — the WebSocket load client of bench/websocket.sh (npm `ws`, bench/package.json).
//
//   node ws-load.js fanout  --url ws://H:P/ --keryx-pid PID --redis-port N [--connections 10000]
//                           [--broadcasts 5] [--channel room:bench] [--concurrency 200]
//                           [--probe http://H:P/api/bench/lua-heap]
//       Reads keryx's VmRSS, opens --connections idle sockets (at most --concurrency handshakes
//       in flight), each subscribing to --channel; reads VmRSS again. Then --broadcasts times:
//       PUBLISH keryx:pubsub {"channel":…,"message":{"t":<send time, ms since the epoch>,"k":n},
//       "sender":"bench"} through one long-lived redis-cli, and times the arrival of that frame
//       on every socket. Finally closes every socket. websocket.sh uses this mode only with
//       BENCH_WS_FANOUT_CLIENT=node: by default ws-fanout.c does it (README.md, "Two clients").
//   node ws-load.js actions --url ws://H:P/ --keryx-pid PID [--sockets 50] [--duration-ms 10000]
//                           [--warmup-ms 1000]
//       --sockets sockets, each sending {"messageType":"action","action":"status",…} and
//       awaiting its reply before the next one (one in flight per socket), for --duration-ms
//       after an unmeasured --warmup-ms.
//
// Prints one JSON object on stdout (the figures); progress and errors go to stderr. Exit status
// 1 on any failure that makes the figures meaningless: a socket that fails or closes, an error
// reply, a broadcast that does not reach every socket, a reply that is not the one awaited.
//
// keryx's CPU time comes from /proc/<pid>/task/*/schedstat (nanoseconds on CPU, every thread),
// so a 60 ms broadcast is measured to the microsecond, not in 10 ms clock ticks.
'use strict';

const fs = require('fs');
const http = require('http');
const { spawn } = require('child_process');
const { performance } = require('perf_hooks');
const WebSocket = require('ws');

const PUBSUB_CHANNEL = 'keryx:pubsub';
const BROADCAST_TIMEOUT_MS = 10000;
const CONNECT_TIMEOUT_MS = 60000;
const QUIET_BEFORE_BROADCAST_MS = 300;
const SETTLE_AFTER_CONNECT_MS = 1000;

// ---- small helpers ---------------------------------------------------------------------------

function log(msg) {
    process.stderr.write(`[bench:websocket:client] ${msg}\n`);
}

function fail(msg) {
    log(`ERROR: ${msg}`);
    process.exit(1);
}

function parseArgs(argv) {
    const mode = argv[0];
    const opts = {};
    for (let i = 1; i < argv.length; i += 2) {
        if (!argv[i].startsWith('--') || i + 1 >= argv.length) fail(`bad argument '${argv[i]}'`);
        opts[argv[i].slice(2)] = argv[i + 1];
    }
    return { mode, opts };
}

function intOpt(opts, name, dflt) {
    const v = opts[name] === undefined ? dflt : Number(opts[name]);
    if (!Number.isInteger(v) || v < 0) fail(`--${name} must be a non-negative integer`);
    return v;
}

function required(opts, name) {
    if (!opts[name]) fail(`--${name} is required`);
    return opts[name];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Wall-clock milliseconds with sub-millisecond precision (Date.now() has 1 ms steps).
const wallMs = () => performance.timeOrigin + performance.now();

function rssKib(pid) {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    if (!m) fail(`no VmRSS for pid ${pid}`);
    return Number(m[1]);
}

// Nanoseconds on CPU of every thread of pid (first field of each task's schedstat).
function cpuNs(pid) {
    let total = 0;
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
        try {
            total += Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        } catch (e) {
            // a thread that ended between readdir and read
        }
    }
    return total;
}

// This process's CPU time (user + system), in nanoseconds.
function selfCpuNs() {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
}

function percentile(sorted, p) {
    if (sorted.length === 0) return 0;
    return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function median(values) {
    const s = [...values].sort((a, b) => a - b);
    const n = s.length;
    return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function httpJson(url) {
    return new Promise((resolve, reject) => {
        http.get(url, { agent: false }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d) => { body += d; });
            res.on('end', () => {
                if (res.statusCode !== 200) return reject(new Error(`${url}: HTTP ${res.statusCode} ${body}`));
                try { resolve(JSON.parse(body)); } catch (e) { reject(new Error(`${url}: ${e.message}`)); }
            });
        }).on('error', reject);
    });
}

function openSocket(url) {
    // No permessage-deflate offer: keryx does not negotiate it, and it would only cost client CPU.
    return new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: CONNECT_TIMEOUT_MS });
}

// ---- fanout ----------------------------------------------------------------------------------

// Opens n sockets, at most `concurrency` handshakes + subscriptions in flight, each subscribed
// to channel. Resolves with the sockets once every one has its "subscribed" reply.
function connectAll(url, n, concurrency, channel, onBroadcast) {
    return new Promise((resolve, reject) => {
        const sockets = [];
        let started = 0;
        let done = 0;
        let failed = false;
        const timer = setTimeout(() => bail(new Error(`only ${done} of ${n} sockets subscribed after ${CONNECT_TIMEOUT_MS} ms`)),
            CONNECT_TIMEOUT_MS);

        // After the promise settled (broadcast phase), a failing socket ends the bench at once.
        function bail(err) {
            if (failed) return;
            failed = true;
            clearTimeout(timer);
            if (done === n) fail(err.message);
            reject(err);
        }

        function startOne() {
            const i = started++;
            const ws = openSocket(url);
            const subscribeId = i + 1;
            let subscribed = false;
            sockets.push(ws);
            ws.on('open', () => {
                ws.send(`{"messageType":"subscribe","channel":"${channel}","messageId":${subscribeId}}`);
            });
            ws.on('message', (data) => {
                if (subscribed) return onBroadcast(data);
                const reply = JSON.parse(data.toString());
                // Only the join event of the first presence key can arrive before the reply.
                if (reply.message && reply.message.sender === 'presence') return;
                if (reply.messageId !== subscribeId || !reply.subscribed || reply.subscribed.channel !== channel) {
                    return bail(new Error(`socket ${i}: unexpected subscribe reply ${data.toString()}`));
                }
                subscribed = true;
                done++;
                if (done === n) {
                    clearTimeout(timer);
                    resolve(sockets);
                } else if (started < n) {
                    startOne();
                }
            });
            ws.on('unexpected-response', (req, res) => bail(new Error(`socket ${i}: upgrade refused with HTTP ${res.statusCode}`)));
            ws.on('error', (e) => bail(new Error(`socket ${i}: ${e.message}`)));
            ws.on('close', (code, reason) => {
                if (!closingAll) bail(new Error(`socket ${i} closed by keryx (${code} ${reason})`));
            });
        }

        for (let k = 0; k < Math.min(concurrency, n); k++) startOne();
    });
}

let closingAll = false;

// A redis-cli kept running, fed one command per line: its start-up is not part of a broadcast.
function startRedisCli(port) {
    const cli = spawn('redis-cli', ['-h', '127.0.0.1', '-p', String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const replies = [];
    let waiter = null;
    let buf = '';
    cli.stdout.setEncoding('utf8');
    cli.stdout.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
            replies.push(buf.slice(0, nl).trim());
            buf = buf.slice(nl + 1);
            if (waiter) { const w = waiter; waiter = null; w(); }
        }
    });
    cli.on('exit', (code) => { if (!closingAll) fail(`redis-cli exited (${code})`); });
    return {
        send(line) { cli.stdin.write(line + '\n'); },
        async reply() {
            const deadline = Date.now() + 5000;
            while (replies.length === 0) {
                if (Date.now() > deadline) fail('redis-cli gave no reply within 5 s');
                await new Promise((r) => { waiter = r; setTimeout(r, 100); });
            }
            return replies.shift();
        },
        close() { cli.stdin.end(); },
    };
}

async function fanout(opts) {
    const url = required(opts, 'url');
    const pid = intOpt(opts, 'keryx-pid', 0);
    const redisPort = intOpt(opts, 'redis-port', 0);
    const n = intOpt(opts, 'connections', 10000);
    const broadcasts = intOpt(opts, 'broadcasts', 5);
    const concurrency = Math.max(1, intOpt(opts, 'concurrency', 200));
    const channel = opts.channel || 'room:bench';
    const probe = opts.probe || '';
    if (!pid || !redisPort || n < 1) fail('--keryx-pid, --redis-port and --connections >= 1 are required');

    const result = { client: 'node', connections: n, channel };
    if (probe) result.lua_heap_before_kib = (await httpJson(probe)).live_kib;
    result.rss_before_kib = rssKib(pid);

    // Per-broadcast state, touched by every socket's message handler: kept minimal (a time, a
    // count, one byte comparison) so the client adds as little as possible to the figure.
    let expected = null;
    let got = 0;
    let first = 0;
    let last = 0;
    let wrong = 0;
    let onAll = null;
    const arrivals = new Float64Array(n);
    const onBroadcast = (data) => {
        const now = performance.now();
        if (expected === null || got >= n || !expected.equals(data)) { wrong++; return; }
        if (got === 0) first = now;
        last = now;
        arrivals[got] = now;
        if (++got === n && onAll) onAll();
    };

    log(`opening ${n} sockets to ${url}, each subscribing to ${channel} (${concurrency} in flight)`);
    const cpu0 = cpuNs(pid);
    const t0 = performance.now();
    const sockets = await connectAll(url, n, concurrency, channel, onBroadcast);
    result.connect_ms = performance.now() - t0;
    result.connect_keryx_cpu_ms = (cpuNs(pid) - cpu0) / 1e6;
    log(`${n} sockets subscribed in ${(result.connect_ms / 1000).toFixed(1)} s`);

    await sleep(SETTLE_AFTER_CONNECT_MS);
    result.rss_after_kib = rssKib(pid);
    if (probe) {
        const h = await httpJson(probe);
        result.lua_heap_after_kib = h.kib;
        result.lua_heap_after_live_kib = h.live_kib;
        result.rss_after_gc_kib = rssKib(pid);
    }

    const cli = startRedisCli(redisPort);
    result.broadcasts = [];
    for (let k = 1; k <= broadcasts; k++) {
        await sleep(QUIET_BEFORE_BROADCAST_MS);
        got = 0; wrong = 0;
        const allIn = new Promise((r) => { onAll = r; });
        const kCpu0 = cpuNs(pid);
        const cCpu0 = selfCpuNs();
        const sendWall = wallMs();
        const payload = `{"channel":"${channel}","message":{"t":${sendWall.toFixed(3)},"k":${k}},"sender":"bench"}`;
        expected = Buffer.from(`{"message":${payload}}`);
        // redis-cli splits arguments like a shell: the JSON (no single quote in it) goes in '…'.
        cli.send(`PUBLISH ${PUBSUB_CHANNEL} '${payload}'`);
        const timedOut = await Promise.race([allIn.then(() => false), sleep(BROADCAST_TIMEOUT_MS).then(() => true)]);
        const kCpu = (cpuNs(pid) - kCpu0) / 1e6;
        const cCpu = (selfCpuNs() - cCpu0) / 1e6;
        const receivers = await cli.reply();
        if (receivers !== '1') fail(`PUBLISH reached ${receivers} Redis subscribers, expected 1 (keryx)`);
        if (timedOut) fail(`broadcast ${k}: ${got} of ${n} sockets received it within ${BROADCAST_TIMEOUT_MS} ms`);
        if (wrong > 0) fail(`broadcast ${k}: ${wrong} frames were not the broadcast`);
        // The latency is against the timestamp inside the message (wall clock, same machine).
        const b = {
            k,
            last_ms: performance.timeOrigin + last - sendWall,
            first_ms: performance.timeOrigin + first - sendWall,
            p50_ms: performance.timeOrigin + median(arrivals) - sendWall,
            keryx_cpu_ms: kCpu,
            client_cpu_ms: cCpu,
        };
        result.broadcasts.push(b);
        log(`broadcast ${k}: first socket ${b.first_ms.toFixed(2)} ms, half ${b.p50_ms.toFixed(2)} ms, last (${n}th) ${b.last_ms.toFixed(2)} ms; keryx CPU ${kCpu.toFixed(2)} ms, client CPU ${cCpu.toFixed(2)} ms`);
    }
    result.last_ms_median = median(result.broadcasts.map((b) => b.last_ms));
    result.first_ms_median = median(result.broadcasts.map((b) => b.first_ms));
    result.p50_ms_median = median(result.broadcasts.map((b) => b.p50_ms));
    result.keryx_cpu_ms_median = median(result.broadcasts.map((b) => b.keryx_cpu_ms));
    result.client_cpu_ms_median = median(result.broadcasts.map((b) => b.client_cpu_ms));

    closingAll = true;
    cli.close();
    for (const ws of sockets) ws.terminate();
    process.stdout.write(JSON.stringify(result) + '\n');
}

// ---- actions ---------------------------------------------------------------------------------

async function actions(opts) {
    const url = required(opts, 'url');
    const pid = intOpt(opts, 'keryx-pid', 0);
    const nSockets = Math.max(1, intOpt(opts, 'sockets', 50));
    const durationMs = Math.max(1, intOpt(opts, 'duration-ms', 10000));
    const warmupMs = intOpt(opts, 'warmup-ms', 1000);
    if (!pid) fail('--keryx-pid is required');

    let measuring = false;
    let stopping = false;
    let count = 0;
    const latencies = [];
    let nextId = 1;

    // One socket: send, await the reply carrying the same messageId, send the next one.
    function runSocket(i) {
        return new Promise((resolve, reject) => {
            const ws = openSocket(url);
            let id = 0;
            let sentAt = 0;
            let checked = 0;
            const send = () => {
                if (stopping) { ws.terminate(); return resolve(); }
                id = nextId++;
                sentAt = performance.now();
                ws.send(`{"messageType":"action","action":"status","messageId":${id},"params":{}}`);
            };
            ws.on('open', send);
            ws.on('message', (data) => {
                const now = performance.now();
                const text = data.toString();
                // Cheap check on every reply, a full parse on a sample: keryx writes messageId first.
                if (!text.startsWith(`{"messageId":${id},"response":{`)) {
                    return reject(new Error(`socket ${i}: reply to ${id} is not a response: ${text.slice(0, 300)}`));
                }
                if (checked++ % 1000 === 0) {
                    const r = JSON.parse(text).response;
                    if (typeof r.pid !== 'number' || r.healthy !== true) {
                        return reject(new Error(`socket ${i}: unexpected status response ${text}`));
                    }
                }
                if (measuring) {
                    count++;
                    latencies.push(now - sentAt);
                }
                send();
            });
            ws.on('unexpected-response', (req, res) => reject(new Error(`socket ${i}: upgrade refused with HTTP ${res.statusCode}`)));
            ws.on('error', (e) => reject(new Error(`socket ${i}: ${e.message}`)));
            ws.on('close', (code) => { if (!stopping) reject(new Error(`socket ${i} closed by keryx (${code})`)); });
        });
    }

    const runs = [];
    for (let i = 0; i < nSockets; i++) runs.push(runSocket(i));
    const all = Promise.all(runs);
    all.catch((e) => fail(e.message));

    await sleep(warmupMs);
    const k0 = cpuNs(pid);
    const c0 = selfCpuNs();
    const t0 = performance.now();
    measuring = true;
    await sleep(durationMs);
    measuring = false;
    const elapsed = performance.now() - t0;
    const kCpu = cpuNs(pid) - k0;
    const cCpu = selfCpuNs() - c0;
    stopping = true;
    await all;

    if (count === 0) fail('no action reply during the measured window');
    latencies.sort((a, b) => a - b);
    process.stdout.write(JSON.stringify({
        sockets: nSockets,
        duration_ms: elapsed,
        round_trips: count,
        rps: count / (elapsed / 1000),
        p50_ms: percentile(latencies, 50),
        p99_ms: percentile(latencies, 99),
        keryx_cpu_us_per_op: kCpu / 1000 / count,
        keryx_busy_pct: (kCpu / 1e6) / elapsed * 100,
        client_busy_pct: (cCpu / 1e6) / elapsed * 100,
    }) + '\n');
}

// ---- main ------------------------------------------------------------------------------------

const { mode, opts } = parseArgs(process.argv.slice(2));
const modes = { fanout, actions };
if (!modes[mode]) fail('usage: ws-load.js fanout|actions --url ws://host:port/ --keryx-pid PID …');
modes[mode](opts).then(() => process.exit(0), (e) => fail(e.stack || e.message));
