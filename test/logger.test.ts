/**
 * The default logger (src/logger.ts, run from dist/: `npm test` builds first) writes to stderr and
 * never keeps a process alive: `node app.mjs | head -1` must end even when the program logs far more
 * than the pipe holds. Each test runs a real program as a child process, its stdout and stderr both
 * on one pipe, as `2>&1 |` gives them, read by a second process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';

const LOGGER = new URL('../dist/logger.js', import.meta.url).href;
const PINO = pathToFileURL(createRequire(import.meta.url).resolve('pino')).href;
const LINES = 10_000;

/** Logs LINES lines with the default logger (or plain `pino({ name })` when LOGGER is "pino"). */
const PROGRAM = `
const { defaultLogger } = await import(${JSON.stringify(LOGGER)});
const { pino } = await import(${JSON.stringify(PINO)});
const log = process.env.LOGGER === 'pino' ? pino({ name: 'partita' }) : defaultLogger();
console.log('the program output');
const lines = Number(process.env.LINES);
for (let i = 0; i < lines; i++) log.info({ i }, 'a log line, long enough to fill a pipe in a few hundred lines');
if (process.argv[2] === 'exit') process.exit(0);
`;

/** Reads until it has seen a newline, then exits (closing the pipe): what `head -1` does. */
const HEAD = `process.stdin.on('data', (chunk) => { if (chunk.includes(10)) process.exit(0); });`;

/** Waits READER_DELAY_MS before reading, then counts the lines and the dropped-lines warnings. */
const SLOW_READER = `
let text = '';
process.stdin.pause();
setTimeout(() => process.stdin.resume(), Number(process.env.READER_DELAY_MS));
process.stdin.setEncoding('utf8').on('data', (chunk) => { text += chunk; });
process.stdin.on('end', () => {
  const lines = text.split('\\n').filter(Boolean);
  console.log(JSON.stringify({ lines: lines.length, dropped: lines.filter((l) => l.includes('"dropped"')).length }));
});
`;

let dir = '';
let program = '';
const children = new Set<ChildProcess>();

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'partita-logger-'));
  program = join(dir, 'app.mjs');
  writeFileSync(program, PROGRAM);
});
afterEach(() => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

/** `node app.mjs [ending] 2>&1 | node -e <reader>`: returns both processes. */
function pipeline(
  reader: string,
  ending: 'return' | 'exit',
  env: Record<string, string> = {},
): { app: ChildProcess; readerProcess: ChildProcess } {
  const readerProcess = track(
    spawn(process.execPath, ['-e', reader], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    }),
  );
  const app = track(
    spawn(process.execPath, [program, ending], {
      env: { ...process.env, LINES: String(LINES), ...env },
      // The write end of the reader's stdin, shared by the program's stdout and stderr.
      stdio: ['ignore', readerProcess.stdin!, readerProcess.stdin!],
    }),
  );
  readerProcess.stdin!.destroy(); // only the program holds the write end now
  return { app, readerProcess };
}

describe('defaultLogger()', () => {
  it('writes JSON lines named partita to stderr, nothing to stdout', async () => {
    const app = track(
      spawn(process.execPath, [program, 'return'], {
        env: { ...process.env, LINES: '3' },
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let stdout = '';
    let stderr = '';
    app.stdout!.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    app.stderr!.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    const closed = new Promise((resolve) => app.on('close', resolve));
    expect(await exited(app)).toEqual({ code: 0, signal: null });
    await closed;
    expect(stdout).toBe('the program output\n');
    const lines = stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => [l.level, l.name, l.i, l.msg])).toEqual(
      [0, 1, 2].map((i) => [30, 'partita', i, expect.stringContaining('a log line')]),
    );
  });

  it.each(['return', 'exit'] as const)(
    'lets the program end (%s) when the reader closes after the first line, 10,000 lines in',
    async (ending) => {
      const { app, readerProcess } = pipeline(HEAD, ending);
      expect(await exited(readerProcess)).toEqual({ code: 0, signal: null });
      // A hang here is the bug: the test times out.
      expect(await exited(app)).toEqual({ code: 0, signal: null });
    },
    20_000,
  );

  it('gives a slow reader every line when they fit in what it keeps', async () => {
    const { app, readerProcess } = pipeline(SLOW_READER, 'exit', {
      LINES: '3000', // about 400 kB: the pipe (64 kB) fills, the rest is kept and written at exit
      READER_DELAY_MS: '300',
    });
    let out = '';
    readerProcess.stdout!.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    const read = new Promise((resolve) => readerProcess.stdout!.once('close', resolve));
    expect(await exited(app)).toEqual({ code: 0, signal: null });
    expect(await exited(readerProcess)).toEqual({ code: 0, signal: null });
    await read;
    expect(JSON.parse(out)).toEqual({ lines: 3001, dropped: 0 });
  }, 20_000);

  it('(control) plain pino({ name }) hangs in the same set-up, so the test above can fail', async () => {
    const { app, readerProcess } = pipeline(HEAD, 'exit', { LOGGER: 'pino' });
    await exited(readerProcess);
    const outcome = await Promise.race([
      exited(app).then(() => 'exited'),
      new Promise((resolve) => setTimeout(resolve, 2_000, 'still running')),
    ]);
    expect(outcome).toBe('still running');
  }, 20_000);
});
