// Shared helpers of the benchmarks: configuration from the environment, the machine description,
// plain-text tables, statistics, the results file and service probes. No partita code here.
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const ROOT_DIR = resolve(BENCH_DIR, '..');

/**
 * The built package. `PARTITA_DIST` points the benches at another build (e.g. a copy taken before
 * a long run, so that a concurrent `npm run build`, which deletes dist/, cannot break the run).
 */
export const DIST_DIR = resolve(process.env.PARTITA_DIST ?? join(ROOT_DIR, 'dist'));

/** Import the public API of the built package. */
export function partita() {
  return import(pathToFileURL(join(DIST_DIR, 'index.js')).href);
}

export const workerUrl = (name) => new URL(`../workers/${name}`, import.meta.url);
export const workerPath = (name) => fileURLToPath(workerUrl(name));
export const childPath = (name) => join(BENCH_DIR, 'children', name);

/** A positive integer from the environment, or the default. */
export function envInt(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`${name} must be a non-negative integer, received ${JSON.stringify(raw)}`);
  return n;
}

/** A comma-separated list from the environment, or the default. */
export function envList(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

export const PG_URL = process.env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const REDIS_HOST = process.env.BENCH_REDIS_HOST ?? '127.0.0.1';
export const REDIS_PORT = envInt('BENCH_REDIS_PORT', 6379);

export function machine() {
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    nproc: availableParallelism(),
    platform: `${process.platform}-${process.arch}`,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

export function resultsFile() {
  return resolve(process.env.BENCH_RESULTS ?? join(BENCH_DIR, 'results', 'results.jsonl'));
}

/** Append one JSON line (machine, date and the bench's numbers) to the results file. */
export function appendResult(bench, data) {
  const file = resultsFile();
  mkdirSync(dirname(file), { recursive: true });
  const m = machine();
  // Machine fields first in the line, and never overwritten by a bench's own keys.
  appendFileSync(file, `${JSON.stringify({ bench, ...m, ...data, ...m })}\n`);
  return file;
}

/** A fresh temporary directory, removed by the returned function. */
export function tempDir(prefix = 'partita-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// --- statistics ---------------------------------------------------------------------------------

export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

/** The middle value; the mean of the two middle values for an even count. */
export function median(values) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
export const mean = (values) => values.reduce((a, b) => a + b, 0) / values.length;

// --- formatting ---------------------------------------------------------------------------------

/** Round for display and for the JSON line: 3 significant digits below 100, integers above. */
export function round(x, digits = 3) {
  if (typeof x !== 'number' || !Number.isFinite(x)) return x;
  if (Math.abs(x) >= 100) return Math.round(x);
  return Number(x.toPrecision(digits));
}

function cell(v) {
  if (v === undefined || v === null) return '';
  if (typeof v === 'number') {
    const r = round(v);
    return Math.abs(r) >= 10_000 ? r.toLocaleString('en-US') : String(r);
  }
  return String(v);
}

/** A plain-text table: title, header, rule, rows; numbers right-aligned. */
export function formatTable(title, columns, rows) {
  const cells = rows.map((row) => columns.map((c) => cell(row[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i].length)));
  const numeric = columns.map((c) => rows.some((row) => typeof row[c] === 'number'));
  const line = (values) =>
    values
      .map((v, i) => (numeric[i] ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [`## ${title}`, line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join(
    '\n',
  );
}

export function printTable(title, columns, rows) {
  process.stdout.write(`\n${formatTable(title, columns, rows)}\n`);
}

/** Budgets: print them as a table and return them for the JSON line. */
export function printBudgets(budgets) {
  const rows = budgets.map((b) => ({
    budget: b.name,
    measured: b.measured,
    limit: `${b.op} ${b.limit}`,
    ...(b.goal !== undefined ? { goal: `${b.op} ${b.goal}` } : {}),
    verdict: b.skipped ? `skipped (${b.skipped})` : b.pass ? 'PASS' : 'MISS',
  }));
  printTable('budgets', ['budget', 'measured', 'limit', 'goal', 'verdict'], rows);
  return budgets;
}

/** A budget check: `measured op limit`. */
export function budget(name, measured, op, limit, goal) {
  const pass = op === '>=' ? measured >= limit : op === '<' ? measured < limit : measured <= limit;
  return { name, measured: round(measured), op, limit, ...(goal !== undefined ? { goal } : {}), pass };
}

export const log = (...args) => process.stderr.write(`${args.join(' ')}\n`);

// --- services -----------------------------------------------------------------------------------

/** Does a TCP server answer on host:port within `timeoutMs`? Optionally check the first reply. */
export function tcpProbe(host, port, { send, expect, timeoutMs = 1000 } = {}) {
  return new Promise((resolvePromise) => {
    const socket = createConnection({ host, port });
    const done = (ok, why) => {
      socket.destroy();
      resolvePromise(ok ? { ok: true } : { ok: false, reason: why });
    };
    socket.setTimeout(timeoutMs, () => done(false, `no answer from ${host}:${port} within ${timeoutMs} ms`));
    socket.on('error', (err) => done(false, `${host}:${port}: ${err.code ?? err.message}`));
    socket.on('connect', () => {
      if (!send) return done(true);
      socket.write(send);
    });
    socket.on('data', (buf) => {
      const text = buf.toString();
      done(
        text.includes(expect),
        `unexpected reply from ${host}:${port}: ${JSON.stringify(text.slice(0, 40))}`,
      );
    });
  });
}

export function redisReachable() {
  return tcpProbe(REDIS_HOST, REDIS_PORT, { send: 'PING\r\n', expect: 'PONG' });
}

/**
 * A fresh PostgreSQL schema for one run, and its removal. Resolves `{ ok: false, reason }` when the
 * server or the postgres store does not work yet (the store is written by another engineer).
 */
export async function freshPgSchema(tag) {
  let pg;
  try {
    pg = (await import('pg')).default;
  } catch (err) {
    return { ok: false, reason: `pg driver not installed: ${err.message}` };
  }
  const schema = `bench_${tag}_${process.pid}_${Date.now().toString(36)}`.replace(/[^a-z0-9_]/gi, '_');
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } catch (err) {
    await client.end().catch(() => {});
    return { ok: false, reason: `PostgreSQL not reachable at ${PG_URL}: ${err.message}` };
  }
  await client.end();
  const drop = async () => {
    const c = new pg.Client({ connectionString: PG_URL });
    try {
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    } finally {
      await c.end().catch(() => {});
    }
  };
  return { ok: true, schema, url: PG_URL, drop };
}

/**
 * CPU time (ms) of this process's main thread alone, from /proc (Linux; undefined elsewhere).
 * Unlike event-loop utilization it does not count time the thread was runnable but descheduled,
 * and unlike process.cpuUsage() it leaves out the worker threads.
 */
export function mainThreadCpuMs() {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return undefined;
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
