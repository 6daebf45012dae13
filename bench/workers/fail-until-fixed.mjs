// A no-op task that fails the partitions marked `fail` until the file named by PARTITA_BENCH_FIXED
// exists (bench/redrive.mjs creates it between a batch's first run and its `retryFailed`). Each
// thread looks for the file only for a marked partition, and never again once it has seen it.
import { existsSync } from 'node:fs';

let fixed = false;

export default function failUntilFixed(payload) {
  if (payload.fail && !fixed) {
    fixed = existsSync(process.env.PARTITA_BENCH_FIXED);
    if (!fixed) throw new Error(`partition ${payload.i} fails until fixed`);
  }
  return { ok: true };
}
