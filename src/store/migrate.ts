import { SnapshotVersionError } from '../errors.js';

/** What the migration runner needs of a database: one exclusive transaction at a time. */
export interface MigrationSession {
  /** Starts a transaction that excludes every other migrator of the same database until it ends. */
  begin(): Promise<void>;
  /** How many migrations the database has applied (0 for a new one). */
  applied(): Promise<number>;
  /** Runs migration `id` (1-based) and records it as applied. */
  apply(id: number, sql: string): Promise<void>;
  commit(): Promise<void>;
  /** Ends the transaction after a failure; never throws. */
  rollback(): Promise<void>;
}

/**
 * Applies the missing migrations, each in its own transaction: two processes that open one database
 * at once apply each migration exactly once, and a failed migration leaves the ones before it in
 * place. A database that has applied more migrations than this code knows was written by a newer
 * partita and is refused (SNAPSHOT_VERSION), untouched.
 */
export async function runMigrations(session: MigrationSession, migrations: readonly string[]): Promise<void> {
  const latest = migrations.length;
  for (let done = -1; done < latest; ) {
    await session.begin();
    try {
      done = checked(await session.applied(), latest);
      if (done < latest) await session.apply(done + 1, migrations[done]!);
      await session.commit();
    } catch (err) {
      await session.rollback();
      throw err;
    }
  }
}

/** A {@link MigrationSession} whose driver answers at once (better-sqlite3). */
export type SyncMigrationSession = {
  [K in keyof MigrationSession]: (
    ...args: Parameters<MigrationSession[K]>
  ) => Awaited<ReturnType<MigrationSession[K]>>;
};

/**
 * {@link runMigrations} for a driver that answers at once: each transaction runs whole, in one go.
 * Across an `await`, other code of this process ran while the write lock was held; another
 * connection of the process to the same file (another store, or a store's writer) then waited for
 * the lock in its busy handler, which blocks the thread that would release it: the write failed
 * with "database is locked" after the busy timeout.
 */
export function runMigrationsSync(session: SyncMigrationSession, migrations: readonly string[]): void {
  const latest = migrations.length;
  for (let done = -1; done < latest; ) {
    session.begin();
    try {
      done = checked(session.applied(), latest);
      if (done < latest) session.apply(done + 1, migrations[done]!);
      session.commit();
    } catch (err) {
      session.rollback();
      throw err;
    }
  }
}

/** How many migrations the database has applied; more than this code knows is a newer partita's. */
function checked(done: number, latest: number): number {
  if (done > latest) throw new SnapshotVersionError(done, latest, 'database schema');
  return done;
}
