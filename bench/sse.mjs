// Bench: does watching a batch slow it down? The same batch run with no event-stream client and
// with 200 clients on GET /batches/:id/events (partita/http over node:http), alternately.
// Budget: with the clients, the batch's duration grows by at most 10 %.
//
//   npm run build && node bench/sse.mjs
//   SSE_CLIENTS=200 SSE_PARTITIONS=5000 SSE_WORK_US=200 SSE_ROUNDS=5 SSE_INTERVAL_MS=250 node bench/sse.mjs
//
// Each batch waits (`after`) for a gate batch, so the clients are connected before its first
// partition starts; its duration is its own, `finishedAt - startedAt`. The clients run in a child
// process (this file with `--clients`): their parsing does not use the engine's thread, so what is
// measured is the server's cost on that thread. The main thread's CPU time over the batch is shown
// too: on a busy machine it varies less than the wall-clock duration. Not part of any test, nor of
// bench/run.mjs.
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  budget,
  DIST_DIR,
  envInt,
  log,
  machine,
  mainThreadCpuMs,
  median,
  partita,
  printBudgets,
  printTable,
  round,
} from './lib/common.mjs';

const CLIENTS = envInt('SSE_CLIENTS', 200);
const PARTITIONS = envInt('SSE_PARTITIONS', 5000);
const WORK_US = envInt('SSE_WORK_US', 200);
const ROUNDS = Math.max(1, envInt('SSE_ROUNDS', 5));
/** The handler's `eventIntervalMs`. */
const INTERVAL_MS = envInt('SSE_INTERVAL_MS', 250);

if (process.argv[2] === '--clients') await clients(process.argv[3], Number(process.argv[4]));
else await main();

