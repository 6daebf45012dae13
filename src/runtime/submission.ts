import { randomUUID } from 'node:crypto';
import { type SubmitOptions, submitOptionsSchema } from '../engine-options.js';
import { EngineStateError, toError, ValidationError } from '../errors.js';
import type { AnyJobDefinition, JobWithInput, Partition } from '../job.js';
import { registeredJob } from '../job-ref.js';
import { closeSource } from '../store/inputs.js';
import { type BatchRecord, type PartitionInput, SCHEMA_VERSION, type Store } from '../store/store.js';
import { parseOptions, parseOrThrow } from '../validation.js';
import {
  badName,
  isDotSegment,
  isThenable,
  longestParentId,
  MAX_ID_LENGTH,
  MAX_KEY_LENGTH,
  toStoredJson,
  unstorable,
} from '../values.js';
import type { Seed } from './feeder.js';

export interface SubmissionDeps {
  store: Store;
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  /** Is there a batch with this id (running here, or in the store)? */
  exists: (id: string) => Promise<boolean>;
  /** Has the engine begun to stop? A submit still reading its source then reads no further. */
  stopping?: () => boolean;
}

/** A submit after validation: what to store, or the id of the batch that already has it. */
export type Submission =
  | { created: true; record: BatchRecord; seed: Seed | undefined }
  | { created: false; id: string };

/**
 * Validate a submit and store its batch (docs/guide.md, "Submitting"). Everything is checked before
 * anything is stored, and the partitions are checked as they stream into the store: a rejected
 * submit leaves nothing behind. Submitting an id that exists returns it (idempotent submit).
 */
export async function submitBatch<I>(
  deps: SubmissionDeps,
  jobRef: string | JobWithInput<I>,
  input: I,
  options: SubmitOptions,
): Promise<Submission> {
  const job = registeredJob(jobRef, deps.jobs, 'submit');
  const opts = parseOptions(submitOptionsSchema, options ?? {}, 'submit options');
  if (opts.id !== undefined) {
    const bad = badName(opts.id, MAX_ID_LENGTH) ?? dotSegment(opts.id);
    if (bad) throw new ValidationError(`Invalid submit options: id ${bad}`, [{ path: 'id', message: bad }]);
    const most = longestParentId(job, deps.jobs);
    if (opts.id.length > most) {
      // Else every child would be refused at the parent's end (recorded in `triggered`, never run).
      const message = `is too long for the job's triggers: their batch ids ("${opts.id}>…") must fit ${MAX_ID_LENGTH} characters, so at most ${most}`;
      throw new ValidationError(`Invalid submit options: id ${message}`, [{ path: 'id', message }]);
    }
    // Before the input is checked: the batch that exists is the answer, whatever this input is.
    if (await deps.exists(opts.id)) return { created: false, id: opts.id };
  }
  const parsedInput = job.input
    ? parseOrThrow(job.input as never, input, `input for job "${job.name}"`)
    : input;
  const id = opts.id ?? timeOrderedUuid();
  const after = [...new Set(opts.after ?? [])];
  if (after.includes(id))
    throw new ValidationError(`Invalid submit options: batch "${id}" cannot run after itself`, [
      { path: 'after', message: 'cycle' },
    ]);
  for (const parent of after) {
    if (!(await deps.exists(parent)))
      throw new ValidationError(`Invalid submit options: unknown parent batch "${parent}"`, [
        { path: 'after', message: `unknown batch "${parent}"` },
      ]);
  }
  const record: BatchRecord = {
    schemaVersion: SCHEMA_VERSION,
    id,
    job: job.name,
    total: 0,
    // `|| 0`: -0 is stored and shown as 0.
    priority: opts.priority || 0,
    after,
    when: opts.when ?? 'succeeded',
    createdAt: new Date().toISOString(),
    // A copy: the caller may change its object after submit (summaries give copies of this one).
    ...(opts.meta ? { meta: { ...opts.meta } } : {}),
  };
  let source: Iterable<Partition> | AsyncIterable<Partition>;
  try {
    source = job.partition(parsedInput as never) as Iterable<Partition>;
    // An `async partition()` that returns its array: awaited (nothing is stored before).
    if (isThenable(source)) source = (await source) as Iterable<Partition>;
  } catch (err) {
    throw partitionError(job.name, err);
  }
  const counter: Counter = { total: 0, seed: [], seedBytes: 0 };
  const { created } = await deps.store.createBatch(
    record,
    checkedPartitions(job.name, source, counter, deps.stopping),
  );
  if (!created) return { created: false, id };
  record.total = counter.total;
  return { created: true, record, seed: counter.seed };
}

