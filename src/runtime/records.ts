import { z } from 'zod';
import { SnapshotVersionError, StoreError } from '../errors.js';
import {
  ascending,
  BATCH_MACHINE_VERSION,
  batchMachine,
  type InFlight,
  membersOf,
  sizeOf,
} from '../machines/batch.js';
import { type BatchRecord, type BatchRow, type BatchState, SCHEMA_VERSION } from '../store/store.js';
import { BATCH_STATUSES, type BatchStatus, isFinalStatus } from '../summary.js';

/**
 * Validation of what comes back from a store. Every record and state carries `schemaVersion`;
 * older versions migrate forward through pure functions (none yet: version 1 is the first), a
 * newer one is refused with SNAPSHOT_VERSION, and anything that does not parse is a STORE error.
 * Either error concerns that batch only: the engine reports it and leaves the row untouched.
 */

const version = z.object({ schemaVersion: z.number().int().positive() }).loose();

const batchRecordV1 = z.object({
  schemaVersion: z.literal(1),
  id: z.string().min(1),
  job: z.string().min(1),
  total: z.number().int().min(0),
  priority: z.number(),
  after: z.array(z.string()),
  when: z.enum(['succeeded', 'settled']),
  createdAt: z.string(),
  meta: z.record(z.string(), z.string()).optional(),
});

const batchStateV1 = z.object({
  schemaVersion: z.literal(1),
  machineVersion: z.number().int().positive(),
  status: z.enum(BATCH_STATUSES as [BatchStatus, ...BatchStatus[]]),
  journalSeq: z.number().int().min(0),
  snapshot: z.unknown(),
  summary: z.unknown(),
});

type PersistedMachine = { context: Record<string, unknown> } & Record<string, unknown>;

/** The context keys that machine version 2 moved into `context.config`. */
const V1_CONFIG_KEYS = new Set([
  'batchId',
  'job',
  'total',
  'lanes',
  'maxAttempts',
  'backoffMs',
  'maxBackoffMs',
  'timeoutMs',
  'failurePolicy',
  'pageSize',
]);

/** Batch machine snapshots from machine version N to N + 1, by N (pure). */
const snapshotMigrations: Record<number, (old: PersistedMachine) => PersistedMachine> = {
  // 4 → 5: `redeliver` may hold a group (a group in flight at a restart comes back whole); what
  // version 4 stored still means the same. The version is raised so that an earlier build refuses
  // (SNAPSHOT_VERSION) a snapshot whose groups it would run as their first member only.
  4: (old) => old,
  // 3 → 4: item batching. A lane may hold a group (`inFlight[lane].more`); `redeliver` now holds the
  // attempt to run (it held the attempt interrupted); `groupSize` starts at one partition.
  3: (old) => {
    const redeliver = (old.context.redeliver as { index: number; attempt: number }[] | undefined) ?? [];
    return {
      ...old,
      context: {
        ...old.context,
        redeliver: redeliver.map((r) => ({ index: r.index, attempt: r.attempt + 1 })),
        groupSize: 1,
      },
    };
  },
  // 2 → 3: the `paused` state and the PAUSE / CONTINUE events were added; nothing stored changes.
  2: (old) => old,
  // 1 → 2: the fixed settings moved into `context.config` (a smaller, fast-mode context object).
  1: (old) => {
    const config: Record<string, unknown> = {};
    const rest: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(old.context)) {
      if (V1_CONFIG_KEYS.has(key)) config[key] = value;
      else rest[key] = value;
    }
    return { ...old, context: { config, ...rest } };
  },
};

/** Migrations from version N to N + 1, by N. Empty until version 2 exists. */
const recordMigrations: Record<number, (old: Record<string, unknown>) => Record<string, unknown>> = {};
const stateMigrations: Record<number, (old: Record<string, unknown>) => Record<string, unknown>> = {};

