import type { SerializedError } from '../errors.js';
import { BATCH_STATUSES, type BatchStatus, FINAL_STATUSES } from '../summary.js';

/**
 * The Store contract: the high-level operations the engine needs to make batches durable.
 * memoryStore, sqliteStore and postgresStore implement it and pass one contract test suite
 * (test/store/contract.ts). No connection or transaction type leaks out of a store.
 *
 * Rows are keyed by (batch, partition index). A partition's outcome is written once: a second
 * outcome for the same partition is refused and never counted. Snapshots hold no per-partition
 * data, so their size does not grow with the number of partitions.
 */
export interface Store {
  /** A short name for logs and errors: 'memory', 'sqlite', 'postgres'. */
  readonly kind: string;
  /** Connect and run migrations. Idempotent. A database written by a newer partita is refused (SNAPSHOT_VERSION). */
  open(): Promise<void>;
  /** Flush and release connections. Idempotent. */
  close(): Promise<void>;

  /**
   * Store a new batch and all its partitions atomically. Idempotent on `record.id`: when the id
   * exists nothing is written and `created` is false. A batch id or partition key that src/values.ts
   * `badName` refuses, and duplicate partition keys, are refused (VALIDATION) and nothing is stored;
   * an error thrown by the iterator also leaves nothing.
   * The stored `record.total` is the number of partitions the iterator gave (the caller may not know
   * it in advance for an AsyncIterable).
   */
  createBatch(record: BatchRecord, partitions: PartitionSource): Promise<{ created: boolean }>;
  /** The raw row of one batch, or undefined. Records are validated by the engine (see records.ts). */
  loadBatch(id: string): Promise<BatchRow | undefined>;
  /**
   * The raw rows of the batches among `ids` that exist, in any order: one read for many, where an
   * engine follows batches that other engines run (src/runtime/remote-follow.ts). Optional: without
   * it, each is read with loadBatch.
   */
  loadBatches?(ids: readonly string[]): Promise<BatchRow[]>;
  /**
   * Is a batch with this id still being created by a store that is open (SQLite streams a large
   * batch's partitions while its row stays unreadable)? A submit that found its id taken reads the
   * batch again while this is true, and submits again once it is not: that creation failed, was
   * stopped, or its process died, and the id is free. Stores whose creations are never seen half
   * done (PostgreSQL's one transaction, the memory store) leave it out.
   */
  beingCreated?(id: string): Promise<boolean>;
  /**
   * Batches, newest first; `unfinished` lists those not in a final status, oldest first. A `limit`
   * that is not a finite number >= 0 is refused (VALIDATION); a fractional one counts its whole part.
   */
  listBatches(filter?: BatchFilter): Promise<BatchRow[]>;

  /**
   * Unfinished batches that no engine holds (no lease, or an expired one), highest priority then
   * oldest first, `limit` at most: what an engine sharing the store may claim (a QUEUED batch
   * submitted elsewhere) or take over (a batch whose owner stopped renewing). Claiming is still the
   * lease's compare-and-set; this only finds candidates.
   */
  listUnowned(limit: number): Promise<BatchRow[]>;

  /**
   * Milliseconds (by the store's clock) until the earliest lease of an unfinished batch held by
   * another owner than `owner` expires, or undefined when there is none: an engine sharing the
   * store looks again right then, so a dead host's batch is taken over at its lease's end rather
   * than at the next sweep.
   */
  nextLeaseExpiry?(owner: string): Promise<number | undefined>;

  /**
   * Leave a request for whichever engine runs the batch (engine.cancel / pause / resume called on
   * another engine). The latest request replaces an earlier one, except that nothing replaces a
   * cancel. False when the batch is unknown or final. PostgreSQL notifies it (`control: true`).
   */
  requestControl(batchId: string, control: BatchControl): Promise<boolean>;
  /** The requests left for batches whose lease `owner` holds. */
  pendingControls(owner: string): Promise<Array<{ batchId: string; control: BatchControl }>>;
  /** The request left on the batch now, if any (the requester learns whether it was carried out or replaced). */
  controlOf(batchId: string): Promise<BatchControl | undefined>;
  /** The owner carried `control` out: remove it, unless a newer request replaced it meanwhile. */
  clearControl(batchId: string, control: BatchControl): Promise<void>;

