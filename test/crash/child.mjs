// Runs an engine on a SQLite file until the parent kills it with SIGKILL.
// Prints `progress <settled>` on every change and `finalizing` when the finalizer starts.
// argv: <db path> <batch id>; env SLOW_FINALIZE=1 keeps the finalizer waiting forever; env
// CRASH_BATCHING: the job's item batching ('auto', 'off' or a fixed group size).
import { createEngine, defineJob, sqliteStore } from '../../dist/index.js';
import { batchingOf, crashJob, TOTAL } from './jobs.mjs';

const [path, id] = process.argv.slice(2);
const finalize = async () => {
  process.stdout.write('finalizing\n');
  if (process.env.SLOW_FINALIZE) await new Promise(() => {});
  return { by: 'child' };
};
const engine = createEngine({
  jobs: [crashJob(defineJob, { finalize, batching: batchingOf(process.env.CRASH_BATCHING) })],
  store: sqliteStore({ path }),
  logger: false,
  workers: { maxThreads: 2 },
});
await engine.start();
let last = -1;
const settledOf = (s) => s.succeeded + s.failed;
engine.subscribe(id, (s) => {
  if (settledOf(s) !== last) {
    last = settledOf(s);
    process.stdout.write(`progress ${last}\n`);
  }
});
await engine.submit('crash-job', { n: TOTAL }, { id });
process.stdout.write('submitted\n');
const summary = await engine.wait(id);
process.stdout.write(`final ${summary.status}\n`);
// Stay alive until killed: the parent decides when this process ends.
setInterval(() => {}, 1000);
