import type { Store } from '../store/store.js';

/**
 * The engines of this process that hold a store object open. Several engines may share one store
 * object (a memory store shared by the engines of a test, or one SQLite store passed to two
 * engines): each start() holds it and each stop() lets go, and only the last to let go closes it.
 * Closing it under an engine still running left that engine's batches retrying "not open" writes
 * forever, and their `wait()`s unanswered (an outside probe).
 */
const holders = new WeakMap<Store, number>();

/** Opens `store` for one more engine. Counted before it opens: a close meanwhile leaves it open. */
export async function holdStore(store: Store): Promise<void> {
  holders.set(store, (holders.get(store) ?? 0) + 1);
  try {
    await store.open();
  } catch (err) {
    letGo(store);
    throw err;
  }
}

/** One engine lets go of `store`: closed when no other engine of this process holds it. */
export async function releaseStore(store: Store): Promise<void> {
  if (letGo(store) === 0) await store.close();
}

/** How many engines still hold `store` once one lets go. */
function letGo(store: Store): number {
  const left = Math.max(0, (holders.get(store) ?? 1) - 1);
  if (left === 0) holders.delete(store);
  else holders.set(store, left);
  return left;
}
