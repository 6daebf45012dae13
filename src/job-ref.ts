import { UnknownJobError, ValidationError } from './errors.js';
import type { AnyJobDefinition } from './job.js';

/**
 * The registered job that `ref` names (submit's and schedule's `job`): a job's name, or the job
 * definition itself. A definition must be the very one the engine was created with: another
 * object of the same name (two modules that each define "the same" job) would otherwise run the
 * registered job's code with input checked and typed by the other's (an outside probe).
 */
export function registeredJob(
  ref: unknown,
  jobs: ReadonlyMap<string, AnyJobDefinition>,
  where: string,
): AnyJobDefinition {
  const name = typeof ref === 'string' ? ref : (ref as { name?: unknown } | null | undefined)?.name;
  if (typeof name !== 'string') {
    const message = 'must be a job definition given to createEngine, or its name';
    throw new ValidationError(`Invalid ${where}: job ${message}`, [{ path: 'job', message }]);
  }
  const job = jobs.get(name);
  if (!job) throw new UnknownJobError(name, [...jobs.keys()]);
  if (typeof ref !== 'string' && ref !== job)
    throw new UnknownJobError(
      name,
      [...jobs.keys()],
      'the job definition given is not the one this engine was created with (a different object of the same name): pass that one, or the name',
    );
  return job;
}
