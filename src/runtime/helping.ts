import type { Logger } from 'pino';
import { serializeError, TimeoutError, toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { MemberAnswer } from '../machines/partition.js';
import type { ClaimedRange, PartitionRow, RangeStore, StagedAnswer, Store } from '../store/store.js';
import type { RunnerEvent, WorkRunner } from './work.js';

/** How often a holder looks for ranges to claim when no notification told it of one. */
export const HELP_POLL_MS = 1_000;

/** Members a host runs at once for `distribute` when `help.concurrency` is not given. */
export const DEFAULT_HELP_CONCURRENCY = 16;

export interface HelpingDeps {
  store: Store;
  ranges: RangeStore;
  log: Logger;
  /** This engine's lease owner id: it holds ranges under it. */
  owner: string;
  /** The jobs with `distribute` defined here, and their runners. */
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  runners: ReadonlyMap<string, WorkRunner>;
  /** Ranges of other engines' batches too (`help: true`), or only this engine's own. */
  helpOthers: boolean;
  /** Members run at once here. */
  concurrency: number;
  /** A hold lasts this long without renewal (the engine's `leaseTtlMs`). */
  ttlMs: number;
  pollMs?: number | undefined;
  /** A monotonic clock in ms (tests move it); `performance.now` by default. */
  now?: (() => number) | undefined;
  storeError(err: Error, batchId: string | undefined): void;
}

/** A range this engine holds, and what it has done of it. */
interface Held {
  range: ClaimedRange;
  /** Members without an answer yet (neither staged before nor answered here). */
  left: number;
  /** Answers given here and not yet staged. */
  unsent: StagedAnswer[];
  /** Stops a running member (no answer), by position. */
  running: Map<number, () => void>;
  lost: boolean;
  /**
   * Until when (on `now`) the hold is surely ours: the time before the claim or the last renewal
   * that succeeded was asked, plus the hold's time to live. No member starts past it before a
   * renewal says the hold is still ours.
   */
  until: number;
  /** A write of its answers in flight, and whether another must follow. */
  sending: Promise<void> | undefined;
}

interface Task {
  held: Held;
  member: number;
  row: PartitionRow;
}

/**
 * The holder's side of `distribute` (docs/scaling.md, "One batch on many hosts"): claims ranges of
 * partitions that owners offered (its own engine's; with `help: true` any engine's), runs each
 * member once on this engine's pool or inline, at most `concurrency` at a time, each bounded by the
 * job's `timeoutMs`, and stages one answer per member. It counts nothing: the range's owner does.
 * Holds are renewed every third of their time to live; a range whose hold was lost (withdrawn by its
 * owner, or claimed by another engine after this one stalled) stops its members and stages nothing
 * more. Answers are staged as they come, at each renewal and when the range is complete, so a holder
 * that dies loses at most what it ran since its last renewal.
 */
export class Helping {
  private readonly held = new Map<number, Held>();
  private readonly queue: Task[] = [];
  private active = 0;
  private claiming: Promise<void> | undefined;
  private claimAgain = false;
  /** The last claim found nothing: wait for an offer (or the poll) before asking the store again. */
  private drained = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private renewTimer: NodeJS.Timeout | undefined;
  /** A renewal in flight. */
  private renewing: Promise<void> | undefined;
  /** The last renewal failed (a store error): the next waits for its timer, not for a member. */
  private renewFailed = false;
  private readonly now: () => number;
  private unwatch: (() => void) | undefined;
  private stopped = false;

  constructor(private readonly deps: HelpingDeps) {
    this.now = deps.now ?? (() => performance.now());
  }

  start(): void {
    const jobs = this.deps.jobs;
    this.unwatch = this.deps.ranges.watch((event) => {
      if (event.type === 'offered' && jobs.has(event.job)) {
        this.drained = false;
        this.claim();
      }
    });
    this.poll();
    this.renewLater();
    this.claim();
  }

  /** Stop running members, stage what was answered, and give the holds back for others to claim. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.unwatch?.();
    clearTimeout(this.pollTimer);
    clearTimeout(this.renewTimer);
    this.queue.length = 0;
    await this.claiming?.catch(() => {});
    const held = [...this.held.values()];
    for (const h of held) for (const halt of [...h.running.values()]) halt();
    await Promise.all(held.map((h) => this.send(h, false).catch(() => {})));
    await this.deps.ranges.release(held.map((h) => h.range)).catch(() => {});
    this.held.clear();
  }

  /** Claim ranges while there is room for more members here. */
  private claim(): void {
    if (this.stopped) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimWhileRoom()
      .catch((err: unknown) => this.deps.storeError(toError(err), undefined))
      .finally(() => {
        this.claiming = undefined;
        if (this.claimAgain) {
          this.claimAgain = false;
          this.claim();
        }
      });
  }

  private async claimWhileRoom(): Promise<void> {
    const d = this.deps;
    const filter = { jobs: [...d.jobs.keys()], offeredBy: d.helpOthers ? undefined : d.owner };
    while (!this.stopped && this.queue.length < d.concurrency) {
      const asked = this.now();
      const [range] = await d.ranges.claim(d.owner, filter, d.ttlMs, 1);
      if (!range) {
        this.drained = true;
        return;
      }
      if (this.stopped) {
        await d.ranges.release([range]);
        return;
      }
      await this.take(range, asked + d.ttlMs);
    }
  }

  /** Queue a claimed range's members that have no answer yet. */
  private async take(range: ClaimedRange, until: number): Promise<void> {
    const held: Held = {
      range,
      left: range.members.length - range.answered.length,
      unsent: [],
      running: new Map(),
      lost: false,
      until,
      sending: undefined,
    };
    this.held.set(range.id, held);
    if (held.left === 0) {
      await this.send(held, true); // a holder died after staging every answer: only the mark is missing
      return;
    }
    const rows = new Map<number, PartitionRow>();
    try {
      // One read per span of members close together: a range of a redriven batch may hold members
      // far apart, and the rows between them are not needed.
      for (const [from, count] of runsOf(range.members))
        for (const row of await this.deps.store.readPartitions(range.batchId, from, count))
          rows.set(row.index, row);
    } catch (err) {
      // Given back at once, for this engine or another to claim again.
      this.held.delete(range.id);
      await this.deps.ranges.release([range]).catch(() => {});
      throw err;
    }
    const staged = new Set(range.answered);
    range.members.forEach((index, member) => {
      if (staged.has(member)) return;
      const row = rows.get(index);
      if (row) this.queue.push({ held, member, row });
      else
        this.answered(held, member, {
          ok: false,
          error: {
            name: 'Error',
            message: `partition ${index} of batch ${range.batchId} is not in the store`,
          },
          retryable: false,
          ms: 0,
        });
    });
    this.runQueued();
  }

  private runQueued(): void {
    while (!this.stopped && this.active < this.deps.concurrency && this.queue.length > 0) {
      const task = this.queue[0]!;
      if (task.held.lost) {
        this.queue.shift();
        continue;
      }
      // Past the hold's sure time (this host stalled: a pause, a swap, a long GC), another engine
      // may hold the range now, and the batch may have ended or been retried: a member that had
      // its outcome would run again. Start nothing more until a renewal says the hold is ours.
      if (this.now() >= task.held.until) {
        if (!this.renewFailed) this.renewNow();
        break;
      }
      this.queue.shift();
      this.active++;
      this.run(task);
    }
    if (this.queue.length < this.deps.concurrency && !this.drained) this.claim();
  }

  /** Run one member once: its answer is staged, its retries are its owner's. */
  private run({ held, member, row }: Task): void {
    const { range } = held;
    const job = this.deps.jobs.get(range.job)!;
    const runner = this.deps.runners.get(range.job)!;
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let over = false;
    /** The member's end: with its answer, or without one when it was stopped. */
    const finish = (answer: MemberAnswer | undefined) => {
      if (over) return;
      over = true;
      clearTimeout(timer);
      held.running.delete(member);
      this.active--;
      if (answer && !held.lost && !this.stopped) this.answered(held, member, answer);
      this.runQueued();
    };
    held.running.set(member, () => {
      controller.abort();
      finish(undefined);
    });
    // Never WORK.STALE: a range's member is given no `freshUntil` (the range's hold is checked apart).
    const report = (event: RunnerEvent) => {
      if (event.type === 'WORK.DONE')
        finish({ ok: true, result: event.result, ms: event.workMs ?? event.durationMs });
      else if (event.type === 'WORK.FAILED')
        finish({
          ok: false,
          error: event.error,
          retryable: event.retryable,
          ms: event.workMs ?? event.durationMs,
        });
    };
    const timeoutMs = job.timeoutMs;
    const started =
      timeoutMs === undefined
        ? undefined
        : () => {
            timer = setTimeout(() => {
              controller.abort();
              finish({
                ok: false,
                error: serializeError(new TimeoutError(timeoutMs)),
                retryable: true,
                ms: timeoutMs,
              });
            }, timeoutMs);
          };
    runner.start(
      {
        batchId: range.batchId,
        index: row.index,
        key: row.key,
        attempt: range.attempt,
        redelivered: range.redelivered,
        payload: row.payload,
      },
      controller.signal,
      report,
      started,
    );
  }

  private answered(held: Held, member: number, answer: MemberAnswer): void {
    held.unsent.push({ member, answer });
    held.left--;
    if (held.left === 0) void this.send(held, true);
  }

  /** Stage the answers not sent yet (and, `complete`, mark the range answered). */
  private async send(held: Held, complete: boolean): Promise<void> {
    while (held.sending) await held.sending;
    if (held.lost || (!complete && held.unsent.length === 0)) return;
    const answers = held.unsent.splice(0);
    const write = this.deps.ranges.answer(held.range, answers, complete).then(
      (ok) => {
        if (!ok) this.lose(held);
        else if (complete) this.held.delete(held.range.id);
      },
      (err: unknown) => {
        held.unsent.unshift(...answers); // sent again at the next renewal, or below
        this.deps.storeError(toError(err), held.range.batchId);
        if (complete && !this.stopped) setTimeout(() => void this.send(held, true), 500).unref();
      },
    );
    held.sending = write.finally(() => {
      held.sending = undefined;
    });
    await held.sending;
  }

  /** The hold is gone (withdrawn, or another engine holds the range now): stop its members. */
  private lose(held: Held): void {
    held.lost = true;
    this.held.delete(held.range.id);
    for (const halt of [...held.running.values()]) halt();
  }

  private renewLater(): void {
    if (this.stopped) return;
    clearTimeout(this.renewTimer);
    this.renewTimer = setTimeout(() => this.renewNow(), this.deps.ttlMs / 3);
    this.renewTimer.unref();
  }

  /** Renew the holds now (unless a renewal is in flight), then go on with the queue. */
  private renewNow(): void {
    if (this.stopped || this.renewing) return;
    clearTimeout(this.renewTimer);
    this.renewing = this.renew().finally(() => {
      this.renewing = undefined;
      this.renewLater();
      this.runQueued();
    });
  }

  private async renew(): Promise<void> {
    const open = [...this.held.values()].filter((h) => h.left > 0);
    if (open.length === 0) return;
    const asked = this.now();
    let still: Set<number>;
    try {
      still = new Set(
        await this.deps.ranges.renew(
          open.map((h) => h.range),
          this.deps.ttlMs,
        ),
      );
    } catch (err) {
      this.renewFailed = true;
      this.deps.storeError(toError(err), undefined);
      return;
    }
    this.renewFailed = false;
    for (const h of open) {
      if (!still.has(h.range.id)) this.lose(h);
      else {
        h.until = asked + this.deps.ttlMs;
        void this.send(h, false).catch(() => {});
      }
    }
  }

  private poll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => {
      this.drained = false;
      this.claim();
      this.poll();
    }, this.deps.pollMs ?? HELP_POLL_MS);
    this.pollTimer.unref();
  }
}

/**
 * The spans to read for a range's members, sorted, as [first, length]: members at most `gap` rows
 * apart share one read (the rows between are read and dropped). A redriven batch's groups step over
 * its succeeded partitions (every other one, say), and one read per member cost a round trip each.
 */
export function runsOf(indexes: readonly number[], gap = READ_GAP): Array<[number, number]> {
  const sorted = [...indexes].sort((a, b) => a - b);
  const runs: Array<[number, number]> = [];
  for (const i of sorted) {
    const last = runs[runs.length - 1];
    if (last && i <= last[0] + last[1] + gap) last[1] = Math.max(last[1], i - last[0] + 1);
    else runs.push([i, 1]);
  }
  return runs;
}

/** Rows between two members that one read of a range takes rather than a second read (runsOf). */
const READ_GAP = 32;
