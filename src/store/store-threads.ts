import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';

/**
 * The compiled module of one of the SQLite store's threads (`sqlite-checkpointer`, `sqlite-writer`):
 * beside this file in built code; in dist/ when running from TypeScript sources (partita's own
 * tests). Undefined when it is not found.
 */
export function compiledThreadFile(name: string): string | undefined {
  return [new URL(`./${name}.js`, import.meta.url), new URL(`../../dist/store/${name}.js`, import.meta.url)]
    .map((url) => fileURLToPath(url))
    .find((f) => existsSync(f));
}

/**
 * Asks a store thread to close its connection and end (a terminate could cut it inside SQLite);
 * terminated only if it has not ended a few seconds later. `exited`: settles when it has ended.
 */
export async function endThread(worker: Worker, exited: Promise<void>): Promise<void> {
  worker.postMessage('close');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), 5000);
  });
  if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
  clearTimeout(timer);
}
