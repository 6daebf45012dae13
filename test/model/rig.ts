import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { BroadcastChannel } from 'node:worker_threads';
import type { InspectionEvent } from 'xstate';
import {
  type BatchSummary,
  createEngine,
  defineJob,
  type Engine,
  memoryStore,
  type Store,
  sqliteStore,
} from '../../src/index.js';
import { keyOf } from './model.js';

/**
 * A real engine (real store, real worker threads) whose partitions do what the test says: every
 * attempt runs test/fixtures/workers/controlled.mjs, announces itself on a BroadcastChannel and
 * waits for a command. The rig records what the engine shows (summaries from `subscribe`, lane
 * snapshots from `inspect`, worker announcements) and waits on conditions over those records,
 * never on the clock.
 */

export type StoreKind = 'memory' | 'sqlite';

export interface RigOptions {
  total: number;
  concurrency: number;
  attempts: number;
  backoffMs: number;
  timeoutMs?: number | undefined;
  /** The job's item batching (none when absent). */
  batching?: { maxItems: number } | false | undefined;
  /** The job has a finalizer the test releases (`finalize('done' | 'fail')`). */
  finalize: boolean;
  /** The batch waits QUEUED behind a one-partition "gate" batch until `openGate()`. */
  gate: boolean;
}

/** What a test compares of a summary. */
export interface SummaryView {
  status: string;
  total: number;
  succeeded: number;
  failed: number;
  running: number;
  pending: number;
  failures: string[];
  output?: unknown;
  error?: { message: string; code: string | undefined };
}

/** What a test compares of a lane. */
export interface LaneView {
  value: string;
  index?: number;
  attempt?: number;
  progress?: number;
}

interface WorkerMessage {
  type: 'started' | 'progressed';
  key: string;
  attempt: number;
  redelivered?: boolean;
}

const worker = new URL('../fixtures/workers/controlled.mjs', import.meta.url);
const DEADLINE_MS = 5000;
let rigs = 0;

/** Plain JSON: undefined fields dropped, so views compare by value. */
const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

export function viewOf(s: BatchSummary): SummaryView {
  return plain({
    status: s.status,
    total: s.total,
    succeeded: s.succeeded,
    failed: s.failed,
    running: s.running,
    pending: s.pending,
    failures: s.failures.map((f) => f.key),
    output: s.output,
    error: s.error ? { message: s.error.message, code: s.error.code } : undefined,
  });
}

export class Rig {
  readonly batchId: string;
  readonly gateId: string;
  readonly summaries: SummaryView[] = [];
  /** Snapshots of this engine generation's lanes of the batch, in order, by lane id. */
  lanes = new Map<string, LaneView[]>();
  engine!: Engine;
  private readonly channelName: string;
  private readonly channel: BroadcastChannel;
  private readonly messages: WorkerMessage[] = [];
  private readonly used = new Set<WorkerMessage>();
  private readonly listeners = new Set<() => void>();
  private readonly jobs;
  private readonly memory: Store = memoryStore();
  private readonly dir: string | undefined;
  private rootId: string | undefined;
  /** The attempt each lane of each batch runs now ("p1#2"), from the lanes' snapshots. */
  private readonly busy = new Map<string, string | undefined>();
  private unsubscribe: (() => void) | undefined;
  private summaryCursor = 0;
  /** Index of the first worker message of the current engine generation. */
  private generationStart = 0;
  private laneCursor = new Map<string, number>();
  private release!: (decision: 'done' | 'fail') => void;
  private decision!: Promise<'done' | 'fail'>;
  readonly pending: Promise<unknown>[] = [];

  constructor(
    readonly kind: StoreKind,
    readonly options: RigOptions,
  ) {
    const n = ++rigs;
    this.batchId = `model-${process.pid}-${n}`;
    this.gateId = `${this.batchId}-gate`;
    this.channelName = `partita-model-${process.pid}-${n}`;
    this.channel = new BroadcastChannel(this.channelName);
    this.channel.onmessage = (event) => {
      this.messages.push((event as unknown as { data: WorkerMessage }).data);
      this.notify();
    };
    if (kind === 'sqlite') this.dir = mkdtempSync(join(tmpdir(), 'partita-model-'));
    this.resetFinalize();
    const o = options;
    const partition = ({ channel }: { channel: string }) =>
      Array.from({ length: o.total }, (_, i) => ({ key: keyOf(i), payload: { channel } }));
    this.jobs = [
      defineJob({
        name: 'model',
        partition,
        worker,
        concurrency: o.concurrency,
        batching: o.batching ?? false,
        retry: { attempts: o.attempts, backoffMs: o.backoffMs, maxBackoffMs: o.backoffMs },
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
        ...(o.finalize
          ? {
              finalize: async () => {
                if ((await this.decision) === 'fail')
                  throw Object.assign(new Error('finalize failed'), { code: 'E_FINALIZE' });
                return 'finalized';
              },
            }
          : {}),
      }),
      defineJob({
        name: 'gate',
        partition: ({ channel }: { channel: string }) => [{ key: 'gate', payload: { channel } }],
        worker,
        concurrency: 1,
      }),
    ];
  }

