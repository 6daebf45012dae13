import { Worker } from 'node:worker_threads';
import { StoreError } from '../errors.js';
import { liveIds } from '../liveness.js';
import { type BatchStatus, isFinalStatus } from '../summary.js';
import { commitGroup, MAX_GROUP, type Settled } from './sqlite-group.js';
import type { SqliteWrite, Statements } from './sqlite-statements.js';
import { fromWire, type WireSettled } from './sqlite-wire.js';
import type { WriterData, WriterRequest } from './sqlite-writer.js';
import { compiledThreadFile, endThread } from './store-threads.js';

interface Waiting extends Settler {
  write: SqliteWrite;
}

/** Who waits for a write that the writer thread holds: its data went with the message. */
interface Settler {
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

function settle(waiting: readonly Settler[], settled: readonly Settled[]): void {
  for (let i = 0; i < waiting.length; i++) {
    const s = settled[i]!;
    if (s.ok) waiting[i]!.resolve(s.value);
    else waiting[i]!.reject(s.error);
  }
}

/** What a write or read of a SQLite store that is not open (or closed) fails with. */
export const notOpen = () => new StoreError('sqlite store is not open: call open() first');

/**
 * Who commits the SQLite store's writes (src/store/sqlite.ts, "Writer thread"). A write asked for
 * now joins a group that commits a moment later in one transaction (src/store/sqlite-group.ts),
 * with every other write asked for meanwhile: the creations, journal groups, states and leases of
 * all the batches that got there together. Each promise settles once its group has committed.
 *
 * A group with much to write (outcomes, partitions: {@link THREAD_MIN_WEIGHT}) goes to the writer
 * thread (src/store/sqlite-writer.ts), and the engine's thread goes on with its own work meanwhile.
 * A small one is committed on the engine's thread, on its own connection: handing it over and
 * back (two messages, two thread wake-ups) cost more than writing it. Groups commit in the order
 * they were asked for: while one is with the thread, the next waits for it, whatever its size,
 * and goes as the next group (so the busier the store, the larger its groups).
 *
 * The group is made in a microtask: after the code running now and the microtasks queued before
 * it, so every batch moving in step with this one (a backlog of submits, lanes settling together)
 * has joined it. Waiting for the next turn of the event loop (`setImmediate`) would gather writes
 * from more timers and I/O callbacks, but cost more than it saved: measured, 60–80 µs more CPU
 * per one-partition batch submitted one after another.
 */
export class Writer {
  private queue: Waiting[] = [];
  private queued = false;
  /**
   * Who waits for the group the writer thread holds, if it holds one. Not the writes themselves:
   * the thread has its copy, and outcome rows kept here until it answers outlived two scavenges
   * and were promoted, a third of the old generation's garbage of a 1,000,000-partition batch.
   */
  private sent: Settler[] | undefined;
  private ended: StoreError | undefined;
  /** close() waiting for the last group to commit. */
  private idle: Array<() => void> = [];
  private readonly exited: Promise<void> | undefined;
  /** The writer thread; undefined when none runs, or once it ended while the store was open. */
  private thread: Worker | undefined;

  /**
   * `s`: the engine's thread's statements. `thread`: the writer thread, if one runs (not for
   * `:memory:`, which a thread cannot open, nor when it could not start).
   */
  constructor(
    private readonly s: Statements,
    thread?: Worker,
    /**
     * Turns the busy timeout of the engine's thread's connection off and on. Off while a writer
     * thread runs: a group the engine's thread would commit while another process holds the write
     * lock is refused at once and goes to the writer thread, which waits for it there while the
     * engine's event loop goes on (waiting here froze the host: an outside probe).
     */
    private readonly lockWait?: { off(): void; on(): void },
  ) {
    this.thread = thread;
    if (!thread) return;
    lockWait?.off();
    this.exited = new Promise((resolve) => thread.once('exit', () => resolve()));
    thread.on('message', (answer: WireSettled[]) => this.answered(answer));
    thread.on('error', (err) => this.lost(thread, `failed: ${err.message}`));
    thread.on('exit', (code) => this.lost(thread, `exited (code ${code})`));
    // Referenced only while a group is with it: an idle store does not keep the process alive.
    thread.unref();
  }

  write(write: SqliteWrite): Promise<unknown> {
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => {
      this.queue.push({ write, resolve, reject });
      this.schedule();
    });
  }

  /** Commits what was asked for, then stops taking writes and lets the thread end. */
  async close(): Promise<void> {
    for (;;) {
      if (this.sent) await new Promise<void>((resolve) => this.idle.push(resolve));
      else if (this.queue.length > 0 && !this.ended) this.commit(false);
      else break;
    }
    if (this.ended) return;
    this.ended = notOpen();
    const thread = this.thread;
    if (!thread) return;
    thread.ref();
    await endThread(thread, this.exited!);
  }

  private schedule(later = false): void {
    if (this.queued || this.sent) return;
    this.queued = true;
    const commit = () => {
      this.queued = false;
      this.commit();
    };
    if (later) setImmediate(commit);
    else queueMicrotask(commit);
  }

