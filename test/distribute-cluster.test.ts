import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { postgresStore } from '../src/index.js';
import { PG_URL, pgSchema, pgUnreachable } from './support/stores.js';

// One batch on three engine processes (docs/scaling.md, "One batch on many hosts"): h0 submits it and
// owns it, all three run its ranges. A helper (h2) SIGKILLed while it holds ranges of a batch of
// 100,000; the owner (h0) SIGKILLed mid-batch, so that another host takes the batch over and
// withdraws the ranges h0 offered. Every partition ends with exactly one outcome, counted once, and
// the store shows which host ran each.

const script = fileURLToPath(new URL('./fixtures/distribute-host.mjs', import.meta.url));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) c.kill('SIGKILL');
});

function startHost(schema: string, name: string, submit?: number) {
  const args = [script, PG_URL, schema, name, ...(submit ? [String(submit)] : [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  let out = '';
  const seen = (text: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => out.includes(text) && resolve();
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        check();
      });
      child.on('exit', () => reject(new Error(`${name} exited before printing "${text}"`)));
      check();
    });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { child, seen, exited };
}

const pgDown = await pgUnreachable('one batch on three hosts');

/**
 * Wait until some answer that `host` ran is staged in the store (a condition, polled), failing at
 * once if the host exits first, and after a minute with what was seen.
 */
async function stagedBy(schema: string, host: string, exited: Promise<void>): Promise<void> {
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const { rows } = await client.query(
        `SELECT count(*)::int AS n FROM ${schema}.range_answers WHERE answer LIKE $1`,
        [`%"result":"${host}"%`],
      );
      if (rows[0].n > 0) return;
      if (gone) throw new Error(`${host} exited before staging any answer`);
      if (Date.now() > deadline) throw new Error(`${host} staged no answer within a minute`);
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await client.end();
  }
}

/** What a stalled batch looks like in the store: its status and lease, its ranges not answered. */
async function stateOf(schema: string, row: { status: string } | undefined): Promise<string> {
  const client = new pg.Client({ connectionString: PG_URL });
  await client.connect();
  try {
    const batch = await client.query(
      `SELECT status, lease_owner, lease_epoch, lease_expires_at FROM ${schema}.batches WHERE id = 'wide'`,
    );
    const open = await client.query(
      `SELECT r.id, r.owner_epoch, r.holder, r.hold_epoch, r.hold_expires_at, r.size,
         (SELECT count(*)::int FROM ${schema}.range_answers a WHERE a.range_id = r.id) AS staged
       FROM ${schema}.ranges r WHERE r.answered = 0 ORDER BY r.id LIMIT 20`,
    );
    const now = await client.query(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms`);
    return JSON.stringify({
      status: row?.status,
      batch: batch.rows[0],
      now: now.rows[0].ms,
      open: open.rows,
    });
  } finally {
    await client.end();
  }
}

const scenarios = [
  { name: 'a helper killed mid-range', partitions: 100_000, kill: 'h2', ranBy: ['h0', 'h1', 'h2'] },
  { name: 'the owner killed mid-batch', partitions: 20_000, kill: 'h0', ranBy: ['h1', 'h2'] },
] as const;

for (const scenario of scenarios)
  it.skipIf(pgDown !== undefined)(
    `one batch of ${scenario.partitions} partitions on three hosts, ${scenario.name}: every outcome once`,
    { timeout: 240_000 },
    async () => {
      // The test's own deadline for the batch's end, inside vitest's 240 s: a stall reports the store.
      const deadline = Date.now() + 220_000;
      const PARTITIONS = scenario.partitions;
      const schema = pgSchema();
      const store = postgresStore({ connectionString: PG_URL, schema });
      await store.open();
      // h0 submits and owns the batch: the others start once it runs there (started before, one of
      // them could claim it first, as QUEUED batches go to whichever engine has room).
      const h0 = startHost(schema, 'h0', PARTITIONS);
      await h0.seen('submitted');
      const h1 = startHost(schema, 'h1');
      const h2 = startHost(schema, 'h2');
      await Promise.all([h1.seen('ready'), h2.seen('ready')]);
      expect((await store.leaseOf('wide'))?.owner).toContain('/h0');
      const victim = { h0, h2 }[scenario.kill];
      // It has run 2,000 partitions: it holds ranges with members running and others queued.
      await victim.seen('ran 2000');
      // A helper's answers count once staged (at a range's end and at each renewal); what it ran
      // since is run again elsewhere. Killed once some are staged, so that its share must show.
      if (scenario.kill === 'h2') await stagedBy(schema, 'h2', victim.exited);
      victim.child.kill('SIGKILL');
      await victim.exited;
      try {
        for (;;) {
          const row = await store.loadBatch('wide');
          if (row && ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(row.status)) break;
          if (Date.now() > deadline)
            throw new Error(`the batch did not end in time: ${await stateOf(schema, row)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const row = await store.loadBatch('wide');
        const summary = (row!.state as { summary: { succeeded: number; failed: number } } | undefined)
          ?.summary;
        expect(row!.status).toBe('COMPLETED');
        expect(summary).toMatchObject({ succeeded: PARTITIONS, failed: 0 });
        expect(await store.countOutcomes('wide')).toEqual({ succeeded: PARTITIONS, failed: 0 });
        const split: Record<string, number> = {};
        let n = 0;
        for await (const p of store.partitions('wide')) {
          expect(p.status).toBe('succeeded');
          split[p.result as string] = (split[p.result as string] ?? 0) + 1;
          n++;
        }
        expect(n).toBe(PARTITIONS);
        console.log(
          `one batch on three hosts, ${scenario.kill} killed: outcomes by host ${JSON.stringify(split)}`,
        );
        for (const host of scenario.ranBy) expect(split[host]).toBeGreaterThan(0);
        if (scenario.kill === 'h0') expect((await store.leaseOf('wide'))?.owner).not.toContain('/h0');
        // Nothing of the batch is left offered or staged.
        expect(await store.ranges!.claim('probe', { jobs: ['wide'] }, 1, 10)).toEqual([]);
      } finally {
        await store.close();
      }
    },
  );
