// Bench "hosts": several engine processes on one PostgreSQL schema sharing a backlog of batches of
// I/O-bound partitions (inline handler awaiting BENCH_HOSTS_IO_MS, default 100 ms: I/O-bound enough
// that the 2 cores of these machines are not what limits 3 processes): the same work on 1, 2 and 3 processes, each
// with maxConcurrentBatches 4 and 16 lanes a batch. Batches are submitted on the first process;
// the others claim them. This shows work shared across hosts. Then one batch (job with `distribute`,
// BENCH_HOSTS_ONE_PARTITIONS partitions of BENCH_HOSTS_ONE_IO_MS, default 20,000 × 20 ms) on 1, 2
// and 3 processes, each running at most BENCH_HOSTS_HELP partitions at once (default 25): the
// partitions of that one batch spread over the processes in ranges (docs/scaling.md, "One batch on
// many hosts").
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import {
  budget,
  childPath,
  envInt,
  envList,
  freshPgSchema,
  log,
  PG_URL,
  partita,
  printBudgets,
  printTable,
} from './lib/common.mjs';

export const description = 'a backlog of I/O-bound batches on 1, 2 and 3 engine processes (PostgreSQL)';

export default async function hosts() {
  const counts = envList('BENCH_HOSTS', ['1', '2', '3']).map(Number);
  const batches = envInt('BENCH_HOSTS_BATCHES', 60);
  const partitions = envInt('BENCH_HOSTS_PARTITIONS', 100);
  const ioMs = envInt('BENCH_HOSTS_IO_MS', 100);
  const { postgresStore } = await partita();
  const rows = [];
  for (const n of counts) {
    const pg = await freshPgSchema(`hosts${n}`);
    if (!pg.ok) {
      log(`hosts: skipped (${pg.reason})`);
      return { skipped: pg.reason };
    }
    const env = { ...process.env, HOST_PG_URL: PG_URL, HOST_SCHEMA: pg.schema, HOST_IO_MS: String(ioMs) };
    const children = Array.from({ length: n }, () => fork(childPath('host-child.mjs'), [], { env }));
    const message = (child, type) =>
      new Promise((resolve) => child.on('message', (m) => m.type === type && resolve(m)));
    await Promise.all(children.map((c) => message(c, 'ready')));
    const store = postgresStore({ connectionString: PG_URL, schema: pg.schema });
    await store.open();
    const t0 = performance.now();
    children[0].send({ type: 'submit', batches, partitions });
    await message(children[0], 'submitted');
    for (;;) {
      const rows = await store.listBatches({ status: ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'] });
      if (rows.length >= batches) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const owners = new Set();
    let ok = 0;
    for (const row of await store.listBatches({})) {
      const c = await store.countOutcomes(row.id);
      if (row.status === 'COMPLETED' && c.succeeded === partitions) ok++;
      const lease = await store.leaseOf(row.id);
      if (lease) owners.add(lease.owner);
    }
    await store.close();
    await Promise.all(children.map((c) => new Promise((r) => c.on('exit', r) && c.send({ type: 'stop' }))));
    await pg.drop();
    rows.push({
      processes: n,
      batches,
      partitions: batches * partitions,
      seconds,
      per_s: (batches * partitions) / seconds,
      ideal_s: (batches * partitions * ioMs) / 1000 / (n * 4 * 16),
      hosts_used: owners.size,
      complete: ok === batches ? 'yes' : `NO (${ok})`,
    });
    log(`hosts: ${n} process(es): ${seconds.toFixed(2)} s`);
  }
  printTable(
    `hosts: ${batches} batches × ${partitions} partitions of ${ioMs} ms I/O, submitted on the first process (ideal: every lane busy)`,
    ['processes', 'batches', 'partitions', 'seconds', 'ideal_s', 'per_s', 'hosts_used', 'complete'],
    rows,
  );
  const spread = await oneBatch(counts, postgresStore);
  if (spread.skipped) return spread;
  const one = rows.find((r) => r.processes === 1);
  const three = rows.find((r) => r.processes === 3);
  const oneS = spread.rows.find((r) => r.processes === 1);
  const threeS = spread.rows.find((r) => r.processes === 3);
  const budgets = [
    ...(one && three
      ? [budget('3 processes vs 1 (many batches)', one.seconds / three.seconds, '>=', 2.5)]
      : []),
    ...(oneS && threeS
      ? [budget('3 processes vs 1 (one batch, distribute)', oneS.seconds / threeS.seconds, '>=', 2.5)]
      : []),
  ];
  printBudgets(budgets);
  return {
    rows: [...rows, ...spread.rows],
    budgets,
    errors: [...rows, ...spread.rows]
      .filter((r) => r.complete !== 'yes')
      .map((r) => `${r.processes}: incomplete`),
  };
}

/** One batch of job "wide" (`distribute`) on 1, 2 and 3 processes: how its partitions spread. */
async function oneBatch(counts, postgresStore) {
  const partitions = envInt('BENCH_HOSTS_ONE_PARTITIONS', 20_000);
  const ioMs = envInt('BENCH_HOSTS_ONE_IO_MS', 20);
  const help = envInt('BENCH_HOSTS_HELP', 25);
  const rangeSize = envInt('BENCH_HOSTS_RANGE_SIZE', 50);
  const lanes = envInt('BENCH_HOSTS_ONE_LANES', 48);
  const rows = [];
  for (const n of counts) {
    const pg = await freshPgSchema(`wide${n}`);
    if (!pg.ok) return { skipped: pg.reason };
    const env = {
      ...process.env,
      HOST_PG_URL: PG_URL,
      HOST_SCHEMA: pg.schema,
      HOST_IO_MS: String(ioMs),
      HOST_HELP_CONCURRENCY: String(help),
      HOST_RANGE_SIZE: String(rangeSize),
      HOST_CONCURRENCY: String(lanes),
    };
    const children = Array.from({ length: n }, () => fork(childPath('host-child.mjs'), [], { env }));
    const message = (child, type) =>
      new Promise((resolve) => child.on('message', (m) => m.type === type && resolve(m)));
    await Promise.all(children.map((c) => message(c, 'ready')));
    const store = postgresStore({ connectionString: PG_URL, schema: pg.schema });
    await store.open();
    const t0 = performance.now();
    children[0].send({ type: 'submit', batches: 1, partitions, job: 'wide' });
    await message(children[0], 'submitted');
    let row;
    for (;;) {
      [row] = await store.listBatches({ status: ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'] });
      if (row) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = (performance.now() - t0) / 1000;
    const c = await store.countOutcomes(row.id);
    // Each partition returns the pid of the process that ran it.
    const byPid = new Map();
    for await (const p of store.partitions(row.id)) byPid.set(p.result, (byPid.get(p.result) ?? 0) + 1);
    await store.close();
    await Promise.all(
      children.map((ch) => new Promise((r) => ch.on('exit', r) && ch.send({ type: 'stop' }))),
    );
    await pg.drop();
    rows.push({
      processes: n,
      partitions,
      seconds,
      per_s: partitions / seconds,
      ideal_s: (partitions * ioMs) / 1000 / (n * help),
      split: children.map((ch) => byPid.get(ch.pid) ?? 0).join(' / '),
      complete: row.status === 'COMPLETED' && c.succeeded === partitions ? 'yes' : `NO (${row.status})`,
    });
    log(`hosts: one batch on ${n} process(es): ${seconds.toFixed(2)} s`);
  }
  printTable(
    `hosts: one batch of ${partitions} partitions of ${ioMs} ms I/O (distribute, ranges of ${rangeSize}, ${lanes} out at once), each process running ${help} at once`,
    ['processes', 'partitions', 'seconds', 'ideal_s', 'per_s', 'split', 'complete'],
    rows,
  );
  return { rows };
}
