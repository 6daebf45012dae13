import { type Actor, type AnyActorRef, createActor, SimulatedClock } from 'xstate';
import {
  type BatchEvent,
  type BatchInput,
  batchMachine,
  type ReplayedOutcome,
} from '../../src/machines/batch.js';
import { partitionMachine } from '../../src/machines/partition.js';

/**
 * The batch machine and its lanes, run as XState actors with everything the engine would do
 * simulated in memory: dispatch and page loads answered right after each step, a journal of
 * outcomes, persisted snapshots (getPersistedSnapshot → JSON, children dropped, as the runtime
 * stores them) and restores (createActor({ snapshot }) then RESUME with the journal entries the
 * snapshot does not cover, as src/runtime/batch-runtime.ts does). Time is a SimulatedClock.
 */

export type Command =
  | { kind: 'admit' }
  | { kind: 'done' | 'fail' | 'failFinal'; pick: number }
  | { kind: 'tick'; what: 'backoff' | 'timeout' }
  | { kind: 'cancel' }
  | { kind: 'checkpoint' }
  | { kind: 'crash' }
  | { kind: 'restart' }
  | { kind: 'finalize'; ok: boolean };

export interface JournalEntry extends ReplayedOutcome {
  seq: number;
}

type BatchActor = Actor<typeof batchMachine>;

const key = (index: number) => `p${index}`;
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

export class BatchSim {
  actor!: BatchActor;
  clock = new SimulatedClock();
  readonly journal: JournalEntry[] = [];
  /** Whether the last finalizer failed (the batch then ends FAILED whatever its counts). */
  finalizeFailed = false;
  private persisted!: { snapshot: string; seq: number };
  private durableFinal = false;
  private readonly machine;
  private dispatches: { lane: number; index: number; attempt: number; redelivered: boolean }[] = [];
  private loads: { from: number; count: number }[] = [];
  private finalizer: { resolve: (v: { output: unknown }) => void; reject: (e: unknown) => void } | undefined;
  /** The attempt each lane's work runs now (set by startWork, cleared by abortWork or an answer). */
  readonly working = new Map<number, { index: number; attempt: number }>();

  constructor(readonly input: BatchInput) {
    const lane = partitionMachine.provide({
      actions: {
        startWork: ({ context }) =>
          this.working.set(context.lane, {
            index: context.current!.index,
            attempt: context.current!.attempt,
          }),
        abortWork: ({ context }) => this.working.delete(context.lane),
      },
    });
    this.machine = batchMachine.provide({
      actors: {
        lane,
      },
      actions: {
        // The engine's finalization, released by the 'finalize' command: it answers FINALIZED or
        // FINALIZE.FAILED, unless FINALIZING was left meanwhile (stopFinalize).
        startFinalize: ({ self }) => {
          const answer = (event: BatchEvent) => {
            if (this.finalizer === finalizer) self.send(event);
          };
          const finalizer = {
            resolve: (v: { output: unknown }) => answer({ type: 'FINALIZED', output: v.output }),
            reject: (error: unknown) => answer({ type: 'FINALIZE.FAILED', error }),
          };
          this.finalizer = finalizer;
        },
        stopFinalize: () => {
          this.finalizer = undefined;
        },
        dispatchPartition: (_, p) => this.dispatches.push(p),
        loadPartitions: (_, p) => this.loads.push(p),
        journalOutcomes: (_, { outcomes, seq }) => {
          for (const [i, outcome] of outcomes.entries())
            this.journal.push({
              seq: seq + i,
              index: outcome.index,
              key: outcome.key,
              status: outcome.status,
              attempts: outcome.attempts,
              error: outcome.error,
            });
        },
      },
    });
  }

  start(): void {
    this.actor = createActor(this.machine, { input: this.input, clock: this.clock });
    this.actor.start();
    this.checkpoint();
  }

  get snapshot() {
    return this.actor.getSnapshot();
  }

  isDone(): boolean {
    return this.snapshot.status === 'done';
  }

