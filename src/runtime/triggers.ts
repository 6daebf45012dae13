import type { Logger } from 'pino';
import { EngineStateError, serializeError, ValidationError } from '../errors.js';
import type { AnyJobDefinition } from '../job.js';
import type { BatchStatus, BatchSummary } from '../summary.js';

type Triggered = NonNullable<BatchSummary['triggered']>;

/**
 * A batch of `job` ended as `final`: submit each matching trigger's batch, id `${parent}>${job}`
 * (`#${run}` appended from a retried batch's second run on), idempotent: a second submit returns
 * the first. A trigger whose input throws or is refused is recorded, and nothing else is affected.
 * Rejects (EngineStateError) only when the engine stops before every trigger has submitted.
 */
export async function fireTriggers(
  job: AnyJobDefinition,
  final: BatchSummary,
  submit: (job: string, input: unknown, id: string) => Promise<unknown>,
  log: Logger,
): Promise<Triggered> {
  const out: Triggered = [];
  for (const t of job.triggers ?? []) {
    if (!triggerFires(t.when, final.status)) continue;
    // One child per trigger and run: a retried parent (engine.retryFailed) may trigger again.
    const id = final.run ? `${final.id}>${t.job}#${final.run}` : `${final.id}>${t.job}`;
    try {
      await submit(t.job, t.input(final), id);
      out.push({ job: t.job, id });
    } catch (err) {
      // The engine stops: not the trigger's failure. Thrown, so that the parent's final state is not
      // stored with it; the next start finalizes the parent again and submits what is missing.
      if (err instanceof EngineStateError) throw err;
      log.error({ err, batchId: final.id, trigger: t.job }, 'trigger could not submit its batch');
      out.push({ job: t.job, id, error: serializeError(err) });
    }
  }
  return out;
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
}
