import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BatchStatus,
  type BatchSummary,
  createEngine,
  defineJob,
  type Engine,
  isFinalStatus,
  memoryStore,
} from '../src/index.js';
import { type Deferred, deferred } from './support/until.js';

/**
 * Admission checked against a reference model (docs/guide.md, "Submitting"; docs/architecture.md,
 * "Admission and many batches"): highest priority first, then oldest, then first submitted; at most
 * `maxConcurrentBatches` PROCESSING; a batch with `after` parents waits until all are final; with
 * `when: 'succeeded'` a parent ending other than COMPLETED cancels it, naming the parent; with
 * `'settled'` any final parent lets it go on.
 *
 * Determinism: every batch has one partition whose inline handler waits on a gate of its own, and
 * the test opens one gate at a time, so a batch ends only when told. After each step (a submit, a
 * cancel, a gate opened) the test waits until the engine has done everything the model expects of
 * it (the starts it decided, the cancels, the end of the released batch): nothing else is running
 * when the next step is taken. The one thing the engine does on its own, in an order the test does
 * not choose, is finishing cancellations of dependents; the model therefore advances on the
 * engine's own events (engine.observe(), heard synchronously, before the engine admits anything
 * after a batch's end), in the order the engine reports them, and at each end predicts which
 * batches start. Every start (the first PROCESSING event of a batch) must be the next predicted one,
 * so batches admitted at the same moment must also start in admission order.
 */

type When = 'succeeded' | 'settled';
type Op = { kind: 'release'; pick: number } | { kind: 'cancel'; pick: number };

interface Spec {
  priority: number;
  /** Raw picks, resolved to earlier batches (so no cycles): parent = i - 1 - (pick % i). */
  parents: number[];
  when: When;
  /** The batch's only partition throws: the batch ends FAILED. */
  fail: boolean;
  /** Done after submitting this batch: open the gate of a running batch, or cancel a queued one. */
  steps: Op[];
}

interface ModelBatch {
  id: string;
  priority: number;
  /** Known once submit() returns; until then this batch is the newest. */
  createdAt: string | undefined;
  seq: number;
  after: string[];
  when: When;
  fail: boolean;
}

type EngineEvent = Parameters<Parameters<Engine['observe']>[0]>[0];

/** Highest priority first, then oldest, then first submitted (a batch being submitted is the newest). */
function before(a: ModelBatch, b: ModelBatch): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  const ca = a.createdAt ?? '\uffff';
  const cb = b.createdAt ?? '\uffff';
  if (ca !== cb) return ca < cb;
  return a.seq < b.seq;
}

/** Why a batch was cancelled, as its error must say it. */
type Cause = { parent: string; status: BatchStatus } | { reason: string };

/**
 * The reference model: a plain simulation with linear scans (n ≤ 1,000), independent of the
 * engine's heap and indexes. It follows the engine's events and records every disagreement.
 */
class Model {
  readonly batches = new Map<string, ModelBatch>();
  /** Queued here: ready, or blocked by the parents in `blockedOn`. */
  readonly waiting = new Set<string>();
  readonly blockedOn = new Map<string, Set<string>>();
  /** Admitted (a slot taken) and not ended. */
  readonly active = new Set<string>();
  readonly finals = new Map<string, BatchStatus>();
  /** Admitted by the model, PROCESSING not yet seen: the engine must start them in this order. */
  readonly toStart: string[] = [];
  /** Cancels the engine must carry out (and has not yet reported final). */
  readonly toCancel = new Map<string, Cause>();
  readonly causes = new Map<string, Cause>();
  /** Gates opened, end not yet seen. */
  readonly released = new Set<string>();
  /** Starts seen (first PROCESSING of each batch), in order. */
  readonly started: string[] = [];
  readonly startedSet = new Set<string>();
  readonly errors: string[] = [];
  /** The batch whose submit is under way: its QUEUED event queues it in the model. */
  submitting: { spec: Spec; id: string; after: string[]; seq: number } | undefined;
  private waiters: Array<() => boolean> = [];

  constructor(readonly max: number) {}

  /** Batches running now (started, not ended), in start order. */
  running(): string[] {
    return this.started.filter((id) => !this.finals.has(id));
  }

