import { describe, expect, it } from 'vitest';
import type { Source } from '../../src/cli/source.js';
import { plainLine, progressLine, watch } from '../../src/cli/watch.js';
import type { BatchSummary } from '../../src/index.js';

const summary = (over: Partial<BatchSummary> = {}): BatchSummary => ({
  id: 'b-42',
  job: 'job',
  status: 'PROCESSING',
  total: 200,
  succeeded: 97,
  failed: 3,
  running: 8,
  pending: 92,
  progress: 0.5,
  failures: [],
  priority: 0,
  createdAt: '2026-11-29T00:00:00.000Z',
  ...over,
});

describe('watch lines', () => {
  it('fits the progress bar to the terminal width, one column short of the edge', () => {
    for (const columns of [40, 80, 200]) {
      const line = progressLine(summary(), columns);
      expect(line.length).toBeLessThan(columns);
      expect(line).toMatch(/^b-42 PROCESSING \[█+░+\] {2}50% 100\/200 ✗3$/);
    }
    const bar = /\[(.*)\]/.exec(progressLine(summary(), 80))![1]!;
    expect(bar.replaceAll('░', '')).toHaveLength(Math.floor(bar.length / 2));
  });

  it('drops the bar when the terminal is too narrow, and never writes past its edge', () => {
    expect(progressLine(summary(), 33)).toBe('b-42 PROCESSING 50% 100/200 ✗3');
    expect(progressLine(summary({ id: 'x'.repeat(150) }), 80)).toHaveLength(79);
  });

  it('prints one plain line per change when not on a terminal', () => {
    expect(
      plainLine(summary({ status: 'PARTIAL', succeeded: 197, running: 0, pending: 0, progress: 1 })),
    ).toBe('PARTIAL 200/200 100% succeeded 197 failed 3 running 0');
  });
});

describe('watch', () => {
  it('shows a change of the whole percent alone (running partitions report ctx.progress), not the same line twice', async () => {
    // An outside probe: the bar stood still between counts while the SSE stream moved.
    const reads = [
      summary({ succeeded: 0, failed: 0, progress: 0.1 }),
      summary({ succeeded: 0, failed: 0, progress: 0.104 }),
      summary({ succeeded: 0, failed: 0, progress: 0.35 }),
      summary({ status: 'COMPLETED', succeeded: 200, failed: 0, running: 0, pending: 0, progress: 1 }),
    ];
    const source = { get: async () => reads.shift()! } as unknown as Source;
    const lines: string[] = [];
    const options = { intervalMs: 0, json: false, tty: false, columns: () => 80 };
    await watch(source, 'b-42', { write: (t) => void lines.push(t) }, options);
    expect(lines.map((l) => / (\d+)% /.exec(l)?.[1])).toEqual(['10', '35', '100']);
  });
});