  /**
   * Partitions by index, `limit` at most from `fromIndex`, with their current status. For dispatch:
   * only a pending partition's payload is read (a settled one's is undefined; dispatch steps over
   * it, and a redriven batch's pages are mostly settled partitions).
   */
  readPartitions(batchId: string, fromIndex: number, limit: number): Promise<PartitionRow[]>;
  /** Every partition with its outcome, in index order, optionally filtered by status. */
  partitions(batchId: string, filter?: PartitionFilter): AsyncIterable<PartitionView>;

  /**
   * Group commit: record outcomes in one transaction. An outcome for a partition that already has
   * one is refused (not counted in `accepted`). Refused as a whole with LEASE_LOST when `fence` is stale.
   */
  appendOutcomes(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    fence: Fence,
  ): Promise<{ accepted: number }>;
  /** Outcomes with `seq > afterSeq`, in seq order: the journal replayed on recovery. */
  outcomesSince(batchId: string, afterSeq: number): AsyncIterable<OutcomeRecord>;
  /** Counts recomputed from the stored outcomes (engine.recount). */
  countOutcomes(batchId: string): Promise<{ succeeded: number; failed: number }>;

  /**
   * Save the batch's state (status column, persisted actor snapshot, summary). Compare-and-set:
   * refused with LEASE_LOST when `fence` is stale, and ignored (returns false) when the stored
   * state already covers a later journal position.
   */
  saveState(batchId: string, state: BatchState, fence: Fence): Promise<boolean>;

  /**
   * Optional: `appendOutcomes` then `saveState`, atomically (one transaction). The journal uses it
   * for a group that carries the state (at most every 100 ms, and at status changes; the groups
   * between are `appendOutcomes` alone) when a store has it; stores without it get the two calls,
   * which is as correct (the state is written after the outcomes it covers), only slower.
   */
  commit?(
    batchId: string,
    outcomes: readonly OutcomeRecord[],
    state: BatchState,
    fence: Fence,
  ): Promise<{ accepted: number; saved: boolean }>;

  /**
   * engine.retryFailed: atomically put a PARTIAL or FAILED batch back to QUEUED with `state` (the
   * next run's, `journalSeq` = the number of succeeded partitions), append each failed partition's
   * outcome to its `history` (as run `endedRun`) and make it pending again, and leave the succeeded
   * partitions' journal positions 1..n, each once, in any order (recovery replays only positions
   * past `journalSeq`; the SQL stores move the fewest rows). False, with nothing written,
   * when the batch is not (or no longer) PARTIAL or FAILED. The lease is left free.
   */
  redrive(batchId: string, state: BatchState, endedRun: number): Promise<boolean>;

  /**
   * Take the lease on a batch. Granted when free, expired, already ours, or held by `takeoverFrom`
   * (an owner the engine knows is dead). Returns the new fencing epoch, or undefined when held.
   */
  acquireLease(
    batchId: string,
    owner: string,
    ttlMs: number,
    takeoverFrom?: string,
  ): Promise<AcquiredLease | undefined>;
  /**
   * Optional: acquireLease under a cluster-wide cap (`clusterMaxConcurrentBatches`). For a batch
   * whose stored status is QUEUED, the lease is granted only while fewer than `cap` other
   * unfinished batches hold a live lease, and no QUEUED batch that nobody holds, of one of the
   * `competing` jobs and with no `after` dependencies, comes before it (higher priority, or the
   * same and older): decided atomically with the take, so two engines cannot both take the last
   * slot, and a slot freed anywhere goes to the first batch in the cluster's order. 'full' when
   * that is why it was refused. Batches past QUEUED (a takeover, a resume) are not capped: they
   * hold their slot already.
   */
  acquireLeaseWithin?(
    batchId: string,
    owner: string,
    ttlMs: number,
    cap: number,
    competing?: readonly string[],
  ): Promise<AcquiredLease | 'full' | undefined>;
  /** Extend our lease. False when it was lost. */
  renewLease(batchId: string, fence: Fence, ttlMs: number): Promise<boolean>;
  /** Give up our lease (graceful stop). */
  releaseLease(batchId: string, fence: Fence): Promise<void>;
  /** Who holds the lease now, for takeover decisions and diagnostics. */
  leaseOf(batchId: string): Promise<Lease | undefined>;
  /**
   * Optional: every lease taken on the batch (each new epoch: its first run, resumes, takeovers),
   * oldest first, with the store's time (epoch ms) at which it was taken. sqliteStore and
   * postgresStore keep it; memoryStore, which one engine holds, does not.
   */
  leaseHistory?(batchId: string): Promise<LeaseTaken[]>;

