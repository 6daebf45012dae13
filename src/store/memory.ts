import { LeaseLostError, StoreError } from '../errors.js';
import { type BatchStatus, isFinalStatus } from '../summary.js';
import { BaseStore } from './base.js';
import { type CapturedPartition, capturePartition, checkLimit, duplicateKey } from './inputs.js';
import { payloadCell } from './sql-rows.js';
import {
  type AcquiredLease,
  type BatchControl,
  type BatchFilter,
  type BatchRecord,
  type BatchRow,
  type BatchState,
  type Fence,
  FINAL_STATUS_LIST,
  type Lease,
  type OutcomeRecord,
  type PartitionFilter,
  type PartitionRow,
  type PartitionRun,
  type PartitionSource,
  type PartitionView,
  type PruneFilter,
  type ScheduleRow,
  type Store,
} from './store.js';

/** The payload stays JSON text, as in the SQL stores: every read parses a copy nobody else holds. */
interface MemoryPartition extends CapturedPartition {
  outcome?: OutcomeRecord;
  history?: PartitionRun[];
}

interface MemoryBatch {
  row: BatchRow;
  partitions: MemoryPartition[];
  /** Outcomes in journal order. */
  journal: OutcomeRecord[];
  journalSeq: number;
  lease?: Lease;
  control?: BatchControl;
}

/**
 * A Store that keeps everything in this process's memory: fast, and gone when the process exits.
 * For tests and for batches that need no durability.
 *
 * @example
 * ```ts
 * const engine = createEngine({ jobs: [job], store: memoryStore() });
 * ```
 */
export function memoryStore(): Store {
  return new MemoryStore();
}

/** The parents a stored batch names (`after`), from its record as stored. */
function afterOf(row: BatchRow): readonly string[] {
  const after = (row.record as { after?: unknown } | null)?.after;
  return Array.isArray(after) ? after.filter((p): p is string => typeof p === 'string') : [];
}

/** When a stored batch ended, from its stored state's summary. */
function endedAt(row: BatchRow): string | undefined {
  const at = (row.state as { summary?: { finishedAt?: unknown } } | undefined)?.summary?.finishedAt;
  return typeof at === 'string' ? at : undefined;
}

const notOpen = () => new StoreError('memory store is not open: call open() first');
const clone = <T>(value: T): T => (value === undefined ? value : structuredClone(value));
/** Partitions read between two turns of the event loop while a batch is created. */
const YIELD_EVERY = 1000;

class MemoryStore extends BaseStore implements Store {
  readonly kind = 'memory';
  private readonly batches = new Map<string, MemoryBatch>();
  private readonly schedules = new Map<string, ScheduleRow>();

  /** Closed (an engine stopped): a creation still streaming stops and stores nothing, as on SQLite. */
  private closed = false;

  async open(): Promise<void> {
    this.closed = false;
  }
  async close(): Promise<void> {
    this.closed = true;
  }

  protected async create(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    return this.oneCreationAtATime(record.id, () => this.createOnce(record, partitions));
  }

