import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { loadDriver } from '../../src/store/drivers.js';

const require = createRequire(import.meta.url);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Which drivers Node has loaded in this process: both are CommonJS, so they sit in require.cache. */
function loadedDrivers(): string[] {
  const names = new Set<string>();
  for (const path of Object.keys(require.cache)) {
    const m = /[\\/]node_modules[\\/](pg|better-sqlite3)[\\/]/.exec(path);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}

// Vitest runs each test file in a process of its own (pool 'forks'): nothing else loaded them here.
describe('lean imports', () => {
  it('loads neither better-sqlite3 nor pg for the package and a memoryStore, and each only when its store opens', async () => {
    expect(loadedDrivers()).toEqual([]);
    const partita = await import('../../src/index.js');
    const memory = partita.memoryStore();
    await memory.open();
    await memory.close();
    const sqlite = partita.sqliteStore({ path: ':memory:' });
    // Nothing listens on port 1: open() loads pg, then fails to connect, and writes nothing anywhere.
    const postgres = partita.postgresStore({ connectionString: 'postgres://nobody@127.0.0.1:1/none' });
    expect(loadedDrivers()).toEqual([]);

    await sqlite.open();
    await sqlite.close();
    expect(loadedDrivers()).toEqual(['better-sqlite3']);
    await expect(postgres.open()).rejects.toMatchObject({ code: 'STORE' });
    expect(loadedDrivers()).toEqual(['better-sqlite3', 'pg']);
  });

  it('fails with a STORE error that says what to install when a driver is missing', async () => {
    const missing = loadDriver('postgres', 'pg', () => import(String('partita-no-such-driver')));
    await expect(missing).rejects.toMatchObject({
      code: 'STORE',
      message: expect.stringMatching(/install pg/),
    });
  });

  it('publishes declarations that name no type of pg or better-sqlite3', () => {
    const out = mkdtempSync(join(tmpdir(), 'partita-dts-'));
    try {
      const written = new Map<string, string>();
      // The store modules are the only ones that touch a driver; the rest of src/ adds time, not checks.
      const roots = ['memory', 'sqlite', 'postgres'].map((name) => join(ROOT, `src/store/${name}.ts`));
      const program = ts.createProgram(roots, {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        strict: true,
        skipLibCheck: true,
        declaration: true,
        emitDeclarationOnly: true,
        rootDir: join(ROOT, 'src'),
        outDir: out,
      });
      program.emit(undefined, (file, text) => written.set(file, text));
      const storeDeclarations = [...written].filter(([file]) => /[\\/]store[\\/]/.test(file));
      expect(storeDeclarations.length).toBeGreaterThan(3);
      for (const [file, text] of storeDeclarations) {
        expect({ file, pg: /['"]pg['"]/.test(text), sqlite: /['"]better-sqlite3['"]/.test(text) }).toEqual({
          file,
          pg: false,
          sqlite: false,
        });
      }
      const postgres = storeDeclarations.find(([file]) => file === join(out, 'store/postgres.d.ts'))?.[1];
      expect(postgres).toMatch(/pool\?: PgPool/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
