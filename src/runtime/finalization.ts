import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { backoffDelay } from '../backoff.js';
import { EngineStateError, ResultValidationError, TimeoutError, toError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { BatchEvent, FinalizeInput } from '../machines/batch.js';
import type { BatchSummary } from '../summary.js';
import { unstorable } from '../values.js';
import { retryableOf } from '../workers/answers.js';

/** How the job's finalizer ended: its output, or its error (after its retries). */
export type FinalizerEnd = { ok: true; output: unknown } | { ok: false; error: unknown };

export interface FinalizationDeps {
  batchId: string;
  job: AnyJobDefinition;
  /**
   * Submit the job's triggered batches for the batch ending as the finalizer's end says, once every
   * outcome is durable and before FINALIZING is left (so a crash or a stop in between submits them
   * again, idempotently, and a cancel meanwhile ends the batch CANCELLED). Undefined when the job
   * has no triggers. Rejects with `signal`'s reason once it aborts, and EngineStateError when the
   * engine stops.
   */
  triggers?: ((end: FinalizerEnd, signal: AbortSignal) => Promise<void>) | undefined;
  log: Logger;
  /** Resolves once every outcome is durable, or as soon as `stop()` says to stop waiting. */
  untilDurable(stop: () => boolean): Promise<void>;
  summary(): BatchSummary;
  /** Has the batch stopped here (engine stop, lease lost)? */
  halted(): boolean;
  /** Tell the batch actor how the finalization ended. */
  send(event: BatchEvent): void;
}

/**
 * A batch's FINALIZING (docs/architecture.md, "Finalizing without an actor"): the batch machine's
 * `startFinalize` action starts it, its `stopFinalize` action (and the batch stopping here)
 * abandons it. It makes the outcomes durable, runs the job's finalizer with its retries, submits
 * the job's triggered batches, and tells the batch actor `FINALIZED { output }` or
 * `FINALIZE.FAILED { error }`. An abandoned finalization aborts the finalizer's and the triggers'
 * signal, calls them no more (not for a retry, not when it was abandoned before the outcomes were
 * durable), and whatever they still answer is dropped.
 */
export class Finalization {
  /** The finalization under way: its number, so that an abandoned one's answer is dropped. */
  private run = 0;
  private abort: AbortController | undefined;

  constructor(private readonly d: FinalizationDeps) {}

  /**
   * Start it. A batch with no finalizer and no triggers is told FINALIZED one microtask later, with
   * no promise and no AbortController: not within the step that entered FINALIZING, which may have
   * sent the last lane its RETIRE for the lane to handle first (a final state in that same step
   * would stop the lane before it retires), and so that subscribers see FINALIZING.
   */
  start(input: FinalizeInput): void {
    const run = ++this.run;
    const answer = (event: BatchEvent) => {
      if (run !== this.run || this.d.halted()) return; // abandoned: its state was left
      this.abort = undefined; // it ended: leaving FINALIZING now aborts nothing
      this.d.send(event);
    };
    if (!this.d.job.finalize && !this.d.triggers) {
      queueMicrotask(() => answer({ type: 'FINALIZED', output: undefined }));
      return;
    }
    const controller = new AbortController();
    this.abort = controller;
    this.finalize(input, controller.signal).then(
      ({ output }) => answer({ type: 'FINALIZED', output }),
      (error: unknown) => {
        // The engine stops while the triggers submit: the batch stays FINALIZING, and the next
        // start finalizes it again (a failure here would end it FAILED).
        if (error === ENGINE_STOPS) return;
        answer({ type: 'FINALIZE.FAILED', error });
      },
    );
  }

  /** FINALIZING was left (CANCEL, a restart's RESUME), or the batch stops here: abandon it. */
  stop(): void {
    this.run++;
    this.abort?.abort();
    this.abort = undefined;
  }

  private async finalize(input: FinalizeInput, signal: AbortSignal): Promise<{ output: unknown }> {
    const abandoned = () => signal.aborted || this.d.halted();
    // The finalizer may read partitions from the store, and triggers submit before the final state
    // is stored (a crash then re-runs FINALIZING, not the partitions): every outcome durable first.
    await this.d.untilDurable(abandoned);
    // Abandoned meanwhile (cancel, stop): the finalizer is not called; the answer is dropped anyway.
    if (abandoned()) throw abandonedError();
    let end: FinalizerEnd;
    try {
      end = { ok: true, output: (await this.finalizer(input, signal, abandoned)).output };
    } catch (error) {
      if (abandoned()) throw abandonedError();
      end = { ok: false, error };
    }
    if (this.d.triggers) {
      try {
        await this.d.triggers(end, signal);
      } catch (err) {
        if (abandoned()) throw abandonedError();
        // Only a trigger's submit refused because the engine stops rejects here (triggers.ts).
        if (err instanceof EngineStateError) throw ENGINE_STOPS;
        throw err;
      }
      if (abandoned()) throw abandonedError();
    }
    if (!end.ok) throw end.error;
    return { output: end.output };
  }

  /** The job's finalizer, with its retries and timeout; `{ output: undefined }` when it has none. */
  private async finalizer(
    input: FinalizeInput,
    signal: AbortSignal,
    abandoned: () => boolean,
  ): Promise<{ output: unknown }> {
    const { job } = this.d;
    if (!job.finalize) return { output: undefined };
    // A copy of its own: a finalizer may sort or trim what it is given (the failure sample, meta).
    const summary = structuredClone({
      ...this.d.summary(),
      status: 'FINALIZING' as const,
      succeeded: input.succeeded,
      failed: input.failed,
    });
    let lastError: unknown;
    for (let attempt = 1; attempt <= job.retry.attempts; attempt++) {
      let output: unknown;
      try {
        output = await bounded(job.finalizeTimeoutMs, signal, 'finalize', (attemptSignal) =>
          job.finalize!(summary, { batchId: this.d.batchId, signal: attemptSignal ?? signal }),
        );
      } catch (err) {
        // Abandoned meanwhile (a cancel, stop()): not the finalizer's failure, nothing to log.
        if (abandoned()) throw abandonedError();
        lastError = err;
        this.d.log.warn({ err: toError(err), attempt }, 'finalize failed');
        // As for a partition: an error that says `retryable: false` is not retried.
        if (!retryableOf(err)) break;
        if (attempt < job.retry.attempts)
          // Cut short, its timer cleared, when the finalization is abandoned.
          await sleep(backoffDelay(attempt, job.retry.backoffMs, job.retry.maxBackoffMs), undefined, {
            signal,
          }).catch(() => {});
        // Not called again once abandoned: its side effects would come after the cancel or stop.
        if (abandoned()) throw abandonedError();
        continue;
      }
      // The output is stored with the final state: refused (never retried) when storage cannot keep
      // it, as a partition's result is, rather than a final state that can never be written.
      const reason = unstorableOutput(output);
      if (reason)
        throw new ResultValidationError(
          `job "${job.name}": finalize returned a value that cannot be stored as JSON: ${reason}`,
        );
      return { output };
    }
    throw lastError;
  }
}

/**
 * One call of `fn`, given a signal that aborts with `signal` or after `timeoutMs`: a call still
 * running then rejects with TIMEOUT (whatever it answers later is ignored). Without a timeout,
 * `signal` itself and no timer. Used for `finalize` and for a trigger's `input` (triggers.ts).
 */
export async function bounded<T>(
  timeoutMs: number | undefined,
  signal: AbortSignal | undefined,
  what: string,
  fn: (signal: AbortSignal | undefined) => T | Promise<T>,
): Promise<T> {
  if (timeoutMs === undefined) return fn(signal);
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let abort: (() => void) | undefined;
  // Ends at the timeout, or at once when `signal` aborts (a cancel, stop()): the call is abandoned
  // then, and no timer is left to hold the process.
  const ended = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new TimeoutError(timeoutMs, what);
      reject(err);
      controller.abort(err);
    }, timeoutMs);
    abort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error(`${what} abandoned`));
      controller.abort(signal?.reason);
    };
    if (signal?.aborted) abort();
    else signal?.addEventListener('abort', abort, { once: true });
  });
  try {
    return await Promise.race([fn(controller.signal), ended]);
  } finally {
    clearTimeout(timer);
    if (abort) signal?.removeEventListener('abort', abort);
  }
}

/**
 * What a finalization rejects with when the engine stopped its triggers' submits: not the batch's
 * failure (a finalizer's own EngineStateError is, as any error of its own).
 */
const ENGINE_STOPS = Symbol('the engine stops');

/** What an abandoned finalization rejects with; never seen (its answer is dropped). */
function abandonedError(): Error {
  return new Error('finalization abandoned');
}

/** Why a finalizer's output cannot be stored as JSON, or undefined when it can. */
function unstorableOutput(output: unknown): string | undefined {
  try {
    return unstorable(output);
  } catch (err) {
    // A getter or a proxy trap threw while the output was read.
    return `(root) could not be read (${toError(err).message})`;
  }
}
