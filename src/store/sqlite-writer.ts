/**
 * The SQLite store's writer thread (src/store/sqlite.ts, "Writer thread"): the only connection that
 * writes. The engine's thread sends groups of writes (src/store/sqlite-statements.ts) and awaits
 * their ends; this thread commits each group in one transaction (src/store/sqlite-group.ts) and
 * answers once it has committed. The B-tree work and the WAL appends, most of a small batch's
 * cost on SQLite, run here, in parallel with the engine's own work, and a lock held by another
 * process blocks this thread instead of the engine's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { creatorIsGone } from './creators.js';
import { commitGroup } from './sqlite-group.js';
import { prepare, type SqliteDb, type SqliteWrite } from './sqlite-statements.js';
import { toWire } from './sqlite-wire.js';

export interface WriterData {
  path: string;
  creator: string;
  synchronous: 'NORMAL' | 'FULL';
  busyTimeoutMs: number;
  walAutocheckpoint: number | undefined;
  /** `journal_size_limit`: the WAL is cut back to this when this connection starts it over. */
  walSizeLimit: number;
}

/** A group to commit. `live`: the ids live in the engine's process (a thread has its own registry). */
export interface WriterRequest {
  writes: SqliteWrite[];
  live: string[];
}

const port = parentPort!;
const data = workerData as WriterData;
try {
  const { default: Database } = await import('better-sqlite3');
  const db = new Database(data.path, { timeout: data.busyTimeoutMs });
  db.pragma(`synchronous = ${data.synchronous}`);
  db.pragma(`busy_timeout = ${data.busyTimeoutMs}`);
  db.pragma(`journal_size_limit = ${data.walSizeLimit}`);
  if (data.walAutocheckpoint !== undefined) db.pragma(`wal_autocheckpoint = ${data.walAutocheckpoint}`);
  let live = new Set<string>();
  const s = prepare(db as unknown as SqliteDb, data.creator, (creator) => creatorIsGone(creator, live));
  port.on('message', (message: WriterRequest | 'close') => {
    if (message === 'close') {
      db.close();
      port.close();
      return;
    }
    live = new Set(message.live);
    port.postMessage(commitGroup(s, message.writes).map(toWire));
  });
  port.postMessage('ready');
} catch (err) {
  port.postMessage({ failed: err instanceof Error ? err.message : String(err) });
  port.close();
}
