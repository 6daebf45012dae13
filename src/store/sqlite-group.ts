import { LeaseLostError } from '../errors.js';
import { toStoreError } from './sql-rows.js';
import { applyWrite, type SqliteWrite, type Statements } from './sqlite-statements.js';

/** How one write of a group ended: its answer, or its error (a PartitaError). */
export type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** Most writes committed in one group transaction: bounds how long one holds the lock. */
export const MAX_GROUP = 256;

/**
 * Group commit: the writes in one IMMEDIATE transaction, in order. On SQLite a transaction's fixed
 * cost (the lock, the WAL header and index) weighs on the statements of a small batch.
 *
 * A write that the store refuses for a stale fence (LEASE_LOST) is refused before it has written
 * anything, so it is left out alone and the others commit. Any other error rolls the whole group
 * back, and each of its writes is then run again in a transaction of its own: each settles as it
 * would have without the group (no savepoints: SQLite copies every page a savepoint touches to a
 * sub-journal, which cost more than the group saved).
 */
export function commitGroup(s: Statements, writes: readonly SqliteWrite[]): Settled[];
/**
 * With `waiting`: `s` is a connection with no busy timeout (the engine's thread's own, for its
 * groups). When another connection holds the write lock, nothing is written and 'busy' is
 * answered at once, for the caller to commit the group where waiting blocks nobody (the writer
 * thread). A group that fails otherwise is written again a write at a time on `waiting`.
 */
export function commitGroup(
  s: Statements,
  writes: readonly SqliteWrite[],
  waiting: Statements,
): Settled[] | 'busy';
export function commitGroup(
  s: Statements,
  writes: readonly SqliteWrite[],
  waiting?: Statements,
): Settled[] | 'busy' {
  const settled: Settled[] = new Array(writes.length);
  try {
    s.group.immediate(() => {
      for (let i = 0; i < writes.length; i++) {
        try {
          settled[i] = { ok: true, value: applyWrite(s, writes[i]!) };
        } catch (err) {
          if (!(err instanceof LeaseLostError)) throw err;
          settled[i] = { ok: false, error: err };
        }
      }
    });
    return settled;
  } catch (err) {
    // BEGIN IMMEDIATE is the only statement that meets another connection's write lock (in WAL
    // mode nothing after it waits for one): the group has written nothing.
    if (waiting && isBusy(err)) return 'busy';
  }
  // Nothing of the group is stored: each write alone, as if there had been no group.
  const alone = waiting ?? s;
  return writes.map((w) => {
    try {
      return { ok: true, value: alone.group.immediate(() => applyWrite(alone, w)) };
    } catch (err) {
      return { ok: false, error: toStoreError('sqlite', err, 'statement failed') };
    }
  });
}

function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}
