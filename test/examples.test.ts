/**
 * The examples run as written: the quickstart (the README's usage section, in TypeScript: it must
 * type-check, strict, and its compiled output run), the demo on a small batch, and the demo killed
 * half way (SIGKILL) then run again in the same directory, which must resume the interrupted batch and
 * end with exact totals. Then every program of docs/guide.md. They run the built package (`npm test`
 * builds first) as child processes, as a user would.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const quickstart = join(root, 'examples/quickstart/main.ts');
const quickstartWorker = join(root, 'examples/quickstart/primes.worker.mjs');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const demo = join(root, 'examples/demo/main.mjs');
const nightly = join(root, 'examples/nightly-report/main.mjs');

const QUICKSTART_OUTPUT = [
  'count-primes COMPLETED: 10 of 10 partitions, 9592 primes',
  'send-welcome PARTIAL: 1 of 2 partitions failed',
  '  grace: grace has no email address',
  '',
].join('\n');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'partita-examples-'));
  dirs.push(dir);
  return dir;
}

/**
 * Run `node file` in `cwd` (stdout is a pipe, so the demo prints a line every 10 %). `onStdout`
 * sees the output so far after each chunk and may kill the child.
 */
function run(
  file: string | string[],
  cwd: string,
  env: Record<string, string> = {},
  onStdout?: (stdout: string, child: ChildProcess) => void,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, Array.isArray(file) ? file : [file], {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      stdout += chunk;
      onStdout?.(stdout, child);
    });
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * A project holding the quickstart as a user would: main.ts beside primes.worker.mjs, partita and
 * zod in node_modules, compiled in place with this repository's TypeScript (nodenext, strict).
 */
function quickstartProject(): { dir: string; compiled: Promise<Run> } {
  const dir = tempDir();
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  writeFileSync(join(dir, 'main.ts'), readFileSync(quickstart));
  writeFileSync(join(dir, 'primes.worker.mjs'), readFileSync(quickstartWorker));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(root, join(dir, 'node_modules', 'partita'), 'dir');
  symlinkSync(join(root, 'node_modules', 'zod'), join(dir, 'node_modules', 'zod'), 'dir');
  const options = ['--module', 'nodenext', '--target', 'es2022', '--strict', '--skipLibCheck'];
  const types = ['--types', 'node', '--typeRoots', join(root, 'node_modules/@types')];
  return { dir, compiled: run([tsc, ...options, ...types, 'main.ts'], dir) };
}

/** The demo's summary table as name → value. */
function table(stdout: string): Record<string, string> {
  const rows: Record<string, string> = {};
  for (const m of stdout.matchAll(
    /^ {2}(batch|status|total|succeeded|failed|errorSummary|recount) {2,}(.+)$/gm,
  )) {
    rows[m[1]!] = m[2]!;
  }
  return rows;
}

/** Highest percentage among the demo's "progress  NN%" lines. */
function progressOf(stdout: string): number {
  return Math.max(-1, ...[...stdout.matchAll(/^progress +(\d+)%/gm)].map((m) => Number(m[1])));
}

