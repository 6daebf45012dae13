import { existsSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statechartMarkdown } from '../../src/cli/graph.js';
import {
  type BatchSummary,
  createEngine,
  defineJob,
  type Engine,
  postgresStore,
  type Store,
  sqliteStore,
} from '../../src/index.js';
import { broken, echo, gated, gatedInput } from '../http/support.js';
import { PG_URL, pgSchema, pgUnreachable, sqlitePath } from '../support/stores.js';
import { LiveRun, partita, requireBuiltCli } from './run.js';

requireBuiltCli();

interface Kind {
  name: string;
  store: () => Store;
  /** The CLI's arguments that name this store. */
  args: string[];
}

const kinds: Kind[] = [];
{
  const path = sqlitePath();
  kinds.push({ name: 'sqlite', store: () => sqliteStore({ path }), args: ['--db', path] });
}
const pgReason = await pgUnreachable('the CLI tests');
if (!pgReason) {
  const schema = pgSchema();
  kinds.push({
    name: 'postgres',
    store: () => postgresStore({ connectionString: PG_URL, schema }),
    args: ['--pg', PG_URL, '--schema', schema],
  });
}

const json = <T>(text: string): T => JSON.parse(text) as T;

describe.each(kinds)('the CLI on $name', (kind) => {
  const stored: Record<string, BatchSummary> = {};
  const cli = (...args: string[]) => partita([...args, ...kind.args]);

  beforeAll(async () => {
    // Batches written by an engine that is gone by the time the CLI reads them.
    const engine = createEngine({ jobs: [echo, gated, broken], store: kind.store(), logger: false });
    await engine.start();
    stored.ok = await engine.wait((await engine.submit('echo', ['a', 'b'], { id: 'ok' })).id);
    stored.partial = await engine.wait(
      (await engine.submit('echo', ['a', 'fail', 'c', 'fail'], { id: 'partial' })).id,
    );
    stored.broken = await engine.wait((await engine.submit('broken', ['a'], { id: 'broken' })).id);
    const { latch, input } = gatedInput(3);
    await engine.submit('gated', input, { id: 'unfinished' });
    latch.release(1);
    await latch.arrived(2);
    stored.unfinished = await engine.get('unfinished');
    await engine.stop(); // leaves 'unfinished' PROCESSING in the store
  });

  it('list: newest first, filtered, as a table or JSON', async () => {
    const table = await cli('list');
    expect(table.code).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^ID\s+JOB\s+STATUS\s+PROGRESS/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(['unfinished', 'broken', 'partial', 'ok']);

    const all = json<BatchSummary[]>((await cli('list', '--json')).stdout);
    expect(all.map((s) => [s.id, s.status])).toEqual([
      ['unfinished', 'PROCESSING'],
      ['broken', 'FAILED'],
      ['partial', 'PARTIAL'],
      ['ok', 'COMPLETED'],
    ]);
    expect(all.find((s) => s.id === 'partial')).toMatchObject({ succeeded: 2, failed: 2, total: 4 });
    const filtered = json<BatchSummary[]>(
      (await cli('list', '--status', 'PARTIAL', '--status', 'failed', '--json')).stdout,
    );
    expect(filtered.map((s) => s.id)).toEqual(['broken', 'partial']);
    expect(
      json<BatchSummary[]>((await cli('list', '--job', 'echo', '--limit', '1', '--json')).stdout).map(
        (s) => s.id,
      ),
    ).toEqual(['partial']);
    expect((await cli('list', '--status', 'DONE')).code).toBe(2);
  });

  it('show: the stored summary, as the engine reported it', async () => {
    for (const id of ['ok', 'partial', 'broken']) {
      const run = await cli('show', id, '--json');
      expect(run.code).toBe(0);
      expect(json(run.stdout)).toEqual(JSON.parse(JSON.stringify(stored[id])));
    }
    const text = (await cli('show', 'partial')).stdout;
    expect(text).toMatch(/^id\s+partial$/m);
    expect(text).toMatch(/^status\s+PARTIAL$/m);
    expect(text).toMatch(/^failures\s+2 of 4 partitions failed$/m);
    expect(text).toMatch(/^\s+k1\s+Error: boom\s+attempts 1$/m);
    expect(json<BatchSummary>((await cli('show', 'unfinished', '--json')).stdout)).toMatchObject({
      status: 'PROCESSING',
      succeeded: 1,
    });
  });

  it('show: an unknown id is exit 1 with NOT_FOUND', async () => {
    const run = await cli('show', 'nope');
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/Batch "nope" not found/);
    const asJson = await cli('show', 'nope', '--json');
    expect(asJson.code).toBe(1);
    expect(json(asJson.stderr)).toEqual({ error: { code: 'NOT_FOUND', message: 'Batch "nope" not found' } });
  });

  it('partitions: in index order, filtered by status, results in JSON', async () => {
    const failed = json<Array<{ key: string; status: string; error: { message: string } }>>(
      (await cli('partitions', 'partial', '--status', 'failed', '--json')).stdout,
    );
    expect(failed.map((p) => [p.key, p.status, p.error.message])).toEqual([
      ['k1', 'failed', 'boom'],
      ['k3', 'failed', 'boom'],
    ]);
    const all = json<Array<{ index: number; result?: unknown }>>(
      (await cli('partitions', 'partial', '--json')).stdout,
    );
    expect(all.map((p) => p.index)).toEqual([0, 1, 2, 3]);
    expect(all[0]!.result).toEqual({ x: 'a' });
    const table = (await cli('partitions', 'partial', '--limit', '2')).stdout.trim().split('\n');
    expect(table).toHaveLength(3);
    expect(table[2]).toMatch(/^1\s+k1\s+failed\s+1\s+\d+\s+Error: boom$/);
    expect(json((await cli('partitions', 'ok', '--status', 'failed', '--json')).stdout)).toEqual([]);
    expect((await cli('partitions', 'nope')).code).toBe(1);
    expect((await cli('partitions', 'ok', '--status', 'broken')).code).toBe(2);
  });

  it('recount: the stored outcomes agree with the summary', async () => {
    const run = await cli('recount', 'partial', '--json');
    expect(run.code).toBe(0);
    expect(json(run.stdout)).toEqual({
      id: 'partial',
      total: 4,
      succeeded: 2,
      failed: 2,
      summary: { status: 'PARTIAL', total: 4, succeeded: 2, failed: 2 },
      matches: true,
    });
    expect((await cli('recount', 'ok')).stdout).toBe('total 2, succeeded 2, failed 0: the summary agrees\n');
    expect((await cli('recount', 'nope')).code).toBe(1);
    // A running batch's stored summary may lag its stored outcomes (never lead them): exit 0.
    const running = await cli('recount', 'unfinished');
    expect(running).toMatchObject({ code: 0 });
    expect(running.stdout).toBe(
      'total 3, succeeded 1, failed 0: the batch is PROCESSING: its stored summary (succeeded 1, failed 0) counts no outcome that is not stored, as it may lag them\n',
    );
  });

  it('watch: a final batch prints one line and exits 0', async () => {
    const plain = await cli('watch', 'partial');
    expect(plain).toMatchObject({ code: 0, stdout: 'PARTIAL 4/4 100% succeeded 2 failed 2 running 0\n' });
    const ndjson = await cli('watch', 'ok', '--json');
    expect(
      ndjson.stdout
        .trim()
        .split('\n')
        .map((l) => json<BatchSummary>(l).status),
    ).toEqual(['COMPLETED']);
  });

  it('watch: follows a batch an engine runs meanwhile, one line per change, until it is final', async () => {
    const engine: Engine = createEngine({ jobs: [echo, gated, broken], store: kind.store(), logger: false });
    await engine.start();
    try {
      const { latch, input } = gatedInput(4);
      await engine.submit('gated', input, { id: 'live' });
      await latch.arrived(2);
      const watching = new LiveRun(['watch', 'live', '--json', '--interval', '20', ...kind.args]);
      await watching.lineCount(1);
      expect(json<BatchSummary>(watching.lines[0]!)).toMatchObject({ status: 'PROCESSING', succeeded: 0 });
      latch.open();
      const run = await watching.exited;
      expect(run.code).toBe(0);
      const seen = watching.lines.map((l) => json<BatchSummary>(l));
      expect(seen.at(-1)).toMatchObject({ status: 'COMPLETED', succeeded: 4 });
      const settled = seen.map((s) => s.succeeded + s.failed);
      expect(settled).toEqual([...settled].sort((a, b) => a - b));
    } finally {
      await engine.stop();
    }
  });

  it('never creates a database that is not there', async () => {
    if (kind.name === 'sqlite') {
      const missing = join(sqlitePath(), '..', 'typo.db');
      const run = await partita(['list', '--db', missing]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/no partita database at/);
      expect(existsSync(missing)).toBe(false);
      // Some other SQLite file: refused, and left as it was.
      const other = join(sqlitePath(), '..', 'other.db');
      const db = new Database(other);
      db.exec('CREATE TABLE notes (text TEXT)');
      db.close();
      const refused = await partita(['list', '--db', other]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/not a partita database/);
      const after = new Database(other, { readonly: true });
      expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all()).toEqual([
        { name: 'notes' },
      ]);
      after.close();
      const empty = join(sqlitePath(), '..', 'empty.db');
      writeFileSync(empty, '');
      expect((await partita(['list', '--db', empty])).code).toBe(1);
      expect(statSync(empty).size).toBe(0);
    } else {
      const schema = pgSchema();
      const run = await partita(['list', '--pg', PG_URL, '--schema', schema]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/no partita tables in schema/);
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      const { rows } = await client.query(
        'SELECT 1 FROM information_schema.schemata WHERE schema_name = $1',
        [schema],
      );
      await client.end();
      expect(rows).toEqual([]);
    }
  });
});

