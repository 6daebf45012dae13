import { EngineStateError } from '../errors.js';
import type { PruneFilter, Store } from '../store/store.js';

/** Batches read per selection of engine.prune: bounds what it holds in memory at once. */
export const PRUNE_SELECT = 10_000;
/** Batches deleted per transaction: bounds how long one holds the store's write lock. */
export const PRUNE_DELETE = 100;

/**
 * engine.prune (docs/guide.md, "Keeping the store small"): select the ended batches the filter
 * names, oldest first, and delete them a transaction of {@link PRUNE_DELETE} at a time, until
 * `limit` are deleted or none is left. `busy`: a batch this engine still holds (it skips it, though
 * the store says it ended: its last steps after the final write may still touch its row).
 * Stops when a round deletes nothing (what is left is held, or not final any more).
 */
export async function pruneBatches(
  store: Store,
  filter: PruneFilter,
  limit: number,
  busy: (id: string) => boolean,
): Promise<number> {
  const { prunable, deleteBatches } = store;
  if (!prunable || !deleteBatches)
    throw new EngineStateError(
      `prune() needs a store that can delete batches: this ${store.kind} store has no prunable() and deleteBatches()`,
    );
  let deleted = 0;
  while (deleted < limit) {
    const take = Math.min(PRUNE_SELECT, limit - deleted);
    const selected = await prunable.call(store, filter, take);
    const ids = selected.filter((id) => !busy(id));
    let round = 0;
    for (let i = 0; i < ids.length; i += PRUNE_DELETE)
      round += await deleteBatches.call(store, ids.slice(i, i + PRUNE_DELETE));
    deleted += round;
    if (selected.length < take || round === 0) break;
  }
  return deleted;
}
