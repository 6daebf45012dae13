/**
 * The package as a user gets it: `npm pack` (its prepack builds dist/ afresh), then three consumer
 * projects install the tarball from npm as any project would and use it:
 *
 * - an ES module project, with pg installed: runs a batch to COMPLETED, and with `memoryStore()`
 *   loads neither better-sqlite3's native addon nor pg;
 * - a CommonJS project without pg: `require('partita')` (Node's require of ES modules) runs a batch;
 * - a TypeScript project (`nodenext`, `strict`, `skipLibCheck: false`, no `@types/pg`): type-checks
 *   with this repository's TypeScript, and its compiled ES module and CommonJS outputs run.
 *
 * The pack runs in a copy of the repository (its node_modules linked), so its prepack's
 * `rm -rf dist` never pulls dist/ from under the other test files running meanwhile.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const rootPackage = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  devDependencies: Record<string, string>;
};
/** What is not copied for the pack: installed, built, generated or local files. */
const NOT_COPIED = new Set(['node_modules', '.git', 'dist', '.partita', 'coverage']);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command; resolves with its exit code and output whatever the code. */
function run(file: string, args: string[], cwd: string, timeoutMs = 180_000): Promise<Run> {
  // Not the npm_* variables of an enclosing `npm test`: each npm below reads its own project.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('npm_')));
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd, env, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(new Error(`${file} ${args.join(' ')} failed in ${cwd}: ${err.message}\n${stderr}`));
        return;
      }
      resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
    });
  });
}

function npm(args: string[], cwd: string): Promise<Run> {
  return run(process.platform === 'win32' ? 'npm.cmd' : 'npm', args, cwd);
}

function node(args: string[], cwd: string): Promise<Run> {
  return run(process.execPath, args, cwd, 60_000);
}

/**
 * `npm install` from the registry, without install scripts: better-sqlite3's would download its
 * prebuilt addon from GitHub or compile it with headers from nodejs.org, neither of which this
 * test may count on reaching. The consumers use memoryStore(); see `lendSqliteAddon`.
 */
async function install(cwd: string, specs: string[]): Promise<void> {
  const r = await npm(
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--ignore-scripts',
      '--loglevel=error',
      ...specs,
    ],
    cwd,
  );
  if (r.code !== 0) throw new Error(`npm install in ${cwd} failed (${r.code}):\n${r.stdout}\n${r.stderr}`);
}

/**
 * Gives a consumer's better-sqlite3 the addon this repository built, when the versions match, so that
 * loading it would succeed and show in the process's shared objects rather than throw. Returns
 * whether it could.
 */