  /** Start an engine generation on the rig's store (the same memory store, or the same SQLite file). */
  async start(): Promise<void> {
    this.rootId = undefined;
    this.generationStart = this.messages.length;
    this.lanes = new Map();
    this.laneCursor = new Map();
    const store = this.kind === 'memory' ? this.memory : sqliteStore({ path: join(this.dir!, 'partita.db') });
    this.engine = createEngine({
      jobs: this.jobs,
      store,
      logger: false,
      // minThreads 0: no thread is started ahead of a task (see `quiesce`).
      workers: { maxThreads: 2, minThreads: 0 },
      flushDelayMs: 1,
      inspect: (ev) => this.inspect(ev),
    });
    // Subscribed before start, so the snapshots of a restored batch are seen too.
    this.unsubscribe = this.engine.subscribe(this.batchId, (s) => {
      this.summaries.push(viewOf(s));
      this.notify();
    });
    await this.engine.start();
  }

  async submit(): Promise<void> {
    const input = { channel: this.channelName };
    if (this.options.gate) await this.engine.submit('gate', input, { id: this.gateId });
    await this.engine.submit('model', input, {
      id: this.batchId,
      ...(this.options.gate ? { after: [this.gateId] } : {}),
    });
  }

  /** Graceful stop, then a new engine on the same store: what `RESUME` is to the batch machine. */
  async restart(): Promise<void> {
    await this.stopEngine();
    this.resetFinalize();
    await this.start();
  }

  async close(): Promise<void> {
    try {
      await this.stopEngine();
    } finally {
      this.channel.close();
      this.listeners.clear();
      if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    }
  }

  // --- causing ---------------------------------------------------------------------------------

  /**
   * Wait until the attempt runs in a worker thread, then tell it how to end. An attempt told to end
   * (`succeed`, `fail`, `fail-final`, `crash`) is used up: a later `started` of the same key and
   * attempt (a group's member run again alone) waits for its next start.
   */
  async command(
    key: string,
    attempt: number,
    action: 'succeed' | 'fail' | 'fail-final' | 'progress' | 'crash',
  ): Promise<void> {
    const started = await this.started(key, attempt);
    if (action !== 'progress') this.usedUp(started);
    this.channel.postMessage({ type: 'command', key, attempt, action });
  }

  /** This start of an attempt is over (told how to end, or timed out): `started` looks past it. */
  usedUp(message: WorkerMessage): void {
    this.used.add(message);
  }

  /** Let the gate batch complete, so admission takes the batch. */
  async openGate(): Promise<void> {
    const started = await this.until('the gate partition to start', () =>
      this.messages.findLast((m) => m.type === 'started' && m.key === 'gate'),
    );
    this.channel.postMessage({ type: 'command', key: 'gate', attempt: started.attempt, action: 'succeed' });
  }

  finalize(decision: 'done' | 'fail'): void {
    this.release(decision);
  }

  async pause(): Promise<void> {
    await this.engine.pause(this.batchId);
  }

  async resume(): Promise<void> {
    await this.engine.resume(this.batchId);
  }

  cancel(reason: string): void {
    this.pending.push(this.engine.cancel(this.batchId, reason).catch(() => undefined));
  }

  // --- observing -------------------------------------------------------------------------------

  started(key: string, attempt: number, ms = DEADLINE_MS): Promise<WorkerMessage> {
    return this.until(
      `worker attempt ${key}#${attempt} to start`,
      // Only this engine generation's threads: after a restart a partition may run again with the
      // same attempt number (a lane's retry is not in the batch's snapshot), and a command sent on
      // the older announcement would reach no thread.
      () =>
        this.messages.find(
          (m, i) =>
            i >= this.generationStart &&
            m.type === 'started' &&
            m.key === key &&
            m.attempt === attempt &&
            !this.used.has(m),
        ),
      ms,
    );
  }