describe('the CLI, whatever the store', () => {
  it('graph: the statecharts as Markdown with Mermaid, the same diagrams as docs/statechart.md', async () => {
    const doc = await partita(['graph']);
    expect(doc).toMatchObject({ code: 0, stdout: statechartMarkdown() });
    expect(doc.stdout).not.toContain('npm run graph'); // nothing about this repository
    const batch = await partita(['graph', '--machine', 'batch']);
    expect(batch.stdout).toMatch(/^stateDiagram-v2\n {2}\[\*\] --> queued\n/);
    const both = json<{ batch: string; partition: string }>((await partita(['graph', '--json'])).stdout);
    expect(doc.stdout).toContain(both.batch);
    expect(doc.stdout).toContain(both.partition);
  });

  it('usage errors exit 2; --help exits 0', async () => {
    for (const args of [
      [],
      ['bogus'],
      ['list', '--bogus'],
      ['show'],
      ['show', 'a', 'b'],
      ['list', '--reason', 'x'],
      ['cancel', 'x'],
      ['submit', 'echo', '--input', '[]'],
      ['list', '--db', 'a', '--pg', 'b'],
      ['list', '--schema', 's'],
      ['watch', 'x', '--interval', 'soon'],
      ['graph', '--machine', 'lane'],
      ['list', '--url', 'not-a-url'],
      // fetch() refuses credentials in a URL: a usage error, the password not shown.
      ['list', '--url', 'http://admin:s3cretPW@127.0.0.1:9/p'],
      // URLs that do not parse: what comes before an `@` is masked all the same.
      ['list', '--url', 'admin:s3cretPW@127.0.0.1:8080/p'],
      ['list', '--url', 'http://admin:s3cretPW@[::1/p'],
      ['list', '--pg', 'admin:s3cretPW@127.0.0.1:1/test', '--schema', 's'],
      // No URL names these batches (`/batches/.` is the list): refused before any request.
      ['show', '.', '--url', 'http://127.0.0.1:9/p'],
      ['watch', '..', '--url', 'http://127.0.0.1:9/p'],
      ['submit', 'echo', '--input', '{}', '--when', 'never', '--url', 'http://127.0.0.1:9/p'],
      ['list', '--pg', 'not a url', '--schema', 's'],
      ['list', '--pg', 'http://127.0.0.1:5432/test', '--schema', 's'],
    ]) {
      const run = await partita(args);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
      expect(run.stdout).toBe('');
      expect(run.stderr).not.toContain('s3cretPW');
    }
    const credentials = await partita(['list', '--url', 'http://admin:s3cretPW@127.0.0.1:9/p', '--json']);
    expect(json(credentials.stderr)).toEqual({
      error: { code: 'USAGE', message: expect.stringMatching(/admin:\*\*\*@.*PARTITA_TOKEN/) },
    });
    const usage = await partita(['cancel', 'x', '--json']);
    expect(json(usage.stderr)).toEqual({ error: { code: 'USAGE', message: expect.stringMatching(/--url/) } });
    const help = await partita(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^usage: partita <command>/);
    expect((await partita(['help', 'watch'])).stdout).toMatch(/^usage: partita watch <id>/);
    expect((await partita(['watch', '--help'])).code).toBe(0);
  });
});

