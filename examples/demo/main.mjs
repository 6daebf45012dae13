// partita demo: recalculate November's salaries, one partition per user and day.
//
//   npm run demo                          40 users × 30 days = 1,200 partitions
//   DEMO_USERS=3 DEMO_DAYS=4 npm run demo  a small batch
//
// The batch is stored in ./.partita/partita.db (the default store). Press Ctrl-C half way and run
// the demo again: the engine resumes the interrupted batch where it stopped, and every partition is
// counted exactly once.
import { availableParallelism } from 'node:os';
import { createEngine, defineJob, isFinalStatus } from 'partita';
import { z } from 'zod';

const USERS = intFromEnv('DEMO_USERS', 40);
const DAYS = intFromEnv('DEMO_DAYS', 30);
const BATCH_ID = 'salary-recalc-2026-11';
const UNFINISHED = ['QUEUED', 'PROCESSING', 'FINALIZING'];

const salaryRecalc = defineJob({
  name: 'salary-recalc',
  input: z.object({
    users: z.array(z.string().regex(/^emp-\d{3}$/)).min(1),
    days: z.array(z.iso.date()).min(1),
  }),
  partition: ({ users, days }) =>
    users.flatMap((user) => days.map((day) => ({ key: `${user}:${day}`, payload: { user, day } }))),
  worker: new URL('./salary.worker.mjs', import.meta.url),
  // `retry`: this run of the partition followed a failed attempt (see salary.worker.mjs).
  result: z.object({ gross: z.number(), net: z.number(), retry: z.boolean() }),
  retry: { attempts: 2, backoffMs: 50 },
  timeoutMs: 10_000,
  concurrency: 8,
});

const engine = createEngine({
  jobs: [salaryRecalc],
  workers: { maxThreads: availableParallelism() },
  logger: false,
});
const runStarted = Date.now();
await engine.start(); // opens the store and resumes every unfinished batch

let stopping = false;
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
]) {
  process.on(signal, () => {
    if (stopping) process.exit(code); // a second Ctrl-C does not wait
    stopping = true;
    if (process.stdout.isTTY) process.stdout.write('\n');
    // Graceful: outcomes received so far are stored; work in flight runs again on the next start.
    engine.stop().then(
      () => {
        console.log('stopped; run `npm run demo` again to resume');
        process.exit(code);
      },
      (err) => {
        console.error('stop failed:', err);
        process.exit(code);
      },
    );
  });
}

const { batch, resumed } = await resumeOrSubmit();
const showProgress = progressPrinter();
const unsubscribe = engine.subscribe(batch.id, showProgress);
const summary = await waitFor(batch.id);
showProgress(summary);
unsubscribe();
await printSummary(summary, resumed);
await engine.stop();

/** The interrupted batch if there is one (start() already resumed it), else a new batch. */
async function resumeOrSubmit() {
  const [interrupted] = await engine.list({ job: salaryRecalc.name, status: UNFINISHED });
  if (interrupted) {
    const done = interrupted.succeeded + interrupted.failed;
    console.log(
      `resuming interrupted batch ${interrupted.id}: ${done} of ${interrupted.total} partitions done`,
    );
    return { batch: interrupted, resumed: true };
  }
  // The fixed id makes a resubmission idempotent; once that batch is final, each run makes a new one.
  const stamp = new Date().toISOString().replace(/[-:]/g, '').slice(0, 15); // 20261125T140512
  const id = (await exists(BATCH_ID)) ? `${BATCH_ID}-${stamp}` : BATCH_ID;
  const users = Array.from({ length: USERS }, (_, i) => `emp-${String(i + 1).padStart(3, '0')}`);
  const days = Array.from({ length: DAYS }, (_, i) =>
    new Date(Date.UTC(2026, 10, 1 + i)).toISOString().slice(0, 10),
  );
  const submitted = await engine.submit(salaryRecalc, { users, days }, { id });
  console.log(`submitted batch ${id}: ${USERS} users × ${DAYS} days = ${submitted.total} partitions`);
  return { batch: submitted, resumed: false };
}

async function waitFor(id) {
  try {
    return await engine.wait(id);
  } catch (err) {
    // The batch is unfinished but another live engine holds its lease (or held it until moments
    // ago: a lease outlives a killed owner on another host by up to leaseTtlMs, 30 s by default).
    if (err.code !== 'ENGINE_STATE') throw err;
    console.error(`batch ${id} is run by another engine; try again in a minute`);
    await engine.stop();
    process.exit(1);
  }
}