  /** Wait until a summary equal to `expected` is seen, at or after the last one matched. */
  async expectSummary(expected: SummaryView, what: string, ms = DEADLINE_MS): Promise<void> {
    const want = plain(expected);
    const at = await this.until(
      `summary ${JSON.stringify(want)} ${what}`,
      () => {
        for (let i = this.summaryCursor; i < this.summaries.length; i++)
          if (isDeepStrictEqual(this.summaries[i], want)) return i;
        return undefined;
      },
      ms,
    );
    this.summaryCursor = at;
  }

  /** Wait until lane `lane` shows `expected`, at or after its last matched snapshot. */
  async expectLane(lane: number, expected: LaneView, what: string, ms = DEADLINE_MS): Promise<void> {
    const id = `lane-${lane}`;
    const want = plain(expected);
    const at = await this.until(
      `${id} ${JSON.stringify(want)} ${what}`,
      () => {
        const seen = this.lanes.get(id) ?? [];
        for (let i = this.laneCursor.get(id) ?? 0; i < seen.length; i++)
          if (isDeepStrictEqual(seen[i], want)) return i;
        return undefined;
      },
      ms,
    );
    this.laneCursor.set(id, at);
  }

  /** The latest snapshot of each lane, or undefined when the lane has not been seen. */
  latestLane(lane: number): LaneView | undefined {
    return this.lanes.get(`lane-${lane}`)?.at(-1);
  }

  /** Resolve with `check()`'s first defined value, re-checked at every observation; reject after `ms`. */
  until<T>(what: string, check: () => T | undefined, ms = DEADLINE_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const attempt = () => {
        const value = check();
        if (value === undefined) return;
        done();
        resolve(value);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`expected ${what}; not seen within ${ms} ms.\n${this.describe()}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(attempt);
      };
      this.listeners.add(attempt);
      attempt();
    });
  }

  describe(): string {
    const lanes = [...this.lanes].map(
      ([id, seen]) =>
        `  ${id}: ${seen
          .slice(-4)
          .map((v) => JSON.stringify(v))
          .join(' → ')}`,
    );
    return [
      `summaries (from #${this.summaryCursor}):`,
      ...this.summaries.slice(Math.max(0, this.summaries.length - 6)).map((s) => `  ${JSON.stringify(s)}`),
      'lanes:',
      ...lanes,
      `worker: ${this.messages.map((m) => `${m.type} ${m.key}#${m.attempt}`).join(', ')}`,
    ].join('\n');
  }

  private inspect(ev: InspectionEvent): void {
    const id = (ev.actorRef as { id?: string }).id ?? '';
    if (ev.type === '@xstate.actor' && id === this.batchId) this.rootId = ev.rootId;
    if (ev.type !== '@xstate.snapshot' || !/^lane-\d+$/.test(id)) return;
    const snap = ev.snapshot as unknown as {
      value: string;
      context: { current?: { key: string; attempt: number; index: number }; progress?: { done: number } };
    };
    const cur = snap.context.current;
    this.busy.set(
      `${ev.rootId}/${id}`,
      snap.value === 'running' && cur ? `${cur.key}#${cur.attempt}` : undefined,
    );
    if (ev.rootId !== this.rootId) return;
    const view: LaneView = plain({
      value: snap.value,
      index: snap.context.current?.index,
      attempt: snap.context.current?.attempt,
      progress: snap.context.progress?.done,
    });
    const seen = this.lanes.get(id) ?? [];
    this.lanes.set(id, seen);
    if (!isDeepStrictEqual(seen.at(-1), view)) seen.push(view);
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  private resetFinalize(): void {
    this.decision = new Promise((resolve) => {
      this.release = resolve;
    });
  }

  /**
   * Wait until every attempt a lane runs (in any batch of this engine) has reached its worker.
   * Stopping the pool while a thread still loads partita's runner aborts the whole process on
   * Node 20 (a V8 fatal error in require(esm) of a terminated thread); with `minThreads: 0` a
   * thread is only ever started for an attempt, so this leaves none loading.
   */
  private async quiesce(): Promise<void> {
    await this.until(
      'every running attempt to reach its worker before the engine stops',
      () =>
        [...this.busy.values()].every(
          (a) =>
            a === undefined ||
            this.messages.some((m) => m.type === 'started' && `${m.key}#${m.attempt}` === a),
        ) || undefined,
    );
  }

  private async stopEngine(): Promise<void> {
    if (this.engine) await this.quiesce().catch(() => undefined);
    this.busy.clear();
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.engine?.stop();
  }
}
