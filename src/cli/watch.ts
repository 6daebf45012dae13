import { setTimeout as sleep } from 'node:timers/promises';
import { type BatchSummary, isFinalStatus } from '../summary.js';
import { type Out, percent, printJson, visible } from './output.js';
import type { Source } from './source.js';

export interface WatchOptions {
  /** Time between two reads. */
  intervalMs: number;
  json: boolean;
  /** Redraw one line in place (a terminal), or print one line per change (a pipe, a file). */
  tty: boolean;
  /** The terminal's width now (it may be resized while watching). */
  columns: () => number;
}

/**
 * Follow a batch until it is final. No engine runs in the CLI, so nothing tells it about changes:
 * it reads the batch every `intervalMs` (500 ms by default) and shows each change. Resolves with
 * the final summary.
 */
export async function watch(
  source: Source,
  id: string,
  out: Out,
  options: WatchOptions,
): Promise<BatchSummary> {
  let shown: string | undefined;
  for (;;) {
    const summary = await source.get(id);
    const final = isFinalStatus(summary.status);
    // The whole percent shown: running partitions' ctx.progress moves it between counts.
    const key = `${summary.status} ${summary.succeeded} ${summary.failed} ${summary.running} ${percent(summary)}`;
    if (key !== shown) {
      shown = key;
      if (options.json) await printJson(out, summary);
      else if (options.tty) await out.write(`\r\x1b[2K${progressLine(summary, options.columns())}`);
      else await out.write(`${plainLine(summary)}\n`);
    }
    if (final) {
      if (options.tty && !options.json)
        await out.write(`\n${summary.errorSummary ? `${visible(summary.errorSummary)}\n` : ''}`);
      return summary;
    }
    await sleep(options.intervalMs);
  }
}

/** One line per change, for logs: `PROCESSING 40/100 40% succeeded 38 failed 2 running 8`. */
export function plainLine(s: BatchSummary): string {
  const settled = s.succeeded + s.failed;
  return `${s.status} ${settled}/${s.total} ${percent(s)} succeeded ${s.succeeded} failed ${s.failed} running ${s.running}`;
}

/** `batch-7 PROCESSING [█████░░░░░] 50% 50/100 ✗2`, the bar filling what the terminal's width leaves. */
export function progressLine(s: BatchSummary, columns: number): string {
  const settled = s.succeeded + s.failed;
  const head = `${visible(s.id)} ${s.status} `;
  const tail = ` ${percent(s).padStart(4)} ${settled}/${s.total}${s.failed > 0 ? ` ✗${s.failed}` : ''}`;
  // Stay one column short of the edge: writing the last column wraps the cursor on some terminals.
  const room = columns - 1 - head.length - tail.length - 2;
  if (room < 5) return `${head}${tail.trimStart()}`.slice(0, Math.max(0, columns - 1));
  const width = Math.min(room, 60);
  const filled = Math.min(width, Math.floor(s.progress * width));
  return `${head}[${'█'.repeat(filled)}${'░'.repeat(width - filled)}]${tail}`;
}