  lane(lane: number): AnyActorRef | undefined {
    return this.snapshot.children[`lane-${lane}`] as AnyActorRef | undefined;
  }

  async apply(cmd: Command): Promise<void> {
    if (this.snapshot.status !== 'active') return; // final: nothing reaches it any more
    switch (cmd.kind) {
      case 'admit':
        this.actor.send({ type: 'ADMIT', at: new Date(this.clock.now()).toISOString() });
        break;
      case 'done':
      case 'fail':
      case 'failFinal': {
        const busy = [...this.working.entries()];
        if (busy.length === 0) break;
        const [lane, { index, attempt }] = busy[cmd.pick % busy.length]!;
        this.working.delete(lane);
        const at = { index, attempt, durationMs: 1 };
        if (cmd.kind === 'done') this.lane(lane)?.send({ type: 'WORK.DONE', ...at, result: { index } });
        else
          this.lane(lane)?.send({
            type: 'WORK.FAILED',
            ...at,
            error: { name: 'Error', message: `${key(index)} failed` },
            retryable: cmd.kind === 'fail',
          });
        break;
      }
      case 'tick':
        this.clock.increment(cmd.what === 'backoff' ? this.input.maxBackoffMs : (this.input.timeoutMs ?? 0));
        break;
      case 'cancel':
        this.actor.send({ type: 'CANCEL', reason: 'property cancel' });
        break;
      case 'checkpoint':
        this.checkpoint();
        break;
      case 'restart':
        this.checkpoint();
        this.restore();
        break;
      case 'crash':
        this.restore();
        break;
      case 'finalize':
        if (this.snapshot.value !== 'finalizing' || !this.finalizer) break;
        this.finalizeFailed = !cmd.ok;
        if (cmd.ok) this.finalizer.resolve({ output: 'ok' });
        else this.finalizer.reject(new Error('finalize failed'));
        await settle();
        break;
    }
    this.pump();
    if (this.isDone() && !this.durableFinal) {
      this.checkpoint();
      this.durableFinal = true;
    }
  }

  /** What the engine does promptly after each step: send RUN to lanes, answer page loads. */
  private pump(): void {
    for (let guard = 0; guard < 1000 && (this.dispatches.length > 0 || this.loads.length > 0); guard++) {
      const d = this.dispatches.shift();
      if (d) {
        this.lane(d.lane)?.send({
          type: 'RUN',
          index: d.index,
          key: key(d.index),
          attempt: d.attempt,
          redelivered: d.redelivered,
        });
        continue;
      }
      const l = this.loads.shift()!;
      this.actor.send({ type: 'PARTITIONS.LOADED', loaded: Math.min(this.input.total, l.from + l.count) });
    }
  }

  /** The state the runtime stores: the persisted snapshot without children, and its journal position. */
  private checkpoint(): void {
    if (this.durableFinal) return;
    const { children: _children, ...rest } = this.actor.getPersistedSnapshot() as Record<string, unknown>;
    const c = this.snapshot.context;
    this.persisted = { snapshot: JSON.stringify({ ...rest, children: {} }), seq: c.succeeded + c.failed };
  }

  /** A new process: restore the stored snapshot and replay the journal entries it does not cover. */
  private restore(): void {
    if (this.durableFinal) return;
    this.actor.stop();
    this.working.clear();
    this.dispatches = [];
    this.loads = [];
    this.finalizer = undefined;
    this.clock = new SimulatedClock();
    this.actor = createActor(this.machine, {
      input: this.input,
      snapshot: JSON.parse(this.persisted.snapshot) as never,
      clock: this.clock,
    });
    this.actor.start();
    // Journal positions are 1-based (the count after the outcome), as the stores read them back.
    const replay = this.journal.filter((o) => o.seq > this.persisted.seq).map(({ seq: _seq, ...o }) => o);
    this.actor.send({ type: 'RESUME', replay });
  }

  stop(): void {
    this.actor.stop();
  }
}
