// The bench runner: `node bench/run.mjs [name...]` (default: all). Each bench prints its tables
// and appends one JSON line to bench/results/results.jsonl (or $BENCH_RESULTS).
//
// With several names, each bench runs in its own child process, so one bench's heap, threads and
// JIT state do not colour the next. With one name it runs in this process (profile it with
// `node --cpu-prof bench/run.mjs throughput`).
//
// `--snapshot-dist` copies dist/ to a temp dir first and runs the benches on the copy: on a work
// tree where others run `npm run build` (which deletes dist/) a long run cannot break half way.
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCHES = [
  'throughput',
  'peer',
  'scale',
  'latency',
  'recovery',
  'many',
  'lanes',
  'hosts',
  'failover',
  'redrive',
];

const argv = process.argv.slice(2);
const args = argv.filter((a) => !a.startsWith('-'));
const names = args.length > 0 ? args : BENCHES;
const unknown = names.filter((n) => !BENCHES.includes(n));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench: ${unknown.join(', ')}; known: ${BENCHES.join(', ')}\n`);
  process.exit(2);
}

// The commit the numbers belong to, taken when the run starts (before a dist/ snapshot), not when
// each bench ends: other people commit while a long run goes on.
process.env.PARTITA_COMMIT ??= commitOf() ?? '';

let snapshot;
if (argv.includes('--snapshot-dist') && !process.env.PARTITA_DIST) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  snapshot = mkdtempSync(join(tmpdir(), 'partita-dist-'));
  cpSync(join(root, 'dist'), join(snapshot, 'dist'), { recursive: true });
  cpSync(join(root, 'package.json'), join(snapshot, 'package.json'));
  // Packages resolve from the copy through this link, exactly as from the work tree.
  symlinkSync(join(root, 'node_modules'), join(snapshot, 'node_modules'), 'dir');
  process.env.PARTITA_DIST = join(snapshot, 'dist');
  process.stderr.write(`benches run on a copy of dist/ at ${process.env.PARTITA_DIST}\n`);
}
// Imported after PARTITA_DIST is settled: common.mjs reads it once.
const { appendResult, log, machine } = await import('./lib/common.mjs');

if (names.length === 1 && !snapshot) {
  process.exitCode = await runOne(names[0]);
} else {
  let failed = 0;
  for (const name of names) {
    const code = await new Promise((resolve) => {
      const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), name], {
        stdio: 'inherit',
        env: process.env,
      });
      child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0)));
    });
    if (code !== 0) {
      failed++;
      log(`bench ${name} exited with ${code}`);
    }
  }
  process.exitCode = failed > 0 ? 1 : 0;
  if (snapshot) rmSync(snapshot, { recursive: true, force: true });
}

async function runOne(name) {
  const m = machine();
  process.stdout.write(
    `\n# bench: ${name}\n${m.date}  node ${m.node}  ${m.cpu}  nproc=${m.nproc}  load=${m.loadavg.join(' ')}\n`,
  );
  const mod = await import(`./${name}.mjs`);
  const t0 = Date.now();
  let data;
  try {
    data = await mod.default();
  } catch (err) {
    log(`bench ${name} failed: ${err.stack ?? err}`);
    return 1;
  }
  const seconds = (Date.now() - t0) / 1000;
  const file = appendResult(name, { seconds, commit: process.env.PARTITA_COMMIT || undefined, ...data });
  process.stdout.write(`\n${name}: done in ${seconds.toFixed(1)} s; results appended to ${file}\n`);
  if (data?.errors?.length > 0) {
    log(`bench ${name}: ${data.errors.length} run(s) failed:\n${data.errors.join('\n')}`);
    return 1;
  }
  return 0;
}

/** HEAD, with `+dirty` when src/ has uncommitted changes (read-only git). dist/ may be older than HEAD. */
function commitOf() {
  const cwd = fileURLToPath(new URL('..', import.meta.url));
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd, encoding: 'utf8' }).trim();
    const dirty =
      execFileSync('git', ['status', '--porcelain', '--', 'src'], { cwd, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head}+dirty` : head;
  } catch {
    return undefined;
  }
}