  /** The engine's events, as they happen (a throw here would be swallowed by the engine: recorded instead). */
  hear(e: EngineEvent): void {
    try {
      this.follow(e);
    } catch (err) {
      this.errors.push(`the model threw on ${JSON.stringify(e)}: ${(err as Error).stack}`);
    }
    this.waiters = this.waiters.filter((check) => !check());
  }

  private follow(e: EngineEvent): void {
    if (e.type !== 'batch') return;
    if (e.status === 'QUEUED') {
      const s = this.submitting;
      if (s && e.batchId === s.id && !this.batches.has(s.id)) this.queue(s.id, s.spec, s.after, s.seq);
    } else if (e.status === 'PROCESSING') {
      if (!this.startedSet.has(e.batchId)) this.start(e.batchId);
    } else if (isFinalStatus(e.status)) this.ended(e.batchId, e.status);
  }

  /** A submit: queued now, with its parents' statuses as known now. */
  private queue(id: string, spec: Spec, after: string[], seq: number): void {
    const b: ModelBatch = {
      id,
      priority: spec.priority,
      createdAt: undefined,
      seq,
      after,
      when: spec.when,
      fail: spec.fail,
    };
    this.batches.set(id, b);
    const pending = new Set<string>();
    for (const parent of after) {
      const status = this.finals.get(parent);
      if (status === undefined) pending.add(parent);
      else if (b.when === 'succeeded' && status !== 'COMPLETED') {
        this.toCancel.set(id, { parent, status });
        return;
      }
    }
    this.waiting.add(id);
    if (pending.size > 0) this.blockedOn.set(id, pending);
    this.admit();
  }

  /** The test cancels a queued batch. */
  cancel(id: string, reason: string): void {
    this.waiting.delete(id);
    this.blockedOn.delete(id);
    this.toCancel.set(id, { reason });
  }

  /** The test opens a running batch's gate: it must end (FAILED when it fails, else COMPLETED). */
  release(id: string): void {
    this.released.add(id);
  }

  private start(id: string): void {
    this.startedSet.add(id);
    this.started.push(id);
    const expected = this.toStart[0];
    if (expected !== id)
      this.errors.push(
        `start #${this.started.length}: the engine started ${id}, the model expected ${expected ?? 'no start'} (expected next: [${this.toStart.join(', ')}])`,
      );
    else this.toStart.shift();
    const running = this.running().length;
    if (running > this.max)
      this.errors.push(`${running} batches PROCESSING at once with maxConcurrentBatches ${this.max}`);
  }

  private ended(id: string, status: BatchStatus): void {
    if (this.finals.has(id)) {
      this.errors.push(`${id} ended twice (${this.finals.get(id)}, then ${status})`);
      return;
    }
    const cause = this.toCancel.get(id);
    if (cause) {
      this.toCancel.delete(id);
      this.causes.set(id, cause);
      if (status !== 'CANCELLED') this.errors.push(`${id} ended ${status}; the model expected CANCELLED`);
      if (this.startedSet.has(id)) this.errors.push(`${id} was cancelled after it started`);
    } else if (this.released.has(id)) {
      this.released.delete(id);
      const expected = this.batches.get(id)?.fail ? 'FAILED' : 'COMPLETED';
      if (status !== expected) this.errors.push(`${id} ended ${status}; the model expected ${expected}`);
    } else {
      this.errors.push(`${id} ended ${status}, which the model did not expect`);
    }
    this.finals.set(id, status);
    this.active.delete(id);
    // Its dependents: cancelled, or one parent fewer to wait for.
    for (const child of [...this.waiting]) {
      const parents = this.blockedOn.get(child);
      if (!parents?.has(id)) continue;
      if (this.batches.get(child)!.when === 'succeeded' && status !== 'COMPLETED') {
        this.waiting.delete(child);
        this.blockedOn.delete(child);
        this.toCancel.set(child, { parent: id, status });
        continue;
      }
      parents.delete(id);
      if (parents.size === 0) this.blockedOn.delete(child);
    }
    this.admit();
  }

