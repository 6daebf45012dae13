import type { Logger } from 'pino';
import type { InspectionEvent, Observer } from 'xstate';
import { toError } from '../errors.js';

/**
 * User callbacks (`onError`, `subscribe` listeners, `inspect`) run inside the engine's own event
 * handling: a throw from one must never reach the engine or become an unhandled rejection that
 * ends the host. Each call goes through `guarded`, which logs the throw and carries on.
 */
export function guarded<A extends unknown[]>(
  log: Logger,
  what: string,
  fn: ((...args: A) => unknown) | undefined,
): (...args: A) => void {
  if (!fn) return () => {};
  return (...args: A) => {
    try {
      const result = fn(...args);
      // An async callback's rejection is logged too, never left unhandled.
      if (result && typeof (result as Promise<unknown>).then === 'function')
        (result as Promise<unknown>).then(undefined, (err: unknown) => report(log, what, err));
    } catch (err) {
      report(log, what, err);
    }
  };
}

function report(log: Logger, what: string, err: unknown): void {
  try {
    log.error({ err: toError(err) }, `${what} threw; ignored`);
  } catch {
    // A logger that throws leaves nothing to report to.
  }
}

/** The `inspect` option as an observer whose every callback is guarded. */
export function guardedInspector(
  log: Logger,
  inspect: Observer<InspectionEvent> | ((event: InspectionEvent) => void) | undefined,
): ((event: InspectionEvent) => void) | undefined {
  if (!inspect) return undefined;
  const next = typeof inspect === 'function' ? inspect : inspect.next?.bind(inspect);
  return guarded(log, 'inspect', next);
}
