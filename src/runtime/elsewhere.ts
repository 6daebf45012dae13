import type { BatchControl, Store } from '../store/store.js';
import type { BatchSummary } from '../summary.js';
import type { RemoteFollow } from './remote-follow.js';
import type { Watchers } from './watchers.js';

export interface ElsewhereDeps {
  store: Store;
  watchers: Watchers;
  follow: RemoteFollow;
  get(id: string): Promise<BatchSummary>;
}

/**
 * `cancel`, `pause` and `resume` of a batch that another engine sharing the store runs
 * (docs/scaling.md): the request is left on the batch's row for its owner (src/runtime/controls.ts),
 * and the answer is the batch's first summary, followed through the store, that shows it done.
 */
export class Elsewhere {
  constructor(private readonly deps: ElsewhereDeps) {}

  async request(
    id: string,
    control: BatchControl,
    done: (s: BatchSummary) => boolean,
  ): Promise<BatchSummary> {
    const { store, watchers, follow, get } = this.deps;
    // Refused when the batch is final by now: its summary is the answer.
    if (!(await store.requestControl(id, control))) return get(id);
    return new Promise((resolve) => {
      const off = watchers.subscribe(
        id,
        (summary) => {
          if (!done(summary)) return;
          queueMicrotask(() => off());
          resolve(summary);
        },
        get(id),
      );
      follow.follow(id);
    });
  }
}
