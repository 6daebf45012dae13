// Sum a `node --trace-gc-nvp` log per isolate (the engine's thread, each pool thread, the SQLite
// writer and checkpointer threads each print their own lines, prefixed `[pid:isolate]`):
// collections by kind, their pauses, bytes promoted to the old generation, and the largest heap
// seen before a collection. The isolate with the most scavenges is the engine's thread in the
// benches' children; it is printed first.
//
//   BENCH_CHILD_EXECARGV=--trace-gc-nvp node bench/run.mjs scale > gc.log
//   node bench/gc-summary.mjs gc.log
import { readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: node bench/gc-summary.mjs <trace-gc-nvp log>\n');
  process.exit(2);
}
const MB = 1024 * 1024;
const isolates = new Map();
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const m = /^\[(\d+:0x[0-9a-f]+)\]\s+[\d.]+ ms: (.*)$/.exec(line);
  if (!m) continue;
  const fields = Object.fromEntries(m[2].split(' ').map((kv) => kv.split('=')));
  if (!fields.gc) continue;
  let s = isolates.get(m[1]);
  if (!s) {
    s = { scavenges: 0, scavengeMs: 0, marks: 0, markMs: 0, promoted: 0, maxHeap: 0 };
    isolates.set(m[1], s);
  }
  const pause = Number(fields.pause ?? 0);
  if (fields.gc === 's') {
    s.scavenges++;
    s.scavengeMs += pause;
  } else {
    s.marks++;
    s.markMs += pause;
  }
  s.promoted += Number(fields.promoted ?? 0);
  s.maxHeap = Math.max(s.maxHeap, Number(fields.total_size_before ?? 0));
}
const rows = [...isolates].sort((a, b) => b[1].scavenges - a[1].scavenges);
process.stdout.write(
  'isolate                  scavenges  scavenge ms  mark-compacts  mark ms  promoted MB  max heap MB\n',
);
for (const [id, s] of rows) {
  process.stdout.write(
    `${id.padEnd(23)} ${String(s.scavenges).padStart(10)} ${s.scavengeMs.toFixed(0).padStart(12)} ${String(s.marks).padStart(14)} ${s.markMs.toFixed(0).padStart(8)} ${(s.promoted / MB).toFixed(0).padStart(12)} ${(s.maxHeap / MB).toFixed(1).padStart(12)}\n`,
  );
}
