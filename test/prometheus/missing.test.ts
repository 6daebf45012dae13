import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { requireBuiltCli } from '../cli/run.js';

// Without prom-client (an optional peer dependency): the built package in a directory whose
// node_modules has everything but prom-client.
requireBuiltCli();
const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'partita-no-prom-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function withoutPromClient(): void {
  cpSync(join(root, 'dist'), join(dir, 'dist'), { recursive: true });
  cpSync(join(root, 'package.json'), join(dir, 'package.json'));
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name === 'prom-client' || name === '.bin') continue;
    symlinkSync(join(root, 'node_modules', name), join(modules, name));
  }
}

it('registerMetrics says to install prom-client, and GET /metrics is a 404 saying so while the API works', async () => {
  withoutPromClient();
  writeFileSync(
    join(dir, 'probe.mjs'),
    `import { createEngine, memoryStore } from './dist/index.js';
import { registerMetrics } from './dist/prometheus/index.js';
import { createHandler } from './dist/http/index.js';
const engine = createEngine({ jobs: [], store: memoryStore(), logger: false });
try { registerMetrics(engine); } catch (err) { console.log(err.code, err.message); }
await engine.start();
const handler = createHandler(engine);
const metrics = await handler(new Request('http://x/metrics'));
console.log(metrics.status, (await metrics.json()).detail);
console.log((await handler(new Request('http://x/batches'))).status);
await engine.stop();
`,
  );
  const out = await new Promise<string>((resolve, reject) =>
    execFile(process.execPath, ['probe.mjs'], { cwd: dir }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
  const [registered, scraped, listed] = out.trim().split('\n');
  expect(registered).toMatch(
    /^VALIDATION partita\/prometheus needs the "prom-client" package.*npm install prom-client/,
  );
  expect(scraped).toMatch(/^404 Metrics are not available: .*install prom-client/);
  expect(listed).toBe('200');
});
