import { type BatchStatus, isFinalStatus } from '../summary.js';

/** What admission needs to know about a waiting batch. */
export interface Candidate {
  id: string;
  priority: number;
  createdAt: string;
  seq: number;
  after: readonly string[];
  when: 'succeeded' | 'settled';
}

export type ParentVerdict = 'wait' | 'ready' | { cancel: string };

/**
 * Whether a batch's `after` parents let it run: 'ready' when every parent is final as `when`
 * requires, a cancel reason naming the parent when one ended otherwise, else 'wait'.
 */
export function parentVerdict(
  c: Candidate,
  statusOf: (id: string) => BatchStatus | undefined,
): ParentVerdict {
  let waiting = false;
  for (const parent of c.after) {
    const status = statusOf(parent);
    if (status === undefined || !isFinalStatus(status)) {
      waiting = true;
      continue;
    }
    if (c.when === 'succeeded' && status !== 'COMPLETED') {
      return {
        cancel: `parent batch "${parent}" ended ${status}; this batch runs only after its parents succeed`,
      };
    }
  }
  return waiting ? 'wait' : 'ready';
}

/** Highest priority first, then oldest, then first submitted. */
export function byAdmissionOrder(a: Candidate, b: Candidate): number {
  if (a.priority !== b.priority) return b.priority - a.priority;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? -1 : 1;
  return a.seq - b.seq;
}

export interface AdmissionHooks {
  /** The status of a parent batch, when known (final statuses are what matter). */
  statusOf(id: string): BatchStatus | undefined;
  /** Start the batch (QUEUED → PROCESSING). */
  admit(id: string): void;
  /** A parent ended so that the batch can never run. */
  cancel(id: string, reason: string): void;
}

/**
 * Event-driven admission (docs/architecture.md): run on submit and whenever a batch ends, never on
 * a timer. The highest-priority, oldest QUEUED batches whose parents allow it are admitted up to
 * `maxConcurrentBatches`.
 */
export class Admission {
  private readonly waiting = new Map<string, Candidate>();
  private readonly active = new Set<string>();
  private running = false;
  private again = false;

  constructor(
    private readonly max: number,
    private readonly hooks: AdmissionHooks,
  ) {}

  /** A QUEUED batch. */
  queue(c: Candidate): void {
    this.waiting.set(c.id, c);
  }

  /** A batch already past QUEUED (resumed after a restart): it holds a slot. */
  holdSlot(id: string): void {
    this.active.add(id);
  }

  /** The batch ended, was cancelled, or this engine gave it up: it no longer waits or holds a slot. */
  forget(id: string): void {
    this.waiting.delete(id);
    this.active.delete(id);
  }

  /** Parents of waiting batches whose final status this engine does not know yet. */
  unresolvedParents(): Set<string> {
    const out = new Set<string>();
    for (const c of this.waiting.values())
      for (const parent of c.after) {
        const status = this.hooks.statusOf(parent);
        if (status === undefined || !isFinalStatus(status)) out.add(parent);
      }
    return out;
  }

  get queued(): number {
    return this.waiting.size;
  }

  run(): void {
    // Admitting or cancelling one batch can end another and call run() again: finish this pass first.
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        this.pass();
      } while (this.again);
    } finally {
      this.running = false;
    }
  }

  private pass(): void {
    const candidates = [...this.waiting.values()].sort(byAdmissionOrder);
    for (const c of candidates) {
      const verdict = parentVerdict(c, this.hooks.statusOf);
      if (typeof verdict === 'object') {
        this.waiting.delete(c.id);
        this.hooks.cancel(c.id, verdict.cancel);
        continue;
      }
      if (verdict === 'wait' || this.active.size >= this.max) continue;
      this.waiting.delete(c.id);
      this.active.add(c.id);
      this.hooks.admit(c.id);
    }
  }
}
