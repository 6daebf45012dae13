import { ConflictError, EngineStateError } from '../errors.js';
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
  /** The requests still waiting for their answer: each rejects with the error it is given. */
  private readonly pending = new Set<(err: Error) => void>();

  constructor(private readonly deps: ElsewhereDeps) {}

  /**
   * The engine stops: every request still waiting rejects with ENGINE_STATE, and its checks end
   * (they kept the process alive). What was asked stays on the batch's row for its owner.
   */
  stop(): void {
    for (const abandon of [...this.pending])
      abandon(
        new EngineStateError(
          "the engine stopped before the batch's owner was seen carrying out the request; the request stays with the batch",
        ),
      );
  }

  /**
   * Leave `control` for the batch's owner and resolve with the first summary `outcome` accepts; a
   * summary it refuses (the batch ended first, where the owner would refuse too) rejects with
   * CONFLICT, as does a request that a later one replaced or undid before the owner acted on it.
   */
  async request(
    id: string,
    control: BatchControl,
    outcome: (s: BatchSummary) => 'done' | 'refused' | 'wait',
  ): Promise<BatchSummary> {
    const { store, watchers, follow, get } = this.deps;
    // Refused when the batch is final by now, or a cancel is pending (it is never replaced): its
    // summary is the answer.
    if (!(await store.requestControl(id, control))) return settleNow(id, control, await get(id), outcome);
    const mine = JSON.stringify(control);
    return new Promise((resolve, reject) => {
      let finished = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (settle: () => void) => {
        if (finished) return;
        finished = true;
        this.pending.delete(abandon);
        clearTimeout(timer);
        queueMicrotask(() => off());
        settle();
      };
      const abandon = (err: Error) => finish(() => reject(err));
      this.pending.add(abandon);
      const judge = (summary: BatchSummary) => {
        const verdict = outcome(summary);
        if (verdict === 'done') finish(() => resolve(summary));
        else if (verdict === 'refused') finish(() => reject(refusal(id, control, summary)));
      };
      const off = watchers.subscribe(id, judge, get(id));
      follow.follow(id);
      // Read the batch every CHECK_MS while waiting: the answer comes soon after the owner acts (at
      // its next sweep without notifications), not at the follow's one-second backstop. A pause or
      // resume may also be carried out without the status it waits for ever showing (a later
      // request undid it), or be replaced before the owner saw it: the row says which. A cancel is
      // never replaced and always ends the batch.
      const check = async () => {
        timer = undefined;
        if (finished) return;
        await follow.refresh(id);
        if (finished) return;
        if (control.type !== 'cancel') {
          const now = await store.controlOf(id).catch(() => control);
          const replaced = (by: string) =>
            finish(() =>
              reject(
                new ConflictError(id, `batch "${id}": this ${control.type} was ${by} by a later request`),
              ),
            );
          if (now === undefined) {
            // Carried out (or replaced, and the replacement carried out): the summary says which.
            const summary = await get(id).catch(() => undefined);
            if (summary && outcome(summary) !== 'wait') return judge(summary);
            if (summary) return replaced('undone or replaced');
          } else if (JSON.stringify(now) !== mine) return replaced(`replaced (${now.type})`);
        }
        if (!finished) timer = setTimeout(() => void check(), CHECK_MS);
      };
      timer = setTimeout(() => void check(), CHECK_MS);
    });
  }
}

/**
 * The answer when the request could not even be left: the batch is final, or a cancel is pending.
 * Only a summary that shows it done answers; a batch still running (its cancel pending) is a
 * CONFLICT, as when a later request replaces this one (outside probe: a pause that lost to a cancel
 * from a third engine resolved with the PROCESSING summary).
 */
function settleNow(
  id: string,
  control: BatchControl,
  summary: BatchSummary,
  outcome: (s: BatchSummary) => 'done' | 'refused' | 'wait',
): BatchSummary {
  const verdict = outcome(summary);
  if (verdict === 'done') return summary;
  if (verdict === 'refused') throw refusal(id, control, summary);
  throw new ConflictError(
    id,
    `batch "${id}" is ${summary.status}: this ${control.type} could not be left for its owner (a cancel is pending, or the batch ended and was started again)`,
  );
}

function refusal(id: string, control: BatchControl, summary: BatchSummary): ConflictError {
  return new ConflictError(id, `batch "${id}" is ${summary.status}: it cannot ${control.type} any more`);
}
