/**
 * The SQLite store's checkpointer (src/store/sqlite.ts, `startCheckpointer`), run in a worker
 * thread: copies the WAL back into the database file with a PASSIVE checkpoint every
 * `intervalMs`, on its own connection. A checkpoint syncs the WAL and the database file to disk;
 * in the engine's thread that held up every batch for milliseconds a few times per second (the
 * write that crossed `wal_autocheckpoint` paid for it). PASSIVE never waits for readers or the
 * writer, and the WAL stays as durable as before: checkpointing only moves committed pages.
 *
 * A checkpoint that copied the whole WAL is followed by a write of this thread's own, which starts
 * the WAL over: the first write into a WAL started over syncs its new header to disk first (even
 * at `synchronous = NORMAL`), and left to the engine's thread that fsync fell on whichever commit
 * came next, most often a batch's final one after a pause in the work (5–15 ms on a slow disk:
 * docs/benchmarks.md, "The WAL started over off the engine's thread").
 */
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs, walSizeLimit } = workerData as {
  path: string;
  intervalMs: number;
  walSizeLimit: number;
};
const { default: Database } = await import('better-sqlite3');
const db = new Database(path, { timeout: 0 });
// Its start-over write cuts a WAL that a burst grew back to this size (src/store/sqlite.ts, WAL_SIZE_LIMIT).
db.pragma(`journal_size_limit = ${walSizeLimit}`);
let timer: NodeJS.Timeout | undefined;
interface CheckpointResult {
  busy: number;
  log: number;
  checkpointed: number;
}
/** Starts the WAL over with a one-page write of the header's `user_version`, its value unchanged. */
const startOver = db.transaction(() => {
  db.pragma(`user_version = ${Number(db.pragma('user_version', { simple: true }))}`);
});
/** The WAL holds the start-over write alone (until another write joins it). */
let startedOver = false;
const checkpoint = () => {
  try {
    // Copying the start-over write alone would only start the cycle again.
    const alone = startedOver && (db.pragma('wal_checkpoint(NOOP)') as CheckpointResult[])[0]!.log <= 1;
    if (!alone) {
      startedOver = false;
      const [done] = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointResult[];
      if (done && done.busy === 0 && done.log > 0 && done.checkpointed === done.log) {
        startOver.immediate();
        startedOver = true;
      }
    }
  } catch {
    // Busy or failing: the engine's own connection still checkpoints past `wal_autocheckpoint`,
    // and the next write starts the WAL over itself.
  }
  timer = setTimeout(checkpoint, intervalMs);
};
timer = setTimeout(checkpoint, intervalMs);
parentPort!.on('message', (message) => {
  if (message !== 'close') return;
  clearTimeout(timer);
  db.close();
  parentPort!.close();
});
parentPort!.postMessage('ready');
