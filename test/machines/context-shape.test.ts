import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

// XState copies the batch context with Object.assign on every update. With 24 keys V8 built the copy
// as a slow dictionary (measured: 6-8 µs per copy instead of 0.3 µs, a large share of the engine's
// time per partition); the fixed settings moved into `config`. V8's own check needs
// --allow-natives-syntax, so it runs in a child process against the built machine.
const script = `
import { createActor } from 'xstate';
import { batchMachine } from './dist/machines/batch.js';
const actor = createActor(batchMachine, {
  input: { batchId: 'b', job: 'j', total: 3, concurrency: 2, maxAttempts: 1, backoffMs: 1, maxBackoffMs: 1 },
}).start();
actor.send({ type: 'ADMIT', at: 'now' });
actor.send({ type: 'PARTITIONS.LOADED', loaded: 3 });
const context = actor.getSnapshot().context;
console.log(JSON.stringify({ keys: Object.keys(context).length, fast: %HasFastProperties(context) }));
actor.stop();
`;

describe('the batch context stays small', () => {
  it('has few top-level keys and is a fast-mode object after updates', () => {
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--input-type=module', '-e', script],
      {
        cwd: new URL('../..', import.meta.url),
        encoding: 'utf8',
      },
    );
    const { keys, fast } = JSON.parse(out.trim().split('\n').at(-1)!);
    expect(keys).toBeLessThanOrEqual(16);
    expect(fast).toBe(true);
  });
});