function upgrade(
  raw: unknown,
  migrations: Record<number, (old: Record<string, unknown>) => Record<string, unknown>>,
  what: string,
  id: string,
): Record<string, unknown> {
  const value = typeof raw === 'string' ? parseJson(raw, what, id) : raw;
  const head = version.safeParse(value);
  if (!head.success) throw corrupt(id, `stored ${what} is corrupt (no schemaVersion)`);
  let current = head.data as Record<string, unknown> & { schemaVersion: number };
  if (current.schemaVersion > SCHEMA_VERSION)
    throw new SnapshotVersionError(current.schemaVersion, SCHEMA_VERSION, `${what} of batch "${id}"`);
  while (current.schemaVersion < SCHEMA_VERSION) {
    const step = migrations[current.schemaVersion];
    if (!step)
      throw new SnapshotVersionError(current.schemaVersion, SCHEMA_VERSION, `${what} of batch "${id}"`);
    current = { ...step(current), schemaVersion: current.schemaVersion + 1 } as typeof current;
  }
  return current;
}

function parseJson(text: string, what: string, id: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw corrupt(id, `stored ${what} is not valid JSON`, err);
  }
}

export function parseRecord(row: BatchRow): BatchRecord {
  const value = upgrade(row.record, recordMigrations, 'record', row.id);
  const parsed = batchRecordV1.safeParse(value);
  if (!parsed.success) throw corrupt(row.id, `stored record is invalid: ${parsed.error.message}`);
  return parsed.data;
}

export function parseState(row: BatchRow): BatchState | undefined {
  // No state yet: a batch not yet admitted. A status past QUEUED says one was written: lost since.
  if (row.state === undefined) {
    if (row.status === 'QUEUED') return undefined;
    throw corrupt(row.id, `stored state is missing (its status is ${row.status})`);
  }
  // SQL NULL is undefined above; a state that is JSON `null` was written by no partita.
  if (row.state === null) throw corrupt(row.id, 'stored state is corrupt (null)');
  const value = upgrade(row.state, stateMigrations, 'state', row.id);
  const parsed = batchStateV1.safeParse(value);
  if (!parsed.success) throw corrupt(row.id, `stored state is invalid: ${parsed.error.message}`);
  const state = parsed.data as BatchState;
  const what = `batch machine snapshot of batch "${row.id}"`;
  if (state.machineVersion > BATCH_MACHINE_VERSION)
    throw new SnapshotVersionError(state.machineVersion, BATCH_MACHINE_VERSION, what, 'machineVersion');
  while (state.machineVersion < BATCH_MACHINE_VERSION) {
    const step = snapshotMigrations[state.machineVersion];
    if (!step)
      throw new SnapshotVersionError(state.machineVersion, BATCH_MACHINE_VERSION, what, 'machineVersion');
    state.snapshot = step(state.snapshot as PersistedMachine);
    state.machineVersion++;
  }
  // A state that will be restored must be one the machine can run from; a final one is only read
  // (its summary), and a batch that crashed is stored FAILED with no snapshot.
  const fault = isFinalStatus(state.status) ? undefined : snapshotFault(state.snapshot);
  if (fault) throw corrupt(row.id, `stored state is invalid: ${fault}`);
  // Dispatch reads `settledAhead` ascending; earlier builds kept a restart's replayed ones in the
  // journal's order.
  if (!isFinalStatus(state.status))
    ascending((state.snapshot as PersistedMachine).context.settledAhead as number[]);
  return state;
}

/** A stored row of batch `id` that is damaged: reported (STORE), left untouched. */
const corrupt = (id: string, what: string, cause?: unknown) =>
  new StoreError(`Batch "${id}": ${what}`, cause, { corrupt: true });

/** The batch machine's state names: a restored snapshot's `value` is one of them. */
const STATE_NAMES = new Set(Object.keys(batchMachine.states));

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * Why a stored batch machine snapshot cannot be restored, or undefined when it can. Checked by
 * hand (every unfinished state read from the store goes through here): the keys the machine and the
 * engine read, and the counts they add up. Restored as it was, such a snapshot threw inside the
 * actor, or left a batch that never ended.
 */
