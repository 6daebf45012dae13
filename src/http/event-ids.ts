import type { BatchSummary } from '../summary.js';

/**
 * Event ids and ordering of summaries on an event stream, derived from the summary itself so that
 * a reconnecting client's `Last-Event-ID` means the same on any connection (a per-connection
 * counter would not).
 *
 * id = ((run - 1) × (total + 1) + settled) × 8 + rank(status), with settled = succeeded + failed.
 * Within a run, settled never decreases and the status moves forward, so ids grow; a redrive
 * (`run` + 1, a later version) starts above every id of the run before. The one step back is a
 * resume (PAUSED → PROCESSING at the same count), which is why a server compares ids for equality
 * only: an equal id means "you have seen this", anything else is sent. Summaries differing only in
 * `running` share an id; a client resuming at one may miss such a change, never a count or status.
 */

const RANK: Readonly<Record<string, number>> = {
  QUEUED: 0,
  PROCESSING: 1,
  PAUSED: 2,
  FINALIZING: 3,
  COMPLETED: 4,
  PARTIAL: 5,
  FAILED: 6,
  CANCELLED: 7,
};

/** Statuses by how far along a run they are: PAUSED is a kind of PROCESSING. */
const PHASE: Readonly<Record<string, number>> = { QUEUED: 0, PROCESSING: 1, PAUSED: 1, FINALIZING: 2 };

function runOf(summary: BatchSummary): number {
  const run = (summary as { run?: unknown }).run;
  return typeof run === 'number' && Number.isSafeInteger(run) && run > 1 ? run : 1;
}

export function eventId(summary: BatchSummary): string {
  const settled = summary.succeeded + summary.failed;
  return String(((runOf(summary) - 1) * (summary.total + 1) + settled) * 8 + (RANK[summary.status] ?? 7));
}

/** Is `next` strictly further along than `last` (run, then phase, then settled count)? */
export function isAhead(next: BatchSummary, last: BatchSummary | undefined): boolean {
  if (!last) return true;
  const a = [runOf(next), PHASE[next.status] ?? 3, next.succeeded + next.failed];
  const b = [runOf(last), PHASE[last.status] ?? 3, last.succeeded + last.failed];
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! > b[i]!;
  return false;
}
