import type { BatchStatus } from '../summary.js';

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
    if (status === undefined || !['COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED'].includes(status)) {
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
