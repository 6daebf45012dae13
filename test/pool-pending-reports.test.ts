import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WorkerPool } from '../src/workers/pool.js';
import type { ProgressMessage } from '../src/workers/protocol.js';
import { scriptedJob } from './helpers.js';

// engine.stop() calls deliverPending() before the batches abort their work and save which groups
// began (src/engine.ts, shutdown): a group a thread began just before, its report still queued,
// came back at the same attempt (an outside probe). Here the event loop never turns between the
// thread's report and deliverPending(), as when the stop runs in the same turn.
describe('WorkerPool.deliverPending', () => {
  it("hands over a thread's report of a group begun, without the event loop", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'partita-pending-'));
    const began = join(dir, 'began');
    const job = scriptedJob();
    const pool = new WorkerPool([job], { maxThreads: 1 });
    const task = (members: { key: string; payload: unknown }[]) => ({
      taskId: pool.taskId(),
      job: job.name,
      batchId: 'b',
      key: members[0]!.key,
      attempt: 1,
      redelivered: false,
      payload: undefined,
      members,
    });
    try {
      // The thread is up and the module loaded: the next task goes to it at once.
      await pool.run(task([{ key: 'w', payload: { mode: 'ok' } }]), new AbortController().signal);
      const heard: ProgressMessage[] = [];
      const stop = new AbortController();
      const group = pool.run(
        task([
          { key: 'm0', payload: { mode: 'mark-then-hang', file: began } },
          { key: 'm1', payload: { mode: 'ok' } },
        ]),
        stop.signal,
        (msg) => heard.push(msg),
      );
      const until = Date.now() + 20_000;
      while (!existsSync(began) && Date.now() < until) {
        // Spins: no await, so the report cannot arrive through the event loop.
      }
      expect(existsSync(began)).toBe(true);
      expect(heard.some((m) => m.started)).toBe(false);
      pool.deliverPending();
      expect(heard.some((m) => m.started)).toBe(true);
      stop.abort();
      await group.catch(() => {});
    } finally {
      await pool.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
