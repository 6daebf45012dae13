// Bench 5, recovery: a batch of 100,000 no-op partitions on SQLite in a child process, SIGKILLed
// when a subscriber sees progress ≥ 0.5; then a fresh engine in another child process on the same
// file: time from the start() call to processing again and to the final state, and exact counts.

import { runChild } from './lib/child.mjs';
import {
  budget,
  envInt,
  log,
  median,
  partita,
  printBudgets,
  printTable,
  round,
  tempDir,
} from './lib/common.mjs';

export const description = 'SIGKILL half way through 100,000 partitions, resume in a fresh process';

export default async function recovery() {
  const n = envInt('BENCH_RECOVERY_N', 100_000);
  const rounds = Math.max(1, envInt('BENCH_RECOVERY_ROUNDS', 2));
  const threads = envInt('BENCH_THREADS', 2);
  const concurrency = envInt('BENCH_RECOVERY_CONCURRENCY', 256);
  const rows = [];
  const errors = [];
  for (let round = 1; round <= rounds; round++) {
    const tmp = tempDir();
    try {
      rows.push(await once({ n, threads, concurrency, path: `${tmp.dir}/recovery.db`, round, errors }));
    } finally {
      tmp.remove();
    }
  }
  printTable(
    `recovery: ${n.toLocaleString('en-US')} no-op partitions, SQLite, concurrency ${concurrency}, SIGKILL at progress ≥ 0.5`,
    [
      'round',
      'progress at kill',
      'durable at kill',
      'start() ms',
      'processing again ms',
      'final ms',
      'rerun',
      'succeeded',
      'recount = summary',
    ],
    rows,
  );
  const again = rows.map((r) => r['processing again ms']);
  const budgets = printBudgets([
    budget('start() call → processing again, ms (worst round)', Math.max(...again), '<', 1000),
  ]);
  return {
    sizes: { n, rounds, threads, concurrency },
    rounds: rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v)]))),
    processingAgainMsMedian: round(median(again)),
    budgets,
    errors,
  };
}

async function once({ n, threads, concurrency, path, round, errors }) {
  const env = {
    RECOVERY_N: String(n),
    RECOVERY_DB: path,
    RECOVERY_THREADS: String(threads),
    RECOVERY_CONCURRENCY: String(concurrency),
  };
  let half;
  const crash = await runChild('recovery-child.mjs', { ...env, RECOVERY_MODE: 'crash' }, (msg, child) => {
    if (msg.type === 'half') {
      half = msg;
      child.kill('SIGKILL');
    }
  });
  const id = crash.messages.find((m) => m.type === 'submitted')?.id;
  if (crash.signal !== 'SIGKILL' || !half || !id) {
    throw new Error(
      `crash child was not killed half way (exit ${crash.code}, signal ${crash.signal}); is BENCH_RECOVERY_N too small?`,
    );
  }
  // What survived the kill: the outcomes stored, read through the store's own API.
  const { sqliteStore } = await partita();
  const store = sqliteStore({ path });
  await store.open();
  const durable = await store.countOutcomes(id);
  await store.close();
  const durableSettled = durable.succeeded + durable.failed;
  log(
    `recovery: round ${round}: killed at progress ${half.progress.toFixed(3)}; ${durableSettled} outcomes durable`,
  );

  const resumed = await runChild('recovery-child.mjs', {
    ...env,
    RECOVERY_MODE: 'resume',
    RECOVERY_ID: id,
    RECOVERY_DURABLE: String(durableSettled),
  });
  const stuck = resumed.messages.find((m) => m.type === 'stuck');
  if (stuck) {
    const why = `round ${round}: the resumed batch made no progress for ${stuck.stallMs} ms: last summary ${JSON.stringify(stuck.last)}, recount ${JSON.stringify(stuck.recount)}`;
    errors.push(why);
    log(`recovery: ${why}`);
    return {
      round,
      'progress at kill': half.progress,
      'durable at kill': durableSettled,
      'start() ms': stuck.startMs,
      'processing again ms': stuck.processingMs ?? Number.POSITIVE_INFINITY,
      'final ms': 'stuck',
      rerun: '',
      succeeded: stuck.last?.succeeded,
      'recount = summary': 'stuck',
    };
  }
  const r = resumed.messages.find((m) => m.type === 'resumed');
  if (!r || resumed.code !== 0)
    throw new Error(`resume child exited with ${resumed.code ?? resumed.signal} and no result`);
  const exact =
    r.final.status === 'COMPLETED' &&
    r.final.succeeded === n &&
    r.recount.total === n &&
    r.recount.succeeded === r.final.succeeded &&
    r.recount.failed === r.final.failed &&
    r.waited.succeeded === r.final.succeeded;
  if (!exact)
    errors.push(
      `round ${round}: counts differ: final ${JSON.stringify(r.final)} recount ${JSON.stringify(r.recount)}`,
    );
  log(
    `recovery: round ${round}: start ${Math.round(r.startMs)} ms, processing again ${Math.round(r.processingMs)} ms, final ${Math.round(r.finalMs)} ms`,
  );
  return {
    round,
    'progress at kill': half.progress,
    'durable at kill': durableSettled,
    'start() ms': r.startMs,
    'processing again ms': r.processingMs,
    'final ms': r.finalMs,
    // Everything not durable at the kill runs again: in flight, or settled but not yet committed.
    rerun: n - durableSettled,
    succeeded: r.final.succeeded,
    'recount = summary': exact ? 'yes' : `NO ${JSON.stringify(r.recount)}`,
  };
}
