import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { pgUnreachable } from './support/stores.js';

// Runs every bench of bench/run.mjs with tiny sizes, against the built package (dist/, built by
// `npm test`). It checks the harness, not the numbers: exit code 0, the tables printed, and one JSON
// line appended to a results file in a temp dir (never to bench/results/).

const root = fileURLToPath(new URL('..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'partita-bench-smoke-'));
const results = join(dir, 'results.jsonl');

const tiny: Record<string, string> = {
  BENCH_RESULTS: results,
  BENCH_THREADS: '2',
  BENCH_N: '400',
  BENCH_CPU_N: '40',
  BENCH_ROUNDS: '1',
  BENCH_CONCURRENCY: '16,64',
  BENCH_BATCHING: 'auto,8,off',
  BENCH_CPU_BATCHING: 'auto,off',
  BENCH_CPU_CONCURRENCY: '16',
  BENCH_WINDOW: '100',
  // The PostgreSQL store is measured by the full bench only; the smoke test must not need a server.
  BENCH_STORES: 'memory,sqlite',
  BENCH_PEER_N: '40',
  BENCH_PEER_ROUNDS: '1',
  BENCH_PEER_CONCURRENCY: '10',
  BENCH_PEER_BATCHING: 'auto,off',
  BENCH_SCALE_N: '3000',
  BENCH_LATENCY_BATCHES: '5',
  BENCH_LATENCY_SIZE: '3',
  BENCH_LATENCY_WIDE: '4,16',
  BENCH_LATENCY_WIDE_N: '50',
  BENCH_RECOVERY_N: '4000',
  BENCH_RECOVERY_ROUNDS: '1',
  BENCH_RECOVERY_STALL_MS: '5000',
  BENCH_LANES: '4,16',
  BENCH_LANES_RUNS: '3',
  BENCH_LANES_ENGINE_RUNS: '2',
  BENCH_HOSTS: '1,2',
  BENCH_HOSTS_BATCHES: '4',
  BENCH_HOSTS_PARTITIONS: '5',
  BENCH_HOSTS_IO_MS: '5',
  BENCH_HOSTS_ONE_PARTITIONS: '200',
  BENCH_HOSTS_ONE_IO_MS: '5',
  BENCH_HOSTS_RANGE_SIZE: '10',
  BENCH_FAILOVER_CLAIMS: '3',
  BENCH_FAILOVER_CLAIM_MS: '200',
  BENCH_FAILOVER_TRIALS: '1',
  BENCH_FAILOVER_SWEEPS: '100',
  BENCH_FAILOVER_LEASE_MS: '500',
  BENCH_FAILOVER_PARTITIONS: '200',
  BENCH_FAILOVER_KILL_AT: '20',
  BENCH_REDRIVE_N: '600',
};

function runBench(name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode([join(root, 'bench', 'run.mjs'), name], tiny);
}

function runNode(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

function redisReachable(): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port: 6379 });
    const done = (why: string | undefined) => {
      socket.destroy();
      resolve(why);
    };
    socket.setTimeout(1000, () => done('no answer from 127.0.0.1:6379 within 1 s'));
    socket.on('error', (err: NodeJS.ErrnoException) => done(`127.0.0.1:6379: ${err.code ?? err.message}`));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (b: Buffer) =>
      done(b.toString().includes('PONG') ? undefined : 'no PONG from 127.0.0.1:6379'),
    );
  });
}

