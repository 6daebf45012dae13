import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { CancelledError, WorkerCrashedError } from '../src/errors.js';
import { WorkerPool } from '../src/workers/pool.js';
import type { RunResult } from '../src/workers/protocol.js';
import { scriptedJob } from './helpers.js';

// Tasks wait in Piscina's queue for a thread (a worker job's batch keeps four per thread in flight):
// a task cancelled while it waits never runs, the others run once a thread is free again (also
// after the running one was aborted and its thread replaced), and destroy() settles every waiting
// task. Not their order: after a thread is replaced, Piscina (5.3) may run waiting abortable tasks
// out of order (one it could not place goes to the back of its queue; with `stricterFIFO`, every
// task that arrives while the threads are busy goes to the front).
describe('WorkerPool: tasks waiting for a thread', () => {
  const job = scriptedJob();
  const setup = () => {
    const dir = mkdtempSync(join(tmpdir(), 'partita-pool-queue-'));
    const pool = new WorkerPool([job], { maxThreads: 1 });
    const run = (key: string, payload: unknown, signal = new AbortController().signal) =>
      pool.run<RunResult>(
        {
          taskId: pool.taskId(),
          job: job.name,
          batchId: 'b',
          key,
          attempt: 1,
          redelivered: false,
          payload,
        },
        signal,
      );
    return { dir, pool, run };
  };
  /** What a task settled with: its rejection's error, read at once (no unhandled rejection meanwhile). */
  const outcome = (p: Promise<unknown>): Promise<unknown> =>
    p.then(
      (res) => res,
      (err: unknown) => err,
    );

  it('runs the waiting tasks; one cancelled while it waits never runs', async () => {
    const { dir, pool, run } = setup();
    try {
      await run('warm', { mode: 'ok' });
      const first = new AbortController();
      const running = outcome(
        run('first', { mode: 'mark-then-hang', file: join(dir, 'first') }, first.signal),
      );
      await vi.waitFor(() => expect(existsSync(join(dir, 'first'))).toBe(true), { timeout: 20_000 });
      const order: string[] = [];
      const cancelled = new AbortController();
      const skipped = outcome(
        run('skipped', { mode: 'mark-then-hang', file: join(dir, 'skipped') }, cancelled.signal),
      );
      const later = ['a', 'b', 'c'].map((key) =>
        run(key, { mode: 'ok', rows: key.charCodeAt(0) }).then((res) => {
          order.push(key);
          return res;
        }),
      );
      cancelled.abort();
      first.abort(); // the thread is replaced; the waiting tasks go on
      expect(await running).toBeInstanceOf(CancelledError);
      expect(await skipped).toBeInstanceOf(CancelledError);
      expect((await Promise.all(later)).map((r) => r.ok && (r.result as { rows: number }).rows)).toEqual([
        97, 98, 99,
      ]);
      expect(order.sort()).toEqual(['a', 'b', 'c']);
      expect(existsSync(join(dir, 'skipped'))).toBe(false);
    } finally {
      await pool.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);

  it('destroy() settles the tasks still waiting for a thread', async () => {
    const { dir, pool, run } = setup();
    try {
      await run('warm', { mode: 'ok' });
      const running = outcome(run('hangs', { mode: 'mark-then-hang', file: join(dir, 'hangs') }));
      await vi.waitFor(() => expect(existsSync(join(dir, 'hangs'))).toBe(true), { timeout: 20_000 });
      const cancelled = new AbortController();
      const waitingCancelled = outcome(run('cancelled', { mode: 'ok' }, cancelled.signal));
      const waiting = outcome(run('waiting', { mode: 'ok' }));
      cancelled.abort();
      await pool.destroy();
      expect(await running).toBeInstanceOf(WorkerCrashedError);
      expect(await waitingCancelled).toBeInstanceOf(CancelledError);
      expect(await waiting).toBeInstanceOf(WorkerCrashedError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
