import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { sqlitePath } from './support/stores.js';

const script = fileURLToPath(new URL('./fixtures/stop-during-start.mjs', import.meta.url));

/** Run the script; resolves with its output once the process has exited by itself. */
function runToExit(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('stop() during start()', () => {
  it('waits for the start in progress, stops what it resumed, and the process exits by itself', async () => {
    const path = sqlitePath();
    await promisify(execFile)(process.execPath, [script, path, 'prepare']);
    // A hang here (resumed batches retrying against the closed store) fails the test by its timeout.
    const { code, out } = await runToExit([path, 'boot-stop']);
    expect(code).toBe(0);
    expect(out.trim()).toBe('start fulfilled stop fulfilled');
  }, 30_000);
});