async function main() {
  const { createEngine, defineJob, memoryStore } = await partita();
  const { createHandler, toNodeListener } = await import(
    pathToFileURL(join(DIST_DIR, 'http', 'index.js')).href
  );
  const gates = new Map();
  const gate = defineJob({
    name: 'gate',
    partition: (name) => [{ key: 'gate', payload: name }],
    handler: (name) => gates.get(name),
  });
  // Inline partitions busy for WORK_US µs each: the engine's thread does the work, as the server does.
  const busy = defineJob({
    name: 'busy',
    partition: (n) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, payload: i })),
    handler: async (i) => {
      const end = process.hrtime.bigint() + BigInt(WORK_US * 1000);
      while (process.hrtime.bigint() < end);
      return i;
    },
    concurrency: 16,
  });
  const engine = createEngine({ jobs: [gate, busy], store: memoryStore(), logger: false });
  await engine.start();
  const server = createServer(
    toNodeListener(createHandler(engine, { metrics: false, eventIntervalMs: INTERVAL_MS })),
  );
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;

  const runs = [];
  let seq = 0;
  async function once(watchers) {
    const id = `batch-${++seq}`;
    let open;
    gates.set(id, new Promise((resolve) => (open = resolve)));
    await engine.submit(gate, id, { id: `${id}-gate` });
    await engine.submit(busy, PARTITIONS, { id, after: [`${id}-gate`] });
    let child;
    if (watchers > 0) {
      child = spawn(
        process.execPath,
        [fileURLToPath(import.meta.url), '--clients', `${base}/batches/${id}/events`, String(watchers)],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      // The clients stand for other machines: on a small box they should not take the engine's CPU.
      try {
        setPriority(child.pid, 19);
      } catch {
        // not permitted here: measured as it is
      }
      child.lines = lines(child.stdout);
      await child.lines.next(); // "ready": every client has the QUEUED summary
    }
    const cpu0 = mainThreadCpuMs();
    open(0);
    const summary = await engine.wait(id);
    const cpuMs = cpu0 === undefined ? undefined : mainThreadCpuMs() - cpu0;
    const run = {
      watchers,
      ms: Date.parse(summary.finishedAt) - Date.parse(summary.startedAt),
      cpuMs,
      status: summary.status,
    };
    if (child) {
      Object.assign(run, JSON.parse(await child.lines.next()));
      await new Promise((resolve) => child.once('close', resolve));
    }
    runs.push(run);
    return run;
  }

  await once(0); // warm-up, not counted
  runs.length = 0;
  for (let r = 1; r <= ROUNDS; r++) {
    const a = await once(0);
    const b = await once(CLIENTS);
    log(
      `sse: round ${r}: no clients ${a.ms} ms, ${CLIENTS} clients ${b.ms} ms (${b.events} events to ${b.connected} clients)`,
    );
  }
  server.closeAllConnections();
  server.close();
  await engine.stop();

  const unwatched = runs.filter((r) => r.watchers === 0);
  const watched = runs.filter((r) => r.watchers > 0);
  const quiet = median(unwatched.map((r) => r.ms));
  const loud = median(watched.map((r) => r.ms));
  const hasCpu = runs.every((r) => r.cpuMs !== undefined);
  const quietCpu = hasCpu ? median(unwatched.map((r) => r.cpuMs)) : undefined;
  const loudCpu = hasCpu ? median(watched.map((r) => r.cpuMs)) : undefined;
  printTable(
    `sse: one batch of ${PARTITIONS} inline partitions (${WORK_US} µs each), median of ${ROUNDS} rounds`,
    ['clients', 'batch ms', 'main thread cpu ms', 'events per client'],
    [
      {
        clients: 0,
        'batch ms': round(quiet, 1),
        'main thread cpu ms': quietCpu ?? '',
        'events per client': '',
      },
      {
        clients: CLIENTS,
        'batch ms': round(loud, 1),
        'main thread cpu ms': loudCpu ?? '',
        'events per client': round(median(watched.map((r) => r.events / r.connected)), 1),
      },
    ],
  );
  const growth = (loud / quiet - 1) * 100;
  const checks = [budget(`batch duration growth with ${CLIENTS} clients (%)`, growth, '<=', 10)];
  if (hasCpu)
    checks.push(
      budget(`main thread cpu growth with ${CLIENTS} clients (%)`, (loudCpu / quietCpu - 1) * 100, '<=', 10),
    );
  const budgets = printBudgets(checks);
  log(JSON.stringify({ bench: 'sse', machine: machine(), clients: CLIENTS, partitions: PARTITIONS, runs }));
  if (!budgets.every((b) => b.pass)) process.exitCode = 1;
}

/** The child: `n` clients on `url`. Prints "ready" once each has its first event, and totals at the end. */
async function clients(url, n) {
  let connected = 0;
  let ended = 0;
  let events = 0;
  await new Promise((done) => {
    const end = () => ++ended === n && done();
    for (let i = 0; i < n; i++) {
      const req = request(url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
        let first = true;
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          const count = chunk.split('event: summary').length - 1;
          events += count;
          if (first && count > 0) {
            first = false;
            if (++connected === n) process.stdout.write('ready\n');
          }
        });
        res.on('end', end);
      });
      req.on('error', (err) => {
        process.stderr.write(`client ${i}: ${err.message}\n`);
        end();
      });
      req.end();
    }
  });
  process.stdout.write(`${JSON.stringify({ connected, events })}\n`);
}

/** Lines of a stream, one `next()` at a time. */
function lines(stream) {
  stream.setEncoding('utf8');
  let buffer = '';
  const ready = [];
  const waiting = [];
  stream.on('data', (chunk) => {
    buffer += chunk;
    for (let at = buffer.indexOf('\n'); at >= 0; at = buffer.indexOf('\n')) {
      const line = buffer.slice(0, at);
      buffer = buffer.slice(at + 1);
      const w = waiting.shift();
      if (w) w(line);
      else ready.push(line);
    }
  });
  return {
    next: () =>
      ready.length > 0 ? Promise.resolve(ready.shift()) : new Promise((resolve) => waiting.push(resolve)),
  };
}
