/**
 * Marks what `defineJob` returned, so `createEngine` refuses an object that only looks like a job
 * (its options were never checked). A registered symbol, not a module's WeakSet: a job defined with
 * another copy of partita (a nested node_modules) is still one. A module of its own, importing
 * nothing: job.ts and engine-options.ts both need it, and each imports the other's constants.
 */
const JOB_MARK = Symbol.for('partita.job');

/** Mark `job` as defined by `defineJob`, and freeze it. */
export function markJob<T extends object>(job: T): Readonly<T> {
  Object.defineProperty(job, JOB_MARK, { value: true });
  return Object.freeze(job);
}

/** Whether `value` came from `defineJob`. */
export function isDefinedJob(value: unknown): boolean {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[JOB_MARK] === true;
}