async function exists(id) {
  try {
    await engine.get(id);
    return true;
  } catch (err) {
    if (err.code === 'NOT_FOUND') return false;
    throw err;
  }
}

/**
 * A one-line bar redrawn in place on a terminal, cleared first and cut to the terminal's width (a
 * line that wraps cannot be redrawn in place); a line every 10 % otherwise (CI, pipes).
 */
function progressPrinter() {
  const tty = process.stdout.isTTY;
  let lastDraw = 0;
  let lastDecile = -1;
  let ended = false;
  return (s) => {
    if (ended || stopping) return;
    const final = isFinalStatus(s.status);
    const pct = `${String(Math.floor(s.progress * 100)).padStart(3)}%`;
    const counts = `${s.succeeded + s.failed}/${s.total}  succeeded ${s.succeeded}  failed ${s.failed}`;
    if (tty) {
      const now = Date.now();
      if (!final && now - lastDraw < 50) return;
      lastDraw = now;
      // One column spare: writing the last one makes some terminals wrap.
      const columns = Math.max(20, process.stdout.columns || 80) - 1;
      const text = ` ${pct}  ${counts}  running ${s.running}`;
      const width = Math.max(10, Math.min(30, columns - text.length));
      const filled = Math.round(s.progress * width);
      const line = ('█'.repeat(filled) + '░'.repeat(width - filled) + text).slice(0, columns);
      process.stdout.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    } else {
      const decile = Math.floor(s.progress * 10);
      if (decile > lastDecile) {
        lastDecile = decile;
        console.log(`progress ${pct}  ${counts}`);
      }
    }
    ended = final;
  };
}

/**
 * Processing time. A batch run in one go took finishedAt - startedAt. A resumed batch's startedAt is
 * in an earlier run, and that span includes the time the demo was not running: only this run's
 * processing is measured then, and said so.
 */
function duration(s, resumed) {
  const finished = s.finishedAt ? Date.parse(s.finishedAt) : Date.now();
  const started = s.startedAt ? Date.parse(s.startedAt) : runStarted;
  if (!resumed || started >= runStarted) return `${((finished - started) / 1000).toFixed(1)} s`;
  const thisRun = (finished - runStarted) / 1000;
  return `${thisRun.toFixed(1)} s this run (resumed; the time before the interruption is not counted)`;
}

async function printSummary(s, resumed) {
  const recount = await engine.recount(s.id);
  // Partitions whose successful run came after a failed attempt, as the worker saw it. Not
  // `attempts > 1`: a re-run after a stop counts as an attempt too, and it is no retry. (A partition
  // that was waiting for its retry when the demo stopped runs again as a re-run: not counted.)
  let retried = 0;
  for await (const p of engine.partitions(s.id, { status: 'succeeded' })) if (p.result?.retry) retried++;
  const matches = recount.succeeded === s.succeeded && recount.failed === s.failed;
  const rows = [
    ['batch', s.id],
    ['status', s.status],
    ['total', s.total],
    ['succeeded', s.succeeded],
    ['failed', s.failed],
    ['duration', duration(s, resumed)],
    ['retried', `${retried} succeeded on a retry after a failed attempt`],
    ['errorSummary', s.errorSummary ?? '-'],
    [
      'recount',
      `${recount.succeeded} succeeded, ${recount.failed} failed (${matches ? 'matches' : 'DIFFERS'})`,
    ],
  ];
  console.log();
  for (const [name, value] of rows) console.log(`  ${name.padEnd(13)} ${value}`);

  const failed = [];
  for await (const p of engine.partitions(s.id, { status: 'failed' })) failed.push(p);
  if (failed.length === 0) return;
  const width = Math.max(...failed.map((p) => p.key.length));
  console.log(`\n  failed partitions (${failed.length}):`);
  console.log(`  ${'key'.padEnd(width)}  attempts  error`);
  for (const p of failed) {
    console.log(
      `  ${p.key.padEnd(width)}  ${String(p.attempts).padEnd(8)}  ${p.error?.code ?? p.error?.name}: ${p.error?.message}`,
    );
  }
}

function intFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}
