// Watch a batch in the Stately inspector: the batch actor, its lanes running the partition
// statechart, and every event between them (docs/inspector.md).
//
//   npm run build
//   node examples/inspect/main.mjs           hosted inspector (Stately Sky): prints a link to open
//   node examples/inspect/main.mjs --local   local relay on ws://localhost:8080; opens the browser
//   node examples/inspect/main.mjs --local --no-open     the same, you open http://localhost:8080
//
// INSPECT_LINGER_MS (default 30000): how long to keep the inspector connected after the batch ends.
import { createSkyInspector, createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import { createEngine, defineJob, memoryStore } from 'partita';

const local = process.argv.includes('--local');
const port = Number(process.env.INSPECT_PORT ?? 8080);
const lingerMs = Number(process.env.INSPECT_LINGER_MS ?? 30_000);

let server;
let inspector;
if (local) {
  // A relay in this process: the page at http://localhost:<port> embeds the Stately inspector and
  // forwards what this inspector sends over the WebSocket.
  server = createInspectorServer({ port, autoOpen: !process.argv.includes('--no-open') });
  inspector = createWebSocketInspector({ url: `ws://localhost:${port}` });
  console.log(`inspector: http://localhost:${port}`);
} else {
  // Prints "Connected to Sky, link to your live inspect session:" and the link, once connected.
  inspector = createSkyInspector({ onerror: (err) => console.error('inspector:', err?.message ?? err) });
}

const inspectDemo = defineJob({
  name: 'inspect-demo',
  partition: () =>
    Array.from({ length: 8 }, (_, i) => ({
      key: `part-${i}`,
      payload: { ms: 400 + 150 * (i % 3), fail: i === 3 ? 'once' : i === 6 ? 'always' : undefined },
    })),
  worker: new URL('./work.worker.mjs', import.meta.url),
  retry: { attempts: 2, backoffMs: 500 },
  concurrency: 3,
  finalize: (summary) => `${summary.succeeded} partitions processed`,
});

const engine = createEngine({
  jobs: [inspectDemo],
  store: memoryStore(),
  logger: false,
  workers: { maxThreads: 3 },
  // Every actor of every batch reports to the inspector.
  inspect: inspector.inspect,
});
await engine.start();

// Give the inspector a moment to connect, so it sees the batch from its first event (events sent
// before are buffered by the inspector anyway).
await new Promise((resolve) => setTimeout(resolve, local ? 1500 : 3000));

const batch = await engine.submit('inspect-demo', {});
console.log(`batch ${batch.id}: ${batch.total} partitions, 3 lanes`);
const summary = await engine.wait(batch.id);
console.log(
  `${summary.status}: ${summary.succeeded} succeeded, ${summary.failed} failed (${summary.errorSummary ?? 'no failures'})`,
);
console.log(`output: ${summary.output}`);

await engine.stop();
if (lingerMs > 0) {
  console.log(`keeping the inspector connected for ${lingerMs / 1000} s (Ctrl-C to quit)`);
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, lingerMs);
    process.once('SIGINT', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
inspector.stop();
server?.stop();
process.exit(0);
