import type { SerializedError } from '../errors.js';
import type { PartitionView } from '../store/store.js';
import type { BatchSummary } from '../summary.js';

/**
 * What listings show. A listing can hold a thousand batches, each with up to 100 failures whose
 * stacks may be 16 KiB: without `?include=output`, a listed summary leaves out `output` and every
 * error stack. `GET /batches/:id` shows the whole summary.
 */

function withoutStack(error: SerializedError): SerializedError {
  const { stack: _stack, cause, ...rest } = error;
  return cause ? { ...rest, cause: withoutStack(cause) } : rest;
}

export function listView(summary: BatchSummary, full: boolean): BatchSummary {
  if (full) return summary;
  const { output: _output, ...rest } = summary;
  const view: BatchSummary = {
    ...rest,
    failures: summary.failures.map((f) => ({ ...f, error: withoutStack(f.error) })),
  };
  if (summary.error) view.error = withoutStack(summary.error);
  return view;
}

/** A partition as listed: its result only when asked for (results can be large). */
export function partitionView(p: PartitionView, withResult: boolean): PartitionView {
  if (withResult || !('result' in p)) return p;
  const { result: _result, ...rest } = p;
  return rest;
}
