import type { Store } from '../../src/index.js';

type Method = keyof Store & string;

/**
 * A real store with faults injected on demand: `failNext(method, n)` makes the next n calls of a
 * method throw, `hold(method)` makes its calls wait until `release(method)`. Everything else goes
 * to the real store underneath (never a mock: the data is real).
 */
export function faultyStore(inner: Store) {
  const failures = new Map<string, { left: number; error: () => Error }>();
  const gates = new Map<string, { promise: Promise<void>; open: () => void }>();
  const calls = new Map<string, number>();
  const store = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      const method = prop;
      const call = (...args: unknown[]) => {
        calls.set(method, (calls.get(method) ?? 0) + 1);
        const fault = failures.get(method);
        if (fault && fault.left > 0) {
          fault.left--;
          const err = fault.error();
          // Async iterables fail on their first step, like a failed page read.
          if (method === 'outcomesSince' || method === 'partitions')
            return (async function* () {
              yield* [];
              throw err;
            })();
          return Promise.reject(err);
        }
        const gate = gates.get(method);
        if (gate) return gate.promise.then(() => value.apply(target, args));
        return value.apply(target, args);
      };
      return call;
    },
  });
  return {
    store: store as Store,
    failNext(method: Method, times: number, error = () => new Error(`injected ${method} failure`)) {
      failures.set(method, { left: times, error });
    },
    hold(method: Method) {
      let open = () => {};
      const promise = new Promise<void>((resolve) => {
        open = resolve;
      });
      gates.set(method, { promise, open });
    },
    release(method: Method) {
      gates.get(method)?.open();
      gates.delete(method);
    },
    calls(method: Method) {
      return calls.get(method) ?? 0;
    },
  };
}
