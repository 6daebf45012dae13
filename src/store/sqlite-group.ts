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
 * With `handOver` (the engine's thread, whose connection does not wait for locks while a writer
 * thread runs): a group that fails, whether another connection holds the write lock or a write
 * failed, has written nothing and is answered 'again', for the writer thread to commit it (waiting
 * for the lock there, each write alone if the group fails again).
 */
export function commitGroup(
  s: Statements,
  writes: readonly SqliteWrite[],
  handOver: true,
): Settled[] | 'again';
export function commitGroup(
  s: Statements,
  writes: readonly SqliteWrite[],
  handOver?: true,
): Settled[] | 'again' {
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
  } catch {
    if (handOver) return 'again';
  }
  // Nothing of the group is stored: each write alone, as if there had been no group.
  return writes.map((w) => {
    try {
      return { ok: true, value: s.group.immediate(() => applyWrite(s, w)) };
    } catch (err) {
      return { ok: false, error: toStoreError('sqlite', err, 'statement failed') };
    }
  });
}