  /**
   * Optional. Calls `listener` when any engine sharing this store saves a batch's state with a new
   * status (at least every final status). Best effort: notifications may be lost (a dropped
   * connection, a listener added late), so callers keep a slow backstop poll. Listening starts when
   * the store is open and stops at close(). A listener that throws is ignored. Returns the function
   * that unsubscribes.
   *
   * memoryStore calls listeners synchronously, before saveState resolves. postgresStore uses
   * LISTEN/NOTIFY, so it hears every engine on the same schema. sqliteStore hears only writes made
   * through the same store object (no notification crosses processes).
   */
  watch?(listener: (event: StatusEvent) => void): () => void;

  /**
   * Optional: ranges of a batch's partitions offered to every engine sharing the store (a job with
   * `distribute`, docs/scaling.md "One batch on many hosts"). sqliteStore and postgresStore have
   * them; memoryStore, which no other engine can share, has not (its batches run where they are).
   */
  readonly ranges?: RangeStore;

  /** Every stored schedule (engine.schedule), by name. */
  listSchedules(): Promise<ScheduleRow[]>;
  /** One stored schedule, or undefined. */
  loadSchedule(name: string): Promise<ScheduleRow | undefined>;
  /**
   * Store a schedule's definition (any JSON value; the engine validates it on load). Upsert: for a
   * name that exists only the definition changes, and its `createdAt` and last fire are kept.
   */
  saveSchedule(name: string, definition: unknown, createdAt: number): Promise<void>;
  /** Remove a schedule. False when there was none. Batches it submitted are not touched. */
  deleteSchedule(name: string): Promise<boolean>;
  /**
   * Record that the fire at `fireAt` was handled: `batchId` is the batch it submitted, or undefined
   * when it submitted none (skipped). Monotonic: moves `lastFireAt` forward only, so two engines
   * racing never move it back; a second record of the same fire time may only add its batch id.
   * False when nothing changed (an older or equal fire, or no such schedule).
   */
  recordFire(name: string, fireAt: number, batchId: string | undefined): Promise<boolean>;

  /**
   * Optional (engine.prune): the ids of at most `limit` ended batches that `filter` selects and that
   * no unfinished batch names in its `after` (it may still wait for them), oldest first. Reads only:
   * {@link Store.deleteBatches} deletes them.
   */
  prunable?(filter: PruneFilter, limit: number): Promise<string[]>;
  /**
   * Optional (engine.prune): delete these batches, each with everything stored of it (partitions,
   * outcomes, ranges, lease history), in one transaction; a batch that is not (or no longer) in a
   * final status is left as it is. Returns how many were deleted.
   */
  deleteBatches?(ids: readonly string[]): Promise<number>;
}

/** Which ended batches {@link Store.prunable} selects. */
export interface PruneFilter {
  /** Ended (and created) before this time (ISO 8601, UTC). */
  endedBefore: string;
  /** Among these final statuses. */
  status: readonly BatchStatus[];
  /** Of this job only. */
  job?: string | undefined;
}

/** A stored schedule as {@link Store.listSchedules} returns it. */
export interface ScheduleRow {
  name: string;
  /** As given to saveSchedule; validated by the engine. */
  definition: unknown;
  /** Epoch ms of the first save: where missed fires start while it has never fired. */
  createdAt: number;
  /** Epoch ms of the latest fire handled (submitted or skipped). */
  lastFireAt?: number | undefined;
  /** The batch submitted by the latest fire that submitted one. */
  lastBatchId?: string | undefined;
}

/** What {@link Store.watch} reports: a batch whose saved state has a new status. */
export interface StatusEvent {
  batchId: string;
  status: BatchStatus;
  /** Set when the event is a request for the batch's owner (requestControl), not a new status. */
  control?: true;
}

