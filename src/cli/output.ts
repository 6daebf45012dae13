import type { PartitionView } from '../store/store.js';
import { type BatchSummary, isFinalStatus } from '../summary.js';
import { visible } from '../text.js';

export { visible };

/**
 * What the CLI prints. Human output is columns and `key value` lines; `--json` output is stable:
 * the same objects the engine and the HTTP API give (summaries, partitions), one JSON document per
 * command (NDJSON for `watch`).
 */

/** Where output goes. A promise means: wait before writing more (stdout is draining). */
export interface Out {
  write(text: string): void | Promise<void>;
}

export async function printJson(out: Out, value: unknown): Promise<void> {
  await out.write(`${JSON.stringify(value)}\n`);
}

/** Left-aligned columns, two spaces apart; the last column is not padded. Every cell {@link visible}. */
export function table(cells: string[][]): string {
  const rows = cells.map((row) => row.map(visible));
  const widths: number[] = [];
  for (const row of rows)
    for (const [i, cell] of row.entries()) widths[i] = Math.max(widths[i] ?? 0, cell.length);
  return rows
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function percent(s: BatchSummary): string {
  return `${Math.floor(s.progress * 100)}%`;
}

export function listTable(list: BatchSummary[]): string {
  if (list.length === 0) return 'no batches';
  const rows = [['ID', 'JOB', 'STATUS', 'PROGRESS', 'SUCCEEDED', 'FAILED', 'TOTAL', 'CREATED']];
  for (const s of list)
    rows.push([
      s.id,
      s.job,
      // A batch this engine cannot read or run (a corrupt row, a newer version, an unknown job) says
      // why beside its stored status; a final batch's error is its own (finalize), shown by `get`.
      s.error && !isFinalStatus(s.status) ? `${s.status} (${s.error.code ?? 'ERROR'})` : s.status,
      percent(s),
      String(s.succeeded),
      String(s.failed),
      String(s.total),
      s.createdAt,
    ]);
  return table(rows);
}

export function summaryText(s: BatchSummary): string {
  const rows: string[][] = [
    ['id', s.id],
    ['job', s.job],
    ['status', s.run ? `${s.status} (run ${s.run}: failed partitions retried)` : s.status],
    ['progress', `${percent(s)} (${s.succeeded + s.failed} of ${s.total} settled)`],
    ['counts', `succeeded ${s.succeeded}, failed ${s.failed}, running ${s.running}, pending ${s.pending}`],
    ['priority', String(s.priority)],
    ['created', s.createdAt],
  ];
  if (s.startedAt) rows.push(['started', s.startedAt]);
  if (s.finishedAt) rows.push(['finished', s.finishedAt]);
  if (s.errorSummary) rows.push(['failures', s.errorSummary]);
  if (s.error) rows.push(['error', `${s.error.code ? `${s.error.code}: ` : ''}${s.error.message}`]);
  if (s.output !== undefined) rows.push(['output', JSON.stringify(s.output)]);
  if (s.meta)
    rows.push([
      'meta',
      Object.entries(s.meta)
        .map(([k, v]) => `${k}=${v}`)
        .join(', '),
    ]);
  let text = table(rows);
  if (s.failures.length > 0) {
    const shown = s.failures.length < s.failed ? ` (first ${s.failures.length} of ${s.failed})` : '';
    text += `\n\nfailed partitions${shown}:\n`;
    text += table(
      s.failures.map((f) => [
        '  ' + f.key,
        `${f.error.code ?? f.error.name}: ${oneLine(f.error.message)}`,
        `attempts ${f.attempts}`,
      ]),
    );
  }
  return text;
}

export const PARTITION_HEADER = ['INDEX', 'KEY', 'STATUS', 'ATTEMPTS', 'MS', 'ERROR'];

export function partitionRow(p: PartitionView): string[] {
  const error = p.error ? `${p.error.code ?? p.error.name}: ${oneLine(p.error.message)}` : '';
  return [
    String(p.index),
    p.key,
    p.status,
    String(p.attempts),
    p.durationMs === undefined ? '' : String(Math.round(p.durationMs)),
    p.history?.length
      ? // The error shown is this run's; the runs named are earlier ones (`also` when it failed again).
        `${error}${error ? ' ' : ''}(${error ? 'also ' : ''}failed in run ${p.history.map((h) => h.run).join(', ')})`
      : error,
  ];
}

function oneLine(text: string): string {
  const line = text.split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