function resultLines(bench: string): Array<Record<string, unknown>> {
  if (!existsSync(results)) return [];
  return readFileSync(results, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((r) => r.bench === bench);
}

const redisDown = await redisReachable();
const pgDown = await pgUnreachable('the hosts bench smoke test');
if (redisDown) console.warn(`bench smoke: the peer bench is skipped: Redis is not reachable (${redisDown})`);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('bench smoke (tiny sizes)', () => {
  it('dist/ is built (npm test builds it)', () => {
    expect(existsSync(join(root, 'dist', 'index.js'))).toBe(true);
  });

  // Beyond the tables: what the JSON line of a bench must hold.
  const checks: Record<string, (line: Record<string, unknown>) => void> = {
    throughput: (line) => {
      type Run = { config: string; tasks?: number; groupMean?: number; groupRatio?: number; ratio?: number };
      const runs = line.runs as Run[];
      const run = (config: string) => runs.find((r) => r.config === config);
      // partita's pool tasks were counted: grouped runs posted fewer tasks than partitions.
      expect(run('partita sqlite c=16 max8')).toMatchObject({ groupMean: expect.any(Number) });
      expect(run('partita sqlite c=16 max8')!.groupMean).toBeGreaterThan(1);
      expect(run('partita sqlite c=16 max8')!.tasks).toBeLessThan(400);
      expect(run('partita sqlite c=16 off')).toMatchObject({ groupMean: 1, tasks: 400 });
      // The raw run of the same groups: the same tasks as partita's, each ratio computed.
      expect(run('raw piscina same groups as sqlite c=16 max8')!.tasks).toBe(
        run('partita sqlite c=16 max8')!.tasks,
      );
      expect(run('partita sqlite c=16 auto')).toMatchObject({
        ratio: expect.any(Number),
        groupRatio: expect.any(Number),
      });
      const cpu = (line.cpuBound as { summary: { config: string }[] }).summary.map((s) => s.config);
      expect(cpu).toEqual(expect.arrayContaining(['partita sqlite c=16 auto', 'partita sqlite c=16 off']));
    },
    redrive: (line) => {
      const rows = line.rows as Array<Record<string, unknown>>;
      const everyOther = rows.find((r) => r.store === 'sqlite' && r.pattern === 'every other')!;
      expect(everyOther).toMatchObject({ failed: 300 });
      // The retry's groups step over the succeeded partitions between the failed ones: exactly 1
      // when a group took only consecutive partitions (every other one failed: each ran alone).
      expect(everyOther['mean group, retry']).toBeGreaterThan(1);
    },
  };

  const cases: Array<[name: string, tables: string[]]> = [
    [
      'throughput',
      [
        '## throughput: 400 no-op partitions',
        '## throughput: summary',
        '## throughput: 40 partitions of 1 ms CPU',
        '## throughput: 1 ms CPU summary',
        '## budgets',
        // Every batching setting, and raw Piscina running partita's own groups beside each grouped one.
        'partita sqlite c=16 auto',
        'partita sqlite c=64 max8',
        'partita memory c=16 off',
        'raw piscina same groups as sqlite c=16 auto',
        'raw piscina same groups as memory c=64 max8',
        'SQLite c=64 batching auto / raw Piscina one task per item',
        'SQLite c=64 batching auto / raw Piscina same groups',
        'SQLite c=64 batching off / raw Piscina one task per item',
        '1 ms CPU, sqlite, batching auto: efficiency',
      ],
    ],
    ['scale', ['## scale: 3,000 no-op partitions', '## scale: memory by progress', '## budgets']],
    ['latency', ['## latency: 5 batches of 3 partitions', '## latency: one batch', '## budgets']],
    ['recovery', ['## recovery: 4,000 no-op partitions', '## budgets']],
    ['lanes', ['## lanes: batch machine alone', '## lanes: engine', '## budgets']],
    ['redrive', ['## redrive: 600 no-op worker partitions']],
  ];
  for (const [name, tables] of cases) {
    it(`${name}: exits 0, prints its tables, appends a JSON line`, { timeout: 180_000 }, async () => {
      const { code, stdout, stderr } = await runBench(name);
      expect(code, `${name} failed:\n${stderr}`).toBe(0);
      for (const title of tables) expect(stdout).toContain(title);
      const lines = resultLines(name);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({
        bench: name,
        node: process.version,
        nproc: expect.any(Number),
        cpu: expect.any(String),
      });
      checks[name]?.(lines[0]!);
    });
  }

  it('sqlite-floor (outside the runner): exits 0 and prints a row per grouping', {
    timeout: 60_000,
  }, async () => {
    const { code, stdout, stderr } = await runNode([join(root, 'bench', 'sqlite-floor.mjs')], {
      SQLITE_FLOOR_N: '40',
      SQLITE_FLOOR_ROUNDS: '1',
    });
    expect(code, `sqlite-floor failed:\n${stderr}`).toBe(0);
    expect(stdout).toContain('## sqlite floor: the writes of a one-partition batch, no engine (40 batches');
    for (const grouping of [
      'every write its own transaction',
      'as submitted one after another',
      'four batches per transaction',
    ])
      expect(stdout).toContain(grouping);
  });

  it('pool-floor (outside the runner): exits 0 and prints a row per pool', { timeout: 60_000 }, async () => {
    const { code, stdout, stderr } = await runNode([join(root, 'bench', 'pool-floor.mjs')], {
      POOL_FLOOR_N: '40',
      POOL_FLOOR_ROUNDS: '1',
    });
    expect(code, `pool-floor failed:\n${stderr}`).toBe(0);
    expect(stdout).toContain('## pool floor: 40 no-op tasks, 8 in flight');
    for (const config of ['raw Piscina ', 'raw Piscina, a signal per task', "partita's WorkerPool"])
      expect(stdout).toContain(config);
  });

  it('state-writes (outside the runner): exits 0 and counts the groups with and without the state', {
    timeout: 60_000,
  }, async () => {
    const { code, stdout, stderr } = await runNode([join(root, 'bench', 'state-writes.mjs')], {
      STATE_WRITES_PACED: '200',
      STATE_WRITES_NOOP: '500',
    });
    expect(code, `state-writes failed:\n${stderr}`).toBe(0);
    expect(stdout).toContain('## state writes: one batch on SQLite');
    expect(stdout).toContain('1 ms of CPU per partition (paced)');
    expect(stdout).toContain('no-op (as fast as the engine goes)');
  });

  it.skipIf(redisDown !== undefined)(
    'peer (BullMQ on Redis): exits 0, prints its tables',
    { timeout: 180_000 },
    async () => {
      const { code, stdout, stderr } = await runBench('peer');
      expect(code, `peer failed:\n${stderr}`).toBe(0);
      expect(stdout).toContain('## peer: 40 no-op children/partitions');
      expect(stdout).toContain('## peer: summary');
      expect(stdout).toContain('worker job (2 threads), batching auto');
      expect(stdout).toContain('inline handler, batching off');
      expect(stdout).toContain('partita batching auto / BullMQ (worker threads)');
      expect(resultLines('peer')).toHaveLength(1);
    },
  );

  it.skipIf(pgDown !== undefined)(
    'hosts (engine processes on PostgreSQL): exits 0, prints its tables',
    { timeout: 180_000 },
    async () => {
      const { code, stdout, stderr } = await runBench('hosts');
      expect(code, `hosts failed:\n${stderr}`).toBe(0);
      expect(stdout).toContain('## hosts: 4 batches × 5 partitions of 5 ms I/O');
      expect(stdout).toMatch(/\n\s+2\s+4\s+20\s.*\syes/);
      expect(stdout).toContain('## hosts: one batch of 200 partitions of 5 ms I/O (distribute');
      expect(stdout).toMatch(/\n\s+2\s+200\s.*\syes/);
      expect(resultLines('hosts')).toHaveLength(1);
    },
  );

  it.skipIf(pgDown !== undefined)(
    'failover (claim latency and takeover on PostgreSQL): exits 0, prints its tables',
    { timeout: 180_000 },
    async () => {
      const { code, stdout, stderr } = await runBench('failover');
      expect(code, `failover failed:\n${stderr}`).toBe(0);
      expect(stdout).toContain('## failover: claim latency');
      expect(stdout).toContain('NOTIFY (B');
      expect(stdout).toContain('backstop sweep only (no NOTIFY; claimIntervalMs 200)');
      expect(stdout).toContain('## failover: takeover summary (leaseTtlMs 500 on both');
      expect(stdout).toContain('## budgets');
      const [line] = resultLines('failover');
      expect(line).toMatchObject({ bench: 'failover', errors: [] });
      // Every claim and the takeover were measured from the children's messages.
      const claims = line!.claims as Array<{ latencies: number[]; heard: string }>;
      expect(claims.map((c) => c.latencies.length)).toEqual([3, 3]);
      expect(claims[0]!.heard).toBe('3/3');
      const [trial] = line!.trials as Array<{ kill_to_running_ms: number; kill_to_final_ms: number }>;
      expect(trial!.kill_to_final_ms).toBeGreaterThanOrEqual(trial!.kill_to_running_ms);
    },
  );

  it('an unknown bench name exits 2 and names the known ones', async () => {
    const { code, stderr } = await runBench('nope');
    expect(code).toBe(2);
    expect(stderr).toContain('known: throughput, peer, scale, latency, recovery');
  });
});
