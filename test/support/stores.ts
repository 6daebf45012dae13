import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, it } from 'vitest';
import { memoryStore, postgresStore, type Store, sqliteStore } from '../../src/index.js';

/** The PostgreSQL the tests use; required when CI=true, skipped with a printed reason elsewhere. */
export const PG_URL = process.env.PARTITA_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

async function probe(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Why PostgreSQL cannot be used here, or undefined. Under CI=true an unreachable server is a failing test. */
export async function pgUnreachable(what: string): Promise<string | undefined> {
  const reason = await probe();
  if (reason && process.env.CI === 'true')
    it('reaches PostgreSQL (required when CI=true)', () => {
      throw new Error(`PostgreSQL at ${PG_URL} is unreachable: ${reason}`);
    });
  else if (reason) console.warn(`Skipping ${what} on PostgreSQL: ${PG_URL} is unreachable (${reason})`);
  return reason;
}

const schemas: string[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  if (schemas.length === 0) return;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  for (const s of schemas.splice(0))
    await admin.query(`DROP SCHEMA IF EXISTS ${pg.escapeIdentifier(s)} CASCADE`);
  await admin.end();
});

/** A fresh SQLite file path, removed after the file's tests. */
export function sqlitePath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'partita-test-'));
  dirs.push(dir);
  return join(dir, 'partita.db');
}

/** A fresh PostgreSQL schema name, dropped after the file's tests. */
export function pgSchema(): string {
  const name = `partita_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  schemas.push(name);
  return name;
}

/** Each store kind as a factory of fresh, empty stores (postgres only when reachable). */
export async function storeKinds(what: string): Promise<Array<[string, () => Store]>> {
  const kinds: Array<[string, () => Store]> = [
    ['memory', () => memoryStore()],
    ['sqlite', () => sqliteStore({ path: sqlitePath() })],
  ];
  if (!(await pgUnreachable(what)))
    kinds.push(['postgres', () => postgresStore({ connectionString: PG_URL, schema: pgSchema() })]);
  return kinds;
}
