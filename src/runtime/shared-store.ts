import type { Logger } from 'pino';
import type { AnyJobDefinition } from '../job.js';
import type { BatchRecord, BatchState, Store } from '../store/store.js';
import type { BatchSummary } from '../summary.js';
import { Claims } from './claims.js';
import { Controls } from './controls.js';
import { Elsewhere } from './elsewhere.js';
import type { RemoteFollow } from './remote-follow.js';
import type { Watchers } from './watchers.js';

/** What the engine gives the shared-store machinery. */
export interface SharedStoreDeps {
  store: Store;
  log: Logger;
  jobs: ReadonlyMap<string, AnyJobDefinition>;
  /** This engine's lease owner id. */
  owner: string;
  sweepMs: number;
  watchers: Watchers;
  follow: RemoteFollow;
  /** Does this engine run the batch now (past QUEUED, not final)? */
  runsHere(id: string): boolean;
  /** Does this engine know the batch (running, queued, being resumed, or unreadable)? */
  known(id: string): boolean;
  /** How many more QUEUED batches this engine may take now. */
  room(): number;
  /** Parents that batches queued here wait for, run by no engine here. */
  neededParents(): Iterable<string>;
  /** Queue or run a stored batch here, then admit; false when another engine got it first. */
  take(record: BatchRecord, state: BatchState | undefined): Promise<boolean>;
  cancel(id: string, reason: string): Promise<BatchSummary>;
  pause(id: string): Promise<BatchSummary>;
  resume(id: string): Promise<BatchSummary>;
  get(id: string): Promise<BatchSummary>;
  storeError(err: Error, batchId: string | undefined): void;
}

/**
 * Work shared with the other engines on one store (docs/scaling.md): claiming the batches nobody
 * holds (claims.ts), carrying out the requests other engines leave for this engine's batches
 * (controls.ts), and leaving requests for theirs (elsewhere.ts). None of it exists for a
 * memoryStore, which no other engine can share.
 */
export class SharedStore {
  readonly elsewhere: Elsewhere;
  private readonly claims: Claims;
  private readonly controls: Controls;

  constructor(d: SharedStoreDeps) {
    this.controls = new Controls({
      store: d.store,
      log: d.log,
      owner: d.owner,
      runsHere: d.runsHere,
      cancel: d.cancel,
      pause: d.pause,
      resume: d.resume,
      storeError: d.storeError,
    });
    this.claims = new Claims({
      store: d.store,
      log: d.log,
      jobs: d.jobs,
      owner: d.owner,
      sweepMs: d.sweepMs,
      known: d.known,
      room: d.room,
      neededParents: d.neededParents,
      resume: d.take,
      storeError: d.storeError,
      alsoAtSweep: () => this.controls.check(),
    });
    this.elsewhere = new Elsewhere({ store: d.store, watchers: d.watchers, follow: d.follow, get: d.get });
  }

  start(): void {
    this.controls.start();
    this.claims.start();
  }

  /** A slot came free here: look for unowned batches soon. */
  soon(): void {
    this.claims.soon();
  }

  async stop(): Promise<void> {
    this.controls.stop();
    await this.claims.stop();
  }
}
