import { existsSync, statSync } from 'node:fs';
import { NotFoundError, StoreError, toError } from '../errors.js';
import { parseRecord } from '../runtime/records.js';
import { listedSummary, summaryFromRow } from '../runtime/views.js';
import { postgresStore } from '../store/postgres.js';
import { sqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { UsageError } from './args.js';
import { redact } from './redact.js';
import type { Source } from './source.js';

/**
 * A store read directly, with no engine running: the summaries are the ones the engine last
 * stored (it saves a running batch's state at every status change, and with a group of outcomes
 * at most every 100 ms). Only the store's read methods are called.
 *
 * A store's open() creates what is missing and runs migrations, so a database that does not exist
 * is refused here first: a typo in `--db` or `--schema` fails with a clear message instead of
 * creating an empty database. (Opening a database written by an older partita migrates it, as any
 * engine would; one written by a newer partita is refused.)
 */
export async function openStoreSource(
  options: { db: string } | { pg: string; schema: string },
): Promise<Source> {
  let store: Store;
  let name: string;
  if ('pg' in options) {
    // pg reads a string that is no URL as a host name ("getaddrinfo ENOTFOUND base").
    if (!URL.canParse(options.pg) || !/^(postgres(ql)?|socket):$/.test(new URL(options.pg).protocol))
      throw new UsageError(`--pg must be a postgres:// (or socket:) URL, not "${redact(options.pg)}"`);
    await requirePgSchema(options.pg, options.schema);
    store = postgresStore({ connectionString: options.pg, schema: options.schema });
    name = `postgres schema ${options.schema}`;
  } else {
    await requireSqliteFile(options.db);
    store = sqliteStore({ path: options.db });
    name = `sqlite ${options.db}`;
  }
  await store.open();
  const load = async (id: string) => {
    const row = await store.loadBatch(id);
    if (!row) throw new NotFoundError(id);
    return row;
  };
  return {
    name,
    async list({ status, job, limit }) {
      const rows = await store.listBatches({ status, job, limit });
      return rows.map((row) => listedSummary(row, undefined));
    },
    async get(id) {
      return summaryFromRow(await load(id));
    },
    async *partitions(id, filter) {
      await load(id);
      yield* store.partitions(id, filter);
    },
    async recount(id) {
      const record = parseRecord(await load(id));
      return { total: record.total, ...(await store.countOutcomes(id)) };
    },
    close: () => store.close(),
  };
}

async function requireSqliteFile(path: string): Promise<void> {
  if (path === ':memory:' || !existsSync(path) || !statSync(path).isFile())
    throw new StoreError(`no partita database at ${path} (give its path with --db PATH, or --pg URL)`);
  // Read-only and without creating anything: is this a partita database at all?
  const Database = (await import('better-sqlite3')).default;
  let db: InstanceType<typeof Database> | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    const table = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'batches'")
      .get();
    if (!table) throw new StoreError(`${path} is not a partita database (it has no batches table)`);
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot read ${path}: ${toError(err).message}`, err);
  } finally {
    db?.close();
  }
}

async function requirePgSchema(url: string, schema: string): Promise<void> {
  let pg: typeof import('pg');
  try {
    pg = (await import('pg')).default as unknown as typeof import('pg');
  } catch (err) {
    throw new StoreError(
      '--pg needs the "pg" package, which is not installed: install pg (npm install pg)',
      err,
    );
  }
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  try {
    await client.connect();
    const { rows } = await client.query<{ t: string | null }>(
      'SELECT to_regclass(quote_ident($1) || $2) AS t',
      [schema, '.batches'],
    );
    if (!rows[0]?.t)
      throw new StoreError(
        `no partita tables in schema "${schema}" of ${redact(url)} (give it with --schema)`,
      );
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot read PostgreSQL at ${redact(url)}: ${toError(err).message}`, err);
  } finally {
    await client.end().catch(() => {});
  }
}
