import { createEngine, defineJob, memoryStore } from 'partita';
import { z } from 'zod';

// CPU-bound work runs on worker threads: each partition counts the primes in [from, to).
const countPrimes = defineJob({
  name: 'count-primes',
  input: z.object({ below: z.number().int().positive(), step: z.number().int().positive() }),
  partition: ({ below, step }) =>
    Array.from({ length: Math.ceil(below / step) }, (_, i) => ({
      key: `primes-${i}`,
      payload: { from: i * step, to: Math.min(below, (i + 1) * step) },
    })),
  worker: new URL('./primes.worker.mjs', import.meta.url),
});

// I/O-bound work can run inline on the main thread.
const welcome = defineJob({
  name: 'send-welcome',
  input: z.array(z.object({ name: z.string(), email: z.string().optional() })),
  partition: (users) => users.map((user) => ({ key: user.name, payload: user })),
  handler: async (user) => {
    if (!user.email) throw new Error(`${user.name} has no email address`);
    await new Promise((resolve) => setTimeout(resolve, 10)); // pretend to send it
    return { sentTo: user.email };
  },
});

const engine = createEngine({ jobs: [countPrimes, welcome], store: memoryStore(), logger: false });
await engine.start();

const primes = await engine.submit(countPrimes, { below: 100_000, step: 10_000 });
const done = await engine.wait(primes.id);
let total = 0;
for await (const p of engine.partitions<number>(done.id)) total += p.result ?? 0;
console.log(`${done.job} ${done.status}: ${done.succeeded} of ${done.total} partitions, ${total} primes`);

const mails = await engine.submit(welcome, [{ name: 'ada', email: 'ada@example.com' }, { name: 'grace' }]);
const sent = await engine.wait(mails.id);
console.log(`${sent.job} ${sent.status}: ${sent.errorSummary}`);
for (const f of sent.failures) console.log(`  ${f.key}: ${f.error.message}`);

await engine.stop();
