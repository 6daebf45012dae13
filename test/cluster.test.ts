import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { postgresStore, type Store } from '../src/index.js';
import { random } from './support/random.js';
import { PG_URL, pgSchema, pgUnreachable } from './support/stores.js';

// Three engine processes on one PostgreSQL schema (docs/scaling.md): batches submitted on one run
// on all three, each on one host at a time (the store's lease history says who held each batch
// when); a host SIGKILLed at a random moment costs no outcome and counts none twice, and its
// batches are taken over by the others while they run, within the lease's time + 1 s.

/** The hosts' `leaseTtlMs` (test/fixtures/cluster-host.mjs). */
const LEASE_TTL_MS = 1000;

const TRIALS = Number(process.env.CLUSTER_TRIALS ?? 20);
const BATCHES = 30;
const PARTS = 8;
const dir = mkdtempSync(join(tmpdir(), 'partita-cluster-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const script = fileURLToPath(new URL('./fixtures/cluster-host.mjs', import.meta.url));

interface Host {
  name: string;
  child: ChildProcess;
  ready: Promise<void>;
  exited: Promise<void>;
}

function startHost(schema: string, name: string, log: string, submits = 0): Host {
  const child = spawn(process.execPath, [script, PG_URL, schema, name, log, String(submits)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.on('error', reject);
  });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  return { name, child, ready, exited };
}

/** Resolves when every batch `c0..c{n-1}` is final in the store. */
async function allFinal(store: Store, n: number): Promise<void> {
  // A stuck batch fails the trial with the rows as they are, rather than hanging the suite.
  for (const deadline = Date.now() + 60_000; ; ) {
    if (Date.now() > deadline)
      throw new Error(
        `not all final: ${JSON.stringify((await store.listBatches({})).map((r) => [r.id, r.status]))}`,
      );
    const rows = await store.listBatches({});
    if (
      rows.length >= n &&
      rows.every((r) => ['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(r.status))
    )
      return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function trial(seed: number, kill: boolean) {
  const rnd = random(seed);
  const schema = pgSchema();
  const log = join(dir, `${schema}.log`);
  writeFileSync(log, '');
  const store = postgresStore({ connectionString: PG_URL, schema });
  const hosts = [
    startHost(schema, 'h0', log, BATCHES),
    startHost(schema, 'h1', log),
    startHost(schema, 'h2', log),
  ];
  try {
    await Promise.all(hosts.map((h) => h.ready));
    await store.open();
    let killed: Host | undefined;
    let killedAt = 0;
    if (kill) {
      // A random host at a random moment: while batches are being submitted, run or finalized.
      killed = hosts[Math.floor(rnd() * hosts.length)]!;
      const target = killed;
      await new Promise((r) => setTimeout(r, Math.floor(rnd() * 700)));
      killedAt = Date.now();
      target.child.kill('SIGKILL');
      await target.exited;
    }
    // h0 may have been killed before it submitted them all: then the batches that exist must end.
    const submitted = killed?.name === 'h0' ? (await store.listBatches({})).length : BATCHES;
    await allFinal(store, submitted);
    const rows = await store.listBatches({});
    const takeovers: number[] = [];
    const ran = new Map<string, string[]>();
    for (const line of readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
      const [host, batch] = line.split(' ');
      ran.set(batch!, [...(ran.get(batch!) ?? []), host!]);
    }
    for (const row of rows) {
      expect(row.status, `${row.id} (seed ${seed})`).toBe('COMPLETED');
      // Every partition counted exactly once: the stored outcomes are the partitions, and the
      // summary's counts are theirs.
      expect(await store.countOutcomes(row.id)).toEqual({ succeeded: PARTS, failed: 0 });
      const summary = (row.state as { summary: { succeeded: number; failed: number } }).summary;
      expect(summary).toMatchObject({ succeeded: PARTS, failed: 0 });
      // Who held the batch when: one host, or the killed host and then, after the kill, one other
      // that took it over within the lease's time + 1 s. Every host that ran a partition held it.
      const history = await store.leaseHistory!(row.id);
      const holders = [...new Set(history.map((h) => h.owner.split('/')[2]!))];
      for (const host of new Set(ran.get(row.id)))
        expect(holders, `${row.id} (seed ${seed})`).toContain(host);
      if (holders.length > 1) {
        expect(holders, `${row.id} (seed ${seed})`).toHaveLength(2);
        expect(holders[0]).toBe(killed?.name);
        const taken = history.find((h) => !h.owner.endsWith(`/${killed!.name}`))!;
        const lastOfKilled = history.filter((h) => h.owner.endsWith(`/${killed!.name}`)).at(-1)!;
        // A batch the dead host held at the kill: taken over at most a lease's time + 1 s later.
        if (lastOfKilled.takenAt <= killedAt) takeovers.push(taken.takenAt - killedAt);
      }
      const hostsOf = new Set(ran.get(row.id));
      // One host ran the batch, or two when its first host was the one killed (a takeover).
      if (!killed || !hostsOf.has(killed.name))
        expect(hostsOf.size, `${row.id} ran on ${[...hostsOf]}`).toBe(1);
      else expect(hostsOf.size).toBeLessThanOrEqual(2);
    }
    const spread = new Set(rows.flatMap((r) => ran.get(r.id) ?? []));
    // Batches the killed host had started and another host finished.
    const takenOver = rows.filter((r) => new Set(ran.get(r.id)).size === 2).length;
    for (const ms of takeovers)
      expect(ms, `takeover (seed ${seed})`).toBeLessThanOrEqual(LEASE_TTL_MS + 1000);
    return { submitted, spread, takenOver, takeovers };
  } finally {
    for (const h of hosts) h.child.kill('SIGKILL');
    await Promise.all(hosts.map((h) => h.exited));
    await store.close();
  }
}

const unreachable = await pgUnreachable('the cluster tests');
describe.skipIf(unreachable !== undefined)('three engine processes on one PostgreSQL schema', () => {
  it('30 batches submitted on one host run on all three, each on one host, every outcome once', async () => {
    const { submitted, spread } = await trial(1, false);
    expect(submitted).toBe(BATCHES);
    expect(spread).toEqual(new Set(['h0', 'h1', 'h2']));
  }, 120_000);

  it(`${TRIALS} seeded trials: one host SIGKILLed at a random moment; every batch ends, each outcome once`, async () => {
    let takenOver = 0;
    const takeovers: number[] = [];
    for (let seed = 100; seed < 100 + TRIALS; seed++) {
      const t = await trial(seed, true);
      takenOver += t.takenOver;
      takeovers.push(...t.takeovers);
    }
    // The kills landed mid-work: batches were taken over from the dead host while the others ran.
    console.log(
      `cluster trials: ${TRIALS}, batches taken over from a killed host: ${takenOver}, ` +
        `kill → lease taken by another host: max ${Math.max(...takeovers)} ms over ${takeovers.length}`,
    );
    expect(takenOver).toBeGreaterThan(0);
  }, 600_000);
});