/** What an engine asks of the engine that runs a batch (cancel, pause or resume from any engine). */
export type BatchControl = { type: 'cancel'; reason: string } | { type: 'pause' } | { type: 'resume' };

/** Version of the stored record and state formats written by this partita. */
export const SCHEMA_VERSION = 1;

/** Everything about a batch that is fixed at submit. Contains no job input (it may hold secrets). */
export interface BatchRecord {
  schemaVersion: number;
  id: string;
  job: string;
  total: number;
  priority: number;
  after: string[];
  when: 'succeeded' | 'settled';
  createdAt: string;
  /** Caller-supplied labels, stored as given. */
  meta?: Record<string, string> | undefined;
}

/** The mutable state of a batch, written by the engine at every change that matters. */
export interface BatchState {
  schemaVersion: number;
  /** Version of batchMachine that wrote `snapshot`. */
  machineVersion: number;
  status: BatchStatus;
  /** Outcomes with seq <= journalSeq are reflected in `snapshot`. */
  journalSeq: number;
  /** The batch actor's persisted snapshot (XState `getPersistedSnapshot()`), without children. */
  snapshot: unknown;
  /** The summary at this moment (final summary once the batch is final). */
  summary: unknown;
}

/** A batch row as stored. `record` and `state` are validated on load by the engine. */
export interface BatchRow {
  id: string;
  job: string;
  status: BatchStatus;
  priority: number;
  createdAt: string;
  record: unknown;
  state: unknown | undefined;
}

export interface BatchFilter {
  status?: BatchStatus | readonly BatchStatus[] | undefined;
  job?: string | undefined;
  limit?: number | undefined;
  /** Only batches not in a final status, oldest first. */
  unfinished?: boolean | undefined;
}

export interface PartitionInput {
  key: string;
  payload: unknown;
  /**
   * The payload's JSON text, taken when the partition was yielded; when given, stores write it
   * instead of serializing `payload` again. Without it a store serializes `payload` the moment it
   * receives the partition, never later: a source may reuse one object for every partition.
   */
  json?: string | undefined;
}

/** The partitions of a new batch, in index order. */
export type PartitionSource = Iterable<PartitionInput> | AsyncIterable<PartitionInput>;

export type PartitionStatus = 'pending' | 'succeeded' | 'failed';

export interface PartitionRow {
  index: number;
  key: string;
  payload: unknown;
  status: PartitionStatus;
}

export interface OutcomeRecord {
  index: number;
  key: string;
  status: 'succeeded' | 'failed';
  result?: unknown;
  error?: SerializedError | undefined;
  attempts: number;
  durationMs: number;
  /** Journal position, 1-based and gap-free per batch, assigned by the batch actor. */
  seq: number;
  finishedAt: string;
}

export interface PartitionFilter {
  status?: PartitionStatus | undefined;
}

/** A partition as `engine.partitions()` lists it; `R` is the job's result type. */
export interface PartitionView<R = unknown> {
  index: number;
  key: string;
  status: PartitionStatus;
  result?: R;
  error?: SerializedError | undefined;
  attempts: number;
  durationMs?: number | undefined;
  finishedAt?: string | undefined;
  /** The outcomes of this partition's earlier runs (engine.retryFailed), oldest first. */
  history?: PartitionRun[] | undefined;
}

/** A partition's outcome in an earlier run of its batch (a redriven batch keeps them). */
export interface PartitionRun {
  /** The run it failed in: 1 for the batch's first run. */
  run: number;
  status: 'failed';
  error?: SerializedError | undefined;
  attempts: number;
  durationMs?: number | undefined;
  finishedAt?: string | undefined;
}

export interface Fence {
  owner: string;
  epoch: number;
}

export interface Lease extends Fence {
  expiresAt: number;
}

/** A lease as {@link Store.leaseHistory} lists it. */
export interface LeaseTaken extends Fence {
  takenAt: number;
}

/**
 * A lease just taken, with the batch's stored status and journal position at that moment: an
 * engine that queued or resumed the batch from an older read (another engine may have run it
 * meanwhile) knows whether to read it again.
 */
export interface AcquiredLease extends Lease {
  status: BatchStatus;
  journalSeq: number;
  /** A request left for the batch's owner (requestControl), to carry out before anything runs. */
  control?: BatchControl | undefined;
}

