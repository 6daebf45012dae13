import { describe, expect, it } from 'vitest';
import { listTable, partitionRow } from '../../src/cli/output.js';
import type { BatchSummary } from '../../src/index.js';

const row = (over: Partial<BatchSummary>): BatchSummary => ({
  id: 'b',
  job: 'sync',
  status: 'PROCESSING',
  total: 0,
  succeeded: 0,
  failed: 0,
  running: 0,
  pending: 0,
  progress: 0,
  failures: [],
  priority: 0,
  createdAt: '2026-12-01T00:00:00.000Z',
  ...over,
});

describe('partita list, the table', () => {
  it('a batch that cannot be read or run says why beside its status; a final batch shows its status alone', () => {
    const text = listTable([
      row({
        id: 'corrupt',
        error: { name: 'StoreError', message: 'stored state is invalid', code: 'STORE' },
      }),
      row({ id: 'failed', status: 'FAILED', error: { name: 'Error', message: 'finalize threw', code: 'X' } }),
      row({ id: 'fine' }),
    ]);
    const statusOf = (id: string) =>
      text
        .split('\n')
        .find((l) => l.startsWith(id))
        ?.split(/\s{2,}/)[2];
    expect(statusOf('corrupt')).toBe('PROCESSING (STORE)');
    expect(statusOf('failed')).toBe('FAILED');
    expect(statusOf('fine')).toBe('PROCESSING');
  });
});

describe('partitionRow', () => {
  const earlier = [
    { run: 1, status: 'failed' as const, attempts: 1, error: { name: 'Error', message: 'odd' } },
  ];
  it('names the earlier runs a partition failed in, apart from the error of this run', () => {
    const failedAgain = partitionRow({
      index: 3,
      key: 'k3',
      status: 'failed',
      attempts: 1,
      error: { name: 'Error', message: 'odd again' },
      history: earlier,
    });
    expect(failedAgain.at(-1)).toBe('Error: odd again (also failed in run 1)');
    const succeeded = partitionRow({
      index: 3,
      key: 'k3',
      status: 'succeeded',
      attempts: 1,
      history: earlier,
    });
    expect(succeeded.at(-1)).toBe('(failed in run 1)');
  });
});
