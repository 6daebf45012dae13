import { type BatchStatus, isFinalStatus } from '../summary.js';
import { Heap } from './heap.js';

/** What admission needs to know about a waiting batch: a few fields, not the batch. */
export interface Candidate {
  id: string;
  priority: number;
  createdAt: string;
  /** Submit (or recovery) order within this engine: the last tie-breaker. */
  seq: number;
  after: readonly string[];
  when: 'succeeded' | 'settled';
}

/** Highest priority first, then oldest, then first submitted. */
export function byAdmissionOrder(a: Candidate, b: Candidate): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.seq - b.seq;
}

/** Why a parent that ended `status` stops a batch waiting for it, or undefined when it lets it go on. */
export function parentBlocks(c: Candidate, parent: string, status: BatchStatus): string | undefined {
  if (c.when === 'succeeded' && status !== 'COMPLETED')
    return `parent batch "${parent}" ended ${status}; this batch runs only after its parents succeed`;
  return undefined;
}

export interface AdmissionHooks {
  /** Start the batch (QUEUED → PROCESSING). It holds a slot until `forget`. */
  admit(id: string): void;
  /** A parent ended so that the batch can never run. */
  cancel(id: string, reason: string): void;
}

/**
 * Event-driven admission (docs/architecture.md, "Admission and many batches"): runs on submit and whenever a batch
 * ends, never on a timer. Ready batches wait in a heap ordered by priority, then age; batches with
 * parents still running wait beside it, indexed by parent, so a parent's end wakes only its own
 * dependents. Every operation is O(log n) in the number of waiting batches (a cancel deep in the
 * backlog is O(1): the heap skips it when it comes up).
 */
export class Admission {
  private readonly ready = new Heap<Candidate>((a, b) => byAdmissionOrder(a, b) < 0);
  /** Every waiting batch (ready or blocked) by id. */
  private readonly waiting = new Map<string, Candidate>();
  /** Blocked batches: how many parents each still waits for. */
  private readonly pending = new Map<string, number>();
  /** Parent id → the waiting batches that need it. */
  private readonly dependents = new Map<string, Set<string>>();
  /** Batches admitted (or resumed past QUEUED) and not yet ended: the slots in use. */
  private readonly active = new Set<string>();
  private running = false;

  constructor(
    private readonly max: number,
    private readonly hooks: AdmissionHooks,
  ) {}

  /**
   * A QUEUED batch. `statusOf` gives each parent's status as known now (undefined: not known to be
   * final); it is asked once per parent, here.
   */
  queue(c: Candidate, statusOf: (id: string) => BatchStatus | undefined): void {
    if (this.waiting.has(c.id) || this.active.has(c.id)) return;
    let blockedBy = 0;
    for (const parent of c.after) {
      const status = statusOf(parent);
      if (status !== undefined && isFinalStatus(status)) {
        const reason = parentBlocks(c, parent, status);
        if (reason) {
          this.hooks.cancel(c.id, reason);
          return;
        }
        continue;
      }
      blockedBy++;
      let set = this.dependents.get(parent);
      if (!set) {
        set = new Set();
        this.dependents.set(parent, set);
      }
      set.add(c.id);
    }
    this.waiting.set(c.id, c);
    if (blockedBy > 0) this.pending.set(c.id, blockedBy);
    else this.ready.push(c);
  }

  /** A batch ended (here or on another engine): its dependents go on, or are cancelled. */
  parentEnded(parent: string, status: BatchStatus): void {
    this.release(parent, (c) => parentBlocks(c, parent, status));
  }

  /**
   * A parent's row is gone (engine.prune deleted it): it had ended, but how is not known any more.
   * A `when: 'settled'` dependent goes on; one that needs it to have succeeded is cancelled.
   */
  parentGone(parent: string): void {
    this.release(parent, (c) =>
      c.when === 'settled'
        ? undefined
        : `parent batch "${parent}" no longer exists (it was pruned), so whether it succeeded is not known; this batch runs only after its parents succeed`,
    );
  }

  /** A parent is out of the way: each dependent goes on, or is cancelled for the reason `blocks` gives. */
  private release(parent: string, blocks: (c: Candidate) => string | undefined): void {
    const children = this.dependents.get(parent);
    if (!children) return;
    this.dependents.delete(parent);
    for (const id of children) {
      const c = this.waiting.get(id);
      if (!c) continue;
      const reason = blocks(c);
      if (reason) {
        this.remove(id);
        this.hooks.cancel(id, reason);
        continue;
      }
      const left = (this.pending.get(id) ?? 1) - 1;
      if (left > 0) this.pending.set(id, left);
      else {
        this.pending.delete(id);
        this.ready.push(c);
      }
    }
  }

  /**
   * A parent that had ended runs again (engine.retryFailed): the waiting batches its end had let go
   * wait for it again, until it ends once more (a `when: 'settled'` dependent was admitted while
   * its parent ran again: an outside probe). Scans the waiting batches: a retry is rare, and the
   * batches that waited only for this parent are indexed nowhere once it ended.
   */
  parentRestarted(parent: string): void {
    const waitsAlready = this.dependents.get(parent);
    for (const c of this.waiting.values()) {
      if (!c.after.includes(parent) || waitsAlready?.has(c.id)) continue;
      this.pending.set(c.id, (this.pending.get(c.id) ?? 0) + 1);
      let set = this.dependents.get(parent);
      if (!set) {
        set = new Set();
        this.dependents.set(parent, set);
      }
      set.add(c.id);
      // Still in the ready heap: skipped when it comes up while it waits (see run()).
    }
  }

  /** A batch already past QUEUED (resumed after a restart): it holds a slot. */
  holdSlot(id: string): void {
    this.active.add(id);
  }

  /** The batch ended, was cancelled, or this engine gave it up: it no longer waits or holds a slot. */
  forget(id: string): void {
    this.remove(id);
    this.active.delete(id);
  }

  /** Is the batch waiting here (ready or blocked)? */
  isWaiting(id: string): boolean {
    return this.waiting.has(id);
  }

  /** Parents that waiting batches still need. */
  neededParents(): IterableIterator<string> {
    return this.dependents.keys();
  }

  get queued(): number {
    return this.waiting.size;
  }

  /** Waiting batches that still wait for a parent. */
  get blockedCount(): number {
    return this.pending.size;
  }

  /** Admit ready batches while slots are free. */
  run(): void {
    // Admitting can end a batch at once and call run() again: the loop below picks that up.
    if (this.running) return;
    this.running = true;
    try {
      while (this.active.size < this.max) {
        const c = this.ready.pop();
        if (!c) break;
        if (this.waiting.get(c.id) !== c || this.pending.has(c.id)) continue; // cancelled meanwhile
        this.waiting.delete(c.id);
        this.active.add(c.id);
        this.hooks.admit(c.id);
      }
    } finally {
      this.running = false;
    }
  }

  private remove(id: string): void {
    const c = this.waiting.get(id);
    if (!c) return;
    this.waiting.delete(id);
    this.pending.delete(id);
    for (const parent of c.after) {
      const set = this.dependents.get(parent);
      set?.delete(id);
      if (set?.size === 0) this.dependents.delete(parent);
    }
    // In the ready heap it stays until it comes up, then is skipped (lazy deletion).
  }
}
