/**
 * The time source of the scheduler (and only of it): `createEngine({ clock })` swaps it in tests, so
 * cron fires are tested without real waiting. Batches, leases and timeouts keep the real clock.
 *
 * A timer callback may return a promise: the real clock ignores it, while a test clock can await it
 * to know when the work a timer started is done.
 *
 * @example
 * ```ts
 * const clock: Clock = { now: () => Date.now(), setTimeout: (fn, ms) => setTimeout(fn, ms), clearTimeout };
 * const engine = createEngine({ jobs: [job], clock });
 * ```
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Call `fn` after `ms` milliseconds (0 to 2,147,483,647); returns a handle for clearTimeout. */
  setTimeout(fn: () => unknown, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * The host's clock. Its timer is referenced, as croner's are: a process that only runs schedules
 * stays alive until `engine.stop()` clears it.
 */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