describe('examples', () => {
  it('quickstart type-checks (strict) and its compiled output runs and prints its results', async () => {
    const { dir, compiled } = quickstartProject();
    const c = await compiled;
    expect(c.stdout + c.stderr).toBe('');
    expect(c.code).toBe(0);
    const r = await run(join(dir, 'main.js'), dir);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(QUICKSTART_OUTPUT);
  });

  it("README's usage section shows the quickstart's code and output as they are", () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/^```[a-z]*\n([\s\S]*?)^```$/gm)].map((m) => m[1]);
    expect(blocks).toContain(readFileSync(quickstart, 'utf8'));
    expect(blocks).toContain(readFileSync(quickstartWorker, 'utf8'));
    expect(blocks).toContain(QUICKSTART_OUTPUT);
  });

  it('demo runs a small batch in the default SQLite store and prints the summary table', async () => {
    const cwd = tempDir();
    const env = { DEMO_USERS: '3', DEMO_DAYS: '4' };
    const r = await run(demo, cwd, env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('submitted batch salary-recalc-2026-11: 3 users × 4 days = 12 partitions');
    expect(r.stdout).toMatch(/^progress 100% {2}12\/12 {2}succeeded 9 {2}failed 3$/m);
    expect(table(r.stdout)).toEqual({
      batch: 'salary-recalc-2026-11',
      status: 'PARTIAL',
      total: '12',
      succeeded: '9',
      failed: '3',
      errorSummary: '3 of 12 partitions failed',
      recount: '9 succeeded, 3 failed (matches)',
    });
    for (const day of ['01', '02', '03']) {
      expect(r.stdout).toMatch(
        new RegExp(`emp-003:2026-11-${day} +2 +E_NO_CONTRACT: emp-003 has no contract on 2026-11-${day}`),
      );
    }
    expect(existsSync(join(cwd, '.partita', 'partita.db'))).toBe(true);

    // The fixed id is taken by a final batch: a second run submits a new one.
    const again = await run(demo, cwd, env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/^submitted batch salary-recalc-2026-11-\d{8}T\d{6}: /m);
    expect(table(again.stdout).status).toBe('PARTIAL');
  });

  it('nightly-report --now schedules the report chain, runs one fire of it (report, then its triggered delivery) and exits', async () => {
    const cwd = tempDir();
    const r = await run([nightly, '--now'], cwd);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const fire = String.raw`nightly-report-now@\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z`;
    expect(r.stdout).toMatch(
      new RegExp(
        [
          String.raw`^scheduled nightly-report-now: "\* \* \* \* \* \*" in UTC, next \S+`,
          String.raw`report   COMPLETED  3 of 3 roles  \(batch ${fire}\)`,
          '  CASE_WORKER: 10 rows',
          '  SUPERVISOR: 20 rows',
          '  ADMIN: 30 rows',
          String.raw`delivery COMPLETED  3 of 3 sent  \(batch ${fire}>deliver-report\)`,
          '  CASE_WORKER: case-workers@example.com',
          '  SUPERVISOR: supervisors@example.com',
          '  ADMIN: admins@example.com',
          '$',
        ].join('\n'),
      ),
    );
  });

  it('demo killed half way (SIGKILL) resumes the batch on the next run, counting each partition once', async () => {
    const cwd = tempDir();
    const env = { DEMO_USERS: '20', DEMO_DAYS: '30' };
    let killedAt = -1;
    const first = await run(demo, cwd, env, (stdout, child) => {
      if (killedAt < 0 && progressOf(stdout) >= 30) {
        killedAt = progressOf(stdout);
        child.kill('SIGKILL');
      }
    });
    expect(first.signal).toBe('SIGKILL');
    expect(killedAt).toBeGreaterThanOrEqual(30);
    expect(first.stdout).not.toContain('errorSummary'); // it really died before the end

    const second = await run(demo, cwd, env);
    expect(second.stderr).toBe('');
    expect(second.code).toBe(0);
    const resumed = second.stdout.match(
      /^resuming interrupted batch salary-recalc-2026-11: (\d+) of 600 partitions done$/m,
    );
    expect(resumed).not.toBeNull();
    expect(Number(resumed![1])).toBeGreaterThan(0);
    expect(second.stdout).not.toContain('submitted batch');
    expect(table(second.stdout)).toEqual({
      batch: 'salary-recalc-2026-11',
      status: 'PARTIAL',
      total: '600',
      succeeded: '596',
      failed: '4',
      errorSummary: '4 of 600 partitions failed',
      recount: '596 succeeded, 4 failed (matches)',
    });
  });
});

/**
 * docs/guide.md marks its code blocks: `<!-- file: x.mjs -->` before a block writes it to a temp
 * directory, `<!-- run: x.mjs -->` writes it and runs it there (exit 0, nothing on stderr), and
 * `<!-- output: x.mjs -->` before a block is that run's exact stdout. Each run gets its own working
 * directory, so the default SQLite store of one does not leak into another.
 */
describe('docs/guide.md', () => {
  const guide = readFileSync(join(root, 'docs/guide.md'), 'utf8');
  const marked = [
    ...guide.matchAll(/^<!-- (file|run|output): ([\w.-]+) -->\n```[a-z]*\n([\s\S]*?)^```$/gm),
  ].map((m) => ({ kind: m[1] as 'file' | 'run' | 'output', name: m[2]!, text: m[3]! }));
  const runs = marked.filter((b) => b.kind === 'run');
  const outputs = new Map(marked.filter((b) => b.kind === 'output').map((b) => [b.name, b.text]));
  let dir = '';

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'partita-guide-'));
    // Resolve the package and its peers the way an installed project would.
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'partita'), 'dir');
    for (const dep of ['zod', 'pino', 'pg']) {
      symlinkSync(join(root, 'node_modules', dep), join(dir, 'node_modules', dep), 'dir');
    }
    for (const b of marked) if (b.kind !== 'output') writeFileSync(join(dir, b.name), b.text);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('has runnable examples, and an output for each run that prints one', () => {
    expect(runs.length).toBeGreaterThan(5);
    for (const name of outputs.keys()) expect(runs.map((r) => r.name)).toContain(name);
  });

  it.each(runs.map((r) => r.name))('%s runs as shown', async (name) => {
    const cwd = join(dir, `cwd-${name}`);
    mkdirSync(cwd);
    const r = await run(join(dir, name), cwd);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const expected = outputs.get(name);
    if (expected !== undefined) expect(r.stdout).toBe(expected);
  });
});