/** Is this batch's row final (no lease or work needed)? */
export const FINAL_STATUS_LIST: readonly BatchStatus[] = FINAL_STATUSES;
/**
 * The statuses of a batch that is not final. A query for unfinished batches names these (`status IN`)
 * rather than excluding the final ones (`status NOT IN`): the status index then reads only the
 * unfinished rows, where `NOT IN` read the whole table, every finished batch ever stored, on every
 * claim sweep of every engine, once a second (an outside probe: an idle engine on 30,000 finished
 * batches held its event loop 87–156 ms a second on SQLite; two full scans a second on PostgreSQL).
 */
export const UNFINISHED_STATUS_LIST: readonly BatchStatus[] = BATCH_STATUSES.filter(
  (s) => !FINAL_STATUSES.includes(s),
);

/**
 * Ranges of partitions that a batch's owner offers to the engines sharing the store (`distribute`).
 * The owner's batch actor stays the only writer of the batch's counts and journal: a range's holder
 * runs each member once and stages one answer per member; the owner takes the answers of a range
 * whose every member answered, withdraws the range, and counts them like its own lanes' outcomes.
 * Holds are leases with an epoch: a holder that stops renewing loses the range, and whoever claims it
 * next runs only the members that have no answer yet. Every write of a holder is fenced by its hold.
 */
export interface RangeStore {
  /**
   * Offer a range (fenced by the batch's lease: undefined, with nothing written, when `fence` no
   * longer holds it). Returns the range's id.
   */
  offer(batchId: string, range: RangeOffer, fence: Fence): Promise<number | undefined>;
  /**
   * Claim at most `limit` open ranges that nobody holds (or whose hold expired), oldest first, of
   * the given jobs; `offeredBy` only those a given owner offered. `SKIP LOCKED` on PostgreSQL.
   */
  claim(holder: string, filter: RangeFilter, ttlMs: number, limit: number): Promise<ClaimedRange[]>;
  /** Extend holds; returns the ids of the ranges still held (the others were withdrawn or taken). */
  renew(holds: readonly RangeHold[], ttlMs: number): Promise<number[]>;
  /** Give holds back (an engine that stops): the ranges may be claimed at once. */
  release(holds: readonly RangeHold[]): Promise<void>;
  /**
   * Stage answers of members (by position in the range); an answer already staged is kept. With
   * `complete`, the range is marked answered when every member has one. False, with nothing
   * written, when the hold is lost.
   */
  answer(hold: RangeHold, answers: readonly StagedAnswer[], complete: boolean): Promise<boolean>;
  /** Of these ranges, those answered, with their answers in member order. */
  answered(ids: readonly number[]): Promise<Array<{ id: number; answers: unknown[] }>>;
  /** Withdraw ranges and their answers: these ids, or all of the batch offered under an epoch below `belowEpoch`, or all of it. */
  withdraw(batchId: string, which?: { ids?: readonly number[]; belowEpoch?: number }): Promise<void>;
  /** Calls `listener` on ranges offered or answered (PostgreSQL: every engine on the schema; SQLite: this store object). Best effort. */
  watch(listener: (event: RangeEvent) => void): () => void;
}

/** What an owner offers: members are partition indexes, all at `attempt`. */
export interface RangeOffer {
  job: string;
  attempt: number;
  redelivered: boolean;
  members: readonly number[];
  /** The offering engine's lease owner id. */
  offeredBy: string;
}

export interface RangeFilter {
  jobs: readonly string[];
  /** Only ranges offered by this owner (an engine that does not help others). */
  offeredBy?: string | undefined;
}

export interface RangeHold {
  id: number;
  holder: string;
  epoch: number;
}

export interface ClaimedRange extends RangeHold {
  batchId: string;
  job: string;
  attempt: number;
  redelivered: boolean;
  members: number[];
  /** Positions of the members that have an answer already (an earlier holder's). */
  answered: number[];
}

export interface StagedAnswer {
  /** The member's position in the range. */
  member: number;
  answer: unknown;
}

export interface RangeEvent {
  type: 'offered' | 'answered';
  batchId: string;
  job: string;
  id: number;
}
