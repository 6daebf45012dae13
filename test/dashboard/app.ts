import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { createHandler, toNodeListener } from '../../src/http/index.js';
import { createEngine, defineJob, type Engine, memoryStore } from '../../src/index.js';
import { Gate } from './gate.js';

export const BASE_PATH = '/partita';

/** A running engine behind the real partita/http handler, on an ephemeral port of 127.0.0.1. */
export interface DashboardApp {
  engine: Engine;
  gate: Gate;
  /** `http://127.0.0.1:<port>/partita` */
  url: string;
  close(): Promise<void>;
}

/**
 * The job the dashboard test drives: one partition per key, each waiting at the gate; keys listed
 * in `fail` throw once through. Concurrency 1, so partitions settle in order, one per permit.
 */
function gatedJob(gate: Gate) {
  return defineJob({
    name: 'gated',
    input: z.object({ keys: z.array(z.string()), fail: z.array(z.string()).default([]) }),
    partition: ({ keys, fail }) => keys.map((key) => ({ key, payload: { key, fail: fail.includes(key) } })),
    handler: async (payload: { key: string; fail: boolean }, ctx) => {
      await gate.pass(ctx.signal);
      if (payload.fail) throw new Error(`${payload.key} was refused by the test`);
      return { key: payload.key };
    },
    concurrency: 1,
    // One partition per task: each waits for its own permit (a group would count its members only
    // once all of them passed the gate).
    batching: false,
  });
}

export async function startDashboardApp(): Promise<DashboardApp> {
  const gate = new Gate();
  const engine = createEngine({ jobs: [gatedJob(gate)], store: memoryStore(), logger: false });
  await engine.start();
  const handler = createHandler(engine, { basePath: BASE_PATH, metrics: false });
  const server = createServer(toNodeListener(handler));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    engine,
    gate,
    url: `http://127.0.0.1:${port}${BASE_PATH}`,
    async close() {
      // Event streams the page left open would keep server.close() waiting.
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await engine.stop();
    },
  };
}
