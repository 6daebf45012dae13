/**
 * The file Piscina loads in each worker thread: CommonJS on purpose. Piscina `require()`s its
 * `filename` first; on Node 20 that loads an ES module synchronously (require(esm)), and a thread
 * terminated while doing so (a pool replacing a thread as the engine stops) crashed the whole
 * process (`v8::Module::IsGraphAsync`). A CommonJS file that `import()`s the ES runner avoids it.
 */
type Run = (task: unknown) => Promise<unknown>;
let runner: Promise<{ default: Run }> | undefined;

function run(task: unknown): Promise<unknown> {
  runner ??= import('./runner.js') as Promise<{ default: Run }>;
  return runner.then((m) => m.default(task));
}

export = run;
