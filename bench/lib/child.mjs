// Running a bench child process and collecting its IPC messages.
import { fork } from 'node:child_process';
import { childPath } from './common.mjs';

/**
 * Fork bench/children/<file> with `env`; resolve `{ messages, code, signal, pid }` when it exits.
 * `onMessage(msg, child)` sees each message as it arrives. `$BENCH_CHILD_EXECARGV` adds node flags
 * to the child (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
export function runChild(file, env, onMessage = () => {}) {
  const execArgv = (process.env.BENCH_CHILD_EXECARGV ?? '').split(' ').filter(Boolean);
  return new Promise((resolve, reject) => {
    const child = fork(childPath(file), [], {
      env: { ...process.env, ...env },
      execArgv,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const messages = [];
    child.on('message', (msg) => {
      messages.push(msg);
      onMessage(msg, child);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ messages, code, signal, pid: child.pid }));
  });
}