  private async createOnce(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }> {
    if (this.batches.has(record.id)) return { created: false };
    const list: MemoryPartition[] = [];
    const keys = new Set<string>();
    for await (const p of partitions) {
      if (this.closed) throw notOpen();
      const captured = capturePartition(p, list.length, record.id);
      if (keys.has(captured.key)) throw duplicateKey(record.id, captured.key);
      keys.add(captured.key);
      list.push(captured);
      // A source that never waits (an array, a sync generator) would otherwise hold the event loop
      // for the whole submit, stop() included, as the SQL stores' chunks do not.
      if (list.length % YIELD_EVERY === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (this.closed) throw notOpen();
    this.batches.set(record.id, {
      row: {
        id: record.id,
        job: record.job,
        status: 'QUEUED',
        priority: record.priority,
        createdAt: record.createdAt,
        // The store, not the caller, knows how many partitions the iterator gave.
        record: { ...clone(record), total: list.length },
        state: undefined,
      },
      partitions: list,
      journal: [],
      journalSeq: 0,
    });
    return { created: true };
  }

  async loadBatch(id: string): Promise<BatchRow | undefined> {
    const b = this.batches.get(id);
    return b ? clone(b.row) : undefined;
  }

  async loadBatches(ids: readonly string[]): Promise<BatchRow[]> {
    const rows: BatchRow[] = [];
    for (const id of new Set(ids)) {
      const b = this.batches.get(id);
      if (b) rows.push(clone(b.row));
    }
    return rows;
  }

  async listBatches(filter: BatchFilter = {}): Promise<BatchRow[]> {
    const limit = checkLimit(filter.limit);
    const statuses = toStatusSet(filter.status);
    let rows = [...this.batches.values()].map((b) => b.row);
    if (filter.unfinished) rows = rows.filter((r) => !FINAL_STATUS_LIST.includes(r.status));
    if (statuses) rows = rows.filter((r) => statuses.has(r.status));
    if (filter.job !== undefined) rows = rows.filter((r) => r.job === filter.job);
    rows.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
    if (!filter.unfinished) rows.reverse();
    if (limit !== undefined) rows = rows.slice(0, limit);
    return rows.map(clone);
  }

  async requestControl(batchId: string, control: BatchControl): Promise<boolean> {
    const b = this.batches.get(batchId);
    if (!b || FINAL_STATUS_LIST.includes(b.row.status)) return false;
    if (b.control?.type === 'cancel' && control.type !== 'cancel') return false;
    b.control = { ...control };
    return true;
  }

  async pendingControls(owner: string): Promise<Array<{ batchId: string; control: BatchControl }>> {
    const out: Array<{ batchId: string; control: BatchControl }> = [];
    for (const [batchId, b] of this.batches)
      if (b.control && b.lease?.owner === owner) out.push({ batchId, control: { ...b.control } });
    return out;
  }

  async controlOf(batchId: string): Promise<BatchControl | undefined> {
    const control = this.batches.get(batchId)?.control;
    return control && { ...control };
  }

  async clearControl(batchId: string, control: BatchControl): Promise<void> {
    const b = this.batches.get(batchId);
    if (b?.control && JSON.stringify(b.control) === JSON.stringify(control)) delete b.control;
  }

  async nextLeaseExpiry(owner: string): Promise<number | undefined> {
    const now = Date.now();
    let next: number | undefined;
    for (const b of this.batches.values()) {
      const lease = b.lease;
      if (FINAL_STATUS_LIST.includes(b.row.status) || !lease?.owner || lease.owner === owner) continue;
      if (lease.expiresAt > now && (next === undefined || lease.expiresAt < next)) next = lease.expiresAt;
    }
    return next === undefined ? undefined : next - now;
  }

  async listUnowned(limit: number): Promise<BatchRow[]> {
    const max = checkLimit(limit) ?? 0;
    const now = Date.now();
    const rows = [...this.batches.values()]
      .filter(
        (b) => !FINAL_STATUS_LIST.includes(b.row.status) && !(b.lease?.owner && b.lease.expiresAt > now),
      )
      .map((b) => b.row);
    // Stable: batches of one priority and instant stay in insertion order.
    rows.sort(
      (a, b) =>
        b.priority - a.priority || (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0),
    );
    return rows.slice(0, max).map(clone);
  }

  async readPartitions(batchId: string, fromIndex: number, limit: number): Promise<PartitionRow[]> {
    const b = this.batches.get(batchId);
    if (!b) return [];
    const out: PartitionRow[] = [];
    const end = Math.min(b.partitions.length, fromIndex + limit);
    for (let index = fromIndex; index < end; index++) {
      const p = b.partitions[index]!;
      const status = p.outcome?.status ?? 'pending';
      const payload = status === 'pending' ? payloadCell(p.json ?? null, batchId, index) : undefined;
      out.push({ index, key: p.key, payload, status });
    }
    return out;
  }

  async *partitions(batchId: string, filter: PartitionFilter = {}): AsyncIterable<PartitionView> {
    const b = this.batches.get(batchId);
    if (!b) return;
    for (let index = 0; index < b.partitions.length; index++) {
      const p = b.partitions[index]!;
      const status = p.outcome?.status ?? 'pending';
      if (filter.status && filter.status !== status) continue;
      const o = p.outcome;
      const view: PartitionView = o
        ? {
            index,
            key: p.key,
            status,
            result: clone(o.result),
            error: clone(o.error),
            attempts: o.attempts,
            durationMs: o.durationMs,
            finishedAt: o.finishedAt,
          }
        : { index, key: p.key, status, attempts: 0 };
      if (p.history) view.history = clone(p.history);
      yield view;
    }
  }

  async appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }> {
    const b = this.requireFenced(batchId, fence);
    let accepted = 0;
    for (const o of outcomes) {
      const p = b.partitions[o.index];
      if (!p || p.key !== o.key || p.outcome) continue;
      // Outcomes come fresh from the engine and are cloned on the way out (partitions()).
      const stored = { ...o };
      p.outcome = stored;
      b.journal.push(stored);
      if (o.seq > b.journalSeq) b.journalSeq = o.seq;
      accepted++;
    }
    return { accepted };
  }

  async *outcomesSince(batchId: string, afterSeq: number): AsyncIterable<OutcomeRecord> {
    const b = this.batches.get(batchId);
    if (!b) return;
    const sorted = b.journal.filter((o) => o.seq > afterSeq).sort((x, y) => x.seq - y.seq);
    for (const o of sorted) yield clone(o);
  }

  async countOutcomes(batchId: string): Promise<{ succeeded: number; failed: number }> {
    const b = this.batches.get(batchId);
    let succeeded = 0;
    let failed = 0;
    for (const o of b?.journal ?? []) {
      if (o.status === 'succeeded') succeeded++;
      else failed++;
    }
    return { succeeded, failed };
  }

  async saveState(batchId: string, state: BatchState, fence: Fence): Promise<boolean> {
    const b = this.requireFenced(batchId, fence);
    const current = b.row.state as BatchState | undefined;
    if (current && typeof current.journalSeq === 'number' && current.journalSeq > state.journalSeq)
      return false;
    const changed = b.row.status !== state.status;
    b.row.state = clone(state);
    b.row.status = state.status;
    if (changed) this.watchers.emit({ batchId, status: state.status });
    return true;
  }

  async redrive(batchId: string, state: BatchState, endedRun: number): Promise<boolean> {
    const b = this.batches.get(batchId);
    if (!b || (b.row.status !== 'PARTIAL' && b.row.status !== 'FAILED')) return false;
    for (const p of b.partitions) {
      const o = p.outcome;
      if (o?.status !== 'failed') continue;
      const run: PartitionRun = { run: endedRun, status: 'failed', attempts: o.attempts };
      if (o.error) run.error = o.error;
      run.durationMs = o.durationMs;
      run.finishedAt = o.finishedAt;
      p.history = [...(p.history ?? []), run];
      delete p.outcome;
    }
    // The succeeded outcomes stay, renumbered 1..n in their journal order.
    b.journal = b.journal.filter((o) => o.status === 'succeeded').sort((x, y) => x.seq - y.seq);
    b.journal.forEach((o, i) => {
      o.seq = i + 1;
    });
    b.journalSeq = b.journal.length;
    b.row.state = clone(state);
    b.row.status = 'QUEUED';
    delete b.control;
    if (b.lease) b.lease = { ...b.lease, owner: '', expiresAt: 0 };
    this.watchers.emit({ batchId, status: 'QUEUED' });
    return true;
  }

  async acquireLease(
    batchId: string,
    owner: string,
    ttlMs: number,
    takeoverFrom?: string,
  ): Promise<AcquiredLease | undefined> {
    const b = this.batches.get(batchId);
    if (!b) return undefined;
    const now = Date.now();
    const held = b.lease;
    if (held && held.owner !== owner && held.expiresAt > now && held.owner !== takeoverFrom) return undefined;
    const lease = { owner, epoch: (held?.epoch ?? 0) + 1, expiresAt: now + ttlMs };
    b.lease = lease;
    const stored = b.row.state as BatchState | undefined;
    return {
      ...lease,
      status: b.row.status,
      journalSeq: stored?.journalSeq ?? 0,
      control: b.control && { ...b.control },
    };
  }

  async acquireLeaseWithin(
    batchId: string,
    owner: string,
    ttlMs: number,
    cap: number,
    competing: readonly string[] = [],
  ): Promise<AcquiredLease | 'full' | undefined> {
    const b = this.batches.get(batchId);
    if (b?.row.status === 'QUEUED') {
      const now = Date.now();
      let live = 0;
      let first = true;
      const mine = b.row;
      // The map keeps insertion order: a batch met before this one with the same createdAt is older.
      let olderByInsertion = true;
      for (const [id, o] of this.batches) {
        if (id === batchId) {
          olderByInsertion = false;
          continue;
        }
        if (o.lease?.owner && o.lease.expiresAt > now && !isFinalStatus(o.row.status)) live++;
        const r = o.row;
        const unheld = !o.lease?.owner || o.lease.expiresAt <= now;
        const ready = (r.record as { after?: unknown[] }).after?.length === 0;
        const before =
          r.priority > mine.priority ||
          (r.priority === mine.priority &&
            (r.createdAt < mine.createdAt || (r.createdAt === mine.createdAt && olderByInsertion)));
        if (r.status === 'QUEUED' && unheld && ready && competing.includes(r.job) && before) first = false;
      }
      const held = b.lease;
      const free = !held || held.owner === owner || held.expiresAt <= now;
      if (live >= cap || !first) return free ? 'full' : undefined;
    }
    return this.acquireLease(batchId, owner, ttlMs);
  }

  async renewLease(batchId: string, fence: Fence, ttlMs: number): Promise<boolean> {
    const b = this.batches.get(batchId);
    if (!b?.lease || b.lease.owner !== fence.owner || b.lease.epoch !== fence.epoch) return false;
    b.lease.expiresAt = Date.now() + ttlMs;
    return true;
  }

  async releaseLease(batchId: string, fence: Fence): Promise<void> {
    const b = this.batches.get(batchId);
    if (b?.lease && b.lease.owner === fence.owner && b.lease.epoch === fence.epoch) b.lease.expiresAt = 0;
  }

  async leaseOf(batchId: string): Promise<Lease | undefined> {
    const l = this.batches.get(batchId)?.lease;
    // A redriven batch's lease has no owner (its epoch goes on counting).
    return l?.owner ? { ...l } : undefined;
  }

  async listSchedules(): Promise<ScheduleRow[]> {
    const names = [...this.schedules.keys()].sort();
    return names.map((name) => clone(this.schedules.get(name)!));
  }

  async loadSchedule(name: string): Promise<ScheduleRow | undefined> {
    return clone(this.schedules.get(name));
  }

  async saveSchedule(name: string, definition: unknown, createdAt: number): Promise<void> {
    // Through JSON, as the SQL stores keep it.
    const stored = JSON.parse(JSON.stringify(definition)) as unknown;
    const row = this.schedules.get(name);
    if (row) row.definition = stored;
    else this.schedules.set(name, { name, definition: stored, createdAt: Math.round(createdAt) });
  }

  async prunable(filter: PruneFilter, limit: number): Promise<string[]> {
    const keep = new Set<string>();
    for (const b of this.batches.values())
      if (!FINAL_STATUS_LIST.includes(b.row.status)) for (const parent of afterOf(b.row)) keep.add(parent);
    const rows = [...this.batches.values()]
      .map((b) => b.row)
      .filter(
        (r) =>
          filter.status.includes(r.status) &&
          FINAL_STATUS_LIST.includes(r.status) &&
          (filter.job === undefined || r.job === filter.job) &&
          r.createdAt < filter.endedBefore &&
          (endedAt(r) ?? r.createdAt) < filter.endedBefore &&
          !keep.has(r.id),
      )
      .sort((a, b) =>
        a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.id < b.id ? -1 : 1,
      );
    return rows.slice(0, limit).map((r) => r.id);
  }

  async deleteBatches(ids: readonly string[]): Promise<number> {
    let deleted = 0;
    for (const id of ids) {
      const b = this.batches.get(id);
      if (b && FINAL_STATUS_LIST.includes(b.row.status) && this.batches.delete(id)) deleted++;
    }
    return deleted;
  }

  async deleteSchedule(name: string): Promise<boolean> {
    return this.schedules.delete(name);
  }

  async recordFire(name: string, fireAt: number, batchId: string | undefined): Promise<boolean> {
    const row = this.schedules.get(name);
    const at = Math.round(fireAt);
    if (!row) return false;
    const last = row.lastFireAt;
    if (last !== undefined && (last > at || (last === at && batchId === undefined))) return false;
    row.lastFireAt = at;
    if (batchId !== undefined) row.lastBatchId = batchId;
    return true;
  }

  private requireFenced(batchId: string, fence: Fence): MemoryBatch {
    const b = this.batches.get(batchId);
    if (!b?.lease || b.lease.owner !== fence.owner || b.lease.epoch !== fence.epoch)
      throw new LeaseLostError(batchId);
    return b;
  }
}

function toStatusSet(status: BatchFilter['status']): Set<BatchStatus> | undefined {
  if (status === undefined) return undefined;
  return new Set(typeof status === 'string' ? [status] : status);
}
