// `submit` takes what the job's `input` schema takes, and `partition` gets what it gives: they
// differ with `.default()`, `z.coerce` and `.transform()`. The type assertions are checked by
// `npm run typecheck` (part of `npm run lint`); the runtime ones by vitest.
import { describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineJob, type Engine } from '../src/index.js';
import { startEngine } from './helpers.js';

const report = defineJob({
  name: 'report',
  input: z.object({ day: z.coerce.date(), limit: z.number().default(3) }),
  partition: ({ day, limit }) => {
    expectTypeOf(day).toEqualTypeOf<Date>();
    expectTypeOf(limit).toEqualTypeOf<number>();
    return Array.from({ length: limit }, (_, i) => ({ key: `r${i}`, payload: day.toISOString() }));
  },
  handler: async (iso) => iso,
});

const words = defineJob({
  name: 'words',
  input: z.string().transform((text) => text.split(' ')),
  partition: (list) => list.map((word, i) => ({ key: `w${i}`, payload: word })),
  handler: (word) => word.length,
});

// Without a schema, `partition`'s parameter is the input on both sides.
const plain = defineJob({
  name: 'plain',
  partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `p${i}`, payload: i })),
  handler: (i) => i,
});

/** Compiled only: the calls a user writes, and the ones the compiler must refuse. */
function calls(engine: Engine) {
  void engine.submit(report, { day: '2026-11-25' });
  void engine.submit(report, { day: new Date(), limit: 5 });
  // @ts-expect-error: `limit` is a number, before and after the schema.
  void engine.submit(report, { day: '2026-11-25', limit: '5' });
  void engine.submit(words, 'one two three');
  // @ts-expect-error: `words` takes the text, not what its schema makes of it.
  void engine.submit(words, ['one', 'two']);
  void engine.submit(plain, 3);
  // @ts-expect-error: `plain` takes a number.
  void engine.submit(plain, '3');
  void engine.schedule({ name: 'nightly', job: report, cron: '0 3 * * *', input: { day: '2026-11-25' } });
  void engine.schedule({
    name: 'nightly',
    job: report,
    cron: '0 3 * * *',
    // @ts-expect-error: a schedule's input is checked the same way.
    input: { day: '2026-11-25', limit: 'x' },
  });
}

describe("submit's input type is the input schema's input", () => {
  it('runs what the types accept: a coerced date and a default', async () => {
    expectTypeOf(calls).toBeFunction();
    const engine = await startEngine({ jobs: [report, words, plain] });
    const done = await engine.wait((await engine.submit(report, { day: '2026-11-25' })).id);
    expect(done).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
    const counted = await engine.wait((await engine.submit(words, 'one two three')).id);
    expect(counted).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
  });
});
