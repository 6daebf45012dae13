import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine, defineJob, sqliteStore } from '../src/index.js';
import { crashJob, EXPECTED } from './crash/jobs.mjs';
import { collect } from './helpers.js';
import { random } from './support/random.js';

const dir = mkdtempSync(join(tmpdir(), 'partita-crash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TRIALS = Number(process.env.CRASH_TRIALS ?? 20);

type KillPoint = { kind: 'progress'; settled: number } | { kind: 'finalizing' } | { kind: 'submitted' };

/** Start the child, kill it with SIGKILL when it reaches the kill point; resolves once it is dead. */
function runAndKill(path: string, id: string, point: KillPoint, batching = 'auto'): Promise<string> {
  const child: ChildProcess = spawn(
    process.execPath,
    [new URL('./crash/child.mjs', import.meta.url).pathname, path, id],
    {
      env: {
        ...process.env,
        CRASH_BATCHING: batching,
        ...(point.kind === 'finalizing' ? { SLOW_FINALIZE: '1' } : {}),
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  return new Promise((resolve, reject) => {
    let killedAt = 'never';
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (child.killed) return;
      const hit =
        (point.kind === 'submitted' && line === 'submitted') ||
        (point.kind === 'finalizing' && line === 'finalizing') ||
        (point.kind === 'progress' &&
          line.startsWith('progress ') &&
          Number(line.slice(9)) >= point.settled) ||
        line.startsWith('final ');
      if (hit) {
        killedAt = line;
        child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) =>
      signal === 'SIGKILL'
        ? resolve(killedAt)
        : reject(new Error(`child exited without being killed (${signal})`)),
    );
  });
}

/** Is the batch stored in a final status (read straight from the file, before any engine opens it)? */
function finalInStore(path: string, id: string): boolean {
  const db = new Database(path, { readonly: true });
  try {
    const row = db.prepare('SELECT status FROM batches WHERE id = ?').get(id) as
      | { status: string }
      | undefined;
    return row !== undefined && ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(row.status);
  } finally {
    db.close();
  }
}

async function recoverAndCheck(path: string, id: string) {
  let finalizeCalls = 0;
  const engine = createEngine({
    jobs: [crashJob(defineJob, { finalize: async () => ({ by: 'recovery', call: ++finalizeCalls }) })],
    store: sqliteStore({ path }),
    logger: false,
    workers: { maxThreads: 2 },
  });
  await engine.start();
  try {
    const summary = await engine.wait(id);
    expect(summary.status).toBe('PARTIAL');
    expect(summary.total).toBe(EXPECTED.total);
    expect(summary.failed).toBe(EXPECTED.failed);
    expect(summary.succeeded).toBe(EXPECTED.total - EXPECTED.failed);
    expect(await engine.recount(id)).toEqual({
      total: summary.total,
      succeeded: summary.succeeded,
      failed: summary.failed,
    });
    const parts = await collect(engine.partitions(id));
    expect(parts).toHaveLength(EXPECTED.total);
    expect(new Set(parts.map((p) => p.key)).size).toBe(EXPECTED.total);
    expect(parts.filter((p) => p.status === 'pending')).toEqual([]);
    expect(finalizeCalls).toBeLessThanOrEqual(1);
    return { summary, redelivered: parts.filter((p) => p.attempts > 1).length };
  } finally {
    await engine.stop();
  }
}

describe(`crash recovery: SIGKILL at seeded random points, ${TRIALS} trials`, () => {
  const rand = random(Number(process.env.CRASH_SEED ?? 20261125));
  const points: KillPoint[] = Array.from({ length: TRIALS }, (_, i): KillPoint => {
    if (i % 5 === 0) return { kind: 'finalizing' };
    if (i % 7 === 1) return { kind: 'submitted' };
    return { kind: 'progress', settled: Math.floor(rand() * EXPECTED.total) };
  });
  points.forEach((point, i) => {
    // Item batching in the killed process: fixed groups of 25 (a kill lands mid-group), 'auto', off.
    const batching = ['25', 'auto', 'off'][i % 3]!;
    const at = point.kind === 'progress' ? `${point.settled} settled` : point.kind;
    it(`trial ${i}: killed at ${at}, batching ${batching}`, async () => {
      const path = join(dir, `trial-${i}.db`);
      const id = `crash-${i}`;
      const killedAt = await runAndKill(path, id, point, batching);
      // What the kill left: the child runs on until the signal lands, after the line that asked for
      // it, so a kill asked for near the end can find the batch final already. The stored status
      // says which finalizer's output must count (`final …` is printed only once it is stored).
      const storedFinal = finalInStore(path, id);
      if (killedAt.startsWith('final ')) expect(storedFinal).toBe(true);
      const { summary } = await recoverAndCheck(path, id);
      expect(summary.output).toEqual(storedFinal ? { by: 'child' } : { by: 'recovery', call: 1 });
    });
  });

  it('a batch killed twice still ends right', async () => {
    const path = join(dir, 'twice.db');
    await runAndKill(path, 'twice', { kind: 'progress', settled: 300 });
    await runAndKill(path, 'twice', { kind: 'progress', settled: 900 });
    await recoverAndCheck(path, 'twice');
  });
});
