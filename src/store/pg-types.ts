/**
 * What postgresStore uses of the `pg` package, as structural types of its own: the published
 * declarations name no type of `pg`, so a TypeScript project type-checks partita without @types/pg
 * (even with `skipLibCheck: false`), and a `pg.Pool` fits {@link PgPool} as it is.
 */

/** The result of a query: what the store reads of it. */
export interface PgResult {
  // biome-ignore lint/suspicious/noExplicitAny: rows are typed by each query (as pg does)
  rows: any[];
  rowCount: number | null;
}

export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<PgResult>;
}

/**
 * pg's query with a config object (`query_timeout` for one statement). A `pg.Pool` takes it; used
 * only when a read timeout applies (postgresStore's `queryTimeoutMs`).
 */
export interface PgTimedQueryable {
  query(config: { text: string; values?: unknown[] | undefined; query_timeout: number }): Promise<PgResult>;
}

/** A client checked out of a pool (a `pg.PoolClient`). */
export interface PgPoolClient extends PgQueryable {
  /** Back to the pool; `true` or an error destroys the connection instead. */
  release(destroy?: Error | boolean): void;
  /** 'notification': `{ channel, payload }` of a NOTIFY; 'error' and 'end': the connection is lost. */
  // biome-ignore lint/suspicious/noExplicitAny: one signature for pg's per-event listener types
  on(event: 'notification' | 'error' | 'end', listener: (arg: any) => void): unknown;
  // biome-ignore lint/suspicious/noExplicitAny: as `on`
  removeListener?(event: 'notification' | 'error' | 'end', listener: (arg: any) => void): unknown;
}

/** A pool of connections (a `pg.Pool`). */
export interface PgPool extends PgQueryable {
  connect(): Promise<PgPoolClient>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  end(): Promise<void>;
}

/** A quoted identifier. Only for names already checked to be plain identifiers (no quotes inside). */
export function quoteIdentifier(name: string): string {
  return `"${name}"`;
}
