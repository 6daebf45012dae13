import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI, run as a real child process (`npm test` builds dist/ first). */
export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Fails clearly when dist/ lacks the CLI, HTTP or metrics build, or is older than their sources. */
export function requireBuiltCli(): void {
  for (const dir of ['cli', 'http', 'prometheus']) {
    for (const file of readdirSync(join(ROOT, 'src', dir))) {
      const built = join(ROOT, 'dist', dir, file.replace(/\.ts$/, '.js'));
      if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
      if (statSync(join(ROOT, 'src', dir, file)).mtimeMs > statSync(built).mtimeMs)
        throw new Error(`dist/${dir}/ is older than src/${dir}/${file}: run \`npm run build\` first`);
    }
  }
}

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `partita ...args`; resolves with the exit code and output whatever the code. */
export function partita(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 30_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number')
          reject(new Error(`partita ${args.join(' ')}: ${err.message}\n${stderr}`));
        else resolve({ code: typeof err?.code === 'number' ? err.code : 0, stdout, stderr });
      },
    );
  });
}

/** A running `partita ...args` whose stdout lines arrive one by one. */
export class LiveRun {
  readonly lines: string[] = [];
  readonly exited: Promise<Run>;
  private readonly child: ChildProcess;
  private waiters: Array<() => void> = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.waiters.splice(0)) w();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    this.exited = new Promise((resolve) =>
      this.child.once('close', (code) => {
        for (const w of this.waiters.splice(0)) w();
        resolve({ code: code ?? -1, stdout, stderr });
      }),
    );
  }

  /** Resolves once `n` lines have been printed (rejects if the process ends first). */
  async lineCount(n: number): Promise<void> {
    while (this.lines.length < n) {
      if (this.child.exitCode !== null)
        throw new Error(`exited with ${this.child.exitCode} after ${this.lines.length} lines`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  kill(): void {
    this.child.kill();
  }
}
