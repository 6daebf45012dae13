import type { Engine } from '../engine.js';
import type { BatchSummary } from '../summary.js';

/** What a request asks to do; `authorize` decides per action. */
export type Action =
  | 'submit'
  | 'list'
  | 'read'
  | 'cancel'
  | 'pause'
  | 'resume'
  | 'retry'
  | 'prune'
  | 'metrics'
  | 'ui';

/** What `authorize` learns besides the request: the batch a route names, when it names one. */
export interface AuthorizeContext {
  batchId?: string;
}

/**
 * Decides whether a request may do `action`. `true` lets it through; `false` answers 403 and does
 * nothing; a `Response` (say a 401 with `WWW-Authenticate`) is sent as it is, also doing nothing.
 */
export type Authorize = (
  request: Request,
  action: Action,
  context: AuthorizeContext,
) => boolean | Response | Promise<boolean | Response>;

/** What `createHandler` takes besides the engine. */
export interface HandlerOptions {
  /** Path prefix the handler is mounted under, e.g. `/partita`. Default `''` (the root). */
  basePath?: string;
  /** Called before every route; nothing happens when it refuses. Default: everything is allowed. */
  authorize?: Authorize;
  /** Largest request body accepted, in bytes (413 beyond). Default 1 MiB. */
  maxBodyBytes?: number;
  /** `Retry-After` of a 202 (batch not final yet) and of a 503 (engine not running). Default 1. */
  retryAfterSeconds?: number;
  /**
   * Serve `GET /metrics` from a private prom-client registry. Default true: the metrics are
   * registered when the handler is created, so they count from then on. `false`: 404.
   */
  metrics?: boolean;
  /** Interval of the `: ping` comment on an idle event stream, in ms. Default 15,000. */
  heartbeatMs?: number;
  /**
   * Least time between two progress-only events of a batch's event streams, in ms (4 a second
   * keep a progress bar smooth and 200 watchers cheap); status changes are never held back.
   * Default 250. 0 sends every change.
   */
  eventIntervalMs?: number;
  /** Told about every error answered with a 500 (the response itself says nothing of it). */
  onError?: (err: unknown, request: Request) => void;
}

/** A fetch-standard handler: mount it anywhere that speaks `Request` and `Response`. */
export type FetchHandler = (request: Request) => Promise<Response>;

/** Engine operations that arrive in a later version: routed only when the engine has them. */
export interface OptionalOperations {
  pause?: (id: string) => Promise<BatchSummary>;
  resume?: (id: string) => Promise<BatchSummary>;
  retryFailed?: (id: string) => Promise<BatchSummary>;
}

/** The engine as the handler sees it. */
export type HandledEngine = Engine & OptionalOperations;

/** A page of a listing: `nextCursor` is present when there is more. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}
