// Summarize a V8 .cpuprofile (from `node --cpu-prof`): self time by package (partita, xstate,
// piscina, better-sqlite3, ...), the top self-time functions, and the top inclusive partita/xstate
// functions.
//
//   node bench/cpuprofile-top.mjs <file.cpuprofile | dir> [--top 25]
//
// Given a directory, it reads the main thread's profiles (thread id 0 in the file name).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { formatTable } from './lib/common.mjs';

const argv = process.argv.slice(2);
const topIdx = argv.indexOf('--top');
const TOP = topIdx >= 0 ? Number(argv[topIdx + 1]) : 25;
const target = argv.find((a, i) => !a.startsWith('--') && argv[i - 1] !== '--top');
if (!target) {
  process.stderr.write('usage: node bench/cpuprofile-top.mjs <file.cpuprofile | dir> [--top N]\n');
  process.exit(2);
}
const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((f) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(f))
      .map((f) => join(target, f))
  : [target];

for (const file of files) summarize(file);

function categoryOf(url, fn) {
  if (!url) {
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(idle)') return 'idle';
    if (fn === '(program)') return 'program (V8/native, unattributed)';
    return undefined; // native: attributed through the caller
  }
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1];
  if (url.startsWith('node:')) return 'node internals';
  if (/\/dist\//.test(url)) return 'partita';
  if (/\/bench\//.test(url)) return 'bench harness';
  return 'other';
}

function shortUrl(url) {
  if (!url) return '(native)';
  const pkg = /\/node_modules\/(.*)$/.exec(url);
  if (pkg) return pkg[1];
  const dist = /\/(dist\/.*)$/.exec(url);
  if (dist) return dist[1];
  return url.replace(/^file:\/\//, '');
}

function summarize(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Self time per node from samples and time deltas (µs).
  const self = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(id, (self.get(id) ?? 0) + dt);
    total += dt;
  });
  const catOf = new Map();
  const resolveCat = (id) => {
    if (catOf.has(id)) return catOf.get(id);
    const n = byId.get(id);
    let cat = categoryOf(n.callFrame.url, n.callFrame.functionName);
    if (cat === undefined) {
      const p = parent.get(id);
      const pc = p === undefined ? 'other' : resolveCat(p);
      cat = pc.startsWith('native') ? pc : `native ← ${pc}`;
      // better-sqlite3's statements are native methods called from the store.
      const pn = p === undefined ? undefined : byId.get(p);
      if (pn && /store\/sqlite\.js$|better-sqlite3/.test(pn.callFrame.url)) cat = 'better-sqlite3 (native)';
    }
    catOf.set(id, cat);
    return cat;
  };
  const cats = new Map();
  const fns = new Map();
  for (const [id, us] of self) {
    const n = byId.get(id);
    const cat = resolveCat(id);
    cats.set(cat, (cats.get(cat) ?? 0) + us);
    const cf = n.callFrame;
    const key = `${cf.functionName || '(anonymous)'}\t${shortUrl(cf.url)}:${cf.lineNumber + 1}\t${cat}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const busy = total - (cats.get('idle') ?? 0);
  const pct = (us) => (100 * us) / busy;
  process.stdout.write(
    `\n# ${basename(file)}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle\n`,
  );
  process.stdout.write(
    `\n${formatTable(
      'self time by package (share of non-idle time)',
      ['package', 'self ms', '% busy'],
      [...cats]
        .filter(([c]) => c !== 'idle')
        .sort((a, b) => b[1] - a[1])
        .map(([c, us]) => ({ package: c, 'self ms': us / 1000, '% busy': pct(us) })),
    )}\n`,
  );
  process.stdout.write(
    `\n${formatTable(
      `top ${TOP} functions by self time`,
      ['function', 'where', 'package', 'self ms', '% busy'],
      [...fns]
        .filter(([k]) => !k.includes('\tidle'))
        .sort((a, b) => b[1] - a[1])
        .slice(0, TOP)
        .map(([k, us]) => {
          const [fn, where, cat] = k.split('\t');
          return { function: fn, where, package: cat, 'self ms': us / 1000, '% busy': pct(us) };
        }),
    )}\n`,
  );
  // Inclusive time: a sample counts once for every distinct function on its stack.
  const inclusive = new Map();
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      const cat = resolveCat(cur);
      if (cat !== 'partita' && cat !== 'xstate') continue;
      const cf = n.callFrame;
      const key = `${cf.functionName || '(anonymous)'}\t${shortUrl(cf.url)}:${cf.lineNumber + 1}\t${cat}`;
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
    }
  });
  process.stdout.write(
    `\n${formatTable(
      `top ${TOP} partita / xstate functions by inclusive time`,
      ['function', 'where', 'package', 'incl ms', '% busy'],
      [...inclusive]
        .sort((a, b) => b[1] - a[1])
        .slice(0, TOP)
        .map(([k, us]) => {
          const [fn, where, cat] = k.split('\t');
          return { function: fn, where, package: cat, 'incl ms': us / 1000, '% busy': pct(us) };
        }),
    )}\n`,
  );
}
