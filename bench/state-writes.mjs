// What a batch writes to its store while it runs, by kind: groups of outcomes that carry the
// batch's state (snapshot and summary) and groups that carry only outcomes, and the bytes of state
// written per partition. Counted by wrapping the store's write methods (the store underneath is
// the real SQLite store), so the numbers are counts and bytes, not times: they do not depend on
// the machine's load. Paced work (1 ms of CPU per partition on worker threads, the outcomes
// trickling in) and no-op work (outcomes as fast as the engine takes them).
// docs/benchmarks.md, "The state at most every 100 ms".
//
//   node bench/state-writes.mjs     # STATE_WRITES_PACED (2000 partitions of 1 ms), STATE_WRITES_NOOP (20000)
//   PARTITA_DIST=<another build's dist> node bench/state-writes.mjs     # the same for that build
import { envInt, partita, printTable } from './lib/common.mjs';
import { openStore, workerJob } from './lib/engine.mjs';

const paced = envInt('STATE_WRITES_PACED', 2000);
const noop = envInt('STATE_WRITES_NOOP', 20_000);
const api = await partita();

/** The store with its writes counted: `withState` (commit, saveState) and `outcomesOnly` (appendOutcomes alone). */
function counted(store) {
  const c = { withState: 0, outcomesOnly: 0, stateBytes: 0, outcomes: 0 };
  let appended = false;
  const wrap = {
    commit: (orig) => (id, outcomes, state, fence) => {
      c.withState++;
      c.outcomes += outcomes.length;
      c.stateBytes += JSON.stringify(state).length;
      return orig(id, outcomes, state, fence);
    },
    saveState: (orig) => (id, state, fence) => {
      // After appendOutcomes (a store without `commit`): one group with its state.
      if (appended) c.outcomesOnly--;
      appended = false;
      c.withState++;
      c.stateBytes += JSON.stringify(state).length;
      return orig(id, state, fence);
    },
    appendOutcomes: (orig) => (id, outcomes, fence) => {
      c.outcomesOnly++;
      appended = true;
      c.outcomes += outcomes.length;
      return orig(id, outcomes, fence);
    },
  };
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const bound = value.bind(target);
      return wrap[prop] ? wrap[prop](bound) : bound;
    },
  });
  return { store: proxy, counts: c };
}

const rows = [];
for (const [label, n, file, input] of [
  ['1 ms of CPU per partition (paced)', paced, 'burn.mjs', { n: paced, ms: 1 }],
  ['no-op (as fast as the engine goes)', noop, 'noop.mjs', { n: noop }],
]) {
  const opened = await openStore('sqlite', 'state-writes');
  const { store, counts } = counted(opened.store);
  const job = await workerJob('w', file, 256);
  const engine = api.createEngine({
    jobs: [job],
    store,
    logger: false,
    workers: { minThreads: 2, maxThreads: 2 },
  });
  await engine.start();
  try {
    const summary = await engine.wait((await engine.submit('w', input)).id);
    if (summary.status !== 'COMPLETED') throw new Error(`${label}: the batch ended ${summary.status}`);
  } finally {
    await engine.stop();
    await opened.cleanup();
  }
  rows.push({
    work: label,
    partitions: n,
    'groups with the state': counts.withState,
    'groups of outcomes only': counts.outcomesOnly,
    'outcomes per group': counts.outcomes / (counts.withState + counts.outcomesOnly),
    'state bytes per partition': counts.stateBytes / n,
  });
}
printTable(
  'state writes: one batch on SQLite, concurrency 256, 2 threads, batching auto',
  [
    'work',
    'partitions',
    'groups with the state',
    'groups of outcomes only',
    'outcomes per group',
    'state bytes per partition',
  ],
  rows,
);