  /** The next group: to the thread, or committed here. `more`: schedule what is left. */
  private commit(more = true): void {
    if (this.sent || this.ended || this.queue.length === 0) return;
    const group = this.queue.length <= MAX_GROUP ? this.queue : this.queue.slice(0, MAX_GROUP);
    this.queue = group === this.queue ? [] : this.queue.slice(MAX_GROUP);
    if (this.thread && toThread(group)) {
      this.send(this.thread, group);
      return;
    }
    // More than one group's worth (a backlog submitted at once): the rest after I/O has had a turn.
    if (more && this.queue.length > 0) this.schedule(true);
    const writes = group.map((w) => w.write);
    if (this.thread && this.lockWait) {
      const settled = commitGroup(this.s, writes, true);
      if (settled === 'again') this.send(this.thread, group);
      else settle(group, settled);
      return;
    }
    settle(group, commitGroup(this.s, writes));
  }

  private send(thread: Worker, group: Waiting[]): void {
    const request: WriterRequest = { writes: group.map((w) => w.write), live: liveIds() };
    try {
      thread.postMessage(request);
    } catch (err) {
      // A write that cannot be cloned (a bug: writes carry only text, numbers and plain rows).
      const why = `sqlite store: cannot send a write to the writer thread: ${(err as Error).message}`;
      for (const w of group) w.reject(new StoreError(why, err));
      this.schedule();
      return;
    }
    this.sent = group.map(settlerOf);
    thread.ref();
  }

  private answered(answer: WireSettled[]): void {
    const group = this.sent;
    if (!group) return;
    this.sent = undefined;
    this.thread?.unref();
    if (this.queue.length > 0) this.schedule();
    for (const resolve of this.idle.splice(0)) resolve();
    settle(group, answer.map(fromWire));
  }

  /**
   * The writer thread ended while the store was open (it crashed, or was terminated). The group it
   * held may or may not have committed, and nobody can tell: its writers get a StoreError and do
   * what they do after any failed write (the journal writes it again, its outcomes refused if they
   * are stored already; a submit rejects, and the same `id` submitted again finds its batch).
   * Every later group commits on the engine's thread, as on a store that has no writer thread.
   */
  private lost(thread: Worker, why: string): void {
    if (this.ended || this.thread !== thread) return;
    this.thread = undefined;
    // From now on the engine's thread commits every group: it waits for locks again.
    this.lockWait?.on();
    const err = new StoreError(`sqlite store: the writer thread ${why}; writes go on on the engine's thread`);
    const group = this.sent ?? [];
    this.sent = undefined;
    for (const resolve of this.idle.splice(0)) resolve();
    if (this.queue.length > 0) this.schedule();
    for (const w of group) w.reject(err);
  }
}

/**
 * A group at least this heavy (rows to write, counted by {@link toThread}) goes to the writer thread. Measured
 * (docs/benchmarks.md, "The writer thread"): a hand-over costs the engine's thread about as much
 * as writing a few dozen rows itself.
 */
export const THREAD_MIN_WEIGHT = 32;

/**
 * A group that ends a batch (its final state) and writes at most this many rows is committed on the
 * engine's thread whatever its weight: the batch's end waits for it, and the hand-over to the thread
 * and back is most of the time from its last outcome to its final state (docs/benchmarks.md,
 * "Finalization: the last write on the engine's thread"). Heavier, it goes to the thread as usual.
 */
export const FINAL_ON_ENGINE_MAX_WEIGHT = 1024;

const settlerOf = ({ resolve, reject }: Waiting): Settler => ({ resolve, reject });

/** Does the group go to the writer thread? */
function toThread(group: readonly Waiting[]): boolean {
  let weight = 0;
  let ends = false;
  for (const { write: w } of group) {
    if (w.k === 'append' || w.k === 'commit') weight += 1 + w.outcomes.length;
    else if (w.k === 'whole' || w.k === 'insertChunk' || w.k === 'finish') weight += 1 + w.chunk.length;
    // engine.prune's deletes: whole batches, however many rows they hold, off the engine's thread.
    else if (w.k === 'all') weight += THREAD_MIN_WEIGHT;
    else weight += 1;
    if ((w.k === 'commit' || w.k === 'save') && isFinalStatus(w.state.status as BatchStatus)) ends = true;
  }
  if (weight < THREAD_MIN_WEIGHT) return false;
  return !(ends && weight <= FINAL_ON_ENGINE_MAX_WEIGHT);
}

/**
 * Starts the writer thread on `path` and waits until its connection is open; undefined when it
 * cannot start (its compiled file is not found, or it failed to open): the engine's thread then
 * writes every group itself.
 */
export async function startWriterThread(data: WriterData): Promise<Worker | undefined> {
  const file = compiledThreadFile('sqlite-writer');
  if (!file) return undefined;
  const worker = new Worker(file, { workerData: data });
  let listeners: Array<[string, (arg: unknown) => void]> = [];
  const ready = await new Promise<boolean>((resolve) => {
    listeners = [
      ['message', (m) => resolve(m === 'ready')],
      ['error', () => resolve(false)],
      ['exit', () => resolve(false)],
    ];
    for (const [event, listener] of listeners) worker.once(event, listener);
  });
  // Only these: Worker listens to its own listeners to start its message port.
  for (const [event, listener] of listeners) worker.off(event, listener);
  if (!ready) {
    await worker.terminate();
    return undefined;
  }
  return worker;
}
