import { createRequire } from 'node:module';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  createEngine,
  defineJob,
  type Engine,
  postgresStore,
  type Store,
  sqliteStore,
} from '../src/index.js';
import { latch } from './helpers.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from './support/stores.js';

const require = createRequire(import.meta.url);

// A batch waiting on `after` whose stored record this version cannot read (written by a newer
// partita, or damaged) when its parent ends without the status it waited for: the engines that try
// to cancel it report it (onError, SNAPSHOT_VERSION or STORE) and leave its row as it is; the host's
// process goes on and so does every other batch. An outside probe saw the engine's process end on
// the unhandled rejection of that cancel (two engines on one PostgreSQL schema, 3 runs of 3).
const unreachable = await pgUnreachable('a dependent whose record cannot be read');

type Tamper = (id: string, change: 'newer' | 'damaged') => Promise<void>;
/** `reports`: the idle engine, told of D at once (LISTEN), tries to cancel it from the store and must report it. */
type Kind = { store: () => Store; tamper: Tamper; reports: boolean };

const kinds: Array<[string, () => Kind]> = [
  [
    'sqlite',
    () => {
      const path = sqlitePath();
      return {
        store: () => sqliteStore({ path }),
        // The idle engine finds D at a claim sweep, after the submitter (which holds D's record
        // from its submit) has cancelled it: nothing reads D's stored record to cancel it.
        reports: false,
        tamper: async (id, change) => {
          const Database = require('better-sqlite3');
          const db = new Database(path);
          db.pragma('busy_timeout = 5000');
          db.prepare(`UPDATE batches SET record = ? WHERE id = ?`).run(recordText(db, id, change), id);
          db.close();
        },
      };
    },
  ],
];
if (!unreachable)
  kinds.push([
    'postgres',
    () => {
      const schema = pgSchema();
      const table = `${pg.escapeIdentifier(schema)}.batches`;
      return {
        store: () => postgresStore({ connectionString: PG_URL, schema }),
        reports: true,
        tamper: async (id, change) => {
          const client = new pg.Client({ connectionString: PG_URL });
          await client.connect();
          try {
            const { rows } = await client.query(`SELECT record::text AS record FROM ${table} WHERE id = $1`, [
              id,
            ]);
            await client.query(`UPDATE ${table} SET record = $1 WHERE id = $2`, [
              changed(rows[0].record as string, change),
              id,
            ]);
          } finally {
            await client.end();
          }
        },
      };
    },
  ]);

function recordText(
  db: { prepare(sql: string): { get(...a: unknown[]): unknown } },
  id: string,
  change: 'newer' | 'damaged',
) {
  const row = db.prepare('SELECT record FROM batches WHERE id = ?').get(id) as { record: string };
  return changed(row.record, change);
}

function changed(record: string, change: 'newer' | 'damaged'): string {
  const parsed = JSON.parse(record) as Record<string, unknown>;
  return change === 'newer'
    ? JSON.stringify({ ...parsed, schemaVersion: 999 })
    : JSON.stringify({ schemaVersion: parsed.schemaVersion, id: parsed.id });
}

describe.each(kinds)(
  'a dependent whose record cannot be read, when its parent ends PARTIAL (%s)',
  (_kind, make) => {
    it.each([['newer', 'SNAPSHOT_VERSION'] as const, ['damaged', 'STORE'] as const])(
      'a %s record: whoever cannot read it reports it, leaves the record as it is, and goes on',
      async (change, code) => {
        const { store, tamper, reports } = make();
        const gate = latch();
        const job = defineJob({
          name: 'gated',
          partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
          handler: async (i: number, ctx) => {
            await gate.promise;
            if (ctx.batchId === 'P' && i === 0) throw new Error('the parent fails');
            return i;
          },
        });
        const heard: Array<{ code: unknown; batchId: string | undefined }> = [];
        let reported: () => void = () => {};
        const dependentReported = new Promise<void>((resolve) => {
          reported = resolve;
        });
        const engineOn = (): Engine =>
          createEngine({
            jobs: [job],
            store: store(),
            logger: false,
            claimIntervalMs: 50,
            onError: (err, batchId) => {
              heard.push({ code: (err as { code?: unknown }).code, batchId });
              if (batchId === 'D') reported();
            },
          });
        const idle = engineOn();
        const submitter = engineOn();
        await idle.start();
        await submitter.start();
        try {
          await submitter.submit(job, 2, { id: 'P' });
          await submitter.submit(job, 2, { id: 'D', after: ['P'] });
          await tamper('D', change);
          gate.open();
          expect((await submitter.wait('P')).status).toBe('PARTIAL');
          if (reports) {
            await dependentReported;
            expect(heard.filter((h) => h.batchId === 'D').map((h) => h.code)).toContain(code);
          }
          // Another batch runs to its end on either engine: nothing else stopped.
          const other = await idle.submit(job, 3, { id: 'other' });
          expect((await idle.wait(other.id)).status).toBe('COMPLETED');
        } finally {
          await submitter.stop();
          await idle.stop();
        }
        // The record is as the newer (or damaged) writer left it. The submitter, which holds D's
        // record from its own submit, may have cancelled it (its state); nothing rewrote the record.
        const reader = store();
        await reader.open();
        try {
          const row = await reader.loadBatch('D');
          expect(['QUEUED', 'CANCELLED']).toContain(row?.status);
          const record = (typeof row?.record === 'string' ? JSON.parse(row.record) : row?.record) as {
            schemaVersion?: unknown;
            job?: unknown;
          };
          if (change === 'newer') expect(record.schemaVersion).toBe(999);
          else expect(record.job).toBeUndefined();
        } finally {
          await reader.close();
        }
      },
      60_000,
    );
  },
);
