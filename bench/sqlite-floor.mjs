// What SQLite alone costs a one-partition batch on this machine: the rows partita's SQLite store
// writes for it (the batch and its partition at submit, the lease at admission, the outcome and the
// final state at the end), written straight through better-sqlite3 on a file the store created (its
// schema, WAL, synchronous NORMAL, and its checkpoints: a PASSIVE one every 100 ms on a thread of its
// own, the writing connection's own only past 4,000 pages), with no engine around them. One row
// more checkpoints inline instead, as SQLite does by default (every 1,000 pages, on the connection
// whose commit crosses them): what this script measured before 2026-12-02, when it overstated the
// floor under the engine (by 15–30 % on the slow AMD EPYC). Grouped as the engine's group commit
// groups them: every write its own transaction, 1.5 transactions per batch (what one-partition
// batches submitted one after another get), one per batch, and four batches per transaction (a
// backlog with four running). The floor under `bench many` (docs/benchmarks.md, "Finalizing without
// an actor").
//
//   node bench/sqlite-floor.mjs          # SQLITE_FLOOR_N batches per row (20000), SQLITE_FLOOR_ROUNDS (3)
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { DIST_DIR, envInt, partita, printTable } from './lib/common.mjs';

const require = createRequire(join(DIST_DIR, 'index.js'));
const Database = require('better-sqlite3');

const n = envInt('SQLITE_FLOOR_N', 20_000);
const rounds = envInt('SQLITE_FLOOR_ROUNDS', 3);
const api = await partita();

const dir = mkdtempSync(join(tmpdir(), 'partita-sqlite-floor-'));
const path = join(dir, 'floor.db');
const store = api.sqliteStore({ path });
await store.open(); // the schema, as the store makes it
await store.close();
const db = new Database(path);
db.pragma('journal_mode = WAL');
db.pragma('synchronous = NORMAL');
/** As the store (src/store/sqlite.ts): its checkpointer thread, and the writer's own past 4,000 pages. */
const storeCheckpoints = async () => {
  db.pragma('wal_autocheckpoint = 4000');
  const thread = new Worker(join(DIST_DIR, 'store', 'sqlite-checkpointer.js'), {
    workerData: { path, intervalMs: 100 },
  });
  await new Promise((resolve, reject) => {
    thread.once('message', resolve);
    thread.once('error', reject);
  });
  return async () => {
    const exited = new Promise((resolve) => thread.once('exit', resolve));
    thread.postMessage('close');
    await exited;
  };
};

const insertBatch = db.prepare(
  `INSERT INTO batches (id, job, status, priority, created_at, record, creating, creator)
   VALUES (?, 'noop', 'QUEUED', 0, ?, ?, 0, 'floor') ON CONFLICT (id) DO NOTHING`,
);
const insertPartition = db.prepare(
  `INSERT INTO partitions (batch_id, idx, key, payload) VALUES (?, 0, 'only', '1')`,
);
const lease = db.prepare(
  `UPDATE batches SET lease_owner = 'floor', lease_epoch = lease_epoch + 1, lease_expires_at = ?
   WHERE id = ? RETURNING lease_epoch, status, journal_seq`,
);
const outcome = db.prepare(
  `UPDATE partitions SET status = 'succeeded', result = '1', attempts = 1, duration_ms = 0.1, seq = 1,
   finished_at = ? WHERE batch_id = ? AND idx = 0`,
);
const finalState = db.prepare(
  `UPDATE batches SET status = 'COMPLETED', state = ?, journal_seq = 1
   WHERE id = ? AND lease_owner = 'floor' AND lease_epoch = 1`,
);
// About the size of what the engine stores: a record and a final state of a one-partition batch.
const record = JSON.stringify({ schemaVersion: 1, job: 'noop', total: 1, priority: 0, after: [], meta: {} });
const state = JSON.stringify({ status: 'COMPLETED', journalSeq: 1, snapshot: { context: 'x'.repeat(700) } });

const create = (id) => {
  insertBatch.run(id, new Date().toISOString(), record);
  insertPartition.run(id);
};
const claim = (id) => lease.get(Date.now() + 30_000, id);
const end = (id) => {
  outcome.run(new Date().toISOString(), id);
  finalState.run(state, id);
};
const tx = (fn) => db.transaction(fn).immediate();

let seq = 0;
/** Time-ordered ids, as the engine makes them (submission.ts): rows land on the same pages. */
const ids = () =>
  Array.from(
    { length: n },
    () => `${Date.now().toString(16).padStart(12, '0')}-${String(seq++).padStart(12, '0')}`,
  );

/** One batch's writes, all three in the open transaction. */
const whole = (id) => {
  create(id);
  claim(id);
  end(id);
};

const oneTransactionPerBatch = (b) => {
  for (const id of b) tx(() => whole(id));
};
const patterns = [
  [
    'every write its own transaction',
    3,
    (b) => {
      for (const id of b) for (const write of [create, claim, end]) tx(() => write(id));
    },
  ],
  [
    'as submitted one after another',
    1.5,
    (b) => {
      for (let i = 0; i < b.length; i += 2) {
        tx(() => create(b[i]));
        tx(() => {
          claim(b[i]);
          end(b[i]);
          create(b[i + 1]);
        });
        tx(() => {
          claim(b[i + 1]);
          end(b[i + 1]);
        });
      }
    },
  ],
  ['one transaction per batch', 1, oneTransactionPerBatch],
  [
    'four batches per transaction',
    0.25,
    (b) => {
      for (let i = 0; i < b.length; i += 4)
        tx(() => {
          for (const id of b.slice(i, i + 4)) whole(id);
        });
    },
  ],
];

const stopCheckpoints = await storeCheckpoints();
const measure = (rows, what, perBatch, run, checkpoints) => {
  const us = [];
  for (let r = 0; r < rounds; r++) {
    const batch = ids();
    const t0 = performance.now();
    run(batch);
    us.push(((performance.now() - t0) * 1000) / n);
  }
  us.sort((a, b) => a - b);
  const median = us[Math.floor(us.length / 2)];
  rows.push({
    grouping: what,
    checkpoints,
    'transactions/batch': perBatch,
    'µs/batch (median)': median.toFixed(1),
    'µs/batch (range)': `${us[0].toFixed(1)}–${us.at(-1).toFixed(1)}`,
    'batches/s, SQLite alone': Math.round(1e6 / median),
  });
};
const rows = [];
for (const [what, perBatch, run] of patterns) measure(rows, what, perBatch, run, 'on a thread (the store)');
await stopCheckpoints();
db.pragma('wal_checkpoint(TRUNCATE)');
db.pragma('wal_autocheckpoint = 1000');
measure(rows, 'one transaction per batch', 1, oneTransactionPerBatch, 'inline (SQLite default)');
db.close();
rmSync(dir, { recursive: true, force: true });
printTable(
  `sqlite floor: the writes of a one-partition batch, no engine (${n} batches × ${rounds} rounds per row)`,
  [
    'grouping',
    'checkpoints',
    'transactions/batch',
    'µs/batch (median)',
    'µs/batch (range)',
    'batches/s, SQLite alone',
  ],
  rows,
);