/**
 * A new batch id: a UUID of version 7 (RFC 9562), its first 48 bits the time in milliseconds, the
 * rest random. Ids made one after another sort together, so a stored batch's row and index entries
 * land beside those of the batches submitted just before it, on the same few pages, rather than on
 * a random page each (which every transaction then writes whole to SQLite's WAL).
 */
export function timeOrderedUuid(now = Date.now()): string {
  const random = randomUUID(); // xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx, V the variant
  const time = now.toString(16).padStart(12, '0');
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15)}`;
}

/** What a submit cut by stop() while its batch was being stored answers. */
export const STOPPED_WHILE_STORING =
  'submit(): the engine stopped while the batch was being stored; nothing was stored';

/** A batch this small is kept whole after its submit (runtime/feeder.ts, `Seed`): its first page needs no read. */
const SEED_PARTITIONS = 4;
const SEED_BYTES = 1024;

interface Counter {
  total: number;
  /** The partitions so far, while the batch is small enough to be a seed. */
  seed: Array<{ key: string; json: string | undefined }> | undefined;
  seedBytes: number;
}

/** An error thrown by a job's partition() (or its iterator) is the submitter's input problem. */
function partitionError(job: string, err: unknown): ValidationError {
  if (err instanceof ValidationError) return err;
  return new ValidationError(`job "${job}": partition() threw: ${toError(err).message}`, [], err);
}

function isIterable(value: unknown): boolean {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  const v = value as Partial<Record<symbol, unknown>>;
  return typeof v[Symbol.iterator] === 'function' || typeof v[Symbol.asyncIterator] === 'function';
}

function describeReturn(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/**
 * Check each partition as it streams into the store, and capture its payload as JSON text the
 * moment it is yielded: a generator that reuses one payload object between yields must not change
 * what was already handed over (docs/guide.md, "What can be stored"). A source that is not async
 * (an array, a generator) is handed on as a plain iterable: a promise per partition cost more main
 * thread than the rest of its checks (docs/benchmarks.md, "Submit without a promise per partition").
 */
function checkedPartitions(
  job: string,
  source: Iterable<Partition> | AsyncIterable<Partition>,
  counter: Counter,
  stopping: () => boolean = () => false,
): Iterable<PartitionInput> | AsyncIterable<PartitionInput> {
  if (!isIterable(source))
    throw new ValidationError(
      `job "${job}": partition() returned ${describeReturn(source)}, not an iterable: return an array, an iterable or an async iterable (or a promise of an array or an iterable)`,
      [{ path: 'partition', message: 'not an iterable' }],
    );
  const reading = new Reading(job, counter, stopping);
  // A sync source's partitions may be promises, which the stores await (as `for await` does).
  return typeof (source as Partial<AsyncIterable<Partition>>)[Symbol.asyncIterator] === 'function'
    ? checkedAsync(reading, source as AsyncIterable<Partition>)
    : (checkedSync(reading, source as Iterable<Partition>) as Iterable<PartitionInput>);
}

/**
 * A sync source's partitions, checked. A partition that is a promise (`ids.map(async (id) => …)`)
 * is handed on as the promise of its check, and the store awaits it before it reads the next, as
 * `for await` would.
 */
function* checkedSync(
  reading: Reading,
  source: Iterable<Partition>,
): Generator<PartitionInput | Promise<PartitionInput>> {
  const iterator = reading.open(() => source[Symbol.iterator]());
  try {
    for (;;) {
      const step = reading.step(() => stepOf(iterator.next()));
      if (step.done) return reading.ended();
      yield isThenable(step.value) ? reading.later(step.value) : reading.check(step.value);
    }
  } finally {
    reading.close(iterator);
  }
}

async function* checkedAsync(
  reading: Reading,
  source: AsyncIterable<Partition>,
): AsyncGenerator<PartitionInput> {
  const iterator = reading.open(() => source[Symbol.asyncIterator]());
  const next = () =>
    Promise.resolve(iterator.next())
      .then(stepOf)
      .then(undefined, (err: unknown) => reading.threw(err));
  try {
    for (;;) {
      const step = await reading.step(next);
      if (step.done) return reading.ended();
      yield reading.check(step.value);
    }
  } finally {
    reading.close(iterator);
  }
}

/**
 * An iterator's result read as `for…of` reads it: an object, its `done` and `value` read once. A
 * result that is not an object, or a getter that throws, is the source's error.
 */
function stepOf(result: unknown): { done: boolean; value: unknown } {
  if (typeof result !== 'object' || result === null)
    throw new TypeError(`Iterator result ${String(result)} is not an object`);
  const r = result as IteratorResult<unknown>;
  const done = Boolean(r.done);
  return { done, value: done ? undefined : r.value };
}

/** One read of a job's partitions, sync or async: the checks and the closing both share. */
class Reading {
  /** Whoever stops reading early (a refused partition, a store that failed, a stop()) closes the source. */
  private reading = true;

  constructor(
    private readonly job: string,
    private readonly counter: Counter,
    private readonly stopping: () => boolean,
  ) {}

  open<T>(iterator: () => T): T {
    try {
      return iterator();
    } catch (err) {
      throw partitionError(this.job, err);
    }
  }

  /**
   * The source's next step. Refused once stop() began: the store undoes what it wrote, and stop()
   * does not wait for the source's end.
   */
  step<T>(next: () => T): T {
    if (this.stopping()) throw new EngineStateError(STOPPED_WHILE_STORING);
    try {
      return next();
    } catch (err) {
      return this.threw(err);
    }
  }

  /** The source threw: it has ended, and its error is the submitter's input problem. */
  threw(err: unknown): never {
    this.reading = false;
    throw partitionError(this.job, err);
  }

  /** The source's end. */
  ended(): void {
    this.reading = false;
  }

  /** A partition, checked and captured. */
  check(value: unknown): PartitionInput {
    return checkedPartition(value as Partition, this.counter);
  }

  /** A partition given as a promise: checked once it settles; its rejection is the source's error. */
  later(value: PromiseLike<unknown>): Promise<PartitionInput> {
    return Promise.resolve(value).then(
      (p) => this.check(p),
      (err: unknown) => {
        throw partitionError(this.job, err);
      },
    );
  }

  /** As `for await` would: a generator's `finally` runs, a cursor it holds is released. */
  close(iterator: Iterator<unknown> | AsyncIterator<unknown>): void {
    if (this.reading) closeSource(iterator);
  }
}

/** Check partition #counter.total as it is yielded, and capture its payload's JSON text at once. */
function checkedPartition(p: Partition, counter: Counter): CapturedPartition {
  const n = counter.total;
  if (typeof p !== 'object' || p === null)
    throw new ValidationError(`Invalid partition #${n}: expected { key, payload }`, [
      { path: `partitions.${n}`, message: 'expected an object' },
    ]);
  const badKey = badName(p.key, MAX_KEY_LENGTH);
  if (badKey)
    throw new ValidationError(`Invalid partition #${n}: key ${badKey}`, [
      { path: `partitions.${n}.key`, message: badKey },
    ]);
  const badPayload = unstorable(p.payload);
  if (badPayload)
    throw new ValidationError(
      `Invalid partition #${n} ("${p.key}"): payload cannot be stored: ${badPayload.replace('(root)', 'payload')}`,
      [{ path: `partitions.${n}.payload`, message: badPayload }],
    );
  counter.total++;
  const captured = new CapturedPartition(p.key, toStoredJson(p.payload));
  if (counter.seed) {
    counter.seedBytes += p.key.length + (captured.json?.length ?? 0);
    if (counter.total > SEED_PARTITIONS || counter.seedBytes > SEED_BYTES) counter.seed = undefined;
    else counter.seed.push(captured);
  }
  return captured;
}

/** A partition as handed to the store: its payload's JSON text, and the payload read back from it on demand. */
class CapturedPartition implements PartitionInput {
  constructor(
    readonly key: string,
    readonly json: string | undefined,
  ) {}

  get payload(): unknown {
    return this.json === undefined ? undefined : JSON.parse(this.json);
  }
}

/**
 * `.` and `..` are refused as batch ids: a URL path cannot name them (`/batches/..` is `/`), so the
 * HTTP API, the dashboard and `partita --url` could never reach such a batch, not even to cancel it
 * (an outside probe). Stored ones, if any, stay readable through the engine and the CLI's store.
 */
function dotSegment(id: string): string | undefined {
  return isDotSegment(id) ? `must not be "${id}" (no URL can name it)` : undefined;
}
