import { createRequire } from 'node:module';
import type * as PromClient from 'prom-client';
import { ValidationError } from '../errors.js';

export type PromClientModule = typeof PromClient;

let loaded: PromClientModule | undefined;

/**
 * prom-client, an optional peer dependency, loaded on first use (never when partita is imported).
 * It is a CommonJS package, so `require` loads it synchronously and registerMetrics can stay
 * synchronous. Resolved from partita's own location, as `import` would be.
 */
export function loadPromClient(): PromClientModule {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)('prom-client') as PromClientModule;
    return loaded;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND')
      throw new ValidationError(
        'partita/prometheus needs the "prom-client" package, which is not installed: install prom-client (npm install prom-client)',
        [{ path: 'prom-client', message: 'not installed' }],
        err,
      );
    throw err;
  }
}