function lendSqliteAddon(consumer: string): boolean {
  const ours = join(root, 'node_modules', 'better-sqlite3');
  const theirs = join(consumer, 'node_modules', 'better-sqlite3');
  const version = (dir: string) =>
    (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
  if (!existsSync(join(ours, 'build')) || version(ours) !== version(theirs)) return false;
  cpSync(join(ours, 'build'), join(theirs, 'build'), { recursive: true });
  return true;
}

function project(dir: string, files: Record<string, string>): void {
  mkdirSync(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
}

const JOB = `
const squares = defineJob({
  name: 'squares',
  partition: (n) => Array.from({ length: n }, (_, i) => ({ key: 'n' + i, payload: i })),
  handler: async (i) => i * i,
});`;

const ESM_CONSUMER = `import { createRequire } from 'node:module';
import { createEngine, defineJob, memoryStore } from 'partita';
${JOB}
const engine = createEngine({ jobs: [squares], store: memoryStore(), logger: false });
await engine.start();
const summary = await engine.wait((await engine.submit(squares, 4)).id);
const results = [];
for await (const p of engine.partitions(summary.id)) results.push(p.result);
await engine.stop();

// What this process loaded: native addons, and CommonJS modules (ES imports of them land here too).
const addons = process.report.getReport().sharedObjects.filter((f) => f.endsWith('.node'));
const modules = Object.keys(createRequire(import.meta.url).cache);
console.log(JSON.stringify({
  status: summary.status,
  results,
  sqliteAddon: addons.filter((f) => f.includes('better_sqlite3')),
  pg: modules.filter((f) => f.includes('/node_modules/pg/')),
}));
`;

const CJS_CONSUMER = `const { createEngine, defineJob, memoryStore } = require('partita');
require('partita/worker'); // types only, but requirable
const { version } = require('partita/package.json');
${JOB}
async function main() {
  const engine = createEngine({ jobs: [squares], store: memoryStore(), logger: false });
  await engine.start();
  const summary = await engine.wait((await engine.submit(squares, 3)).id);
  await engine.stop();
  console.log(JSON.stringify({ status: summary.status, succeeded: summary.succeeded, version }));
}
main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
`;

const TS_JOB = `
const square: PartitionHandler<number, number> = (n: number, ctx: PartitionContext) =>
  ctx.attempt > 0 ? n * n : Number.NaN;
const squares = defineJob({
  name: 'squares',
  partition: (n: number) => Array.from({ length: n }, (_, i) => ({ key: \`n\${i}\`, payload: i })),
  handler: async (i: number, ctx: PartitionContext) => square(i, ctx),
});`;

const TS_ESM = `import { type BatchSummary, createEngine, defineJob, type ErrorCode, memoryStore, NotFoundError, PartitaError } from 'partita';
import type { PartitionContext, PartitionHandler } from 'partita/worker';
${TS_JOB}
// Each error class fixes its code: narrowed by instanceof, with its own fields.
export function described(err: unknown): string {
  if (!(err instanceof NotFoundError)) return String(err);
  const code: 'NOT_FOUND' = err.code;
  return \`\${code} \${err.batchId}\`;
}
// The base class keeps the whole union (not any): a code it cannot have does not compile.
export function codeOf(err: unknown): ErrorCode | undefined {
  if (!(err instanceof PartitaError)) return undefined;
  // @ts-expect-error: ErrorCode is not a number
  const n: number = err.code;
  void n;
  return err.code;
}
const engine = createEngine({ jobs: [squares], store: memoryStore(), logger: false });
await engine.start();
const summary: BatchSummary = await engine.wait((await engine.submit(squares, 4)).id);
await engine.stop();
console.log(summary.status);
`;

const TS_CJS = `import { type BatchSummary, createEngine, defineJob, memoryStore } from 'partita';
import type { PartitionContext, PartitionHandler } from 'partita/worker';
${TS_JOB}
async function main(): Promise<void> {
  const engine = createEngine({ jobs: [squares], store: memoryStore(), logger: false });
  await engine.start();
  const summary: BatchSummary = await engine.wait((await engine.submit(squares, 4)).id);
  await engine.stop();
  console.log(summary.status);
}
void main();
`;

const TS_CONFIG = {
  compilerOptions: {
    target: 'es2022',
    module: 'nodenext',
    moduleResolution: 'nodenext',
    strict: true,
    skipLibCheck: false,
    types: ['node'],
    rootDir: '.',
    outDir: 'out',
  },
  files: ['index.ts', 'legacy.cts'],
};

describe('the packed package', () => {
  let dir = '';
  let tarball = '';
  let packed: string[] = [];
  let esmRun: Promise<Run> | undefined;
  let sqliteAddonLent = false;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'partita-package-'));
    const copy = join(dir, 'repo');
    mkdirSync(copy);
    for (const name of readdirSync(root)) {
      if (NOT_COPIED.has(name) || name.endsWith('.tgz')) continue;
      cpSync(join(root, name), join(copy, name), { recursive: true });
    }
    symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'), 'dir');
    const packs = join(dir, 'packs');
    mkdirSync(packs);
    const pack = await npm(['pack', '--pack-destination', packs, '--loglevel=error'], copy);
    if (pack.code !== 0) throw new Error(`npm pack failed (${pack.code}):\n${pack.stdout}\n${pack.stderr}`);
    const [file] = readdirSync(packs).filter((f) => f.endsWith('.tgz'));
    tarball = join(packs, file!);
    const list = await run('tar', ['-tzf', tarball], dir);
    packed = list.stdout
      .split('\n')
      .filter(Boolean)
      .map((p) => p.replace(/^package\//, ''));

    project(join(dir, 'esm'), {
      'package.json': JSON.stringify({ name: 'esm-consumer', private: true, type: 'module' }),
      'index.js': ESM_CONSUMER,
    });
    project(join(dir, 'cjs'), {
      'package.json': JSON.stringify({ name: 'cjs-consumer', private: true }),
      'index.js': CJS_CONSUMER,
    });
    project(join(dir, 'ts'), {
      'package.json': JSON.stringify({ name: 'ts-consumer', private: true, type: 'module' }),
      'tsconfig.json': JSON.stringify(TS_CONFIG, null, 2),
      'index.ts': TS_ESM,
      'legacy.cts': TS_CJS,
    });
    await Promise.all([
      install(join(dir, 'esm'), [tarball, `pg@${rootPackage.devDependencies.pg}`]),
      install(join(dir, 'cjs'), [tarball]),
      install(join(dir, 'ts'), [tarball, `@types/node@${rootPackage.devDependencies['@types/node']}`]),
    ]);
    sqliteAddonLent = lendSqliteAddon(join(dir, 'esm'));
  }, 240_000);

  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('holds dist, docs, README.md and LICENSE, and no source maps or sources', () => {
    expect(basename(tarball)).toMatch(/^partita-\d+\.\d+\.\d+.*\.tgz$/);
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/worker.js',
    ]) {
      expect(packed).toContain(f);
    }
    expect(packed.some((f) => f.startsWith('docs/') && f.endsWith('.md'))).toBe(true);
    expect(packed.filter((f) => f.endsWith('.map'))).toEqual([]);
    expect(packed.filter((f) => !/^(dist|docs)\/|^(package\.json|README\.md|LICENSE)$/.test(f))).toEqual([]);
    const shipped = readFileSync(join(dir, 'cjs', 'node_modules', 'partita', 'dist', 'index.js'), 'utf8');
    expect(shipped).not.toContain('sourceMappingURL');
  });

  it('installs zod as a peer, and neither pg nor @types/pg unless asked', () => {
    for (const consumer of ['cjs', 'ts']) {
      const modules = join(dir, consumer, 'node_modules');
      expect(existsSync(join(modules, 'zod', 'package.json'))).toBe(true);
      expect(existsSync(join(modules, 'pg'))).toBe(false);
      expect(existsSync(join(modules, '@types', 'pg'))).toBe(false);
      expect(existsSync(join(modules, '@statelyai'))).toBe(false);
    }
  });

  it('an ES module project imports it and runs a batch to COMPLETED', async () => {
    esmRun ??= node(['index.js'], join(dir, 'esm'));
    const r = await esmRun;
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: 'COMPLETED', results: [0, 1, 4, 9] });
  });

  it('with memoryStore(), loads neither better-sqlite3 nor pg (pg installed)', async () => {
    esmRun ??= node(['index.js'], join(dir, 'esm'));
    const r = await esmRun;
    expect(r.code).toBe(0);
    const { sqliteAddon, pg } = JSON.parse(r.stdout) as { sqliteAddon: string[]; pg: string[] };
    // Without the lent addon, loading it would have thrown and failed the run above.
    if (!sqliteAddonLent) console.warn('better-sqlite3 versions differ: its addon was not lent');
    expect(sqliteAddon).toEqual([]);
    expect(pg).toEqual([]);
  });

  it('a CommonJS project require()s it and runs a batch to COMPLETED', async () => {
    const r = await node(['index.js'], join(dir, 'cjs'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ status: 'COMPLETED', succeeded: 3, version: expect.any(String) });
  });

  it('a TypeScript project (nodenext, strict, skipLibCheck: false, no @types/pg) type-checks', async () => {
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = await node([tsc, '-p', '.'], join(dir, 'ts'));
    expect(r.stdout + r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it("the TypeScript project's ES module and CommonJS outputs run", async () => {
    const ts = join(dir, 'ts');
    if (!existsSync(join(ts, 'out', 'index.js'))) {
      await node([join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], ts); // emits despite errors
    }
    for (const file of ['out/index.js', 'out/legacy.cjs']) {
      const r = await node([file], ts);
      expect(r.stderr, file).toBe('');
      expect(r.code, file).toBe(0);
      expect(r.stdout, file).toBe('COMPLETED\n');
    }
  });
});
