import { StoreError, toError } from '../errors.js';

/**
 * Loads a database driver when a store opens, not when partita is imported: `import 'partita'` with
 * a memoryStore loads neither better-sqlite3 nor pg, and pg need not be installed unless
 * postgresStore is used. A missing package fails open() with a StoreError that says what to install.
 */
export async function loadDriver<T>(kind: string, name: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new StoreError(
        `${kind} store needs the "${name}" package, which is not installed: install ${name} (npm install ${name})`,
        err,
      );
    }
    throw new StoreError(`${kind} store: cannot load "${name}": ${toError(err).message}`, err);
  }
}