function snapshotFault(snapshot: unknown): string | undefined {
  if (!isObject(snapshot)) return 'the snapshot is not an object';
  if (snapshot.status !== 'active') return `the snapshot's status is ${JSON.stringify(snapshot.status)}`;
  if (typeof snapshot.value !== 'string' || !STATE_NAMES.has(snapshot.value))
    return `the snapshot's value ${JSON.stringify(snapshot.value)} names no state of the batch machine`;
  const c = snapshot.context;
  if (!isObject(c) || !isObject(c.config)) return 'the snapshot has no context or no config';
  const { total, lanes } = c.config;
  if (!isCount(total) || !isCount(lanes) || lanes > total)
    return 'config.total and config.lanes are not counts';
  for (const key of ['cursor', 'loaded', 'succeeded', 'failed', 'running'] as const) {
    const n = c[key];
    if (!isCount(n) || n > total) return `context.${key} is not a count of at most ${total}`;
  }
  if ((c.succeeded as number) + (c.failed as number) > total)
    return 'more outcomes are counted than partitions';
  if (typeof c.loading !== 'boolean' || !isCount(c.groupSize) || c.groupSize < 1)
    return 'context.loading or context.groupSize is invalid';
  if (!Array.isArray(c.inFlight) || c.inFlight.length !== lanes)
    return 'context.inFlight does not hold one entry per lane';
  for (const f of c.inFlight)
    if (f !== null && !isWork(f, total)) return 'context.inFlight holds an invalid entry';
  if (!Array.isArray(c.redeliver) || !Array.isArray(c.settledAhead) || !Array.isArray(c.failures))
    return 'context.redeliver, settledAhead or failures is not a list';
  for (const f of c.redeliver) if (!isWork(f, total)) return 'context.redeliver holds an invalid entry';
  const ahead = new Set<unknown>();
  for (const i of c.settledAhead) {
    if (!isCount(i) || i < (c.cursor as number) || i >= total || ahead.has(i))
      return 'context.settledAhead holds a partition twice, one before the cursor, or one not in the batch';
    ahead.add(i);
  }
  return workFault(c as unknown as WorkContext);
}

interface WorkContext {
  cursor: number;
  running: number;
  inFlight: (InFlight | null)[];
  redeliver: InFlight[];
}

/**
 * Whether the partitions in flight and to redeliver add up (an outside probe's hand-edited
 * snapshots): each dispatched already (below the cursor), none twice, and `running` their number on
 * the lanes. Restored otherwise, a partition was counted twice, never ran, or the batch never ended.
 */
function workFault(c: WorkContext): string | undefined {
  const seen = new Set<number>();
  const fresh = (f: InFlight) => {
    for (const i of membersOf(f)) {
      if (i >= c.cursor || seen.has(i)) return false;
      seen.add(i);
    }
    return true;
  };
  let onLanes = 0;
  for (const f of c.inFlight) {
    if (!f) continue;
    if (!fresh(f)) return 'context.inFlight holds a partition twice, or one not dispatched yet';
    onLanes += sizeOf(f);
  }
  if (onLanes !== c.running) return 'context.running is not the number of partitions on the lanes';
  for (const f of c.redeliver)
    if (!fresh(f)) return 'context.redeliver holds a partition twice, or one not dispatched yet';
  return undefined;
}

/** A partition or a group on a lane or to redeliver: indexes below `total`, an attempt count. */
function isWork(f: unknown, total: number): boolean {
  if (!isObject(f) || !isCount(f.index) || f.index >= total || !isCount(f.attempt)) return false;
  return f.more === undefined || (Array.isArray(f.more) && f.more.every((i) => isCount(i) && i < total));
}