describe('the CLI shows what anyone could have stored', () => {
  it('with control characters escaped: nothing reaches the terminal that could retitle, clear or reorder it', async () => {
    const path = sqlitePath();
    const hostile = '\x1b]0;PWNED\x07\x1b[2J\r\u202egnp.exe\u200b\x9b';
    const engine = createEngine({
      jobs: [
        defineJob({
          name: 'hostile',
          partition: (keys: string[]) => keys.map((key) => ({ key, payload: key })),
          handler: () => {
            throw new Error(`failed ${hostile}`);
          },
        }),
      ],
      store: sqliteStore({ path }),
      logger: false,
    });
    await engine.start();
    const id = `b${hostile}`;
    try {
      await engine.wait((await engine.submit('hostile', [`k${hostile}`], { id, meta: { m: hostile } })).id);
    } finally {
      await engine.stop();
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: what must not be printed.
    const unsafe = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200b\u202e]/;
    for (const args of [['list'], ['show', id], ['partitions', id], ['watch', id]]) {
      const run = await partita([...args, '--db', path]);
      expect({ args, code: run.code }).toEqual({ args, code: 0 });
      expect({ args, unsafe: unsafe.test(run.stdout + run.stderr) }).toEqual({ args, unsafe: false });
      if (args[0] !== 'watch') expect(run.stdout).toContain('\\u001b]0;PWNED\\u0007');
    }
    // JSON stays exact: the text as stored, escaped as JSON escapes it.
    const exact = await partita(['show', id, '--json', '--db', path]);
    expect(json<BatchSummary>(exact.stdout).id).toBe(id);
  });
});

afterAll(() => {
  if (pgReason) console.warn(`CLI tests ran without PostgreSQL: ${pgReason}`);
});
