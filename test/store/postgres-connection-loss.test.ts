import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, defineJob, type PartitaError, postgresStore } from '../../src/index.js';
import { latch } from '../helpers.js';
import { PG_URL, pgSchema, pgUnreachable } from '../support/stores.js';

/**
 * PostgreSQL connections that go away under the store (found by an outside probe): a connection
 * lost while submit's transaction holds it must reject that submit with STORE, not end the host
 * process; a server that stops answering without closing the connection must fail statements
 * with STORE after `queryTimeoutMs`, so that `stop()` returns.
 */

const skip = await pgUnreachable('the connection-loss tests');

/** A TCP proxy to PostgreSQL that can stop passing bytes while keeping every socket open. */
async function blackHoleProxy(): Promise<{
  url: string;
  stopForwarding: () => void;
  close: () => Promise<void>;
}> {
  const target = new URL(PG_URL);
  let forwarding = true;
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port || 5432), target.hostname);
    sockets.push(client, upstream);
    client.on('data', (d) => forwarding && upstream.write(d));
    upstream.on('data', (d) => forwarding && client.write(d));
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => {});
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const url = new URL(PG_URL);
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    stopForwarding: () => {
      forwarding = false;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe.skipIf(skip)('postgres store: connections lost under it', () => {
  let admin: pg.Pool;
  beforeAll(() => {
    admin = new pg.Pool({ connectionString: PG_URL });
  });
  afterAll(async () => {
    await admin.end();
  });

  it("a connection lost during submit's transaction rejects that submit with STORE; the process and the engine go on", async () => {
    const app = `partita-conn-loss-${process.pid}`;
    const url = new URL(PG_URL);
    url.searchParams.set('application_name', app);
    const gate = latch();
    const job = defineJob({
      name: 'import',
      // Pauses between its partitions: the transaction that stores them stays open meanwhile.
      partition: async function* (n: number) {
        yield { key: 'first', payload: 0 };
        if (n > 1) await gate.promise;
        for (let i = 1; i < n; i++) yield { key: `k${i}`, payload: i };
      },
      handler: async (i: number) => i,
    });
    const errors: PartitaError[] = [];
    const engine = createEngine({
      jobs: [job],
      store: postgresStore({ connectionString: url.toString(), schema: pgSchema() }),
      logger: false,
      onError: (err) => errors.push(err as PartitaError),
    });
    await engine.start();
    try {
      const submitted = engine.submit('import', 5, { id: 'cut' });
      // Wait until its transaction holds a connection, idle while the source waits, then end it.
      let killed = 0;
      while (killed === 0) {
        const { rows } = await admin.query(
          `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
           WHERE application_name = $1 AND state = 'idle in transaction'`,
          [app],
        );
        killed = rows.length;
        if (killed === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      gate.open();
      await expect(submitted).rejects.toMatchObject({ code: 'STORE' });
      // Nothing of it was stored, and the engine takes the same id and other work as before.
      await expect(engine.get('cut')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await engine.submit('import', 1, { id: 'after' });
      expect(await engine.wait('after')).toMatchObject({ status: 'COMPLETED', succeeded: 1 });
      await engine.submit('import', 3, { id: 'cut' });
      expect(await engine.wait('cut')).toMatchObject({ status: 'COMPLETED', succeeded: 3 });
    } finally {
      await engine.stop();
    }
  });

  it('a server that stops answering: statements fail with STORE after queryTimeoutMs, and stop() returns', async () => {
    const proxy = await blackHoleProxy();
    const gate = latch();
    const job = defineJob({
      name: 'sync',
      partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: `k${i}`, payload: i })),
      handler: async (i: number) => {
        await gate.promise;
        return i;
      },
    });
    const errors: PartitaError[] = [];
    const sawStoreError = latch();
    const engine = createEngine({
      jobs: [job],
      store: postgresStore({
        connectionString: proxy.url,
        schema: pgSchema(),
        // Long enough for start() and submit() through the proxy on a busy machine, short for the test.
        queryTimeoutMs: 1500,
        connectTimeoutMs: 1500,
      }),
      logger: false,
      onError: (err) => {
        errors.push(err as PartitaError);
        if ((err as PartitaError).code === 'STORE') sawStoreError.open();
      },
    });
    try {
      await engine.start();
      await engine.submit('sync', 4, { id: 'b' });
      proxy.stopForwarding();
      gate.open(); // the outcomes now have to be written through a connection that never answers
      await sawStoreError.promise;
      expect(errors[0]?.message).toMatch(/timeout/i);
      await engine.stop();
    } finally {
      await proxy.close();
    }
  });

  it('takes queryTimeoutMs and connectTimeoutMs, whole milliseconds from 0', () => {
    expect(() => postgresStore({ queryTimeoutMs: 0, connectTimeoutMs: 5000 })).not.toThrow();
    for (const bad of [-1, 1.5, '100'])
      expect(() => postgresStore({ queryTimeoutMs: bad as number })).toThrow(
        expect.objectContaining({ code: 'VALIDATION' }),
      );
  });
});
