import type { Feeds } from './feed.js';
import type { HandledEngine } from './types.js';

/** The resolved options every route reads. */
export interface Settings {
  basePath: string;
  maxBodyBytes: number;
  retryAfterSeconds: number;
  heartbeatMs: number;
  eventIntervalMs: number;
}

/** What a route is given: the engine, the request, the parsed URL and the path's `:id`, if any. */
export interface RouteContext {
  engine: HandledEngine;
  request: Request;
  url: URL;
  /** The batch id from the path, percent-decoded; '' for routes without one. */
  id: string;
  settings: Settings;
  /** The event streams of this handler, by batch. */
  feeds: Feeds;
}