  /** Fill the free slots with the best ready batches. */
  private admit(): void {
    while (this.active.size < this.max) {
      let best: ModelBatch | undefined;
      for (const id of this.waiting) {
        if (this.blockedOn.has(id)) continue;
        const b = this.batches.get(id)!;
        if (!best || before(b, best)) best = b;
      }
      if (!best) return;
      this.waiting.delete(best.id);
      this.active.add(best.id);
      this.toStart.push(best.id);
    }
  }

  private quiet(): boolean {
    return this.toStart.length === 0 && this.toCancel.size === 0 && this.released.size === 0;
  }

  /**
   * Resolves when the engine has done all the model expects of it; rejects at the first
   * disagreement. The deadline only turns an engine that never does what it must into a clear
   * failure; a correct engine is done within milliseconds.
   */
  settled(what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        if (this.errors.length > 0) {
          clearTimeout(timer);
          reject(new Error(`after ${what}:\n${this.errors.join('\n')}`));
          return true;
        }
        if (!this.quiet()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(
          new Error(
            `after ${what}, the engine did not do within 10 s what the model expects: ` +
              `starts [${this.toStart.join(', ')}], cancels [${[...this.toCancel.keys()].join(', ')}], ` +
              `ends [${[...this.released].join(', ')}]`,
          ),
        );
      }, 10_000);
      if (!check()) this.waiters.push(check);
    });
  }
}

const idOf = (i: number) => `b${String(i).padStart(4, '0')}`;

/** Parents of batch i: earlier batches only, no duplicates, in the order given. */
function parentsOf(i: number, spec: Spec): string[] {
  if (i === 0) return [];
  return [...new Set(spec.parents.map((p) => idOf(i - 1 - (p % i))))];
}

/**
 * One run: `max` slots; batch i is submitted, then its steps are taken (its gate openings only
 * when i is a multiple of `openEvery`: the larger, the deeper the backlog); then every gate is
 * opened, picked by `drain`, until every batch has ended.
 */
async function check(max: number, openEvery: number, specs: Spec[], drain: number[]): Promise<void> {
  const gates = new Map<string, Deferred>();
  const gate = (id: string) => {
    let g = gates.get(id);
    if (!g) {
      g = deferred();
      gates.set(id, g);
    }
    return g;
  };
  const job = defineJob({
    name: 'gated',
    partition: (input: { fail: boolean }) => [{ key: 'only', payload: input.fail }],
    handler: (fail: boolean, ctx) =>
      new Promise<string>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
        void gate(ctx.batchId).promise.then(() =>
          fail ? reject(new Error('fails on purpose')) : resolve('ok'),
        );
      }),
  });
  const model = new Model(max);
  const engine = createEngine({
    jobs: [job],
    store: memoryStore(),
    logger: false,
    maxConcurrentBatches: max,
    flushDelayMs: 0,
  });
  engine.observe((e) => model.hear(e));
  await engine.start();
  try {
    const release = async (pick: number, what: string) => {
      const running = model.running().filter((id) => !model.released.has(id));
      if (running.length === 0) return false;
      const id = running[pick % running.length]!;
      model.release(id);
      gate(id).resolve();
      await model.settled(`${what}: opening the gate of ${id}`);
      return true;
    };

    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i]!;
      const id = idOf(i);
      const after = parentsOf(i, spec);
      model.submitting = { spec, id, after, seq: i };
      const summary = await engine.submit(
        'gated',
        { fail: spec.fail },
        { id, priority: spec.priority, ...(after.length > 0 ? { after, when: spec.when } : {}) },
      );
      model.submitting = undefined;
      const b = model.batches.get(id);
      if (!b) throw new Error(`submit of ${id} resolved without a QUEUED event`);
      b.createdAt = summary.createdAt;
      await model.settled(`submitting ${id}`);
      for (const op of spec.steps) {
        if (op.kind === 'release') {
          if (i % openEvery === 0) await release(op.pick, `after submitting ${id}`);
        } else {
          const queued = [...model.waiting];
          if (queued.length === 0) continue;
          const victim = queued[op.pick % queued.length]!;
          const reason = `cancelled by the test after ${id}`;
          model.cancel(victim, reason);
          const cancelled = await engine.cancel(victim, reason);
          expect(cancelled.status).toBe('CANCELLED');
          await model.settled(`cancelling ${victim}`);
        }
      }
    }
    // Drain: open gates until every batch has ended.
    for (let k = 0; model.finals.size < specs.length; k++) {
      if (!(await release(drain[k % drain.length]!, 'draining')))
        throw new Error(
          `nothing runs, yet ${specs.length - model.finals.size} batches are not final (model: waiting [${[...model.waiting].join(', ')}])`,
        );
    }
    expect(model.errors).toEqual([]);
    expect(model.toStart).toEqual([]);

    // Every batch final, with the status the model expects; get() and list() agree.
    const listed = new Map((await engine.list({ limit: 100_000 })).map((s) => [s.id, s] as const));
    expect(listed.size).toBe(specs.length);
    for (let i = 0; i < specs.length; i++) {
      const id = idOf(i);
      const got: BatchSummary = await engine.get(id);
      expect(got.status).toBe(model.finals.get(id));
      expect(isFinalStatus(got.status)).toBe(true);
      expect(listed.get(id)).toEqual(got);
      const cause = model.causes.get(id);
      if (cause) {
        expect(got.status).toBe('CANCELLED');
        expect(model.startedSet.has(id)).toBe(false);
        const message = got.error?.message ?? '';
        if ('parent' in cause)
          expect(message).toContain(`parent batch "${cause.parent}" ended ${cause.status}`);
        else expect(message).toContain(cause.reason);
      } else {
        expect(model.startedSet.has(id)).toBe(true);
        expect(got.status).toBe(specs[i]!.fail ? 'FAILED' : 'COMPLETED');
        expect(got).toMatchObject({ total: 1, running: 0, pending: 0 });
      }
    }
    expect(model.started.length + model.causes.size).toBe(specs.length);
  } finally {
    await engine.stop();
  }
}

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), pick: fc.nat() }) },
);

