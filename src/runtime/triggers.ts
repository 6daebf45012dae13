import type { Logger } from 'pino';
import { ConflictError, EngineStateError, serializeError, ValidationError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { BatchStatus, BatchSummary } from '../summary.js';
import { longestParentId, MAX_ID_LENGTH } from '../values.js';
import { bounded } from './finalization.js';

type Triggered = NonNullable<BatchSummary['triggered']>;

/**
 * A batch of `job` ends as `final` (its FINALIZING, src/runtime/finalization.ts): submit each
 * matching trigger's batch, id `${parent}>${job}` (`#${run}` appended from a retried batch's second
 * run on), idempotent: a second submit returns the first. A trigger whose input throws or is refused
 * is recorded, and nothing else is affected. Rejects (EngineStateError) when the engine stops before
 * every trigger has submitted, and with `signal`'s reason once it aborts (the batch was cancelled
 * meanwhile): no trigger after that submits.
 */
export async function fireTriggers(
  job: AnyJobDefinition,
  final: BatchSummary,
  submit: (job: string, input: unknown, id: string) => Promise<{ job: string }>,
  log: Logger,
  signal: AbortSignal,
  /** Where each trigger's entry goes as it is made: a caller whose call was aborted still has them. */
  out: Triggered,
): Promise<void> {
  for (const t of job.triggers ?? []) {
    if (!triggerFires(t.when, final.status)) continue;
    signal.throwIfAborted();
    // One child per trigger and run: a retried parent (engine.retryFailed) may trigger again.
    const id = final.run ? `${final.id}>${t.job}#${final.run}` : `${final.id}>${t.job}`;
    try {
      // An async input is awaited: its promise is not the child's input. Bounded by the job's
      // finalizeTimeoutMs (the parent stays FINALIZING meanwhile); a timeout is recorded like a throw.
      const input = await bounded(job.finalizeTimeoutMs, signal, `trigger "${t.job}" input`, () =>
        t.input(final),
      );
      signal.throwIfAborted();
      const child = await submit(t.job, input, id);
      // The id was taken by a batch of another job (a user's own id that looks like a child's):
      // that batch is not this trigger's child, and the child was not submitted.
      if (child.job !== t.job)
        throw new ConflictError(
          id,
          `trigger "${t.job}": the id "${id}" is taken by a batch of job "${child.job}"; the child was not submitted`,
        );
      out.push({ job: t.job, id });
    } catch (err) {
      // The engine stops: not the trigger's failure. Thrown, so that the parent's final state is not
      // stored with it; the next start finalizes the parent again and submits what is missing.
      if (err instanceof EngineStateError) throw err;
      // Cancelled meanwhile: not the trigger's failure either, and nothing more submits.
      if (signal.aborted) throw signal.reason;
      log.error({ err, batchId: final.id, trigger: t.job }, 'trigger could not submit its batch');
      out.push({ job: t.job, id, error: serializeError(err) });
    }
  }
}

function triggerFires(when: 'succeeded' | 'failed' | 'settled', status: BatchStatus): boolean {
  if (status === 'CANCELLED') return false;
  if (when === 'succeeded') return status === 'COMPLETED';
  if (when === 'failed') return status === 'PARTIAL' || status === 'FAILED';
  return true;
}

/** Every trigger names a job of the engine, and no chain of triggers leads back to where it started. */
export function checkTriggers(jobs: ReadonlyMap<string, AnyJobDefinition>): void {
  for (const job of jobs.values())
    for (const t of job.triggers ?? [])
      if (!jobs.has(t.job))
        throw new ValidationError(
          `Invalid engine options: job "${job.name}" triggers unknown job "${t.job}"`,
          [{ path: `jobs.${job.name}.triggers`, message: `unknown job "${t.job}"` }],
        );
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting')
      throw new ValidationError(
        `Invalid engine options: triggers form a cycle: ${[...path, name].join(' → ')}`,
        [{ path: 'jobs', message: 'trigger cycle' }],
      );
    state.set(name, 'visiting');
    for (const t of jobs.get(name)!.triggers ?? []) visit(t.job, [...path, name]);
    state.set(name, 'done');
  };
  for (const name of jobs.keys()) visit(name, []);
  for (const job of jobs.values()) {
    checkSharedChildIds(job);
    // A batch submitted without an id gets a UUID (36 characters): its chain of children must fit.
    const most = longestParentId(job, jobs);
    if (most < UUID_LENGTH)
      throw new ValidationError(
        `Invalid engine options: the triggers below job "${job.name}" make child ids too long: a batch of it could have an id of at most ${Math.max(0, most)} characters (its children's ids must fit ${MAX_ID_LENGTH}), fewer than a generated id's ${UUID_LENGTH}`,
        [{ path: `jobs.${job.name}.triggers`, message: 'trigger chain too long for batch ids' }],
      );
  }
}

/** Length of the ids `submit` generates (a UUID). */
const UUID_LENGTH = 36;

/**
 * Two triggers of one job that name the same child job would give their children one id
 * (`${parent}>${job}`) when both fire: the second submit would return the first child, and its
 * batch would never exist. Refused unless they never fire together ('succeeded' and 'failed').
 */
function checkSharedChildIds(job: AnyJobDefinition): void {
  const triggers = job.triggers ?? [];
  for (let i = 0; i < triggers.length; i++)
    for (let k = i + 1; k < triggers.length; k++) {
      const a = triggers[i]!;
      const b = triggers[k]!;
      if (a.job !== b.job) continue;
      const exclusive =
        (a.when === 'succeeded' && b.when === 'failed') || (a.when === 'failed' && b.when === 'succeeded');
      if (!exclusive)
        throw new ValidationError(
          `Invalid engine options: job "${job.name}" has two triggers of job "${a.job}" ('${a.when}' and '${b.when}') that can fire together: their children would share the id "<parent>>${a.job}", so one would never run. Give one of them another job, or make them 'succeeded' and 'failed'`,
          [{ path: `jobs.${job.name}.triggers`, message: `two triggers of "${a.job}" that fire together` }],
        );
    }
}
