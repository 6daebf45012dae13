import { ConflictError } from '../errors.js';
import type { BatchControl, Store } from '../store/store.js';
import type { BatchSummary } from '../summary.js';
import type { RemoteFollow } from './remote-follow.js';
import type { Watchers } from './watchers.js';

/** How often a pending pause or resume asks the store whether its request was carried out or replaced. */
const CHECK_MS = 200;

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
    const mine = JSON.stringify(control);
    return new Promise((resolve, reject) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (settle: () => void) => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        queueMicrotask(() => off());
        settle();
      };
      const off = watchers.subscribe(
        id,
        (summary) => {
          if (done(summary)) finish(() => resolve(summary));
        },
        get(id),
      );
      follow.follow(id);
      // A pause or resume may be carried out without the status it waits for ever showing (a later
      // request undid it), or be replaced before its owner saw it: the row says which. A cancel is
      // never replaced and always ends the batch.
      if (control.type === 'cancel') return;
      const check = async () => {
        timer = undefined;
        if (finished) return;
        const now = await store.controlOf(id).catch(() => control);
        const replaced = (by: string) =>
          finish(() =>
            reject(new ConflictError(id, `batch "${id}": this ${control.type} was ${by} by a later request`)),
          );
        if (now === undefined) {
          // Carried out (or replaced, and the replacement carried out): the summary says which.
          const summary = await get(id).catch(() => undefined);
          if (summary && done(summary)) return finish(() => resolve(summary));
          if (summary) return replaced('undone or replaced');
        } else if (JSON.stringify(now) !== mine) return replaced(`replaced (${now.type})`);
        if (!finished) timer = setTimeout(() => void check(), CHECK_MS);
      };
      timer = setTimeout(() => void check(), CHECK_MS);
    });
  }
}