const spec: fc.Arbitrary<Spec> = fc.record({
  // A small range: many ties, broken by age and submit order.
  priority: fc.integer({ min: -1, max: 2 }),
  parents: fc.oneof(
    { weight: 3, arbitrary: fc.constant<number[]>([]) },
    { weight: 2, arbitrary: fc.array(fc.nat(), { minLength: 1, maxLength: 3 }) },
  ),
  when: fc.constantFrom<When>('succeeded', 'settled'),
  fail: fc.integer({ min: 0, max: 6 }).map((n) => n === 0),
  // Fewer than one step per batch on average: a backlog builds up.
  steps: fc.array(op, { maxLength: 2 }),
});

const scenario = (minBatches: number, maxBatches: number) =>
  fc.tuple(
    fc.integer({ min: 1, max: 4 }),
    fc.integer({ min: 1, max: 4 }),
    fc.array(spec, { minLength: minBatches, maxLength: maxBatches }),
    fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
  );

describe('admission against a reference model (memory store, inline handler, gated batches)', () => {
  it('small runs: priorities, after/when, cancels and failures start and end batches as the model says', async () => {
    await fc.assert(
      fc.asyncProperty(scenario(1, 40), ([max, openEvery, specs, drain]) =>
        check(max, openEvery, specs, drain),
      ),
      // A failure is shrunk; the time limit turns a very long shrink into a failure with the smallest case so far.
      {
        numRuns: Number(process.env.NUM_RUNS ?? 60),
        interruptAfterTimeLimit: 90_000,
        markInterruptAsFailure: true,
      },
    );
  }, 120_000);

  it('large runs: up to 1,000 batches each, with a deep backlog', async () => {
    await fc.assert(
      fc.asyncProperty(scenario(600, 1000), ([max, openEvery, specs, drain]) =>
        check(max, openEvery, specs, drain),
      ),
      // Not shrunk (hundreds of batches shrink slowly): the small runs are there to find small cases.
      {
        numRuns: Number(process.env.NUM_RUNS_LARGE ?? 8),
        endOnFailure: true,
        interruptAfterTimeLimit: 150_000,
        markInterruptAsFailure: true,
      },
    );
  }, 180_000);
});
