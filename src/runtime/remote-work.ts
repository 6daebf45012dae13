import type { LaneEvent, MemberAnswer } from '../machines/partition.js';
import type { Fence } from '../store/store.js';
import type { RangeOffers } from './range-offers.js';
import type { Attempt, GroupAttempt, Runner } from './work.js';

/**
 * Runs a distributed batch's attempts on whichever engines claim them (`distribute`,
 * docs/scaling.md "One batch on many hosts"): a lane's partition or group becomes a range offered in
 * the store, and its answers come back to the lane as the same events a worker thread's would
 * (WORK.DONE / WORK.FAILED, or WORK.ANSWERED for a group). The engine that claims the range runs each
 * member once, with the job's `timeoutMs`; retries stay the lane's, as for local work: a member to
 * retry goes out again in a later range, at its next attempt.
 *
 * Nothing is timed here: a range's holder bounds each member by `timeoutMs`, and a holder that dies
 * loses its hold, so the range is claimed again (`started` is never called).
 */
export class RemoteRunner implements Runner {
  readonly remote = true;
  /** The lanes are the limit: each carries one range at a time. */
  readonly parallelism = undefined;
  /** Ranges run on the engines that claim them: the job's `concurrency` is the limit. */
  readonly maxLanes = undefined;

  constructor(
    private readonly batchId: string,
    private readonly job: string,
    private readonly owner: string,
    private readonly fence: Fence,
    private readonly offers: RangeOffers,
  ) {}

  start(a: Attempt, signal: AbortSignal, report: (event: LaneEvent) => void): void {
    this.offer([a.index], a.attempt, a.redelivered, signal, (answers) => {
      const answer = memberAnswer(answers[0]);
      if (answer.ok)
        report({
          type: 'WORK.DONE',
          index: a.index,
          attempt: a.attempt,
          result: answer.result,
          durationMs: answer.ms,
          workMs: answer.ms,
        });
      else
        report({
          type: 'WORK.FAILED',
          index: a.index,
          attempt: a.attempt,
          error: answer.error,
          retryable: answer.retryable,
          durationMs: answer.ms,
          workMs: answer.ms,
        });
    });
  }

  startGroup(g: GroupAttempt, signal: AbortSignal, report: (event: LaneEvent) => void): void {
    const indexes = g.indexes!;
    this.offer(indexes, g.attempt, g.redelivered, signal, (staged) => {
      const answers = indexes.map((_, i) => memberAnswer(staged[i]));
      const workMs = answers.reduce((sum, a) => sum + a.ms, 0);
      report({ type: 'WORK.ANSWERED', index: g.index, attempt: g.attempt, answers, workMs });
    });
  }

  private offer(
    members: number[],
    attempt: number,
    redelivered: boolean,
    signal: AbortSignal,
    deliver: (answers: unknown[]) => void,
  ): void {
    const range = { job: this.job, attempt, redelivered, members, offeredBy: this.owner };
    void this.offers.offer(this.batchId, this.fence, range, signal, deliver);
  }
}

/** A staged answer as the lane takes it; anything else (a corrupt row) is the member's failure. */
export function memberAnswer(staged: unknown): MemberAnswer {
  const a = staged as Partial<MemberAnswer> | undefined;
  const ms = typeof a?.ms === 'number' && Number.isFinite(a.ms) ? a.ms : 0;
  if (a && a.ok === true) return { ok: true, result: a.result, ms };
  if (a && a.ok === false && a.error && typeof a.error === 'object')
    return { ok: false, error: a.error, retryable: a.retryable === true, ms };
  return {
    ok: false,
    error: { name: 'Error', message: 'the engine that ran this partition left no readable answer' },
    retryable: true,
    ms,
  };
}
