import { createHash } from 'node:crypto';
import { backoffDelay } from '../backoff.js';
import type { BatchStatus } from '../summary.js';
import { type PgPool, type PgPoolClient, type PgTimedQueryable, quoteIdentifier } from './pg-types.js';
import type { RangeEvent, StatusEvent } from './store.js';

/** Waits before listening again after a lost connection: doubles from the first to the last. */
const BACKOFF_MS = { first: 100, last: 10_000 };

/**
 * The LISTEN channel of a schema, as the trigger of migration 2 (src/store/migrations/postgres.ts)
 * names it: a hash keeps it within PostgreSQL's 63 bytes whatever the schema's name.
 */
export function statusChannel(schema: string): string {
  return `partita_${createHash('md5').update(schema).digest('hex')}`;
}

/**
 * One connection kept out of the pool that LISTENs on the schema's channel while watchers exist and
 * the store is open. A lost connection is replaced after a backoff (notifications sent meanwhile are
 * lost: watch() is best effort). stop() destroys the connection rather than returning it to the pool,
 * so a pool the caller owns never gets back a client still listening.
 */
export class StatusListener {
  private pool: PgPool | undefined;
  private client: PgPoolClient | undefined;
  private connecting: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Reconnections tried since the last success. */
  private retries = 0;

  constructor(
    private readonly channel: string,
    private readonly emit: (event: StatusEvent) => void,
    /** Ranges offered and answered (migration 7's trigger), on the same channel. */
    private readonly emitRange?: (event: RangeEvent) => void,
    /** The store's queryTimeoutMs: a LISTEN that is not answered is a lost connection. */
    private readonly queryTimeoutMs = 0,
  ) {}

  /** Listens on connections of `pool` until stop(). Idempotent. */
  start(pool: PgPool): void {
    this.pool = pool;
    this.connect();
  }

  async stop(): Promise<void> {
    this.pool = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.connecting;
    if (this.pool) return; // started again meanwhile: the connection serves that start
    const client = this.client;
    this.client = undefined;
    destroy(client);
  }

  private connect(): void {
    const pool = this.pool;
    if (!pool || this.client || this.connecting || this.timer) return;
    this.connecting = this.listen(pool).finally(() => {
      this.connecting = undefined;
      this.connect(); // started again on another pool meanwhile: listen there
    });
  }

  private async listen(pool: PgPool): Promise<void> {
    let client: PgPoolClient | undefined;
    try {
      client = await pool.connect();
      const mine = client;
      mine.on('notification', (message: { channel?: string; payload?: string }) => {
        if (message.channel === this.channel) this.received(message.payload);
      });
      mine.on('error', () => this.lost(mine));
      mine.on('end', () => this.lost(mine));
      const listen = `LISTEN ${quoteIdentifier(this.channel)}`;
      await (this.queryTimeoutMs > 0
        ? (mine as unknown as PgTimedQueryable).query({ text: listen, query_timeout: this.queryTimeoutMs })
        : mine.query(listen));
      if (this.pool !== pool) return destroy(mine); // stopped meanwhile
      this.client = mine;
      this.retries = 0;
    } catch {
      destroy(client);
      this.retry();
    }
  }

  private lost(client: PgPoolClient): void {
    if (client !== this.client) return; // an old connection, already replaced or stopped
    this.client = undefined;
    destroy(client);
    this.retry();
  }

  private retry(): void {
    if (!this.pool || this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.connect();
      },
      backoffDelay(++this.retries, BACKOFF_MS.first, BACKOFF_MS.last),
    );
    // The listening connection keeps the process alive while it exists; a wait to reconnect should not.
    this.timer.unref();
  }

  private received(payload: string | undefined): void {
    let event: Partial<StatusEvent> & { range?: unknown; job?: unknown; id?: unknown };
    try {
      event = JSON.parse(payload ?? '');
    } catch {
      return;
    }
    if (event?.range === 'offered' || event?.range === 'answered') {
      if (typeof event.batchId === 'string' && typeof event.job === 'string' && typeof event.id === 'number')
        this.emitRange?.({ type: event.range, batchId: event.batchId, job: event.job, id: event.id });
      return;
    }
    if (typeof event?.batchId === 'string' && typeof event.status === 'string')
      this.emit({
        batchId: event.batchId,
        status: event.status as BatchStatus,
        ...(event.control === true ? { control: true as const } : {}),
      });
  }
}

function destroy(client: PgPoolClient | undefined): void {
  try {
    client?.release(true);
  } catch {
    // released already (pg throws on a second release)
  }
}
