import { afterEach, describe, expect, it } from 'vitest';
import { createEngine, defineJob, type Engine } from '../src/index.js';
import { storeKinds } from './support/stores.js';

// A submit that gives up on its partition() source before the source's end closes it, as
// `for await` would (outside probe: a generator's `finally` never ran, so a database cursor it held
// leaked with every rejected submit). Refused by the engine (a bad key), by the store (a duplicate
// key), early or late in the stream; and a source that throws has ended and is not closed again.

const kinds = await storeKinds('a rejected submit closes its source');
let engine: Engine | undefined;
afterEach(async () => {
  await engine?.stop();
  engine = undefined;
});

type Bad = 'bad key' | 'duplicate key' | 'throws';

function job() {
  const seen = { closed: 0 };
  const def = defineJob({
    name: 'streamed',
    partition: async function* ({ n, at, bad }: { n: number; at: number; bad: Bad }) {
      try {
        for (let i = 0; i < n; i++) {
          if (i === at && bad === 'throws') throw new Error('the cursor broke');
          const key = i !== at ? `k${i}` : bad === 'bad key' ? '' : 'k0';
          yield { key, payload: i };
        }
      } finally {
        seen.closed++;
      }
    },
    handler: (i: number) => i,
  });
  return { def, seen };
}

describe.each(kinds)('a rejected submit closes its source (%s)', (_kind, makeStore) => {
  it.each([
    ['bad key', 10],
    ['bad key', 1_500],
    ['duplicate key', 10],
    ['duplicate key', 2_500],
    ['throws', 1_500],
  ] as const)('%s at %i of 5,000', async (bad, at) => {
    const { def, seen } = job();
    engine = createEngine({ jobs: [def], store: makeStore(), logger: false });
    await engine.start();
    await expect(engine.submit(def, { n: 5_000, at, bad }, { id: 'b' })).rejects.toMatchObject({
      code: 'VALIDATION',
    });
    // Its `finally` has run once (a source that threw ran it on its own way out).
    await expect.poll(() => seen.closed).toBe(1);
    expect(await engine.list()).toEqual([]);
  });
});
