import { backoffDelay, sleep } from '../backoff.js';
import { toError } from '../errors.js';

/** Tries of one store read before the caller gives up (for now; the engine tries again later). */
export const READ_ATTEMPTS = 4;

/**
 * A store read, retried like writes are: each failure is reported through `onError`, then tried
 * again after the shared backoff (50 ms doubling); the last failure is thrown.
 */
export async function readWithRetry<T>(
  onError: (err: Error) => void,
  read: () => Promise<T>,
  attempts = READ_ATTEMPTS,
): Promise<T> {
  for (let retry = 1; ; retry++) {
    try {
      return await read();
    } catch (err) {
      onError(toError(err));
      if (retry >= attempts) throw err;
      await sleep(backoffDelay(retry, 50, 1000));
    }
  }
}
