import type { PartitionFilter, PartitionView } from '../store/store.js';
import type { BatchStatus, BatchSummary } from '../summary.js';

/**
 * Where the CLI reads batches from: a store opened directly (`--db`, `--pg`: no engine needed, and
 * no batch is changed; opening runs the store's migrations) or a running service's HTTP API
 * (`--url`). Commands see only this.
 */
export interface Source {
  /** How it reads, for messages: `sqlite ./.partita/partita.db`, `http://host/partita`. */
  readonly name: string;
  list(filter: { status?: BatchStatus[]; job?: string; limit: number }): Promise<BatchSummary[]>;
  get(id: string): Promise<BatchSummary>;
  partitions(id: string, filter: PartitionFilter): AsyncIterable<PartitionView>;
  /** `{ total, succeeded, failed }` counted from the stored outcomes; undefined when it cannot count. */
  recount?(id: string): Promise<{ total: number; succeeded: number; failed: number }>;
  close(): Promise<void>;
}

/** What only a running service can do; the CLI never writes to a store itself. */
export interface Service {
  submit(body: Record<string, unknown>): Promise<BatchSummary>;
  /** `cancel`, `pause`, `resume`, `retry-failed`. */
  act(id: string, action: string, body?: Record<string, unknown>): Promise<BatchSummary>;
  /** `prune`: the query of `DELETE /batches` (before, status, job, limit). */
  prune(query: URLSearchParams): Promise<{ deleted: number }>;
}
