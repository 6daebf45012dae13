/**
 * The SQLite store's checkpointer (src/store/sqlite.ts, `startCheckpointer`), run in a worker
 * thread: copies the WAL back into the database file with a PASSIVE checkpoint every
 * `intervalMs`, on its own connection. A checkpoint syncs the WAL and the database file to disk;
 * in the engine's thread that held up every batch for milliseconds a few times per second (the
 * write that crossed `wal_autocheckpoint` paid for it). PASSIVE never waits for readers or the
 * writer, and the WAL stays as durable as before: checkpointing only moves committed pages.
 */
import { parentPort, workerData } from 'node:worker_threads';

const { path, intervalMs } = workerData as { path: string; intervalMs: number };
const { default: Database } = await import('better-sqlite3');
const db = new Database(path, { timeout: 0 });
let timer: NodeJS.Timeout | undefined;
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or failing: the engine's own connection still checkpoints past `wal_autocheckpoint`.
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
